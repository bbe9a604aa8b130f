//! The service key that signs every call of the operator program to the platform's internal
//! API: Ed25519 (the platform holds only the public half), over the method, the path, the
//! time, a random nonce, the operator's session token, the operator's address and the body's
//! SHA-256. The platform refuses a call older or newer than [`WINDOW_MS`] and a nonce it has
//! seen (kept in the database until the window has passed, so a restart does not reopen it).

use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// How far a call's time may be from the platform's clock.
pub const WINDOW_MS: i64 = 30_000;
/// The header carrying the call's time (Unix ms).
pub const TIME_HEADER: &str = "x-coss-time";
/// The header carrying the call's nonce (32 hex digits).
pub const NONCE_HEADER: &str = "x-coss-nonce";
/// The header carrying the operator's session token, if any.
pub const OPERATOR_HEADER: &str = "x-coss-operator";
/// The header carrying the operator's address as the program saw it.
pub const CLIENT_IP_HEADER: &str = "x-coss-client-ip";
/// The header carrying the signature (base64).
pub const SIGNATURE_HEADER: &str = "x-coss-signature";

/// Why a key could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read or written.
    #[error("service key file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The bytes are not a key.
    #[error("not an Ed25519 service key")]
    Malformed,
    /// Randomness failed.
    #[error("no randomness")]
    Random,
}

/// The operator program's private key.
pub struct ServiceKey(Ed25519KeyPair);

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ServiceKey({})", self.public_base64())
    }
}

impl ServiceKey {
    /// A new key as PKCS#8 bytes.
    pub fn generate() -> Result<Zeroizing<Vec<u8>>, KeyError> {
        let rng = ring::rand::SystemRandom::new();
        Ed25519KeyPair::generate_pkcs8(&rng)
            .map(|doc| Zeroizing::new(doc.as_ref().to_vec()))
            .map_err(|_| KeyError::Random)
    }

    /// A key from PKCS#8 bytes.
    pub fn from_pkcs8(bytes: &[u8]) -> Result<ServiceKey, KeyError> {
        Ed25519KeyPair::from_pkcs8(bytes)
            .map(ServiceKey)
            .map_err(|_| KeyError::Malformed)
    }

    /// Reads the key file (base64 PKCS#8), creating it (owner-only) if `create` and missing.
    pub fn load(path: &Path, create: bool) -> Result<ServiceKey, KeyError> {
        let file = |reason: String| KeyError::File {
            path: path.display().to_string(),
            reason,
        };
        if !path.exists() && create {
            if let Some(parent) = path.parent() {
                coss_identity::private_dir(parent).map_err(|e| file(e.to_string()))?;
            }
            let pkcs8 = Self::generate()?;
            let text = Zeroizing::new(B64.encode(pkcs8.as_slice()));
            coss_identity::write_private(path, text.as_bytes()).map_err(|e| file(e.to_string()))?;
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| file(e.to_string()))?);
        let bytes = Zeroizing::new(B64.decode(text.trim()).map_err(|_| KeyError::Malformed)?);
        Self::from_pkcs8(&bytes)
    }

    /// The public half, base64: what the platform is configured with.
    #[must_use]
    pub fn public_base64(&self) -> String {
        B64.encode(self.0.public_key().as_ref())
    }

    /// The public half.
    #[must_use]
    pub fn verifier(&self) -> ServiceVerifier {
        ServiceVerifier(self.0.public_key().as_ref().to_vec())
    }

    /// The signature (base64) of a call.
    #[must_use]
    pub fn sign(&self, call: &Call<'_>) -> String {
        B64.encode(self.0.sign(call.message().as_bytes()).as_ref())
    }
}

/// The platform's copy of the public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceVerifier(Vec<u8>);

impl ServiceVerifier {
    /// From the base64 public key.
    pub fn from_base64(text: &str) -> Result<ServiceVerifier, KeyError> {
        let bytes = B64.decode(text.trim()).map_err(|_| KeyError::Malformed)?;
        if bytes.len() != 32 {
            return Err(KeyError::Malformed);
        }
        Ok(ServiceVerifier(bytes))
    }

    /// Whether `signature` (base64) signs `call`.
    #[must_use]
    pub fn verify(&self, call: &Call<'_>, signature: &str) -> bool {
        let Ok(signature) = B64.decode(signature.trim()) else {
            return false;
        };
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(call.message().as_bytes(), &signature)
            .is_ok()
    }
}

/// What a signature covers.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// `POST`, …
    pub method: &'a str,
    /// The path and query.
    pub path: &'a str,
    /// Unix ms.
    pub time_ms: i64,
    /// The nonce.
    pub nonce: &'a str,
    /// The operator's session token (`""` if none).
    pub operator: &'a str,
    /// The operator's address.
    pub client_ip: &'a str,
    /// The body.
    pub body: &'a [u8],
}

impl Call<'_> {
    fn message(&self) -> String {
        format!(
            "COSS-INTERNAL-1\n{}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.method,
            self.path,
            self.time_ms,
            self.nonce,
            hex::encode(Sha256::digest(self.operator.as_bytes())),
            self.client_ip,
            hex::encode(Sha256::digest(self.body)),
        )
    }
}

/// A fresh nonce: 16 random bytes as hex.
pub fn nonce() -> Result<String, KeyError> {
    let bytes = coss_identity::random_bytes::<16>().map_err(|_| KeyError::Random)?;
    Ok(hex::encode(bytes.as_ref()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn call(body: &[u8]) -> Call<'_> {
        Call {
            method: "POST",
            path: "/internal/v1/users.search",
            time_ms: 1_000,
            nonce: "00112233445566778899aabbccddeeff",
            operator: "token",
            client_ip: "127.0.0.1",
            body,
        }
    }

    #[test]
    fn a_signature_covers_every_part_of_the_call() {
        let key = ServiceKey::from_pkcs8(&ServiceKey::generate().unwrap()).unwrap();
        let verifier = ServiceVerifier::from_base64(&key.public_base64()).unwrap();
        let signature = key.sign(&call(b"{}"));
        assert!(verifier.verify(&call(b"{}"), &signature));
        assert!(!verifier.verify(&call(b"{ }"), &signature));
        for changed in [
            Call {
                method: "GET",
                ..call(b"{}")
            },
            Call {
                path: "/internal/v1/users.lock",
                ..call(b"{}")
            },
            Call {
                time_ms: 1_001,
                ..call(b"{}")
            },
            Call {
                nonce: "ff",
                ..call(b"{}")
            },
            Call {
                operator: "other",
                ..call(b"{}")
            },
            Call {
                client_ip: "10.0.0.1",
                ..call(b"{}")
            },
        ] {
            assert!(!verifier.verify(&changed, &signature));
        }
        let other = ServiceKey::from_pkcs8(&ServiceKey::generate().unwrap()).unwrap();
        assert!(!other.verifier().verify(&call(b"{}"), &signature));
        assert!(!verifier.verify(&call(b"{}"), "not base64"));
    }
}
