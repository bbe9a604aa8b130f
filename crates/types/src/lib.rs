//! The vocabulary every COSS crate shares: identity newtypes (`AccountId`, `AssetId`,
//! `MarketId`, `OrderId`, `RequestId`, and `UserId` for a person's account in the database),
//! integer money (`Amount` in an asset's smallest unit, `Price` in ticks, `Qty` in lots), the
//! validated `ClientOrderId` and the platform's one time type, `UnixMs`. It holds no logic
//! beyond checked arithmetic and parsing, depends on nothing but serde, reads no clock and
//! never touches floats: an amount that cannot be represented exactly is an error, not a
//! rounding.
#![deny(
    clippy::float_arithmetic,
    clippy::float_cmp,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

use serde::{Deserialize, Serialize};
use std::fmt;

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident($inner:ty)) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub $inner);

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

id_newtype!(
    /// An account in the exchange core (a user's, a merchant's or a system account).
    AccountId(u64)
);
id_newtype!(
    /// A listed asset (coin, token or fiat currency).
    AssetId(u32)
);
id_newtype!(
    /// A listed market (base/quote pair).
    MarketId(u32)
);
id_newtype!(
    /// An order, assigned by the exchange core in acceptance order.
    OrderId(u64)
);
id_newtype!(
    /// The caller's id of a money request (withdrawal, transfer): the idempotency key.
    RequestId(u128)
);
id_newtype!(
    /// A limit price in ticks of its market (`price = ticks × tick_size` quote units per whole base unit).
    Price(u64)
);
id_newtype!(
    /// An order quantity in lots of its market (`base amount = lots × lot_size`).
    Qty(u64)
);

id_newtype!(
    /// A person's account in the accounts database (its row id). The exchange core never
    /// sees it: the edges map it to the core's [`AccountId`].
    UserId(i64)
);

/// A point in time: milliseconds since the Unix epoch, UTC. The one time type of the platform:
/// clocks give it, commands carry it into the exchange core, the database stores it as a
/// BIGINT. Arithmetic saturates (times are far from both ends of the range).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct UnixMs(pub u64);

impl UnixMs {
    /// 1970-01-01T00:00:00Z.
    pub const EPOCH: UnixMs = UnixMs(0);

    /// From a database BIGINT (a negative one, which no stored time is, is the epoch).
    #[must_use]
    pub fn from_i64(ms: i64) -> UnixMs {
        UnixMs(u64::try_from(ms).unwrap_or(0))
    }

    /// As a database BIGINT (saturating at `i64::MAX`, some 292 million years away).
    #[must_use]
    pub fn as_i64(self) -> i64 {
        i64::try_from(self.0).unwrap_or(i64::MAX)
    }

    /// `ms` milliseconds later.
    #[must_use]
    pub fn plus(self, ms: u64) -> UnixMs {
        UnixMs(self.0.saturating_add(ms))
    }

    /// `ms` milliseconds earlier (at the earliest the epoch).
    #[must_use]
    pub fn minus(self, ms: u64) -> UnixMs {
        UnixMs(self.0.saturating_sub(ms))
    }

    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    #[must_use]
    pub fn since(self, earlier: UnixMs) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl fmt::Display for UnixMs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The side of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Side {
    /// Buys the base asset, pays the quote asset.
    Buy,
    /// Sells the base asset, receives the quote asset.
    Sell,
}

impl Side {
    /// The other side.
    #[must_use]
    pub fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }
}

/// An amount of an asset in its smallest unit (wei for ETH, 10⁻⁸ COSS, cents for USD).
///
/// All arithmetic is checked: an overflow or an underflow is `None`, never a wrap.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Amount(pub u128);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// `self + rhs`, or `None` on overflow.
    #[inline]
    #[must_use]
    pub fn checked_add(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_add(rhs.0).map(Amount)
    }

    /// `self - rhs`, or `None` if it would go negative.
    #[inline]
    #[must_use]
    pub fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_sub(rhs.0).map(Amount)
    }

    /// Whether this is zero.
    #[inline]
    #[must_use]
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Formats the amount as a decimal with `decimals` fractional digits, e.g. `1.50000000`.
    #[must_use]
    pub fn to_decimal_string(self, decimals: u8) -> String {
        // 10^39 exceeds u128: every u128 is then a pure fraction.
        let (whole, frac) = match 10u128.checked_pow(u32::from(decimals)) {
            Some(scale) => (self.0 / scale, self.0 % scale),
            None => (0, self.0),
        };
        if decimals == 0 {
            whole.to_string()
        } else {
            format!("{whole}.{frac:0width$}", width = usize::from(decimals))
        }
    }

    /// Parses a non-negative decimal with at most `decimals` fractional digits into the
    /// smallest unit. More digits than the asset has is an error, never a rounding.
    pub fn parse_decimal(text: &str, decimals: u8) -> Result<Amount, AmountParseError> {
        let (whole, frac) = match text.split_once('.') {
            Some((w, f)) => (w, f),
            None => (text, ""),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(AmountParseError::Empty);
        }
        if !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
        {
            return Err(AmountParseError::NotADecimal);
        }
        if frac.len() > usize::from(decimals) {
            return Err(AmountParseError::TooPrecise { decimals });
        }
        let mut value: u128 = 0;
        let padding = usize::from(decimals) - frac.len();
        let digits = whole
            .bytes()
            .chain(frac.bytes())
            .chain(std::iter::repeat_n(b'0', padding));
        for digit in digits {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u128::from(digit - b'0')))
                .ok_or(AmountParseError::TooLarge)?;
        }
        Ok(Amount(value))
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Why a decimal string is not an amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountParseError {
    /// Nothing to parse.
    #[error("empty amount")]
    Empty,
    /// Something other than digits and one dot.
    #[error("not a decimal number")]
    NotADecimal,
    /// More fractional digits than the asset has.
    #[error("more than {decimals} decimal places")]
    TooPrecise {
        /// The asset's decimals.
        decimals: u8,
    },
    /// Does not fit in 128 bits.
    #[error("amount too large")]
    TooLarge,
}

/// The longest client order id, as on the Binance API.
pub const CLIENT_ORDER_ID_MAX_LEN: usize = 36;

/// A caller-chosen order id, unique per account: 1 to 36 characters of `A-Z a-z 0-9 . : / _ -`.
///
/// Stored inline (no heap), so it is cheap to copy, hash and journal.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientOrderId {
    len: u8,
    bytes: [u8; CLIENT_ORDER_ID_MAX_LEN],
}

impl ClientOrderId {
    /// Validates and stores a client order id.
    pub fn new(text: &str) -> Result<ClientOrderId, ClientOrderIdError> {
        let raw = text.as_bytes();
        if raw.is_empty() || raw.len() > CLIENT_ORDER_ID_MAX_LEN {
            return Err(ClientOrderIdError::Length);
        }
        if !raw
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b':' | b'/' | b'_' | b'-'))
        {
            return Err(ClientOrderIdError::Character);
        }
        let mut bytes = [0u8; CLIENT_ORDER_ID_MAX_LEN];
        bytes[..raw.len()].copy_from_slice(raw);
        // Length was checked to be at most 36 above.
        let len = u8::try_from(raw.len()).map_err(|_| ClientOrderIdError::Length)?;
        Ok(ClientOrderId { len, bytes })
    }

    /// The id as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are ever stored, so this cannot fail; fall back to "" defensively.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }
}

impl fmt::Debug for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientOrderId({:?})", self.as_str())
    }
}

impl fmt::Display for ClientOrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ClientOrderId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ClientOrderId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        ClientOrderId::new(&text).map_err(serde::de::Error::custom)
    }
}

/// Why a client order id is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClientOrderIdError {
    /// Empty or longer than 36 characters.
    #[error("client order id must be 1 to 36 characters")]
    Length,
    /// A character outside `A-Z a-z 0-9 . : / _ -`.
    #[error("client order id may contain only A-Z a-z 0-9 . : / _ -")]
    Character,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_parsing_is_exact_and_refuses_extra_precision() {
        assert_eq!(Amount::parse_decimal("1.5", 8), Ok(Amount(150_000_000)));
        assert_eq!(Amount::parse_decimal("0.00000001", 8), Ok(Amount(1)));
        assert_eq!(Amount::parse_decimal("12", 0), Ok(Amount(12)));
        assert_eq!(Amount::parse_decimal(".5", 1), Ok(Amount(5)));
        assert_eq!(
            Amount::parse_decimal("0.000000001", 8),
            Err(AmountParseError::TooPrecise { decimals: 8 })
        );
        assert_eq!(
            Amount::parse_decimal("-1", 8),
            Err(AmountParseError::NotADecimal)
        );
        assert_eq!(
            Amount::parse_decimal("1e5", 8),
            Err(AmountParseError::NotADecimal)
        );
        assert_eq!(Amount::parse_decimal("", 8), Err(AmountParseError::Empty));
        assert_eq!(
            Amount::parse_decimal("999999999999999999999999999999999999999999", 18),
            Err(AmountParseError::TooLarge)
        );
    }

    #[test]
    fn times_convert_to_database_integers_and_saturate() {
        assert_eq!(UnixMs(1_700_000_000_000).as_i64(), 1_700_000_000_000);
        assert_eq!(UnixMs(u64::MAX).as_i64(), i64::MAX);
        assert_eq!(UnixMs::from_i64(-5), UnixMs::EPOCH);
        assert_eq!(UnixMs::from_i64(42), UnixMs(42));
        assert_eq!(UnixMs(10).minus(20), UnixMs::EPOCH);
        assert_eq!(UnixMs(u64::MAX).plus(1), UnixMs(u64::MAX));
        assert_eq!(UnixMs(30).since(UnixMs(10)), 20);
        assert_eq!(UnixMs(10).since(UnixMs(30)), 0);
    }

    #[test]
    fn amounts_never_wrap() {
        assert_eq!(Amount(u128::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(0).checked_sub(Amount(1)), None);
    }

    #[test]
    fn client_order_ids_follow_the_binance_alphabet() {
        assert!(ClientOrderId::new("my-order_1.a:b/c").is_ok());
        assert_eq!(ClientOrderId::new(""), Err(ClientOrderIdError::Length));
        assert_eq!(
            ClientOrderId::new(&"x".repeat(37)),
            Err(ClientOrderIdError::Length)
        );
        assert_eq!(
            ClientOrderId::new("a b"),
            Err(ClientOrderIdError::Character)
        );
        assert_eq!(ClientOrderId::new("é"), Err(ClientOrderIdError::Character));
    }

    proptest! {
        #[test]
        fn decimal_formatting_round_trips(value in any::<u128>(), decimals in 0u8..=30) {
            let text = Amount(value).to_decimal_string(decimals);
            prop_assert_eq!(Amount::parse_decimal(&text, decimals), Ok(Amount(value)));
        }
    }
}
