//! The `/api/v3` REST endpoints: the call path every request takes (parse, weigh,
//! authenticate, run, answer with the weight headers), and the endpoints by subject, each
//! described once in the table [`endpoints::ENDPOINTS`] that mounts the routes, weighs the
//! requests and writes the OpenAPI document.

mod endpoints;
mod history;
mod market_data;
mod orders;
mod user_stream;

pub(crate) use endpoints::{ENDPOINTS, Endpoint, SIGNING};
pub(crate) use market_data::{book_ticker_json, stream_ticker};
pub(crate) use orders::order_json;

use crate::error::BinanceError;
use crate::params::Params;
use crate::units;
use crate::{Binance, ListenKey};
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter};
use coss_core::{
    Command, EventKind, NewOrder, OrderKind, OrderRef, SelfTradePrevention, TimeInForce,
};
use coss_http::Routes;
use coss_identity::{Permission, SignedRequest};
use coss_market::{
    Interval, Market, MarketView, Order, Projection, Trade, order_type_name, side_name, stp_name,
    tif_name,
};
use coss_store::{HistoryRange, ReadFrom};
use coss_types::{AccountId, Amount, ClientOrderId, OrderId, Side, UnixMs, UserId};
use serde_json::{Value, json};
use std::net::IpAddr;

/// Where the browser's session reaches the account endpoints: `/api/v1/spot/order` runs
/// `/api/v3/order` with the same parameters and answers, authenticated by the session cookie
/// (and its CSRF token on changes) instead of an API key's signature.
pub const SESSION_PREFIX: &str = "/api/v1/spot/";

/// The session mirror's path of an endpoint that needs an account (`None` for public ones).
pub(crate) fn session_path(endpoint: &Endpoint) -> Option<String> {
    if endpoint.security == Security::None {
        return None;
    }
    let rest = endpoint.path.strip_prefix("/api/v3/")?;
    Some(format!("{SESSION_PREFIX}{rest}"))
}

/// The `/api/v3` routes (every row of [`ENDPOINTS`], with the authentication it declares),
/// their session mirror under [`SESSION_PREFIX`] (every row that needs an account), and the
/// WebSocket streams.
pub fn router(binance: Binance) -> Routes {
    ENDPOINTS
        .iter()
        .fold(crate::ws::routes(), |routes, endpoint| {
            let routes = mount(routes, endpoint, endpoint.path, endpoint.security);
            match session_path(endpoint) {
                Some(path) => mount(routes, endpoint, &path, Security::Session),
                None => routes,
            }
        })
        .with_state(binance)
}

fn mount(
    routes: Routes<Binance>,
    endpoint: &'static Endpoint,
    path: &str,
    security: Security,
) -> Routes<Binance> {
    let filter = MethodFilter::try_from(endpoint.method.clone()).unwrap_or(MethodFilter::GET);
    // Mounted through `Routes::declared`: the authentication recorded is the one `call`
    // checks, so the record and the check cannot differ.
    #[allow(clippy::disallowed_methods)]
    let route = MethodRouter::new().on(
        filter,
        move |State(binance): State<Binance>, request: Request| {
            serve(binance, endpoint, security, request)
        },
    );
    routes.declared(endpoint.method.clone(), path, security.scheme(), route)
}

/// Reads the body (at most [`coss_http::MAX_BODY_BYTES`]) and runs the endpoint.
async fn serve(
    binance: Binance,
    endpoint: &'static Endpoint,
    security: Security,
    request: Request,
) -> Response {
    let (parts, body) = request.into_parts();
    // A banned or spent address is refused before its body is read or its parameters are
    // decoded: what it costs to refuse does not grow with what it sends.
    let ip = coss_http::client_addr(&parts, &binance.inner.gate.proxies);
    if let Err(error) = binance
        .inner
        .limiter
        .admit(ip, binance.inner.gate.clock.now().0)
    {
        return error.into_response();
    }
    let bytes = match coss_http::read_body(body).await {
        Ok(bytes) => bytes,
        Err(coss_http::BodyError::TooLarge) => {
            return BinanceError::new(-1000, "Request body too large.")
                .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                .into_response();
        }
        Err(coss_http::BodyError::Unreadable) => {
            return BinanceError::new(-1000, "The request body did not arrive in time.")
                .with_status(StatusCode::REQUEST_TIMEOUT)
                .into_response();
        }
    };
    call(binance, &parts, &bytes, endpoint, security).await
}

/// A request as the handlers see it.
pub(crate) struct Call {
    binance: Binance,
    params: Params,
    now: u64,
    /// The caller's account, for signed endpoints.
    account: Option<AccountId>,
    user_id: Option<UserId>,
    ip: Option<IpAddr>,
}

impl Call {
    /// The database (the history the projection no longer keeps).
    pub(crate) fn store(&self) -> &coss_store::Store {
        self.binance.inner.gate.accounts.store()
    }
}

/// How an endpoint is secured.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// Public.
    None,
    /// `X-MBX-APIKEY` without a signature.
    ApiKey,
    /// Signed, with the permission it needs.
    Signed(Permission),
    /// The browser's session cookie (its CSRF token on changes), or a bearer access token:
    /// the account's owner, who may do what any of its keys may.
    Session,
}

impl Security {
    /// Its name in the route table.
    pub(crate) fn scheme(self) -> &'static str {
        match self {
            Security::None => "public",
            Security::ApiKey => "api_key",
            Security::Signed(Permission::Read) => "api_key:read",
            Security::Signed(Permission::Trade) => "api_key:trade",
            Security::Signed(Permission::Withdraw) => "api_key:withdraw",
            Security::Signed(Permission::Merchant) => "api_key:merchant",
            Security::Session => "session",
        }
    }
}

/// What an endpoint returns: JSON and extra headers.
pub(crate) type Answer = Result<Value, BinanceError>;

/// Parses, weighs and authenticates a request, then runs the endpoint.
async fn call(
    binance: Binance,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    endpoint: &Endpoint,
    security: Security,
) -> Response {
    let headers = &parts.headers;
    let query = parts.uri.query().unwrap_or_default();
    let now = binance.inner.gate.clock.now().0;
    let ip = coss_http::client_addr(parts, &binance.inner.gate.proxies);
    // The signature covers the text of the body: a body that is not text is refused rather
    // than read (and checked) as if it were empty.
    let Ok(body) = std::str::from_utf8(body) else {
        return BinanceError::new(
            -1100,
            "Illegal characters found in the request body; it must be UTF-8 text.",
        )
        .into_response();
    };
    let params = match Params::parse(query, body) {
        Ok(params) => params,
        Err(error) => {
            // A refused request still weighs: refusals are not free to send in bulk.
            return match binance.inner.limiter.weigh(ip, 1, now) {
                Ok(used) => with_weight(error.into_response(), used),
                Err(limited) => limited.into_response(),
            };
        }
    };
    let weight_used = match binance
        .inner
        .limiter
        .weigh(ip, (endpoint.weight)(&params), now)
    {
        Ok(used) => used,
        Err(error) => return error.into_response(),
    };
    let mut call = Call {
        binance,
        params,
        now,
        account: None,
        user_id: None,
        ip,
    };
    let authenticated = match security {
        Security::Session => authenticate_session(&mut call, parts).await,
        _ => authenticate(&mut call, headers, query, body, security).await,
    };
    if let Err(error) = authenticated {
        return with_weight(error.into_response(), weight_used);
    }
    let answer = (endpoint.handler)(call).await;
    let response = match answer {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => error.into_response(),
    };
    with_weight(response, weight_used)
}

fn with_weight(mut response: Response, used: u32) -> Response {
    let value = HeaderValue::from(used);
    let headers = response.headers_mut();
    headers.insert("x-mbx-used-weight-1m", value.clone());
    headers.insert("x-mbx-used-weight", value);
    response
}

/// The session mirror's caller: the session (CSRF checked on changes) in Binance's error shape.
async fn authenticate_session(
    call: &mut Call,
    parts: &axum::http::request::Parts,
) -> Result<(), BinanceError> {
    let gate = &call.binance.inner.gate;
    let who = coss_http::session(gate, &parts.method, &parts.headers)
        .await
        .map_err(|error| {
            let status = error.status();
            let code = if status == StatusCode::FORBIDDEN {
                -1022
            } else {
                -2015
            };
            BinanceError::new(code, error.message).with_status(status)
        })?;
    call.user_id = Some(who.user_id);
    call.account = coss_identity::exchange_account(who.user_id);
    Ok(())
}

async fn authenticate(
    call: &mut Call,
    headers: &HeaderMap,
    query: &str,
    body: &str,
    security: Security,
) -> Result<(), BinanceError> {
    if security == Security::None {
        return Ok(());
    }
    let key = headers
        .get("x-mbx-apikey")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .ok_or_else(|| {
            BinanceError::new(-2014, "API-key format invalid.")
                .with_status(StatusCode::UNAUTHORIZED)
        })?;
    let accounts = &call.binance.inner.gate.accounts;
    let user_id = match security {
        Security::Signed(needs) => {
            let request = SignedRequest {
                api_key: key,
                query,
                body,
                client_ip: call.ip,
                needs,
            };
            let now = i64::try_from(call.now).unwrap_or(i64::MAX);
            accounts.verify_signed(&request, now).await?.user_id
        }
        _ => accounts.key_owner(key, call.ip).await?,
    };
    call.user_id = Some(user_id);
    call.account = coss_identity::exchange_account(user_id);
    Ok(())
}
