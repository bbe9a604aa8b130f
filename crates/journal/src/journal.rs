//! Segment files and the record format, in files `{first_index:020}.log`:
//! `[len: u32 LE][index: u64 LE][header crc: u32 LE over (len LE ++ index LE)]`
//! `[crc: u32 LE over (index LE ++ payload)][payload: len bytes]`.
//!
//! The header has its own CRC so that a damaged length can never pass for a record cut short
//! by a crash: only a record whose header is intact (or wholly absent, or zero) and whose
//! payload is incomplete or fails its CRC at the very end of the last segment is a torn tail.
//!
//! Bytes alone cannot tell a torn write from a durable record damaged later (a flipped bit in
//! the last record looks exactly like a crash mid-write), so the journal also keeps a *synced
//! mark*, the file `synced`: `[index: u64 LE][crc: u32 LE over index LE]`, rewritten after every
//! successful `fdatasync` with the last index that sync made durable. It is written only after
//! the records are durable, so after any crash it is never ahead of what the disk holds (it
//! may lag, if the machine lost power before the mark reached the disk: then the records after
//! it are judged by their bytes, as before). A record at or below the mark was acknowledged:
//! if it is damaged or missing, that is corruption, never a torn tail, and nothing is truncated.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{Error, Result, io_err, list_indexed, sync_dir, take};

/// Largest payload a record may carry, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 1 << 20;
const HEADER_BYTES: usize = 20;
const SEGMENT_EXT: &str = "log";
/// The synced mark's file name, inside the journal directory.
pub const SYNCED_MARK: &str = "synced";
const MARK_BYTES: usize = 12;

/// Options of a [`Journal`] writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOptions {
    /// Once the current segment is larger than this, the next commit starts a new one.
    pub segment_bytes: u64,
}

impl Default for JournalOptions {
    fn default() -> Self {
        Self {
            segment_bytes: 64 << 20,
        }
    }
}

/// What a scan of the journal found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Records delivered: every record for [`Journal::open`], those at or after `from` for
    /// [`for_each_record`].
    pub records: u64,
    /// Index of the last valid record, 0 for an empty journal.
    pub last_index: u64,
    /// The incomplete final record, if a crash left one.
    pub torn_tail: Option<TornTail>,
    /// The synced mark found: every record up to this index was durable once (0: no mark,
    /// a journal written before marks existed).
    pub synced: u64,
}

/// An incomplete record at the end of the last segment, left by a crash mid-commit.
/// It was never acknowledged as durable, so dropping it loses nothing that was promised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornTail {
    /// The last segment.
    pub file: PathBuf,
    /// Where the torn record starts, which is where the file is (or would be) truncated.
    pub offset: u64,
    /// Bytes from `offset` to the end of the file.
    pub dropped_bytes: u64,
}

/// The journal writer: appends records to the newest segment with group commit.
/// Records appended but not committed are lost when it is dropped.
#[derive(Debug)]
pub struct Journal {
    dir: PathBuf,
    segment_bytes: u64,
    file: File,
    file_path: PathBuf,
    segment_len_bytes: u64,
    next_index: u64,
    /// Index of the first record in `pending`, which names a new segment if one is started.
    pending_first_index: u64,
    pending: Vec<u8>,
    poisoned: bool,
    /// The synced mark, rewritten after every successful sync.
    mark: File,
}

impl Journal {
    /// Opens the journal in `dir` (creating it if needed) and recovers: validates every
    /// record of every segment, truncates a torn tail, and positions the writer after the
    /// last valid record. Corruption is an error and nothing is modified; so is a damaged or
    /// missing record that the synced mark says was durable.
    pub fn open(dir: &Path, opts: JournalOptions) -> Result<(Self, ScanReport)> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let segments = list_indexed(dir, SEGMENT_EXT)?;
        let synced = read_mark(dir)?;
        let report = scan(dir, &segments, 0, synced, &mut |_, _| Ok::<_, Error>(()))?;
        let next_index = report.last_index + 1;
        let path = match segments.last() {
            Some((_, path)) => path.clone(),
            None => segment_path(dir, next_index),
        };
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err(&path))?;
        if segments.is_empty() {
            sync_dir(dir)?;
        }
        if let Some(torn) = &report.torn_tail {
            file.set_len(torn.offset)
                .and_then(|()| file.sync_all())
                .map_err(io_err(&path))?;
        }
        let segment_len_bytes = file.metadata().map_err(io_err(&path))?.len();
        // What the segments hold now is durable (a journal from before marks existed, or
        // records whose mark a power loss kept from the disk): mark it so, durably.
        file.sync_data().map_err(io_err(&path))?;
        let mark_path = dir.join(SYNCED_MARK);
        let mark = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&mark_path)
            .map_err(io_err(&mark_path))?;
        write_mark(&mark, report.last_index)
            .and_then(|()| mark.sync_all())
            .map_err(io_err(&mark_path))?;
        sync_dir(dir)?;
        let journal = Self {
            dir: dir.to_owned(),
            segment_bytes: opts.segment_bytes,
            file,
            file_path: path,
            segment_len_bytes,
            next_index,
            pending_first_index: next_index,
            pending: Vec::new(),
            poisoned: false,
            mark,
        };
        Ok((journal, report))
    }

    /// Index the next [`append`](Self::append) will get.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Buffers a record in memory and returns its index; it is durable only after
    /// [`commit`](Self::commit) succeeds.
    pub fn append(&mut self, payload: &[u8]) -> Result<u64> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(Error::PayloadTooLarge { len: payload.len() });
        }
        let index = self.next_index;
        // Fits: checked against MAX_PAYLOAD_BYTES above.
        let len = payload.len() as u32;
        self.pending.extend_from_slice(&len.to_le_bytes());
        self.pending.extend_from_slice(&index.to_le_bytes());
        self.pending
            .extend_from_slice(&header_crc(len, index).to_le_bytes());
        self.pending
            .extend_from_slice(&record_crc(index, payload).to_le_bytes());
        self.pending.extend_from_slice(payload);
        self.next_index += 1;
        Ok(index)
    }

    /// Group commit: writes every buffered record with one write and one `fdatasync`.
    /// After `Ok` they are durable. After an error the writer is poisoned.
    pub fn commit(&mut self) -> Result<()> {
        if self.poisoned {
            return Err(Error::Poisoned);
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        // Any early return below leaves an unknown prefix of the group on disk; a retry
        // would write it twice, so only full success clears the flag.
        self.poisoned = true;
        if self.segment_len_bytes > self.segment_bytes {
            let path = segment_path(&self.dir, self.pending_first_index);
            let file = OpenOptions::new().append(true).create_new(true).open(&path);
            self.file = file.map_err(io_err(&path))?;
            self.file_path = path;
            self.segment_len_bytes = 0;
            sync_dir(&self.dir)?;
        }
        self.file
            .write_all(&self.pending)
            .and_then(|()| self.file.sync_data())
            .map_err(io_err(&self.file_path))?;
        self.segment_len_bytes += self.pending.len() as u64;
        self.pending.clear();
        self.pending_first_index = self.next_index;
        // Only now are the records durable, so the mark can never run ahead of the disk. It
        // is not synced here (that would double the cost of a commit): a power loss may keep
        // it behind, which only weakens the check for the last groups, never wrongs it.
        write_mark(&self.mark, self.next_index - 1).map_err(io_err(&self.dir.join(SYNCED_MARK)))?;
        self.poisoned = false;
        Ok(())
    }
}

impl Drop for Journal {
    /// A stopped journal leaves its mark on the disk, so that damage found at the next start
    /// is told from a torn write however the machine goes down in between.
    fn drop(&mut self) {
        // Best effort: a mark left behind only weakens the next start's check.
        let _ = self.mark.sync_all();
    }
}

fn write_mark(file: &File, index: u64) -> std::io::Result<()> {
    let mut bytes = [0u8; MARK_BYTES];
    bytes[..8].copy_from_slice(&index.to_le_bytes());
    bytes[8..].copy_from_slice(&crc32fast::hash(&index.to_le_bytes()).to_le_bytes());
    file.write_all_at(&bytes, 0)
}

/// The synced mark of `dir`: 0 when there is none (a new journal, or one written before
/// marks existed). A mark that fails its check is corruption: it cannot be torn (it is one
/// 12-byte write at the start of a file), so something else damaged it.
fn read_mark(dir: &Path) -> Result<u64> {
    let path = dir.join(SYNCED_MARK);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut rest = bytes.as_slice();
    if let (Some(index), Some(crc), true) = (take(&mut rest), take(&mut rest), rest.is_empty())
        && crc32fast::hash(&index) == u32::from_le_bytes(crc)
    {
        return Ok(u64::from_le_bytes(index));
    }
    Err(Error::Corrupt {
        file: path,
        offset: 0,
        reason: "the synced mark fails its check".to_owned(),
    })
}

/// Streams every record with index `>= from` to `on_record`, validating with the same rules
/// as [`Journal::open`] but modifying nothing: a torn tail is only reported. Segments that
/// end before `from` are not read. Each segment is read whole into one reused buffer, so
/// no allocation happens per record.
pub fn for_each_record<E: From<Error>>(
    dir: &Path,
    from: u64,
    mut on_record: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<ScanReport, E> {
    let segments = list_indexed(dir, SEGMENT_EXT)?;
    let synced = read_mark(dir)?;
    scan(dir, &segments, from, synced, &mut on_record)
}

fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:020}.{SEGMENT_EXT}"))
}

fn header_crc(len: u32, index: u64) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len.to_le_bytes());
    hasher.update(&index.to_le_bytes());
    hasher.finalize()
}

fn record_crc(index: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&index.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

fn scan<E: From<Error>>(
    dir: &Path,
    segments: &[(u64, PathBuf)],
    from: u64,
    synced: u64,
    on_record: &mut impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<ScanReport, E> {
    let mut report = ScanReport {
        synced,
        ..ScanReport::default()
    };
    let mut buf = Vec::new();
    for (position, (first_index, path)) in segments.iter().enumerate() {
        let next_segment = segments.get(position + 1);
        if let Some((next_first, _)) = next_segment.filter(|(next_first, _)| *next_first <= from) {
            report.last_index = next_first - 1;
            continue;
        }
        let corrupt = |offset: usize, reason: String| Error::Corrupt {
            file: path.clone(),
            offset: offset as u64,
            reason,
        };
        let expected = report.last_index + 1;
        if *first_index != expected {
            let reason = format!("segment named after index {first_index}, expected {expected}");
            return Err(corrupt(0, reason).into());
        }
        buf.clear();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(io_err(path))?;
        let is_last = next_segment.is_none();
        if buf.is_empty() && !is_last {
            return Err(corrupt(0, "empty segment before the last one".to_owned()).into());
        }
        let mut offset = 0;
        while offset < buf.len() {
            let rest = &buf[offset..];
            let (index, payload) = match decode(rest) {
                Ok(record) => record,
                Err((may_be_torn, reason))
                    if is_last && (may_be_torn || rest.iter().all(|&b| b == 0)) =>
                {
                    if report.last_index < synced {
                        let reason = format!(
                            "{reason} in record {}, which was synced (the mark says through \
                             {synced}): damage to an acknowledged record, not a torn write",
                            report.last_index + 1
                        );
                        return Err(corrupt(offset, reason).into());
                    }
                    report.torn_tail = Some(TornTail {
                        file: path.clone(),
                        offset: offset as u64,
                        dropped_bytes: rest.len() as u64,
                    });
                    break;
                }
                Err((_, reason)) => return Err(corrupt(offset, reason).into()),
            };
            let expected = report.last_index + 1;
            if index != expected {
                let reason = format!("record index {index}, expected {expected}");
                return Err(corrupt(offset, reason).into());
            }
            if index >= from {
                on_record(index, payload)?;
                report.records += 1;
            }
            report.last_index = index;
            offset += HEADER_BYTES + payload.len();
        }
        if is_last && report.last_index < synced {
            let reason = format!(
                "the journal ends after record {}, but records through {synced} were synced: \
                 acknowledged records are missing",
                report.last_index
            );
            return Err(corrupt(buf.len(), reason).into());
        }
    }
    if segments.is_empty() && synced > 0 {
        return Err(Error::Corrupt {
            file: dir.join(SYNCED_MARK),
            offset: 0,
            reason: format!("no segments, but records through {synced} were synced"),
        }
        .into());
    }
    Ok(report)
}

/// Decodes the record at the start of `rest` into (index, payload). On failure, says why
/// and whether a crash mid-write could explain it: a header cut short, or an intact header
/// whose payload is cut short or fails its CRC exactly at the end of the file.
fn decode(mut rest: &[u8]) -> Result<(u64, &[u8]), (bool, String)> {
    let header = (
        take(&mut rest),
        take(&mut rest),
        take(&mut rest),
        take(&mut rest),
    );
    let (Some(len), Some(index), Some(head_crc), Some(crc)) = header else {
        return Err((true, "truncated record header".to_owned()));
    };
    let (len, index) = (u32::from_le_bytes(len), u64::from_le_bytes(index));
    if header_crc(len, index) != u32::from_le_bytes(head_crc) {
        return Err((false, "record header crc mismatch".to_owned()));
    }
    let len = len as usize;
    if len > MAX_PAYLOAD_BYTES {
        let reason = format!("record length {len} exceeds {MAX_PAYLOAD_BYTES}");
        return Err((false, reason));
    }
    let Some(payload) = rest.get(..len) else {
        return Err((true, format!("record length {len} runs past end of file")));
    };
    if record_crc(index, payload) != u32::from_le_bytes(crc) {
        return Err((rest.len() == len, "crc mismatch".to_owned()));
    }
    Ok((index, payload))
}
