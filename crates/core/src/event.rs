//! Events: everything the exchange state machine says happened, with a gap-free sequence.

use crate::command::{FeeTier, MarketStatus, NewOrder};
use coss_types::{AccountId, Amount, AssetId, MarketId, OrderId, Price, Qty, RequestId, Side};
use serde::{Deserialize, Serialize};

/// One event. `seq` starts at 1 and has no gaps; `time_ms` is the command's time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the event stream.
    pub seq: u64,
    /// Time of the command that caused it.
    pub time_ms: u64,
    /// What happened.
    pub kind: EventKind,
}

/// Why an open order left the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DoneReason {
    /// Completely filled (a market order by quote amount: it traded, and what is left of its
    /// amount cannot pay for one more lot).
    Filled,
    /// Cancelled by its owner (or by cancel-all).
    Cancelled,
    /// Its unfilled part expired: IOC or market remainder, FOK not fillable, no liquidity, or
    /// a market order's funds ran out.
    Expired,
    /// Expired by self-trade prevention.
    SelfTradePrevented,
}

impl DoneReason {
    /// Stable name.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            DoneReason::Filled => "FILLED",
            DoneReason::Cancelled => "CANCELED",
            DoneReason::Expired => "EXPIRED",
            DoneReason::SelfTradePrevented => "EXPIRED_IN_MATCH",
        }
    }
}

/// Every fact the exchange core records. Projections (order books, trades, candles,
/// statements) are rebuilt from these alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventKind {
    /// A command was refused; nothing else changed.
    Rejected {
        /// Why.
        reason: RejectReason,
    },
    /// An asset was listed.
    AssetListed {
        /// Id.
        asset: AssetId,
        /// Ticker.
        symbol: String,
        /// Decimals.
        decimals: u8,
        /// Fees shared with holders.
        fees_shared: bool,
        /// Withdrawal fee.
        withdrawal_fee: Amount,
    },
    /// An asset's withdrawal fee changed.
    WithdrawalFeeSet {
        /// The asset.
        asset: AssetId,
        /// New fee.
        fee: Amount,
    },
    /// An asset's smallest withdrawal changed.
    WithdrawalMinimumSet {
        /// The asset.
        asset: AssetId,
        /// New minimum.
        minimum: Amount,
    },
    /// A market was listed.
    MarketListed {
        /// Id.
        market: MarketId,
        /// Base asset.
        base: AssetId,
        /// Quote asset.
        quote: AssetId,
        /// Base units per lot.
        lot_size: Amount,
        /// Quote units (per whole base unit) per tick.
        tick_size: Amount,
        /// Minimum order value.
        min_notional: Amount,
    },
    /// A market was halted or resumed.
    MarketStatusChanged {
        /// The market.
        market: MarketId,
        /// New status.
        status: MarketStatus,
    },
    /// The fee schedule was replaced.
    FeeScheduleSet {
        /// The tiers.
        tiers: Vec<FeeTier>,
    },
    /// An account's fee tier changed.
    AccountFeeTierSet {
        /// The account.
        account: AccountId,
        /// The tier.
        tier: u8,
    },
    /// The holders' share changed.
    HoldersShareSet {
        /// New share.
        share_ppm: u32,
    },
    /// The open-order bound changed.
    OpenOrderLimitSet {
        /// New bound.
        max_open_orders: u32,
    },
    /// An account was locked or unlocked (a lock's cancellations come before it).
    AccountLockSet {
        /// The account.
        account: AccountId,
        /// Locked or not.
        locked: bool,
    },
    /// The gateway's fee rate changed.
    GatewayFeeSet {
        /// New rate (ppm).
        fee_ppm: u32,
    },
    /// Funds arrived from outside.
    Deposited {
        /// Credited account.
        account: AccountId,
        /// Asset.
        asset: AssetId,
        /// Amount.
        amount: Amount,
        /// External reference.
        reference: String,
    },
    /// A withdrawal's amount and fee were locked.
    WithdrawalHeld {
        /// Request.
        request: RequestId,
        /// Account.
        account: AccountId,
        /// Asset.
        asset: AssetId,
        /// Amount leaving.
        amount: Amount,
        /// Fee.
        fee: Amount,
    },
    /// A withdrawal left the platform.
    WithdrawalConfirmed {
        /// Request.
        request: RequestId,
        /// Account.
        account: AccountId,
        /// Asset.
        asset: AssetId,
        /// Amount that left.
        amount: Amount,
        /// Fee kept.
        fee: Amount,
    },
    /// A withdrawal hold was returned.
    WithdrawalReleased {
        /// Request.
        request: RequestId,
        /// Account.
        account: AccountId,
        /// Asset.
        asset: AssetId,
        /// Amount.
        amount: Amount,
        /// Fee.
        fee: Amount,
    },
    /// Funds moved between accounts.
    Transferred {
        /// Request.
        request: RequestId,
        /// From.
        from: AccountId,
        /// To.
        to: AccountId,
        /// Asset.
        asset: AssetId,
        /// Amount.
        amount: Amount,
    },
    /// A gateway payment was settled to its merchant, less the fee (reported with the
    /// command's `FeesCollected`).
    GatewaySettled {
        /// Request.
        request: RequestId,
        /// The merchant credited.
        merchant: AccountId,
        /// Asset.
        asset: AssetId,
        /// What left the gateway account.
        amount: Amount,
        /// The fee kept of it.
        fee: Amount,
    },
    /// An order was accepted (its funds are locked).
    OrderAccepted {
        /// The id the exchange gave it.
        order: OrderId,
        /// The order as submitted.
        new: NewOrder,
    },
    /// A stop or take-profit order's trigger price was reached: it now acts as a limit order.
    OrderTriggered {
        /// The order.
        order: OrderId,
        /// Its market.
        market: MarketId,
        /// The last trade price that triggered it.
        last_price: Price,
    },
    /// Two orders traded. The buyer's fee is in the base asset, the seller's in the quote asset.
    /// The amounts exchanged follow from the market: `qty × lot_size` base for
    /// `qty × price × lot_size × tick_size / 10^base_decimals` quote (exact by listing rule).
    Trade {
        /// Per-exchange trade id, from 1.
        trade: u64,
        /// Market.
        market: MarketId,
        /// Price in ticks (the maker's price).
        price: Price,
        /// Quantity in lots.
        qty: Qty,
        /// The taker's side.
        taker_side: Side,
        /// Resting order.
        maker_order: OrderId,
        /// Incoming order.
        taker_order: OrderId,
        /// Resting order's account.
        maker_account: AccountId,
        /// Incoming order's account.
        taker_account: AccountId,
        /// Fee paid by the maker (in the asset it received).
        maker_fee: Amount,
        /// Fee paid by the taker (in the asset it received).
        taker_fee: Amount,
    },
    /// An order's price or quantity changed.
    OrderAmended {
        /// The order.
        order: OrderId,
        /// Market.
        market: MarketId,
        /// New open quantity.
        qty: Qty,
        /// New price.
        price: Price,
        /// Whether it kept its place in the queue.
        priority_kept: bool,
    },
    /// An order left the book (or never entered it): filled, cancelled or expired.
    OrderDone {
        /// The order.
        order: OrderId,
        /// Its account.
        account: AccountId,
        /// Market.
        market: MarketId,
        /// Why.
        reason: DoneReason,
        /// The quantity left unfilled (0 when filled). For a market order by quote amount,
        /// the unspent part is reported in the balance changes.
        unfilled: Qty,
    },
    /// The DAO schedule was set.
    DaoScheduleSet {
        /// The COSS asset.
        coss: AssetId,
        /// Next close.
        next_close_ms: u64,
        /// Time between closes.
        period_ms: u64,
        /// Minimum holding.
        min_holding: Amount,
    },
    /// A DAO week closed: platform holdings recorded, the holders' fee balances moved into
    /// the week's pools (reported as balance changes of `FEES_HOLDERS` and `DAO_PAYOUTS`).
    WeekClosed {
        /// The close.
        close_ms: u64,
        /// Accounts holding COSS on the platform.
        holders: u32,
        /// The following close.
        next_close_ms: u64,
    },
    /// COSS held in users' own addresses was added to a week.
    ChainHoldingsAdded {
        /// The week.
        close_ms: u64,
        /// The part.
        part: u32,
        /// Entries in it.
        entries: u32,
        /// Their sum.
        amount: Amount,
    },
    /// A week's holders and total were fixed.
    WeekSealed {
        /// The week.
        close_ms: u64,
        /// Holders at or above the minimum.
        holders: u32,
        /// Their total holding.
        total: Amount,
    },
    /// One asset of a week was paid out (reported after the last holder); the credits are the
    /// `BalanceChanged` events of the `PayWeek` commands, the remainder went back to
    /// `FEES_HOLDERS`.
    DaoAssetPaid {
        /// The week.
        close_ms: u64,
        /// The asset.
        asset: AssetId,
        /// The pool.
        pool: Amount,
        /// Paid to holders.
        paid: Amount,
        /// Carried over to next week.
        carried: Amount,
        /// Holders credited a non-zero amount.
        holders: u32,
    },
    /// Every pool of a week was paid out.
    WeekPaid {
        /// The week.
        close_ms: u64,
    },
    /// Fees credited to the fee accounts by one command, per asset: what the platform keeps
    /// (`FEES_PLATFORM`) and what goes to COSS holders (`FEES_HOLDERS`). These credits are not
    /// repeated as `BalanceChanged` events.
    FeesCollected {
        /// Asset.
        asset: AssetId,
        /// Platform's part.
        platform: Amount,
        /// Holders' part.
        holders: Amount,
    },
    /// A balance's new value after the command: one per balance the command moved, in the order
    /// they were first moved (trading-fee credits to the fee accounts are in `FeesCollected`).
    BalanceChanged {
        /// Account.
        account: AccountId,
        /// Asset.
        asset: AssetId,
        /// Spendable now.
        available: Amount,
        /// Reserved for open orders and pending withdrawals.
        locked: Amount,
    },
}

macro_rules! reject_reasons {
    ($($(#[$doc:meta])* $name:ident = $number:literal, $code:literal, $text:literal;)*) => {
        /// Why a command was refused. A closed set; each reason has a stable code and number.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
        #[repr(u16)]
        pub enum RejectReason {
            $($(#[$doc])* #[error($text)] $name = $number,)*
        }

        impl RejectReason {
            /// Every reason, in code order.
            pub const ALL: &'static [RejectReason] = &[$(RejectReason::$name,)*];

            /// The stable numeric code.
            #[must_use]
            pub fn number(self) -> u16 {
                self as u16
            }

            /// The stable name, e.g. `INSUFFICIENT_BALANCE`.
            #[must_use]
            pub fn code(self) -> &'static str {
                match self {
                    $(RejectReason::$name => $code,)*
                }
            }
        }
    };
}

reject_reasons! {
    /// No asset with that id.
    UnknownAsset = 1001, "UNKNOWN_ASSET", "unknown asset";
    /// The asset id is taken.
    AssetExists = 1002, "ASSET_EXISTS", "asset already listed";
    /// Symbol must be 1–16 of A-Z 0-9.
    InvalidSymbol = 1003, "INVALID_SYMBOL", "invalid symbol";
    /// Decimals must be 0–30.
    InvalidDecimals = 1004, "INVALID_DECIMALS", "invalid decimals";
    /// No market with that id.
    UnknownMarket = 1101, "UNKNOWN_MARKET", "unknown market";
    /// The market id is taken.
    MarketExists = 1102, "MARKET_EXISTS", "market already listed";
    /// Lot or tick size do not give exact integer amounts, or base equals quote.
    InvalidMarket = 1103, "INVALID_MARKET", "invalid market definition";
    /// The market is halted.
    MarketHalted = 1104, "MARKET_HALTED", "market is halted";
    /// A fee schedule needs 1–16 tiers with rates at most 10%.
    InvalidFeeSchedule = 1201, "INVALID_FEE_SCHEDULE", "invalid fee schedule";
    /// No such fee tier.
    UnknownFeeTier = 1202, "UNKNOWN_FEE_TIER", "unknown fee tier";
    /// A share is at most 1,000,000 ppm.
    InvalidShare = 1203, "INVALID_SHARE", "invalid holders share";
    /// An open-order bound must be 1 to 1,000,000 (a payout chunk 1 to 100,000 holders).
    InvalidLimit = 1204, "INVALID_LIMIT", "invalid limit";
    /// A DAO schedule needs a positive period and a next close in the future.
    InvalidSchedule = 1205, "INVALID_SCHEDULE", "invalid DAO schedule";
    /// A gateway fee is at most 10%.
    InvalidFee = 1206, "INVALID_FEE", "invalid fee rate";
    /// Amounts must be positive.
    InvalidAmount = 2001, "INVALID_AMOUNT", "invalid amount";
    /// References are 1–128 bytes.
    InvalidReference = 2002, "INVALID_REFERENCE", "invalid reference";
    /// This deposit reference was already credited.
    DuplicateReference = 2003, "DUPLICATE_REFERENCE", "duplicate deposit reference";
    /// This request id was already used.
    DuplicateRequest = 2004, "DUPLICATE_REQUEST", "duplicate request id";
    /// No request with that id.
    UnknownRequest = 2005, "UNKNOWN_REQUEST", "unknown request";
    /// The withdrawal is already confirmed or released.
    RequestNotPending = 2006, "REQUEST_NOT_PENDING", "request is not pending";
    /// Not enough available balance.
    InsufficientBalance = 2007, "INSUFFICIENT_BALANCE", "insufficient balance";
    /// System accounts cannot do this.
    SystemAccount = 2008, "SYSTEM_ACCOUNT", "not allowed for a system account";
    /// A transfer needs two different accounts.
    SameAccount = 2009, "SAME_ACCOUNT", "same account";
    /// The account is locked by an operator.
    AccountLocked = 2010, "ACCOUNT_LOCKED", "account is locked";
    /// The withdrawal is below the asset's minimum.
    BelowMinimum = 2011, "BELOW_MINIMUM", "withdrawal below the minimum";
    /// Quantity must be positive.
    InvalidQuantity = 3001, "INVALID_QUANTITY", "invalid quantity";
    /// Price must be positive.
    InvalidPrice = 3002, "INVALID_PRICE", "invalid price";
    /// The order's value is below the market's minimum.
    BelowMinNotional = 3003, "BELOW_MIN_NOTIONAL", "order value below minimum";
    /// The account already used this client order id recently.
    DuplicateClientOrderId = 3004, "DUPLICATE_CLIENT_ORDER_ID", "duplicate client order id";
    /// No open order matches.
    UnknownOrder = 3005, "UNKNOWN_ORDER", "unknown order";
    /// The account has too many open orders.
    TooManyOpenOrders = 3006, "TOO_MANY_OPEN_ORDERS", "too many open orders";
    /// A post-only order would have taken liquidity.
    PostOnlyWouldTrade = 3007, "POST_ONLY_WOULD_TRADE", "post-only order would trade";
    /// A stop or take-profit order whose trigger is already reached.
    WouldTriggerImmediately = 3008, "WOULD_TRIGGER_IMMEDIATELY", "order would trigger immediately";
    /// Post-only is not valid for this order type.
    InvalidTimeInForce = 3009, "INVALID_TIME_IN_FORCE", "invalid time in force for this order type";
    /// The amendment changes nothing.
    NothingToAmend = 3010, "NOTHING_TO_AMEND", "nothing to amend";
    /// No DAO schedule is set.
    DaoNotConfigured = 4001, "DAO_NOT_CONFIGURED", "DAO schedule not set";
    /// No such week (not the next close, or not open).
    UnknownWeek = 4002, "UNKNOWN_WEEK", "unknown week";
    /// The week's close has not come yet.
    WeekNotDue = 4003, "WEEK_NOT_DUE", "week has not closed yet";
    /// An earlier week must be finished first.
    EarlierWeekOpen = 4004, "EARLIER_WEEK_OPEN", "an earlier week is still open";
    /// The week is already sealed.
    WeekSealed = 4005, "WEEK_SEALED", "week already sealed";
    /// The week is not sealed yet.
    WeekNotSealed = 4006, "WEEK_NOT_SEALED", "week not sealed yet";
    /// A chain-holding part out of order, or a seal with another number of parts.
    PartOutOfOrder = 4007, "PART_OUT_OF_ORDER", "chain holdings part out of order";
    /// An amount would exceed what the ledger can hold.
    Overflow = 9001, "OVERFLOW", "amount overflow";
}
