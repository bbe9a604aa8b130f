//! Snapshot files `<dir>/snapshots/{index:020}.snap`:
//! `[magic "COSSSNAP"][index: u64 LE][len: u64 LE][crc32 of payload: u32 LE][payload]`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::{Error, Result, io_err, list_indexed, sync_dir, take};

const MAGIC: [u8; 8] = *b"COSSSNAP";
const HEADER_BYTES: usize = 28;
const SNAPSHOT_DIR: &str = "snapshots";
const SNAPSHOT_EXT: &str = "snap";

/// A snapshot file that failed validation.
#[derive(Debug, thiserror::Error)]
#[error("invalid snapshot {}: {reason}", path.display())]
pub struct InvalidSnapshot {
    /// The snapshot file.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// The newest valid snapshot, and the newer ones that were invalid and skipped.
#[derive(Debug)]
pub struct LatestSnapshot {
    /// `(index, payload)` of the newest valid snapshot, if any.
    pub snapshot: Option<(u64, Vec<u8>)>,
    /// Invalid snapshots newer than `snapshot`, newest first, for the caller to log.
    pub skipped: Vec<InvalidSnapshot>,
}

/// Durably writes the snapshot of the state after command `index` into `dir/snapshots`
/// (temporary file, fsync, rename, fsync directory) and returns its path.
pub fn write_snapshot(dir: &Path, index: u64, payload: &[u8]) -> Result<PathBuf> {
    let snap_dir = dir.join(SNAPSHOT_DIR);
    if !snap_dir.is_dir() {
        fs::create_dir_all(&snap_dir).map_err(io_err(&snap_dir))?;
        sync_dir(dir)?;
    }
    let path = snap_dir.join(format!("{index:020}.{SNAPSHOT_EXT}"));
    let tmp = path.with_extension("snap.tmp");
    let mut header = Vec::with_capacity(HEADER_BYTES);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&index.to_le_bytes());
    header.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    header.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    let write = || -> io::Result<()> {
        let mut file = File::create(&tmp)?;
        file.write_all(&header)?;
        file.write_all(payload)?;
        file.sync_all()
    };
    write().map_err(io_err(&tmp))?;
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    sync_dir(&snap_dir)?;
    Ok(path)
}

/// Snapshots in `dir/snapshots` as `(index, path)`, oldest first; empty if there are none.
pub fn list_snapshots(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let snap_dir = dir.join(SNAPSHOT_DIR);
    if !snap_dir.is_dir() {
        return Ok(Vec::new());
    }
    list_indexed(&snap_dir, SNAPSHOT_EXT)
}

/// Reads and validates one snapshot file, returning `(index, payload)`.
pub fn read_snapshot(path: &Path) -> Result<(u64, Vec<u8>)> {
    let mut bytes = fs::read(path).map_err(io_err(path))?;
    let invalid = |reason: &str| -> Error {
        let (path, reason) = (path.to_owned(), reason.to_owned());
        InvalidSnapshot { path, reason }.into()
    };
    let mut rest = bytes.as_slice();
    let header = (
        take::<8>(&mut rest),
        take(&mut rest),
        take(&mut rest),
        take(&mut rest),
    );
    let (Some(magic), Some(index), Some(len), Some(crc)) = header else {
        return Err(invalid("truncated header"));
    };
    let len = u64::from_le_bytes(len);
    if magic != MAGIC {
        return Err(invalid("bad magic"));
    } else if rest.len() as u64 != len {
        return Err(invalid(&format!(
            "header declares {len} payload bytes, file holds {}",
            rest.len()
        )));
    } else if crc32fast::hash(rest) != u32::from_le_bytes(crc) {
        return Err(invalid("crc mismatch"));
    }
    bytes.drain(..HEADER_BYTES);
    Ok((u64::from_le_bytes(index), bytes))
}

/// Finds the newest valid snapshot in `dir/snapshots`, skipping (and reporting) newer
/// invalid ones. I/O errors are returned, not skipped.
pub fn latest_snapshot(dir: &Path) -> Result<LatestSnapshot> {
    let (mut snapshot, mut skipped) = (None, Vec::new());
    for (index, path) in list_snapshots(dir)?.into_iter().rev() {
        match read_snapshot(&path) {
            Ok((found, payload)) if found == index => {
                snapshot = Some((index, payload));
                break;
            }
            Ok((found, _)) => {
                let reason = format!("header says index {found}, file name says {index}");
                skipped.push(InvalidSnapshot { path, reason });
            }
            Err(Error::InvalidSnapshot(invalid)) => skipped.push(invalid),
            Err(other) => return Err(other),
        }
    }
    Ok(LatestSnapshot { snapshot, skipped })
}
