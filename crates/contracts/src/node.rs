//! Reaching a node: a provider for a URL with the sender it acts as, and a local anvil.

use std::path::{Path, PathBuf};

use alloy::network::EthereumWallet;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::Address;
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
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
            let provider = ProviderBuilder::new()
                .wallet(EthereumWallet::from(signer))
                .connect_http(parsed)
                .erased();
            (provider, sender)
        }
        None => {
            let provider = ProviderBuilder::new().connect_http(parsed).erased();
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

/// The anvil binary: `$COSS_ANVIL`, else the one the pinned npm package installed in this
/// source tree's `contracts/node_modules`, else `anvil` on the PATH.
pub fn anvil_binary() -> Result<PathBuf, ChainError> {
    if let Some(path) = std::env::var_os("COSS_ANVIL") {
        return Ok(PathBuf::from(path));
    }
    let packages =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../contracts/node_modules/@foundry-rs");
    if let Ok(entries) = std::fs::read_dir(&packages) {
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("anvil-"))
            .map(|e| e.path().join("bin/anvil"))
            .filter(|p| p.is_file())
            .collect();
        found.sort();
        if let Some(path) = found.into_iter().next() {
            return Ok(path);
        }
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("anvil"))
        .find(|p| p.is_file());
    on_path.ok_or(ChainError::NoAnvil)
}

/// Starts a fresh anvil on a free loopback port; it is killed when the instance is dropped.
pub fn spawn_anvil() -> Result<AnvilInstance, ChainError> {
    Ok(Anvil::at(anvil_binary()?).try_spawn()?)
}
