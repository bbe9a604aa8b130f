//! The WebSocket streams, Binance-compatible: `/ws/<stream>[/<stream>…]` (raw payloads),
//! `/stream?streams=a/b` (wrapped as `{"stream","data"}`), `/ws/<listenKey>` for a user data
//! stream, and the `SUBSCRIBE` / `UNSUBSCRIBE` / `LIST_SUBSCRIPTIONS` methods on any of them.
//!
//! One hub task turns the projection's updates into stream messages, each serialized once:
//! trades, book tickers and user data as they happen; depth diffs every 100 ms or 1000 ms
//! (`@depth@100ms`, `@depth`) carrying the book's update ids, so a client can sync with the
//! REST snapshot exactly as Binance documents; partial books, tickers and candles every
//! second. Every connection reads the hub's broadcast and keeps what it subscribed to; one that
//! falls more than the broadcast's capacity behind is disconnected, so a slow consumer never
//! grows the server's memory.

use crate::Binance;
use crate::rest::{self, stream_ticker};
use crate::units;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::response::{IntoResponse, Response};
use coss_clock::Clock;
use coss_http::{Public, Routes};
use coss_market::{DepthDiff, Execution, Interval, MarketService, Order, Update};
use coss_types::{AccountId, MarketId, Side};
use rustc_hash::{FxHashMap, FxHashSet};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// One message of one stream, serialized once for every subscriber.
#[derive(Debug)]
pub struct StreamMessage {
    /// The stream's name (`ethtusd@trade`), or empty for user data.
    pub stream: String,
    /// The account a user data message belongs to.
    pub account: Option<AccountId>,
    /// The payload.
    pub json: String,
}

/// How many messages a connection may fall behind before it is disconnected (default).
pub(crate) const HUB_CAPACITY: usize = 65_536;
/// Partial book depths.
const PARTIAL_LEVELS: [usize; 3] = [5, 10, 20];
/// Most streams per connection (Binance: 1024).
const MAX_STREAMS: usize = 1024;

/// The hub's output.
#[derive(Debug, Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<StreamMessage>>,
}

impl Hub {
    /// Starts the hub task on the current runtime.
    pub(crate) fn start(market: MarketService, backlog: usize, clock: Clock) -> Hub {
        let (tx, _) = broadcast::channel(backlog.max(1));
        let hub = Hub { tx: tx.clone() };
        tokio::spawn(run(market, tx, clock));
        hub
    }

    /// Connections listening now.
    #[must_use]
    pub fn connections(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Subscribes to every stream message.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<StreamMessage>> {
        self.tx.subscribe()
    }
}

/// Best bid and ask (price ticks, lots) as last sent.
type BookTop = (Option<(u64, u64)>, Option<(u64, u64)>);

/// What the hub remembers between ticks.
#[derive(Default)]
struct HubState {
    book_tops: FxHashMap<MarketId, BookTop>,
    candles_sent: FxHashMap<(MarketId, usize), (u64, u64)>,
    ticks: u64,
}

async fn run(market: MarketService, tx: broadcast::Sender<Arc<StreamMessage>>, clock: Clock) {
    let mut updates = market.subscribe();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut state = HubState::default();
    loop {
        tokio::select! {
            published = updates.recv() => match published {
                Ok(published) => {
                    // Nobody listens: build nothing.
                    if tx.receiver_count() == 0 {
                        continue;
                    }
                    for update in published.updates.iter() {
                        realtime(&market, &tx, &mut state, update, clock.now().0);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "stream hub fell behind the projection");
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            _ = tick.tick() => periodic(&market, &tx, &mut state, clock.now().0),
        }
    }
}

fn send(
    tx: &broadcast::Sender<Arc<StreamMessage>>,
    stream: String,
    account: Option<AccountId>,
    json: &Value,
) {
    if tx.receiver_count() == 0 {
        return;
    }
    let _ = tx.send(Arc::new(StreamMessage {
        stream,
        account,
        json: json.to_string(),
    }));
}

fn realtime(
    market: &MarketService,
    tx: &broadcast::Sender<Arc<StreamMessage>>,
    state: &mut HubState,
    update: &Update,
    now: u64,
) {
    match update {
        Update::Trade(trade) => {
            let projection = market.read();
            let Some(view) = projection.market(trade.market) else {
                return;
            };
            let m = &view.market;
            send(
                tx,
                format!("{}@trade", m.symbol.to_lowercase()),
                None,
                &json!({
                    "e": "trade", "E": now, "s": m.symbol, "t": trade.id,
                    "p": units::price(m, trade.price), "q": units::qty(m, trade.qty.0),
                    "T": trade.time_ms, "m": trade.buyer_is_maker(), "M": true,
                }),
            );
        }
        Update::BookChanged(id) => {
            let projection = market.read();
            let Some(view) = projection.market(*id) else {
                return;
            };
            let key = |l: Option<(coss_types::Price, u64)>| l.map(|(p, q)| (p.0, q));
            let top = (
                key(view.book.best(Side::Buy)),
                key(view.book.best(Side::Sell)),
            );
            if state.book_tops.get(id) == Some(&top) {
                return;
            }
            state.book_tops.insert(*id, top);
            let mut ticker = rest::book_ticker_json(view);
            if let Value::Object(fields) = &mut ticker {
                let rename = |from: &str| fields.get(from).cloned().unwrap_or(Value::Null);
                let data = json!({
                    "u": view.book.update_id, "s": rename("symbol"),
                    "b": rename("bidPrice"), "B": rename("bidQty"),
                    "a": rename("askPrice"), "A": rename("askQty"),
                });
                send(
                    tx,
                    format!("{}@bookTicker", view.market.symbol.to_lowercase()),
                    None,
                    &data,
                );
            }
        }
        Update::Order { execution, order } => {
            let projection = market.read();
            if let Some(view) = projection.market(order.new.market) {
                let report = execution_report(&view.market, execution, order, now);
                send(tx, String::new(), Some(order.new.account), &report);
            }
        }
        Update::Balances {
            account,
            time_ms,
            balances,
        } => {
            let projection = market.read();
            let list: Vec<Value> = balances
                .iter()
                .filter_map(|(asset, free, locked)| {
                    let a = projection.asset(*asset)?;
                    Some(json!({
                        "a": a.symbol,
                        "f": units::decimal(*free, a.decimals),
                        "l": units::decimal(*locked, a.decimals),
                    }))
                })
                .collect();
            send(
                tx,
                String::new(),
                Some(*account),
                &json!({ "e": "outboundAccountPosition", "E": now, "u": time_ms, "B": list }),
            );
        }
        Update::BalanceDelta {
            account,
            asset,
            delta,
            time_ms,
        } => {
            let projection = market.read();
            if let Some(a) = projection.asset(*asset) {
                let abs = units::decimal(delta.unsigned_abs(), a.decimals);
                let d = if *delta < 0 { format!("-{abs}") } else { abs };
                send(
                    tx,
                    String::new(),
                    Some(*account),
                    &json!({ "e": "balanceUpdate", "E": now, "a": a.symbol, "d": d, "T": time_ms }),
                );
            }
        }
    }
}

fn execution_report(m: &coss_market::Market, execution: &Execution, o: &Order, now: u64) -> Value {
    let (kind, last) = match execution {
        Execution::New => ("NEW", None),
        Execution::Trade(t) => ("TRADE", Some(t)),
        Execution::Canceled => ("CANCELED", None),
        Execution::Expired => ("EXPIRED", None),
        Execution::TradePrevention => ("TRADE_PREVENTION", None),
        Execution::Amended => ("REPLACED", None),
        Execution::Triggered => ("NEW", None),
    };
    let order = rest::order_json(m, o);
    let field = |name: &str| order.get(name).cloned().unwrap_or(Value::Null);
    let maker = last.is_some_and(|t| t.maker_order == o.id);
    let (fee, fee_asset) = match last {
        Some(t) => {
            let fee = if maker { t.maker_fee } else { t.taker_fee };
            if o.new.side == Side::Buy {
                (
                    units::decimal(fee, m.base.decimals),
                    Value::from(m.base.symbol.clone()),
                )
            } else {
                (
                    units::decimal(fee, m.quote.decimals),
                    Value::from(m.quote.symbol.clone()),
                )
            }
        }
        None => ("0.00000000".to_owned(), Value::Null),
    };
    json!({
        "e": "executionReport", "E": now, "s": m.symbol,
        "c": field("clientOrderId"), "S": field("side"), "o": field("type"), "f": field("timeInForce"),
        "q": field("origQty"), "p": field("price"), "P": field("stopPrice"), "F": "0.00000000",
        "g": -1, "C": "", "x": kind, "X": field("status"), "r": "NONE", "i": o.id.0,
        "l": last.map_or_else(|| "0.00000000".to_owned(), |t| units::qty(m, t.qty.0)),
        "z": field("executedQty"),
        "L": last.map_or_else(|| "0.00000000".to_owned(), |t| units::price(m, t.price)),
        "n": fee, "N": fee_asset,
        "T": last.map_or(o.update_ms, |t| t.time_ms),
        "t": last.map_or(-1, |t| i64::try_from(t.id).unwrap_or(-1)),
        "I": 0, "w": o.working_ms.is_some() && o.status.is_open(), "m": maker, "M": false,
        "O": o.time_ms, "Z": field("cummulativeQuoteQty"),
        "Y": last.map_or_else(|| "0.00000000".to_owned(), |t| units::quote(m, t.quote)),
        "Q": field("origQuoteOrderQty"), "W": field("workingTime"), "V": field("selfTradePreventionMode"),
    })
}

fn depth_message(m: &coss_market::Market, diff: &DepthDiff, now: u64) -> Value {
    let levels = |list: &[(coss_types::Price, u64)]| -> Vec<Value> {
        list.iter()
            .map(|(p, q)| json!([units::price(m, *p), units::qty(m, *q)]))
            .collect()
    };
    json!({
        "e": "depthUpdate", "E": now, "s": m.symbol,
        "U": diff.first_update_id, "u": diff.last_update_id,
        "b": levels(&diff.bids), "a": levels(&diff.asks),
    })
}

fn periodic(
    market: &MarketService,
    tx: &broadcast::Sender<Arc<StreamMessage>>,
    state: &mut HubState,
    now: u64,
) {
    state.ticks += 1;
    let second = state.ticks.is_multiple_of(10);
    let ids: Vec<MarketId> = market.read().markets().map(|v| v.market.id).collect();
    for id in ids {
        // Depth diffs: taken under the write lock so the ids chain without gaps.
        let speeds: &[(usize, &str)] = if second {
            &[(1, "@depth@100ms"), (0, "@depth")]
        } else {
            &[(1, "@depth@100ms")]
        };
        {
            let mut projection = market.write();
            for (speed, suffix) in speeds {
                if let Some(diff) = projection.take_changed_levels(id, *speed)
                    && let Some(view) = projection.market(id)
                {
                    let m = &view.market;
                    send(
                        tx,
                        format!("{}{suffix}", m.symbol.to_lowercase()),
                        None,
                        &depth_message(m, &diff, now),
                    );
                }
            }
        }
        if tx.receiver_count() == 0 {
            continue;
        }
        let projection = market.read();
        let Some(view) = projection.market(id) else {
            continue;
        };
        let m = &view.market;
        let symbol = m.symbol.to_lowercase();
        let speeds: &[&str] = if second { &["@100ms", ""] } else { &["@100ms"] };
        for levels in PARTIAL_LEVELS {
            let side = |side| -> Vec<Value> {
                view.book
                    .top(side, levels)
                    .into_iter()
                    .map(|(p, q)| json!([units::price(m, p), units::qty(m, q)]))
                    .collect()
            };
            let partial = json!({ "lastUpdateId": view.book.update_id, "bids": side(Side::Buy), "asks": side(Side::Sell) });
            for speed in speeds {
                send(tx, format!("{symbol}@depth{levels}{speed}"), None, &partial);
            }
        }
        if !second {
            continue;
        }
        send(
            tx,
            format!("{symbol}@ticker"),
            None,
            &stream_ticker(view, now),
        );
        for interval in Interval::ALL {
            let Some((_, candle)) = view.candles[interval.index()].iter().next_back() else {
                continue;
            };
            let close = interval.close_time(candle.open_time);
            let closed = close < now;
            let key = (id, interval.index());
            let mark = (candle.last_trade, u64::from(closed));
            if state.candles_sent.get(&key) == Some(&mark) {
                continue;
            }
            state.candles_sent.insert(key, mark);
            send(
                tx,
                format!("{symbol}@kline_{}", interval.name()),
                None,
                &json!({
                    "e": "kline", "E": now, "s": m.symbol,
                    "k": {
                        "t": candle.open_time, "T": close, "s": m.symbol, "i": interval.name(),
                        "f": candle.first_trade, "L": candle.last_trade,
                        "o": units::price(m, candle.open), "c": units::price(m, candle.close),
                        "h": units::price(m, candle.high), "l": units::price(m, candle.low),
                        "v": units::lots(m, candle.volume), "n": candle.trades, "x": closed,
                        "q": units::quote(m, candle.quote_volume),
                        "V": units::lots(m, candle.taker_buy_volume),
                        "Q": units::quote(m, candle.taker_buy_quote), "B": "0",
                    }
                }),
            );
        }
    }
}

/// The WebSocket routes: public, as on Binance; a listen key among the streams opens its
/// account's user data (the key is the credential).
pub fn routes() -> Routes<Binance> {
    Routes::new()
        .get("/ws", raw_empty)
        .get("/ws/{*streams}", raw)
        .get("/stream", combined)
}

/// What a connection listens to.
struct Subscription {
    streams: FxHashSet<String>,
    account: Option<AccountId>,
    combined: bool,
}

async fn raw_empty(
    _: Public,
    State(binance): State<Binance>,
    upgrade: WebSocketUpgrade,
) -> Response {
    open(binance, upgrade, Vec::new(), false)
}

async fn raw(
    _: Public,
    State(binance): State<Binance>,
    Path(streams): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let names = streams.split('/').map(str::to_owned).collect();
    open(binance, upgrade, names, false)
}

async fn combined(
    _: Public,
    State(binance): State<Binance>,
    RawQuery(query): RawQuery,
    upgrade: WebSocketUpgrade,
) -> Response {
    let streams = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "streams")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let names = streams
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    open(binance, upgrade, names, true)
}

fn open(
    binance: Binance,
    upgrade: WebSocketUpgrade,
    names: Vec<String>,
    combined: bool,
) -> Response {
    if names.len() > MAX_STREAMS {
        return crate::BinanceError::new(-1100, "Too many streams.").into_response();
    }
    let mut subscription = Subscription {
        streams: FxHashSet::default(),
        account: None,
        combined,
    };
    for name in names {
        // A listen key names a user data stream; anything else is a market stream.
        if let Some(user) = binance.listen_key_user(&name) {
            subscription.account = coss_identity::exchange_account(user);
        } else {
            subscription.streams.insert(stream_name(&name));
        }
    }
    let hub = binance.inner.hub.subscribe();
    let closing = binance.inner.closing.subscribe();
    if *closing.borrow() {
        return crate::BinanceError::unavailable().into_response();
    }
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(socket, hub, subscription, closing))
}

async fn serve(
    mut socket: WebSocket,
    mut hub: broadcast::Receiver<Arc<StreamMessage>>,
    mut sub: Subscription,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    ping.tick().await;
    loop {
        tokio::select! {
            message = hub.recv() => match message {
                Ok(message) => {
                    let wanted = match message.account {
                        Some(account) => sub.account == Some(account),
                        None => sub.streams.contains(&message.stream),
                    };
                    if !wanted {
                        continue;
                    }
                    let text = if sub.combined {
                        let name = if message.stream.is_empty() { "user" } else { &message.stream };
                        format!("{{\"stream\":\"{name}\",\"data\":{}}}", message.json)
                    } else {
                        message.json.clone()
                    };
                    if socket.send(Message::Text(text.into())).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow: Binance-style disconnect rather than buffering without bound.
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame {
                            code: 1008,
                            reason: Utf8Bytes::from_static("slow consumer"),
                        })))
                        .await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    let reply = method(&mut sub, text.as_str());
                    if socket.send(Message::Text(reply.to_string().into())).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            _ = closing.changed() => {
                let _ = socket
                    .send(Message::Close(Some(CloseFrame {
                        code: 1001,
                        reason: Utf8Bytes::from_static("server shutting down"),
                    })))
                    .await;
                return;
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// A stream name with its symbol in lower case (the rest, like `bookTicker`, as sent).
fn stream_name(name: &str) -> String {
    match name.split_once('@') {
        Some((symbol, rest)) => format!("{}@{rest}", symbol.to_lowercase()),
        None => name.to_lowercase(),
    }
}

/// `SUBSCRIBE`, `UNSUBSCRIBE` and `LIST_SUBSCRIPTIONS`, answered as Binance does.
fn method(sub: &mut Subscription, text: &str) -> Value {
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return json!({ "code": 3, "msg": "Invalid JSON: expected value at line 1 column 1" });
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let names: Vec<String> = request
        .get("params")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(stream_name)
                .collect()
        })
        .unwrap_or_default();
    match request.get("method").and_then(Value::as_str) {
        Some("SUBSCRIBE") => {
            if sub.streams.len() + names.len() > MAX_STREAMS {
                return json!({ "code": 2, "msg": "Too many streams", "id": id });
            }
            sub.streams.extend(names);
            json!({ "result": null, "id": id })
        }
        Some("UNSUBSCRIBE") => {
            for name in names {
                sub.streams.remove(&name);
            }
            json!({ "result": null, "id": id })
        }
        Some("LIST_SUBSCRIPTIONS") => {
            let mut list: Vec<&String> = sub.streams.iter().collect();
            list.sort();
            json!({ "result": list, "id": id })
        }
        _ => json!({ "code": 2, "msg": "Invalid request: unknown method", "id": id }),
    }
}
