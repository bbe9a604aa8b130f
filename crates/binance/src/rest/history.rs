//! The account and its history: balances, every order and trade of a symbol, merged from the
//! projection (newest) and the database (older than the projection keeps).

use super::market_data::market_of;
use super::orders::signed_account;
use super::*;

/// A history read's range from Binance's `fromId` / `orderId`, `startTime`, `endTime` and
/// `limit`: with a starting point the first `limit` from it, otherwise the latest.
pub(crate) fn history_range(
    from: Option<u64>,
    start: Option<u64>,
    end: Option<u64>,
    limit: usize,
) -> HistoryRange {
    HistoryRange {
        from_id: from.unwrap_or(0),
        start_ms: start.map_or(UnixMs::EPOCH, UnixMs),
        end_ms: end.map_or(UnixMs(u64::MAX), UnixMs),
        limit: u64::try_from(limit).unwrap_or(u64::MAX),
        from: if from.is_some() || start.is_some() {
            ReadFrom::Oldest
        } else {
            ReadFrom::Newest
        },
    }
}

/// Rows from the history and from memory together: one per id (memory's, the newer state,
/// wins), by id, the first or the last `limit` as `from` says.
pub(crate) fn merge_by_id<T>(
    stored: Vec<T>,
    kept: Vec<T>,
    id: impl Fn(&T) -> u64,
    from: ReadFrom,
    limit: usize,
) -> Vec<T> {
    let mut all: std::collections::BTreeMap<u64, T> =
        stored.into_iter().map(|t| (id(&t), t)).collect();
    for t in kept {
        all.insert(id(&t), t);
    }
    let mut all: Vec<T> = all.into_values().collect();
    keep_limit(&mut all, from, limit);
    all
}

/// Keeps the first `limit` of rows in order (reading from the oldest) or the last.
pub(crate) fn keep_limit<T>(rows: &mut Vec<T>, from: ReadFrom, limit: usize) {
    match from {
        ReadFrom::Oldest => rows.truncate(limit),
        ReadFrom::Newest => {
            let skip = rows.len().saturating_sub(limit);
            rows.drain(..skip);
        }
    }
}

pub(crate) fn history_error(error: coss_store::StoreError) -> BinanceError {
    BinanceError::internal(format_args!("reading the history: {error}"))
}

/// A market's trades from the history (of an account, and one of its orders, if given).
pub(crate) async fn stored_trades(
    c: &Call,
    market: &Market,
    account: Option<AccountId>,
    order: Option<u64>,
    range: HistoryRange,
) -> Result<Vec<Trade>, BinanceError> {
    let rows = c
        .store()
        .history_trades(market.id, account, order.map(OrderId), range)
        .await
        .map_err(history_error)?;
    Ok(rows.iter().filter_map(Trade::from_row).collect())
}

/// An account's orders in a market from the history.
pub(crate) async fn stored_orders(
    c: &Call,
    market: &Market,
    account: AccountId,
    range: HistoryRange,
) -> Result<Vec<Order>, BinanceError> {
    let rows = c
        .store()
        .history_orders(account, market.id, range)
        .await
        .map_err(history_error)?;
    Ok(rows.iter().filter_map(Order::from_row).collect())
}

pub(crate) async fn all_orders(c: Call) -> Answer {
    let account = signed_account(&c)?;
    let from = c.params.integer("orderId")?;
    let start = c.params.integer("startTime")?;
    let end = c.params.integer("endTime")?;
    let limit = c.params.limit(500, 1000)?;
    let range = history_range(from, start, end, limit);
    let (market, kept) = {
        let projection = c.binance.inner.market.read();
        let view = market_of(&projection, &c.params)?;
        let kept: Vec<Order> = projection
            .orders_of(account)
            .filter(|o| o.new.market == view.market.id)
            .filter(|o| range.holds(o.id.0, UnixMs(o.time_ms)))
            .cloned()
            .collect();
        (view.market.clone(), kept)
    };
    c.params.all_read()?;
    // Memory keeps the open and the recently finished orders; the history has the rest
    // (and may lag memory by a moment, which memory covers).
    let stored = stored_orders(&c, &market, account, range).await?;
    let chosen = merge_by_id(stored, kept, |o| o.id.0, range.from, limit);
    Ok(Value::Array(
        chosen.iter().map(|o| order_json(&market, o)).collect(),
    ))
}

pub(crate) async fn account(c: Call) -> Answer {
    let account = signed_account(&c)?;
    let omit_zero = c.params.get("omitZeroBalances") == Some("true");
    c.params.all_read()?;
    let projection = c.binance.inner.market.read();
    let held = projection.balances(account);
    let balances: Vec<Value> = projection
        .assets()
        .filter_map(|asset| {
            let (free, locked) = held
                .iter()
                .find(|(a, _, _)| *a == asset.id)
                .map_or((0, 0), |(_, f, l)| (*f, *l));
            if omit_zero && free == 0 && locked == 0 {
                return None;
            }
            Some(json!({
                "asset": asset.symbol,
                "free": units::decimal(free, asset.decimals),
                "locked": units::decimal(locked, asset.decimals),
            }))
        })
        .collect();
    let rates = projection.fee_rates(account);
    let rate = |ppm: u32| units::decimal(u128::from(ppm), 6);
    Ok(json!({
        "makerCommission": rates.maker_ppm / 100,
        "takerCommission": rates.taker_ppm / 100,
        "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {
            "maker": rate(rates.maker_ppm),
            "taker": rate(rates.taker_ppm),
            "buyer": "0.00000000",
            "seller": "0.00000000",
        },
        "canTrade": true,
        "canWithdraw": true,
        "canDeposit": true,
        "brokered": false,
        "requireSelfTradePrevention": false,
        "preventSor": false,
        "updateTime": projection.time_ms(),
        "accountType": "SPOT",
        "balances": balances,
        "permissions": ["SPOT"],
        "uid": c.user_id.unwrap_or_default(),
    }))
}

pub(crate) async fn my_trades(c: Call) -> Answer {
    let account = signed_account(&c)?;
    let order_id = c.params.integer("orderId")?;
    let from = c.params.integer("fromId")?;
    let start = c.params.integer("startTime")?;
    let end = c.params.integer("endTime")?;
    let limit = c.params.limit(500, 1000)?;
    let range = history_range(from, start, end, limit);
    let (market, kept) = {
        let projection = c.binance.inner.market.read();
        let view = market_of(&projection, &c.params)?;
        let id = view.market.id;
        let kept: Vec<Trade> = projection
            .trades_of(account)
            .filter(|t| t.market == id)
            .filter(|t| order_id.is_none_or(|o| t.maker_order.0 == o || t.taker_order.0 == o))
            .filter(|t| range.holds(t.id, UnixMs(t.time_ms)))
            .copied()
            .collect();
        (view.market.clone(), kept)
    };
    c.params.all_read()?;
    let m = &market;
    let stored = stored_trades(&c, m, Some(account), order_id, range).await?;
    let chosen = merge_by_id(stored, kept, |t| t.id, range.from, limit);
    Ok(Value::Array(
        chosen
            .iter()
            .flat_map(|t| {
                // A self-trade is one row per side.
                let mut rows = Vec::new();
                for maker in [true, false] {
                    let (who, order, fee) = if maker {
                        (t.maker_account, t.maker_order, t.maker_fee)
                    } else {
                        (t.taker_account, t.taker_order, t.taker_fee)
                    };
                    if who != account || order_id.is_some_and(|o| order.0 != o) {
                        continue;
                    }
                    let buyer = (t.taker_side == Side::Buy) != maker;
                    let (asset, decimals) = if buyer {
                        (&m.base.symbol, m.base.decimals)
                    } else {
                        (&m.quote.symbol, m.quote.decimals)
                    };
                    rows.push(json!({
                        "symbol": m.symbol,
                        "id": t.id,
                        "orderId": order.0,
                        "orderListId": -1,
                        "price": units::price(m, t.price),
                        "qty": units::qty(m, t.qty.0),
                        "quoteQty": units::quote(m, t.quote),
                        "commission": units::decimal(fee, decimals),
                        "commissionAsset": asset,
                        "time": t.time_ms,
                        "isBuyer": buyer,
                        "isMaker": maker,
                        "isBestMatch": true,
                    }));
                }
                rows
            })
            .collect(),
    ))
}
