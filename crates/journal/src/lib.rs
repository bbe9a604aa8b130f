//! Durable storage of the exchange engine: the append-only journal of commands and the
//! snapshot files of engine state. The journal is a directory of segment files holding
//! CRC-framed records, each tagged with its command index (1, 2, 3, … with no gap); a
//! writer buffers records and makes a whole group durable with one write and one
//! `fdatasync`. Recovery tells a *torn tail* — the last record of the last segment, cut
//! short by a crash — which is truncated and reported, from *corruption* anywhere else,
//! which is an error naming file and offset and is never skipped. This crate knows nothing
//! of commands: payloads are opaque bytes, and the only meaning it gives them is their index.

mod journal;
mod snapshot;

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

pub use journal::{
    Journal, JournalOptions, MAX_PAYLOAD_BYTES, SYNCED_MARK, ScanReport, TornTail, for_each_record,
};
pub use snapshot::{
    InvalidSnapshot, LatestSnapshot, latest_snapshot, list_snapshots, read_snapshot, write_snapshot,
};

/// Errors of journal and snapshot files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The operating system failed a file operation.
    #[error("journal i/o error on {}", path.display())]
    Io {
        /// File or directory the operation was on.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A journal file holds bytes that no crash can explain; nothing after them is trusted.
    /// Nothing was modified: the way out is to restore the journal directory from a backup
    /// or a replica (or, accepting the loss of what follows, to truncate it by hand there).
    #[error(
        "journal corrupt at {} offset {offset}: {reason}; nothing was modified: restore the \
         journal directory from a backup or a replica",
        file.display()
    )]
    Corrupt {
        /// The damaged file.
        file: PathBuf,
        /// Byte offset of the bad record (0 for a problem with the file as a whole).
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An append was larger than [`MAX_PAYLOAD_BYTES`].
    #[error("payload of {len} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")]
    PayloadTooLarge {
        /// Length of the rejected payload.
        len: usize,
    },
    /// A snapshot file failed validation.
    #[error(transparent)]
    InvalidSnapshot(#[from] InvalidSnapshot),
    /// An earlier commit failed part-way, so what reached the disk is unknown; the writer
    /// refuses to go on and must be reopened, which recovers from what the disk holds.
    #[error("journal writer poisoned by an earlier failed commit; reopen it")]
    Poisoned,
}

/// Result of journal and snapshot operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Makes created, renamed or removed entries of `dir` durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// Files of `dir` named `{index:020}.{ext}`, sorted by index. A file with that extension
/// and any other name is an error: ignoring it could hide records.
fn list_indexed(dir: &Path, ext: &str) -> Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let path = entry.map_err(io_err(dir))?.path();
        if path.extension().is_none_or(|e| e != ext) {
            continue;
        }
        let index = path
            .file_stem()
            .and_then(|stem| stem.to_str())
            .filter(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|stem| stem.parse().ok());
        let Some(index) = index else {
            let reason = "file name is not a 20-digit index".to_owned();
            return Err(Error::Corrupt {
                file: path,
                offset: 0,
                reason,
            });
        };
        found.push((index, path));
    }
    found.sort_unstable();
    Ok(found)
}

/// Splits `N` bytes off the front of `bytes`, if it holds that many.
fn take<const N: usize>(bytes: &mut &[u8]) -> Option<[u8; N]> {
    let (head, rest) = bytes.split_first_chunk::<N>()?;
    *bytes = rest;
    Some(*head)
}
