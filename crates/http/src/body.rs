//! Request bodies and query strings: bounded, strict, answered in the API's error shape.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON request body of at most [`MAX_BODY_BYTES`], parsed strictly: another content type
/// is `unsupported_media_type` (415), a larger body `payload_too_large` (413), and malformed
/// JSON, a wrong type or any field `T` does not know `malformed_request` (400). Unknown fields
/// are refused here for every `T`, so a typo in a field name never passes silently.
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = read_body(body).await.map_err(|error| match error {
            BodyError::TooLarge => too_large(),
            BodyError::Unreadable => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                "the request body did not arrive in time",
            ),
        })?;
        let json = parts
            .headers
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
        strict_json(&bytes).map(JsonBody)
    }
}

/// Why a request body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than [`MAX_BODY_BYTES`].
    TooLarge,
    /// It stopped arriving (the server's body timeout) or the connection failed.
    Unreadable,
}

/// Reads a whole request body of at most [`MAX_BODY_BYTES`], telling a body that is too large
/// from one that stopped arriving (by the error's type, not its wording).
pub async fn read_body(body: axum::body::Body) -> Result<axum::body::Bytes, BodyError> {
    axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|error| {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
            while let Some(e) = cause {
                if e.is::<http_body_util::LengthLimitError>() {
                    return BodyError::TooLarge;
                }
                cause = e.source();
            }
            BodyError::Unreadable
        })
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// Parses JSON into `T`, refusing any field `T` ignores.
fn strict_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let malformed = |why: String| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            format!("malformed JSON body: {why}"),
        )
    };
    let mut unknown: Option<String> = None;
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_ignored::deserialize(&mut deserializer, |path| {
        unknown.get_or_insert_with(|| path.to_string());
    })
    .map_err(|e| malformed(e.to_string()))?;
    deserializer.end().map_err(|e| malformed(e.to_string()))?;
    match unknown {
        Some(field) => Err(malformed(format!("unknown field `{field}`"))),
        None => Ok(value),
    }
}

/// The query string parsed into `T`; a malformed one is `malformed_request` (400).
#[derive(Debug, Clone)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "malformed_request", e.body_text()))
    }
}

/// A request body read whole before the handler runs (at most [`MAX_BODY_BYTES`]), for the
/// authentications that sign the body: the route builder reads it for the routes that
/// declare such an authentication, and the handler still receives the body.
#[derive(Debug, Clone)]
pub enum BufferedBody {
    /// The whole body.
    Complete(Bytes),
    /// Larger than [`MAX_BODY_BYTES`], or cut off: nothing of it is used.
    Unusable,
}

impl BufferedBody {
    /// The body, or `payload_too_large`.
    pub fn bytes(&self) -> Result<&Bytes, ApiError> {
        match self {
            BufferedBody::Complete(bytes) => Ok(bytes),
            BufferedBody::Unusable => Err(too_large()),
        }
    }
}

/// The middleware that reads a body into [`BufferedBody`] and hands the same bytes on.
pub(crate) async fn buffer_body(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let buffered = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => BufferedBody::Complete(bytes),
        Err(_) => BufferedBody::Unusable,
    };
    let again = match &buffered {
        BufferedBody::Complete(bytes) => Body::from(bytes.clone()),
        BufferedBody::Unusable => Body::empty(),
    };
    parts.extensions.insert(buffered);
    next.run(Request::from_parts(parts, again)).await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize, PartialEq)]
    struct Login {
        email: String,
        #[serde(default)]
        totp: Option<String>,
    }

    #[test]
    fn unknown_fields_are_refused_even_without_deny_unknown_fields() {
        let ok: Login = strict_json(br#"{"email":"a@b.c"}"#).unwrap();
        assert_eq!(ok.email, "a@b.c");
        let error = strict_json::<Login>(br#"{"email":"a@b.c","totp_cdoe":"1"}"#).unwrap_err();
        assert_eq!(error.code, "malformed_request");
        assert!(error.message.contains("totp_cdoe"), "{}", error.message);
        let trailing = strict_json::<Login>(br#"{"email":"a@b.c"} x"#).unwrap_err();
        assert_eq!(trailing.code, "malformed_request");
    }
}
