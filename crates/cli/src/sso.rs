//! `coss sso …`: register OpenID Connect clients and rotate the ID-token signing key.

use anyhow::{Context, Result};
use clap::Subcommand;
use std::path::PathBuf;

#[derive(Debug, Subcommand)]
pub enum SsoCommand {
    /// Registers an app that signs users in with their COSS account; prints its client id
    /// (and secret, shown once) as JSON.
    AddClient {
        #[command(flatten)]
        data: crate::DataDir,
        /// The database (default SQLite in the data dir).
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
        /// Shown on the consent page.
        #[arg(long)]
        name: String,
        /// Where the app receives codes (exact; repeat for several).
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// One of the platform's own apps: no consent page.
        #[arg(long)]
        first_party: bool,
        /// A public client (mobile or single-page app): no secret, PKCE only.
        #[arg(long)]
        public: bool,
    },
    /// Makes a new ID-token signing key now (the old one stays published for 7 days).
    RotateKeys {
        #[command(flatten)]
        data: crate::DataDir,
        /// The database (default SQLite in the data dir).
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
    },
}

pub fn run(command: SsoCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let now = coss_clock::Clock::system().now().as_i64();
        match command {
            SsoCommand::AddClient {
                data,
                database_url,
                name,
                redirect_uris,
                first_party,
                public,
            } => {
                let provider = provider(data.resolve()?, database_url.as_deref()).await?;
                let client = provider
                    .register_client(&name, &redirect_uris, first_party, !public, now)
                    .await
                    .context("client refused")?;
                println!(
                    "{}",
                    serde_json::json!({
                        "client_id": client.client_id,
                        "client_secret": client.client_secret,
                        "first_party": first_party,
                    })
                );
            }
            SsoCommand::RotateKeys { data, database_url } => {
                let provider = provider(data.resolve()?, database_url.as_deref()).await?;
                let kid = provider.rotate_keys(now).await.context("cannot rotate")?;
                println!("{}", serde_json::json!({ "kid": kid }));
            }
        }
        Ok(())
    })
}

async fn provider(data_dir: PathBuf, database_url: Option<&str>) -> Result<coss_sso::Provider> {
    let config = coss_server::Config::defaults()?;
    let settings =
        coss_server::Settings::from_env(data_dir, database_url.map(str::to_owned), config);
    let accounts = coss_server::open_accounts(&settings).await?;
    let issuer = settings
        .public_url
        .unwrap_or_else(|| "http://127.0.0.1:8080".into());
    Ok(coss_sso::Provider::new(
        coss_http::Gate::new(accounts),
        &issuer,
    ))
}
