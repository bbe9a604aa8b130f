//! The wallets against a real Ethereum node (anvil), a real SQLite database and the real
//! engine: deposits credited after their confirmations and not before, over IPC and
//! WebSocket; a reorg that orphans an unconfirmed deposit; a reorg deeper than the bound
//! halting crediting; withdrawals that go out and settle, a crash between signing and
//! broadcast that sends nothing twice, a stuck withdrawal replaced with a higher fee; bad
//! requests that move nothing; internal transfers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::TransactionRequest;
use coss_contracts::{Chain, TestUsd};
use coss_core::Command;
use coss_engine::{Engine, EngineConfig, EngineHandle};
use coss_identity::{Accounts, Vault, totp_code};
use coss_store::{
    DepositStatus, ScratchDatabase, SessionKind, Store, Subject, TransferStatus, WithdrawalStatus,
};
use coss_types::{Amount, UserId};
use coss_wallet::{
    ChainConfig, DEV_ETH, DEV_TUSD, TransferRequest, Wallet, WalletError, WithdrawalRequest,
};

use coss_testkit::PASSWORD;
const ETH: u128 = 1_000_000_000_000_000_000;
const USD: u128 = 1_000_000;
/// The second factor is checked at synthetic times, one TOTP step apart, so every code is new.
const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 30_000;

struct World {
    wallet: Wallet,
    /// The wallet's clock: it stands still until a test moves it.
    clock: coss_clock::ManualClock,
    accounts: Accounts,
    _engine: Engine,
    /// The PostgreSQL database to drop at the end.
    pg: Option<ScratchDatabase>,
    handle: EngineHandle,
    funder: Chain,
    usd: Address,
    config: ChainConfig,
    _anvil: AnvilInstance,
    _dir: tempfile::TempDir,
}

enum Transport {
    Http,
    Ws,
    Ipc,
}

fn anvil(dir: &Path, transport: &Transport) -> AnvilInstance {
    let mut builder = Anvil::at(coss_contracts::anvil_binary().unwrap()).keep_stdout();
    if matches!(transport, Transport::Ipc) {
        builder = builder.arg("--ipc").arg(dir.join("anvil.ipc"));
    }
    let mut anvil = builder.try_spawn().unwrap();
    if let Some(mut stdout) = anvil.child_mut().stdout.take() {
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    }
    anvil
}

async fn deploy_token(funder: &Chain) -> Address {
    let pending = TestUsd::deploy_builder(&funder.provider)
        .from(funder.sender)
        .send()
        .await
        .unwrap();
    coss_contracts::receipt(pending)
        .await
        .unwrap()
        .contract_address
        .unwrap()
}

/// Which database the world's store is.
#[derive(Clone, Copy)]
enum Db {
    Sqlite,
    Postgres,
}

/// A store on a fresh PostgreSQL database.
async fn postgres_store() -> (Store, ScratchDatabase) {
    let scratch = coss_testkit::scratch_postgres("wallet").await;
    let store = Store::open(scratch.url()).await.unwrap();
    assert_eq!(store.backend(), coss_store::Backend::Postgres);
    (store, scratch)
}

async fn world(transport: Transport, tweak: impl FnOnce(&mut ChainConfig)) -> World {
    world_on(Db::Sqlite, transport, tweak).await
}

async fn world_on(db: Db, transport: Transport, tweak: impl FnOnce(&mut ChainConfig)) -> World {
    let dir = tempfile::tempdir().unwrap();
    let anvil = anvil(dir.path(), &transport);
    let funder = coss_contracts::connect(&anvil.endpoint(), None)
        .await
        .unwrap();
    let usd = deploy_token(&funder).await;
    let coss = deploy_token(&funder).await;
    let url = match transport {
        Transport::Http => anvil.endpoint(),
        Transport::Ws => anvil.ws_endpoint(),
        Transport::Ipc => {
            let path = dir.path().join("anvil.ipc");
            for _ in 0..100 {
                if path.exists() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            path.display().to_string()
        }
    };
    let mut config = ChainConfig::development(anvil.chain_id(), &url, coss, usd);
    config.start_block = Some(0);
    tweak(&mut config);
    let (store, pg) = match db {
        Db::Sqlite => (Store::open_in(dir.path()).await.unwrap(), None),
        Db::Postgres => {
            let (store, pg) = postgres_store().await;
            (store, Some(pg))
        }
    };
    let accounts = Accounts::new(store, Vault::random().unwrap()).unwrap();
    let (engine, _) = Engine::start(EngineConfig::new(dir.path().join("engine"))).unwrap();
    let handle = engine.handle();
    let clock = coss_clock::ManualClock::starting_now();
    let wallet = Wallet::open(
        config.clone(),
        accounts.clone(),
        handle.clone(),
        clock.clock(),
    )
    .await
    .unwrap();
    World {
        wallet,
        clock,
        accounts,
        _engine: engine,
        pg,
        handle,
        funder,
        usd,
        config,
        _anvil: anvil,
        _dir: dir,
    }
}

impl World {
    /// Drops the test's PostgreSQL database, if it made one.
    async fn finish(self) {
        if let Some(scratch) = self.pg {
            self.accounts.store().close().await;
            scratch.drop_now().await.unwrap();
        }
    }

    /// A verified user; with `totp`, second factor enabled and its seed returned.
    async fn user(&self, email: &str, totp: bool) -> (UserId, Option<String>) {
        let id = coss_testkit::verified(&self.accounts, email, T0).await;
        let seed = match totp {
            true => Some(coss_testkit::with_totp(&self.accounts, id, T0).await),
            false => None,
        };
        (id, seed)
    }

    fn provider(&self) -> &DynProvider {
        &self.funder.provider
    }

    async fn send_eth(&self, to: Address, wei: u128) {
        let tx = TransactionRequest::default()
            .with_from(self.funder.sender)
            .with_to(to)
            .with_value(U256::from(wei));
        let pending = self.provider().send_transaction(tx).await.unwrap();
        assert!(coss_contracts::receipt(pending).await.unwrap().status());
    }

    async fn mint_usd(&self, to: Address, units: u128) {
        let usd = TestUsd::new(self.usd, self.provider());
        let pending = usd
            .mint(to, U256::from(units))
            .from(self.funder.sender)
            .send()
            .await
            .unwrap();
        assert!(coss_contracts::receipt(pending).await.unwrap().status());
    }

    async fn mine(&self, blocks: u64) {
        let _: serde_json::Value = self
            .provider()
            .raw_request("anvil_mine".into(), (format!("0x{blocks:x}"),))
            .await
            .unwrap();
    }

    async fn eth_of(&self, who: Address) -> U256 {
        self.provider().get_balance(who).await.unwrap()
    }

    async fn usd_of(&self, who: Address) -> U256 {
        TestUsd::new(self.usd, self.provider())
            .balanceOf(who)
            .call()
            .await
            .unwrap()
    }

    async fn balance(&self, user: UserId, asset: coss_types::AssetId) -> coss_core::Balance {
        let account = coss_identity::exchange_account(user).unwrap();
        self.handle
            .read_async(move |e| e.balance(account, asset))
            .await
            .unwrap()
    }

    async fn credit(
        &self,
        user: UserId,
        asset: coss_types::AssetId,
        amount: u128,
        reference: &str,
    ) {
        let receipt = self
            .handle
            .submit_async(Command::Deposit {
                account: coss_identity::exchange_account(user).unwrap(),
                asset,
                amount: Amount(amount),
                reference: reference.into(),
            })
            .await
            .unwrap();
        assert_eq!(receipt.outcome, Ok(()));
    }

    /// Reopens the wallet over the same database, engine and node, as after a restart.
    async fn reopen(&mut self) {
        self.wallet = Wallet::open(
            self.config.clone(),
            self.accounts.clone(),
            self.handle.clone(),
            self.clock.clock(),
        )
        .await
        .unwrap();
    }

    async fn status(&self, kind: Subject, id: i64) -> Vec<String> {
        self.accounts
            .store()
            .wallet_events(kind, id)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.status)
            .collect()
    }
}

fn withdrawal(
    user: UserId,
    asset: &str,
    address: &str,
    amount: &str,
    code: Option<String>,
    key: &str,
    step: i64,
) -> WithdrawalRequest {
    WithdrawalRequest {
        user_id: user,
        asset: asset.into(),
        address: address.into(),
        amount: amount.into(),
        code,
        idempotency_key: key.into(),
        now: T0 + step * STEP,
    }
}

fn code(seed: &str, step: i64) -> Option<String> {
    Some(totp_code(seed, T0 + step * STEP).unwrap())
}

async fn deposits_credited_after_confirmations(db: Db, transport: Transport) {
    let mut w = world_on(db, transport, |_| {}).await;
    let (alice, _) = w.user("alice@example.com", false).await;
    let address = w.wallet.deposit_address(alice).await.unwrap();
    assert_eq!(w.wallet.deposit_address(alice).await.unwrap(), address);

    // ETH: 3 confirmations needed; the deposit's own block is the first.
    w.send_eth(address, 3 * ETH / 2).await;
    let report = w.wallet.sync().await.unwrap();
    assert_eq!((report.found, report.credited), (1, 0));
    w.mine(1).await;
    assert_eq!(w.wallet.sync().await.unwrap().credited, 0);
    assert_eq!(w.balance(alice, DEV_ETH).await.available, Amount(0));
    w.mine(1).await;
    assert_eq!(w.wallet.sync().await.unwrap().credited, 1);
    assert_eq!(
        w.balance(alice, DEV_ETH).await.available,
        Amount(3 * ETH / 2)
    );

    // An ERC-20 deposit (tUSD, 6 decimals).
    w.mint_usd(address, 250 * USD).await;
    assert_eq!(w.wallet.sync().await.unwrap().credited, 0);
    w.mine(2).await;
    assert_eq!(w.wallet.sync().await.unwrap().credited, 1);
    assert_eq!(
        w.balance(alice, DEV_TUSD).await.available,
        Amount(250 * USD)
    );

    // A restart resumes where it stopped and credits nothing twice.
    w.reopen().await;
    w.mine(5).await;
    let report = w.wallet.sync().await.unwrap();
    assert_eq!((report.scanned, report.found, report.credited), (5, 0, 0));
    assert_eq!(
        w.balance(alice, DEV_ETH).await.available,
        Amount(3 * ETH / 2)
    );
    assert_eq!(
        w.balance(alice, DEV_TUSD).await.available,
        Amount(250 * USD)
    );

    let history = w.accounts.store().deposits_of(alice, 10).await.unwrap();
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|d| d.status == DepositStatus::Credited));
    assert_eq!(
        w.status(Subject::Deposit, history[0].id).await,
        ["pending", "credited"]
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_are_credited_after_their_confirmations_and_not_before_over_ipc() {
    deposits_credited_after_confirmations(Db::Sqlite, Transport::Ipc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_are_credited_after_their_confirmations_and_not_before_over_websocket_on_postgres()
{
    deposits_credited_after_confirmations(Db::Postgres, Transport::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_orphans_an_unconfirmed_deposit_which_is_never_credited() {
    let w = world(Transport::Http, |_| {}).await;
    let (alice, _) = w.user("alice@example.com", false).await;
    let address = w.wallet.deposit_address(alice).await.unwrap();
    w.mine(3).await;
    w.wallet.sync().await.unwrap();
    w.send_eth(address, ETH).await;
    let report = w.wallet.sync().await.unwrap();
    assert_eq!(report.found, 1);

    // The deposit's block and the one before are replaced by empty ones: the transaction
    // is gone from the chain.
    let _: serde_json::Value = w
        .provider()
        .raw_request("anvil_reorg".into(), (2, serde_json::json!([])))
        .await
        .unwrap();
    let report = w.wallet.sync().await.unwrap();
    assert_eq!(report.unwound, 2, "{report:?}");
    let deposit = &w.accounts.store().deposits_of(alice, 10).await.unwrap()[0];
    assert_eq!(deposit.status, DepositStatus::Orphaned);
    w.mine(5).await;
    let report = w.wallet.sync().await.unwrap();
    assert_eq!(report.credited, 0);
    assert_eq!(
        w.balance(alice, DEV_ETH).await,
        coss_core::Balance::default()
    );
    assert_eq!(
        w.status(Subject::Deposit, deposit.id).await,
        ["pending", "orphaned"]
    );
    assert!(w.wallet.halted().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_deeper_than_the_bound_halts_crediting_with_an_alert() {
    let w = world(Transport::Http, |c| {
        c.reorg_bound = 3;
        for a in &mut c.assets {
            a.confirmations = 2;
        }
    })
    .await;
    let (alice, _) = w.user("alice@example.com", false).await;
    let address = w.wallet.deposit_address(alice).await.unwrap();
    w.mine(6).await;
    w.wallet.sync().await.unwrap();
    let _: serde_json::Value = w
        .provider()
        .raw_request("anvil_reorg".into(), (5, serde_json::json!([])))
        .await
        .unwrap();
    w.wallet.sync().await.unwrap();
    let halted = w.wallet.halted().expect("crediting halts");
    assert!(halted.contains("below the 3 recorded blocks"), "{halted}");
    // While halted nothing is credited, and the halt survives a restart.
    w.send_eth(address, ETH).await;
    w.mine(3).await;
    assert_eq!(w.wallet.sync().await.unwrap().credited, 0);
    let reopened = Wallet::open(
        w.config.clone(),
        w.accounts.clone(),
        w.handle.clone(),
        w.clock.clock(),
    )
    .await
    .unwrap();
    assert!(reopened.halted().is_some());
    assert_eq!(w.balance(alice, DEV_ETH).await.available, Amount(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_is_held_sent_confirmed_and_settled_and_bad_requests_move_nothing() {
    withdrawal_flow(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_is_held_sent_confirmed_and_settled_on_postgres_too() {
    withdrawal_flow(Db::Postgres).await;
}

async fn withdrawal_flow(db: Db) {
    let w = world_on(db, Transport::Http, |_| {}).await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let seed = seed.unwrap();
    w.credit(alice, DEV_ETH, 2 * ETH, "test:alice-eth").await;
    w.credit(alice, DEV_TUSD, 100 * USD, "test:alice-usd").await;
    w.send_eth(w.wallet.hot_address(), 50 * ETH).await;
    w.mint_usd(w.wallet.hot_address(), 1_000 * USD).await;
    let before = w.balance(alice, DEV_ETH).await;
    let to: Address = "0x00000000000000000000000000000000000000b0"
        .parse()
        .unwrap();
    let good = to.to_checksum(None);
    // EIP-55 example address with the case of its last letter flipped.
    let bad_checksum = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
    let checks: Vec<(WithdrawalRequest, &str)> = vec![
        (
            withdrawal(alice, "ETH", bad_checksum, "0.5", code(&seed, 10), "k1", 10),
            "bad_address_checksum",
        ),
        (
            withdrawal(alice, "ETH", "0x1234", "0.5", code(&seed, 11), "k2", 11),
            "invalid_address",
        ),
        (
            withdrawal(alice, "ETH", &good, "0.0001", code(&seed, 12), "k3", 12),
            "below_minimum",
        ),
        (
            withdrawal(alice, "ETH", &good, "11", code(&seed, 13), "k4", 13),
            "limit_exceeded",
        ),
        (
            withdrawal(alice, "ETH", &good, "0.5", Some("000000".into()), "k5", 14),
            "invalid_two_factor_code",
        ),
        (
            withdrawal(alice, "ETH", &good, "0.5", None, "k6", 15),
            "two_factor_required",
        ),
        (
            withdrawal(alice, "ETH", &good, "5", code(&seed, 16), "k7", 16),
            "insufficient_balance",
        ),
        (
            withdrawal(alice, "DOGE", &good, "5", code(&seed, 17), "k8", 17),
            "unknown_asset",
        ),
        (
            withdrawal(
                alice,
                "ETH",
                &good,
                "0.1234567890123456789",
                code(&seed, 18),
                "k9",
                18,
            ),
            "invalid_amount",
        ),
    ];
    for (request, expected) in checks {
        let error = w.wallet.request_withdrawal(&request).await.unwrap_err();
        assert_eq!(error.code(), expected, "{error}");
    }
    assert_eq!(
        w.balance(alice, DEV_ETH).await,
        before,
        "bad requests move nothing"
    );
    // A day after a password change (issue 20, item 2: whoever changed it may be a thief),
    // withdrawals wait, with their own code.
    let (carol, carol_seed) = w.user("carol@example.com", true).await;
    w.credit(carol, DEV_ETH, ETH, "test:carol-eth").await;
    w.accounts
        .change_password(
            &coss_testkit::app(carol),
            coss_testkit::PASSWORD,
            "carol's brand new password",
            T0 + 19 * STEP,
        )
        .await
        .unwrap();
    let carol_seed = carol_seed.unwrap();
    let locked = withdrawal(carol, "ETH", &good, "0.5", code(&carol_seed, 19), "c1", 19);
    let error = w.wallet.request_withdrawal(&locked).await.unwrap_err();
    assert_eq!(error.code(), "withdrawals_locked", "{error}");
    assert_eq!(w.balance(carol, DEV_ETH).await.available, Amount(ETH));
    assert!(
        w.accounts
            .store()
            .withdrawals_of(alice, 10)
            .await
            .unwrap()
            .iter()
            .all(|r| r.status == WithdrawalStatus::Rejected)
    );

    // A good one: held at once (amount + fee), sent, confirmed, settled.
    let request = withdrawal(alice, "ETH", &good, "0.5", code(&seed, 20), "w1", 20);
    let held = w.wallet.request_withdrawal(&request).await.unwrap();
    assert_eq!(held.status, WithdrawalStatus::Held);
    // The same key again returns the same withdrawal (the used code is not checked again).
    assert_eq!(
        w.wallet.request_withdrawal(&request).await.unwrap().id,
        held.id
    );
    let fee = w.config.asset("ETH").unwrap().withdrawal_fee;
    let locked = ETH / 2 + fee;
    assert_eq!(w.balance(alice, DEV_ETH).await.locked, Amount(locked));
    assert_eq!(
        w.balance(alice, DEV_ETH).await.available,
        Amount(2 * ETH - locked)
    );

    let report = w.wallet.process_withdrawals().await.unwrap();
    assert_eq!((report.signed, report.broadcast), (1, 1));
    assert_eq!(w.eth_of(to).await, U256::from(ETH / 2));
    let record = w
        .accounts
        .store()
        .withdrawal(held.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, WithdrawalStatus::Broadcast);
    w.mine(2).await;
    let report = w.wallet.process_withdrawals().await.unwrap();
    assert_eq!(report.settled, 1);
    let record = w
        .accounts
        .store()
        .withdrawal(held.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, WithdrawalStatus::Settled);
    assert!(record.tx_hash.is_some() && record.block_height.is_some());
    assert_eq!(
        w.status(Subject::Withdrawal, held.id).await,
        ["requested", "held", "signed", "broadcast", "settled"]
    );
    let after = w.balance(alice, DEV_ETH).await;
    assert_eq!(
        (after.available, after.locked),
        (Amount(2 * ETH - locked), Amount(0))
    );
    let fees = w
        .handle
        .read_async(|e| e.balance(coss_core::WITHDRAWAL_FEES, DEV_ETH))
        .await
        .unwrap();
    assert_eq!(fees.available, Amount(fee));

    // A token withdrawal.
    let request = withdrawal(alice, "TUSD", &good, "40", code(&seed, 21), "w2", 21);
    let usd = w.wallet.request_withdrawal(&request).await.unwrap();
    w.wallet.process_withdrawals().await.unwrap();
    w.mine(2).await;
    w.wallet.process_withdrawals().await.unwrap();
    let record = w
        .accounts
        .store()
        .withdrawal(usd.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.status, WithdrawalStatus::Settled);
    assert_eq!(w.usd_of(to).await, U256::from(40 * USD));
    assert_eq!(w.balance(alice, DEV_TUSD).await.available, Amount(59 * USD));

    // Cancelled before it is signed: the hold returns.
    let request = withdrawal(alice, "ETH", &good, "0.25", code(&seed, 22), "w3", 22);
    let pending = w.wallet.request_withdrawal(&request).await.unwrap();
    let cancelled = w.wallet.cancel_withdrawal(alice, pending.id).await.unwrap();
    assert_eq!(cancelled.status, WithdrawalStatus::Cancelled);
    assert_eq!(w.balance(alice, DEV_ETH).await, after);
    let error = w
        .wallet
        .cancel_withdrawal(alice, held.id)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "not_cancellable");
    assert_eq!(w.wallet.process_withdrawals().await.unwrap().signed, 0);

    // With allow-list-only withdrawals on, only listed addresses are accepted.
    let store = w.accounts.store();
    store.set_allow_list_only(alice, true, T0).await.unwrap();
    let request = withdrawal(alice, "ETH", &good, "0.25", code(&seed, 23), "w4", 23);
    let error = w.wallet.request_withdrawal(&request).await.unwrap_err();
    assert_eq!(error.code(), "address_not_allowed");
    assert_eq!(w.balance(alice, DEV_ETH).await, after, "nothing held");
    let chain = i64::try_from(w.config.chain_id).unwrap();
    let listed = format!("{to:#x}");
    store
        .allow_withdrawal_address(alice, chain, &listed, "cold storage", T0)
        .await
        .unwrap();
    let request = withdrawal(alice, "ETH", &good, "0.25", code(&seed, 24), "w5", 24);
    assert_eq!(
        w.wallet.request_withdrawal(&request).await.unwrap().status,
        WithdrawalStatus::Held
    );
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_signing_and_broadcast_sends_the_withdrawal_exactly_once() {
    let mut w = world(Transport::Http, |_| {}).await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let seed = seed.unwrap();
    w.credit(alice, DEV_ETH, 2 * ETH, "test:alice").await;
    w.send_eth(w.wallet.hot_address(), 10 * ETH).await;
    let to: Address = "0x00000000000000000000000000000000000000c1"
        .parse()
        .unwrap();
    let request = withdrawal(
        alice,
        "ETH",
        &to.to_checksum(None),
        "1",
        code(&seed, 1),
        "crash",
        1,
    );
    let id = w.wallet.request_withdrawal(&request).await.unwrap().id;

    // Signed and stored, then the process dies before broadcasting.
    assert_eq!(w.wallet.sign_held().await.unwrap(), 1);
    let signed = w.accounts.store().withdrawal(id).await.unwrap().unwrap();
    assert_eq!(signed.status, WithdrawalStatus::Signed);
    assert_eq!(w.eth_of(to).await, U256::ZERO);
    let hot = w.wallet.hot_address();
    w.reopen().await;

    // The restarted sender broadcasts the stored transaction, byte for byte.
    let report = w.wallet.process_withdrawals().await.unwrap();
    assert_eq!((report.signed, report.broadcast), (0, 1));
    w.mine(2).await;
    for _ in 0..3 {
        w.wallet.process_withdrawals().await.unwrap();
    }
    let record = w.accounts.store().withdrawal(id).await.unwrap().unwrap();
    assert_eq!(record.status, WithdrawalStatus::Settled);
    assert_eq!(record.tx_hash, signed.tx_hash);
    assert_eq!(w.eth_of(to).await, U256::from(ETH), "sent once");
    assert_eq!(w.provider().get_transaction_count(hot).await.unwrap(), 1);
    assert_eq!(w.balance(alice, DEV_ETH).await.locked, Amount(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_withdrawal_is_replaced_with_a_higher_fee_and_settles_once() {
    let w = world(Transport::Http, |c| c.stuck_after_ms = 300).await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let seed = seed.unwrap();
    w.credit(alice, DEV_ETH, 2 * ETH, "test:alice").await;
    w.send_eth(w.wallet.hot_address(), 10 * ETH).await;
    let _: serde_json::Value = w
        .provider()
        .raw_request("evm_setAutomine".into(), (false,))
        .await
        .unwrap();
    let to: Address = "0x00000000000000000000000000000000000000d2"
        .parse()
        .unwrap();
    let request = withdrawal(
        alice,
        "ETH",
        &to.to_checksum(None),
        "1",
        code(&seed, 1),
        "stuck",
        1,
    );
    let id = w.wallet.request_withdrawal(&request).await.unwrap().id;
    assert_eq!(w.wallet.process_withdrawals().await.unwrap().broadcast, 1);
    assert_eq!(
        w.wallet.process_withdrawals().await.unwrap().replaced,
        0,
        "not stuck yet"
    );
    w.clock.advance(w.config.stuck_after_ms + 1);
    let report = w.wallet.process_withdrawals().await.unwrap();
    assert_eq!(report.replaced, 1);
    let txs = w.accounts.store().withdrawal_txs(id).await.unwrap();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0].nonce, txs[1].nonce);
    assert!(txs[1].max_fee_per_gas > txs[0].max_fee_per_gas);
    w.mine(3).await;
    let report = w.wallet.process_withdrawals().await.unwrap();
    assert_eq!(report.settled, 1, "{report:?}");
    assert_eq!(w.eth_of(to).await, U256::from(ETH));
    let record = w.accounts.store().withdrawal(id).await.unwrap().unwrap();
    assert_eq!(record.tx_hash.as_deref(), Some(txs[1].tx_hash.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_transfers_settle_at_once_without_fee_and_only_once() {
    let w = world(Transport::Http, |_| {}).await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let (bob, _) = w.user("bob@example.com", false).await;
    let seed = seed.unwrap();
    w.credit(alice, DEV_ETH, 2 * ETH, "test:alice").await;
    let request = |amount: &str, to: &str, key: &str, step: i64| TransferRequest {
        user_id: alice,
        to_email: to.into(),
        asset: "ETH".into(),
        amount: amount.into(),
        code: code(&seed, step),
        idempotency_key: key.into(),
        now: T0 + step * STEP,
    };
    let sent = w
        .wallet
        .transfer(&request("0.75", "Bob@Example.com", "t1", 1))
        .await
        .unwrap();
    assert_eq!(sent.status, TransferStatus::Settled);
    assert_eq!(
        w.wallet
            .transfer(&request("0.75", "bob@example.com", "t1", 1))
            .await
            .unwrap()
            .id,
        sent.id
    );
    assert_eq!(w.balance(bob, DEV_ETH).await.available, Amount(3 * ETH / 4));
    assert_eq!(
        w.balance(alice, DEV_ETH).await.available,
        Amount(5 * ETH / 4)
    );
    for (req, expected) in [
        (
            request("5", "bob@example.com", "t2", 2),
            "insufficient_balance",
        ),
        (
            request("1", "nobody@example.com", "t3", 3),
            "unknown_recipient",
        ),
        (request("1", "alice@example.com", "t4", 4), "same_account"),
        (request("-1", "bob@example.com", "t5", 5), "invalid_amount"),
    ] {
        let error: WalletError = w.wallet.transfer(&req).await.unwrap_err();
        assert_eq!(error.code(), expected);
    }
    // Whether an email has an account is told only past the second factor: a wrong code gets
    // the same answer for a stranger's email as for a member's.
    for to in ["nobody@example.com", "bob@example.com"] {
        let mut req = request("0.1", to, "t6", 6);
        req.code = Some("000000".into());
        let error: WalletError = w.wallet.transfer(&req).await.unwrap_err();
        assert_ne!(error.code(), "unknown_recipient", "{to}");
        assert_eq!(
            error.code(),
            w.wallet.transfer(&req).await.unwrap_err().code()
        );
    }
    assert_eq!(w.balance(bob, DEV_ETH).await.available, Amount(3 * ETH / 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_retried_after_a_crash_settles_once_and_a_duplicate_that_differs_halts() {
    let w = world(Transport::Http, |_| {}).await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let (bob, _) = w.user("bob@example.com", false).await;
    let seed = seed.unwrap();
    w.credit(alice, DEV_ETH, 2 * ETH, "test:alice").await;
    w.credit(bob, DEV_ETH, 2 * ETH, "test:bob").await;
    let store = w.accounts.store();
    let recorded = |amount: u128, key: &str, request_key: u64| {
        let new = coss_store::NewTransfer {
            from_user: alice,
            to_user: bob,
            asset: "ETH".into(),
            amount: Amount(amount),
            idempotency_key: key.into(),
            request_key,
        };
        async move { store.create_transfer(&new, None, T0).await.unwrap().0 }
    };
    let handle = &w.handle;
    let move_in_core = |request_key: u64, from: UserId, to: UserId, amount: u128| async move {
        let receipt = handle
            .submit_async(Command::Transfer {
                request: coss_wallet::keyed_transfer_request(request_key),
                from: coss_identity::exchange_account(from).unwrap(),
                to: coss_identity::exchange_account(to).unwrap(),
                asset: DEV_ETH,
                amount: Amount(amount),
            })
            .await
            .unwrap();
        assert_eq!(receipt.outcome, Ok(()));
    };
    let retry = |key: &str, step: i64| TransferRequest {
        user_id: alice,
        to_email: "bob@example.com".into(),
        asset: "ETH".into(),
        amount: "0".into(),
        code: code(&seed, step),
        idempotency_key: key.into(),
        now: T0 + step * STEP,
    };

    // A crash after the core moved the coins and before the record said so: the retry finds
    // the core's transfer, the same one, and settles the record without moving again.
    let crashed = recorded(ETH / 2, "crashed", 7).await;
    move_in_core(7, alice, bob, ETH / 2).await;
    let settled = w.wallet.transfer(&retry("crashed", 1)).await.unwrap();
    assert_eq!(settled.status, TransferStatus::Settled);
    assert_eq!(settled.id, crashed.id);
    assert_eq!(
        w.balance(alice, DEV_ETH).await.available,
        Amount(3 * ETH / 2)
    );
    assert_eq!(w.balance(bob, DEV_ETH).await.available, Amount(5 * ETH / 2));

    // A record whose request id the core already used for a different transfer (what a
    // restored database could produce): "duplicate" must not pass for "settled" — bob was
    // never paid by alice under it.
    let restored = recorded(ETH, "restored", 42).await;
    move_in_core(42, bob, alice, ETH / 10).await;
    let error = w.wallet.transfer(&retry("restored", 2)).await.unwrap_err();
    assert_eq!(error.code(), "hold_mismatch");
    let record = store
        .transfer_by_key(alice, "restored")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.id, restored.id);
    assert_eq!(record.status, TransferStatus::Requested);
    assert_eq!(
        w.balance(alice, DEV_ETH).await.available,
        Amount(8 * ETH / 5)
    );
    let halted = w.wallet.halted().expect("halted");
    assert!(halted.contains("different transfer"), "{halted}");
    // Halted: no transfer moves anything until an operator clears it.
    let mut fresh = retry("fresh", 3);
    fresh.amount = "0.1".into();
    let error = w.wallet.transfer(&fresh).await.unwrap_err();
    assert_eq!(error.code(), "wallet_halted");
    assert_eq!(
        w.balance(alice, DEV_ETH).await.available,
        Amount(8 * ETH / 5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deposits_are_swept_to_the_hot_wallet_and_its_excess_to_the_cold_wallet() {
    let cold: Address = "0x00000000000000000000000000000000000c01d0"
        .parse()
        .unwrap();
    let w = world(Transport::Http, |c| {
        c.cold_address = Some(cold);
        let eth = c.assets.iter_mut().find(|a| a.symbol == "ETH").unwrap();
        eth.hot_max = Some(3 * ETH);
        eth.hot_keep = ETH;
    })
    .await;
    let (alice, _) = w.user("alice@example.com", false).await;
    let address = w.wallet.deposit_address(alice).await.unwrap();
    let (bob, _) = w.user("bob@example.com", false).await;
    let bobs = w.wallet.deposit_address(bob).await.unwrap();
    w.send_eth(address, 5 * ETH).await;
    w.mint_usd(address, 100 * USD).await;
    w.mint_usd(bobs, 30 * USD).await;
    w.mine(3).await;
    assert_eq!(w.wallet.sync().await.unwrap().credited, 3);
    let hot = w.wallet.hot_address();

    // Alice's address pays its own gas: tokens, then ETH. Bob's holds only tokens: the hot
    // wallet tops it up with gas first.
    let mut total = coss_wallet::SweepReport::default();
    for _ in 0..6 {
        let report = w.wallet.sweep().await.unwrap();
        total.swept += report.swept;
        total.topped_up += report.topped_up;
        total.finished += report.finished;
        total.to_cold += report.to_cold;
        w.mine(1).await;
    }
    assert_eq!(
        (total.topped_up, total.swept, total.finished),
        (1, 3, 2),
        "{total:?}"
    );
    assert_eq!(w.usd_of(address).await, U256::ZERO);
    assert_eq!(w.usd_of(bobs).await, U256::ZERO);
    assert_eq!(w.usd_of(hot).await, U256::from(130 * USD));
    assert_eq!(
        w.eth_of(address).await,
        U256::ZERO,
        "legacy sweeps leave no dust"
    );
    assert_eq!(total.to_cold, 1);
    assert!(w.eth_of(cold).await > U256::from(39 * ETH / 10));
    // It keeps `hot_keep`, plus the unused part of the worst-case gas it kept for a move
    // still on its way at the time.
    let kept = w.eth_of(hot).await;
    assert!(kept <= U256::from(ETH + ETH / 1000), "{kept}");

    // Sweeps are not deposits, and nothing is swept twice.
    assert_eq!(w.wallet.sync().await.unwrap().found, 0);
    assert_eq!(
        w.wallet.sweep().await.unwrap(),
        coss_wallet::SweepReport::default()
    );
    assert_eq!(w.balance(alice, DEV_ETH).await.available, Amount(5 * ETH));
    assert_eq!(
        w.balance(alice, DEV_TUSD).await.available,
        Amount(100 * USD)
    );
}

async fn call(
    router: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<serde_json::Value>,
) -> (u16, serde_json::Value) {
    use tower::ServiceExt;
    let mut request = axum::http::Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = match body {
        Some(json) => request
            .header("content-type", "application/json")
            .body(axum::body::Body::from(json.to_string())),
        None => request.body(axum::body::Body::empty()),
    }
    .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wallet_api_serves_addresses_history_and_clear_errors() {
    let w = world(Transport::Http, |_| {}).await;
    let (alice, _) = w.user("alice@example.com", false).await;
    let grant = w
        .accounts
        .login(
            &coss_identity::Login {
                email: "alice@example.com",
                password: PASSWORD,
                second_factor: None,
                kind: SessionKind::App,
                client: coss_identity::Client::default(),
            },
            w.clock.now().as_i64(),
        )
        .await
        .unwrap();
    let token = grant.token.expose().to_owned();
    let gate = coss_http::Gate::new(w.accounts.clone()).with_clock(w.clock.clock());
    let api = coss_wallet::api::router(w.wallet.clone(), gate).into_router();

    let (status, body) = call(&api, "GET", "/api/v1/wallet/deposit-address", None, None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let (status, body) = call(
        &api,
        "GET",
        "/api/v1/wallet/deposit-address",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let address = body["address"].as_str().unwrap().to_owned();
    assert_eq!(
        address,
        w.wallet
            .deposit_address(alice)
            .await
            .unwrap()
            .to_checksum(None)
    );
    assert_eq!(body["assets"], serde_json::json!(["ETH", "COSS", "TUSD"]));

    let (status, body) = call(&api, "GET", "/api/v1/wallet/assets", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body[0]["withdrawal_fee"], "0.000500000000000000");

    // A deposit shows as pending with its confirmations, then credited.
    w.send_eth(address.parse().unwrap(), ETH / 4).await;
    w.wallet.sync().await.unwrap();
    let (_, list) = call(&api, "GET", "/api/v1/wallet/deposits", Some(&token), None).await;
    assert_eq!(list[0]["status"], "pending");
    assert_eq!(list[0]["amount"], "0.250000000000000000");
    assert_eq!(
        (
            list[0]["confirmations"].as_u64(),
            list[0]["required_confirmations"].as_u64()
        ),
        (Some(1), Some(3))
    );
    w.mine(2).await;
    w.wallet.sync().await.unwrap();
    let (_, list) = call(&api, "GET", "/api/v1/wallet/deposits", Some(&token), None).await;
    assert_eq!(list[0]["status"], "credited");
    let (_, balances) = call(&api, "GET", "/api/v1/wallet/balances", Some(&token), None).await;
    assert_eq!(balances[0]["available"], "0.250000000000000000");

    // Withdrawals: a bad address answers with its code; without a second factor, none goes.
    let withdraw = |address: &str| serde_json::json!({"asset": "ETH", "address": address, "amount": "0.1", "code": "123456"});
    let (status, body) = call(
        &api,
        "POST",
        "/api/v1/wallet/withdrawals",
        Some(&token),
        Some(withdraw("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_address_checksum"))
    );
    let (status, body) = call(
        &api,
        "POST",
        "/api/v1/wallet/withdrawals",
        Some(&token),
        Some(withdraw(&address)),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("internal_address"))
    );
    let (status, body) = call(
        &api,
        "POST",
        "/api/v1/wallet/withdrawals",
        Some(&token),
        Some(withdraw("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("two_factor_setup_required"))
    );
    let (status, body) = call(
        &api,
        "POST",
        "/api/v1/wallet/withdrawals/99/cancel",
        Some(&token),
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (_, list) = call(
        &api,
        "GET",
        "/api/v1/wallet/withdrawals",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(list, serde_json::json!([]));
    let (_, balances) = call(&api, "GET", "/api/v1/wallet/balances", Some(&token), None).await;
    assert_eq!(balances[0]["available"], "0.250000000000000000");
}

impl World {
    async fn set_eth(&self, who: Address, wei: u128) {
        let _: serde_json::Value = self
            .provider()
            .raw_request(
                "anvil_setBalance".into(),
                (who, format!("0x{:x}", U256::from(wei))),
            )
            .await
            .unwrap();
    }

    async fn automine(&self, on: bool) {
        let _: serde_json::Value = self
            .provider()
            .raw_request("evm_setAutomine".into(), (on,))
            .await
            .unwrap();
    }

    async fn record(&self, id: i64) -> coss_store::WithdrawalRecord {
        self.accounts.store().withdrawal(id).await.unwrap().unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_middle_transaction_waits_for_a_refill_instead_of_freezing_later_nonces() {
    let w = world(Transport::Http, |_| {}).await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let seed = seed.unwrap();
    w.credit(alice, DEV_ETH, 3 * ETH, "test:alice").await;
    w.credit(alice, DEV_TUSD, 100 * USD, "test:alice-usd").await;
    let hot = w.wallet.hot_address();
    w.mint_usd(hot, 1_000 * USD).await;
    let to: Address = "0x00000000000000000000000000000000000000e1"
        .parse()
        .unwrap();
    let to = to.to_checksum(None);
    let mut ids = Vec::new();
    for (step, (asset, amount)) in [("ETH", "1"), ("ETH", "1"), ("TUSD", "20")]
        .into_iter()
        .enumerate()
    {
        let step = step as i64 + 1;
        let request = withdrawal(
            alice,
            asset,
            &to,
            amount,
            code(&seed, step),
            &format!("r{step}"),
            step,
        );
        ids.push(w.wallet.request_withdrawal(&request).await.unwrap().id);
    }

    // No ETH in the hot wallet: nothing is signed, not even the token transfer (its gas is
    // paid in ETH), so no signed transaction is one the node must refuse.
    assert_eq!(w.wallet.sign_held().await.unwrap(), 0);

    // Enough for all three: signed with nonces 0, 1, 2.
    w.set_eth(hot, 10 * ETH).await;
    assert_eq!(w.wallet.sign_held().await.unwrap(), 3);
    let nonces: Vec<_> = nonces_of(&w, &ids).await;
    assert_eq!(nonces, vec![0, 1, 2]);

    // The hot wallet loses ETH before the broadcast (another send, a reorg): the node mines
    // nonce 0, refuses nonce 1 for funds and queues the token transfer at nonce 2 behind it.
    w.set_eth(hot, 3 * ETH / 2).await;
    w.wallet.process_withdrawals().await.unwrap();
    w.mine(3).await;
    w.wallet.process_withdrawals().await.unwrap();
    assert_eq!(w.record(ids[0]).await.status, WithdrawalStatus::Settled);
    // The refusal's wording decides nothing: the second withdrawal keeps its hold and its
    // nonce, since its transaction may still be mined.
    let second = w.record(ids[1]).await;
    assert!(
        matches!(
            second.status,
            WithdrawalStatus::Signed | WithdrawalStatus::Broadcast
        ),
        "{second:?}"
    );
    assert_eq!(
        w.balance(alice, DEV_ETH).await.locked,
        Amount(ETH + ETH / 2000)
    );

    // A refill, and the same stored transactions go out in nonce order: nothing frozen.
    w.set_eth(hot, 10 * ETH).await;
    for _ in 0..4 {
        w.wallet.process_withdrawals().await.unwrap();
        w.mine(3).await;
    }
    for id in &ids {
        assert_eq!(
            w.record(*id).await.status,
            WithdrawalStatus::Settled,
            "{id}"
        );
    }
    assert_eq!(w.provider().get_transaction_count(hot).await.unwrap(), 3);
    assert_eq!(w.eth_of(to.parse().unwrap()).await, U256::from(2 * ETH));
    assert_eq!(w.usd_of(to.parse().unwrap()).await, U256::from(20 * USD));
    assert_eq!(w.balance(alice, DEV_ETH).await.locked, Amount(0));
}

async fn nonces_of(w: &World, ids: &[i64]) -> Vec<i64> {
    let mut nonces = Vec::new();
    for id in ids {
        nonces.push(w.record(*id).await.nonce.unwrap());
    }
    nonces
}

/// A world whose node mines nothing until told, with `alice` holding 2 ETH, a 1 ETH
/// withdrawal of hers broadcast and unmined, and its id.
async fn stuck_withdrawal(tweak: impl FnOnce(&mut ChainConfig)) -> (World, UserId, Address, i64) {
    let w = world(Transport::Http, tweak).await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let seed = seed.unwrap();
    w.credit(alice, DEV_ETH, 2 * ETH, "test:alice").await;
    w.send_eth(w.wallet.hot_address(), 10 * ETH).await;
    w.automine(false).await;
    let to: Address = "0x00000000000000000000000000000000000000e2"
        .parse()
        .unwrap();
    let request = withdrawal(
        alice,
        "ETH",
        &to.to_checksum(None),
        "1",
        code(&seed, 1),
        "stuck",
        1,
    );
    let id = w.wallet.request_withdrawal(&request).await.unwrap().id;
    assert_eq!(w.wallet.process_withdrawals().await.unwrap().broadcast, 1);
    (w, alice, to, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_bumps_of_a_stuck_withdrawal_stop_at_the_assets_cap() {
    const GWEI: u128 = 1_000_000_000;
    let (w, _, _, id) = stuck_withdrawal(|c| {
        c.stuck_after_ms = 300;
        for asset in &mut c.assets {
            asset.max_fee_per_gas = 6 * GWEI;
        }
    })
    .await;
    // Stuck pass after pass: each bump is 12.5% up, until the next would pass the cap; then
    // it alerts and waits, however long it stays stuck.
    for _ in 0..30 {
        w.clock.advance(w.config.stuck_after_ms + 1);
        w.wallet.process_withdrawals().await.unwrap();
    }
    let txs = w.accounts.store().withdrawal_txs(id).await.unwrap();
    assert!(txs.len() > 2, "bumped a few times: {}", txs.len());
    assert!(txs.len() < 30, "not every pass: {}", txs.len());
    assert!(txs.iter().all(|t| t.max_fee_per_gas <= 6 * GWEI));
    let top = txs.last().unwrap().max_fee_per_gas;
    assert!(top + top / 8 > 6 * GWEI, "stopped only at the cap: {top}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_unmined_too_long_is_cancelled_on_chain_and_only_then_released() {
    let (w, alice, to, id) = stuck_withdrawal(|c| c.cancel_after_ms = 60_000).await;
    let hot = w.wallet.hot_address();
    // Unmined for longer than cancel_after: a cancel (zero value to the hot wallet itself, at
    // the same nonce, with a higher fee) is signed and recorded. The hold stays until the
    // chain decides.
    w.clock.advance(w.config.cancel_after_ms + 1);
    assert_eq!(w.wallet.process_withdrawals().await.unwrap().replaced, 1);
    let txs = w.accounts.store().withdrawal_txs(id).await.unwrap();
    assert_eq!(txs.len(), 2);
    assert!(txs[1].cancels && txs[1].nonce == txs[0].nonce);
    assert_eq!(
        w.balance(alice, DEV_ETH).await.locked,
        Amount(ETH + ETH / 2000)
    );
    let events = w.status(Subject::Withdrawal, id).await;
    assert!(events.contains(&"cancel_signed".to_owned()), "{events:?}");

    // The node mines the cancel (it outbids the transfer); with confirmations, the hold is
    // released and nothing was sent.
    w.mine(4).await;
    w.wallet.process_withdrawals().await.unwrap();
    let record = w.record(id).await;
    assert_eq!(record.status, WithdrawalStatus::Failed, "{record:?}");
    assert_eq!(record.tx_hash.as_deref(), Some(txs[1].tx_hash.as_str()));
    assert_eq!(w.eth_of(to).await, U256::ZERO, "nothing sent");
    let balance = w.balance(alice, DEV_ETH).await;
    assert_eq!(
        (balance.available, balance.locked),
        (Amount(2 * ETH), Amount(0))
    );
    assert_eq!(w.provider().get_transaction_count(hot).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_hold_that_differs_from_the_record_halts_instead_of_marking_it_held() {
    let w = world(Transport::Http, |_| {}).await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let (bob, _) = w.user("bob@example.com", false).await;
    w.credit(alice, DEV_ETH, 2 * ETH, "test:alice").await;
    w.credit(bob, DEV_ETH, 2 * ETH, "test:bob").await;
    let to = "0x00000000000000000000000000000000000000e3";
    // Request ids are random, not row ids: a restored database that reuses a row id does
    // not reuse the hold's name.
    let first = w
        .wallet
        .request_withdrawal(&withdrawal(
            alice,
            "ETH",
            to,
            "0.5",
            code(seed.as_deref().unwrap(), 1),
            "a",
            1,
        ))
        .await
        .unwrap();
    let key = first.request_key.unwrap();
    assert_ne!(
        coss_wallet::held_request(key),
        coss_wallet::withdrawal_request(first.id)
    );

    // A record whose request id the core already holds for someone else (what a restored
    // database could produce): the core answers DuplicateRequest, and that must not pass
    // for "held" — nothing of alice's is locked for it.
    let collided = 42u64;
    let receipt = w
        .handle
        .submit_async(Command::WithdrawHold {
            request: coss_wallet::held_request(collided),
            account: coss_identity::exchange_account(bob).unwrap(),
            asset: DEV_ETH,
            amount: Amount(ETH),
        })
        .await
        .unwrap();
    assert_eq!(receipt.outcome, Ok(()));
    let (record, created) = w
        .accounts
        .store()
        .create_withdrawal(
            &coss_store::NewWithdrawal {
                user_id: alice,
                chain_id: w.config.chain_id as i64,
                asset: "ETH".into(),
                to_address: to.into(),
                amount: Amount(ETH),
                fee: Amount(ETH / 2000),
                idempotency_key: "restored".into(),
                request_key: collided,
                review_reason: None,
            },
            None,
            T0,
        )
        .await
        .unwrap();
    assert!(created);
    let locked_before = w.balance(alice, DEV_ETH).await.locked;
    w.wallet.process_withdrawals().await.unwrap();
    assert_eq!(
        w.record(record.id).await.status,
        WithdrawalStatus::Requested
    );
    assert_eq!(w.balance(alice, DEV_ETH).await.locked, locked_before);
    let halted = w.wallet.halted().expect("halted");
    assert!(halted.contains("different withdrawal"), "{halted}");
    // Halted: nothing is signed until an operator clears it.
    assert_eq!(w.wallet.sign_held().await.unwrap(), 0);
}

/// The API's hold and the sender's recovery on one `requested` withdrawal, interleaved step
/// by step: the API's core answer (a refusal: alice has nothing yet), a deposit, then the
/// recovery's core answer (held). Neither is recorded yet.
async fn hold_race() -> (
    World,
    UserId,
    coss_store::WithdrawalRecord,
    coss_wallet::CoreHold,
    coss_wallet::CoreHold,
) {
    let w = world(Transport::Http, |_| {}).await;
    let (alice, _) = w.user("alice@example.com", false).await;
    let (record, _) = w
        .accounts
        .store()
        .create_withdrawal(
            &coss_store::NewWithdrawal {
                user_id: alice,
                chain_id: w.config.chain_id as i64,
                asset: "ETH".into(),
                to_address: "0x00000000000000000000000000000000000000e4".into(),
                amount: Amount(ETH),
                fee: Amount(ETH / 2000),
                idempotency_key: "raced".into(),
                request_key: 9,
                review_reason: None,
            },
            None,
            T0,
        )
        .await
        .unwrap();
    let api = w.wallet.hold_in_core(&record).await.unwrap();
    assert!(!api.held());
    w.credit(alice, DEV_ETH, 2 * ETH, "test:alice").await;
    let recovery = w.wallet.hold_in_core(&record).await.unwrap();
    assert!(recovery.held());
    (w, alice, record, api, recovery)
}

impl World {
    /// The user was told "rejected": the record says so, nothing stays locked for it, and
    /// the sender never sends it though the hot wallet could pay.
    async fn rejected_and_free(&self, alice: UserId, record: &coss_store::WithdrawalRecord) {
        assert_eq!(
            self.record(record.id).await.status,
            WithdrawalStatus::Rejected
        );
        let balance = self.balance(alice, DEV_ETH).await;
        assert_eq!(
            (balance.available, balance.locked),
            (Amount(2 * ETH), Amount(0))
        );
        let core = self
            .handle
            .read_async(|e| e.withdrawal(coss_wallet::held_request(9)))
            .await
            .unwrap()
            .unwrap();
        assert!(!core.pending, "released in the core");
        self.send_eth(self.wallet.hot_address(), 5 * ETH).await;
        let report = self.wallet.process_withdrawals().await.unwrap();
        assert_eq!(report.signed, 0);
        assert_eq!(
            self.record(record.id).await.status,
            WithdrawalStatus::Rejected
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_made_after_the_other_path_recorded_a_refusal_is_given_back() {
    let (w, alice, record, api, recovery) = hold_race().await;
    let told = w.wallet.record_hold(&record, api).await;
    assert_eq!(told.unwrap_err().code(), "insufficient_balance");
    w.wallet.record_hold(&record, recovery).await.unwrap();
    w.rejected_and_free(alice, &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_cut_off_by_a_crash_after_the_other_path_recorded_a_refusal_is_given_back_at_start()
{
    let (mut w, alice, record, api, _recovery) = hold_race().await;
    let told = w.wallet.record_hold(&record, api).await;
    assert_eq!(told.unwrap_err().code(), "insufficient_balance");
    // The process dies before the recovery records (and so gives back) its hold: the core
    // holds a withdrawal whose record says "rejected". The next process finds it.
    assert_eq!(
        w.balance(alice, DEV_ETH).await.available,
        Amount(2 * ETH - ETH - ETH / 2000)
    );
    w.reopen().await;
    w.wallet.process_withdrawals().await.unwrap();
    w.rejected_and_free(alice, &record).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_seen_after_the_other_path_recorded_the_hold_is_no_refusal() {
    let (w, alice, record, api, recovery) = hold_race().await;
    w.wallet.record_hold(&record, recovery).await.unwrap();
    let told = w.wallet.record_hold(&record, api).await;
    assert!(told.is_ok(), "the user is not told of a refusal: {told:?}");
    // Held once: the amount and fee are locked, and the sender goes on to send it.
    assert_eq!(w.record(record.id).await.status, WithdrawalStatus::Held);
    let balance = w.balance(alice, DEV_ETH).await;
    assert_eq!(balance.locked, Amount(ETH + ETH / 2000));
    assert_eq!(balance.available, Amount(2 * ETH - ETH - ETH / 2000));
    w.send_eth(w.wallet.hot_address(), 5 * ETH).await;
    let report = w.wallet.process_withdrawals().await.unwrap();
    assert_eq!(report.signed, 1);
    assert!(w.record(record.id).await.nonce.is_some(), "signed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposit_the_core_refuses_ends_refused_and_the_others_are_still_credited() {
    let w = world(Transport::Http, |_| {}).await;
    let (alice, _) = w.user("alice@example.com", false).await;
    let (bob, _) = w.user("bob@example.com", false).await;
    // So much tUSD is on the platform that any further tUSD deposit would overflow it: the
    // core refuses the next one, deterministically, every time it is asked.
    w.credit(alice, DEV_TUSD, u128::MAX - 1, "test:alice-huge")
        .await;
    let (to_alice, to_bob) = (
        w.wallet.deposit_address(alice).await.unwrap(),
        w.wallet.deposit_address(bob).await.unwrap(),
    );
    w.mint_usd(to_alice, 5 * USD).await;
    w.send_eth(to_bob, ETH).await;
    w.wallet.sync().await.unwrap();
    w.mine(3).await;
    let report = w.wallet.sync().await.unwrap();
    assert_eq!(report.credited, 1, "bob's is credited: {report:?}");
    assert_eq!(w.balance(bob, DEV_ETH).await.available, Amount(ETH));
    let refused = &w.accounts.store().deposits_of(alice, 10).await.unwrap()[0];
    assert_eq!(refused.status, DepositStatus::Refused);
    assert_eq!(
        w.status(Subject::Deposit, refused.id).await,
        ["pending", "refused"]
    );
    // Final: later blocks neither retry nor re-log it.
    w.mine(2).await;
    assert_eq!(w.wallet.sync().await.unwrap().credited, 0);
    assert_eq!(
        w.accounts.store().deposits_of(alice, 10).await.unwrap()[0].status,
        DepositStatus::Refused
    );
}

async fn concurrent_requests_stay_within_the_daily_limit(db: Db) {
    let w = world_on(db, Transport::Http, |_| {}).await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let seed = seed.unwrap();
    let (_bob, _) = w.user("bob@example.com", false).await;
    w.credit(alice, DEV_ETH, 30 * ETH, "test:alice").await;
    let to = "0x00000000000000000000000000000000000000e4";
    // Level 0 may move 10 ETH a day. Three requests of 4 ETH sent at once, each with its own
    // valid code: the check and the record are one serialized step per user, so at most two
    // pass. (A code older than one already used is refused too, so where the database lets
    // the requests overtake each other, a refusal may name the code instead.)
    let requests: Vec<_> = (1..=3)
        .map(|step| {
            withdrawal(
                alice,
                "ETH",
                to,
                "4",
                code(&seed, step),
                &format!("c{step}"),
                step,
            )
        })
        .collect();
    let (a, b, c) = tokio::join!(
        w.wallet.request_withdrawal(&requests[0]),
        w.wallet.request_withdrawal(&requests[1]),
        w.wallet.request_withdrawal(&requests[2]),
    );
    let results = [a, b, c];
    let passed = results.iter().filter(|r| r.is_ok()).count() as u128;
    let limited = results
        .iter()
        .filter(|r| matches!(r, Err(e) if e.code() == "limit_exceeded"))
        .count();
    assert!(
        results.iter().all(|r| match r {
            Ok(_) => true,
            Err(e) => ["limit_exceeded", "invalid_two_factor_code"].contains(&e.code()),
        }),
        "{results:?}"
    );
    if matches!(db, Db::Sqlite) {
        // One connection, requests in order: exactly the third is over the limit.
        assert_eq!((passed, limited), (2, 1), "{results:?}");
    }
    assert!(passed <= 2, "{results:?}");
    let locked = w.balance(alice, DEV_ETH).await.locked;
    assert_eq!(locked, Amount(passed * (4 * ETH + ETH / 2000)));

    // Internal transfers count against the same limit.
    let left = 10 - 4 * passed;
    let transfer = |amount: u128, step: i64| TransferRequest {
        user_id: alice,
        to_email: "bob@example.com".into(),
        asset: "ETH".into(),
        amount: amount.to_string(),
        code: code(&seed, step),
        idempotency_key: format!("t{step}"),
        now: T0 + step * STEP,
    };
    let over = w.wallet.transfer(&transfer(left + 1, 4)).await.unwrap_err();
    assert_eq!(over.code(), "limit_exceeded", "{over}");
    w.wallet.transfer(&transfer(left, 5)).await.unwrap();
    let more = w.wallet.transfer(&transfer(1, 6)).await.unwrap_err();
    assert_eq!(more.code(), "limit_exceeded", "{more}");
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_withdrawals_cannot_pass_the_daily_limit_and_transfers_share_it() {
    concurrent_requests_stay_within_the_daily_limit(Db::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_withdrawals_cannot_pass_the_daily_limit_on_postgres_either() {
    concurrent_requests_stay_within_the_daily_limit(Db::Postgres).await;
}

/// A world whose node mines nothing until told, where the hot wallet's excess went to the
/// cold wallet at nonce 0 (recorded first) and alice's 1 ETH withdrawal was signed at nonce 1
/// and broadcast, both only in the node's mempool. Returns the cold wallet, the withdrawal's
/// destination and its id.
async fn cold_move_under_a_withdrawal() -> (World, Address, Address, i64) {
    let cold: Address = "0x00000000000000000000000000000000000c01d1"
        .parse()
        .unwrap();
    let w = world(Transport::Http, |c| {
        c.cold_address = Some(cold);
        let eth = c.assets.iter_mut().find(|a| a.symbol == "ETH").unwrap();
        eth.hot_max = Some(8 * ETH);
        eth.hot_keep = 5 * ETH;
    })
    .await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let seed = seed.unwrap();
    w.credit(alice, DEV_ETH, 2 * ETH, "test:alice").await;
    w.send_eth(w.wallet.hot_address(), 10 * ETH).await;
    w.automine(false).await;
    assert_eq!(w.wallet.sweep().await.unwrap().to_cold, 1);
    let to: Address = "0x00000000000000000000000000000000000000e5"
        .parse()
        .unwrap();
    let request = withdrawal(
        alice,
        "ETH",
        &to.to_checksum(None),
        "1",
        code(&seed, 1),
        "w",
        1,
    );
    let id = w.wallet.request_withdrawal(&request).await.unwrap().id;
    let report = w.wallet.process_withdrawals().await.unwrap();
    assert_eq!((report.signed, report.broadcast), (1, 1));
    assert_eq!(w.record(id).await.nonce, Some(1));
    (w, cold, to, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_move_to_cold_is_sent_again_so_later_withdrawals_are_not_frozen() {
    let (w, cold, to, id) = cold_move_under_a_withdrawal().await;
    let hot = w.wallet.hot_address();

    // The node drops the move to cold: nonce 0 is a hole under the withdrawal.
    let moves = w
        .accounts
        .store()
        .pending_hot_txs(w.config.chain_id as i64)
        .await
        .unwrap();
    assert_eq!((moves.len(), moves[0].nonce), (1, 0));
    let first = moves[0].tx_hash.clone();
    let _: serde_json::Value = w
        .provider()
        .raw_request("anvil_dropTransaction".into(), (first,))
        .await
        .unwrap();
    w.mine(1).await;
    assert_eq!(w.provider().get_transaction_count(hot).await.unwrap(), 0);

    // The recorded move is sent again (not a second one): both nonces go through.
    let report = w.wallet.sweep().await.unwrap();
    assert_eq!(
        report.to_cold, 0,
        "no second move while the first is on its way"
    );
    for _ in 0..3 {
        w.mine(3).await;
        w.wallet.process_withdrawals().await.unwrap();
    }
    assert_eq!(w.record(id).await.status, WithdrawalStatus::Settled);
    assert_eq!(w.eth_of(cold).await, U256::from(5 * ETH));
    assert_eq!(w.eth_of(to).await, U256::from(ETH));
    assert_eq!(w.wallet.follow_hot_txs().await.unwrap(), 0);
}

impl World {
    /// Restarts the node as an operator would: its chain (blocks and state) survives, its
    /// mempool does not. Same port, so the wallet's HTTP connection carries on.
    async fn restart_node(&mut self) {
        let state: String = self
            .provider()
            .raw_request("anvil_dumpState".into(), ())
            .await
            .unwrap();
        let port = self._anvil.port();
        let fresh = Anvil::at(coss_contracts::anvil_binary().unwrap()).port(port);
        // The old node goes first: its port is the new node's.
        self._anvil.child_mut().kill().unwrap();
        let _ = self._anvil.child_mut().wait();
        self._anvil = fresh.keep_stdout().try_spawn().unwrap();
        let loaded: bool = self
            .provider()
            .raw_request("anvil_loadState".into(), (state,))
            .await
            .unwrap();
        assert!(loaded);
        if let Some(mut stdout) = self._anvil.child_mut().stdout.take() {
            std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_restart_that_loses_the_mempool_loses_no_recorded_transaction() {
    let (mut w, cold, to, id) = cold_move_under_a_withdrawal().await;
    let hot = w.wallet.hot_address();
    w.restart_node().await;
    assert_eq!(w.provider().get_transaction_count(hot).await.unwrap(), 0);

    // Both are sent again from their records, in nonce order, and nothing is sent twice.
    for _ in 0..4 {
        w.wallet.sweep().await.unwrap();
        w.wallet.process_withdrawals().await.unwrap();
        w.mine(3).await;
    }
    assert_eq!(w.record(id).await.status, WithdrawalStatus::Settled);
    assert_eq!(w.eth_of(cold).await, U256::from(5 * ETH));
    assert_eq!(w.eth_of(to).await, U256::from(ETH));
    assert_eq!(w.provider().get_transaction_count(hot).await.unwrap(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_move_to_cold_is_replaced_with_a_higher_fee_and_lands_once() {
    let cold: Address = "0x00000000000000000000000000000000000c01d2"
        .parse()
        .unwrap();
    let w = world(Transport::Http, |c| {
        c.cold_address = Some(cold);
        c.stuck_after_ms = 60_000;
        let eth = c.assets.iter_mut().find(|a| a.symbol == "ETH").unwrap();
        eth.hot_max = Some(8 * ETH);
        eth.hot_keep = 5 * ETH;
    })
    .await;
    w.send_eth(w.wallet.hot_address(), 10 * ETH).await;
    w.automine(false).await;
    assert_eq!(w.wallet.sweep().await.unwrap().to_cold, 1);
    let chain = w.config.chain_id as i64;
    let first = w.accounts.store().pending_hot_txs(chain).await.unwrap();
    assert_eq!(first.len(), 1);

    // Not stuck yet: sent again as it is.
    w.wallet.sweep().await.unwrap();
    assert_eq!(
        w.accounts
            .store()
            .pending_hot_txs(chain)
            .await
            .unwrap()
            .len(),
        1
    );
    // Stuck: replaced at the same nonce with a higher fee, recorded before it is sent.
    w.clock.advance(w.config.stuck_after_ms + 1);
    assert_eq!(w.wallet.sweep().await.unwrap().to_cold, 0, "no second move");
    let both = w.accounts.store().pending_hot_txs(chain).await.unwrap();
    assert_eq!(both.len(), 2);
    assert_eq!(both[0].nonce, both[1].nonce);
    let fee = |raw: &[u8]| {
        use alloy::consensus::{Transaction, TxEnvelope};
        use alloy::eips::eip2718::Decodable2718;
        TxEnvelope::decode_2718(&mut &raw[..])
            .unwrap()
            .max_fee_per_gas()
    };
    let (old, new) = (fee(&first[0].raw), fee(&both[1].raw));
    assert!(new >= old + old / 8, "{old} → {new}");

    // Mined once: the nonce is done, the cold wallet has the excess once.
    w.mine(1).await;
    assert_eq!(w.wallet.follow_hot_txs().await.unwrap(), 0);
    assert_eq!(w.eth_of(cold).await, U256::from(5 * ETH));
    assert!(
        w.accounts
            .store()
            .pending_hot_txs(chain)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_withdrawal_no_node_has_yet_keeps_its_coins_from_later_sends() {
    let cold: Address = "0x00000000000000000000000000000000000c01d3"
        .parse()
        .unwrap();
    let w = world(Transport::Http, |c| {
        c.cold_address = Some(cold);
        let eth = c.assets.iter_mut().find(|a| a.symbol == "ETH").unwrap();
        eth.hot_max = Some(8 * ETH);
        eth.hot_keep = 5 * ETH;
        // Large withdrawals here need no operators (they are tested in the server's tests).
        eth.review_above = vec![100 * ETH];
    })
    .await;
    let (alice, seed) = w.user("alice@example.com", true).await;
    let seed = seed.unwrap();
    w.credit(alice, DEV_ETH, 20 * ETH, "test:alice").await;
    let hot = w.wallet.hot_address();
    w.send_eth(hot, 10 * ETH).await;
    let to: Address = "0x00000000000000000000000000000000000000e6"
        .parse()
        .unwrap();
    let to = to.to_checksum(None);
    let first = w
        .wallet
        .request_withdrawal(&withdrawal(alice, "ETH", &to, "4", code(&seed, 1), "a", 1))
        .await
        .unwrap()
        .id;
    // Signed and stored, not yet taken by any node (the node was down, or refused it).
    assert_eq!(w.wallet.sign_held().await.unwrap(), 1);
    assert_eq!(w.record(first).await.status, WithdrawalStatus::Signed);

    // Its 4 ETH are promised: the hot wallet's 10 ETH are not 2 ETH over its 8 ETH maximum,
    // and a second withdrawal of 6 ETH waits instead of taking them.
    assert_eq!(w.wallet.sweep().await.unwrap().to_cold, 0);
    let second = w
        .wallet
        .request_withdrawal(&withdrawal(alice, "ETH", &to, "6", code(&seed, 2), "b", 2))
        .await
        .unwrap()
        .id;
    assert_eq!(w.wallet.sign_held().await.unwrap(), 0);
    assert_eq!(w.record(second).await.status, WithdrawalStatus::Held);

    // The first goes out and settles; the second waits for a refill, then goes too.
    w.wallet.process_withdrawals().await.unwrap();
    w.mine(3).await;
    w.wallet.process_withdrawals().await.unwrap();
    assert_eq!(w.record(first).await.status, WithdrawalStatus::Settled);
    assert_eq!(w.record(second).await.status, WithdrawalStatus::Held);
    w.send_eth(hot, 2 * ETH).await;
    assert_eq!(w.wallet.process_withdrawals().await.unwrap().signed, 1);
    w.mine(3).await;
    w.wallet.process_withdrawals().await.unwrap();
    assert_eq!(w.record(second).await.status, WithdrawalStatus::Settled);
    assert_eq!(w.eth_of(to.parse().unwrap()).await, U256::from(10 * ETH));
    assert_eq!(w.eth_of(cold).await, U256::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_funds_are_refused_on_a_chain_that_is_not_the_platforms_own() {
    let w = world(Transport::Http, |_| {}).await;
    let (alice, _) = w.user("alice@example.com", false).await;
    assert!(!w.wallet.test_funds_offered());
    let error = w.wallet.test_funds(alice).await.unwrap_err();
    assert_eq!(error.code(), "test_funds_unavailable");
    let answer = coss_http::ApiError::from(error);
    assert_eq!(answer.status(), axum::http::StatusCode::NOT_FOUND);
    assert!(
        w.wallet
            .store()
            .deposit_address(i64::try_from(w.config.chain_id).unwrap(), alice)
            .await
            .unwrap()
            .is_none(),
        "a refusal makes no deposit address"
    );
}
