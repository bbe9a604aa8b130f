//! The listener: every connection of `coss up`, plain HTTP or HTTPS on the same port (each
//! connection's first byte tells a TLS ClientHello, 0x16, from plaintext), served by hyper's
//! automatic HTTP/1.1 + HTTP/2 builder with upgrades (WebSockets).
//!
//! What a connection may cost is bounded before it is paid (`[http]` in the configuration):
//! - a client address (an IPv6 client by its /64) holds at most `max_connections_per_address`
//!   connections; the next one gets a one-line 429 and is closed at once. Connections from a
//!   trusted proxy are not counted here: the proxy carries many clients, each limited by the
//!   proxy and, where the real address matters (rate limits, stream connections), by the
//!   address it vouches for;
//! - the TLS handshake, and each request's headers, must arrive within `header_timeout_ms`;
//!   the same timer closes a kept-alive connection idle for that long between requests;
//! - a request body must keep arriving: a pause longer than `body_timeout_ms` ends it with 408;
//! - HTTP/2 connections are pinged every 20 s and closed when a ping goes unanswered.

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// The limits of one connection (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Connections one client address may hold open at once.
    pub max_per_address: usize,
    /// For the TLS handshake, each request's headers, and idleness between requests.
    pub header_timeout: Duration,
    /// The longest pause while a request body arrives.
    pub body_timeout: Duration,
}

/// What a refused connection is told before it is closed.
fn too_many() -> Vec<u8> {
    let body =
        r#"{"code":"too_many_connections","message":"too many connections from one address"}"#;
    format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Serves `router` on `listener` until `shutdown` resolves, HTTPS too when `acceptor` is
/// given; then stops accepting and gives open connections at most `drain` to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    proxies: coss_http::TrustedProxies,
    limits: ConnectionLimits,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let router = router.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_timeout,
    ));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20));
    let open = coss_http::AddressSlots::default();
    // Connections still being sniffed stop waiting when the server stops: each holds the
    // router (and with it the engine's handle), which the shutdown waits for.
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of descriptors, most likely: wait rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let ip = peer.ip().to_canonical();
        let place = if proxies.trusts(ip) {
            None
        } else {
            match open.take(ip, limits.max_per_address) {
                Some(place) => Some(place),
                None => {
                    tracing::debug!(%ip, "connection refused: too many from this address");
                    tokio::spawn(refuse(stream));
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let acceptor = acceptor.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _place = place;
            // The protocol is told here, within the header timeout, rather than by hyper's
            // automatic builder, which waits for a client's first bytes without any timer.
            let kind = tokio::select! {
                kind = sniff(&stream, limits.header_timeout) => kind,
                _ = stopping.wait_for(|stop| *stop) => None,
            };
            let Some(kind) = kind else {
                return;
            };
            let service =
                TowerToHyperService::new(router.layer(axum::Extension(ConnectInfo(peer))));
            let (h1, h2) = (builder.clone().http1_only(), builder.http2_only());
            match (kind, &acceptor) {
                (Sniffed::Tls, Some(tls)) => {
                    match tokio::time::timeout(limits.header_timeout, tls.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let alpn_h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
                            let builder = if alpn_h2 { h2 } else { h1 };
                            let connection = builder
                                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                                .into_owned();
                            let _ = watcher.watch(connection).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                (Sniffed::Tls, None) => {}
                (Sniffed::H2, _) => {
                    let connection = h2
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(connection).await;
                }
                (Sniffed::H1, _) => {
                    let connection = h1
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .into_owned();
                    let _ = watcher.watch(connection).await;
                }
            }
        });
    }
    drop(listener);
    stopping_tx.send_replace(true);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain) => {
            tracing::warn!(drain_secs = drain.as_secs(), "connections still open after the drain time; closing them");
        }
    }
}

/// Tells a refused connection why (within a second) and closes it.
async fn refuse(mut stream: TcpStream) {
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&too_many()).await?;
        stream.shutdown().await
    })
    .await;
}

/// What a connection's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sniffed {
    /// A TLS handshake record.
    Tls,
    /// HTTP/2 with prior knowledge (its connection preface).
    H2,
    /// Anything else is read as HTTP/1.
    H1,
}

/// HTTP/2's connection preface.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Looks at a connection's first bytes (without consuming them), waiting at most `wait` for
/// enough of them; `None` when none came in time or the client went away.
async fn sniff(stream: &TcpStream, wait: Duration) -> Option<Sniffed> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut first = [0u8; 24];
    loop {
        let n = tokio::time::timeout_at(deadline, stream.peek(&mut first))
            .await
            .ok()?
            .ok()?;
        if n == 0 {
            return None;
        }
        if first[0] == 0x16 {
            return Some(Sniffed::Tls);
        }
        if !PREFACE.starts_with(&first[..n]) {
            return Some(Sniffed::H1);
        }
        if n == PREFACE.len() {
            return Some(Sniffed::H2);
        }
        // Part of the preface: the rest is on its way (peek would answer the same at once).
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
