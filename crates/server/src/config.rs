//! The platform's settings: a TOML file (`config/coss.toml` holds the defaults and documents
//! every value) with environment overrides, and the [`Settings`] the platform opens with.

use serde::Deserialize;
use std::path::{Path, PathBuf};

use crate::PlatformError;

type Result<T> = std::result::Result<T, PlatformError>;

fn invalid(message: impl Into<String>) -> PlatformError {
    PlatformError::Config(message.into())
}

/// The built-in defaults.
const DEFAULTS: &str = include_str!("../../../config/coss.toml");

/// Everything the platform reads from its configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The HTTP edge.
    #[serde(default)]
    pub http: HttpSettings,
    /// Rate limits of the Binance-compatible API.
    #[serde(default)]
    pub limits: Limits,
    /// Markets listed at start.
    #[serde(default)]
    pub markets: Vec<MarketConfig>,
    /// HTTPS on the same listener (off when absent).
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// The DAO revenue share.
    #[serde(default)]
    pub dao: DaoSettings,
    /// The payment gateway.
    #[serde(default)]
    pub gateway: coss_gateway::GatewayConfig,
    /// The back office's internal API.
    #[serde(default)]
    pub admin: AdminSettings,
}

/// The back office's internal API (served on its own listener, `coss up --admin-listen`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSettings {
    /// The operator program's Ed25519 public key (base64, printed by `coss admin keygen`).
    /// Absent: the embedded default, a key pair in `admin/service.key` in the data dir,
    /// made at the first start, for a `coss admin serve` on the same machine.
    #[serde(default)]
    pub service_public_key: Option<String>,
}

/// The HTTP edge's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    /// Proxies (addresses or CIDR networks) whose `X-Forwarded-For` names the client, e.g.
    /// the nginx in front of COSS. Empty: the TCP peer is the client and the header is
    /// ignored.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Connections one client address may hold open at once (trusted proxies excepted).
    #[serde(default = "max_connections_per_address")]
    pub max_connections_per_address: usize,
    /// Milliseconds for the TLS handshake, for each request's headers, and of idleness
    /// between requests on a kept-alive connection.
    #[serde(default = "header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// The longest pause, in milliseconds, while a request body arrives.
    #[serde(default = "body_timeout_ms")]
    pub body_timeout_ms: u64,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            trusted_proxies: Vec::new(),
            max_connections_per_address: max_connections_per_address(),
            header_timeout_ms: header_timeout_ms(),
            body_timeout_ms: body_timeout_ms(),
        }
    }
}

fn max_connections_per_address() -> usize {
    // Browsers open 6 per host; a trading bot a handful; 256 leaves room for a small office
    // behind one NAT address while one client cannot fill the descriptor table.
    256
}

fn header_timeout_ms() -> u64 {
    20_000
}

fn body_timeout_ms() -> u64 {
    20_000
}

impl HttpSettings {
    /// The listener's limits.
    #[must_use]
    pub fn connection_limits(&self) -> crate::ConnectionLimits {
        crate::ConnectionLimits {
            max_per_address: self.max_connections_per_address.max(1),
            header_timeout: std::time::Duration::from_millis(self.header_timeout_ms.max(1)),
            body_timeout: std::time::Duration::from_millis(self.body_timeout_ms.max(1)),
        }
    }

    /// The trusted proxies, parsed.
    pub fn proxies(&self) -> Result<coss_http::TrustedProxies> {
        coss_http::TrustedProxies::parse(&self.trusted_proxies)
            .map_err(|e| invalid(format!("http.trusted_proxies: {e}")))
    }
}

/// The DAO revenue share's settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaoSettings {
    /// When weeks close, in UTC: a weekday and a time (`SUN 05:00`).
    pub close: String,
    /// The holders' share of shareable fees, in parts per million (500000 = 50%).
    pub share_ppm: u32,
    /// The smallest holding that counts, in COSS.
    pub min_holding: String,
    /// Holders paid per core command.
    pub pay_chunk: u32,
}

impl Default for DaoSettings {
    fn default() -> Self {
        DaoSettings {
            close: "SUN 05:00".into(),
            share_ppm: coss_core::DEFAULT_HOLDERS_SHARE_PPM,
            min_holding: "1".into(),
            pay_chunk: 2_000,
        }
    }
}

impl DaoSettings {
    /// The runner's configuration, for the COSS asset `coss` with `decimals`.
    pub fn to_config(
        &self,
        coss: coss_types::AssetId,
        decimals: u8,
    ) -> Result<coss_dao::DaoConfig> {
        let mut config = coss_dao::DaoConfig::new(coss);
        config.close = coss_dao::WeeklyClose::parse(&self.close)
            .map_err(|e| invalid(format!("dao.close: {e}")))?;
        if self.share_ppm > coss_core::PPM {
            return Err(invalid("dao.share_ppm is at most 1000000 (100%)"));
        }
        config.share_ppm = self.share_ppm;
        config.min_holding = coss_types::Amount::parse_decimal(&self.min_holding, decimals)
            .map_err(|e| invalid(format!("dao.min_holding: {e}")))?
            .0;
        if self.pay_chunk == 0 || self.pay_chunk > coss_core::MAX_PAY_CHUNK {
            return Err(invalid(format!(
                "dao.pay_chunk is 1 to {}",
                coss_core::MAX_PAY_CHUNK
            )));
        }
        config.pay_chunk = self.pay_chunk;
        Ok(config)
    }
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The certificate chain.
    pub cert_file: std::path::PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: std::path::PathBuf,
}

/// Rate limits.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Request weight per address per minute.
    pub weight_per_minute: u32,
    /// New orders per account per 10 seconds.
    pub orders_per_10s: u32,
    /// New orders per account per day.
    pub orders_per_day: u32,
    /// Stream (WebSocket) connections one address may hold open at once.
    #[serde(default = "stream_connections_per_address")]
    pub stream_connections_per_address: u32,
}

fn stream_connections_per_address() -> u32 {
    coss_binance::RateLimits::default().stream_connections_per_address
}

impl Default for Limits {
    fn default() -> Self {
        let limits = coss_binance::RateLimits::default();
        Limits {
            weight_per_minute: limits.weight_per_minute,
            orders_per_10s: limits.orders_per_10s,
            orders_per_day: limits.orders_per_day,
            stream_connections_per_address: limits.stream_connections_per_address,
        }
    }
}

impl Limits {
    /// No rate limit at all (benchmarks and tests, whose load comes from one address).
    pub const OFF: Limits = Limits {
        weight_per_minute: 0,
        orders_per_10s: 0,
        orders_per_day: 0,
        stream_connections_per_address: 0,
    };
}

impl From<Limits> for coss_binance::RateLimits {
    fn from(l: Limits) -> Self {
        coss_binance::RateLimits {
            weight_per_minute: l.weight_per_minute,
            orders_per_10s: l.orders_per_10s,
            orders_per_day: l.orders_per_day,
            stream_connections_per_address: l.stream_connections_per_address,
        }
    }
}

/// A market to list.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarketConfig {
    /// Its id in the exchange core.
    pub id: u32,
    /// Base asset ticker.
    pub base: String,
    /// Quote asset ticker.
    pub quote: String,
    /// Price step, in the quote asset.
    pub tick_size: String,
    /// Quantity step, in the base asset.
    pub lot_size: String,
    /// Smallest order value, in the quote asset.
    pub min_notional: String,
}

impl Config {
    /// Reads `explicit`, else `coss.toml` in the data dir, else the defaults; then applies
    /// the environment's overrides.
    pub fn load(explicit: Option<&Path>, data_dir: &Path) -> Result<Config> {
        let in_data_dir = data_dir.join("coss.toml");
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|e| {
                invalid(format!(
                    "cannot read the configuration {}: {e}",
                    path.display()
                ))
            })
        };
        let (text, source) = match explicit {
            Some(path) => (read(path)?, path.display().to_string()),
            None if in_data_dir.is_file() => {
                (read(&in_data_dir)?, in_data_dir.display().to_string())
            }
            None => (DEFAULTS.to_owned(), "built-in defaults".to_owned()),
        };
        let mut config: Config = toml::from_str(&text)
            .map_err(|e| invalid(format!("invalid configuration ({source}): {e}")))?;
        config.apply_env(|name| std::env::var(name).ok())?;
        tracing::info!(%source, markets = config.markets.len(), "configuration loaded");
        Ok(config)
    }

    fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        for (name, field) in [
            ("COSS_WEIGHT_PER_MINUTE", &mut self.limits.weight_per_minute),
            ("COSS_ORDERS_PER_10S", &mut self.limits.orders_per_10s),
            ("COSS_ORDERS_PER_DAY", &mut self.limits.orders_per_day),
        ] {
            if let Some(value) = var(name) {
                *field = value
                    .parse()
                    .map_err(|_| invalid(format!("{name} must be a whole number")))?;
            }
        }
        match (var("COSS_TLS_CERT"), var("COSS_TLS_KEY")) {
            (Some(cert), Some(key)) => {
                self.tls = Some(TlsConfig {
                    cert_file: cert.into(),
                    key_file: key.into(),
                });
            }
            (None, None) => {}
            _ => return Err(invalid("COSS_TLS_CERT and COSS_TLS_KEY go together")),
        }
        let mut ids = std::collections::BTreeSet::new();
        for market in &self.markets {
            if !ids.insert(market.id) {
                return Err(invalid(format!(
                    "market id {} is configured twice",
                    market.id
                )));
            }
        }
        self.http.proxies()?;
        Ok(())
    }

    /// The built-in defaults (`config/coss.toml`), without environment overrides.
    pub fn defaults() -> Result<Config> {
        toml::from_str(DEFAULTS).map_err(|e| invalid(format!("built-in defaults: {e}")))
    }
}

/// How the platform opens: where its files are, its database, its configuration, its chain,
/// its mail, the address it is reached at, and its clock.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The data directory (journal, SQLite database, server key, mail, local chain).
    pub data_dir: PathBuf,
    /// `postgres://…` for PostgreSQL; `None` for SQLite `coss.db` in the data dir.
    pub database_url: Option<String>,
    /// The configuration file's contents.
    pub config: Config,
    /// A JSON chain configuration (a real node); `None` for the local anvil in the data dir.
    pub chain_config: Option<PathBuf>,
    /// The server key; `None` for `secret.key` in the data dir.
    pub secret_key_file: Option<PathBuf>,
    /// `smtp://…` to send mail over SMTP; `None` for the maildir `mail/` in the data dir.
    pub smtp_url: Option<String>,
    /// The sender of the platform's mail.
    pub mail_from: String,
    /// Where users reach the platform (the OpenID issuer and the links in emails); `None`
    /// for `http://` and the listen address.
    pub public_url: Option<String>,
    /// The built web app (`web/dist`), served at `/`; `None` serves no app.
    pub web_dir: Option<PathBuf>,
    /// The platform's clock.
    pub clock: coss_clock::Clock,
}

impl Settings {
    /// The embedded defaults for `data_dir`: SQLite, the local anvil, the maildir, the
    /// system clock and `config`.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>, config: Config) -> Settings {
        Settings {
            data_dir: data_dir.into(),
            database_url: None,
            config,
            chain_config: None,
            secret_key_file: None,
            smtp_url: None,
            mail_from: "COSS <no-reply@coss.localhost>".to_owned(),
            public_url: None,
            web_dir: None,
            clock: coss_clock::Clock::system(),
        }
    }

    /// The defaults with the environment's choices: `COSS_CHAIN_CONFIG`,
    /// `COSS_SECRET_KEY_FILE`, `COSS_SMTP_URL`, `COSS_MAIL_FROM`, `COSS_PUBLIC_URL`.
    #[must_use]
    pub fn from_env(
        data_dir: impl Into<PathBuf>,
        database_url: Option<String>,
        config: Config,
    ) -> Settings {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut settings = Settings::new(data_dir, config);
        settings.database_url = database_url;
        settings.chain_config = var("COSS_CHAIN_CONFIG").map(PathBuf::from);
        settings.secret_key_file = var("COSS_SECRET_KEY_FILE").map(PathBuf::from);
        settings.smtp_url = var("COSS_SMTP_URL");
        if let Some(from) = var("COSS_MAIL_FROM") {
            settings.mail_from = from;
        }
        settings.public_url = var("COSS_PUBLIC_URL");
        settings
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_parse_and_the_environment_overrides_them() {
        let mut config: Config = toml::from_str(DEFAULTS).unwrap();
        assert_eq!(config.limits.weight_per_minute, 6000);
        assert!(
            config
                .markets
                .iter()
                .any(|m| m.base == "ETH" && m.quote == "TUSD")
        );
        config
            .apply_env(|name| (name == "COSS_ORDERS_PER_10S").then(|| "0".to_owned()))
            .unwrap();
        assert_eq!(config.limits.orders_per_10s, 0);
        assert!(config.apply_env(|_| Some("many".into())).is_err());
    }

    #[test]
    fn trusted_proxies_are_checked_when_the_configuration_loads() {
        let mut config: Config =
            toml::from_str("[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n").unwrap();
        config.apply_env(|_| None).unwrap();
        let proxies = config.http.proxies().unwrap();
        assert!(proxies.trusts("10.1.2.3".parse().unwrap()));
        assert!(!proxies.trusts("192.0.2.1".parse().unwrap()));
        let mut bad: Config = toml::from_str("[http]\ntrusted_proxies = [\"nginx\"]\n").unwrap();
        let error = bad.apply_env(|_| None).unwrap_err().to_string();
        assert!(error.contains("trusted_proxies"), "{error}");
    }

    #[test]
    fn unknown_settings_are_refused() {
        assert!(toml::from_str::<Config>("[limits]\nweight_per_minute = 1\norders_per_10s = 1\norders_per_day = 1\nspeed = 3\n").is_err());
    }

    #[test]
    fn dao_settings_become_the_runner_configuration_and_bad_ones_are_refused() {
        let config: Config = toml::from_str(DEFAULTS).unwrap();
        let dao = config.dao.to_config(coss_types::AssetId(2), 8).unwrap();
        assert_eq!(dao.close.to_string(), "SUN 05:00");
        assert_eq!(
            (dao.share_ppm, dao.min_holding, dao.pay_chunk),
            (500_000, 100_000_000, 2_000)
        );
        let bad = |edit: fn(&mut DaoSettings)| {
            let mut settings = DaoSettings::default();
            edit(&mut settings);
            settings
                .to_config(coss_types::AssetId(2), 8)
                .unwrap_err()
                .to_string()
        };
        assert!(bad(|s| s.close = "SUNDAY 5".into()).contains("dao.close"));
        assert!(bad(|s| s.share_ppm = 1_000_001).contains("share_ppm"));
        assert!(bad(|s| s.min_holding = "0.000000001".into()).contains("min_holding"));
        assert!(bad(|s| s.pay_chunk = 0).contains("pay_chunk"));
        assert!(bad(|s| s.pay_chunk = coss_core::MAX_PAY_CHUNK + 1).contains("pay_chunk"));
    }
}
