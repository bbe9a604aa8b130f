//! Listings, parameters and the money commands: deposits, withdrawals, transfers.

use crate::support::*;
use coss_core::{
    Command, EventKind, FEES_HOLDERS, FEES_PLATFORM, FeeTier, GATEWAY, MAX_ASSETS, MAX_MARKETS,
    MarketStatus, NewOrder, RejectReason, WITHDRAWAL_FEES,
};
use coss_types::{AccountId, Amount, AssetId, MarketId, OrderId, RequestId, Side};

// ---- Listings ----

#[test]
fn listing_emits_each_asset_and_market_definition() {
    let w = World::new();
    let kinds: Vec<EventKind> = w.events().iter().map(|e| e.kind.clone()).collect();
    assert_eq!(
        kinds,
        vec![
            EventKind::AssetListed {
                asset: BTC,
                symbol: "BTC".into(),
                decimals: 8,
                fees_shared: true,
                withdrawal_fee: Amount(BTC_WITHDRAWAL_FEE),
            },
            EventKind::AssetListed {
                asset: USDT,
                symbol: "USDT".into(),
                decimals: 6,
                fees_shared: true,
                withdrawal_fee: Amount(1_000_000),
            },
            EventKind::AssetListed {
                asset: USD,
                symbol: "USD".into(),
                decimals: 2,
                fees_shared: false,
                withdrawal_fee: Amount(0),
            },
            EventKind::MarketListed {
                market: BTC_USDT,
                base: BTC,
                quote: USDT,
                lot_size: Amount(10_000),
                tick_size: Amount(10_000),
                min_notional: Amount(MIN_NOTIONAL),
            },
        ]
    );
}

#[test]
fn asset_ids_and_symbols_are_unique() {
    let mut w = World::new();
    w.rejects(
        list_asset(BTC, "WBTC", 8, true, 0),
        RejectReason::AssetExists,
    );
    w.rejects(
        list_asset(AssetId(9), "BTC", 8, true, 0),
        RejectReason::InvalidSymbol,
    );
    w.ok(list_asset(AssetId(9), "WBTC", 8, true, 0));
}

#[test]
fn asset_symbols_are_1_to_16_of_upper_case_letters_and_digits() {
    let mut w = World::new();
    for bad in ["", "eth", "ET-H", "ETH ", "É", "ABCDEFGHIJKLMNOPQ"] {
        w.rejects(
            list_asset(AssetId(9), bad, 18, true, 0),
            RejectReason::InvalidSymbol,
        );
    }
    w.ok(list_asset(AssetId(9), "ABCDEFGHIJKLMNO1", 18, true, 0));
    w.ok(list_asset(AssetId(10), "E", 18, true, 0));
}

#[test]
fn asset_decimals_are_at_most_30_and_ids_below_the_bound() {
    let mut w = World::new();
    w.rejects(
        list_asset(AssetId(9), "X", 31, true, 0),
        RejectReason::InvalidDecimals,
    );
    w.rejects(
        list_asset(AssetId(MAX_ASSETS), "X", 8, true, 0),
        RejectReason::UnknownAsset,
    );
    w.ok(list_asset(AssetId(MAX_ASSETS - 1), "X", 30, true, 0));
}

#[test]
fn market_listing_requires_lot_times_tick_to_be_a_multiple_of_ten_to_the_base_decimals() {
    let mut w = World::new();
    // 10,000 sats × 9,999 = 99,990,000 is not a multiple of 10^8: trade values would have
    // fractions of a micro-USDT.
    w.rejects(
        list_market(MarketId(2), BTC, USDT, 10_000, 9_999),
        RejectReason::InvalidMarket,
    );
    // 10,000 sats × 1 cent = 10^4 < 10^8.
    w.rejects(
        list_market(MarketId(2), BTC, USD, 10_000, 1),
        RejectReason::InvalidMarket,
    );
    // 0.01 BTC lots at 1 USD ticks: 10^6 × 100 = 10^8, one cent per lot and tick.
    w.ok(list_market(MarketId(2), BTC, USD, 1_000_000, 100));
    // A product beyond 128 bits is not exact either.
    w.rejects(
        list_market(MarketId(3), USDT, BTC, 1 << 64, 1 << 64),
        RejectReason::InvalidMarket,
    );
    // With a 6-decimal base, 10,000 × 100 = 10^6 is exact.
    w.ok(list_market(MarketId(3), USDT, USD, 10_000, 100));
}

#[test]
fn market_listing_rejects_duplicates_unknown_assets_and_degenerate_sizes() {
    let mut w = World::new();
    w.rejects(
        list_market(BTC_USDT, BTC, USD, 1_000_000, 100),
        RejectReason::MarketExists,
    );
    w.rejects(
        list_market(MarketId(MAX_MARKETS), BTC, USD, 1_000_000, 100),
        RejectReason::UnknownMarket,
    );
    w.rejects(
        list_market(MarketId(2), AssetId(9), USD, 1_000_000, 100),
        RejectReason::UnknownAsset,
    );
    w.rejects(
        list_market(MarketId(2), BTC, AssetId(9), 1_000_000, 100),
        RejectReason::UnknownAsset,
    );
    w.rejects(
        list_market(MarketId(2), BTC, BTC, 100_000_000, 1),
        RejectReason::InvalidMarket,
    );
    w.rejects(
        list_market(MarketId(2), BTC, USD, 0, 100),
        RejectReason::InvalidMarket,
    );
    w.rejects(
        list_market(MarketId(2), BTC, USD, 1_000_000, 0),
        RejectReason::InvalidMarket,
    );
}

#[test]
fn halted_market_rejects_new_orders_and_amends_but_allows_cancels() {
    let mut w = World::new();
    w.fund(ALICE);
    let first = w.place(limit(ALICE, Side::Buy, 100, 10));
    let second = w.place(limit(ALICE, Side::Buy, 99, 20));
    w.set_status(MarketStatus::Halted);
    assert_eq!(
        w.last_kinds(),
        vec![EventKind::MarketStatusChanged {
            market: BTC_USDT,
            status: MarketStatus::Halted
        }]
    );

    w.place_rejected(limit(ALICE, Side::Buy, 100, 10), RejectReason::MarketHalted);
    w.place_rejected(market(ALICE, Side::Sell, 10), RejectReason::MarketHalted);
    w.place_rejected(
        stop_limit(ALICE, Side::Buy, 120, 121, 10),
        RejectReason::MarketHalted,
    );
    w.rejects(amend(ALICE, first, 5, 100), RejectReason::MarketHalted);

    w.ok(cancel(ALICE, first));
    assert_eq!(
        w.done(),
        vec![(first, coss_core::DoneReason::Cancelled, 10)]
    );
    w.ok(cancel_all(ALICE));
    assert_eq!(
        w.done(),
        vec![(second, coss_core::DoneReason::Cancelled, 20)]
    );
    assert_eq!(w.locked(ALICE, USDT), 0);

    w.set_status(MarketStatus::Trading);
    w.place(limit(ALICE, Side::Buy, 100, 10));
}

#[test]
fn status_of_an_unknown_market_cannot_be_set() {
    let mut w = World::new();
    w.rejects(
        Command::SetMarketStatus {
            market: MarketId(7),
            status: MarketStatus::Halted,
        },
        RejectReason::UnknownMarket,
    );
}

// ---- Parameters ----

#[test]
fn a_fee_schedule_has_1_to_16_tiers_with_rates_of_at_most_10_percent() {
    let mut w = World::new();
    let tier = FeeTier {
        maker_ppm: 100_000,
        taker_ppm: 100_000,
    };
    let too_high = FeeTier {
        maker_ppm: 0,
        taker_ppm: 100_001,
    };
    w.rejects(
        Command::SetFeeSchedule { tiers: vec![] },
        RejectReason::InvalidFeeSchedule,
    );
    w.rejects(
        Command::SetFeeSchedule {
            tiers: vec![tier; 17],
        },
        RejectReason::InvalidFeeSchedule,
    );
    w.rejects(
        Command::SetFeeSchedule {
            tiers: vec![tier, too_high],
        },
        RejectReason::InvalidFeeSchedule,
    );
    w.ok(Command::SetFeeSchedule {
        tiers: vec![tier; 16],
    });
    assert_eq!(
        w.last_kinds(),
        vec![EventKind::FeeScheduleSet {
            tiers: vec![tier; 16]
        }]
    );
}

#[test]
fn an_account_can_only_be_moved_to_a_tier_of_the_schedule() {
    let mut w = World::new();
    // The default schedule has tiers 0 to 6.
    w.rejects(
        Command::SetAccountFeeTier {
            account: ALICE,
            tier: 7,
        },
        RejectReason::UnknownFeeTier,
    );
    w.ok(Command::SetAccountFeeTier {
        account: ALICE,
        tier: 6,
    });
    assert_eq!(
        w.last_kinds(),
        vec![EventKind::AccountFeeTierSet {
            account: ALICE,
            tier: 6
        }]
    );
}

#[test]
fn the_holders_share_is_at_most_one_million_ppm() {
    let mut w = World::new();
    w.rejects(
        Command::SetHoldersShare {
            share_ppm: 1_000_001,
        },
        RejectReason::InvalidShare,
    );
    w.ok(Command::SetHoldersShare {
        share_ppm: 1_000_000,
    });
    assert_eq!(
        w.last_kinds(),
        vec![EventKind::HoldersShareSet {
            share_ppm: 1_000_000
        }]
    );
}

#[test]
fn the_open_order_limit_is_between_1_and_a_million() {
    let mut w = World::new();
    for bad in [0, 1_000_001] {
        w.rejects(
            Command::SetOpenOrderLimit {
                max_open_orders: bad,
            },
            RejectReason::InvalidLimit,
        );
    }
    for good in [1, 1_000_000] {
        w.ok(Command::SetOpenOrderLimit {
            max_open_orders: good,
        });
        assert_eq!(
            w.last_kinds(),
            vec![EventKind::OpenOrderLimitSet {
                max_open_orders: good
            }]
        );
    }
}

// ---- Deposits ----

#[test]
fn a_deposit_credits_the_available_balance() {
    let mut w = World::new();
    w.ok(deposit(ALICE, BTC, 150_000_000, "0xabc:0"));
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::Deposited {
                account: ALICE,
                asset: BTC,
                amount: Amount(150_000_000),
                reference: "0xabc:0".into(),
            },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: BTC,
                available: Amount(150_000_000),
                locked: Amount(0),
            },
        ]
    );
    assert_eq!(w.supply(BTC), 150_000_000);
}

#[test]
fn a_deposit_reference_is_credited_only_once() {
    let mut w = World::new();
    w.ok(deposit(ALICE, BTC, 100, "0xabc:0"));
    w.rejects(
        deposit(ALICE, BTC, 100, "0xabc:0"),
        RejectReason::DuplicateReference,
    );
    // The reference is global: not even another account or asset may reuse it.
    w.rejects(
        deposit(BOB, USDT, 5, "0xabc:0"),
        RejectReason::DuplicateReference,
    );
    assert_eq!(w.available(ALICE, BTC), 100);
    assert_eq!(w.total(BOB, USDT), 0);
    w.ok(deposit(ALICE, BTC, 100, "0xabc:1"));
    assert_eq!(w.available(ALICE, BTC), 200);
}

#[test]
fn a_deposit_needs_a_listed_asset_a_positive_amount_and_a_reference_of_1_to_128_bytes() {
    let mut w = World::new();
    w.rejects(
        deposit(ALICE, AssetId(9), 100, "r1"),
        RejectReason::UnknownAsset,
    );
    w.rejects(deposit(ALICE, BTC, 0, "r1"), RejectReason::InvalidAmount);
    w.rejects(deposit(ALICE, BTC, 1, ""), RejectReason::InvalidReference);
    w.rejects(
        deposit(ALICE, BTC, 1, &"r".repeat(129)),
        RejectReason::InvalidReference,
    );
    w.ok(deposit(ALICE, BTC, 1, &"r".repeat(128)));
    // A rejected deposit does not use up its reference.
    w.ok(deposit(ALICE, BTC, 1, "r1"));
}

#[test]
fn a_deposit_that_would_overflow_the_supply_is_rejected() {
    let mut w = World::new();
    w.ok(deposit(ALICE, BTC, u128::MAX, "a"));
    w.rejects(deposit(BOB, BTC, 1, "b"), RejectReason::Overflow);
    assert_eq!(w.supply(BTC), u128::MAX);
    w.ok(deposit(BOB, USDT, 1, "b"));
}

#[test]
fn system_accounts_can_receive_deposits() {
    let mut w = World::new();
    w.deposit(GATEWAY, USD, 10_000);
    assert_eq!(w.available(GATEWAY, USD), 10_000);
}

// ---- Withdrawals ----

#[test]
fn a_withdrawal_hold_locks_the_amount_plus_the_fee() {
    let mut w = World::new();
    w.deposit(ALICE, BTC, 1_000_000);
    let request = w.request();
    w.ok(withdraw_hold(request, ALICE, BTC, 400_000));
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::WithdrawalHeld {
                request,
                account: ALICE,
                asset: BTC,
                amount: Amount(400_000),
                fee: Amount(BTC_WITHDRAWAL_FEE),
            },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: BTC,
                available: Amount(550_000),
                locked: Amount(450_000),
            },
        ]
    );
    assert_eq!(w.supply(BTC), 1_000_000);
}

#[test]
fn a_confirmed_withdrawal_leaves_the_platform_and_its_fee_is_not_shared_with_holders() {
    let mut w = World::new();
    w.deposit(ALICE, BTC, 1_000_000);
    let request = w.request();
    w.ok(withdraw_hold(request, ALICE, BTC, 400_000));
    w.ok(Command::WithdrawConfirm { request });
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::WithdrawalConfirmed {
                request,
                account: ALICE,
                asset: BTC,
                amount: Amount(400_000),
                fee: Amount(BTC_WITHDRAWAL_FEE),
            },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: BTC,
                available: Amount(550_000),
                locked: Amount(0),
            },
            EventKind::BalanceChanged {
                account: WITHDRAWAL_FEES,
                asset: BTC,
                available: Amount(BTC_WITHDRAWAL_FEE),
                locked: Amount(0),
            },
        ]
    );
    assert_eq!(w.total(FEES_HOLDERS, BTC), 0);
    assert_eq!(w.total(FEES_PLATFORM, BTC), 0);
    // Only the amount left; the fee stays on the platform.
    assert_eq!(w.supply(BTC), 600_000);
}

#[test]
fn a_released_withdrawal_returns_the_hold() {
    let mut w = World::new();
    w.deposit(ALICE, BTC, 1_000_000);
    let request = w.request();
    w.ok(withdraw_hold(request, ALICE, BTC, 400_000));
    w.ok(Command::WithdrawRelease { request });
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::WithdrawalReleased {
                request,
                account: ALICE,
                asset: BTC,
                amount: Amount(400_000),
                fee: Amount(BTC_WITHDRAWAL_FEE),
            },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: BTC,
                available: Amount(1_000_000),
                locked: Amount(0),
            },
        ]
    );
    assert_eq!(w.total(WITHDRAWAL_FEES, BTC), 0);
    assert_eq!(w.supply(BTC), 1_000_000);
}

#[test]
fn a_withdrawal_request_id_is_used_only_once() {
    let mut w = World::new();
    w.deposit(ALICE, BTC, 1_000_000);
    let request = w.request();
    w.ok(withdraw_hold(request, ALICE, BTC, 100_000));
    w.rejects(
        withdraw_hold(request, ALICE, BTC, 100_000),
        RejectReason::DuplicateRequest,
    );
    assert_eq!(w.locked(ALICE, BTC), 150_000);
    w.ok(Command::WithdrawConfirm { request });
    w.rejects(
        withdraw_hold(request, ALICE, BTC, 100_000),
        RejectReason::DuplicateRequest,
    );
    // Withdrawals and transfers share one space of request ids.
    w.rejects(
        transfer(request, ALICE, BOB, BTC, 1),
        RejectReason::DuplicateRequest,
    );
    assert_eq!(w.total(ALICE, BTC), 850_000);
}

#[test]
fn a_finished_withdrawal_is_no_longer_pending() {
    let mut w = World::new();
    w.deposit(ALICE, BTC, 1_000_000);
    let confirmed = w.request();
    let released = w.request();
    w.ok(withdraw_hold(confirmed, ALICE, BTC, 100_000));
    w.ok(withdraw_hold(released, ALICE, BTC, 100_000));
    w.ok(Command::WithdrawConfirm { request: confirmed });
    w.ok(Command::WithdrawRelease { request: released });
    for request in [confirmed, released] {
        w.rejects(
            Command::WithdrawConfirm { request },
            RejectReason::RequestNotPending,
        );
        w.rejects(
            Command::WithdrawRelease { request },
            RejectReason::RequestNotPending,
        );
    }
    w.rejects(
        Command::WithdrawConfirm {
            request: RequestId(999),
        },
        RejectReason::UnknownRequest,
    );
    w.rejects(
        Command::WithdrawRelease {
            request: RequestId(999),
        },
        RejectReason::UnknownRequest,
    );
    assert_eq!(w.total(ALICE, BTC), 850_000);
    assert_eq!(w.total(WITHDRAWAL_FEES, BTC), BTC_WITHDRAWAL_FEE);
}

#[test]
fn a_withdrawal_needs_the_amount_plus_fee_available() {
    let mut w = World::new();
    w.deposit(ALICE, BTC, 100_000);
    let request = w.request();
    w.rejects(
        withdraw_hold(request, ALICE, BTC, 50_001),
        RejectReason::InsufficientBalance,
    );
    w.rejects(
        withdraw_hold(request, ALICE, BTC, 0),
        RejectReason::InvalidAmount,
    );
    w.rejects(
        withdraw_hold(request, ALICE, AssetId(9), 1),
        RejectReason::UnknownAsset,
    );
    w.rejects(
        withdraw_hold(request, EVE, BTC, 1),
        RejectReason::InsufficientBalance,
    );
    // A USDT withdrawal fee of 1 USDT on top of u128::MAX does not fit.
    w.rejects(
        withdraw_hold(request, ALICE, USDT, u128::MAX),
        RejectReason::Overflow,
    );
    // Rejected requests do not use up their id.
    w.ok(withdraw_hold(request, ALICE, BTC, 50_000));
    assert_eq!(w.available(ALICE, BTC), 0);
}

#[test]
fn a_withdrawal_fee_change_applies_to_later_holds_only() {
    let mut w = World::new();
    w.deposit(ALICE, BTC, 1_000_000);
    let before = w.request();
    w.ok(withdraw_hold(before, ALICE, BTC, 100_000));
    w.ok(Command::SetWithdrawalFee {
        asset: BTC,
        fee: Amount(70_000),
    });
    assert_eq!(
        w.last_kinds(),
        vec![EventKind::WithdrawalFeeSet {
            asset: BTC,
            fee: Amount(70_000)
        }]
    );
    let after = w.request();
    w.ok(withdraw_hold(after, ALICE, BTC, 100_000));
    assert_eq!(w.locked(ALICE, BTC), 150_000 + 170_000);
    w.ok(Command::WithdrawConfirm { request: before });
    assert_eq!(w.total(WITHDRAWAL_FEES, BTC), 50_000);
    w.ok(Command::WithdrawConfirm { request: after });
    assert_eq!(w.total(WITHDRAWAL_FEES, BTC), 120_000);
    w.rejects(
        Command::SetWithdrawalFee {
            asset: AssetId(9),
            fee: Amount(1),
        },
        RejectReason::UnknownAsset,
    );
}

#[test]
fn funds_locked_by_an_order_cannot_be_withdrawn_or_transferred() {
    let mut w = World::new();
    w.deposit(ALICE, USDT, 2_000);
    w.place(limit(ALICE, Side::Buy, 100, 10));
    let request = w.request();
    w.rejects(
        transfer(request, ALICE, BOB, USDT, 1_001),
        RejectReason::InsufficientBalance,
    );
    w.ok(transfer(request, ALICE, BOB, USDT, 1_000));
    let request = w.request();
    w.rejects(
        withdraw_hold(request, ALICE, USDT, 1),
        RejectReason::InsufficientBalance,
    );
}

// ---- Transfers ----

#[test]
fn a_transfer_moves_funds_between_accounts_without_a_fee() {
    let mut w = World::new();
    w.deposit(ALICE, USDT, 1_000_000);
    let request = w.request();
    w.ok(transfer(request, ALICE, BOB, USDT, 400_000));
    assert_eq!(
        w.last_kinds(),
        vec![
            EventKind::Transferred {
                request,
                from: ALICE,
                to: BOB,
                asset: USDT,
                amount: Amount(400_000),
            },
            EventKind::BalanceChanged {
                account: ALICE,
                asset: USDT,
                available: Amount(600_000),
                locked: Amount(0),
            },
            EventKind::BalanceChanged {
                account: BOB,
                asset: USDT,
                available: Amount(400_000),
                locked: Amount(0),
            },
        ]
    );
    assert_eq!(w.supply(USDT), 1_000_000);
}

#[test]
fn a_transfer_request_id_is_used_only_once() {
    let mut w = World::new();
    w.deposit(ALICE, USDT, 1_000_000);
    let request = w.request();
    w.ok(transfer(request, ALICE, BOB, USDT, 400_000));
    w.rejects(
        transfer(request, ALICE, BOB, USDT, 400_000),
        RejectReason::DuplicateRequest,
    );
    w.rejects(
        transfer(request, ALICE, CAROL, USDT, 1),
        RejectReason::DuplicateRequest,
    );
    w.rejects(
        withdraw_hold(request, ALICE, USDT, 1),
        RejectReason::DuplicateRequest,
    );
    assert_eq!(w.available(ALICE, USDT), 600_000);
    assert_eq!(w.available(BOB, USDT), 400_000);
    // What the request id names, for a caller deciding whether a duplicate is its own retry
    // (and it survives a snapshot).
    let made = coss_core::TransferInfo {
        from: ALICE,
        to: BOB,
        asset: USDT,
        amount: Amount(400_000),
    };
    assert_eq!(w.ex.transferred(request), Some(made));
    let unused = w.request();
    assert_eq!(w.ex.transferred(unused), None);
    let restored = coss_core::Exchange::restore(&w.ex.snapshot()).unwrap();
    assert_eq!(restored.transferred(request), Some(made));
}

#[test]
fn a_transfer_needs_enough_available_funds_two_accounts_and_a_positive_amount() {
    let mut w = World::new();
    w.deposit(ALICE, USDT, 1_000);
    let request = w.request();
    w.rejects(
        transfer(request, ALICE, BOB, USDT, 1_001),
        RejectReason::InsufficientBalance,
    );
    w.rejects(
        transfer(request, ALICE, ALICE, USDT, 1),
        RejectReason::SameAccount,
    );
    w.rejects(
        transfer(request, ALICE, BOB, USDT, 0),
        RejectReason::InvalidAmount,
    );
    w.rejects(
        transfer(request, ALICE, BOB, AssetId(9), 1),
        RejectReason::UnknownAsset,
    );
    w.rejects(
        transfer(request, EVE, BOB, USDT, 1),
        RejectReason::InsufficientBalance,
    );
    w.rejects(
        transfer(request, ALICE, BOB, USDT, u128::MAX),
        RejectReason::InsufficientBalance,
    );
    w.ok(transfer(request, ALICE, BOB, USDT, 1_000));
    assert_eq!(w.available(BOB, USDT), 1_000);
}

#[test]
fn system_accounts_may_send_transfers() {
    let mut w = World::new();
    w.deposit(GATEWAY, USD, 10_000);
    let request = w.request();
    w.ok(transfer(request, GATEWAY, ALICE, USD, 2_500));
    assert_eq!(w.available(GATEWAY, USD), 7_500);
    assert_eq!(w.available(ALICE, USD), 2_500);
    let request = w.request();
    w.ok(transfer(request, ALICE, AccountId(999), USD, 500));
    assert_eq!(w.available(AccountId(999), USD), 500);
}

// ---- Gateway settlement ----

fn settle(request: RequestId, merchant: AccountId, asset: AssetId, amount: u128) -> Command {
    Command::GatewaySettle {
        request,
        merchant,
        asset,
        amount: Amount(amount),
        fee_ppm: 7_500,
    }
}

#[test]
fn a_gateway_payment_settles_to_the_merchant_less_0_75_percent_split_with_holders() {
    let mut w = World::new();
    // 1,000.000001 USDT paid: the fee is ceil(1_000_000_001 × 0.0075) = 7_500_001 units.
    w.deposit(GATEWAY, USDT, 1_000_000_001);
    let request = w.request();
    let events = w.ok(settle(request, ALICE, USDT, 1_000_000_001));
    assert_eq!(
        events[0].kind,
        EventKind::GatewaySettled {
            request,
            merchant: ALICE,
            asset: USDT,
            amount: Amount(1_000_000_001),
            fee: Amount(7_500_001),
        }
    );
    assert_eq!(w.available(GATEWAY, USDT), 0);
    assert_eq!(w.available(ALICE, USDT), 992_500_000);
    // The holders' half is the running floor, as for trading fees; the platform the rest.
    assert_eq!(w.available(FEES_HOLDERS, USDT), 3_750_000);
    assert_eq!(w.available(FEES_PLATFORM, USDT), 3_750_001);
    assert_eq!(w.fees_collected(), vec![(USDT, 3_750_001, 3_750_000)]);
    // The next fee carries the holders' rounding: 7_500 + 7_501 = 15_001 → 7_500 for them.
    w.deposit(GATEWAY, USDT, 1_000_001);
    let request = w.request();
    w.ok(settle(request, BOB, USDT, 1_000_001));
    assert_eq!(w.available(BOB, USDT), 1_000_001 - 7_501);
    assert_eq!(w.available(FEES_HOLDERS, USDT), 3_750_000 + 3_751);
    // Fiat fees are never shared.
    w.deposit(GATEWAY, USD, 10_000);
    let request = w.request();
    w.ok(settle(request, ALICE, USD, 10_000));
    assert_eq!(w.available(FEES_HOLDERS, USD), 0);
    assert_eq!(w.available(FEES_PLATFORM, USD), 75);
    assert_eq!(w.available(ALICE, USD), 9_925);
    w.check_replay();
    w.check_restore();
}

#[test]
fn a_gateway_settlement_is_refused_whole_when_it_cannot_be_made() {
    let mut w = World::new();
    w.deposit(GATEWAY, USDT, 1_000);
    let request = w.request();
    w.rejects(
        settle(request, ALICE, USDT, 1_001),
        RejectReason::InsufficientBalance,
    );
    w.rejects(settle(request, ALICE, USDT, 0), RejectReason::InvalidAmount);
    w.rejects(
        settle(request, ALICE, AssetId(99), 1),
        RejectReason::UnknownAsset,
    );
    w.rejects(
        settle(request, FEES_PLATFORM, USDT, 1_000),
        RejectReason::SystemAccount,
    );
    w.rejects(
        Command::GatewaySettle {
            request,
            merchant: ALICE,
            asset: USDT,
            amount: Amount(1_000),
            fee_ppm: 100_001,
        },
        RejectReason::InvalidFee,
    );
    w.ok(settle(request, ALICE, USDT, 1_000));
    assert_eq!(w.available(ALICE, USDT), 992);
    // The same request twice settles once.
    w.deposit(GATEWAY, USDT, 1_000);
    w.rejects(
        settle(request, ALICE, USDT, 1_000),
        RejectReason::DuplicateRequest,
    );
    assert_eq!(w.available(GATEWAY, USDT), 1_000);
}

// ---- Locked accounts ----

#[test]
fn locking_an_account_cancels_its_orders_in_every_market_and_refuses_what_it_would_send() {
    let mut w = World::new();
    for account in [ALICE, BOB, CAROL, DAVE] {
        w.fund(account);
    }
    w.ok(list_market(MarketId(2), BTC, USD, 1_000_000, 100));
    w.deposit(ALICE, USD, 1_000_000);
    w.trade_at(100);
    let bid = w.place(limit(ALICE, Side::Buy, 98, 20));
    let stop = w.place(stop_limit(ALICE, Side::Buy, 105, 106, 10));
    let other = w.place(NewOrder {
        market: MarketId(2),
        ..limit(ALICE, Side::Buy, 1_000, 1)
    });
    let bob_bid = w.place(limit(BOB, Side::Buy, 97, 20));
    let held_before = w.request();
    w.ok(withdraw_hold(held_before, ALICE, BTC, 1_000));

    let events = w.ok(Command::SetAccountLock {
        account: ALICE,
        locked: true,
    });
    let cancelled: Vec<OrderId> = w.done().iter().map(|(id, _, _)| *id).collect();
    assert!(cancelled.contains(&bid) && cancelled.contains(&stop) && cancelled.contains(&other));
    assert!(
        !cancelled.contains(&bob_bid),
        "only the locked account's orders go"
    );
    assert!(matches!(
        events
            .iter()
            .rev()
            .find(|e| !matches!(e.kind, EventKind::BalanceChanged { .. }))
            .map(|e| &e.kind),
        Some(EventKind::AccountLockSet {
            account: ALICE,
            locked: true
        })
    ));
    assert!(w.ex.account_locked(ALICE));
    assert_eq!(w.ex.open_orders(ALICE), 0);
    // Only the withdrawal held before the lock stays locked.
    assert_eq!(w.locked(ALICE, USDT), 0);
    assert_eq!(w.locked(ALICE, BTC), 1_000 + BTC_WITHDRAWAL_FEE);

    w.place_rejected(limit(ALICE, Side::Buy, 98, 20), RejectReason::AccountLocked);
    let request = w.request();
    w.rejects(
        withdraw_hold(request, ALICE, BTC, 1_000),
        RejectReason::AccountLocked,
    );
    w.rejects(
        transfer(request, ALICE, BOB, USDT, 1),
        RejectReason::AccountLocked,
    );
    // Money may still arrive, and a hold made before the lock may still finish.
    w.ok(transfer(request, BOB, ALICE, USDT, 1));
    w.deposit(ALICE, BTC, 5);
    w.ok(Command::WithdrawRelease {
        request: held_before,
    });

    w.ok(Command::SetAccountLock {
        account: ALICE,
        locked: false,
    });
    w.place(limit(ALICE, Side::Buy, 98, 20));
    w.rejects(
        Command::SetAccountLock {
            account: FEES_PLATFORM,
            locked: true,
        },
        RejectReason::SystemAccount,
    );
    w.check_replay();
    w.check_restore();
}

#[test]
fn the_gateway_fee_is_a_parameter_of_the_core_at_most_ten_percent() {
    let mut w = World::new();
    assert_eq!(w.ex.gateway_fee_ppm(), 7_500);
    w.ok(Command::SetGatewayFee { fee_ppm: 10_000 });
    assert_eq!(w.ex.gateway_fee_ppm(), 10_000);
    w.rejects(
        Command::SetGatewayFee { fee_ppm: 100_001 },
        RejectReason::InvalidFee,
    );
    assert_eq!(w.ex.gateway_fee_ppm(), 10_000);
    w.check_restore();
}

#[test]
fn a_withdrawal_below_the_assets_minimum_is_refused_and_the_minimum_is_at_least_one_unit() {
    let mut w = World::new();
    w.fund(ALICE);
    w.rejects(
        Command::SetWithdrawalMinimum {
            asset: BTC,
            minimum: Amount(0),
        },
        RejectReason::InvalidAmount,
    );
    w.ok(Command::SetWithdrawalMinimum {
        asset: BTC,
        minimum: Amount(10_000),
    });
    assert_eq!(
        w.ex.asset_info(BTC).unwrap().withdrawal_minimum,
        Amount(10_000)
    );
    let request = w.request();
    w.rejects(
        withdraw_hold(request, ALICE, BTC, 9_999),
        RejectReason::BelowMinimum,
    );
    w.ok(withdraw_hold(request, ALICE, BTC, 10_000));
    w.check_replay();
    w.check_restore();
}
