//! Stop-limit and take-profit-limit orders: they wait, funds locked, outside the book until the
//! market's last trade price reaches their stop, then act as limit orders.
//!
//! - stop-limit buy and take-profit sell fire when the price rises to the stop;
//! - stop-limit sell and take-profit buy fire when it falls to the stop.

use crate::support::*;
use coss_core::{DoneReason, EventKind, RejectReason, TimeInForce};
use coss_types::{Amount, Price, RequestId, Side};

/// ALICE to EVE funded, and a first trade at `price` (between CAROL and DAVE).
fn traded_at(price: u64) -> World {
    let mut w = World::new();
    for account in [ALICE, BOB, CAROL, DAVE, EVE] {
        w.fund(account);
    }
    w.trade_at(price);
    w
}

fn triggered(w: &World) -> bool {
    w.last_events()
        .iter()
        .any(|e| matches!(e.kind, EventKind::OrderTriggered { .. }))
}

#[test]
fn a_stop_limit_buy_waits_with_funds_locked_until_the_last_price_rises_to_its_stop() {
    let mut w = traded_at(100);
    let new = stop_limit(ALICE, Side::Buy, 105, 106, 10);
    let stop = w.place(new);
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::OrderAccepted { order: stop, new },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: USDT,
                available: Amount(FUND_USDT - 1_060),
                locked: Amount(1_060),
            },
        ]
    );
    assert!(w.book(Side::Buy).is_empty());
    assert_eq!(w.resting(stop), None);
    assert_eq!(w.ex.open_orders(ALICE), 1);

    w.trade_at(104);
    assert!(!triggered(&w));

    let ask = w.place(limit(BOB, Side::Sell, 106, 10));
    let seller = w.place(limit(CAROL, Side::Sell, 105, 10));
    let buyer = w.place(limit_tif(DAVE, Side::Buy, 105, 10, TimeInForce::Ioc));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {buyer}"),
            format!("trade 10@105 maker {seller} taker {buyer}"),
            format!("done {seller} Filled unfilled 0"),
            format!("done {buyer} Filled unfilled 0"),
            format!("triggered {stop} at 105"),
            format!("trade 10@106 maker {ask} taker {stop}"),
            format!("done {ask} Filled unfilled 0"),
            format!("done {stop} Filled unfilled 0"),
        ]
    );
    assert_eq!(w.available(ALICE, USDT), FUND_USDT - 1_060);
    assert_eq!(w.locked(ALICE, USDT), 0);
    assert_eq!(w.available(ALICE, BTC), FUND_BTC + 100_000 - 200);
    assert_eq!(w.ex.open_orders(ALICE), 0);
}

#[test]
fn a_stop_limit_sell_triggers_when_the_last_price_falls_to_its_stop() {
    let mut w = traded_at(100);
    let stop = w.place(stop_limit(ALICE, Side::Sell, 95, 94, 20));
    assert_eq!(w.locked(ALICE, BTC), 20 * LOT_SATS);
    w.trade_at(96);
    assert!(!triggered(&w));
    w.trade_at(95);
    assert_eq!(
        w.story()[4..],
        [format!("triggered {stop} at 95")],
        "no bid left: the triggered order rests"
    );
    assert_eq!(w.resting(stop), Some((94, 20)));
    assert_eq!(w.locked(ALICE, BTC), 20 * LOT_SATS);
    assert_eq!(w.ex.open_orders(ALICE), 1);
}

#[test]
fn a_take_profit_buy_triggers_when_the_last_price_falls_to_its_stop() {
    let mut w = traded_at(100);
    let order = w.place(take_profit(ALICE, Side::Buy, 95, 96, 20));
    assert_eq!(w.locked(ALICE, USDT), 20 * 96);
    w.trade_at(96);
    assert!(!triggered(&w));
    w.trade_at(95);
    assert_eq!(w.story()[4..], [format!("triggered {order} at 95")]);
    assert_eq!(w.resting(order), Some((96, 20)));
    assert_eq!(w.locked(ALICE, USDT), 20 * 96);
}

#[test]
fn a_take_profit_sell_triggers_when_the_last_price_rises_to_its_stop() {
    let mut w = traded_at(100);
    let order = w.place(take_profit(ALICE, Side::Sell, 105, 104, 10));
    assert_eq!(w.locked(ALICE, BTC), 10 * LOT_SATS);
    w.trade_at(104);
    assert!(!triggered(&w));
    w.trade_at(105);
    assert_eq!(w.story()[4..], [format!("triggered {order} at 105")]);
    assert_eq!(w.resting(order), Some((104, 10)));
}

#[test]
fn a_stop_whose_trigger_the_last_price_already_reached_is_rejected() {
    let mut w = traded_at(100);
    for new in [
        stop_limit(ALICE, Side::Buy, 100, 100, 20),
        stop_limit(ALICE, Side::Buy, 99, 99, 20),
        stop_limit(ALICE, Side::Sell, 100, 100, 20),
        stop_limit(ALICE, Side::Sell, 101, 101, 20),
        take_profit(ALICE, Side::Buy, 100, 100, 20),
        take_profit(ALICE, Side::Buy, 101, 101, 20),
        take_profit(ALICE, Side::Sell, 100, 100, 20),
        take_profit(ALICE, Side::Sell, 99, 99, 20),
    ] {
        w.place_rejected(new, RejectReason::WouldTriggerImmediately);
    }
    w.place(stop_limit(ALICE, Side::Buy, 101, 101, 20));
    w.place(stop_limit(ALICE, Side::Sell, 99, 99, 20));
    w.place(take_profit(ALICE, Side::Buy, 99, 99, 20));
    w.place(take_profit(ALICE, Side::Sell, 101, 101, 20));
    assert_eq!(w.ex.open_orders(ALICE), 4);
    assert_eq!(w.ex.resting_orders(BTC_USDT), 0);
}

#[test]
fn stops_wait_when_the_market_has_not_traded_yet() {
    let mut w = World::new();
    w.fund(ALICE);
    w.place(stop_limit(ALICE, Side::Buy, 1, 100, 10));
    w.place(stop_limit(ALICE, Side::Sell, 1_000_000, 100, 10));
    assert_eq!(w.ex.open_orders(ALICE), 2);
}

#[test]
fn a_stop_cannot_be_post_only() {
    let mut w = traded_at(100);
    w.place_rejected(
        stop_limit(ALICE, Side::Buy, 105, 106, 10).tif(TimeInForce::PostOnly),
        RejectReason::InvalidTimeInForce,
    );
    w.place_rejected(
        take_profit(ALICE, Side::Sell, 105, 106, 10).tif(TimeInForce::PostOnly),
        RejectReason::InvalidTimeInForce,
    );
}

#[test]
fn cancelling_a_waiting_stop_returns_its_funds_and_it_never_fires() {
    let mut w = traded_at(100);
    let stop = w.place(stop_limit(ALICE, Side::Buy, 105, 106, 10).client("sl"));
    w.ok(cancel_client(ALICE, "sl"));
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::OrderDone {
                order: stop,
                account: ALICE,
                market: BTC_USDT,
                reason: DoneReason::Cancelled,
                unfilled: coss_types::Qty(10),
            },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: USDT,
                available: Amount(FUND_USDT),
                locked: Amount(0),
            },
        ]
    );
    assert_eq!(w.ex.open_orders(ALICE), 0);
    w.trade_at(106);
    assert!(!triggered(&w));
    w.rejects(cancel(ALICE, stop), RejectReason::UnknownOrder);
}

#[test]
fn a_waiting_stop_cannot_be_amended() {
    let mut w = traded_at(100);
    let stop = w.place(stop_limit(ALICE, Side::Buy, 105, 106, 10));
    w.rejects(amend(ALICE, stop, 20, 106), RejectReason::UnknownOrder);
}

#[test]
fn funds_locked_by_a_waiting_stop_cannot_be_spent_elsewhere() {
    let mut w = World::new();
    w.fund(CAROL);
    w.fund(DAVE);
    w.trade_at(100);
    w.deposit(ALICE, USDT, 1_060);
    w.place(stop_limit(ALICE, Side::Buy, 105, 106, 10));
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, 10),
        RejectReason::InsufficientBalance,
    );
    w.rejects(
        transfer(RequestId(1), ALICE, BOB, USDT, 1),
        RejectReason::InsufficientBalance,
    );
}

#[test]
fn a_triggered_ioc_stop_expires_what_it_cannot_fill_at_once() {
    let mut w = traded_at(100);
    let stop = w.place(stop_limit(ALICE, Side::Buy, 105, 106, 30).tif(TimeInForce::Ioc));
    let ask = w.place(limit(BOB, Side::Sell, 106, 10));
    w.place(limit(CAROL, Side::Sell, 105, 10));
    w.place(limit_tif(DAVE, Side::Buy, 105, 10, TimeInForce::Ioc));
    assert_eq!(
        w.story()[4..],
        [
            format!("triggered {stop} at 105"),
            format!("trade 10@106 maker {ask} taker {stop}"),
            format!("done {ask} Filled unfilled 0"),
            format!("done {stop} Expired unfilled 20"),
        ]
    );
    assert_eq!(w.locked(ALICE, USDT), 0);
    assert_eq!(w.available(ALICE, USDT), FUND_USDT - 1_060);
    assert_eq!(w.ex.open_orders(ALICE), 0);
}

#[test]
fn a_triggered_fok_stop_that_cannot_fill_completely_expires_untouched() {
    let mut w = traded_at(100);
    let stop = w.place(stop_limit(ALICE, Side::Buy, 105, 106, 30).tif(TimeInForce::Fok));
    let ask = w.place(limit(BOB, Side::Sell, 106, 10));
    w.place(limit(CAROL, Side::Sell, 105, 10));
    w.place(limit_tif(DAVE, Side::Buy, 105, 10, TimeInForce::Ioc));
    assert_eq!(
        w.story()[4..],
        [
            format!("triggered {stop} at 105"),
            format!("done {stop} Expired unfilled 30"),
        ]
    );
    assert_eq!(w.resting(ask), Some((106, 10)));
    assert_eq!(w.available(ALICE, USDT), FUND_USDT);
    assert_eq!(w.ex.open_orders(ALICE), 0);
}

#[test]
fn cascading_triggers_fire_in_a_deterministic_order() {
    let mut w = traded_at(100);
    let asks: Vec<_> = [101, 103, 106, 110]
        .into_iter()
        .map(|price| w.place(limit(DAVE, Side::Sell, price, 10)))
        .collect();
    // Placed in reverse order of their stops: rising stops fire by stop price, then by id.
    let third = w.place(stop_limit(CAROL, Side::Buy, 106, 110, 10));
    let second = w.place(stop_limit(BOB, Side::Buy, 103, 106, 10));
    let first = w.place(stop_limit(ALICE, Side::Buy, 101, 103, 10));
    let first_too = w.place(stop_limit(EVE, Side::Buy, 101, 103, 10));
    let spark = w.place(limit_tif(BOB, Side::Buy, 101, 10, TimeInForce::Ioc));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {spark}"),
            format!("trade 10@101 maker {} taker {spark}", asks[0]),
            format!("done {} Filled unfilled 0", asks[0]),
            format!("done {spark} Filled unfilled 0"),
            format!("triggered {first} at 101"),
            format!("trade 10@103 maker {} taker {first}", asks[1]),
            format!("done {} Filled unfilled 0", asks[1]),
            format!("done {first} Filled unfilled 0"),
            // Same stop, later id; the price has moved on, so nothing is left at its limit.
            format!("triggered {first_too} at 103"),
            format!("triggered {second} at 103"),
            format!("trade 10@106 maker {} taker {second}", asks[2]),
            format!("done {} Filled unfilled 0", asks[2]),
            format!("done {second} Filled unfilled 0"),
            format!("triggered {third} at 106"),
            format!("trade 10@110 maker {} taker {third}", asks[3]),
            format!("done {} Filled unfilled 0", asks[3]),
            format!("done {third} Filled unfilled 0"),
        ]
    );
    assert_eq!(w.resting(first_too), Some((103, 10)));
    assert_eq!(w.ex.last_price(BTC_USDT), Some(Price(110)));
}

#[test]
fn stops_reached_by_the_same_trade_fire_rising_ones_first_then_falling_ones() {
    let mut w = World::new();
    for account in [ALICE, BOB, CAROL, DAVE] {
        w.fund(account);
    }
    // Before any trade, both wait.
    let rising = w.place(stop_limit(ALICE, Side::Buy, 100, 101, 10));
    let falling = w.place(stop_limit(BOB, Side::Sell, 100, 99, 20));
    let seller = w.place(limit(CAROL, Side::Sell, 100, 10));
    let buyer = w.place(limit_tif(DAVE, Side::Buy, 100, 10, TimeInForce::Ioc));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {buyer}"),
            format!("trade 10@100 maker {seller} taker {buyer}"),
            format!("done {seller} Filled unfilled 0"),
            format!("done {buyer} Filled unfilled 0"),
            format!("triggered {rising} at 100"),
            format!("triggered {falling} at 100"),
            format!("trade 10@101 maker {rising} taker {falling}"),
            format!("done {rising} Filled unfilled 0"),
        ]
    );
    assert_eq!(w.resting(falling), Some((99, 10)));
}

#[test]
fn falling_stops_fire_highest_stop_first() {
    let mut w = traded_at(100);
    let lower = w.place(stop_limit(ALICE, Side::Sell, 98, 90, 20));
    let higher = w.place(stop_limit(BOB, Side::Sell, 99, 90, 20));
    w.trade_at(97);
    assert_eq!(
        w.story()[4..],
        [
            format!("triggered {higher} at 97"),
            format!("triggered {lower} at 97"),
        ]
    );
    assert_eq!(w.book(Side::Sell), vec![(90, 40, 2)]);
    w.place(limit(EVE, Side::Buy, 90, 20));
    assert_eq!(w.trades()[0].maker_order, higher);
}

#[test]
fn a_trade_made_by_an_amend_triggers_stops() {
    let mut w = traded_at(100);
    let stop = w.place(stop_limit(ALICE, Side::Sell, 95, 90, 20));
    let bid = w.place(limit(BOB, Side::Buy, 95, 20));
    let ask = w.place(limit(CAROL, Side::Sell, 99, 20));
    w.ok(amend(CAROL, ask, 20, 95));
    assert_eq!(
        w.story(),
        vec![
            format!("amended {ask} 20@95 priority_kept false"),
            format!("trade 20@95 maker {bid} taker {ask}"),
            format!("done {bid} Filled unfilled 0"),
            format!("done {ask} Filled unfilled 0"),
            format!("triggered {stop} at 95"),
        ]
    );
    assert_eq!(w.resting(stop), Some((90, 20)));
}

#[test]
fn a_triggered_stop_that_rests_keeps_its_client_order_id() {
    let mut w = traded_at(100);
    let stop = w.place(stop_limit(ALICE, Side::Sell, 95, 94, 20).client("sl"));
    w.trade_at(95);
    assert_eq!(w.resting(stop), Some((94, 20)));
    w.place_rejected(
        limit(ALICE, Side::Buy, 90, 20).client("sl"),
        RejectReason::DuplicateClientOrderId,
    );
    w.ok(cancel_client(ALICE, "sl"));
    assert_eq!(w.done(), vec![(stop, DoneReason::Cancelled, 20)]);
}
