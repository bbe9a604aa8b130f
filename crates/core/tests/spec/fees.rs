//! Trading fees: maker-taker rates per tier, charged in the asset each side receives, rounded
//! up by less than one unit, and split between the platform and the COSS holders (shareable
//! assets only) with the holders' part exact in aggregate.

use crate::support::*;
use coss_core::{
    Command, DAO_PAYOUTS, DaoSchedule, EventKind, FEES_HOLDERS, FEES_PLATFORM, FeeTier, PPM,
    RejectReason, default_fee_schedule, fee_for,
};
use coss_types::{AccountId, Amount, AssetId, MarketId, Side};

fn funded() -> World {
    let mut w = World::new();
    w.fund(ALICE);
    w.fund(BOB);
    w
}

fn set_tier(w: &mut World, account: AccountId, tier: u8) {
    w.ok(Command::SetAccountFeeTier { account, tier });
}

fn set_share(w: &mut World, share_ppm: u32) {
    w.ok(Command::SetHoldersShare { share_ppm });
}

/// BOB rests a sell of `qty` at `price`, ALICE takes it.
fn alice_takes_from_bob(w: &mut World, price: u64, qty: u64) -> TradeView {
    w.place(limit(BOB, Side::Sell, price, qty));
    w.place(limit(ALICE, Side::Buy, price, qty));
    let trades = w.trades();
    assert_eq!(trades.len(), 1);
    trades[0]
}

#[test]
fn the_default_schedule_spans_020_percent_taker_down_to_004_percent_maker() {
    let rates: Vec<(u32, u32)> = default_fee_schedule()
        .iter()
        .map(|t| (t.maker_ppm, t.taker_ppm))
        .collect();
    assert_eq!(
        rates,
        vec![
            (1_000, 2_000),
            (900, 1_800),
            (800, 1_600),
            (700, 1_400),
            (600, 1_200),
            (500, 1_000),
            (400, 800),
        ]
    );
}

#[test]
fn at_tier_0_makers_pay_010_percent_and_takers_020_percent() {
    let mut w = funded();
    let trade = alice_takes_from_bob(&mut w, 100, 100);
    assert_eq!((trade.base_amount, trade.quote_amount), (1_000_000, 10_000));
    assert_eq!(trade.maker_fee, 10);
    assert_eq!(trade.taker_fee, 2_000);
    assert_eq!(w.available(ALICE, BTC), FUND_BTC + 998_000);
    assert_eq!(w.available(BOB, USDT), FUND_USDT + 9_990);
    assert_eq!(w.fees_collected(), vec![(BTC, 1_000, 1_000), (USDT, 5, 5)]);
}

#[test]
fn each_side_pays_its_fee_in_the_asset_it_receives() {
    let mut w = funded();
    // ALICE makes the bid, BOB sells into it: the buyer pays in BTC, the seller in USDT.
    w.place(limit(ALICE, Side::Buy, 100, 100));
    w.place(limit(BOB, Side::Sell, 100, 100));
    let trade = w.trades()[0];
    assert_eq!(
        trade.maker_fee, 1_000,
        "maker ALICE: 0.10% of 1,000,000 sats"
    );
    assert_eq!(trade.taker_fee, 20, "taker BOB: 0.20% of 10,000 micro-USDT");
    assert_eq!(w.total(ALICE, BTC), FUND_BTC + 999_000);
    assert_eq!(w.total(ALICE, USDT), FUND_USDT - 10_000);
    assert_eq!(w.total(BOB, BTC), FUND_BTC - 1_000_000);
    assert_eq!(w.total(BOB, USDT), FUND_USDT + 9_980);
    assert_eq!(w.fees_collected(), vec![(BTC, 500, 500), (USDT, 10, 10)]);
}

#[test]
fn fees_round_up_in_the_platforms_favour_by_less_than_one_unit() {
    let mut w = funded();
    let trade = alice_takes_from_bob(&mut w, 101, 11);
    assert_eq!(trade.quote_amount, 1_111);
    // 0.10% of 1,111 is 1.111: the maker pays 2.
    assert_eq!(trade.maker_fee, 2);
    assert_eq!(trade.taker_fee, 220);
    assert_eq!(w.available(BOB, USDT), FUND_USDT + 1_109);
    for (amount, rate) in [(1_111u128, 1_000u32), (1, 2_000), (999_999, 1), (7, PPM)] {
        let fee = fee_for(amount, rate);
        let exact_ppm = amount * u128::from(rate);
        assert!(fee * u128::from(PPM) >= exact_ppm);
        assert!(fee * u128::from(PPM) < exact_ppm + u128::from(PPM));
    }
}

#[test]
fn an_account_fee_tier_sets_its_maker_and_taker_rates() {
    let mut w = funded();
    set_tier(&mut w, ALICE, 6);
    set_tier(&mut w, BOB, 3);
    // BOB makes (tier 3: 0.07%), ALICE takes (tier 6: 0.08%).
    let trade = alice_takes_from_bob(&mut w, 100, 100);
    assert_eq!((trade.maker_fee, trade.taker_fee), (7, 800));
    // ALICE makes (tier 6: 0.04%), BOB takes (tier 3: 0.14%).
    w.place(limit(ALICE, Side::Buy, 100, 100));
    w.place(limit(BOB, Side::Sell, 100, 100));
    let trade = w.trades()[0];
    assert_eq!((trade.maker_fee, trade.taker_fee), (400, 14));
}

#[test]
fn a_new_fee_schedule_applies_to_later_trades() {
    let mut w = funded();
    w.ok(Command::SetFeeSchedule {
        tiers: vec![
            FeeTier {
                maker_ppm: 0,
                taker_ppm: 0,
            },
            FeeTier {
                maker_ppm: 50_000,
                taker_ppm: 100_000,
            },
        ],
    });
    let trade = alice_takes_from_bob(&mut w, 100, 10);
    assert_eq!((trade.maker_fee, trade.taker_fee), (0, 0));
    assert!(w.fees_collected().is_empty());
    set_tier(&mut w, ALICE, 1);
    set_tier(&mut w, BOB, 1);
    let trade = alice_takes_from_bob(&mut w, 100, 10);
    assert_eq!((trade.maker_fee, trade.taker_fee), (50, 10_000));
}

#[test]
fn an_account_on_a_tier_the_new_schedule_lacks_pays_the_last_tiers_rates() {
    let mut w = funded();
    set_tier(&mut w, ALICE, 6);
    w.ok(Command::SetFeeSchedule {
        tiers: vec![FeeTier {
            maker_ppm: 1_000,
            taker_ppm: 3_000,
        }],
    });
    let trade = alice_takes_from_bob(&mut w, 100, 10);
    assert_eq!(trade.taker_fee, 300);
}

#[test]
fn the_holders_get_half_of_many_tiny_fees_rounded_down_only_in_aggregate() {
    let mut w = funded();
    for trades in 1..=25u128 {
        // The maker's fee is 0.10% of 1,000 micro-USDT: 1 each time.
        let trade = alice_takes_from_bob(&mut w, 100, 10);
        assert_eq!(trade.maker_fee, 1);
        let holders = trades / 2;
        assert_eq!(w.total(FEES_HOLDERS, USDT), holders);
        assert_eq!(w.total(FEES_PLATFORM, USDT), trades - holders);
        let (platform, to_holders) = if trades % 2 == 0 { (0, 1) } else { (1, 0) };
        assert_eq!(
            w.fees_collected(),
            vec![(BTC, 100, 100), (USDT, platform, to_holders)]
        );
    }
    assert_eq!(w.total(FEES_HOLDERS, USDT), 12);
    assert_eq!(w.total(FEES_HOLDERS, BTC), 2_500);
    assert_eq!(w.total(FEES_PLATFORM, BTC), 2_500);
}

#[test]
fn fees_in_fiat_all_go_to_the_platform() {
    let mut w = funded();
    let btc_usd = MarketId(2);
    // 0.01 BTC lots, 1 USD ticks: one cent per lot and tick.
    w.ok(list_market(btc_usd, BTC, USD, 1_000_000, 100));
    w.deposit(ALICE, USD, 1_000_000);
    w.place(limit(BOB, Side::Sell, 30_000, 10).in_market(btc_usd));
    w.place(limit(ALICE, Side::Buy, 30_000, 10).in_market(btc_usd));
    let trade = w.trades()[0];
    // 10 lots of 0.01 BTC for 10 × 30,000 cents: ALICE pays 3,000.00 USD for 0.1 BTC.
    assert_eq!(w.total(ALICE, USD), 1_000_000 - 300_000);
    assert_eq!((trade.maker_fee, trade.taker_fee), (300, 20_000));
    assert_eq!(
        w.fees_collected(),
        vec![(BTC, 10_000, 10_000), (USD, 300, 0)]
    );
    assert_eq!(w.total(FEES_HOLDERS, USD), 0);
    assert_eq!(w.total(FEES_PLATFORM, USD), 300);
    assert_eq!(w.total(BOB, USD), 299_700);
}

#[test]
fn a_new_holders_share_applies_to_later_fees() {
    let mut w = funded();
    set_share(&mut w, 1_000_000);
    alice_takes_from_bob(&mut w, 100, 10);
    assert_eq!(w.fees_collected(), vec![(BTC, 0, 200), (USDT, 0, 1)]);
    set_share(&mut w, 0);
    alice_takes_from_bob(&mut w, 100, 10);
    assert_eq!(w.fees_collected(), vec![(BTC, 200, 0), (USDT, 1, 0)]);
    set_share(&mut w, 250_000);
    alice_takes_from_bob(&mut w, 100, 10);
    assert_eq!(w.fees_collected(), vec![(BTC, 150, 50), (USDT, 1, 0)]);
    assert_eq!(w.total(FEES_HOLDERS, BTC), 250);
    assert_eq!(w.total(FEES_PLATFORM, BTC), 350);
}

#[test]
fn the_holders_fee_account_pays_out_only_through_the_dao() {
    let mut w = funded();
    alice_takes_from_bob(&mut w, 100, 10);
    let request = w.request();
    w.rejects(
        transfer(request, FEES_HOLDERS, DAO_PAYOUTS, BTC, 100),
        RejectReason::SystemAccount,
    );
    w.rejects(
        transfer(request, FEES_HOLDERS, ALICE, BTC, 100),
        RejectReason::SystemAccount,
    );
    w.rejects(
        transfer(request, ALICE, DAO_PAYOUTS, BTC, 100),
        RejectReason::SystemAccount,
    );
    assert_eq!(w.total(DAO_PAYOUTS, BTC), 0);
}

#[test]
fn fees_near_the_128_bit_limit_never_overflow_the_holders_running_total() {
    let mut w = World::new();
    let (big, cash, big_cash) = (AssetId(10), AssetId(11), MarketId(2));
    w.ok(list_asset(big, "BIG", 0, true, 0));
    w.ok(list_asset(cash, "CASH", 0, true, 0));
    // One lot is 2^120 BIG; one tick is 1 CASH per BIG: 2^120 CASH per lot and tick.
    w.ok(list_market(big_cash, big, cash, 1 << 120, 1));
    w.ok(Command::SetFeeSchedule {
        tiers: vec![FeeTier {
            maker_ppm: 100_000,
            taker_ppm: 100_000,
        }],
    });
    let lots: u64 = 255;
    let supply = u128::from(lots) << 120;
    w.deposit(BOB, big, supply);
    w.deposit(ALICE, cash, supply);
    let coss = AssetId(12);
    w.ok(list_asset(coss, "COSS", 0, true, 0));
    w.deposit(BOB, coss, 1);
    let mut close = 1_800_000_000_000;
    w.ok(Command::SetDaoSchedule(DaoSchedule {
        coss,
        next_close_ms: close + 1_000_000,
        period_ms: 1_000_000,
        min_holding: Amount(0),
    }));
    // Each round trades the whole supply at 10% and hands everything back, so the shareable
    // fees collected in BIG add up to more than 2^128 after 11 rounds.
    for _ in 0..12 {
        w.place(limit(BOB, Side::Sell, 1, lots).in_market(big_cash));
        w.place(limit(ALICE, Side::Buy, 1, lots).in_market(big_cash));
        assert_eq!(w.trades()[0].taker_fee, supply / 10);
        // The holders' part comes back through a DAO week whose only COSS holder is BOB.
        close += 1_000_000;
        w.apply_at(close, Command::CloseWeek { close_ms: close })
            .expect("the week is due");
        w.ok(Command::SealWeek {
            close_ms: close,
            chain_parts: 0,
        });
        while !w
            .last_kinds()
            .contains(&EventKind::WeekPaid { close_ms: close })
        {
            w.ok(Command::PayWeek {
                close_ms: close,
                max_holders: 10,
            });
        }
        for (asset, owner) in [(big, BOB), (cash, ALICE)] {
            for holder in [ALICE, BOB, FEES_PLATFORM] {
                let amount = w.available(holder, asset);
                if holder != owner && amount > 0 {
                    let request = w.request();
                    w.ok(transfer(request, holder, owner, asset, amount));
                }
            }
        }
        assert_eq!(w.available(BOB, big), supply);
        assert_eq!(w.available(ALICE, cash), supply);
    }
}
