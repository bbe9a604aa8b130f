//! COSS's own HTTP API under `/api/v1`, as an axum router the `coss up` server mounts:
//! accounts (sign-up, email verification, login for browsers with cookies and CSRF tokens or
//! for apps with access and refresh tokens, logout, password change and reset, TOTP second
//! factor), API keys (and a signed `whoami` to check a client's signatures), user profile
//! (`me`) and merchant profile. Every error is `{"code": "...", "message": "..."}` with a
//! stable code and the matching status (429 carries Retry-After); request bodies are JSON of
//! at most 16 KiB with no unknown fields. The OpenAPI document is generated from the handlers'
//! annotations and served at `/openapi.json`. This layer reads the clock, cookies and client
//! address and maps errors; the rules live in `coss-identity`.

use std::net::SocketAddr;

use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use coss_identity::{Accounts, Authenticated, IdentityError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use utoipa::OpenApi;

mod auth;
mod keys;
pub mod metrics;
mod profile;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// The browser session cookie (HttpOnly; `__Host-` pins it to this origin, Secure, Path=/).
pub const SESSION_COOKIE: &str = "__Host-coss_session";
/// The CSRF cookie (readable by the page, which echoes it in [`CSRF_HEADER`]).
pub const CSRF_COOKIE: &str = "__Host-coss_csrf";
/// The header that must carry the CSRF token on cookie-authenticated changes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// An API error: a stable code, a human message, and its HTTP status.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiError {
    /// Stable, machine-readable.
    pub code: &'static str,
    /// For people.
    pub message: String,
    #[serde(skip)]
    status: StatusCode,
    #[serde(skip)]
    retry_after_secs: Option<i64>,
}

impl ApiError {
    /// An error with its status, stable code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
            retry_after_secs: None,
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry = self.retry_after_secs;
        let mut response = (self.status, Json(self)).into_response();
        if let Some(secs) = retry
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        use IdentityError as E;
        let status = match &error {
            E::InvalidEmail
            | E::WeakPassword
            | E::InvalidToken
            | E::Invalid { .. }
            | E::InvalidTwoFactorCode
            | E::NoPendingEnrolment
            | E::MissingParameter(_)
            | E::TimestampOutsideWindow => StatusCode::BAD_REQUEST,
            E::EmailTaken | E::TwoFactorAlreadyEnabled => StatusCode::CONFLICT,
            E::InvalidCredentials
            | E::Unauthenticated
            | E::RefreshTokenReused
            | E::TwoFactorRequired
            | E::ApiKeyInvalid
            | E::ApiKeyRevoked
            | E::InvalidSignature => StatusCode::UNAUTHORIZED,
            E::EmailUnverified
            | E::TwoFactorSetupRequired
            | E::IpNotAllowed
            | E::PermissionDenied(_) => StatusCode::FORBIDDEN,
            E::ApiKeyNotFound => StatusCode::NOT_FOUND,
            E::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
            E::Store(_) | E::Crypto => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "internal error");
            return Self::new(status, "internal", "internal error");
        }
        let mut api = Self::new(status, error.code(), error.to_string());
        if let E::TooManyAttempts { retry_after_ms } = error {
            api.retry_after_secs = Some((retry_after_ms + 999) / 1000);
        }
        api
    }
}

/// The accounts, API-key and profile API, and its OpenAPI document at `/openapi.json`.
pub fn accounts_router(accounts: Accounts) -> Router {
    accounts_router_with_doc(accounts, openapi())
}

/// The accounts API serving `doc` at `/openapi.json` (the server's whole `/api/v1`
/// description, when other crates add routes under it).
pub fn accounts_router_with_doc(accounts: Accounts, doc: utoipa::openapi::OpenApi) -> Router {
    let doc = std::sync::Arc::new(doc);
    Router::new()
        .merge(auth::routes())
        .merge(keys::routes())
        .merge(profile::routes())
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(accounts)
        .route(
            "/openapi.json",
            get(move || {
                let doc = std::sync::Arc::clone(&doc);
                async move { Json(doc.as_ref().clone()) }
            }),
        )
}

/// Gives a fully assembled router JSON answers for unknown paths (404 `not_found`) and
/// wrong methods (405 `method_not_allowed`). Apply once, to the top router, after every merge.
pub fn with_json_fallbacks(router: Router) -> Router {
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not accept this method",
    )
}

/// The OpenAPI document of everything [`accounts_router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "COSS API",
        description = "COSS's own API: accounts, second factor, API keys, profiles. Errors are {\"code\", \"message\"}."
    ),
    paths(
        auth::signup,
        auth::verify_email,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::password_reset,
        auth::password_reset_confirm,
        auth::change_password,
        auth::totp_begin,
        auth::totp_confirm,
        auth::totp_disable,
        keys::list,
        keys::create,
        keys::revoke,
        keys::whoami,
        profile::me,
        profile::patch_me,
        profile::get_merchant,
        profile::put_merchant,
        profile::rotate_webhook_secret,
    ),
    components(schemas(ApiError)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "browser session; changes also need the X-CSRF-Token header",
            ))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-MBX-APIKEY",
                "with timestamp, recvWindow and an HMAC-SHA256 signature of query + body",
            ))),
        );
    }
}

pub(crate) use coss_identity::now_ms;

/// A request body as handlers take it (parsed with [`body`]).
pub type Body = Result<Bytes, BytesRejection>;

/// Parses a JSON body: too large is `payload_too_large` (413), another content type
/// `unsupported_media_type` (415), anything unparsable `malformed_request` (400).
pub fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &Body) -> Result<T, ApiError> {
    let bytes = bytes.as_ref().map_err(|rejection| {
        ApiError::new(
            rejection.status(),
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                "payload_too_large"
            } else {
                "malformed_request"
            },
            rejection.body_text(),
        )
    })?;
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !json {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send Content-Type: application/json",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("malformed JSON body: {e}"),
        )
    })
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

/// Who is calling: a bearer token (apps), or the session cookie (browsers), in which case
/// any method that changes something must carry the session's CSRF token in `X-CSRF-Token`.
pub async fn caller(
    accounts: &Accounts,
    method: &Method,
    headers: &HeaderMap,
) -> Result<Authenticated, ApiError> {
    let now = now_ms();
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

/// The client's address (the TCP peer; the server is meant to face clients directly or sit
/// behind a proxy that preserves the peer).
pub fn client_ip(request_extensions: &axum::http::Extensions) -> Option<std::net::IpAddr> {
    request_extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
}

/// Who is signing in, for the new-device email and the per-address throttle: the User-Agent
/// (first 200 characters) and the client's address.
pub fn client(headers: &HeaderMap, extensions: &axum::http::Extensions) -> coss_identity::Client {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    coss_identity::Client {
        user_agent: agent.chars().take(200).collect(),
        ip: client_ip(extensions),
    }
}

pub(crate) fn set_cookie(response: &mut Response, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
}

/// Sets a browser session's cookies on a response: the session token (HttpOnly) and its
/// CSRF token (readable by the page), both `__Host-`, Secure, SameSite=Lax, for the
/// session's lifetime.
pub fn set_session_cookies(response: &mut Response, grant: &coss_identity::Grant) {
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
