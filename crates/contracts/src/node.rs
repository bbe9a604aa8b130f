//! Reaching a node: a provider for a URL with the sender it acts as, and a local anvil.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::network::Ethereum;
use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::Address;
use alloy::providers::Identity;
use alloy::providers::fillers::{
    ChainIdFiller, GasFiller, JoinFill, NonceFiller, SimpleNonceManager,
};
use alloy::providers::{DynProvider, PendingTransactionBuilder, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;

type Fillers = JoinFill<
    JoinFill<JoinFill<Identity, GasFiller>, NonceFiller<SimpleNonceManager>>,
    ChainIdFiller,
>;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;

use crate::ChainError;

/// A connection to one node and the account transactions are sent from.
#[derive(Debug, Clone)]
pub struct Chain {
    /// Fills nonce, gas and chain id; signs locally when a key was given.
    pub provider: DynProvider,
    /// The account transactions come from: the key's address, or the node's first unlocked
    /// account (a development node's) when no key was given.
    pub sender: Address,
    /// The node's chain id.
    pub chain_id: u64,
}

/// Connects to the node at `url` (http or https). With a signer, transactions are signed here
/// and sent raw; without one they are sent from the node's first unlocked account, which only
/// development nodes such as anvil have.
pub async fn connect(url: &str, signer: Option<PrivateKeySigner>) -> Result<Chain, ChainError> {
    // One TLS stack: rustls with ring, installed once per process (a second call is a no-op).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let parsed: Url = url
        .parse()
        .map_err(|_| ChainError::UnsupportedUrl(url.to_owned()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ChainError::UnsupportedUrl(url.to_owned()));
    }
    let (provider, sender) = match signer {
        Some(signer) => {
            let sender = signer.address();
            let provider = builder()
                .wallet(EthereumWallet::from(signer))
                .connect_http(parsed)
                .erased();
            (provider, sender)
        }
        None => {
            let provider = builder().connect_http(parsed).erased();
            let accounts = provider.get_accounts().await?;
            let sender = accounts.first().copied().ok_or(ChainError::NoAccount)?;
            (provider, sender)
        }
    };
    let chain_id = provider.get_chain_id().await?;
    Ok(Chain {
        provider,
        sender,
        chain_id,
    })
}

/// Gas estimation, chain id, and a nonce asked of the node for every transaction. alloy's
/// default nonce manager counts locally and is not rolled back when a transaction fails to be
/// filled (a revert found by gas estimation): the next one then leaves a gap and is never mined.
/// The platform's hot wallet gets its own nonce manager with the wallets.
fn builder() -> ProviderBuilder<Identity, Fillers, Ethereum> {
    ProviderBuilder::new()
        .disable_recommended_fillers()
        .with_gas_estimation()
        .with_simple_nonce_management()
        .fetch_chain_id()
}

/// How long [`receipt`] waits for a sent transaction to be mined.
pub const RECEIPT_TIMEOUT: Duration = Duration::from_secs(120);

/// Waits until `pending` is mined and returns its receipt (a reverted transaction's too:
/// check `status()`), polling the node for it; gives up after [`RECEIPT_TIMEOUT`] rather than
/// waiting forever as alloy's `get_receipt` does for a transaction that is never mined.
pub async fn receipt(
    pending: PendingTransactionBuilder<Ethereum>,
) -> Result<TransactionReceipt, ChainError> {
    let tx = *pending.tx_hash();
    let provider = pending.provider();
    let deadline = tokio::time::Instant::now() + RECEIPT_TIMEOUT;
    let mut pause = Duration::from_millis(20);
    loop {
        if let Some(receipt) = provider.get_transaction_receipt(tx).await? {
            return Ok(receipt);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(ChainError::NotMined(tx));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The anvil binary (see [`foundry_tool`]).
pub fn anvil_binary() -> Result<PathBuf, ChainError> {
    foundry_tool("anvil")
}

/// A Foundry tool (`anvil`, `cast`, `forge`): `$COSS_<NAME>` (e.g. `COSS_ANVIL`), else the
/// binary the pinned npm package installed in this source tree's `contracts/node_modules`,
/// else `<name>` on the PATH.
pub fn foundry_tool(name: &str) -> Result<PathBuf, ChainError> {
    let missing = || ChainError::NoTool(name.to_owned());
    if let Some(path) = std::env::var_os(format!("COSS_{}", name.to_uppercase())) {
        return Ok(PathBuf::from(path));
    }
    let packages =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/node_modules/@foundry-rs");
    if let Ok(entries) = std::fs::read_dir(&packages) {
        let prefix = format!("{name}-");
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .map(|e| e.path().join("bin").join(name))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        if let Some(path) = found.into_iter().next() {
            return Ok(path);
        }
    }
    let paths = std::env::var_os("PATH").ok_or_else(missing)?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(missing)
}

/// Starts a fresh anvil on a free loopback port; it is stopped when the instance is dropped.
pub fn spawn_anvil() -> Result<AnvilInstance, ChainError> {
    let mut anvil = Anvil::at(anvil_binary()?).keep_stdout().try_spawn()?;
    // anvil logs every request to stdout; alloy reads only the start-up line and would close
    // the pipe, failing anvil's writes. Drain it instead until anvil exits.
    if let Some(mut stdout) = anvil.child_mut().stdout.take() {
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    }
    Ok(anvil)
}
