//! ES256 JSON Web Tokens and keys with ring: P-256 key pairs (PKCS#8, sealed at rest), compact
//! JWS signing (`r ‖ s`, as JWS requires) and the public JWK.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};
use zeroize::Zeroizing;

use crate::SsoError;

/// A new key pair: (PKCS#8 private key, uncompressed public point).
pub(crate) fn generate() -> Result<(Zeroizing<Vec<u8>>, Vec<u8>), SsoError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| SsoError::Crypto)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| SsoError::Crypto)?;
    Ok((
        Zeroizing::new(pkcs8.as_ref().to_vec()),
        pair.public_key().as_ref().to_vec(),
    ))
}

/// The compact JWS of `claims` signed with the PKCS#8 key `kid`.
pub(crate) fn sign(pkcs8: &[u8], kid: &str, claims: &Value) -> Result<String, SsoError> {
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
        .map_err(|_| SsoError::Crypto)?;
    let header = json!({ "alg": "ES256", "typ": "JWT", "kid": kid });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature = pair
        .sign(&rng, input.as_bytes())
        .map_err(|_| SsoError::Crypto)?;
    Ok(format!(
        "{input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    ))
}

/// The public JWK of an uncompressed P-256 point (`04 ‖ x ‖ y`).
pub(crate) fn jwk(kid: &str, public_key: &[u8]) -> Option<Value> {
    if public_key.len() != 65 || public_key[0] != 4 {
        return None;
    }
    Some(json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&public_key[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&public_key[33..]),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    }))
}

/// Base64url without padding.
pub(crate) fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}
