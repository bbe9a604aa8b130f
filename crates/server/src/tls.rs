//! HTTPS on the same listener as plain HTTP: each connection's first byte tells a TLS
//! ClientHello (0x16) from plaintext. TLS is rustls (ring) with ALPN `h2` and `http/1.1`;
//! either way the connection is served by hyper's automatic HTTP/1.1 + HTTP/2 builder with
//! upgrades (WebSockets). Used when the configuration names a certificate and key.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

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

/// Serves `router` on `listener`, TLS or plaintext per connection, until `shutdown` resolves;
/// then stops accepting and gives open connections at most `drain` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let service =
                TowerToHyperService::new(router.layer(axum::Extension(ConnectInfo(peer))));
            if is_tls(&stream).await {
                match acceptor.accept(stream).await {
                    Ok(tls) => {
                        let connection = builder
                            .serve_connection_with_upgrades(TokioIo::new(tls), service)
                            .into_owned();
                        let _ = watcher.watch(connection).await;
                    }
                    Err(error) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                }
            } else {
                let connection = builder
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned();
                let _ = watcher.watch(connection).await;
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!(drain_secs = drain.as_secs(), "connections still open after the drain time; closing them");
        }
    }
}

/// Whether the connection starts with a TLS handshake record.
async fn is_tls(stream: &TcpStream) -> bool {
    let mut first = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), stream.peek(&mut first)).await,
        Ok(Ok(1)) if first[0] == 0x16
    )
}
