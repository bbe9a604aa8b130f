//! `coss bench api`: the trading API under load on loopback. The platform itself, as `coss up`
//! runs it (`coss_server::Platform` on a scratch data dir: durable engine with its journal,
//! the market projection and history writer, SQLite, the local chain and the wallets, every
//! edge on one axum router), is served on its own runtime; a load generator on another
//! runtime keeps `connections` HTTP/1.1 keep-alive connections busy with signed
//! `POST /api/v3/order` requests (each acknowledged only once journaled) and reports orders
//! per second with p50/p99 latency. Two peers are measured the same way in the same run, on
//! the same server: `GET /api/v3/ping`, the HTTP floor of this stack on this machine, and
//! `POST /api/v3/order/test` with the very same signed body, which authenticates, parses and
//! checks the order like a real one but never reaches the engine: what the order costs beyond
//! it (the engine, the durable journal, the projection, the history) is the difference. Then
//! `subscribers` WebSocket clients follow `ethtusd@depth@100ms` while orders flow, and the
//! messages per second delivered and the delivery lag (receive time minus the event time `E`
//! the hub stamps) are reported.

use crate::{BenchError, Context, Result};
use coss_core::Command;
use coss_identity::{Accounts, Authenticated};
use coss_store::SessionKind;
use coss_types::Amount;
use coss_wallet::{DEV_ETH, DEV_TUSD};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// The knobs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Concurrent keep-alive connections of the load generator.
    pub connections: usize,
    /// Seconds per measured phase.
    pub seconds: u64,
    /// WebSocket subscribers for the fan-out phase.
    pub subscribers: usize,
}

const TRADERS: usize = 8;

/// Runs the benchmark; the report as JSON.
pub fn run(options: Options) -> Result<Value> {
    let (_dir, server_rt, client_rt, settings) = on_loopback()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (address, keys, platform) = server_rt.block_on(async {
        let platform = coss_server::Platform::open(settings).await?;
        let keys = traders(platform.accounts(), platform.engine()).await?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let handles = (
            platform.engine().clone(),
            platform.accounts().clone(),
            platform.market().clone(),
        );
        let serving = tokio::spawn(platform.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok::<_, BenchError>((address, keys, (handles, serving)))
    })?;
    let ((handle, accounts, market), serving) = platform;
    let store = accounts.store().clone();
    let keys = Arc::new(keys);
    let seconds = Duration::from_secs(options.seconds.max(1));
    let report = client_rt.block_on(async {
        // The three request phases differ only in what they send.
        let phase = |kind| {
            load(
                address,
                options.connections,
                seconds,
                Arc::clone(&keys),
                kind,
            )
        };
        let ping = phase(Kind::Ping).await?;
        let order_test = phase(Kind::OrderTest).await?;
        let orders = phase(Kind::Order).await?;
        let fanout = fan_out(address, options, Arc::clone(&keys)).await?;
        Ok::<_, BenchError>(json!({
            "connections": options.connections,
            "seconds_per_phase": seconds.as_secs(),
            "signed_orders": orders.to_json(),
            "peer_ping": ping.to_json(),
            "orders_vs_ping": ratio(orders.per_second(), ping.per_second()),
            "peer_signed_order_test": order_test.to_json(),
            "orders_vs_order_test": ratio(orders.per_second(), order_test.per_second()),
            "target_orders_per_second": 50_000,
            "depth_fan_out": fanout,
        }))
    })?;
    let status = server_rt.block_on(handle.status_async())?;
    let history = server_rt.block_on(async {
        // How far behind the history writer is once the load stops.
        let start = Instant::now();
        while store.history_position().await.unwrap_or(0) < status.last_seq
            && start.elapsed() < Duration::from_secs(60)
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        (
            start.elapsed().as_secs_f64(),
            store.history_counts().await.unwrap_or_default(),
        )
    });
    let _ = stop.send(());
    let stopped = server_rt
        .block_on(serving)
        .context("the server task failed")??;
    drop(client_rt);
    drop(server_rt);
    drop((handle, accounts, store));
    let mut report = report;
    report["engine_commands"] = json!(status.commands);
    let (orders_kept, trades_kept) = {
        let projection = market.read();
        (
            projection.order_count(),
            projection.markets().map(|m| m.trades.len()).sum::<usize>(),
        )
    };
    report["projection_in_memory"] = json!({
        "orders": orders_kept,
        "trades": trades_kept,
        "retention": {
            "done_orders": coss_market::Retention::default().done_orders,
            "trades_per_market": coss_market::Retention::default().trades_per_market,
        },
    });
    report["rss_mib"] = json!(rss_mib());
    report["history"] = json!({
        "caught_up_after_load_s": round3(history.0),
        "trades": history.1[0],
        "orders": history.1[1],
        "balance_changes": history.1[2],
    });
    drop(market);
    stopped.finish()?;
    Ok(report)
}

/// A scratch data dir, the server's and the load generator's runtimes (two workers each),
/// and the platform's settings as `coss up` runs it with the rate limits off (the load comes
/// from one address).
pub(crate) fn on_loopback() -> Result<(
    tempfile::TempDir,
    tokio::runtime::Runtime,
    tokio::runtime::Runtime,
    coss_server::Settings,
)> {
    let dir = tempfile::tempdir().context("no temporary directory")?;
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
    };
    let (server_rt, client_rt) = (runtime()?, runtime()?);
    let mut config = coss_server::Config::defaults()?;
    config.limits = coss_server::Limits::OFF;
    config.http.max_connections_per_address = usize::MAX;
    let settings = coss_server::Settings::new(dir.path(), config);
    Ok((dir, server_rt, client_rt, settings))
}

/// A trader's (or merchant's) API key and secret.
pub(crate) struct Key {
    pub(crate) api_key: String,
    pub(crate) secret: String,
}

pub(crate) async fn traders(
    accounts: &Accounts,
    handle: &coss_engine::EngineHandle,
) -> Result<Vec<Key>> {
    let now = coss_clock::Clock::system().now().as_i64();
    let mut keys = Vec::new();
    for n in 0..TRADERS {
        let id = crate::auth::verified(accounts, &format!("trader{n}@example.com"), now).await?;
        let who = Authenticated {
            user_id: id,
            session_id: 0,
            kind: SessionKind::App,
        };
        let (api_key, secret) = crate::auth::trading_key(accounts, &who, now).await?;
        let account = coss_identity::exchange_account(id).context("user id")?;
        for (asset, amount) in [(DEV_ETH, 10u128.pow(24)), (DEV_TUSD, 10u128.pow(15))] {
            handle
                .submit_async(Command::Deposit {
                    account,
                    asset,
                    amount: Amount(amount),
                    reference: format!("bench-{n}-{asset}"),
                })
                .await?;
        }
        keys.push(Key { api_key, secret });
    }
    Ok(keys)
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Ping,
    /// `POST /api/v3/order/test`: signed and checked, never placed.
    OrderTest,
    Order,
    /// `POST /api/v1/gateway/invoices`, signed with a merchant key.
    Invoice,
}

/// Latencies (µs) and the wall time of one phase.
pub(crate) struct Phase {
    latencies: Vec<u32>,
    seconds: f64,
    errors: u64,
}

impl Phase {
    pub(crate) fn per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.latencies.len() as f64;
        n / self.seconds.max(1e-9)
    }

    fn percentile_ms(&self, p: usize) -> f64 {
        if self.latencies.is_empty() {
            return 0.0;
        }
        let index = (self.latencies.len() * p / 100).min(self.latencies.len() - 1);
        f64::from(self.latencies[index]) / 1000.0
    }

    pub(crate) fn to_json(&self) -> serde_json::Value {
        json!({
            "requests": self.latencies.len(),
            "per_second": self.per_second().round(),
            "p50_ms": round3(self.percentile_ms(50)),
            "p99_ms": round3(self.percentile_ms(99)),
            "errors": self.errors,
        })
    }
}

/// The process's resident memory (MiB), from `/proc/self/status`.
fn rss_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    (a / b.max(1e-9) * 100.0).round() / 100.0
}

pub(crate) async fn load(
    address: SocketAddr,
    connections: usize,
    length: Duration,
    keys: Arc<Vec<Key>>,
    kind: Kind,
) -> Result<Phase> {
    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let start = Instant::now();
    for c in 0..connections.max(1) {
        let (stop, errors, keys) = (Arc::clone(&stop), Arc::clone(&errors), Arc::clone(&keys));
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let Ok(stream) = TcpStream::connect(address).await else {
                errors.fetch_add(1, Ordering::Relaxed);
                return latencies;
            };
            let _ = stream.set_nodelay(true);
            let mut stream = BufReader::new(stream);
            let key = &keys[c % keys.len()];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let request = match kind {
                    Kind::Ping => b"GET /api/v3/ping HTTP/1.1\r\nHost: bench\r\n\r\n".to_vec(),
                    Kind::OrderTest => order_request("/api/v3/order/test", key, n),
                    Kind::Order => order_request("/api/v3/order", key, n),
                    Kind::Invoice => invoice_request(key),
                };
                n += 1;
                let sent = Instant::now();
                match exchange(&mut stream, &request).await {
                    Ok(200 | 201) => latencies
                        .push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX)),
                    Ok(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(length).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    Ok(Phase {
        latencies,
        seconds,
        errors: errors.load(Ordering::Relaxed),
    })
}

/// A signed invoice creation: 0.01 ETH, priced in ETH.
fn invoice_request(key: &Key) -> Vec<u8> {
    let body = r#"{"price":"0.01","currency":"ETH"}"#;
    let query = format!("timestamp={}", coss_clock::Clock::system().now().as_i64());
    let signature = coss_identity::sign(&key.secret, &format!("{query}{body}"));
    format!(
        "POST /api/v1/gateway/invoices?{query}&signature={signature} HTTP/1.1\r\nHost: bench\r\nX-MBX-APIKEY: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        key.api_key,
        body.len()
    )
    .into_bytes()
}

/// A signed limit order to `path`: each connection alternately sells and buys 0.01 ETH at one
/// price with self-trade prevention off, so every buy trades with a resting sell and the book
/// stays small.
fn order_request(path: &str, key: &Key, n: u64) -> Vec<u8> {
    let side = if n.is_multiple_of(2) { "SELL" } else { "BUY" };
    let price = 2000;
    let body = format!(
        "symbol=ETHTUSD&side={side}&type=LIMIT&timeInForce=GTC&quantity=0.0100&price={price}&selfTradePreventionMode=NONE&newOrderRespType=ACK&timestamp={}",
        coss_clock::Clock::system().now().as_i64()
    );
    let signature = coss_identity::sign(&key.secret, &body);
    let body = format!("{body}&signature={signature}");
    format!(
        "POST {path} HTTP/1.1\r\nHost: bench\r\nX-MBX-APIKEY: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        key.api_key,
        body.len()
    )
    .into_bytes()
}

/// Writes one request and reads one response; returns its status.
async fn exchange(stream: &mut BufReader<TcpStream>, request: &[u8]) -> std::io::Result<u16> {
    stream.get_mut().write_all(request).await?;
    let mut line = String::new();
    stream.read_line(&mut line).await?;
    let status: u16 = line.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        if stream.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await?;
    if status != 200 {
        tracing::debug!(status, body = %String::from_utf8_lossy(&body), "refused");
    }
    Ok(status)
}

async fn fan_out(
    address: SocketAddr,
    options: Options,
    keys: Arc<Vec<Key>>,
) -> Result<serde_json::Value> {
    use futures_util::StreamExt;
    let mut readers = Vec::new();
    let received = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    for _ in 0..options.subscribers {
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("ws://{address}/ws/ethtusd@depth@100ms"))
                .await
                .context("WebSocket connect")?;
        let (received, stop) = (Arc::clone(&received), Arc::clone(&stop));
        readers.push(tokio::spawn(async move {
            let mut socket = socket;
            let mut lags = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(Some(Ok(message))) =
                    tokio::time::timeout(Duration::from_millis(200), socket.next()).await
                else {
                    continue;
                };
                if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                    let now = coss_clock::Clock::system().now().as_i64();
                    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&text)
                        && let Some(sent) = value["E"].as_i64()
                    {
                        lags.push(u32::try_from(now - sent).unwrap_or(u32::MAX));
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            lags
        }));
    }
    // A moderate order flow keeps the book changing: every 100 ms window has a diff.
    let length = Duration::from_secs(options.seconds.max(1));
    let start = Instant::now();
    let flow = load(address, 4, length, keys, Kind::Order).await?;
    stop.store(true, Ordering::Relaxed);
    let mut lags = Vec::new();
    for reader in readers {
        lags.extend(reader.await?);
    }
    let seconds = start.elapsed().as_secs_f64();
    lags.sort_unstable();
    let pick = |p: usize| {
        lags.get((lags.len() * p / 100).min(lags.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    #[allow(clippy::cast_precision_loss)]
    let per_second = received.load(Ordering::Relaxed) as f64 / seconds.max(1e-9);
    Ok(json!({
        "subscribers": options.subscribers,
        "stream": "ethtusd@depth@100ms",
        "messages": lags.len(),
        "messages_per_second": per_second.round(),
        "lag_p50_ms": pick(50),
        "lag_p99_ms": pick(99),
        "orders_per_second_meanwhile": flow.per_second().round(),
    }))
}
