//! The COSS contracts from Rust: typed bindings that alloy's `sol!` generates from the ABI and
//! bytecode committed in `contracts/artifacts` (CI fails if those differ from a fresh compile),
//! a provider for any node, key loading (an encrypted keystore, or an owner-only hex key file),
//! the deployment of the whole set (`CossDeployment`: token, sale, locks, allocation table) and
//! local anvils: a fresh one per test, and the embedded platform's own chain (`local`: started
//! or adopted in a data directory, its contracts deployed once, its state kept across restarts). Talking to the chain is I/O at the edge:
//! nothing here moves a balance of record.

mod bindings;
mod deploy;
mod error;
mod keys;
mod local;
mod node;

pub use bindings::{CossDeployment, CossSale, CossToken, TestUsd, TokenLock};
pub use deploy::{
    Beneficiaries, DeployParams, Deployment, Window, chain_time, deploy, sale_windows,
};
pub use error::ChainError;
pub use keys::load_signer;
pub use local::{
    LOCAL_CHAIN_ID, LocalChain, LocalDeployment, LocalNode, fund_hot_wallet, local_chain,
    send_test_funds,
};
pub use node::{Chain, RECEIPT_TIMEOUT, anvil_binary, connect, foundry_tool, receipt, spawn_anvil};

/// One COSS in its smallest unit (the token has 8 decimals).
pub const COSS: u128 = 100_000_000;
/// One ether in wei.
pub const ETHER: u128 = 1_000_000_000_000_000_000;

/// A COSS username as the contracts store it (`bytes32`, left-aligned like Solidity's
/// `bytes32("name")`), or `None` if it is empty or longer than 32 bytes.
pub fn username_to_bytes32(name: &str) -> Option<alloy::primitives::B256> {
    let bytes = name.as_bytes();
    (!bytes.is_empty() && bytes.len() <= 32)
        .then(|| alloy::primitives::B256::right_padding_from(bytes))
}

/// The username in a `bytes32` (trailing zero bytes dropped), or `None` for zero (no username)
/// or bytes that are not UTF-8 or have a zero inside.
pub fn username_from_bytes32(word: alloy::primitives::B256) -> Option<String> {
    let end = word.iter().rposition(|b| *b != 0)? + 1;
    let bytes = &word[..end];
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes.to_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_round_trip_through_bytes32_and_zero_is_none() {
        let word = username_to_bytes32("alice").unwrap();
        assert_eq!(&word[..5], b"alice");
        assert!(word[5..].iter().all(|b| *b == 0));
        assert_eq!(username_from_bytes32(word).as_deref(), Some("alice"));
        assert_eq!(username_from_bytes32(alloy::primitives::B256::ZERO), None);
        assert_eq!(username_to_bytes32(""), None);
        assert_eq!(username_to_bytes32(&"x".repeat(33)), None);
        assert!(username_to_bytes32(&"x".repeat(32)).is_some());
    }
}
