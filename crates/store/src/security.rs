//! Second factors and brute-force throttles. A TOTP seed is stored sealed (by the caller, with
//! the server key) and becomes active only when confirmed with a code; `last_step` records the
//! newest time step used so that each code works once. Recovery codes are stored as hashes and
//! work once. Throttle counters count failures per key (an account's email, a client address)
//! in a window and lock the key for a while once a limit is reached.

use coss_types::UserId;
use sqlx::Row;

use crate::{Mail, Store, StoreError, enqueue};

/// A TOTP second factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpRecord {
    /// The seed, sealed with the server key.
    pub sealed_secret: Vec<u8>,
    /// When it was confirmed (Unix ms); until then it is not active.
    pub confirmed_at: Option<i64>,
    /// The newest time step a code was accepted for.
    pub last_step: i64,
}

impl Store {
    /// Stores a new, unconfirmed seed (replacing an unconfirmed one). Refused with `Conflict`
    /// if a confirmed one is active.
    pub async fn put_pending_totp(
        &self,
        user_id: UserId,
        sealed_secret: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO totp (user_id, sealed_secret, created_at, last_step) VALUES ($1, $2, $3, 0) \
             ON CONFLICT (user_id) DO UPDATE SET sealed_secret = excluded.sealed_secret, \
             created_at = excluded.created_at, last_step = 0 WHERE totp.confirmed_at IS NULL",
        )
        .bind(user_id.0)
        .bind(sealed_secret)
        .bind(now)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    /// The account's TOTP factor, confirmed or not.
    pub async fn totp(&self, user_id: UserId) -> Result<Option<TotpRecord>, StoreError> {
        let row = sqlx::query(
            "SELECT sealed_secret, confirmed_at, last_step FROM totp WHERE user_id = $1",
        )
        .bind(user_id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(TotpRecord {
                sealed_secret: r.try_get(0)?,
                confirmed_at: r.try_get(1)?,
                last_step: r.try_get(2)?,
            })
        })
        .transpose()
    }

    /// Records that a code for time step `step` was used; false if that step (or a later one)
    /// was used before, so the code must be refused.
    pub async fn use_totp_step(&self, user_id: UserId, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE totp SET last_step = $1 \
             WHERE user_id = $2 AND last_step < $1 AND confirmed_at IS NOT NULL",
        )
        .bind(step)
        .bind(user_id.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Activates the pending seed with the step of the confirming code, stores the recovery
    /// codes (hashes) and queues the notification, in one transaction. False (and nothing
    /// changes) if there is no pending seed or the step was used.
    pub async fn confirm_totp(
        &self,
        user_id: UserId,
        step: i64,
        recovery_hashes: &[Vec<u8>],
        mail: &Mail,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE totp SET last_step = $1, confirmed_at = $2 \
             WHERE user_id = $3 AND last_step < $1 AND confirmed_at IS NULL",
        )
        .bind(step)
        .bind(now)
        .bind(user_id.0)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id.0)
            .execute(&mut *tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query(
                "INSERT INTO recovery_codes (code_hash, user_id, created_at) VALUES ($1, $2, $3)",
            )
            .bind(hash.as_slice())
            .bind(user_id.0)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        enqueue(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Removes the second factor and its recovery codes and queues the notification.
    pub async fn remove_totp(
        &self,
        user_id: UserId,
        mail: &Mail,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM totp WHERE user_id = $1")
            .bind(user_id.0)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id.0)
            .execute(&mut *tx)
            .await?;
        mark_security_change(&mut tx, user_id, now).await?;
        enqueue(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uses a recovery code (by hash) once; false if unknown or used.
    pub async fn use_recovery_code(
        &self,
        user_id: UserId,
        hash: &[u8],
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 \
             WHERE code_hash = $2 AND user_id = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(hash)
        .bind(user_id.0)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// How many unused recovery codes the account has.
    pub async fn recovery_codes_left(&self, user_id: UserId) -> Result<i64, StoreError> {
        Ok(sqlx::query(
            "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id.0)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?)
    }

    /// Until when the most locked of `keys` is locked, if any is locked at `now`.
    pub async fn locked_until(&self, keys: &[&str], now: i64) -> Result<Option<i64>, StoreError> {
        let mut until = None;
        for key in keys {
            let row = sqlx::query(
                "SELECT locked_until FROM throttle WHERE key = $1 AND locked_until > $2",
            )
            .bind(*key)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                let t: i64 = row.try_get(0)?;
                until = Some(until.map_or(t, |u: i64| u.max(t)));
            }
        }
        Ok(until)
    }

    /// Counts a failure for `key`: counters restart after `window_ms`; the `limit`-th failure
    /// in a window locks the key for `lock_ms` and restarts the count. Returns the lock's end
    /// if this failure set one.
    pub async fn record_failure(
        &self,
        key: &str,
        now: i64,
        limit: i64,
        window_ms: i64,
        lock_ms: i64,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let failures: i64 = sqlx::query(
            "INSERT INTO throttle (key, failures, window_start, locked_until) VALUES ($1, 1, $2, 0) \
             ON CONFLICT (key) DO UPDATE SET \
             failures = CASE WHEN throttle.window_start + $3 <= $2 THEN 1 ELSE throttle.failures + 1 END, \
             window_start = CASE WHEN throttle.window_start + $3 <= $2 THEN $2 ELSE throttle.window_start END \
             RETURNING failures",
        )
        .bind(key)
        .bind(now)
        .bind(window_ms)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let locked = if failures >= limit {
            let until = now + lock_ms;
            sqlx::query(
                "UPDATE throttle SET failures = 0, window_start = $1, locked_until = $2 WHERE key = $3",
            )
            .bind(now)
            .bind(until)
            .bind(key)
            .execute(&mut *tx)
            .await?;
            Some(until)
        } else {
            None
        };
        tx.commit().await?;
        Ok(locked)
    }

    /// Forgets `key`'s failures and lock (after a success, or a password reset).
    pub async fn clear_throttle(&self, key: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM throttle WHERE key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Records that the account's password or second factor changed at `now` (withdrawals wait a
/// day after it).
async fn mark_security_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: UserId,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE users SET security_changed_at = $1 WHERE id = $2")
        .bind(now)
        .bind(user_id.0)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
