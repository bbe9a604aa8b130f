//! The `{"code","message"}` error of COSS's own API.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coss_identity::IdentityError;
use serde::Serialize;

/// An API error: a stable code, a human message, and its HTTP status. Internal errors are
/// logged and answered as `internal` without detail.
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

    /// A failure of ours: logged with `error` (which may name internals), answered 500
    /// `internal` without detail.
    pub fn internal(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "{what}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }

    /// The same error telling the client when to try again (a `Retry-After` header).
    #[must_use]
    pub fn retry_after_ms(mut self, ms: i64) -> Self {
        self.retry_after_secs = Some((ms.max(0) + 999) / 1000);
        self
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

/// The HTTP status of an accounts error (what [`ApiError::from`] answers it with), for other
/// edges that wrap accounts errors in their own.
#[must_use]
pub fn identity_status(error: &IdentityError) -> StatusCode {
    use IdentityError as E;
    match error {
        E::InvalidEmail
        | E::WeakPassword
        | E::InvalidToken
        | E::Invalid { .. }
        | E::InvalidTwoFactorCode
        | E::NoPendingEnrolment
        | E::MissingParameter(_)
        | E::TimestampOutsideWindow
        | E::TimestampAhead => StatusCode::BAD_REQUEST,
        E::EmailTaken | E::TwoFactorAlreadyEnabled => StatusCode::CONFLICT,
        E::InvalidCredentials
        | E::Unauthenticated
        | E::RefreshTokenReused
        | E::TwoFactorRequired
        | E::ApiKeyInvalid
        | E::ApiKeyRevoked
        | E::InvalidSignature => StatusCode::UNAUTHORIZED,
        E::EmailUnverified
        | E::WithdrawalsLocked { .. }
        | E::TwoFactorSetupRequired
        | E::IpNotAllowed
        | E::AccountLocked
        | E::PermissionDenied(_) => StatusCode::FORBIDDEN,
        E::ApiKeyNotFound | E::SessionNotFound => StatusCode::NOT_FOUND,
        E::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
        E::Busy => StatusCode::SERVICE_UNAVAILABLE,
        E::Store(_) | E::Crypto => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<IdentityError> for ApiError {
    fn from(error: IdentityError) -> Self {
        use IdentityError as E;
        let status = identity_status(&error);
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return Self::internal("internal error", &error);
        }
        let api = Self::new(status, error.code(), error.to_string());
        match error {
            E::TooManyAttempts { retry_after_ms } => api.retry_after_ms(retry_after_ms),
            E::Busy => api.retry_after_ms(1_000),
            E::WithdrawalsLocked { until_ms, now_ms } => api.retry_after_ms(until_ms - now_ms),
            _ => api,
        }
    }
}
