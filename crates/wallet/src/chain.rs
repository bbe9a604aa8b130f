//! Reaching the node: one provider for a URL — IPC (a socket path, the paper's choice),
//! WebSocket (`ws://`, `wss://`) or HTTP (`http://`, `https://`) — behind a retry layer with
//! backoff, every call bounded by a timeout; and a head signal that wakes the wallet on each
//! new block: pushed by the node over IPC and WebSocket (`eth_subscribe newHeads`,
//! resubscribing after a dropped connection), polled over HTTP, and always also on a timer.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::client::ClientBuilder;
use alloy::transports::layers::RetryBackoffLayer;
use tokio::sync::Notify;

use crate::{WalletError, rpc_error};

/// Longest wait for one node call.
pub const RPC_TIMEOUT: Duration = Duration::from_secs(30);

/// Connects to the node at `url` (IPC path, ws(s):// or http(s)://).
pub async fn connect(url: &str) -> Result<DynProvider, WalletError> {
    // One TLS stack: rustls with ring, installed once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = timed(
        ClientBuilder::default()
            .layer(RetryBackoffLayer::new(5, 200, 10_000))
            .connect(url),
    )
    .await?
    .map_err(|e| WalletError::Chain(format!("cannot connect to {}: {e}", redact(url))))?;
    Ok(ProviderBuilder::new()
        .disable_recommended_fillers()
        .connect_client(client)
        .erased())
}

/// A URL without credentials (user info and query), fit for logs and errors.
fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
            let host = host.split('?').next().unwrap_or(host);
            format!("{scheme}://{host}")
        }
        None => url.to_owned(),
    }
}

/// Runs a node call with [`RPC_TIMEOUT`].
pub async fn timed<T>(call: impl IntoFuture<Output = T>) -> Result<T, WalletError> {
    tokio::time::timeout(RPC_TIMEOUT, call.into_future())
        .await
        .map_err(|_| WalletError::Chain("the node did not answer in time".into()))
}

/// The node's chain id.
pub async fn chain_id(provider: &DynProvider) -> Result<u64, WalletError> {
    timed(provider.get_chain_id()).await?.map_err(rpc_error)
}

/// Whether the node answers `trace_block` (Parity-style traces).
pub async fn has_traces(provider: &DynProvider) -> bool {
    let answer: Result<Result<serde_json::Value, _>, _> =
        timed(provider.raw_request::<_, serde_json::Value>("trace_block".into(), ("latest",)))
            .await;
    matches!(answer, Ok(Ok(serde_json::Value::Array(_))))
}

/// Wakes waiters on every new head the node pushes, or at least every poll interval.
#[derive(Debug, Clone)]
pub struct HeadSignal {
    notify: Arc<Notify>,
    poll: Duration,
}

impl HeadSignal {
    /// Subscribes to new heads (when the transport can push) in a background task.
    pub fn start(provider: DynProvider, poll: Duration) -> Self {
        let notify = Arc::new(Notify::new());
        let signal = Self {
            notify: notify.clone(),
            poll,
        };
        tokio::spawn(async move {
            let mut pause = Duration::from_millis(500);
            loop {
                match provider.subscribe_blocks().await {
                    Ok(mut subscription) => {
                        pause = Duration::from_millis(500);
                        while subscription.recv().await.is_ok() {
                            // A permit is kept if the loop is busy, so no head is missed.
                            notify.notify_one();
                        }
                        tracing::warn!("new-head subscription ended; resubscribing");
                    }
                    // HTTP cannot push: polling on the timer is all there is.
                    Err(error) if error.to_string().contains("PubSub") => return,
                    Err(error) => tracing::warn!(%error, "new-head subscription failed"),
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        });
        signal
    }

    /// Waits for the next head or the poll interval, whichever comes first.
    pub async fn wait(&self) {
        let _ = tokio::time::timeout(self.poll, self.notify.notified()).await;
    }
}
