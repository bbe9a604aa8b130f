//! The projection against the exchange core it projects: after any stream of commands, the
//! books by level, open orders and balances it derives from the events alone equal the core's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_core::{
    Command, Envelope, Event, Exchange, NewOrder, OrderKind, OrderRef, SelfTradePrevention,
    TimeInForce,
};
use coss_market::{Candle, Interval, OrderStatus, Projection, Retention, candles_from_minutes};
use coss_store::CandleRow;
use coss_types::{AccountId, Amount, AssetId, MarketId, OrderId, Price, Qty, Side};
use proptest::prelude::*;

const MARKET: MarketId = MarketId(1);
const ACCOUNTS: u64 = 4;

fn setup() -> Vec<Command> {
    let mut commands = coss_testkit::eth_tusd_with_minimum(1).to_vec();
    for n in 0..ACCOUNTS {
        for (asset, amount) in [(1, 10u128.pow(21)), (2, 10u128.pow(12))] {
            commands.push(Command::Deposit {
                account: AccountId(1000 + n),
                asset: AssetId(asset),
                amount: Amount(amount),
                reference: format!("seed-{n}-{asset}"),
            });
        }
    }
    commands
}

fn tif() -> impl Strategy<Value = TimeInForce> {
    prop_oneof![
        4 => Just(TimeInForce::Gtc),
        1 => Just(TimeInForce::Ioc),
        1 => Just(TimeInForce::Fok),
        1 => Just(TimeInForce::PostOnly),
    ]
}

fn stp() -> impl Strategy<Value = SelfTradePrevention> {
    prop_oneof![
        Just(SelfTradePrevention::None),
        Just(SelfTradePrevention::ExpireTaker),
        Just(SelfTradePrevention::ExpireMaker),
        Just(SelfTradePrevention::ExpireBoth),
    ]
}

fn command() -> impl Strategy<Value = Command> {
    let account = (0..ACCOUNTS).prop_map(|n| AccountId(1000 + n));
    let side = prop_oneof![Just(Side::Buy), Just(Side::Sell)];
    let price = (95u64..106).prop_map(Price);
    let qty = (1u64..20).prop_map(Qty);
    let kind = prop_oneof![
        6 => (price.clone(), qty.clone(), tif()).prop_map(|(price, qty, tif)| OrderKind::Limit { price, qty, tif }),
        1 => qty.clone().prop_map(|qty| OrderKind::Market { qty }),
        1 => (1u128..5_000_000).prop_map(|a| OrderKind::MarketQuote { amount: Amount(a) }),
        1 => (price.clone(), price.clone(), qty.clone(), tif()).prop_map(|(stop, price, qty, tif)| OrderKind::StopLimit { stop, price, qty, tif }),
        1 => (price.clone(), price.clone(), qty.clone(), tif()).prop_map(|(stop, price, qty, tif)| OrderKind::TakeProfitLimit { stop, price, qty, tif }),
    ];
    prop_oneof![
        8 => (account.clone(), side, kind, stp()).prop_map(|(account, side, kind, stp)| {
            Command::PlaceOrder(NewOrder { account, market: MARKET, side, kind, client_id: None, stp })
        }),
        2 => (account.clone(), 1u64..60).prop_map(|(account, id)| Command::Cancel {
            account, market: MARKET, order: OrderRef::Id(OrderId(id)),
        }),
        2 => (account.clone(), 1u64..60, price, qty).prop_map(|(account, id, price, qty)| Command::Amend {
            account, market: MARKET, order: OrderRef::Id(OrderId(id)), qty, price,
        }),
        1 => account.prop_map(|account| Command::CancelAll { account, market: MARKET }),
    ]
}

/// Applies the commands to a core and its events to a projection, one batch per command.
fn run(commands: &[Command]) -> (Exchange, Projection) {
    let mut projections = [Projection::new()];
    let exchange = run_into(commands, 700, &mut projections);
    let [projection] = projections;
    (exchange, projection)
}

/// Applies the commands to a core, `step_ms` apart, and its events to every projection.
fn run_into(commands: &[Command], step_ms: u64, projections: &mut [Projection]) -> Exchange {
    let mut exchange = Exchange::new();
    let mut events: Vec<Event> = Vec::new();
    for (n, command) in setup().iter().chain(commands).enumerate() {
        events.clear();
        let envelope = Envelope {
            time_ms: 1_700_000_000_000 + n as u64 * step_ms,
            command: command.clone(),
        };
        let _ = exchange.apply(&envelope, &mut events);
        for projection in projections.iter_mut() {
            for event in &events {
                projection.apply(event);
            }
            let _ = projection.finish_batch();
        }
    }
    exchange
}

const SMALL: Retention = Retention {
    trades_per_market: 3,
    done_orders: 4,
    candles_per_interval: 2,
    minute_candles: 3,
};

/// A small projection against a full one fed the same events: the same live state, and of
/// the history only the newest part, each kept item identical, within the bounds.
fn check_retention(full: &Projection, small: &Projection) -> Result<(), TestCaseError> {
    let (f, s) = (full.market(MARKET).unwrap(), small.market(MARKET).unwrap());
    for side in [Side::Buy, Side::Sell] {
        prop_assert_eq!(f.book.top(side, 1000), s.book.top(side, 1000));
    }
    prop_assert_eq!(f.book.update_id, s.book.update_id);
    prop_assert!(s.trades.len() <= SMALL.trades_per_market);
    let newest: Vec<_> = f.recent_trades(s.trades.len()).collect();
    prop_assert_eq!(newest, s.trades.iter().collect::<Vec<_>>());
    let mut done = 0;
    for n in 0..ACCOUNTS {
        let account = AccountId(1000 + n);
        prop_assert_eq!(
            full.open_orders(account).collect::<Vec<_>>(),
            small.open_orders(account).collect::<Vec<_>>()
        );
        prop_assert_eq!(full.balances(account), small.balances(account));
        for order in small.orders_of(account) {
            prop_assert_eq!(Some(order), full.order(order.id));
            if !order.status.is_open() {
                done += 1;
            }
        }
        for trade in small.trades_of(account) {
            prop_assert!(full.trades_of(account).any(|t| t == trade));
        }
    }
    prop_assert!(done <= SMALL.done_orders);
    for interval in Interval::ALL {
        let kept = s.candles(interval, Some(0), None, usize::MAX);
        let all = f.candles(interval, Some(0), None, usize::MAX);
        let bound = match interval {
            Interval::M1 => SMALL.minute_candles,
            Interval::S1 | Interval::M3 | Interval::M5 | Interval::M15 | Interval::M30 => {
                SMALL.candles_per_interval
            }
            _ => usize::MAX,
        };
        prop_assert!(kept.len() <= bound, "{} candles", interval.name());
        prop_assert_eq!(
            &all[all.len() - kept.len()..],
            &kept[..],
            "{} candles",
            interval.name()
        );
        let evicted = s.evicted_candles[interval.index()];
        prop_assert!(kept.first().is_none_or(|k| k.open_time >= evicted));
    }
    Ok(())
}

/// A candle as the history stores it.
fn row(c: &Candle) -> CandleRow {
    coss_market::candle_row(MARKET, c)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn a_bounded_projection_keeps_the_live_state_and_the_newest_history(
        commands in prop::collection::vec(command(), 1..120),
        step_ms in prop_oneof![Just(700u64), Just(47_000), Just(400_000)],
    ) {
        let mut projections = [Projection::new(), Projection::with_retention(SMALL)];
        let _ = run_into(&commands, step_ms, &mut projections);
        check_retention(&projections[0], &projections[1])?;
    }

    #[test]
    fn candles_made_from_stored_minutes_equal_the_projections_own(
        commands in prop::collection::vec(command(), 1..120),
        step_ms in prop_oneof![Just(47_000u64), Just(400_000)],
    ) {
        let mut projections = [Projection::new()];
        let _ = run_into(&commands, step_ms, &mut projections);
        let view = projections[0].market(MARKET).unwrap();
        let minutes: Vec<CandleRow> = view
            .candles(Interval::M1, Some(0), None, usize::MAX)
            .iter()
            .map(row)
            .collect();
        for interval in Interval::ALL.into_iter().filter(|i| *i != Interval::S1) {
            let own: Vec<Candle> = view
                .candles(interval, Some(0), None, usize::MAX)
                .into_iter()
                .map(|c| Candle { first_trade: 0, last_trade: 0, ..c })
                .collect();
            prop_assert_eq!(candles_from_minutes(interval, &minutes), own, "{}", interval.name());
        }
    }
}

fn check(exchange: &Exchange, projection: &Projection) -> Result<(), TestCaseError> {
    let view = projection.market(MARKET).unwrap();
    for side in [Side::Buy, Side::Sell] {
        let core: Vec<(Price, u64)> = exchange
            .depth(MARKET, side, 1000)
            .iter()
            .map(|l| (l.price, l.qty.0))
            .collect();
        prop_assert_eq!(&view.book.top(side, 1000), &core, "{:?} levels", side);
    }
    for n in 0..ACCOUNTS {
        let account = AccountId(1000 + n);
        let open = projection.open_orders(account).count() as u32;
        prop_assert_eq!(
            open,
            exchange.open_orders(account),
            "open orders of {}",
            account
        );
        for asset in [AssetId(1), AssetId(2)] {
            let core = exchange.balance(account, asset);
            let (available, locked) = projection
                .balances(account)
                .into_iter()
                .find(|(a, _, _)| *a == asset)
                .map(|(_, a, l)| (a, l))
                .unwrap_or_default();
            prop_assert_eq!((available, locked), (core.available.0, core.locked.0));
        }
        for order in projection.open_orders(account) {
            prop_assert!(order.status.is_open());
            if let (Some(qty), true) = (order.qty, order.working_ms.is_some())
                && let Some(resting) = exchange.resting_order(MARKET, order.id)
            {
                prop_assert_eq!(
                    qty.0 - order.executed,
                    resting.qty.0,
                    "open qty of {}",
                    order.id
                );
                prop_assert_eq!(Some(resting.price), order.price);
            }
        }
    }
    // Candles hold every trade exactly once, in every interval.
    let traded: u128 = view.trades.iter().map(|t| u128::from(t.qty.0)).sum();
    for interval in Interval::ALL {
        let volume: u128 = view
            .candles(interval, Some(0), None, usize::MAX)
            .iter()
            .map(|c| c.volume)
            .sum();
        prop_assert_eq!(volume, traded, "{} candles", interval.name());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn the_projection_agrees_with_the_core(commands in prop::collection::vec(command(), 1..120)) {
        let (exchange, projection) = run(&commands);
        check(&exchange, &projection)?;
    }
}

/// A good-till-cancelled limit order of seeded account `account`.
fn place(account: u64, side: Side, price: u64, qty: u64) -> Command {
    coss_testkit::limit_order(AccountId(1000 + account), side, price, qty)
}

#[test]
fn an_order_reports_its_fills_and_ends_filled() {
    let (_, projection) = run(&[place(0, Side::Sell, 100, 5), place(1, Side::Buy, 101, 8)]);
    let maker = projection.order(OrderId(1)).unwrap();
    assert_eq!(maker.status, OrderStatus::Filled);
    assert_eq!(maker.executed, 5);
    // 5 lots of 0.0001 ETH at 1.00 TUSD = 0.0005 TUSD = 500 units.
    assert_eq!(maker.cum_quote, 500);
    let taker = projection.order(OrderId(2)).unwrap();
    assert_eq!(taker.status, OrderStatus::PartiallyFilled);
    assert_eq!(
        projection.market(MARKET).unwrap().book.best(Side::Buy),
        Some((Price(101), 3))
    );
    assert_eq!(projection.trades_of(AccountId(1000)).count(), 1);
    assert_eq!(projection.trades_of(AccountId(1001)).count(), 1);
}

#[test]
fn history_beyond_the_retention_leaves_memory_and_open_orders_stay() {
    // Ten crossings a few minutes apart, and one order left resting first.
    let mut commands = vec![place(3, Side::Sell, 300_000, 1)];
    for _ in 0..10 {
        commands.push(place(0, Side::Sell, 200_000, 1));
        commands.push(place(1, Side::Buy, 200_000, 1));
    }
    let mut projections = [Projection::new(), Projection::with_retention(SMALL)];
    let _ = run_into(&commands, 200_000, &mut projections);
    let [full, small] = &projections;
    check_retention(full, small).unwrap();
    let view = small.market(MARKET).unwrap();
    assert_eq!(view.trades.len(), SMALL.trades_per_market);
    assert_eq!(
        view.evicted_trades,
        full.market(MARKET).unwrap().trades[6].id
    );
    assert_eq!(
        small.orders_of(AccountId(1000)).count() + small.orders_of(AccountId(1001)).count(),
        SMALL.done_orders
    );
    assert_eq!(small.open_orders(AccountId(1003)).count(), 1);
    assert!(view.evicted_candles[Interval::M1.index()] > 0);
    assert_eq!(
        view.candles(Interval::M1, Some(0), None, 100).len(),
        SMALL.minute_candles
    );
    // Hours and longer are all kept.
    assert_eq!(
        view.candles(Interval::H1, Some(0), None, 100),
        full.market(MARKET)
            .unwrap()
            .candles(Interval::H1, Some(0), None, 100)
    );
}

#[test]
fn with_a_history_only_what_it_holds_leaves_memory() {
    let mut commands = Vec::new();
    for _ in 0..10 {
        commands.push(place(0, Side::Sell, 200_000, 1));
        commands.push(place(1, Side::Buy, 200_000, 1));
    }
    let mut projections = [Projection::with_history(SMALL)];
    let _ = run_into(&commands, 1_000, &mut projections);
    let [projection] = &mut projections;
    // Nothing persisted yet: everything stays.
    assert_eq!(projection.market(MARKET).unwrap().trades.len(), 10);
    assert_eq!(projection.orders_of(AccountId(1000)).count(), 10);
    // The history now holds it all; the next batch lets go.
    let (seq, time) = (projection.seq(), projection.time_ms());
    projection.set_persisted(seq, time);
    let _ = projection.finish_batch();
    assert_eq!(
        projection.market(MARKET).unwrap().trades.len(),
        SMALL.trades_per_market
    );
    assert_eq!(
        projection.orders_of(AccountId(1000)).count()
            + projection.orders_of(AccountId(1001)).count(),
        SMALL.done_orders
    );
}
