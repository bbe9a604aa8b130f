//! The Binance-compatible spot API, so that existing trading clients and bots work against
//! COSS by changing only the base URL: `/api/v3/…` REST (market data; signed orders, account
//! and trades with Binance's HMAC-SHA256 scheme) and the WebSocket streams. Same JSON shapes
//! and field names, same `{"code": -NNNN, "msg": "…"}` errors for the same mistakes, same
//! request weights and 429/418 answers. Orders go to the engine and are acknowledged only once
//! durable; what the API reads (books, trades, candles, orders, balances) comes from the
//! `coss-market` projection, which a handler waits on until it has seen its own command, so a
//! client always reads its own writes. Prices and quantities are decimal strings converted
//! exactly to the market's ticks and lots: a value off the grid is a filter failure, never a
//! rounding.

mod error;
mod limits;
mod openapi;
mod params;
mod rest;
mod units;
mod ws;

pub use error::BinanceError;
pub use limits::{Limiter, RateLimits};
pub use openapi::openapi;
pub use params::Params;
pub use rest::router;
pub use ws::{Hub, StreamMessage};

use coss_engine::EngineHandle;
use coss_http::Gate;
use coss_market::MarketService;
use std::sync::{Arc, Mutex};

/// Everything the API needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct Binance {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    gate: Gate,
    engine: EngineHandle,
    market: MarketService,
    limiter: Limiter,
    listen_keys: Mutex<rustc_hash::FxHashMap<String, ListenKey>>,
    /// Open stream connections per client address.
    stream_addresses: coss_http::AddressSlots,
    hub: Hub,
    closing: tokio::sync::watch::Sender<bool>,
}

/// A user data stream's key.
#[derive(Debug, Clone, Copy)]
struct ListenKey {
    user_id: coss_types::UserId,
    expires_ms: u64,
}

impl Binance {
    /// The API over the accounts (API keys, behind the HTTP gate with its clock and trusted
    /// proxies), the engine (orders) and the projection (reads). Starts the stream hub on the
    /// current tokio runtime.
    #[must_use]
    pub fn new(
        gate: Gate,
        engine: EngineHandle,
        market: MarketService,
        limits: RateLimits,
    ) -> Binance {
        Binance::with_stream_backlog(gate, engine, market, limits, ws::HUB_CAPACITY)
    }

    /// As [`Binance::new`], with how many stream messages a connection may fall behind
    /// before it is closed.
    #[must_use]
    pub fn with_stream_backlog(
        gate: Gate,
        engine: EngineHandle,
        market: MarketService,
        limits: RateLimits,
        backlog: usize,
    ) -> Binance {
        let binance = Binance {
            inner: Arc::new(Inner {
                engine,
                hub: Hub::start(market.clone(), backlog, gate.clock.clone()),
                gate,
                market,
                limiter: Limiter::new(limits),
                listen_keys: Mutex::default(),
                stream_addresses: coss_http::AddressSlots::default(),
                closing: tokio::sync::watch::Sender::new(false),
            }),
        };
        // A password reset revokes every credential of the account: its listen keys go, and
        // open user data streams hear `listenKeyExpired` and stop delivering.
        let inner = Arc::downgrade(&binance.inner);
        binance
            .inner
            .gate
            .accounts
            .on_credentials_revoked(move |user| {
                if let Some(inner) = inner.upgrade() {
                    inner
                        .listen_keys
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .retain(|_, k| k.user_id != user);
                }
            });
        binance
    }

    /// Closes every WebSocket stream connection (code 1001, going away) and refuses new
    /// ones: the first step of a graceful shutdown.
    pub fn close_streams(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Open WebSocket stream connections.
    #[must_use]
    pub fn stream_connections(&self) -> usize {
        self.inner.hub.connections()
    }

    /// The live listen keys (a poisoned lock still holds them: every change is one insert or
    /// removal).
    fn listen_keys(&self) -> std::sync::MutexGuard<'_, rustc_hash::FxHashMap<String, ListenKey>> {
        self.inner
            .listen_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The projection this API reads.
    #[must_use]
    pub fn market(&self) -> &MarketService {
        &self.inner.market
    }
}
