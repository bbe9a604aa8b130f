//! The reference model: the exchange core as a plain reading of its documentation (the doc
//! comments of `command.rs`, `orders.rs`, `fees.rs` and `event.rs`), written without any of the
//! engine's data structures. Resting orders are one `Vec` scanned linearly for price-time
//! priority, waiting stops another `Vec`, balances a `BTreeMap` keyed by (account, asset), and a
//! rejected command is undone by restoring a clone taken before it ran. Slow and obvious on
//! purpose: the property tests in `props.rs` demand that the engine agrees with it event for
//! event.
//!
//! Where the documentation leaves a detail open, the model follows the engine and says so:
//! - `CancelAll` cancels in ascending order id (resting orders and waiting stops alike);
//! - a balance is reported (`BalanceChanged`) when a command moved a non-zero amount in or out
//!   of it, and also when a trade settled into it even if its fee took everything;
//! - a fill-or-kill order counts its own resting orders as liquidity when self-trade
//!   prevention is off, skips them under expire-maker, and stops at them otherwise.

use coss_core::{
    CLIENT_ID_MEMORY, Command, DAO_PAYOUTS, DEFAULT_GATEWAY_FEE_PPM, DEFAULT_HOLDERS_SHARE_PPM,
    DEFAULT_MAX_OPEN_ORDERS, DoneReason, Envelope, Event, EventKind, FEES_HOLDERS, FEES_PLATFORM,
    FIRST_USER_ACCOUNT, FeeTier, GATEWAY, MAX_ASSETS, MAX_MARKETS, MarketStatus, NewOrder,
    OrderKind, OrderRef, Outcome, PPM, RejectReason, SelfTradePrevention, TimeInForce,
    WITHDRAWAL_FEES, default_fee_schedule, fee_for, holders_part,
};
use coss_types::{
    AccountId, Amount, AssetId, ClientOrderId, MarketId, OrderId, Price, Qty, RequestId, Side,
};
use std::collections::{BTreeMap, BTreeSet};

/// Longest deposit reference (`RejectReason::InvalidReference`: 1–128 bytes).
const MAX_REFERENCE_BYTES: usize = 128;
/// Most fee tiers (`RejectReason::InvalidFeeSchedule`: 1–16 tiers).
const MAX_FEE_TIERS: usize = 16;
/// Highest fee rate (`RejectReason::InvalidFeeSchedule`: at most 10%).
const MAX_FEE_PPM: u32 = 100_000;
/// Highest open-order bound (`RejectReason::InvalidLimit`: 1 to 1,000,000).
const MAX_OPEN_ORDER_LIMIT: u32 = 1_000_000;

#[derive(Debug, Clone)]
struct AssetRow {
    symbol: String,
    decimals: u8,
    fees_shared: bool,
    withdrawal_fee: u128,
    /// The smallest withdrawal (0: none).
    withdrawal_minimum: u128,
    deposited: u128,
    withdrawn: u128,
    /// Shareable fees collected since the holders' share was last set.
    shared_fees: u128,
    /// What the holders got of them so far.
    holders_credited: u128,
}

#[derive(Debug, Clone)]
struct MarketRow {
    base: AssetId,
    quote: AssetId,
    lot_size: u128,
    /// Quote units one lot costs per tick of price (`lot × tick / 10^base_decimals`).
    lot_tick_cost: u128,
    min_notional: u128,
    halted: bool,
    last_price: Option<Price>,
}

impl MarketRow {
    fn quote_amount(&self, qty: Qty, price: Price) -> Option<u128> {
        u128::from(qty.0)
            .checked_mul(u128::from(price.0))?
            .checked_mul(self.lot_tick_cost)
    }

    fn base_amount(&self, qty: Qty) -> Option<u128> {
        u128::from(qty.0).checked_mul(self.lot_size)
    }

    /// The asset an order of `side` pays with.
    fn pays_with(&self, side: Side) -> AssetId {
        match side {
            Side::Buy => self.quote,
            Side::Sell => self.base,
        }
    }

    /// What a limit order of `side` for `qty` at `price` keeps locked.
    fn limit_lock(&self, side: Side, qty: Qty, price: Price) -> Option<(AssetId, u128)> {
        let amount = match side {
            Side::Buy => self.quote_amount(qty, price)?,
            Side::Sell => self.base_amount(qty)?,
        };
        Some((self.pays_with(side), amount))
    }
}

/// A resting order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookOrder {
    pub id: OrderId,
    pub market: MarketId,
    pub account: AccountId,
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
    /// Time priority: lower came first.
    arrival: u64,
    stp: SelfTradePrevention,
    post_only: bool,
}

/// A stop or take-profit order waiting for its trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingStop {
    pub id: OrderId,
    pub market: MarketId,
    pub account: AccountId,
    pub side: Side,
    pub stop: Price,
    pub price: Price,
    pub qty: Qty,
    tif: TimeInForce,
    stp: SelfTradePrevention,
    /// Fires when the last price rises to `stop`; otherwise when it falls to it.
    rising: bool,
}

/// A client order id reserved by an account: for its open order, then for a while after.
#[derive(Debug, Clone)]
struct ClientIdRow {
    account: AccountId,
    client_id: ClientOrderId,
    order: OrderId,
    /// When (in the account's count of closed orders) its order closed.
    closed: Option<u64>,
}

#[derive(Debug, Clone)]
struct WithdrawalRow {
    account: AccountId,
    asset: AssetId,
    amount: u128,
    fee: u128,
    pending: bool,
}

/// An order while it takes liquidity.
#[derive(Debug, Clone)]
struct Incoming {
    id: OrderId,
    market: MarketId,
    account: AccountId,
    side: Side,
    /// `None` for market orders.
    limit: Option<Price>,
    /// Lots still wanted; `None` when only a quote amount bounds the order.
    remaining: Option<u64>,
    /// Quote still to spend or to receive, for market orders by quote amount.
    quote_left: Option<u128>,
    /// What the order still holds locked.
    locked: u128,
    stp: SelfTradePrevention,
    rests: bool,
    post_only: bool,
}

/// An open order as a test generator sees it.
#[derive(Debug, Clone, Copy)]
pub struct OpenOrder {
    pub id: OrderId,
    /// In the book (not a waiting stop).
    pub resting: bool,
    pub account: AccountId,
    pub price: Price,
    pub qty: Qty,
}

/// The whole reference exchange.
#[derive(Debug, Clone)]
pub struct Model {
    holders_share_ppm: u32,
    fee_tiers: Vec<FeeTier>,
    max_open_orders: u32,
    gateway_fee_ppm: u32,
    /// Accounts an operator locked.
    locked: BTreeSet<AccountId>,
    assets: BTreeMap<AssetId, AssetRow>,
    markets: BTreeMap<MarketId, MarketRow>,
    /// Opened accounts and their fee tier.
    accounts: BTreeMap<AccountId, u8>,
    /// (available, locked) per account and asset.
    balances: BTreeMap<(AccountId, AssetId), (u128, u128)>,
    book: Vec<BookOrder>,
    stops: Vec<WaitingStop>,
    client_ids: Vec<ClientIdRow>,
    /// Per account, how many of its orders with a client id have closed.
    closed_count: BTreeMap<AccountId, u64>,
    deposit_refs: BTreeSet<String>,
    withdrawals: BTreeMap<RequestId, WithdrawalRow>,
    transfers: BTreeSet<RequestId>,
    next_order_id: u64,
    next_trade_id: u64,
    next_arrival: u64,
    next_seq: u64,
    time_ms: u64,
    // What the running command did so far.
    emitted: Vec<EventKind>,
    touched: Vec<(AccountId, AssetId)>,
    fees: Vec<(AssetId, u128, u128)>,
}

/// Whether a resting order at `maker_price` is acceptable to a taker of `taker_side` with
/// `limit`: a buyer pays at most its limit, a seller gets at least its limit.
fn acceptable(taker_side: Side, maker_price: Price, limit: Price) -> bool {
    match taker_side {
        Side::Buy => maker_price <= limit,
        Side::Sell => maker_price >= limit,
    }
}

/// Whether a waiting order of `kind` and `side` fires on a rising price. A stop-limit buy
/// waits for the price to rise, a stop-limit sell for it to fall; take-profit the other way.
fn fires_rising(kind: &OrderKind, side: Side) -> bool {
    match kind {
        OrderKind::TakeProfitLimit { .. } => side == Side::Sell,
        _ => side == Side::Buy,
    }
}

fn reached(rising: bool, stop: Price, last: Price) -> bool {
    if rising { last >= stop } else { last <= stop }
}

fn valid_symbol(symbol: &str) -> bool {
    (1..=16).contains(&symbol.len())
        && symbol
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    pub fn new() -> Self {
        let accounts = (1..=5).map(|id| (AccountId(id), 0)).collect();
        Model {
            holders_share_ppm: DEFAULT_HOLDERS_SHARE_PPM,
            fee_tiers: default_fee_schedule(),
            max_open_orders: DEFAULT_MAX_OPEN_ORDERS,
            gateway_fee_ppm: DEFAULT_GATEWAY_FEE_PPM,
            locked: BTreeSet::new(),
            assets: BTreeMap::new(),
            markets: BTreeMap::new(),
            accounts,
            balances: BTreeMap::new(),
            book: Vec::new(),
            stops: Vec::new(),
            client_ids: Vec::new(),
            closed_count: BTreeMap::new(),
            deposit_refs: BTreeSet::new(),
            withdrawals: BTreeMap::new(),
            transfers: BTreeSet::new(),
            next_order_id: 1,
            next_trade_id: 1,
            next_arrival: 0,
            next_seq: 1,
            time_ms: 0,
            emitted: Vec::new(),
            touched: Vec::new(),
            fees: Vec::new(),
        }
    }

    // ----- What the tests read -----

    /// Whether an account is locked.
    pub fn locked(&self, account: AccountId) -> bool {
        self.locked.contains(&account)
    }

    /// The gateway's fee rate.
    pub fn gateway_fee_ppm(&self) -> u32 {
        self.gateway_fee_ppm
    }

    /// (available, locked) of an account in an asset.
    pub fn balance(&self, account: AccountId, asset: AssetId) -> (u128, u128) {
        self.balances
            .get(&(account, asset))
            .copied()
            .unwrap_or((0, 0))
    }

    /// Resting orders, in no particular order.
    pub fn resting(&self) -> &[BookOrder] {
        &self.book
    }

    /// Open orders (resting and waiting) of a market, by id.
    pub fn open_orders_in(&self, market: MarketId) -> Vec<OpenOrder> {
        let mut open: Vec<OpenOrder> = self
            .book
            .iter()
            .filter(|o| o.market == market)
            .map(|o| OpenOrder {
                id: o.id,
                resting: true,
                account: o.account,
                price: o.price,
                qty: o.qty,
            })
            .chain(
                self.stops
                    .iter()
                    .filter(|s| s.market == market)
                    .map(|s| OpenOrder {
                        id: s.id,
                        resting: false,
                        account: s.account,
                        price: s.price,
                        qty: s.qty,
                    }),
            )
            .collect();
        open.sort_by_key(|o| o.id);
        open
    }

    /// How many orders (resting or waiting) an account has open.
    pub fn open_orders(&self, account: AccountId) -> u32 {
        let resting = self.book.iter().filter(|o| o.account == account).count();
        let waiting = self.stops.iter().filter(|s| s.account == account).count();
        u32::try_from(resting + waiting).unwrap_or(u32::MAX)
    }

    /// Withdrawals held and not yet confirmed or released.
    pub fn pending_withdrawals(&self) -> Vec<RequestId> {
        self.withdrawals
            .iter()
            .filter(|(_, w)| w.pending)
            .map(|(request, _)| *request)
            .collect()
    }

    pub fn last_price(&self, market: MarketId) -> Option<Price> {
        self.markets.get(&market).and_then(|m| m.last_price)
    }

    pub fn next_order_id(&self) -> u64 {
        self.next_order_id
    }

    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Price levels of one side, best first: (price, total qty, orders).
    /// A total beyond `u64::MAX` lots shows as `u64::MAX`.
    pub fn depth(&self, market: MarketId, side: Side) -> Vec<(Price, u64, u32)> {
        let mut levels: Vec<(Price, u128, u32)> = Vec::new();
        for order in self.queue(market, side) {
            match levels.last_mut() {
                Some(level) if level.0 == order.price => {
                    level.1 += u128::from(order.qty.0);
                    level.2 += 1;
                }
                _ => levels.push((order.price, u128::from(order.qty.0), 1)),
            }
        }
        levels
            .into_iter()
            .map(|(price, qty, orders)| (price, u64::try_from(qty).unwrap_or(u64::MAX), orders))
            .collect()
    }

    /// The model's own ledger invariants: supply per asset and locked funds per balance.
    pub fn check(&self) -> Result<(), String> {
        for (id, asset) in &self.assets {
            let held: u128 = self
                .balances
                .iter()
                .filter(|((_, a), _)| a == id)
                .map(|(_, (available, locked))| available + locked)
                .sum();
            if held != asset.deposited - asset.withdrawn {
                return Err(format!("model: asset {id} holds {held}, supply differs"));
            }
        }
        let mut need: BTreeMap<(AccountId, AssetId), u128> = BTreeMap::new();
        for o in &self.book {
            let (asset, amount) = self.markets[&o.market]
                .limit_lock(o.side, o.qty, o.price)
                .ok_or("model: lock overflow")?;
            *need.entry((o.account, asset)).or_default() += amount;
        }
        for s in &self.stops {
            let (asset, amount) = self.markets[&s.market]
                .limit_lock(s.side, s.qty, s.price)
                .ok_or("model: lock overflow")?;
            *need.entry((s.account, asset)).or_default() += amount;
        }
        for w in self.withdrawals.values().filter(|w| w.pending) {
            *need.entry((w.account, w.asset)).or_default() += w.amount + w.fee;
        }
        for (key, (_, locked)) in &self.balances {
            let want = need.get(key).copied().unwrap_or(0);
            if *locked != want {
                return Err(format!("model: {key:?} locks {locked}, needs {want}"));
            }
        }
        Ok(())
    }

    // ----- Applying commands -----

    /// Applies one command: its outcome and the events it emitted.
    pub fn apply(&mut self, envelope: &Envelope) -> (Outcome, Vec<Event>) {
        self.time_ms = self.time_ms.max(envelope.time_ms);
        let before = self.clone();
        let outcome = self.dispatch(&envelope.command);
        let kinds = match outcome {
            Ok(()) => {
                let mut kinds = std::mem::take(&mut self.emitted);
                for (asset, platform, holders) in std::mem::take(&mut self.fees) {
                    kinds.push(EventKind::FeesCollected {
                        asset,
                        platform: Amount(platform),
                        holders: Amount(holders),
                    });
                }
                for (account, asset) in std::mem::take(&mut self.touched) {
                    let (available, locked) = self.balance(account, asset);
                    kinds.push(EventKind::BalanceChanged {
                        account,
                        asset,
                        available: Amount(available),
                        locked: Amount(locked),
                    });
                }
                kinds
            }
            Err(reason) => {
                // A rejected command has no effect: forget everything it did.
                *self = before;
                vec![EventKind::Rejected { reason }]
            }
        };
        let events = kinds
            .into_iter()
            .map(|kind| {
                let seq = self.next_seq;
                self.next_seq += 1;
                Event {
                    seq,
                    time_ms: self.time_ms,
                    kind,
                }
            })
            .collect();
        (outcome, events)
    }

    fn dispatch(&mut self, command: &Command) -> Outcome {
        match command {
            Command::ListAsset {
                asset,
                symbol,
                decimals,
                fees_shared,
                withdrawal_fee,
            } => self.list_asset(*asset, symbol, *decimals, *fees_shared, *withdrawal_fee),
            Command::SetWithdrawalFee { asset, fee } => {
                let row = self
                    .assets
                    .get_mut(asset)
                    .ok_or(RejectReason::UnknownAsset)?;
                row.withdrawal_fee = fee.0;
                self.emit(EventKind::WithdrawalFeeSet {
                    asset: *asset,
                    fee: *fee,
                });
                Ok(())
            }
            Command::SetWithdrawalMinimum { asset, minimum } => {
                let row = self
                    .assets
                    .get_mut(asset)
                    .ok_or(RejectReason::UnknownAsset)?;
                if minimum.0 == 0 {
                    return Err(RejectReason::InvalidAmount);
                }
                row.withdrawal_minimum = minimum.0;
                self.emit(EventKind::WithdrawalMinimumSet {
                    asset: *asset,
                    minimum: *minimum,
                });
                Ok(())
            }
            Command::ListMarket {
                market,
                base,
                quote,
                lot_size,
                tick_size,
                min_notional,
            } => self.list_market(*market, *base, *quote, *lot_size, *tick_size, *min_notional),
            Command::SetMarketStatus { market, status } => {
                let row = self
                    .markets
                    .get_mut(market)
                    .ok_or(RejectReason::UnknownMarket)?;
                row.halted = *status != MarketStatus::Trading;
                self.emit(EventKind::MarketStatusChanged {
                    market: *market,
                    status: *status,
                });
                Ok(())
            }
            Command::SetFeeSchedule { tiers } => {
                if tiers.is_empty()
                    || tiers.len() > MAX_FEE_TIERS
                    || tiers
                        .iter()
                        .any(|t| t.maker_ppm > MAX_FEE_PPM || t.taker_ppm > MAX_FEE_PPM)
                {
                    return Err(RejectReason::InvalidFeeSchedule);
                }
                self.fee_tiers.clone_from(tiers);
                self.emit(EventKind::FeeScheduleSet {
                    tiers: tiers.clone(),
                });
                Ok(())
            }
            Command::SetAccountFeeTier { account, tier } => {
                if usize::from(*tier) >= self.fee_tiers.len() {
                    return Err(RejectReason::UnknownFeeTier);
                }
                self.accounts.insert(*account, *tier);
                self.emit(EventKind::AccountFeeTierSet {
                    account: *account,
                    tier: *tier,
                });
                Ok(())
            }
            Command::SetHoldersShare { share_ppm } => {
                if *share_ppm > PPM {
                    return Err(RejectReason::InvalidShare);
                }
                self.holders_share_ppm = *share_ppm;
                // Each rate keeps its own running total.
                for asset in self.assets.values_mut() {
                    asset.shared_fees = 0;
                    asset.holders_credited = 0;
                }
                self.emit(EventKind::HoldersShareSet {
                    share_ppm: *share_ppm,
                });
                Ok(())
            }
            Command::SetDaoSchedule(_)
            | Command::CloseWeek { .. }
            | Command::AddChainHoldings { .. }
            | Command::SealWeek { .. }
            | Command::PayWeek { .. } => {
                panic!("the universe generates no DAO commands; tests/spec/dao.rs covers them")
            }
            Command::SetOpenOrderLimit { max_open_orders } => {
                if *max_open_orders == 0 || *max_open_orders > MAX_OPEN_ORDER_LIMIT {
                    return Err(RejectReason::InvalidLimit);
                }
                self.max_open_orders = *max_open_orders;
                self.emit(EventKind::OpenOrderLimitSet {
                    max_open_orders: *max_open_orders,
                });
                Ok(())
            }
            Command::SetAccountLock { account, locked } => {
                if *account < FIRST_USER_ACCOUNT {
                    return Err(RejectReason::SystemAccount);
                }
                self.accounts.entry(*account).or_insert(0);
                if *locked {
                    // Every open order goes, market by market, by ascending id.
                    let markets: Vec<MarketId> = self.markets.keys().copied().collect();
                    for market in markets {
                        let mut ids: Vec<OrderId> = self
                            .open_orders_in(market)
                            .into_iter()
                            .filter(|o| o.account == *account)
                            .map(|o| o.id)
                            .collect();
                        ids.sort();
                        for id in ids {
                            self.cancel_open(id);
                        }
                    }
                    self.locked.insert(*account);
                } else {
                    self.locked.remove(account);
                }
                self.emit(EventKind::AccountLockSet {
                    account: *account,
                    locked: *locked,
                });
                Ok(())
            }
            Command::SetGatewayFee { fee_ppm } => {
                if *fee_ppm > MAX_FEE_PPM {
                    return Err(RejectReason::InvalidFee);
                }
                self.gateway_fee_ppm = *fee_ppm;
                self.emit(EventKind::GatewayFeeSet { fee_ppm: *fee_ppm });
                Ok(())
            }
            Command::Deposit {
                account,
                asset,
                amount,
                reference,
            } => self.deposit(*account, *asset, *amount, reference),
            Command::WithdrawHold {
                request,
                account,
                asset,
                amount,
            } => self.withdraw_hold(*request, *account, *asset, *amount),
            Command::WithdrawConfirm { request } => self.withdraw_finish(*request, true),
            Command::WithdrawRelease { request } => self.withdraw_finish(*request, false),
            Command::Transfer {
                request,
                from,
                to,
                asset,
                amount,
            } => self.transfer(*request, *from, *to, *asset, *amount),
            Command::GatewaySettle {
                request,
                merchant,
                asset,
                amount,
                fee_ppm,
            } => self.gateway_settle(*request, *merchant, *asset, *amount, *fee_ppm),
            Command::PlaceOrder(new) => self.place(new),
            Command::Cancel {
                account,
                market,
                order,
            } => self.cancel(*account, *market, *order),
            Command::CancelAll { account, market } => self.cancel_all(*account, *market),
            Command::Amend {
                account,
                market,
                order,
                qty,
                price,
            } => self.amend(*account, *market, *order, *qty, *price),
        }
    }

    fn emit(&mut self, kind: EventKind) {
        self.emitted.push(kind);
    }

    // ----- Balances -----

    fn touch(&mut self, account: AccountId, asset: AssetId) -> &mut (u128, u128) {
        if !self.touched.contains(&(account, asset)) {
            self.touched.push((account, asset));
        }
        self.balances.entry((account, asset)).or_default()
    }

    fn available(&self, account: AccountId, asset: AssetId) -> u128 {
        self.balance(account, asset).0
    }

    /// Adds to available. Zero moves nothing and reports nothing.
    fn credit(&mut self, account: AccountId, asset: AssetId, amount: u128) {
        if amount > 0 {
            let cell = self.touch(account, asset);
            cell.0 = cell.0.checked_add(amount).expect("model: credit overflow");
        }
    }

    /// Available → locked.
    fn lock(&mut self, account: AccountId, asset: AssetId, amount: u128) {
        if amount > 0 {
            let cell = self.touch(account, asset);
            cell.0 = cell.0.checked_sub(amount).expect("model: lock > available");
            cell.1 += amount;
        }
    }

    /// Locked → available.
    fn unlock(&mut self, account: AccountId, asset: AssetId, amount: u128) {
        if amount > 0 {
            let cell = self.touch(account, asset);
            cell.1 = cell.1.checked_sub(amount).expect("model: unlock > locked");
            cell.0 += amount;
        }
    }

    /// Locked funds leave the account (paid to someone else, or to the outside world).
    fn pay_locked(&mut self, account: AccountId, asset: AssetId, amount: u128) {
        if amount > 0 {
            let cell = self.touch(account, asset);
            cell.1 = cell.1.checked_sub(amount).expect("model: pay > locked");
        }
    }

    /// Available funds leave the account.
    fn pay_available(&mut self, account: AccountId, asset: AssetId, amount: u128) {
        if amount > 0 {
            let cell = self.touch(account, asset);
            cell.0 = cell.0.checked_sub(amount).expect("model: pay > available");
        }
    }

    // ----- Money commands -----

    fn deposit(
        &mut self,
        account: AccountId,
        asset: AssetId,
        amount: Amount,
        reference: &str,
    ) -> Outcome {
        let row = self.assets.get(&asset).ok_or(RejectReason::UnknownAsset)?;
        if amount.0 == 0 {
            return Err(RejectReason::InvalidAmount);
        }
        if reference.is_empty() || reference.len() > MAX_REFERENCE_BYTES {
            return Err(RejectReason::InvalidReference);
        }
        if self.deposit_refs.contains(reference) {
            return Err(RejectReason::DuplicateReference);
        }
        let supply = row
            .deposited
            .checked_add(amount.0)
            .ok_or(RejectReason::Overflow)?;
        self.assets.get_mut(&asset).expect("listed").deposited = supply;
        self.deposit_refs.insert(reference.to_owned());
        self.accounts.entry(account).or_insert(0);
        self.emit(EventKind::Deposited {
            account,
            asset,
            amount,
            reference: reference.to_owned(),
        });
        self.credit(account, asset, amount.0);
        Ok(())
    }

    fn request_used(&self, request: RequestId) -> bool {
        self.withdrawals.contains_key(&request) || self.transfers.contains(&request)
    }

    fn withdraw_hold(
        &mut self,
        request: RequestId,
        account: AccountId,
        asset: AssetId,
        amount: Amount,
    ) -> Outcome {
        let row = self.assets.get(&asset).ok_or(RejectReason::UnknownAsset)?;
        if amount.0 == 0 {
            return Err(RejectReason::InvalidAmount);
        }
        if amount.0 < row.withdrawal_minimum {
            return Err(RejectReason::BelowMinimum);
        }
        if self.request_used(request) {
            return Err(RejectReason::DuplicateRequest);
        }
        let fee = row.withdrawal_fee;
        let total = amount.0.checked_add(fee).ok_or(RejectReason::Overflow)?;
        if self.locked.contains(&account) {
            return Err(RejectReason::AccountLocked);
        }
        if self.available(account, asset) < total {
            return Err(RejectReason::InsufficientBalance);
        }
        self.withdrawals.insert(
            request,
            WithdrawalRow {
                account,
                asset,
                amount: amount.0,
                fee,
                pending: true,
            },
        );
        self.emit(EventKind::WithdrawalHeld {
            request,
            account,
            asset,
            amount,
            fee: Amount(fee),
        });
        self.lock(account, asset, total);
        Ok(())
    }

    fn withdraw_finish(&mut self, request: RequestId, confirm: bool) -> Outcome {
        let w = self
            .withdrawals
            .get(&request)
            .ok_or(RejectReason::UnknownRequest)?
            .clone();
        if !w.pending {
            return Err(RejectReason::RequestNotPending);
        }
        self.withdrawals.get_mut(&request).expect("known").pending = false;
        let (amount, fee) = (Amount(w.amount), Amount(w.fee));
        if confirm {
            self.emit(EventKind::WithdrawalConfirmed {
                request,
                account: w.account,
                asset: w.asset,
                amount,
                fee,
            });
            self.pay_locked(w.account, w.asset, w.amount + w.fee);
            self.credit(WITHDRAWAL_FEES, w.asset, w.fee);
            self.assets.get_mut(&w.asset).expect("listed").withdrawn += w.amount;
        } else {
            self.emit(EventKind::WithdrawalReleased {
                request,
                account: w.account,
                asset: w.asset,
                amount,
                fee,
            });
            self.unlock(w.account, w.asset, w.amount + w.fee);
        }
        Ok(())
    }

    fn transfer(
        &mut self,
        request: RequestId,
        from: AccountId,
        to: AccountId,
        asset: AssetId,
        amount: Amount,
    ) -> Outcome {
        if !self.assets.contains_key(&asset) {
            return Err(RejectReason::UnknownAsset);
        }
        if amount.0 == 0 {
            return Err(RejectReason::InvalidAmount);
        }
        if from == to {
            return Err(RejectReason::SameAccount);
        }
        if from == FEES_HOLDERS || from == DAO_PAYOUTS || to == DAO_PAYOUTS {
            return Err(RejectReason::SystemAccount);
        }
        if self.request_used(request) {
            return Err(RejectReason::DuplicateRequest);
        }
        if self.locked.contains(&from) {
            return Err(RejectReason::AccountLocked);
        }
        if self.available(from, asset) < amount.0 {
            return Err(RejectReason::InsufficientBalance);
        }
        self.accounts.entry(to).or_insert(0);
        self.transfers.insert(request);
        self.emit(EventKind::Transferred {
            request,
            from,
            to,
            asset,
            amount,
        });
        self.pay_available(from, asset, amount.0);
        self.credit(to, asset, amount.0);
        Ok(())
    }

    fn gateway_settle(
        &mut self,
        request: RequestId,
        merchant: AccountId,
        asset: AssetId,
        amount: Amount,
        fee_ppm: u32,
    ) -> Outcome {
        if !self.assets.contains_key(&asset) {
            return Err(RejectReason::UnknownAsset);
        }
        if amount.0 == 0 {
            return Err(RejectReason::InvalidAmount);
        }
        if fee_ppm > MAX_FEE_PPM {
            return Err(RejectReason::InvalidFee);
        }
        if merchant < FIRST_USER_ACCOUNT {
            return Err(RejectReason::SystemAccount);
        }
        if self.request_used(request) {
            return Err(RejectReason::DuplicateRequest);
        }
        if self.available(GATEWAY, asset) < amount.0 {
            return Err(RejectReason::InsufficientBalance);
        }
        let fee = fee_for(amount.0, fee_ppm);
        self.accounts.entry(merchant).or_insert(0);
        self.transfers.insert(request);
        self.emit(EventKind::GatewaySettled {
            request,
            merchant,
            asset,
            amount,
            fee: Amount(fee),
        });
        self.pay_available(GATEWAY, asset, amount.0);
        self.credit(merchant, asset, amount.0 - fee);
        self.collect_fee(asset, fee);
        Ok(())
    }

    // ----- Listings -----

    fn list_asset(
        &mut self,
        asset: AssetId,
        symbol: &str,
        decimals: u8,
        fees_shared: bool,
        withdrawal_fee: Amount,
    ) -> Outcome {
        if asset.0 >= MAX_ASSETS {
            return Err(RejectReason::UnknownAsset);
        }
        if self.assets.contains_key(&asset) {
            return Err(RejectReason::AssetExists);
        }
        if !valid_symbol(symbol) || self.assets.values().any(|a| a.symbol == symbol) {
            return Err(RejectReason::InvalidSymbol);
        }
        if decimals > 30 {
            return Err(RejectReason::InvalidDecimals);
        }
        self.assets.insert(
            asset,
            AssetRow {
                symbol: symbol.to_owned(),
                decimals,
                fees_shared,
                withdrawal_fee: withdrawal_fee.0,
                withdrawal_minimum: 0,
                deposited: 0,
                withdrawn: 0,
                shared_fees: 0,
                holders_credited: 0,
            },
        );
        self.emit(EventKind::AssetListed {
            asset,
            symbol: symbol.to_owned(),
            decimals,
            fees_shared,
            withdrawal_fee,
        });
        Ok(())
    }

    fn list_market(
        &mut self,
        market: MarketId,
        base: AssetId,
        quote: AssetId,
        lot_size: Amount,
        tick_size: Amount,
        min_notional: Amount,
    ) -> Outcome {
        if market.0 >= MAX_MARKETS {
            return Err(RejectReason::UnknownMarket);
        }
        if self.markets.contains_key(&market) {
            return Err(RejectReason::MarketExists);
        }
        let base_decimals = self
            .assets
            .get(&base)
            .ok_or(RejectReason::UnknownAsset)?
            .decimals;
        if !self.assets.contains_key(&quote) {
            return Err(RejectReason::UnknownAsset);
        }
        if base == quote || lot_size.0 == 0 || tick_size.0 == 0 {
            return Err(RejectReason::InvalidMarket);
        }
        let one_base_unit = 10u128.pow(u32::from(base_decimals));
        let per_lot_per_tick = lot_size
            .0
            .checked_mul(tick_size.0)
            .ok_or(RejectReason::InvalidMarket)?;
        if per_lot_per_tick % one_base_unit != 0 {
            return Err(RejectReason::InvalidMarket);
        }
        self.markets.insert(
            market,
            MarketRow {
                base,
                quote,
                lot_size: lot_size.0,
                lot_tick_cost: per_lot_per_tick / one_base_unit,
                min_notional: min_notional.0,
                halted: false,
                last_price: None,
            },
        );
        self.emit(EventKind::MarketListed {
            market,
            base,
            quote,
            lot_size,
            tick_size,
            min_notional,
        });
        Ok(())
    }

    // ----- Orders -----

    /// A market's orders of one side in priority order: best price, then first come.
    fn queue(&self, market: MarketId, side: Side) -> Vec<BookOrder> {
        let mut orders: Vec<BookOrder> = self
            .book
            .iter()
            .filter(|o| o.market == market && o.side == side)
            .cloned()
            .collect();
        orders.sort_by(|a, b| {
            let by_price = match side {
                Side::Buy => b.price.cmp(&a.price),
                Side::Sell => a.price.cmp(&b.price),
            };
            by_price.then(a.arrival.cmp(&b.arrival))
        });
        orders
    }

    fn fee_rate(&self, account: AccountId, maker: bool) -> u32 {
        // An account keeps its tier index when the schedule shrinks: it gets the last tier.
        let tier = usize::from(self.accounts.get(&account).copied().unwrap_or(0))
            .min(self.fee_tiers.len() - 1);
        let tier = self.fee_tiers[tier];
        if maker {
            tier.maker_ppm
        } else {
            tier.taker_ppm
        }
    }

    fn client_id_taken(&self, account: AccountId, client_id: ClientOrderId) -> bool {
        self.client_ids
            .iter()
            .any(|row| row.account == account && row.client_id == client_id)
    }

    fn next_arrival(&mut self) -> u64 {
        self.next_arrival += 1;
        self.next_arrival
    }

    /// Whether a fill-or-kill order would fill completely right now.
    fn fills_completely(
        &self,
        market: MarketId,
        account: AccountId,
        side: Side,
        limit: Price,
        qty: Qty,
        stp: SelfTradePrevention,
    ) -> bool {
        let mut liquidity = 0u64;
        for maker in self.queue(market, side.opposite()) {
            if !acceptable(side, maker.price, limit) {
                break;
            }
            if maker.account == account {
                match stp {
                    SelfTradePrevention::None => {}
                    SelfTradePrevention::ExpireMaker => continue,
                    SelfTradePrevention::ExpireTaker | SelfTradePrevention::ExpireBoth => break,
                }
            }
            liquidity = liquidity.saturating_add(maker.qty.0);
            if liquidity >= qty.0 {
                return true;
            }
        }
        false
    }

    fn place(&mut self, new: &NewOrder) -> Outcome {
        use RejectReason as R;
        if new.account < FIRST_USER_ACCOUNT {
            return Err(R::SystemAccount);
        }
        let market = self
            .markets
            .get(&new.market)
            .ok_or(R::UnknownMarket)?
            .clone();
        if market.halted {
            return Err(R::MarketHalted);
        }
        if !self.accounts.contains_key(&new.account) {
            return Err(R::InsufficientBalance);
        }
        if self.locked.contains(&new.account) {
            return Err(R::AccountLocked);
        }
        let may_rest = match new.kind {
            OrderKind::Limit { tif, .. } => matches!(tif, TimeInForce::Gtc | TimeInForce::PostOnly),
            OrderKind::StopLimit { .. } | OrderKind::TakeProfitLimit { .. } => true,
            OrderKind::Market { .. } | OrderKind::MarketQuote { .. } => false,
        };
        if may_rest && self.open_orders(new.account) >= self.max_open_orders {
            return Err(R::TooManyOpenOrders);
        }
        if let Some(client_id) = new.client_id
            && self.client_id_taken(new.account, client_id)
        {
            return Err(R::DuplicateClientOrderId);
        }
        let best_opposite = self
            .queue(new.market, new.side.opposite())
            .first()
            .map(|o| o.price);
        let limit_lock = |price: Price, qty: Qty| -> Result<(AssetId, u128), RejectReason> {
            if qty.0 == 0 {
                return Err(R::InvalidQuantity);
            }
            if price.0 == 0 {
                return Err(R::InvalidPrice);
            }
            let value = market.quote_amount(qty, price).ok_or(R::Overflow)?;
            if value < market.min_notional {
                return Err(R::BelowMinNotional);
            }
            market.limit_lock(new.side, qty, price).ok_or(R::Overflow)
        };
        let (lock_asset, lock_amount) = match new.kind {
            OrderKind::Limit { price, qty, tif } => {
                let lock = limit_lock(price, qty)?;
                if tif == TimeInForce::PostOnly
                    && best_opposite.is_some_and(|best| acceptable(new.side, best, price))
                {
                    return Err(R::PostOnlyWouldTrade);
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
                    return Err(R::InvalidTimeInForce);
                }
                if stop.0 == 0 {
                    return Err(R::InvalidPrice);
                }
                let lock = limit_lock(price, qty)?;
                let rising = fires_rising(&new.kind, new.side);
                if market
                    .last_price
                    .is_some_and(|last| reached(rising, stop, last))
                {
                    return Err(R::WouldTriggerImmediately);
                }
                lock
            }
            OrderKind::Market { qty } => {
                if qty.0 == 0 {
                    return Err(R::InvalidQuantity);
                }
                if let Some(best) = best_opposite {
                    let value = market.quote_amount(qty, best).ok_or(R::Overflow)?;
                    if value < market.min_notional {
                        return Err(R::BelowMinNotional);
                    }
                }
                match new.side {
                    Side::Sell => (market.base, market.base_amount(qty).ok_or(R::Overflow)?),
                    // Its cost is unknown until it matches: its budget is all it has.
                    Side::Buy => (market.quote, self.available(new.account, market.quote)),
                }
            }
            OrderKind::MarketQuote { amount } => {
                if amount.0 == 0 {
                    return Err(R::InvalidAmount);
                }
                if amount.0 < market.min_notional {
                    return Err(R::BelowMinNotional);
                }
                match new.side {
                    Side::Buy => (market.quote, amount.0),
                    Side::Sell => (market.base, self.available(new.account, market.base)),
                }
            }
        };
        if lock_amount == 0 || self.available(new.account, lock_asset) < lock_amount {
            return Err(R::InsufficientBalance);
        }

        // Accepted.
        let id = OrderId(self.next_order_id);
        self.next_order_id += 1;
        self.emit(EventKind::OrderAccepted {
            order: id,
            new: *new,
        });
        if let Some(client_id) = new.client_id {
            self.client_ids.push(ClientIdRow {
                account: new.account,
                client_id,
                order: id,
                closed: None,
            });
        }
        let (limit, remaining, quote_left, rests, post_only) = match new.kind {
            OrderKind::Limit { price, qty, tif } => {
                if tif == TimeInForce::Fok
                    && !self.fills_completely(
                        new.market,
                        new.account,
                        new.side,
                        price,
                        qty,
                        new.stp,
                    )
                {
                    self.done(id, new.account, new.market, DoneReason::Expired, qty);
                    return Ok(());
                }
                let rests = matches!(tif, TimeInForce::Gtc | TimeInForce::PostOnly);
                (
                    Some(price),
                    Some(qty.0),
                    None,
                    rests,
                    tif == TimeInForce::PostOnly,
                )
            }
            OrderKind::Market { qty } => (None, Some(qty.0), None, false, false),
            OrderKind::MarketQuote { amount } => (None, None, Some(amount.0), false, false),
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
                self.lock(new.account, lock_asset, lock_amount);
                self.stops.push(WaitingStop {
                    id,
                    market: new.market,
                    account: new.account,
                    side: new.side,
                    stop,
                    price,
                    qty,
                    tif,
                    stp: new.stp,
                    rising: fires_rising(&new.kind, new.side),
                });
                return Ok(());
            }
        };
        self.lock(new.account, lock_asset, lock_amount);
        let trades_before = self.next_trade_id;
        self.take_liquidity(Incoming {
            id,
            market: new.market,
            account: new.account,
            side: new.side,
            limit,
            remaining,
            quote_left,
            locked: lock_amount,
            stp: new.stp,
            rests,
            post_only,
        });
        if self.next_trade_id != trades_before {
            self.fire_stops(new.market);
        }
        Ok(())
    }

    /// Matches an incoming order against the book, then rests or ends it. Returns whether
    /// it rests.
    fn take_liquidity(&mut self, mut taker: Incoming) -> bool {
        let market = self.markets[&taker.market].clone();
        let mut self_trade_expired = false;
        // A market order by quote amount is filled when it traded and what is left of its
        // amount cannot pay for one more lot; running out of funds or liquidity expires it.
        let mut target_reached = false;
        let mut traded = false;
        while taker.remaining != Some(0) {
            let Some(maker) = self
                .queue(taker.market, taker.side.opposite())
                .into_iter()
                .next()
            else {
                break;
            };
            if let Some(limit) = taker.limit
                && !acceptable(taker.side, maker.price, limit)
            {
                break;
            }
            if maker.account == taker.account && taker.stp != SelfTradePrevention::None {
                if matches!(
                    taker.stp,
                    SelfTradePrevention::ExpireMaker | SelfTradePrevention::ExpireBoth
                ) {
                    self.remove_resting(maker.id, DoneReason::SelfTradePrevented);
                }
                if taker.stp == SelfTradePrevention::ExpireMaker {
                    continue;
                }
                self_trade_expired = true;
                break;
            }
            let mut qty = maker.qty.0.min(taker.remaining.unwrap_or(u64::MAX));
            if taker.limit.is_none() {
                // A market order takes only what its funds (and its quote target) cover.
                let lot_cost = u128::from(maker.price.0) * market.lot_tick_cost;
                let mut affordable = match taker.side {
                    Side::Buy => taker.locked / lot_cost,
                    Side::Sell => taker.locked / market.lot_size,
                };
                if let Some(quote_left) = taker.quote_left {
                    affordable = affordable.min(quote_left / lot_cost);
                }
                qty = qty.min(u64::try_from(affordable).unwrap_or(u64::MAX));
                if qty == 0 {
                    target_reached = taker.quote_left.is_some_and(|left| left < lot_cost);
                    break;
                }
            }
            self.trade(&mut taker, &maker, qty, &market);
            traded = true;
        }
        if taker.quote_left == Some(0) {
            target_reached = true;
        }
        let remaining = taker.remaining.unwrap_or(0);
        if taker.rests && !self_trade_expired && remaining > 0 {
            let price = taker.limit.expect("resting orders have a limit");
            let (asset, need) = market
                .limit_lock(taker.side, Qty(remaining), price)
                .expect("model: resting lock overflow");
            let excess = taker
                .locked
                .checked_sub(need)
                .expect("model: resting order under-locked");
            self.unlock(taker.account, asset, excess);
            let arrival = self.next_arrival();
            self.book.push(BookOrder {
                id: taker.id,
                market: taker.market,
                account: taker.account,
                side: taker.side,
                price,
                qty: Qty(remaining),
                arrival,
                stp: taker.stp,
                post_only: taker.post_only,
            });
            return true;
        }
        self.unlock(taker.account, market.pays_with(taker.side), taker.locked);
        let reason = if self_trade_expired {
            DoneReason::SelfTradePrevented
        } else if taker.remaining == Some(0) || (traded && target_reached) {
            DoneReason::Filled
        } else {
            DoneReason::Expired
        };
        self.done(
            taker.id,
            taker.account,
            taker.market,
            reason,
            Qty(remaining),
        );
        false
    }

    /// One execution of `qty` lots at the maker's price, settled at once.
    fn trade(&mut self, taker: &mut Incoming, maker: &BookOrder, qty: u64, market: &MarketRow) {
        let at = self
            .book
            .iter()
            .position(|o| o.id == maker.id)
            .expect("maker rests");
        self.book[at].qty.0 -= qty;
        let maker_done = self.book[at].qty.0 == 0;
        if maker_done {
            self.book.remove(at);
        }
        let lots = Qty(qty);
        let base = market.base_amount(lots).expect("model: base overflow");
        let quote = market
            .quote_amount(lots, maker.price)
            .expect("model: quote overflow");
        self.markets
            .get_mut(&taker.market)
            .expect("listed")
            .last_price = Some(maker.price);
        let trade = self.next_trade_id;
        self.next_trade_id += 1;
        let (buyer, seller) = match taker.side {
            Side::Buy => (taker.account, maker.account),
            Side::Sell => (maker.account, taker.account),
        };
        let buyer_is_maker = taker.side == Side::Sell;
        let buyer_fee = fee_for(base, self.fee_rate(buyer, buyer_is_maker));
        let seller_fee = fee_for(quote, self.fee_rate(seller, !buyer_is_maker));
        let (maker_fee, taker_fee) = if buyer_is_maker {
            (buyer_fee, seller_fee)
        } else {
            (seller_fee, buyer_fee)
        };
        self.emit(EventKind::Trade {
            trade,
            market: taker.market,
            price: maker.price,
            qty: lots,
            taker_side: taker.side,
            maker_order: maker.id,
            taker_order: taker.id,
            maker_account: maker.account,
            taker_account: taker.account,
            maker_fee: Amount(maker_fee),
            taker_fee: Amount(taker_fee),
        });
        // The taker pays from its lock, the maker from its own.
        match taker.side {
            Side::Buy => {
                // What the taker reserved for these lots: at its limit, or at cost.
                let reserved = match taker.limit {
                    Some(limit) => market
                        .quote_amount(lots, limit)
                        .expect("model: quote overflow"),
                    None => quote,
                };
                taker.locked -= reserved;
                self.pay_locked(taker.account, market.quote, quote);
                // A better price than its limit comes back to the buyer at once.
                self.unlock(taker.account, market.quote, reserved - quote);
                self.pay_locked(maker.account, market.base, base);
            }
            Side::Sell => {
                taker.locked -= base;
                self.pay_locked(taker.account, market.base, base);
                self.pay_locked(maker.account, market.quote, quote);
            }
        }
        if let Some(remaining) = taker.remaining.as_mut() {
            *remaining -= qty;
        }
        if let Some(quote_left) = taker.quote_left.as_mut() {
            *quote_left -= quote;
        }
        // Each side receives what it bought less its fee, reported even if the fee took it all.
        self.touch(buyer, market.base);
        self.credit(buyer, market.base, base - buyer_fee);
        self.touch(seller, market.quote);
        self.credit(seller, market.quote, quote - seller_fee);
        self.collect_fee(market.base, buyer_fee);
        self.collect_fee(market.quote, seller_fee);
        if maker_done {
            self.done(
                maker.id,
                maker.account,
                taker.market,
                DoneReason::Filled,
                Qty(0),
            );
        }
    }

    /// Splits a trading fee: the holders' cumulative share rounds down, the platform keeps the
    /// rest.
    fn collect_fee(&mut self, asset: AssetId, fee: u128) {
        if fee == 0 {
            return;
        }
        let share = self.holders_share_ppm;
        let row = self.assets.get_mut(&asset).expect("listed");
        let holders = if row.fees_shared {
            row.shared_fees += fee;
            let due = holders_part(row.shared_fees, share);
            let part = due - row.holders_credited;
            row.holders_credited = due;
            part
        } else {
            0
        };
        let platform = fee - holders;
        // Fee credits are reported by `FeesCollected`, not by `BalanceChanged`.
        for (account, amount) in [(FEES_HOLDERS, holders), (FEES_PLATFORM, platform)] {
            let cell = self.balances.entry((account, asset)).or_default();
            cell.0 = cell.0.checked_add(amount).expect("model: credit overflow");
        }
        match self.fees.iter_mut().find(|f| f.0 == asset) {
            Some(entry) => {
                entry.1 += platform;
                entry.2 += holders;
            }
            None => self.fees.push((asset, platform, holders)),
        }
    }

    /// Takes a resting order out of the book, returning its funds.
    fn remove_resting(&mut self, id: OrderId, reason: DoneReason) {
        let at = self
            .book
            .iter()
            .position(|o| o.id == id)
            .expect("order rests");
        let order = self.book.remove(at);
        let (asset, amount) = self.markets[&order.market]
            .limit_lock(order.side, order.qty, order.price)
            .expect("model: lock overflow");
        self.unlock(order.account, asset, amount);
        self.done(id, order.account, order.market, reason, order.qty);
    }

    /// An order closed: its event, and its client id joins the account's recent memory.
    fn done(
        &mut self,
        order: OrderId,
        account: AccountId,
        market: MarketId,
        reason: DoneReason,
        unfilled: Qty,
    ) {
        self.emit(EventKind::OrderDone {
            order,
            account,
            market,
            reason,
            unfilled,
        });
        let Some(row) = self
            .client_ids
            .iter_mut()
            .find(|row| row.order == order && row.closed.is_none())
        else {
            return;
        };
        let count = self.closed_count.entry(account).or_default();
        *count += 1;
        row.closed = Some(*count);
        let closed = self
            .client_ids
            .iter()
            .filter(|row| row.account == account && row.closed.is_some())
            .count();
        if closed > CLIENT_ID_MEMORY {
            let oldest = self
                .client_ids
                .iter()
                .enumerate()
                .filter(|(_, row)| row.account == account)
                .filter_map(|(at, row)| row.closed.map(|c| (c, at)))
                .min()
                .map(|(_, at)| at)
                .expect("some closed");
            self.client_ids.remove(oldest);
        }
    }

    /// Fires waiting orders whose trigger the last price reached, one at a time: rising ones
    /// first (lowest stop, then lowest id), then falling ones (highest stop, then lowest id),
    /// re-reading the last price after each.
    fn fire_stops(&mut self, market: MarketId) {
        loop {
            let Some(last) = self.markets[&market].last_price else {
                return;
            };
            let rising = self
                .stops
                .iter()
                .filter(|s| s.market == market && s.rising && reached(true, s.stop, last))
                .min_by_key(|s| (s.stop, s.id));
            let falling = self
                .stops
                .iter()
                .filter(|s| s.market == market && !s.rising && reached(false, s.stop, last))
                .min_by_key(|s| (std::cmp::Reverse(s.stop), s.id));
            let Some(stop) = rising.or(falling).cloned() else {
                return;
            };
            self.stops.retain(|s| s.id != stop.id);
            self.emit(EventKind::OrderTriggered {
                order: stop.id,
                market,
                last_price: last,
            });
            let (asset, locked) = self.markets[&market]
                .limit_lock(stop.side, stop.qty, stop.price)
                .expect("model: lock overflow");
            if stop.tif == TimeInForce::Fok
                && !self.fills_completely(
                    market,
                    stop.account,
                    stop.side,
                    stop.price,
                    stop.qty,
                    stop.stp,
                )
            {
                self.unlock(stop.account, asset, locked);
                self.done(stop.id, stop.account, market, DoneReason::Expired, stop.qty);
                continue;
            }
            self.take_liquidity(Incoming {
                id: stop.id,
                market,
                account: stop.account,
                side: stop.side,
                limit: Some(stop.price),
                remaining: Some(stop.qty.0),
                quote_left: None,
                locked,
                stp: stop.stp,
                rests: stop.tif == TimeInForce::Gtc,
                post_only: false,
            });
        }
    }

    /// The open order of `account` in `market` that `order` names.
    fn resolve(&self, account: AccountId, market: MarketId, order: OrderRef) -> Option<OrderId> {
        let id = match order {
            OrderRef::Id(id) => id,
            OrderRef::Client(client_id) => {
                self.client_ids
                    .iter()
                    .find(|row| row.account == account && row.client_id == client_id)?
                    .order
            }
        };
        let owner = self
            .book
            .iter()
            .find(|o| o.market == market && o.id == id)
            .map(|o| o.account)
            .or_else(|| {
                self.stops
                    .iter()
                    .find(|s| s.market == market && s.id == id)
                    .map(|s| s.account)
            })?;
        (owner == account).then_some(id)
    }

    fn cancel_open(&mut self, id: OrderId) {
        if self.book.iter().any(|o| o.id == id) {
            self.remove_resting(id, DoneReason::Cancelled);
            return;
        }
        let at = self
            .stops
            .iter()
            .position(|s| s.id == id)
            .expect("order is open");
        let stop = self.stops.remove(at);
        let (asset, amount) = self.markets[&stop.market]
            .limit_lock(stop.side, stop.qty, stop.price)
            .expect("model: lock overflow");
        self.unlock(stop.account, asset, amount);
        self.done(
            id,
            stop.account,
            stop.market,
            DoneReason::Cancelled,
            stop.qty,
        );
    }

    fn cancel(&mut self, account: AccountId, market: MarketId, order: OrderRef) -> Outcome {
        if account < FIRST_USER_ACCOUNT {
            return Err(RejectReason::SystemAccount);
        }
        if !self.accounts.contains_key(&account) {
            return Err(RejectReason::UnknownOrder);
        }
        if !self.markets.contains_key(&market) {
            return Err(RejectReason::UnknownMarket);
        }
        let id = self
            .resolve(account, market, order)
            .ok_or(RejectReason::UnknownOrder)?;
        self.cancel_open(id);
        Ok(())
    }

    fn cancel_all(&mut self, account: AccountId, market: MarketId) -> Outcome {
        if account < FIRST_USER_ACCOUNT {
            return Err(RejectReason::SystemAccount);
        }
        if !self.markets.contains_key(&market) {
            return Err(RejectReason::UnknownMarket);
        }
        let mut ids: Vec<OrderId> = self
            .open_orders_in(market)
            .into_iter()
            .filter(|o| o.account == account)
            .map(|o| o.id)
            .collect();
        ids.sort();
        for id in ids {
            self.cancel_open(id);
        }
        Ok(())
    }

    fn amend(
        &mut self,
        account: AccountId,
        market_id: MarketId,
        order: OrderRef,
        qty: Qty,
        price: Price,
    ) -> Outcome {
        use RejectReason as R;
        if account < FIRST_USER_ACCOUNT {
            return Err(R::SystemAccount);
        }
        if !self.accounts.contains_key(&account) {
            return Err(R::UnknownOrder);
        }
        let market = self
            .markets
            .get(&market_id)
            .ok_or(R::UnknownMarket)?
            .clone();
        if market.halted {
            return Err(R::MarketHalted);
        }
        if self.locked.contains(&account) {
            return Err(R::AccountLocked);
        }
        let id = self
            .resolve(account, market_id, order)
            .ok_or(R::UnknownOrder)?;
        // Waiting stops cannot be amended.
        let current = self
            .book
            .iter()
            .find(|o| o.id == id)
            .cloned()
            .ok_or(R::UnknownOrder)?;
        if qty.0 == 0 {
            return Err(R::InvalidQuantity);
        }
        if price == current.price && qty == current.qty {
            return Err(R::NothingToAmend);
        }
        if price.0 == 0 {
            return Err(R::InvalidPrice);
        }
        let value = market.quote_amount(qty, price).ok_or(R::Overflow)?;
        if value < market.min_notional {
            return Err(R::BelowMinNotional);
        }
        let (asset, new_lock) = market
            .limit_lock(current.side, qty, price)
            .ok_or(R::Overflow)?;
        let (_, old_lock) = market
            .limit_lock(current.side, current.qty, current.price)
            .expect("model: lock overflow");
        if price == current.price && qty < current.qty {
            // A smaller quantity at the same price keeps its place in the queue.
            let at = self.book.iter().position(|o| o.id == id).expect("rests");
            self.book[at].qty = qty;
            self.emit(EventKind::OrderAmended {
                order: id,
                market: market_id,
                qty,
                price,
                priority_kept: true,
            });
            self.unlock(account, asset, old_lock - new_lock);
            return Ok(());
        }
        if new_lock > old_lock && self.available(account, asset) < new_lock - old_lock {
            return Err(R::InsufficientBalance);
        }
        let best_opposite = self
            .queue(market_id, current.side.opposite())
            .first()
            .map(|o| o.price);
        if current.post_only
            && best_opposite.is_some_and(|best| acceptable(current.side, best, price))
        {
            return Err(R::PostOnlyWouldTrade);
        }
        // Anything else re-enters the order as if new, behind the orders already there.
        self.book.retain(|o| o.id != id);
        self.emit(EventKind::OrderAmended {
            order: id,
            market: market_id,
            qty,
            price,
            priority_kept: false,
        });
        if new_lock > old_lock {
            self.lock(account, asset, new_lock - old_lock);
        } else {
            self.unlock(account, asset, old_lock - new_lock);
        }
        let trades_before = self.next_trade_id;
        self.take_liquidity(Incoming {
            id,
            market: market_id,
            account,
            side: current.side,
            limit: Some(price),
            remaining: Some(qty.0),
            quote_left: None,
            locked: new_lock,
            stp: current.stp,
            rests: true,
            post_only: current.post_only,
        });
        if self.next_trade_id != trades_before {
            self.fire_stops(market_id);
        }
        Ok(())
    }
}
