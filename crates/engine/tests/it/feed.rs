use crate::{deposit, list_btc};
use coss_core::Event;
use coss_engine::{Engine, EngineConfig, EventFeed};
use std::sync::mpsc;

/// Starts an engine on `dir` whose feed skips events up to `after_seq`.
fn start_with_feed(
    dir: &std::path::Path,
    after_seq: u64,
    snapshot_every: u64,
) -> (Engine, mpsc::Receiver<Vec<Event>>) {
    let (sender, receiver) = mpsc::sync_channel(1024);
    let mut config = EngineConfig::new(dir);
    config.snapshot_every = snapshot_every;
    config.feed = Some(EventFeed::channel(after_seq, sender));
    let (engine, _) = Engine::start(config).unwrap();
    (engine, receiver)
}

fn drain(receiver: &mpsc::Receiver<Vec<Event>>) -> Vec<u64> {
    receiver.try_iter().flatten().map(|e| e.seq).collect()
}

#[test]
fn the_feed_carries_every_durable_event_once_in_order_before_the_caller_hears_back() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, feed) = start_with_feed(dir.path(), 0, 0);
    let handle = engine.handle();
    handle.submit(list_btc()).unwrap();
    let receipt = handle.submit_batch((0..5).map(deposit).collect()).unwrap();
    let last = receipt.events.last().unwrap().seq;
    // The receipt is in hand, so its events are already in the feed.
    let seqs = drain(&feed);
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    drop(handle);
    engine.shutdown().unwrap();
}

#[test]
fn a_restarted_feed_replays_the_journal_after_its_position_even_past_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, feed) = start_with_feed(dir.path(), 0, 3);
    let handle = engine.handle();
    handle.submit(list_btc()).unwrap();
    for n in 0..10 {
        handle.submit(deposit(n)).unwrap();
    }
    let all = drain(&feed);
    drop(handle);
    engine.shutdown().unwrap();
    assert!(
        std::fs::read_dir(coss_engine::journal_dir(dir.path()))
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains("snap")),
        "the test needs a snapshot to replay past"
    );

    // From the beginning: the same events again (a projection rebuilt from scratch).
    let (engine, feed) = start_with_feed(dir.path(), 0, 3);
    engine.handle().submit(deposit(10)).unwrap();
    let replayed = drain(&feed);
    assert_eq!(replayed[..all.len()], all[..]);
    assert_eq!(
        replayed.len(),
        all.len() + 2,
        "then the new deposit's events"
    );
    engine.shutdown().unwrap();

    // From a position: only what follows it.
    let (engine, feed) = start_with_feed(dir.path(), 5, 3);
    let seqs = drain(&feed);
    assert_eq!(seqs.first(), Some(&6));
    assert_eq!(seqs.last(), replayed.last());
    engine.shutdown().unwrap();
}
