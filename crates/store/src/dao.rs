//! The DAO revenue share's records: COSS usernames, and each week's report (per asset: pool,
//! total holding, holders, paid, carried over), its holders in leaf order (the Merkle tree is
//! rebuilt from them) and the chain holdings it counted. A week's report is written once, in
//! one transaction, before any of it is paid; writing it again changes nothing.

use coss_types::{Amount, UserId};
use sqlx::Row;

use crate::history::{multi_row, pow2_chunks};
use crate::{Store, StoreError, is_unique_violation, stored_amount};

/// Most holder rows per multi-row statement (a power of two, see [`pow2_chunks`]).
const HOLDER_ROWS: usize = 256;

/// Whether a username was given to the account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsernameClaim {
    /// It is the account's now.
    Claimed,
    /// The account already had it.
    AlreadyYours,
    /// Another account has it.
    Taken,
    /// The account already has another username (they are permanent).
    HasAnother(String),
}

/// A week's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaoWeekRecord {
    /// The close (Unix ms): the week's identity.
    pub close_ms: i64,
    /// Its ISO name, e.g. `2026-W48`.
    pub week: String,
    /// The block on-chain holdings were read at.
    pub block_number: Option<i64>,
    /// Holders at or above the minimum.
    pub holders: i64,
    /// Their total holding (COSS smallest units).
    pub total: Amount,
    /// The Merkle root of the payouts (hex).
    pub root: String,
    /// When the report was written.
    pub created_at: i64,
    /// When the last payout was made.
    pub paid_at: Option<i64>,
}

/// One asset of a week's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaoAssetRecord {
    /// The asset id.
    pub asset: i64,
    /// The pool.
    pub pool: Amount,
    /// The holders' total holding.
    pub total: Amount,
    /// Holders credited a non-zero amount.
    pub holders: i64,
    /// Paid out.
    pub paid: Amount,
    /// Carried over to next week.
    pub carried: Amount,
}

/// One address outside the platform at the week's block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaoChainRecord {
    /// The address (EIP-55).
    pub address: String,
    /// COSS it held (smallest units).
    pub amount: Amount,
    /// The account it counted for (none: nobody that week).
    pub account: Option<i64>,
    /// `username`, `buyer` or `none`.
    pub rule: String,
}

/// Everything a week's report holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaoReportRecord {
    /// The week.
    pub week: DaoWeekRecord,
    /// Per asset.
    pub assets: Vec<DaoAssetRecord>,
    /// Holders in leaf order: (account, holding).
    pub holders: Vec<(i64, Amount)>,
    /// The chain holdings read.
    pub chain: Vec<DaoChainRecord>,
}

fn week_of(row: &sqlx::any::AnyRow) -> Result<DaoWeekRecord, StoreError> {
    Ok(DaoWeekRecord {
        close_ms: row.try_get(0)?,
        week: row.try_get(1)?,
        block_number: row.try_get(2)?,
        holders: row.try_get(3)?,
        total: stored_amount(row.try_get(4)?)?,
        root: row.try_get(5)?,
        created_at: row.try_get(6)?,
        paid_at: row.try_get(7)?,
    })
}

const WEEK_COLUMNS: &str =
    "close_ms, week, block_number, holders, total, root, created_at, paid_at";

impl Store {
    /// Gives `username` to the user for good.
    pub async fn claim_username(
        &self,
        user_id: UserId,
        username: &str,
        now: i64,
    ) -> Result<UsernameClaim, StoreError> {
        if let Some(current) = self.username_of(user_id).await? {
            return Ok(if current == username {
                UsernameClaim::AlreadyYours
            } else {
                UsernameClaim::HasAnother(current)
            });
        }
        let inserted = sqlx::query(
            "INSERT INTO dao_usernames (username, user_id, created_at) VALUES ($1, $2, $3)",
        )
        .bind(username)
        .bind(user_id.0)
        .bind(now)
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(UsernameClaim::Claimed),
            Err(e) if is_unique_violation(&e) => {
                // Either the name is taken, or this user claimed another name just now.
                match self.username_of(user_id).await? {
                    Some(current) if current == username => Ok(UsernameClaim::AlreadyYours),
                    Some(current) => Ok(UsernameClaim::HasAnother(current)),
                    None => Ok(UsernameClaim::Taken),
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The user's username.
    pub async fn username_of(&self, user_id: UserId) -> Result<Option<String>, StoreError> {
        let row = sqlx::query("SELECT username FROM dao_usernames WHERE user_id = $1")
            .bind(user_id.0)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// Every username with its user.
    pub async fn usernames(&self) -> Result<Vec<(String, UserId, i64)>, StoreError> {
        let rows = sqlx::query("SELECT username, user_id, created_at FROM dao_usernames")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, UserId(r.try_get(1)?), r.try_get(2)?)))
            .collect()
    }

    /// Writes a week's report (nothing if it is already there). `true` if written now.
    pub async fn save_dao_report(&self, report: &DaoReportRecord) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let w = &report.week;
        let inserted = sqlx::query(
            "INSERT INTO dao_weeks (close_ms, week, block_number, holders, total, root, \
             created_at, paid_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (close_ms) DO NOTHING",
        )
        .bind(w.close_ms)
        .bind(w.week.as_str())
        .bind(w.block_number)
        .bind(w.holders)
        .bind(w.total.to_string())
        .bind(w.root.as_str())
        .bind(w.created_at)
        .bind(w.paid_at)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(false);
        }
        for a in &report.assets {
            sqlx::query(
                "INSERT INTO dao_week_assets (close_ms, asset, pool, total, holders, paid, \
                 carried) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(w.close_ms)
            .bind(a.asset)
            .bind(a.pool.to_string())
            .bind(a.total.to_string())
            .bind(a.holders)
            .bind(a.paid.to_string())
            .bind(a.carried.to_string())
            .execute(&mut *tx)
            .await?;
        }
        let mut leaf = 0i64;
        for rows in pow2_chunks(&report.holders, HOLDER_ROWS) {
            let sql = multi_row(
                self.backend,
                "INSERT INTO dao_holdings (close_ms, leaf, account, holding) VALUES ",
                4,
                rows.len(),
                "",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for (account, holding) in rows {
                query = query
                    .bind(w.close_ms)
                    .bind(leaf)
                    .bind(*account)
                    .bind(holding.to_string());
                leaf += 1;
            }
            query.execute(&mut *tx).await?;
        }
        for rows in pow2_chunks(&report.chain, HOLDER_ROWS / 2) {
            let sql = multi_row(
                self.backend,
                "INSERT INTO dao_chain_holdings (close_ms, address, amount, account, rule) VALUES ",
                5,
                rows.len(),
                "",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in rows {
                query = query
                    .bind(w.close_ms)
                    .bind(c.address.as_str())
                    .bind(c.amount.to_string())
                    .bind(c.account)
                    .bind(c.rule.as_str());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Records that a week is paid out.
    pub async fn mark_dao_paid(&self, close_ms: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE dao_weeks SET paid_at = $1 WHERE close_ms = $2 AND paid_at IS NULL")
            .bind(now)
            .bind(close_ms)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The reports, newest first.
    pub async fn dao_weeks(&self, limit: i64) -> Result<Vec<DaoWeekRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEEK_COLUMNS} FROM dao_weeks ORDER BY close_ms DESC LIMIT $1"
        )))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(week_of).collect()
    }

    /// One week's report by its ISO name.
    pub async fn dao_week(&self, week: &str) -> Result<Option<DaoWeekRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEEK_COLUMNS} FROM dao_weeks WHERE week = $1"
        )))
        .bind(week)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(week_of).transpose()
    }

    /// One week's report by its close.
    pub async fn dao_week_at(&self, close_ms: i64) -> Result<Option<DaoWeekRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {WEEK_COLUMNS} FROM dao_weeks WHERE close_ms = $1"
        )))
        .bind(close_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(week_of).transpose()
    }

    /// A week's assets, ascending by id.
    pub async fn dao_week_assets(&self, close_ms: i64) -> Result<Vec<DaoAssetRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT asset, pool, total, holders, paid, carried FROM dao_week_assets \
             WHERE close_ms = $1 ORDER BY asset",
        )
        .bind(close_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DaoAssetRecord {
                    asset: r.try_get(0)?,
                    pool: stored_amount(r.try_get(1)?)?,
                    total: stored_amount(r.try_get(2)?)?,
                    holders: r.try_get(3)?,
                    paid: stored_amount(r.try_get(4)?)?,
                    carried: stored_amount(r.try_get(5)?)?,
                })
            })
            .collect()
    }

    /// A week's holders in leaf order: (account, holding).
    pub async fn dao_holdings(&self, close_ms: i64) -> Result<Vec<(i64, Amount)>, StoreError> {
        let rows = sqlx::query(
            "SELECT account, holding FROM dao_holdings WHERE close_ms = $1 ORDER BY leaf",
        )
        .bind(close_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, stored_amount(r.try_get(1)?)?)))
            .collect()
    }

    /// An account's leaf and holding in one week, if it was a holder then (one indexed row).
    pub async fn dao_holding_of(
        &self,
        account: i64,
        close_ms: i64,
    ) -> Result<Option<(i64, Amount)>, StoreError> {
        let row = sqlx::query(
            "SELECT leaf, holding FROM dao_holdings WHERE account = $1 AND close_ms = $2",
        )
        .bind(account)
        .bind(close_ms)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((r.try_get(0)?, stored_amount(r.try_get(1)?)?)))
            .transpose()
    }

    /// A week's holders with leaves in `from..to`, by leaf: (account, holding).
    pub async fn dao_holdings_between(
        &self,
        close_ms: i64,
        from: i64,
        to: i64,
    ) -> Result<Vec<(i64, Amount)>, StoreError> {
        let rows = sqlx::query(
            "SELECT account, holding FROM dao_holdings \
             WHERE close_ms = $1 AND leaf >= $2 AND leaf < $3 ORDER BY leaf",
        )
        .bind(close_ms)
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, stored_amount(r.try_get(1)?)?)))
            .collect()
    }

    /// The weeks an account was a holder in, newest first: (close, leaf, holding).
    pub async fn dao_holdings_of(
        &self,
        account: i64,
        limit: i64,
    ) -> Result<Vec<(i64, i64, Amount)>, StoreError> {
        let rows = sqlx::query(
            "SELECT close_ms, leaf, holding FROM dao_holdings WHERE account = $1 \
             ORDER BY close_ms DESC LIMIT $2",
        )
        .bind(account)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, stored_amount(r.try_get(2)?)?)))
            .collect()
    }

    /// The chain holdings a week counted, by address.
    pub async fn dao_chain_holdings(
        &self,
        close_ms: i64,
    ) -> Result<Vec<DaoChainRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT address, amount, account, rule FROM dao_chain_holdings \
             WHERE close_ms = $1 ORDER BY address",
        )
        .bind(close_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DaoChainRecord {
                    address: r.try_get(0)?,
                    amount: stored_amount(r.try_get(1)?)?,
                    account: r.try_get(2)?,
                    rule: r.try_get(3)?,
                })
            })
            .collect()
    }
}
