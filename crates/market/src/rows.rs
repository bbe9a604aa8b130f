//! History rows read back from the database as the projection's own orders, trades and
//! candles, for what memory no longer keeps.

use super::*;

pub(crate) fn u64_of(n: i64) -> Option<u64> {
    u64::try_from(n).ok()
}

/// The side [`side_name`] names.
pub(crate) fn side_of(name: &str) -> Option<Side> {
    match name {
        "BUY" => Some(Side::Buy),
        "SELL" => Some(Side::Sell),
        _ => None,
    }
}

impl Order {
    /// An order as the history stored it (one that has left memory). `None` for a row this
    /// version cannot read back.
    #[must_use]
    pub fn from_row(row: &coss_store::OrderRow) -> Option<Order> {
        let side = side_of(row.side)?;
        let tif = match row.time_in_force {
            Some("IOC") => TimeInForce::Ioc,
            Some("FOK") => TimeInForce::Fok,
            _ => TimeInForce::Gtc,
        };
        let price = row.price.and_then(u64_of).map(Price);
        let qty = row.qty.and_then(u64_of).map(Qty);
        let stop = row.stop_price.and_then(u64_of).map(Price);
        let kind = match (row.kind, price, qty, stop) {
            ("LIMIT_MAKER", Some(price), Some(qty), _) => OrderKind::Limit {
                price,
                qty,
                tif: TimeInForce::PostOnly,
            },
            ("LIMIT", Some(price), Some(qty), _) => OrderKind::Limit { price, qty, tif },
            ("MARKET", _, _, _) if row.quote_order_qty.is_some() => OrderKind::MarketQuote {
                amount: Amount(row.quote_order_qty.as_deref()?.parse().ok()?),
            },
            ("MARKET", _, Some(qty), _) => OrderKind::Market { qty },
            ("STOP_LOSS_LIMIT", Some(price), Some(qty), Some(stop)) => OrderKind::StopLimit {
                stop,
                price,
                qty,
                tif,
            },
            ("TAKE_PROFIT_LIMIT", Some(price), Some(qty), Some(stop)) => {
                OrderKind::TakeProfitLimit {
                    stop,
                    price,
                    qty,
                    tif,
                }
            }
            _ => return None,
        };
        let stp = match row.stp {
            "EXPIRE_TAKER" => SelfTradePrevention::ExpireTaker,
            "EXPIRE_MAKER" => SelfTradePrevention::ExpireMaker,
            "EXPIRE_BOTH" => SelfTradePrevention::ExpireBoth,
            _ => SelfTradePrevention::None,
        };
        let status = match row.status {
            "NEW" => OrderStatus::New,
            "PARTIALLY_FILLED" => OrderStatus::PartiallyFilled,
            "FILLED" => OrderStatus::Filled,
            "CANCELED" => OrderStatus::Canceled,
            "EXPIRED" => OrderStatus::Expired,
            "EXPIRED_IN_MATCH" => OrderStatus::ExpiredInMatch,
            _ => return None,
        };
        Some(Order {
            id: OrderId(u64_of(row.id)?),
            new: NewOrder {
                account: AccountId(u64_of(row.account)?),
                market: MarketId(u32::try_from(row.market).ok()?),
                side,
                kind,
                client_id: match &row.client_id {
                    Some(c) => Some(ClientOrderId::new(c).ok()?),
                    None => None,
                },
                stp,
            },
            price,
            qty,
            executed: u64_of(row.executed)?,
            cum_quote: row.cum_quote.parse().ok()?,
            status,
            time_ms: u64_of(row.time_ms)?,
            update_ms: u64_of(row.update_ms)?,
            working_ms: row.working_ms.and_then(u64_of),
            book_lots: 0,
        })
    }
}

impl Trade {
    /// A trade as the history stored it. `None` for a row this version cannot read back.
    #[must_use]
    pub fn from_row(row: &coss_store::TradeRow) -> Option<Trade> {
        Some(Trade {
            id: u64_of(row.id)?,
            market: MarketId(u32::try_from(row.market).ok()?),
            price: Price(u64_of(row.price)?),
            qty: Qty(u64_of(row.qty)?),
            quote: row.quote.parse().ok()?,
            time_ms: u64_of(row.time_ms)?,
            taker_side: side_of(row.taker_side)?,
            maker_order: OrderId(u64_of(row.maker_order)?),
            taker_order: OrderId(u64_of(row.taker_order)?),
            maker_account: AccountId(u64_of(row.maker_account)?),
            taker_account: AccountId(u64_of(row.taker_account)?),
            maker_fee: row.maker_fee.parse().ok()?,
            taker_fee: row.taker_fee.parse().ok()?,
        })
    }
}

/// Candles of `interval` made from one-minute candles the history stored (oldest first, one
/// market): each holds the minutes that open within it. Trade ids are not stored, so
/// `first_trade` and `last_trade` are 0. Rows this version cannot read are skipped.
#[must_use]
pub fn candles_from_minutes(interval: Interval, minutes: &[coss_store::CandleRow]) -> Vec<Candle> {
    let mut out: Vec<Candle> = Vec::new();
    for row in minutes {
        let (Some(open_time), Some(open), Some(high), Some(low), Some(close), Some(trades)) = (
            u64_of(row.open_time),
            u64_of(row.open),
            u64_of(row.high),
            u64_of(row.low),
            u64_of(row.close),
            u64_of(row.trades),
        ) else {
            continue;
        };
        let amounts = (
            row.volume.parse::<u128>(),
            row.quote_volume.parse::<u128>(),
            row.taker_buy_volume.parse::<u128>(),
            row.taker_buy_quote.parse::<u128>(),
        );
        let (Ok(volume), Ok(quote_volume), Ok(taker_buy_volume), Ok(taker_buy_quote)) = amounts
        else {
            continue;
        };
        let start = interval.open_time(open_time);
        match out.last_mut() {
            Some(c) if c.open_time == start => {
                c.high = c.high.max(Price(high));
                c.low = c.low.min(Price(low));
                c.close = Price(close);
                c.volume += volume;
                c.quote_volume += quote_volume;
                c.trades += trades;
                c.taker_buy_volume += taker_buy_volume;
                c.taker_buy_quote += taker_buy_quote;
            }
            _ => out.push(Candle {
                open_time: start,
                open: Price(open),
                high: Price(high),
                low: Price(low),
                close: Price(close),
                volume,
                quote_volume,
                trades,
                taker_buy_volume,
                taker_buy_quote,
                first_trade: 0,
                last_trade: 0,
            }),
        }
    }
    out
}
