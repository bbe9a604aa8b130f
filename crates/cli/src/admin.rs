//! `coss admin …`: the back office. `bootstrap` makes the first superadmin on the server
//! itself (never over the network); `serve` runs the operator program, a separate process
//! that reaches the platform only through its signed internal API; `audit verify` checks the
//! audit log's hash chain; `keygen` makes a service key for a program on another machine.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Makes the first superadmin (only while no operator exists). Reads the password from
    /// the first line of standard input; prints the authenticator secret and URI once.
    Bootstrap {
        #[command(flatten)]
        data: crate::DataDir,
        /// The database (default SQLite in the data dir).
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
        /// The superadmin's email.
        #[arg(long)]
        email: String,
    },
    /// Runs the operator program: the back office's web app and its calls, signed and
    /// forwarded to the platform's internal API.
    Serve {
        #[command(flatten)]
        data: crate::DataDir,
        /// Where operators reach it.
        #[arg(
            long,
            env = "COSS_ADMIN_CONSOLE_LISTEN",
            default_value = "127.0.0.1:8090"
        )]
        listen: String,
        /// The platform's internal API (`coss up --admin-listen`).
        #[arg(
            long,
            env = "COSS_ADMIN_INTERNAL_URL",
            default_value = "http://127.0.0.1:8091"
        )]
        internal_url: String,
        /// The service key (default `admin/service.key` in the data dir, which `coss up` makes).
        #[arg(long, env = "COSS_ADMIN_SERVICE_KEY")]
        service_key: Option<PathBuf>,
        /// The back office's built web app (`web/dist-admin`).
        #[arg(long, env = "COSS_ADMIN_WEB_DIR")]
        web_dir: Option<PathBuf>,
        /// Mark the session cookie Secure (when operators reach it over HTTPS).
        #[arg(long)]
        secure_cookie: bool,
    },
    /// The audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Makes a service key file for an operator program and prints its public half (for
    /// `[admin] service_public_key` in the platform's configuration).
    Keygen {
        /// Where to write the key (owner-only; refuses to overwrite).
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Checks the whole hash chain (and against the head `coss up` recorded): exits non-zero
    /// naming the first changed, removed or reordered entry.
    Verify {
        #[command(flatten)]
        data: crate::DataDir,
        /// The database (default SQLite in the data dir).
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
        /// One JSON line.
        #[arg(long)]
        json: bool,
    },
}

pub fn run(command: AdminCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match command {
            AdminCommand::Bootstrap {
                data,
                database_url,
                email,
            } => {
                let data_dir = data.resolve()?;
                coss_identity::private_dir(&data_dir)
                    .with_context(|| format!("cannot create {}", data_dir.display()))?;
                let config = coss_server::Config::load(None, &data_dir)?;
                let settings =
                    coss_server::Settings::from_env(data_dir.clone(), database_url, config);
                let accounts = coss_server::open_accounts(&settings).await?;
                let mut password = String::new();
                std::io::stdin()
                    .lock()
                    .read_line(&mut password)
                    .context("cannot read the password from standard input")?;
                let password =
                    zeroize::Zeroizing::new(password.trim_end_matches(['\r', '\n']).to_owned());
                let now = settings.clock.now().as_i64();
                let enrolment = coss_admin::bootstrap(
                    &accounts,
                    Some(&data_dir.join("admin").join("audit.head")),
                    &email,
                    &password,
                    now,
                )
                .await
                .map_err(|e| anyhow::anyhow!("{} ({})", e, e.code()))?;
                println!(
                    "{}",
                    serde_json::json!({
                        "email": email.trim().to_lowercase(),
                        "role": "superadmin",
                        "totp_secret": enrolment.secret.expose(),
                        "otpauth_uri": enrolment.otpauth_uri.expose(),
                    })
                );
                Ok(())
            }
            AdminCommand::Serve {
                data,
                listen,
                internal_url,
                service_key,
                web_dir,
                secure_cookie,
            } => {
                crate::init_tracing();
                let key_file = match service_key {
                    Some(file) => file,
                    None => data.resolve()?.join("admin").join("service.key"),
                };
                let key = coss_admin::ServiceKey::load(&key_file, false).context(
                    "cannot read the service key (start `coss up` once, or `coss admin keygen`)",
                )?;
                let app = match web_dir {
                    Some(dir) => Some(
                        coss_web::WebApp::open(&dir)
                            .context("cannot serve the back office's app")?,
                    ),
                    None => None,
                };
                let console = coss_admin::console::Console::new(
                    &internal_url,
                    key,
                    secure_cookie,
                    coss_clock::Clock::system(),
                )
                .map_err(|e| anyhow::anyhow!("{}", e.message))?;
                let listener = tokio::net::TcpListener::bind(&listen)
                    .await
                    .with_context(|| format!("cannot listen on {listen}"))?;
                tracing::info!(%listen, %internal_url, "back office console");
                axum::serve(
                    listener,
                    console
                        .router(app)
                        .into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(coss_server::interrupted())
                .await
                .context("the console stopped")?;
                Ok(())
            }
            AdminCommand::Audit {
                command:
                    AuditCommand::Verify {
                        data,
                        database_url,
                        json,
                    },
            } => {
                let data_dir = data.resolve()?;
                let config = coss_server::Config::load(None, &data_dir)?;
                let settings =
                    coss_server::Settings::from_env(data_dir.clone(), database_url, config);
                let accounts = coss_server::open_accounts(&settings).await?;
                let head = coss_admin::read_head(&data_dir.join("admin").join("audit.head"))
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let verdict = coss_admin::audit::verify(accounts.store(), head)
                    .await
                    .context("cannot read the audit log")?;
                if json {
                    println!("{}", serde_json::to_string(&verdict)?);
                } else if let Some(problem) = &verdict.problem {
                    println!(
                        "audit log BROKEN after {} good entries: {problem}",
                        verdict.entries
                    );
                } else {
                    println!(
                        "audit log intact: {} entries, head {}",
                        verdict.entries, verdict.head
                    );
                }
                if !verdict.intact() {
                    bail!("the audit log was tampered with");
                }
                Ok(())
            }
            AdminCommand::Keygen { out } => {
                if out.exists() {
                    bail!("{} exists; not overwriting a key", out.display());
                }
                let key = coss_admin::ServiceKey::load(&out, true)
                    .with_context(|| format!("cannot write {}", out.display()))?;
                println!(
                    "{}",
                    serde_json::json!({
                        "key_file": out.display().to_string(),
                        "service_public_key": key.public_base64(),
                    })
                );
                Ok(())
            }
        }
    })
}
