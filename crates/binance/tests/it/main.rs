//! The Binance-compatible API through the real router, engine, projection and accounts
//! database, as a Binance client calls it: REST in process, streams over a real socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod history;
mod rest;
mod streams;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use coss_binance::{Binance, RateLimits};
use coss_core::Command;
use coss_engine::{Engine, EngineConfig, EngineHandle};
use coss_identity::{Accounts, Authenticated, Permission, Vault, sign, totp_code};
use coss_market::{MarketService, Retention};
use coss_store::{SessionKind, Store};
use coss_types::{AccountId, Amount, AssetId, MarketId};
use http_body_util::BodyExt;
use serde_json::Value;
use std::net::SocketAddr;
use tower::ServiceExt;

pub const PASSWORD: &str = "correct horse battery staple";
pub const ETH: AssetId = AssetId(1);
pub const TUSD: AssetId = AssetId(2);

#[derive(Debug)]
pub struct Key {
    pub key: String,
    pub secret: String,
    pub account: AccountId,
}

#[allow(missing_debug_implementations)]
pub struct Fixture {
    pub router: Router,
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
    coss_market::spawn_history(store.clone(), market.clone(), rx);
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
    for command in [
        Command::ListAsset {
            asset: ETH,
            symbol: "ETH".into(),
            decimals: 18,
            fees_shared: true,
            withdrawal_fee: Amount(0),
        },
        Command::ListAsset {
            asset: TUSD,
            symbol: "TUSD".into(),
            decimals: 6,
            fees_shared: true,
            withdrawal_fee: Amount(0),
        },
        Command::ListMarket {
            market: MarketId(1),
            base: ETH,
            quote: TUSD,
            lot_size: Amount(100_000_000_000_000), // 0.0001 ETH
            tick_size: Amount(10_000),             // 0.01 TUSD
            min_notional: Amount(1_000_000),       // 1 TUSD
        },
    ] {
        handle.submit_async(command).await.unwrap().outcome.unwrap();
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
        router: coss_binance::router(binance).into_router(),
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
        let id = a.signup(email, PASSWORD, t).await.unwrap();
        let mail = a.store().due_mail(i64::MAX, 1000).await.unwrap();
        let payload = &mail
            .iter()
            .rev()
            .find(|m| m.mail.recipient == email)
            .unwrap()
            .mail
            .payload;
        let token: Value = serde_json::from_str(payload).unwrap();
        a.verify_email(token["token"].as_str().unwrap(), t)
            .await
            .unwrap();
        let who = Authenticated {
            user_id: id,
            session_id: 0,
            kind: SessionKind::App,
        };
        let enrolment = a.begin_totp_enrolment(&who, t).await.unwrap();
        let seed = enrolment.secret.expose().to_owned();
        a.confirm_totp(&who, &totp_code(&seed, t - 30_000).unwrap(), t)
            .await
            .unwrap();
        let key = a
            .create_api_key(
                &who,
                "bot",
                permissions,
                &[],
                totp_code(&seed, t).as_deref(),
                t,
            )
            .await
            .unwrap();
        let account = coss_core::user_account(id).unwrap();
        for (asset, amount) in [(ETH, eth), (TUSD, tusd)] {
            if amount > 0 {
                self.handle
                    .submit_async(Command::Deposit {
                        account,
                        asset,
                        amount: Amount(amount),
                        reference: format!("{email}-{}", asset.0),
                    })
                    .await
                    .unwrap()
                    .outcome
                    .unwrap();
            }
        }
        Key {
            key: key.key.api_key,
            secret: key.secret.expose().to_owned(),
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
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(key) = key {
            request = request.header("X-MBX-APIKEY", key);
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/x-www-form-urlencoded");
        }
        let mut request = request.body(Body::from(body.to_owned())).unwrap();
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

pub const ETH_1: u128 = 1_000_000_000_000_000_000;
pub const TUSD_1: u128 = 1_000_000;
