//! The audit log: every operator action and every denial, append-only and hash-chained. Each
//! entry's hash is SHA-256 over the previous entry's hash and the entry's fields (each
//! length-prefixed, so no two entries serialise alike); `verify` walks the chain and names the
//! first entry that was changed, removed or moved. The platform also keeps the newest
//! position and hash in a file beside the database (`admin/audit.head`), so that entries cut
//! from the end are found too.

use coss_store::{AuditRecord, NewAuditRecord, Store, StoreError};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// The `prev_hash` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The hash of an entry at `seq` after `prev_hash`.
#[must_use]
pub fn entry_hash(seq: i64, prev_hash: &str, entry: &NewAuditRecord) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    field(b"coss-audit-1");
    field(prev_hash.as_bytes());
    field(&seq.to_be_bytes());
    field(&entry.at.to_be_bytes());
    field(&entry.operator_id.unwrap_or(-1).to_be_bytes());
    field(entry.operator_email.as_bytes());
    field(entry.operation.as_bytes());
    field(entry.target.as_bytes());
    field(entry.outcome.as_bytes());
    field(entry.detail.as_bytes());
    field(entry.client_ip.as_bytes());
    hex::encode(hasher.finalize())
}

/// Appends an entry after the current head; if another writer took the position first, reads
/// the new head and tries again.
pub async fn append(store: &Store, entry: NewAuditRecord) -> Result<AuditRecord, StoreError> {
    loop {
        let (seq, prev_hash) = match store.audit_head().await? {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS.to_owned()),
        };
        let record = AuditRecord {
            seq,
            hash: entry_hash(seq, &prev_hash, &entry),
            prev_hash,
            entry: entry.clone(),
        };
        match store.insert_audit(&record).await {
            Ok(()) => return Ok(record),
            Err(StoreError::Conflict) => continue,
            Err(other) => return Err(other),
        }
    }
}

/// What [`verify`] found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// Entries checked.
    pub entries: i64,
    /// The last entry's hash (what to anchor elsewhere).
    pub head: String,
    /// The first problem, if any.
    pub problem: Option<String>,
}

impl Verdict {
    /// Whether the chain is whole.
    #[must_use]
    pub fn intact(&self) -> bool {
        self.problem.is_none()
    }
}

/// Walks the whole chain: every entry's hash must match its content and the hash before it,
/// and positions must run 1, 2, 3, … without a gap. With `expected_head` (the newest position
/// and hash recorded elsewhere), a chain that ends earlier, or differently, is refused too.
pub async fn verify(
    store: &Store,
    expected_head: Option<(i64, String)>,
) -> Result<Verdict, StoreError> {
    let mut prev = GENESIS.to_owned();
    let mut at = 0i64;
    loop {
        let page = store.audit_entries(at, 1_000).await?;
        if page.is_empty() {
            break;
        }
        for record in page {
            let problem = if record.seq != at + 1 {
                Some(format!(
                    "entry {} is missing (found {} next)",
                    at + 1,
                    record.seq
                ))
            } else if record.prev_hash != prev {
                Some(format!(
                    "entry {} does not follow entry {at} (removed or reordered)",
                    record.seq
                ))
            } else if entry_hash(record.seq, &record.prev_hash, &record.entry) != record.hash {
                Some(format!("entry {} was changed", record.seq))
            } else {
                None
            };
            if problem.is_some() {
                return Ok(Verdict {
                    entries: at,
                    head: prev,
                    problem,
                });
            }
            at = record.seq;
            prev = record.hash;
        }
    }
    let problem = match &expected_head {
        Some((seq, _)) if *seq > at => Some(format!(
            "the log ends at entry {at}, but entry {seq} was written (entries removed from the end)"
        )),
        Some((seq, hash)) if *seq == at && *hash != prev => {
            Some(format!("entry {seq} differs from the recorded head"))
        }
        _ => None,
    };
    Ok(Verdict {
        entries: at,
        head: prev,
        problem,
    })
}
