//! The operator program (`coss admin serve`): its own listener (loopback by default), the
//! back office's web app (when given its folder) and `POST /api/{operation}`, which it signs
//! with the service key and forwards to the platform's internal API. It holds no database
//! credentials and no platform keys; the operator's session lives in an HttpOnly, SameSite=
//! Strict cookie it sets from the sign-in answer (the token never reaches the page's script),
//! and every call must carry `X-Coss-Admin: 1`, which no other site's form or script can send
//! here without a CORS preflight this program never grants.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coss_http::{ApiError, Auth, Routes};
use serde_json::Value;

use crate::signing::{
    CLIENT_IP_HEADER, Call, NONCE_HEADER, OPERATOR_HEADER, SIGNATURE_HEADER, ServiceKey,
    TIME_HEADER,
};

/// The operator's session cookie.
pub const COOKIE: &str = "coss_operator";
/// The header every call must carry (a CSRF guard).
pub const GUARD_HEADER: &str = "x-coss-admin";
/// The largest body forwarded.
const MAX_BODY: usize = 64 * 1024;

/// The operator program's state.
#[derive(Debug, Clone)]
pub struct Console {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    internal_url: String,
    key: ServiceKey,
    client: reqwest::Client,
    secure_cookie: bool,
    clock: coss_clock::Clock,
}

/// A call from the operator's browser: its session cookie (if any) and address.
#[derive(Debug, Clone)]
pub struct Browser {
    token: Option<String>,
    address: std::net::IpAddr,
}

impl Auth for Browser {
    const SCHEME: &'static str = "operator_cookie";
}

impl FromRequestParts<Console> for Browser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &Console) -> Result<Self, ApiError> {
        if parts
            .headers
            .get(GUARD_HEADER)
            .is_none_or(|v| v.as_bytes() != b"1")
        {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf_guard_missing",
                "calls carry X-Coss-Admin: 1",
            ));
        }
        let address = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .ok_or_else(|| ApiError::internal("console", &"no peer address"))?;
        let token = coss_http::cookie(&parts.headers, COOKIE)
            .filter(|t| t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned);
        Ok(Browser { token, address })
    }
}

impl Console {
    /// A program calling the internal API at `internal_url` (`http://127.0.0.1:8091`), signing
    /// with `key` and stamping calls with `clock`'s time. `secure_cookie` marks the session
    /// cookie Secure (behind HTTPS).
    pub fn new(
        internal_url: &str,
        key: ServiceKey,
        secure_cookie: bool,
        clock: coss_clock::Clock,
    ) -> Result<Console, ApiError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ApiError::internal("console client", &e))?;
        Ok(Console {
            inner: Arc::new(Inner {
                internal_url: internal_url.trim_end_matches('/').to_owned(),
                key,
                client,
                secure_cookie,
                clock,
            }),
        })
    }

    /// Signs and sends one operation to the platform: its status and JSON answer.
    pub async fn call(
        &self,
        operation: &str,
        token: Option<&str>,
        client_ip: std::net::IpAddr,
        body: &[u8],
    ) -> Result<(StatusCode, Value), ApiError> {
        let path = format!("{}{operation}", crate::internal::PREFIX);
        let time_ms = self.inner.clock.now().as_i64();
        let nonce = crate::signing::nonce().map_err(|e| ApiError::internal("nonce", &e))?;
        let client_ip = client_ip.to_string();
        let signature = self.inner.key.sign(&Call {
            method: "POST",
            path: &path,
            time_ms,
            nonce: &nonce,
            operator: token.unwrap_or(""),
            client_ip: &client_ip,
            body,
        });
        let mut request = self
            .inner
            .client
            .post(format!("{}{path}", self.inner.internal_url))
            .header(header::CONTENT_TYPE, "application/json")
            .header(TIME_HEADER, time_ms.to_string())
            .header(NONCE_HEADER, nonce)
            .header(CLIENT_IP_HEADER, client_ip)
            .header(SIGNATURE_HEADER, signature)
            .body(body.to_vec());
        if let Some(token) = token {
            request = request.header(OPERATOR_HEADER, token);
        }
        let response = request.send().await.map_err(|e| {
            tracing::warn!(error = %e, "the platform's internal API did not answer");
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "platform_unreachable",
                "the platform's internal API did not answer",
            )
        })?;
        let status =
            StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let bytes = response.bytes().await.map_err(|_| {
            ApiError::new(
                StatusCode::BAD_GATEWAY,
                "platform_unreachable",
                "the platform's answer was cut off",
            )
        })?;
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok((status, value))
    }

    /// The program's routes: `POST /api/{operation}`.
    pub fn routes(&self) -> Routes {
        Routes::<Console>::new()
            .post("/api/{operation}", forward)
            .with_state(self.clone())
    }

    /// The router to serve (with the web app as the fallback when given one).
    pub fn router(&self, app: Option<coss_web::WebApp>) -> Router {
        let router = coss_http::with_json_fallbacks(self.routes().into_router());
        match app {
            Some(app) => {
                coss_web::with_app(router, app, || coss_http::not_found_error().into_response())
            }
            None => router,
        }
    }

    fn cookie(&self, token: Option<&str>) -> HeaderValue {
        let secure = if self.inner.secure_cookie {
            "; Secure"
        } else {
            ""
        };
        let text = match token {
            Some(token) => {
                format!(
                    "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age=43200{secure}"
                )
            }
            None => format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{secure}"),
        };
        HeaderValue::from_str(&text).unwrap_or(HeaderValue::from_static(""))
    }
}

async fn forward(
    browser: Browser,
    State(console): State<Console>,
    Path(operation): Path<String>,
    body: Bytes,
) -> Response {
    if operation.len() > 64
        || !operation
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_')
    {
        return coss_http::not_found_error().into_response();
    }
    if body.len() > MAX_BODY {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the body is too large",
        )
        .into_response();
    }
    let token = browser.token.as_deref();
    let (status, mut answer) = match console
        .call(&operation, token, browser.address, &body)
        .await
    {
        Ok(answer) => answer,
        Err(error) => return error.into_response(),
    };
    let mut cookie = None;
    if operation == "auth.login" && status.is_success() {
        // The token goes into the HttpOnly cookie, never to the page.
        if let Some(token) = answer
            .as_object_mut()
            .and_then(|o| o.remove("session_token"))
            .and_then(|t| t.as_str().map(str::to_owned))
        {
            cookie = Some(console.cookie(Some(&token)));
        }
    }
    if (operation == "auth.logout" && status.is_success())
        || status == StatusCode::UNAUTHORIZED && token.is_some()
    {
        cookie = Some(console.cookie(None));
    }
    let mut response = (status, axum::Json(answer)).into_response();
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
