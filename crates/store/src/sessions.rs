//! Sessions and their tokens. A session is one sign-in on one device; it holds tokens, stored
//! as SHA-256 hashes: a browser session one cookie token, an app session short-lived access
//! tokens and refresh tokens that each work once. Opening a session also records the device
//! and, when the device is new to an account that had signed in before, queues the
//! new-device email in the same transaction.

use coss_types::UserId;
use sqlx::Row;

use crate::{Mail, Store, StoreError, enqueue};

/// Where a session lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// A web browser, holding a cookie.
    Browser,
    /// An app holding bearer access tokens and a refresh token.
    App,
}

impl SessionKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Browser => "browser",
            Self::App => "app",
        }
    }
}

/// What a token does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// A browser session's cookie.
    Session,
    /// A short-lived bearer token.
    Access,
    /// Exchanged once for a new access and refresh token.
    Refresh,
}

impl TokenKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Session => "session",
            Self::Access => "access",
            Self::Refresh => "refresh",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "session" => Ok(Self::Session),
            "access" => Ok(Self::Access),
            "refresh" => Ok(Self::Refresh),
            _ => Err(StoreError::NotFound),
        }
    }
}

/// A token to store (by hash).
#[derive(Debug, Clone)]
pub struct NewToken {
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
    /// What it does.
    pub kind: TokenKind,
    /// When it stops working (Unix ms).
    pub expires_at: i64,
}

/// A sign-in to record.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The account.
    pub user_id: UserId,
    /// Browser or app.
    pub kind: SessionKind,
    /// A description of the device for the account owner (user agent and address).
    pub device: String,
    /// A hash identifying the device.
    pub device_hash: Vec<u8>,
    /// The session's first tokens.
    pub tokens: Vec<NewToken>,
    /// Queued if the device is new and the account had signed in from another one before.
    pub new_device_mail: Mail,
}

/// A live token: its session and account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveToken {
    /// The session.
    pub session_id: i64,
    /// The account.
    pub user_id: UserId,
    /// What the token is.
    pub kind: TokenKind,
}

/// What came of presenting a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// It was live: it is now used and the new tokens are stored.
    Rotated {
        /// The session.
        session_id: i64,
        /// The account.
        user_id: UserId,
    },
    /// It had been used before: someone replayed it, so its whole session has ended.
    Reused,
    /// Unknown, expired, or its session has ended.
    Invalid,
}

impl Store {
    /// Records a sign-in with its first tokens; returns the session id and whether the
    /// new-device email was queued.
    pub async fn open_session(
        &self,
        session: &NewSession,
        now: i64,
    ) -> Result<(i64, bool), StoreError> {
        let mut tx = self.pool.begin().await?;
        let known: i64 = sqlx::query("SELECT COUNT(*) FROM known_devices WHERE user_id = $1")
            .bind(session.user_id.0)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        let added = sqlx::query(
            "INSERT INTO known_devices (user_id, device_hash, first_seen_at) VALUES ($1, $2, $3) \
             ON CONFLICT (user_id, device_hash) DO NOTHING",
        )
        .bind(session.user_id.0)
        .bind(session.device_hash.as_slice())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let id: i64 = sqlx::query(
            "INSERT INTO sessions (user_id, kind, device, created_at) VALUES ($1, $2, $3, $4) \
             RETURNING id",
        )
        .bind(session.user_id.0)
        .bind(session.kind.as_str())
        .bind(session.device.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        for token in &session.tokens {
            insert_session_token(&mut tx, id, token, now).await?;
        }
        let mailed = added && known > 0;
        if mailed {
            enqueue(&mut tx, &session.new_device_mail, now).await?;
        }
        tx.commit().await?;
        Ok((id, mailed))
    }

    /// The session and account of a token that is known, unused, unexpired at `now`, and
    /// whose session has not ended.
    pub async fn live_token(&self, hash: &[u8], now: i64) -> Result<Option<LiveToken>, StoreError> {
        let row = sqlx::query(
            "SELECT s.id, s.user_id, t.kind FROM session_tokens t \
             JOIN sessions s ON s.id = t.session_id \
             WHERE t.token_hash = $1 AND t.used_at IS NULL AND t.expires_at > $2 \
             AND s.revoked_at IS NULL",
        )
        .bind(hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| {
            Ok(LiveToken {
                session_id: r.try_get(0)?,
                user_id: UserId(r.try_get(1)?),
                kind: TokenKind::parse(r.try_get::<String, _>(2)?.as_str())?,
            })
        })
        .transpose()
    }

    /// Uses a refresh token once and stores its successors, in one transaction. A refresh
    /// token presented a second time ends its session (one of the two presenters stole it).
    pub async fn rotate_refresh(
        &self,
        hash: &[u8],
        successors: &[NewToken],
        now: i64,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        let used = sqlx::query(
            "UPDATE session_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND kind = 'refresh' AND used_at IS NULL AND expires_at > $1 \
             RETURNING session_id",
        )
        .bind(now)
        .bind(hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(used) = used else {
            let seen = sqlx::query(
                "SELECT session_id FROM session_tokens \
                 WHERE token_hash = $1 AND kind = 'refresh' AND used_at IS NOT NULL",
            )
            .bind(hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(seen) = seen else {
                return Ok(RefreshOutcome::Invalid);
            };
            let session_id: i64 = seen.try_get(0)?;
            end_session(&mut tx, session_id, now).await?;
            tx.commit().await?;
            return Ok(RefreshOutcome::Reused);
        };
        let session_id: i64 = used.try_get(0)?;
        let live = sqlx::query("SELECT user_id FROM sessions WHERE id = $1 AND revoked_at IS NULL")
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(live) = live else {
            return Ok(RefreshOutcome::Invalid);
        };
        let user_id = UserId(live.try_get(0)?);
        for token in successors {
            insert_session_token(&mut tx, session_id, token, now).await?;
        }
        tx.commit().await?;
        Ok(RefreshOutcome::Rotated {
            session_id,
            user_id,
        })
    }

    /// Ends one session (and so every token it holds).
    pub async fn revoke_session(&self, session_id: i64, now: i64) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        end_session(&mut tx, session_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Ends every session of `user_id` except `keep` (e.g. after a password change); returns
    /// how many ended.
    pub async fn revoke_other_sessions(
        &self,
        user_id: UserId,
        keep: Option<i64>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await?;
        end_sessions_of(&mut conn, user_id, keep, now).await
    }

    /// Live sessions of an account: (id, kind, device, created_at), newest first.
    pub async fn sessions_of(
        &self,
        user_id: UserId,
    ) -> Result<Vec<(i64, String, String, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, kind, device, created_at FROM sessions \
             WHERE user_id = $1 AND revoked_at IS NULL ORDER BY id DESC",
        )
        .bind(user_id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?)))
            .collect()
    }
}

async fn insert_session_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session_id: i64,
    token: &NewToken,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO session_tokens (token_hash, session_id, kind, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(token.hash.as_slice())
    .bind(session_id)
    .bind(token.kind.as_str())
    .bind(now)
    .bind(token.expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn end_session(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    session_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(session_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Ends every live session of `user_id` except `keep`; returns how many ended.
pub(crate) async fn end_sessions_of(
    conn: &mut sqlx::AnyConnection,
    user_id: UserId,
    keep: Option<i64>,
    now: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE sessions SET revoked_at = $1 \
         WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3",
    )
    .bind(now)
    .bind(user_id.0)
    .bind(keep.unwrap_or(-1))
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
