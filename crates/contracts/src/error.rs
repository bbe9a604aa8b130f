use std::path::PathBuf;

use alloy::primitives::TxHash;

/// What can go wrong talking to a node or loading a key. Messages never contain key material
/// or passwords; `code()` is stable for callers and the CLI.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The RPC URL is not one this build can reach.
    #[error("unsupported RPC URL {0:?}: use http:// or https://")]
    UnsupportedUrl(String),
    /// The node answered with an error or could not be reached.
    #[error("RPC: {0}")]
    Rpc(#[from] alloy::transports::TransportError),
    /// A contract call or transaction failed (a revert carries its decoded reason if known).
    #[error("contract: {0}")]
    Contract(#[from] alloy::contract::Error),
    /// A sent transaction could not be followed to its receipt.
    #[error("transaction: {0}")]
    Pending(#[from] alloy::providers::PendingTransactionError),
    /// The transaction was not mined in time.
    #[error("transaction {0} was not mined within the timeout")]
    NotMined(TxHash),
    /// The transaction was mined but reverted.
    #[error("transaction {0} reverted")]
    Reverted(TxHash),
    /// A deployment receipt named no contract address.
    #[error("transaction {0} created no contract")]
    NoContract(TxHash),
    /// No key was given and the node offers no unlocked account to send from.
    #[error("the node has no unlocked account to send from: pass a key file")]
    NoAccount,
    /// The key file could not be used (the reason never quotes its contents).
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// Deployment parameters that the contracts would reject.
    #[error("invalid deployment parameters: {0}")]
    Params(String),
    /// A Foundry tool was not found (set COSS_<TOOL> or install the contracts toolchain).
    #[error("{0} not found: set COSS_{upper} or run `npm ci` in contracts/", upper = .0.to_uppercase())]
    NoTool(String),
    /// anvil did not start.
    #[error("anvil: {0}")]
    Anvil(#[from] alloy::node_bindings::NodeError),
    /// A file of the local chain could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The local chain's records (`anvil.json`, `deployment.json`) are unreadable.
    #[error("local chain records: {0}")]
    LocalState(String),
}

impl ChainError {
    /// A stable, machine-readable code for this kind of error.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedUrl(_) => "chain.unsupported_url",
            Self::Rpc(_) => "chain.rpc",
            Self::Contract(_) => "chain.contract",
            Self::Pending(_) => "chain.pending",
            Self::NotMined(_) => "chain.not_mined",
            Self::Reverted(_) => "chain.reverted",
            Self::NoContract(_) => "chain.no_contract",
            Self::NoAccount => "chain.no_account",
            Self::KeyFile { .. } => "chain.key_file",
            Self::Params(_) => "chain.params",
            Self::NoTool(_) => "chain.no_tool",
            Self::Anvil(_) => "chain.anvil",
            Self::Io { .. } => "chain.io",
            Self::LocalState(_) => "chain.local_state",
        }
    }
}
