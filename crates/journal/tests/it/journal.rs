use std::fs;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use coss_journal::{
    Error, Journal, JournalOptions, MAX_PAYLOAD_BYTES, ScanReport, TornTail, for_each_record,
};
use tempfile::TempDir;

/// With commits of three 26-27 byte records, segments start at 1, 7, 13, 19, …
const SMALL_SEGMENTS: JournalOptions = JournalOptions { segment_bytes: 100 };

fn payload(index: u64) -> Vec<u8> {
    format!("command #{index}").into_bytes()
}

fn written(indices: RangeInclusive<u64>) -> Vec<(u64, Vec<u8>)> {
    indices.map(|index| (index, payload(index))).collect()
}

fn segment(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:020}.log"))
}

/// A journal of records `1..=count`, committed three at a time.
fn journal(count: u64) -> TempDir {
    let dir = TempDir::new().unwrap();
    let (mut journal, _) = open(dir.path());
    for index in 1..=count {
        assert_eq!(journal.append(&payload(index)).unwrap(), index);
        if index % 3 == 0 || index == count {
            journal.commit().unwrap();
        }
    }
    dir
}

/// What a crash in the middle of the commit of record `count` leaves: records
/// `1..count` durable and marked synced, and record `count` on disk without its mark.
fn crashed_before_marking(count: u64) -> TempDir {
    let dir = journal(count - 1);
    let full = journal(count);
    for entry in fs::read_dir(full.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "log") {
            fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    dir
}

fn open(dir: &Path) -> (Journal, ScanReport) {
    Journal::open(dir, SMALL_SEGMENTS).unwrap()
}

fn read_all(dir: &Path, from: u64) -> (Vec<(u64, Vec<u8>)>, ScanReport) {
    let mut records = Vec::new();
    let report = for_each_record(dir, from, |index, payload| {
        records.push((index, payload.to_vec()));
        Ok::<_, Error>(())
    });
    (records, report.unwrap())
}

fn edit(path: &Path, change: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    change(&mut bytes);
    fs::write(path, bytes).unwrap();
}

fn torn(file: &Path, offset: u64, dropped_bytes: u64) -> Option<TornTail> {
    Some(TornTail {
        file: file.to_owned(),
        offset,
        dropped_bytes,
    })
}

/// `(records, last_index, torn_tail)` of a report.
fn summary(report: ScanReport) -> (u64, u64, Option<TornTail>) {
    (report.records, report.last_index, report.torn_tail)
}

/// Opening and reading fail alike; returns the error message.
fn corruption(dir: &Path) -> String {
    let read_error = for_each_record(dir, 1, |_, _| Ok::<_, Error>(())).unwrap_err();
    let open_error = Journal::open(dir, SMALL_SEGMENTS).unwrap_err();
    assert!(matches!(open_error, Error::Corrupt { .. }), "{open_error}");
    assert_eq!(read_error.to_string(), open_error.to_string());
    open_error.to_string()
}

fn corrupt_at(file: &Path, offset: u64, reason: &str) -> String {
    format!(
        "journal corrupt at {} offset {offset}: {reason}; nothing was modified: restore the \
         journal directory from a backup or a replica",
        file.display()
    )
}

#[test]
fn records_roundtrip_across_segments_after_reopen() {
    let dir = journal(20);
    for first_index in [1, 7, 13, 19] {
        assert!(segment(dir.path(), first_index).is_file());
    }
    assert_eq!(summary(open(dir.path()).1), (20, 20, None));
    assert_eq!(read_all(dir.path(), 1).0, written(1..=20));
}

#[test]
fn next_index_continues_after_reopen_and_uncommitted_records_are_lost() {
    let dir = journal(7);
    let (mut journal, _) = open(dir.path());
    assert_eq!(journal.next_index(), 8);
    assert_eq!(journal.append(b"eight").unwrap(), 8);
    journal.commit().unwrap();
    assert_eq!(journal.append(b"never committed").unwrap(), 9);
    drop(journal);
    assert_eq!(open(dir.path()).0.next_index(), 9);
}

#[test]
fn reader_yields_records_from_a_given_index() {
    let dir = journal(20);
    for from in [0, 1, 8, 13, 20, 21] {
        let (records, report) = read_all(dir.path(), from);
        assert_eq!(records, written(from.max(1)..=20), "from {from}");
        assert_eq!(summary(report), (records.len() as u64, 20, None));
    }
}

#[test]
fn torn_tail_is_truncated_and_reported_at_every_cut_within_the_last_record() {
    let dir = crashed_before_marking(10);
    let last = segment(dir.path(), 7);
    let intact = fs::read(&last).unwrap();
    let start = intact.len() - (20 + payload(10).len());
    for cut in start + 1..intact.len() {
        fs::write(&last, &intact[..cut]).unwrap();
        let torn = torn(&last, start as u64, (cut - start) as u64);
        assert_eq!(read_all(dir.path(), 1).1.torn_tail, torn);
        assert_eq!(
            fs::read(&last).unwrap(),
            intact[..cut],
            "reading modifies nothing"
        );
        let (journal, report) = open(dir.path());
        assert_eq!(summary(report), (9, 9, torn));
        assert_eq!(journal.next_index(), 10);
        assert_eq!(fs::read(&last).unwrap(), intact[..start]);
        assert_eq!(read_all(dir.path(), 1).0, written(1..=9));
    }
}

#[test]
fn crc_failure_in_a_final_record_never_marked_synced_is_a_torn_tail() {
    let dir = crashed_before_marking(10);
    let last = segment(dir.path(), 7);
    edit(&last, |bytes| *bytes.last_mut().unwrap() ^= 1);
    let len = fs::metadata(&last).unwrap().len();
    let record_bytes = 20 + payload(10).len() as u64;
    let torn = torn(&last, len - record_bytes, record_bytes);
    assert_eq!(summary(open(dir.path()).1), (9, 9, torn));
}

#[test]
fn a_flipped_bit_in_the_last_synced_record_is_corruption_not_a_torn_tail() {
    // Record 10 was committed (acknowledged); a bit flips while the server is stopped. Its
    // header checks and its payload fails at the very end of the file, exactly as a torn
    // write would, but the synced mark says it was durable: dropping it would lose an
    // acknowledged command, so start-up refuses and modifies nothing.
    let dir = journal(10);
    let last = segment(dir.path(), 7);
    edit(&last, |bytes| *bytes.last_mut().unwrap() ^= 1);
    let damaged = fs::read(&last).unwrap();
    let offset = damaged.len() as u64 - (20 + payload(10).len() as u64);
    let reason = "crc mismatch in record 10, which was synced (the mark says through 10): \
                  damage to an acknowledged record, not a torn write";
    assert_eq!(corruption(dir.path()), corrupt_at(&last, offset, reason));
    assert_eq!(fs::read(&last).unwrap(), damaged, "nothing is truncated");
}

#[test]
fn synced_records_cut_off_or_missing_are_corruption() {
    let dir = journal(10);
    let last = segment(dir.path(), 7);
    let intact = fs::read(&last).unwrap();
    let start = intact.len() - (20 + payload(10).len());
    fs::write(&last, &intact[..start + 5]).unwrap();
    let reason = "truncated record header in record 10, which was synced (the mark says \
                  through 10): damage to an acknowledged record, not a torn write";
    assert_eq!(
        corruption(dir.path()),
        corrupt_at(&last, start as u64, reason)
    );
    fs::write(&last, &intact[..start]).unwrap();
    let reason = "the journal ends after record 9, but records through 10 were synced: \
                  acknowledged records are missing";
    assert_eq!(
        corruption(dir.path()),
        corrupt_at(&last, start as u64, reason)
    );
}

#[test]
fn a_journal_without_a_mark_is_judged_by_its_bytes_and_marked_at_open() {
    // Journals written before the mark existed: the old rule applies once, then the mark
    // covers what was found.
    let dir = journal(10);
    fs::remove_file(dir.path().join(coss_journal::SYNCED_MARK)).unwrap();
    let last = segment(dir.path(), 7);
    edit(&last, |bytes| *bytes.last_mut().unwrap() ^= 1);
    let (journal, report) = open(dir.path());
    assert_eq!((report.last_index, report.synced), (9, 0));
    assert!(report.torn_tail.is_some());
    drop(journal);
    assert_eq!(open(dir.path()).1.synced, 9);
}

#[test]
fn a_damaged_mark_is_corruption() {
    let dir = journal(10);
    let mark = dir.path().join(coss_journal::SYNCED_MARK);
    edit(&mark, |bytes| bytes[0] ^= 1);
    assert_eq!(
        corruption(dir.path()),
        corrupt_at(&mark, 0, "the synced mark fails its check")
    );
}

#[test]
fn zero_filled_tail_is_truncated() {
    let dir = journal(10);
    let last = segment(dir.path(), 7);
    let len = fs::metadata(&last).unwrap().len();
    edit(&last, |bytes| bytes.resize(bytes.len() + 4096, 0));
    let (mut journal, report) = open(dir.path());
    assert_eq!(summary(report), (10, 10, torn(&last, len, 4096)));
    assert_eq!(fs::metadata(&last).unwrap().len(), len);
    journal.append(&payload(11)).unwrap();
    journal.commit().unwrap();
    assert_eq!(read_all(dir.path(), 1).0, written(1..=11));
}

#[test]
fn empty_last_segment_is_accepted_and_appended_to() {
    let dir = journal(6);
    let empty = segment(dir.path(), 7);
    fs::write(&empty, b"").unwrap();
    let (mut journal, report) = open(dir.path());
    assert_eq!(summary(report), (6, 6, None));
    journal.append(&payload(7)).unwrap();
    journal.commit().unwrap();
    assert!(fs::metadata(&empty).unwrap().len() > 0);
}

#[test]
fn crc_mismatch_followed_by_more_data_is_corruption_naming_file_and_offset() {
    let dir = journal(10);
    let last = segment(dir.path(), 7);
    let second_record = 20 + payload(7).len();
    edit(&last, |bytes| bytes[second_record + 20] ^= 1);
    let expected = corrupt_at(&last, second_record as u64, "crc mismatch");
    assert_eq!(corruption(dir.path()), expected);
}

#[test]
fn bad_record_in_an_earlier_segment_is_corruption_not_a_torn_tail() {
    let dir = journal(10);
    let first = segment(dir.path(), 1);
    let last_record = fs::metadata(&first).unwrap().len() - (20 + payload(6).len() as u64);
    edit(&first, |bytes| bytes.truncate(bytes.len() - 1));
    let reason = "record length 10 runs past end of file";
    assert_eq!(
        corruption(dir.path()),
        corrupt_at(&first, last_record, reason)
    );
}

#[test]
fn missing_middle_segment_is_an_index_gap() {
    let dir = journal(20);
    fs::remove_file(segment(dir.path(), 7)).unwrap();
    let reason = "segment named after index 13, expected 7";
    assert_eq!(
        corruption(dir.path()),
        corrupt_at(&segment(dir.path(), 13), 0, reason)
    );
}

#[test]
fn segment_not_named_after_its_first_index_is_corruption() {
    let dir = journal(20);
    fs::rename(segment(dir.path(), 7), segment(dir.path(), 8)).unwrap();
    let reason = "segment named after index 8, expected 7";
    assert_eq!(
        corruption(dir.path()),
        corrupt_at(&segment(dir.path(), 8), 0, reason)
    );
}

#[test]
fn repeated_index_is_corruption_even_at_the_tail() {
    let dir = journal(10);
    let last = segment(dir.path(), 7);
    let len = fs::metadata(&last).unwrap().len();
    edit(&last, |bytes| bytes.extend_from_within(bytes.len() - 31..));
    let reason = "record index 10, expected 11";
    assert_eq!(corruption(dir.path()), corrupt_at(&last, len, reason));
}

#[test]
fn length_over_the_maximum_is_corruption_even_at_the_tail() {
    let dir = journal(10);
    let last = segment(dir.path(), 7);
    let len = fs::metadata(&last).unwrap().len();
    // A header that is intact (its own CRC matches) but declares an impossible length.
    let mut header = u32::MAX.to_le_bytes().to_vec();
    header.extend_from_slice(&11u64.to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    header.extend_from_slice(&[0; 4]);
    edit(&last, |bytes| bytes.extend_from_slice(&header));
    let reason = "record length 4294967295 exceeds 1048576";
    assert_eq!(corruption(dir.path()), corrupt_at(&last, len, reason));
}

#[test]
fn a_damaged_length_in_the_last_segment_is_corruption_never_a_torn_tail() {
    // A flipped bit that makes a middle record's length run past the end of the file must
    // not be mistaken for a crash mid-write: truncating there would drop acknowledged records.
    let dir = journal(10);
    let last = segment(dir.path(), 7);
    let second_record = 20 + payload(7).len();
    edit(&last, |bytes| bytes[second_record + 2] ^= 0x40);
    let expected = corrupt_at(&last, second_record as u64, "record header crc mismatch");
    assert_eq!(corruption(dir.path()), expected);
}

#[test]
fn oversized_payload_is_rejected() {
    let dir = TempDir::new().unwrap();
    let (mut journal, _) = Journal::open(dir.path(), JournalOptions::default()).unwrap();
    let too_large = vec![7; MAX_PAYLOAD_BYTES + 1];
    let rejected = journal.append(&too_large);
    assert!(matches!(rejected, Err(Error::PayloadTooLarge { len }) if len == too_large.len()));
    assert_eq!(journal.append(&too_large[1..]).unwrap(), 1);
    journal.commit().unwrap();
    assert_eq!(read_all(dir.path(), 1).0[0].1.len(), MAX_PAYLOAD_BYTES);
}

#[test]
fn failed_commit_poisons_the_writer_until_reopened() {
    let dir = journal(6);
    let (mut journal, _) = open(dir.path());
    // Segment 1 is full, so this commit starts segment 7: make creating it fail.
    fs::create_dir(segment(dir.path(), 7)).unwrap();
    journal.append(&payload(7)).unwrap();
    assert!(matches!(journal.commit(), Err(Error::Io { .. })));
    assert!(matches!(journal.commit(), Err(Error::Poisoned)));
    fs::remove_dir(segment(dir.path(), 7)).unwrap();
    assert_eq!(summary(open(dir.path()).1), (6, 6, None));
}
