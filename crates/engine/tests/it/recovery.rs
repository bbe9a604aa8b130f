use crate::{deposit, list_btc};
use coss_engine::{Engine, EngineConfig, EngineError, journal_dir, verify};
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

/// The status and state hash after the run.
struct After {
    status: coss_engine::Status,
    state_hash: coss_core::StateHash,
}

fn run(dir: &Path, snapshot_every: u64, commands: u64) -> After {
    let mut config = EngineConfig::new(dir);
    config.snapshot_every = snapshot_every;
    config.max_batch = 8;
    let (engine, _) = Engine::start(config).unwrap();
    let handle = engine.handle();
    handle.submit(list_btc()).unwrap();
    for chunk in (0..commands).collect::<Vec<_>>().chunks(8) {
        handle
            .submit_batch(chunk.iter().map(|&n| deposit(n)).collect())
            .unwrap();
    }
    let after = After {
        status: handle.status().unwrap(),
        state_hash: handle.state_hash().unwrap(),
    };
    drop(handle);
    engine.shutdown().unwrap();
    after
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(journal_dir(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files
}

/// Runs ten commands, damages the last segment with `damage`, and starts the engine, which
/// must refuse with a corruption error naming that segment. Returns the segment, its damaged
/// bytes and the error's text.
fn damaged_start(dir: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> (PathBuf, Vec<u8>, String) {
    run(dir, 0, 10);
    let last = segments(dir).pop().unwrap();
    let mut bytes = fs::read(&last).unwrap();
    damage(&mut bytes);
    fs::write(&last, &bytes).unwrap();
    let error = Engine::start(EngineConfig::new(dir)).unwrap_err();
    let text = error.to_string();
    assert!(
        matches!(
            error,
            EngineError::Journal(coss_journal::Error::Corrupt { .. })
        ),
        "{text}"
    );
    assert!(text.contains(&last.display().to_string()), "{text}");
    (last, bytes, text)
}

#[test]
fn restart_recovers_the_identical_state() {
    let dir = tempfile::tempdir().unwrap();
    let before = run(dir.path(), 0, 100);
    let (engine, recovery) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    assert_eq!(recovery.commands, 101);
    assert_eq!(recovery.snapshot_index, 0);
    assert_eq!(recovery.state_hash, before.state_hash);
    assert_eq!(engine.handle().status().unwrap(), before.status);
    assert_eq!(engine.handle().state_hash().unwrap(), before.state_hash);
    engine.shutdown().unwrap();
}

#[test]
fn recovery_from_a_snapshot_matches_a_full_replay() {
    let dir = tempfile::tempdir().unwrap();
    let before = run(dir.path(), 20, 100);
    let (engine, recovery) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    assert!(
        recovery.snapshot_index > 0,
        "a snapshot should have been taken"
    );
    assert_eq!(recovery.replayed, 101 - recovery.snapshot_index);
    assert_eq!(recovery.state_hash, before.state_hash);
    engine.shutdown().unwrap();
    let verified = verify(dir.path()).unwrap();
    assert_eq!(verified.commands, 101);
    assert_eq!(verified.state_hash, before.state_hash);
    assert!(verified.snapshots_checked >= 1);
}

#[test]
fn a_torn_tail_is_truncated_and_reported_and_the_rest_survives() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 0, 10);
    // A crash in the middle of the next commit: its record reaches the disk in part, its
    // synced mark not at all.
    let mark = journal_dir(dir.path()).join(coss_journal::SYNCED_MARK);
    let marked = fs::read(&mark).unwrap();
    let (engine, _) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    engine.handle().submit(deposit(50)).unwrap();
    engine.shutdown().unwrap();
    fs::write(&mark, marked).unwrap();
    let last = segments(dir.path()).pop().unwrap();
    let len = fs::metadata(&last).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 3)
        .unwrap();

    let verified = verify(dir.path()).unwrap();
    assert_eq!(verified.commands, 11);
    assert!(verified.torn_tail.is_some());
    assert_eq!(
        fs::metadata(&last).unwrap().len(),
        len - 3,
        "verify must not modify files"
    );

    let (engine, recovery) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    let torn = recovery.torn_tail.expect("torn tail reported");
    assert_eq!(torn.file, last);
    assert_eq!(recovery.commands, 11);
    // The journal continues where the valid records end.
    let receipt = engine.handle().submit(deposit(99)).unwrap();
    assert_eq!(receipt.index, 12);
    engine.shutdown().unwrap();
    assert_eq!(verify(dir.path()).unwrap().commands, 12);
}

#[test]
fn an_acknowledged_last_command_damaged_on_disk_stops_start_up_instead_of_vanishing() {
    // One bit flips in the last record's payload of a stopped engine: bytes alone look like
    // a torn write, but the command was acknowledged, so start-up and verify refuse (naming
    // the file and the offset) and nothing is truncated.
    let dir = tempfile::tempdir().unwrap();
    let (last, bytes, text) = damaged_start(dir.path(), |bytes| *bytes.last_mut().unwrap() ^= 0x01);
    assert!(text.contains("which was synced"), "{text}");
    assert!(text.contains("restore the journal directory"), "{text}");
    assert!(verify(dir.path()).is_err(), "verify must not say ok");
    assert_eq!(fs::read(&last).unwrap(), bytes, "nothing was truncated");
}

#[test]
fn corruption_in_the_middle_stops_start_up_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, text) = damaged_start(dir.path(), |bytes| bytes[40] ^= 0xff);
    assert!(text.contains("offset"), "{text}");
    assert!(verify(dir.path()).is_err());
}

#[test]
fn a_snapshot_that_disagrees_with_the_journal_fails_verification() {
    let dir = tempfile::tempdir().unwrap();
    run(dir.path(), 20, 50);
    let snapshots = coss_journal::list_snapshots(&journal_dir(dir.path())).unwrap();
    let (index, path) = snapshots.last().unwrap().clone();
    // Re-write the snapshot with the state of a different (shorter) history.
    let other = tempfile::tempdir().unwrap();
    run(other.path(), 0, 3);
    let (engine, _) = Engine::start(EngineConfig::new(other.path())).unwrap();
    let bytes = engine.handle().read(|e| e.snapshot()).unwrap();
    engine.shutdown().unwrap();
    fs::remove_file(&path).unwrap();
    coss_journal::write_snapshot(&journal_dir(dir.path()), index, &bytes).unwrap();
    let error = verify(dir.path()).unwrap_err();
    assert!(
        matches!(error, EngineError::SnapshotMismatch { .. }),
        "{error}"
    );
}

#[test]
fn snapshots_of_an_older_layout_are_set_aside_and_the_journal_replays_from_the_start() {
    // After an upgrade that changed the state's layout, every snapshot on disk is of the old
    // version: start-up must neither fail nor misread them, and the journal (which keeps
    // every command) rebuilds the same state.
    let dir = tempfile::tempdir().unwrap();
    let before = run(dir.path(), 20, 50);
    let journal = journal_dir(dir.path());
    let snapshots = coss_journal::list_snapshots(&journal).unwrap();
    assert!(!snapshots.is_empty());
    for (index, path) in snapshots {
        let (_, mut bytes) = coss_journal::read_snapshot(&path).unwrap();
        // The layout version leads the snapshot (one varint byte): one release older.
        bytes[0] -= 1;
        fs::remove_file(&path).unwrap();
        coss_journal::write_snapshot(&journal, index, &bytes).unwrap();
    }
    let (engine, recovery) = Engine::start(EngineConfig::new(dir.path())).unwrap();
    assert_eq!(recovery.snapshot_index, 0);
    assert_eq!(recovery.replayed, 51);
    assert_eq!(recovery.state_hash, before.state_hash);
    assert!(
        recovery
            .skipped_snapshots
            .iter()
            .any(|s| s.contains("version")),
        "{:?}",
        recovery.skipped_snapshots
    );
    engine.shutdown().unwrap();
    let verified = verify(dir.path()).unwrap();
    assert_eq!(verified.state_hash, before.state_hash);
    assert_eq!(verified.snapshots_checked, 0);
}
