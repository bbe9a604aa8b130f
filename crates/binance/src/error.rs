//! Binance's error shape, `{"code": -NNNN, "msg": "…"}`, with the codes Binance uses for the
//! same mistakes.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use coss_core::RejectReason;
use coss_identity::IdentityError;
use serde::Serialize;

/// An error as Binance clients parse it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {msg}")]
pub struct BinanceError {
    /// HTTP status.
    pub status: StatusCode,
    /// Binance's code (negative).
    pub code: i32,
    /// Message, worded as Binance words it.
    pub msg: String,
    /// Seconds to wait (429 and 418).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: i32,
    msg: &'a str,
}

impl BinanceError {
    /// A 400 with a code and message.
    pub fn new(code: i32, msg: impl Into<String>) -> Self {
        BinanceError {
            status: StatusCode::BAD_REQUEST,
            code,
            msg: msg.into(),
            retry_after: None,
        }
    }

    /// The same error with another status.
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    /// -1000: an unexpected failure (details go to the log, not the caller).
    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error in the Binance API");
        BinanceError::new(
            -1000,
            "An unknown error occurred while processing the request.",
        )
        .with_status(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// -1102: a mandatory parameter is missing or empty.
    pub fn mandatory(name: &str) -> Self {
        BinanceError::new(
            -1102,
            format!("Mandatory parameter '{name}' was not sent, was empty/null, or malformed."),
        )
    }

    /// -1100: a parameter with characters outside its legal range.
    pub fn illegal(name: &str, legal: &str) -> Self {
        BinanceError::new(
            -1100,
            format!("Illegal characters found in parameter '{name}'; legal range is '{legal}'."),
        )
    }

    /// -1106: a parameter this request does not take.
    pub fn not_required(name: &str) -> Self {
        BinanceError::new(-1106, format!("Parameter '{name}' sent when not required."))
    }

    /// -1121: no such symbol.
    pub fn bad_symbol() -> Self {
        BinanceError::new(-1121, "Invalid symbol.")
    }

    /// -1013: a filter failed.
    pub fn filter(name: &str) -> Self {
        BinanceError::new(-1013, format!("Filter failure: {name}"))
    }

    /// -1111: more decimals than the asset has.
    pub fn precision() -> Self {
        BinanceError::new(
            -1111,
            "Precision is over the maximum defined for this asset.",
        )
    }

    /// -2013: no such order.
    pub fn no_such_order() -> Self {
        BinanceError::new(-2013, "Order does not exist.")
    }

    /// -2011: a cancel named no open order.
    pub fn unknown_order() -> Self {
        BinanceError::new(-2011, "Unknown order sent.")
    }

    /// The engine is not answering.
    pub fn unavailable() -> Self {
        BinanceError::new(
            -1001,
            "Internal error; unable to process your request. Please try again.",
        )
        .with_status(StatusCode::SERVICE_UNAVAILABLE)
    }

    /// A new order the core refused, as Binance reports it.
    pub fn order_rejected(reason: RejectReason) -> Self {
        use RejectReason as R;
        match reason {
            R::InsufficientBalance => BinanceError::new(
                -2010,
                "Account has insufficient balance for requested action.",
            ),
            R::DuplicateClientOrderId => BinanceError::new(-2010, "Duplicate order sent."),
            R::PostOnlyWouldTrade => {
                BinanceError::new(-2010, "Order would immediately match and take.")
            }
            R::WouldTriggerImmediately => {
                BinanceError::new(-2010, "Order would trigger immediately.")
            }
            R::MarketHalted => BinanceError::new(-2010, "Market is closed."),
            R::BelowMinNotional => BinanceError::filter("MIN_NOTIONAL"),
            R::InvalidQuantity => BinanceError::filter("LOT_SIZE"),
            R::InvalidPrice => BinanceError::filter("PRICE_FILTER"),
            R::TooManyOpenOrders => BinanceError::filter("MAX_NUM_ORDERS"),
            R::UnknownMarket => BinanceError::bad_symbol(),
            R::UnknownOrder => BinanceError::unknown_order(),
            R::InvalidTimeInForce => BinanceError::new(-1115, "Invalid timeInForce."),
            R::Overflow => BinanceError::new(-1013, "Filter failure: LOT_SIZE"),
            other => BinanceError::new(-2010, other.to_string()),
        }
    }
}

impl From<IdentityError> for BinanceError {
    fn from(error: IdentityError) -> Self {
        use IdentityError as E;
        match error {
            E::ApiKeyInvalid
            | E::ApiKeyRevoked
            | E::IpNotAllowed
            | E::AccountLocked
            | E::PermissionDenied(_) => {
                BinanceError::new(-2015, "Invalid API-key, IP, or permissions for action.")
                    .with_status(StatusCode::UNAUTHORIZED)
            }
            E::InvalidSignature => {
                BinanceError::new(-1022, "Signature for this request is not valid.")
            }
            E::TimestampOutsideWindow => BinanceError::new(
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            ),
            E::TimestampAhead => BinanceError::new(
                -1021,
                "Timestamp for this request was 1000ms ahead of the server's time.",
            ),
            E::MissingParameter(name) => BinanceError::mandatory(name),
            E::Invalid {
                code: "invalid_timestamp",
                ..
            } => BinanceError::illegal("timestamp", "^[0-9]{1,20}$"),
            E::Invalid {
                code: "invalid_parameter",
                ..
            } => BinanceError::new(-1131, "recvWindow must be less than 60000"),
            other => BinanceError::internal(other),
        }
    }
}

impl IntoResponse for BinanceError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            axum::Json(Body {
                code: self.code,
                msg: &self.msg,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after
            && let Ok(value) = HeaderValue::from_str(&secs.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
