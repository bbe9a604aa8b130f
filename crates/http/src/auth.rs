//! Who is calling: the authentications a handler declares by naming one as its first argument.

use std::marker::PhantomData;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use coss_identity::{Authenticated, Grant, IdentityError, KeyAuth, Permission, SignedRequest};

use crate::{ApiError, BufferedBody, Gate, client_addr};

/// The browser session cookie (HttpOnly; `__Host-` pins it to this origin, Secure, Path=/).
pub const SESSION_COOKIE: &str = "__Host-coss_session";
/// The CSRF cookie (readable by the page, which echoes it in [`CSRF_HEADER`]).
pub const CSRF_COOKIE: &str = "__Host-coss_csrf";
/// The header that must carry the CSRF token on cookie-authenticated changes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An authentication a route declares: the first argument of every handler mounted with
/// [`crate::Routes`] implements it, so a handler cannot be written without saying how its
/// caller is authenticated. Edges with their own schemes (OAuth clients, listen keys)
/// implement it for their own extractors.
pub trait Auth {
    /// Its name in the route table (`public`, `session`, `api_key:trade`, …).
    const SCHEME: &'static str;
    /// Whether it reads the request body (a signature over it): the route builder then reads
    /// the body into [`BufferedBody`] before the extractors run.
    const READS_BODY: bool = false;
}

/// No authentication: anyone may call. Naming it is the declaration.
#[derive(Debug, Clone, Copy, Default)]
pub struct Public;

impl Auth for Public {
    const SCHEME: &'static str = "public";
}

impl<S: Send + Sync> FromRequestParts<S> for Public {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(_: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Public)
    }
}

/// A signed-in account: an app's bearer access token, or a browser's session cookie, in which
/// case any method that changes something must carry the session's CSRF token in
/// `X-CSRF-Token` (`csrf_token_invalid`, 403, otherwise). No valid session is
/// `unauthenticated` (401).
#[derive(Debug, Clone, Copy)]
pub struct Caller(pub Authenticated);

impl std::ops::Deref for Caller {
    type Target = Authenticated;

    fn deref(&self) -> &Authenticated {
        &self.0
    }
}

impl Auth for Caller {
    const SCHEME: &'static str = "session";
}

impl<S: Send + Sync> FromRequestParts<S> for Caller
where
    Gate: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let gate = Gate::from_ref(state);
        session(&gate, &parts.method, &parts.headers)
            .await
            .map(Caller)
    }
}

/// The signed-in account of a request, as [`Caller`] checks it: a bearer access token, or the
/// session cookie with its CSRF token on any method that changes something. For edges that run
/// their own call path (the Binance-compatible endpoints' session mirror).
///
/// # Errors
/// `unauthenticated` (401) without a valid session, `csrf_token_invalid` (403).
pub async fn session(
    gate: &Gate,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Authenticated, ApiError> {
    let now = gate.clock.now().as_i64();
    let accounts = &gate.accounts;
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(IdentityError::Unauthenticated)?;
        return Ok(accounts.authenticate(token, now).await?);
    }
    let token = cookie(headers, SESSION_COOKIE).ok_or(IdentityError::Unauthenticated)?;
    let who = accounts.authenticate(token, now).await?;
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe {
        let presented = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !accounts.check_csrf(token, presented) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_token_invalid",
                "send the session's CSRF token in the X-CSRF-Token header",
            ));
        }
    }
    Ok(who)
}

/// The permission an API key needs for a route.
pub trait Need: Send + Sync + 'static {
    /// The permission.
    const PERMISSION: Permission;
    /// Its scheme name in the route table.
    const SCHEME: &'static str;
}

/// The permissions a [`KeyCaller`] can require.
pub mod need {
    use super::{Need, Permission};

    macro_rules! need {
        ($(#[$doc:meta])* $name:ident, $permission:ident, $scheme:literal) => {
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $name;

            impl Need for $name {
                const PERMISSION: Permission = Permission::$permission;
                const SCHEME: &'static str = $scheme;
            }
        };
    }

    need!(
        /// Read balances, orders and history (every key may).
        Read, Read, "api_key:read"
    );
    need!(
        /// Place and cancel orders.
        Trade, Trade, "api_key:trade"
    );
    need!(
        /// Request withdrawals.
        Withdraw, Withdraw, "api_key:withdraw"
    );
    need!(
        /// Create invoices and read payments.
        Merchant, Merchant, "api_key:merchant"
    );
}

/// A request signed with an API key that has permission `P`, Binance's way: the key in
/// `X-MBX-APIKEY`, `timestamp` (and `recvWindow`) in the query or body, and `signature`, the
/// HMAC-SHA256 of query + body. The key's IP allow-list is checked against [`crate::ClientAddr`].
#[derive(Debug, Clone)]
pub struct KeyCaller<P> {
    /// The key and its owner.
    pub key: KeyAuth,
    need: PhantomData<P>,
}

impl<P: Need> Auth for KeyCaller<P> {
    const SCHEME: &'static str = P::SCHEME;
    const READS_BODY: bool = true;
}

impl<S: Send + Sync, P: Need> FromRequestParts<S> for KeyCaller<P>
where
    Gate: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let gate = Gate::from_ref(state);
        signed::<P>(parts, &gate).await
    }
}

/// A merchant: a request signed with an API key that has the `merchant` permission (when
/// `X-MBX-APIKEY` is present), or else the signed-in account (bearer token, or session
/// cookie with CSRF on changes) — the gateway's API serves both the merchant's servers and
/// the dashboard.
#[derive(Debug, Clone, Copy)]
pub struct MerchantCaller {
    /// The merchant's account.
    pub user_id: coss_types::UserId,
    /// Whether an API key signed the request (else a session).
    pub by_key: bool,
}

impl Auth for MerchantCaller {
    const SCHEME: &'static str = "api_key:merchant_or_session";
    const READS_BODY: bool = true;
}

impl<S: Send + Sync> FromRequestParts<S> for MerchantCaller
where
    Gate: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let gate = Gate::from_ref(state);
        if parts.headers.contains_key("x-mbx-apikey") {
            let caller = signed::<need::Merchant>(parts, &gate).await?;
            return Ok(MerchantCaller {
                user_id: caller.key.user_id,
                by_key: true,
            });
        }
        let who = session(&gate, &parts.method, &parts.headers).await?;
        Ok(MerchantCaller {
            user_id: who.user_id,
            by_key: false,
        })
    }
}

/// Checks a Binance-style signed request for permission `P`.
async fn signed<P: Need>(parts: &Parts, gate: &Gate) -> Result<KeyCaller<P>, ApiError> {
    {
        let api_key = parts
            .headers
            .get("x-mbx-apikey")
            .and_then(|v| v.to_str().ok())
            .ok_or(IdentityError::MissingParameter("X-MBX-APIKEY"))?;
        let body = match parts.extensions.get::<BufferedBody>() {
            Some(body) => body.bytes()?,
            None => {
                return Err(ApiError::internal(
                    "route",
                    &"a signed route was mounted without its body buffered",
                ));
            }
        };
        // The signature covers the text of the body: a body that is not text is refused
        // rather than checked as if it were empty.
        let body = std::str::from_utf8(body).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_request",
                "the request body is not UTF-8 text",
            )
        })?;
        let request = SignedRequest {
            api_key,
            query: parts.uri.query().unwrap_or_default(),
            body,
            client_ip: client_addr(parts, &gate.proxies),
            needs: P::PERMISSION,
        };
        let key = gate
            .accounts
            .verify_signed(&request, gate.clock.now().as_i64())
            .await?;
        Ok(KeyCaller {
            key,
            need: PhantomData,
        })
    }
}

/// A cookie's value from the request's Cookie headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
}

/// Appends a `Set-Cookie` header.
pub fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Sets a browser session's cookies on a response: the session token (HttpOnly) and its
/// CSRF token (readable by the page), both `__Host-`, Secure, SameSite=Lax, for the
/// session's lifetime.
pub fn set_session_cookies(response: &mut Response, grant: &Grant) {
    let max_age = coss_identity::SESSION_TTL_MS / 1000;
    set_cookie(
        response,
        format!(
            "{SESSION_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={max_age}",
            grant.token.expose()
        ),
    );
    set_cookie(
        response,
        format!(
            "{CSRF_COOKIE}={}; Path=/; Secure; SameSite=Lax; Max-Age={max_age}",
            grant.csrf.as_deref().unwrap_or_default()
        ),
    );
}
