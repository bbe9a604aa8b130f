//! The small world the property tests trade in, and random command streams over it.
//!
//! Three assets (BTC and ETH share their fees with holders, USD does not), two markets
//! (BTC/USD with lots of 0.01 BTC and a minimum order value; ETH/BTC with lots of one smallest
//! unit, so fees round up on every trade), five users funded by the preamble, plus an account
//! that never received anything, a system account and an unlisted market for rejections.
//! Prices stay in a narrow band around each market's centre (buys a tick below, sells a tick
//! above) so that about a third of the limit orders cross.
//!
//! A generated [`Op`] names orders loosely ("the k-th open order of this market"); it becomes a
//! concrete [`Envelope`] only when it runs, by looking at the reference model's state, so that
//! cancels and amendments mostly hit live orders. The concrete envelopes are what the replay
//! checks reuse and what a failure prints.

use crate::reference::Model;
use coss_core::{
    Command, Envelope, FEES_PLATFORM, FeeTier, GATEWAY, MarketStatus, NewOrder, OrderKind,
    OrderRef, SelfTradePrevention, TimeInForce,
};
use coss_types::{
    AccountId, Amount, AssetId, ClientOrderId, MarketId, OrderId, Price, Qty, RequestId, Side,
};
use proptest::prelude::*;
use proptest::sample::Index;

pub const BTC: AssetId = AssetId(1);
pub const ETH: AssetId = AssetId(2);
pub const USD: AssetId = AssetId(3);
pub const ASSETS: [AssetId; 4] = [BTC, ETH, USD, AssetId(9)];

pub const BTC_USD: MarketId = MarketId(1);
pub const ETH_BTC: MarketId = MarketId(2);
pub const MARKETS: [MarketId; 2] = [BTC_USD, ETH_BTC];
/// Never listed.
const NO_MARKET: MarketId = MarketId(7);

pub const USERS: [AccountId; 5] = [
    AccountId(1000),
    AccountId(1001),
    AccountId(1002),
    AccountId(1003),
    AccountId(1004),
];
/// A user account that nothing has opened (unless a transfer or fee tier does).
const STRANGER: AccountId = AccountId(1077);

/// Every account whose balances the tests compare.
pub fn accounts() -> Vec<AccountId> {
    let mut all: Vec<AccountId> = (1..=5).map(AccountId).collect();
    all.extend(USERS);
    all.push(STRANGER);
    all
}

/// Milliseconds of the first command.
const EPOCH_MS: u64 = 1_700_000_000_000;

fn cid(n: u8) -> ClientOrderId {
    const POOL: [&str; 4] = ["a", "b-2", "order.3", "x:y/z_4"];
    ClientOrderId::new(POOL[usize::from(n) % POOL.len()]).expect("valid client id")
}

fn envelope(time_ms: u64, command: Command) -> Envelope {
    Envelope { time_ms, command }
}

/// Listings and opening deposits: every stream starts with these.
pub fn preamble() -> Vec<Envelope> {
    let mut commands = vec![
        Command::ListAsset {
            asset: BTC,
            symbol: "BTC".into(),
            decimals: 8,
            fees_shared: true,
            withdrawal_fee: Amount(1_000),
        },
        Command::ListAsset {
            asset: ETH,
            symbol: "ETH".into(),
            decimals: 6,
            fees_shared: true,
            withdrawal_fee: Amount(0),
        },
        Command::ListAsset {
            asset: USD,
            symbol: "USD".into(),
            decimals: 2,
            fees_shared: false,
            withdrawal_fee: Amount(25),
        },
        // 0.01 BTC lots, $1 ticks: one lot costs `price` cents; orders of at least $1.50.
        Command::ListMarket {
            market: BTC_USD,
            base: BTC,
            quote: USD,
            lot_size: Amount(1_000_000),
            tick_size: Amount(100),
            min_notional: Amount(150),
        },
        // Lots of one smallest ETH unit; a lot costs 3 × price BTC units.
        Command::ListMarket {
            market: ETH_BTC,
            base: ETH,
            quote: BTC,
            lot_size: Amount(1),
            tick_size: Amount(3_000_000),
            min_notional: Amount(0),
        },
    ];
    for (n, user) in USERS.iter().enumerate() {
        let n = u128::try_from(n).expect("small");
        for (asset, amount) in [
            (BTC, 40_000_000 + n * 2_000_000),
            (ETH, 40 + n * 7),
            (USD, 5_000 + n * 700),
        ] {
            commands.push(Command::Deposit {
                account: *user,
                asset,
                amount: Amount(amount),
                reference: format!("genesis-{user}-{asset}"),
            });
        }
    }
    commands
        .into_iter()
        .enumerate()
        .map(|(i, command)| envelope(EPOCH_MS + u64::try_from(i).expect("small"), command))
        .collect()
}

/// Who acts.
#[derive(Debug, Clone, Copy)]
pub enum Who {
    User(u8),
    Stranger,
    System,
    Gateway,
}

impl Who {
    fn id(self) -> AccountId {
        match self {
            Who::User(n) => USERS[usize::from(n) % USERS.len()],
            Who::Stranger => STRANGER,
            Who::System => FEES_PLATFORM,
            Who::Gateway => GATEWAY,
        }
    }
}

/// Which order a cancel or an amendment names.
#[derive(Debug, Clone, Copy)]
pub enum Target {
    /// The k-th open order of the market, by its owner (or, if `foreign`, by someone else).
    Open { pick: Index, foreign: bool },
    /// Whatever order has this id.
    Id(u64),
    /// The actor's client order id.
    Client(u8),
}

/// One generated step.
#[derive(Debug, Clone)]
pub enum Op {
    Limit {
        who: Who,
        market: u8,
        side: Side,
        offset: i8,
        qty: u64,
        tif: TimeInForce,
        stp: SelfTradePrevention,
        client: Option<u8>,
    },
    Market {
        who: Who,
        market: u8,
        side: Side,
        qty: u64,
        stp: SelfTradePrevention,
        client: Option<u8>,
    },
    MarketQuote {
        who: Who,
        market: u8,
        side: Side,
        amount: u128,
        stp: SelfTradePrevention,
        client: Option<u8>,
    },
    Stop {
        take_profit: bool,
        who: Who,
        market: u8,
        side: Side,
        stop_offset: i8,
        limit_offset: i8,
        qty: u64,
        tif: TimeInForce,
        stp: SelfTradePrevention,
        client: Option<u8>,
    },
    Cancel {
        who: Who,
        market: u8,
        target: Target,
    },
    CancelAll {
        who: Who,
        market: u8,
    },
    Amend {
        who: Who,
        market: u8,
        target: Target,
        qty_delta: i8,
        price_delta: i8,
    },
    Deposit {
        who: Who,
        asset: u8,
        units: u128,
        reference: u8,
    },
    WithdrawHold {
        request: u8,
        who: Who,
        asset: u8,
        units: u128,
    },
    /// Confirms (or releases) a withdrawal: the k-th pending one, or else whatever `request` is.
    WithdrawFinish {
        confirm: bool,
        pending: Option<Index>,
        request: u8,
    },
    Transfer {
        request: u8,
        from: Who,
        to: Who,
        asset: u8,
        units: u128,
    },
    GatewaySettle {
        request: u8,
        merchant: Who,
        asset: u8,
        units: u128,
        fee_ppm: u32,
    },
    /// A command used as is: parameters, listings, malformed input.
    Raw(Command),
}

/// A step with how far its time stamp lags behind the stream's clock (times may go back).
#[derive(Clone)]
pub struct Step {
    pub op: Op,
    pub lag_ms: u64,
}

/// One line per step, even in proptest's pretty-printed "minimal failing input".
impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let line = format!("{:?}", self.op);
        write!(f, "{line} lag {}ms", self.lag_ms)
    }
}

fn market_of(n: u8) -> MarketId {
    match n % 16 {
        0..=9 => BTC_USD,
        10..=14 => ETH_BTC,
        _ => NO_MARKET,
    }
}

/// How far from the centre buys and sells are priced (more: fewer orders cross).
const SPREAD_TICKS: i64 = 0;

/// The centre of a market's price band, in ticks.
fn centre(market: MarketId) -> i64 {
    if market == ETH_BTC { 12 } else { 100 }
}

/// A price near the centre: buys a tick below it, sells a tick above, so crossing is the
/// exception rather than the rule.
fn price_near(market: MarketId, side: Side, offset: i8) -> Price {
    let skew = match side {
        Side::Buy => -SPREAD_TICKS,
        Side::Sell => SPREAD_TICKS,
    };
    let ticks = centre(market) + i64::from(offset) + skew;
    Price(u64::try_from(ticks.max(0)).unwrap_or(0))
}

fn asset_of(n: u8) -> AssetId {
    match n % 10 {
        0..=2 => BTC,
        3..=5 => ETH,
        6..=8 => USD,
        _ => AssetId(9),
    }
}

/// A typical transfer size of an asset, in its smallest unit.
fn unit_of(asset: AssetId) -> u128 {
    match asset {
        BTC => 500_000,
        ETH => 3,
        USD => 150,
        _ => 1,
    }
}

fn amount(asset: AssetId, units: u128) -> Amount {
    Amount(units.saturating_mul(unit_of(asset)))
}

impl Step {
    /// The concrete command this step means now.
    pub fn concretize(&self, model: &Model, time_ms: u64) -> Envelope {
        let time_ms = time_ms.saturating_sub(self.lag_ms);
        let order = |who: Who, market: u8, side, kind, stp, client: Option<u8>| {
            Command::PlaceOrder(NewOrder {
                account: who.id(),
                market: market_of(market),
                side,
                kind,
                client_id: client.map(cid),
                stp,
            })
        };
        let command = match &self.op {
            Op::Limit {
                who,
                market,
                side,
                offset,
                qty,
                tif,
                stp,
                client,
            } => {
                let price = price_near(market_of(*market), *side, *offset);
                let kind = OrderKind::Limit {
                    price,
                    qty: Qty(*qty),
                    tif: *tif,
                };
                order(*who, *market, *side, kind, *stp, *client)
            }
            Op::Market {
                who,
                market,
                side,
                qty,
                stp,
                client,
            } => order(
                *who,
                *market,
                *side,
                OrderKind::Market { qty: Qty(*qty) },
                *stp,
                *client,
            ),
            Op::MarketQuote {
                who,
                market,
                side,
                amount,
                stp,
                client,
            } => order(
                *who,
                *market,
                *side,
                OrderKind::MarketQuote {
                    amount: Amount(*amount),
                },
                *stp,
                *client,
            ),
            Op::Stop {
                take_profit,
                who,
                market,
                side,
                stop_offset,
                limit_offset,
                qty,
                tif,
                stp,
                client,
            } => {
                let m = market_of(*market);
                let stop = price_near(m, *side, *stop_offset);
                let price = Price(
                    u64::try_from(i64::try_from(stop.0).unwrap_or(0) + i64::from(*limit_offset))
                        .unwrap_or(0),
                );
                let (qty, tif) = (Qty(*qty), *tif);
                let kind = if *take_profit {
                    OrderKind::TakeProfitLimit {
                        stop,
                        price,
                        qty,
                        tif,
                    }
                } else {
                    OrderKind::StopLimit {
                        stop,
                        price,
                        qty,
                        tif,
                    }
                };
                order(*who, *market, *side, kind, *stp, *client)
            }
            Op::Cancel {
                who,
                market,
                target,
            } => {
                let (market, account, order, _) =
                    resolve_target(model, *market, *who, *target, false);
                Command::Cancel {
                    account,
                    market,
                    order,
                }
            }
            Op::CancelAll { who, market } => Command::CancelAll {
                account: who.id(),
                market: market_of(*market),
            },
            Op::Amend {
                who,
                market,
                target,
                qty_delta,
                price_delta,
            } => {
                let (market, account, order, current) =
                    resolve_target(model, *market, *who, *target, true);
                let (qty, price) = current.unwrap_or((Qty(3), Price(100)));
                let shift = |value: u64, delta: i8| {
                    u64::try_from(i64::try_from(value).unwrap_or(0) + i64::from(delta)).unwrap_or(0)
                };
                Command::Amend {
                    account,
                    market,
                    order,
                    qty: Qty(shift(qty.0, *qty_delta)),
                    price: Price(shift(price.0, *price_delta)),
                }
            }
            Op::Deposit {
                who,
                asset,
                units,
                reference,
            } => {
                let asset = asset_of(*asset);
                let reference = match reference {
                    200 => String::new(),
                    201 => "r".repeat(129),
                    202 => "r".repeat(128),
                    n => format!("tx-{n}"),
                };
                Command::Deposit {
                    account: who.id(),
                    asset,
                    amount: amount(asset, *units),
                    reference,
                }
            }
            Op::WithdrawHold {
                request,
                who,
                asset,
                units,
            } => {
                let asset = asset_of(*asset);
                Command::WithdrawHold {
                    request: RequestId(u128::from(*request)),
                    account: who.id(),
                    asset,
                    amount: amount(asset, *units),
                }
            }
            Op::WithdrawFinish {
                confirm,
                pending,
                request,
            } => {
                let open = model.pending_withdrawals();
                let request = match pending {
                    Some(pick) if !open.is_empty() => open[pick.index(open.len())],
                    _ => RequestId(u128::from(*request)),
                };
                if *confirm {
                    Command::WithdrawConfirm { request }
                } else {
                    Command::WithdrawRelease { request }
                }
            }
            Op::Transfer {
                request,
                from,
                to,
                asset,
                units,
            } => {
                let asset = asset_of(*asset);
                Command::Transfer {
                    request: RequestId(u128::from(*request)),
                    from: from.id(),
                    to: to.id(),
                    asset,
                    amount: amount(asset, *units),
                }
            }
            Op::GatewaySettle {
                request,
                merchant,
                asset,
                units,
                fee_ppm,
            } => {
                let asset = asset_of(*asset);
                Command::GatewaySettle {
                    request: RequestId(u128::from(*request)),
                    merchant: merchant.id(),
                    asset,
                    amount: amount(asset, *units),
                    fee_ppm: *fee_ppm,
                }
            }
            Op::Raw(command) => command.clone(),
        };
        envelope(time_ms, command)
    }
}

/// The market, account, order reference and (quantity, price) a target names right now.
/// An open order (only a resting one if `resting`) is picked among all markets (in its own
/// market, unless `market` names the unlisted one).
fn resolve_target(
    model: &Model,
    market: u8,
    who: Who,
    target: Target,
    resting: bool,
) -> (MarketId, AccountId, OrderRef, Option<(Qty, Price)>) {
    let market = market_of(market);
    match target {
        Target::Open { pick, foreign } => {
            let open: Vec<_> = MARKETS
                .iter()
                .flat_map(|&m| model.open_orders_in(m).into_iter().map(move |o| (m, o)))
                .filter(|(_, o)| !resting || o.resting)
                .collect();
            if open.is_empty() {
                return (market, who.id(), OrderRef::Id(OrderId(1)), None);
            }
            let (home, o) = open[pick.index(open.len())];
            let market = if market == NO_MARKET { market } else { home };
            let account = if foreign { who.id() } else { o.account };
            (market, account, OrderRef::Id(o.id), Some((o.qty, o.price)))
        }
        Target::Id(id) => (market, who.id(), OrderRef::Id(OrderId(id)), None),
        Target::Client(n) => (market, who.id(), OrderRef::Client(cid(n)), None),
    }
}

// ----- Strategies -----

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        40 => (0u8..5).prop_map(Who::User),
        1 => Just(Who::Stranger),
        1 => Just(Who::System),
        3 => Just(Who::Gateway),
    ]
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Buy), Just(Side::Sell)]
}

fn stp() -> impl Strategy<Value = SelfTradePrevention> {
    prop_oneof![
        4 => Just(SelfTradePrevention::None),
        1 => Just(SelfTradePrevention::ExpireTaker),
        1 => Just(SelfTradePrevention::ExpireMaker),
        1 => Just(SelfTradePrevention::ExpireBoth),
    ]
}

fn tif() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![
        6 => Just(TimeInForce::Gtc),
        2 => Just(TimeInForce::Ioc),
        2 => Just(TimeInForce::Fok),
        1 => Just(TimeInForce::PostOnly),
    ]
}

fn qty() -> impl Strategy<Value = u64> {
    prop_oneof![
        30 => 1u64..=8,
        4 => 9u64..=40,
        1 => Just(0u64),
        1 => Just(u64::MAX),
    ]
}

fn client() -> impl Strategy<Value = Option<u8>> {
    prop_oneof![3 => Just(None), 1 => (0u8..4).prop_map(Some)]
}

fn units() -> impl Strategy<Value = u128> {
    prop_oneof![
        20 => 1u128..=12,
        1 => Just(0u128),
        1 => Just(u128::MAX / 4),
    ]
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        8 => (any::<Index>(), prop::bool::weighted(0.1))
            .prop_map(|(pick, foreign)| Target::Open { pick, foreign }),
        1 => (0u64..60).prop_map(Target::Id),
        2 => (0u8..4).prop_map(Target::Client),
    ]
}

fn fee_tier() -> impl Strategy<Value = FeeTier> {
    let rate = prop_oneof![
        Just(0u32),
        Just(1),
        Just(999),
        Just(2_500),
        Just(33_333),
        Just(100_000),
        Just(100_001),
    ];
    (rate.clone(), rate).prop_map(|(maker_ppm, taker_ppm)| FeeTier {
        maker_ppm,
        taker_ppm,
    })
}

/// Parameter changes, listings and malformed commands.
fn raw() -> impl Strategy<Value = Command> {
    fn order(account: AccountId, market: MarketId, side: Side, kind: OrderKind) -> Command {
        Command::PlaceOrder(NewOrder {
            account,
            market,
            side,
            kind,
            client_id: None,
            stp: SelfTradePrevention::None,
        })
    }
    prop_oneof![
        (0u8..3, 0u8..10).prop_map(|(m, s)| Command::SetMarketStatus {
            market: [BTC_USD, ETH_BTC, NO_MARKET][usize::from(m)],
            status: match s {
                0..=6 => MarketStatus::Trading,
                7 | 8 => MarketStatus::Halted,
                _ => MarketStatus::Hidden,
            },
        }),
        (0u8..5, 0u8..9).prop_map(|(u, tier)| Command::SetAccountFeeTier {
            account: USERS[usize::from(u)],
            tier,
        }),
        prop::collection::vec(fee_tier(), 0..4).prop_map(|tiers| Command::SetFeeSchedule { tiers }),
        prop_oneof![
            Just(0u32),
            Just(1),
            Just(333_333),
            Just(500_000),
            Just(1_000_000),
            Just(1_000_001),
        ]
        .prop_map(|share_ppm| Command::SetHoldersShare { share_ppm }),
        prop_oneof![Just(0u32), Just(2), Just(3), Just(5), Just(200)]
            .prop_map(|max_open_orders| Command::SetOpenOrderLimit { max_open_orders }),
        prop_oneof![Just(0u32), Just(7_500), Just(100_000), Just(100_001)]
            .prop_map(|fee_ppm| Command::SetGatewayFee { fee_ppm }),
        (
            0u8..10,
            prop_oneof![Just(0u128), Just(1), Just(7), Just(1_000_000)]
        )
            .prop_map(|(a, minimum)| Command::SetWithdrawalMinimum {
                asset: asset_of(a),
                minimum: Amount(minimum),
            }),
        (
            0u8..10,
            prop_oneof![Just(0u128), Just(1), Just(7), Just(1_000)]
        )
            .prop_map(|(a, fee)| Command::SetWithdrawalFee {
                asset: asset_of(a),
                fee: Amount(fee),
            }),
        (
            prop_oneof![Just(BTC), Just(AssetId(5)), Just(AssetId(1024))],
            prop_oneof![Just("DOGE"), Just("BTC"), Just("bad"), Just("")],
            prop_oneof![Just(0u8), Just(8), Just(31)],
        )
            .prop_map(|(asset, symbol, decimals)| Command::ListAsset {
                asset,
                symbol: symbol.into(),
                decimals,
                fees_shared: true,
                withdrawal_fee: Amount(0),
            }),
        (
            prop_oneof![Just(BTC_USD), Just(MarketId(3)), Just(MarketId(4096))],
            prop_oneof![Just(BTC), Just(ETH), Just(AssetId(5)), Just(AssetId(9))],
            prop_oneof![Just(USD), Just(ETH)],
            prop_oneof![Just(0u128), Just(1), Just(1_000_000)],
            prop_oneof![Just(0u128), Just(7), Just(100)],
        )
            .prop_map(|(market, base, quote, lot, tick)| Command::ListMarket {
                market,
                base,
                quote,
                lot_size: Amount(lot),
                tick_size: Amount(tick),
                min_notional: Amount(0),
            }),
        (
            0u8..5,
            side(),
            prop_oneof![Just(0u64), Just(100), Just(u64::MAX)]
        )
            .prop_map(|(u, side, price)| order(
                USERS[usize::from(u)],
                ETH_BTC,
                side,
                OrderKind::Limit {
                    price: Price(price),
                    qty: Qty(u64::MAX),
                    tif: TimeInForce::Gtc,
                },
            )),
        (0u8..5, side(), prop_oneof![Just(0u64), Just(99)]).prop_map(|(u, side, stop)| order(
            USERS[usize::from(u)],
            BTC_USD,
            side,
            OrderKind::StopLimit {
                stop: Price(stop),
                price: Price(100),
                qty: Qty(2),
                tif: TimeInForce::PostOnly,
            },
        )),
        (0u8..5, prop_oneof![Just(0u128), Just(u128::MAX)]).prop_map(|(u, amount)| order(
            USERS[usize::from(u)],
            BTC_USD,
            Side::Buy,
            OrderKind::MarketQuote {
                amount: Amount(amount)
            },
        )),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        45 => (who(), 0u8..16, side(), -3i8..=3, qty(), tif(), stp(), client()).prop_map(
            |(who, market, side, offset, qty, tif, stp, client)| Op::Limit {
                who, market, side, offset, qty, tif, stp, client,
            }
        ),
        4 => (who(), 0u8..16, side(), qty(), stp(), client()).prop_map(
            |(who, market, side, qty, stp, client)| Op::Market { who, market, side, qty, stp, client }
        ),
        3 => (who(), 0u8..16, side(), prop_oneof![1u128..=1_500, Just(0), Just(149)], stp(), client())
            .prop_map(|(who, market, side, amount, stp, client)| Op::MarketQuote {
                who, market, side, amount, stp, client,
            }),
        8 => (
            (any::<bool>(), who(), 0u8..16, side()),
            (-4i8..=4, -2i8..=2, qty(), tif(), stp(), client()),
        )
            .prop_map(
                |((take_profit, who, market, side), (stop_offset, limit_offset, qty, tif, stp, client))| {
                    Op::Stop {
                        take_profit, who, market, side, stop_offset, limit_offset, qty, tif, stp, client,
                    }
                }
            ),
        5 => (who(), 0u8..16, target()).prop_map(|(who, market, target)| Op::Cancel { who, market, target }),
        1 => (who(), 0u8..16).prop_map(|(who, market)| Op::CancelAll { who, market }),
        6 => (who(), 0u8..16, target(), -3i8..=2, prop_oneof![3 => Just(0i8), 2 => -2i8..=2])
            .prop_map(|(who, market, target, qty_delta, price_delta)| Op::Amend {
                who, market, target, qty_delta, price_delta,
            }),
        4 => (who(), 0u8..10, units(), prop_oneof![20 => 0u8..40, 1 => 200u8..=202]).prop_map(
            |(who, asset, units, reference)| Op::Deposit { who, asset, units, reference }
        ),
        3 => (0u8..12, who(), 0u8..10, units()).prop_map(|(request, who, asset, units)| {
            Op::WithdrawHold { request, who, asset, units }
        }),
        3 => (prop::bool::weighted(0.7), prop::option::weighted(0.7, any::<Index>()), 0u8..12)
            .prop_map(|(confirm, pending, request)| Op::WithdrawFinish { confirm, pending, request }),
        3 => (0u8..12, who(), who(), 0u8..10, units()).prop_map(
            |(request, from, to, asset, units)| Op::Transfer { request, from, to, asset, units }
        ),
        2 => (0u8..12, who(), 0u8..10, units(), prop_oneof![Just(7_500u32), Just(0), Just(100_000), Just(100_001), 0u32..20_000])
            .prop_map(|(request, merchant, asset, units, fee_ppm)| {
                Op::GatewaySettle { request, merchant, asset, units, fee_ppm }
            }),
        3 => raw().prop_map(Op::Raw),
        // Locks come with unlocks about as often, so a locked user trades again later.
        1 => (0u8..6, any::<bool>()).prop_map(|(u, locked)| Op::Raw(Command::SetAccountLock {
            account: USERS.get(usize::from(u)).copied().unwrap_or(FEES_PLATFORM),
            locked,
        })),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    (op(), prop_oneof![9 => Just(0u64), 1 => 1u64..50]).prop_map(|(op, lag_ms)| Step { op, lag_ms })
}

/// A random command stream of up to `max_len` steps.
pub fn steps(max_len: usize) -> impl Strategy<Value = Vec<Step>> {
    steps_between(1, max_len)
}

/// A random command stream of `min_len` to `max_len` steps.
pub fn steps_between(min_len: usize, max_len: usize) -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), min_len..=max_len)
}
