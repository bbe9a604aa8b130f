//! The contracts through their Rust bindings, against a real anvil that each test starts on a
//! free port (and that is killed when the test ends).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use alloy::node_bindings::AnvilInstance;
use alloy::primitives::{Address, B256, U256};
use alloy::providers::Provider;
use alloy::signers::local::PrivateKeySigner;
use coss_contracts::{
    COSS, Chain, CossSale, CossToken, DeployParams, Deployment, ETHER, TokenLock, chain_time,
    connect, deploy, spawn_anvil, username_from_bytes32, username_to_bytes32,
};

const DAY: u64 = 86_400;

struct Dev {
    anvil: AnvilInstance,
    deployer: Chain,
    deployment: Deployment,
    params: DeployParams,
}

impl Dev {
    /// A fresh anvil with the set deployed from its first account (signed locally) with the
    /// development defaults, except distinct beneficiaries and wallet.
    async fn start() -> Self {
        let anvil = spawn_anvil().unwrap();
        let deployer = connect(&anvil.endpoint(), Some(signer(&anvil, 0)))
            .await
            .unwrap();
        let now = chain_time(&deployer).await.unwrap();
        let mut params = DeployParams::development(deployer.sender, now);
        let accounts = anvil.addresses();
        params.beneficiaries.team = accounts[5];
        params.beneficiaries.affiliates = accounts[6];
        params.beneficiaries.board = accounts[7];
        params.beneficiaries.advisors = accounts[8];
        params.wallet = accounts[9];
        let deployment = deploy(&deployer, &params).await.unwrap();
        Self {
            anvil,
            deployer,
            deployment,
            params,
        }
    }

    /// A connection signing as the anvil account `index`.
    async fn account(&self, index: usize) -> Chain {
        connect(&self.anvil.endpoint(), Some(signer(&self.anvil, index)))
            .await
            .unwrap()
    }

    /// Mines the next block at `timestamp`.
    async fn warp(&self, timestamp: u64) {
        let provider = &self.deployer.provider;
        let _: serde_json::Value = provider
            .raw_request("evm_setNextBlockTimestamp".into(), (timestamp,))
            .await
            .unwrap();
        let _: serde_json::Value = provider.raw_request("evm_mine".into(), ()).await.unwrap();
    }

    fn token<'a>(
        &self,
        chain: &'a Chain,
    ) -> CossToken::CossTokenInstance<&'a alloy::providers::DynProvider> {
        CossToken::new(self.deployment.token, &chain.provider)
    }

    fn sale<'a>(
        &self,
        chain: &'a Chain,
    ) -> CossSale::CossSaleInstance<&'a alloy::providers::DynProvider> {
        CossSale::new(self.deployment.sale, &chain.provider)
    }
}

/// Waits for a sent transaction's receipt.
trait Mined {
    async fn mined(self) -> alloy::rpc::types::TransactionReceipt;
}

impl Mined for alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum> {
    async fn mined(self) -> alloy::rpc::types::TransactionReceipt {
        coss_contracts::receipt(self).await.unwrap()
    }
}

fn signer(anvil: &AnvilInstance, index: usize) -> PrivateKeySigner {
    PrivateKeySigner::from(anvil.keys()[index].clone())
}

fn ether(n: u128) -> U256 {
    U256::from(n * ETHER)
}

fn coss(n: u128) -> U256 {
    U256::from(n * COSS)
}

#[tokio::test]
async fn deploying_creates_the_whole_set_with_the_allocation_table() {
    let dev = Dev::start().await;
    let d = &dev.deployment;
    let chain = &dev.deployer;
    assert_eq!(d.chain_id, 31_337);
    assert_eq!(d.deployer, dev.anvil.addresses()[0]);
    let addresses = [
        d.deployment,
        d.token,
        d.sale,
        d.team_lock,
        d.board_lock,
        d.advisors_lock,
    ];
    for (i, a) in addresses.iter().enumerate() {
        assert!(
            !chain.provider.get_code_at(*a).await.unwrap().is_empty(),
            "no code at {a}"
        );
        assert!(!addresses[..i].contains(a), "{a} twice");
    }

    let token = dev.token(chain);
    assert_eq!(token.name().call().await.unwrap(), "COSS");
    assert_eq!(token.symbol().call().await.unwrap(), "COSS");
    assert_eq!(token.decimals().call().await.unwrap(), 8);
    assert_eq!(token.cap().call().await.unwrap(), coss(200_000_000));
    assert_eq!(token.minter().call().await.unwrap(), d.sale);
    assert_eq!(token.totalSupply().call().await.unwrap(), coss(45_000_000));
    let to = dev.params.beneficiaries;
    for (holder, amount) in [
        (d.team_lock, 30_000_000),
        (to.affiliates, 10_000_000),
        (d.board_lock, 4_000_000),
        (d.advisors_lock, 1_000_000),
    ] {
        assert_eq!(token.balanceOf(holder).call().await.unwrap(), coss(amount));
    }

    let deployed_at = dev.params.fire_swap.start;
    for (lock, beneficiary, days) in [
        (d.team_lock, to.team, 180),
        (d.board_lock, to.board, 180),
        (d.advisors_lock, to.advisors, 90),
    ] {
        let lock = TokenLock::new(lock, &chain.provider);
        assert_eq!(lock.beneficiary().call().await.unwrap(), beneficiary);
        let release = lock.releaseTime().call().await.unwrap();
        let expected = U256::from(deployed_at + days * DAY);
        // The lock counts from the deployment block, at most a few seconds after `now`.
        assert!(
            release >= expected && release <= expected + U256::from(60u8),
            "{release}"
        );
    }

    let sale = dev.sale(chain);
    let fire = sale.phase(0).call().await.unwrap();
    assert_eq!((fire.start, fire.end), (d.fire_swap.start, d.fire_swap.end));
    assert_eq!(fire.cap, coss(25_000_000));
    assert_eq!(fire.minWei, ether(50));
    assert_eq!(fire.bonusBps, 2_500);
    let swap = sale.phase(1).call().await.unwrap();
    assert_eq!(
        (swap.start, swap.end),
        (d.token_swap.start, d.token_swap.end)
    );
    assert_eq!(swap.cap, coss(130_000_000));
    assert_eq!(swap.minWei, U256::from(ETHER / 1_000));
    assert_eq!(swap.bonusBps, 0);
    assert_eq!(sale.rate().call().await.unwrap(), coss(10_000));
    assert_eq!(sale.wallet().call().await.unwrap(), dev.params.wallet);
}

#[tokio::test]
async fn the_fire_swap_sells_from_50_eth_with_its_25_percent_bonus_and_records_the_buyer() {
    let dev = Dev::start().await;
    let buyer = dev.account(1).await;
    let sale = dev.sale(&buyer);
    let alice = username_to_bytes32("alice").unwrap();

    let refused = sale.buy(alice).value(ether(49)).send().await.unwrap_err();
    match refused.as_decoded_interface_error::<CossSale::CossSaleErrors>() {
        Some(CossSale::CossSaleErrors::BelowMinimum(e)) => {
            assert_eq!((e.paid, e.minimum), (ether(49), ether(50)));
        }
        other => panic!("expected BelowMinimum, got {other:?} from {refused}"),
    }

    let receipt = sale
        .buy(alice)
        .value(ether(50))
        .send()
        .await
        .unwrap()
        .mined()
        .await;
    assert!(receipt.status());
    // 50 ETH × 10,000 COSS/ETH = 500,000 COSS, plus 25%.
    let expected = coss(625_000);
    let purchased = receipt.decoded_log::<CossSale::Purchased>().unwrap();
    assert_eq!(purchased.buyer, buyer.sender);
    assert_eq!(purchased.phase, 0);
    assert_eq!(
        username_from_bytes32(purchased.username).as_deref(),
        Some("alice")
    );
    assert_eq!(purchased.weiPaid, ether(50));
    assert_eq!(purchased.tokens, expected);
    assert_eq!(
        dev.token(&buyer)
            .balanceOf(buyer.sender)
            .call()
            .await
            .unwrap(),
        expected
    );
    assert_eq!(sale.sold(U256::ZERO).call().await.unwrap(), expected);

    // The raised ether leaves only to the configured wallet.
    let wallet = dev.params.wallet;
    let before = buyer.provider.get_balance(wallet).await.unwrap();
    sale.withdraw().send().await.unwrap().mined().await;
    assert_eq!(
        buyer.provider.get_balance(wallet).await.unwrap() - before,
        ether(50)
    );
}

#[tokio::test]
async fn the_token_swap_opens_later_and_sells_from_0_001_eth_without_bonus() {
    let dev = Dev::start().await;
    let buyer = dev.account(2).await;
    let sale = dev.sale(&buyer);
    let between = dev.deployment.fire_swap.end + DAY;
    dev.warp(between).await;
    let closed = sale
        .buy(B256::ZERO)
        .value(ether(1))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(
            closed.as_decoded_interface_error::<CossSale::CossSaleErrors>(),
            Some(CossSale::CossSaleErrors::SaleClosed(_))
        ),
        "{closed}"
    );

    dev.warp(dev.deployment.token_swap.start).await;
    let milli = U256::from(ETHER / 1_000);
    let too_little = sale
        .buy(B256::ZERO)
        .value(milli - U256::from(1u8))
        .send()
        .await;
    assert!(too_little.is_err());
    let receipt = sale
        .buy(B256::ZERO)
        .value(milli)
        .send()
        .await
        .unwrap()
        .mined()
        .await;
    let purchased = receipt.decoded_log::<CossSale::Purchased>().unwrap();
    assert_eq!(purchased.phase, 1);
    assert_eq!(purchased.username, B256::ZERO);
    // 0.001 ETH × 10,000 COSS/ETH = 10 COSS, no bonus.
    assert_eq!(purchased.tokens, coss(10));
    assert_eq!(
        dev.token(&buyer)
            .balanceOf(buyer.sender)
            .call()
            .await
            .unwrap(),
        coss(10)
    );
}

#[tokio::test]
async fn a_revenue_username_is_set_read_back_replaced_and_cleared() {
    let dev = Dev::start().await;
    let holder = dev.account(3).await;
    let token = dev.token(&holder);
    assert_eq!(
        token
            .revenueDistribution(holder.sender)
            .call()
            .await
            .unwrap(),
        B256::ZERO
    );

    for name in ["alice", "alice-trading"] {
        let word = username_to_bytes32(name).unwrap();
        let receipt = token
            .setRevenueUsername(word)
            .send()
            .await
            .unwrap()
            .mined()
            .await;
        let event = receipt
            .decoded_log::<CossToken::RevenueUsernameSet>()
            .unwrap();
        assert_eq!((event.holder, event.username), (holder.sender, word));
        let stored = token
            .revenueDistribution(holder.sender)
            .call()
            .await
            .unwrap();
        assert_eq!(username_from_bytes32(stored).as_deref(), Some(name));
    }
    token
        .setRevenueUsername(B256::ZERO)
        .send()
        .await
        .unwrap()
        .mined()
        .await;
    assert_eq!(
        username_from_bytes32(
            token
                .revenueDistribution(holder.sender)
                .call()
                .await
                .unwrap()
        ),
        None
    );
    // Another address is untouched.
    assert_eq!(
        token
            .revenueDistribution(dev.deployer.sender)
            .call()
            .await
            .unwrap(),
        B256::ZERO
    );
}

#[tokio::test]
async fn a_lock_refuses_an_early_release_and_pays_its_beneficiary_after_it_ends() {
    let dev = Dev::start().await;
    let anyone = dev.account(4).await;
    let lock = TokenLock::new(dev.deployment.advisors_lock, &anyone.provider);
    let release_time = lock.releaseTime().call().await.unwrap();

    let early = lock.release().send().await.unwrap_err();
    match early.as_decoded_interface_error::<TokenLock::TokenLockErrors>() {
        Some(TokenLock::TokenLockErrors::StillLocked(e)) => assert_eq!(e.releaseTime, release_time),
        other => panic!("expected StillLocked, got {other:?} from {early}"),
    }
    let release_at: u64 = release_time.to();
    dev.warp(release_at - 10).await;
    assert!(
        lock.release().send().await.is_err(),
        "still locked ten seconds before"
    );

    dev.warp(release_at).await;
    let receipt = lock.release().send().await.unwrap().mined().await;
    assert!(receipt.status());
    let advisors = dev.params.beneficiaries.advisors;
    let token = dev.token(&anyone);
    assert_eq!(
        token.balanceOf(advisors).call().await.unwrap(),
        coss(1_000_000)
    );
    assert_eq!(
        token
            .balanceOf(dev.deployment.advisors_lock)
            .call()
            .await
            .unwrap(),
        U256::ZERO
    );
}

#[tokio::test]
async fn refused_transactions_leave_no_nonce_gap_for_the_next_one() {
    // A revert found while filling a transaction (gas estimation) must not use up a nonce:
    // otherwise the next transaction waits forever behind the gap.
    let dev = Dev::start().await;
    let buyer = dev.account(1).await;
    let sale = dev.sale(&buyer);
    for _ in 0..5 {
        assert!(sale.buy(B256::ZERO).value(ether(1)).send().await.is_err());
    }
    let receipt = sale
        .buy(B256::ZERO)
        .value(ether(50))
        .send()
        .await
        .unwrap()
        .mined()
        .await;
    assert!(receipt.status());
    assert_eq!(
        buyer
            .provider
            .get_transaction_count(buyer.sender)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn without_a_key_the_set_is_deployed_from_the_nodes_unlocked_account() {
    let anvil = spawn_anvil().unwrap();
    let chain = connect(&anvil.endpoint(), None).await.unwrap();
    assert_eq!(chain.sender, anvil.addresses()[0]);
    let now = chain_time(&chain).await.unwrap();
    let deployment = deploy(&chain, &DeployParams::development(chain.sender, now))
        .await
        .unwrap();
    assert_eq!(deployment.deployer, chain.sender);
    let token = CossToken::new(deployment.token, &chain.provider);
    assert_eq!(token.minter().call().await.unwrap(), deployment.sale);
}

#[tokio::test]
async fn parameters_the_contracts_would_reject_are_refused_before_sending() {
    let sender = Address::repeat_byte(1);
    let mut params = DeployParams::development(sender, 1_000_000);
    params.advisors_amount = coss(5_000_001);
    assert_eq!(params.validate().unwrap_err().code(), "chain.params");
    let mut params = DeployParams::development(sender, 1_000_000);
    params.token_swap.start = params.fire_swap.end - 1;
    assert!(params.validate().is_err());
    let mut params = DeployParams::development(sender, 1_000_000);
    params.wallet = Address::ZERO;
    assert!(params.validate().is_err());
}

#[tokio::test]
async fn only_http_urls_are_accepted() {
    for url in ["ftp://example.com", "not a url"] {
        let err = connect(url, None).await.unwrap_err();
        assert_eq!(err.code(), "chain.unsupported_url");
    }
}
