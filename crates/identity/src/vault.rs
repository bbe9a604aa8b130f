//! The server key: seals secrets the server must use again (TOTP seeds, API-key and webhook
//! secrets, signing keys) with ChaCha20-Poly1305 before they reach the database, and derives
//! MACs (e.g. CSRF tokens bound to a session). The key is 32 random bytes kept in a file only
//! its owner can read (`secret.key` in the data dir by default), never in the database or a
//! log. Losing it makes the sealed secrets unreadable; copying it with a database backup
//! defeats the point, so back it up separately.

use std::path::Path;

use ring::aead::{self, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::Zeroizing;

/// Why the server key could not be used.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The key file could not be read or written.
    #[error("server key file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong (never the key).
        reason: String,
    },
    /// The key file does not hold 64 hex digits.
    #[error("server key file {0} does not hold a 32-byte hex key")]
    Malformed(String),
    /// A sealed value was damaged, or sealed with another key or for another purpose.
    #[error("a sealed secret could not be opened (damaged, or sealed with another key)")]
    Unseal,
    /// The OS random source failed.
    #[error("the system random source failed")]
    Random,
}

/// The server key (redacted in Debug).
#[derive(Clone)]
pub struct Vault {
    seal: std::sync::Arc<LessSafeKey>,
    mac: hmac::Key,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(…)")
    }
}

const NONCE_LEN: usize = 12;

impl Vault {
    /// A vault over a 32-byte key. Sealing and MAC keys are derived from it separately.
    pub fn from_key(key: &[u8; 32]) -> Self {
        let master = hmac::Key::new(hmac::HMAC_SHA256, key);
        let seal_key = Zeroizing::new(hmac::sign(&master, b"coss vault seal v1").as_ref().to_vec());
        let mac_key = Zeroizing::new(hmac::sign(&master, b"coss vault mac v1").as_ref().to_vec());
        // A 32-byte key always fits ChaCha20-Poly1305.
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, &seal_key[..32])
            .unwrap_or_else(|_| unreachable!("ChaCha20-Poly1305 takes a 32-byte key"));
        Self {
            seal: std::sync::Arc::new(LessSafeKey::new(unbound)),
            mac: hmac::Key::new(hmac::HMAC_SHA256, &mac_key),
        }
    }

    /// A vault with a fresh random key (tests, benchmarks).
    pub fn random() -> Result<Self, VaultError> {
        let mut key = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(key.as_mut())
            .map_err(|_| VaultError::Random)?;
        Ok(Self::from_key(&key))
    }

    /// Reads the key file, creating it (owner read/write only) with a random key if missing.
    pub fn open_or_create(path: &Path) -> Result<Self, VaultError> {
        let file_error = |reason: String| VaultError::File {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() {
            let mut key = Zeroizing::new([0u8; 32]);
            SystemRandom::new()
                .fill(key.as_mut())
                .map_err(|_| VaultError::Random)?;
            let text = Zeroizing::new(hex::encode(key.as_ref()));
            write_private(path, text.as_bytes()).map_err(|e| file_error(e.to_string()))?;
        }
        // Like ssh with a private key: a key others can read (or replace) is refused, not used.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(|e| file_error(e.to_string()))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(file_error(format!(
                    "it is open to other users (mode {:o}); only its owner may read it: \
                     run `chmod 600` on it",
                    mode & 0o777
                )));
            }
        }
        let text =
            Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?);
        let mut key = Zeroizing::new([0u8; 32]);
        hex::decode_to_slice(text.trim(), key.as_mut())
            .map_err(|_| VaultError::Malformed(path.display().to_string()))?;
        Ok(Self::from_key(&key))
    }

    /// Seals `plain` for `purpose` (bound as associated data: a value sealed for one purpose
    /// or row does not open as another). Output: nonce ‖ ciphertext ‖ tag.
    pub fn seal(&self, plain: &[u8], purpose: &[u8]) -> Result<Vec<u8>, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| VaultError::Random)?;
        let mut out = Vec::with_capacity(NONCE_LEN + plain.len() + 16);
        out.extend_from_slice(&nonce);
        let mut body = plain.to_vec();
        self.seal
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(purpose),
                &mut body,
            )
            .map_err(|_| VaultError::Unseal)?;
        out.extend_from_slice(&body);
        body.iter_mut().for_each(|b| *b = 0);
        Ok(out)
    }

    /// Opens what [`Vault::seal`] sealed for the same `purpose`.
    pub fn open(&self, sealed: &[u8], purpose: &[u8]) -> Result<Zeroizing<Vec<u8>>, VaultError> {
        if sealed.len() < NONCE_LEN + aead::CHACHA20_POLY1305.tag_len() {
            return Err(VaultError::Unseal);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Unseal)?;
        let mut body = Zeroizing::new(body.to_vec());
        let plain_len = self
            .seal
            .open_in_place(nonce, Aad::from(purpose), &mut body)
            .map_err(|_| VaultError::Unseal)?
            .len();
        body.truncate(plain_len);
        Ok(body)
    }

    /// HMAC-SHA256 of `data` under a key derived for `purpose`.
    pub fn mac(&self, purpose: &str, data: &[u8]) -> [u8; 32] {
        let mut ctx = hmac::Context::with_key(&self.mac);
        ctx.update(purpose.as_bytes());
        ctx.update(&[0]);
        ctx.update(data);
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }
}

/// Creates a directory (and its parents) that only its owner may enter, or narrows an
/// existing one to its owner: the data dir holds the server key, the database and the mail.
pub fn private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Narrows an existing file to its owner (read and write).
pub fn private_file(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Writes a new file readable and writable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
