//! Wallet records: the sealed HD seed per chain, deposit addresses, the watcher's recent
//! canonical blocks, deposits, withdrawals with the exact transactions signed for them, the
//! hot wallet's nonce, withdrawal allow-lists, internal transfers, and the status history of
//! deposits and withdrawals. Statuses are enums and amounts `Amount`s here; the tables hold
//! them as text. Every change of a status is a compare-and-set from the status the caller
//! expects, and writes its history row in the same transaction. The exchange core holds the
//! balances.

use coss_types::{Amount, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, is_unique_violation, stored_amount};

/// A chain's HD seed (sealed by the caller) and what may be known without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeedRecord {
    /// The seed, sealed with the server key.
    pub sealed_seed: Vec<u8>,
    /// The deposit account's extended public key (the watcher needs only this).
    pub xpub: String,
    /// The hot wallet's address.
    pub hot_address: String,
}

/// A block as the watcher records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockRef {
    /// Its height.
    pub height: i64,
    /// Its hash.
    pub hash: String,
    /// Its parent's hash.
    pub parent_hash: String,
}

stored_status!(
    /// Where a deposit is.
    DepositStatus {
        /// Seen in a block, waiting for its confirmations.
        Pending => "pending",
        /// Credited in the exchange core (final).
        Credited => "credited",
        /// Its block left the canonical chain before it was credited.
        Orphaned => "orphaned",
        /// The exchange core refused it, or its record does not read: never credited by
        /// the watcher, alerted, left for an operator (final unless its block is re-mined).
        Refused => "refused",
    }
);

stored_status!(
    /// Where a withdrawal is. The hold in the exchange core is released only through
    /// `Cancelling` or `Failing`, so a released withdrawal is never signed.
    WithdrawalStatus {
        /// Recorded, not yet held in the core.
        Requested => "requested",
        /// Held in the core, waiting to be signed.
        Held => "held",
        /// Held in the core, waiting for two operators' approval before it is signed.
        Review => "review",
        /// Signed and stored, waiting to be broadcast.
        Signed => "signed",
        /// Sent to the node.
        Broadcast => "broadcast",
        /// Confirmed on chain; the hold became the withdrawal (final).
        Settled => "settled",
        /// The owner cancelled it; its hold is being released.
        Cancelling => "cancelling",
        /// Cancelled and released (final).
        Cancelled => "cancelled",
        /// It failed (reverted, refused); its hold is being released.
        Failing => "failing",
        /// Failed and released (final).
        Failed => "failed",
        /// The core refused to hold it (final).
        Rejected => "rejected",
    }
);

stored_status!(
    /// Where an internal transfer is.
    TransferStatus {
        /// Recorded, not yet applied in the core.
        Requested => "requested",
        /// Applied in the core (final).
        Settled => "settled",
        /// Refused by the core (final).
        Rejected => "rejected",
    }
);

stored_status!(
    /// What a wallet history row is about.
    Subject {
        /// A deposit.
        Deposit => "deposit",
        /// A withdrawal.
        Withdrawal => "withdrawal",
    }
);

/// The history label of a transaction replaced by one with a higher fee (not a status: the
/// withdrawal stays `broadcast`).
pub const REPLACED: &str = "replaced";

/// The history label of a cancel signed for a withdrawal whose transfer cannot be mined (not a
/// status: the withdrawal stays where it is until the chain decides).
pub const CANCEL_SIGNED: &str = "cancel_signed";

/// A deposit found in a block, before it is recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeposit {
    /// The transaction.
    pub tx_hash: String,
    /// Where in the transaction: `log:N` (the N-th log of its receipt) or `call:` plus the
    /// call's trace address (`call:` alone is the transaction's own value).
    pub position: String,
    /// The credited user.
    pub user_id: UserId,
    /// The asset's symbol.
    pub asset: String,
    /// Smallest units.
    pub amount: Amount,
    /// The deposit address it reached.
    pub address: String,
    /// Who sent it.
    pub sender: String,
    /// The invoice it pays, if it reached an invoice's address (then `user_id` is the
    /// merchant, and the gateway account is credited, not the merchant's).
    pub invoice_id: Option<i64>,
}

/// A recorded deposit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepositRecord {
    /// Row id.
    pub id: i64,
    /// The chain.
    pub chain_id: i64,
    /// The transaction.
    pub tx_hash: String,
    /// Where in the transaction (see [`NewDeposit::position`]).
    pub position: String,
    /// The credited user.
    pub user_id: UserId,
    /// The asset's symbol.
    pub asset: String,
    /// Smallest units.
    pub amount: Amount,
    /// The deposit address.
    pub address: String,
    /// The sender.
    pub sender: String,
    /// The block it was (last) seen in.
    pub block_height: i64,
    /// That block's hash.
    pub block_hash: String,
    /// Where it is.
    pub status: DepositStatus,
    /// First seen (Unix ms).
    pub created_at: i64,
    /// Last status change (Unix ms).
    pub updated_at: i64,
    /// The invoice it pays (see [`NewDeposit::invoice_id`]).
    pub invoice_id: Option<i64>,
}

/// A withdrawal to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWithdrawal {
    /// The owner.
    pub user_id: UserId,
    /// The chain.
    pub chain_id: i64,
    /// The asset's symbol.
    pub asset: String,
    /// Destination (lower-case hex).
    pub to_address: String,
    /// What the destination receives, smallest units.
    pub amount: Amount,
    /// The fee on top, smallest units.
    pub fee: Amount,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// The exchange core's request id of its hold (random, never reused).
    pub request_key: u64,
    /// Why operators must approve it before it is signed (`None`: they need not).
    pub review_reason: Option<String>,
}

/// An internal transfer to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTransfer {
    /// The sender.
    pub from_user: UserId,
    /// The recipient.
    pub to_user: UserId,
    /// The asset's symbol.
    pub asset: String,
    /// How much, smallest units.
    pub amount: Amount,
    /// The sender's idempotency key.
    pub idempotency_key: String,
    /// The exchange core's request id of the transfer (random, never reused).
    pub request_key: u64,
}

/// A rolling limit on what a user moves out of the platform (withdrawals and internal
/// transfers together) in one asset: checked and recorded in one serialized step per user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutflowLimit {
    /// The most, in smallest units.
    pub limit: Amount,
    /// The window's start (Unix ms): what was made since counts.
    pub since: i64,
}

/// A recorded withdrawal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalRecord {
    /// Row id.
    pub id: i64,
    /// The owner.
    pub user_id: UserId,
    /// The chain.
    pub chain_id: i64,
    /// The asset's symbol.
    pub asset: String,
    /// Destination.
    pub to_address: String,
    /// What the destination receives.
    pub amount: Amount,
    /// The fee on top.
    pub fee: Amount,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// Where it is.
    pub status: WithdrawalStatus,
    /// The hot wallet nonce it was signed with.
    pub nonce: Option<i64>,
    /// The latest transaction signed for it.
    pub tx_hash: Option<String>,
    /// The block the transaction was mined in.
    pub block_height: Option<i64>,
    /// Why it failed or was rejected.
    pub error: Option<String>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last status change (Unix ms).
    pub updated_at: i64,
    /// The exchange core's request id of its hold; `None` for withdrawals made before these
    /// were random (their request id derives from the row id).
    pub request_key: Option<u64>,
    /// Why operators must approve it before it is signed (`None`: they need not).
    pub review_reason: Option<String>,
}

/// A signed transaction stored before it is broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTx {
    /// Its hash.
    pub tx_hash: String,
    /// Its nonce.
    pub nonce: i64,
    /// The raw signed bytes (what is broadcast, byte for byte, every time).
    pub raw: Vec<u8>,
    /// Its max fee per gas (wei), for fee bumps.
    pub max_fee_per_gas: u128,
    /// When it was signed (Unix ms).
    pub created_at: i64,
    /// A cancel: a zero-value send to the hot wallet itself at the same nonce.
    pub cancels: bool,
}

/// A hot-wallet move (a gas top-up or a move to the cold wallet), recorded before broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotTx {
    /// Its hash.
    pub tx_hash: String,
    /// Its nonce.
    pub nonce: i64,
    /// `top_up` or `to_cold`.
    pub purpose: String,
    /// Where it sends (lower-case hex): the topped-up address, or the token or cold wallet.
    pub destination: String,
    /// The raw signed bytes.
    pub raw: Vec<u8>,
    /// When it was signed (Unix ms).
    pub created_at: i64,
}

/// One step in a deposit's or withdrawal's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletEvent {
    /// The status entered.
    pub status: String,
    /// Details (a transaction hash, an error).
    pub detail: Option<String>,
    /// When (Unix ms).
    pub at: i64,
}

/// An internal transfer between two users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferRecord {
    /// Row id.
    pub id: i64,
    /// Sender.
    pub from_user: UserId,
    /// Recipient.
    pub to_user: UserId,
    /// The asset's symbol.
    pub asset: String,
    /// Smallest units.
    pub amount: Amount,
    /// The sender's idempotency key.
    pub idempotency_key: String,
    /// Where it is.
    pub status: TransferStatus,
    /// Created (Unix ms).
    pub created_at: i64,
    /// The exchange core's request id (random); `None` for transfers made before request
    /// keys, named by their row id.
    pub request_key: Option<u64>,
}

/// An address on a user's withdrawal allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedAddress {
    /// The address.
    pub address: String,
    /// The user's name for it.
    pub label: String,
    /// Added (Unix ms).
    pub created_at: i64,
}

const DEPOSIT_COLUMNS: &str = "id, chain_id, tx_hash, position, user_id, asset, amount, address, \
                               sender, block_height, block_hash, status, created_at, updated_at, \
                               invoice_id";
const WITHDRAWAL_COLUMNS: &str = "id, user_id, chain_id, asset, to_address, amount, fee, \
                                  idempotency_key, status, nonce, tx_hash, block_height, error, \
                                  created_at, updated_at, request_key, review_reason";
const TRANSFER_COLUMNS: &str =
    "id, from_user, to_user, asset, amount, idempotency_key, status, created_at, request_key";

fn deposit(row: &AnyRow) -> Result<DepositRecord, StoreError> {
    Ok(DepositRecord {
        id: row.try_get(0)?,
        chain_id: row.try_get(1)?,
        tx_hash: row.try_get(2)?,
        position: row.try_get(3)?,
        user_id: UserId(row.try_get(4)?),
        asset: row.try_get(5)?,
        amount: stored_amount(row.try_get(6)?)?,
        address: row.try_get(7)?,
        sender: row.try_get(8)?,
        block_height: row.try_get(9)?,
        block_hash: row.try_get(10)?,
        status: DepositStatus::parse(row.try_get(11)?)?,
        created_at: row.try_get(12)?,
        updated_at: row.try_get(13)?,
        invoice_id: row.try_get(14)?,
    })
}

fn withdrawal(row: &AnyRow) -> Result<WithdrawalRecord, StoreError> {
    Ok(WithdrawalRecord {
        id: row.try_get(0)?,
        user_id: UserId(row.try_get(1)?),
        chain_id: row.try_get(2)?,
        asset: row.try_get(3)?,
        to_address: row.try_get(4)?,
        amount: stored_amount(row.try_get(5)?)?,
        fee: stored_amount(row.try_get(6)?)?,
        idempotency_key: row.try_get(7)?,
        status: WithdrawalStatus::parse(row.try_get(8)?)?,
        nonce: row.try_get(9)?,
        tx_hash: row.try_get(10)?,
        block_height: row.try_get(11)?,
        error: row.try_get(12)?,
        created_at: row.try_get(13)?,
        updated_at: row.try_get(14)?,
        request_key: request_key(row, 15)?,
        review_reason: row.try_get(16)?,
    })
}

/// A stored request key (decimal text of a u64), if the row has one.
fn request_key(row: &AnyRow, column: usize) -> Result<Option<u64>, StoreError> {
    row.try_get::<Option<&str>, _>(column)?
        .map(|text| {
            text.parse()
                .map_err(|_| StoreError::Invalid(format!("request key {text:?}")))
        })
        .transpose()
}

fn transfer(row: &AnyRow) -> Result<TransferRecord, StoreError> {
    Ok(TransferRecord {
        id: row.try_get(0)?,
        from_user: UserId(row.try_get(1)?),
        to_user: UserId(row.try_get(2)?),
        asset: row.try_get(3)?,
        amount: stored_amount(row.try_get(4)?)?,
        idempotency_key: row.try_get(5)?,
        status: TransferStatus::parse(row.try_get(6)?)?,
        created_at: row.try_get(7)?,
        request_key: request_key(row, 8)?,
    })
}

async fn event(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    subject: Subject,
    ref_id: i64,
    status: &str,
    detail: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO wallet_events (kind, ref_id, status, detail, at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(subject.as_str())
    .bind(ref_id)
    .bind(status)
    .bind(detail)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves a deposit from `from` to `to`: a compare-and-set, false if it was not in `from`.
async fn cas_deposit(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    from: DepositStatus,
    to: DepositStatus,
    now: i64,
) -> Result<bool, StoreError> {
    let changed = sqlx::query(
        "UPDATE deposits SET status = $3, updated_at = $4 WHERE id = $1 AND status = $2",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(now)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

impl Store {
    /// The chain's seed record, if one was made.
    pub async fn wallet_seed(&self, chain_id: i64) -> Result<Option<SeedRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT sealed_seed, xpub, hot_address FROM wallet_seeds WHERE chain_id = $1",
        )
        .bind(chain_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SeedRecord {
                sealed_seed: row.try_get(0)?,
                xpub: row.try_get(1)?,
                hot_address: row.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Stores the chain's seed record unless one exists; returns the one that is stored.
    pub async fn create_wallet_seed(
        &self,
        chain_id: i64,
        seed: &SeedRecord,
        now: i64,
    ) -> Result<SeedRecord, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO wallet_seeds (chain_id, sealed_seed, xpub, hot_address, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(chain_id)
        .bind(seed.sealed_seed.as_slice())
        .bind(seed.xpub.as_str())
        .bind(seed.hot_address.as_str())
        .bind(now)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(seed.clone()),
            Err(e) if is_unique_violation(&e) => self
                .wallet_seed(chain_id)
                .await?
                .ok_or(StoreError::NotFound),
            Err(e) => Err(e.into()),
        }
    }

    /// The user's deposit address on the chain, if it was made.
    pub async fn deposit_address(
        &self,
        chain_id: i64,
        user_id: UserId,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query(
            "SELECT address FROM deposit_addresses WHERE chain_id = $1 AND user_id = $2",
        )
        .bind(chain_id)
        .bind(user_id.0)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Records the user's deposit address (a second call with the same address is a no-op).
    pub async fn add_deposit_address(
        &self,
        chain_id: i64,
        user_id: UserId,
        address: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO deposit_addresses (chain_id, user_id, address, created_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(chain_id)
        .bind(user_id.0)
        .bind(address)
        .bind(now)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Every deposit address on the chain with its user, created at or after `since` (Unix
    /// ms), in creation order.
    pub async fn deposit_addresses_since(
        &self,
        chain_id: i64,
        since: i64,
    ) -> Result<Vec<(String, UserId, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, user_id, created_at FROM deposit_addresses \
             WHERE chain_id = $1 AND created_at >= $2 ORDER BY created_at",
        )
        .bind(chain_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, UserId(r.try_get(1)?), r.try_get(2)?)))
            .collect()
    }

    /// The highest block the watcher recorded: (height, hash).
    pub async fn chain_tip(&self, chain_id: i64) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query(
            "SELECT height, hash FROM chain_blocks WHERE chain_id = $1 \
             ORDER BY height DESC LIMIT 1",
        )
        .bind(chain_id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// The recorded hash at a height.
    pub async fn chain_block(
        &self,
        chain_id: i64,
        height: i64,
    ) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT hash FROM chain_blocks WHERE chain_id = $1 AND height = $2")
            .bind(chain_id)
            .bind(height)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// How many blocks are recorded.
    pub async fn chain_blocks_kept(&self, chain_id: i64) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) FROM chain_blocks WHERE chain_id = $1")
            .bind(chain_id)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Records a scanned block and the deposits found in it, in one transaction, and forgets
    /// blocks more than `keep` below it. A deposit seen before (orphaned by a reorg and now
    /// included again) returns to `pending` in its new block; a credited one stays credited.
    pub async fn record_block(
        &self,
        chain_id: i64,
        block: &BlockRef,
        deposits: &[NewDeposit],
        keep: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO chain_blocks (chain_id, height, hash, parent_hash) VALUES ($1, $2, $3, $4)",
        )
        .bind(chain_id)
        .bind(block.height)
        .bind(block.hash.as_str())
        .bind(block.parent_hash.as_str())
        .execute(&mut *tx)
        .await?;
        let (height, hash) = (block.height, block.hash.as_str());
        for d in deposits {
            let existing = sqlx::query(
                "SELECT id, status FROM deposits WHERE chain_id = $1 AND tx_hash = $2 AND position = $3",
            )
            .bind(chain_id)
            .bind(d.tx_hash.as_str())
            .bind(d.position.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let id: i64 = match existing {
                Some(row) => {
                    let id: i64 = row.try_get(0)?;
                    if DepositStatus::parse(row.try_get(1)?)? == DepositStatus::Credited {
                        continue;
                    }
                    // A credited deposit stays credited, even one credited since the read.
                    let moved = sqlx::query(
                        "UPDATE deposits SET status = $5, block_height = $2, block_hash = $3, \
                         updated_at = $4 WHERE id = $1 AND status <> $6",
                    )
                    .bind(id)
                    .bind(height)
                    .bind(hash)
                    .bind(now)
                    .bind(DepositStatus::Pending.as_str())
                    .bind(DepositStatus::Credited.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if moved == 0 {
                        continue;
                    }
                    id
                }
                None => sqlx::query(
                    "INSERT INTO deposits (chain_id, tx_hash, position, user_id, asset, amount, \
                     address, sender, block_height, block_hash, status, created_at, updated_at, \
                     invoice_id) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $12, $11, $11, $13) \
                     RETURNING id",
                )
                .bind(chain_id)
                .bind(d.tx_hash.as_str())
                .bind(d.position.as_str())
                .bind(d.user_id.0)
                .bind(d.asset.as_str())
                .bind(d.amount.to_string())
                .bind(d.address.as_str())
                .bind(d.sender.as_str())
                .bind(height)
                .bind(hash)
                .bind(now)
                .bind(DepositStatus::Pending.as_str())
                .bind(d.invoice_id)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?,
            };
            let pending = DepositStatus::Pending.as_str();
            event(&mut tx, Subject::Deposit, id, pending, Some(hash), now).await?;
        }
        sqlx::query("DELETE FROM chain_blocks WHERE chain_id = $1 AND height < $2")
            .bind(chain_id)
            .bind(height.saturating_sub(keep))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets the recorded block at `height` (a reorg replaced it): its pending deposits
    /// become `orphaned`. Returns the credited deposits that were in it (a reorg deeper than
    /// the confirmations: the caller must stop and alert).
    pub async fn unwind_block(
        &self,
        chain_id: i64,
        height: i64,
        now: i64,
    ) -> Result<Vec<DepositRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE chain_id = $1 AND block_height = $2 \
             AND status <> $3 ORDER BY id"
        )))
        .bind(chain_id)
        .bind(height)
        .bind(DepositStatus::Orphaned.as_str())
        .fetch_all(&mut *tx)
        .await?;
        let mut credited = Vec::new();
        for row in &rows {
            let d = deposit(row)?;
            if d.status == DepositStatus::Credited {
                credited.push(d);
                continue;
            }
            let orphaned = cas_deposit(
                &mut tx,
                d.id,
                DepositStatus::Pending,
                DepositStatus::Orphaned,
                now,
            )
            .await?;
            if orphaned {
                let status = DepositStatus::Orphaned.as_str();
                event(
                    &mut tx,
                    Subject::Deposit,
                    d.id,
                    status,
                    Some(&d.block_hash),
                    now,
                )
                .await?;
            } else {
                // Credited since the read: the caller must hear of it (a reorg below a
                // credit halts crediting).
                let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE id = $1"
                )))
                .bind(d.id)
                .fetch_one(&mut *tx)
                .await?;
                let now_credited = deposit(&row)?;
                if now_credited.status == DepositStatus::Credited {
                    credited.push(now_credited);
                }
            }
        }
        sqlx::query("DELETE FROM chain_blocks WHERE chain_id = $1 AND height = $2")
            .bind(chain_id)
            .bind(height)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(credited)
    }

    /// Stops crediting on the chain until an operator clears it (`None` clears).
    pub async fn set_chain_halt(
        &self,
        chain_id: i64,
        reason: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM chain_state WHERE chain_id = $1")
            .bind(chain_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO chain_state (chain_id, halted_reason, updated_at) VALUES ($1, $2, $3)",
        )
        .bind(chain_id)
        .bind(reason)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Why crediting on the chain is halted, if it is.
    pub async fn chain_halt(&self, chain_id: i64) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT halted_reason FROM chain_state WHERE chain_id = $1")
            .bind(chain_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row
            .map(|r| r.try_get::<Option<String>, _>(0))
            .transpose()?
            .flatten())
    }

    /// The chain's deposits in `status`, oldest first. A row that does not read (a damaged
    /// amount) comes back as its id and why, so that one bad row never hides the others.
    pub async fn deposits_in(
        &self,
        chain_id: i64,
        status: DepositStatus,
    ) -> Result<Vec<Result<DepositRecord, (i64, StoreError)>>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE chain_id = $1 AND status = $2 ORDER BY id"
        )))
        .bind(chain_id)
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id: i64 = row.try_get(0)?;
                Ok(deposit(row).map_err(|error| (id, error)))
            })
            .collect()
    }

    /// Marks a pending deposit refused, with why (false if it was not pending).
    pub async fn mark_deposit_refused(
        &self,
        id: i64,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.end_deposit(id, DepositStatus::Refused, reason, now)
            .await
    }

    /// Marks a pending deposit credited (false if it was not pending).
    pub async fn mark_deposit_credited(
        &self,
        id: i64,
        reference: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.end_deposit(id, DepositStatus::Credited, reference, now)
            .await
    }

    /// Moves a pending deposit to `to` with `detail` in its history, in one transaction.
    async fn end_deposit(
        &self,
        id: i64,
        to: DepositStatus,
        detail: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = cas_deposit(&mut tx, id, DepositStatus::Pending, to, now).await?;
        if changed {
            event(
                &mut tx,
                Subject::Deposit,
                id,
                to.as_str(),
                Some(detail),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Deposit addresses holding credited deposits not yet swept to the hot wallet, with
    /// their users (oldest first, at most `limit`).
    pub async fn unswept_addresses(
        &self,
        chain_id: i64,
        limit: i64,
    ) -> Result<Vec<(String, UserId, Option<i64>)>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, user_id, invoice_id, MIN(id) AS first FROM deposits \
             WHERE chain_id = $1 AND status = $3 AND swept_at IS NULL \
             GROUP BY address, user_id, invoice_id ORDER BY first LIMIT $2",
        )
        .bind(chain_id)
        .bind(limit)
        .bind(DepositStatus::Credited.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, UserId(r.try_get(1)?), r.try_get(2)?)))
            .collect()
    }

    /// The deposits that reached an invoice's address, oldest first.
    pub(crate) async fn deposits_where_invoice(
        &self,
        invoice_id: i64,
    ) -> Result<Vec<DepositRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE invoice_id = $1 ORDER BY id"
        )))
        .bind(invoice_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deposit).collect()
    }

    /// Marks an address's credited deposits swept.
    pub async fn mark_swept(
        &self,
        chain_id: i64,
        address: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE deposits SET swept_at = $3 WHERE chain_id = $1 AND address = $2 \
             AND status = $4 AND swept_at IS NULL",
        )
        .bind(chain_id)
        .bind(address)
        .bind(now)
        .bind(DepositStatus::Credited.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A user's deposits, newest first (not the payments to their invoices).
    pub async fn deposits_of(
        &self,
        user_id: UserId,
        limit: i64,
    ) -> Result<Vec<DepositRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DEPOSIT_COLUMNS} FROM deposits WHERE user_id = $1 AND invoice_id IS NULL \
             ORDER BY id DESC LIMIT $2"
        )))
        .bind(user_id.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(deposit).collect()
    }

    /// A deposit or withdrawal's history (`kind` is `deposit` or `withdrawal`), oldest first.
    pub async fn wallet_events(
        &self,
        subject: Subject,
        ref_id: i64,
    ) -> Result<Vec<WalletEvent>, StoreError> {
        let rows = sqlx::query(
            "SELECT status, detail, at FROM wallet_events WHERE kind = $1 AND ref_id = $2 ORDER BY id",
        )
        .bind(subject.as_str())
        .bind(ref_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WalletEvent {
                    status: r.try_get(0)?,
                    detail: r.try_get(1)?,
                    at: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Creates a withdrawal in status `requested`, or returns the one the user already made
    /// with this idempotency key (`false`: nothing was created). With a `limit`, the user's
    /// outflow of the asset in its window plus this amount must stay within it
    /// ([`StoreError::OverLimit`] otherwise): the check and the insert are one transaction
    /// that first locks the user's row, so concurrent requests are counted one after another.
    pub async fn create_withdrawal(
        &self,
        new: &NewWithdrawal,
        limit: Option<OutflowLimit>,
        now: i64,
    ) -> Result<(WithdrawalRecord, bool), StoreError> {
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, new.user_id).await?;
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE user_id = $1 AND idempotency_key = $2"
        )))
        .bind(new.user_id.0)
        .bind(new.idempotency_key.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok((withdrawal(&row)?, false));
        }
        if let Some(limit) = limit {
            check_outflow(&mut tx, new.user_id, &new.asset, new.amount, limit).await?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO withdrawals (user_id, chain_id, asset, to_address, amount, fee, \
             idempotency_key, status, created_at, updated_at, request_key, review_reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $8, $8, $10, $11) \
             RETURNING {WITHDRAWAL_COLUMNS}"
        )))
        .bind(new.user_id.0)
        .bind(new.chain_id)
        .bind(new.asset.as_str())
        .bind(new.to_address.as_str())
        .bind(new.amount.to_string())
        .bind(new.fee.to_string())
        .bind(new.idempotency_key.as_str())
        .bind(now)
        .bind(WithdrawalStatus::Requested.as_str())
        .bind(new.request_key.to_string())
        .bind(new.review_reason.as_deref())
        .fetch_one(&mut *tx)
        .await?;
        let record = withdrawal(&row)?;
        let status = record.status.as_str();
        event(&mut tx, Subject::Withdrawal, record.id, status, None, now).await?;
        tx.commit().await?;
        Ok((record, true))
    }

    /// The user's withdrawal made with this idempotency key.
    pub async fn withdrawal_by_key(
        &self,
        user_id: UserId,
        idempotency_key: &str,
    ) -> Result<Option<WithdrawalRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE user_id = $1 AND idempotency_key = $2"
        )))
        .bind(user_id.0)
        .bind(idempotency_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(withdrawal).transpose()
    }

    /// Records which of a withdrawal's transactions was mined.
    pub async fn set_withdrawal_tx(&self, id: i64, tx_hash: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE withdrawals SET tx_hash = $2 WHERE id = $1")
            .bind(id)
            .bind(tx_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One withdrawal.
    pub async fn withdrawal(&self, id: i64) -> Result<Option<WithdrawalRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(withdrawal).transpose()
    }

    /// The withdrawal whose exchange-core request key is `key`, if any.
    pub async fn withdrawal_by_request_key(
        &self,
        key: u64,
    ) -> Result<Option<WithdrawalRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE request_key = $1"
        )))
        .bind(key.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(withdrawal).transpose()
    }

    /// Moves a withdrawal from one of `from` to `to`: a compare-and-set, false (and nothing
    /// changed) if it was in none of them. Records `detail` in its history (and as its error
    /// when `to` is `Failed` or `Rejected`) and the block it settled in.
    pub async fn set_withdrawal_status(
        &self,
        id: i64,
        from: &[WithdrawalStatus],
        to: WithdrawalStatus,
        detail: Option<&str>,
        block_height: Option<i64>,
        now: i64,
    ) -> Result<bool, StoreError> {
        if from.is_empty() {
            return Ok(false);
        }
        let expected: Vec<String> = (0..from.len()).map(|n| format!("${}", n + 6)).collect();
        let sql = format!(
            "UPDATE withdrawals SET status = $2, error = COALESCE($3, error), \
             block_height = COALESCE($4, block_height), updated_at = $5 \
             WHERE id = $1 AND status IN ({})",
            expected.join(", ")
        );
        let error = matches!(to, WithdrawalStatus::Failed | WithdrawalStatus::Rejected)
            .then_some(detail)
            .flatten();
        let mut tx = self.pool.begin().await?;
        let mut update = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(to.as_str())
            .bind(error)
            .bind(block_height)
            .bind(now);
        for status in from {
            update = update.bind(status.as_str());
        }
        let changed = update.execute(&mut *tx).await?.rows_affected() == 1;
        if changed {
            event(&mut tx, Subject::Withdrawal, id, to.as_str(), detail, now).await?;
        } else {
            // Nothing changed: no such withdrawal, or not in `from` (asked on this
            // transaction's connection: SQLite's pool has one).
            sqlx::query("SELECT id FROM withdrawals WHERE id = $1")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound)?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    /// Withdrawals on the chain in a status, oldest first.
    pub async fn withdrawals_in(
        &self,
        chain_id: i64,
        status: WithdrawalStatus,
    ) -> Result<Vec<WithdrawalRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE chain_id = $1 AND status = $2 ORDER BY id"
        )))
        .bind(chain_id)
        .bind(status.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(withdrawal).collect()
    }

    /// A user's withdrawals, newest first.
    pub async fn withdrawals_of(
        &self,
        user_id: UserId,
        limit: i64,
    ) -> Result<Vec<WithdrawalRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
        )))
        .bind(user_id.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(withdrawal).collect()
    }

    /// Stores the signed transaction of a `held` withdrawal and moves it to `signed`, and
    /// advances the hot wallet's next nonce past it, in one transaction: the durable intent
    /// that is broadcast, byte for byte, after any crash. False if the withdrawal is no
    /// longer `held` (cancelled meanwhile): nothing is stored and the nonce stays free.
    pub async fn sign_withdrawal(
        &self,
        id: i64,
        hot_address: &str,
        signed: &SignedTx,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let changed = sqlx::query(
            "UPDATE withdrawals SET status = $5, nonce = $2, tx_hash = $3, updated_at = $4 \
             WHERE id = $1 AND status = $6",
        )
        .bind(id)
        .bind(signed.nonce)
        .bind(signed.tx_hash.as_str())
        .bind(signed.created_at)
        .bind(WithdrawalStatus::Signed.as_str())
        .bind(WithdrawalStatus::Held.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed != 1 {
            return Ok(false);
        }
        let chain_id: i64 = sqlx::query("SELECT chain_id FROM withdrawals WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        insert_signed(&mut tx, id, signed).await?;
        put_nonce(&mut tx, chain_id, hot_address, signed.nonce + 1).await?;
        event(
            &mut tx,
            Subject::Withdrawal,
            id,
            WithdrawalStatus::Signed.as_str(),
            Some(&signed.tx_hash),
            signed.created_at,
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stores a replacement (same nonce, higher fee) of a withdrawal's transaction, or a cancel
    /// (`signed.cancels`), and makes it the one shown; the earlier ones stay on record, since
    /// any of them may be mined.
    pub async fn replace_withdrawal_tx(
        &self,
        id: i64,
        signed: &SignedTx,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_signed(&mut tx, id, signed).await?;
        sqlx::query("UPDATE withdrawals SET tx_hash = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(signed.tx_hash.as_str())
            .bind(signed.created_at)
            .execute(&mut *tx)
            .await?;
        event(
            &mut tx,
            Subject::Withdrawal,
            id,
            if signed.cancels {
                CANCEL_SIGNED
            } else {
                REPLACED
            },
            Some(&signed.tx_hash),
            signed.created_at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every transaction signed for a withdrawal, oldest first.
    pub async fn withdrawal_txs(&self, id: i64) -> Result<Vec<SignedTx>, StoreError> {
        let rows = sqlx::query(
            "SELECT tx_hash, nonce, raw, max_fee_per_gas, created_at, cancels \
             FROM withdrawal_txs WHERE withdrawal_id = $1 ORDER BY created_at, tx_hash",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SignedTx {
                    tx_hash: r.try_get(0)?,
                    nonce: r.try_get(1)?,
                    raw: r.try_get(2)?,
                    max_fee_per_gas: stored_amount(r.try_get(3)?)?.0,
                    created_at: r.try_get(4)?,
                    cancels: r.try_get::<i64, _>(5)? != 0,
                })
            })
            .collect()
    }

    /// Records a hot-wallet move and advances the hot wallet's next nonce past it, in one
    /// transaction, before it is broadcast.
    pub async fn record_hot_tx(
        &self,
        chain_id: i64,
        hot_address: &str,
        hot: &HotTx,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO hot_txs (tx_hash, chain_id, nonce, purpose, destination, raw, status, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $7)",
        )
        .bind(hot.tx_hash.as_str())
        .bind(chain_id)
        .bind(hot.nonce)
        .bind(hot.purpose.as_str())
        .bind(hot.destination.as_str())
        .bind(hot.raw.as_slice())
        .bind(hot.created_at)
        .execute(&mut *tx)
        .await?;
        put_nonce(&mut tx, chain_id, hot_address, hot.nonce + 1).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The chain's hot-wallet moves not yet seen on chain, by nonce.
    pub async fn pending_hot_txs(&self, chain_id: i64) -> Result<Vec<HotTx>, StoreError> {
        let rows = sqlx::query(
            "SELECT tx_hash, nonce, purpose, destination, raw, created_at FROM hot_txs \
             WHERE chain_id = $1 AND status = 'pending' ORDER BY nonce",
        )
        .bind(chain_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HotTx {
                    tx_hash: r.try_get(0)?,
                    nonce: r.try_get(1)?,
                    purpose: r.try_get(2)?,
                    destination: r.try_get(3)?,
                    raw: r.try_get(4)?,
                    created_at: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Marks a hot-wallet move done (mined, or its nonce used): false if it was not pending.
    pub async fn finish_hot_tx(&self, tx_hash: &str, now: i64) -> Result<bool, StoreError> {
        let changed = sqlx::query(
            "UPDATE hot_txs SET status = 'done', updated_at = $2 \
             WHERE tx_hash = $1 AND status = 'pending'",
        )
        .bind(tx_hash)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(changed == 1)
    }

    /// The hot wallet's next nonce as recorded.
    pub async fn hot_nonce(&self, chain_id: i64, address: &str) -> Result<Option<i64>, StoreError> {
        let row =
            sqlx::query("SELECT next_nonce FROM hot_nonces WHERE chain_id = $1 AND address = $2")
                .bind(chain_id)
                .bind(address)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Sets the hot wallet's next nonce (at start-up, from the chain when it is ahead).
    pub async fn set_hot_nonce(
        &self,
        chain_id: i64,
        address: &str,
        next: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        put_nonce(&mut tx, chain_id, address, next).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds an address to the user's withdrawal allow-list (re-adding renames it).
    pub async fn allow_withdrawal_address(
        &self,
        user_id: UserId,
        chain_id: i64,
        address: &str,
        label: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "DELETE FROM withdrawal_addresses WHERE user_id = $1 AND chain_id = $2 AND address = $3",
        )
        .bind(user_id.0)
        .bind(chain_id)
        .bind(address)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO withdrawal_addresses (user_id, chain_id, address, label, created_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(user_id.0)
        .bind(chain_id)
        .bind(address)
        .bind(label)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes an address from the allow-list (false if it was not on it).
    pub async fn remove_withdrawal_address(
        &self,
        user_id: UserId,
        chain_id: i64,
        address: &str,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM withdrawal_addresses WHERE user_id = $1 AND chain_id = $2 AND address = $3",
        )
        .bind(user_id.0)
        .bind(chain_id)
        .bind(address)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user's allow-list on the chain.
    pub async fn withdrawal_addresses(
        &self,
        user_id: UserId,
        chain_id: i64,
    ) -> Result<Vec<AllowedAddress>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, label, created_at FROM withdrawal_addresses \
             WHERE user_id = $1 AND chain_id = $2 ORDER BY created_at, address",
        )
        .bind(user_id.0)
        .bind(chain_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AllowedAddress {
                    address: r.try_get(0)?,
                    label: r.try_get(1)?,
                    created_at: r.try_get(2)?,
                })
            })
            .collect()
    }

    /// Whether the user withdraws only to allow-listed addresses.
    pub async fn allow_list_only(&self, user_id: UserId) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT allow_list_only FROM wallet_settings WHERE user_id = $1")
            .bind(user_id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<i64, _>(0)).transpose()? == Some(1))
    }

    /// Turns allow-list-only withdrawals on or off.
    pub async fn set_allow_list_only(
        &self,
        user_id: UserId,
        on: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM wallet_settings WHERE user_id = $1")
            .bind(user_id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO wallet_settings (user_id, allow_list_only, updated_at) VALUES ($1, $2, $3)",
        )
        .bind(user_id.0)
        .bind(i64::from(on))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records an internal transfer in status `requested`, or returns the one the sender
    /// already made with this idempotency key (`false`).
    pub async fn create_transfer(
        &self,
        new: &NewTransfer,
        limit: Option<OutflowLimit>,
        now: i64,
    ) -> Result<(TransferRecord, bool), StoreError> {
        let NewTransfer {
            from_user,
            to_user,
            asset,
            amount,
            idempotency_key,
            request_key,
        } = new;
        let (from_user, to_user, amount) = (*from_user, *to_user, *amount);
        let (asset, idempotency_key) = (asset.as_str(), idempotency_key.as_str());
        let mut tx = self.pool.begin().await?;
        lock_user(&mut tx, from_user).await?;
        let existing = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TRANSFER_COLUMNS} FROM internal_transfers \
             WHERE from_user = $1 AND idempotency_key = $2"
        )))
        .bind(from_user.0)
        .bind(idempotency_key)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok((transfer(&row)?, false));
        }
        if let Some(limit) = limit {
            check_outflow(&mut tx, from_user, asset, amount, limit).await?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO internal_transfers (from_user, to_user, asset, amount, idempotency_key, \
             status, created_at, request_key) VALUES ($1, $2, $3, $4, $5, $7, $6, $8) \
             RETURNING {TRANSFER_COLUMNS}"
        )))
        .bind(from_user.0)
        .bind(to_user.0)
        .bind(asset)
        .bind(amount.to_string())
        .bind(idempotency_key)
        .bind(now)
        .bind(TransferStatus::Requested.as_str())
        .bind(request_key.to_string())
        .fetch_one(&mut *tx)
        .await?;
        let record = transfer(&row)?;
        tx.commit().await?;
        Ok((record, true))
    }

    /// The sender's transfer made with this idempotency key.
    pub async fn transfer_by_key(
        &self,
        from_user: UserId,
        idempotency_key: &str,
    ) -> Result<Option<TransferRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TRANSFER_COLUMNS} FROM internal_transfers WHERE from_user = $1 AND idempotency_key = $2"
        )))
        .bind(from_user.0)
        .bind(idempotency_key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(transfer).transpose()
    }

    /// Moves a transfer from `from` to `to`: a compare-and-set, false if it was not in `from`.
    pub async fn set_transfer_status(
        &self,
        id: i64,
        from: TransferStatus,
        to: TransferStatus,
    ) -> Result<bool, StoreError> {
        let changed =
            sqlx::query("UPDATE internal_transfers SET status = $3 WHERE id = $1 AND status = $2")
                .bind(id)
                .bind(from.as_str())
                .bind(to.as_str())
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(changed == 1)
    }

    /// Transfers the user sent or received, newest first.
    pub async fn transfers_of(
        &self,
        user_id: UserId,
        limit: i64,
    ) -> Result<Vec<TransferRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {TRANSFER_COLUMNS} FROM internal_transfers WHERE from_user = $1 OR to_user = $1 \
             ORDER BY id DESC LIMIT $2"
        )))
        .bind(user_id.0)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(transfer).collect()
    }
}

async fn insert_signed(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    withdrawal_id: i64,
    signed: &SignedTx,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO withdrawal_txs (tx_hash, withdrawal_id, nonce, raw, max_fee_per_gas, \
         created_at, cancels) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(signed.tx_hash.as_str())
    .bind(withdrawal_id)
    .bind(signed.nonce)
    .bind(signed.raw.as_slice())
    .bind(signed.max_fee_per_gas.to_string())
    .bind(signed.created_at)
    .bind(i64::from(signed.cancels))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Serializes a user's money-moving requests: PostgreSQL locks the user's row until the
/// transaction ends; SQLite takes its one write lock. Must be the transaction's first
/// statement, so SQLite never upgrades a read lock (which could fail at once instead of
/// waiting).
pub(crate) async fn lock_user(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: UserId,
) -> Result<(), StoreError> {
    let locked = sqlx::query("UPDATE users SET created_at = created_at WHERE id = $1")
        .bind(user_id.0)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    if locked != 1 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Fails with [`StoreError::OverLimit`] if `amount` would take the user's outflow of `asset`
/// since `limit.since` (withdrawals not cancelled, failed or rejected, and transfers not
/// rejected) past `limit.limit`.
pub(crate) async fn check_outflow(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: UserId,
    asset: &str,
    amount: Amount,
    limit: OutflowLimit,
) -> Result<(), StoreError> {
    let withdrawn = sqlx::query(
        "SELECT amount FROM withdrawals WHERE user_id = $1 AND asset = $2 AND created_at >= $3 \
         AND status NOT IN ($4, $5, $6)",
    )
    .bind(user_id.0)
    .bind(asset)
    .bind(limit.since)
    .bind(WithdrawalStatus::Cancelled.as_str())
    .bind(WithdrawalStatus::Failed.as_str())
    .bind(WithdrawalStatus::Rejected.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let transferred = sqlx::query(
        "SELECT amount FROM internal_transfers WHERE from_user = $1 AND asset = $2 \
         AND created_at >= $3 AND status <> $4",
    )
    .bind(user_id.0)
    .bind(asset)
    .bind(limit.since)
    .bind(TransferStatus::Rejected.as_str())
    .fetch_all(&mut **tx)
    .await?;
    // Payments from the balance to merchants leave the account too.
    let paid = sqlx::query(
        "SELECT amount FROM invoice_payments WHERE payer_id = $1 AND asset = $2 \
         AND created_at >= $3 AND status <> $4",
    )
    .bind(user_id.0)
    .bind(asset)
    .bind(limit.since)
    .bind(crate::MoveStatus::Rejected.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut used = 0u128;
    for row in withdrawn.iter().chain(&transferred).chain(&paid) {
        used = used.saturating_add(stored_amount(row.try_get(0)?)?.0);
    }
    if used.saturating_add(amount.0) > limit.limit.0 {
        return Err(StoreError::OverLimit { used: Amount(used) });
    }
    Ok(())
}

async fn put_nonce(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    chain_id: i64,
    address: &str,
    next: i64,
) -> Result<(), StoreError> {
    // Never lowered: a replacement at an older nonce must not hand later nonces out again.
    let current: Option<i64> =
        sqlx::query("SELECT next_nonce FROM hot_nonces WHERE chain_id = $1 AND address = $2")
            .bind(chain_id)
            .bind(address)
            .fetch_optional(&mut **tx)
            .await?
            .map(|r| r.try_get(0))
            .transpose()?;
    let next = current.map_or(next, |c| c.max(next));
    sqlx::query("DELETE FROM hot_nonces WHERE chain_id = $1 AND address = $2")
        .bind(chain_id)
        .bind(address)
        .execute(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO hot_nonces (chain_id, address, next_nonce) VALUES ($1, $2, $3)")
        .bind(chain_id)
        .bind(address)
        .bind(next)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// A withdrawal kill switch in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WithdrawalHalt {
    /// The asset's symbol, or `*` for all.
    pub asset: String,
    /// The operator who pulled it.
    pub halted_by: i64,
    /// Why.
    pub reason: String,
    /// When (Unix ms).
    pub halted_at: i64,
}

impl Store {
    /// Records an operator's approval of a withdrawal in review (once per operator) and
    /// returns the operators who approved it so far, in order.
    pub async fn approve_withdrawal(
        &self,
        id: i64,
        operator_id: i64,
        now: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let inserted = sqlx::query(
            "INSERT INTO withdrawal_approvals (withdrawal_id, operator_id, approved_at) \
             VALUES ($1, $2, $3)",
        )
        .bind(id)
        .bind(operator_id)
        .bind(now)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => {}
            Err(e) if crate::is_unique_violation(&e) => return Err(StoreError::Conflict),
            Err(e) => return Err(e.into()),
        }
        self.withdrawal_approvals(id).await
    }

    /// The operators who approved a withdrawal, in order.
    pub async fn withdrawal_approvals(&self, id: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT operator_id FROM withdrawal_approvals WHERE withdrawal_id = $1 \
             ORDER BY approved_at, operator_id",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Withdrawals waiting for operators, oldest first.
    pub async fn withdrawals_in_review(&self) -> Result<Vec<WithdrawalRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WITHDRAWAL_COLUMNS} FROM withdrawals WHERE status = 'review' ORDER BY id \
             LIMIT 500"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(withdrawal).collect()
    }

    /// The kill switches in force.
    pub async fn withdrawal_halts(&self) -> Result<Vec<WithdrawalHalt>, StoreError> {
        let rows = sqlx::query(
            "SELECT asset, halted_by, reason, halted_at FROM withdrawal_halts ORDER BY asset",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WithdrawalHalt {
                    asset: r.try_get(0)?,
                    halted_by: r.try_get(1)?,
                    reason: r.try_get(2)?,
                    halted_at: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Pulls (with a reason) or releases the kill switch of `asset` (`*`: all).
    pub async fn set_withdrawal_halt(
        &self,
        asset: &str,
        halt: Option<(i64, &str)>,
        now: i64,
    ) -> Result<(), StoreError> {
        match halt {
            Some((by, reason)) => {
                sqlx::query(
                    "INSERT INTO withdrawal_halts (asset, halted_by, reason, halted_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (asset) DO UPDATE SET \
                     halted_by = excluded.halted_by, reason = excluded.reason, \
                     halted_at = excluded.halted_at",
                )
                .bind(asset)
                .bind(by)
                .bind(reason)
                .bind(now)
                .execute(&self.pool)
                .await?;
            }
            None => {
                sqlx::query("DELETE FROM withdrawal_halts WHERE asset = $1")
                    .bind(asset)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// Whether withdrawals of `asset` are halted (by its own switch or the global one).
    pub async fn withdrawals_halted(&self, asset: &str) -> Result<bool, StoreError> {
        let row =
            sqlx::query("SELECT COUNT(*) FROM withdrawal_halts WHERE asset = $1 OR asset = '*'")
                .bind(asset)
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }
}
