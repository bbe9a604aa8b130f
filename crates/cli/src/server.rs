//! `coss up`: the engine service, the database (SQLite in the data dir), the chain (a local
//! anvil unless configured) with the wallets' watcher and sender, and the HTTP API (engine
//! status, accounts, single sign-on, wallets), until Ctrl-C or SIGTERM.

use crate::config::{Config, MarketConfig};
use anyhow::{Context, Result};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use coss_engine::{Engine, EngineConfig, EngineHandle};
use serde::Serialize;
use std::path::PathBuf;

#[derive(Serialize)]
struct EngineStatus {
    commands: u64,
    last_seq: u64,
}

#[derive(Serialize)]
struct ApiError {
    code: &'static str,
    msg: String,
}

/// The HTTP API.
fn app(engine: EngineHandle) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/api/v1/engine/status", get(engine_status))
        .with_state(engine)
}

/// The OpenAPI documents the server serves: COSS's own `/api/v1` (accounts and wallets) at
/// `/openapi.json`, and the Binance-compatible API at `/api/v3/openapi.json`. Both are also
/// committed under `docs/openapi/`, and a test fails when the code drifts from them.
pub fn documents() -> (utoipa::openapi::OpenApi, utoipa::openapi::OpenApi) {
    (
        coss_api::openapi()
            .merge_from(coss_wallet::api::openapi())
            .merge_from(coss_dao::api::openapi()),
        coss_binance::openapi(),
    )
}

/// How long a graceful shutdown waits for open connections.
const DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// What `/metrics` shows: the HTTP counters and the platform's gauges.
#[derive(Clone)]
struct Exposition {
    metrics: coss_api::metrics::Metrics,
    engine: EngineHandle,
    binance: coss_binance::Binance,
}

async fn render_metrics(
    State(e): State<Exposition>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    use std::fmt::Write;
    let mut text = e.metrics.render();
    if let Ok(status) = e.engine.status_async().await {
        let _ = writeln!(
            text,
            "# HELP coss_engine_commands Commands applied by the engine.\n# TYPE coss_engine_commands counter\ncoss_engine_commands {}",
            status.commands
        );
        let _ = writeln!(
            text,
            "# HELP coss_engine_last_seq Last event sequence number.\n# TYPE coss_engine_last_seq gauge\ncoss_engine_last_seq {}",
            status.last_seq
        );
        let lag = status.last_seq.saturating_sub(e.binance.market().applied());
        let _ = writeln!(
            text,
            "# HELP coss_market_lag_events Events the market projection has yet to apply.\n# TYPE coss_market_lag_events gauge\ncoss_market_lag_events {lag}"
        );
    }
    let _ = writeln!(
        text,
        "# HELP coss_stream_connections Open WebSocket stream connections.\n# TYPE coss_stream_connections gauge\ncoss_stream_connections {}",
        e.binance.stream_connections()
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
}

/// Healthy while the engine answers (it stops answering once halted, e.g. by a journal failure).
async fn health(State(engine): State<EngineHandle>) -> (StatusCode, &'static str) {
    match engine.status_async().await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "engine stopped"),
    }
}

async fn engine_status(
    State(engine): State<EngineHandle>,
) -> Result<Json<EngineStatus>, (StatusCode, Json<ApiError>)> {
    match engine.status_async().await.map_err(|e| e.to_string()) {
        Ok(status) => Ok(Json(EngineStatus {
            commands: status.commands,
            last_seq: status.last_seq,
        })),
        Err(msg) => Err((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ApiError {
                code: "ENGINE_STOPPED",
                msg,
            }),
        )),
    }
}

pub fn up(
    data_dir: PathBuf,
    listen: &str,
    database_url: Option<&str>,
    config: &Config,
) -> Result<()> {
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let accounts = runtime.block_on(open_accounts(&data_dir, database_url))?;
    // The market projection is rebuilt from the journal at every start: the engine replays
    // the whole journal into its feed before taking new commands. The history writer puts
    // what the projection applies into the database after its own position, so it runs
    // before the engine starts replaying.
    let (history_tx, history_rx) = tokio::sync::mpsc::channel(coss_market::HISTORY_BACKLOG);
    let (market, feed) = coss_market::MarketService::start_with_history(Some(history_tx));
    {
        let _inside = runtime.enter();
        coss_market::spawn_history(accounts.store().clone(), market.clone(), history_rx);
    }
    let mut engine_config = EngineConfig::new(&data_dir);
    engine_config.feed = Some(feed);
    let (engine, recovery) = Engine::start(engine_config)
        .with_context(|| format!("cannot recover the engine from {}", data_dir.display()))?;
    if let Some(torn) = &recovery.torn_tail {
        tracing::warn!(
            file = %torn.file.display(),
            offset = torn.offset,
            dropped_bytes = torn.dropped_bytes,
            "journal had a torn tail (a crash mid-write); truncated it"
        );
    }
    for skipped in &recovery.skipped_snapshots {
        tracing::warn!(%skipped, "skipped an invalid snapshot");
    }
    tracing::info!(
        data_dir = %data_dir.display(),
        commands = recovery.commands,
        snapshot = recovery.snapshot_index,
        replayed = recovery.replayed,
        state_hash = %recovery.state_hash,
        "engine recovered"
    );
    let handle = engine.handle();
    let local_node = runtime.block_on(async move {
        let mailer = mailer(accounts.store().clone(), &data_dir)?;
        tokio::spawn(deliver_mail(mailer));
        let (chain, local_node) = crate::node::chain(&data_dir).await?;
        let wallet = match coss_wallet::Wallet::open(chain, accounts.clone(), handle.clone()).await {
            Ok(wallet) => wallet,
            Err(error) => {
                if let Some(node) = local_node {
                    node.stop();
                }
                return Err(error).context("cannot open the wallets");
            }
        };
        if let Some(node) = &local_node {
            crate::node::fund_hot_wallet(node, &data_dir, wallet.hot_address()).await?;
        }
        wallet.spawn();
        let dao = open_dao(&wallet, accounts.store(), &handle, &config.dao).await?;
        spawn_dao_runner(dao.clone());
        list_markets(&handle, &market, &config.markets).await?;
        let binance =
            coss_binance::Binance::new(accounts.clone(), handle.clone(), market, config.limits.into());
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr().context("no local address")?;
        tracing::info!(listen = %local, "COSS is up");
        let issuer = std::env::var("COSS_PUBLIC_URL").unwrap_or_else(|_| format!("http://{local}"));
        let provider = coss_sso::Provider::new(accounts.clone(), &issuer);
        tracing::info!(%issuer, "single sign-on: OpenID Connect provider (register apps with `coss sso add-client`)");
        let metrics = coss_api::metrics::Metrics::new();
        let exposition = Exposition {
            metrics: metrics.clone(),
            engine: handle.clone(),
            binance: binance.clone(),
        };
        let streams = binance.clone();
        let router = coss_api::with_json_fallbacks(
            app(handle)
                .merge(coss_api::accounts_router_with_doc(accounts.clone(), documents().0))
                .merge(coss_sso::router(provider))
                .merge(coss_wallet::api::router(wallet))
                .merge(coss_dao::api::router(dao, accounts.clone()))
                .merge(coss_binance::router(binance))
                .route(
                    "/api/v3/openapi.json",
                    get(|| async { Json(coss_binance::openapi()) }),
                )
                .merge(Router::new().route("/metrics", get(render_metrics)).with_state(exposition))
                .route_layer(axum::middleware::from_fn_with_state(
                    metrics,
                    coss_api::metrics::track,
                )),
        );
        // Graceful shutdown: stop accepting, close the streams, let requests in flight finish
        // (an order is answered once durable), and give stragglers at most DRAIN.
        let stop = async move {
            shutdown_signal().await;
            tracing::info!("shutting down: no new connections, closing streams, draining");
            streams.close_streams();
        };
        if let Some(tls) = &config.tls {
            let acceptor = crate::tls::acceptor(&tls.cert_file, &tls.key_file)?;
            tracing::info!(cert = %tls.cert_file.display(), "HTTPS and HTTP on the same listener");
            crate::tls::serve(listener, router, acceptor, stop, DRAIN).await;
        } else {
            let (stopping_tx, mut stopping) = tokio::sync::watch::channel(false);
            let server = axum::serve(
                listener,
                router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(async move {
                stop.await;
                stopping_tx.send_replace(true);
            });
            tokio::select! {
                served = server => served.context("HTTP server failed")?,
                () = async {
                    let _ = stopping.wait_for(|s| *s).await;
                    tokio::time::sleep(DRAIN).await;
                } => tracing::warn!(drain_secs = DRAIN.as_secs(), "connections still open after the drain time; closing them"),
            }
        }
        anyhow::Ok(local_node)
    })?;
    // Ends the wallet's tasks (each step is safe to cut short) and their engine handles.
    drop(runtime);
    if let Some(node) = local_node {
        node.stop();
    }
    engine
        .shutdown()
        .context("engine did not shut down cleanly")?;
    tracing::info!("COSS stopped");
    Ok(())
}

/// How often the DAO runner looks for due steps (a close, chain holdings, a payout).
const DAO_TICK: std::time::Duration = std::time::Duration::from_secs(10);

/// The DAO revenue share over the wallet's chain: the core's schedule and share configured.
pub async fn open_dao(
    wallet: &coss_wallet::Wallet,
    store: &coss_store::Store,
    engine: &EngineHandle,
    settings: &crate::config::DaoSettings,
) -> Result<coss_dao::Dao> {
    let chain = wallet.config();
    let coss = chain
        .asset("COSS")
        .context("the chain configuration lists no COSS asset (the DAO needs it)")?;
    let config = settings.to_config(coss.asset, coss.decimals)?;
    let source = coss.token.map(|token| coss_dao::ChainSource {
        reader: coss_dao::ChainReader::new(
            wallet.provider().clone(),
            token,
            chain.sale,
            chain.start_block.unwrap_or(0),
        ),
        chain_id: i64::try_from(chain.chain_id).unwrap_or(i64::MAX),
        platform: std::iter::once(wallet.hot_address())
            .chain(chain.cold_address)
            .collect(),
    });
    let dao = coss_dao::Dao::new(engine.clone(), store.clone(), source, config);
    dao.configure(coss_identity::now_ms().try_into().unwrap_or(0))
        .await
        .context("cannot configure the DAO revenue share")?;
    Ok(dao)
}

/// Runs the DAO's due steps every [`DAO_TICK`] (missed weeks are caught up in order, a
/// payout cut short goes on).
fn spawn_dao_runner(runner: coss_dao::Dao) {
    tokio::spawn(async move {
        loop {
            match runner.run_due().await {
                Ok(steps) => {
                    for step in steps.iter().filter(|s| s.step != "waiting_for_chain") {
                        tracing::info!(week = %step.week, step = step.step, "DAO revenue share");
                    }
                }
                Err(error) => {
                    tracing::error!(%error, code = error.code(), "DAO step failed; retrying")
                }
            }
            tokio::time::sleep(DAO_TICK).await;
        }
    });
}

/// Lists the configured markets the engine does not have yet (once the projection has caught
/// up with the journal, so it knows what is listed).
async fn list_markets(
    engine: &EngineHandle,
    market: &coss_market::MarketService,
    markets: &[MarketConfig],
) -> Result<()> {
    let status = engine.status_async().await.context("the engine stopped")?;
    market.caught_up(status.last_seq).await;
    for wanted in markets {
        let command = {
            let projection = market.read();
            if let Some(listed) = projection.market(coss_types::MarketId(wanted.id)) {
                tracing::info!(symbol = %listed.market.symbol, id = wanted.id, "market listed");
                continue;
            }
            let asset = |symbol: &str| {
                projection
                    .assets()
                    .find(|a| a.symbol == symbol)
                    .cloned()
                    .with_context(|| format!("market {}: no listed asset {symbol}", wanted.id))
            };
            let (base, quote) = (asset(&wanted.base)?, asset(&wanted.quote)?);
            let amount = |text: &str, decimals: u8, what: &str| {
                coss_types::Amount::parse_decimal(text, decimals)
                    .with_context(|| format!("market {}: {what} {text:?}", wanted.id))
            };
            coss_core::Command::ListMarket {
                market: coss_types::MarketId(wanted.id),
                base: base.id,
                quote: quote.id,
                lot_size: amount(&wanted.lot_size, base.decimals, "lot_size")?,
                tick_size: amount(&wanted.tick_size, quote.decimals, "tick_size")?,
                min_notional: amount(&wanted.min_notional, quote.decimals, "min_notional")?,
            }
        };
        let receipt = engine
            .submit_async(command)
            .await
            .context("the engine stopped")?;
        if let Err(reason) = receipt.outcome {
            anyhow::bail!("market {} could not be listed: {reason}", wanted.id);
        }
        if let Some(last) = receipt.events.last() {
            market.caught_up(last.seq).await;
        }
        tracing::info!(base = %wanted.base, quote = %wanted.quote, id = wanted.id, "market listed now");
    }
    Ok(())
}

/// The accounts over the database (`database_url`, or SQLite `coss.db` in the data dir) and
/// the server key (`COSS_SECRET_KEY_FILE`, or `secret.key` in the data dir, made if missing).
pub async fn open_accounts(
    data_dir: &std::path::Path,
    database_url: Option<&str>,
) -> Result<coss_identity::Accounts> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    let store = match database_url {
        Some(url) => {
            let store = coss_store::Store::open(url)
                .await
                .context("cannot open the database at COSS_DATABASE_URL")?;
            tracing::info!(backend = ?store.backend(), "database open");
            store
        }
        None => {
            let store = coss_store::Store::open_in(data_dir)
                .await
                .with_context(|| format!("cannot open the database in {}", data_dir.display()))?;
            tracing::info!(database = %data_dir.join("coss.db").display(), "database open (SQLite)");
            store
        }
    };
    let key_file = std::env::var_os("COSS_SECRET_KEY_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir.join("secret.key"));
    let vault = coss_identity::Vault::open_or_create(&key_file)
        .context("cannot read or create the server key")?;
    tracing::info!(key_file = %key_file.display(), "server key loaded (seals TOTP seeds, API secrets, signing keys)");
    coss_identity::Accounts::new(store, vault).context("cannot set up accounts")
}

/// The outbox worker: SMTP when `COSS_SMTP_URL` is set, else the maildir `mail/` in the
/// data dir. `COSS_MAIL_FROM` and `COSS_PUBLIC_URL` set the sender and where links point.
fn mailer(store: coss_store::Store, data_dir: &std::path::Path) -> Result<coss_mail::Mailer> {
    let delivery = match std::env::var("COSS_SMTP_URL") {
        Ok(url) => {
            tracing::info!("email: delivered over SMTP (COSS_SMTP_URL)");
            coss_mail::Delivery::smtp(&url).context("COSS_SMTP_URL")?
        }
        Err(_) => {
            let maildir = data_dir.join("mail");
            tracing::info!(maildir = %maildir.display(), "email: delivered to a maildir (set COSS_SMTP_URL for SMTP)");
            coss_mail::Delivery::Maildir(maildir)
        }
    };
    let from = std::env::var("COSS_MAIL_FROM")
        .unwrap_or_else(|_| "COSS <no-reply@coss.localhost>".to_owned());
    let base =
        std::env::var("COSS_PUBLIC_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".to_owned());
    coss_mail::Mailer::new(store, delivery, &from, &base).context("email settings")
}

/// Delivers due outbox messages every second until the process ends.
async fn deliver_mail(mailer: coss_mail::Mailer) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(error) = mailer.run_once(coss_identity::now_ms(), 50).await {
            tracing::warn!(%error, "email outbox");
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    /// The committed OpenAPI documents equal what the code generates. After an API change,
    /// `make openapi` rewrites them (and the diff shows the change for review).
    #[test]
    fn the_committed_openapi_documents_match_the_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi");
        let (own, binance) = super::documents();
        for (name, doc) in [("coss-v1.json", own), ("binance-v3.json", binance)] {
            let generated = format!("{}\n", serde_json::to_string_pretty(&doc).unwrap());
            let path = dir.join(name);
            if std::env::var_os("COSS_WRITE_OPENAPI").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "{} drifted from the code: run `make openapi` and commit the result",
                path.display()
            );
        }
    }
}
