//! The Binance-compatible API through the real router, engine, projection and accounts
//! database, as a Binance client calls it: REST in process, streams over a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod history;
mod rest;
mod session;
mod streams;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use coss_binance::{Binance, RateLimits};
use coss_engine::{Engine, EngineConfig, EngineHandle};
use coss_identity::{Accounts, Permission, Vault, sign};
use coss_market::{MarketService, Retention};
use coss_store::Store;
use coss_types::AccountId;
use http_body_util::BodyExt;
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;

pub use coss_testkit::{ETH, ETH_1, TUSD, TUSD_1};

#[derive(Debug)]
pub struct Key {
    pub key: String,
    pub secret: String,
    pub account: AccountId,
}

#[allow(missing_debug_implementations)]
pub struct Fixture {
    pub router: Router,
    pub binance: Binance,
    engine: Option<Engine>,
    pub handle: EngineHandle,
    pub accounts: Accounts,
    pub market: MarketService,
    _dir: tempfile::TempDir,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        // The router and handles go first; the engine then stops cleanly.
        self.router = Router::new();
        if let Some(engine) = self.engine.take() {
            std::thread::spawn(move || {
                let _ = engine.shutdown();
            });
        }
    }
}

pub fn now() -> i64 {
    coss_clock::Clock::system().now().as_i64()
}

pub async fn fixture(limits: RateLimits) -> Fixture {
    fixture_with_backlog(limits, 65_536).await
}

/// A fixture whose stream connections are closed once `backlog` messages behind.
pub async fn fixture_with_backlog(limits: RateLimits, backlog: usize) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (market, feed) = MarketService::start();
    start(dir, market, feed, None, limits, backlog).await
}

/// A fixture as `coss up` runs: the history writer fills the database, and the projection
/// keeps only `retention` in memory once the history holds the rest.
pub async fn fixture_with_history(retention: Retention) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(coss_market::HISTORY_BACKLOG);
    let (market, feed) = MarketService::start_with(retention, Some(tx));
    coss_market::spawn_history(store.clone(), market.clone(), rx, dir.path().join("engine"));
    start(
        dir,
        market,
        feed,
        Some(store),
        RateLimits::default(),
        65_536,
    )
    .await
}

async fn start(
    dir: tempfile::TempDir,
    market: MarketService,
    feed: coss_engine::EventFeed,
    store: Option<Store>,
    limits: RateLimits,
    backlog: usize,
) -> Fixture {
    let mut config = EngineConfig::new(dir.path().join("engine"));
    config.feed = Some(feed);
    let (engine, _) = Engine::start(config).unwrap();
    let handle = engine.handle();
    for command in coss_testkit::eth_tusd() {
        coss_testkit::submit(&handle, command).await;
    }
    let store = match store {
        Some(store) => store,
        None => Store::open_in(dir.path()).await.unwrap(),
    };
    let vault = Vault::open_or_create(&dir.path().join("secret.key")).unwrap();
    let accounts = Accounts::new(store, vault).unwrap();
    let binance = Binance::with_stream_backlog(
        coss_http::Gate::new(accounts.clone()),
        handle.clone(),
        market.clone(),
        limits,
        backlog,
    );
    Fixture {
        router: coss_binance::router(binance.clone()).into_router(),
        binance,
        engine: Some(engine),
        handle,
        accounts,
        market,
        _dir: dir,
    }
}

impl Fixture {
    /// A verified user with 2FA, an API key with `permissions`, and deposits.
    pub async fn trader(
        &self,
        email: &str,
        permissions: &[Permission],
        eth: u128,
        tusd: u128,
    ) -> Key {
        let a = &self.accounts;
        let t = now();
        let id = coss_testkit::verified(a, email, t).await;
        let seed = coss_testkit::with_totp(a, id, t).await;
        let (key, secret) = coss_testkit::api_key(a, id, &seed, permissions, t).await;
        let account = coss_identity::exchange_account(id).unwrap();
        for (asset, amount) in [(ETH, eth), (TUSD, tusd)] {
            if amount > 0 {
                coss_testkit::deposit(&self.handle, account, asset, amount).await;
            }
        }
        Key {
            key,
            secret,
            account,
        }
    }

    pub async fn send(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        self.send_bytes(method, uri, key, body.as_bytes()).await
    }

    /// [`Fixture::send`] with a body that need not be text.
    pub async fn send_bytes(
        &self,
        method: &str,
        uri: &str,
        key: Option<&str>,
        body: &[u8],
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header("X-MBX-APIKEY", key);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        let mut request = request.body(Body::from(body.to_vec())).unwrap();
        request.extensions_mut().insert(ConnectInfo(
            "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
        ));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, json, headers)
    }

    pub async fn public(&self, path: &str) -> (StatusCode, Value) {
        let (status, json, _) = self.send("GET", path, None, "").await;
        (status, json)
    }

    /// A signed request with the parameters in the query string.
    pub async fn signed(
        &self,
        method: &str,
        path: &str,
        key: &Key,
        params: &str,
    ) -> (StatusCode, Value) {
        let query = if params.is_empty() {
            format!("timestamp={}", now())
        } else {
            format!("{params}&timestamp={}", now())
        };
        let signature = sign(&key.secret, &query);
        let uri = format!("{path}?{query}&signature={signature}");
        let (status, json, _) = self.send(method, &uri, Some(&key.key), "").await;
        (status, json)
    }

    /// A signed POST with the parameters in a form body, as most clients send orders.
    pub async fn post_form(&self, path: &str, key: &Key, params: &str) -> (StatusCode, Value) {
        let body = format!("{params}&timestamp={}", now());
        let signature = sign(&key.secret, &body);
        let (status, json, _) = self
            .send(
                "POST",
                path,
                Some(&key.key),
                &format!("{body}&signature={signature}"),
            )
            .await;
        (status, json)
    }
}

pub fn code(json: &Value) -> i64 {
    json["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {json}"))
}
