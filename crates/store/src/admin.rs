//! The back office's records: operators and their sessions, the hash-chained audit log, the
//! changes waiting for a second operator, the nonces of signed internal calls, and the user
//! lock. Hashing, roles and the rules are the caller's (`coss-admin`); this stores what it is
//! given and changes every status by compare-and-set.

use coss_types::UserId;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, is_unique_violation};

stored_status! {
    /// Where a four-eyes request stands.
    RequestStatus {
        /// Waiting for a second operator.
        Pending => "pending",
        /// Approved by a second operator and carried out.
        Executed => "executed",
        /// Approved, but carrying it out failed (the result says why).
        Failed => "failed",
        /// Refused by a second operator.
        Rejected => "rejected",
        /// Withdrawn by its submitter.
        Cancelled => "cancelled",
    }
}

/// An operator account.
#[derive(Clone, PartialEq, Eq)]
pub struct OperatorRecord {
    /// Its id.
    pub id: i64,
    /// Normalised email.
    pub email: String,
    /// Its role's name.
    pub role: String,
    /// `invited`, `active` or `disabled`.
    pub status: String,
    /// argon2id, once set up.
    pub password_hash: Option<String>,
    /// The sealed TOTP seed, once enrolled (or offered during set-up).
    pub sealed_totp: Option<Vec<u8>>,
    /// The last TOTP step accepted.
    pub totp_last_step: i64,
    /// Comma-separated CIDR networks it may sign in from.
    pub allowed_networks: String,
    /// Consecutive failed sign-ins.
    pub failed_logins: i64,
    /// Unix ms until which sign-ins are refused.
    pub locked_until: i64,
    /// When it was made.
    pub created_at: i64,
    /// Which operator made it (`None`: `coss admin bootstrap`).
    pub created_by: Option<i64>,
}

impl std::fmt::Debug for OperatorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OperatorRecord")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A new operator: active at once (bootstrap: password and TOTP given) or invited (a set-up
/// token's hash).
#[derive(Debug, Clone)]
pub struct NewOperator<'a> {
    /// Normalised email.
    pub email: &'a str,
    /// Role name.
    pub role: &'a str,
    /// `active` or `invited`.
    pub status: &'a str,
    /// argon2id (bootstrap only).
    pub password_hash: Option<&'a str>,
    /// Sealed TOTP seed (bootstrap only).
    pub sealed_totp: Option<&'a [u8]>,
    /// SHA-256 of the set-up token (invitations).
    pub setup_hash: Option<&'a [u8]>,
    /// When the set-up token stops working.
    pub setup_expires_at: i64,
    /// Allowed networks.
    pub allowed_networks: &'a str,
    /// The operator who made it.
    pub created_by: Option<i64>,
}

/// A live operator session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorSession {
    /// The session id.
    pub id: i64,
    /// The operator.
    pub operator: OperatorRecord,
    /// Where it signed in from.
    pub client_ip: String,
}

/// One audit entry as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Position in the chain, from 1, gap-free.
    pub seq: i64,
    /// The entry's content.
    pub entry: NewAuditRecord,
    /// The previous entry's hash (64 zeros for the first).
    pub prev_hash: String,
    /// This entry's hash.
    pub hash: String,
}

/// An audit entry's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAuditRecord {
    /// Unix ms.
    pub at: i64,
    /// The operator, if one was identified.
    pub operator_id: Option<i64>,
    /// Their email (or what was presented), `-` if none.
    pub operator_email: String,
    /// The operation's name.
    pub operation: String,
    /// What it acted on (`user:1004`, `market:1`, …), or `-`.
    pub target: String,
    /// `ok`, `denied`, `failed`, `submitted`, `approved`, `rejected`, …
    pub outcome: String,
    /// Details (JSON).
    pub detail: String,
    /// The client's address.
    pub client_ip: String,
}

/// A four-eyes request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminRequest {
    /// Its id.
    pub id: i64,
    /// The operation to carry out.
    pub operation: String,
    /// Its parameters (JSON).
    pub params: String,
    /// What it does, in words.
    pub summary: String,
    /// Who submitted it.
    pub submitted_by: i64,
    /// When.
    pub submitted_at: i64,
    /// Where it stands.
    pub status: RequestStatus,
    /// Who decided it.
    pub decided_by: Option<i64>,
    /// When.
    pub decided_at: Option<i64>,
    /// What carrying it out gave (JSON), or why it failed.
    pub result: Option<String>,
}

/// A user as a search lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// The account.
    pub id: UserId,
    /// Its email.
    pub email: String,
    /// When it was verified.
    pub email_verified_at: Option<i64>,
    /// When it was created.
    pub created_at: i64,
    /// When an operator locked it (0: not locked).
    pub locked_at: i64,
    /// Its verification level.
    pub verification_level: i64,
}

const OPERATOR_COLUMNS: &str = "id, email, role, status, password_hash, sealed_totp, \
     totp_last_step, allowed_networks, failed_logins, locked_until, created_at, created_by";

fn operator(row: &AnyRow, at: usize) -> Result<OperatorRecord, StoreError> {
    Ok(OperatorRecord {
        id: row.try_get(at)?,
        email: row.try_get(at + 1)?,
        role: row.try_get(at + 2)?,
        status: row.try_get(at + 3)?,
        password_hash: row.try_get(at + 4)?,
        sealed_totp: row.try_get(at + 5)?,
        totp_last_step: row.try_get(at + 6)?,
        allowed_networks: row.try_get(at + 7)?,
        failed_logins: row.try_get(at + 8)?,
        locked_until: row.try_get(at + 9)?,
        created_at: row.try_get(at + 10)?,
        created_by: row.try_get(at + 11)?,
    })
}

const REQUEST_COLUMNS: &str = "id, operation, params, summary, submitted_by, submitted_at, \
     status, decided_by, decided_at, result";

fn request(row: &AnyRow) -> Result<AdminRequest, StoreError> {
    Ok(AdminRequest {
        id: row.try_get(0)?,
        operation: row.try_get(1)?,
        params: row.try_get(2)?,
        summary: row.try_get(3)?,
        submitted_by: row.try_get(4)?,
        submitted_at: row.try_get(5)?,
        status: RequestStatus::parse(&row.try_get::<String, _>(6)?)?,
        decided_by: row.try_get(7)?,
        decided_at: row.try_get(8)?,
        result: row.try_get(9)?,
    })
}

impl Store {
    /// How many operators exist (bootstrap works only on none).
    pub async fn operator_count(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM operators")
            .fetch_one(&self.pool)
            .await?
            .try_get(0)?)
    }

    /// Creates an operator; `EmailTaken` if the email has one.
    pub async fn create_operator(
        &self,
        new: &NewOperator<'_>,
        now: i64,
    ) -> Result<OperatorRecord, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO operators (email, role, status, password_hash, sealed_totp, setup_hash, \
             setup_expires_at, allowed_networks, created_at, created_by) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {OPERATOR_COLUMNS}"
        )))
        .bind(new.email)
        .bind(new.role)
        .bind(new.status)
        .bind(new.password_hash)
        .bind(new.sealed_totp)
        .bind(new.setup_hash)
        .bind(new.setup_expires_at)
        .bind(new.allowed_networks)
        .bind(now)
        .bind(new.created_by)
        .fetch_one(&self.pool)
        .await;
        match row {
            Ok(row) => operator(&row, 0),
            Err(e) if is_unique_violation(&e) => Err(StoreError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    /// The operator with this email.
    pub async fn operator_by_email(
        &self,
        email: &str,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE email = $1"
        )))
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| operator(&r, 0)).transpose()
    }

    /// The operator with this id.
    pub async fn operator(&self, id: i64) -> Result<Option<OperatorRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| operator(&r, 0)).transpose()
    }

    /// Every operator, by id.
    pub async fn operators(&self) -> Result<Vec<OperatorRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| operator(r, 0)).collect()
    }

    /// The invited operator whose live set-up token hashes to `setup_hash`.
    pub async fn operator_by_setup(
        &self,
        setup_hash: &[u8],
        now: i64,
    ) -> Result<Option<OperatorRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {OPERATOR_COLUMNS} FROM operators WHERE setup_hash = $1 \
             AND status = 'invited' AND setup_expires_at > $2"
        )))
        .bind(setup_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| operator(&r, 0)).transpose()
    }

    /// Offers a TOTP seed to an invited operator during set-up (replacing an earlier offer).
    pub async fn offer_operator_totp(
        &self,
        id: i64,
        setup_hash: &[u8],
        sealed_totp: &[u8],
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE operators SET sealed_totp = $1 WHERE id = $2 AND setup_hash = $3 \
             AND status = 'invited'",
        )
        .bind(sealed_totp)
        .bind(id)
        .bind(setup_hash)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::TokenInvalid);
        }
        Ok(())
    }

    /// Completes an invited operator's set-up (once): the password, the TOTP step just used,
    /// status `active`, the set-up token gone.
    pub async fn activate_operator(
        &self,
        id: i64,
        setup_hash: &[u8],
        password_hash: &str,
        totp_step: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE operators SET status = 'active', password_hash = $1, totp_last_step = $2, \
             setup_hash = NULL, setup_expires_at = 0 \
             WHERE id = $3 AND setup_hash = $4 AND status = 'invited'",
        )
        .bind(password_hash)
        .bind(totp_step)
        .bind(id)
        .bind(setup_hash)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::TokenInvalid);
        }
        Ok(())
    }

    /// Records a TOTP step as used if it is later than the last one (each code works once).
    pub async fn use_operator_totp_step(&self, id: i64, step: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE operators SET totp_last_step = $1 WHERE id = $2 AND totp_last_step < $1",
        )
        .bind(step)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts a failed sign-in; the `limit`th in a row locks sign-ins until `lock_until`.
    pub async fn operator_login_failed(
        &self,
        id: i64,
        limit: i64,
        lock_until: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE operators SET failed_logins = failed_logins + 1, \
             locked_until = CASE WHEN failed_logins + 1 >= $1 THEN $2 ELSE locked_until END \
             WHERE id = $3",
        )
        .bind(limit)
        .bind(lock_until)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Opens an operator session (and clears the failure count).
    pub async fn open_operator_session(
        &self,
        operator_id: i64,
        token_hash: &[u8],
        client_ip: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("UPDATE operators SET failed_logins = 0, locked_until = 0 WHERE id = $1")
            .bind(operator_id)
            .execute(&mut *tx)
            .await?;
        let id: i64 = sqlx::query(
            "INSERT INTO operator_sessions (operator_id, token_hash, client_ip, created_at, \
             last_seen_at) VALUES ($1, $2, $3, $4, $4) RETURNING id",
        )
        .bind(operator_id)
        .bind(token_hash)
        .bind(client_ip)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        tx.commit().await?;
        Ok(id)
    }

    /// The live session whose token hashes to `token_hash`, seen again now: one not seen for
    /// `idle_ms` has ended, and so has one of an operator no longer active.
    pub async fn touch_operator_session(
        &self,
        token_hash: &[u8],
        now: i64,
        idle_ms: i64,
    ) -> Result<Option<OperatorSession>, StoreError> {
        let touched = sqlx::query(
            "UPDATE operator_sessions SET last_seen_at = $1 WHERE token_hash = $2 \
             AND ended_at IS NULL AND last_seen_at > $3",
        )
        .bind(now)
        .bind(token_hash)
        .bind(now - idle_ms)
        .execute(&self.pool)
        .await?;
        if touched.rows_affected() == 0 {
            return Ok(None);
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT s.id, s.client_ip, {} FROM operator_sessions s \
             JOIN operators o ON o.id = s.operator_id WHERE s.token_hash = $1 \
             AND o.status = 'active'",
            OPERATOR_COLUMNS
                .split(", ")
                .map(|c| format!("o.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(OperatorSession {
                id: r.try_get(0)?,
                client_ip: r.try_get(1)?,
                operator: operator(&r, 2)?,
            })
        })
        .transpose()
    }

    /// Ends a session.
    pub async fn end_operator_session(&self, id: i64, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE operator_sessions SET ended_at = $1 WHERE id = $2 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Changes an operator's role, status or networks (and ends its sessions).
    pub async fn update_operator(
        &self,
        id: i64,
        role: &str,
        status: &str,
        allowed_networks: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE operators SET role = $1, status = $2, allowed_networks = $3 WHERE id = $4",
        )
        .bind(role)
        .bind(status)
        .bind(allowed_networks)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "UPDATE operator_sessions SET ended_at = $1 WHERE operator_id = $2 AND ended_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ----- The audit chain -----

    /// The last entry's sequence number and hash (`None` for an empty log).
    pub async fn audit_head(&self) -> Result<Option<(i64, String)>, StoreError> {
        let row = sqlx::query("SELECT seq, hash FROM admin_audit ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).transpose()
    }

    /// Appends one entry at `seq`; `Conflict` if another writer took that position first.
    pub async fn insert_audit(&self, record: &AuditRecord) -> Result<(), StoreError> {
        let e = &record.entry;
        let done = sqlx::query(
            "INSERT INTO admin_audit (seq, at, operator_id, operator_email, operation, target, \
             outcome, detail, client_ip, prev_hash, hash) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(record.seq)
        .bind(e.at)
        .bind(e.operator_id)
        .bind(&e.operator_email)
        .bind(&e.operation)
        .bind(&e.target)
        .bind(&e.outcome)
        .bind(&e.detail)
        .bind(&e.client_ip)
        .bind(&record.prev_hash)
        .bind(&record.hash)
        .execute(&self.pool)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(e) if is_unique_violation(&e) => Err(StoreError::Conflict),
            Err(e) => Err(e.into()),
        }
    }

    /// Up to `limit` entries after `after_seq`, in order.
    pub async fn audit_entries(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, at, operator_id, operator_email, operation, target, outcome, detail, \
             client_ip, prev_hash, hash FROM admin_audit WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    seq: r.try_get(0)?,
                    entry: NewAuditRecord {
                        at: r.try_get(1)?,
                        operator_id: r.try_get(2)?,
                        operator_email: r.try_get(3)?,
                        operation: r.try_get(4)?,
                        target: r.try_get(5)?,
                        outcome: r.try_get(6)?,
                        detail: r.try_get(7)?,
                        client_ip: r.try_get(8)?,
                    },
                    prev_hash: r.try_get(9)?,
                    hash: r.try_get(10)?,
                })
            })
            .collect()
    }

    // ----- Four eyes -----

    /// Records a request waiting for a second operator.
    pub async fn submit_admin_request(
        &self,
        operation: &str,
        params: &str,
        summary: &str,
        submitted_by: i64,
        now: i64,
    ) -> Result<AdminRequest, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO admin_requests (operation, params, summary, submitted_by, submitted_at, \
             status) VALUES ($1, $2, $3, $4, $5, 'pending') RETURNING {REQUEST_COLUMNS}"
        )))
        .bind(operation)
        .bind(params)
        .bind(summary)
        .bind(submitted_by)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        request(&row)
    }

    /// One request.
    pub async fn admin_request(&self, id: i64) -> Result<Option<AdminRequest>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM admin_requests WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| request(&r)).transpose()
    }

    /// The newest requests (pending ones only, if asked), newest first.
    pub async fn admin_requests(
        &self,
        pending_only: bool,
        limit: i64,
    ) -> Result<Vec<AdminRequest>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {REQUEST_COLUMNS} FROM admin_requests \
             WHERE ($1 = 0 OR status = 'pending') ORDER BY id DESC LIMIT $2"
        )))
        .bind(i64::from(pending_only))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(request).collect()
    }

    /// Moves a request from `from` to `to` (compare-and-set): `Conflict` if it is no longer
    /// in `from`.
    pub async fn decide_admin_request(
        &self,
        id: i64,
        from: RequestStatus,
        to: RequestStatus,
        decided_by: i64,
        result: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE admin_requests SET status = $1, decided_by = $2, decided_at = $3, \
             result = $4 WHERE id = $5 AND status = $6",
        )
        .bind(to.as_str())
        .bind(decided_by)
        .bind(now)
        .bind(result)
        .bind(id)
        .bind(from.as_str())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    // ----- Signed internal calls -----

    /// Records a call's nonce until `expires_at`: false if it was seen already (a replay).
    /// Expired nonces are dropped on the way.
    pub async fn use_internal_nonce(
        &self,
        nonce: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        sqlx::query("DELETE FROM internal_nonces WHERE expires_at < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        match sqlx::query("INSERT INTO internal_nonces (nonce, expires_at) VALUES ($1, $2)")
            .bind(nonce)
            .bind(expires_at)
            .execute(&self.pool)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    // ----- Users, for operators -----

    /// Users whose email contains `text` (or whose id it is), newest first.
    pub async fn search_users(
        &self,
        text: &str,
        limit: i64,
    ) -> Result<Vec<UserSummary>, StoreError> {
        let id: i64 = text.trim().parse().unwrap_or(-1);
        let pattern = format!(
            "%{}%",
            text.trim()
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        let rows = sqlx::query(
            "SELECT u.id, u.email, u.email_verified_at, u.created_at, u.locked_at, \
             COALESCE(p.verification_level, 0) FROM users u \
             LEFT JOIN profiles p ON p.user_id = u.id \
             WHERE u.id = $1 OR u.email LIKE $2 ESCAPE '\\' ORDER BY u.id DESC LIMIT $3",
        )
        .bind(id)
        .bind(pattern)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(UserSummary {
                    id: UserId(r.try_get(0)?),
                    email: r.try_get(1)?,
                    email_verified_at: r.try_get(2)?,
                    created_at: r.try_get(3)?,
                    locked_at: r.try_get(4)?,
                    verification_level: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Removes a user's second factor on the operators' decision (a lost authenticator), in
    /// one transaction: the TOTP seed and recovery codes go, every session ends, withdrawals
    /// and transfers wait a day (the security change), and `mail` tells the owner.
    pub async fn reset_second_factor(
        &self,
        user: UserId,
        mail: &crate::Mail,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET security_changed_at = $1 WHERE id = $2")
            .bind(now)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        crate::remove_second_factor(&mut tx, user).await?;
        crate::sessions::end_sessions_of(&mut tx, user, None, now).await?;
        crate::enqueue(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Locks (with the time) or unlocks (0) a user account. Locking also ends its sessions
    /// and its apps' tokens, in the same transaction.
    pub async fn set_user_locked(
        &self,
        user: UserId,
        locked_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query("UPDATE users SET locked_at = $1 WHERE id = $2")
            .bind(locked_at)
            .bind(user.0)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        if locked_at > 0 {
            crate::end_sessions_and_app_tokens(&mut tx, user, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
