//! Keys from one HD seed per chain (BIP-32, BIP-44 paths for Ethereum, coin type 60).
//! Deposit addresses are `m/44'/60'/0'/0/{user id}`: the watcher derives and recognises them
//! from the account's extended public key alone. The hot wallet is `m/44'/60'/1'/0/0`, a
//! hardened branch of its own, so a leaked deposit key together with the xpub reveals the
//! deposit branch but never the hot wallet. The seed is 32 random bytes, stored sealed with
//! the server key (ChaCha20-Poly1305) and held only in zeroizing memory.

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use bip32::{ChildNumber, DerivationPath, Prefix, XPrv, XPub};
use coss_types::UserId;
use zeroize::Zeroizing;

use crate::WalletError;

/// The deposit account (its xpub is what the watcher needs).
pub const DEPOSIT_ACCOUNT_PATH: &str = "m/44'/60'/0'";
/// The hot wallet's key.
pub const HOT_WALLET_PATH: &str = "m/44'/60'/1'/0/0";

fn path(text: &str) -> Result<DerivationPath, WalletError> {
    text.parse()
        .map_err(|_| WalletError::Keys("invalid derivation path"))
}

/// A new random seed.
pub fn new_seed() -> Result<Zeroizing<Vec<u8>>, WalletError> {
    let bytes =
        coss_identity::random_bytes::<32>().map_err(|_| WalletError::Keys("no randomness"))?;
    Ok(Zeroizing::new(bytes.to_vec()))
}

/// The deposit account's extended public key, as text (`xpub…`).
pub fn deposit_xpub(seed: &[u8]) -> Result<String, WalletError> {
    let account = XPrv::derive_from_path(seed, &path(DEPOSIT_ACCOUNT_PATH)?)
        .map_err(|_| WalletError::Keys("cannot derive the deposit account"))?;
    Ok(account.public_key().to_string(Prefix::XPUB))
}

/// Parses an extended public key.
pub fn parse_xpub(text: &str) -> Result<XPub, WalletError> {
    text.parse()
        .map_err(|_| WalletError::Keys("invalid extended public key"))
}

fn child(user_id: UserId) -> Result<u32, WalletError> {
    u32::try_from(user_id.0)
        .ok()
        .filter(|i| *i < (1 << 31))
        .ok_or(WalletError::Keys("user id out of the derivation range"))
}

/// The deposit address of a user, from the deposit account's xpub.
pub fn deposit_address(xpub: &XPub, user_id: UserId) -> Result<Address, WalletError> {
    let index = child(user_id)?;
    let external = ChildNumber::new(0, false)
        .and_then(|zero| xpub.derive_child(zero))
        .and_then(|k| k.derive_child(ChildNumber::new(index, false)?))
        .map_err(|_| WalletError::Keys("cannot derive a deposit address"))?;
    Ok(Address::from_public_key(external.public_key()))
}

/// The receiving address of a gateway invoice, from the deposit account's xpub: the
/// account's second (internal) branch, `m/44'/60'/0'/1/{invoice id}`, so invoice addresses
/// never meet users' deposit addresses.
pub fn invoice_address(xpub: &XPub, invoice_id: i64) -> Result<Address, WalletError> {
    let index = invoice_child(invoice_id)?;
    let internal = ChildNumber::new(1, false)
        .and_then(|one| xpub.derive_child(one))
        .and_then(|k| k.derive_child(ChildNumber::new(index, false)?))
        .map_err(|_| WalletError::Keys("cannot derive an invoice address"))?;
    Ok(Address::from_public_key(internal.public_key()))
}

/// The key of an invoice's receiving address (for sweeping it).
pub fn invoice_signer(seed: &[u8], invoice_id: i64) -> Result<PrivateKeySigner, WalletError> {
    let full = format!("{DEPOSIT_ACCOUNT_PATH}/1/{}", invoice_child(invoice_id)?);
    signer_at(seed, &full)
}

fn invoice_child(invoice_id: i64) -> Result<u32, WalletError> {
    u32::try_from(invoice_id)
        .ok()
        .filter(|i| *i < (1 << 31))
        .ok_or(WalletError::Keys("invoice id out of the derivation range"))
}

/// The key of a user's deposit address (for sweeping it).
pub fn deposit_signer(seed: &[u8], user_id: UserId) -> Result<PrivateKeySigner, WalletError> {
    let full = format!("{DEPOSIT_ACCOUNT_PATH}/0/{}", child(user_id)?);
    signer_at(seed, &full)
}

/// The hot wallet's key.
pub fn hot_signer(seed: &[u8]) -> Result<PrivateKeySigner, WalletError> {
    signer_at(seed, HOT_WALLET_PATH)
}

fn signer_at(seed: &[u8], at: &str) -> Result<PrivateKeySigner, WalletError> {
    let key = XPrv::derive_from_path(seed, &path(at)?)
        .map_err(|_| WalletError::Keys("cannot derive a key"))?;
    Ok(PrivateKeySigner::from_signing_key(
        key.private_key().clone(),
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_xpub_alone_gives_the_same_addresses_as_the_private_keys() {
        let seed = new_seed().unwrap();
        let xpub = parse_xpub(&deposit_xpub(&seed).unwrap()).unwrap();
        for user in [1, 2, 1000, 2_147_483_647].map(UserId) {
            assert_eq!(
                deposit_address(&xpub, user).unwrap(),
                deposit_signer(&seed, user).unwrap().address()
            );
        }
        assert_ne!(
            deposit_address(&xpub, UserId(1)).unwrap(),
            deposit_address(&xpub, UserId(2)).unwrap()
        );
        assert!(deposit_address(&xpub, UserId(1 << 31)).is_err());
        for invoice in [1, 7, 2_147_483_647] {
            let address = invoice_address(&xpub, invoice).unwrap();
            assert_eq!(address, invoice_signer(&seed, invoice).unwrap().address());
            assert_ne!(address, deposit_address(&xpub, UserId(invoice)).unwrap());
        }
        assert!(invoice_address(&xpub, 1 << 31).is_err());
        assert!(deposit_address(&xpub, UserId(-1)).is_err());
    }

    #[test]
    fn the_standard_test_vector_derives_the_known_address() {
        // BIP-39 "abandon ×11 about" with an empty passphrase: its m/44'/60'/0'/0/0 is the
        // address every Ethereum wallet shows for it.
        let seed = hex_seed(
            "5eb00bbddcf069084889a8ab9155568165f5c453ccb85e70811aaed6f6da5fc19a5ac40b389cd370d086206dec8aa6c43daea6690f20ad3d8d48b2d2ce9e38e4",
        );
        let xpub = parse_xpub(&deposit_xpub(&seed).unwrap()).unwrap();
        assert_eq!(
            deposit_address(&xpub, UserId(0)).unwrap().to_checksum(None),
            "0x9858EfFD232B4033E47d90003D41EC34EcaEda94"
        );
        assert_ne!(
            hot_signer(&seed).unwrap().address(),
            deposit_address(&xpub, UserId(0)).unwrap()
        );
    }

    fn hex_seed(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
