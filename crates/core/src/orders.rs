//! Orders: placement, matching and settlement, stops, cancels and amendments.
//!
//! Funds for an order are locked when it is accepted: a buy locks `qty × price` in quote, a
//! sell locks `qty × lot` in base. A market order locks its budget (a buy by quantity, or a
//! sell by quote amount, locks the whole available balance for the length of the command) and
//! returns what it did not use at the end of the same command. Each trade pays the maker's
//! price; a buying taker gets back the difference to its limit at once.

use crate::command::{NewOrder, OrderKind, OrderRef, SelfTradePrevention, TimeInForce};
use crate::event::{DoneReason, Event, EventKind, RejectReason};
use crate::fees::fee_for;
use crate::{CLIENT_ID_MEMORY, Exchange, Maker, Market, Outcome, StopOrder, invariant_broken};
use coss_book::crosses;
use coss_types::{AccountId, Amount, AssetId, MarketId, OrderId, Price, Qty, Side};

/// An order coming into the book, with the funds it has locked for what remains of it.
#[derive(Debug, Clone, Copy)]
struct Taker {
    id: OrderId,
    account: u32,
    account_id: AccountId,
    side: Side,
    /// `None` for market orders.
    limit: Option<Price>,
    /// Lots still wanted (`u64::MAX` when only a quote amount bounds it).
    remaining: u64,
    /// Quote still to spend (buy) or receive (sell), for market orders by quote amount.
    quote_left: Option<u128>,
    /// Funds still locked for this order (quote for a buy, base for a sell).
    locked: u128,
    stp: SelfTradePrevention,
    /// Whether an unfilled remainder rests in the book.
    rests: bool,
    post_only: bool,
}

/// How an incoming order ended its turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Rested,
    Done,
}

impl Market {
    /// Files a waiting stop under its trigger, in the rising or falling set and the id index.
    pub(crate) fn insert_stop(&mut self, stop: StopOrder) {
        let key = stop_key(stop.rising, stop.stop);
        if stop.rising {
            self.rising.insert((key, stop.id), stop);
        } else {
            self.falling.insert((key, stop.id), stop);
        }
        self.stop_keys.insert(stop.id, (stop.rising, key));
    }

    /// Quote amount for `qty` lots at `price` ticks, if it fits.
    #[inline]
    fn quote_for(&self, qty: Qty, price: Price) -> Option<u128> {
        u128::from(qty.0)
            .checked_mul(u128::from(price.0))?
            .checked_mul(self.notional_unit)
    }

    /// Base amount for `qty` lots.
    #[inline]
    fn base_for(&self, qty: Qty) -> Option<u128> {
        u128::from(qty.0).checked_mul(self.lot_size)
    }

    /// The asset and amount a resting `side` order of `qty` at `price` keeps locked.
    #[inline]
    fn lock_for(&self, side: Side, qty: Qty, price: Price) -> Option<(AssetId, u128)> {
        match side {
            Side::Buy => Some((self.quote, self.quote_for(qty, price)?)),
            Side::Sell => Some((self.base, self.base_for(qty)?)),
        }
    }
}

impl Exchange {
    fn market_mut(&mut self, market: MarketId) -> &mut Market {
        match self
            .markets
            .get_mut(market.0 as usize)
            .and_then(Option::as_mut)
        {
            Some(m) => m,
            None => invariant_broken("market vanished"),
        }
    }

    fn listed_market(&self, market: MarketId) -> Result<&Market, RejectReason> {
        self.market(market).ok_or(RejectReason::UnknownMarket)
    }

    fn trading_market(&self, market: MarketId) -> Result<&Market, RejectReason> {
        let m = self.listed_market(market)?;
        match m.status {
            crate::MarketStatus::Trading => Ok(m),
            crate::MarketStatus::Halted | crate::MarketStatus::Hidden => {
                Err(RejectReason::MarketHalted)
            }
        }
    }

    pub(crate) fn place_order(&mut self, new: &NewOrder, events: &mut Vec<Event>) -> Outcome {
        let account = self.user_account(new.account)?;
        let market = self.trading_market(new.market)?;
        let Some(account) = account else {
            return Err(RejectReason::InsufficientBalance);
        };
        if self.hot[account as usize].locked {
            return Err(RejectReason::AccountLocked);
        }
        let may_rest = match new.kind {
            OrderKind::Limit { tif, .. } => matches!(tif, TimeInForce::Gtc | TimeInForce::PostOnly),
            OrderKind::StopLimit { .. } | OrderKind::TakeProfitLimit { .. } => true,
            OrderKind::Market { .. } | OrderKind::MarketQuote { .. } => false,
        };
        if may_rest && self.hot[account as usize].open_orders >= self.params.max_open_orders {
            return Err(RejectReason::TooManyOpenOrders);
        }
        if let Some(client_id) = new.client_id
            && self.client_ids.contains_key(&(account, client_id))
        {
            return Err(RejectReason::DuplicateClientOrderId);
        }
        let opposite_best = market.book.best(new.side.opposite());
        // Validate and size the lock; nothing changes until every check has passed.
        let (lock_asset, lock_amount) = match new.kind {
            OrderKind::Limit { price, qty, tif } => {
                let lock = validate_limit(market, new.side, price, qty)?;
                if tif == TimeInForce::PostOnly
                    && opposite_best.is_some_and(|best| crosses(new.side.opposite(), best, price))
                {
                    return Err(RejectReason::PostOnlyWouldTrade);
                }
                lock
            }
            OrderKind::StopLimit {
                stop,
                price,
                qty,
                tif,
            }
            | OrderKind::TakeProfitLimit {
                stop,
                price,
                qty,
                tif,
            } => {
                if tif == TimeInForce::PostOnly {
                    return Err(RejectReason::InvalidTimeInForce);
                }
                if stop.0 == 0 {
                    return Err(RejectReason::InvalidPrice);
                }
                let lock = validate_limit(market, new.side, price, qty)?;
                let rising = stop_rises(&new.kind, new.side);
                if let Some(last) = market.last_price
                    && triggered(rising, stop, last)
                {
                    return Err(RejectReason::WouldTriggerImmediately);
                }
                lock
            }
            OrderKind::Market { qty } => {
                if qty.0 == 0 {
                    return Err(RejectReason::InvalidQuantity);
                }
                if let Some(best) = opposite_best {
                    let value = market.quote_for(qty, best).ok_or(RejectReason::Overflow)?;
                    if value < market.min_notional {
                        return Err(RejectReason::BelowMinNotional);
                    }
                }
                match new.side {
                    Side::Sell => (
                        market.base,
                        market.base_for(qty).ok_or(RejectReason::Overflow)?,
                    ),
                    // The cost is known only while matching: the whole balance is the budget.
                    Side::Buy => (market.quote, self.available_of(account, market.quote)),
                }
            }
            OrderKind::MarketQuote { amount } => {
                if amount.is_zero() {
                    return Err(RejectReason::InvalidAmount);
                }
                if amount.0 < market.min_notional {
                    return Err(RejectReason::BelowMinNotional);
                }
                match new.side {
                    Side::Buy => (market.quote, amount.0),
                    Side::Sell => (market.base, self.available_of(account, market.base)),
                }
            }
        };
        if lock_amount == 0 || self.available_of(account, lock_asset) < lock_amount {
            return Err(RejectReason::InsufficientBalance);
        }
        let fok_fillable = match new.kind {
            OrderKind::Limit {
                price,
                qty,
                tif: TimeInForce::Fok,
            } => self.fok_fillable(new.market, account, new.side, price, qty, new.stp),
            _ => true,
        };

        // Accepted: from here on nothing can be refused.
        let id = OrderId(self.next_order_id);
        self.next_order_id += 1;
        self.emit(
            events,
            EventKind::OrderAccepted {
                order: id,
                new: *new,
            },
        );
        if let Some(client_id) = new.client_id {
            self.client_ids.insert((account, client_id), id);
            self.order_client.insert(id, client_id);
        }
        if !fok_fillable {
            let OrderKind::Limit { qty, .. } = new.kind else {
                invariant_broken("only limit orders are fill-or-kill")
            };
            self.order_done(id, account, new.market, DoneReason::Expired, qty, events);
            return Ok(());
        }
        self.lock(account, lock_asset, lock_amount);

        // The common case, a resting limit order that does not cross: straight into the book
        // (exactly what matching would do, without its machinery).
        if let OrderKind::Limit { price, qty, tif } = new.kind
            && matches!(tif, TimeInForce::Gtc | TimeInForce::PostOnly)
            && !opposite_best.is_some_and(|best| crosses(new.side.opposite(), best, price))
        {
            let maker = Maker {
                account,
                stp: new.stp,
                post_only: tif == TimeInForce::PostOnly,
            };
            if self
                .market_mut(new.market)
                .book
                .add(id, new.side, price, qty, maker)
                .is_err()
            {
                invariant_broken("order id reused in the book");
            }
            self.hot[account as usize].open_orders += 1;
            return Ok(());
        }

        let mut taker = Taker {
            id,
            account,
            account_id: new.account,
            side: new.side,
            limit: None,
            remaining: u64::MAX,
            quote_left: None,
            locked: lock_amount,
            stp: new.stp,
            rests: false,
            post_only: false,
        };
        match new.kind {
            OrderKind::Limit { price, qty, tif } => {
                taker.limit = Some(price);
                taker.remaining = qty.0;
                taker.rests = matches!(tif, TimeInForce::Gtc | TimeInForce::PostOnly);
                taker.post_only = tif == TimeInForce::PostOnly;
            }
            OrderKind::Market { qty } => taker.remaining = qty.0,
            OrderKind::MarketQuote { amount } => taker.quote_left = Some(amount.0),
            OrderKind::StopLimit {
                stop,
                price,
                qty,
                tif,
            }
            | OrderKind::TakeProfitLimit {
                stop,
                price,
                qty,
                tif,
            } => {
                let rising = stop_rises(&new.kind, new.side);
                let stop_order = StopOrder {
                    id,
                    account,
                    side: new.side,
                    stop,
                    price,
                    qty,
                    tif,
                    stp: new.stp,
                    rising,
                };
                self.market_mut(new.market).insert_stop(stop_order);
                self.hot[account as usize].open_orders += 1;
                return Ok(());
            }
        }
        let traded_before = self.next_trade_id;
        if self.execute(new.market, &mut taker, events) == Entry::Rested {
            self.hot[account as usize].open_orders += 1;
        }
        if self.next_trade_id != traded_before {
            self.fire_stops(new.market, events);
        }
        Ok(())
    }

    /// Whether a fill-or-kill order would fill completely, honouring self-trade prevention.
    fn fok_fillable(
        &self,
        market: MarketId,
        account: u32,
        side: Side,
        limit: Price,
        qty: Qty,
        stp: SelfTradePrevention,
    ) -> bool {
        let Some(m) = self.market(market) else {
            return false;
        };
        let mut available = 0u64;
        m.book.visit(side.opposite(), |maker| {
            if !crosses(side.opposite(), maker.price, limit) {
                return false;
            }
            if maker.payload.account == account {
                match stp {
                    SelfTradePrevention::None => {}
                    SelfTradePrevention::ExpireMaker => return true,
                    SelfTradePrevention::ExpireTaker | SelfTradePrevention::ExpireBoth => {
                        return false;
                    }
                }
            }
            available = available.saturating_add(maker.qty.0);
            available < qty.0
        });
        available >= qty.0
    }

    /// Matches an incoming order, then rests or finishes it. Returns how it ended.
    fn execute(
        &mut self,
        market_id: MarketId,
        taker: &mut Taker,
        events: &mut Vec<Event>,
    ) -> Entry {
        let maker_side = taker.side.opposite();
        let mut expired_by_stp = false;
        // A market order by quote amount is filled once what is left of its amount cannot pay
        // for one more lot (and it traded at all); running out of funds or liquidity expires it.
        let mut quote_target_reached = false;
        let mut traded = false;
        loop {
            if taker.remaining == 0 {
                break;
            }
            let market = self.market_mut(market_id);
            let Some(front) = market.book.front(maker_side) else {
                break;
            };
            if let Some(limit) = taker.limit
                && !crosses(maker_side, front.price, limit)
            {
                break;
            }
            if front.payload.account == taker.account && taker.stp != SelfTradePrevention::None {
                let expire_maker = matches!(
                    taker.stp,
                    SelfTradePrevention::ExpireMaker | SelfTradePrevention::ExpireBoth
                );
                if expire_maker {
                    self.remove_maker(market_id, front.id, DoneReason::SelfTradePrevented, events);
                }
                if taker.stp != SelfTradePrevention::ExpireMaker {
                    expired_by_stp = true;
                    break;
                }
                continue;
            }
            let mut qty = taker.remaining.min(front.qty.0);
            let unit_cost = u128::from(front.price.0) * market.notional_unit;
            // Budget-bound orders take only what their funds (or quote target) cover.
            if taker.limit.is_none() {
                let affordable = match taker.side {
                    Side::Buy => taker.locked / unit_cost,
                    Side::Sell => taker.locked / market.lot_size,
                };
                let mut cap = affordable;
                if let Some(quote_left) = taker.quote_left {
                    let quote_cap = quote_left / unit_cost;
                    quote_target_reached = quote_cap == 0;
                    cap = cap.min(quote_cap);
                }
                qty = qty.min(u64::try_from(cap).unwrap_or(u64::MAX));
                if qty == 0 {
                    break;
                }
            }
            self.trade(market_id, taker, front.payload.account, Qty(qty), events);
            traded = true;
        }
        if taker.rests && !expired_by_stp && taker.remaining > 0 {
            let Some(price) = taker.limit else {
                invariant_broken("a resting order has a price")
            };
            let maker = Maker {
                account: taker.account,
                stp: taker.stp,
                post_only: taker.post_only,
            };
            let market = self.market_mut(market_id);
            if market
                .book
                .add(taker.id, taker.side, price, Qty(taker.remaining), maker)
                .is_err()
            {
                invariant_broken("order id reused in the book");
            }
            // What stays locked is exactly the resting order's need.
            let Some((asset, need)) = market.lock_for(taker.side, Qty(taker.remaining), price)
            else {
                invariant_broken("resting order lock overflow")
            };
            let excess = taker
                .locked
                .checked_sub(need)
                .unwrap_or_else(|| invariant_broken("resting order under-locked"));
            if excess > 0 {
                self.unlock(taker.account, asset, excess);
            }
            return Entry::Rested;
        }
        let market = self.market_mut(market_id);
        let asset = lock_asset(market, taker.side);
        if taker.locked > 0 {
            self.unlock(taker.account, asset, taker.locked);
            taker.locked = 0;
        }
        let reason = if expired_by_stp {
            DoneReason::SelfTradePrevented
        } else if taker.remaining == 0
            || (traded && (quote_target_reached || taker.quote_left == Some(0)))
        {
            DoneReason::Filled
        } else {
            DoneReason::Expired
        };
        let unfilled = if taker.quote_left.is_some() {
            0
        } else {
            taker.remaining
        };
        self.order_done(
            taker.id,
            taker.account,
            market_id,
            reason,
            Qty(unfilled),
            events,
        );
        Entry::Done
    }

    /// Settles one execution of `qty` lots between the front maker and the taker.
    fn trade(
        &mut self,
        market_id: MarketId,
        taker: &mut Taker,
        maker_account: u32,
        qty: Qty,
        events: &mut Vec<Event>,
    ) {
        let market = self.market_mut(market_id);
        let maker_side = taker.side.opposite();
        let Some(fill) = market.book.fill_front(maker_side, qty) else {
            invariant_broken("fill larger than the front order")
        };
        let (base_asset, quote_asset) = (market.base, market.quote);
        let base = u128::from(qty.0) * market.lot_size;
        let quote = u128::from(qty.0) * u128::from(fill.price.0) * market.notional_unit;
        // What the taker's lock covered for these lots, at its limit (or at cost, if budgeted).
        let taker_lock_used = match (taker.side, taker.limit) {
            (Side::Buy, Some(limit)) => {
                u128::from(qty.0) * u128::from(limit.0) * market.notional_unit
            }
            (Side::Buy, None) => quote,
            (Side::Sell, _) => base,
        };
        market.last_price = Some(fill.price);
        let trade_id = self.next_trade_id;
        self.next_trade_id += 1;

        let (buyer, seller, buyer_is_maker) = match taker.side {
            Side::Buy => (taker.account, maker_account, false),
            Side::Sell => (maker_account, taker.account, true),
        };
        let buyer_fee = fee_for(base, self.fee_rate(buyer, buyer_is_maker));
        let seller_fee = fee_for(quote, self.fee_rate(seller, !buyer_is_maker));
        let (maker_fee, taker_fee) = if buyer_is_maker {
            (buyer_fee, seller_fee)
        } else {
            (seller_fee, buyer_fee)
        };
        let maker_account_id = self.hot[maker_account as usize].id;
        self.emit(
            events,
            EventKind::Trade {
                trade: trade_id,
                market: market_id,
                price: fill.price,
                qty,
                taker_side: taker.side,
                maker_order: fill.maker,
                taker_order: taker.id,
                maker_account: maker_account_id,
                taker_account: taker.account_id,
                maker_fee: Amount(maker_fee),
                taker_fee: Amount(taker_fee),
            },
        );

        // The taker pays from its lock; a limit buy gets its price improvement back at once.
        taker.locked = taker
            .locked
            .checked_sub(taker_lock_used)
            .unwrap_or_else(|| invariant_broken("taker lock exhausted"));
        // Only a market order by quote amount has no lot count (its `remaining` is a sentinel);
        // a real order may want `u64::MAX` lots.
        if taker.quote_left.is_none() {
            taker.remaining -= qty.0;
        }
        if let Some(quote_left) = taker.quote_left.as_mut() {
            *quote_left -= quote;
        }
        match taker.side {
            Side::Buy => {
                self.spend_locked(buyer, quote_asset, quote);
                let improvement = taker_lock_used - quote;
                if improvement > 0 {
                    self.unlock(buyer, quote_asset, improvement);
                }
                self.spend_locked(seller, base_asset, base);
            }
            Side::Sell => {
                self.spend_locked(seller, base_asset, base);
                self.spend_locked(buyer, quote_asset, quote);
            }
        }
        self.credit(buyer, base_asset, base - buyer_fee);
        self.credit(seller, quote_asset, quote - seller_fee);
        self.collect_fee(base_asset, buyer_fee);
        self.collect_fee(quote_asset, seller_fee);

        if fill.maker_done {
            self.hot[maker_account as usize].open_orders -= 1;
            self.order_done(
                fill.maker,
                maker_account,
                market_id,
                DoneReason::Filled,
                Qty(0),
                events,
            );
        }
    }

    /// Takes a resting order out of the book and returns its locked funds.
    fn remove_maker(
        &mut self,
        market_id: MarketId,
        order: OrderId,
        reason: DoneReason,
        events: &mut Vec<Event>,
    ) {
        let Some(resting) = self.market_mut(market_id).book.cancel(order) else {
            invariant_broken("removing an order that is not resting")
        };
        self.release_removed(market_id, resting, reason, events);
    }

    /// Returns the funds of an order just taken out of the book and records its end.
    fn release_removed(
        &mut self,
        market_id: MarketId,
        resting: coss_book::RestingOrder<Maker>,
        reason: DoneReason,
        events: &mut Vec<Event>,
    ) {
        let market = self.market_mut(market_id);
        let Some((asset, amount)) = market.lock_for(resting.side, resting.qty, resting.price)
        else {
            invariant_broken("resting order lock overflow")
        };
        let account = resting.payload.account;
        self.unlock(account, asset, amount);
        self.hot[account as usize].open_orders -= 1;
        self.order_done(resting.id, account, market_id, reason, resting.qty, events);
    }

    /// Records the end of an order: its event, and its client order id moves to the account's
    /// recent memory.
    fn order_done(
        &mut self,
        order: OrderId,
        account: u32,
        market: MarketId,
        reason: DoneReason,
        unfilled: Qty,
        events: &mut Vec<Event>,
    ) {
        let account_id = self.hot[account as usize].id;
        self.emit(
            events,
            EventKind::OrderDone {
                order,
                account: account_id,
                market,
                reason,
                unfilled,
            },
        );
        // Most orders carry no client id: skip the lookup when none is open.
        if !self.order_client.is_empty()
            && let Some(client_id) = self.order_client.remove(&order)
        {
            let recent = &mut self.accounts[account as usize].recent_client_ids;
            recent.push_back(client_id);
            if recent.len() > CLIENT_ID_MEMORY
                && let Some(forgotten) = recent.pop_front()
            {
                self.client_ids.remove(&(account, forgotten));
            }
        }
    }

    /// Fires waiting stops whose trigger the last price has reached, one at a time in a fixed
    /// order (rising triggers by stop price then id, then falling ones), until none is left.
    fn fire_stops(&mut self, market_id: MarketId, events: &mut Vec<Event>) {
        loop {
            let market = self.market_mut(market_id);
            let Some(last) = market.last_price else {
                return;
            };
            let next = match market.rising.first_key_value() {
                Some((&key, stop)) if triggered(true, stop.stop, last) => Some(key),
                _ => None,
            };
            let stop = match next {
                Some(key) => market.rising.remove(&key),
                None => match market.falling.first_key_value() {
                    Some((&key, stop)) if triggered(false, stop.stop, last) => {
                        market.falling.remove(&key)
                    }
                    _ => None,
                },
            };
            let Some(stop) = stop else {
                return;
            };
            market.stop_keys.remove(&stop.id);
            let Some((_, locked)) = market.lock_for(stop.side, stop.qty, stop.price) else {
                invariant_broken("stop lock overflow")
            };
            self.hot[stop.account as usize].open_orders -= 1;
            self.emit(
                events,
                EventKind::OrderTriggered {
                    order: stop.id,
                    market: market_id,
                    last_price: last,
                },
            );
            let mut taker = Taker {
                id: stop.id,
                account: stop.account,
                account_id: self.hot[stop.account as usize].id,
                side: stop.side,
                limit: Some(stop.price),
                remaining: stop.qty.0,
                quote_left: None,
                locked,
                stp: stop.stp,
                rests: stop.tif == TimeInForce::Gtc,
                post_only: false,
            };
            let fillable = stop.tif != TimeInForce::Fok
                || self.fok_fillable(
                    market_id,
                    stop.account,
                    stop.side,
                    stop.price,
                    stop.qty,
                    stop.stp,
                );
            if !fillable {
                let market = self.market_mut(market_id);
                let asset = lock_asset(market, stop.side);
                self.unlock(stop.account, asset, locked);
                self.order_done(
                    stop.id,
                    stop.account,
                    market_id,
                    DoneReason::Expired,
                    stop.qty,
                    events,
                );
                continue;
            }
            if self.execute(market_id, &mut taker, events) == Entry::Rested {
                self.hot[stop.account as usize].open_orders += 1;
            }
        }
    }

    /// Finds an open order of `account` in `market` by reference: its id, and the order itself
    /// if it rests in the book (`None`: a waiting stop).
    fn resolve(
        &self,
        account: u32,
        market: &Market,
        order: OrderRef,
    ) -> Option<(OrderId, Option<coss_book::RestingOrder<Maker>>)> {
        let id = match order {
            OrderRef::Id(id) => id,
            OrderRef::Client(client_id) => *self.client_ids.get(&(account, client_id))?,
        };
        if let Some(resting) = market.book.get(id) {
            return (resting.payload.account == account).then_some((id, Some(resting)));
        }
        let (rising, key) = *market.stop_keys.get(&id)?;
        let stops = if rising {
            &market.rising
        } else {
            &market.falling
        };
        let stop = stops.get(&(key, id))?;
        (stop.account == account).then_some((id, None))
    }

    pub(crate) fn cancel(
        &mut self,
        account: AccountId,
        market_id: MarketId,
        order: OrderRef,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let account = self
            .user_account(account)?
            .ok_or(RejectReason::UnknownOrder)?;
        let market = self.listed_market(market_id)?;
        let (id, _) = self
            .resolve(account, market, order)
            .ok_or(RejectReason::UnknownOrder)?;
        self.cancel_open(account, market_id, id, events);
        Ok(())
    }

    /// Cancels an open order known to belong to `account`.
    fn cancel_open(
        &mut self,
        account: u32,
        market_id: MarketId,
        id: OrderId,
        events: &mut Vec<Event>,
    ) {
        let market = self.market_mut(market_id);
        if let Some(resting) = market.book.cancel(id) {
            self.release_removed(market_id, resting, DoneReason::Cancelled, events);
            return;
        }
        let Some((rising, key)) = market.stop_keys.remove(&id) else {
            invariant_broken("cancelling an order that is not open")
        };
        let stops = if rising {
            &mut market.rising
        } else {
            &mut market.falling
        };
        let Some(stop) = stops.remove(&(key, id)) else {
            invariant_broken("stop index out of step")
        };
        let Some((asset, amount)) = market.lock_for(stop.side, stop.qty, stop.price) else {
            invariant_broken("stop lock overflow")
        };
        self.unlock(account, asset, amount);
        self.hot[account as usize].open_orders -= 1;
        self.order_done(
            id,
            account,
            market_id,
            DoneReason::Cancelled,
            stop.qty,
            events,
        );
    }

    pub(crate) fn cancel_all(
        &mut self,
        account: AccountId,
        market_id: MarketId,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let account = self.user_account(account)?;
        self.listed_market(market_id)?;
        let Some(account) = account else {
            return Ok(());
        };
        self.cancel_every_open(account, market_id, events);
        Ok(())
    }

    /// Cancels every open order (resting and waiting stops) of a dense account index in a
    /// listed market, by ascending id.
    pub(crate) fn cancel_every_open(
        &mut self,
        account: u32,
        market_id: MarketId,
        events: &mut Vec<Event>,
    ) {
        let Some(market) = self.market(market_id) else {
            return;
        };
        let mut ids = Vec::new();
        for side in [Side::Buy, Side::Sell] {
            market.book.visit(side, |order| {
                if order.payload.account == account {
                    ids.push(order.id);
                }
                true
            });
        }
        ids.extend(
            market
                .rising
                .values()
                .chain(market.falling.values())
                .filter(|stop| stop.account == account)
                .map(|stop| stop.id),
        );
        ids.sort_unstable();
        for id in ids {
            self.cancel_open(account, market_id, id, events);
        }
    }

    pub(crate) fn amend(
        &mut self,
        account: AccountId,
        market_id: MarketId,
        order: OrderRef,
        qty: Qty,
        price: Price,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let account = self
            .user_account(account)?
            .ok_or(RejectReason::UnknownOrder)?;
        let market = self.trading_market(market_id)?;
        if self.hot[account as usize].locked {
            return Err(RejectReason::AccountLocked);
        }
        let (id, resting) = self
            .resolve(account, market, order)
            .ok_or(RejectReason::UnknownOrder)?;
        // Only orders resting in the book can be amended (not waiting stops).
        let current = resting.ok_or(RejectReason::UnknownOrder)?;
        if qty.0 == 0 {
            return Err(RejectReason::InvalidQuantity);
        }
        if price == current.price && qty == current.qty {
            return Err(RejectReason::NothingToAmend);
        }
        let (asset, new_lock) = validate_limit(market, current.side, price, qty)?;
        let Some((_, old_lock)) = market.lock_for(current.side, current.qty, current.price) else {
            invariant_broken("resting order lock overflow")
        };
        if price == current.price && qty < current.qty {
            let market = self.market_mut(market_id);
            if market.book.reduce(id, qty).is_err() {
                invariant_broken("reduce of a resting order failed");
            }
            self.emit(
                events,
                EventKind::OrderAmended {
                    order: id,
                    market: market_id,
                    qty,
                    price,
                    priority_kept: true,
                },
            );
            self.unlock(account, asset, old_lock - new_lock);
            return Ok(());
        }
        if new_lock > old_lock && self.available_of(account, asset) < new_lock - old_lock {
            return Err(RejectReason::InsufficientBalance);
        }
        let opposite_best = market.book.best(current.side.opposite());
        if current.payload.post_only
            && opposite_best.is_some_and(|best| crosses(current.side.opposite(), best, price))
        {
            return Err(RejectReason::PostOnlyWouldTrade);
        }
        // Re-enter: out of the book, locks adjusted, then in again as an incoming order.
        let market = self.market_mut(market_id);
        if market.book.cancel(id).is_none() {
            invariant_broken("amended order vanished");
        }
        self.emit(
            events,
            EventKind::OrderAmended {
                order: id,
                market: market_id,
                qty,
                price,
                priority_kept: false,
            },
        );
        if new_lock > old_lock {
            self.lock(account, asset, new_lock - old_lock);
        } else if old_lock > new_lock {
            self.unlock(account, asset, old_lock - new_lock);
        }
        let mut taker = Taker {
            id,
            account,
            account_id: self.hot[account as usize].id,
            side: current.side,
            limit: Some(price),
            remaining: qty.0,
            quote_left: None,
            locked: new_lock,
            stp: current.payload.stp,
            rests: true,
            post_only: current.payload.post_only,
        };
        let traded_before = self.next_trade_id;
        if self.execute(market_id, &mut taker, events) == Entry::Done {
            self.hot[account as usize].open_orders -= 1;
        }
        if self.next_trade_id != traded_before {
            self.fire_stops(market_id, events);
        }
        Ok(())
    }
}

/// Checks a limit price and quantity against the market; returns the lock it needs.
fn validate_limit(
    market: &Market,
    side: Side,
    price: Price,
    qty: Qty,
) -> Result<(AssetId, u128), RejectReason> {
    if qty.0 == 0 {
        return Err(RejectReason::InvalidQuantity);
    }
    if price.0 == 0 {
        return Err(RejectReason::InvalidPrice);
    }
    let value = market.quote_for(qty, price).ok_or(RejectReason::Overflow)?;
    if value < market.min_notional {
        return Err(RejectReason::BelowMinNotional);
    }
    market
        .lock_for(side, qty, price)
        .ok_or(RejectReason::Overflow)
}

fn lock_asset(market: &Market, side: Side) -> AssetId {
    match side {
        Side::Buy => market.quote,
        Side::Sell => market.base,
    }
}

/// Whether a stop order fires on a rising price (stop-limit buy, take-profit sell) or a falling
/// one (stop-limit sell, take-profit buy).
fn stop_rises(kind: &OrderKind, side: Side) -> bool {
    match kind {
        OrderKind::TakeProfitLimit { .. } => side == Side::Sell,
        _ => side == Side::Buy,
    }
}

fn triggered(rising: bool, stop: Price, last: Price) -> bool {
    if rising { last >= stop } else { last <= stop }
}

fn stop_key(rising: bool, stop: Price) -> u64 {
    if rising { stop.0 } else { u64::MAX - stop.0 }
}
