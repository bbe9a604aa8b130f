//! COSS's own HTTP API under `/api/v1`, as axum routers the `coss up` server mounts. Today:
//! accounts (sign-up, email verification, login with a bearer session token, logout,
//! password reset, `me`). Every error is `{"code": "...", "message": "..."}` with a stable
//! code and the matching status; request bodies are JSON of at most 16 KiB. This layer reads
//! the clock and maps errors; the rules live in `coss-identity`.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use coss_identity::{Accounts, IdentityError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// An API error: a stable code, a human message, and its HTTP status.
#[derive(Debug, Serialize)]
pub struct ApiError {
    /// Stable, machine-readable.
    pub code: &'static str,
    /// For people.
    pub message: String,
    #[serde(skip)]
    status: StatusCode,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            status,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self)).into_response()
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        let status = match &error {
            IdentityError::InvalidEmail
            | IdentityError::WeakPassword
            | IdentityError::InvalidToken => StatusCode::BAD_REQUEST,
            IdentityError::EmailTaken => StatusCode::CONFLICT,
            IdentityError::InvalidCredentials | IdentityError::Unauthenticated => {
                StatusCode::UNAUTHORIZED
            }
            IdentityError::EmailUnverified => StatusCode::FORBIDDEN,
            IdentityError::Store(_) | IdentityError::Hashing => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "internal error");
            return Self::new(status, "internal", "internal error");
        }
        Self::new(status, error.code(), error.to_string())
    }
}

/// The accounts API.
pub fn accounts_router(accounts: Accounts) -> Router {
    Router::new()
        .route("/api/v1/auth/signup", post(signup))
        .route("/api/v1/auth/verify-email", post(verify_email))
        .route("/api/v1/auth/login", post(login))
        .route("/api/v1/auth/logout", post(logout))
        .route("/api/v1/auth/password-reset", post(password_reset))
        .route(
            "/api/v1/auth/password-reset/confirm",
            post(password_reset_confirm),
        )
        .route("/api/v1/me", get(me))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(accounts)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// Parses a JSON body: too large is `payload_too_large` (413), another content type
/// `unsupported_media_type` (415), anything unparsable `malformed_request` (400).
fn body<T: DeserializeOwned>(headers: &HeaderMap, bytes: &Body) -> Result<T, ApiError> {
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

type Body = Result<Bytes, BytesRejection>;

/// The bearer token of the request, if any.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| IdentityError::Unauthenticated.into())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    token: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EmailBody {
    email: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    token: String,
    password: String,
}

async fn signup(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
    bytes: Body,
) -> Result<impl IntoResponse, ApiError> {
    let request: Credentials = body(&headers, &bytes)?;
    let id = accounts
        .signup(&request.email, &request.password, now_ms())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({ "user_id": id, "email_verification": "sent" })),
    ))
}

async fn verify_email(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
    bytes: Body,
) -> Result<impl IntoResponse, ApiError> {
    let request: TokenBody = body(&headers, &bytes)?;
    let id = accounts.verify_email(&request.token, now_ms()).await?;
    Ok(Json(
        serde_json::json!({ "user_id": id, "email_verified": true }),
    ))
}

async fn login(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
    bytes: Body,
) -> Result<impl IntoResponse, ApiError> {
    let request: Credentials = body(&headers, &bytes)?;
    let session = accounts
        .login(&request.email, &request.password, now_ms())
        .await?;
    Ok(Json(serde_json::json!({
        "user_id": session.user_id,
        "token_type": "Bearer",
        "access_token": session.token.expose(),
        "expires_at": session.expires_at,
    })))
}

async fn logout(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    accounts.logout(bearer(&headers)?, now_ms()).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn password_reset(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
    bytes: Body,
) -> Result<impl IntoResponse, ApiError> {
    let request: EmailBody = body(&headers, &bytes)?;
    accounts
        .request_password_reset(&request.email, now_ms())
        .await?;
    // The same answer whether or not the account exists.
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "password_reset": "sent if the account exists" })),
    ))
}

async fn password_reset_confirm(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
    bytes: Body,
) -> Result<impl IntoResponse, ApiError> {
    let request: ResetBody = body(&headers, &bytes)?;
    let id = accounts
        .reset_password(&request.token, &request.password, now_ms())
        .await?;
    Ok(Json(
        serde_json::json!({ "user_id": id, "sessions_ended": true }),
    ))
}

async fn me(
    State(accounts): State<Accounts>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let id = accounts.authenticate(bearer(&headers)?, now_ms()).await?;
    let user = accounts
        .store()
        .user(id)
        .await
        .map_err(IdentityError::from)?
        .ok_or_else(|| ApiError::from(IdentityError::Unauthenticated))?;
    Ok(Json(serde_json::json!({
        "user_id": user.id,
        "email": user.email,
        "email_verified": user.email_verified_at.is_some(),
        "created_at": user.created_at,
    })))
}
