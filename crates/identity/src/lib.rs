//! COSS accounts, the one login for the exchange, wallets, merchant dashboard, POS and
//! partner apps: sign-up with email and password (argon2id), email verification, login with
//! identical answers for "no such account" and "wrong password", per-account and per-address
//! throttling with a lockout that ends by itself or with a password reset, browser sessions
//! (cookie token plus a CSRF token bound to it) and app sessions (15-minute access tokens and
//! refresh tokens that work once; a replayed one ends the session), new-device emails,
//! logout, password change and reset, TOTP second factor with recovery codes (required at
//! login once enabled, and always for sensitive actions), API keys with Binance-style
//! HMAC-SHA256 request signatures, and user and merchant profiles. Emails are queued in the
//! store's outbox in the same transaction as the action that causes them. Time is passed in
//! (Unix ms) so the rules are testable; randomness comes from the OS. Tokens are 32 random
//! bytes shown to their holder once, stored only as SHA-256 hashes; secrets the server must
//! reuse are sealed with the server key ([`Vault`]).

mod api_keys;
mod hashing;
mod profiles;
mod second_factor;
mod time;
mod vault;

pub use api_keys::{
    ApiKey, KEY_CACHE_MS, KeyAuth, Network, NewKey, Permission, SignedRequest, sign,
};
pub use coss_store::SignUp;
pub use hashing::MAX_HASHING_QUEUE;
pub use profiles::{Merchant, MerchantInput, Profile, ProfilePatch, is_loopback_host};
pub use second_factor::{Enrolment, SecondFactor, new_totp_enrolment, totp_code, totp_step};
pub use time::format_utc;
pub use vault::{Vault, VaultError, private_dir, private_file, write_private};

use coss_types::UserId;
use std::net::IpAddr;

use argon2::password_hash::PasswordHasher;
use argon2::{Algorithm, Argon2, Params, Version};
use coss_store::{
    EmailToken, Mail, NewSession, NewToken, Purpose, RefreshOutcome, SessionKind, Store,
    StoreError, TokenKind,
};
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
/// A browser session (cookie) lasts 30 days unless ended.
pub const SESSION_TTL_MS: i64 = 30 * 24 * 3_600_000;
/// An app's access token lasts 15 minutes.
pub const ACCESS_TTL_MS: i64 = 15 * 60_000;
/// An app's refresh token lasts 30 days (each refresh issues a new one).
pub const REFRESH_TTL_MS: i64 = 30 * 24 * 3_600_000;
/// Shortest accepted password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 10;
/// Longest accepted password, in bytes (bounds the hashing work an attacker can ask for).
pub const MAX_PASSWORD_BYTES: usize = 256;
/// Longest accepted email address (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;

/// Failed sign-ins (wrong password or code) an account may have in [`THROTTLE_WINDOW_MS`]
/// before it is locked for [`LOCKOUT_MS`].
pub const ACCOUNT_FAILURE_LIMIT: i64 = 5;
/// Failed sign-ins one client address may have in [`THROTTLE_WINDOW_MS`] (across accounts)
/// before it is locked for [`LOCKOUT_MS`].
pub const ADDRESS_FAILURE_LIMIT: i64 = 50;
/// The window failures are counted in.
pub const THROTTLE_WINDOW_MS: i64 = 15 * 60_000;
/// Sign-ups one client address (an IPv6 client by its /64) may ask for in
/// [`REQUEST_WINDOW_MS`] before it waits out the window.
pub const SIGNUPS_PER_ADDRESS: i64 = 10;
/// Password-reset requests one client address may make in [`REQUEST_WINDOW_MS`].
pub const RESETS_PER_ADDRESS: i64 = 10;
/// Emails that sign-ups and reset requests may send one recipient in [`REQUEST_WINDOW_MS`]
/// (counted by address whether or not it has an account, so the answer tells nothing).
pub const MAILS_PER_RECIPIENT: i64 = 5;
/// The window sign-ups, reset requests and their emails are counted in.
pub const REQUEST_WINDOW_MS: i64 = 3_600_000;
/// Withdrawals and internal transfers wait this long after the password changed (by the
/// owner or a reset) or the second factor was removed, as the large exchanges do: the owner,
/// emailed at once, has a day to take the account back before money can leave it. Adding a
/// first second factor does not lock (it needs the password and emails the owner).
pub const WITHDRAWAL_LOCK_MS: i64 = 24 * 3_600_000;
/// How long a lockout lasts (a password reset also lifts an account's lockout).
pub const LOCKOUT_MS: i64 = 15 * 60_000;

/// Why an identity action was refused. `code()` is stable; messages never contain a
/// password, token, code or secret.
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
    /// A refresh token was presented twice: the session it belonged to has been ended.
    #[error("this refresh token was already used; the session has been ended, sign in again")]
    RefreshTokenReused,
    /// Too many failures for this account or address: try again later.
    #[error("too many failed attempts; try again in {} seconds", (retry_after_ms + 999) / 1000)]
    TooManyAttempts {
        /// How long until the lock ends.
        retry_after_ms: i64,
    },
    /// The account has two-factor authentication: send a code.
    #[error("this account needs a two-factor code")]
    TwoFactorRequired,
    /// The code is wrong, malformed, or was used before.
    #[error("the two-factor code is wrong or was already used")]
    InvalidTwoFactorCode,
    /// The action needs two-factor authentication, which the account has not enabled.
    #[error("enable two-factor authentication first")]
    TwoFactorSetupRequired,
    /// Two-factor authentication is already enabled.
    #[error("two-factor authentication is already enabled")]
    TwoFactorAlreadyEnabled,
    /// There is no pending enrolment to confirm.
    #[error("start two-factor enrolment first")]
    NoPendingEnrolment,
    /// A field failed validation; `code` names the rule.
    #[error("{message}")]
    Invalid {
        /// Stable code, e.g. `invalid_country`.
        code: &'static str,
        /// What is wrong, for people.
        message: String,
    },
    /// No such API key (or not the caller's).
    #[error("no such API key")]
    ApiKeyNotFound,
    /// No such live session (or not the caller's).
    #[error("no such session")]
    SessionNotFound,
    /// The API key is unknown.
    #[error("invalid API key")]
    ApiKeyInvalid,
    /// The API key was revoked.
    #[error("this API key was revoked")]
    ApiKeyRevoked,
    /// The request's address is not on the key's allow-list.
    #[error("this API key does not accept requests from this address")]
    IpNotAllowed,
    /// The key lacks the permission the request needs.
    #[error("this API key lacks the {0} permission")]
    PermissionDenied(&'static str),
    /// The signature does not match the request.
    #[error("the request signature is not valid")]
    InvalidSignature,
    /// The timestamp is older than recvWindow.
    #[error("timestamp for this request is outside of the recvWindow")]
    TimestampOutsideWindow,
    /// The request's timestamp is more than a second ahead of the server's clock.
    #[error("timestamp is ahead of the server's time")]
    TimestampAhead,
    /// A required parameter is missing.
    #[error("mandatory parameter {0} was not sent")]
    MissingParameter(&'static str),
    /// Withdrawals and transfers wait a day after a password or second-factor change.
    #[error("withdrawals are locked for {} more minutes after a password or two-factor change", (until_ms - now_ms + 59_999) / 60_000)]
    WithdrawalsLocked {
        /// When they open again (Unix ms).
        until_ms: i64,
        /// When this was decided (Unix ms).
        now_ms: i64,
    },
    /// Too many password hashings are waiting: try again in a moment.
    #[error("the server is busy; try again in a moment")]
    Busy,
    /// An operator locked the account: no sign-in, no API key, until it is unlocked.
    #[error("this account is locked; contact support")]
    AccountLocked,
    /// The storage failed.
    #[error("storage: {0}")]
    Store(StoreError),
    /// Hashing, sealing or randomness failed (an internal error).
    #[error("a cryptographic operation failed")]
    Crypto,
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
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::TooManyAttempts { .. } => "too_many_attempts",
            Self::TwoFactorRequired => "two_factor_required",
            Self::InvalidTwoFactorCode => "invalid_two_factor_code",
            Self::TwoFactorSetupRequired => "two_factor_setup_required",
            Self::TwoFactorAlreadyEnabled => "two_factor_already_enabled",
            Self::NoPendingEnrolment => "no_pending_enrolment",
            Self::Invalid { code, .. } => code,
            Self::ApiKeyNotFound => "api_key_not_found",
            Self::SessionNotFound => "session_not_found",
            Self::ApiKeyInvalid => "invalid_api_key",
            Self::ApiKeyRevoked => "api_key_revoked",
            Self::IpNotAllowed => "ip_not_allowed",
            Self::PermissionDenied(_) => "permission_denied",
            Self::InvalidSignature => "invalid_signature",
            Self::TimestampOutsideWindow => "timestamp_outside_recv_window",
            Self::TimestampAhead => "timestamp_ahead",
            Self::MissingParameter(_) => "missing_parameter",
            Self::WithdrawalsLocked { .. } => "withdrawals_locked",
            Self::Busy => "busy",
            Self::AccountLocked => "account_locked",
            Self::Store(_) | Self::Crypto => "internal",
        }
    }

    pub(crate) fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
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

impl From<VaultError> for IdentityError {
    fn from(_: VaultError) -> Self {
        Self::Crypto
    }
}

/// A secret shown to its holder once (a session token, or a token to email); wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// The secret's text.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// Where a sign-in comes from: what the owner is told about a new device, and what the
/// per-address throttle counts.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The User-Agent header (truncated to 200 bytes).
    pub user_agent: String,
    /// The client's address, if known.
    pub ip: Option<IpAddr>,
}

impl Client {
    fn description(&self) -> String {
        let agent = if self.user_agent.is_empty() {
            "an unknown client"
        } else {
            truncate(&self.user_agent, 200)
        };
        match self.ip {
            Some(ip) => format!("{agent} at {ip}"),
            None => agent.to_owned(),
        }
    }

    fn device_hash(&self) -> Vec<u8> {
        let mut hasher = Sha256::new();
        hasher.update(truncate(&self.user_agent, 200).as_bytes());
        hasher.update([0]);
        hasher.update(
            self.ip
                .map(|ip| ip.to_string())
                .unwrap_or_default()
                .as_bytes(),
        );
        hasher.finalize().to_vec()
    }

    /// The client's address as throttles count it: an IPv6 client by its /64 (one host
    /// usually holds a whole /64, so counting single addresses would not bound it).
    fn throttle_key(&self) -> Option<String> {
        self.ip.map(|ip| match ip {
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
                let s = v6.segments();
                format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
            IpAddr::V6(v6) => format!("ip:{}", v6.to_canonical()),
            IpAddr::V4(v4) => format!("ip:{v4}"),
        })
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// A login request.
#[derive(Debug, Clone)]
pub struct Login<'a> {
    /// The account's email.
    pub email: &'a str,
    /// Its password.
    pub password: &'a str,
    /// A TOTP or recovery code, needed once two-factor authentication is enabled.
    pub second_factor: Option<SecondFactor<'a>>,
    /// A browser (cookie session) or an app (access and refresh tokens).
    pub kind: SessionKind,
    /// Who is signing in.
    pub client: Client,
}

/// An open session and the tokens that go to its client (shown once).
#[derive(Debug, Clone)]
pub struct Grant {
    /// The account.
    pub user_id: UserId,
    /// The session.
    pub session_id: i64,
    /// The cookie token (browser) or access token (app).
    pub token: Secret,
    /// When `token` stops working (Unix ms).
    pub expires_at: i64,
    /// The refresh token and its expiry (apps only).
    pub refresh: Option<(Secret, i64)>,
    /// The CSRF token browsers send back in `X-CSRF-Token` (browsers only).
    pub csrf: Option<String>,
}

/// The exchange core's account of a user: users are numbered by the accounts database, and
/// the core knows only its own accounts, so the edges map one to the other here, and only
/// here. User `n` is account `FIRST_USER_ACCOUNT + n`; `None` for an id no user can have.
#[must_use]
pub fn exchange_account(user: UserId) -> Option<coss_types::AccountId> {
    u64::try_from(user.0)
        .ok()
        .and_then(|id| id.checked_add(coss_core::FIRST_USER_ACCOUNT.0))
        .map(coss_types::AccountId)
}

/// The user of an exchange account (the inverse of [`exchange_account`]); `None` for a
/// system account.
#[must_use]
pub fn account_user(account: coss_types::AccountId) -> Option<UserId> {
    account
        .0
        .checked_sub(coss_core::FIRST_USER_ACCOUNT.0)
        .and_then(|n| i64::try_from(n).ok())
        .map(UserId)
}

/// Who a token belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Authenticated {
    /// The account.
    pub user_id: UserId,
    /// The session.
    pub session_id: i64,
    /// A browser cookie (needs CSRF protection) or an app's bearer token.
    pub kind: SessionKind,
}

/// Sign-up, verification, login, sessions, password changes, second factors, API keys and
/// profiles over a [`Store`], with secrets sealed by a [`Vault`].
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Store,
    vault: Vault,
    /// argon2id, off the async workers and bounded.
    hashing: std::sync::Arc<hashing::Hashing>,
    /// A hash of no password, verified against when the account does not exist so that the
    /// answer takes as long as for a wrong password.
    dummy_hash: String,
    /// API keys checked recently (shared by the clones of these accounts).
    key_cache: std::sync::Arc<api_keys::KeyCache>,
    /// Told when an account's credentials are all revoked (a password reset), to drop what
    /// they hold in memory (user data streams).
    revoked: std::sync::Arc<Hooks>,
}

/// Called with the account whose credentials were all revoked.
pub type RevocationHook = Box<dyn Fn(UserId) + Send + Sync>;

/// The revocation hooks.
#[derive(Default)]
struct Hooks(std::sync::Mutex<Vec<RevocationHook>>);

impl std::fmt::Debug for Hooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Hooks")
    }
}

impl Accounts {
    /// Accounts with the documented argon2id cost.
    pub fn new(store: Store, vault: Vault) -> Result<Self, IdentityError> {
        Self::with_cost(store, vault, ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES)
    }

    /// Accounts with another argon2id cost (benchmarks compare costs).
    pub fn with_cost(
        store: Store,
        vault: Vault,
        memory_kib: u32,
        passes: u32,
        lanes: u32,
    ) -> Result<Self, IdentityError> {
        let params =
            Params::new(memory_kib, passes, lanes, None).map_err(|_| IdentityError::Crypto)?;
        let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = hash(&hasher, &random_secret()?.0)?;
        Ok(Self {
            store,
            vault,
            hashing: hashing::Hashing::new(hasher),
            dummy_hash,
            key_cache: std::sync::Arc::default(),
            revoked: std::sync::Arc::default(),
        })
    }

    /// The store behind these accounts.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The server key.
    pub fn vault(&self) -> &Vault {
        &self.vault
    }

    /// A sign-up. The answer is the same whether or not the address has an account, so
    /// sign-up tells nobody who is a customer:
    /// - a new address gets an unverified account and a verification link (`verify_email`);
    /// - an address whose account nobody has verified yet gets another link, carrying this
    ///   sign-up's password: a stranger who signed up with someone else's address first
    ///   cannot keep its owner out (the owner's own link sets the owner's password);
    /// - a verified account's owner is told someone tried (`account_exists`), nothing changes.
    ///
    /// Counted per client address ([`SIGNUPS_PER_ADDRESS`]) and per recipient
    /// ([`MAILS_PER_RECIPIENT`]) before any hashing: over either, `TooManyAttempts`.
    pub async fn signup(
        &self,
        email: &str,
        password: &str,
        client: &Client,
        now: i64,
    ) -> Result<SignUp, IdentityError> {
        let email = normalise_email(email)?;
        check_password(password)?;
        let address = client.throttle_key().map(|k| format!("signup:{k}"));
        self.count_request(address.as_deref(), SIGNUPS_PER_ADDRESS, &email, now)
            .await?;
        let password_hash = self.hashing.hash(password).await?;
        let token = random_secret()?;
        let record = EmailToken {
            hash: digest(token.expose()),
            purpose: Purpose::VerifyEmail,
            expires_at: now + VERIFY_EMAIL_TTL_MS,
        };
        let verify = token_mail(&email, "verify_email", &token);
        let exists = Mail {
            recipient: email.clone(),
            template: "account_exists".to_owned(),
            payload: serde_json::json!({ "time": format_utc(now) }).to_string(),
        };
        Ok(self
            .store
            .sign_up(&email, &password_hash, now, &record, &verify, &exists)
            .await?)
    }

    /// Counts one request that emails `recipient`, against the client's address (`address`,
    /// at most `per_address` per window) and the recipient; refused while either is spent.
    async fn count_request(
        &self,
        address: Option<&str>,
        per_address: i64,
        recipient: &str,
        now: i64,
    ) -> Result<(), IdentityError> {
        let recipient = format!("mail:{recipient}");
        let mut keys = vec![recipient.as_str()];
        keys.extend(address);
        self.ensure_unlocked(&keys, now).await?;
        let window = REQUEST_WINDOW_MS;
        if let Some(address) = address {
            self.store
                .record_failure(address, now, per_address, window, window)
                .await?;
        }
        self.store
            .record_failure(&recipient, now, MAILS_PER_RECIPIENT, window, window)
            .await?;
        Ok(())
    }

    /// Uses a verification token (once) and verifies its account: it takes the password of
    /// the sign-up that sent the link, and the account's other links stop working.
    pub async fn verify_email(&self, token: &str, now: i64) -> Result<UserId, IdentityError> {
        Ok(self.store.verify_email(&token_hash(token)?, now).await?)
    }

    /// Checks email, password and (if enabled) the second factor, and opens a session.
    ///
    /// - An unknown account and a wrong password get the same error after the same hashing
    ///   work; a correct password on an unverified account gets `EmailUnverified`.
    /// - Failures count against the account (by email, existing or not) and the client's
    ///   address; past the limits both are locked for [`LOCKOUT_MS`] and answered
    ///   `TooManyAttempts` without checking the password.
    /// - A sign-in from a device the account has not used before queues a
    ///   `new_device_login` email with the session.
    pub async fn login(&self, request: &Login<'_>, now: i64) -> Result<Grant, IdentityError> {
        let email = normalise_email(request.email);
        let account_key = login_key(email.as_deref().unwrap_or(request.email));
        let address_key = request.client.throttle_key();
        let mut keys = vec![account_key.as_str()];
        keys.extend(address_key.as_deref());
        self.ensure_unlocked(&keys, now).await?;
        let user = match &email {
            Ok(email) => self.store.user_by_email(email).await?,
            Err(_) => None,
        };
        let stored = user
            .as_ref()
            .map_or(self.dummy_hash.as_str(), |u| u.password_hash.as_str());
        let matches = self.hashing.matches(request.password, stored).await?;
        let user = match user {
            Some(user) if matches => user,
            _ => {
                self.fail(&account_key, address_key.as_deref(), now).await?;
                return Err(IdentityError::InvalidCredentials);
            }
        };
        if user.email_verified_at.is_none() {
            return Err(IdentityError::EmailUnverified);
        }
        // Said only to whoever knows the password.
        if user.locked_at > 0 {
            return Err(IdentityError::AccountLocked);
        }
        if self.two_factor_enabled(user.id).await? {
            let Some(factor) = &request.second_factor else {
                return Err(IdentityError::TwoFactorRequired);
            };
            if let Err(error) = self.check_second_factor(user.id, factor, now).await {
                if matches!(error, IdentityError::InvalidTwoFactorCode) {
                    self.fail(&account_key, address_key.as_deref(), now).await?;
                }
                return Err(error);
            }
        }
        self.store.clear_throttle(&account_key).await?;
        self.open_session(user.id, &user.email, request.kind, &request.client, now)
            .await
    }

    /// `TooManyAttempts` while any of the throttle `keys` is locked.
    pub(crate) async fn ensure_unlocked(
        &self,
        keys: &[&str],
        now: i64,
    ) -> Result<(), IdentityError> {
        match self.store.locked_until(keys, now).await? {
            Some(until) => Err(IdentityError::TooManyAttempts {
                retry_after_ms: until - now,
            }),
            None => Ok(()),
        }
    }

    async fn fail(
        &self,
        account: &str,
        address: Option<&str>,
        now: i64,
    ) -> Result<(), IdentityError> {
        self.store
            .record_failure(
                account,
                now,
                ACCOUNT_FAILURE_LIMIT,
                THROTTLE_WINDOW_MS,
                LOCKOUT_MS,
            )
            .await?;
        if let Some(address) = address {
            self.store
                .record_failure(
                    address,
                    now,
                    ADDRESS_FAILURE_LIMIT,
                    THROTTLE_WINDOW_MS,
                    LOCKOUT_MS,
                )
                .await?;
        }
        Ok(())
    }

    async fn open_session(
        &self,
        user_id: UserId,
        email: &str,
        kind: SessionKind,
        client: &Client,
        now: i64,
    ) -> Result<Grant, IdentityError> {
        let (grant_tokens, tokens) = issue_tokens(kind, now)?;
        let device = client.description();
        let session = NewSession {
            user_id,
            kind,
            device: device.clone(),
            device_hash: client.device_hash(),
            tokens,
            new_device_mail: Mail {
                recipient: email.to_owned(),
                template: "new_device_login".to_owned(),
                payload: serde_json::json!({
                    "device": device,
                    "time": format_utc(now),
                })
                .to_string(),
            },
        };
        let (session_id, _) = self.store.open_session(&session, now).await?;
        let (token, expires_at, refresh) = grant_tokens;
        let csrf = (kind == SessionKind::Browser).then(|| self.csrf_token(token.expose()));
        Ok(Grant {
            user_id,
            session_id,
            token,
            expires_at,
            refresh,
            csrf,
        })
    }

    /// The account and session of a live browser-session or access token.
    pub async fn authenticate(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Authenticated, IdentityError> {
        let hash = token_hash(token).map_err(|_| IdentityError::Unauthenticated)?;
        let live = self
            .store
            .live_token(&hash, now)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        let kind = match live.kind {
            TokenKind::Session => SessionKind::Browser,
            TokenKind::Access => SessionKind::App,
            TokenKind::Refresh => return Err(IdentityError::Unauthenticated),
        };
        Ok(Authenticated {
            user_id: live.user_id,
            session_id: live.session_id,
            kind,
        })
    }

    /// The CSRF token of a browser session: a MAC of the session token under the server key,
    /// so it needs no storage and is worthless for any other session.
    pub fn csrf_token(&self, session_token: &str) -> String {
        hex::encode(self.vault.mac("csrf", &digest(session_token)))
    }

    /// Whether `presented` is the CSRF token of `session_token` (constant-time).
    pub fn check_csrf(&self, session_token: &str, presented: &str) -> bool {
        let expected = self.csrf_token(session_token);
        constant_time_eq(expected.as_bytes(), presented.as_bytes())
    }

    /// Exchanges a refresh token (once) for a new access token and refresh token. A refresh
    /// token presented a second time ends its session: `RefreshTokenReused`.
    pub async fn refresh(&self, refresh_token: &str, now: i64) -> Result<Grant, IdentityError> {
        let hash = token_hash(refresh_token)?;
        let ((token, expires_at, refresh), successors) = issue_tokens(SessionKind::App, now)?;
        match self.store.rotate_refresh(&hash, &successors, now).await? {
            RefreshOutcome::Rotated {
                session_id,
                user_id,
            } => Ok(Grant {
                user_id,
                session_id,
                token,
                expires_at,
                refresh,
                csrf: None,
            }),
            RefreshOutcome::Reused => Err(IdentityError::RefreshTokenReused),
            RefreshOutcome::Invalid => Err(IdentityError::InvalidToken),
        }
    }

    /// Ends a session.
    pub async fn logout(&self, session_id: i64, now: i64) -> Result<(), IdentityError> {
        self.store.revoke_session(session_id, now).await?;
        Ok(())
    }

    /// The account's live sessions (browsers and apps), newest first: id, kind (`browser`,
    /// `app`), the device it signed in from, and when.
    pub async fn sessions(
        &self,
        user_id: UserId,
    ) -> Result<Vec<(i64, String, String, i64)>, IdentityError> {
        Ok(self.store.sessions_of(user_id).await?)
    }

    /// Ends one of the account's sessions (signing out a lost device).
    ///
    /// # Errors
    /// [`IdentityError::SessionNotFound`] when it is not a live session of this account.
    pub async fn end_session(
        &self,
        user_id: UserId,
        session_id: i64,
        now: i64,
    ) -> Result<(), IdentityError> {
        let mine = self
            .store
            .sessions_of(user_id)
            .await?
            .iter()
            .any(|(id, ..)| *id == session_id);
        if !mine {
            return Err(IdentityError::SessionNotFound);
        }
        self.store.revoke_session(session_id, now).await?;
        Ok(())
    }

    /// Ends every session of the account but `keep` (the caller's own); returns how many.
    pub async fn end_other_sessions(
        &self,
        user_id: UserId,
        keep: i64,
        now: i64,
    ) -> Result<u64, IdentityError> {
        Ok(self
            .store
            .revoke_other_sessions(user_id, Some(keep), now)
            .await?)
    }

    /// Changes the password of a signed-in account after checking the current one; ends every
    /// other session and emails the owner (`password_changed`), in one transaction. Wrong
    /// current passwords count against the account's login throttle.
    pub async fn change_password(
        &self,
        auth: &Authenticated,
        current: &str,
        new_password: &str,
        now: i64,
    ) -> Result<(), IdentityError> {
        check_password(new_password)?;
        let user = self
            .store
            .user(auth.user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        let key = login_key(&user.email);
        self.ensure_unlocked(&[&key], now).await?;
        if !self.hashing.matches(current, &user.password_hash).await? {
            self.fail(&key, None, now).await?;
            return Err(IdentityError::InvalidCredentials);
        }
        let password_hash = self.hashing.hash(new_password).await?;
        let mail = Mail {
            recipient: user.email.clone(),
            template: "password_changed".to_owned(),
            payload: serde_json::json!({ "time": format_utc(now) }).to_string(),
        };
        self.store
            .change_password(user.id, &password_hash, auth.session_id, &mail, now)
            .await?;
        Ok(())
    }

    /// Queues a password-reset email (template `password_reset`) if the account exists:
    /// [`Self::admit_password_reset`], then [`Self::send_password_reset`].
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: &Client,
        now: i64,
    ) -> Result<(), IdentityError> {
        if self.admit_password_reset(email, client, now).await? {
            self.send_password_reset(email, now).await?;
        }
        Ok(())
    }

    /// Counts a reset request against the client's address ([`RESETS_PER_ADDRESS`]) and the
    /// recipient ([`MAILS_PER_RECIPIENT`]), whether or not the account exists, so the answer
    /// is the same: `TooManyAttempts` when either is spent, `false` for an address that is
    /// not one (nothing to send).
    pub async fn admit_password_reset(
        &self,
        email: &str,
        client: &Client,
        now: i64,
    ) -> Result<bool, IdentityError> {
        let Ok(email) = normalise_email(email) else {
            return Ok(false);
        };
        let address = client.throttle_key().map(|k| format!("reset:{k}"));
        self.count_request(address.as_deref(), RESETS_PER_ADDRESS, &email, now)
            .await?;
        Ok(true)
    }

    /// Sends the reset link if the account exists. The HTTP edge runs this after answering,
    /// so that how long the answer takes does not tell whether the account exists.
    pub async fn send_password_reset(&self, email: &str, now: i64) -> Result<(), IdentityError> {
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

    /// Sets a new password with a reset token (once). Whoever asked may be the owner taking
    /// the account back, so every credential goes, in one transaction: sessions, the second
    /// factor and its recovery codes, API keys, other emailed links, apps' tokens; user data
    /// streams close; withdrawals wait [`WITHDRAWAL_LOCK_MS`]; the owner is emailed
    /// (`password_changed`). The login lockout is lifted.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        now: i64,
    ) -> Result<UserId, IdentityError> {
        check_password(new_password)?;
        let hash_of_token = token_hash(token)?;
        // Refuse bad tokens before the (costly) password hashing.
        self.store
            .peek_token(&hash_of_token, Purpose::ResetPassword, now)
            .await?;
        let password_hash = self.hashing.hash(new_password).await?;
        let mail = |email: &str| Mail {
            recipient: email.to_owned(),
            template: "password_changed".to_owned(),
            payload: serde_json::json!({ "time": format_utc(now) }).to_string(),
        };
        let user = self
            .store
            .complete_password_reset(&hash_of_token, &password_hash, login_key, mail, now)
            .await?;
        self.revoked_in_memory(user);
        Ok(user)
    }

    /// Locks (or unlocks) a user account in the database: a lock ends its sessions and apps'
    /// tokens, refuses its sign-ins and API keys, and drops what this process holds of it
    /// (cached keys, user data streams). The exchange core's own lock (no orders, no
    /// withdrawals) is the caller's command.
    pub async fn set_locked(
        &self,
        user: UserId,
        locked: bool,
        now: i64,
    ) -> Result<(), IdentityError> {
        self.store
            .set_user_locked(user, if locked { now.max(1) } else { 0 }, now)
            .await
            .map_err(|e| match e {
                StoreError::NotFound => IdentityError::Unauthenticated,
                other => other.into(),
            })?;
        if locked {
            self.revoked_in_memory(user);
        }
        Ok(())
    }

    /// Removes the account's second factor on the operators' decision (the owner lost the
    /// authenticator and proved who they are another way): seed and recovery codes go, every
    /// session ends, withdrawals and transfers wait [`WITHDRAWAL_LOCK_MS`], and the owner is
    /// emailed at once (`two_factor_changed`), so a bribed operator cannot take the account
    /// quietly.
    pub async fn reset_second_factor(&self, user: UserId, now: i64) -> Result<(), IdentityError> {
        let email = self
            .store
            .user(user)
            .await?
            .ok_or(IdentityError::Unauthenticated)?
            .email;
        let mail = Mail {
            recipient: email,
            template: "two_factor_changed".to_owned(),
            payload: serde_json::json!({
                "change": format!("removed by COSS support at {} (sign in with your password and set it up again)", format_utc(now)),
            })
            .to_string(),
        };
        self.store.reset_second_factor(user, &mail, now).await?;
        self.revoked_in_memory(user);
        Ok(())
    }

    /// A password's argon2id PHC string, after the strength check (for other account kinds,
    /// such as the back office's operators), on the bounded hashing pool.
    pub async fn hash_password(&self, password: &str) -> Result<String, IdentityError> {
        check_password(password)?;
        self.hashing.hash(password).await
    }

    /// Whether `password` matches a PHC string (`None`: the dummy hash, so an unknown
    /// account costs the same), on the bounded hashing pool.
    pub async fn password_matches(
        &self,
        password: &str,
        stored: Option<&str>,
    ) -> Result<bool, IdentityError> {
        let known = stored.is_some();
        let matches = self
            .hashing
            .matches(password, stored.unwrap_or(self.dummy_hash.as_str()))
            .await?;
        Ok(known && matches)
    }

    /// Drops what this process holds of a revoked account's credentials: its cached API keys
    /// and (through the hooks) its user data streams.
    fn revoked_in_memory(&self, user: UserId) {
        self.key_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, (key, _)| key.user_id != user);
        let hooks = self
            .revoked
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for hook in hooks.iter() {
            hook(user);
        }
    }

    /// Calls `hook` whenever an account's credentials are all revoked (a password reset), so
    /// that what an edge holds in memory for it (a user data stream) goes too.
    pub fn on_credentials_revoked(&self, hook: impl Fn(UserId) + Send + Sync + 'static) {
        self.revoked
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Box::new(hook));
    }

    /// What money leaving an account needs (a withdrawal, an internal transfer): a current
    /// second factor ([`Self::require_second_factor`]), and no password change or
    /// second-factor removal in the last [`WITHDRAWAL_LOCK_MS`] — so a thief who changed
    /// them cannot move the money before the owner, emailed at once, takes the account back.
    pub async fn authorize_outflow(
        &self,
        user_id: UserId,
        code: Option<&str>,
        now: i64,
    ) -> Result<(), IdentityError> {
        self.require_second_factor(user_id, code, now).await?;
        self.ensure_withdrawals_allowed(user_id, now).await
    }

    /// `WithdrawalsLocked` within [`WITHDRAWAL_LOCK_MS`] of the account's last password
    /// change or second-factor removal (part of [`Self::authorize_outflow`]).
    pub async fn ensure_withdrawals_allowed(
        &self,
        user_id: UserId,
        now: i64,
    ) -> Result<(), IdentityError> {
        let user = self
            .store
            .user(user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        let until_ms = user.security_changed_at.saturating_add(WITHDRAWAL_LOCK_MS);
        if user.security_changed_at > 0 && now < until_ms {
            return Err(IdentityError::WithdrawalsLocked {
                until_ms,
                now_ms: now,
            });
        }
        Ok(())
    }

    /// Checks the account's password for a sensitive change (enrolling a second factor):
    /// wrong ones count against the login throttle, like a failed sign-in.
    pub(crate) async fn confirm_password(
        &self,
        user: &coss_store::User,
        password: &str,
        now: i64,
    ) -> Result<(), IdentityError> {
        let key = login_key(&user.email);
        self.ensure_unlocked(&[&key], now).await?;
        if !self.hashing.matches(password, &user.password_hash).await? {
            self.fail(&key, None, now).await?;
            return Err(IdentityError::InvalidCredentials);
        }
        Ok(())
    }
}

/// The client's part of new tokens for a session of `kind` (the cookie or access token, when
/// it expires, and an app's refresh token with its expiry) and what the store keeps of them.
type IssuedTokens = ((Secret, i64, Option<(Secret, i64)>), Vec<NewToken>);

/// Fresh tokens: a 30-day session token for a browser; for an app, a 15-minute access token
/// and a 30-day refresh token.
fn issue_tokens(kind: SessionKind, now: i64) -> Result<IssuedTokens, IdentityError> {
    let token = random_secret()?;
    let (token_kind, expires_at) = match kind {
        SessionKind::Browser => (TokenKind::Session, now + SESSION_TTL_MS),
        SessionKind::App => (TokenKind::Access, now + ACCESS_TTL_MS),
    };
    let mut stored = vec![NewToken {
        hash: digest(token.expose()),
        kind: token_kind,
        expires_at,
    }];
    let refresh = match kind {
        SessionKind::Browser => None,
        SessionKind::App => {
            let refresh = random_secret()?;
            stored.push(NewToken {
                hash: digest(refresh.expose()),
                kind: TokenKind::Refresh,
                expires_at: now + REFRESH_TTL_MS,
            });
            Some((refresh, now + REFRESH_TTL_MS))
        }
    };
    Ok(((token, expires_at, refresh), stored))
}

/// The throttle key of an account's sign-ins (by normalised email, so unknown accounts are
/// throttled exactly like known ones).
fn login_key(email: &str) -> String {
    format!("login:{email}")
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
        .map_err(|_| IdentityError::Crypto)
}

/// `N` bytes from the OS random source, wiped on drop.
pub fn random_bytes<const N: usize>() -> Result<Zeroizing<[u8; N]>, IdentityError> {
    let mut bytes = Zeroizing::new([0u8; N]);
    rand::rngs::OsRng
        .try_fill_bytes(bytes.as_mut())
        .map_err(|_| IdentityError::Crypto)?;
    Ok(bytes)
}

pub(crate) fn random_secret() -> Result<Secret, IdentityError> {
    Ok(Secret(Zeroizing::new(hex::encode(
        random_bytes::<32>()?.as_ref(),
    ))))
}

pub(crate) fn digest(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Equality whose time depends only on the lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod account_tests {
    use super::*;

    #[test]
    fn users_map_to_exchange_accounts_above_the_system_ones_and_back() {
        let account = exchange_account(UserId(1)).unwrap();
        assert!(account >= coss_core::FIRST_USER_ACCOUNT);
        assert_eq!(account_user(account), Some(UserId(1)));
        assert_eq!(exchange_account(UserId(-1)), None);
        assert_eq!(account_user(coss_core::FEES_HOLDERS), None);
    }
}
