//! Whom on-chain COSS counts for, on a real anvil with the real contracts: its own username,
//! else the original buyer of its coins (inherited by an address the buyer sent coins to),
//! else nobody; a cleared username falls back to the buyer; the platform's own addresses are
//! left out. Then the week pays by those rules and a holder's proof checks out.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use coss_contracts::{
    COSS as COSS_UNIT, Chain, CossSale, CossToken, DeployParams, ETHER, chain_time, connect,
    deploy, spawn_anvil, username_to_bytes32,
};
use coss_core::dao_share;
use coss_dao::{ChainReader, ChainSource};
use coss_identity::exchange_account;
use coss_store::Store;

use crate::*;

fn signer(anvil: &alloy::node_bindings::AnvilInstance, index: usize) -> PrivateKeySigner {
    PrivateKeySigner::from(anvil.keys()[index].clone())
}

async fn buy(chain: &Chain, sale: Address, name: Option<&str>) {
    let word = name.map_or(B256::ZERO, |n| username_to_bytes32(n).unwrap());
    let receipt = CossSale::new(sale, &chain.provider)
        .buy(word)
        .value(U256::from(50 * ETHER))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
}

async fn set_username(chain: &Chain, token: Address, name: Option<&str>) {
    let word = name.map_or(B256::ZERO, |n| username_to_bytes32(n).unwrap());
    let receipt = CossToken::new(token, &chain.provider)
        .setRevenueUsername(word)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
}

async fn send(chain: &Chain, token: Address, to: Address, coss: u128) {
    send_units(chain, token, to, coss * COSS_UNIT).await;
}

/// Sends `units` of the token's smallest unit.
async fn send_units(chain: &Chain, token: Address, to: Address, units: u128) {
    let receipt = CossToken::new(token, &chain.provider)
        .transfer(to, U256::from(units))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
}

#[tokio::test(flavor = "multi_thread")]
async fn usernames_buyers_and_platform_addresses_decide_whom_chain_coss_counts_for() {
    let anvil = spawn_anvil().unwrap();
    let deployer = connect(&anvil.endpoint(), Some(signer(&anvil, 0)))
        .await
        .unwrap();
    let now = chain_time(&deployer).await.unwrap();
    let deployment = deploy(&deployer, &DeployParams::development(deployer.sender, now))
        .await
        .unwrap();
    let (token, sale) = (deployment.token, deployment.sale);
    let mut chains = Vec::new();
    for index in 1..=9 {
        chains.push(
            connect(&anvil.endpoint(), Some(signer(&anvil, index)))
                .await
                .unwrap(),
        );
    }
    let [a, b, c, d, e, hot, x, y, z] = [0, 1, 2, 3, 4, 5, 6, 7, 8].map(|i| &chains[i]);

    // A buys naming alice and sets nothing; it sends coins to C (new, no username) and to
    // the platform's hot wallet.
    buy(a, sale, Some("alice")).await;
    send(a, token, c.sender, 100_000).await;
    send(a, token, hot.sender, 50_000).await;
    // B buys naming bob but sets carol: carol.
    buy(b, sale, Some("bob")).await;
    set_username(b, token, Some("carol")).await;
    // D buys naming nobody: nobody.
    buy(d, sale, None).await;
    // E buys naming bob, sets carol, then clears it: back to the buyer, bob.
    buy(e, sale, Some("bob")).await;
    set_username(e, token, Some("carol")).await;
    set_username(e, token, None).await;
    // X buys naming alice and sets a name no account has: the buyer, alice.
    buy(x, sale, Some("alice")).await;
    set_username(x, token, Some("nobody-here")).await;
    // Capture attempts, none of which may work:
    // - the hot wallet (its origin: alice, from A's dust) pays a withdrawal to F: the
    //   platform passes no origin, so F counts for nobody;
    let f: Address = "0x00000000000000000000000000000000000000f1"
        .parse()
        .unwrap();
    send(hot, token, f, 20_000).await;
    // - alice's X dusts fresh Z before B's real transfer: dust sets no origin, B's does (bob);
    send_units(x, token, z.sender, COSS_UNIT / 2).await;
    send(b, token, z.sender, 1_000).await;
    // - Y buys naming nobody and names "dave" on chain; mallory claims "dave" on the platform
    //   only afterwards: it does not count for her.
    buy(y, sale, None).await;
    set_username(y, token, Some("dave")).await;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let mut accounts = HashMap::new();
    for name in ["alice", "bob", "carol"] {
        let id = user(&store, &format!("{name}@example.com")).await;
        store.claim_username(id, name, 0).await.unwrap();
        accounts.insert(name, exchange_account(id).unwrap());
    }
    let mallory = user(&store, "mallory@example.com").await;
    let named_at = chain_time(&deployer).await.unwrap() * 1000;
    store
        .claim_username(mallory, "dave", (named_at + 60_000) as i64)
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let (engine, handle) = engine(dir.path(), &clock).await;
    // alice also holds 10 COSS on the platform.
    deposit(&handle, accounts["alice"], COSS, 10 * UNIT).await;
    let eth_pool = 1_000_000_000_000_000_007u128;
    pool(&handle, ETH, eth_pool).await;

    let provider = coss_wallet_free_provider(&anvil).await;
    let source = ChainSource {
        reader: ChainReader::new(provider.clone(), token, Some(sale), 0),
        chain_id: 31337,
        platform: vec![hot.sender],
    };
    // The close: a whole second, past both the clock and the chain's last block.
    let chain_now = chain_time(&deployer).await.unwrap() * 1000;
    let close_ms = (clock.now().0.max(chain_now) / 1000 + 2) * 1000;
    let dao = dao_closing_at(&handle, &store, Some(source), close_ms, 2, &clock).await;
    clock.advance_to(coss_clock::UnixMs(close_ms + 100));
    // The close has passed but no block is at or after it yet: the week waits for the chain.
    let steps = dao.run_due().await.unwrap();
    assert_eq!(steps.last().unwrap().step, "waiting_for_chain", "{steps:?}");
    // Coins that move after the close do not count: this block is the first at or after it.
    let _: serde_json::Value = provider
        .raw_request("evm_setNextBlockTimestamp".into(), (close_ms / 1000,))
        .await
        .unwrap();
    let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    let block = provider.get_block_number().await.unwrap();
    send(a, token, d.sender, 1).await;
    let steps = dao.run_due().await.unwrap();
    assert_eq!(steps.last().unwrap().step, "paid", "{steps:?}");

    let report = store.dao_week_at(close_ms as i64).await.unwrap().unwrap();
    assert_eq!(report.block_number, Some(block as i64));
    let rules: HashMap<Address, (Option<i64>, String, Amount)> = store
        .dao_chain_holdings(close_ms as i64)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.address.parse().unwrap(), (r.account, r.rule, r.amount)))
        .collect();
    let id = |name: &str| Some(accounts[name].0 as i64);
    let bought = 625_000 * COSS_UNIT;
    let expect = [
        (a.sender, id("alice"), "buyer", bought - 150_000 * COSS_UNIT),
        (c.sender, id("alice"), "buyer", 100_000 * COSS_UNIT),
        (
            b.sender,
            id("carol"),
            "username",
            bought - 1_000 * COSS_UNIT,
        ),
        (d.sender, None, "none", bought),
        (e.sender, id("bob"), "buyer", bought),
        (x.sender, id("alice"), "buyer", bought - COSS_UNIT / 2),
        (f, None, "none", 20_000 * COSS_UNIT),
        (
            z.sender,
            id("bob"),
            "buyer",
            1_000 * COSS_UNIT + COSS_UNIT / 2,
        ),
        (y.sender, None, "none", bought),
    ];
    for (address, account, rule, amount) in expect {
        assert_eq!(
            rules[&address],
            (account, rule.to_owned(), Amount(amount)),
            "{address}"
        );
    }
    assert!(
        !rules.contains_key(&hot.sender),
        "platform addresses are left out"
    );

    // Holdings: alice 10 on the platform + A, C and X on chain; bob E and Z; carol B.
    let alice =
        10 * UNIT + (bought - 150_000 * COSS_UNIT) + 100_000 * COSS_UNIT + bought - COSS_UNIT / 2;
    let bob = bought + 1_000 * COSS_UNIT + COSS_UNIT / 2;
    let holdings = [
        ("alice", alice),
        ("bob", bob),
        ("carol", bought - 1_000 * COSS_UNIT),
    ];
    let total: u128 = holdings.iter().map(|&(_, h)| h).sum();
    assert_eq!(report.total, Amount(total));
    for (name, holding) in holdings {
        assert_eq!(
            available(&handle, accounts[name], ETH).await,
            dao_share(eth_pool, holding, total),
            "{name}"
        );
    }

    // alice's proof checks out against the week's root, and a changed amount does not.
    let symbols = HashMap::from([(ETH.0, ("ETH".to_owned(), 18u8))]);
    let week = coss_dao::week_name(close_ms);
    let mine = dao
        .holder_week(accounts["alice"], &week, &symbols)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mine.root, report.root);
    assert!(mine.verify());
    let mut forged = mine.clone();
    forged.payouts[0].amount = (dao_share(eth_pool, alice, total) + 1).to_string();
    assert!(!forged.verify());
    assert!(
        dao.holder_week(
            exchange_account(coss_types::UserId(424_242)).unwrap(),
            &week,
            &symbols,
        )
        .await
        .unwrap()
        .is_none()
    );
    drop(handle);
    drop(dao);
    tokio::task::spawn_blocking(move || engine.shutdown().unwrap())
        .await
        .unwrap();
}

async fn coss_wallet_free_provider(
    anvil: &alloy::node_bindings::AnvilInstance,
) -> alloy::providers::DynProvider {
    connect(&anvil.endpoint(), None).await.unwrap().provider
}
