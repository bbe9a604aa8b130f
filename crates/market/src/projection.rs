//! The projection itself: a pure function of the engine's event stream.

use super::*;

/// What the history in the database already holds: up to an event sequence number and the
/// time of that event. Only that may leave memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Persisted {
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
    /// Fee revenue by ISO week (its Monday 00:00 UTC) and asset: (platform's part of trading
    /// and gateway fees, holders' part, withdrawal fees). A few entries a week.
    revenue: BTreeMap<(u64, AssetId), Revenue>,
}

/// Fee revenue of one asset in one week, in its smallest units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Revenue {
    /// The platform's part of trading and gateway fees.
    pub platform: u128,
    /// The COSS holders' part.
    pub holders: u128,
    /// Withdrawal fees (never shared).
    pub withdrawal: u128,
}

/// The Monday 00:00 UTC that starts the ISO week of `time_ms`.
#[must_use]
pub fn week_start(time_ms: u64) -> u64 {
    const DAY: u64 = 86_400_000;
    let day = time_ms / DAY;
    // 1970-01-01 was a Thursday: day 0 is 3 days after a Monday.
    day.saturating_sub((day + 3) % 7) * DAY
}

impl Projection {
    /// Fee revenue by week (its Monday 00:00 UTC, ms) and asset, oldest first.
    pub fn revenue(&self) -> impl Iterator<Item = (u64, AssetId, Revenue)> + '_ {
        self.revenue
            .iter()
            .map(|(&(week, asset), &r)| (week, asset, r))
    }

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
                            hidden: false,
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
                    view.market.hidden = *status == coss_core::MarketStatus::Hidden;
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
            EventKind::GatewaySettled {
                merchant,
                asset,
                amount,
                fee,
                ..
            } => {
                self.delta(coss_core::GATEWAY, *asset, -to_signed(amount.0), time);
                self.delta(
                    *merchant,
                    *asset,
                    to_signed(amount.0.saturating_sub(fee.0)),
                    time,
                );
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
            | EventKind::AccountLockSet { .. }
            | EventKind::GatewayFeeSet { .. }
            | EventKind::WithdrawalMinimumSet { .. } => {}
            EventKind::WithdrawalConfirmed { asset, fee, .. } => {
                let row = self.revenue.entry((week_start(time), *asset)).or_default();
                row.withdrawal = row.withdrawal.saturating_add(fee.0);
            }
            EventKind::FeesCollected {
                asset,
                platform,
                holders,
            } => {
                let row = self.revenue.entry((week_start(time), *asset)).or_default();
                row.platform = row.platform.saturating_add(platform.0);
                row.holders = row.holders.saturating_add(holders.0);
            }
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

pub(crate) fn to_signed(amount: u128) -> i128 {
    i128::try_from(amount).unwrap_or(i128::MAX)
}

#[cfg(test)]
mod revenue_tests {
    use super::week_start;

    #[test]
    fn weeks_start_on_monday_midnight_utc() {
        // 2026-12-07 is a Monday; 2026-12-08 04:00 UTC belongs to its week.
        let monday = 1_796_601_600_000;
        assert_eq!(week_start(monday), monday);
        assert_eq!(week_start(monday + 28 * 3_600_000), monday);
        assert_eq!(week_start(monday - 1), monday - 7 * 86_400_000);
        // 1970-01-06, a Tuesday, is in the week of Monday 1970-01-05; before that, 0.
        assert_eq!(week_start(5 * 86_400_000), 4 * 86_400_000);
        assert_eq!(week_start(0), 0);
    }
}
