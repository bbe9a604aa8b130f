//! Market data: ping, time, exchange information, the book, trades, candles, prices and tickers.

use super::history::{history_error, history_range, keep_limit, merge_by_id, stored_trades};
use super::*;

// ---- general ----

pub(crate) async fn ping(c: Call) -> Answer {
    c.params.all_read()?;
    Ok(json!({}))
}

pub(crate) async fn time(c: Call) -> Answer {
    c.params.all_read()?;
    Ok(json!({ "serverTime": c.now }))
}

pub(crate) async fn exchange_info(c: Call) -> Answer {
    let wanted = symbols_param(&c.params)?;
    c.params.all_read()?;
    let limits = c.binance.inner.limiter.limits();
    let projection = c.binance.inner.market.read();
    let markets = select(&projection, wanted.as_deref())?;
    let symbols: Vec<Value> = markets.iter().map(|m| symbol_info(&m.market)).collect();
    Ok(json!({
        "timezone": "UTC",
        "serverTime": c.now,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": limits.weight_per_minute},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": limits.orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": limits.orders_per_day},
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }))
}

pub(crate) fn symbol_info(m: &Market) -> Value {
    let tick = units::decimal(m.tick_size, m.quote.decimals);
    let step = units::decimal(m.lot_size, m.base.decimals);
    let max_price = units::decimal(
        m.tick_size.saturating_mul(u128::from(units::MAX_STEPS)),
        m.quote.decimals,
    );
    let max_qty = units::decimal(
        m.lot_size.saturating_mul(u128::from(units::MAX_STEPS)),
        m.base.decimals,
    );
    json!({
        "symbol": m.symbol,
        "status": if m.trading {
            "TRADING"
        } else if m.hidden {
            "BREAK"
        } else {
            "HALT"
        },
        "baseAsset": m.base.symbol,
        "baseAssetPrecision": 8,
        "quoteAsset": m.quote.symbol,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": false,
        "ocoAllowed": false,
        "otoAllowed": false,
        "quoteOrderQtyMarketAllowed": true,
        "allowTrailingStop": false,
        "cancelReplaceAllowed": false,
        "amendAllowed": false,
        "isSpotTradingAllowed": true,
        "isMarginTradingAllowed": false,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": max_price, "tickSize": tick},
            {"filterType": "LOT_SIZE", "minQty": step, "maxQty": max_qty, "stepSize": step},
            {"filterType": "MIN_NOTIONAL", "minNotional": units::decimal(m.min_notional, m.quote.decimals), "applyToMarket": true, "avgPriceMins": 5},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    })
}

/// `symbol=X` or `symbols=["X","Y"]`, or neither (all).
pub(crate) fn symbols_param(params: &Params) -> Result<Option<Vec<String>>, BinanceError> {
    match (params.get("symbol"), params.get("symbols")) {
        (Some(_), Some(_)) => Err(BinanceError::new(
            -1128,
            "Combination of optional parameters invalid.",
        )),
        (Some(symbol), None) => Ok(Some(vec![symbol.to_owned()])),
        (None, Some(list)) => serde_json::from_str::<Vec<String>>(list)
            .map(Some)
            .map_err(|_| {
                BinanceError::illegal(
                    "symbols",
                    "^\\[(\"[A-Z0-9-_.]{1,20}\"(,\"[A-Z0-9-_.]{1,20}\"){0,}){0,1}\\]$",
                )
            }),
        (None, None) => Ok(None),
    }
}

pub(crate) fn select<'a>(
    projection: &'a Projection,
    wanted: Option<&[String]>,
) -> Result<Vec<&'a MarketView>, BinanceError> {
    match wanted {
        // A hidden market is named only when asked for.
        None => Ok(projection.markets().filter(|m| !m.market.hidden).collect()),
        Some(list) => list
            .iter()
            .map(|s| {
                projection
                    .market_by_symbol(s)
                    .ok_or_else(BinanceError::bad_symbol)
            })
            .collect(),
    }
}

pub(crate) fn market_of<'a>(
    projection: &'a Projection,
    params: &Params,
) -> Result<&'a MarketView, BinanceError> {
    let symbol = params.require("symbol")?;
    projection
        .market_by_symbol(symbol)
        .ok_or_else(BinanceError::bad_symbol)
}

/// One answer for `symbol=X`, a list for `symbols=…` or for all.
pub(crate) fn one_or_all(wanted: Option<&[String]>, params: &Params, items: Vec<Value>) -> Value {
    if params.has("symbol") && wanted.is_some_and(|w| w.len() == 1) {
        items.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(items)
    }
}

// ---- market data ----

pub(crate) fn depth_weight(params: &Params) -> u32 {
    match params
        .has("limit")
        .then(|| params.integer("limit").ok().flatten())
        .flatten()
    {
        Some(0..=100) | None => 5,
        Some(101..=500) => 25,
        Some(501..=1000) => 50,
        Some(_) => 250,
    }
}

pub(crate) async fn depth(c: Call) -> Answer {
    let limit = c.params.limit(100, 5000)?;
    let projection = c.binance.inner.market.read();
    let view = market_of(&projection, &c.params)?;
    c.params.all_read()?;
    let m = &view.market;
    let side = |side| -> Vec<Value> {
        view.book
            .top(side, limit)
            .into_iter()
            .map(|(p, q)| json!([units::price(m, p), units::qty(m, q)]))
            .collect()
    };
    Ok(json!({
        "lastUpdateId": view.book.update_id,
        "bids": side(Side::Buy),
        "asks": side(Side::Sell),
    }))
}

pub(crate) fn trade_json(m: &Market, t: &Trade) -> Value {
    json!({
        "id": t.id,
        "price": units::price(m, t.price),
        "qty": units::qty(m, t.qty.0),
        "quoteQty": units::quote(m, t.quote),
        "time": t.time_ms,
        "isBuyerMaker": t.buyer_is_maker(),
        "isBestMatch": true,
    })
}

pub(crate) async fn trades(c: Call) -> Answer {
    let limit = c.params.limit(500, 1000)?;
    let from_id = c.params.integer("fromId")?;
    let (market, kept, evicted) = {
        let projection = c.binance.inner.market.read();
        let view = market_of(&projection, &c.params)?;
        let kept: Vec<Trade> = match from_id {
            Some(from) => view.trades_from(from).take(limit).copied().collect(),
            None => view.recent_trades(limit).copied().collect(),
        };
        (view.market.clone(), kept, view.evicted_trades)
    };
    c.params.all_read()?;
    // Trades that left memory are read from the history.
    let reach_back = evicted > 0
        && match from_id {
            Some(from) => from <= evicted,
            None => kept.len() < limit,
        };
    let trades = if reach_back {
        let range = history_range(from_id, None, None, limit);
        let stored = stored_trades(&c, &market, None, None, range).await?;
        merge_by_id(stored, kept, |t| t.id, range.from, limit)
    } else {
        kept
    };
    Ok(Value::Array(
        trades.iter().map(|t| trade_json(&market, t)).collect(),
    ))
}

pub(crate) async fn agg_trades(c: Call) -> Answer {
    let limit = c.params.limit(500, 1000)?;
    let from_id = c.params.integer("fromId")?;
    let start = c.params.integer("startTime")?;
    let end = c.params.integer("endTime")?;
    let range = history_range(from_id, start, end, limit);
    let in_range = |t: &&Trade| range.holds(t.id, UnixMs(t.time_ms));
    let (market, kept, reach_back) = {
        let projection = c.binance.inner.market.read();
        let view = market_of(&projection, &c.params)?;
        let kept: Vec<Trade> = if from_id.is_some() || start.is_some() {
            view.trades_from(from_id.unwrap_or(0))
                .filter(in_range)
                .take(limit)
                .copied()
                .collect()
        } else {
            view.recent_trades(limit)
                .filter(in_range)
                .copied()
                .collect()
        };
        // Whether the history holds trades the range asks for that memory let go.
        let oldest_kept_time = view.trades.front().map_or(u64::MAX, |t| t.time_ms);
        let reach_back = view.evicted_trades > 0
            && match (from_id, start) {
                (Some(f), _) => f <= view.evicted_trades,
                (None, Some(s)) => s < oldest_kept_time,
                (None, None) => kept.len() < limit,
            };
        (view.market.clone(), kept, reach_back)
    };
    c.params.all_read()?;
    let m = &market;
    let selected: Vec<Trade> = if reach_back {
        let stored = stored_trades(&c, m, None, None, range).await?;
        merge_by_id(stored, kept, |t| t.id, range.from, limit)
    } else {
        kept
    };
    Ok(Value::Array(
        selected
            .into_iter()
            .map(|t| {
                json!({
                    "a": t.id, "p": units::price(m, t.price), "q": units::qty(m, t.qty.0),
                    "f": t.id, "l": t.id, "T": t.time_ms, "m": t.buyer_is_maker(), "M": true,
                })
            })
            .collect(),
    ))
}

pub(crate) async fn klines(c: Call) -> Answer {
    let interval = c.params.require("interval")?;
    let interval =
        Interval::parse(interval).ok_or_else(|| BinanceError::new(-1120, "Invalid interval."))?;
    let start = c.params.integer("startTime")?;
    let end = c.params.integer("endTime")?;
    let limit = c.params.limit(500, 1000)?;
    let _utc = c
        .params
        .get("timeZone")
        .map(|z| {
            if matches!(z, "0" | "+00:00" | "00:00") {
                Ok(())
            } else {
                Err(BinanceError::new(
                    -1100,
                    "Illegal characters found in parameter 'timeZone'; only UTC is supported.",
                ))
            }
        })
        .transpose()?;
    let start = start.map(|s| interval.open_time(s));
    let (market, kept, evicted) = {
        let projection = c.binance.inner.market.read();
        let view = market_of(&projection, &c.params)?;
        (
            view.market.clone(),
            view.candles(interval, start, end, limit),
            view.evicted_candles[interval.index()],
        )
    };
    c.params.all_read()?;
    let m = &market;
    // Candles that left memory (those opening before `evicted`) are made from the history's
    // one-minute candles: only the part of the range before the first one memory holds.
    let reach_back = evicted > 0
        && match start {
            Some(s) => s < evicted,
            None => kept.len() < limit,
        };
    let candles = if reach_back && interval != Interval::S1 {
        let before = kept.first().map_or(u64::MAX, |k| k.open_time);
        let until = end.unwrap_or(u64::MAX).min(before.saturating_sub(1));
        let from = match start {
            Some(s) => s,
            // The latest candles before memory's first: only sub-hour intervals leave
            // memory, and they have a fixed length.
            None => {
                let wanted = u64::try_from(limit - kept.len()).unwrap_or(u64::MAX);
                interval
                    .open_time(until.min(evicted))
                    .saturating_sub(interval.fixed_len().saturating_mul(wanted - 1))
            }
        };
        let minutes = c
            .store()
            .history_candles(m.id, UnixMs(from), UnixMs(until))
            .await
            .map_err(history_error)?;
        let mut older = coss_market::candles_from_minutes(interval, &minutes);
        older.retain(|k| k.open_time < before);
        let mut all = older;
        all.extend(kept);
        let from = if start.is_some() {
            ReadFrom::Oldest
        } else {
            ReadFrom::Newest
        };
        keep_limit(&mut all, from, limit);
        all
    } else {
        kept
    };
    Ok(Value::Array(
        candles
            .into_iter()
            .map(|k| {
                json!([
                    k.open_time,
                    units::price(m, k.open),
                    units::price(m, k.high),
                    units::price(m, k.low),
                    units::price(m, k.close),
                    units::lots(m, k.volume),
                    interval.close_time(k.open_time),
                    units::quote(m, k.quote_volume),
                    k.trades,
                    units::lots(m, k.taker_buy_volume),
                    units::quote(m, k.taker_buy_quote),
                    "0",
                ])
            })
            .collect(),
    ))
}

pub(crate) async fn avg_price(c: Call) -> Answer {
    let projection = c.binance.inner.market.read();
    let view = market_of(&projection, &c.params)?;
    c.params.all_read()?;
    let m = &view.market;
    let stats = view.rolling(c.now, 5 * 60_000);
    let price = stats.map_or(0, |s| average_price(m, s.quote_volume, s.volume));
    let close = view.trades.back().map_or(0, |t| t.time_ms);
    Ok(json!({ "mins": 5, "price": units::quote(m, price), "closeTime": close }))
}

/// Quote units per whole base unit of a volume.
pub(crate) fn average_price(m: &Market, quote: u128, lots: u128) -> u128 {
    let base = lots.saturating_mul(m.lot_size);
    if base == 0 {
        return 0;
    }
    quote.saturating_mul(10u128.saturating_pow(u32::from(m.base.decimals))) / base
}

pub(crate) fn ticker_weight(params: &Params) -> u32 {
    if params.has("symbol") { 2 } else { 80 }
}

pub(crate) fn ticker(view: &MarketView, now: u64) -> Value {
    let m = &view.market;
    let last = view.trades.back();
    let last_price = last.map_or(0, |t| m.price_units(t.price));
    let bid = view.book.best(Side::Buy);
    let ask = view.book.best(Side::Sell);
    let level = |l: Option<(coss_types::Price, u64)>| {
        l.map_or(
            ("0.00000000".to_owned(), "0.00000000".to_owned()),
            |(p, q)| (units::price(m, p), units::qty(m, q)),
        )
    };
    let (bid_price, bid_qty) = level(bid);
    let (ask_price, ask_qty) = level(ask);
    let window = 24 * 60 * 60_000;
    let stats = view.rolling(now, window);
    let (open, high, low, volume, quote_volume, first, last_id, count, open_time) = match stats {
        Some(s) => (
            m.price_units(s.open),
            m.price_units(s.high),
            m.price_units(s.low),
            s.volume,
            s.quote_volume,
            i64::try_from(s.first_trade).unwrap_or(-1),
            i64::try_from(s.last_trade).unwrap_or(-1),
            s.trades,
            s.open_time,
        ),
        None => (0, 0, 0, 0, 0, -1, -1, 0, now.saturating_sub(window)),
    };
    let change = if stats.is_some() {
        i128::try_from(last_price).unwrap_or(0) - i128::try_from(open).unwrap_or(0)
    } else {
        0
    };
    let change_text = {
        let abs = units::quote(m, change.unsigned_abs());
        if change < 0 { format!("-{abs}") } else { abs }
    };
    json!({
        "symbol": m.symbol,
        "priceChange": change_text,
        "priceChangePercent": units::percent(change, open),
        "weightedAvgPrice": units::quote(m, average_price(m, quote_volume, volume)),
        "prevClosePrice": units::quote(m, open),
        "lastPrice": units::quote(m, last_price),
        "lastQty": last.map_or_else(|| "0.00000000".to_owned(), |t| units::qty(m, t.qty.0)),
        "bidPrice": bid_price,
        "bidQty": bid_qty,
        "askPrice": ask_price,
        "askQty": ask_qty,
        "openPrice": units::quote(m, open),
        "highPrice": units::quote(m, high),
        "lowPrice": units::quote(m, low),
        "volume": units::lots(m, volume),
        "quoteVolume": units::quote(m, quote_volume),
        "openTime": open_time,
        "closeTime": now,
        "firstId": first,
        "lastId": last_id,
        "count": count,
    })
}

/// The 24-hour ticker in the `@ticker` stream's shape.
pub(crate) fn stream_ticker(view: &MarketView, now: u64) -> Value {
    let t = ticker(view, now);
    let f = |name: &str| t.get(name).cloned().unwrap_or(Value::Null);
    json!({
        "e": "24hrTicker", "E": now, "s": f("symbol"),
        "p": f("priceChange"), "P": f("priceChangePercent"), "w": f("weightedAvgPrice"),
        "x": f("prevClosePrice"), "c": f("lastPrice"), "Q": f("lastQty"),
        "b": f("bidPrice"), "B": f("bidQty"), "a": f("askPrice"), "A": f("askQty"),
        "o": f("openPrice"), "h": f("highPrice"), "l": f("lowPrice"),
        "v": f("volume"), "q": f("quoteVolume"), "O": f("openTime"), "C": f("closeTime"),
        "F": f("firstId"), "L": f("lastId"), "n": f("count"),
    })
}

pub(crate) async fn ticker_24hr(c: Call) -> Answer {
    let wanted = symbols_param(&c.params)?;
    c.params.all_read()?;
    let projection = c.binance.inner.market.read();
    let items = select(&projection, wanted.as_deref())?
        .into_iter()
        .map(|v| ticker(v, c.now))
        .collect();
    Ok(one_or_all(wanted.as_deref(), &c.params, items))
}

pub(crate) async fn ticker_price(c: Call) -> Answer {
    let wanted = symbols_param(&c.params)?;
    c.params.all_read()?;
    let projection = c.binance.inner.market.read();
    let items = select(&projection, wanted.as_deref())?
        .into_iter()
        .map(|v| {
            let m = &v.market;
            let price = v.trades.back().map_or(0, |t| m.price_units(t.price));
            json!({ "symbol": m.symbol, "price": units::quote(m, price) })
        })
        .collect();
    Ok(one_or_all(wanted.as_deref(), &c.params, items))
}

pub(crate) fn book_ticker_json(v: &MarketView) -> Value {
    let m = &v.market;
    let level = |side| {
        v.book.best(side).map_or(
            ("0.00000000".to_owned(), "0.00000000".to_owned()),
            |(p, q)| (units::price(m, p), units::qty(m, q)),
        )
    };
    let (bid_price, bid_qty) = level(Side::Buy);
    let (ask_price, ask_qty) = level(Side::Sell);
    json!({
        "symbol": m.symbol,
        "bidPrice": bid_price, "bidQty": bid_qty,
        "askPrice": ask_price, "askQty": ask_qty,
    })
}

pub(crate) async fn book_ticker(c: Call) -> Answer {
    let wanted = symbols_param(&c.params)?;
    c.params.all_read()?;
    let projection = c.binance.inner.market.read();
    let items = select(&projection, wanted.as_deref())?
        .into_iter()
        .map(book_ticker_json)
        .collect();
    Ok(one_or_all(wanted.as_deref(), &c.params, items))
}
