//! TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps, one step of clock skew either way)
//! and recovery codes. Enrolment makes a 160-bit seed, sealed at rest, shown once as an
//! otpauth URI and a QR code; it is active only after a code confirms it. Each accepted code
//! records its time step, so a code (or an older one) never works twice. Confirming issues
//! ten recovery codes (80 bits each), shown once and stored as SHA-256 hashes; each works once
//! in place of a TOTP code at login. Enabling and disabling email the owner.

use coss_store::{Mail, StoreError};
use coss_types::UserId;
use totp_rs::{Builder, Totp};

use crate::{
    Accounts, Authenticated, IdentityError, LOCKOUT_MS, Secret, THROTTLE_WINDOW_MS,
    constant_time_eq, digest, random_bytes,
};
use zeroize::Zeroizing;

/// Seconds per TOTP step.
pub const TOTP_STEP_SECS: i64 = 30;
/// Recovery codes issued when two-factor authentication is enabled.
pub const RECOVERY_CODES: usize = 10;
/// Wrong codes for sensitive actions before the account's second factor is locked.
pub const SECOND_FACTOR_FAILURE_LIMIT: i64 = 5;
const ISSUER: &str = "COSS";
const SEAL_PURPOSE: &str = "totp";

/// A second factor presented at login.
#[derive(Debug, Clone, Copy)]
pub enum SecondFactor<'a> {
    /// A 6-digit code from the authenticator app.
    Totp(&'a str),
    /// One of the recovery codes.
    Recovery(&'a str),
}

/// A pending enrolment: what the authenticator app needs.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The seed in base32 (for manual entry).
    pub secret: Secret,
    /// `otpauth://totp/COSS:alice@example.com?secret=…&issuer=COSS`.
    pub otpauth_uri: Secret,
    /// The URI as a QR code (SVG).
    pub qr_svg: String,
}

impl Accounts {
    /// Whether the account has a confirmed second factor.
    pub async fn two_factor_enabled(&self, user_id: UserId) -> Result<bool, IdentityError> {
        Ok(self
            .store
            .totp(user_id)
            .await?
            .is_some_and(|t| t.confirmed_at.is_some()))
    }

    /// Starts (or restarts) enrolment with a fresh seed; refused if already enabled. Needs
    /// the account's password: a stolen session alone must not put the thief's
    /// authenticator on the account (wrong passwords count against the login throttle).
    /// Confirming emails the owner. Adding a first factor only makes the account safer, so
    /// it does not lock withdrawals; removing one (and a password change or reset) does.
    pub async fn begin_totp_enrolment(
        &self,
        auth: &Authenticated,
        password: &str,
        now: i64,
    ) -> Result<Enrolment, IdentityError> {
        let user = self
            .store
            .user(auth.user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        self.confirm_password(&user, password, now).await?;
        let seed = random_bytes::<20>()?;
        let sealed = self.vault.seal(seed.as_ref(), &purpose(user.id))?;
        match self.store.put_pending_totp(user.id, &sealed, now).await {
            Err(StoreError::Conflict) => return Err(IdentityError::TwoFactorAlreadyEnabled),
            other => other?,
        }
        let totp = totp(seed.as_ref(), &user.email)?;
        let uri = Zeroizing::new(totp.to_url().map_err(|_| IdentityError::Crypto)?);
        let qr_svg = qrcode::QrCode::new(uri.as_bytes())
            .map_err(|_| IdentityError::Crypto)?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        Ok(Enrolment {
            secret: Secret(Zeroizing::new(totp.secret().to_base32())),
            otpauth_uri: Secret(Zeroizing::new(uri.to_string())),
            qr_svg,
        })
    }

    /// Confirms the pending enrolment with a current code: two-factor authentication is on
    /// from now, and the recovery codes (shown once) are returned.
    pub async fn confirm_totp(
        &self,
        auth: &Authenticated,
        code: &str,
        now: i64,
    ) -> Result<Vec<Secret>, IdentityError> {
        let user = self
            .store
            .user(auth.user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        let record = self.store.totp(user.id).await?;
        let Some(record) = record.filter(|r| r.confirmed_at.is_none()) else {
            return Err(if self.two_factor_enabled(user.id).await? {
                IdentityError::TwoFactorAlreadyEnabled
            } else {
                IdentityError::NoPendingEnrolment
            });
        };
        self.check_lock(user.id, now).await?;
        let seed = self.vault.open(&record.sealed_secret, &purpose(user.id))?;
        let Some(step) = matching_step(&seed, code, now)? else {
            self.second_factor_failed(user.id, now).await?;
            return Err(IdentityError::InvalidTwoFactorCode);
        };
        let mut codes = Vec::with_capacity(RECOVERY_CODES);
        for _ in 0..RECOVERY_CODES {
            codes.push(recovery_code()?);
        }
        let hashes: Vec<Vec<u8>> = codes
            .iter()
            .map(|c| digest(&normalise_recovery(c.expose())))
            .collect();
        let mail = changed_mail(&user.email, "enabled");
        if !self
            .store
            .confirm_totp(user.id, step, &hashes, &mail, now)
            .await?
        {
            return Err(IdentityError::InvalidTwoFactorCode);
        }
        Ok(codes)
    }

    /// Turns two-factor authentication off; needs a current code (or a recovery code).
    pub async fn disable_totp(
        &self,
        auth: &Authenticated,
        factor: &SecondFactor<'_>,
        now: i64,
    ) -> Result<(), IdentityError> {
        let user = self
            .store
            .user(auth.user_id)
            .await?
            .ok_or(IdentityError::Unauthenticated)?;
        if !self.two_factor_enabled(user.id).await? {
            return Err(IdentityError::TwoFactorSetupRequired);
        }
        self.throttled_check(user.id, factor, now).await?;
        self.store
            .remove_totp(user.id, &changed_mail(&user.email, "disabled"), now)
            .await?;
        Ok(())
    }

    /// Checks the second factor for a sensitive action (API key creation, withdrawal
    /// addresses, withdrawals): two-factor authentication must be enabled and a current TOTP
    /// code given; wrong codes lock the factor after [`SECOND_FACTOR_FAILURE_LIMIT`].
    pub async fn require_second_factor(
        &self,
        user_id: UserId,
        code: Option<&str>,
        now: i64,
    ) -> Result<(), IdentityError> {
        if !self.two_factor_enabled(user_id).await? {
            return Err(IdentityError::TwoFactorSetupRequired);
        }
        let code = code.ok_or(IdentityError::TwoFactorRequired)?;
        self.throttled_check(user_id, &SecondFactor::Totp(code), now)
            .await
    }

    /// [`Self::check_second_factor`] behind the account's second-factor lock: refused while
    /// locked, and a wrong code counts towards the lock.
    async fn throttled_check(
        &self,
        user_id: UserId,
        factor: &SecondFactor<'_>,
        now: i64,
    ) -> Result<(), IdentityError> {
        self.check_lock(user_id, now).await?;
        let checked = self.check_second_factor(user_id, factor, now).await;
        if matches!(checked, Err(IdentityError::InvalidTwoFactorCode)) {
            self.second_factor_failed(user_id, now).await?;
        }
        checked
    }

    /// How many unused recovery codes the account has.
    pub async fn recovery_codes_left(&self, user_id: UserId) -> Result<i64, IdentityError> {
        Ok(self.store.recovery_codes_left(user_id).await?)
    }

    /// Checks a code against the active factor and uses it (a TOTP step or a recovery code
    /// works once).
    pub(crate) async fn check_second_factor(
        &self,
        user_id: UserId,
        factor: &SecondFactor<'_>,
        now: i64,
    ) -> Result<(), IdentityError> {
        match factor {
            SecondFactor::Totp(code) => {
                let record = self
                    .store
                    .totp(user_id)
                    .await?
                    .filter(|r| r.confirmed_at.is_some())
                    .ok_or(IdentityError::TwoFactorSetupRequired)?;
                let seed = self.vault.open(&record.sealed_secret, &purpose(user_id))?;
                match matching_step(&seed, code, now)? {
                    Some(step) if self.store.use_totp_step(user_id, step).await? => Ok(()),
                    _ => Err(IdentityError::InvalidTwoFactorCode),
                }
            }
            SecondFactor::Recovery(code) => {
                let hash = digest(&normalise_recovery(code));
                if self.store.use_recovery_code(user_id, &hash, now).await? {
                    Ok(())
                } else {
                    Err(IdentityError::InvalidTwoFactorCode)
                }
            }
        }
    }

    async fn check_lock(&self, user_id: UserId, now: i64) -> Result<(), IdentityError> {
        self.ensure_unlocked(&[&lock_key(user_id)], now).await
    }

    async fn second_factor_failed(&self, user_id: UserId, now: i64) -> Result<(), IdentityError> {
        self.store
            .record_failure(
                &lock_key(user_id),
                now,
                SECOND_FACTOR_FAILURE_LIMIT,
                THROTTLE_WINDOW_MS,
                LOCKOUT_MS,
            )
            .await?;
        Ok(())
    }
}

fn lock_key(user_id: UserId) -> String {
    format!("2fa:{user_id}")
}

fn purpose(user_id: UserId) -> Vec<u8> {
    format!("{SEAL_PURPOSE}:{user_id}").into_bytes()
}

fn totp(seed: &[u8], account: &str) -> Result<Totp, IdentityError> {
    Builder::new()
        .with_secret(seed.to_vec())
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|_| IdentityError::Crypto)
}

/// The step (−1, 0 or +1 around `now`) whose code equals `code`, compared in constant time.
fn matching_step(seed: &[u8], code: &str, now: i64) -> Result<Option<i64>, IdentityError> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let totp = totp(seed, "x")?;
    let current = now.div_euclid(1000).div_euclid(TOTP_STEP_SECS);
    let mut found = None;
    for step in [current - 1, current, current + 1] {
        let time = u64::try_from(step * TOTP_STEP_SECS).unwrap_or_default();
        let expected = totp.generate(time).to_string();
        if constant_time_eq(expected.as_bytes(), code.as_bytes()) {
            found = Some(step);
        }
    }
    Ok(found)
}

/// A fresh authenticator enrolment for another kind of account (the back office's
/// operators): the 20-byte seed (for the caller to seal) and what the person scans, labelled
/// `account` under the issuer `issuer`.
pub fn new_totp_enrolment(
    account: &str,
    issuer: &str,
) -> Result<(Zeroizing<[u8; 20]>, Enrolment), IdentityError> {
    let seed = random_bytes::<20>()?;
    let totp = Builder::new()
        .with_secret(seed.to_vec())
        .with_account_name(account.replace(':', "_"))
        .with_issuer(Some(issuer.replace(':', "_")))
        .build()
        .map_err(|_| IdentityError::Crypto)?;
    let uri = Zeroizing::new(totp.to_url().map_err(|_| IdentityError::Crypto)?);
    let qr_svg = qrcode::QrCode::new(uri.as_bytes())
        .map_err(|_| IdentityError::Crypto)?
        .render::<qrcode::render::svg::Color<'_>>()
        .min_dimensions(200, 200)
        .build();
    Ok((
        seed,
        Enrolment {
            secret: Secret(Zeroizing::new(totp.secret().to_base32())),
            otpauth_uri: Secret(Zeroizing::new(uri.to_string())),
            qr_svg,
        },
    ))
}

/// The time step (−1, 0 or +1 around `now`) whose code from `seed` is `code`, compared in
/// constant time: the caller records it so that each code works once.
pub fn totp_step(seed: &[u8], code: &str, now: i64) -> Result<Option<i64>, IdentityError> {
    matching_step(seed, code, now)
}

/// The current code for a seed (tests and tools that play the authenticator app).
pub fn totp_code(base32_secret: &str, now: i64) -> Option<String> {
    let seed = totp_rs::Secret::try_from_base32(base32_secret).ok()?;
    let totp = totp(seed.as_bytes(), "x").ok()?;
    Some(totp.generate(u64::try_from(now / 1000).ok()?).to_string())
}

const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// 16 characters from a 32-letter alphabet (80 bits), shown as `xxxx-xxxx-xxxx-xxxx`.
fn recovery_code() -> Result<Secret, IdentityError> {
    let bytes = random_bytes::<16>()?;
    let chars: Vec<u8> = bytes
        .iter()
        .map(|b| RECOVERY_ALPHABET[usize::from(b & 31)])
        .collect();
    let groups: Vec<&str> = chars
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    Ok(Secret(Zeroizing::new(groups.join("-"))))
}

/// Recovery codes match ignoring case, spaces and dashes.
fn normalise_recovery(code: &str) -> String {
    code.chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

fn changed_mail(email: &str, change: &str) -> Mail {
    Mail {
        recipient: email.to_owned(),
        template: "two_factor_changed".to_owned(),
        payload: serde_json::json!({ "change": change }).to_string(),
    }
}
