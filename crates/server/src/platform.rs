//! Opening, serving and stopping the platform.

use std::path::PathBuf;
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use coss_binance::Binance;
use coss_clock::Clock;
use coss_contracts::LocalNode;
use coss_dao::Dao;
use coss_engine::{Engine, EngineConfig, EngineHandle};
use coss_gateway::Gateway;
use coss_http::{Gate, Routes};
use coss_identity::Accounts;
use coss_market::MarketService;
use coss_wallet::{ChainConfig, Wallet};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::{DaoSettings, MarketConfig};
use crate::routes::{Status, status_routes};
use crate::{Context, Metrics, PlatformError, Settings};

type Result<T, E = PlatformError> = std::result::Result<T, E>;

/// How long a graceful shutdown waits for open connections.
const DRAIN: Duration = Duration::from_secs(10);
/// How often the DAO runner looks for due steps (a close, chain holdings, a payout).
const DAO_TICK: Duration = Duration::from_secs(10);
/// How often the mail worker delivers due messages.
const MAIL_TICK: Duration = Duration::from_secs(1);
/// Where links in emails point when no public URL is set.
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// The whole platform, open: every service and edge, sharing one engine, database, chain and
/// clock. Stop it with [`Platform::stop`] (or let [`Platform::serve`] do it), then finish with
/// [`Stopped::finish`] outside the async runtime.
#[derive(Debug)]
pub struct Platform {
    settings: Settings,
    engine: Engine,
    handle: EngineHandle,
    gate: Gate,
    market: MarketService,
    wallet: Wallet,
    dao: Dao,
    gateway: Gateway,
    binance: Binance,
    node: Option<LocalNode>,
    mailer: coss_mail::Mailer,
    metrics: Metrics,
    web: Option<coss_web::WebApp>,
    back_office: coss_admin::BackOffice,
    workers: Vec<JoinHandle<()>>,
}

/// A stopped platform: what is left to shut down once no task holds an engine handle.
#[derive(Debug)]
pub struct Stopped {
    engine: Engine,
    node: Option<LocalNode>,
}

impl Stopped {
    /// Stops the local chain (saving its state) and shuts the engine down once everything
    /// queued is durable. Blocking: call it after the async runtime that ran the platform is
    /// gone, so that no task still holds an engine handle.
    pub fn finish(self) -> Result<()> {
        if let Some(node) = self.node {
            node.stop();
        }
        self.engine
            .shutdown()
            .context("the engine did not shut down cleanly")
    }
}

impl Platform {
    /// Opens the platform: the database (migrated) and the server key; the market projection
    /// and the history writer; the engine, recovered from its journal (replayed into the
    /// projection); the chain; the wallets (their assets listed in the engine); the DAO revenue
    /// share (its schedule and share set); and the configured markets.
    pub async fn open(settings: Settings) -> Result<Platform> {
        let data_dir = settings.data_dir.clone();
        // Owner only: it holds the server key, the database and the mail.
        coss_identity::private_dir(&data_dir)
            .context(format!("cannot create data dir {}", data_dir.display()))?;
        // The app first: a wrong folder fails before anything starts.
        let web = match &settings.web_dir {
            Some(dir) => Some(coss_web::WebApp::open(dir).context("cannot serve the web app")?),
            None => None,
        };
        let accounts = open_accounts(&settings).await?;
        let mailer = mailer(&settings, accounts.store().clone())?;
        let gate = Gate::new(accounts.clone())
            .with_clock(settings.clock.clone())
            .with_proxies(settings.config.http.proxies()?);
        // The market projection is rebuilt from the journal at every start: the engine replays
        // the whole journal into its feed before taking new commands. The history writer puts
        // what the projection applies into the database after its own position, so it runs
        // before the engine starts replaying.
        let (history_tx, history_rx) = tokio::sync::mpsc::channel(coss_market::HISTORY_BACKLOG);
        let (market, feed) = MarketService::start_with_history(Some(history_tx));
        coss_market::spawn_history(
            accounts.store().clone(),
            market.clone(),
            history_rx,
            data_dir.clone(),
        );
        let mut engine_config = EngineConfig::new(&data_dir);
        engine_config.feed = Some(feed);
        engine_config.clock = settings.clock.clone();
        let history = accounts
            .store()
            .history_position()
            .await
            .context("cannot read the history's position")?;
        let (engine, recovery) = tokio::task::spawn_blocking(move || Engine::start(engine_config))
            .await
            .context("the engine's start was interrupted")?
            .context(format!(
                "cannot recover the engine from {}",
                data_dir.display()
            ))?;
        if history > recovery.last_seq {
            // The database saw events the journal no longer holds: a journal restored from an
            // older backup, or one that lost acknowledged commands. Going on would hand the
            // next orders the ids of lost ones and keep their events out of the history.
            let stopped = tokio::task::spawn_blocking(move || engine.shutdown()).await;
            if let Ok(Err(error)) = stopped {
                tracing::warn!(%error, "the engine did not shut down cleanly");
            }
            return Err(PlatformError::HistoryAhead {
                history,
                journal: recovery.last_seq,
                dir: coss_engine::journal_dir(&settings.data_dir),
            });
        }
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
        let mut node = None;
        let opened = open_edges(&settings, &gate, &handle, &market, &mut node).await;
        match opened {
            Ok((wallet, dao, gateway, binance)) => Ok(Platform {
                back_office: back_office(&settings, &gate, &handle, &market, &wallet)?,
                settings,
                engine,
                handle,
                gate,
                market,
                wallet,
                dao,
                gateway,
                binance,
                node,
                mailer,
                metrics: Metrics::new(),
                web,
                workers: Vec::new(),
            }),
            Err(error) => {
                // Nothing else holds an engine handle yet: shut down what started.
                drop(handle);
                if let Some(node) = node {
                    node.stop();
                }
                let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
                Err(error)
            }
        }
    }

    /// Every edge on one router: the platform's status routes, the accounts API, single
    /// sign-on (with `issuer` as its issuer URL), the wallets, the DAO, the Binance-compatible
    /// API and its streams; each route recorded with the authentication it declares.
    #[must_use]
    pub fn routes(&self, issuer: &str) -> Routes {
        let status = Status {
            engine: self.handle.clone(),
            binance: self.binance.clone(),
            metrics: self.metrics.clone(),
        };
        let provider = coss_sso::Provider::new(self.gate.clone(), issuer);
        status_routes(status)
            .merge(coss_api::router(self.gate.clone()))
            .merge(coss_sso::router(provider))
            .merge(coss_wallet::api::router(
                self.wallet.clone(),
                self.gate.clone(),
            ))
            .merge(coss_dao::api::router(self.dao.clone(), self.gate.clone()))
            .merge(coss_gateway::api::router(
                self.gateway.clone(),
                self.gate.clone(),
            ))
            .merge(coss_binance::router(self.binance.clone()))
    }

    /// The router to serve: [`Platform::routes`] with request metrics, JSON answers for
    /// unknown API paths and methods, and the web app (when configured) for every other page.
    pub fn router(&self, issuer: &str) -> Router {
        let router = coss_http::with_json_fallbacks(self.routes(issuer).into_router().route_layer(
            axum::middleware::from_fn_with_state(self.metrics.clone(), crate::metrics::track),
        ));
        match &self.web {
            Some(app) => coss_web::with_app(router, app.clone(), || {
                coss_http::not_found_error().into_response()
            }),
            None => router,
        }
    }

    /// The back office's internal API (for its own listener, never the public one), with
    /// JSON answers for unknown paths.
    pub fn internal_router(&self) -> Router {
        coss_http::with_json_fallbacks(
            coss_admin::internal::router(self.back_office.clone()).into_router(),
        )
    }

    /// The back office's side of the platform.
    #[must_use]
    pub fn back_office(&self) -> &coss_admin::BackOffice {
        &self.back_office
    }

    /// Starts the background workers: the mail outbox, the wallets' watcher, sender and
    /// sweeper, and the DAO runner (missed weeks are caught up in order, a payout cut short
    /// goes on).
    pub fn spawn_workers(&mut self) {
        let (mailer, clock) = (self.mailer.clone(), self.settings.clock.clone());
        self.workers.push(tokio::spawn(deliver_mail(mailer, clock)));
        self.workers.push(self.wallet.spawn());
        self.workers.push(tokio::spawn(run_dao(self.dao.clone())));
        self.workers.extend(self.gateway.spawn());
    }

    /// Serves the platform on `listener` until `shutdown` resolves (running the workers):
    /// then stops accepting, closes the streams, lets requests in flight finish (at most
    /// 10 s) and stops. HTTPS as well when the configuration names a certificate.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Stopped> {
        self.serve_with(listener, None, shutdown).await
    }

    /// [`Platform::serve`], and the back office's internal API on `internal` (its own
    /// listener: plain HTTP, every call signed by the operator program's key), stopped with
    /// the rest.
    pub async fn serve_with(
        mut self,
        listener: TcpListener,
        internal: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Stopped> {
        let local = listener
            .local_addr()
            .context("the listener has no address")?;
        tracing::info!(listen = %local, "COSS is up");
        let issuer = self
            .settings
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{local}"));
        tracing::info!(%issuer, "single sign-on: OpenID Connect provider (register apps with `coss sso add-client`)");
        // A bad certificate fails before any worker starts.
        let acceptor = match &self.settings.config.tls {
            Some(tls) => {
                let acceptor = crate::tls::acceptor(&tls.cert_file, &tls.key_file)?;
                tracing::info!(cert = %tls.cert_file.display(), "HTTPS and HTTP on the same listener");
                Some(acceptor)
            }
            None => None,
        };
        self.spawn_workers();
        let router = self.router(&issuer);
        let streams = self.binance.clone();
        // A halted engine (its journal could not be written: a full disk) does not come back
        // by itself, so the platform stops rather than answer 503 for ever: `Stopped::finish`
        // then returns the journal's error and `coss up` exits non-zero for its supervisor to
        // restart it once the disk has room (recovery reads back what was durable).
        let halted = self.engine.halted();
        // Graceful shutdown: stop accepting, close the streams, let requests in flight finish
        // (an order is answered once durable), and give stragglers at most DRAIN.
        let stop = async move {
            tokio::select! {
                () = shutdown => {
                    tracing::info!("shutting down: no new connections, closing streams, draining");
                }
                reason = halted => {
                    tracing::error!(%reason, "the engine halted: shutting down, to exit non-zero");
                }
            }
            streams.close_streams();
        };
        let proxies = self.settings.config.http.proxies()?;
        let limits = self.settings.config.http.connection_limits();
        let (internal_stop_tx, internal_stop) = tokio::sync::watch::channel(false);
        let internal_server = match internal {
            Some(internal) => {
                let address = internal
                    .local_addr()
                    .context("the internal listener has no address")?;
                tracing::info!(listen = %address, "back office internal API (signed calls only)");
                let router = self.internal_router();
                let mut stopped = internal_stop.clone();
                Some(tokio::spawn(async move {
                    let serving =
                        axum::serve(internal, router).with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|s| *s).await;
                        });
                    if let Err(error) = serving.await {
                        tracing::warn!(%error, "the internal API stopped");
                    }
                }))
            }
            None => None,
        };
        crate::listener::serve(listener, router, acceptor, proxies, limits, stop, DRAIN).await;
        let _ = internal_stop_tx.send(true);
        if let Some(server) = internal_server {
            let _ = tokio::time::timeout(DRAIN, server).await;
        }
        Ok(self.stop())
    }

    /// Stops the workers and lets go of every edge; what remains is shut down by
    /// [`Stopped::finish`].
    #[must_use]
    pub fn stop(self) -> Stopped {
        for worker in &self.workers {
            worker.abort();
        }
        Stopped {
            engine: self.engine,
            node: self.node,
        }
    }

    /// The settings it opened with.
    #[must_use]
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The platform's clock.
    #[must_use]
    pub fn clock(&self) -> &Clock {
        &self.settings.clock
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &EngineHandle {
        &self.handle
    }

    /// The accounts.
    #[must_use]
    pub fn accounts(&self) -> &Accounts {
        &self.gate.accounts
    }

    /// What the HTTP edges' extractors read.
    #[must_use]
    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// The market projection.
    #[must_use]
    pub fn market(&self) -> &MarketService {
        &self.market
    }

    /// The payment gateway.
    #[must_use]
    pub fn gateway(&self) -> &Gateway {
        &self.gateway
    }

    /// The wallets.
    #[must_use]
    pub fn wallet(&self) -> &Wallet {
        &self.wallet
    }

    /// The DAO revenue share.
    #[must_use]
    pub fn dao(&self) -> &Dao {
        &self.dao
    }

    /// The Binance-compatible API.
    #[must_use]
    pub fn binance(&self) -> &Binance {
        &self.binance
    }

    /// The local chain's node, when the platform runs its own.
    #[must_use]
    pub fn local_node(&self) -> Option<&LocalNode> {
        self.node.as_ref()
    }
}

/// The back office's side: the operator program's public key from the configuration, or the
/// embedded default's key pair in `admin/service.key` (made at the first start); the audit
/// log's head in `admin/audit.head`.
fn back_office(
    settings: &Settings,
    gate: &Gate,
    handle: &EngineHandle,
    market: &MarketService,
    wallet: &Wallet,
) -> Result<coss_admin::BackOffice> {
    let dir = settings.data_dir.join("admin");
    let verifier = match &settings.config.admin.service_public_key {
        Some(key) => coss_admin::ServiceVerifier::from_base64(key)
            .map_err(|e| PlatformError::Config(format!("admin.service_public_key: {e}")))?,
        None => coss_admin::ServiceKey::load(&dir.join("service.key"), true)
            .context("cannot read or create the back office's service key")?
            .verifier(),
    };
    coss_identity::private_dir(&dir).context("cannot create the admin dir")?;
    Ok(coss_admin::BackOffice::new(
        gate.accounts.clone(),
        handle.clone(),
        market.clone(),
        Some(wallet.clone()),
        settings.clock.clone(),
        verifier,
        Some(dir.join("audit.head")),
    ))
}

/// The chain, the wallets, the DAO, the markets and the Binance API, in that order. The local
/// node, once started, is left in `node` so that a failure can stop it.
async fn open_edges(
    settings: &Settings,
    gate: &Gate,
    handle: &EngineHandle,
    market: &MarketService,
    node: &mut Option<LocalNode>,
) -> Result<(Wallet, Dao, Gateway, Binance)> {
    let chain = chain(settings, node).await?;
    let wallet = Wallet::open(
        chain,
        gate.accounts.clone(),
        handle.clone(),
        settings.clock.clone(),
    )
    .await
    .context("cannot open the wallets")?;
    if let Some(node) = node.as_ref() {
        coss_contracts::fund_hot_wallet(
            node,
            &settings.data_dir.join("chain"),
            wallet.hot_address(),
        )
        .await
        .context("cannot fund the local hot wallet")?;
        // The platform's own chain: newcomers may ask for test funds.
        wallet.offer_test_funds(settings.data_dir.join("chain"));
    }
    let dao = open_dao(&wallet, handle, &settings.config.dao, &settings.clock).await?;
    list_markets(handle, market, &settings.config.markets).await?;
    let mut gateway_config = settings.config.gateway.clone();
    if gateway_config.public_url.is_none() {
        gateway_config.public_url = Some(
            settings
                .public_url
                .clone()
                .unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_owned()),
        );
    }
    // On the platform's own local chain (development), webhooks may reach this machine.
    gateway_config.allow_private_webhooks |= node.is_some();
    let gateway = Gateway::new(
        gateway_config,
        wallet.store().clone(),
        handle.clone(),
        wallet.clone(),
        Some(market.clone()),
        settings.clock.clone(),
    )
    .context("cannot open the payment gateway")?;
    let binance = Binance::new(
        gate.clone(),
        handle.clone(),
        market.clone(),
        settings.config.limits.into(),
    );
    Ok((wallet, dao, gateway, binance))
}

/// The chain configuration from `settings.chain_config`, or the local anvil in the data dir
/// (started, or adopted from a run that was killed).
async fn chain(settings: &Settings, node: &mut Option<LocalNode>) -> Result<ChainConfig> {
    if let Some(path) = &settings.chain_config {
        let text = std::fs::read_to_string(path).context(format!(
            "cannot read the chain configuration {}",
            path.display()
        ))?;
        let config: ChainConfig = serde_json::from_str(&text)
            .context(format!("{} is not a chain configuration", path.display()))?;
        tracing::info!(
            chain_id = config.chain_id,
            "chain: the configured node (COSS_CHAIN_CONFIG)"
        );
        return Ok(config);
    }
    let local = coss_contracts::local_chain(&settings.data_dir.join("chain"))
        .await
        .context("cannot start the local chain")?;
    let deployment = local.deployment;
    let ipc = local.ipc.display().to_string();
    tracing::info!(
        ipc = %ipc,
        http = %local.node.endpoint(),
        coss = %deployment.coss,
        sale = %deployment.sale,
        tusd = %deployment.tusd,
        "chain: a local anvil in the data dir (set COSS_CHAIN_CONFIG for a real node)"
    );
    *node = Some(local.node);
    let mut config = ChainConfig::development(
        coss_contracts::LOCAL_CHAIN_ID,
        &ipc,
        deployment.coss,
        deployment.tusd,
    );
    config.sale = Some(deployment.sale);
    Ok(config)
}

/// The platform's accounts alone: its database (`database_url`, or SQLite `coss.db` in the
/// data dir, migrated) and its server key. For commands that need no engine or chain.
pub async fn open_accounts(settings: &Settings) -> Result<Accounts> {
    let data_dir = &settings.data_dir;
    let store = match settings.database_url.as_deref() {
        Some(url) => {
            let store = coss_store::Store::open(url)
                .await
                .context("cannot open the database")?;
            tracing::info!(backend = ?store.backend(), "database open");
            store
        }
        None => {
            let store = coss_store::Store::open_in(data_dir).await.context(format!(
                "cannot open the database in {}",
                data_dir.display()
            ))?;
            tracing::info!(database = %data_dir.join("coss.db").display(), "database open (SQLite)");
            store
        }
    };
    let key_file = settings
        .secret_key_file
        .clone()
        .unwrap_or_else(|| data_dir.join("secret.key"));
    let vault = coss_identity::Vault::open_or_create(&key_file)
        .context("cannot read or create the server key")?;
    tracing::info!(key_file = %key_file.display(), "server key loaded (seals TOTP seeds, API secrets, signing keys)");
    Accounts::new(store, vault).context("cannot set up accounts")
}

/// The DAO revenue share over the wallet's chain: the core's schedule and share configured.
async fn open_dao(
    wallet: &Wallet,
    engine: &EngineHandle,
    settings: &DaoSettings,
    clock: &Clock,
) -> Result<Dao> {
    let chain = wallet.config();
    let coss = chain.asset("COSS").ok_or_else(|| {
        PlatformError::Config(
            "the chain configuration lists no COSS asset (the DAO needs it)".into(),
        )
    })?;
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
    let dao = Dao::new(
        engine.clone(),
        wallet.store().clone(),
        source,
        config,
        clock.clone(),
    );
    dao.configure()
        .await
        .context("cannot configure the DAO revenue share")?;
    Ok(dao)
}

/// Runs the DAO's due steps every [`DAO_TICK`].
async fn run_dao(runner: Dao) {
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
}

/// Lists the configured markets the engine does not have yet (once the projection has caught
/// up with the journal, so it knows what is listed).
async fn list_markets(
    engine: &EngineHandle,
    market: &MarketService,
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
                    .ok_or_else(|| {
                        PlatformError::Config(format!(
                            "market {}: no listed asset {symbol}",
                            wanted.id
                        ))
                    })
            };
            let (base, quote) = (asset(&wanted.base)?, asset(&wanted.quote)?);
            let amount = |text: &str, decimals: u8, what: &str| {
                coss_types::Amount::parse_decimal(text, decimals).map_err(|e| {
                    PlatformError::Config(format!("market {}: {what} {text:?}: {e}", wanted.id))
                })
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
            return Err(PlatformError::Config(format!(
                "market {} could not be listed: {reason}",
                wanted.id
            )));
        }
        if let Some(last) = receipt.events.last() {
            market.caught_up(last.seq).await;
        }
        tracing::info!(base = %wanted.base, quote = %wanted.quote, id = wanted.id, "market listed now");
    }
    Ok(())
}

/// The outbox worker: SMTP when `smtp_url` is set, else the maildir `mail/` in the data dir.
fn mailer(settings: &Settings, store: coss_store::Store) -> Result<coss_mail::Mailer> {
    let delivery = match &settings.smtp_url {
        Some(url) => {
            tracing::info!("email: delivered over SMTP (COSS_SMTP_URL)");
            coss_mail::Delivery::smtp(url).context("COSS_SMTP_URL")?
        }
        None => {
            let maildir: PathBuf = settings.data_dir.join("mail");
            tracing::info!(maildir = %maildir.display(), "email: delivered to a maildir (set COSS_SMTP_URL for SMTP)");
            coss_mail::Delivery::Maildir(maildir)
        }
    };
    let base = settings.public_url.as_deref().unwrap_or(DEFAULT_PUBLIC_URL);
    coss_mail::Mailer::new(store, delivery, &settings.mail_from, base).context("email settings")
}

/// Delivers due outbox messages every [`MAIL_TICK`] until stopped.
async fn deliver_mail(mailer: coss_mail::Mailer, clock: Clock) {
    let mut tick = tokio::time::interval(MAIL_TICK);
    loop {
        tick.tick().await;
        if let Err(error) = mailer.run_once(clock.now().as_i64(), 50).await {
            tracing::warn!(%error, "email outbox");
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn interrupted() {
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
