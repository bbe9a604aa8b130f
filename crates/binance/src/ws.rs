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
//! grows the server's memory, and one whose send waits longer than 10 s is dropped.
//!
//! Every cost a client can cause is bounded before it is paid: a name that is not a stream the
//! hub publishes for a listed market (or a live listen key, matched exactly) is refused by
//! `SUBSCRIBE` and ignored (never held) in a connection's path, where clients put
//! placeholders; a
//! connection weighs 2 against the address's request weight; an address (an IPv6 client by
//! its /64) holds at most `stream_connections_per_address` connections (100); a connection sending
//! more than 5 frames a second is closed (1008), as on Binance.

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
/// Longest name looked at: a listen key has 60 characters, a stream name far fewer.
const MAX_NAME: usize = 80;
/// Request weight of opening a stream connection (as Binance's WebSocket API counts it), so
/// reconnecting in a loop is rate limited like any request.
const CONNECT_WEIGHT: u32 = 2;
/// Frames a connection may send per second (Binance: 5, pings and pongs included); more
/// closes it.
const MESSAGES_PER_SECOND: u32 = 5;
/// How long one send may wait for the client to read before the connection is dropped: a
/// client that never reads must not hold its task (and what it is sending) forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The listen key that opened `account`'s user data, as sent (keys are case-sensitive).
    listen_key: Option<String>,
    combined: bool,
}

/// What one name in a connection's path or in a `SUBSCRIBE` asks for.
enum Wanted {
    /// A market stream, by its canonical name (`ethtusd@trade`).
    Market(String),
    /// A user data stream: the account, and the listen key as sent.
    User(AccountId, String),
}

impl Binance {
    /// Reads one requested name: a live listen key (exactly as issued), or a stream the hub
    /// publishes for a listed market; `None` for anything else, so nothing is held for a name
    /// that could never deliver a message.
    fn wanted(&self, name: &str) -> Option<Wanted> {
        if name.is_empty() || name.len() > MAX_NAME {
            return None;
        }
        if let Some(user) = self.listen_key_user(name) {
            return coss_identity::exchange_account(user).map(|a| Wanted::User(a, name.to_owned()));
        }
        let (symbol, kind) = name.split_once('@')?;
        if !published(kind)
            || self
                .inner
                .market
                .read()
                .market_by_symbol(&symbol.to_uppercase())
                .is_none()
        {
            return None;
        }
        Some(Wanted::Market(format!("{}@{kind}", symbol.to_lowercase())))
    }
}

/// Whether the hub publishes a stream of this kind (the part after the symbol's `@`).
fn published(kind: &str) -> bool {
    if matches!(kind, "trade" | "bookTicker" | "ticker") {
        return true;
    }
    if let Some(interval) = kind.strip_prefix("kline_") {
        return Interval::ALL.iter().any(|i| i.name() == interval);
    }
    let Some(depth) = kind.strip_prefix("depth") else {
        return false;
    };
    let levels = depth.strip_suffix("@100ms").unwrap_or(depth);
    levels.is_empty() || PARTIAL_LEVELS.iter().any(|l| l.to_string() == levels)
}

/// A name as quoted back in an error: at most 64 characters.
fn quoted(name: &str) -> String {
    name.chars().take(64).collect()
}

/// The client's address, for the per-address connection cap and the rate limit.
struct Peer(Option<std::net::IpAddr>);

impl axum::extract::FromRequestParts<Binance> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Binance,
    ) -> Result<Self, Self::Rejection> {
        Ok(Peer(coss_http::client_addr(
            parts,
            &state.inner.gate.proxies,
        )))
    }
}

/// A place for a stream connection of `ip`'s address, unless it already holds the most it
/// may: beyond it, one client would hold descriptors and tasks everyone else needs. `Some`
/// without counting when the address is unknown or the limit is off.
fn stream_slot(
    binance: &Binance,
    ip: Option<std::net::IpAddr>,
) -> Option<Option<coss_http::AddressSlot>> {
    let most = binance
        .inner
        .limiter
        .limits()
        .stream_connections_per_address;
    match ip {
        Some(ip) if most > 0 => binance
            .inner
            .stream_addresses
            .take(ip, most as usize)
            .map(Some),
        _ => Some(None),
    }
}

async fn raw_empty(
    _: Public,
    State(binance): State<Binance>,
    Peer(ip): Peer,
    upgrade: WebSocketUpgrade,
) -> Response {
    open(binance, ip, upgrade, Vec::new(), false)
}

async fn raw(
    _: Public,
    State(binance): State<Binance>,
    Peer(ip): Peer,
    Path(streams): Path<String>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let names = streams.split('/').map(str::to_owned).collect();
    open(binance, ip, upgrade, names, false)
}

async fn combined(
    _: Public,
    State(binance): State<Binance>,
    Peer(ip): Peer,
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
    open(binance, ip, upgrade, names, true)
}

fn open(
    binance: Binance,
    ip: Option<std::net::IpAddr>,
    upgrade: WebSocketUpgrade,
    names: Vec<String>,
    combined: bool,
) -> Response {
    if let Err(error) =
        binance
            .inner
            .limiter
            .weigh(ip, CONNECT_WEIGHT, binance.inner.gate.clock.now().0)
    {
        return error.into_response();
    }
    if names.len() > MAX_STREAMS {
        return crate::BinanceError::new(-1100, "Too many streams.").into_response();
    }
    let mut subscription = Subscription {
        streams: FxHashSet::default(),
        account: None,
        listen_key: None,
        combined,
    };
    for name in names {
        match binance.wanted(&name) {
            Some(Wanted::User(account, key)) => {
                subscription.account = Some(account);
                subscription.listen_key = Some(key);
            }
            Some(Wanted::Market(stream)) => {
                subscription.streams.insert(stream);
            }
            // Not held: a name that could never deliver costs nothing. Not refused either:
            // clients (ccxt.pro among them) connect to a placeholder such as `/ws/0` and
            // subscribe by message, as Binance allows.
            None => {}
        }
    }
    let Some(slot) = stream_slot(&binance, ip) else {
        let most = binance
            .inner
            .limiter
            .limits()
            .stream_connections_per_address;
        return crate::BinanceError::new(
            -1003,
            format!("Too many stream connections; current limit is {most} per address."),
        )
        .with_status(axum::http::StatusCode::TOO_MANY_REQUESTS)
        .into_response();
    };
    let hub = binance.inner.hub.subscribe();
    let closing = binance.inner.closing.subscribe();
    if *closing.borrow() {
        return crate::BinanceError::unavailable().into_response();
    }
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| serve(socket, binance, slot, hub, subscription, closing))
}

/// How often a connection with a user data stream checks that its listen key still lives.
const KEY_CHECK: Duration = Duration::from_secs(1);

/// Whether the connection's listen key still lives (it expires, is closed, or goes with
/// every credential of its account at a password reset). When it does not, the connection
/// hears `listenKeyExpired`, as Binance sends it, and its user data stops. `false` when the
/// connection is to be dropped.
async fn user_stream_live(
    binance: &Binance,
    socket: &mut WebSocket,
    sub: &mut Subscription,
) -> bool {
    let Some(key) = sub.listen_key.clone() else {
        return true;
    };
    let owner = binance
        .listen_key_user(&key)
        .and_then(coss_identity::exchange_account);
    if owner.is_some() && owner == sub.account {
        return true;
    }
    sub.account = None;
    sub.listen_key = None;
    let event = json!({
        "e": "listenKeyExpired",
        "E": binance.inner.gate.clock.now().0,
        "listenKey": key,
    });
    let text = if sub.combined {
        json!({ "stream": key, "data": event }).to_string()
    } else {
        event.to_string()
    };
    send_within(socket, Message::Text(text.into())).await
}

/// Sends one message within [`SEND_TIMEOUT`]; `false` when the connection is to be dropped.
async fn send_within(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    }));
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(frame)).await;
}

async fn serve(
    mut socket: WebSocket,
    binance: Binance,
    _slot: Option<coss_http::AddressSlot>,
    mut hub: broadcast::Receiver<Arc<StreamMessage>>,
    mut sub: Subscription,
    mut closing: tokio::sync::watch::Receiver<bool>,
) {
    let mut ping = tokio::time::interval(Duration::from_secs(20));
    ping.tick().await;
    let mut key_check = tokio::time::interval(KEY_CHECK);
    key_check.tick().await;
    let (mut second, mut received) = (tokio::time::Instant::now(), 0u32);
    loop {
        tokio::select! {
            _ = key_check.tick(), if sub.account.is_some() => {
                if !user_stream_live(&binance, &mut socket, &mut sub).await {
                    return;
                }
            }
            message = hub.recv() => match message {
                Ok(message) => {
                    let wanted = match message.account {
                        Some(account) => sub.account == Some(account),
                        None => sub.streams.contains(&message.stream),
                    };
                    if !wanted {
                        continue;
                    }
                    if message.account.is_some() {
                        if !user_stream_live(&binance, &mut socket, &mut sub).await {
                            return;
                        }
                        if sub.account.is_none() {
                            continue;
                        }
                    }
                    let text = if sub.combined {
                        let name = if message.stream.is_empty() { "user" } else { &message.stream };
                        format!("{{\"stream\":\"{name}\",\"data\":{}}}", message.json)
                    } else {
                        message.json.clone()
                    };
                    if !send_within(&mut socket, Message::Text(text.into())).await {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Too slow: Binance-style disconnect rather than buffering without bound.
                    close_with(&mut socket, 1008, "slow consumer").await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            incoming = socket.recv() => {
                let now = tokio::time::Instant::now();
                if now.duration_since(second) >= Duration::from_secs(1) {
                    (second, received) = (now, 0);
                }
                received += 1;
                if received > MESSAGES_PER_SECOND {
                    close_with(&mut socket, 1008, "too many messages").await;
                    return;
                }
                match incoming {
                    Some(Ok(Message::Text(text))) => {
                        let reply = method(&binance, &mut sub, text.as_str());
                        if !send_within(&mut socket, Message::Text(reply.to_string().into())).await {
                            return;
                        }
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                    Some(Ok(_)) => {}
                }
            },
            _ = closing.changed() => {
                close_with(&mut socket, 1001, "server shutting down").await;
                return;
            }
            _ = ping.tick() => {
                if !send_within(&mut socket, Message::Ping(Default::default())).await {
                    return;
                }
            }
        }
    }
}

/// `SUBSCRIBE`, `UNSUBSCRIBE` and `LIST_SUBSCRIPTIONS`, answered as Binance does. A
/// `SUBSCRIBE` naming anything that is not a published stream or a live listen key subscribes
/// nothing and says which name was refused.
fn method(binance: &Binance, sub: &mut Subscription, text: &str) -> Value {
    let Ok(request) = serde_json::from_str::<Value>(text) else {
        return json!({ "code": 3, "msg": "Invalid JSON: expected value at line 1 column 1" });
    };
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let names: Vec<&str> = request
        .get("params")
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let invalid = |name: &str| {
        json!({
            "code": 2,
            "msg": format!("Invalid request: invalid stream name '{}'", quoted(name)),
            "id": id,
        })
    };
    match request.get("method").and_then(Value::as_str) {
        Some("SUBSCRIBE") => {
            if sub.streams.len() + names.len() > MAX_STREAMS {
                return json!({ "code": 2, "msg": "Too many streams", "id": id });
            }
            let mut wanted = Vec::with_capacity(names.len());
            for name in &names {
                match binance.wanted(name) {
                    Some(w) => wanted.push(w),
                    None => return invalid(name),
                }
            }
            for w in wanted {
                match w {
                    Wanted::Market(stream) => {
                        sub.streams.insert(stream);
                    }
                    Wanted::User(account, key) => {
                        sub.account = Some(account);
                        sub.listen_key = Some(key);
                    }
                }
            }
            json!({ "result": null, "id": id })
        }
        Some("UNSUBSCRIBE") => {
            for name in names {
                if sub.listen_key.as_deref() == Some(name) {
                    sub.account = None;
                    sub.listen_key = None;
                } else if let Some((symbol, kind)) = name.split_once('@') {
                    sub.streams
                        .remove(&format!("{}@{kind}", symbol.to_lowercase()));
                }
            }
            json!({ "result": null, "id": id })
        }
        Some("LIST_SUBSCRIPTIONS") => {
            let mut list: Vec<&String> = sub.streams.iter().chain(&sub.listen_key).collect();
            list.sort();
            json!({ "result": list, "id": id })
        }
        _ => json!({ "code": 2, "msg": "Invalid request: unknown method", "id": id }),
    }
}
