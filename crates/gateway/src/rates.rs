//! Fiat rates for invoices priced in a fiat currency: the median of every source that
//! answers — an asset pegged to the currency (`TUSD` is one US dollar), COSS's own markets
//! against a pegged asset (the book's mid, else the last trade), and configured HTTP sources
//! (a URL template and a JSON pointer). A source that fails or times out is skipped and
//! logged; invoicing stops only when none answers. Rates are integers scaled by
//! 10^[`RATE_DECIMALS`] (currency per whole asset unit) and kept [`CACHE_MS`], so a burst of
//! invoices costs the sources one request per pair.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use coss_clock::Clock;
use coss_market::MarketService;
use coss_types::Side;
use serde::Deserialize;

use crate::GatewayConfig;

/// Decimal places of a rate.
pub const RATE_DECIMALS: u8 = 12;
/// How long a rate is reused.
pub const CACHE_MS: i64 = 30_000;
/// How long an HTTP source may take.
pub const SOURCE_TIMEOUT: Duration = Duration::from_secs(3);

/// An HTTP rate source.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct HttpSource {
    /// Its name (shown with the rates it gave).
    pub name: String,
    /// The URL, with `{asset}` and `{currency}` replaced by the pair (`ETH`, `USD`).
    pub url: String,
    /// Where the rate is in the JSON answer (RFC 6901 pointer), a number or a decimal string.
    pub pointer: String,
}

/// A rate and the sources it is the median of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    /// Currency per whole asset unit, scaled by 10^[`RATE_DECIMALS`].
    pub scaled: u128,
    /// The sources that answered, with what each said (`coss=3000.5,peg=1`).
    pub sources: String,
}

impl Rate {
    /// The rate as a decimal string.
    #[must_use]
    pub fn decimal(&self) -> String {
        crate::invoices::decimal(coss_types::Amount(self.scaled), RATE_DECIMALS)
    }
}

/// The rate sources.
#[derive(Debug)]
pub struct Rates {
    pegs: Vec<(String, String)>,
    http: Vec<HttpSource>,
    markets: Option<MarketService>,
    client: reqwest::Client,
    clock: Clock,
    cache: Mutex<HashMap<(String, String), (i64, Rate)>>,
}

impl Rates {
    pub(crate) fn new(
        config: &GatewayConfig,
        markets: Option<MarketService>,
        client: reqwest::Client,
        clock: Clock,
    ) -> Self {
        Self {
            pegs: config
                .pegs
                .iter()
                .map(|(a, c)| (a.clone(), c.clone()))
                .collect(),
            http: config.rate_sources.clone(),
            markets,
            client,
            clock,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The rate of `asset` in `currency`, or `None` when no source answers.
    pub async fn rate(&self, asset: &str, currency: &str) -> Option<Rate> {
        let now = self.clock.now().as_i64();
        let key = (asset.to_owned(), currency.to_owned());
        if let Ok(cache) = self.cache.lock()
            && let Some((at, rate)) = cache.get(&key)
            && now - at < CACHE_MS
        {
            return Some(rate.clone());
        }
        let mut quotes: Vec<(String, u128)> = Vec::new();
        if self.pegged(asset, currency) {
            quotes.push(("peg".into(), 10u128.pow(u32::from(RATE_DECIMALS))));
        }
        if let Some(price) = self.market_rate(asset, currency) {
            quotes.push(("coss".into(), price));
        }
        let mut asks = tokio::task::JoinSet::new();
        for source in self.http.clone() {
            let client = self.client.clone();
            let (asset, currency) = (asset.to_owned(), currency.to_owned());
            asks.spawn(async move {
                let answer = ask(&client, &source, &asset, &currency).await;
                (source.name, answer)
            });
        }
        while let Some(done) = asks.join_next().await {
            match done {
                Ok((name, Ok(rate))) => quotes.push((name, rate)),
                Ok((name, Err(why))) => {
                    tracing::warn!(source = %name, %asset, %currency, %why, "rate source skipped");
                }
                Err(error) => tracing::warn!(%error, "rate source task failed"),
            }
        }
        let scaled = median(quotes.iter().map(|(_, r)| *r).collect())?;
        quotes.sort();
        let rate = Rate {
            scaled,
            sources: quotes
                .iter()
                .map(|(name, r)| {
                    format!(
                        "{name}={}",
                        crate::invoices::decimal(coss_types::Amount(*r), RATE_DECIMALS)
                    )
                })
                .collect::<Vec<_>>()
                .join(","),
        };
        if let Ok(mut cache) = self.cache.lock() {
            cache.insert(key, (now, rate.clone()));
        }
        Some(rate)
    }

    fn pegged(&self, asset: &str, currency: &str) -> bool {
        self.pegs.iter().any(|(a, c)| a == asset && c == currency)
    }

    /// COSS's own price of `asset` against an asset pegged to `currency`: the book's mid,
    /// else the last trade.
    fn market_rate(&self, asset: &str, currency: &str) -> Option<u128> {
        let markets = self.markets.as_ref()?;
        let projection = markets.read();
        for view in projection.markets() {
            let market = &view.market;
            if market.base.symbol != asset || !self.pegged(&market.quote.symbol, currency) {
                continue;
            }
            let bid = view.book.best(Side::Buy).map(|(p, _)| p);
            let ask = view.book.best(Side::Sell).map(|(p, _)| p);
            let units = match (bid, ask) {
                (Some(b), Some(a)) => {
                    (market.price_units(b).saturating_add(market.price_units(a))) / 2
                }
                _ => market.price_units(view.trades.back()?.price),
            };
            // Quote smallest units per whole base unit → currency per unit, 12 decimals.
            return rescale(units, market.quote.decimals, RATE_DECIMALS);
        }
        None
    }
}

/// `value` with `from` decimals as `to` decimals (dropping digits beyond `to`).
fn rescale(value: u128, from: u8, to: u8) -> Option<u128> {
    if to >= from {
        value.checked_mul(10u128.checked_pow(u32::from(to - from))?)
    } else {
        Some(value / 10u128.checked_pow(u32::from(from - to))?)
    }
}

async fn ask(
    client: &reqwest::Client,
    source: &HttpSource,
    asset: &str,
    currency: &str,
) -> Result<u128, String> {
    let url = source
        .url
        .replace("{asset}", asset)
        .replace("{currency}", currency);
    let response = tokio::time::timeout(SOURCE_TIMEOUT, client.get(&url).send())
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|e| format!("request failed: {}", e.without_url()))?;
    if !response.status().is_success() {
        return Err(format!("answered {}", response.status()));
    }
    let body = tokio::time::timeout(SOURCE_TIMEOUT, response.bytes())
        .await
        .map_err(|_| "timed out".to_owned())?
        .map_err(|_| "body unreadable".to_owned())?;
    if body.len() > 64 * 1024 {
        return Err("answer too large".into());
    }
    let json: serde_json::Value =
        serde_json::from_slice(&body).map_err(|_| "not JSON".to_owned())?;
    let value = json
        .pointer(&source.pointer)
        .ok_or_else(|| format!("no value at {}", source.pointer))?;
    let text = match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return Err("the value is not a number".into()),
    };
    let rate = parse_rate(&text).ok_or_else(|| format!("not a positive rate: {text:?}"))?;
    Ok(rate)
}

/// A positive decimal (digits beyond [`RATE_DECIMALS`] dropped) as a scaled rate.
#[must_use]
pub fn parse_rate(text: &str) -> Option<u128> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    let frac: String = frac.chars().take(usize::from(RATE_DECIMALS)).collect();
    let amount =
        coss_types::Amount::parse_decimal(&format!("{whole}.{frac}0"), RATE_DECIMALS + 1).ok()?;
    let scaled = amount.0 / 10;
    (scaled > 0).then_some(scaled)
}

/// The median (the lower middle's and upper middle's floor average for an even count).
#[must_use]
pub fn median(mut values: Vec<u128>) -> Option<u128> {
    values.sort_unstable();
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => {
            let (a, b) = (values[n / 2 - 1], values[n / 2]);
            Some(a / 2 + b / 2 + (a % 2 + b % 2) / 2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_ignores_one_wild_source() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![5]), Some(5));
        assert_eq!(median(vec![3_000, 1, 3_010]), Some(3_000));
        assert_eq!(median(vec![3_000, 3_010]), Some(3_005));
        assert_eq!(median(vec![u128::MAX, u128::MAX]), Some(u128::MAX));
    }

    #[test]
    fn rates_parse_as_decimals_never_floats() {
        assert_eq!(parse_rate("3000.5"), Some(3_000_500_000_000_000));
        assert_eq!(parse_rate("1"), Some(1_000_000_000_000));
        assert_eq!(parse_rate("0.0000000000019"), Some(1));
        assert_eq!(parse_rate("0"), None);
        assert_eq!(parse_rate("-1"), None);
        assert_eq!(parse_rate("1e3"), None);
        assert_eq!(parse_rate(""), None);
    }
}

#[cfg(test)]
mod sources {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A source answering `body` to every request.
    async fn serve(body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 2048];
                let _ = socket.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        url
    }

    #[tokio::test]
    async fn a_failing_source_is_skipped_and_the_others_give_the_median() {
        let a = serve(r#"{"rate":"3000"}"#).await;
        let b = serve(r#"{"data":{"price":3010.5}}"#).await;
        let c = serve(r#"{"rate":"2990"}"#).await;
        let config = GatewayConfig {
            rate_sources: vec![
                HttpSource {
                    name: "a".into(),
                    url: format!("{a}/{{asset}}/{{currency}}"),
                    pointer: "/rate".into(),
                },
                HttpSource {
                    name: "b".into(),
                    url: format!("{b}/?pair={{asset}}{{currency}}"),
                    pointer: "/data/price".into(),
                },
                HttpSource {
                    name: "c".into(),
                    url: format!("{c}/x"),
                    pointer: "/rate".into(),
                },
                HttpSource {
                    name: "down".into(),
                    url: "http://127.0.0.1:1/".into(),
                    pointer: "/rate".into(),
                },
            ],
            ..GatewayConfig::default()
        };
        let rates = Rates::new(
            &config,
            None,
            crate::http_client().unwrap(),
            coss_clock::Clock::system(),
        );
        let rate = rates.rate("ETH", "USD").await.unwrap();
        assert_eq!(rate.decimal(), "3000");
        assert_eq!(rate.sources, "a=3000,b=3010.5,c=2990");
        // A pegged asset needs no source.
        let rates = Rates::new(
            &GatewayConfig::default(),
            None,
            crate::http_client().unwrap(),
            coss_clock::Clock::system(),
        );
        assert_eq!(rates.rate("TUSD", "USD").await.unwrap().decimal(), "1");
        assert_eq!(rates.rate("ETH", "USD").await, None);
    }
}
