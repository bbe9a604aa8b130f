//! The back office. Operators are not users: they have their own accounts (TOTP from the
//! first sign-in, 15-minute idle sessions, an allow-list of networks) and one of six roles,
//! each a fixed set of permissions. They work in a separate program (`coss admin serve`,
//! [`console`]) that holds no database credentials and no keys: it reaches the platform only
//! through the internal API that `coss up` serves on its own listener ([`internal`]), where
//! every call is signed with the program's Ed25519 service key (time, nonce, body; replays
//! refused) and names one operation of a fixed table ([`ops::OPERATIONS`]), each with its
//! declared permission. Changes to listings and fees need a second operator (four eyes: the
//! submitter can never approve, from any session), and every change of the exchange's state is
//! a journaled command of the core. Every call and every denial lands in the hash-chained
//! audit log ([`audit`]), which `coss admin audit verify` checks.

pub mod audit;
pub mod console;
pub mod internal;
pub mod ops;
pub mod roles;
pub mod signing;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::http::StatusCode;
use coss_clock::Clock;
use coss_core::RejectReason;
use coss_engine::EngineHandle;
use coss_http::ApiError;
use coss_identity::{Accounts, IdentityError, Network};
use coss_market::MarketService;
use coss_store::{NewAuditRecord, NewOperator, OperatorRecord, Store, StoreError};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

pub use roles::{Permission, Role};
pub use signing::{ServiceKey, ServiceVerifier};

/// An operator session ends after this long without a call.
pub const IDLE_MS: i64 = 15 * 60 * 1000;
/// A set-up link works this long.
pub const SETUP_TTL_MS: i64 = 24 * 60 * 60 * 1000;
/// Failed sign-ins in a row before sign-ins pause.
pub const LOGIN_FAILURE_LIMIT: i64 = 5;
/// How long they pause.
pub const LOGIN_LOCKOUT_MS: i64 = 15 * 60 * 1000;
/// Where operators may sign in from unless told otherwise: this machine.
pub const DEFAULT_NETWORKS: &str = "127.0.0.0/8,::1/128";
/// The issuer shown in operators' authenticator apps.
pub const TOTP_ISSUER: &str = "COSS back office";
const TOTP_SEAL: &str = "operator-totp";

/// Everything that can go wrong, with a stable code and status.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The call carries no service signature.
    #[error("the call is not signed by the back office's service key")]
    Unsigned,
    /// The signature does not match the call.
    #[error("the service signature does not match the call")]
    BadSignature,
    /// The call's time is outside the window.
    #[error("the call's time is more than 30 s from the platform's clock")]
    Expired,
    /// The nonce was seen before.
    #[error("the call was already made once (replayed)")]
    Replayed,
    /// No live operator session.
    #[error("sign in first (or again: sessions end after 15 idle minutes)")]
    Unauthenticated,
    /// Wrong email, password or code.
    #[error("wrong email, password or authenticator code")]
    InvalidCredentials,
    /// Too many failed sign-ins.
    #[error("too many failed sign-ins; try again later")]
    TooManyAttempts,
    /// Not from an allowed network.
    #[error("sign-ins are not allowed from this address")]
    NetworkNotAllowed,
    /// The role lacks the permission.
    #[error("your role does not allow {0}")]
    Forbidden(&'static str),
    /// Four eyes: the submitter cannot decide their own request.
    #[error("a second operator must approve what you submitted")]
    SameOperator,
    /// No such operation.
    #[error("no such operation")]
    UnknownOperation,
    /// Bad parameters.
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// For people.
        message: String,
    },
    /// No such thing.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request was already decided.
    #[error("the request is no longer pending")]
    NotPending,
    /// The exchange core refused the command.
    #[error("the exchange core refused: {0}")]
    Rejected(RejectReason),
    /// The engine is not running.
    #[error("the exchange engine is stopped")]
    EngineStopped,
    /// Accounts.
    #[error(transparent)]
    Identity(IdentityError),
    /// Storage.
    #[error(transparent)]
    Store(StoreError),
}

impl AdminError {
    /// Bad parameters with a stable code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> AdminError {
        AdminError::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsigned => "internal_unsigned",
            Self::BadSignature => "internal_bad_signature",
            Self::Expired => "internal_expired",
            Self::Replayed => "internal_replayed",
            Self::Unauthenticated => "unauthenticated",
            Self::InvalidCredentials => "invalid_credentials",
            Self::TooManyAttempts => "too_many_attempts",
            Self::NetworkNotAllowed => "network_not_allowed",
            Self::Forbidden(_) => "forbidden",
            Self::SameOperator => "four_eyes",
            Self::UnknownOperation => "unknown_operation",
            Self::Invalid { code, .. } => code,
            Self::NotFound(_) => "not_found",
            Self::NotPending => "not_pending",
            Self::Rejected(_) => "core_rejected",
            Self::EngineStopped => "engine_stopped",
            Self::Identity(e) => e.code(),
            Self::Store(_) => "internal",
        }
    }

    /// The HTTP status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unsigned
            | Self::BadSignature
            | Self::Expired
            | Self::Replayed
            | Self::Unauthenticated
            | Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::NetworkNotAllowed | Self::Forbidden(_) | Self::SameOperator => {
                StatusCode::FORBIDDEN
            }
            Self::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            Self::UnknownOperation | Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::NotPending | Self::Rejected(_) => StatusCode::CONFLICT,
            Self::EngineStopped => StatusCode::SERVICE_UNAVAILABLE,
            Self::Identity(e) => coss_http::identity_status(e),
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Whether this is a refusal of the caller (audited as `denied`) rather than a failure.
    #[must_use]
    pub fn is_denial(&self) -> bool {
        matches!(
            self,
            Self::Unsigned
                | Self::BadSignature
                | Self::Expired
                | Self::Replayed
                | Self::Unauthenticated
                | Self::InvalidCredentials
                | Self::TooManyAttempts
                | Self::NetworkNotAllowed
                | Self::Forbidden(_)
                | Self::SameOperator
        )
    }
}

impl From<StoreError> for AdminError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => AdminError::NotFound("record"),
            other => AdminError::Store(other),
        }
    }
}

impl From<IdentityError> for AdminError {
    fn from(error: IdentityError) -> Self {
        match error {
            IdentityError::Store(e) => AdminError::Store(e),
            other => AdminError::Identity(other),
        }
    }
}

impl From<coss_engine::EngineError> for AdminError {
    fn from(_: coss_engine::EngineError) -> Self {
        AdminError::EngineStopped
    }
}

impl From<AdminError> for ApiError {
    fn from(error: AdminError) -> Self {
        match error {
            AdminError::Store(e) => ApiError::internal("back office", &e),
            AdminError::Identity(e) => ApiError::from(e),
            other => ApiError::new(other.status(), other.code(), other.to_string()),
        }
    }
}

/// A signed-in operator, as a call carries it.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The account.
    pub record: OperatorRecord,
    /// Its role.
    pub role: Role,
    /// The session.
    pub session_id: i64,
}

/// The back office's side in the platform: what the internal API runs on.
#[derive(Debug, Clone)]
pub struct BackOffice {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    accounts: Accounts,
    engine: EngineHandle,
    market: MarketService,
    wallet: Option<coss_wallet::Wallet>,
    clock: Clock,
    verifier: ServiceVerifier,
    /// `admin/audit.head` in the data dir: the newest entry's position and hash.
    head_file: Option<PathBuf>,
    /// One audit writer at a time in this process (the head file follows the log).
    audit: tokio::sync::Mutex<()>,
}

impl BackOffice {
    /// The back office over the platform's services (the wallets, when there are any, for
    /// what is on chain), trusting calls signed by `verifier`'s key; `head_file` (if any)
    /// records the audit log's head.
    #[must_use]
    pub fn new(
        accounts: Accounts,
        engine: EngineHandle,
        market: MarketService,
        wallet: Option<coss_wallet::Wallet>,
        clock: Clock,
        verifier: ServiceVerifier,
        head_file: Option<PathBuf>,
    ) -> BackOffice {
        BackOffice {
            inner: Arc::new(Inner {
                store: accounts.store().clone(),
                accounts,
                engine,
                market,
                wallet,
                clock,
                verifier,
                head_file,
                audit: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now().as_i64()
    }

    pub(crate) fn store(&self) -> &Store {
        &self.inner.store
    }

    pub(crate) fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    pub(crate) fn engine(&self) -> &EngineHandle {
        &self.inner.engine
    }

    pub(crate) fn market(&self) -> &MarketService {
        &self.inner.market
    }

    pub(crate) fn wallet(&self) -> Option<&coss_wallet::Wallet> {
        self.inner.wallet.as_ref()
    }

    pub(crate) fn verifier(&self) -> &ServiceVerifier {
        &self.inner.verifier
    }

    /// Appends to the audit log (and moves the head file on).
    pub async fn audit(&self, entry: NewAuditRecord) -> Result<(), AdminError> {
        let _one = self.inner.audit.lock().await;
        let record = audit::append(&self.inner.store, entry).await?;
        if let Some(file) = &self.inner.head_file {
            write_head(file, &record);
        }
        Ok(())
    }

    /// Signs an operator in: email, password and a current TOTP code (each code once), from an
    /// allowed network. Unknown emails cost the same hashing as known ones.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        code: &str,
        client_ip: IpAddr,
    ) -> Result<(Operator, Zeroizing<String>), AdminError> {
        let now = self.now();
        let email = email.trim().to_lowercase();
        let record = self.inner.store.operator_by_email(&email).await?;
        if record.as_ref().is_some_and(|r| r.locked_until > now) {
            return Err(AdminError::TooManyAttempts);
        }
        let matches = self
            .inner
            .accounts
            .password_matches(
                password,
                record.as_ref().and_then(|r| r.password_hash.as_deref()),
            )
            .await?;
        let Some(record) = record.filter(|r| matches && r.status == "active") else {
            return Err(AdminError::InvalidCredentials);
        };
        let step = self.totp_step(&record, code, now)?;
        let used = match step {
            Some(step) => {
                self.inner
                    .store
                    .use_operator_totp_step(record.id, step)
                    .await?
            }
            None => false,
        };
        if !used {
            self.inner
                .store
                .operator_login_failed(record.id, LOGIN_FAILURE_LIMIT, now + LOGIN_LOCKOUT_MS)
                .await?;
            return Err(AdminError::InvalidCredentials);
        }
        if !allowed(&record.allowed_networks, client_ip) {
            return Err(AdminError::NetworkNotAllowed);
        }
        let role = Role::parse(&record.role)
            .ok_or_else(|| AdminError::Store(StoreError::Invalid("operator role".into())))?;
        let token = Zeroizing::new(hex::encode(coss_identity::random_bytes::<32>()?.as_ref()));
        let session_id = self
            .inner
            .store
            .open_operator_session(record.id, &token_hash(&token), &client_ip.to_string(), now)
            .await?;
        Ok((
            Operator {
                record,
                role,
                session_id,
            },
            token,
        ))
    }

    /// The operator of a live session token, seen now (from an allowed network).
    pub async fn session(&self, token: &str, client_ip: IpAddr) -> Result<Operator, AdminError> {
        let now = self.now();
        let session = self
            .inner
            .store
            .touch_operator_session(&token_hash(token), now, IDLE_MS)
            .await?
            .ok_or(AdminError::Unauthenticated)?;
        if !allowed(&session.operator.allowed_networks, client_ip) {
            return Err(AdminError::NetworkNotAllowed);
        }
        let role = Role::parse(&session.operator.role)
            .ok_or_else(|| AdminError::Store(StoreError::Invalid("operator role".into())))?;
        Ok(Operator {
            record: session.operator,
            role,
            session_id: session.id,
        })
    }

    fn totp_step(
        &self,
        record: &OperatorRecord,
        code: &str,
        now: i64,
    ) -> Result<Option<i64>, AdminError> {
        let Some(sealed) = &record.sealed_totp else {
            return Ok(None);
        };
        let seed = self
            .inner
            .accounts
            .vault()
            .open(sealed, &totp_purpose(&record.email))
            .map_err(|_| AdminError::Identity(IdentityError::Crypto))?;
        Ok(coss_identity::totp_step(&seed, code, now)?)
    }

    /// Starts an invited operator's set-up: a fresh TOTP seed to scan (offered again on each
    /// call until the set-up completes).
    pub async fn setup_begin(&self, token: &str) -> Result<coss_identity::Enrolment, AdminError> {
        let now = self.now();
        let hash = token_hash(token);
        let record = self
            .inner
            .store
            .operator_by_setup(&hash, now)
            .await?
            .ok_or(AdminError::Identity(IdentityError::InvalidToken))?;
        let (seed, enrolment) = coss_identity::new_totp_enrolment(&record.email, TOTP_ISSUER)?;
        let sealed = self
            .inner
            .accounts
            .vault()
            .seal(seed.as_ref(), &totp_purpose(&record.email))
            .map_err(|_| AdminError::Identity(IdentityError::Crypto))?;
        self.inner
            .store
            .offer_operator_totp(record.id, &hash, &sealed)
            .await?;
        Ok(enrolment)
    }

    /// Completes an invited operator's set-up with a password and a current code from the
    /// seed [`Self::setup_begin`] offered.
    pub async fn setup_complete(
        &self,
        token: &str,
        password: &str,
        code: &str,
    ) -> Result<OperatorRecord, AdminError> {
        let now = self.now();
        let hash = token_hash(token);
        let record = self
            .inner
            .store
            .operator_by_setup(&hash, now)
            .await?
            .ok_or(AdminError::Identity(IdentityError::InvalidToken))?;
        let step = self
            .totp_step(&record, code, now)?
            .ok_or(AdminError::InvalidCredentials)?;
        let password_hash = self.inner.accounts.hash_password(password).await?;
        self.inner
            .store
            .activate_operator(record.id, &hash, &password_hash, step)
            .await?;
        Ok(record)
    }
}

/// Makes the first superadmin (only while there is no operator at all): active at once,
/// with `password` and a fresh TOTP seed, whose enrolment (URI and secret) is returned to
/// show once on the server's terminal.
pub async fn bootstrap(
    accounts: &Accounts,
    head_file: Option<&std::path::Path>,
    email: &str,
    password: &str,
    now: i64,
) -> Result<coss_identity::Enrolment, AdminError> {
    let email = coss_identity::normalise_email(email)?;
    if accounts.store().operator_count().await? > 0 {
        return Err(AdminError::invalid(
            "already_bootstrapped",
            "operators exist already: a superadmin invites the others",
        ));
    }
    let hash = accounts.hash_password(password).await?;
    let (seed, enrolment) = coss_identity::new_totp_enrolment(&email, TOTP_ISSUER)?;
    let sealed = accounts
        .vault()
        .seal(seed.as_ref(), &totp_purpose(&email))
        .map_err(|_| AdminError::Identity(IdentityError::Crypto))?;
    let record = accounts
        .store()
        .create_operator(
            &NewOperator {
                email: &email,
                role: Role::Superadmin.as_str(),
                status: "active",
                password_hash: Some(&hash),
                sealed_totp: Some(&sealed),
                setup_hash: None,
                setup_expires_at: 0,
                allowed_networks: DEFAULT_NETWORKS,
                created_by: None,
            },
            now,
        )
        .await?;
    let entry = audit::append(
        accounts.store(),
        NewAuditRecord {
            at: now,
            operator_id: Some(record.id),
            operator_email: email.clone(),
            operation: "operators.bootstrap".into(),
            target: format!("operator:{}", record.id),
            outcome: "ok".into(),
            detail: serde_json::json!({ "role": "superadmin", "via": "coss admin bootstrap" })
                .to_string(),
            client_ip: "local".into(),
        },
    )
    .await?;
    if let Some(file) = head_file {
        write_head(file, &entry);
    }
    Ok(enrolment)
}

/// Records the audit log's newest position and hash (`seq hash`).
fn write_head(file: &std::path::Path, record: &coss_store::AuditRecord) {
    if let Some(parent) = file.parent() {
        let _ = coss_identity::private_dir(parent);
    }
    if let Err(error) = std::fs::write(file, format!("{} {}\n", record.seq, record.hash)) {
        tracing::warn!(%error, "cannot record the audit log's head");
    }
}

/// Reads a head file written by the platform (`None` if it is missing).
pub fn read_head(file: &std::path::Path) -> Result<Option<(i64, String)>, AdminError> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(AdminError::invalid(
                "head_file",
                format!("{}: {e}", file.display()),
            ));
        }
    };
    let mut parts = text.split_whitespace();
    match (parts.next().and_then(|s| s.parse().ok()), parts.next()) {
        (Some(seq), Some(hash)) => Ok(Some((seq, hash.to_owned()))),
        _ => Err(AdminError::invalid(
            "head_file",
            format!("{} is not `seq hash`", file.display()),
        )),
    }
}

/// SHA-256 of a token (what the database keeps).
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

fn totp_purpose(email: &str) -> Vec<u8> {
    format!("{TOTP_SEAL}:{email}").into_bytes()
}

/// Whether `ip` is in one of the comma-separated networks.
pub(crate) fn allowed(networks: &str, ip: IpAddr) -> bool {
    networks
        .split(',')
        .filter(|n| !n.trim().is_empty())
        .filter_map(|n| Network::parse(n).ok())
        .any(|n| n.contains(ip))
}

/// Checks a comma-separated list of networks and returns it normalised.
pub(crate) fn parse_networks(text: &str) -> Result<String, AdminError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let network = Network::parse(part).map_err(|_| {
            AdminError::invalid(
                "invalid_networks",
                format!("{part:?} is not an address or CIDR network"),
            )
        })?;
        out.push(network.to_string());
    }
    if out.is_empty() || out.len() > 32 {
        return Err(AdminError::invalid(
            "invalid_networks",
            "name 1 to 32 networks an operator may sign in from",
        ));
    }
    Ok(out.join(","))
}
