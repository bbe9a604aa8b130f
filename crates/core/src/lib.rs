//! The exchange core: one deterministic state machine that holds every balance of COSS and
//! matches every order. Commands go in ([`Envelope`]), events come out ([`Event`]); there is no
//! clock, randomness, I/O, thread or hash-order dependence inside, so the same command stream
//! always yields the same events and the same [`Exchange::state_hash`]. Amounts are integers in
//! each asset's smallest unit with checked arithmetic; a command is either applied whole or
//! rejected with a stable [`RejectReason`] and no effect. Money only moves in pairs: the sum of
//! every asset over all accounts always equals what was deposited minus what was withdrawn, and
//! [`Exchange::check_invariants`] proves it (and that locked funds match open orders and pending
//! withdrawals) at any time. The engine service (`coss-engine`) owns one `Exchange` on one
//! thread and journals its commands.
#![deny(
    clippy::float_arithmetic,
    clippy::float_cmp,
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation
)]

mod command;
mod dao;
mod event;
mod fees;
mod ledger;
mod orders;
mod snapshot;

pub use command::{
    Command, Envelope, FeeTier, MarketStatus, NewOrder, OrderKind, OrderRef, SelfTradePrevention,
    TimeInForce,
};
pub use dao::{
    DaoSchedule, MAX_CHAIN_HOLDINGS, MAX_PAY_CHUNK, Pool, WeekStage, WeekView, share as dao_share,
    share_of as dao_share_of,
};
pub use event::{DoneReason, Event, EventKind, RejectReason};
pub use fees::{PPM, default_fee_schedule, fee_for, holders_part};
pub use snapshot::{InvariantViolation, SnapshotError, StateHash};

use coss_book::OrderBook;
use coss_types::{AccountId, Amount, AssetId, ClientOrderId, MarketId, OrderId, Price, RequestId};
use rustc_hash::{FxHashMap, FxHashSet};
use std::collections::{BTreeMap, VecDeque};

/// Asset ids are below this bound (balances are indexed by asset id).
pub const MAX_ASSETS: u32 = 1024;
/// Market ids are below this bound.
pub const MAX_MARKETS: u32 = 4096;
/// Accounts below this id are system accounts; users start here (which of them belongs to
/// which person is the edges' business: the core never sees the accounts database).
pub const FIRST_USER_ACCOUNT: AccountId = AccountId(1000);

/// The platform's half of fee revenue (kept in the cold wallet).
pub const FEES_PLATFORM: AccountId = AccountId(1);
/// The COSS holders' share of fee revenue, paid out weekly by the DAO.
pub const FEES_HOLDERS: AccountId = AccountId(2);
/// Withdrawal fees (they cover network costs and are never shared with holders).
pub const WITHDRAWAL_FEES: AccountId = AccountId(3);
/// Funds in flight through the payment gateway.
pub const GATEWAY: AccountId = AccountId(4);
/// Funds being paid out to COSS holders.
pub const DAO_PAYOUTS: AccountId = AccountId(5);
/// The system accounts, opened first in this order so their dense indexes are fixed.
const SYSTEM_ACCOUNTS: [AccountId; 5] = [
    FEES_PLATFORM,
    FEES_HOLDERS,
    WITHDRAWAL_FEES,
    GATEWAY,
    DAO_PAYOUTS,
];
const FEES_PLATFORM_INDEX: u32 = 0;
const FEES_HOLDERS_INDEX: u32 = 1;
const WITHDRAWAL_FEES_INDEX: u32 = 2;
const GATEWAY_INDEX: u32 = 3;
/// How many of an account's closed client order ids stay reserved after their orders close,
/// so that a retried request cannot execute twice.
pub const CLIENT_ID_MEMORY: usize = 1000;
/// Default bound on open orders per account.
pub const DEFAULT_MAX_OPEN_ORDERS: u32 = 200;
/// Default holders' share of shareable fees: 50%.
pub const DEFAULT_HOLDERS_SHARE_PPM: u32 = 500_000;
/// Default payment gateway fee: 0.75%.
pub const DEFAULT_GATEWAY_FEE_PPM: u32 = 7_500;

/// The outcome of one command: applied, or rejected with no effect.
pub type Outcome = Result<(), RejectReason>;

/// A resting order as the outside sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestingOrder {
    /// Its id.
    pub id: OrderId,
    /// Its owner.
    pub account: AccountId,
    /// Its side.
    pub side: coss_types::Side,
    /// Its price.
    pub price: Price,
    /// Its open quantity.
    pub qty: coss_types::Qty,
}

/// A withdrawal the core holds or held, as the outside sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WithdrawalInfo {
    /// Whose.
    pub account: AccountId,
    /// Which asset.
    pub asset: AssetId,
    /// What the destination receives.
    pub amount: Amount,
    /// The fee on top.
    pub fee: Amount,
    /// Still held (neither confirmed nor released).
    pub pending: bool,
}

/// A transfer the core made, as the outside sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TransferInfo {
    /// The payer.
    pub from: AccountId,
    /// The payee.
    pub to: AccountId,
    /// Which asset.
    pub asset: AssetId,
    /// How much.
    pub amount: Amount,
}

/// A listed asset as the outside sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetInfo {
    /// Ticker.
    pub symbol: String,
    /// Decimal places of its smallest unit.
    pub decimals: u8,
    /// Whether its fees are shared with COSS holders.
    pub fees_shared: bool,
    /// The fee on each withdrawal, in the smallest unit.
    pub withdrawal_fee: Amount,
    /// The smallest withdrawal (0: none set).
    pub withdrawal_minimum: Amount,
    /// Everything ever deposited.
    pub deposited: Amount,
    /// Everything ever withdrawn (confirmed): what the accounts hold is the difference.
    pub withdrawn: Amount,
}

/// One balance of one account in one asset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Balance {
    /// Spendable.
    pub available: Amount,
    /// Reserved for open orders and pending withdrawals.
    pub locked: Amount,
}

#[derive(Debug, Clone, Copy, Default)]
struct BalanceCell {
    available: u128,
    locked: u128,
}

/// What every order reads of its account, kept small and contiguous (the hot path touches a
/// random account per command; this keeps it to one cache line).
#[derive(Debug, Clone, Copy, Default)]
struct AccountHot {
    id: AccountId,
    open_orders: u32,
    fee_tier: u8,
    /// Locked by an operator: no new orders, withdrawals or outgoing transfers.
    locked: bool,
}

#[derive(Debug, Clone)]
struct Asset {
    id: AssetId,
    symbol: String,
    decimals: u8,
    fees_shared: bool,
    withdrawal_fee: u128,
    /// The smallest withdrawal (0: none set).
    withdrawal_minimum: u128,
    deposited: u128,
    withdrawn: u128,
    /// Shareable fees collected since the holders' share was last set (less whole millions
    /// folded out when the total would overflow).
    shared_fees: u128,
    /// The holders' part of `shared_fees` credited so far (always `floor(shared_fees × share)`).
    holders_credited: u128,
}

/// What the book stores with each resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Maker {
    account: u32,
    stp: SelfTradePrevention,
    post_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StopOrder {
    id: OrderId,
    account: u32,
    side: coss_types::Side,
    stop: Price,
    price: Price,
    qty: coss_types::Qty,
    tif: TimeInForce,
    stp: SelfTradePrevention,
    /// Triggers when the last price rises to `stop` (else when it falls to it).
    rising: bool,
}

#[derive(Debug, Clone)]
struct Market {
    id: MarketId,
    base: AssetId,
    quote: AssetId,
    lot_size: u128,
    tick_size: u128,
    min_notional: u128,
    /// Quote units per lot per tick: `lot_size × tick_size / 10^base_decimals`, exact.
    notional_unit: u128,
    status: MarketStatus,
    last_price: Option<Price>,
    book: OrderBook<Maker>,
    /// Waiting stops that fire when the price rises, by (stop price, id).
    rising: BTreeMap<(u64, OrderId), StopOrder>,
    /// Waiting stops that fire when the price falls, by (u64::MAX − stop price, id).
    falling: BTreeMap<(u64, OrderId), StopOrder>,
    /// Where each waiting stop is, by id.
    stop_keys: FxHashMap<OrderId, (bool, u64)>,
}

/// The rarely read part of an account.
#[derive(Debug, Clone, Default)]
struct Account {
    id: AccountId,
    /// Client order ids of closed orders still reserved, oldest first.
    recent_client_ids: VecDeque<ClientOrderId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WithdrawalState {
    Pending,
    Confirmed,
    Released,
}

#[derive(Debug, Clone, Copy)]
struct Withdrawal {
    account: AccountId,
    asset: AssetId,
    amount: u128,
    fee: u128,
    state: WithdrawalState,
}

#[derive(Debug, Clone)]
struct Params {
    holders_share_ppm: u32,
    fee_tiers: Vec<FeeTier>,
    max_open_orders: u32,
    gateway_fee_ppm: u32,
}

/// The whole exchange state. Create it with [`Exchange::new`], drive it with
/// [`Exchange::apply`].
///
/// Laid out for speed: every balance lives in one contiguous table (`stride` asset slots per
/// account, so an account's balances sit together), the per-order account data (open
/// orders, fee tier) in a small parallel table, and the five system accounts at fixed dense
/// indexes; events are 128 bytes.
#[derive(Debug, Clone)]
pub struct Exchange {
    params: Params,
    assets: Vec<Option<Asset>>,
    markets: Vec<Option<Market>>,
    accounts: Vec<Account>,
    /// Per account (by dense index): open orders and fee tier.
    hot: Vec<AccountHot>,
    /// Every balance, `stride` cells per account: `cells[account × stride + asset]`.
    cells: Vec<BalanceCell>,
    /// Parallel to `cells`: touched by the current command.
    touched_flags: Vec<bool>,
    /// Asset slots per account: the highest listed asset id + 1.
    stride: usize,
    account_index: FxHashMap<AccountId, u32>,
    /// Client order ids in use or still reserved, per account, with the order they named.
    client_ids: FxHashMap<(u32, ClientOrderId), OrderId>,
    /// The client order id of each open order that has one.
    order_client: FxHashMap<OrderId, ClientOrderId>,
    deposit_refs: FxHashSet<String>,
    withdrawals: FxHashMap<RequestId, Withdrawal>,
    /// Every transfer ever made, by request id: duplicates are refused, and a caller checks
    /// what a `DuplicateRequest` names before trusting it.
    transfers: FxHashMap<RequestId, TransferInfo>,
    /// The weekly revenue share: schedule and the weeks not yet paid out.
    dao: dao::Dao,
    next_order_id: u64,
    next_trade_id: u64,
    next_seq: u64,
    time_ms: u64,
    commands: u64,
    // Per-command scratch, always empty between commands.
    touched: Vec<(u32, u32)>,
    fees_collected: Vec<(AssetId, u128, u128)>,
}

impl Default for Exchange {
    fn default() -> Self {
        Self::new()
    }
}

impl Exchange {
    /// An empty exchange with the default fee schedule, a 50% holders' share and the system
    /// accounts opened.
    #[must_use]
    pub fn new() -> Self {
        let mut exchange = Exchange {
            params: Params {
                holders_share_ppm: DEFAULT_HOLDERS_SHARE_PPM,
                fee_tiers: default_fee_schedule(),
                max_open_orders: DEFAULT_MAX_OPEN_ORDERS,
                gateway_fee_ppm: DEFAULT_GATEWAY_FEE_PPM,
            },
            assets: Vec::new(),
            markets: Vec::new(),
            accounts: Vec::new(),
            hot: Vec::new(),
            cells: Vec::new(),
            touched_flags: Vec::new(),
            stride: 0,
            account_index: FxHashMap::default(),
            client_ids: FxHashMap::default(),
            order_client: FxHashMap::default(),
            deposit_refs: FxHashSet::default(),
            withdrawals: FxHashMap::default(),
            transfers: FxHashMap::default(),
            dao: dao::Dao::default(),
            next_order_id: 1,
            next_trade_id: 1,
            next_seq: 1,
            time_ms: 0,
            commands: 0,
            touched: Vec::new(),
            fees_collected: Vec::new(),
        };
        for system in SYSTEM_ACCOUNTS {
            exchange.account_or_open(system);
        }
        exchange
    }

    /// Applies one command, appending what happened to `events`. A rejected command appends
    /// exactly one `Rejected` event and changes nothing else.
    pub fn apply(&mut self, envelope: &Envelope, events: &mut Vec<Event>) -> Outcome {
        self.time_ms = self.time_ms.max(envelope.time_ms);
        self.commands += 1;
        let first_event = events.len();
        let outcome = self.dispatch(&envelope.command, events);
        match outcome {
            Ok(()) => {
                self.flush_fees(events);
                self.flush_touched(events);
            }
            Err(reason) => {
                debug_assert!(
                    self.touched.is_empty(),
                    "a rejected command touched balances"
                );
                debug_assert!(
                    events.len() == first_event,
                    "a rejected command emitted events"
                );
                events.truncate(first_event);
                self.emit(events, EventKind::Rejected { reason });
            }
        }
        outcome
    }

    fn dispatch(&mut self, command: &Command, events: &mut Vec<Event>) -> Outcome {
        match command {
            Command::PlaceOrder(new) => self.place_order(new, events),
            Command::Cancel {
                account,
                market,
                order,
            } => self.cancel(*account, *market, *order, events),
            Command::CancelAll { account, market } => self.cancel_all(*account, *market, events),
            Command::Amend {
                account,
                market,
                order,
                qty,
                price,
            } => self.amend(*account, *market, *order, *qty, *price, events),
            Command::Deposit {
                account,
                asset,
                amount,
                reference,
            } => self.deposit(*account, *asset, *amount, reference, events),
            Command::WithdrawHold {
                request,
                account,
                asset,
                amount,
            } => self.withdraw_hold(*request, *account, *asset, *amount, events),
            Command::WithdrawConfirm { request } => self.withdraw_finish(*request, true, events),
            Command::WithdrawRelease { request } => self.withdraw_finish(*request, false, events),
            Command::Transfer {
                request,
                from,
                to,
                asset,
                amount,
            } => self.transfer(*request, *from, *to, *asset, *amount, events),
            Command::GatewaySettle {
                request,
                merchant,
                asset,
                amount,
                fee_ppm,
            } => self.gateway_settle(*request, *merchant, *asset, *amount, *fee_ppm, events),
            Command::ListAsset {
                asset,
                symbol,
                decimals,
                fees_shared,
                withdrawal_fee,
            } => self.list_asset(
                *asset,
                symbol,
                *decimals,
                *fees_shared,
                *withdrawal_fee,
                events,
            ),
            Command::SetWithdrawalFee { asset, fee } => {
                self.set_withdrawal_fee(*asset, *fee, events)
            }
            Command::SetWithdrawalMinimum { asset, minimum } => {
                self.set_withdrawal_minimum(*asset, *minimum, events)
            }
            Command::ListMarket {
                market,
                base,
                quote,
                lot_size,
                tick_size,
                min_notional,
            } => self.list_market(
                *market,
                *base,
                *quote,
                *lot_size,
                *tick_size,
                *min_notional,
                events,
            ),
            Command::SetMarketStatus { market, status } => {
                self.set_market_status(*market, *status, events)
            }
            Command::SetFeeSchedule { tiers } => self.set_fee_schedule(tiers, events),
            Command::SetAccountFeeTier { account, tier } => {
                self.set_account_fee_tier(*account, *tier, events)
            }
            Command::SetHoldersShare { share_ppm } => self.set_holders_share(*share_ppm, events),
            Command::SetOpenOrderLimit { max_open_orders } => {
                self.set_open_order_limit(*max_open_orders, events)
            }
            Command::SetAccountLock { account, locked } => {
                self.set_account_lock(*account, *locked, events)
            }
            Command::SetGatewayFee { fee_ppm } => self.set_gateway_fee(*fee_ppm, events),
            Command::SetDaoSchedule(schedule) => self.set_dao_schedule(*schedule, events),
            Command::CloseWeek { close_ms } => self.close_week(*close_ms, events),
            Command::AddChainHoldings {
                close_ms,
                part,
                holdings,
            } => self.add_chain_holdings(*close_ms, *part, holdings, events),
            Command::SealWeek {
                close_ms,
                chain_parts,
            } => self.seal_week(*close_ms, *chain_parts, events),
            Command::PayWeek {
                close_ms,
                max_holders,
            } => self.pay_week(*close_ms, *max_holders, events),
        }
    }

    #[inline(always)]
    fn emit(&mut self, events: &mut Vec<Event>, kind: EventKind) {
        events.push(Event {
            seq: self.next_seq,
            time_ms: self.time_ms,
            kind,
        });
        self.next_seq += 1;
    }

    /// How many commands have been applied (including rejected ones).
    #[must_use]
    pub fn commands(&self) -> u64 {
        self.commands
    }

    /// The sequence number of the last event emitted (0 before any).
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// The latest command time seen.
    #[must_use]
    pub fn time_ms(&self) -> u64 {
        self.time_ms
    }

    /// An account's balance in an asset (zero if it never held any).
    #[must_use]
    pub fn balance(&self, account: AccountId, asset: AssetId) -> Balance {
        self.account_index
            .get(&account)
            .and_then(|&index| self.cell_at(index, asset))
            .map(|cell| Balance {
                available: Amount(cell.available),
                locked: Amount(cell.locked),
            })
            .unwrap_or_default()
    }

    /// Whether an operator locked the account.
    #[must_use]
    pub fn account_locked(&self, account: AccountId) -> bool {
        self.account_index
            .get(&account)
            .is_some_and(|&index| self.hot[index as usize].locked)
    }

    /// Every locked account, ascending.
    #[must_use]
    pub fn locked_accounts(&self) -> Vec<AccountId> {
        let mut locked: Vec<AccountId> =
            self.hot.iter().filter(|a| a.locked).map(|a| a.id).collect();
        locked.sort_unstable();
        locked
    }

    /// The payment gateway's fee rate (ppm).
    #[must_use]
    pub fn gateway_fee_ppm(&self) -> u32 {
        self.params.gateway_fee_ppm
    }

    /// The fee schedule (tier 0 first).
    #[must_use]
    pub fn fee_schedule(&self) -> &[FeeTier] {
        &self.params.fee_tiers
    }

    /// An account's fee tier.
    #[must_use]
    pub fn account_fee_tier(&self, account: AccountId) -> u8 {
        self.account_index
            .get(&account)
            .map_or(0, |&index| self.hot[index as usize].fee_tier)
    }

    /// How many orders rest in a market's book.
    #[must_use]
    pub fn resting_orders(&self, market: MarketId) -> usize {
        self.market(market).map_or(0, |m| m.book.len())
    }

    /// The best `levels` price levels of one side of a market's book, best first.
    #[must_use]
    pub fn depth(
        &self,
        market: MarketId,
        side: coss_types::Side,
        levels: usize,
    ) -> Vec<coss_book::DepthLevel> {
        self.market(market)
            .map_or_else(Vec::new, |m| m.book.depth(side, levels))
    }

    /// A resting order of a market's book.
    #[must_use]
    pub fn resting_order(&self, market: MarketId, order: OrderId) -> Option<RestingOrder> {
        let m = self.market(market)?;
        let o = m.book.get(order)?;
        Some(RestingOrder {
            id: o.id,
            account: self.hot[o.payload.account as usize].id,
            side: o.side,
            price: o.price,
            qty: o.qty,
        })
    }

    /// A listed asset's definition.
    #[must_use]
    pub fn asset_info(&self, asset: AssetId) -> Option<AssetInfo> {
        self.asset(asset).map(|a| AssetInfo {
            symbol: a.symbol.clone(),
            decimals: a.decimals,
            fees_shared: a.fees_shared,
            withdrawal_fee: Amount(a.withdrawal_fee),
            withdrawal_minimum: Amount(a.withdrawal_minimum),
            deposited: Amount(a.deposited),
            withdrawn: Amount(a.withdrawn),
        })
    }

    /// The withdrawal held under `request`, if the core knows it: what a caller compares with
    /// its own record before trusting a `DuplicateRequest`.
    #[must_use]
    pub fn withdrawal(&self, request: RequestId) -> Option<WithdrawalInfo> {
        self.withdrawals.get(&request).map(|w| WithdrawalInfo {
            account: w.account,
            asset: w.asset,
            amount: Amount(w.amount),
            fee: Amount(w.fee),
            pending: matches!(w.state, WithdrawalState::Pending),
        })
    }

    /// Every withdrawal the core still holds (neither confirmed nor released), by request id
    /// in ascending order: what a caller reconciles with its own records.
    #[must_use]
    pub fn pending_withdrawals(&self) -> Vec<(RequestId, WithdrawalInfo)> {
        let mut pending: Vec<(RequestId, WithdrawalInfo)> = self
            .withdrawals
            .keys()
            .filter_map(|r| Some((*r, self.withdrawal(*r)?)))
            .filter(|(_, w)| w.pending)
            .collect();
        pending.sort_unstable_by_key(|(r, _)| *r);
        pending
    }

    /// The transfer made under `request`, if any: what a caller compares with its own record
    /// before trusting a `DuplicateRequest`.
    #[must_use]
    pub fn transferred(&self, request: RequestId) -> Option<TransferInfo> {
        self.transfers.get(&request).copied()
    }

    /// The id the next accepted order will get.
    #[must_use]
    pub fn next_order_id(&self) -> u64 {
        self.next_order_id
    }

    /// The last trade price of a market.
    #[must_use]
    pub fn last_price(&self, market: MarketId) -> Option<Price> {
        self.market(market).and_then(|m| m.last_price)
    }

    /// An account's open orders (resting and waiting stops), counted against the bound.
    #[must_use]
    pub fn open_orders(&self, account: AccountId) -> u32 {
        self.account_index
            .get(&account)
            .map_or(0, |&index| self.hot[index as usize].open_orders)
    }

    fn market(&self, market: MarketId) -> Option<&Market> {
        self.markets.get(market.0 as usize).and_then(Option::as_ref)
    }

    fn asset(&self, asset: AssetId) -> Option<&Asset> {
        self.assets.get(asset.0 as usize).and_then(Option::as_ref)
    }

    fn account_or_open(&mut self, account: AccountId) -> u32 {
        if let Some(&index) = self.account_index.get(&account) {
            return index;
        }
        let index = u32::try_from(self.accounts.len())
            .unwrap_or_else(|_| invariant_broken("more than 2^32 accounts"));
        self.accounts.push(Account {
            id: account,
            ..Account::default()
        });
        self.hot.push(AccountHot {
            id: account,
            ..AccountHot::default()
        });
        self.cells
            .resize(self.cells.len() + self.stride, BalanceCell::default());
        self.touched_flags.resize(self.cells.len(), false);
        self.account_index.insert(account, index);
        index
    }

    /// The balance cell of a dense account index in a listed asset.
    #[inline(always)]
    fn cell_at(&self, account: u32, asset: AssetId) -> Option<&BalanceCell> {
        let slot = asset.0 as usize;
        if slot >= self.stride {
            return None;
        }
        self.cells.get(account as usize * self.stride + slot)
    }

    /// Widens every account's row of cells to `stride` asset slots (listing a higher asset id).
    fn restride(&mut self, stride: usize) {
        if stride <= self.stride {
            return;
        }
        let mut cells = vec![BalanceCell::default(); self.accounts.len() * stride];
        for account in 0..self.accounts.len() {
            let old = &self.cells[account * self.stride..(account + 1) * self.stride];
            cells[account * stride..account * stride + self.stride].copy_from_slice(old);
        }
        self.cells = cells;
        self.touched_flags = vec![false; self.cells.len()];
        self.stride = stride;
    }
}

/// Stops the engine: a broken invariant must halt, never limp on. Only reachable through a bug,
/// never through input (inputs are validated before any state changes).
#[cold]
#[track_caller]
#[allow(clippy::panic)]
pub(crate) fn invariant_broken(what: &str) -> ! {
    panic!("exchange invariant broken: {what}")
}
