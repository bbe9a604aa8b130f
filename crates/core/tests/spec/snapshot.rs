//! Determinism and durability of the state: the event sequence, replay, the state hash,
//! snapshots and their restoration.

use crate::support::*;
use coss_core::{
    Command, Envelope, EventKind, Exchange, MarketStatus, RejectReason, SelfTradePrevention,
    SnapshotError, TimeInForce,
};
use coss_types::{Amount, MarketId, OrderId, RequestId, Side};

/// What [`rich_history`] left open.
struct Rich {
    bob_bid: OrderId,
    pending_withdrawal: RequestId,
    used_transfer: RequestId,
}

/// A state with something of everything: resting orders on both sides and in one queue,
/// waiting stops of both directions, client ids open and remembered, withdrawals in every
/// state, a transfer, a fee tier, a halted market, parameters changed and an odd number of
/// tiny USDT fees (a holders' carry).
fn rich_history(w: &mut World) -> Rich {
    for account in [ALICE, BOB, CAROL, DAVE] {
        w.fund(account);
    }
    w.ok(list_market(MarketId(2), BTC, USD, 1_000_000, 100));
    w.ok(Command::SetMarketStatus {
        market: MarketId(2),
        status: MarketStatus::Halted,
    });
    w.ok(Command::SetAccountFeeTier {
        account: BOB,
        tier: 2,
    });
    w.ok(Command::SetOpenOrderLimit {
        max_open_orders: 50,
    });
    w.trade_at(100);
    w.place(limit(ALICE, Side::Buy, 98, 20).client("a-bid"));
    w.place(limit(ALICE, Side::Buy, 98, 30));
    let bob_bid = w.place(limit(BOB, Side::Buy, 97, 20));
    w.place(limit(BOB, Side::Sell, 103, 20).client("b-ask"));
    w.place(
        limit_tif(CAROL, Side::Sell, 104, 20, TimeInForce::PostOnly)
            .stp(SelfTradePrevention::ExpireBoth),
    );
    w.place(stop_limit(ALICE, Side::Buy, 105, 106, 10).client("a-stop"));
    w.place(take_profit(BOB, Side::Buy, 90, 91, 20));
    w.place(limit_tif(DAVE, Side::Buy, 100, 10, TimeInForce::Ioc).client("d-ioc"));
    let pending_withdrawal = w.request();
    w.ok(withdraw_hold(pending_withdrawal, ALICE, BTC, 1_000_000));
    let confirmed = w.request();
    w.ok(withdraw_hold(confirmed, BOB, USDT, 5_000_000));
    w.ok(Command::WithdrawConfirm { request: confirmed });
    let released = w.request();
    w.ok(withdraw_hold(released, CAROL, BTC, 1_000));
    w.ok(Command::WithdrawRelease { request: released });
    let used_transfer = w.request();
    w.ok(transfer(used_transfer, DAVE, ALICE, USDT, 123_456));
    w.ok(Command::SetWithdrawalFee {
        asset: USDT,
        fee: Amount(2_000_000),
    });
    w.ok(Command::SetAccountLock {
        account: EVE,
        locked: true,
    });
    w.ok(Command::SetGatewayFee { fee_ppm: 5_000 });
    w.ok(Command::SetWithdrawalMinimum {
        asset: BTC,
        minimum: Amount(5_000),
    });
    Rich {
        bob_bid,
        pending_withdrawal,
        used_transfer,
    }
}

#[test]
fn event_sequence_numbers_start_at_1_and_have_no_gaps_through_rejections() {
    let mut w = World::bare();
    assert_eq!(w.ex.last_seq(), 0);
    w.rejects(deposit(ALICE, BTC, 1, "r"), RejectReason::UnknownAsset);
    assert_eq!(w.events()[0].seq, 1);
    w.ok(list_asset(BTC, "BTC", 8, true, 0));
    w.ok(deposit(ALICE, BTC, 1, "r"));
    w.rejects(
        deposit(ALICE, BTC, 1, "r"),
        RejectReason::DuplicateReference,
    );
    let seqs: Vec<u64> = w.events().iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    assert_eq!(w.ex.last_seq(), 5);
}

#[test]
fn events_carry_the_command_time_which_never_goes_backwards() {
    let mut w = World::bare();
    w.apply_at(5_000, list_asset(BTC, "BTC", 8, true, 0))
        .unwrap();
    assert_eq!(w.last_events()[0].time_ms, 5_000);
    w.apply_at(4_000, deposit(ALICE, BTC, 1, "late")).unwrap();
    assert!(w.last_events().iter().all(|e| e.time_ms == 5_000));
    assert_eq!(w.ex.time_ms(), 5_000);
}

#[test]
fn a_rejected_command_is_counted_but_changes_nothing_else() {
    let mut w = World::new();
    w.fund(ALICE);
    let commands = w.ex.commands();
    w.place_rejected(
        limit(ALICE, Side::Buy, 100, 9),
        RejectReason::BelowMinNotional,
    );
    assert_eq!(w.ex.commands(), commands + 1);
    assert_eq!(w.ex.next_order_id(), 1, "a rejected order takes no id");
}

#[test]
fn a_fresh_exchange_holds_nothing_and_satisfies_its_invariants() {
    let ex = Exchange::new();
    assert_eq!(ex.check_invariants(), Ok(()));
    assert_eq!((ex.last_seq(), ex.commands(), ex.time_ms()), (0, 0, 0));
    assert_eq!(ex.resting_orders(BTC_USDT), 0);
}

#[test]
fn the_state_hash_prints_as_64_hex_digits() {
    let text = Exchange::new().state_hash().to_string();
    assert_eq!(text.len(), 64);
    assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
}

#[test]
fn replaying_the_same_commands_gives_the_same_events_and_state_hash() {
    let mut w = World::new();
    rich_history(&mut w);
    w.check_replay();
    let mut other = World::new();
    rich_history(&mut other);
    assert_eq!(other.ex.state_hash(), w.ex.state_hash());
    assert_eq!(other.events(), w.events());
    other.place(limit_tif(DAVE, Side::Buy, 100, 10, TimeInForce::Ioc));
    assert_ne!(other.ex.state_hash(), w.ex.state_hash());
}

#[test]
fn a_restored_snapshot_has_the_same_state_hash_and_behaves_identically() {
    let mut w = World::new();
    let rich = rich_history(&mut w);
    let mut twin = Exchange::restore(&w.ex.snapshot()).expect("restores");
    assert_eq!(twin.state_hash(), w.ex.state_hash());
    assert_eq!(twin.last_seq(), w.ex.last_seq());

    let further = vec![
        Command::PlaceOrder(limit(CAROL, Side::Buy, 103, 30)),
        Command::PlaceOrder(limit(DAVE, Side::Sell, 105, 10)),
        // Takes CAROL's post-only ask and DAVE's own; the trade at 105 fires ALICE's stop.
        Command::PlaceOrder(limit_tif(DAVE, Side::Buy, 105, 30, TimeInForce::Ioc)),
        // The client id memory survived.
        Command::PlaceOrder(limit(DAVE, Side::Buy, 100, 10).client("d-ioc")),
        cancel_client(ALICE, "a-bid"),
        amend(BOB, rich.bob_bid, 10, 97),
        Command::WithdrawConfirm {
            request: rich.pending_withdrawal,
        },
        deposit(ALICE, BTC, 1, "deposit-1"),
        transfer(rich.used_transfer, DAVE, ALICE, USDT, 1),
        Command::PlaceOrder(market(DAVE, Side::Sell, 50)),
        Command::PlaceOrder(market(DAVE, Side::Sell, 20)),
        Command::SetHoldersShare { share_ppm: 300_000 },
        Command::PlaceOrder(limit(ALICE, Side::Sell, 90, 20)),
        // The trade at 90 fires BOB's take-profit buy.
        Command::PlaceOrder(limit_tif(CAROL, Side::Buy, 90, 20, TimeInForce::Ioc)),
        Command::PlaceOrder(market_quote(CAROL, Side::Buy, 5_000)),
        cancel_all(BOB),
        Command::PlaceOrder(limit(ALICE, Side::Buy, 100, 10).in_market(MarketId(2))),
    ];
    let mut triggers = 0;
    for command in further {
        let outcome = w.apply(command);
        let mut events = Vec::new();
        let twin_outcome = twin.apply(w.last_envelope(), &mut events);
        assert_eq!(twin_outcome, outcome);
        assert_eq!(events, w.last_events());
        assert_eq!(twin.state_hash(), w.ex.state_hash());
        triggers += events
            .iter()
            .filter(|e| matches!(e.kind, EventKind::OrderTriggered { .. }))
            .count();
    }
    assert_eq!(triggers, 2, "both waiting stops fired after the restore");
}

/// Runs a little of everything on `ex`; the invariants must hold after each command.
fn exercise(ex: &mut Exchange) {
    let mut commands = vec![Command::SetHoldersShare { share_ppm: 123_456 }];
    for account in [ALICE, BOB, CAROL, DAVE] {
        commands.extend([
            Command::PlaceOrder(limit(account, Side::Sell, 90, 30)),
            Command::PlaceOrder(limit(account, Side::Buy, 110, 30)),
            Command::PlaceOrder(market(account, Side::Buy, 30)),
            Command::PlaceOrder(market_quote(account, Side::Sell, 10_000)),
            Command::PlaceOrder(limit_tif(account, Side::Buy, 106, 10, TimeInForce::Fok)),
            amend(account, OrderId(5), 50, 101),
            cancel_client(account, "a-stop"),
            cancel_all(account),
            transfer(RequestId(77), account, EVE, BTC, 1),
        ]);
    }
    for request in 1..5 {
        commands.push(Command::WithdrawConfirm {
            request: RequestId(request),
        });
    }
    let mut events = Vec::new();
    for (time_ms, command) in (u64::MAX - 100..).zip(commands) {
        let _ = ex.apply(&Envelope { time_ms, command }, &mut events);
        assert_eq!(ex.check_invariants(), Ok(()));
    }
}

#[test]
fn restoring_garbage_bytes_is_an_error_not_a_panic() {
    assert!(Exchange::restore(&[]).is_err());
    assert!(Exchange::restore(b"definitely not a snapshot").is_err());
    assert!(Exchange::restore(&[0xff; 64]).is_err());
    let mut w = World::new();
    rich_history(&mut w);
    let bytes = w.ex.snapshot();
    for len in 0..bytes.len() {
        assert!(
            Exchange::restore(&bytes[..len]).is_err(),
            "a snapshot cut at {len} bytes restored"
        );
    }
    // A damaged snapshot is refused, or restores to a state that commands can run on.
    for at in 0..bytes.len() {
        for mask in [0x01, 0x02, 0x10, 0x40, 0x80, 0xff] {
            let mut damaged = bytes.clone();
            damaged[at] ^= mask;
            if let Ok(mut restored) = Exchange::restore(&damaged) {
                exercise(&mut restored);
            }
        }
    }
}

/// postcard's encoding of an unsigned integer.
fn varint(mut value: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    while value >= 0x80 {
        bytes.push(u8::try_from(value & 0x7f).unwrap() | 0x80);
        value >>= 7;
    }
    bytes.push(u8::try_from(value).unwrap());
    bytes
}

#[test]
fn a_snapshot_with_impossible_parameters_is_refused() {
    let bytes = Exchange::new().snapshot();
    // The version comes first, then the holders' share (500,000 ppm: three bytes).
    assert_eq!(bytes[1..4], varint(500_000));
    for share_ppm in [1_000_001, 2_000_000] {
        let mut damaged = bytes[..1].to_vec();
        damaged.extend(varint(share_ppm));
        damaged.extend(&bytes[4..]);
        assert!(matches!(
            Exchange::restore(&damaged),
            Err(SnapshotError::Inconsistent(_))
        ));
    }
}

#[test]
fn a_snapshot_of_another_version_is_refused() {
    let mut bytes = Exchange::new().snapshot();
    // The version is the first field.
    assert_eq!(bytes[0], 4);
    bytes[0] = 3;
    assert!(matches!(
        Exchange::restore(&bytes),
        Err(SnapshotError::Version {
            found: 3,
            expected: 4
        })
    ));
}
