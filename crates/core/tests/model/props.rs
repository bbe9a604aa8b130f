//! The properties. For every random command stream:
//! - the engine and the reference model agree on every command: same outcome, the very same
//!   events (sequence numbers, trades, fees, balance changes and all), and afterwards the same
//!   balances, books, open-order counts and last prices;
//! - the engine's invariants hold after every command;
//! - a snapshot restores to the same `state_hash`, replaying the stream into a fresh exchange
//!   gives the same events and hash, and restoring a snapshot taken at a random point and
//!   replaying the rest ends exactly where the uninterrupted run did.

use crate::reference::Model;
use crate::universe::{self, ASSETS, MARKETS, Step};
use coss_core::{DoneReason, Envelope, Event, EventKind, Exchange, OrderKind, RejectReason};
use coss_types::Side;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::strategy::ValueTree;
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Steps per stream at most (after the preamble).
const MAX_STEPS: usize = 200;
/// Streams per run, unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 1_000;
/// Steps of the long streams, which reach deeper books and more triggered stops.
const LONG_STEPS: usize = 1_500;
/// Long streams per run, unless `PROPTEST_CASES` says otherwise.
const LONG_CASES: u32 = 24;

/// Failures are saved in `props.regressions` and re-run first next time.
fn config(cases: u32) -> ProptestConfig {
    let mut config = ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = cases;
    }
    config
}

/// The stream of commands that ran, one per line, with a marker on the failing one.
fn render(script: &[Envelope], failing: usize) -> String {
    let preamble = universe::preamble().len();
    let mut text = format!(
        "commands (the first {preamble} list the assets and markets and fund the users):\n"
    );
    for (i, envelope) in script.iter().enumerate().skip(preamble) {
        let mark = if i == failing { ">>" } else { "  " };
        let _ = writeln!(
            text,
            "{mark}{i:4} t={} {:?}",
            envelope.time_ms, envelope.command
        );
    }
    text
}

fn render_events(title: &str, events: &[Event]) -> String {
    let mut text = format!("{title}:\n");
    for event in events {
        let _ = writeln!(text, "    #{} {:?}", event.seq, event.kind);
    }
    text
}

/// Compares what the engine and the model hold after a command.
fn compare_state(engine: &Exchange, model: &Model) -> Result<(), String> {
    for account in universe::accounts() {
        for asset in ASSETS {
            let got = engine.balance(account, asset);
            let want = model.balance(account, asset);
            if (got.available.0, got.locked.0) != want {
                return Err(format!(
                    "balance of {account} in asset {asset}: engine {got:?}, model {want:?}"
                ));
            }
        }
        if engine.open_orders(account) != model.open_orders(account) {
            return Err(format!(
                "open orders of {account}: engine {}, model {}",
                engine.open_orders(account),
                model.open_orders(account)
            ));
        }
        if engine.account_locked(account) != model.locked(account) {
            return Err(format!("lock of {account} differs"));
        }
    }
    if engine.gateway_fee_ppm() != model.gateway_fee_ppm() {
        return Err("gateway fee differs".to_owned());
    }
    for market in MARKETS {
        let resting: Vec<_> = model
            .resting()
            .iter()
            .filter(|o| o.market == market)
            .collect();
        if engine.resting_orders(market) != resting.len() {
            return Err(format!(
                "market {market}: engine rests {} orders, model {}",
                engine.resting_orders(market),
                resting.len()
            ));
        }
        for order in resting {
            let got = engine.resting_order(market, order.id);
            let same = got.is_some_and(|o| {
                (o.account, o.side, o.price, o.qty)
                    == (order.account, order.side, order.price, order.qty)
            });
            if !same {
                return Err(format!(
                    "resting order {}: engine {got:?}, model {order:?}",
                    order.id
                ));
            }
        }
        for side in [Side::Buy, Side::Sell] {
            let got: Vec<_> = engine
                .depth(market, side, usize::MAX)
                .into_iter()
                .map(|l| (l.price, l.qty.0, l.orders))
                .collect();
            let want = model.depth(market, side);
            if got != want {
                return Err(format!(
                    "market {market} {side:?} depth: engine {got:?}, model {want:?}"
                ));
            }
        }
        if engine.last_price(market) != model.last_price(market) {
            return Err(format!(
                "market {market} last price: engine {:?}, model {:?}",
                engine.last_price(market),
                model.last_price(market)
            ));
        }
    }
    if engine.next_order_id() != model.next_order_id() || engine.last_seq() != model.last_seq() {
        return Err("order ids or event sequence out of step".into());
    }
    Ok(())
}

/// Runs a stream through the engine and the model side by side; returns the commands as they
/// ran and the engine's events.
fn run_side_by_side(
    steps: &[Step],
    split: Index,
) -> Result<(Vec<Envelope>, Vec<Event>, Exchange, Midway), TestCaseError> {
    let mut engine = Exchange::new();
    let mut model = Model::new();
    let preamble = universe::preamble();
    let total = preamble.len() + steps.len();
    let split_at = split.index(total + 1);
    let mut script: Vec<Envelope> = Vec::with_capacity(total);
    let mut events: Vec<Event> = Vec::new();
    let mut midway = None;
    for i in 0..total {
        if i == split_at {
            midway = Some(Midway {
                snapshot: engine.snapshot(),
                commands: i,
                events: events.len(),
            });
        }
        let envelope = match preamble.get(i) {
            Some(envelope) => envelope.clone(),
            None => {
                let clock = preamble[preamble.len() - 1].time_ms
                    + 10 * u64::try_from(i).unwrap_or(u64::MAX);
                steps[i - preamble.len()].concretize(&model, clock)
            }
        };
        script.push(envelope.clone());
        let first = events.len();
        let outcome = engine.apply(&envelope, &mut events);
        let (want_outcome, want_events) = model.apply(&envelope);
        let failure = if outcome != want_outcome || events[first..] != want_events[..] {
            Some(format!(
                "engine and model disagree: engine {outcome:?}, model {want_outcome:?}\n{}{}",
                render_events("engine events", &events[first..]),
                render_events("model events", &want_events),
            ))
        } else if let Err(violation) = engine.check_invariants() {
            Some(format!("engine invariant broken: {violation}"))
        } else {
            model.check().and(compare_state(&engine, &model)).err()
        };
        if let Some(failure) = failure {
            return Err(TestCaseError::fail(format!(
                "at command {i}: {failure}\n{}",
                render(&script, i)
            )));
        }
    }
    let midway = midway.unwrap_or_else(|| Midway {
        snapshot: engine.snapshot(),
        commands: total,
        events: events.len(),
    });
    Ok((script, events, engine, midway))
}

/// The engine's state at the random split point.
struct Midway {
    snapshot: Vec<u8>,
    commands: usize,
    events: usize,
}

fn replay(mut exchange: Exchange, script: &[Envelope]) -> (Exchange, Vec<Event>) {
    let mut events = Vec::new();
    for envelope in script {
        // Outcomes are in the events (a rejection is an event).
        let _ = exchange.apply(envelope, &mut events);
    }
    (exchange, events)
}

fn check_stream(steps: &[Step], split: Index) -> Result<(), TestCaseError> {
    let (script, events, engine, midway) = run_side_by_side(steps, split)?;
    let last = script.len() - 1;
    let hash = engine.state_hash();
    let context = |what: &str| format!("{what}\n{}", render(&script, last + 1));

    let restored = Exchange::restore(&engine.snapshot())
        .map_err(|e| TestCaseError::fail(context(&format!("final snapshot: {e}"))))?;
    prop_assert_eq!(
        restored.state_hash(),
        hash,
        "{}",
        context("restoring the final snapshot changed the state hash")
    );

    let (replayed, replayed_events) = replay(Exchange::new(), &script);
    prop_assert!(
        replayed_events == events,
        "{}",
        context("replaying the stream gave different events")
    );
    prop_assert_eq!(
        replayed.state_hash(),
        hash,
        "{}",
        context("replaying the stream gave a different state hash")
    );

    let resumed = Exchange::restore(&midway.snapshot).map_err(|e| {
        TestCaseError::fail(context(&format!(
            "snapshot after {} commands: {e}",
            midway.commands
        )))
    })?;
    let (resumed, resumed_events) = replay(resumed, &script[midway.commands..]);
    prop_assert!(
        resumed_events[..] == events[midway.events..],
        "{}",
        context(&format!(
            "restoring after {} commands and replaying the rest gave different events",
            midway.commands
        ))
    );
    prop_assert_eq!(
        resumed.state_hash(),
        hash,
        "{}",
        context(&format!(
            "restoring after {} commands and replaying the rest gave a different state hash",
            midway.commands
        ))
    );
    Ok(())
}

proptest! {
    #![proptest_config(config(CASES))]

    #[test]
    fn engine_agrees_with_the_reference_model_and_replays_identically(
        steps in universe::steps(MAX_STEPS),
        split in any::<Index>(),
    ) {
        check_stream(&steps, split)?;
    }
}

proptest! {
    #![proptest_config(config(LONG_CASES))]

    #[test]
    fn long_streams_agree_and_replay_identically(
        steps in universe::steps_between(LONG_STEPS / 2, LONG_STEPS),
        split in any::<Index>(),
    ) {
        check_stream(&steps, split)?;
    }
}

/// What a set of streams exercised, by event kind, done reason and rejection reason.
fn coverage(streams: u32) -> BTreeMap<String, u64> {
    let mut runner = TestRunner::deterministic();
    let strategy = universe::steps(MAX_STEPS);
    let mut seen: BTreeMap<String, u64> = BTreeMap::new();
    for _ in 0..streams {
        let steps = strategy.new_tree(&mut runner).expect("a stream").current();
        let split = any::<Index>()
            .new_tree(&mut runner)
            .expect("an index")
            .current();
        let (_, events, _, _) =
            run_side_by_side(&steps, split).expect("engine agrees with the model");
        let mut takers = std::collections::BTreeSet::new();
        for event in &events {
            if let EventKind::Trade { taker_order, .. } = &event.kind {
                takers.insert(*taker_order);
            }
        }
        for event in &events {
            if let EventKind::OrderAccepted { order, new } = &event.kind
                && matches!(new.kind, OrderKind::Limit { .. })
            {
                *seen.entry("limit order accepted".into()).or_default() += 1;
                if takers.contains(order) {
                    *seen.entry("limit order took liquidity".into()).or_default() += 1;
                }
            }
        }
        for event in events {
            let key = match &event.kind {
                EventKind::Rejected { reason } => format!("rejected {}", reason.code()),
                EventKind::OrderDone { reason, .. } => format!("done {}", reason.code()),
                EventKind::OrderAmended { priority_kept, .. } => {
                    format!("amended, priority kept: {priority_kept}")
                }
                EventKind::Trade {
                    maker_account,
                    taker_account,
                    ..
                } if maker_account == taker_account => "trade with itself".to_owned(),
                EventKind::FeesCollected { holders, .. } if holders.0 == 0 => {
                    "fees collected, none for holders".to_owned()
                }
                other => format!("{other:?}")
                    .split([' ', '{', '('])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            };
            *seen.entry(key).or_default() += 1;
        }
    }
    seen
}

/// Guards the generator: a model test that never reaches a path proves nothing about it.
#[test]
fn random_streams_reach_every_order_path() {
    let seen = coverage(48);
    // Shown with `--nocapture`: how often each path ran.
    eprintln!("{seen:#?}");
    let mut wanted: Vec<String> = [
        "Trade",
        "trade with itself",
        "OrderTriggered",
        "amended, priority kept: true",
        "amended, priority kept: false",
        "FeesCollected",
        "fees collected, none for holders",
        "WithdrawalConfirmed",
        "WithdrawalReleased",
        "Transferred",
        "GatewaySettled",
        "AccountLockSet",
        "GatewayFeeSet",
        "WithdrawalMinimumSet",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    wanted.extend(
        [
            DoneReason::Filled,
            DoneReason::Cancelled,
            DoneReason::Expired,
            DoneReason::SelfTradePrevented,
        ]
        .iter()
        .map(|r| format!("done {}", r.code())),
    );
    wanted.extend(
        [
            RejectReason::InsufficientBalance,
            RejectReason::InvalidQuantity,
            RejectReason::InvalidPrice,
            RejectReason::BelowMinNotional,
            RejectReason::DuplicateClientOrderId,
            RejectReason::UnknownOrder,
            RejectReason::TooManyOpenOrders,
            RejectReason::PostOnlyWouldTrade,
            RejectReason::WouldTriggerImmediately,
            RejectReason::InvalidTimeInForce,
            RejectReason::NothingToAmend,
            RejectReason::MarketHalted,
            RejectReason::UnknownMarket,
            RejectReason::SystemAccount,
            RejectReason::DuplicateReference,
            RejectReason::DuplicateRequest,
            RejectReason::RequestNotPending,
            RejectReason::SameAccount,
            RejectReason::Overflow,
            RejectReason::InvalidFee,
            RejectReason::AccountLocked,
            RejectReason::BelowMinimum,
        ]
        .iter()
        .map(|r| format!("rejected {}", r.code())),
    );
    let missing: Vec<&String> = wanted.iter().filter(|k| !seen.contains_key(*k)).collect();
    assert!(
        missing.is_empty(),
        "random streams never reached {missing:?}; they reached {seen:#?}"
    );
}
