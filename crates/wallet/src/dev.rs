//! Test funds on the platform's own local chain: "get test funds" in the web app and
//! `coss dev fund --email E` send ETH and tUSD from anvil's development account to the user's
//! deposit address, on chain, so that what arrives is a real deposit the watcher sees and the
//! exchange core credits after its confirmations. It exists only when `coss up` runs its own
//! anvil ([`crate::Wallet::offer_test_funds`]); on any other chain the request is refused.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use alloy::primitives::{Address, U256};
use coss_store::Store;
use coss_types::UserId;
use serde::Serialize;

use crate::{Wallet, WalletError, hd, hex_of};

/// ETH sent each time (wei): 10 ETH.
pub const TEST_ETH_WEI: u128 = 10 * 10u128.pow(18);
/// tUSD sent each time (smallest units, 6 decimals): 10,000 tUSD.
pub const TEST_TUSD_UNITS: u128 = 10_000 * 10u128.pow(6);
/// One request per account per minute: each costs two transactions on the node.
const EVERY_MS: u64 = 60_000;
/// Accounts remembered at most (the oldest are forgotten first).
const REMEMBERED: usize = 10_000;

/// What was sent.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TestFundsSent {
    /// The deposit address that receives them.
    pub address: String,
    /// ETH sent, whole units.
    pub eth: String,
    /// tUSD sent, whole units.
    pub tusd: String,
    /// The ETH transfer.
    pub eth_tx: String,
    /// The tUSD mint.
    pub tusd_tx: String,
}

/// The local chain's test funds, as the platform offers them.
#[derive(Debug)]
pub(crate) struct Faucet {
    dir: PathBuf,
    last: Mutex<HashMap<UserId, u64>>,
}

/// Sends the test amounts to `address` on the local chain in `chain_dir`.
///
/// # Errors
/// [`WalletError::Chain`] when no local chain runs there or the node fails.
pub async fn send_test_funds(
    chain_dir: &Path,
    address: Address,
) -> Result<TestFundsSent, WalletError> {
    let (eth_tx, tusd_tx) = coss_contracts::send_test_funds(
        chain_dir,
        address,
        U256::from(TEST_ETH_WEI),
        U256::from(TEST_TUSD_UNITS),
    )
    .await
    .map_err(|e| WalletError::Chain(e.to_string()))?;
    tracing::info!(%address, %eth_tx, %tusd_tx, "local chain: test funds sent");
    Ok(TestFundsSent {
        address: hex_of(address),
        eth: "10".to_owned(),
        tusd: "10000".to_owned(),
        eth_tx: hex_of(eth_tx),
        tusd_tx: hex_of(tusd_tx),
    })
}

/// A user's deposit address on `chain_id`, from the stored extended public key alone (no
/// seed), recorded so the running watcher picks it up at its next pass: for commands that run
/// beside a platform (`coss dev fund`).
///
/// # Errors
/// [`WalletError::Config`] when the chain has no wallet yet (start `coss up` once).
pub async fn recorded_deposit_address(
    store: &Store,
    chain_id: u64,
    user_id: UserId,
    now_ms: i64,
) -> Result<Address, WalletError> {
    let chain = i64::try_from(chain_id).unwrap_or(i64::MAX);
    let record = store.wallet_seed(chain).await?.ok_or_else(|| {
        WalletError::Config(format!(
            "chain {chain_id} has no wallet yet: start `coss up` once"
        ))
    })?;
    let address = hd::deposit_address(&hd::parse_xpub(&record.xpub)?, user_id)?;
    crate::record_deposit_address(store, chain, user_id, address, now_ms).await?;
    Ok(address)
}

impl Wallet {
    /// Offers test funds from the local chain whose files are in `chain_dir` (the platform's
    /// own anvil). Once set, it stays.
    pub fn offer_test_funds(&self, chain_dir: PathBuf) {
        let _ = self.inner.faucet.set(Faucet {
            dir: chain_dir,
            last: Mutex::default(),
        });
    }

    /// Whether test funds are offered.
    #[must_use]
    pub fn test_funds_offered(&self) -> bool {
        self.inner.faucet.get().is_some()
    }

    /// Sends test funds to the user's deposit address, at most once a minute per account.
    ///
    /// # Errors
    /// [`WalletError::NoTestFunds`] on a chain that is not the platform's own,
    /// [`WalletError::TestFundsTooSoon`] within a minute of the last, the node's errors.
    pub async fn test_funds(&self, user_id: UserId) -> Result<TestFundsSent, WalletError> {
        let faucet = self.inner.faucet.get().ok_or(WalletError::NoTestFunds)?;
        let now = self.inner.clock.now().0;
        {
            let mut last = faucet
                .last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(at) = last.get(&user_id)
                && now < at + EVERY_MS
            {
                return Err(WalletError::TestFundsTooSoon {
                    retry_after_s: (at + EVERY_MS - now).div_ceil(1000),
                });
            }
            if last.len() >= REMEMBERED {
                last.retain(|_, at| now < *at + EVERY_MS);
            }
            last.insert(user_id, now);
        }
        let address = self.deposit_address(user_id).await?;
        send_test_funds(&faucet.dir, address).await
    }
}
