//! COSS accounts, the one login for the exchange, wallets, merchant dashboard, POS and
//! partner apps: sign-up with email and password (argon2id), email verification, login with
//! identical answers for "no such account" and "wrong password", opaque session tokens,
//! logout, and password reset by email (which ends every session). Emails are queued in the
//! store's outbox in the same transaction as the action that causes them. Time is passed in
//! (Unix ms) so the rules are testable; randomness comes from the OS. Tokens are 32 random
//! bytes shown to their holder once, stored only as SHA-256 hashes.

use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use coss_store::{EmailToken, Mail, Purpose, Store, StoreError};
use rand::TryRngCore;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// argon2id cost: 19 MiB of memory, 2 passes, 1 lane (OWASP's recommended minimum for
/// argon2id). Stored hashes carry their own parameters, so raising these later still
/// verifies old hashes.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
/// argon2id passes.
pub const ARGON2_PASSES: u32 = 2;
/// argon2id lanes.
pub const ARGON2_LANES: u32 = 1;

/// A verification link works for 24 hours.
pub const VERIFY_EMAIL_TTL_MS: i64 = 24 * 3_600_000;
/// A password-reset link works for 1 hour.
pub const RESET_PASSWORD_TTL_MS: i64 = 3_600_000;
/// A session lasts 30 days unless ended.
pub const SESSION_TTL_MS: i64 = 30 * 24 * 3_600_000;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest accepted password, in bytes (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// Longest accepted email address (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Why an identity action was refused. `code()` is stable; messages never contain a
/// password or token.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Not an email address this platform accepts.
    #[error("not a valid email address")]
    InvalidEmail,
    /// Too short or too long.
    #[error(
        "the password must have at least {MIN_PASSWORD_CHARS} characters and at most {MAX_PASSWORD_BYTES} bytes"
    )]
    WeakPassword,
    /// An account with this email already exists.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// Unknown account or wrong password: the same answer for both.
    #[error("wrong email or password")]
    InvalidCredentials,
    /// The email address has not been verified yet.
    #[error("verify your email address first")]
    EmailUnverified,
    /// The token is malformed, unknown, used, expired or for something else.
    #[error("the link or token is invalid or expired")]
    InvalidToken,
    /// The session is unknown, ended or expired.
    #[error("not signed in")]
    Unauthenticated,
    /// The storage failed.
    #[error("storage: {0}")]
    Store(StoreError),
    /// Hashing failed (an internal error).
    #[error("password hashing failed")]
    Hashing,
}

impl IdentityError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidEmail => "invalid_email",
            Self::WeakPassword => "weak_password",
            Self::EmailTaken => "email_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::EmailUnverified => "email_unverified",
            Self::InvalidToken => "invalid_token",
            Self::Unauthenticated => "unauthenticated",
            Self::Store(_) => "internal",
            Self::Hashing => "internal",
        }
    }
}

impl From<StoreError> for IdentityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::EmailTaken => Self::EmailTaken,
            StoreError::TokenInvalid => Self::InvalidToken,
            other => Self::Store(other),
        }
    }
}

/// A secret shown to its holder once (a session token, or a token to email); wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// The secret's text (64 hex digits).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// A new session: the token goes to the client (cookie or bearer), only its hash is stored.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account.
    pub user_id: i64,
    /// The session token.
    pub token: Secret,
    /// When it stops working (Unix ms).
    pub expires_at: i64,
}

/// Sign-up, verification, login, sessions and password reset over a [`Store`].
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Store,
    hasher: Argon2<'static>,
    /// A hash of no password, verified against when the account does not exist so that the
    /// answer takes as long as for a wrong password.
    dummy_hash: String,
}

impl Accounts {
    /// Accounts with the documented argon2id cost.
    pub fn new(store: Store) -> Result<Self, IdentityError> {
        Self::with_cost(store, ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES)
    }

    /// Accounts with another argon2id cost (benchmarks compare costs).
    pub fn with_cost(
        store: Store,
        memory_kib: u32,
        passes: u32,
        lanes: u32,
    ) -> Result<Self, IdentityError> {
        let params =
            Params::new(memory_kib, passes, lanes, None).map_err(|_| IdentityError::Hashing)?;
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = hash(&hasher, &random_secret()?.0)?;
        Ok(Self {
            store,
            hasher,
            dummy_hash,
        })
    }

    /// The store behind these accounts.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Creates an unverified account and queues the verification email (template
    /// `verify_email`, payload `{"token": …}`), both in one transaction.
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<i64, IdentityError> {
        let email = normalise_email(email)?;
        check_password(password)?;
        let password_hash = hash(&self.hasher, password)?;
        let token = random_secret()?;
        let record = EmailToken {
            hash: digest(token.expose()),
            purpose: Purpose::VerifyEmail,
            expires_at: now + VERIFY_EMAIL_TTL_MS,
        };
        let mail = token_mail(&email, "verify_email", &token);
        let user = self
            .store
            .create_user(&email, &password_hash, now, &record, &mail)
            .await?;
        Ok(user.id)
    }

    /// Uses a verification token (once) and marks its account's email verified.
    pub async fn verify_email(&self, token: &str, now: i64) -> Result<i64, IdentityError> {
        let user_id = self
            .store
            .use_token(&token_hash(token)?, Purpose::VerifyEmail, now)
            .await?;
        self.store.mark_email_verified(user_id, now).await?;
        Ok(user_id)
    }

    /// Checks email and password and opens a session. An unknown account and a wrong password
    /// get the same error after the same hashing work; a correct password on an unverified
    /// account gets `EmailUnverified`.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<Session, IdentityError> {
        let user = match normalise_email(email) {
            Ok(email) => self.store.user_by_email(&email).await?,
            Err(_) => None,
        };
        let stored = user
            .as_ref()
            .map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let matches = self
            .hasher
            .verify_password(password.as_bytes(), stored)
            .is_ok();
        let user = match user {
            Some(user) if matches => user,
            _ => return Err(IdentityError::InvalidCredentials),
        };
        if user.email_verified_at.is_none() {
            return Err(IdentityError::EmailUnverified);
        }
        let token = random_secret()?;
        let expires_at = now + SESSION_TTL_MS;
        self.store
            .create_session(&digest(token.expose()), user.id, now, expires_at)
            .await?;
        Ok(Session {
            user_id: user.id,
            token,
            expires_at,
        })
    }

    /// The account of a live session.
    pub async fn authenticate(&self, token: &str, now: i64) -> Result<i64, IdentityError> {
        let hash = token_hash(token).map_err(|_| IdentityError::Unauthenticated)?;
        self.store
            .session_user(&hash, now)
            .await?
            .ok_or(IdentityError::Unauthenticated)
    }

    /// Ends a session (ending an unknown or ended one is not an error).
    pub async fn logout(&self, token: &str, now: i64) -> Result<(), IdentityError> {
        if let Ok(hash) = token_hash(token) {
            self.store.revoke_session(&hash, now).await?;
        }
        Ok(())
    }

    /// Queues a password-reset email (template `password_reset`) if the account exists.
    /// The answer is the same either way, so it reveals nothing about who has an account.
    pub async fn request_password_reset(&self, email: &str, now: i64) -> Result<(), IdentityError> {
        let Ok(email) = normalise_email(email) else {
            return Ok(());
        };
        let Some(user) = self.store.user_by_email(&email).await? else {
            return Ok(());
        };
        let token = random_secret()?;
        let record = EmailToken {
            hash: digest(token.expose()),
            purpose: Purpose::ResetPassword,
            expires_at: now + RESET_PASSWORD_TTL_MS,
        };
        let mail = token_mail(&user.email, "password_reset", &token);
        self.store.issue_token(user.id, &record, &mail, now).await?;
        Ok(())
    }

    /// Sets a new password with a reset token (once) and ends every session of the account.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        now: i64,
    ) -> Result<i64, IdentityError> {
        check_password(new_password)?;
        // The token is used before the (costly) hashing, so invalid tokens cost no hashing.
        let user_id = self
            .store
            .use_token(&token_hash(token)?, Purpose::ResetPassword, now)
            .await?;
        let password_hash = hash(&self.hasher, new_password)?;
        self.store
            .set_password(user_id, &password_hash, now)
            .await?;
        self.store.revoke_other_sessions(user_id, None, now).await?;
        // Whoever holds the reset link also controls the mailbox: it proves the address.
        self.store.mark_email_verified(user_id, now).await?;
        Ok(user_id)
    }
}

/// Trims and lower-cases an address and checks its shape: one `@`, a non-empty local part,
/// a dotted domain, no whitespace or control characters, at most 254 bytes.
pub fn normalise_email(email: &str) -> Result<String, IdentityError> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.split_once('@').ok_or(IdentityError::InvalidEmail)?;
    let valid = email.len() <= MAX_EMAIL_BYTES
        && !local.is_empty()
        && local.len() <= 64
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains("..")
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(IdentityError::InvalidEmail)
    }
}

fn check_password(password: &str) -> Result<(), IdentityError> {
    if password.chars().count() < MIN_PASSWORD_CHARS || password.len() > MAX_PASSWORD_BYTES {
        return Err(IdentityError::WeakPassword);
    }
    Ok(())
}

fn hash(hasher: &Argon2<'static>, password: &str) -> Result<String, IdentityError> {
    hasher
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|_| IdentityError::Hashing)
}

fn random_secret() -> Result<Secret, IdentityError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(bytes.as_mut())
        .map_err(|_| IdentityError::Hashing)?;
    Ok(Secret(Zeroizing::new(hex::encode(bytes.as_ref()))))
}

fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The stored hash of a token a client presents; malformed tokens are refused before any
/// lookup.
fn token_hash(token: &str) -> Result<Vec<u8>, IdentityError> {
    let well_formed = token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(IdentityError::InvalidToken);
    }
    Ok(digest(&token.to_ascii_lowercase()))
}

fn token_mail(recipient: &str, template: &str, token: &Secret) -> Mail {
    Mail {
        recipient: recipient.to_owned(),
        template: template.to_owned(),
        payload: serde_json::json!({ "token": token.expose() }).to_string(),
    }
}
