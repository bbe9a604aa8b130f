use std::fs;

use coss_journal::{Error, latest_snapshot, list_snapshots, read_snapshot, write_snapshot};
use tempfile::TempDir;

#[test]
fn snapshot_roundtrips_and_latest_is_the_newest() {
    let dir = TempDir::new().unwrap();
    assert!(latest_snapshot(dir.path()).unwrap().snapshot.is_none());
    let older = write_snapshot(dir.path(), 9, b"state at 9").unwrap();
    let newer = write_snapshot(dir.path(), 100, b"state at 100").unwrap();
    assert_eq!(
        newer,
        dir.path().join("snapshots/00000000000000000100.snap")
    );
    assert_eq!(
        list_snapshots(dir.path()).unwrap(),
        vec![(9, older.clone()), (100, newer)]
    );
    assert_eq!(read_snapshot(&older).unwrap(), (9, b"state at 9".to_vec()));
    let latest = latest_snapshot(dir.path()).unwrap();
    assert_eq!(latest.snapshot, Some((100, b"state at 100".to_vec())));
    assert!(latest.skipped.is_empty());
}

#[test]
fn corrupt_newest_snapshots_fall_back_to_an_older_one_and_are_reported() {
    let dir = TempDir::new().unwrap();
    write_snapshot(dir.path(), 1, b"good").unwrap();
    let flipped = write_snapshot(dir.path(), 2, b"flipped").unwrap();
    let truncated = write_snapshot(dir.path(), 3, b"truncated").unwrap();
    let mut bytes = fs::read(&flipped).unwrap();
    *bytes.last_mut().unwrap() ^= 1;
    fs::write(&flipped, bytes).unwrap();
    let bytes = fs::read(&truncated).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() - 1]).unwrap();

    let latest = latest_snapshot(dir.path()).unwrap();
    assert_eq!(latest.snapshot, Some((1, b"good".to_vec())));
    let skipped: Vec<_> = latest
        .skipped
        .iter()
        .map(|s| (s.path.clone(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped[0].0, truncated);
    assert_eq!(skipped[1], (flipped.clone(), "crc mismatch"));
    assert!(matches!(
        read_snapshot(&flipped),
        Err(Error::InvalidSnapshot(_))
    ));
}
