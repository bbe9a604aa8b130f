//! Loading a signing key from a file without ever echoing it.

use std::path::Path;

use alloy::primitives::B256;
use alloy::signers::local::PrivateKeySigner;

use crate::ChainError;

/// Loads the signing key in `path`: either an encrypted JSON keystore (Web3 Secret Storage, as
/// `cast wallet new` and geth write; needs `password`) or a file holding one hex private key,
/// which is refused unless only its owner can read it. Errors name the file and the reason,
/// never its contents or the password.
pub fn load_signer(path: &Path, password: Option<&str>) -> Result<PrivateKeySigner, ChainError> {
    let refuse = |reason: &str| ChainError::KeyFile {
        path: path.to_owned(),
        reason: reason.to_owned(),
    };
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
        ChainError::KeyFile {
            path: path.to_owned(),
            reason: e.kind().to_string(),
        }
    })?);
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let password = password.ok_or_else(|| {
            refuse("is an encrypted keystore: give its password (--password-file or COSS_KEY_PASSWORD)")
        })?;
        return PrivateKeySigner::decrypt_keystore(path, password)
            .map_err(|_| refuse("cannot decrypt the keystore: wrong password or damaged file"));
    }
    check_owner_only(path)?;
    let hex = trimmed.strip_prefix("0x").unwrap_or(trimmed);
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    if hex.len() != 64 || alloy::hex::decode_to_slice(hex, bytes.as_mut()).is_err() {
        return Err(refuse(
            "is neither a JSON keystore nor one 32-byte hex private key",
        ));
    }
    PrivateKeySigner::from_bytes(&B256::from(*bytes))
        .map_err(|_| refuse("holds an invalid secp256k1 key"))
}

#[cfg(unix)]
fn check_owner_only(path: &Path) -> Result<(), ChainError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)
        .map_err(|e| ChainError::KeyFile {
            path: path.to_owned(),
            reason: e.kind().to_string(),
        })?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(ChainError::KeyFile {
            path: path.to_owned(),
            reason: format!(
                "holds a plain key but others may read it (mode {:o}): chmod 600 it or use an encrypted keystore",
                mode & 0o777
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_owner_only(_path: &Path) -> Result<(), ChainError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    // anvil's first development key: public knowledge, for the dev chain only.
    const DEV_KEY: &str = "ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
    const DEV_ADDRESS: &str = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266";

    fn key_file(contents: &str, mode: u32) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(contents.as_bytes()).unwrap();
        std::fs::set_permissions(file.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        file
    }

    #[test]
    fn an_owner_only_hex_key_loads_with_or_without_0x_and_a_newline() {
        for contents in [DEV_KEY.to_owned(), format!("0x{DEV_KEY}\n")] {
            let file = key_file(&contents, 0o600);
            let signer = load_signer(file.path(), None).unwrap();
            assert_eq!(signer.address().to_string(), DEV_ADDRESS);
        }
    }

    #[test]
    fn a_plain_key_others_can_read_is_refused_without_quoting_it() {
        let file = key_file(DEV_KEY, 0o644);
        let err = load_signer(file.path(), None).unwrap_err();
        assert_eq!(err.code(), "chain.key_file");
        let message = err.to_string();
        assert!(message.contains("mode 644"), "{message}");
        assert!(!message.contains(DEV_KEY), "{message}");
    }

    #[test]
    fn garbage_is_refused_without_quoting_it() {
        let file = key_file("not-a-key-but-a-secret-anyway", 0o600);
        let message = load_signer(file.path(), None).unwrap_err().to_string();
        assert!(message.contains("neither a JSON keystore"), "{message}");
        assert!(!message.contains("secret-anyway"), "{message}");
    }

    #[test]
    fn a_keystore_needs_its_password() {
        let file = key_file(r#"{"crypto":{}}"#, 0o644);
        let message = load_signer(file.path(), None).unwrap_err().to_string();
        assert!(message.contains("give its password"), "{message}");
        let message = load_signer(file.path(), Some("hunter2"))
            .unwrap_err()
            .to_string();
        assert!(message.contains("cannot decrypt"), "{message}");
        assert!(!message.contains("hunter2"), "{message}");
    }
}
