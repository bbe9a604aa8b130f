//! The projection against the exchange core it projects: after any stream of commands, the
//! books by level, open orders and balances it derives from the events alone equal the core's.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_core::{
    Command, Envelope, Event, Exchange, NewOrder, OrderKind, OrderRef, SelfTradePrevention,
    TimeInForce,
};
use coss_market::{Interval, OrderStatus, Projection};
use coss_types::{AccountId, Amount, AssetId, MarketId, OrderId, Price, Qty, Side};
use proptest::prelude::*;

const MARKET: MarketId = MarketId(1);
const ACCOUNTS: u64 = 4;

fn setup() -> Vec<Command> {
    let mut commands = vec![
        Command::ListAsset {
            asset: AssetId(1),
            symbol: "ETH".into(),
            decimals: 18,
            fees_shared: true,
            withdrawal_fee: Amount(0),
        },
        Command::ListAsset {
            asset: AssetId(2),
            symbol: "TUSD".into(),
            decimals: 6,
            fees_shared: true,
            withdrawal_fee: Amount(0),
        },
        Command::ListMarket {
            market: MARKET,
            base: AssetId(1),
            quote: AssetId(2),
            lot_size: Amount(100_000_000_000_000), // 0.0001 ETH
            tick_size: Amount(10_000),             // 0.01 TUSD
            min_notional: Amount(1),
        },
    ];
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
    let mut exchange = Exchange::new();
    let mut projection = Projection::new();
    let mut events: Vec<Event> = Vec::new();
    for (n, command) in setup().iter().chain(commands).enumerate() {
        events.clear();
        let envelope = Envelope {
            time_ms: 1_700_000_000_000 + n as u64 * 700,
            command: command.clone(),
        };
        let _ = exchange.apply(&envelope, &mut events);
        for event in &events {
            projection.apply(event);
        }
        let _ = projection.finish_batch();
    }
    (exchange, projection)
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

#[test]
fn an_order_reports_its_fills_and_ends_filled() {
    let place = |account: u64, side, price, qty| {
        Command::PlaceOrder(NewOrder {
            account: AccountId(1000 + account),
            market: MARKET,
            side,
            kind: OrderKind::Limit {
                price: Price(price),
                qty: Qty(qty),
                tif: TimeInForce::Gtc,
            },
            client_id: None,
            stp: SelfTradePrevention::None,
        })
    };
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
