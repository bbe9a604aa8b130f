//! `coss bench auth`: what security costs. API-key signature checks per second (the full
//! check: key lookup in SQLite, unsealing the secret, timestamp window, HMAC-SHA256) against
//! the bare HMAC-SHA256 verification measured in the same run, and logins per second at the
//! platform's argon2id cost against one bare argon2id verification.

use coss_types::UserId;
use std::time::Instant;

use crate::{BenchError, Context, Result};
use coss_identity::{
    ARGON2_LANES, ARGON2_MEMORY_KIB, ARGON2_PASSES, Accounts, Authenticated, Client, Login,
    Permission, SignedRequest, Vault, sign, totp_code,
};
use coss_store::{SessionKind, Store};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// Runs the benchmark; the report as JSON.
pub fn run(signatures: usize, logins: usize) -> Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(measure(signatures.max(1), logins.max(1)))?;
    Ok(report)
}

async fn measure(signatures: usize, logins: usize) -> Result<serde_json::Value> {
    let dir = tempfile_dir()?;
    let store = Store::open_in(&dir).await?;
    let accounts = Accounts::new(store, Vault::random()?)?;
    let now = coss_clock::Clock::system().now().as_i64();
    verified(&accounts, "bench@example.com", now).await?;
    let login = Login {
        email: "bench@example.com",
        password: PASSWORD,
        second_factor: None,
        kind: SessionKind::App,
        client: Client::default(),
    };
    let grant = accounts.login(&login, now).await?;
    // A second account without a second factor, for the login loop.
    let plain = verified(&accounts, "login@example.com", now).await?;
    let plain_login = Login {
        email: "login@example.com",
        ..login.clone()
    };
    let who = accounts.authenticate(grant.token.expose(), now).await?;
    let later = now + 30_000;
    let (api_key, secret) = trading_key(&accounts, &who, later).await?;
    let query =
        format!("symbol=COSSETH&side=BUY&type=LIMIT&quantity=1&price=100&timestamp={later}");
    let signed = format!("{query}&signature={}", sign(&secret, &query));

    // The peer: bare HMAC-SHA256 verification of the same payload.
    let hmac_key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&hmac_key, query.as_bytes());
    let hmac_n = signatures * 20;
    let start = Instant::now();
    for _ in 0..hmac_n {
        ring::hmac::verify(&hmac_key, query.as_bytes(), tag.as_ref())
            .map_err(|_| BenchError::failed("HMAC mismatch"))?;
    }
    let hmac_rate = rate(hmac_n, start);

    let request = SignedRequest {
        api_key: &api_key,
        query: &signed,
        body: "",
        client_ip: None,
        needs: Permission::Trade,
    };
    let start = Instant::now();
    for _ in 0..signatures {
        accounts.verify_signed(&request, later).await?;
    }
    let signed_rate = rate(signatures, start);

    // The peer: one bare argon2id verification at the same cost.
    let user = accounts.store().user(plain).await?.context("no user")?;
    let start = Instant::now();
    for _ in 0..logins {
        use argon2::password_hash::PasswordVerifier;
        let params = argon2::Params::new(ARGON2_MEMORY_KIB, ARGON2_PASSES, ARGON2_LANES, None)
            .map_err(|e| BenchError::failed(format!("{e}")))?;
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .verify_password(PASSWORD.as_bytes(), user.password_hash.as_str())
            .map_err(|e| BenchError::failed(format!("{e}")))?;
    }
    let argon_rate = rate(logins, start);
    let start = Instant::now();
    for _ in 0..logins {
        accounts.login(&plain_login, later).await?;
    }
    let login_rate = rate(logins, start);
    std::fs::remove_dir_all(&dir).ok();
    Ok(json!({
        "signature_checks": signatures,
        "signed_requests_per_s": signed_rate.round(),
        "bare_hmac_sha256_verifications_per_s": hmac_rate.round(),
        "signed_request_cost_vs_bare_hmac": (hmac_rate / signed_rate * 10.0).round() / 10.0,
        "logins": logins,
        "argon2id": { "memory_kib": ARGON2_MEMORY_KIB, "passes": ARGON2_PASSES, "lanes": ARGON2_LANES },
        "logins_per_s": (login_rate * 10.0).round() / 10.0,
        "bare_argon2id_verifications_per_s": (argon_rate * 10.0).round() / 10.0,
        "login_ms": (1000.0 / login_rate * 10.0).round() / 10.0,
        "argon2id_ms": (1000.0 / argon_rate * 10.0).round() / 10.0,
    }))
}

/// Turns TOTP on for `who` (confirmed with the previous step's code) and makes a trading
/// API key with the current one: (key, secret).
pub(crate) async fn trading_key(
    accounts: &Accounts,
    who: &Authenticated,
    now: i64,
) -> Result<(String, String)> {
    key_with(accounts, who, &[Permission::Trade], now).await
}

/// An API key of `who` with `permissions` (TOTP enrolled first, as keys need): key, secret.
pub(crate) async fn key_with(
    accounts: &Accounts,
    who: &Authenticated,
    permissions: &[Permission],
    now: i64,
) -> Result<(String, String)> {
    let enrolment = accounts.begin_totp_enrolment(who, PASSWORD, now).await?;
    let seed = enrolment.secret.expose().to_owned();
    accounts
        .confirm_totp(
            who,
            &totp_code(&seed, now - 30_000).unwrap_or_default(),
            now,
        )
        .await?;
    let key = accounts
        .create_api_key(
            who,
            "bench",
            permissions,
            &[],
            totp_code(&seed, now).as_deref(),
            now,
        )
        .await?;
    Ok((key.key.api_key, key.secret.expose().to_owned()))
}

/// Signs `email` up and verifies it with the token from its queued email.
pub(crate) async fn verified(accounts: &Accounts, email: &str, now: i64) -> Result<UserId> {
    let id = accounts
        .signup(email, PASSWORD, &coss_identity::Client::default(), now)
        .await?
        .user();
    let mail = accounts.store().due_mail(i64::MAX, 100).await?;
    let sent = mail
        .iter()
        .rev()
        .find(|m| m.mail.recipient == email)
        .context("no verification email")?;
    let payload: serde_json::Value = serde_json::from_str(&sent.mail.payload)?;
    accounts
        .verify_email(payload["token"].as_str().unwrap_or_default(), now)
        .await?;
    Ok(id)
}

fn rate(n: usize, start: Instant) -> f64 {
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    #[allow(clippy::cast_precision_loss)]
    let n = n as f64;
    n / secs
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("coss-bench-auth-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
