//! The harness every spec test runs in: a `World` with BTC, USDT and USD listed and the
//! BTC/USDT market open, which applies commands with an increasing time, keeps every event and,
//! after EVERY command, checks what must always hold:
//!
//! - `check_invariants()` is Ok;
//! - event sequence numbers continue without a gap and carry the command's time;
//! - a rejected command produced exactly one `Rejected` event and moved no balance, order or
//!   open-order count;
//! - an accepted command produced no `Rejected` event, and its `BalanceChanged` events are
//!   exactly the balances that changed (one each, with the new values).
//!
//! When a test ends without failing, the world also checks that replaying its commands into a
//! fresh `Exchange` gives the same events and `state_hash`, and that `restore(snapshot())` gives
//! the same `state_hash`.
//!
//! Units in BTC/USDT: a price is in ticks of 0.01 USDT per BTC, a quantity in lots of 0.0001 BTC
//! (10,000 sats), so the value of `qty` lots at `price` ticks is `qty × price` micro-USDT.

use coss_core::{
    Command, DoneReason, Envelope, Event, EventKind, Exchange, FEES_HOLDERS, FEES_PLATFORM,
    GATEWAY, MarketStatus, NewOrder, OrderKind, OrderRef, Outcome, RejectReason,
    SelfTradePrevention, TimeInForce, WITHDRAWAL_FEES,
};
use coss_types::{
    AccountId, Amount, AssetId, ClientOrderId, MarketId, OrderId, Price, Qty, RequestId, Side,
};
use std::collections::{BTreeMap, BTreeSet};

pub const BTC: AssetId = AssetId(1);
pub const USDT: AssetId = AssetId(2);
pub const USD: AssetId = AssetId(3);
pub const BTC_USDT: MarketId = MarketId(1);

pub const ALICE: AccountId = AccountId(1000);
pub const BOB: AccountId = AccountId(1001);
pub const CAROL: AccountId = AccountId(1002);
pub const DAVE: AccountId = AccountId(1003);
pub const EVE: AccountId = AccountId(1004);

/// Sats per lot of BTC/USDT (0.0001 BTC).
pub const LOT_SATS: u128 = 10_000;
/// BTC/USDT's minimum order value: 0.001 USDT, e.g. 10 lots at 1.00 USDT.
pub const MIN_NOTIONAL: u128 = 1_000;
/// What [`World::fund`] deposits: 1 BTC ...
pub const FUND_BTC: u128 = 100_000_000;
/// ... and 100 USDT.
pub const FUND_USDT: u128 = 100_000_000;
/// BTC's withdrawal fee: 0.0005 BTC.
pub const BTC_WITHDRAWAL_FEE: u128 = 50_000;

const SYSTEM_ACCOUNTS: [AccountId; 5] = [
    FEES_PLATFORM,
    FEES_HOLDERS,
    WITHDRAWAL_FEES,
    GATEWAY,
    coss_core::DAO_PAYOUTS,
];

/// One `Trade` event, flattened for assertions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TradeView {
    pub price: u64,
    pub qty: u64,
    pub taker_side: Side,
    pub maker_order: OrderId,
    pub taker_order: OrderId,
    pub maker_account: AccountId,
    pub taker_account: AccountId,
    /// Base exchanged, computed for BTC/USDT (other markets: check balances instead).
    pub base_amount: u128,
    /// Quote exchanged, computed for BTC/USDT.
    pub quote_amount: u128,
    pub maker_fee: u128,
    pub taker_fee: u128,
}

/// An exchange under test, with its full command and event history.
#[derive(Debug)]
pub struct World {
    pub ex: Exchange,
    events: Vec<Event>,
    /// Index in `events` of the first event of the last command.
    last: usize,
    envelopes: Vec<Envelope>,
    time_ms: u64,
    deposits: u64,
    requests: u128,
    accounts: BTreeSet<AccountId>,
    assets: BTreeSet<AssetId>,
}

impl World {
    /// An exchange with nothing listed.
    pub fn bare() -> World {
        World {
            ex: Exchange::new(),
            events: Vec::new(),
            last: 0,
            envelopes: Vec::new(),
            time_ms: 1_700_000_000_000,
            deposits: 0,
            requests: 0,
            accounts: SYSTEM_ACCOUNTS.into_iter().collect(),
            assets: BTreeSet::new(),
        }
    }

    /// BTC (8 decimals, shared fees), USDT (6, shared), USD (2, fiat: not shared) and the
    /// BTC/USDT market (lot 10,000 sats, tick 0.01 USDT, minimum 0.001 USDT).
    pub fn new() -> World {
        World::with_min_notional(MIN_NOTIONAL)
    }

    /// As [`World::new`], with another minimum order value for BTC/USDT.
    pub fn with_min_notional(min_notional: u128) -> World {
        let mut w = World::bare();
        w.ok(list_asset(BTC, "BTC", 8, true, BTC_WITHDRAWAL_FEE));
        w.ok(list_asset(USDT, "USDT", 6, true, 1_000_000));
        w.ok(list_asset(USD, "USD", 2, false, 0));
        w.ok(Command::ListMarket {
            market: BTC_USDT,
            base: BTC,
            quote: USDT,
            lot_size: Amount(LOT_SATS),
            tick_size: Amount(10_000),
            min_notional: Amount(min_notional),
        });
        w
    }

    /// Applies a command one millisecond after the previous one and checks everything that
    /// must hold after any command.
    pub fn apply(&mut self, command: Command) -> Outcome {
        self.time_ms += 1;
        self.apply_at(self.time_ms, command)
    }

    /// Applies a command stamped with `time_ms` (which may go backwards).
    pub fn apply_at(&mut self, time_ms: u64, command: Command) -> Outcome {
        self.note_accounts(&command);
        let balances_before = self.balances();
        let open_before = self.open_orders();
        let resting_before = self.ex.resting_orders(BTC_USDT);
        let time_before = self.ex.time_ms();
        let envelope = Envelope { time_ms, command };
        let first = self.events.len();
        let outcome = self.ex.apply(&envelope, &mut self.events);
        self.last = first;
        let command = &envelope.command;

        if let Err(violation) = self.ex.check_invariants() {
            panic!("{violation} after {command:?} -> {outcome:?}");
        }
        let effective_time = time_before.max(time_ms);
        for (offset, event) in self.events[first..].iter().enumerate() {
            assert_eq!(
                event.seq,
                (first + offset + 1) as u64,
                "event sequence has a gap"
            );
            assert_eq!(event.time_ms, effective_time, "event time is the command's");
        }
        assert_eq!(self.ex.last_seq(), self.events.len() as u64);
        assert_eq!(self.ex.time_ms(), effective_time);

        let balances_after = self.balances();
        match outcome {
            Err(reason) => {
                assert_eq!(
                    self.last_kinds(),
                    vec![EventKind::Rejected { reason }],
                    "a rejected command emits exactly one Rejected event: {command:?}"
                );
                assert_eq!(
                    balances_before, balances_after,
                    "rejected {command:?} moved money"
                );
                assert_eq!(
                    open_before,
                    self.open_orders(),
                    "rejected {command:?} changed orders"
                );
                assert_eq!(resting_before, self.ex.resting_orders(BTC_USDT));
            }
            Ok(()) => {
                let mut reported = BTreeSet::new();
                // Fee credits are reported by `FeesCollected` rather than `BalanceChanged`.
                let mut collected: BTreeMap<(AccountId, AssetId), Amount> = BTreeMap::new();
                for event in &self.events[first..] {
                    match &event.kind {
                        EventKind::Rejected { reason } => {
                            panic!("accepted {command:?} emitted Rejected({reason:?})")
                        }
                        EventKind::BalanceChanged {
                            account,
                            asset,
                            available,
                            locked,
                        } => {
                            assert!(
                                reported.insert((*account, *asset)),
                                "two BalanceChanged for {account}/{asset} in one command"
                            );
                            let now = self.ex.balance(*account, *asset);
                            assert_eq!((now.available, now.locked), (*available, *locked));
                            self.accounts.insert(*account);
                        }
                        EventKind::AssetListed { asset, .. } => {
                            self.assets.insert(*asset);
                        }
                        EventKind::FeesCollected {
                            asset,
                            platform,
                            holders,
                        } => {
                            collected.insert((FEES_PLATFORM, *asset), *platform);
                            collected.insert((FEES_HOLDERS, *asset), *holders);
                        }
                        _ => {}
                    }
                }
                for (key, after) in &balances_after {
                    let before = balances_before.get(key);
                    if before == Some(after) || reported.contains(key) {
                        continue;
                    }
                    let credited = collected.get(key).copied().unwrap_or_default();
                    let before_available = before.map_or(0, |b| b.0);
                    assert_eq!(
                        (before_available + credited.0, before.map_or(0, |b| b.1)),
                        *after,
                        "balance {key:?} changed without a BalanceChanged or FeesCollected event"
                    );
                }
            }
        }
        self.envelopes.push(envelope);
        outcome
    }

    /// Applies a command that must be accepted; returns its events.
    #[track_caller]
    pub fn ok(&mut self, command: Command) -> Vec<Event> {
        let description = format!("{command:?}");
        if let Err(reason) = self.apply(command) {
            panic!("{description} was rejected: {reason:?}");
        }
        self.last_events().to_vec()
    }

    /// Applies a command that must be rejected for `reason`.
    #[track_caller]
    pub fn rejects(&mut self, command: Command, reason: RejectReason) {
        let description = format!("{command:?}");
        assert_eq!(self.apply(command), Err(reason), "{description}");
    }

    /// Places an order that must be accepted; returns its id.
    #[track_caller]
    pub fn place(&mut self, new: NewOrder) -> OrderId {
        self.ok(Command::PlaceOrder(new));
        self.accepted()
    }

    /// Places an order that must be rejected for `reason`.
    #[track_caller]
    pub fn place_rejected(&mut self, new: NewOrder, reason: RejectReason) {
        self.rejects(Command::PlaceOrder(new), reason);
    }

    /// Credits `amount` of `asset` to `account` under a fresh reference.
    pub fn deposit(&mut self, account: AccountId, asset: AssetId, amount: u128) {
        self.deposits += 1;
        let reference = format!("deposit-{}", self.deposits);
        self.ok(deposit(account, asset, amount, &reference));
    }

    /// Gives `account` 1 BTC and 100 USDT.
    pub fn fund(&mut self, account: AccountId) {
        self.deposit(account, BTC, FUND_BTC);
        self.deposit(account, USDT, FUND_USDT);
    }

    /// A fresh request id.
    pub fn request(&mut self) -> RequestId {
        self.requests += 1;
        RequestId(self.requests)
    }

    /// Makes BTC/USDT's last trade price `price`: CAROL sells 20 lots, DAVE takes them.
    /// Both must be funded.
    pub fn trade_at(&mut self, price: u64) {
        self.place(limit(CAROL, Side::Sell, price, 20));
        self.place(limit_tif(DAVE, Side::Buy, price, 20, TimeInForce::Ioc));
        assert_eq!(self.trades().len(), 1, "trade_at({price}) must trade once");
        assert_eq!(self.ex.last_price(BTC_USDT), Some(Price(price)));
    }

    /// Halts or resumes BTC/USDT.
    pub fn set_status(&mut self, status: MarketStatus) {
        self.ok(Command::SetMarketStatus {
            market: BTC_USDT,
            status,
        });
    }

    /// The last command applied, with its time.
    pub fn last_envelope(&self) -> &Envelope {
        self.envelopes.last().expect("a command was applied")
    }

    /// Every event so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// The events of the last command.
    pub fn last_events(&self) -> &[Event] {
        &self.events[self.last..]
    }

    /// The kinds of the events of the last command.
    pub fn last_kinds(&self) -> Vec<EventKind> {
        self.last_events().iter().map(|e| e.kind.clone()).collect()
    }

    /// What happened to orders in the last command, one line per event:
    /// `accepted 3`, `triggered 3 at 105`, `trade 10@100 maker 1 taker 3`,
    /// `done 1 Filled unfilled 0`, `amended 1 5@100 priority_kept true`.
    pub fn story(&self) -> Vec<String> {
        self.last_events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::OrderAccepted { order, .. } => Some(format!("accepted {order}")),
                EventKind::OrderTriggered {
                    order, last_price, ..
                } => Some(format!("triggered {order} at {last_price}")),
                EventKind::Trade {
                    price,
                    qty,
                    maker_order,
                    taker_order,
                    ..
                } => Some(format!(
                    "trade {qty}@{price} maker {maker_order} taker {taker_order}"
                )),
                EventKind::OrderDone {
                    order,
                    reason,
                    unfilled,
                    ..
                } => Some(format!("done {order} {reason:?} unfilled {unfilled}")),
                EventKind::OrderAmended {
                    order,
                    qty,
                    price,
                    priority_kept,
                    ..
                } => Some(format!(
                    "amended {order} {qty}@{price} priority_kept {priority_kept}"
                )),
                _ => None,
            })
            .collect()
    }

    /// The id of the order the last command accepted.
    #[track_caller]
    pub fn accepted(&self) -> OrderId {
        self.last_events()
            .iter()
            .find_map(|e| match e.kind {
                EventKind::OrderAccepted { order, .. } => Some(order),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no order accepted by the last command"))
    }

    /// The trades of the last command, in order.
    pub fn trades(&self) -> Vec<TradeView> {
        trades_in(self.last_events())
    }

    /// Every trade so far.
    pub fn all_trades(&self) -> Vec<TradeView> {
        trades_in(&self.events)
    }

    /// The orders the last command finished: (order, reason, unfilled lots).
    pub fn done(&self) -> Vec<(OrderId, DoneReason, u64)> {
        self.last_events()
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::OrderDone {
                    order,
                    reason,
                    unfilled,
                    ..
                } => Some((order, reason, unfilled.0)),
                _ => None,
            })
            .collect()
    }

    /// The fees the last command collected: (asset, platform, holders).
    pub fn fees_collected(&self) -> Vec<(AssetId, u128, u128)> {
        self.last_events()
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::FeesCollected {
                    asset,
                    platform,
                    holders,
                } => Some((asset, platform.0, holders.0)),
                _ => None,
            })
            .collect()
    }

    pub fn available(&self, account: AccountId, asset: AssetId) -> u128 {
        self.ex.balance(account, asset).available.0
    }

    pub fn locked(&self, account: AccountId, asset: AssetId) -> u128 {
        self.ex.balance(account, asset).locked.0
    }

    /// Available plus locked.
    pub fn total(&self, account: AccountId, asset: AssetId) -> u128 {
        self.available(account, asset) + self.locked(account, asset)
    }

    /// The sum of every balance in `asset`: what was deposited minus what was withdrawn.
    pub fn supply(&self, asset: AssetId) -> u128 {
        self.accounts.iter().map(|&a| self.total(a, asset)).sum()
    }

    /// BTC/USDT's price levels on one side, best first: (price, qty, orders).
    pub fn book(&self, side: Side) -> Vec<(u64, u64, u32)> {
        self.ex
            .depth(BTC_USDT, side, usize::MAX)
            .into_iter()
            .map(|l| (l.price.0, l.qty.0, l.orders))
            .collect()
    }

    /// A resting order's (price, qty), if it rests in BTC/USDT.
    pub fn resting(&self, order: OrderId) -> Option<(u64, u64)> {
        self.ex
            .resting_order(BTC_USDT, order)
            .map(|o| (o.price.0, o.qty.0))
    }

    fn note_accounts(&mut self, command: &Command) {
        let mentioned: Vec<AccountId> = match command {
            Command::Deposit { account, .. }
            | Command::WithdrawHold { account, .. }
            | Command::SetAccountFeeTier { account, .. }
            | Command::Cancel { account, .. }
            | Command::CancelAll { account, .. }
            | Command::Amend { account, .. } => vec![*account],
            Command::Transfer { from, to, .. } => vec![*from, *to],
            Command::PlaceOrder(new) => vec![new.account],
            _ => Vec::new(),
        };
        self.accounts.extend(mentioned);
    }

    fn balances(&self) -> BTreeMap<(AccountId, AssetId), (u128, u128)> {
        let mut all = BTreeMap::new();
        for &account in &self.accounts {
            for &asset in &self.assets {
                let b = self.ex.balance(account, asset);
                all.insert((account, asset), (b.available.0, b.locked.0));
            }
        }
        all
    }

    fn open_orders(&self) -> Vec<u32> {
        self.accounts
            .iter()
            .map(|&a| self.ex.open_orders(a))
            .collect()
    }

    /// Replays every command into a fresh exchange: same events, same state hash.
    pub fn check_replay(&self) {
        let mut fresh = Exchange::new();
        let mut events = Vec::new();
        for envelope in &self.envelopes {
            let _ = fresh.apply(envelope, &mut events);
        }
        assert!(events == self.events, "replay produced different events");
        assert_eq!(
            fresh.state_hash(),
            self.ex.state_hash(),
            "replay state hash"
        );
    }

    /// `restore(snapshot())` has the same state hash.
    pub fn check_restore(&self) {
        let restored = Exchange::restore(&self.ex.snapshot()).expect("snapshot restores");
        assert_eq!(restored.state_hash(), self.ex.state_hash(), "restored hash");
    }
}

impl Drop for World {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            self.check_replay();
            self.check_restore();
        }
    }
}

fn trades_in(events: &[Event]) -> Vec<TradeView> {
    events
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Trade {
                price,
                qty,
                taker_side,
                maker_order,
                taker_order,
                maker_account,
                taker_account,
                maker_fee,
                taker_fee,
                ..
            } => Some(TradeView {
                price: price.0,
                qty: qty.0,
                taker_side,
                maker_order,
                taker_order,
                maker_account,
                taker_account,
                // In BTC/USDT a lot is LOT_SATS and a lot at one tick is one micro-USDT.
                base_amount: u128::from(qty.0) * LOT_SATS,
                quote_amount: u128::from(qty.0) * u128::from(price.0),
                maker_fee: maker_fee.0,
                taker_fee: taker_fee.0,
            }),
            _ => None,
        })
        .collect()
}

// ---- Commands ----

pub fn list_asset(
    asset: AssetId,
    symbol: &str,
    decimals: u8,
    fees_shared: bool,
    withdrawal_fee: u128,
) -> Command {
    Command::ListAsset {
        asset,
        symbol: symbol.to_owned(),
        decimals,
        fees_shared,
        withdrawal_fee: Amount(withdrawal_fee),
    }
}

pub fn list_market(
    market: MarketId,
    base: AssetId,
    quote: AssetId,
    lot_size: u128,
    tick_size: u128,
) -> Command {
    Command::ListMarket {
        market,
        base,
        quote,
        lot_size: Amount(lot_size),
        tick_size: Amount(tick_size),
        min_notional: Amount(0),
    }
}

pub fn deposit(account: AccountId, asset: AssetId, amount: u128, reference: &str) -> Command {
    Command::Deposit {
        account,
        asset,
        amount: Amount(amount),
        reference: reference.to_owned(),
    }
}

pub fn withdraw_hold(
    request: RequestId,
    account: AccountId,
    asset: AssetId,
    amount: u128,
) -> Command {
    Command::WithdrawHold {
        request,
        account,
        asset,
        amount: Amount(amount),
    }
}

pub fn transfer(
    request: RequestId,
    from: AccountId,
    to: AccountId,
    asset: AssetId,
    amount: u128,
) -> Command {
    Command::Transfer {
        request,
        from,
        to,
        asset,
        amount: Amount(amount),
    }
}

pub fn cancel(account: AccountId, order: OrderId) -> Command {
    Command::Cancel {
        account,
        market: BTC_USDT,
        order: OrderRef::Id(order),
    }
}

pub fn cancel_client(account: AccountId, client_id: &str) -> Command {
    Command::Cancel {
        account,
        market: BTC_USDT,
        order: OrderRef::Client(cid(client_id)),
    }
}

pub fn cancel_all(account: AccountId) -> Command {
    Command::CancelAll {
        account,
        market: BTC_USDT,
    }
}

pub fn amend(account: AccountId, order: OrderId, qty: u64, price: u64) -> Command {
    Command::Amend {
        account,
        market: BTC_USDT,
        order: OrderRef::Id(order),
        qty: Qty(qty),
        price: Price(price),
    }
}

pub fn cid(text: &str) -> ClientOrderId {
    ClientOrderId::new(text).expect("valid client order id")
}

// ---- Orders ----

fn order(account: AccountId, side: Side, kind: OrderKind) -> NewOrder {
    NewOrder {
        account,
        market: BTC_USDT,
        side,
        kind,
        client_id: None,
        stp: SelfTradePrevention::None,
    }
}

/// A good-till-cancelled limit order.
pub fn limit(account: AccountId, side: Side, price: u64, qty: u64) -> NewOrder {
    limit_tif(account, side, price, qty, TimeInForce::Gtc)
}

pub fn limit_tif(
    account: AccountId,
    side: Side,
    price: u64,
    qty: u64,
    tif: TimeInForce,
) -> NewOrder {
    order(
        account,
        side,
        OrderKind::Limit {
            price: Price(price),
            qty: Qty(qty),
            tif,
        },
    )
}

pub fn market(account: AccountId, side: Side, qty: u64) -> NewOrder {
    order(account, side, OrderKind::Market { qty: Qty(qty) })
}

pub fn market_quote(account: AccountId, side: Side, amount: u128) -> NewOrder {
    order(
        account,
        side,
        OrderKind::MarketQuote {
            amount: Amount(amount),
        },
    )
}

/// A good-till-cancelled stop-limit order.
pub fn stop_limit(account: AccountId, side: Side, stop: u64, price: u64, qty: u64) -> NewOrder {
    order(
        account,
        side,
        OrderKind::StopLimit {
            stop: Price(stop),
            price: Price(price),
            qty: Qty(qty),
            tif: TimeInForce::Gtc,
        },
    )
}

/// A good-till-cancelled take-profit-limit order.
pub fn take_profit(account: AccountId, side: Side, stop: u64, price: u64, qty: u64) -> NewOrder {
    order(
        account,
        side,
        OrderKind::TakeProfitLimit {
            stop: Price(stop),
            price: Price(price),
            qty: Qty(qty),
            tif: TimeInForce::Gtc,
        },
    )
}

/// Builder-style tweaks of a new order.
pub trait OrderExt {
    fn client(self, client_id: &str) -> Self;
    fn stp(self, mode: SelfTradePrevention) -> Self;
    fn tif(self, tif: TimeInForce) -> Self;
    fn in_market(self, market: MarketId) -> Self;
}

impl OrderExt for NewOrder {
    fn client(mut self, client_id: &str) -> Self {
        self.client_id = Some(cid(client_id));
        self
    }

    fn stp(mut self, mode: SelfTradePrevention) -> Self {
        self.stp = mode;
        self
    }

    fn tif(mut self, new_tif: TimeInForce) -> Self {
        match &mut self.kind {
            OrderKind::Limit { tif, .. }
            | OrderKind::StopLimit { tif, .. }
            | OrderKind::TakeProfitLimit { tif, .. } => *tif = new_tif,
            OrderKind::Market { .. } | OrderKind::MarketQuote { .. } => {
                panic!("market orders have no time in force")
            }
        }
        self
    }

    fn in_market(mut self, market: MarketId) -> Self {
        self.market = market;
        self
    }
}
