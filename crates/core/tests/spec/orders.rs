//! Order placement and matching: limit orders and their time in force, market orders,
//! cancels, amendments, client order ids, self-trade prevention and the open-order bound.
//!
//! At tier 0 a maker pays 0.10% and a taker 0.20%, each in the asset it receives. Prices are in
//! cents per BTC and quantities in lots of 10,000 sats, so `qty` lots at `price` cost
//! `qty × price` micro-USDT.

use crate::support::*;
use coss_core::{
    CLIENT_ID_MEMORY, Command, DEFAULT_MAX_OPEN_ORDERS, DoneReason, EventKind, FEES_HOLDERS,
    FEES_PLATFORM, OrderRef, RejectReason, SelfTradePrevention, TimeInForce,
};
use coss_types::{AccountId, Amount, AssetId, MarketId, OrderId, Price, Qty, Side};

fn funded(accounts: &[AccountId]) -> World {
    let mut w = World::new();
    for &account in accounts {
        w.fund(account);
    }
    w
}

// ---- Limit orders ----

#[test]
fn a_limit_buy_that_does_not_cross_rests_with_its_value_locked() {
    let mut w = funded(&[ALICE]);
    let new = limit(ALICE, Side::Buy, 100, 10);
    let order = w.place(new);
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::OrderAccepted { order, new },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: USDT,
                available: Amount(FUND_USDT - 1_000),
                locked: Amount(1_000),
            },
        ]
    );
    assert_eq!(w.resting(order), Some((100, 10)));
    assert_eq!(w.book(Side::Buy), vec![(100, 10, 1)]);
    assert_eq!(w.ex.open_orders(ALICE), 1);
}

#[test]
fn a_limit_sell_locks_its_base_quantity() {
    let mut w = funded(&[BOB]);
    w.place(limit(BOB, Side::Sell, 100, 10));
    assert_eq!(w.locked(BOB, BTC), 10 * LOT_SATS);
    assert_eq!(w.available(BOB, BTC), FUND_BTC - 10 * LOT_SATS);
    assert_eq!(w.locked(BOB, USDT), 0);
}

#[test]
fn crossing_limit_orders_trade_at_the_makers_price_and_settle_both_sides() {
    let mut w = funded(&[ALICE, BOB]);
    let ask = w.place(limit(BOB, Side::Sell, 100, 10));
    let new = limit(ALICE, Side::Buy, 100, 10);
    let bid = w.place(new);
    let balance = |account, asset, available| EventKind::BalanceChanged {
        account,
        asset,
        available: Amount(available),
        locked: Amount(0),
    };
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::OrderAccepted { order: bid, new },
            EventKind::Trade {
                trade: 1,
                market: BTC_USDT,
                price: Price(100),
                qty: Qty(10),
                taker_side: Side::Buy,
                maker_order: ask,
                taker_order: bid,
                maker_account: BOB,
                taker_account: ALICE,
                // 0.10% of 1,000 micro-USDT received by the maker.
                maker_fee: Amount(1),
                // 0.20% of 100,000 sats received by the taker.
                taker_fee: Amount(200),
            },
            EventKind::OrderDone {
                order: ask,
                account: BOB,
                market: BTC_USDT,
                reason: DoneReason::Filled,
                unfilled: Qty(0),
            },
            EventKind::OrderDone {
                order: bid,
                account: ALICE,
                market: BTC_USDT,
                reason: DoneReason::Filled,
                unfilled: Qty(0),
            },
            EventKind::FeesCollected {
                asset: BTC,
                platform: Amount(100),
                holders: Amount(100),
            },
            EventKind::FeesCollected {
                asset: USDT,
                platform: Amount(1),
                holders: Amount(0),
            },
            balance(ALICE, USDT, FUND_USDT - 1_000),
            balance(BOB, BTC, FUND_BTC - 100_000),
            balance(ALICE, BTC, FUND_BTC + 99_800),
            balance(BOB, USDT, FUND_USDT + 999),
        ]
    );
    // The fee accounts were credited by the FeesCollected events above.
    assert_eq!(w.total(FEES_HOLDERS, BTC), 100);
    assert_eq!(w.total(FEES_PLATFORM, BTC), 100);
    assert_eq!(w.total(FEES_PLATFORM, USDT), 1);
    assert_eq!(w.ex.last_price(BTC_USDT), Some(Price(100)));
    assert_eq!(w.ex.resting_orders(BTC_USDT), 0);
    assert_eq!(w.ex.open_orders(ALICE) + w.ex.open_orders(BOB), 0);
}

#[test]
fn a_partial_fill_leaves_the_rest_of_the_maker_in_the_book() {
    let mut w = funded(&[ALICE, BOB]);
    let ask = w.place(limit(BOB, Side::Sell, 100, 30));
    let bid = w.place(limit(ALICE, Side::Buy, 100, 10));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {bid}"),
            format!("trade 10@100 maker {ask} taker {bid}"),
            format!("done {bid} Filled unfilled 0"),
        ]
    );
    assert_eq!(w.resting(ask), Some((100, 20)));
    assert_eq!(w.locked(BOB, BTC), 20 * LOT_SATS);
    assert_eq!(w.ex.open_orders(BOB), 1);
}

#[test]
fn maker_keeps_priority_after_partial_fill() {
    let mut w = funded(&[ALICE, BOB, CAROL]);
    let first = w.place(limit(BOB, Side::Sell, 100, 30));
    let second = w.place(limit(CAROL, Side::Sell, 100, 10));
    w.place(limit(ALICE, Side::Buy, 100, 10));
    assert_eq!(w.trades()[0].maker_order, first);
    let taker = w.place(limit(ALICE, Side::Buy, 100, 25));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {taker}"),
            format!("trade 20@100 maker {first} taker {taker}"),
            format!("done {first} Filled unfilled 0"),
            format!("trade 5@100 maker {second} taker {taker}"),
            format!("done {taker} Filled unfilled 0"),
        ]
    );
    assert_eq!(w.resting(second), Some((100, 5)));
}

#[test]
fn better_prices_fill_first_and_equal_prices_in_time_order() {
    let mut w = funded(&[ALICE, BOB, CAROL, DAVE]);
    let worst = w.place(limit(BOB, Side::Sell, 102, 10));
    let early = w.place(limit(CAROL, Side::Sell, 101, 10));
    let late = w.place(limit(DAVE, Side::Sell, 101, 10));
    let best = w.place(limit(BOB, Side::Sell, 100, 10));
    assert_eq!(
        w.book(Side::Sell),
        vec![(100, 10, 1), (101, 20, 2), (102, 10, 1)]
    );
    w.place(limit(ALICE, Side::Buy, 102, 40));
    let fills: Vec<(OrderId, u64)> = w
        .trades()
        .iter()
        .map(|t| (t.maker_order, t.price))
        .collect();
    assert_eq!(
        fills,
        vec![(best, 100), (early, 101), (late, 101), (worst, 102)]
    );
}

#[test]
fn trades_are_numbered_from_1_without_gaps() {
    let mut w = funded(&[ALICE, BOB]);
    for price in [100, 101, 102] {
        w.place(limit(BOB, Side::Sell, price, 10));
    }
    w.place(limit(ALICE, Side::Buy, 101, 10));
    w.place(market(ALICE, Side::Buy, 20));
    let numbers: Vec<u64> = w
        .events()
        .iter()
        .filter_map(|e| match e.kind {
            EventKind::Trade { trade, .. } => Some(trade),
            _ => None,
        })
        .collect();
    assert_eq!(numbers, vec![1, 2, 3]);
}

#[test]
fn a_buying_taker_keeps_the_difference_between_its_limit_and_the_trade_price() {
    let mut w = funded(&[ALICE, BOB]);
    w.place(limit(BOB, Side::Sell, 100, 10));
    // Locks 10 × 101 = 1,010, pays 10 × 100 = 1,000 and gets the 10 back at once.
    w.place(limit(ALICE, Side::Buy, 101, 10));
    assert_eq!(w.trades()[0].price, 100);
    assert_eq!(w.trades()[0].quote_amount, 1_000);
    assert_eq!(w.available(ALICE, USDT), FUND_USDT - 1_000);
    assert_eq!(w.locked(ALICE, USDT), 0);
}

#[test]
fn a_buying_taker_that_rests_keeps_its_limit_value_locked_for_the_rest() {
    let mut w = funded(&[ALICE, BOB]);
    w.place(limit(BOB, Side::Sell, 100, 10));
    let bid = w.place(limit(ALICE, Side::Buy, 101, 30));
    assert_eq!(w.resting(bid), Some((101, 20)));
    assert_eq!(w.locked(ALICE, USDT), 20 * 101);
    assert_eq!(w.available(ALICE, USDT), FUND_USDT - 1_000 - 20 * 101);
}

#[test]
fn a_selling_taker_receives_the_higher_bid_price() {
    let mut w = funded(&[ALICE, BOB]);
    w.place(limit(ALICE, Side::Buy, 105, 10));
    w.place(limit(BOB, Side::Sell, 100, 10));
    let trade = w.trades()[0];
    assert_eq!((trade.price, trade.quote_amount), (105, 1_050));
    assert_eq!(trade.taker_side, Side::Sell);
    // The selling taker pays 0.20% of 1,050 = 2.1, rounded up to 3.
    assert_eq!(trade.taker_fee, 3);
    assert_eq!(w.available(BOB, USDT), FUND_USDT + 1_047);
    // The buying maker pays 0.10% of 100,000 sats.
    assert_eq!(trade.maker_fee, 100);
    assert_eq!(w.available(ALICE, BTC), FUND_BTC + 99_900);
}

// ---- Time in force ----

#[test]
fn an_ioc_remainder_expires_and_its_funds_return() {
    let mut w = funded(&[ALICE, BOB]);
    let ask = w.place(limit(BOB, Side::Sell, 100, 10));
    let ioc = w.place(limit_tif(ALICE, Side::Buy, 100, 25, TimeInForce::Ioc));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {ioc}"),
            format!("trade 10@100 maker {ask} taker {ioc}"),
            format!("done {ask} Filled unfilled 0"),
            format!("done {ioc} Expired unfilled 15"),
        ]
    );
    assert_eq!(w.available(ALICE, USDT), FUND_USDT - 1_000);
    assert_eq!(w.locked(ALICE, USDT), 0);
    assert!(w.book(Side::Buy).is_empty());
    assert_eq!(w.ex.open_orders(ALICE), 0);
}

#[test]
fn an_ioc_without_liquidity_expires_without_trading() {
    let mut w = funded(&[ALICE]);
    let ioc = w.place(limit_tif(ALICE, Side::Buy, 100, 10, TimeInForce::Ioc));
    assert_eq!(w.done(), vec![(ioc, DoneReason::Expired, 10)]);
    assert_eq!(w.available(ALICE, USDT), FUND_USDT);
    assert_eq!(w.ex.resting_orders(BTC_USDT), 0);
}

#[test]
fn a_fok_fills_completely_when_the_book_has_enough_within_its_limit() {
    let mut w = funded(&[ALICE, BOB, CAROL]);
    w.place(limit(BOB, Side::Sell, 100, 10));
    w.place(limit(CAROL, Side::Sell, 101, 10));
    let fok = w.place(limit_tif(ALICE, Side::Buy, 101, 20, TimeInForce::Fok));
    assert_eq!(w.trades().len(), 2);
    assert_eq!(w.done().last(), Some(&(fok, DoneReason::Filled, 0)));
    assert_eq!(w.available(ALICE, USDT), FUND_USDT - 1_000 - 1_010);
}

#[test]
fn a_fok_that_cannot_fill_completely_expires_without_any_fill() {
    let mut w = funded(&[ALICE, BOB, CAROL]);
    w.place(limit(BOB, Side::Sell, 100, 10));
    w.place(limit(CAROL, Side::Sell, 102, 10));
    let new = limit_tif(ALICE, Side::Buy, 101, 20, TimeInForce::Fok);
    let fok = w.place(new);
    // Only 10 lots are offered at 101 or better: nothing trades and nothing is locked.
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::OrderAccepted { order: fok, new },
            EventKind::OrderDone {
                order: fok,
                account: ALICE,
                market: BTC_USDT,
                reason: DoneReason::Expired,
                unfilled: Qty(20),
            },
        ]
    );
    assert_eq!(w.book(Side::Sell), vec![(100, 10, 1), (102, 10, 1)]);
}

#[test]
fn a_fok_does_not_count_liquidity_that_self_trade_prevention_would_skip() {
    let mut w = funded(&[ALICE, BOB]);
    let own = w.place(limit(ALICE, Side::Sell, 100, 10));
    let other = w.place(limit(BOB, Side::Sell, 100, 10));
    let expire_maker = |qty| {
        limit_tif(ALICE, Side::Buy, 100, qty, TimeInForce::Fok)
            .stp(SelfTradePrevention::ExpireMaker)
    };
    // Only BOB's 10 lots count: 20 cannot fill, and the own order is left alone.
    let fok = w.place(expire_maker(20));
    assert_eq!(w.done(), vec![(fok, DoneReason::Expired, 20)]);
    assert_eq!(w.book(Side::Sell), vec![(100, 20, 2)]);
    // The own order is first in the queue: with expire-taker nothing can fill.
    let fok = w.place(
        limit_tif(ALICE, Side::Buy, 100, 10, TimeInForce::Fok)
            .stp(SelfTradePrevention::ExpireTaker),
    );
    assert_eq!(w.done(), vec![(fok, DoneReason::Expired, 10)]);
    assert!(w.trades().is_empty());
    // 10 fill with expire-maker: the own order expires on the way.
    let fok = w.place(expire_maker(10));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {fok}"),
            format!("done {own} SelfTradePrevented unfilled 10"),
            format!("trade 10@100 maker {other} taker {fok}"),
            format!("done {other} Filled unfilled 0"),
            format!("done {fok} Filled unfilled 0"),
        ]
    );
    assert_eq!(w.locked(ALICE, BTC), 0);
}

#[test]
fn a_post_only_order_that_would_take_liquidity_is_rejected() {
    let mut w = funded(&[ALICE, BOB]);
    w.place(limit(BOB, Side::Sell, 100, 10));
    w.place_rejected(
        limit_tif(ALICE, Side::Buy, 100, 10, TimeInForce::PostOnly),
        RejectReason::PostOnlyWouldTrade,
    );
    w.place_rejected(
        limit_tif(ALICE, Side::Buy, 120, 10, TimeInForce::PostOnly),
        RejectReason::PostOnlyWouldTrade,
    );
    let maker = w.place(limit_tif(ALICE, Side::Buy, 99, 20, TimeInForce::PostOnly));
    assert_eq!(w.resting(maker), Some((99, 20)));
    assert_eq!(w.locked(ALICE, USDT), 20 * 99);
}

// ---- Market orders ----

#[test]
fn a_market_order_by_base_quantity_sweeps_levels_at_each_makers_price() {
    let mut w = funded(&[ALICE, BOB, CAROL]);
    w.place(limit(BOB, Side::Sell, 100, 10));
    let rest = w.place(limit(CAROL, Side::Sell, 110, 10));
    let order = w.place(market(ALICE, Side::Buy, 15));
    let fills: Vec<(u64, u64)> = w.trades().iter().map(|t| (t.price, t.qty)).collect();
    assert_eq!(fills, vec![(100, 10), (110, 5)]);
    assert_eq!(w.done().last(), Some(&(order, DoneReason::Filled, 0)));
    assert_eq!(w.available(ALICE, USDT), FUND_USDT - 1_000 - 550);
    assert_eq!(w.locked(ALICE, USDT), 0);
    // 0.20% of 100,000 and of 50,000 sats.
    assert_eq!(w.available(ALICE, BTC), FUND_BTC + 150_000 - 200 - 100);
    assert_eq!(w.resting(rest), Some((110, 5)));
}

#[test]
fn a_market_sell_by_base_quantity_hits_the_bids() {
    let mut w = funded(&[ALICE, BOB]);
    w.place(limit(ALICE, Side::Buy, 100, 10));
    let order = w.place(market(BOB, Side::Sell, 10));
    assert_eq!(w.trades()[0].price, 100);
    assert_eq!(w.done().last(), Some(&(order, DoneReason::Filled, 0)));
    assert_eq!(w.total(BOB, BTC), FUND_BTC - 100_000);
    assert_eq!(w.available(BOB, USDT), FUND_USDT + 1_000 - 2);
}

#[test]
fn a_market_buy_with_insufficient_funds_fills_what_it_can_then_expires() {
    let mut w = funded(&[BOB, CAROL]);
    w.deposit(ALICE, USDT, 1_500);
    w.place(limit(BOB, Side::Sell, 100, 10));
    let rest = w.place(limit(CAROL, Side::Sell, 110, 10));
    let order = w.place(market(ALICE, Side::Buy, 20));
    // 1,000 buys 10 at 100; the last 500 buy 4 more at 110 (440); 60 cannot buy a lot.
    let fills: Vec<(u64, u64)> = w.trades().iter().map(|t| (t.price, t.qty)).collect();
    assert_eq!(fills, vec![(100, 10), (110, 4)]);
    assert_eq!(w.done().last(), Some(&(order, DoneReason::Expired, 6)));
    assert_eq!(w.available(ALICE, USDT), 60);
    assert_eq!(w.locked(ALICE, USDT), 0);
    assert_eq!(w.resting(rest), Some((110, 6)));
}

#[test]
fn a_market_buy_by_quote_amount_spends_at_most_the_amount_and_returns_the_rest() {
    let mut w = funded(&[ALICE, BOB, CAROL]);
    w.place(limit(BOB, Side::Sell, 100, 10));
    w.place(limit(CAROL, Side::Sell, 110, 10));
    let order = w.place(market_quote(ALICE, Side::Buy, 1_500));
    let fills: Vec<(u64, u64)> = w.trades().iter().map(|t| (t.price, t.qty)).collect();
    assert_eq!(fills, vec![(100, 10), (110, 4)]);
    // What is left (60) cannot buy a lot: the order is done.
    assert_eq!(w.done().last(), Some(&(order, DoneReason::Filled, 0)));
    assert_eq!(w.available(ALICE, USDT), FUND_USDT - 1_440);
    assert_eq!(w.locked(ALICE, USDT), 0);
    assert_eq!(w.available(ALICE, BTC), FUND_BTC + 140_000 - 200 - 80);
}

#[test]
fn a_market_sell_by_quote_amount_stops_before_receiving_more_than_the_amount() {
    let mut w = funded(&[ALICE, BOB, CAROL]);
    w.place(limit(ALICE, Side::Buy, 100, 10));
    let rest = w.place(limit(CAROL, Side::Buy, 90, 20));
    let order = w.place(market_quote(BOB, Side::Sell, 1_450));
    let fills: Vec<(u64, u64)> = w.trades().iter().map(|t| (t.price, t.qty)).collect();
    assert_eq!(fills, vec![(100, 10), (90, 5)]);
    assert_eq!(w.done().last(), Some(&(order, DoneReason::Filled, 0)));
    assert_eq!(w.total(BOB, BTC), FUND_BTC - 150_000);
    assert_eq!(w.locked(BOB, BTC), 0);
    // Taker fees: 0.20% of 1,000 = 2 and of 450 = 0.9, rounded up to 1.
    assert_eq!(w.available(BOB, USDT), FUND_USDT + 1_450 - 3);
    assert_eq!(w.resting(rest), Some((90, 15)));
}

#[test]
fn a_market_buy_by_quote_amount_too_small_for_one_lot_expires_without_trading() {
    let mut w = funded(&[ALICE, BOB]);
    w.place(limit(ALICE, Side::Sell, 100_000, 5));
    let order = w.place(market_quote(BOB, Side::Buy, 50_000));
    assert!(w.trades().is_empty());
    assert_eq!(w.done(), vec![(order, DoneReason::Expired, 0)]);
    assert_eq!(w.available(BOB, USDT), FUND_USDT);
}

#[test]
fn a_market_sell_by_quote_amount_sells_at_most_the_whole_base_balance() {
    let mut w = funded(&[ALICE]);
    w.deposit(BOB, BTC, 10 * LOT_SATS);
    w.place(limit(ALICE, Side::Buy, 100, 20));
    // 10 lots bring 1,000 of the 1,500 wanted: the sale ends when the base runs out.
    let order = w.place(market_quote(BOB, Side::Sell, 1_500));
    assert_eq!(w.trades()[0].qty, 10);
    // Its funds ran out before its amount was reached: it expires.
    assert_eq!(w.done(), vec![(order, DoneReason::Expired, 0)]);
    assert_eq!(w.total(BOB, BTC), 0);
    assert_eq!(w.available(BOB, USDT), 1_000 - 2);
}

#[test]
fn a_market_order_without_liquidity_expires_and_returns_its_funds() {
    let mut w = funded(&[ALICE]);
    let order = w.place(market(ALICE, Side::Buy, 10));
    assert_eq!(w.done(), vec![(order, DoneReason::Expired, 10)]);
    let order = w.place(market(ALICE, Side::Sell, 10));
    assert_eq!(w.done(), vec![(order, DoneReason::Expired, 10)]);
    assert_eq!(w.available(ALICE, USDT), FUND_USDT);
    assert_eq!(w.available(ALICE, BTC), FUND_BTC);
}

// ---- Validation ----

#[test]
fn orders_below_the_minimum_value_are_rejected() {
    let mut w = funded(&[ALICE, BOB]);
    // 9 lots at 1.00 USDT is 900 micro-USDT, below the 1,000 minimum.
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, 9),
        RejectReason::BelowMinNotional,
    );
    w.place_rejected(
        limit(ALICE, Side::Sell, 100, 9),
        RejectReason::BelowMinNotional,
    );
    w.place_rejected(
        market_quote(ALICE, Side::Buy, 999),
        RejectReason::BelowMinNotional,
    );
    w.place(limit(BOB, Side::Sell, 100, 10));
    // A market order by quantity is valued at the best opposite price.
    w.place_rejected(market(ALICE, Side::Buy, 9), RejectReason::BelowMinNotional);
    w.place(market(ALICE, Side::Buy, 10));
}

#[test]
fn zero_quantities_amounts_and_prices_are_rejected() {
    let mut w = funded(&[ALICE]);
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, 0),
        RejectReason::InvalidQuantity,
    );
    w.place_rejected(limit(ALICE, Side::Buy, 0, 10), RejectReason::InvalidPrice);
    w.place_rejected(market(ALICE, Side::Buy, 0), RejectReason::InvalidQuantity);
    w.place_rejected(
        market_quote(ALICE, Side::Sell, 0),
        RejectReason::InvalidAmount,
    );
    w.place_rejected(
        stop_limit(ALICE, Side::Buy, 0, 100, 10),
        RejectReason::InvalidPrice,
    );
    w.place_rejected(
        stop_limit(ALICE, Side::Buy, 100, 0, 10),
        RejectReason::InvalidPrice,
    );
    w.place_rejected(
        take_profit(ALICE, Side::Sell, 100, 100, 0),
        RejectReason::InvalidQuantity,
    );
}

#[test]
fn huge_quantities_and_prices_are_rejected_without_panicking() {
    let mut w = funded(&[ALICE, BOB]);
    let max = u64::MAX;
    for new in [
        limit(ALICE, Side::Buy, max, max),
        limit(ALICE, Side::Sell, 1, max),
        limit(ALICE, Side::Buy, max, 1),
        market(ALICE, Side::Sell, max),
        market_quote(ALICE, Side::Buy, u128::MAX),
        stop_limit(ALICE, Side::Buy, max, max, max),
        take_profit(ALICE, Side::Sell, 1, 1, max),
    ] {
        w.place_rejected(new, RejectReason::InsufficientBalance);
    }
    let bid = w.place(limit(ALICE, Side::Buy, 100, 10));
    w.rejects(
        amend(ALICE, bid, max, 100),
        RejectReason::InsufficientBalance,
    );
    w.rejects(
        amend(ALICE, bid, 10, max),
        RejectReason::InsufficientBalance,
    );
    // A market buy's budget is the balance: it takes what is offered and expires the rest.
    w.place(limit(BOB, Side::Sell, 101, 10));
    let order = w.place(market(ALICE, Side::Buy, max));
    assert_eq!(
        w.done().last(),
        Some(&(order, DoneReason::Expired, max - 10))
    );
}

#[test]
fn order_values_beyond_128_bits_are_rejected_as_overflow() {
    let mut w = funded(&[ALICE]);
    let big = AssetId(10);
    let big_usdt = MarketId(2);
    w.ok(list_asset(big, "BIG", 0, true, 0));
    // 2^40 units per lot and 2^40 micro-USDT per tick: 2^80 micro-USDT per lot and tick.
    w.ok(list_market(big_usdt, big, USDT, 1 << 40, 1 << 40));
    let huge = 1 << 30;
    w.place_rejected(
        limit(ALICE, Side::Buy, huge, huge).in_market(big_usdt),
        RejectReason::Overflow,
    );
    w.place_rejected(
        limit(ALICE, Side::Sell, huge, huge).in_market(big_usdt),
        RejectReason::Overflow,
    );
}

#[test]
fn orders_need_a_listed_market_and_a_funded_account() {
    let mut w = funded(&[ALICE]);
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, 10).in_market(MarketId(9)),
        RejectReason::UnknownMarket,
    );
    w.place_rejected(
        limit(EVE, Side::Buy, 100, 10),
        RejectReason::InsufficientBalance,
    );
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, FUND_USDT as u64 / 100 + 1),
        RejectReason::InsufficientBalance,
    );
}

#[test]
fn system_accounts_cannot_place_cancel_or_amend_orders() {
    let mut w = World::new();
    w.deposit(FEES_PLATFORM, USDT, 1_000_000);
    for system in [FEES_PLATFORM, AccountId(0), AccountId(999)] {
        w.place_rejected(
            limit(system, Side::Buy, 100, 10),
            RejectReason::SystemAccount,
        );
        w.rejects(cancel(system, OrderId(1)), RejectReason::SystemAccount);
        w.rejects(cancel_all(system), RejectReason::SystemAccount);
        w.rejects(
            amend(system, OrderId(1), 5, 100),
            RejectReason::SystemAccount,
        );
    }
}

// ---- Cancels ----

#[test]
fn a_cancel_removes_the_order_and_unlocks_what_it_had_left() {
    let mut w = funded(&[ALICE, BOB]);
    let bid = w.place(limit(ALICE, Side::Buy, 100, 20));
    w.place(limit(BOB, Side::Sell, 100, 12));
    w.ok(cancel(ALICE, bid));
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::OrderDone {
                order: bid,
                account: ALICE,
                market: BTC_USDT,
                reason: DoneReason::Cancelled,
                unfilled: Qty(8),
            },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: USDT,
                available: Amount(FUND_USDT - 1_200),
                locked: Amount(0),
            },
        ]
    );
    assert_eq!(w.ex.open_orders(ALICE), 0);
    assert!(w.book(Side::Buy).is_empty());
}

#[test]
fn an_order_can_be_cancelled_by_its_client_order_id() {
    let mut w = funded(&[ALICE]);
    let bid = w.place(limit(ALICE, Side::Buy, 100, 10).client("bid-1"));
    w.ok(cancel_client(ALICE, "bid-1"));
    assert_eq!(w.done(), vec![(bid, DoneReason::Cancelled, 10)]);
    w.rejects(cancel_client(ALICE, "bid-1"), RejectReason::UnknownOrder);
    w.rejects(cancel_client(ALICE, "never"), RejectReason::UnknownOrder);
}

#[test]
fn a_cancel_of_an_unknown_foreign_or_closed_order_is_rejected() {
    let mut w = funded(&[ALICE, BOB]);
    let bid = w.place(limit(ALICE, Side::Buy, 100, 10).client("mine"));
    w.rejects(cancel(ALICE, OrderId(99)), RejectReason::UnknownOrder);
    w.rejects(cancel(BOB, bid), RejectReason::UnknownOrder);
    w.rejects(cancel_client(BOB, "mine"), RejectReason::UnknownOrder);
    w.rejects(cancel(EVE, bid), RejectReason::UnknownOrder);
    w.rejects(
        Command::Cancel {
            account: ALICE,
            market: MarketId(9),
            order: OrderRef::Id(bid),
        },
        RejectReason::UnknownMarket,
    );
    w.place(limit(BOB, Side::Sell, 100, 10));
    w.rejects(cancel(ALICE, bid), RejectReason::UnknownOrder);
}

#[test]
fn cancel_all_cancels_every_open_order_of_the_account_in_order_id_order() {
    let mut w = funded(&[ALICE, BOB]);
    let ask = w.place(limit(ALICE, Side::Sell, 110, 10));
    let other = w.place(limit(BOB, Side::Buy, 90, 20));
    let low_bid = w.place(limit(ALICE, Side::Buy, 95, 20));
    let stop = w.place(stop_limit(ALICE, Side::Sell, 80, 79, 20));
    let high_bid = w.place(limit(ALICE, Side::Buy, 96, 20));
    w.ok(cancel_all(ALICE));
    assert_eq!(
        w.done(),
        vec![
            (ask, DoneReason::Cancelled, 10),
            (low_bid, DoneReason::Cancelled, 20),
            (stop, DoneReason::Cancelled, 20),
            (high_bid, DoneReason::Cancelled, 20),
        ]
    );
    assert_eq!(w.locked(ALICE, BTC), 0);
    assert_eq!(w.locked(ALICE, USDT), 0);
    assert_eq!(w.ex.open_orders(ALICE), 0);
    assert_eq!(w.resting(other), Some((90, 20)));
}

#[test]
fn cancel_all_touches_only_the_named_market() {
    let mut w = funded(&[ALICE]);
    let btc_usd = MarketId(2);
    w.ok(list_market(btc_usd, BTC, USD, 1_000_000, 100));
    w.deposit(ALICE, USD, 1_000_000);
    let elsewhere = w.place(limit(ALICE, Side::Buy, 30_000, 10).in_market(btc_usd));
    let here = w.place(limit(ALICE, Side::Buy, 100, 10));
    w.ok(cancel_all(ALICE));
    assert_eq!(w.done(), vec![(here, DoneReason::Cancelled, 10)]);
    assert_eq!(w.locked(ALICE, USD), 300_000);
    assert!(w.ex.resting_order(btc_usd, elsewhere).is_some());
}

#[test]
fn cancel_all_without_open_orders_succeeds_without_events() {
    let mut w = funded(&[ALICE]);
    w.ok(cancel_all(ALICE));
    assert!(w.last_events().is_empty());
    w.ok(cancel_all(EVE));
    assert!(w.last_events().is_empty());
    w.rejects(
        Command::CancelAll {
            account: ALICE,
            market: MarketId(9),
        },
        RejectReason::UnknownMarket,
    );
}

// ---- Amendments ----

#[test]
fn amend_reducing_quantity_keeps_time_priority() {
    let mut w = funded(&[ALICE, BOB, CAROL]);
    let first = w.place(limit(ALICE, Side::Sell, 100, 20));
    w.place(limit(BOB, Side::Sell, 100, 10));
    w.ok(amend(ALICE, first, 15, 100));
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::OrderAmended {
                order: first,
                market: BTC_USDT,
                qty: Qty(15),
                price: Price(100),
                priority_kept: true,
            },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: BTC,
                available: Amount(FUND_BTC - 150_000),
                locked: Amount(150_000),
            },
        ]
    );
    w.place(limit(CAROL, Side::Buy, 100, 10));
    assert_eq!(w.trades()[0].maker_order, first);
}

#[test]
fn amend_changing_price_loses_time_priority() {
    let mut w = funded(&[ALICE, BOB, CAROL]);
    let moved = w.place(limit(ALICE, Side::Sell, 101, 10));
    let waiting = w.place(limit(BOB, Side::Sell, 100, 10));
    w.ok(amend(ALICE, moved, 10, 100));
    assert_eq!(
        w.story(),
        vec![format!("amended {moved} 10@100 priority_kept false")]
    );
    w.place(limit(CAROL, Side::Buy, 100, 10));
    assert_eq!(w.trades()[0].maker_order, waiting);
    assert_eq!(w.resting(moved), Some((100, 10)));
}

#[test]
fn amend_to_a_crossing_price_trades_like_an_incoming_order() {
    let mut w = funded(&[ALICE, BOB]);
    let bid = w.place(limit(BOB, Side::Buy, 100, 10));
    let ask = w.place(limit(ALICE, Side::Sell, 105, 20));
    w.ok(amend(ALICE, ask, 20, 100));
    assert_eq!(
        w.story(),
        vec![
            format!("amended {ask} 20@100 priority_kept false"),
            format!("trade 10@100 maker {bid} taker {ask}"),
            format!("done {bid} Filled unfilled 0"),
        ]
    );
    assert_eq!(w.trades()[0].taker_side, Side::Sell);
    assert_eq!(w.resting(ask), Some((100, 10)));
    assert_eq!(w.locked(ALICE, BTC), 10 * LOT_SATS);
    assert_eq!(w.ex.open_orders(ALICE), 1);
    // Filled completely by an amend, the order is closed.
    let bid = w.place(limit(BOB, Side::Buy, 99, 11));
    w.ok(amend(ALICE, ask, 11, 99));
    assert_eq!(
        w.done(),
        vec![(bid, DoneReason::Filled, 0), (ask, DoneReason::Filled, 0)]
    );
    assert_eq!(w.ex.open_orders(ALICE), 0);
}

#[test]
fn amend_increasing_quantity_loses_priority_and_needs_the_extra_funds() {
    let mut w = funded(&[BOB, CAROL]);
    w.deposit(ALICE, USDT, 2_000);
    let grown = w.place(limit(ALICE, Side::Buy, 100, 10));
    let waiting = w.place(limit(BOB, Side::Buy, 100, 10));
    w.rejects(
        amend(ALICE, grown, 25, 100),
        RejectReason::InsufficientBalance,
    );
    assert_eq!(w.resting(grown), Some((100, 10)));
    w.ok(amend(ALICE, grown, 20, 100));
    assert_eq!(
        w.story(),
        vec![format!("amended {grown} 20@100 priority_kept false")]
    );
    assert_eq!(
        (w.available(ALICE, USDT), w.locked(ALICE, USDT)),
        (0, 2_000)
    );
    w.place(limit(CAROL, Side::Sell, 100, 10));
    assert_eq!(w.trades()[0].maker_order, waiting);
}

#[test]
fn an_amend_must_change_something_valid() {
    let mut w = funded(&[ALICE, BOB]);
    let bid = w.place(limit(ALICE, Side::Buy, 100, 10));
    w.rejects(amend(ALICE, bid, 10, 100), RejectReason::NothingToAmend);
    w.rejects(amend(ALICE, bid, 0, 100), RejectReason::InvalidQuantity);
    w.rejects(amend(ALICE, bid, 10, 0), RejectReason::InvalidPrice);
    w.rejects(amend(ALICE, bid, 9, 100), RejectReason::BelowMinNotional);
    w.rejects(amend(BOB, bid, 5, 100), RejectReason::UnknownOrder);
    w.rejects(
        amend(ALICE, OrderId(99), 5, 100),
        RejectReason::UnknownOrder,
    );
    assert_eq!(w.resting(bid), Some((100, 10)));
}

#[test]
fn post_only_amend_that_would_cross_is_rejected_leaving_the_order_unchanged() {
    let mut w = funded(&[ALICE, BOB]);
    w.place(limit(BOB, Side::Sell, 105, 10));
    let maker = w.place(limit_tif(ALICE, Side::Buy, 100, 10, TimeInForce::PostOnly));
    w.rejects(
        amend(ALICE, maker, 10, 105),
        RejectReason::PostOnlyWouldTrade,
    );
    assert_eq!(w.resting(maker), Some((100, 10)));
    assert_eq!(w.locked(ALICE, USDT), 1_000);
    w.ok(amend(ALICE, maker, 10, 104));
    assert_eq!(w.resting(maker), Some((104, 10)));
    // It is still post-only.
    w.rejects(
        amend(ALICE, maker, 10, 106),
        RejectReason::PostOnlyWouldTrade,
    );
}

#[test]
fn an_order_can_be_amended_by_its_client_order_id() {
    let mut w = funded(&[ALICE]);
    let bid = w.place(limit(ALICE, Side::Buy, 100, 20).client("b"));
    w.ok(Command::Amend {
        account: ALICE,
        market: BTC_USDT,
        order: OrderRef::Client(cid("b")),
        qty: Qty(10),
        price: Price(100),
    });
    assert_eq!(w.resting(bid), Some((100, 10)));
}

#[test]
fn amend_quantity_is_the_new_open_quantity_of_a_partly_filled_order() {
    let mut w = funded(&[ALICE, BOB, CAROL]);
    let ask = w.place(limit(ALICE, Side::Sell, 100, 30));
    let behind = w.place(limit(CAROL, Side::Sell, 100, 10));
    w.place(limit(BOB, Side::Buy, 100, 10));
    assert_eq!(w.resting(ask), Some((100, 20)));
    // 15 is less than the 20 still open: a reduction, priority kept.
    w.ok(amend(ALICE, ask, 15, 100));
    assert_eq!(
        w.story(),
        vec![format!("amended {ask} 15@100 priority_kept true")]
    );
    assert_eq!(w.locked(ALICE, BTC), 15 * LOT_SATS);
    w.place(limit(BOB, Side::Buy, 100, 15));
    assert_eq!(w.trades()[0].maker_order, ask);
    assert_eq!(w.resting(behind), Some((100, 10)));
}

#[test]
fn an_amend_that_crosses_an_own_order_obeys_its_self_trade_prevention() {
    let mut w = funded(&[ALICE]);
    let own_ask = w.place(limit(ALICE, Side::Sell, 101, 20));
    let bid = w.place(limit(ALICE, Side::Buy, 99, 20).stp(SelfTradePrevention::ExpireTaker));
    w.ok(amend(ALICE, bid, 20, 101));
    assert_eq!(
        w.story(),
        vec![
            format!("amended {bid} 20@101 priority_kept false"),
            format!("done {bid} SelfTradePrevented unfilled 20"),
        ]
    );
    assert_eq!(w.resting(own_ask), Some((101, 20)));
    assert_eq!(w.ex.open_orders(ALICE), 1);
    assert_eq!(w.locked(ALICE, USDT), 0);
}

// ---- Client order ids ----

#[test]
fn a_client_order_id_of_an_open_order_cannot_be_used_again() {
    let mut w = funded(&[ALICE, BOB]);
    w.place(limit(ALICE, Side::Buy, 100, 10).client("a"));
    w.place_rejected(
        limit(ALICE, Side::Buy, 99, 10).client("a"),
        RejectReason::DuplicateClientOrderId,
    );
    w.place_rejected(
        market(ALICE, Side::Sell, 10).client("a"),
        RejectReason::DuplicateClientOrderId,
    );
    // Client order ids are per account.
    w.place(limit(BOB, Side::Buy, 100, 10).client("a"));
}

#[test]
fn a_client_order_id_stays_reserved_after_its_order_closes() {
    let mut w = funded(&[ALICE]);
    w.place(limit_tif(ALICE, Side::Buy, 100, 10, TimeInForce::Ioc).client("expired"));
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, 10).client("expired"),
        RejectReason::DuplicateClientOrderId,
    );
    let bid = w.place(limit(ALICE, Side::Buy, 100, 10).client("cancelled"));
    w.ok(cancel(ALICE, bid));
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, 10).client("cancelled"),
        RejectReason::DuplicateClientOrderId,
    );
}

#[test]
fn a_rejected_order_does_not_reserve_its_client_order_id() {
    let mut w = funded(&[ALICE]);
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, 9).client("c"),
        RejectReason::BelowMinNotional,
    );
    w.place(limit(ALICE, Side::Buy, 100, 10).client("c"));
}

#[test]
fn a_client_order_id_is_reusable_after_client_id_memory_more_orders_close() {
    let mut w = funded(&[ALICE]);
    let ioc =
        |client_id: &str| limit_tif(ALICE, Side::Buy, 100, 10, TimeInForce::Ioc).client(client_id);
    w.place(ioc("first"));
    for i in 1..CLIENT_ID_MEMORY {
        w.place(ioc(&format!("later-{i}")));
    }
    // "first" is the oldest of the last CLIENT_ID_MEMORY closed ids: still reserved.
    w.place_rejected(ioc("first"), RejectReason::DuplicateClientOrderId);
    // One more close pushes it out: it is free again, and using it pushes out "later-1".
    w.place(ioc("one-more"));
    w.place(ioc("first"));
    w.place_rejected(ioc("later-2"), RejectReason::DuplicateClientOrderId);
    w.place(ioc("later-1"));
}

// ---- Self-trade prevention ----

#[test]
fn self_trade_prevention_expire_taker_expires_the_rest_of_the_incoming_order() {
    let mut w = funded(&[ALICE, BOB]);
    let other = w.place(limit(BOB, Side::Sell, 99, 20));
    let own = w.place(limit(ALICE, Side::Sell, 100, 10));
    let taker = w.place(limit(ALICE, Side::Buy, 100, 30).stp(SelfTradePrevention::ExpireTaker));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {taker}"),
            format!("trade 20@99 maker {other} taker {taker}"),
            format!("done {other} Filled unfilled 0"),
            format!("done {taker} SelfTradePrevented unfilled 10"),
        ]
    );
    assert_eq!(w.resting(own), Some((100, 10)));
    assert_eq!(w.resting(taker), None);
    assert_eq!(w.locked(ALICE, USDT), 0);
}

#[test]
fn self_trade_prevention_expire_maker_expires_the_resting_order_and_keeps_matching() {
    let mut w = funded(&[ALICE, BOB]);
    let own = w.place(limit(ALICE, Side::Sell, 100, 10));
    let other = w.place(limit(BOB, Side::Sell, 100, 10));
    let taker = w.place(limit(ALICE, Side::Buy, 100, 10).stp(SelfTradePrevention::ExpireMaker));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {taker}"),
            format!("done {own} SelfTradePrevented unfilled 10"),
            format!("trade 10@100 maker {other} taker {taker}"),
            format!("done {other} Filled unfilled 0"),
            format!("done {taker} Filled unfilled 0"),
        ]
    );
    assert_eq!(w.locked(ALICE, BTC), 0);
    assert_eq!(w.ex.open_orders(ALICE), 0);
}

#[test]
fn self_trade_prevention_expire_both_expires_the_resting_and_the_incoming_order() {
    let mut w = funded(&[ALICE, BOB]);
    let own = w.place(limit(ALICE, Side::Sell, 100, 10));
    let other = w.place(limit(BOB, Side::Sell, 100, 10));
    let taker = w.place(limit(ALICE, Side::Buy, 100, 10).stp(SelfTradePrevention::ExpireBoth));
    assert_eq!(
        w.story(),
        vec![
            format!("accepted {taker}"),
            format!("done {own} SelfTradePrevented unfilled 10"),
            format!("done {taker} SelfTradePrevented unfilled 10"),
        ]
    );
    assert_eq!(w.resting(other), Some((100, 10)));
    assert_eq!(w.locked(ALICE, BTC) + w.locked(ALICE, USDT), 0);
}

#[test]
fn without_self_trade_prevention_an_account_trades_with_itself_and_pays_both_fees() {
    let mut w = funded(&[ALICE]);
    let ask = w.place(limit(ALICE, Side::Sell, 100, 10));
    let bid = w.place(limit(ALICE, Side::Buy, 100, 10));
    let trade = w.trades()[0];
    assert_eq!((trade.maker_order, trade.taker_order), (ask, bid));
    assert_eq!((trade.maker_account, trade.taker_account), (ALICE, ALICE));
    assert_eq!(w.total(ALICE, BTC), FUND_BTC - 200);
    assert_eq!(w.total(ALICE, USDT), FUND_USDT - 1);
}

#[test]
fn the_incoming_orders_self_trade_prevention_mode_decides() {
    let mut w = funded(&[ALICE]);
    w.place(limit(ALICE, Side::Sell, 100, 10).stp(SelfTradePrevention::ExpireBoth));
    w.place(limit(ALICE, Side::Buy, 100, 10));
    assert_eq!(w.trades().len(), 1);
}

// ---- The open-order bound ----

#[test]
fn an_order_beyond_the_open_order_bound_is_rejected() {
    let mut w = funded(&[ALICE, BOB]);
    w.ok(Command::SetOpenOrderLimit { max_open_orders: 3 });
    w.place(limit(ALICE, Side::Buy, 100, 10));
    w.place(limit_tif(ALICE, Side::Buy, 99, 20, TimeInForce::PostOnly));
    w.place(stop_limit(ALICE, Side::Buy, 200, 201, 10));
    assert_eq!(w.ex.open_orders(ALICE), 3);
    w.place_rejected(
        limit(ALICE, Side::Buy, 98, 20),
        RejectReason::TooManyOpenOrders,
    );
    w.place_rejected(
        take_profit(ALICE, Side::Buy, 50, 51, 20),
        RejectReason::TooManyOpenOrders,
    );
    // The bound is per account.
    w.place(limit(BOB, Side::Buy, 98, 20));
}

#[test]
fn ioc_fok_and_market_orders_do_not_count_against_the_bound() {
    let mut w = funded(&[ALICE, BOB]);
    w.ok(Command::SetOpenOrderLimit { max_open_orders: 1 });
    w.place(limit(ALICE, Side::Buy, 90, 20));
    w.place(limit(BOB, Side::Sell, 100, 40));
    w.place(limit_tif(ALICE, Side::Buy, 100, 10, TimeInForce::Ioc));
    w.place(limit_tif(ALICE, Side::Buy, 100, 10, TimeInForce::Fok));
    w.place(market(ALICE, Side::Buy, 10));
    w.place(market_quote(ALICE, Side::Buy, 1_000));
    assert_eq!(w.all_trades().len(), 4);
    assert_eq!(w.ex.open_orders(ALICE), 1);
}

#[test]
fn a_closed_order_frees_its_place_under_the_bound() {
    let mut w = funded(&[ALICE, BOB]);
    w.ok(Command::SetOpenOrderLimit { max_open_orders: 1 });
    let bid = w.place(limit(ALICE, Side::Buy, 100, 10));
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, 10),
        RejectReason::TooManyOpenOrders,
    );
    w.ok(cancel(ALICE, bid));
    let bid = w.place(limit(ALICE, Side::Buy, 100, 10));
    w.place(limit(BOB, Side::Sell, 100, 10));
    assert_eq!(w.done()[0], (bid, DoneReason::Filled, 0));
    w.place(limit(ALICE, Side::Buy, 100, 10));
}

#[test]
fn the_default_bound_is_200_open_orders() {
    let mut w = funded(&[ALICE]);
    for i in 0..u64::from(DEFAULT_MAX_OPEN_ORDERS) {
        w.place(limit(ALICE, Side::Buy, 100 + i, 10));
    }
    w.place_rejected(
        limit(ALICE, Side::Buy, 50, 20),
        RejectReason::TooManyOpenOrders,
    );
}
