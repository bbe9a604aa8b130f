//! History rows read back from the database as the projection's own orders, trades and
//! candles, for what memory no longer keeps.

use super::*;

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
        let (price, qty, stop) = (row.price, row.qty, row.stop_price);
        let kind = match (row.kind, price, qty, stop) {
            ("LIMIT_MAKER", Some(price), Some(qty), _) => OrderKind::Limit {
                price,
                qty,
                tif: TimeInForce::PostOnly,
            },
            ("LIMIT", Some(price), Some(qty), _) => OrderKind::Limit { price, qty, tif },
            ("MARKET", _, _, _) if row.quote_order_qty.is_some() => OrderKind::MarketQuote {
                amount: row.quote_order_qty?,
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
            id: row.id,
            new: NewOrder {
                account: row.account,
                market: row.market,
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
            executed: row.executed,
            cum_quote: row.cum_quote.0,
            status,
            time_ms: row.time_ms.0,
            update_ms: row.update_ms.0,
            working_ms: row.working_ms.map(|t| t.0),
            book_lots: 0,
        })
    }
}

impl Trade {
    /// A trade as the history stored it. `None` for a row this version cannot read back.
    #[must_use]
    pub fn from_row(row: &coss_store::TradeRow) -> Option<Trade> {
        Some(Trade {
            id: row.id,
            market: row.market,
            price: row.price,
            qty: row.qty,
            quote: row.quote.0,
            time_ms: row.time_ms.0,
            taker_side: side_of(row.taker_side)?,
            maker_order: row.maker_order,
            taker_order: row.taker_order,
            maker_account: row.maker_account,
            taker_account: row.taker_account,
            maker_fee: row.maker_fee.0,
            taker_fee: row.taker_fee.0,
        })
    }
}

/// A one-minute candle of `market` as the history stores it (the inverse of
/// [`candles_from_minutes`] for one minute).
#[must_use]
pub fn candle_row(market: MarketId, c: &Candle) -> coss_store::CandleRow {
    coss_store::CandleRow {
        market,
        open_time: coss_types::UnixMs(c.open_time),
        open: c.open,
        high: c.high,
        low: c.low,
        close: c.close,
        volume: c.volume,
        quote_volume: Amount(c.quote_volume),
        trades: c.trades,
        taker_buy_volume: c.taker_buy_volume,
        taker_buy_quote: Amount(c.taker_buy_quote),
    }
}

/// Candles of `interval` made from one-minute candles the history stored (oldest first, one
/// market): each holds the minutes that open within it. Trade ids are not stored, so
/// `first_trade` and `last_trade` are 0.
#[must_use]
pub fn candles_from_minutes(interval: Interval, minutes: &[coss_store::CandleRow]) -> Vec<Candle> {
    let mut out: Vec<Candle> = Vec::new();
    for row in minutes {
        let (volume, quote_volume) = (row.volume, row.quote_volume.0);
        let (taker_buy_volume, taker_buy_quote) = (row.taker_buy_volume, row.taker_buy_quote.0);
        let start = interval.open_time(row.open_time.0);
        match out.last_mut() {
            Some(c) if c.open_time == start => {
                c.high = c.high.max(row.high);
                c.low = c.low.min(row.low);
                c.close = row.close;
                c.volume += volume;
                c.quote_volume += quote_volume;
                c.trades += row.trades;
                c.taker_buy_volume += taker_buy_volume;
                c.taker_buy_quote += taker_buy_quote;
            }
            _ => out.push(Candle {
                open_time: start,
                open: row.open,
                high: row.high,
                low: row.low,
                close: row.close,
                volume,
                quote_volume,
                trades: row.trades,
                taker_buy_volume,
                taker_buy_quote,
                first_trade: 0,
                last_trade: 0,
            }),
        }
    }
    out
}
