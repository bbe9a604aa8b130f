//! `coss up`'s settings: a TOML file (`config/coss.toml` holds the defaults and documents
//! every value) with environment overrides.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::Path;

/// The built-in defaults.
const DEFAULTS: &str = include_str!("../../../config/coss.toml");

/// Everything `coss up` reads from its configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
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
        config.close = coss_dao::WeeklyClose::parse(&self.close)?;
        if self.share_ppm > coss_core::PPM {
            bail!("dao.share_ppm is at most 1000000 (100%)");
        }
        config.share_ppm = self.share_ppm;
        config.min_holding = coss_types::Amount::parse_decimal(&self.min_holding, decimals)
            .map_err(|e| anyhow::anyhow!("dao.min_holding: {e}"))?
            .0;
        if self.pay_chunk == 0 || self.pay_chunk > coss_core::MAX_PAY_CHUNK {
            bail!("dao.pay_chunk is 1 to {}", coss_core::MAX_PAY_CHUNK);
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
}

impl Default for Limits {
    fn default() -> Self {
        let limits = coss_binance::RateLimits::default();
        Limits {
            weight_per_minute: limits.weight_per_minute,
            orders_per_10s: limits.orders_per_10s,
            orders_per_day: limits.orders_per_day,
        }
    }
}

impl From<Limits> for coss_binance::RateLimits {
    fn from(l: Limits) -> Self {
        coss_binance::RateLimits {
            weight_per_minute: l.weight_per_minute,
            orders_per_10s: l.orders_per_10s,
            orders_per_day: l.orders_per_day,
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
        let (text, source) = match explicit {
            Some(path) => (
                std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the configuration {}", path.display()))?,
                path.display().to_string(),
            ),
            None if in_data_dir.is_file() => (
                std::fs::read_to_string(&in_data_dir)
                    .with_context(|| format!("cannot read {}", in_data_dir.display()))?,
                in_data_dir.display().to_string(),
            ),
            None => (DEFAULTS.to_owned(), "built-in defaults".to_owned()),
        };
        let mut config: Config =
            toml::from_str(&text).with_context(|| format!("invalid configuration ({source})"))?;
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
                    .with_context(|| format!("{name} must be a whole number"))?;
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
            _ => bail!("COSS_TLS_CERT and COSS_TLS_KEY go together"),
        }
        let mut ids = std::collections::BTreeSet::new();
        for market in &self.markets {
            if !ids.insert(market.id) {
                bail!("market id {} is configured twice", market.id);
            }
        }
        Ok(())
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
        assert!(bad(|s| s.close = "SUNDAY 5".into()).contains("weekly close"));
        assert!(bad(|s| s.share_ppm = 1_000_001).contains("share_ppm"));
        assert!(bad(|s| s.min_holding = "0.000000001".into()).contains("min_holding"));
        assert!(bad(|s| s.pay_chunk = 0).contains("pay_chunk"));
        assert!(bad(|s| s.pay_chunk = coss_core::MAX_PAY_CHUNK + 1).contains("pay_chunk"));
    }
}
