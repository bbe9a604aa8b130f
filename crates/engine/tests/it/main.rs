//! The engine service through its public API, on real files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod feed;
mod recovery;
mod service;

use coss_core::Command;
use coss_types::{AccountId, Amount, AssetId};

pub fn list_btc() -> Command {
    Command::ListAsset {
        asset: AssetId(1),
        symbol: "BTC".into(),
        decimals: 8,
        fees_shared: true,
        withdrawal_fee: Amount(1_000),
    }
}

pub fn deposit(n: u64) -> Command {
    Command::Deposit {
        account: AccountId(1_000 + n % 7),
        asset: AssetId(1),
        amount: Amount(u128::from(1 + n)),
        reference: format!("tx-{n}"),
    }
}
