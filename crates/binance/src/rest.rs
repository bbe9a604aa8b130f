//! The `/api/v3` REST endpoints.

use crate::error::BinanceError;
use crate::params::Params;
use crate::units;
use crate::{Binance, ListenKey};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use coss_core::{
    Command, EventKind, NewOrder, OrderKind, OrderRef, SelfTradePrevention, TimeInForce,
};
use coss_identity::{Permission, SignedRequest};
use coss_market::{
    Interval, Market, MarketView, Order, Projection, Trade, order_type_name, side_name, stp_name,
    tif_name,
};
use coss_store::{HistoryRange, ReadFrom};
use coss_types::{AccountId, Amount, ClientOrderId, OrderId, Side};
use serde_json::{Value, json};
use std::net::IpAddr;

/// The `/api/v3` routes and the WebSocket streams.
pub fn router(binance: Binance) -> Router {
    crate::ws::routes(binance.clone()).merge(rest_routes(binance))
}

fn rest_routes(binance: Binance) -> Router {
    Router::new()
        .route("/api/v3/ping", get(ping))
        .route("/api/v3/time", get(time))
        .route("/api/v3/exchangeInfo", get(exchange_info))
        .route("/api/v3/depth", get(depth))
        .route("/api/v3/trades", get(trades))
        .route("/api/v3/historicalTrades", get(trades))
        .route("/api/v3/aggTrades", get(agg_trades))
        .route("/api/v3/klines", get(klines))
        .route("/api/v3/uiKlines", get(klines))
        .route("/api/v3/avgPrice", get(avg_price))
        .route("/api/v3/ticker/24hr", get(ticker_24hr))
        .route("/api/v3/ticker/price", get(ticker_price))
        .route("/api/v3/ticker/bookTicker", get(book_ticker))
        .route(
            "/api/v3/order",
            post(new_order).get(query_order).delete(cancel_order),
        )
        .route("/api/v3/order/test", post(test_order))
        .route(
            "/api/v3/openOrders",
            get(open_orders).delete(cancel_open_orders),
        )
        .route("/api/v3/allOrders", get(all_orders))
        .route("/api/v3/account", get(account))
        .route("/api/v3/myTrades", get(my_trades))
        .route(
            "/api/v3/userDataStream",
            post(new_listen_key)
                .put(keep_listen_key)
                .delete(close_listen_key),
        )
        .with_state(binance)
}

/// A request as the handlers see it.
struct Call {
    binance: Binance,
    params: Params,
    now: u64,
    /// The caller's account, for signed endpoints.
    account: Option<AccountId>,
    user_id: Option<i64>,
    ip: Option<IpAddr>,
}

/// How an endpoint is secured.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Security {
    /// Public.
    None,
    /// `X-MBX-APIKEY` without a signature.
    ApiKey,
    /// Signed, with the permission it needs.
    Signed(Permission),
}

/// What an endpoint returns: JSON and extra headers.
type Answer = Result<Value, BinanceError>;

fn now_ms() -> u64 {
    u64::try_from(coss_identity::now_ms()).unwrap_or_default()
}

/// Parses, weighs and authenticates a request, then runs the endpoint.
async fn call<F, Fut>(
    binance: Binance,
    parts: &axum::http::request::Parts,
    body: &Bytes,
    security: Security,
    weight: fn(&Params) -> u32,
    endpoint: F,
) -> Response
where
    F: FnOnce(Call) -> Fut,
    Fut: std::future::Future<Output = Answer>,
{
    let (extensions, headers) = (&parts.extensions, &parts.headers);
    let query = parts.uri.query().unwrap_or_default();
    let now = now_ms();
    let ip = coss_api::client_ip(extensions);
    let body = std::str::from_utf8(body).unwrap_or_default();
    let params = match Params::parse(query, body) {
        Ok(params) => params,
        Err(error) => return error.into_response(),
    };
    let weight_used = match binance.inner.limiter.weigh(ip, weight(&params), now) {
        Ok(used) => used,
        Err(error) => return error.into_response(),
    };
    let mut call = Call {
        binance,
        params,
        now,
        account: None,
        user_id: None,
        ip,
    };
    if let Err(error) = authenticate(&mut call, headers, query, body, security).await {
        return with_weight(error.into_response(), weight_used);
    }
    let answer = endpoint(call).await;
    let response = match answer {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => error.into_response(),
    };
    with_weight(response, weight_used)
}

fn with_weight(mut response: Response, used: u32) -> Response {
    let value = HeaderValue::from(used);
    let headers = response.headers_mut();
    headers.insert("x-mbx-used-weight-1m", value.clone());
    headers.insert("x-mbx-used-weight", value);
    response
}

async fn authenticate(
    call: &mut Call,
    headers: &HeaderMap,
    query: &str,
    body: &str,
    security: Security,
) -> Result<(), BinanceError> {
    if security == Security::None {
        return Ok(());
    }
    let key = headers
        .get("x-mbx-apikey")
        .and_then(|v| v.to_str().ok())
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .ok_or_else(|| {
            BinanceError::new(-2014, "API-key format invalid.")
                .with_status(StatusCode::UNAUTHORIZED)
        })?;
    let accounts = &call.binance.inner.accounts;
    let user_id = match security {
        Security::Signed(needs) => {
            let request = SignedRequest {
                api_key: key,
                query,
                body,
                client_ip: call.ip,
                needs,
            };
            let now = i64::try_from(call.now).unwrap_or(i64::MAX);
            accounts.verify_signed(&request, now).await?.user_id
        }
        _ => accounts.key_owner(key, call.ip).await?,
    };
    call.user_id = Some(user_id);
    call.account = coss_core::user_account(user_id);
    Ok(())
}

macro_rules! endpoint {
    ($name:ident, $security:expr, $weight:expr, $body:expr) => {
        async fn $name(
            State(binance): State<Binance>,
            request: axum::extract::Request,
        ) -> Response {
            let (parts, body) = request.into_parts();
            let bytes = match axum::body::to_bytes(body, coss_api::MAX_BODY_BYTES).await {
                Ok(bytes) => bytes,
                Err(_) => {
                    return BinanceError::new(-1000, "Request body too large.")
                        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
                        .into_response();
                }
            };
            call(binance, &parts, &bytes, $security, $weight, $body).await
        }
    };
}

// ---- general ----

endpoint!(ping, Security::None, |_| 1, |c: Call| async move {
    c.params.all_read()?;
    Ok(json!({}))
});

endpoint!(time, Security::None, |_| 1, |c: Call| async move {
    c.params.all_read()?;
    Ok(json!({ "serverTime": c.now }))
});

endpoint!(
    exchange_info,
    Security::None,
    |_| 20,
    |c: Call| async move {
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
);

fn symbol_info(m: &Market) -> Value {
    let tick = units::decimal(m.tick_size, m.quote.decimals);
    let step = units::decimal(m.lot_size, m.base.decimals);
    let max_price = units::decimal(
        m.tick_size.saturating_mul(u128::from(u32::MAX)),
        m.quote.decimals,
    );
    let max_qty = units::decimal(
        m.lot_size.saturating_mul(u128::from(u32::MAX)),
        m.base.decimals,
    );
    json!({
        "symbol": m.symbol,
        "status": if m.trading { "TRADING" } else { "HALT" },
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
fn symbols_param(params: &Params) -> Result<Option<Vec<String>>, BinanceError> {
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

fn select<'a>(
    projection: &'a Projection,
    wanted: Option<&[String]>,
) -> Result<Vec<&'a MarketView>, BinanceError> {
    match wanted {
        None => Ok(projection.markets().collect()),
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

fn market_of<'a>(
    projection: &'a Projection,
    params: &Params,
) -> Result<&'a MarketView, BinanceError> {
    let symbol = params.require("symbol")?;
    projection
        .market_by_symbol(symbol)
        .ok_or_else(BinanceError::bad_symbol)
}

/// One answer for `symbol=X`, a list for `symbols=…` or for all.
fn one_or_all(wanted: Option<&[String]>, params: &Params, items: Vec<Value>) -> Value {
    if params.has("symbol") && wanted.is_some_and(|w| w.len() == 1) {
        items.into_iter().next().unwrap_or(Value::Null)
    } else {
        Value::Array(items)
    }
}

// ---- market data ----

fn depth_weight(params: &Params) -> u32 {
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

endpoint!(depth, Security::None, depth_weight, |c: Call| async move {
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
});

fn trade_json(m: &Market, t: &Trade) -> Value {
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

endpoint!(trades, Security::None, |_| 25, |c: Call| async move {
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
});

/// A history read's range from Binance's `fromId` / `orderId`, `startTime`, `endTime` and
/// `limit`: with a starting point the first `limit` from it, otherwise the latest.
fn history_range(
    from: Option<u64>,
    start: Option<u64>,
    end: Option<u64>,
    limit: usize,
) -> HistoryRange {
    HistoryRange {
        from_id: from.map_or(0, i64_of),
        start_ms: start.map_or(0, i64_of),
        end_ms: end.map_or(i64::MAX, i64_of),
        limit: i64::try_from(limit).unwrap_or(i64::MAX),
        from: if from.is_some() || start.is_some() {
            ReadFrom::Oldest
        } else {
            ReadFrom::Newest
        },
    }
}

/// Rows from the history and from memory together: one per id (memory's, the newer state,
/// wins), by id, the first or the last `limit` as `from` says.
fn merge_by_id<T>(
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
fn keep_limit<T>(rows: &mut Vec<T>, from: ReadFrom, limit: usize) {
    match from {
        ReadFrom::Oldest => rows.truncate(limit),
        ReadFrom::Newest => {
            let skip = rows.len().saturating_sub(limit);
            rows.drain(..skip);
        }
    }
}

/// An id or time for the database (whose integers are signed).
fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn history_error(error: coss_store::StoreError) -> BinanceError {
    BinanceError::internal(format_args!("reading the history: {error}"))
}

/// A market's trades from the history (of an account, and one of its orders, if given).
async fn stored_trades(
    c: &Call,
    market: &Market,
    account: Option<AccountId>,
    order: Option<u64>,
    range: HistoryRange,
) -> Result<Vec<Trade>, BinanceError> {
    let rows = c
        .binance
        .inner
        .accounts
        .store()
        .history_trades(
            i64::from(market.id.0),
            account.map(|a| i64_of(a.0)),
            order.map(i64_of),
            range,
        )
        .await
        .map_err(history_error)?;
    Ok(rows.iter().filter_map(Trade::from_row).collect())
}

/// An account's orders in a market from the history.
async fn stored_orders(
    c: &Call,
    market: &Market,
    account: AccountId,
    range: HistoryRange,
) -> Result<Vec<Order>, BinanceError> {
    let rows = c
        .binance
        .inner
        .accounts
        .store()
        .history_orders(i64_of(account.0), i64::from(market.id.0), range)
        .await
        .map_err(history_error)?;
    Ok(rows.iter().filter_map(Order::from_row).collect())
}

endpoint!(agg_trades, Security::None, |_| 4, |c: Call| async move {
    let limit = c.params.limit(500, 1000)?;
    let from_id = c.params.integer("fromId")?;
    let start = c.params.integer("startTime")?;
    let end = c.params.integer("endTime")?;
    let in_time =
        |t: &&Trade| start.is_none_or(|s| t.time_ms >= s) && end.is_none_or(|e| t.time_ms <= e);
    let (market, kept, reach_back) = {
        let projection = c.binance.inner.market.read();
        let view = market_of(&projection, &c.params)?;
        let kept: Vec<Trade> = if from_id.is_some() || start.is_some() {
            view.trades_from(from_id.unwrap_or(0))
                .filter(in_time)
                .take(limit)
                .copied()
                .collect()
        } else {
            view.recent_trades(limit).filter(in_time).copied().collect()
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
        let range = history_range(from_id, start, end, limit);
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
});

endpoint!(klines, Security::None, |_| 2, |c: Call| async move {
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
            .binance
            .inner
            .accounts
            .store()
            .history_candles(i64::from(m.id.0), i64_of(from), i64_of(until))
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
});

endpoint!(avg_price, Security::None, |_| 2, |c: Call| async move {
    let projection = c.binance.inner.market.read();
    let view = market_of(&projection, &c.params)?;
    c.params.all_read()?;
    let m = &view.market;
    let stats = view.rolling(c.now, 5 * 60_000);
    let price = stats.map_or(0, |s| average_price(m, s.quote_volume, s.volume));
    let close = view.trades.back().map_or(0, |t| t.time_ms);
    Ok(json!({ "mins": 5, "price": units::quote(m, price), "closeTime": close }))
});

/// Quote units per whole base unit of a volume.
fn average_price(m: &Market, quote: u128, lots: u128) -> u128 {
    let base = lots.saturating_mul(m.lot_size);
    if base == 0 {
        return 0;
    }
    quote.saturating_mul(10u128.saturating_pow(u32::from(m.base.decimals))) / base
}

fn ticker_weight(params: &Params) -> u32 {
    if params.has("symbol") { 2 } else { 80 }
}

fn ticker(view: &MarketView, now: u64) -> Value {
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

endpoint!(
    ticker_24hr,
    Security::None,
    ticker_weight,
    |c: Call| async move {
        let wanted = symbols_param(&c.params)?;
        c.params.all_read()?;
        let projection = c.binance.inner.market.read();
        let items = select(&projection, wanted.as_deref())?
            .into_iter()
            .map(|v| ticker(v, c.now))
            .collect();
        Ok(one_or_all(wanted.as_deref(), &c.params, items))
    }
);

endpoint!(
    ticker_price,
    Security::None,
    |p| if p.has("symbol") { 2 } else { 4 },
    |c: Call| async move {
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
);

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

endpoint!(
    book_ticker,
    Security::None,
    |p| if p.has("symbol") { 2 } else { 4 },
    |c: Call| async move {
        let wanted = symbols_param(&c.params)?;
        c.params.all_read()?;
        let projection = c.binance.inner.market.read();
        let items = select(&projection, wanted.as_deref())?
            .into_iter()
            .map(book_ticker_json)
            .collect();
        Ok(one_or_all(wanted.as_deref(), &c.params, items))
    }
);

// ---- orders ----

fn client_id(order: &Order) -> String {
    order
        .client_id()
        .map_or_else(|| format!("coss{}", order.id.0), |c| c.as_str().to_owned())
}

/// An order as `GET /api/v3/order` shows it.
pub(crate) fn order_json(m: &Market, o: &Order) -> Value {
    json!({
        "symbol": m.symbol,
        "orderId": o.id.0,
        "orderListId": -1,
        "clientOrderId": client_id(o),
        "price": o.price.map_or_else(|| "0.00000000".to_owned(), |p| units::price(m, p)),
        "origQty": units::qty(m, o.qty.map_or(0, |q| q.0)),
        "executedQty": units::qty(m, o.executed),
        "cummulativeQuoteQty": units::quote(m, o.cum_quote),
        "status": o.status.name(),
        "timeInForce": o.time_in_force().map_or("GTC", tif_name),
        "type": order_type_name(&o.new.kind),
        "side": side_name(o.new.side),
        "stopPrice": o.stop_price().map_or_else(|| "0.00000000".to_owned(), |p| units::price(m, p)),
        "icebergQty": "0.00000000",
        "time": o.time_ms,
        "updateTime": o.update_ms,
        "isWorking": o.working_ms.is_some(),
        "workingTime": o.working_ms.map_or(-1, |t| i64::try_from(t).unwrap_or(-1)),
        "origQuoteOrderQty": units::quote(m, o.quote_order_qty().map_or(0, |a| a.0)),
        "selfTradePreventionMode": stp_name(o.stp()),
    })
}

/// A cancelled order as `DELETE /api/v3/order` and `DELETE /api/v3/openOrders` answer it:
/// the order, the client order id the request named it by, and when it was cancelled.
fn cancelled_json(m: &Market, o: &Order, orig_client_id: String) -> Value {
    let mut answer = order_json(m, o);
    if let Value::Object(fields) = &mut answer {
        fields.insert("origClientOrderId".into(), Value::String(orig_client_id));
        fields.insert("transactTime".into(), json!(o.update_ms));
    }
    answer
}

/// The parsed `POST /api/v3/order`.
struct OrderRequest {
    new: NewOrder,
    response: &'static str,
}

fn parse_order(
    projection: &Projection,
    p: &Params,
    account: AccountId,
) -> Result<OrderRequest, BinanceError> {
    let view = market_of(projection, p)?;
    let m = &view.market;
    let side = match p.require("side")? {
        "BUY" => Side::Buy,
        "SELL" => Side::Sell,
        _ => return Err(BinanceError::new(-1117, "Invalid side.")),
    };
    let order_type = p.require("type")?;
    let tif = || -> Result<TimeInForce, BinanceError> {
        match p.require("timeInForce")? {
            "GTC" => Ok(TimeInForce::Gtc),
            "IOC" => Ok(TimeInForce::Ioc),
            "FOK" => Ok(TimeInForce::Fok),
            _ => Err(BinanceError::new(-1115, "Invalid timeInForce.")),
        }
    };
    let price = || units::parse_price(m, "price", p.require("price")?);
    let qty = || units::parse_qty(m, "quantity", p.require("quantity")?);
    let stop = || units::parse_price(m, "stopPrice", p.require("stopPrice")?);
    let refuse = |names: &[&str]| -> Result<(), BinanceError> {
        match names.iter().find(|n| p.has(n)) {
            Some(name) => Err(BinanceError::not_required(name)),
            None => Ok(()),
        }
    };
    let kind = match order_type {
        "LIMIT" => {
            refuse(&["quoteOrderQty", "stopPrice"])?;
            let tif = tif()?;
            OrderKind::Limit {
                price: price()?,
                qty: qty()?,
                tif,
            }
        }
        "LIMIT_MAKER" => {
            refuse(&["quoteOrderQty", "stopPrice", "timeInForce"])?;
            OrderKind::Limit {
                price: price()?,
                qty: qty()?,
                tif: TimeInForce::PostOnly,
            }
        }
        "MARKET" => {
            refuse(&["price", "stopPrice", "timeInForce"])?;
            match (p.has("quantity"), p.has("quoteOrderQty")) {
                (true, false) => OrderKind::Market { qty: qty()? },
                (false, true) => {
                    let amount = units::parse(
                        "quoteOrderQty",
                        p.require("quoteOrderQty")?,
                        m.quote.decimals,
                    )?;
                    if amount == 0 {
                        return Err(BinanceError::filter("MIN_NOTIONAL"));
                    }
                    OrderKind::MarketQuote {
                        amount: Amount(amount),
                    }
                }
                (true, true) => {
                    return Err(BinanceError::new(
                        -1106,
                        "Parameter 'quoteOrderQty' sent when not required.",
                    ));
                }
                (false, false) => {
                    return Err(BinanceError::new(
                        -1102,
                        "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
                    ));
                }
            }
        }
        "STOP_LOSS_LIMIT" => {
            refuse(&["quoteOrderQty"])?;
            let tif = tif()?;
            OrderKind::StopLimit {
                stop: stop()?,
                price: price()?,
                qty: qty()?,
                tif,
            }
        }
        "TAKE_PROFIT_LIMIT" => {
            refuse(&["quoteOrderQty"])?;
            let tif = tif()?;
            OrderKind::TakeProfitLimit {
                stop: stop()?,
                price: price()?,
                qty: qty()?,
                tif,
            }
        }
        "STOP_LOSS" | "TAKE_PROFIT" => {
            return Err(BinanceError::new(-1013, "Unsupported order combination."));
        }
        _ => return Err(BinanceError::new(-1116, "Invalid orderType.")),
    };
    // MIN_NOTIONAL for orders with a price and quantity, before they reach the engine.
    if let OrderKind::Limit { price, qty, .. }
    | OrderKind::StopLimit { price, qty, .. }
    | OrderKind::TakeProfitLimit { price, qty, .. } = kind
        && m.quote_units(price, qty) < m.min_notional
    {
        return Err(BinanceError::filter("MIN_NOTIONAL"));
    }
    let client_id = match p.get("newClientOrderId") {
        Some(text) => ClientOrderId::new(text)
            .map_err(|_| BinanceError::illegal("newClientOrderId", "^[a-zA-Z0-9-_.:/]{1,36}$"))?,
        None => generated_client_id()?,
    };
    let stp = match p.get("selfTradePreventionMode") {
        None | Some("EXPIRE_MAKER") => SelfTradePrevention::ExpireMaker,
        Some("NONE") => SelfTradePrevention::None,
        Some("EXPIRE_TAKER") => SelfTradePrevention::ExpireTaker,
        Some("EXPIRE_BOTH") => SelfTradePrevention::ExpireBoth,
        Some(_) => return Err(BinanceError::new(-1013, "Invalid selfTradePreventionMode.")),
    };
    let response = match p.get("newOrderRespType") {
        None | Some("FULL") => "FULL",
        Some("RESULT") => "RESULT",
        Some("ACK") => "ACK",
        Some(_) => return Err(BinanceError::new(-1177, "Invalid newOrderRespType.")),
    };
    for unsupported in [
        "icebergQty",
        "trailingDelta",
        "strategyId",
        "strategyType",
        "pegPriceType",
        "pegOffsetValue",
        "pegOffsetType",
    ] {
        if p.has(unsupported) {
            return Err(BinanceError::not_required(unsupported));
        }
    }
    Ok(OrderRequest {
        new: NewOrder {
            account,
            market: m.id,
            side,
            kind,
            client_id: Some(client_id),
            stp,
        },
        response,
    })
}

/// `n` random characters of `A-Z a-z 0-9` from the OS's generator.
fn random_text(n: usize) -> Result<String, BinanceError> {
    use ring::rand::SecureRandom;
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| BinanceError::internal("no randomness"))?;
    Ok(bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
        .collect())
}

/// 22 random characters, like Binance's generated ids.
fn generated_client_id() -> Result<ClientOrderId, BinanceError> {
    ClientOrderId::new(&random_text(22)?).map_err(BinanceError::internal)
}

fn signed_account(c: &Call) -> Result<AccountId, BinanceError> {
    c.account
        .ok_or_else(|| BinanceError::internal("signed request without an account"))
}

endpoint!(
    new_order,
    Security::Signed(Permission::Trade),
    |_| 1,
    |c: Call| async move {
        let account = signed_account(&c)?;
        let request = {
            let projection = c.binance.inner.market.read();
            parse_order(&projection, &c.params, account)?
        };
        c.params.all_read()?;
        c.binance.inner.limiter.order(account.0, c.now)?;
        let (id, traded) = submit_order(&c, request.new).await?;
        order_answer(&c, id, &traded, request.response)
    }
);

/// Submits a command, waits until it is durable and the projection has applied its events
/// (so the answer reads the caller's own write), and returns its receipt.
async fn submit(c: &Call, command: Command) -> Result<coss_engine::Receipt, BinanceError> {
    let receipt = c
        .binance
        .inner
        .engine
        .submit_async(command)
        .await
        .map_err(|_| BinanceError::unavailable())?;
    if let Some(last) = receipt.events.last() {
        c.binance.inner.market.caught_up(last.seq).await;
    }
    Ok(receipt)
}

/// Places an order; returns its id and the ids of its fills (trades where it was the taker).
async fn submit_order(c: &Call, new: NewOrder) -> Result<(OrderId, Vec<u64>), BinanceError> {
    let receipt = submit(c, Command::PlaceOrder(new)).await?;
    if let Err(reason) = receipt.outcome {
        return Err(BinanceError::order_rejected(reason));
    }
    let mut id = None;
    for event in &receipt.events {
        if let EventKind::OrderAccepted { order, .. } = event.kind {
            id = Some(order);
            break;
        }
    }
    let id = id.ok_or_else(|| BinanceError::internal("accepted order without its event"))?;
    let traded = receipt
        .events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Trade {
                trade, taker_order, ..
            } if taker_order == id => Some(trade),
            _ => None,
        })
        .collect();
    Ok((id, traded))
}

/// The answer to a new order, read from the projection (which has applied its events).
fn order_answer(c: &Call, id: OrderId, traded: &[u64], response: &str) -> Answer {
    let projection = c.binance.inner.market.read();
    let order = projection
        .order(id)
        .ok_or_else(|| BinanceError::internal("order missing from the projection"))?;
    let view = projection
        .market(order.new.market)
        .ok_or_else(BinanceError::bad_symbol)?;
    let m = &view.market;
    let fills = traded.iter().filter_map(|t| view.trade(*t));
    let mut answer = json!({
        "symbol": m.symbol,
        "orderId": id.0,
        "orderListId": -1,
        "clientOrderId": client_id(order),
        "transactTime": order.time_ms,
    });
    if response == "ACK" {
        return Ok(answer);
    }
    let full = order_json(m, order);
    if let (Value::Object(answer), Value::Object(full)) = (&mut answer, full) {
        for (k, v) in full {
            if !matches!(
                k.as_str(),
                "time" | "updateTime" | "isWorking" | "stopPrice" | "icebergQty"
            ) {
                answer.insert(k, v);
            }
        }
        if response == "FULL" {
            let (base, quote) = (&m.base.symbol, &m.quote.symbol);
            let fills: Vec<Value> = fills
                .map(|t| {
                    let asset = if order.new.side == Side::Buy {
                        base
                    } else {
                        quote
                    };
                    let fee_decimals = if order.new.side == Side::Buy {
                        m.base.decimals
                    } else {
                        m.quote.decimals
                    };
                    json!({
                        "price": units::price(m, t.price),
                        "qty": units::qty(m, t.qty.0),
                        "commission": units::decimal(t.taker_fee, fee_decimals),
                        "commissionAsset": asset,
                        "tradeId": t.id,
                    })
                })
                .collect();
            answer.insert("fills".into(), Value::Array(fills));
        }
    }
    Ok(answer)
}

endpoint!(
    test_order,
    Security::Signed(Permission::Trade),
    |_| 1,
    |c: Call| async move {
        let account = signed_account(&c)?;
        {
            let projection = c.binance.inner.market.read();
            parse_order(&projection, &c.params, account)?;
        }
        let _ = c.params.get("computeCommissionRates");
        c.params.all_read()?;
        Ok(json!({}))
    }
);

/// The order a request names by `orderId` or `origClientOrderId`, from the history.
async fn stored_order(
    c: &Call,
    market: &Market,
    account: AccountId,
) -> Result<Option<Order>, BinanceError> {
    let store = c.binance.inner.accounts.store();
    let owner = i64_of(account.0);
    let row = match (
        c.params.integer("orderId")?,
        c.params.get("origClientOrderId"),
    ) {
        (Some(id), _) => store.history_order(owner, i64_of(id)).await,
        (None, Some(client)) => store.history_order_by_client_id(owner, client).await,
        (None, None) => return Ok(None),
    }
    .map_err(history_error)?;
    Ok(row
        .as_ref()
        .and_then(Order::from_row)
        .filter(|o| o.new.market == market.id))
}

/// The order a request names by `orderId` or `origClientOrderId`.
fn named_order<'a>(
    projection: &'a Projection,
    p: &Params,
    account: AccountId,
    view: &MarketView,
) -> Result<Option<&'a Order>, BinanceError> {
    let order = match (p.integer("orderId")?, p.get("origClientOrderId")) {
        (Some(id), _) => projection.order(OrderId(id)),
        (None, Some(client)) => projection.order_by_client_id(account, client),
        (None, None) => {
            return Err(BinanceError::new(
                -1102,
                "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!",
            ));
        }
    };
    Ok(order.filter(|o| o.new.account == account && o.new.market == view.market.id))
}

endpoint!(
    query_order,
    Security::Signed(Permission::Read),
    |_| 4,
    |c: Call| async move {
        let account = signed_account(&c)?;
        let (market, kept) = {
            let projection = c.binance.inner.market.read();
            let view = market_of(&projection, &c.params)?;
            let order = named_order(&projection, &c.params, account, view)?.cloned();
            (view.market.clone(), order)
        };
        c.params.all_read()?;
        let order = match kept {
            Some(order) => order,
            // A finished order that left memory: from the history.
            None => stored_order(&c, &market, account)
                .await?
                .ok_or_else(BinanceError::no_such_order)?,
        };
        Ok(order_json(&market, &order))
    }
);

endpoint!(
    cancel_order,
    Security::Signed(Permission::Trade),
    |_| 1,
    |c: Call| async move {
        let account = signed_account(&c)?;
        let (market, order, orig_client) = {
            let projection = c.binance.inner.market.read();
            let view = market_of(&projection, &c.params)?;
            let order =
                named_order(&projection, &c.params, account, view)?.map(|o| (o.id, client_id(o)));
            let _ = c.params.get("newClientOrderId");
            let _ = c.params.get("cancelRestrictions");
            (
                view.market.id,
                order,
                c.params.get("origClientOrderId").map(str::to_owned),
            )
        };
        c.params.all_read()?;
        let (id, client) = order.ok_or_else(BinanceError::unknown_order)?;
        let receipt = submit(
            &c,
            Command::Cancel {
                account,
                market,
                order: OrderRef::Id(id),
            },
        )
        .await?;
        if receipt.outcome.is_err() {
            return Err(BinanceError::unknown_order());
        }
        let projection = c.binance.inner.market.read();
        let view = projection
            .market(market)
            .ok_or_else(BinanceError::bad_symbol)?;
        let order = projection
            .order(id)
            .ok_or_else(BinanceError::unknown_order)?;
        Ok(cancelled_json(
            &view.market,
            order,
            orig_client.unwrap_or(client),
        ))
    }
);

endpoint!(
    open_orders,
    Security::Signed(Permission::Read),
    |p| if p.has("symbol") { 6 } else { 80 },
    |c: Call| async move {
        let account = signed_account(&c)?;
        let projection = c.binance.inner.market.read();
        let market = match c.params.get("symbol") {
            Some(s) => Some(
                projection
                    .market_by_symbol(s)
                    .ok_or_else(BinanceError::bad_symbol)?
                    .market
                    .id,
            ),
            None => None,
        };
        c.params.all_read()?;
        let list = projection
            .open_orders(account)
            .filter(|o| market.is_none_or(|m| o.new.market == m))
            .filter_map(|o| {
                projection
                    .market(o.new.market)
                    .map(|v| order_json(&v.market, o))
            })
            .collect();
        Ok(Value::Array(list))
    }
);

endpoint!(
    cancel_open_orders,
    Security::Signed(Permission::Trade),
    |_| 1,
    |c: Call| async move {
        let account = signed_account(&c)?;
        let (market, open): (_, Vec<OrderId>) = {
            let projection = c.binance.inner.market.read();
            let view = market_of(&projection, &c.params)?;
            let id = view.market.id;
            (
                id,
                projection
                    .open_orders(account)
                    .filter(|o| o.new.market == id)
                    .map(|o| o.id)
                    .collect(),
            )
        };
        c.params.all_read()?;
        if open.is_empty() {
            return Err(BinanceError::unknown_order());
        }
        let receipt = submit(&c, Command::CancelAll { account, market }).await?;
        let cancelled: Vec<OrderId> = receipt
            .events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::OrderDone { order, .. } => Some(order),
                _ => None,
            })
            .collect();
        let projection = c.binance.inner.market.read();
        let view = projection
            .market(market)
            .ok_or_else(BinanceError::bad_symbol)?;
        Ok(Value::Array(
            cancelled
                .into_iter()
                .filter_map(|id| projection.order(id))
                .map(|o| cancelled_json(&view.market, o, client_id(o)))
                .collect(),
        ))
    }
);

endpoint!(
    all_orders,
    Security::Signed(Permission::Read),
    |_| 20,
    |c: Call| async move {
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
                .filter(|o| from.is_none_or(|f| o.id.0 >= f))
                .filter(|o| {
                    start.is_none_or(|s| o.time_ms >= s) && end.is_none_or(|e| o.time_ms <= e)
                })
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
);

endpoint!(
    account,
    Security::Signed(Permission::Read),
    |_| 20,
    |c: Call| async move {
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
);

endpoint!(
    my_trades,
    Security::Signed(Permission::Read),
    |_| 20,
    |c: Call| async move {
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
                .filter(|t| from.is_none_or(|f| t.id >= f))
                .filter(|t| {
                    start.is_none_or(|s| t.time_ms >= s) && end.is_none_or(|e| t.time_ms <= e)
                })
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
);

// ---- user data stream keys ----

/// Listen keys live 60 minutes unless kept alive.
const LISTEN_KEY_MS: u64 = 60 * 60_000;

endpoint!(
    new_listen_key,
    Security::ApiKey,
    |_| 2,
    |c: Call| async move {
        c.params.all_read()?;
        let user_id = c.user_id.ok_or_else(|| BinanceError::internal("no user"))?;
        let key = random_text(60)?;
        let mut keys = c
            .binance
            .inner
            .listen_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.retain(|_, k| k.expires_ms > c.now);
        keys.insert(
            key.clone(),
            ListenKey {
                user_id,
                expires_ms: c.now + LISTEN_KEY_MS,
            },
        );
        Ok(json!({ "listenKey": key }))
    }
);

fn listen_key_of(c: &Call) -> Result<String, BinanceError> {
    let key = c.params.require("listenKey")?.to_owned();
    let keys = c
        .binance
        .inner
        .listen_keys
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    match keys.get(&key) {
        Some(k) if Some(k.user_id) == c.user_id && k.expires_ms > c.now => Ok(key),
        _ => Err(BinanceError::new(-1125, "This listenKey does not exist.")),
    }
}

endpoint!(
    keep_listen_key,
    Security::ApiKey,
    |_| 2,
    |c: Call| async move {
        let key = listen_key_of(&c)?;
        c.params.all_read()?;
        let mut keys = c
            .binance
            .inner
            .listen_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(k) = keys.get_mut(&key) {
            k.expires_ms = c.now + LISTEN_KEY_MS;
        }
        Ok(json!({}))
    }
);

endpoint!(
    close_listen_key,
    Security::ApiKey,
    |_| 2,
    |c: Call| async move {
        let key = listen_key_of(&c)?;
        c.params.all_read()?;
        c.binance
            .inner
            .listen_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&key);
        Ok(json!({}))
    }
);

impl Binance {
    /// The user a live listen key belongs to.
    #[must_use]
    pub fn listen_key_user(&self, key: &str) -> Option<i64> {
        let keys = self
            .inner
            .listen_keys
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        keys.get(key)
            .filter(|k| k.expires_ms > now_ms())
            .map(|k| k.user_id)
    }
}
