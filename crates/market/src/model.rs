//! What the projection holds and the APIs read: assets, markets, trades, orders and their
//! Binance names, candles, book levels, what changed, and what memory retains.

use super::*;

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
    /// Left out of the market lists (halted too).
    pub hidden: bool,
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
    pub(crate) book_lots: u64,
}

impl Order {
    /// Whether it may rest in the book (a limit order, or a stop once triggered).
    pub(crate) fn rests(&self) -> bool {
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
    pub(crate) fn new(open_time: u64, trade: &Trade) -> Candle {
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

    pub(crate) fn add(&mut self, trade: &Trade) {
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
    pub(crate) fn side_mut(&mut self, side: Side) -> &mut BTreeMap<Price, u64> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }

    pub(crate) fn add(&mut self, side: Side, price: Price, lots: u64) {
        if lots > 0 {
            *self.side_mut(side).entry(price).or_default() += lots;
        }
    }

    pub(crate) fn remove(&mut self, side: Side, price: Price, lots: u64) {
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
    pub(crate) trade_seqs: VecDeque<u64>,
    /// The id of the newest trade that left memory (0: none did): trades up to it are read
    /// from the history.
    pub evicted_trades: u64,
    /// Per interval, the open time after the newest candle that left memory (0: none did).
    pub evicted_candles: Vec<u64>,
    /// Candles per interval (indexed by [`Interval::index`]), by open time.
    pub candles: Vec<BTreeMap<u64, Candle>>,
    /// Levels changed since a subscriber last took them ([`Projection::take_changed_levels`]),
    /// per stream speed.
    pub(crate) changed: [BTreeSet<(bool, Price)>; 2],
    /// The update id before the first untaken change, per stream speed.
    pub(crate) changed_from: [u64; 2],
    /// Whether this batch changed the book.
    pub(crate) touched: bool,
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

impl MarketView {
    pub(crate) fn mark(&mut self, side: Side, price: Price) {
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
