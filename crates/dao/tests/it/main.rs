//! The DAO runner against the real engine (journal on disk), a real SQLite database and, for
//! the on-chain rules, a real anvil with the COSS contracts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain;
mod crash;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use coss_clock::ManualClock;

use coss_core::{Command, FEES_HOLDERS};
use coss_dao::{Dao, DaoConfig};
use coss_engine::{Engine, EngineConfig, EngineHandle};
use coss_store::{EmailToken, Mail, Purpose, Store};
use coss_types::{AccountId, Amount, AssetId, RequestId, UserId};

pub const ETH: AssetId = AssetId(1);
pub const COSS: AssetId = AssetId(2);
pub const UNIT: u128 = 100_000_000;

/// An engine on `dir` reading `clock`, with ETH and COSS listed (once).
pub async fn engine(dir: &Path, clock: &ManualClock) -> (Engine, EngineHandle) {
    let mut config = EngineConfig::new(dir);
    config.clock = clock.clock();
    let (engine, recovery) = Engine::start(config).unwrap();
    let handle = engine.handle();
    if recovery.commands == 0 {
        for (asset, symbol, decimals) in [(ETH, "ETH", 18), (COSS, "COSS", 8)] {
            let list = Command::ListAsset {
                asset,
                symbol: symbol.into(),
                decimals,
                fees_shared: true,
                withdrawal_fee: Amount(0),
            };
            submit(&handle, list).await;
        }
    }
    (engine, handle)
}

pub use coss_testkit::{deposit, submit};

static NEXT_REQUEST: AtomicU64 = AtomicU64::new(1);

/// Fills the holders' fee account with `amount` of `asset` (a donation stands in for fees).
pub async fn pool(handle: &EngineHandle, asset: AssetId, amount: u128) {
    let donor = AccountId(999_999);
    deposit(handle, donor, asset, amount).await;
    submit(
        handle,
        Command::Transfer {
            request: RequestId(u128::from(NEXT_REQUEST.fetch_add(1, Ordering::Relaxed))),
            from: donor,
            to: FEES_HOLDERS,
            asset,
            amount: Amount(amount),
        },
    )
    .await;
}

pub async fn user(store: &Store, email: &str) -> UserId {
    let token = EmailToken {
        hash: email.as_bytes().to_vec(),
        purpose: Purpose::VerifyEmail,
        expires_at: i64::MAX,
    };
    let mail = Mail {
        recipient: email.into(),
        template: "verify".into(),
        payload: "{}".into(),
    };
    store
        .create_user(email, "x", 0, &token, &mail)
        .await
        .unwrap()
        .id
}

/// A DAO reading `clock` whose next close is `close_ms` (set directly in the core, so a test
/// need not wait for a Sunday), paying `chunk` holders per command.
pub async fn dao_closing_at(
    handle: &EngineHandle,
    store: &Store,
    chain: Option<coss_dao::ChainSource>,
    close_ms: u64,
    chunk: u32,
    clock: &ManualClock,
) -> Dao {
    submit(
        handle,
        Command::SetDaoSchedule(coss_core::DaoSchedule {
            coss: COSS,
            next_close_ms: close_ms,
            period_ms: coss_dao::WEEK_MS,
            min_holding: Amount(UNIT),
        }),
    )
    .await;
    let mut config = DaoConfig::new(COSS);
    config.pay_chunk = chunk;
    Dao::new(handle.clone(), store.clone(), chain, config, clock.clock())
}

pub async fn available(handle: &EngineHandle, account: AccountId, asset: AssetId) -> u128 {
    handle
        .read_async(move |ex| ex.balance(account, asset).available.0)
        .await
        .unwrap()
}
