//! The platform's database: identities, email tokens, sessions and their tokens, second
//! factors, login throttles, API keys, user and merchant profiles, the email outbox and the
//! wallets' chain records (seeds sealed, deposit addresses, recent blocks, deposits,
//! withdrawals and their signed transactions), the gateway's invoices, payments, moves and
//! webhooks, and the history; never the balances of record, which live in the exchange core. One code path serves SQLite (the embedded
//! default: one file in the data dir) and PostgreSQL (production, selected by URL) through
//! sqlx's Any driver; each backend has its own migrations with the same tables. Queries use
//! `$N` placeholders, which both backends accept, and only portable types: BIGINT (ids,
//! Unix-millisecond times), TEXT and bytes. Secrets are stored only as hashes, or, where the
//! server must use them again (TOTP seeds, API and webhook secrets), sealed by the caller with
//! the server key: this crate never sees them in the clear.

use coss_types::UserId;
use std::path::Path;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

/// Declares a status enum stored as lower-case text, with its names.
macro_rules! stored_status {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// Its name (as the API shows it and the database stores it).
            #[must_use]
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }

            /// The status a stored name stands for.
            pub fn parse(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(StoreError::Invalid(format!(
                        "{} {other:?}",
                        stringify!($name)
                    ))),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod admin;
mod dao;
mod gateway;
mod history;
mod keys;
mod profiles;
mod security;
mod sessions;
mod sso;
mod wallet;

pub use admin::{
    AdminRequest, AuditRecord, NewAuditRecord, NewOperator, OperatorRecord, OperatorSession,
    RequestStatus, UserSummary,
};
pub use dao::{DaoAssetRecord, DaoChainRecord, DaoReportRecord, DaoWeekRecord, UsernameClaim};
pub use gateway::{
    BalancePayment, Delivery, DeliveryAttempt, DeliveryStatus, InvoiceAsset, InvoiceFilter,
    InvoiceRecord, InvoiceStatus, MoveRecord, MoveStatus, NewInvoice, NewMove, PosProduct,
    WebhookEndpoint, WebhookEvent,
};
pub use history::{
    BalanceRow, CandleRow, HistoryBatch, HistoryRange, OrderRow, ReadFrom, TradeRow,
};
pub use keys::{ApiKeyRecord, NewApiKey};
pub use profiles::{MerchantRecord, ProfileRecord};
pub use security::TotpRecord;
pub use sessions::{LiveToken, NewSession, NewToken, RefreshOutcome, SessionKind, TokenKind};
pub use sso::{CodeOutcome, OidcClient, OidcCode, OidcGrant, OidcKey};
pub use wallet::{
    AllowedAddress, BlockRef, CANCEL_SIGNED, DepositRecord, DepositStatus, HotTx, NewDeposit,
    NewTransfer, NewWithdrawal, OutflowLimit, REPLACED, SeedRecord, SignedTx, Subject,
    TransferRecord, TransferStatus, WalletEvent, WithdrawalHalt, WithdrawalRecord,
    WithdrawalStatus,
};

static SQLITE: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("migrations/postgres");

/// Which database a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// Everything that can go wrong, with a stable `code()`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL names no supported database.
    #[error("unsupported database URL: use sqlite:PATH or postgres://…")]
    UnsupportedUrl,
    /// The database failed or could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// An account with this email already exists.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The token is unknown, for another purpose, already used or expired.
    #[error("the token is invalid or expired")]
    TokenInvalid,
    /// No such row.
    #[error("not found")]
    NotFound,
    /// The row is in a state that forbids the change (e.g. a second factor already active).
    #[error("conflicting state")]
    Conflict,
    /// A stored value is not one this version knows.
    #[error("invalid stored value: {0}")]
    Invalid(String),
    /// The database file's permissions could not be set.
    #[error("database file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        reason: String,
    },
    /// The request would take the user's outflow of the asset past its limit.
    #[error("over the limit (already used {used})")]
    OverLimit {
        /// What the user already moved out in the window (smallest units).
        used: coss_types::Amount,
    },
}

/// An amount stored as decimal text (smallest units): every table keeps amounts so, since
/// 128 bits fit neither database's integers.
pub(crate) fn stored_amount(text: &str) -> Result<coss_types::Amount, StoreError> {
    text.parse()
        .map(coss_types::Amount)
        .map_err(|_| StoreError::Invalid(format!("amount {text:?}")))
}

impl StoreError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedUrl => "store.unsupported_url",
            Self::Database(_) => "store.database",
            Self::Migration(_) => "store.migration",
            Self::EmailTaken => "store.email_taken",
            Self::TokenInvalid => "store.token_invalid",
            Self::NotFound => "store.not_found",
            Self::Conflict => "store.conflict",
            Self::Invalid(_) => "store.invalid_row",
            Self::OverLimit { .. } => "store.over_limit",
            Self::File { .. } => "store.file",
        }
    }
}

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The account id.
    pub id: UserId,
    /// Normalised (trimmed, lower-case) email address.
    pub email: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// When the email address was verified (Unix ms), if it was.
    pub email_verified_at: Option<i64>,
    /// When the account was created (Unix ms).
    pub created_at: i64,
    /// When the password was last set (Unix ms).
    pub password_changed_at: i64,
    /// When the password last changed or the second factor was removed (Unix ms; 0: never):
    /// withdrawals wait a day after it.
    pub security_changed_at: i64,
    /// When an operator locked the account (Unix ms; 0: not locked): no sign-in, no API key.
    pub locked_at: i64,
}

/// What a sign-up did (the caller answers the same in every case, so that nobody learns
/// who has an account).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignUp {
    /// A new account, with its verification link sent.
    Created(UserId),
    /// The address has an account nobody verified yet: this sign-up got its own link, which
    /// sets this sign-up's password when used.
    Pending(UserId),
    /// The address has a verified account: its owner was told, nothing changed.
    Existing(UserId),
}

impl SignUp {
    /// The account the address has (never told to the caller of a sign-up).
    #[must_use]
    pub fn user(self) -> UserId {
        match self {
            Self::Created(id) | Self::Pending(id) | Self::Existing(id) => id,
        }
    }
}

/// What a single-use email token is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Proves the account owns its email address.
    VerifyEmail,
    /// Lets the owner set a new password.
    ResetPassword,
}

impl Purpose {
    fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
        }
    }
}

/// A single-use token sent by email: only its hash is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailToken {
    /// SHA-256 of the token.
    pub hash: Vec<u8>,
    /// What it is for.
    pub purpose: Purpose,
    /// Unix ms after which it no longer works.
    pub expires_at: i64,
}

/// An email to deliver, committed together with the action that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    /// The address it goes to.
    pub recipient: String,
    /// Which template renders it.
    pub template: String,
    /// The template's data (JSON).
    pub payload: String,
}

/// A message waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// Outbox id: a message is delivered at most once per id.
    pub id: i64,
    /// The message.
    pub mail: Mail,
    /// Delivery attempts so far.
    pub attempts: i64,
}

/// The database.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `url`: `sqlite:PATH` or
    /// `postgres://…`.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::UnsupportedUrl);
        };
        let url = match backend {
            // Create the file if it is missing.
            Backend::Sqlite if !url.contains('?') => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let options = AnyPoolOptions::new().max_connections(match backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 8,
        });
        let pool = options.connect(&url).await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
            sqlx::query("PRAGMA foreign_keys = ON")
                .execute(&pool)
                .await?;
        }
        match backend {
            Backend::Sqlite => SQLITE.run(&pool).await?,
            Backend::Postgres => POSTGRES.run(&pool).await?,
        }
        Ok(Self { pool, backend })
    }

    /// The embedded default: `coss.db` in `data_dir`.
    /// The file (and SQLite's `-wal` and `-shm` beside it) is readable by its owner only: it
    /// holds every account's personal data and credentials' hashes.
    pub async fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        let file = data_dir.join("coss.db");
        let store = Self::open(&format!("sqlite:{}", file.display())).await?;
        for suffix in ["", "-wal", "-shm"] {
            let path = data_dir.join(format!("coss.db{suffix}"));
            if path.exists() {
                owner_only(&path)?;
            }
        }
        Ok(store)
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Creates an account with its email-verification token and the verification email, in one
    /// transaction: all three exist or none does.
    pub async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        now: i64,
        token: &EmailToken,
        mail: &Mail,
    ) -> Result<User, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (email, password_hash, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $3) RETURNING id",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .fetch_one(&mut *tx)
        .await;
        let id = match inserted {
            Ok(row) => UserId(row.try_get(0)?),
            Err(e) if is_unique_violation(&e) => return Err(StoreError::EmailTaken),
            Err(e) => return Err(e.into()),
        };
        insert_token(&mut tx, id, token, None, now).await?;
        enqueue(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(User {
            id,
            email: email.to_owned(),
            password_hash: password_hash.to_owned(),
            email_verified_at: None,
            created_at: now,
            password_changed_at: now,
            security_changed_at: 0,
            locked_at: 0,
        })
    }

    /// A sign-up, in one transaction: a new account with its verification token (carrying
    /// `password_hash`) and `verify_mail`; or, for an address whose account is not verified
    /// yet, another such token and mail (the account is not changed until one is used); or,
    /// for a verified account, only `exists_mail` to its owner.
    pub async fn sign_up(
        &self,
        email: &str,
        password_hash: &str,
        now: i64,
        token: &EmailToken,
        verify_mail: &Mail,
        exists_mail: &Mail,
    ) -> Result<SignUp, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO users (email, password_hash, created_at, password_changed_at) \
             VALUES ($1, $2, $3, $3) ON CONFLICT (email) DO NOTHING RETURNING id",
        )
        .bind(email)
        .bind(password_hash)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let outcome = match inserted {
            Some(row) => SignUp::Created(UserId(row.try_get(0)?)),
            None => {
                let row = sqlx::query("SELECT id, email_verified_at FROM users WHERE email = $1")
                    .bind(email)
                    .fetch_one(&mut *tx)
                    .await?;
                let id = UserId(row.try_get(0)?);
                let verified: Option<i64> = row.try_get(1)?;
                if verified.is_some() {
                    SignUp::Existing(id)
                } else {
                    SignUp::Pending(id)
                }
            }
        };
        match outcome {
            SignUp::Created(id) | SignUp::Pending(id) => {
                insert_token(&mut tx, id, token, Some(password_hash), now).await?;
                enqueue(&mut tx, verify_mail, now).await?;
            }
            SignUp::Existing(_) => enqueue(&mut tx, exists_mail, now).await?,
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Uses an email-verification token once and verifies its account, in one transaction:
    /// the account takes the password of the sign-up that sent this token (if it carries
    /// one and the account was not verified yet), and every other verification link of the
    /// account stops working.
    pub async fn verify_email(&self, token_hash: &[u8], now: i64) -> Result<UserId, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE email_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id, password_hash",
        )
        .bind(now)
        .bind(token_hash)
        .bind(Purpose::VerifyEmail.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Err(StoreError::TokenInvalid);
        };
        let user_id = UserId(row.try_get(0)?);
        let password_hash: Option<String> = row.try_get(1)?;
        if let Some(hash) = password_hash {
            sqlx::query(
                "UPDATE users SET password_hash = $1, password_changed_at = $2 \
                 WHERE id = $3 AND email_verified_at IS NULL",
            )
            .bind(hash)
            .bind(now)
            .bind(user_id.0)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL",
        )
        .bind(now)
        .bind(user_id.0)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE email_tokens SET used_at = $1 \
             WHERE user_id = $2 AND purpose = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id.0)
        .bind(Purpose::VerifyEmail.as_str())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(user_id)
    }

    /// The account with this (normalised) email.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, password_hash, email_verified_at, created_at, password_changed_at, \
             security_changed_at, locked_at FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user(&r)).transpose()
    }

    /// The account with this id.
    pub async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT id, email, password_hash, email_verified_at, created_at, password_changed_at, \
             security_changed_at, locked_at FROM users WHERE id = $1",
        )
        .bind(id.0)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| user(&r)).transpose()
    }

    /// Stores another token for `user_id` and the email that carries it, in one transaction.
    pub async fn issue_token(
        &self,
        user_id: UserId,
        token: &EmailToken,
        mail: &Mail,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        insert_token(&mut tx, user_id, token, None, now).await?;
        enqueue(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Uses a token once: it must exist, be for `purpose`, unused and unexpired at `now`.
    /// Returns its account. A second use, even a concurrent one, gets `TokenInvalid`.
    pub async fn use_token(
        &self,
        hash: &[u8],
        purpose: Purpose,
        now: i64,
    ) -> Result<UserId, StoreError> {
        let row = sqlx::query(
            "UPDATE email_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id",
        )
        .bind(now)
        .bind(hash)
        .bind(purpose.as_str())
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(UserId(row.try_get(0)?)),
            None => Err(StoreError::TokenInvalid),
        }
    }

    /// Whether a token would be accepted by `use_token` at `now` (without using it), and for
    /// which account; lets a caller refuse bad tokens before costly work.
    pub async fn peek_token(
        &self,
        hash: &[u8],
        purpose: Purpose,
        now: i64,
    ) -> Result<UserId, StoreError> {
        let row = sqlx::query(
            "SELECT user_id FROM email_tokens \
             WHERE token_hash = $1 AND purpose = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(hash)
        .bind(purpose.as_str())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(UserId(row.try_get(0)?)),
            None => Err(StoreError::TokenInvalid),
        }
    }

    /// Completes a password reset in one transaction: uses the reset token once, sets the new
    /// password hash, marks the email verified (the link proved the mailbox) and clears the
    /// login throttle `throttle_key`; and, since whoever asked may be the owner taking the
    /// account back from a thief, revokes every credential the account had: sessions, the
    /// second factor and its recovery codes, API keys, every other emailed link, and apps'
    /// (OpenID Connect) codes and tokens. Withdrawals wait a day from now; `mail` (a
    /// `password_changed` notice) is queued. Returns the account; the caller also drops what
    /// it holds in memory (cached API keys, user data streams).
    pub async fn complete_password_reset(
        &self,
        token_hash: &[u8],
        password_hash: &str,
        throttle_key: impl Fn(&str) -> String,
        mail: impl Fn(&str) -> Mail,
        now: i64,
    ) -> Result<UserId, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(
            "UPDATE email_tokens SET used_at = $1 \
             WHERE token_hash = $2 AND purpose = $3 AND used_at IS NULL AND expires_at > $1 \
             RETURNING user_id",
        )
        .bind(now)
        .bind(token_hash)
        .bind(Purpose::ResetPassword.as_str())
        .fetch_optional(&mut *tx)
        .await?;
        let user_id = match row {
            Some(row) => UserId(row.try_get(0)?),
            None => return Err(StoreError::TokenInvalid),
        };
        let email: String = sqlx::query(
            "UPDATE users SET password_hash = $1, password_changed_at = $2, \
             security_changed_at = $2, email_verified_at = COALESCE(email_verified_at, $2) \
             WHERE id = $3 RETURNING email",
        )
        .bind(password_hash)
        .bind(now)
        .bind(user_id.0)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        end_sessions_and_app_tokens(&mut tx, user_id, now).await?;
        for statement in [
            "UPDATE email_tokens SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
            "UPDATE api_keys SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
        ] {
            sqlx::query(statement)
                .bind(now)
                .bind(user_id.0)
                .execute(&mut *tx)
                .await?;
        }
        remove_second_factor(&mut tx, user_id).await?;
        sqlx::query("DELETE FROM throttle WHERE key = $1")
            .bind(throttle_key(&email))
            .execute(&mut *tx)
            .await?;
        enqueue(&mut tx, &mail(&email), now).await?;
        tx.commit().await?;
        Ok(user_id)
    }

    /// Marks the account's email address verified (the first time only).
    pub async fn mark_email_verified(&self, user_id: UserId, now: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE users SET email_verified_at = $1 WHERE id = $2 AND email_verified_at IS NULL",
        )
        .bind(now)
        .bind(user_id.0)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Sets a new password hash; returns `NotFound` for an unknown account.
    pub async fn set_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await?;
        write_password(&mut conn, user_id, password_hash, now).await
    }

    /// Changes a password in one transaction: sets the hash, ends every other session of the
    /// account and queues the notification.
    pub async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        keep_session: i64,
        mail: &Mail,
        now: i64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        write_password(&mut tx, user_id, password_hash, now).await?;
        sessions::end_sessions_of(&mut tx, user_id, Some(keep_session), now).await?;
        enqueue(&mut tx, mail, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Up to `limit` undelivered messages whose next attempt is due at `now`, by
    /// [`mail_priority`], then oldest first.
    pub async fn due_mail(&self, now: i64, limit: i64) -> Result<Vec<QueuedMail>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, recipient, template, payload, attempts FROM outbox \
             WHERE sent_at IS NULL AND next_attempt_at <= $1 ORDER BY priority, id LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(QueuedMail {
                    id: r.try_get(0)?,
                    mail: Mail {
                        recipient: r.try_get(1)?,
                        template: r.try_get(2)?,
                        payload: r.try_get(3)?,
                    },
                    attempts: r.try_get(4)?,
                })
            })
            .collect()
    }

    /// Records a delivery and blanks the message's data (it may hold a live single-use token,
    /// which must not outlive its delivery in the database). Returns false if it was already
    /// recorded (nothing changes).
    pub async fn mark_sent(&self, id: i64, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE outbox SET sent_at = $1, payload = '{}' WHERE id = $2 AND sent_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a failed attempt and when to try again.
    pub async fn mark_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 \
             WHERE id = $3 AND sent_at IS NULL",
        )
        .bind(error)
        .bind(next_attempt_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Sets an account's password hash; `NotFound` for an unknown account.
async fn write_password(
    conn: &mut sqlx::AnyConnection,
    user_id: UserId,
    password_hash: &str,
    now: i64,
) -> Result<(), StoreError> {
    let done = sqlx::query(
        "UPDATE users SET password_hash = $1, password_changed_at = $2, \
             security_changed_at = $2 WHERE id = $3",
    )
    .bind(password_hash)
    .bind(now)
    .bind(user_id.0)
    .execute(conn)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

fn user(row: &AnyRow) -> Result<User, StoreError> {
    Ok(User {
        id: UserId(row.try_get(0)?),
        email: row.try_get(1)?,
        password_hash: row.try_get(2)?,
        email_verified_at: row.try_get(3)?,
        created_at: row.try_get(4)?,
        password_changed_at: row.try_get(5)?,
        security_changed_at: row.try_get(6)?,
        locked_at: row.try_get(7)?,
    })
}

/// Ends every session of the account and every token its apps hold (OpenID Connect codes
/// and tokens), in the caller's transaction.
pub(crate) async fn end_sessions_and_app_tokens(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: UserId,
    now: i64,
) -> Result<(), StoreError> {
    sessions::end_sessions_of(tx, user_id, None, now).await?;
    for statement in [
        "UPDATE oidc_codes SET used_at = $1 WHERE user_id = $2 AND used_at IS NULL",
        "UPDATE oidc_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    ] {
        sqlx::query(statement)
            .bind(now)
            .bind(user_id.0)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Removes the account's TOTP seed and recovery codes, in the caller's transaction.
pub(crate) async fn remove_second_factor(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: UserId,
) -> Result<(), StoreError> {
    for statement in [
        "DELETE FROM totp WHERE user_id = $1",
        "DELETE FROM recovery_codes WHERE user_id = $1",
    ] {
        sqlx::query(statement)
            .bind(user_id.0)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(crate) async fn insert_token(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    user_id: UserId,
    token: &EmailToken,
    password_hash: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO email_tokens (token_hash, user_id, purpose, created_at, expires_at, \
         password_hash) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(token.hash.as_slice())
    .bind(user_id.0)
    .bind(token.purpose.as_str())
    .bind(now)
    .bind(token.expires_at)
    .bind(password_hash)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub(crate) async fn enqueue(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    mail: &Mail,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO outbox (recipient, template, payload, created_at, next_attempt_at, \
         priority) VALUES ($1, $2, $3, $4, $4, $5)",
    )
    .bind(mail.recipient.as_str())
    .bind(mail.template.as_str())
    .bind(mail.payload.as_str())
    .bind(now)
    .bind(mail_priority(&mail.template))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The outbox's order: security notices (a password or second factor changed, a new
/// device, a withdrawal to confirm) go before links people asked for (verification, reset,
/// "you already have an account"), which go before news (deposits, revenue shares). A flood
/// of sign-ups or resets, bounded per address and recipient anyway, so never delays the
/// alert that tells an owner their account is being taken.
#[must_use]
pub fn mail_priority(template: &str) -> i64 {
    match template {
        "password_changed"
        | "two_factor_changed"
        | "new_device_login"
        | "withdrawal_confirmation" => 0,
        "deposit_credited" | "weekly_revenue_share" => 2,
        _ => 1,
    }
}

pub(crate) fn is_unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// A throwaway PostgreSQL database (tests, trials): created empty on the server of an admin
/// URL, reachable at [`ScratchDatabase::url`], dropped by [`ScratchDatabase::drop_now`].
#[derive(Debug, Clone)]
pub struct ScratchDatabase {
    admin: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates database `name` (ASCII letters, digits, `_`) on the server of `admin`
    /// (`postgres://…/somedb`).
    pub async fn create(admin: &str, name: &str) -> Result<Self, StoreError> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(StoreError::UnsupportedUrl);
        }
        let base = admin
            .rsplit_once('/')
            .map(|(base, _)| base)
            .ok_or(StoreError::UnsupportedUrl)?;
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        Ok(Self {
            admin: admin.to_owned(),
            name: name.to_owned(),
            url: format!("{base}/{name}"),
        })
    }

    /// Its URL.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drops it, closing any connections still open to it.
    pub async fn drop_now(self) -> Result<(), StoreError> {
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&self.admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        Ok(())
    }
}

/// Narrows a file to its owner (read and write).
fn owner_only(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            StoreError::File {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
