//! HTTPS settings: rustls (ring) with ALPN `h2` and `http/1.1`, from a PEM certificate chain
//! and key, used by the listener (`crate::listener`) when the configuration names them.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

use crate::{Context, PlatformError};

/// The TLS settings from a PEM certificate chain and private key.
pub fn acceptor(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor, PlatformError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .context(format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .context(format!("invalid certificate in {}", cert.display()))?;
    // Never quote the key file's contents in an error.
    let key = PrivateKeyDer::from_pem_file(key).map_err(|_| {
        PlatformError::Config(format!("no usable private key in {}", key.display()))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and the key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}
