//! Commands: everything that can change the exchange state. Time and ids arrive inside them.

use coss_types::{
    AccountId, Amount, AssetId, ClientOrderId, MarketId, OrderId, Price, Qty, RequestId, Side,
};
use serde::{Deserialize, Serialize};

use crate::dao::DaoSchedule;

/// A command with the time it was accepted by the engine service (milliseconds since the Unix
/// epoch). The state machine never reads a clock: this is its only notion of time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// When the engine service accepted the command.
    pub time_ms: u64,
    /// The command.
    pub command: Command,
}

/// Whether a market accepts new orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MarketStatus {
    /// Orders are accepted and matched.
    Trading,
    /// New orders and amendments are rejected; cancels still work.
    Halted,
    /// Halted, and left out of the market lists (a market on its way out): those still
    /// holding orders in it can find it by name and cancel them.
    Hidden,
}

/// How long a limit order may live, and whether it may take liquidity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeInForce {
    /// Good till cancelled: the unfilled part rests in the book.
    Gtc,
    /// Immediate or cancel: the unfilled part expires.
    Ioc,
    /// Fill or kill: fills completely at once, or expires without any fill.
    Fok,
    /// Post only (maker only): rejected if it would trade on entry.
    PostOnly,
}

/// What happens when an incoming order would trade with a resting order of the same account.
/// The incoming (taker) order's mode decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SelfTradePrevention {
    /// Let them trade.
    None,
    /// Expire the rest of the incoming order.
    ExpireTaker,
    /// Expire the resting order and keep matching.
    ExpireMaker,
    /// Expire both.
    ExpireBoth,
}

/// The kind of a new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderKind {
    /// A limit order.
    Limit {
        /// Limit price in ticks.
        price: Price,
        /// Quantity in lots.
        qty: Qty,
        /// Time in force.
        tif: TimeInForce,
    },
    /// A market order for a base quantity.
    Market {
        /// Quantity in lots.
        qty: Qty,
    },
    /// A market order for a quote amount: a buy spends at most `amount`, a sell sells base
    /// until it has received at most `amount`.
    MarketQuote {
        /// Quote amount in the quote asset's smallest unit.
        amount: Amount,
    },
    /// A limit order that waits, funds locked, until the market's last trade price reaches
    /// `stop` against the order (a buy at or above, a sell at or below).
    StopLimit {
        /// Trigger price in ticks.
        stop: Price,
        /// Limit price once triggered.
        price: Price,
        /// Quantity in lots.
        qty: Qty,
        /// Time in force once triggered (not post-only).
        tif: TimeInForce,
    },
    /// A limit order that waits, funds locked, until the last trade price reaches `stop` in
    /// the order's favour (a buy at or below, a sell at or above).
    TakeProfitLimit {
        /// Trigger price in ticks.
        stop: Price,
        /// Limit price once triggered.
        price: Price,
        /// Quantity in lots.
        qty: Qty,
        /// Time in force once triggered (not post-only).
        tif: TimeInForce,
    },
}

/// A new order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewOrder {
    /// Who places it.
    pub account: AccountId,
    /// Where.
    pub market: MarketId,
    /// Buy or sell.
    pub side: Side,
    /// Its kind, price and quantity.
    pub kind: OrderKind,
    /// The caller's id for it, unique per account.
    pub client_id: Option<ClientOrderId>,
    /// Self-trade prevention mode.
    pub stp: SelfTradePrevention,
}

/// Names an order either by the exchange's id or by the caller's client order id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderRef {
    /// The exchange's order id.
    Id(OrderId),
    /// The account's client order id.
    Client(ClientOrderId),
}

/// One maker/taker fee tier, in parts per million of the amount each side receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeeTier {
    /// Fee rate when the order rested in the book.
    pub maker_ppm: u32,
    /// Fee rate when the order took liquidity.
    pub taker_ppm: u32,
}

/// Every command the exchange core understands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Lists a new asset.
    ListAsset {
        /// Its id (below [`crate::MAX_ASSETS`]).
        asset: AssetId,
        /// Ticker, 1–16 of `A-Z 0-9`.
        symbol: String,
        /// Decimal places of its smallest unit (0–30).
        decimals: u8,
        /// Whether fees in this asset are shared with COSS holders (crypto: yes; fiat: no).
        fees_shared: bool,
        /// The fee charged on each withdrawal, in the smallest unit.
        withdrawal_fee: Amount,
    },
    /// Changes an asset's withdrawal fee (pending withdrawals keep theirs).
    SetWithdrawalFee {
        /// The asset.
        asset: AssetId,
        /// The new fee.
        fee: Amount,
    },
    /// Sets an asset's smallest withdrawal (at least 1 unit; a hold below it is refused).
    SetWithdrawalMinimum {
        /// The asset.
        asset: AssetId,
        /// The smallest amount a withdrawal may send (before the fee).
        minimum: Amount,
    },
    /// Lists a new market.
    ListMarket {
        /// Its id (below [`crate::MAX_MARKETS`]).
        market: MarketId,
        /// The traded asset.
        base: AssetId,
        /// The pricing asset.
        quote: AssetId,
        /// Base smallest units per lot.
        lot_size: Amount,
        /// Quote smallest units per whole base unit, per tick. `lot_size × tick_size` must be a
        /// multiple of `10^base_decimals`, so every trade's quote amount is an exact integer.
        tick_size: Amount,
        /// Smallest order value, in the quote asset's smallest unit.
        min_notional: Amount,
    },
    /// Halts or resumes a market.
    SetMarketStatus {
        /// The market.
        market: MarketId,
        /// Its new status.
        status: MarketStatus,
    },
    /// Replaces the fee schedule (tier 0 first).
    SetFeeSchedule {
        /// The tiers.
        tiers: Vec<FeeTier>,
    },
    /// Moves an account to a fee tier.
    SetAccountFeeTier {
        /// The account.
        account: AccountId,
        /// The tier index.
        tier: u8,
    },
    /// Sets the COSS holders' share of shareable fees, in parts per million (default 500,000).
    SetHoldersShare {
        /// The share.
        share_ppm: u32,
    },
    /// Sets the bound on open orders (resting and waiting stops) per account.
    SetOpenOrderLimit {
        /// The bound.
        max_open_orders: u32,
    },
    /// Locks or unlocks a user account. Locking cancels its open orders (resting and waiting
    /// stops, in every market); while locked it can place or amend no order, hold no
    /// withdrawal and send no transfer (`ACCOUNT_LOCKED`). Money may still arrive.
    SetAccountLock {
        /// The account (a user account).
        account: AccountId,
        /// Locked or not.
        locked: bool,
    },
    /// Sets the payment gateway's fee rate, in parts per million (at most 10%; default 7,500).
    SetGatewayFee {
        /// The rate.
        fee_ppm: u32,
    },
    /// Credits a deposit from outside. Idempotent by `reference` (e.g. a chain transaction and
    /// log index): the same reference twice is rejected.
    Deposit {
        /// The credited account.
        account: AccountId,
        /// The asset.
        asset: AssetId,
        /// The amount.
        amount: Amount,
        /// The external reference, at most 128 bytes.
        reference: String,
    },
    /// Holds `amount` plus the asset's withdrawal fee for a withdrawal.
    WithdrawHold {
        /// The idempotency key.
        request: RequestId,
        /// The account.
        account: AccountId,
        /// The asset.
        asset: AssetId,
        /// What leaves the platform (the fee comes on top).
        amount: Amount,
    },
    /// The withdrawal was sent: the held amount leaves, the fee goes to the withdrawal-fee account.
    WithdrawConfirm {
        /// The hold's request id.
        request: RequestId,
    },
    /// The withdrawal was cancelled or failed: the hold returns to the account.
    WithdrawRelease {
        /// The hold's request id.
        request: RequestId,
    },
    /// Moves funds between two accounts, without fee.
    Transfer {
        /// The idempotency key.
        request: RequestId,
        /// Debited account.
        from: AccountId,
        /// Credited account.
        to: AccountId,
        /// The asset.
        asset: AssetId,
        /// The amount.
        amount: Amount,
    },
    /// Settles a payment the gateway received: `amount` leaves the gateway account
    /// ([`crate::GATEWAY`]), the merchant gets it less `ceil(amount × fee_ppm / 10^6)`, and the
    /// fee is split between the platform and the COSS holders exactly as a trading fee is.
    GatewaySettle {
        /// The idempotency key (shared with transfers and withdrawals).
        request: RequestId,
        /// The merchant's account (a user account).
        merchant: AccountId,
        /// The asset paid.
        asset: AssetId,
        /// What the payer paid, before the fee.
        amount: Amount,
        /// The gateway's fee rate in parts per million (at most 10%).
        fee_ppm: u32,
    },
    /// Places an order.
    PlaceOrder(NewOrder),
    /// Cancels one open order.
    Cancel {
        /// The owner.
        account: AccountId,
        /// The market.
        market: MarketId,
        /// Which order.
        order: OrderRef,
    },
    /// Cancels every open order of an account in a market.
    CancelAll {
        /// The owner.
        account: AccountId,
        /// The market.
        market: MarketId,
    },
    /// Changes a resting order. A smaller quantity at the same price keeps time priority;
    /// a new price or a larger quantity re-enters the order (it may trade) behind others.
    Amend {
        /// The owner.
        account: AccountId,
        /// The market.
        market: MarketId,
        /// Which order.
        order: OrderRef,
        /// The new open quantity in lots.
        qty: Qty,
        /// The new limit price in ticks.
        price: Price,
    },
    /// Sets when DAO weeks close, which asset is COSS and the minimum holding. The next
    /// close must lie in the future.
    SetDaoSchedule(DaoSchedule),
    /// Closes the week ending at `close_ms` (the schedule's next close, at or after it):
    /// records every account's COSS holding and moves the holders' fee balances into the
    /// week's pools. The engine injects it before the first command at or after the close.
    CloseWeek {
        /// The close being made.
        close_ms: u64,
    },
    /// Adds COSS held in users' own addresses at the close to the oldest open week, part
    /// `part` (0, 1, …: a part twice is refused).
    AddChainHoldings {
        /// The week.
        close_ms: u64,
        /// This part's number.
        part: u32,
        /// Accounts and the COSS their addresses held (at most
        /// [`crate::MAX_CHAIN_HOLDINGS`]).
        holdings: Vec<(AccountId, Amount)>,
    },
    /// Fixes the oldest open week's holders (the minimum applied) and total, after exactly
    /// `chain_parts` chain-holding parts.
    SealWeek {
        /// The week.
        close_ms: u64,
        /// How many chain-holding parts were sent.
        chain_parts: u32,
    },
    /// Pays up to `max_holders` more holders of the oldest sealed week, in every pool asset
    /// (at most [`crate::MAX_PAY_CHUNK`]); after the last one the week ends.
    PayWeek {
        /// The week.
        close_ms: u64,
        /// Most holders to pay in this command.
        max_holders: u32,
    },
}
