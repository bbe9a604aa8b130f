//! Projections of the exchange core's events: what the trading APIs read. [`Projection`] is a
//! pure function of the event stream (`apply` one event at a time, no clock, no I/O): order
//! books by price level with a per-market update id that depth streams and snapshots share,
//! every trade, candles in every Binance interval, each order's life (status, executed
//! quantity and quote, times), and each account's balances. [`MarketService`] holds one,
//! applied in place by the engine's journal writer through its [`coss_engine::EventFeed`] (a
//! full replay of the journal at start, then each durable group before its callers hear
//! back, so a caller holding a receipt reads its own writes), and publishes what changed to
//! subscribers. Since
//! the engine replays the journal into the feed at every start, the projection is rebuilt from
//! the journal whenever the process starts; it never holds a balance of record.

mod candles;
mod history;
mod service;

pub use candles::Interval;
pub use history::{HISTORY_BACKLOG, spawn_history};
pub use service::{MarketService, Published};

use coss_core::{
    DoneReason, Event, EventKind, NewOrder, OrderKind, SelfTradePrevention, TimeInForce,
};
use coss_types::{AccountId, Amount, AssetId, ClientOrderId, MarketId, OrderId, Price, Qty, Side};
use rustc_hash::FxHashMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A listed asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// Its id.
    pub id: AssetId,
    /// Ticker.
    pub symbol: String,
    /// Decimal places of its smallest unit.
    pub decimals: u8,
}

/// A listed market and the arithmetic of its units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Market {
    /// Its id.
    pub id: MarketId,
    /// Base ticker followed by quote ticker, e.g. `ETHTUSD`.
    pub symbol: String,
    /// Traded asset.
    pub base: Asset,
    /// Pricing asset.
    pub quote: Asset,
    /// Base smallest units per lot.
    pub lot_size: u128,
    /// Quote smallest units (per whole base unit) per tick.
    pub tick_size: u128,
    /// Smallest order value in quote units.
    pub min_notional: u128,
    /// Whether it accepts new orders.
    pub trading: bool,
}

impl Market {
    /// A price in ticks as quote smallest units per whole base unit.
    #[must_use]
    pub fn price_units(&self, price: Price) -> u128 {
        u128::from(price.0).saturating_mul(self.tick_size)
    }

    /// A quantity in lots as base smallest units.
    #[must_use]
    pub fn qty_units(&self, qty: Qty) -> u128 {
        u128::from(qty.0).saturating_mul(self.lot_size)
    }

    /// The quote amount of `qty` at `price` (exact by the listing rule).
    #[must_use]
    pub fn quote_units(&self, price: Price, qty: Qty) -> u128 {
        let scale = 10u128.saturating_pow(u32::from(self.base.decimals));
        u128::from(qty.0)
            .saturating_mul(u128::from(price.0))
            .saturating_mul(self.lot_size.saturating_mul(self.tick_size) / scale.max(1))
    }
}

/// One trade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trade {
    /// Exchange-wide trade id (increasing within each market).
    pub id: u64,
    /// Market.
    pub market: MarketId,
    /// Price in ticks.
    pub price: Price,
    /// Quantity in lots.
    pub qty: Qty,
    /// Quote amount in quote units.
    pub quote: u128,
    /// When (the command's time).
    pub time_ms: u64,
    /// The taker's side.
    pub taker_side: Side,
    /// Resting order.
    pub maker_order: OrderId,
    /// Incoming order.
    pub taker_order: OrderId,
    /// Resting order's account.
    pub maker_account: AccountId,
    /// Incoming order's account.
    pub taker_account: AccountId,
    /// Fee paid by the maker, in the asset it received.
    pub maker_fee: u128,
    /// Fee paid by the taker, in the asset it received.
    pub taker_fee: u128,
}

impl Trade {
    /// Whether the buyer's order was the resting one.
    #[must_use]
    pub fn buyer_is_maker(&self) -> bool {
        self.taker_side == Side::Sell
    }
}

/// Where an order is in its life (Binance's statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderStatus {
    /// Accepted, nothing filled yet.
    New,
    /// Partly filled and still open.
    PartiallyFilled,
    /// Completely filled.
    Filled,
    /// Cancelled by its owner.
    Canceled,
    /// Expired (IOC/FOK/market remainder).
    Expired,
    /// Expired by self-trade prevention.
    ExpiredInMatch,
}

impl OrderStatus {
    /// Binance's name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            OrderStatus::New => "NEW",
            OrderStatus::PartiallyFilled => "PARTIALLY_FILLED",
            OrderStatus::Filled => "FILLED",
            OrderStatus::Canceled => "CANCELED",
            OrderStatus::Expired => "EXPIRED",
            OrderStatus::ExpiredInMatch => "EXPIRED_IN_MATCH",
        }
    }

    /// Whether the order is still open.
    #[must_use]
    pub fn is_open(self) -> bool {
        matches!(self, OrderStatus::New | OrderStatus::PartiallyFilled)
    }
}

/// One order's life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Order {
    /// The exchange's id.
    pub id: OrderId,
    /// The order as submitted.
    pub new: NewOrder,
    /// Current limit price (after amendments), if it has one.
    pub price: Option<Price>,
    /// Current total quantity in lots (executed + open, after amendments), if it has one.
    pub qty: Option<Qty>,
    /// Lots executed so far.
    pub executed: u64,
    /// Quote units exchanged so far.
    pub cum_quote: u128,
    /// Status.
    pub status: OrderStatus,
    /// When accepted.
    pub time_ms: u64,
    /// Last change.
    pub update_ms: u64,
    /// When it started working (stops: when triggered).
    pub working_ms: Option<u64>,
    /// Lots of it resting in the book now.
    book_lots: u64,
}

impl Order {
    /// Whether it may rest in the book (a limit order, or a stop once triggered).
    fn rests(&self) -> bool {
        self.working_ms.is_some()
            && matches!(
                self.new.kind,
                OrderKind::Limit { .. }
                    | OrderKind::StopLimit { .. }
                    | OrderKind::TakeProfitLimit { .. }
            )
    }

    /// The time-in-force of a limit-like order.
    #[must_use]
    pub fn time_in_force(&self) -> Option<TimeInForce> {
        match self.new.kind {
            OrderKind::Limit { tif, .. }
            | OrderKind::StopLimit { tif, .. }
            | OrderKind::TakeProfitLimit { tif, .. } => Some(tif),
            OrderKind::Market { .. } | OrderKind::MarketQuote { .. } => None,
        }
    }

    /// The trigger price of a stop or take-profit order.
    #[must_use]
    pub fn stop_price(&self) -> Option<Price> {
        match self.new.kind {
            OrderKind::StopLimit { stop, .. } | OrderKind::TakeProfitLimit { stop, .. } => {
                Some(stop)
            }
            _ => None,
        }
    }

    /// The quote amount of a market order by quote amount.
    #[must_use]
    pub fn quote_order_qty(&self) -> Option<Amount> {
        match self.new.kind {
            OrderKind::MarketQuote { amount } => Some(amount),
            _ => None,
        }
    }

    /// The client order id.
    #[must_use]
    pub fn client_id(&self) -> Option<ClientOrderId> {
        self.new.client_id
    }

    /// Self-trade prevention mode.
    #[must_use]
    pub fn stp(&self) -> SelfTradePrevention {
        self.new.stp
    }
}

/// Binance's name of a side: `BUY` or `SELL`.
#[must_use]
pub fn side_name(side: Side) -> &'static str {
    match side {
        Side::Buy => "BUY",
        Side::Sell => "SELL",
    }
}

/// Binance's name of an order type (`LIMIT_MAKER` for post-only limits).
#[must_use]
pub fn order_type_name(kind: &OrderKind) -> &'static str {
    match kind {
        OrderKind::Limit {
            tif: TimeInForce::PostOnly,
            ..
        } => "LIMIT_MAKER",
        OrderKind::Limit { .. } => "LIMIT",
        OrderKind::Market { .. } | OrderKind::MarketQuote { .. } => "MARKET",
        OrderKind::StopLimit { .. } => "STOP_LOSS_LIMIT",
        OrderKind::TakeProfitLimit { .. } => "TAKE_PROFIT_LIMIT",
    }
}

/// Binance's name of a time-in-force (`LIMIT_MAKER` orders count as `GTC`).
#[must_use]
pub fn tif_name(tif: TimeInForce) -> &'static str {
    match tif {
        TimeInForce::Ioc => "IOC",
        TimeInForce::Fok => "FOK",
        TimeInForce::Gtc | TimeInForce::PostOnly => "GTC",
    }
}

/// Binance's name of a self-trade prevention mode.
#[must_use]
pub fn stp_name(stp: SelfTradePrevention) -> &'static str {
    match stp {
        SelfTradePrevention::None => "NONE",
        SelfTradePrevention::ExpireTaker => "EXPIRE_TAKER",
        SelfTradePrevention::ExpireMaker => "EXPIRE_MAKER",
        SelfTradePrevention::ExpireBoth => "EXPIRE_BOTH",
    }
}

fn u64_of(n: i64) -> Option<u64> {
    u64::try_from(n).ok()
}

/// The side [`side_name`] names.
fn side_of(name: &str) -> Option<Side> {
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

/// What happened to an order in an [`Update::Order`] (Binance's execution types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Accepted.
    New,
    /// Traded (see the trade).
    Trade(Trade),
    /// Cancelled.
    Canceled,
    /// Expired.
    Expired,
    /// Expired by self-trade prevention.
    TradePrevention,
    /// Price or quantity changed.
    Amended,
    /// A stop's trigger was reached.
    Triggered,
}

/// One change a subscriber may want to hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    /// A trade happened.
    Trade(Trade),
    /// An order changed (its state after the change).
    Order {
        /// What happened.
        execution: Execution,
        /// The order after it.
        order: Box<Order>,
    },
    /// Balances of an account after a batch (only those that changed).
    Balances {
        /// Whose.
        account: AccountId,
        /// When.
        time_ms: u64,
        /// (asset, available, locked).
        balances: Vec<(AssetId, u128, u128)>,
    },
    /// Money came or went outside trading (deposit, withdrawal hold or release, transfer).
    BalanceDelta {
        /// Whose.
        account: AccountId,
        /// Which asset.
        asset: AssetId,
        /// The change of the available balance, in smallest units.
        delta: i128,
        /// When.
        time_ms: u64,
    },
    /// A market's book or listing changed.
    BookChanged(MarketId),
}

/// One candle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candle {
    /// Start.
    pub open_time: u64,
    /// First trade price.
    pub open: Price,
    /// Highest.
    pub high: Price,
    /// Lowest.
    pub low: Price,
    /// Last trade price.
    pub close: Price,
    /// Base volume in lots.
    pub volume: u128,
    /// Quote volume in quote units.
    pub quote_volume: u128,
    /// Number of trades.
    pub trades: u64,
    /// Lots bought by takers.
    pub taker_buy_volume: u128,
    /// Quote units paid by buying takers.
    pub taker_buy_quote: u128,
    /// First trade id.
    pub first_trade: u64,
    /// Last trade id.
    pub last_trade: u64,
}

impl Candle {
    fn new(open_time: u64, trade: &Trade) -> Candle {
        Candle {
            open_time,
            open: trade.price,
            high: trade.price,
            low: trade.price,
            close: trade.price,
            volume: 0,
            quote_volume: 0,
            trades: 0,
            taker_buy_volume: 0,
            taker_buy_quote: 0,
            first_trade: trade.id,
            last_trade: trade.id,
        }
    }

    fn add(&mut self, trade: &Trade) {
        self.high = self.high.max(trade.price);
        self.low = self.low.min(trade.price);
        self.close = trade.price;
        self.volume += u128::from(trade.qty.0);
        self.quote_volume += trade.quote;
        self.trades += 1;
        self.last_trade = trade.id;
        if trade.taker_side == Side::Buy {
            self.taker_buy_volume += u128::from(trade.qty.0);
            self.taker_buy_quote += trade.quote;
        }
    }
}

/// A market's order book by price level.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels {
    /// Price → open lots, bids.
    pub bids: BTreeMap<Price, u64>,
    /// Price → open lots, asks.
    pub asks: BTreeMap<Price, u64>,
    /// Changes so far: one per batch that changed the book (the id depth diffs carry).
    pub update_id: u64,
}

impl Levels {
    fn side_mut(&mut self, side: Side) -> &mut BTreeMap<Price, u64> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    fn add(&mut self, side: Side, price: Price, lots: u64) {
        if lots > 0 {
            *self.side_mut(side).entry(price).or_default() += lots;
        }
    }

    fn remove(&mut self, side: Side, price: Price, lots: u64) {
        let levels = self.side_mut(side);
        if let Some(level) = levels.get_mut(&price) {
            *level = level.saturating_sub(lots);
            if *level == 0 {
                levels.remove(&price);
            }
        }
    }

    /// The best `n` levels of a side, best first.
    #[must_use]
    pub fn top(&self, side: Side, n: usize) -> Vec<(Price, u64)> {
        match side {
            Side::Buy => self
                .bids
                .iter()
                .rev()
                .take(n)
                .map(|(p, q)| (*p, *q))
                .collect(),
            Side::Sell => self.asks.iter().take(n).map(|(p, q)| (*p, *q)).collect(),
        }
    }

    /// The best level of a side.
    #[must_use]
    pub fn best(&self, side: Side) -> Option<(Price, u64)> {
        match side {
            Side::Buy => self.bids.iter().next_back().map(|(p, q)| (*p, *q)),
            Side::Sell => self.asks.iter().next().map(|(p, q)| (*p, *q)),
        }
    }

    /// The open lots at a price.
    #[must_use]
    pub fn at(&self, side: Side, price: Price) -> u64 {
        match side {
            Side::Buy => self.bids.get(&price).copied().unwrap_or(0),
            Side::Sell => self.asks.get(&price).copied().unwrap_or(0),
        }
    }
}

/// Everything the projection keeps about one market.
#[derive(Debug, Clone)]
pub struct MarketView {
    /// The listing.
    pub market: Market,
    /// The book by level.
    pub book: Levels,
    /// The most recent trades, oldest first (at most [`Retention::trades_per_market`] once
    /// the history holds the older ones).
    pub trades: VecDeque<Trade>,
    /// The event sequence number of each kept trade.
    trade_seqs: VecDeque<u64>,
    /// The id of the newest trade that left memory (0: none did): trades up to it are read
    /// from the history.
    pub evicted_trades: u64,
    /// Per interval, the open time after the newest candle that left memory (0: none did).
    pub evicted_candles: Vec<u64>,
    /// Candles per interval (indexed by [`Interval::index`]), by open time.
    pub candles: Vec<BTreeMap<u64, Candle>>,
    /// Levels changed since a subscriber last took them ([`Projection::take_changed_levels`]),
    /// per stream speed.
    changed: [BTreeSet<(bool, Price)>; 2],
    /// The update id before the first untaken change, per stream speed.
    changed_from: [u64; 2],
    /// Whether this batch changed the book.
    touched: bool,
}

/// Two depth-stream speeds: index 0 for 1000 ms, 1 for 100 ms.
pub const DEPTH_SPEEDS: usize = 2;

/// A depth diff: the levels changed between two update ids, with their new quantities (0: gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepthDiff {
    /// First update id covered.
    pub first_update_id: u64,
    /// Last update id covered (the book's id now).
    pub last_update_id: u64,
    /// (price, lots) of changed bids.
    pub bids: Vec<(Price, u64)>,
    /// (price, lots) of changed asks.
    pub asks: Vec<(Price, u64)>,
}

/// How much history the projection keeps in memory: the recent part that the APIs read most
/// and that live streams need. Older trades, finished orders and candles are read from the
/// history in the database, and leave memory only once the history holds them (see
/// [`Projection::set_persisted`]), so memory stays bounded however long the exchange runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Trades per market.
    pub trades_per_market: usize,
    /// Finished (filled, cancelled, expired) orders, over all accounts; open orders always
    /// stay.
    pub done_orders: usize,
    /// Candles per interval and market for the intervals under an hour, one-minute candles
    /// excepted (candles of an hour or more are all kept: a few a day).
    pub candles_per_interval: usize,
    /// One-minute candles per market: the rolling-window tickers are made from them.
    pub minute_candles: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            trades_per_market: 10_000,
            done_orders: 100_000,
            candles_per_interval: 1_000,
            // Seven days and the current minute: the longest ticker window.
            minute_candles: 7 * 24 * 60 + 1,
        }
    }
}

/// What the history in the database already holds: up to an event sequence number and the
/// time of that event. Only that may leave memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Persisted {
    seq: u64,
    time_ms: u64,
}

/// The projection of the event stream.
#[derive(Debug, Default)]
pub struct Projection {
    retention: Retention,
    /// `None`: no history is kept, so nothing waits for it.
    persisted: Option<Persisted>,
    /// Finished orders, in the order they finished, with the sequence number that finished
    /// them.
    done: VecDeque<(u64, OrderId)>,
    seq: u64,
    time_ms: u64,
    assets: BTreeMap<AssetId, Asset>,
    markets: BTreeMap<MarketId, MarketView>,
    by_symbol: FxHashMap<String, MarketId>,
    orders: FxHashMap<OrderId, Order>,
    account_orders: FxHashMap<AccountId, BTreeSet<OrderId>>,
    open_orders: FxHashMap<AccountId, BTreeSet<OrderId>>,
    /// Each account's kept trades by the sequence number of their event.
    account_trades: FxHashMap<AccountId, BTreeMap<u64, (MarketId, u64)>>,
    balances: FxHashMap<AccountId, BTreeMap<AssetId, (u128, u128)>>,
    changed_balances: BTreeMap<AccountId, BTreeSet<AssetId>>,
    updates: Vec<Update>,
    fee_tiers: Vec<coss_core::FeeTier>,
    account_tiers: FxHashMap<AccountId, u8>,
}

impl Projection {
    /// An empty projection (before the first event).
    #[must_use]
    pub fn new() -> Projection {
        Projection {
            fee_tiers: coss_core::default_fee_schedule(),
            ..Projection::default()
        }
    }

    /// An empty projection that keeps `retention` and lets history leave memory only once
    /// [`Projection::set_persisted`] says the database holds it.
    #[must_use]
    pub fn with_history(retention: Retention) -> Projection {
        Projection {
            retention,
            persisted: Some(Persisted { seq: 0, time_ms: 0 }),
            ..Projection::new()
        }
    }

    /// An empty projection that keeps only `retention` (no history behind it: what leaves
    /// memory is gone).
    #[must_use]
    pub fn with_retention(retention: Retention) -> Projection {
        Projection {
            retention,
            ..Projection::new()
        }
    }

    /// The history in the database holds every event up to `seq` (whose time is `time_ms`).
    pub fn set_persisted(&mut self, seq: u64, time_ms: u64) {
        if let Some(p) = &mut self.persisted
            && seq > p.seq
        {
            *p = Persisted { seq, time_ms };
        }
    }

    /// Drops what lies beyond the retention and the history already holds.
    fn evict(&mut self) {
        let (seq, time_ms) = self
            .persisted
            .map_or((u64::MAX, u64::MAX), |p| (p.seq, p.time_ms));
        while self.done.len() > self.retention.done_orders {
            match self.done.front() {
                Some(&(done_seq, id)) if done_seq <= seq => {
                    self.done.pop_front();
                    if let Some(order) = self.orders.remove(&id)
                        && let Some(ids) = self.account_orders.get_mut(&order.new.account)
                    {
                        ids.remove(&id);
                        if ids.is_empty() {
                            self.account_orders.remove(&order.new.account);
                        }
                    }
                }
                _ => break,
            }
        }
        for view in self.markets.values_mut() {
            while view.trades.len() > self.retention.trades_per_market {
                let (Some(&trade_seq), Some(trade)) =
                    (view.trade_seqs.front(), view.trades.front())
                else {
                    break;
                };
                if trade_seq > seq {
                    break;
                }
                for account in [trade.maker_account, trade.taker_account] {
                    if let Some(kept) = self.account_trades.get_mut(&account) {
                        kept.remove(&trade_seq);
                        if kept.is_empty() {
                            self.account_trades.remove(&account);
                        }
                    }
                }
                view.evicted_trades = trade.id;
                view.trades.pop_front();
                view.trade_seqs.pop_front();
            }
            for interval in Interval::ALL {
                let (keep, persisted) = match interval {
                    Interval::M1 => (self.retention.minute_candles, time_ms),
                    // Made from the one-minute candles of the history when asked for.
                    Interval::S1 | Interval::M3 | Interval::M5 | Interval::M15 | Interval::M30 => {
                        (self.retention.candles_per_interval, u64::MAX)
                    }
                    // An hour or more: a few a day, all kept (making them from minutes would
                    // read thousands of rows per candle).
                    _ => continue,
                };
                let candles = &mut view.candles[interval.index()];
                while candles.len() > keep {
                    match candles.first_key_value() {
                        Some((&open, _)) if interval.close_time(open) < persisted => {
                            view.evicted_candles[interval.index()] = open + 1;
                            candles.pop_first();
                        }
                        _ => break,
                    }
                }
            }
        }
    }

    /// An account's maker and taker fee rates (parts per million).
    #[must_use]
    pub fn fee_rates(&self, account: AccountId) -> coss_core::FeeTier {
        let tier = self.account_tiers.get(&account).copied().unwrap_or(0);
        self.fee_tiers
            .get(usize::from(tier))
            .or_else(|| self.fee_tiers.first())
            .copied()
            .unwrap_or(coss_core::FeeTier {
                maker_ppm: 0,
                taker_ppm: 0,
            })
    }

    /// The last event applied.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The time of the last event applied.
    #[must_use]
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// Applies one event. Events must arrive in sequence order, each once.
    pub fn apply(&mut self, event: &Event) {
        self.seq = event.seq;
        self.time_ms = event.time_ms;
        let time = event.time_ms;
        match &event.kind {
            EventKind::AssetListed {
                asset,
                symbol,
                decimals,
                ..
            } => {
                self.assets.insert(
                    *asset,
                    Asset {
                        id: *asset,
                        symbol: symbol.clone(),
                        decimals: *decimals,
                    },
                );
            }
            EventKind::MarketListed {
                market,
                base,
                quote,
                lot_size,
                tick_size,
                min_notional,
            } => {
                let (Some(base), Some(quote)) = (self.assets.get(base), self.assets.get(quote))
                else {
                    return;
                };
                let symbol = format!("{}{}", base.symbol, quote.symbol);
                self.by_symbol.insert(symbol.clone(), *market);
                self.markets.insert(
                    *market,
                    MarketView {
                        market: Market {
                            id: *market,
                            symbol,
                            base: base.clone(),
                            quote: quote.clone(),
                            lot_size: lot_size.0,
                            tick_size: tick_size.0,
                            min_notional: min_notional.0,
                            trading: true,
                        },
                        book: Levels::default(),
                        trades: VecDeque::new(),
                        trade_seqs: VecDeque::new(),
                        evicted_trades: 0,
                        evicted_candles: vec![0; Interval::ALL.len()],
                        candles: vec![BTreeMap::new(); Interval::ALL.len()],
                        changed: Default::default(),
                        changed_from: [0; DEPTH_SPEEDS],
                        touched: false,
                    },
                );
                self.updates.push(Update::BookChanged(*market));
            }
            EventKind::MarketStatusChanged { market, status } => {
                if let Some(view) = self.markets.get_mut(market) {
                    view.market.trading = *status == coss_core::MarketStatus::Trading;
                    self.updates.push(Update::BookChanged(*market));
                }
            }
            EventKind::OrderAccepted { order, new } => self.accepted(*order, new, time),
            EventKind::OrderTriggered { order, .. } => {
                if let Some(o) = self.orders.get_mut(order) {
                    o.working_ms = Some(time);
                    o.update_ms = time;
                    let snapshot = o.clone();
                    self.book_add(&snapshot);
                    self.order_update(Execution::Triggered, *order);
                }
            }
            EventKind::Trade {
                trade,
                market,
                price,
                qty,
                taker_side,
                maker_order,
                taker_order,
                maker_account,
                taker_account,
                maker_fee,
                taker_fee,
            } => {
                let Some(view) = self.markets.get(market) else {
                    return;
                };
                let trade = Trade {
                    id: *trade,
                    market: *market,
                    price: *price,
                    qty: *qty,
                    quote: view.market.quote_units(*price, *qty),
                    time_ms: time,
                    taker_side: *taker_side,
                    maker_order: *maker_order,
                    taker_order: *taker_order,
                    maker_account: *maker_account,
                    taker_account: *taker_account,
                    maker_fee: maker_fee.0,
                    taker_fee: taker_fee.0,
                };
                self.trade(trade, event.seq);
            }
            EventKind::OrderAmended {
                order, qty, price, ..
            } => {
                let Some(o) = self.orders.get(order).cloned() else {
                    return;
                };
                self.book_remove(&o, o.book_lots);
                if let Some(o) = self.orders.get_mut(order) {
                    o.price = Some(*price);
                    o.qty = Some(Qty(o.executed + qty.0));
                    o.book_lots = 0;
                    o.update_ms = time;
                }
                if let Some(o) = self.orders.get(order).cloned() {
                    self.book_add(&o);
                }
                self.order_update(Execution::Amended, *order);
            }
            EventKind::OrderDone {
                order,
                account,
                reason,
                ..
            } => {
                let Some(o) = self.orders.get(order).cloned() else {
                    return;
                };
                self.book_remove(&o, o.book_lots);
                let (status, execution) = match reason {
                    DoneReason::Filled => (OrderStatus::Filled, None),
                    DoneReason::Cancelled => (OrderStatus::Canceled, Some(Execution::Canceled)),
                    DoneReason::Expired => (OrderStatus::Expired, Some(Execution::Expired)),
                    DoneReason::SelfTradePrevented => (
                        OrderStatus::ExpiredInMatch,
                        Some(Execution::TradePrevention),
                    ),
                };
                if let Some(o) = self.orders.get_mut(order) {
                    o.book_lots = 0;
                    o.status = status;
                    o.update_ms = time;
                    if let OrderKind::MarketQuote { .. } = o.new.kind {
                        o.qty = Some(Qty(o.executed));
                    }
                }
                if let Some(open) = self.open_orders.get_mut(account) {
                    open.remove(order);
                    if open.is_empty() {
                        self.open_orders.remove(account);
                    }
                }
                self.done.push_back((event.seq, *order));
                match execution {
                    Some(execution) => self.order_update(execution, *order),
                    // A fill is reported with its last trade, which already carries the new
                    // status: republish so subscribers see FILLED.
                    None => self.refresh_last_trade_update(*order),
                }
            }
            EventKind::BalanceChanged {
                account,
                asset,
                available,
                locked,
            } => {
                self.balances
                    .entry(*account)
                    .or_default()
                    .insert(*asset, (available.0, locked.0));
                self.changed_balances
                    .entry(*account)
                    .or_default()
                    .insert(*asset);
            }
            EventKind::Deposited {
                account,
                asset,
                amount,
                ..
            } => self.delta(*account, *asset, to_signed(amount.0), time),
            EventKind::WithdrawalHeld {
                account,
                asset,
                amount,
                fee,
                ..
            } => self.delta(
                *account,
                *asset,
                -to_signed(amount.0.saturating_add(fee.0)),
                time,
            ),
            EventKind::WithdrawalReleased {
                account,
                asset,
                amount,
                fee,
                ..
            } => self.delta(
                *account,
                *asset,
                to_signed(amount.0.saturating_add(fee.0)),
                time,
            ),
            EventKind::Transferred {
                from,
                to,
                asset,
                amount,
                ..
            } => {
                self.delta(*from, *asset, -to_signed(amount.0), time);
                self.delta(*to, *asset, to_signed(amount.0), time);
            }
            EventKind::FeeScheduleSet { tiers } => self.fee_tiers.clone_from(tiers),
            EventKind::AccountFeeTierSet { account, tier } => {
                self.account_tiers.insert(*account, *tier);
            }
            EventKind::Rejected { .. }
            | EventKind::WithdrawalFeeSet { .. }
            | EventKind::HoldersShareSet { .. }
            | EventKind::DaoScheduleSet { .. }
            | EventKind::WeekClosed { .. }
            | EventKind::ChainHoldingsAdded { .. }
            | EventKind::WeekSealed { .. }
            | EventKind::DaoAssetPaid { .. }
            | EventKind::WeekPaid { .. }
            | EventKind::OpenOrderLimitSet { .. }
            | EventKind::WithdrawalConfirmed { .. }
            | EventKind::FeesCollected { .. } => {}
        }
    }

    /// Ends a batch of events: books that changed get a new update id, changed balances are
    /// reported, and the updates collected since the last call are returned.
    pub fn finish_batch(&mut self) -> Vec<Update> {
        self.evict();
        for view in self.markets.values_mut() {
            if std::mem::take(&mut view.touched) {
                view.book.update_id += 1;
                self.updates.push(Update::BookChanged(view.market.id));
            }
        }
        for (account, assets) in std::mem::take(&mut self.changed_balances) {
            let held = self.balances.get(&account);
            let balances = assets
                .into_iter()
                .map(|asset| {
                    let (available, locked) = held
                        .and_then(|b| b.get(&asset))
                        .copied()
                        .unwrap_or_default();
                    (asset, available, locked)
                })
                .collect();
            self.updates.push(Update::Balances {
                account,
                time_ms: self.time_ms,
                balances,
            });
        }
        std::mem::take(&mut self.updates)
    }

    fn delta(&mut self, account: AccountId, asset: AssetId, delta: i128, time_ms: u64) {
        self.updates.push(Update::BalanceDelta {
            account,
            asset,
            delta,
            time_ms,
        });
    }

    fn accepted(&mut self, id: OrderId, new: &NewOrder, time: u64) {
        let (price, qty, working) = match new.kind {
            OrderKind::Limit { price, qty, .. } => (Some(price), Some(qty), true),
            OrderKind::Market { qty } => (None, Some(qty), true),
            OrderKind::MarketQuote { .. } => (None, None, true),
            OrderKind::StopLimit { price, qty, .. }
            | OrderKind::TakeProfitLimit { price, qty, .. } => (Some(price), Some(qty), false),
        };
        let order = Order {
            id,
            new: *new,
            price,
            qty,
            executed: 0,
            cum_quote: 0,
            status: OrderStatus::New,
            time_ms: time,
            update_ms: time,
            working_ms: working.then_some(time),
            book_lots: 0,
        };
        self.orders.insert(id, order.clone());
        self.account_orders
            .entry(new.account)
            .or_default()
            .insert(id);
        self.open_orders.entry(new.account).or_default().insert(id);
        self.book_add(&order);
        self.order_update(Execution::New, id);
    }

    /// Puts an order's open quantity in the book, if it is the kind that rests.
    fn book_add(&mut self, order: &Order) {
        if !order.rests() {
            return;
        }
        let (Some(price), Some(qty)) = (order.price, order.qty) else {
            return;
        };
        let open = qty.0.saturating_sub(order.executed);
        if let Some(view) = self.markets.get_mut(&order.new.market) {
            view.book.add(order.new.side, price, open);
            view.mark(order.new.side, price);
        }
        if let Some(o) = self.orders.get_mut(&order.id) {
            o.book_lots = open;
        }
    }

    fn book_remove(&mut self, order: &Order, lots: u64) {
        let Some(price) = order.price else {
            return;
        };
        if lots == 0 {
            return;
        }
        if let Some(view) = self.markets.get_mut(&order.new.market) {
            view.book.remove(order.new.side, price, lots);
            view.mark(order.new.side, price);
        }
        if let Some(o) = self.orders.get_mut(&order.id) {
            o.book_lots = o.book_lots.saturating_sub(lots);
        }
    }

    fn trade(&mut self, trade: Trade, seq: u64) {
        for order_id in [trade.maker_order, trade.taker_order] {
            let Some(o) = self.orders.get(&order_id).cloned() else {
                continue;
            };
            self.book_remove(&o, trade.qty.0.min(o.book_lots));
            if let Some(o) = self.orders.get_mut(&order_id) {
                o.executed += trade.qty.0;
                o.cum_quote += trade.quote;
                o.update_ms = trade.time_ms;
                o.status = match o.qty {
                    Some(q) if o.executed >= q.0 => OrderStatus::Filled,
                    _ => OrderStatus::PartiallyFilled,
                };
            }
        }
        let Some(view) = self.markets.get_mut(&trade.market) else {
            return;
        };
        view.trades.push_back(trade);
        view.trade_seqs.push_back(seq);
        for interval in Interval::ALL {
            let open = interval.open_time(trade.time_ms);
            view.candles[interval.index()]
                .entry(open)
                .or_insert_with(|| Candle::new(open, &trade))
                .add(&trade);
        }
        for account in [trade.maker_account, trade.taker_account] {
            self.account_trades
                .entry(account)
                .or_default()
                .insert(seq, (trade.market, trade.id));
        }
        self.updates.push(Update::Trade(trade));
        for order in [trade.maker_order, trade.taker_order] {
            self.order_update(Execution::Trade(trade), order);
        }
    }

    fn order_update(&mut self, execution: Execution, order: OrderId) {
        if let Some(o) = self.orders.get(&order) {
            self.updates.push(Update::Order {
                execution,
                order: Box::new(o.clone()),
            });
        }
    }

    /// After a fill, the order's last trade update gets the final state.
    fn refresh_last_trade_update(&mut self, order: OrderId) {
        let Some(current) = self.orders.get(&order) else {
            return;
        };
        for update in self.updates.iter_mut().rev() {
            if let Update::Order { order: o, .. } = update
                && o.id == order
            {
                **o = current.clone();
                return;
            }
        }
    }

    /// Every listed asset.
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        self.assets.values()
    }

    /// An asset by id.
    #[must_use]
    pub fn asset(&self, id: AssetId) -> Option<&Asset> {
        self.assets.get(&id)
    }

    /// Every market.
    pub fn markets(&self) -> impl Iterator<Item = &MarketView> {
        self.markets.values()
    }

    /// A market by id.
    #[must_use]
    pub fn market(&self, id: MarketId) -> Option<&MarketView> {
        self.markets.get(&id)
    }

    /// A market by symbol (`ETHTUSD`).
    #[must_use]
    pub fn market_by_symbol(&self, symbol: &str) -> Option<&MarketView> {
        self.by_symbol
            .get(symbol)
            .and_then(|id| self.markets.get(id))
    }

    /// How many orders memory holds (open and recently finished).
    #[must_use]
    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    /// An order by id.
    #[must_use]
    pub fn order(&self, id: OrderId) -> Option<&Order> {
        self.orders.get(&id)
    }

    /// An account's order by its client order id (the newest with that id).
    #[must_use]
    pub fn order_by_client_id(&self, account: AccountId, client_id: &str) -> Option<&Order> {
        self.account_orders.get(&account).and_then(|ids| {
            ids.iter()
                .rev()
                .filter_map(|id| self.orders.get(id))
                .find(|o| o.new.client_id.is_some_and(|c| c.as_str() == client_id))
        })
    }

    /// An account's open orders, oldest first.
    pub fn open_orders(&self, account: AccountId) -> impl Iterator<Item = &Order> {
        self.open_orders
            .get(&account)
            .into_iter()
            .flatten()
            .filter_map(|id| self.orders.get(id))
    }

    /// An account's kept orders (every open one, and the recently finished), oldest first.
    pub fn orders_of(&self, account: AccountId) -> impl Iterator<Item = &Order> {
        self.account_orders
            .get(&account)
            .into_iter()
            .flatten()
            .filter_map(|id| self.orders.get(id))
    }

    /// An account's kept trades, oldest first.
    pub fn trades_of(&self, account: AccountId) -> impl Iterator<Item = &Trade> {
        self.account_trades
            .get(&account)
            .into_iter()
            .flatten()
            .filter_map(|(_, (market, id))| self.markets.get(market)?.trade(*id))
    }

    /// An account's balances: (asset, available, locked), nonzero ones.
    #[must_use]
    pub fn balances(&self, account: AccountId) -> Vec<(AssetId, u128, u128)> {
        self.balances
            .get(&account)
            .into_iter()
            .flatten()
            .filter(|(_, (a, l))| *a > 0 || *l > 0)
            .map(|(asset, (a, l))| (*asset, *a, *l))
            .collect()
    }

    /// Takes the levels of a market changed since the last call for this stream speed.
    pub fn take_changed_levels(&mut self, market: MarketId, speed: usize) -> Option<DepthDiff> {
        let view = self.markets.get_mut(&market)?;
        let speed = speed.min(DEPTH_SPEEDS - 1);
        let now = view.book.update_id;
        if view.changed_from[speed] >= now {
            return None;
        }
        let changed = std::mem::take(&mut view.changed[speed]);
        let first = view.changed_from[speed] + 1;
        view.changed_from[speed] = now;
        let (mut bids, mut asks) = (Vec::new(), Vec::new());
        for (is_bid, price) in changed {
            if is_bid {
                bids.push((price, view.book.at(Side::Buy, price)));
            } else {
                asks.push((price, view.book.at(Side::Sell, price)));
            }
        }
        bids.reverse();
        Some(DepthDiff {
            first_update_id: first,
            last_update_id: now,
            bids,
            asks,
        })
    }
}

impl MarketView {
    fn mark(&mut self, side: Side, price: Price) {
        self.touched = true;
        for changed in &mut self.changed {
            changed.insert((side == Side::Buy, price));
        }
    }

    /// The most recent `n` kept trades, oldest first.
    pub fn recent_trades(&self, n: usize) -> impl Iterator<Item = &Trade> {
        self.trades.range(self.trades.len().saturating_sub(n)..)
    }

    /// A kept trade by id.
    #[must_use]
    pub fn trade(&self, id: u64) -> Option<&Trade> {
        let at = self.trades.partition_point(|t| t.id < id);
        self.trades.get(at).filter(|t| t.id == id)
    }

    /// The kept trades from id `from` on, oldest first.
    pub fn trades_from(&self, from: u64) -> impl Iterator<Item = &Trade> {
        let at = self.trades.partition_point(|t| t.id < from);
        self.trades.range(at..)
    }

    /// The candles of an interval in `[start, end]` (by open time), at most `limit`, oldest
    /// first; without a start, the latest ones.
    #[must_use]
    pub fn candles(
        &self,
        interval: Interval,
        start: Option<u64>,
        end: Option<u64>,
        limit: usize,
    ) -> Vec<Candle> {
        let all = &self.candles[interval.index()];
        let range = all.range(start.unwrap_or(0)..=end.unwrap_or(u64::MAX));
        if start.is_some() {
            range.take(limit).map(|(_, c)| *c).collect()
        } else {
            let mut latest: Vec<Candle> = range.rev().take(limit).map(|(_, c)| *c).collect();
            latest.reverse();
            latest
        }
    }

    /// Statistics over the trades of the window ending at `now`, at one-minute granularity
    /// (the window starts with the minute that holds `now - window_ms`).
    #[must_use]
    pub fn rolling(&self, now: u64, window_ms: u64) -> Option<Rolling> {
        let from = Interval::M1.open_time(now.saturating_sub(window_ms));
        let mut candles = self.candles[Interval::M1.index()].range(from..);
        let first = *candles.next()?.1;
        let mut stats = Rolling {
            open_time: from,
            open: first.open,
            high: first.high,
            low: first.low,
            volume: first.volume,
            quote_volume: first.quote_volume,
            first_trade: first.first_trade,
            last_trade: first.last_trade,
            trades: first.trades,
        };
        for (_, c) in candles {
            stats.high = stats.high.max(c.high);
            stats.low = stats.low.min(c.low);
            stats.volume += c.volume;
            stats.quote_volume += c.quote_volume;
            stats.last_trade = c.last_trade;
            stats.trades += c.trades;
        }
        Some(stats)
    }
}

/// Rolling-window statistics of a market.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rolling {
    /// Window start.
    pub open_time: u64,
    /// First price in the window.
    pub open: Price,
    /// Highest.
    pub high: Price,
    /// Lowest.
    pub low: Price,
    /// Base volume in lots.
    pub volume: u128,
    /// Quote volume.
    pub quote_volume: u128,
    /// First trade id.
    pub first_trade: u64,
    /// Last trade id.
    pub last_trade: u64,
    /// Number of trades.
    pub trades: u64,
}

fn to_signed(amount: u128) -> i128 {
    i128::try_from(amount).unwrap_or(i128::MAX)
}
