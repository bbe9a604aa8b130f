use crate::{deposit, list_btc};
use coss_core::{EventKind, RejectReason};
use coss_engine::{Engine, EngineConfig, EngineError};
use coss_types::{AccountId, AssetId};

#[test]
fn results_arrive_in_submission_order_with_their_events() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, recovery) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    assert_eq!(recovery.commands, 0);
    let handle = engine.handle();
    let listed = handle.submit(list_btc()).unwrap();
    assert_eq!(listed.index, 1);
    assert_eq!(listed.outcome, Ok(()));
    let batch = handle.submit_batch((0..10).map(deposit).collect()).unwrap();
    assert_eq!(batch.first_index, 2);
    let receipts = batch.into_receipts();
    assert_eq!(receipts.len(), 10);
    for (n, receipt) in receipts.iter().enumerate() {
        assert_eq!(receipt.index, 2 + n as u64);
        assert!(matches!(
            receipt.events[0].kind,
            EventKind::Deposited { .. }
        ));
    }
    let seqs: Vec<u64> = receipts
        .iter()
        .flat_map(|r| r.events.iter().map(|e| e.seq))
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0] + 1),
        "event sequence has gaps: {seqs:?}"
    );
    let status = handle.status().unwrap();
    assert_eq!(status.commands, 11);
    let balance = handle
        .read(|exchange| exchange.balance(AccountId(1_000), AssetId(1)))
        .unwrap();
    assert_eq!(balance.available.0, 1 + 8);
    drop(handle);
    engine.shutdown().unwrap();
}

#[test]
fn a_retried_deposit_is_rejected_not_credited_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    let handle = engine.handle();
    handle.submit(list_btc()).unwrap();
    assert_eq!(handle.submit(deposit(3)).unwrap().outcome, Ok(()));
    let retry = handle.submit(deposit(3)).unwrap();
    assert_eq!(retry.outcome, Err(RejectReason::DuplicateReference));
    let balance = handle
        .read(|e| e.balance(AccountId(1_003), AssetId(1)))
        .unwrap();
    assert_eq!(balance.available.0, 4);
    drop(handle);
    engine.shutdown().unwrap();
}

#[test]
fn oversized_batches_are_refused_before_they_reach_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.max_batch = 4;
    let (engine, _) = Engine::start(config).unwrap();
    let handle = engine.handle();
    let error = handle
        .submit_batch((0..5).map(deposit).collect())
        .unwrap_err();
    assert!(matches!(
        error,
        EngineError::BatchTooLarge { len: 5, max: 4 }
    ));
    assert_eq!(handle.status().unwrap().commands, 0);
    drop(handle);
    engine.shutdown().unwrap();
}

#[test]
fn many_pipelined_batches_are_all_acknowledged_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig::new(dir.path());
    config.max_batch = 16;
    config.queue_capacity = 4;
    let (engine, _) = Engine::start(config).unwrap();
    let handle = engine.handle();
    handle.submit(list_btc()).unwrap();
    let pending: Vec<_> = (0..50)
        .map(|b| {
            handle
                .send_batch((b * 10..b * 10 + 10).map(deposit).collect())
                .unwrap()
        })
        .collect();
    let mut expected = 2;
    for p in pending {
        let receipt = p.wait().unwrap();
        assert_eq!(receipt.first_index, expected);
        assert!(receipt.outcomes.iter().all(Result::is_ok));
        expected += 10;
    }
    drop(handle);
    engine.shutdown().unwrap();
}

#[test]
fn a_command_too_large_to_journal_is_refused_and_the_engine_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    let handle = engine.handle();
    handle.submit(list_btc()).unwrap();
    let huge = coss_core::Command::Deposit {
        account: AccountId(1_000),
        asset: AssetId(1),
        amount: coss_types::Amount(1),
        reference: "x".repeat(2 << 20),
    };
    let error = handle.submit(huge).unwrap_err();
    assert!(
        matches!(
            error,
            EngineError::CommandTooLarge {
                field: "reference",
                ..
            }
        ),
        "{error}"
    );
    assert_eq!(handle.submit(deposit(1)).unwrap().index, 2);
    drop(handle);
    engine.shutdown().unwrap();
}

#[test]
fn a_due_week_closes_before_the_first_command_after_it_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock = coss_clock::ManualClock::new(coss_clock::UnixMs(1_800_000_000_000));
    let config = || {
        let mut config = EngineConfig::new(dir.path());
        config.clock = clock.clock();
        config
    };
    let (engine, _) = Engine::start(config()).unwrap();
    let handle = engine.handle();
    handle.submit(list_btc()).unwrap();
    let close_ms = clock.now().0 + 300;
    let set = handle
        .submit(coss_core::Command::SetDaoSchedule(coss_core::DaoSchedule {
            coss: AssetId(1),
            next_close_ms: close_ms,
            period_ms: 604_800_000,
            min_holding: coss_types::Amount(1),
        }))
        .unwrap();
    assert_eq!(set.outcome, Ok(()));
    handle.submit(deposit(1)).unwrap();
    assert_eq!(
        handle.read(|exchange| exchange.dao_weeks()).unwrap().len(),
        0,
        "not due yet"
    );
    clock.advance(300);
    // The deposit after the close is journaled after the close the engine made for it.
    let after = handle.submit(deposit(2)).unwrap();
    assert_eq!(after.index, 5, "the close took index 4");
    let weeks = handle.read(|exchange| exchange.dao_weeks()).unwrap();
    assert_eq!(weeks.len(), 1);
    assert_eq!(weeks[0].close_ms, close_ms);
    assert_eq!(weeks[0].holders, 1, "the deposit before the close counts");
    let hash = handle.state_hash().unwrap();
    drop(handle);
    engine.shutdown().unwrap();
    let (engine, recovery) = Engine::start(config()).unwrap();
    assert_eq!(recovery.commands, 5);
    assert_eq!(recovery.state_hash, hash);
    engine.shutdown().unwrap();
}

#[test]
fn a_second_engine_on_the_same_journal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    match Engine::start(EngineConfig::new(dir.path())) {
        Err(EngineError::Locked(_)) => {}
        other => panic!("expected Locked, got {other:?}"),
    }
    engine.shutdown().unwrap();
    let (again, _) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    again.shutdown().unwrap();
}
