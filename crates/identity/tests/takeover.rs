//! Issue 20, items 1–3: what a thief, a spammer or a curious stranger can do with sign-up,
//! password reset, a stolen session and second-factor changes, on a real SQLite store. Each
//! test is named after the defect it closes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_identity::{
    Accounts, Client, IdentityError, Login, MAILS_PER_RECIPIENT, Permission, RESETS_PER_ADDRESS,
    SIGNUPS_PER_ADDRESS, SignUp, SignedRequest, WITHDRAWAL_LOCK_MS, sign, totp_code,
};
use coss_store::{OidcClient, OidcCode, SessionKind};
use coss_testkit::{PASSWORD, app};
use coss_types::UserId;

const T0: i64 = 1_700_000_000_000;

struct Fixture {
    a: Accounts,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        a: coss_testkit::accounts_in(dir.path()).await,
        _dir: dir,
    }
}

fn from(ip: &str) -> Client {
    Client {
        user_agent: "test".to_owned(),
        ip: Some(ip.parse().unwrap()),
    }
}

async fn templates_to(a: &Accounts, to: &str) -> Vec<String> {
    let mail = a.store().due_mail(i64::MAX, 1000).await.unwrap();
    mail.into_iter()
        .filter(|m| m.mail.recipient == to)
        .map(|m| m.mail.template)
        .collect()
}

async fn login(a: &Accounts, email: &str, password: &str, now: i64) -> Result<(), IdentityError> {
    let request = Login {
        email,
        password,
        second_factor: None,
        kind: SessionKind::App,
        client: Client::default(),
    };
    a.login(&request, now).await.map(|_| ())
}

fn code(result: Result<impl std::fmt::Debug, IdentityError>) -> &'static str {
    result.unwrap_err().code()
}

#[tokio::test]
async fn sign_ups_and_resets_are_counted_per_address_by_ipv6_64_and_per_recipient() {
    let f = fixture().await;
    let a = &f.a;
    // One address: ten sign-ups an hour, then it waits, whatever the emails.
    for i in 0..SIGNUPS_PER_ADDRESS {
        a.signup(
            &format!("u{i}@example.com"),
            PASSWORD,
            &from("203.0.113.5"),
            T0,
        )
        .await
        .unwrap();
    }
    let refused = a
        .signup("more@example.com", PASSWORD, &from("203.0.113.5"), T0)
        .await;
    assert_eq!(code(refused), "too_many_attempts");
    // An IPv6 client is counted by its /64: other addresses of the same host share the count.
    for i in 0..SIGNUPS_PER_ADDRESS {
        let ip = format!("2001:db8:1:2::{:x}", i + 1);
        a.signup(&format!("v{i}@example.com"), PASSWORD, &from(&ip), T0)
            .await
            .unwrap();
    }
    let refused = a
        .signup("w@example.com", PASSWORD, &from("2001:db8:1:2:ffff::9"), T0)
        .await;
    assert_eq!(code(refused), "too_many_attempts");
    a.signup("w@example.com", PASSWORD, &from("2001:db8:1:3::1"), T0)
        .await
        .unwrap();
    // After the window, the address may again.
    a.signup(
        "later@example.com",
        PASSWORD,
        &from("203.0.113.5"),
        T0 + coss_identity::REQUEST_WINDOW_MS,
    )
    .await
    .unwrap();

    // Reset requests: ten an hour per address.
    for i in 0..RESETS_PER_ADDRESS {
        a.request_password_reset(&format!("r{i}@example.com"), &from("198.51.100.7"), T0)
            .await
            .unwrap();
    }
    let refused = a
        .request_password_reset("r@example.com", &from("198.51.100.7"), T0)
        .await;
    assert_eq!(code(refused), "too_many_attempts");

    // One recipient gets at most five such emails an hour from everyone together, counted
    // the same whether or not the address has an account (so the answer tells nothing).
    // (The victim's own sign-up sent one already.)
    coss_testkit::verified(a, "victim@example.com", T0).await;
    for (n, (email, sent)) in [("victim@example.com", 1), ("nobody@example.com", 0)]
        .into_iter()
        .enumerate()
    {
        for i in sent..MAILS_PER_RECIPIENT {
            let ip = format!("192.0.2.{}", 10 * n as i64 + i + 1);
            let asked = if i % 2 == 0 {
                a.request_password_reset(email, &from(&ip), T0 + 1).await
            } else {
                a.signup(email, PASSWORD, &from(&ip), T0 + 1)
                    .await
                    .map(|_| ())
            };
            assert!(asked.is_ok(), "{email} {i}: {asked:?}");
        }
        let refused = a
            .request_password_reset(email, &from("192.0.2.200"), T0 + 1)
            .await;
        assert_eq!(code(refused), "too_many_attempts", "{email}");
    }
    let to_victim = templates_to(a, "victim@example.com").await;
    assert!(
        to_victim.len() <= MAILS_PER_RECIPIENT as usize,
        "{to_victim:?}"
    );
}

#[tokio::test]
async fn security_notices_are_sent_before_a_backlog_of_links() {
    let f = fixture().await;
    let a = &f.a;
    let owner = coss_testkit::verified(a, "owner@example.com", T0).await;
    for i in 0..9 {
        a.signup(
            &format!("spam{i}@example.com"),
            PASSWORD,
            &from("203.0.113.9"),
            T0,
        )
        .await
        .unwrap();
    }
    a.change_password(&app(owner), PASSWORD, "a new and long password", T0 + 1)
        .await
        .unwrap();
    let first = a.store().due_mail(i64::MAX, 1).await.unwrap();
    assert_eq!(first[0].mail.template, "password_changed");
}

#[tokio::test]
async fn hashing_is_bounded_and_a_flood_beyond_it_is_refused_as_busy() {
    let f = fixture().await;
    let a = &f.a;
    let floods = coss_identity::MAX_HASHING_QUEUE + 200;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..floods {
        let a = a.clone();
        tasks.spawn(async move {
            login(&a, &format!("nobody{i}@example.com"), "wrong password!", T0)
                .await
                .unwrap_err()
                .code()
        });
    }
    let mut answers = std::collections::BTreeMap::new();
    while let Some(answer) = tasks.join_next().await {
        *answers.entry(answer.unwrap()).or_insert(0usize) += 1;
    }
    assert!(answers.get("busy").is_some_and(|n| *n > 0), "{answers:?}");
    assert_eq!(
        answers.keys().copied().collect::<Vec<_>>(),
        ["busy", "invalid_credentials"],
        "{answers:?}"
    );
    assert!(answers["invalid_credentials"] > coss_identity::MAX_HASHING_QUEUE);
}

#[tokio::test]
async fn a_stolen_session_alone_cannot_enrol_a_second_factor() {
    let f = fixture().await;
    let a = &f.a;
    let owner = coss_testkit::verified(a, "owner@example.com", T0).await;
    let thief = app(owner);
    let refused = a
        .begin_totp_enrolment(&thief, "a guessed password", T0)
        .await;
    assert_eq!(code(refused), "invalid_credentials");
    assert!(!a.two_factor_enabled(owner).await.unwrap());
    // Guesses count against the login throttle.
    for i in 0..4 {
        let _ = a.begin_totp_enrolment(&thief, "guess", T0 + i).await;
    }
    let locked = a.begin_totp_enrolment(&thief, PASSWORD, T0 + 10).await;
    assert_eq!(code(locked), "too_many_attempts");
    // The owner, with the password, enrols; and is told.
    let seed = coss_testkit::with_totp(a, owner, T0 + coss_identity::LOCKOUT_MS + 10).await;
    assert!(!seed.is_empty());
    assert!(
        templates_to(a, "owner@example.com")
            .await
            .contains(&"two_factor_changed".to_owned())
    );
}

#[tokio::test]
async fn a_password_change_or_a_second_factor_removal_locks_withdrawals_for_a_day() {
    let f = fixture().await;
    let a = &f.a;
    let owner = coss_testkit::verified(a, "owner@example.com", T0).await;
    // A first second factor does not lock (it only makes the account safer).
    let seed = coss_testkit::with_totp(a, owner, T0).await;
    a.ensure_withdrawals_allowed(owner, T0 + 1).await.unwrap();
    // Removing it does.
    let code_now = totp_code(&seed, T0 + 60_000).unwrap();
    a.disable_totp(
        &app(owner),
        &coss_identity::SecondFactor::Totp(&code_now),
        T0 + 60_000,
    )
    .await
    .unwrap();
    let locked = a.ensure_withdrawals_allowed(owner, T0 + 60_001).await;
    assert_eq!(code(locked), "withdrawals_locked");
    a.ensure_withdrawals_allowed(owner, T0 + 60_000 + WITHDRAWAL_LOCK_MS)
        .await
        .unwrap();
    // So does a password change.
    let later = T0 + 2 * WITHDRAWAL_LOCK_MS;
    a.change_password(&app(owner), PASSWORD, "another long password", later)
        .await
        .unwrap();
    let locked = a
        .ensure_withdrawals_allowed(owner, later + WITHDRAWAL_LOCK_MS - 1)
        .await;
    match locked {
        Err(IdentityError::WithdrawalsLocked { until_ms, .. }) => {
            assert_eq!(until_ms, later + WITHDRAWAL_LOCK_MS);
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_password_reset_revokes_every_credential_the_account_had() {
    let f = fixture().await;
    let a = &f.a;
    let owner = coss_testkit::verified(a, "owner@example.com", T0).await;
    let seed = coss_testkit::with_totp(a, owner, T0).await;
    let (key, secret) = coss_testkit::api_key(a, owner, &seed, &[Permission::Read], T0).await;
    let revoked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<UserId>::new()));
    let seen = std::sync::Arc::clone(&revoked);
    a.on_credentials_revoked(move |user| seen.lock().unwrap().push(user));
    // An app signed in with COSS.
    let store = a.store();
    store
        .create_oidc_client(
            &OidcClient {
                client_id: "app".into(),
                secret_hash: None,
                name: "App".into(),
                redirect_uris: vec!["https://app.example/cb".into()],
                first_party: false,
            },
            T0,
        )
        .await
        .unwrap();
    let grant = OidcCode {
        code_hash: vec![7; 32],
        client_id: "app".into(),
        user_id: owner,
        redirect_uri: "https://app.example/cb".into(),
        scopes: "openid".into(),
        nonce: None,
        code_challenge: "c".into(),
        auth_time: T0,
        expires_at: T0 + 60_000,
    };
    store.create_oidc_code(&grant).await.unwrap();
    store
        .create_oidc_token(&[8; 32], &grant, T0 + 3_600_000)
        .await
        .unwrap();
    // Two reset links: the thief's and the owner's.
    for _ in 0..2 {
        a.request_password_reset("owner@example.com", &Client::default(), T0 + 1)
            .await
            .unwrap();
    }
    let mail = store.due_mail(i64::MAX, 100).await.unwrap();
    let links: Vec<String> = mail
        .iter()
        .filter(|m| m.mail.template == "password_reset")
        .map(|m| {
            let payload: serde_json::Value = serde_json::from_str(&m.mail.payload).unwrap();
            payload["token"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(links.len(), 2);
    a.reset_password(&links[1], "the owner's new password", T0 + 2)
        .await
        .unwrap();

    assert!(!a.two_factor_enabled(owner).await.unwrap(), "TOTP removed");
    let query = format!("timestamp={}", T0 + 3);
    let signature = sign(&secret, &query);
    let request = SignedRequest {
        api_key: &key,
        query: &format!("{query}&signature={signature}"),
        body: "",
        client_ip: None,
        needs: Permission::Read,
    };
    assert_eq!(
        code(a.verify_signed(&request, T0 + 3).await),
        "api_key_revoked"
    );
    let other = a
        .reset_password(&links[0], "the thief's password!", T0 + 3)
        .await;
    assert_eq!(code(other), "invalid_token", "every other link is void");
    assert_eq!(store.oidc_token(&[8; 32], T0 + 3).await.unwrap(), None);
    assert_eq!(*revoked.lock().unwrap(), vec![owner], "streams are told");
    let locked = a.ensure_withdrawals_allowed(owner, T0 + 3).await;
    assert_eq!(code(locked), "withdrawals_locked");
    assert!(
        templates_to(a, "owner@example.com")
            .await
            .contains(&"password_changed".to_owned())
    );
    login(a, "owner@example.com", "the owner's new password", T0 + 4)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stranger_who_signs_up_first_with_an_address_cannot_keep_its_owner_out() {
    let f = fixture().await;
    let a = &f.a;
    let stranger = a
        .signup(
            "owner@example.com",
            "the stranger's password",
            &Client::default(),
            T0,
        )
        .await
        .unwrap();
    assert!(matches!(stranger, SignUp::Created(_)));
    let owner = a
        .signup("owner@example.com", PASSWORD, &Client::default(), T0 + 1)
        .await
        .unwrap();
    assert_eq!(owner, SignUp::Pending(stranger.user()));
    let mail = a.store().due_mail(i64::MAX, 100).await.unwrap();
    let links: Vec<String> = mail
        .iter()
        .filter(|m| m.mail.template == "verify_email")
        .map(|m| {
            let payload: serde_json::Value = serde_json::from_str(&m.mail.payload).unwrap();
            payload["token"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(links.len(), 2, "each sign-up has its own link");
    // The owner uses the owner's link: the account has the owner's password.
    a.verify_email(&links[1], T0 + 2).await.unwrap();
    login(a, "owner@example.com", PASSWORD, T0 + 3)
        .await
        .unwrap();
    let stranger_login = login(a, "owner@example.com", "the stranger's password", T0 + 3).await;
    assert_eq!(code(stranger_login), "invalid_credentials");
    assert_eq!(
        code(a.verify_email(&links[0], T0 + 4).await),
        "invalid_token",
        "the stranger's link died with the verification"
    );
    // Once verified, another sign-up changes nothing: the owner is told.
    let again = a
        .signup(
            "owner@example.com",
            "the stranger's password",
            &Client::default(),
            T0 + 5,
        )
        .await
        .unwrap();
    assert_eq!(again, SignUp::Existing(stranger.user()));
    assert!(
        templates_to(a, "owner@example.com")
            .await
            .contains(&"account_exists".to_owned())
    );
    login(a, "owner@example.com", PASSWORD, T0 + 6)
        .await
        .unwrap();
}
