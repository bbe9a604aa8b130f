//! The DAO revenue share in the core: the week closes at its exact instant, holdings are
//! COSS available + locked on the platform (less what pending withdrawals hold: it counts on
//! chain) plus chain holdings added in numbered parts, pools
//! are what the holders' fee account held at the close, every holder receives
//! `floor(pool × holding / total)` once, and the remainder stays for next week.

use crate::support::*;
use coss_core::{
    Command, DAO_PAYOUTS, DaoSchedule, EventKind, FEES_HOLDERS, RejectReason, dao_share,
};
use coss_types::{AccountId, Amount, AssetId, Side};
use proptest::prelude::*;

const COSS: AssetId = AssetId(4);
const UNIT: u128 = 100_000_000;
/// Sunday 19 November 2023, 05:00:00 UTC (the first Sunday after `World`'s clock starts).
const SUNDAY_0500: u64 = 1_700_370_000_000;
const WEEK_MS: u64 = 604_800_000;

fn with_coss() -> World {
    let mut w = World::new();
    w.ok(list_asset(COSS, "COSS", 8, true, 0));
    w.ok(Command::SetDaoSchedule(DaoSchedule {
        coss: COSS,
        next_close_ms: SUNDAY_0500,
        period_ms: WEEK_MS,
        min_holding: Amount(UNIT),
    }));
    w
}

/// Puts `amount` of `asset` into the holders' fee account (a fee-free transfer from a funded
/// account stands in for a week of trading fees).
fn pool(w: &mut World, asset: AssetId, amount: u128) {
    w.deposit(EVE, asset, amount);
    let request = w.request();
    w.ok(Command::Transfer {
        request,
        from: EVE,
        to: FEES_HOLDERS,
        asset,
        amount: Amount(amount),
    });
}

fn close(w: &mut World, close_ms: u64) -> Vec<EventKind> {
    w.apply_at(close_ms, Command::CloseWeek { close_ms })
        .expect("the close is due");
    w.last_kinds()
}

fn seal(w: &mut World, close_ms: u64, chain_parts: u32) {
    w.ok(Command::SealWeek {
        close_ms,
        chain_parts,
    });
}

/// Pays the week in chunks of `chunk` holders until it is done; returns every `DaoAssetPaid`.
fn pay_all(w: &mut World, close_ms: u64, chunk: u32) -> Vec<EventKind> {
    let mut done = Vec::new();
    loop {
        w.ok(Command::PayWeek {
            close_ms,
            max_holders: chunk,
        });
        for kind in w.last_kinds() {
            match kind {
                EventKind::DaoAssetPaid { .. } => done.push(kind),
                EventKind::WeekPaid { .. } => return done,
                _ => {}
            }
        }
    }
}

fn available(w: &World, account: AccountId, asset: AssetId) -> u128 {
    w.ex.balance(account, asset).available.0
}

#[test]
fn a_week_closes_at_sunday_0500_utc_not_a_millisecond_before() {
    let mut w = with_coss();
    assert_eq!(w.ex.week_close_due(SUNDAY_0500 - 1), None);
    assert_eq!(w.ex.week_close_due(SUNDAY_0500), Some(SUNDAY_0500));
    let refused = w.apply_at(
        SUNDAY_0500 - 1,
        Command::CloseWeek {
            close_ms: SUNDAY_0500,
        },
    );
    assert_eq!(refused, Err(RejectReason::WeekNotDue));
    let kinds = close(&mut w, SUNDAY_0500);
    assert!(kinds.contains(&EventKind::WeekClosed {
        close_ms: SUNDAY_0500,
        holders: 0,
        next_close_ms: SUNDAY_0500 + WEEK_MS,
    }));
    // Closed once: the same close again is no longer the next one.
    w.rejects(
        Command::CloseWeek {
            close_ms: SUNDAY_0500,
        },
        RejectReason::UnknownWeek,
    );
    assert_eq!(w.ex.week_close_due(SUNDAY_0500 + WEEK_MS - 1), None);
}

#[test]
fn a_schedule_must_start_in_the_future_with_a_period() {
    let mut w = World::new();
    w.ok(list_asset(COSS, "COSS", 8, true, 0));
    let schedule = |next_close_ms, period_ms| {
        Command::SetDaoSchedule(DaoSchedule {
            coss: COSS,
            next_close_ms,
            period_ms,
            min_holding: Amount(UNIT),
        })
    };
    w.rejects(schedule(1_000, WEEK_MS), RejectReason::InvalidSchedule);
    w.rejects(schedule(SUNDAY_0500, 0), RejectReason::InvalidSchedule);
    w.rejects(
        Command::SetDaoSchedule(DaoSchedule {
            coss: AssetId(9),
            next_close_ms: SUNDAY_0500,
            period_ms: WEEK_MS,
            min_holding: Amount(0),
        }),
        RejectReason::UnknownAsset,
    );
    w.rejects(
        Command::CloseWeek {
            close_ms: SUNDAY_0500,
        },
        RejectReason::DaoNotConfigured,
    );
    w.ok(schedule(SUNDAY_0500, WEEK_MS));
}

#[test]
fn holdings_are_available_plus_locked_in_orders_and_fees_after_the_close_belong_to_next_week() {
    let mut w = with_coss();
    w.fund(ALICE);
    w.fund(BOB);
    w.deposit(ALICE, COSS, 3 * UNIT);
    w.deposit(BOB, COSS, 2 * UNIT);
    // Half of BOB's COSS is locked in a pending withdrawal: on its way to an address, where
    // the chain holdings count it, so the platform does not (it would count twice).
    let request = w.request();
    w.ok(withdraw_hold(request, BOB, COSS, UNIT));
    // A week of trading: fees in BTC and USDT, half of them the holders'.
    w.place(limit(BOB, Side::Sell, 100, 100));
    w.place(limit(ALICE, Side::Buy, 100, 100));
    let btc_pool = available(&w, FEES_HOLDERS, BTC);
    let usdt_pool = available(&w, FEES_HOLDERS, USDT);
    assert!(btc_pool > 0 && usdt_pool > 0);

    close(&mut w, SUNDAY_0500);
    assert_eq!(available(&w, FEES_HOLDERS, BTC), 0);
    assert_eq!(available(&w, DAO_PAYOUTS, BTC), btc_pool);
    assert_eq!(available(&w, DAO_PAYOUTS, USDT), usdt_pool);
    // Trading after the close fills next week's pool, not this one.
    w.place(limit(BOB, Side::Sell, 100, 100));
    w.place(limit(ALICE, Side::Buy, 100, 100));
    let next_week_btc = available(&w, FEES_HOLDERS, BTC);
    assert!(next_week_btc > 0);
    // Coins moved after the close do not change the snapshot.
    w.deposit(CAROL, COSS, 100 * UNIT);

    seal(&mut w, SUNDAY_0500, 0);
    let view = &w.ex.dao_weeks()[0];
    assert_eq!((view.holders, view.total), (2, Amount(4 * UNIT)));
    let alice_btc = available(&w, ALICE, BTC);
    let paid = pay_all(&mut w, SUNDAY_0500, 1_000);
    assert_eq!(paid.len(), 2, "one report per pool asset: {paid:?}");
    assert_eq!(
        available(&w, ALICE, BTC) - alice_btc,
        dao_share(btc_pool, 3 * UNIT, 4 * UNIT)
    );
    assert_eq!(
        w.ex.balance(BOB, COSS).locked,
        Amount(UNIT),
        "the payout leaves locked funds alone"
    );
    assert_eq!(available(&w, DAO_PAYOUTS, BTC), 0);
    let carried =
        btc_pool - dao_share(btc_pool, 3 * UNIT, 4 * UNIT) - dao_share(btc_pool, UNIT, 4 * UNIT);
    assert_eq!(available(&w, FEES_HOLDERS, BTC), next_week_btc + carried);
    assert!(w.ex.dao_weeks().is_empty());
}

#[test]
fn each_holder_gets_the_floor_and_the_remainder_stays_for_next_week() {
    let mut w = with_coss();
    for holder in [ALICE, BOB, CAROL] {
        w.deposit(holder, COSS, UNIT);
    }
    pool(&mut w, USDT, 100);
    close(&mut w, SUNDAY_0500);
    seal(&mut w, SUNDAY_0500, 0);
    let paid = pay_all(&mut w, SUNDAY_0500, 2);
    assert_eq!(
        paid,
        vec![EventKind::DaoAssetPaid {
            close_ms: SUNDAY_0500,
            asset: USDT,
            pool: Amount(100),
            paid: Amount(99),
            carried: Amount(1),
            holders: 3,
        }]
    );
    for holder in [ALICE, BOB, CAROL] {
        assert_eq!(available(&w, holder, USDT), 33);
    }
    assert_eq!(available(&w, FEES_HOLDERS, USDT), 1);
    // Paid once: the week is gone, a rerun of the same step is refused.
    w.rejects(
        Command::PayWeek {
            close_ms: SUNDAY_0500,
            max_holders: 10,
        },
        RejectReason::UnknownWeek,
    );
    // Next week the carried unit is part of the pool.
    pool(&mut w, USDT, 2);
    let next = SUNDAY_0500 + WEEK_MS;
    close(&mut w, next);
    assert_eq!(w.ex.dao_weeks()[0].pools[0].pool, Amount(3));
}

#[test]
fn chain_holdings_arrive_in_numbered_parts_each_counted_once() {
    let mut w = with_coss();
    w.deposit(ALICE, COSS, UNIT);
    pool(&mut w, BTC, 1_000);
    close(&mut w, SUNDAY_0500);
    let part = |part: u32, holdings: Vec<(AccountId, u128)>| Command::AddChainHoldings {
        close_ms: SUNDAY_0500,
        part,
        holdings: holdings.into_iter().map(|(a, h)| (a, Amount(h))).collect(),
    };
    w.rejects(part(1, vec![(BOB, UNIT)]), RejectReason::PartOutOfOrder);
    w.ok(part(0, vec![(ALICE, UNIT), (BOB, UNIT)]));
    w.rejects(part(0, vec![(ALICE, UNIT)]), RejectReason::DuplicateRequest);
    w.rejects(
        part(1, vec![(DAO_PAYOUTS, UNIT)]),
        RejectReason::SystemAccount,
    );
    w.rejects(part(1, vec![(BOB, 0)]), RejectReason::InvalidAmount);
    w.rejects(part(1, vec![]), RejectReason::InvalidAmount);
    // An account below the minimum on the platform and on chain, but above it together.
    w.ok(part(1, vec![(CAROL, UNIT / 2)]));
    w.ok(part(2, vec![(CAROL, UNIT / 2), (DAVE, UNIT - 1)]));
    w.rejects(
        Command::SealWeek {
            close_ms: SUNDAY_0500,
            chain_parts: 2,
        },
        RejectReason::PartOutOfOrder,
    );
    seal(&mut w, SUNDAY_0500, 3);
    w.rejects(part(3, vec![(EVE, UNIT)]), RejectReason::WeekSealed);
    let holders = w.ex.dao_holders(SUNDAY_0500).unwrap();
    assert_eq!(
        holders,
        vec![
            (ALICE, Amount(2 * UNIT)),
            (BOB, Amount(UNIT)),
            (CAROL, Amount(UNIT))
        ],
        "DAVE is below the 1 COSS minimum"
    );
    pay_all(&mut w, SUNDAY_0500, 1);
    assert_eq!(available(&w, ALICE, BTC), 500);
    assert_eq!(available(&w, BOB, BTC), 250);
    assert_eq!(available(&w, CAROL, BTC), 250);
    assert_eq!(available(&w, DAVE, BTC), 0);
}

#[test]
fn missed_weeks_close_in_order_and_are_paid_in_order() {
    let mut w = with_coss();
    w.deposit(ALICE, COSS, UNIT);
    pool(&mut w, USDT, 10);
    // Down for two weeks: both closes come in order, before anything later.
    close(&mut w, SUNDAY_0500);
    close(&mut w, SUNDAY_0500 + WEEK_MS);
    let second = SUNDAY_0500 + WEEK_MS;
    let weeks = w.ex.dao_weeks();
    assert_eq!(weeks.len(), 2);
    assert_eq!(weeks[0].pools[0].pool, Amount(10));
    assert!(weeks[1].pools.is_empty(), "no fees in a week of downtime");
    w.rejects(
        Command::SealWeek {
            close_ms: second,
            chain_parts: 0,
        },
        RejectReason::EarlierWeekOpen,
    );
    w.rejects(
        Command::PayWeek {
            close_ms: SUNDAY_0500,
            max_holders: 1,
        },
        RejectReason::WeekNotSealed,
    );
    seal(&mut w, SUNDAY_0500, 0);
    pay_all(&mut w, SUNDAY_0500, 1);
    seal(&mut w, second, 0);
    w.ok(Command::PayWeek {
        close_ms: second,
        max_holders: 1,
    });
    assert_eq!(
        w.last_kinds(),
        vec![EventKind::WeekPaid { close_ms: second }]
    );
    assert_eq!(available(&w, ALICE, USDT), 10);
}

#[test]
fn a_week_without_holders_carries_everything_over() {
    let mut w = with_coss();
    pool(&mut w, BTC, 77);
    close(&mut w, SUNDAY_0500);
    seal(&mut w, SUNDAY_0500, 0);
    pay_all(&mut w, SUNDAY_0500, 5);
    assert_eq!(available(&w, FEES_HOLDERS, BTC), 77);
    assert_eq!(available(&w, DAO_PAYOUTS, BTC), 0);
}

/// Runs one week with these chain holdings (split into parts of `part_len`) and pays it in
/// chunks of `chunk`; returns each holder's BTC and USDT credit, and the carried amounts.
fn run_week(
    holdings: &[(AccountId, u128)],
    pools: (u128, u128),
    part_len: usize,
    chunk: u32,
) -> (Vec<(AccountId, u128, u128)>, u128, u128) {
    let mut w = with_coss();
    pool(&mut w, BTC, pools.0);
    pool(&mut w, USDT, pools.1);
    close(&mut w, SUNDAY_0500);
    let mut parts = 0;
    for piece in holdings.chunks(part_len) {
        w.ok(Command::AddChainHoldings {
            close_ms: SUNDAY_0500,
            part: parts,
            holdings: piece.iter().map(|&(a, h)| (a, Amount(h))).collect(),
        });
        parts += 1;
    }
    seal(&mut w, SUNDAY_0500, parts);
    let mut carried = (0, 0);
    for kind in pay_all(&mut w, SUNDAY_0500, chunk) {
        if let EventKind::DaoAssetPaid {
            asset,
            pool,
            paid,
            carried: rest,
            ..
        } = kind
        {
            assert_eq!(paid.0 + rest.0, pool.0, "paid + carried = pool");
            if asset == BTC {
                carried.0 = rest.0;
            } else {
                carried.1 = rest.0;
            }
        }
    }
    let mut accounts: Vec<AccountId> = holdings.iter().map(|&(a, _)| a).collect();
    accounts.sort_unstable();
    accounts.dedup();
    let credits = accounts
        .into_iter()
        .map(|a| (a, available(&w, a, BTC), available(&w, a, USDT)))
        .collect();
    (credits, carried.0, carried.1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn payouts_are_exact_floors_that_add_up_to_the_pool(
        raw in prop::collection::vec((0u64..40, 1u128..50 * UNIT), 1..60),
        btc_pool in 1u128..10_000_000_000,
        usdt_pool in 1u128..1_000,
        part_len in 1usize..8,
        chunk in 1u32..10,
    ) {
        let holdings: Vec<(AccountId, u128)> =
            raw.iter().map(|&(a, h)| (AccountId(2_000 + a), h)).collect();
        let (credits, btc_carried, usdt_carried) =
            run_week(&holdings, (btc_pool, usdt_pool), part_len, chunk);
        // Each account's holding: its chain entries summed, counted only from 1 COSS.
        let holding = |account: AccountId| -> u128 {
            holdings.iter().filter(|&&(a, _)| a == account).map(|&(_, h)| h).sum()
        };
        let total: u128 = credits
            .iter()
            .map(|&(a, _, _)| holding(a))
            .filter(|&h| h >= UNIT)
            .sum();
        let (mut btc_paid, mut usdt_paid) = (0, 0);
        for &(account, btc, usdt) in &credits {
            let h = holding(account);
            let h = if h >= UNIT { h } else { 0 };
            // Nobody gets more than their exact share, and less only by rounding down.
            let expected = |pool: u128| (pool * h).checked_div(total).unwrap_or(0);
            prop_assert_eq!(btc, expected(btc_pool));
            prop_assert_eq!(usdt, expected(usdt_pool));
            btc_paid += btc;
            usdt_paid += usdt;
        }
        prop_assert_eq!(btc_paid + btc_carried, btc_pool);
        prop_assert_eq!(usdt_paid + usdt_carried, usdt_pool);
        // Rounding loses less than one unit per holder.
        prop_assert!(btc_carried < credits.len() as u128 || total == 0);
    }

    #[test]
    fn the_order_of_holders_does_not_matter(
        raw in prop::collection::vec((0u64..40, 1u128..50 * UNIT), 1..40),
        seed in any::<u64>(),
        part_len in 1usize..8,
    ) {
        let holdings: Vec<(AccountId, u128)> =
            raw.iter().map(|&(a, h)| (AccountId(2_000 + a), h)).collect();
        let mut shuffled = holdings.clone();
        // A deterministic shuffle from the seed.
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let a = run_week(&holdings, (987_654_321, 777), part_len, 3);
        let b = run_week(&shuffled, (987_654_321, 777), 1, 1_000);
        prop_assert_eq!(a, b);
    }
}

#[test]
fn coss_in_flight_at_the_close_is_left_out_of_the_platform_holding_so_it_counts_once() {
    let mut w = with_coss();
    w.fund(ALICE);
    w.deposit(ALICE, COSS, 10 * UNIT);
    // 4 COSS (plus its fee, none here) leave in a withdrawal still pending at the close: the
    // destination address holds them on chain by then, and the chain holdings count them.
    let request = w.request();
    w.ok(withdraw_hold(request, ALICE, COSS, 4 * UNIT));
    assert_eq!(w.ex.balance(ALICE, COSS).locked, Amount(4 * UNIT));
    close(&mut w, SUNDAY_0500);
    seal(&mut w, SUNDAY_0500, 0);
    let view = &w.ex.dao_weeks()[0];
    assert_eq!((view.holders, view.total), (1, Amount(6 * UNIT)));
}
