//! The `coss` command, the one binary of the platform: `coss up` runs it on embedded defaults,
//! `coss journal verify` replays and checks a journal, `coss bench engine` measures the engine,
//! `coss chain deploy` deploys the COSS contracts to a node, and so on. The platform itself is
//! assembled by `coss-server`, the benchmarks live in `coss-bench`. Conventions every
//! subcommand follows: `--data-dir DIR` (env `COSS_DATA_DIR`, default a
//! per-user data directory), `--listen HOST:PORT` (env `COSS_LISTEN`) for servers, `--json`
//! for machine-readable output, exit code 0 only on success and a one-line error on stderr
//! otherwise. This file parses arguments and calls into the library crates; nothing more.

mod admin;
mod chain;
mod dao;
mod sso;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use coss_engine::{Engine, EngineConfig};
use std::io::Write;
use std::path::PathBuf;

/// mimalloc (many small, short-lived allocations per request on every thread: a third less
/// time in the allocator than glibc's under the API benchmark), wrapped to count live heap
/// bytes for the memory figures of `coss bench`.
#[global_allocator]
static ALLOCATOR: cap::Cap<mimalloc::MiMalloc> = cap::Cap::new(mimalloc::MiMalloc, usize::MAX);

#[derive(Debug, Parser)]
#[command(name = "coss", version, about = "COSS, the Crypto One Stop Solution")]
struct Cli {
    #[command(subcommand)]
    command: Top,
}

#[derive(Debug, Args, Clone)]
struct DataDir {
    /// Where the platform keeps its files.
    #[arg(long, env = "COSS_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDir {
    fn resolve(&self) -> Result<PathBuf> {
        match &self.data_dir {
            Some(dir) => Ok(dir.clone()),
            None => dirs::data_dir()
                .map(|d| d.join("coss"))
                .context("no per-user data directory; pass --data-dir"),
        }
    }
}

#[derive(Debug, Subcommand)]
enum Top {
    /// Runs the platform on its embedded defaults until interrupted.
    Up {
        #[command(flatten)]
        data: DataDir,
        /// Address of the HTTP API.
        #[arg(long, env = "COSS_LISTEN", default_value = "127.0.0.1:8080")]
        listen: String,
        /// The database: `postgres://…` for PostgreSQL; default SQLite `coss.db` in the data dir.
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
        /// The configuration file (TOML); default `coss.toml` in the data dir, else built in.
        #[arg(long, env = "COSS_CONFIG")]
        config: Option<PathBuf>,
        /// The built web app (`web/dist`, made by `make web`), served at `/`.
        #[arg(long, env = "COSS_WEB_DIR")]
        web_dir: Option<PathBuf>,
        /// Address of the back office's internal API (signed calls of `coss admin serve`
        /// only; never the public listener); `off` to serve none.
        #[arg(long, env = "COSS_ADMIN_LISTEN", default_value = "127.0.0.1:8091")]
        admin_listen: String,
    },
    /// Development helpers for the platform's own local chain.
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
    /// Journal tools.
    Journal {
        #[command(subcommand)]
        command: JournalCommand,
    },
    /// The history database (trades, orders, statements, candles): a projection of the
    /// journal.
    History {
        #[command(subcommand)]
        command: HistoryCommand,
    },
    /// Ethereum: deploy the COSS contracts.
    Chain {
        #[command(subcommand)]
        command: chain::ChainCommand,
    },
    /// The back office: the first superadmin, the operator program, the audit log.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// Single sign-on: register apps, rotate signing keys.
    Sso {
        #[command(subcommand)]
        command: sso::SsoCommand,
    },
    /// The DAO revenue share: snapshot, distribute, report, verify a holder's proof.
    Dao {
        #[command(subcommand)]
        command: dao::DaoCommand,
    },
    /// Benchmarks.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// Engine tools for tests and operators.
    #[command(hide = true)]
    Engine {
        #[command(subcommand)]
        command: EngineCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DevCommand {
    /// Sends 10 ETH and 10,000 tUSD on the local chain of a running `coss up` to a user's
    /// deposit address (a real deposit, credited after its confirmations). Only the platform's
    /// own anvil has test funds.
    Fund {
        #[command(flatten)]
        data: DataDir,
        /// The user's email.
        #[arg(long)]
        email: String,
        /// The database: `postgres://…`; default SQLite `coss.db` in the data dir.
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum JournalCommand {
    /// Replays a journal from the start and checks it: prints commands, last event sequence
    /// and state hash; exits non-zero on corruption.
    Verify {
        #[command(flatten)]
        data: DataDir,
        /// One JSON line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum HistoryCommand {
    /// Empties the history so that the next `coss up` rebuilds it from a full replay of the
    /// journal (with `coss up` stopped). For a journal restored from a backup on purpose:
    /// the history then runs ahead of it and `coss up` refuses to start.
    Reset {
        #[command(flatten)]
        data: DataDir,
        /// The database: `postgres://…`; default SQLite `coss.db` in the data dir.
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// What security costs: signed API requests and logins per second, with peers.
    Auth {
        /// Signed requests to check.
        #[arg(long, default_value_t = 20_000)]
        signatures: usize,
        /// Logins to time (each pays the argon2id cost).
        #[arg(long, default_value_t = 30)]
        logins: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The trading API on loopback: signed orders per second with p50/p99 latency against
    /// the same server's ping, and depth-stream fan-out to WebSocket subscribers.
    Api {
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 64)]
        connections: usize,
        /// Seconds per phase.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// WebSocket subscribers.
        #[arg(long, default_value_t = 1000)]
        subscribers: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The payment gateway: invoices created per second through the API against signed
    /// orders, and payment-detection latency from the paying block to the invoice's change.
    Gateway {
        /// Concurrent keep-alive connections.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds per phase.
        #[arg(long, default_value_t = 5)]
        seconds: u64,
        /// Payments timed.
        #[arg(long, default_value_t = 50)]
        samples: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// One DAO week end to end (close, seal, report with Merkle root, payout) for many
    /// holders and assets on the durable engine, against one journaled transfer per credit.
    Dao {
        /// COSS holders.
        #[arg(long, default_value_t = 1_000_000)]
        holders: usize,
        /// Assets in the pool.
        #[arg(long, default_value_t = 50)]
        assets: u32,
        /// Transfers timed for the peer.
        #[arg(long, default_value_t = 200_000)]
        peer_sample: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// The deposit watcher: blocks scanned per second with a million watched addresses
    /// against the node's own block delivery, and deposit-to-credit latency.
    Wallet {
        /// Watched deposit addresses (besides ten real users').
        #[arg(long, default_value_t = 1_000_000)]
        addresses: usize,
        /// Blocks of four transfers each to scan.
        #[arg(long, default_value_t = 200)]
        blocks: u64,
        /// Deposits timed from sending to credit.
        #[arg(long, default_value_t = 20)]
        samples: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Measures the order book, the exchange core and the durable engine service.
    Engine {
        /// Measured commands.
        #[arg(long, default_value_t = 2_000_000)]
        commands: usize,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also measure the engine service with its journal (needs an empty --data-dir).
        #[arg(long)]
        durable: bool,
        #[command(flatten)]
        data: DataDir,
        /// Resting orders for the memory figure.
        #[arg(long, default_value_t = 1_000_000)]
        memory_orders: usize,
        /// Timed repetitions of each throughput figure (the best is kept).
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// One JSON object.
        #[arg(long)]
        json: bool,
        /// Measure only the full core (for profiling).
        #[arg(long, hide = true)]
        only_core: bool,
    },
}

#[derive(Debug, Subcommand)]
enum EngineCommand {
    /// Feeds the seeded benchmark workload to the engine service in small batches, printing
    /// `acked N` after each batch is durable (N = the last acknowledged command index).
    Feed {
        #[command(flatten)]
        data: DataDir,
        /// Measured commands after the setup.
        #[arg(long, default_value_t = 100_000)]
        commands: usize,
        /// Workload seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Commands per batch.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Snapshot every this many commands.
        #[arg(long, default_value_t = 5_000)]
        snapshot_every: u64,
    },
}

fn main() {
    let cli = Cli::parse();
    if let Err(error) = run(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Top::Up {
            data,
            listen,
            database_url,
            config,
            web_dir,
            admin_listen,
        } => {
            init_tracing();
            let data_dir = data.resolve()?;
            let config = coss_server::Config::load(config.as_deref(), &data_dir)?;
            let mut settings = coss_server::Settings::from_env(data_dir, database_url, config);
            settings.web_dir = web_dir;
            up(settings, &listen, &admin_listen)
        }
        Top::Dev {
            command:
                DevCommand::Fund {
                    data,
                    email,
                    database_url,
                },
        } => dev_fund(data, database_url, &email),
        Top::Journal {
            command: JournalCommand::Verify { data, json },
        } => journal_verify(data.resolve()?, json),
        Top::History {
            command: HistoryCommand::Reset { data, database_url },
        } => history_reset(data, database_url),
        Top::Chain { command } => chain::run(command),
        Top::Admin { command } => admin::run(command),
        Top::Sso { command } => sso::run(command),
        Top::Dao { command } => dao::run(command),
        Top::Bench {
            command:
                BenchCommand::Auth {
                    signatures,
                    logins,
                    json,
                },
        } => print_report(&coss_bench::auth::run(signatures, logins)?, json),
        Top::Bench {
            command:
                BenchCommand::Api {
                    connections,
                    seconds,
                    subscribers,
                    json,
                },
        } => print_report(
            &coss_bench::api::run(coss_bench::api::Options {
                connections,
                seconds,
                subscribers,
            })?,
            json,
        ),
        Top::Bench {
            command:
                BenchCommand::Gateway {
                    connections,
                    seconds,
                    samples,
                    json,
                },
        } => print_report(
            &coss_bench::gateway::run(coss_bench::gateway::Options {
                connections,
                seconds,
                samples,
            })?,
            json,
        ),
        Top::Bench {
            command:
                BenchCommand::Dao {
                    holders,
                    assets,
                    peer_sample,
                    json,
                },
        } => print_report(&coss_bench::dao::run(holders, assets, peer_sample)?, json),
        Top::Bench {
            command:
                BenchCommand::Wallet {
                    addresses,
                    blocks,
                    samples,
                    json,
                },
        } => print_report(&coss_bench::wallet::run(addresses, blocks, samples)?, json),
        Top::Bench {
            command:
                BenchCommand::Engine {
                    commands,
                    seed,
                    durable,
                    data,
                    memory_orders,
                    repeats,
                    json,
                    only_core,
                },
        } => {
            if only_core {
                let rate = coss_bench::core_only(commands, seed, repeats);
                println!("{}", serde_json::json!({ "core_cmds_per_s": rate }));
                return Ok(());
            }
            let durable_data_dir = if durable {
                Some(
                    data.data_dir
                        .context("--durable needs --data-dir (an empty directory)")?,
                )
            } else {
                None
            };
            let options = coss_bench::EngineBenchOptions {
                commands,
                seed,
                durable_data_dir,
                memory_orders,
                repeats,
            };
            let report = coss_bench::engine(&options, &|| ALLOCATOR.allocated())?;
            print_report(&serde_json::to_value(&report)?, json)
        }
        Top::Engine {
            command:
                EngineCommand::Feed {
                    data,
                    commands,
                    seed,
                    batch,
                    snapshot_every,
                },
        } => feed(data.resolve()?, commands, seed, batch, snapshot_every),
    }
}

/// Runs the platform until SIGINT or SIGTERM: opens it, serves it on `listen`, then lets
/// requests in flight finish, stops the local chain and makes the journal durable.
fn up(settings: coss_server::Settings, listen: &str, admin_listen: &str) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let stopped = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let internal = match admin_listen {
            "off" => None,
            address => Some(
                tokio::net::TcpListener::bind(address)
                    .await
                    .with_context(|| format!("cannot listen on {address} (--admin-listen)"))?,
            ),
        };
        let platform = coss_server::Platform::open(settings).await?;
        anyhow::Ok(
            platform
                .serve_with(listener, internal, coss_server::interrupted())
                .await?,
        )
    })?;
    // Ends every task (each step of the wallets' is safe to cut short) and with them their
    // engine handles, so that the engine can stop.
    drop(runtime);
    stopped.finish()?;
    tracing::info!("COSS stopped");
    Ok(())
}

/// A benchmark's report: one JSON line with `--json`, else pretty.
fn print_report(report: &serde_json::Value, json: bool) -> Result<()> {
    if json {
        println!("{report}");
    } else {
        println!("{}", serde_json::to_string_pretty(report)?);
    }
    Ok(())
}

pub(crate) fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

fn history_reset(data: DataDir, database_url: Option<String>) -> Result<()> {
    let data_dir = data.resolve()?;
    let config = coss_server::Config::load(None, &data_dir)?;
    let settings = coss_server::Settings::from_env(data_dir, database_url, config);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(async {
            let accounts = coss_server::open_accounts(&settings).await?;
            let before = accounts.store().history_position().await?;
            accounts.store().reset_history().await?;
            println!(
                "history emptied (it held events through {before}); the next start rebuilds it \
                 from the journal"
            );
            anyhow::Ok(())
        })
}

fn dev_fund(data: DataDir, database_url: Option<String>, email: &str) -> Result<()> {
    let data_dir = data.resolve()?;
    if std::env::var_os("COSS_CHAIN_CONFIG").is_some() {
        bail!("test funds exist only on the platform's own local chain (COSS_CHAIN_CONFIG is set)");
    }
    let config = coss_server::Config::load(None, &data_dir)?;
    let settings = coss_server::Settings::from_env(data_dir.clone(), database_url, config);
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(async {
            let accounts = coss_server::open_accounts(&settings).await?;
            let user = accounts
                .store()
                .user_by_email(&email.trim().to_lowercase())
                .await?
                .with_context(|| format!("no account with the email {email}"))?;
            let now = settings.clock.now().as_i64();
            let address = coss_wallet::dev::recorded_deposit_address(
                accounts.store(),
                coss_contracts::LOCAL_CHAIN_ID,
                user.id,
                now,
            )
            .await?;
            let sent = coss_wallet::dev::send_test_funds(&data_dir.join("chain"), address).await?;
            println!(
                "sent {} ETH ({}) and {} tUSD ({}) to {} ({email}); the deposit is credited after \
                 its confirmations",
                sent.eth, sent.eth_tx, sent.tusd, sent.tusd_tx, sent.address
            );
            anyhow::Ok(())
        })
}

fn journal_verify(data_dir: PathBuf, json: bool) -> Result<()> {
    let verified = coss_engine::verify(&data_dir)
        .with_context(|| format!("journal in {} does not verify", data_dir.display()))?;
    if json {
        let line = serde_json::json!({
            "commands": verified.commands,
            "last_seq": verified.last_seq,
            "state_hash": verified.state_hash.to_string(),
            "snapshots_checked": verified.snapshots_checked,
            "torn_tail": verified.torn_tail.as_ref().map(|t| serde_json::json!({
                "file": t.file.display().to_string(),
                "offset": t.offset,
                "dropped_bytes": t.dropped_bytes,
            })),
        });
        println!("{line}");
    } else {
        println!(
            "{} commands, last event {}, state hash {}, {} snapshots checked",
            verified.commands, verified.last_seq, verified.state_hash, verified.snapshots_checked
        );
        if let Some(torn) = verified.torn_tail {
            println!(
                "torn tail: {} bytes at {} offset {} (not yet truncated)",
                torn.dropped_bytes,
                torn.file.display(),
                torn.offset
            );
        }
    }
    Ok(())
}

fn feed(
    data_dir: PathBuf,
    commands: usize,
    seed: u64,
    batch: usize,
    snapshot_every: u64,
) -> Result<()> {
    let mut config = EngineConfig::new(&data_dir);
    config.snapshot_every = snapshot_every;
    let (engine, recovery) = Engine::start(config)?;
    let workload = coss_bench::workload::generate(commands, seed);
    let handle = engine.handle();
    let all: Vec<_> = workload
        .setup
        .into_iter()
        .chain(workload.commands)
        .map(|e| e.command)
        .skip(usize::try_from(recovery.commands).unwrap_or(usize::MAX))
        .collect();
    let mut out = std::io::stdout().lock();
    for chunk in all.chunks(batch.max(1)) {
        let receipt = handle.submit_batch(chunk.to_vec())?;
        let last = receipt.first_index + receipt.outcomes.len() as u64 - 1;
        writeln!(out, "acked {last}")?;
        out.flush()?;
    }
    drop(handle);
    engine.shutdown()?;
    Ok(())
}
