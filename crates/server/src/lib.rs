//! The COSS platform as one value. [`Platform::open`] opens everything in order: the database
//! and the server key, the market projection and its history writer, the engine (recovering
//! from its journal), the chain (a configured node, or the local anvil in the data dir), the
//! wallets, the DAO revenue share and the configured markets. [`Platform::router`] mounts every
//! edge on one router (accounts, single sign-on, wallets, the DAO, the Binance-compatible API
//! and its streams, health, engine status, metrics and the OpenAPI documents), and
//! [`Platform::serve`] runs the background workers (mail, wallets, DAO) and serves HTTP and
//! HTTPS on one listener until told to stop. `coss up`, `coss dao …`, the benchmarks and the
//! tests all build the platform here; the binary only parses arguments.

mod config;
mod listener;
mod metrics;
mod platform;
mod routes;
mod tls;

pub use config::{Config, DaoSettings, HttpSettings, Limits, MarketConfig, Settings, TlsConfig};
pub use listener::ConnectionLimits;
pub use metrics::Metrics;
pub use platform::{Platform, Stopped, interrupted, open_accounts};
pub use routes::documents;

/// Why the platform could not open or serve.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// A setting is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// The history database holds events the journal does not: the journal lost
    /// acknowledged commands, or was restored from an older backup, or belongs to another
    /// database. Starting would hand new orders the ids of lost ones.
    #[error(
        "the history database holds events through sequence {history}, but the journal in {} \
         ends at event {journal}: the journal lost acknowledged commands or belongs to another \
         database. Nothing was changed. Restore the journal that matches this database; or, if \
         the journal was restored from a backup on purpose, empty the history with \
         `coss history reset` so that the next start rebuilds it from the journal",
        dir.display()
    )]
    HistoryAhead {
        /// The history's last event.
        history: u64,
        /// The journal's last event.
        journal: u64,
        /// The journal directory.
        dir: std::path::PathBuf,
    },
    /// A part of the platform failed (what was being done, and why).
    #[error("{what}: {source}")]
    Failed {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl PlatformError {
    /// A stable, machine-readable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::HistoryAhead { .. } => "history_ahead",
            Self::Failed { .. } => "failed",
        }
    }
}

/// Names what failed.
pub(crate) trait Context<T> {
    /// On error, says what was being done.
    fn context(self, what: impl Into<String>) -> Result<T, PlatformError>;
}

impl<T, E: std::error::Error + Send + Sync + 'static> Context<T> for Result<T, E> {
    fn context(self, what: impl Into<String>) -> Result<T, PlatformError> {
        self.map_err(|source| PlatformError::Failed {
            what: what.into(),
            source: Box::new(source),
        })
    }
}
