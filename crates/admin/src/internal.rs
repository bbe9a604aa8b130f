//! The internal API the operator program calls: `POST /internal/v1/{operation}` with the
//! operation's parameters as a JSON object, served by `coss up` on its own listener (never on
//! the public one). Every call is checked before anything else: signed by the service key
//! ([`crate::signing`]), within 30 s of the platform's clock, its nonce never seen; refusals
//! are audited like every operation.

use std::net::IpAddr;

use axum::Json;
use axum::extract::{FromRequestParts, Path};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use coss_http::{ApiError, Auth, BufferedBody, Routes};
use serde_json::Value;

use crate::ops::{Call, operation};
use crate::signing::{
    CLIENT_IP_HEADER, Call as Signed, NONCE_HEADER, OPERATOR_HEADER, SIGNATURE_HEADER, TIME_HEADER,
    WINDOW_MS,
};
use crate::{AdminError, BackOffice};

/// The path prefix of every operation.
pub const PREFIX: &str = "/internal/v1/";

/// A call signed by the operator program's service key (checked, replay-protected).
#[derive(Debug, Clone)]
pub struct ServiceCall {
    /// Who called.
    pub call: Call,
    /// The body.
    pub body: axum::body::Bytes,
}

impl Auth for ServiceCall {
    const SCHEME: &'static str = "service_key";
    const READS_BODY: bool = true;
}

/// A refusal before the operation ran, audited once it is answered.
#[derive(Debug)]
pub struct Refused(ApiError);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        self.0.into_response()
    }
}

impl FromRequestParts<BackOffice> for ServiceCall {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, office: &BackOffice) -> Result<Self, Refused> {
        let claimed_ip = header(parts, CLIENT_IP_HEADER).unwrap_or("-").to_owned();
        match verify(parts, office).await {
            Ok(call) => Ok(call),
            Err(error) => {
                if let Err(audit) = office
                    .audit_refused_call(parts.uri.path(), &claimed_ip, &error)
                    .await
                {
                    return Err(Refused(audit.into()));
                }
                Err(Refused(error.into()))
            }
        }
    }
}

fn header<'a>(parts: &'a Parts, name: &str) -> Option<&'a str> {
    parts.headers.get(name).and_then(|v| v.to_str().ok())
}

async fn verify(parts: &Parts, office: &BackOffice) -> Result<ServiceCall, AdminError> {
    let (Some(time), Some(nonce), Some(signature), Some(client_ip)) = (
        header(parts, TIME_HEADER),
        header(parts, NONCE_HEADER),
        header(parts, SIGNATURE_HEADER),
        header(parts, CLIENT_IP_HEADER),
    ) else {
        return Err(AdminError::Unsigned);
    };
    let body = match parts.extensions.get::<BufferedBody>() {
        Some(BufferedBody::Complete(bytes)) => bytes.clone(),
        _ => {
            return Err(AdminError::invalid(
                "payload_too_large",
                "the body is too large",
            ));
        }
    };
    let time_ms: i64 = time.parse().map_err(|_| AdminError::Unsigned)?;
    let now = office.now();
    if (now - time_ms).abs() > WINDOW_MS {
        return Err(AdminError::Expired);
    }
    if nonce.len() != 32 || !nonce.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(AdminError::Unsigned);
    }
    let operator = header(parts, OPERATOR_HEADER).unwrap_or("");
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path(), |p| p.as_str());
    let signed = Signed {
        method: parts.method.as_str(),
        path,
        time_ms,
        nonce,
        operator,
        client_ip,
        body: &body,
    };
    if !office.verifier().verify(&signed, signature) {
        return Err(AdminError::BadSignature);
    }
    let client_ip: IpAddr = client_ip.parse().map_err(|_| AdminError::BadSignature)?;
    // Kept past the window on both sides, so a replay is refused for as long as the time
    // check would let it through.
    if !office
        .store()
        .use_internal_nonce(nonce, time_ms + 2 * WINDOW_MS, now)
        .await?
    {
        return Err(AdminError::Replayed);
    }
    Ok(ServiceCall {
        call: Call {
            token: (!operator.is_empty()).then(|| operator.to_owned()),
            client_ip,
        },
        body,
    })
}

async fn run(
    service: ServiceCall,
    axum::extract::State(office): axum::extract::State<BackOffice>,
    Path(name): Path<String>,
) -> Response {
    // No body, or `null`, is no parameters.
    let input: Value = if service.body.is_empty() {
        Value::Object(serde_json::Map::new())
    } else {
        match serde_json::from_slice(&service.body) {
            Ok(value @ Value::Object(_)) => value,
            Ok(Value::Null) => Value::Object(serde_json::Map::new()),
            _ => {
                return ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_params",
                    "the parameters are a JSON object",
                )
                .into_response();
            }
        }
    };
    let four_eyes = operation(&name).is_some_and(|o| o.four_eyes);
    match office.run(&name, &service.call, &input).await {
        Ok(answer) if four_eyes => (StatusCode::ACCEPTED, Json(answer)).into_response(),
        Ok(answer) => Json(answer).into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The internal API's routes (one route; the operation is its last path segment).
pub fn router(office: BackOffice) -> Routes {
    Routes::<BackOffice>::new()
        .post("/internal/v1/{operation}", run)
        .with_state(office)
}
