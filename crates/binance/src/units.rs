//! Decimal strings in and out, in each market's units: prices in ticks, quantities in lots.

use crate::error::BinanceError;
use coss_market::Market;
use coss_types::{Amount, AmountParseError, Price, Qty};

/// An amount in smallest units as Binance shows decimals: at least 8 fractional digits, more
/// only when the value needs them (`0.00100000`, `1.123456789012345678`).
#[must_use]
pub fn decimal(units: u128, decimals: u8) -> String {
    let text = Amount(units).to_decimal_string(decimals);
    let (whole, frac) = text.split_once('.').unwrap_or((&text, ""));
    let frac = frac.trim_end_matches('0');
    format!("{whole}.{frac:0<8}")
}

/// Parses a decimal into smallest units; trailing zeros beyond the asset's decimals are fine.
///
/// # Errors
/// -1100 for anything but digits and one point, -1111 for more precision than the asset has.
pub fn parse(name: &str, text: &str, decimals: u8) -> Result<u128, BinanceError> {
    let trimmed = match text.split_once('.') {
        Some((whole, frac)) => {
            let frac = frac.trim_end_matches('0');
            if frac.is_empty() {
                whole.to_owned()
            } else {
                format!("{whole}.{frac}")
            }
        }
        None => text.to_owned(),
    };
    match Amount::parse_decimal(&trimmed, decimals) {
        Ok(amount) => Ok(amount.0),
        Err(AmountParseError::TooPrecise { .. }) => Err(BinanceError::precision()),
        Err(_) => Err(BinanceError::illegal(
            name,
            "^([0-9]{1,20})(\\.[0-9]{1,20})?$",
        )),
    }
}

/// A price as shown: quote units per whole base unit.
#[must_use]
pub fn price(market: &Market, price: Price) -> String {
    decimal(market.price_units(price), market.quote.decimals)
}

/// A quantity in lots as shown: base units.
#[must_use]
pub fn qty(market: &Market, qty: u64) -> String {
    decimal(market.qty_units(Qty(qty)), market.base.decimals)
}

/// A base amount in base units (volumes kept in lots).
#[must_use]
pub fn lots(market: &Market, lots: u128) -> String {
    decimal(lots.saturating_mul(market.lot_size), market.base.decimals)
}

/// A quote amount.
#[must_use]
pub fn quote(market: &Market, units: u128) -> String {
    decimal(units, market.quote.decimals)
}

/// The most ticks a price may be and the most lots a quantity may be: what `exchangeInfo`
/// advertises as `maxPrice` and `maxQty`, and what orders are held to.
pub const MAX_STEPS: u64 = u32::MAX as u64;

/// Parses a price into ticks.
///
/// # Errors
/// -1100/-1111 as [`parse`]; `PRICE_FILTER` when not a positive multiple of the tick size
/// or above [`MAX_STEPS`] ticks.
pub fn parse_price(market: &Market, name: &str, text: &str) -> Result<Price, BinanceError> {
    let units = parse(name, text, market.quote.decimals)?;
    if units == 0 || units % market.tick_size != 0 {
        return Err(BinanceError::filter("PRICE_FILTER"));
    }
    u64::try_from(units / market.tick_size)
        .ok()
        .filter(|&ticks| ticks <= MAX_STEPS)
        .map(Price)
        .ok_or_else(|| BinanceError::filter("PRICE_FILTER"))
}

/// Parses a quantity into lots.
///
/// # Errors
/// -1100/-1111 as [`parse`]; `LOT_SIZE` when not a positive multiple of the step size or
/// above [`MAX_STEPS`] lots.
pub fn parse_qty(market: &Market, name: &str, text: &str) -> Result<Qty, BinanceError> {
    let units = parse(name, text, market.base.decimals)?;
    if units == 0 || units % market.lot_size != 0 {
        return Err(BinanceError::filter("LOT_SIZE"));
    }
    u64::try_from(units / market.lot_size)
        .ok()
        .filter(|&lots| lots <= MAX_STEPS)
        .map(Qty)
        .ok_or_else(|| BinanceError::filter("LOT_SIZE"))
}

/// `part / whole` as a percentage with 3 decimals, signed (for `priceChangePercent`).
#[must_use]
pub fn percent(part: i128, whole: u128) -> String {
    let Ok(whole) = i128::try_from(whole) else {
        return "0.000".into();
    };
    if whole == 0 {
        return "0.000".into();
    }
    let scaled = part.saturating_mul(100_000) / whole;
    let sign = if scaled < 0 { "-" } else { "" };
    let abs = scaled.unsigned_abs();
    format!("{sign}{}.{:03}", abs / 1000, abs % 1000)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn decimals_show_at_least_eight_places() {
        assert_eq!(decimal(1_000_000, 6), "1.00000000");
        assert_eq!(decimal(100_000_000_000_000, 18), "0.00010000");
        assert_eq!(decimal(1, 18), "0.000000000000000001");
        assert_eq!(decimal(5, 0), "5.00000000");
    }

    #[test]
    fn parsing_accepts_padding_but_not_precision() {
        assert_eq!(parse("price", "1.50000000", 6).unwrap(), 1_500_000);
        assert_eq!(parse("price", "2", 6).unwrap(), 2_000_000);
        assert_eq!(parse("price", "1.0000001", 6).unwrap_err().code, -1111);
        assert_eq!(parse("price", "1e5", 6).unwrap_err().code, -1100);
        assert_eq!(parse("price", "-1", 6).unwrap_err().code, -1100);
    }

    #[test]
    fn percentages_have_three_decimals_and_a_sign() {
        assert_eq!(percent(5, 100), "5.000");
        assert_eq!(percent(-1, 3), "-33.333");
        assert_eq!(percent(1, 0), "0.000");
    }
}
