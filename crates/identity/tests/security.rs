//! Sessions, throttling, second factors, API keys and profiles as users meet them, on a real
//! SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_identity::{
    ACCESS_TTL_MS, Accounts, Authenticated, Client, Grant, IdentityError, LOCKOUT_MS, Login,
    MerchantInput, Permission, ProfilePatch, SecondFactor, SignedRequest, sign, totp_code,
};
use coss_store::SessionKind;
use coss_types::UserId;

const T0: i64 = 1_700_000_000_000;
const STEP: i64 = 30_000;
use coss_testkit::PASSWORD;

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

async fn templates(a: &Accounts) -> Vec<String> {
    let mail = a.store().due_mail(i64::MAX, 1000).await.unwrap();
    mail.into_iter().map(|m| m.mail.template).collect()
}

async fn verified(a: &Accounts, email: &str) -> UserId {
    coss_testkit::verified(a, email, T0).await
}

fn client(agent: &str, ip: &str) -> Client {
    Client {
        user_agent: agent.to_owned(),
        ip: Some(ip.parse().unwrap()),
    }
}

async fn sign_in(
    a: &Accounts,
    email: &str,
    password: &str,
    factor: Option<SecondFactor<'_>>,
    kind: SessionKind,
    from: Client,
    now: i64,
) -> Result<Grant, IdentityError> {
    a.login(
        &Login {
            email,
            password,
            second_factor: factor,
            kind,
            client: from,
        },
        now,
    )
    .await
}

async fn app(a: &Accounts, email: &str, now: i64) -> Grant {
    sign_in(
        a,
        email,
        PASSWORD,
        None,
        SessionKind::App,
        client("app", "10.0.0.1"),
        now,
    )
    .await
    .unwrap()
}

fn auth(grant: &Grant, kind: SessionKind) -> Authenticated {
    Authenticated {
        user_id: grant.user_id,
        session_id: grant.session_id,
        kind,
    }
}

/// Enables TOTP for the account and returns its base32 seed.
async fn enable_totp(a: &Accounts, who: &Authenticated, now: i64) -> String {
    let enrolment = a.begin_totp_enrolment(who, PASSWORD, now).await.unwrap();
    let seed = enrolment.secret.expose().to_owned();
    a.confirm_totp(who, &totp_code(&seed, now).unwrap(), now)
        .await
        .unwrap();
    seed
}

#[tokio::test]
async fn an_app_session_refreshes_once_per_refresh_token_and_a_replay_ends_it() {
    let f = fixture().await;
    let a = &f.a;
    let id = verified(a, "alice@example.com").await;
    let grant = app(a, "alice@example.com", T0).await;
    assert_eq!(grant.expires_at, T0 + ACCESS_TTL_MS);
    assert!(grant.csrf.is_none());
    let who = a.authenticate(grant.token.expose(), T0 + 1).await.unwrap();
    assert_eq!((who.user_id, who.kind), (id, SessionKind::App));
    assert!(
        a.authenticate(grant.token.expose(), T0 + ACCESS_TTL_MS)
            .await
            .is_err(),
        "access tokens are short-lived"
    );

    let (refresh, _) = grant.refresh.clone().unwrap();
    assert!(
        a.authenticate(refresh.expose(), T0 + 1).await.is_err(),
        "a refresh token is not an access token"
    );
    let next = a
        .refresh(refresh.expose(), T0 + ACCESS_TTL_MS)
        .await
        .unwrap();
    assert_eq!(next.session_id, grant.session_id);
    a.authenticate(next.token.expose(), T0 + ACCESS_TTL_MS + 1)
        .await
        .unwrap();

    // The first refresh token comes back: the session ends for everyone holding it.
    let err = a
        .refresh(refresh.expose(), T0 + ACCESS_TTL_MS + 2)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "refresh_token_reused");
    assert!(
        a.authenticate(next.token.expose(), T0 + ACCESS_TTL_MS + 3)
            .await
            .is_err()
    );
    let (second, _) = next.refresh.unwrap();
    assert_eq!(
        a.refresh(second.expose(), T0 + ACCESS_TTL_MS + 3)
            .await
            .unwrap_err()
            .code(),
        "invalid_token"
    );
    assert_eq!(
        a.refresh("junk", T0).await.unwrap_err().code(),
        "invalid_token"
    );
}

#[tokio::test]
async fn a_browser_session_has_a_csrf_token_bound_to_it() {
    let f = fixture().await;
    let a = &f.a;
    verified(a, "alice@example.com").await;
    let one = sign_in(
        a,
        "alice@example.com",
        PASSWORD,
        None,
        SessionKind::Browser,
        Client::default(),
        T0,
    )
    .await
    .unwrap();
    let two = sign_in(
        a,
        "alice@example.com",
        PASSWORD,
        None,
        SessionKind::Browser,
        Client::default(),
        T0,
    )
    .await
    .unwrap();
    assert!(one.refresh.is_none());
    let (csrf1, csrf2) = (one.csrf.clone().unwrap(), two.csrf.clone().unwrap());
    assert!(a.check_csrf(one.token.expose(), &csrf1));
    assert!(
        !a.check_csrf(one.token.expose(), &csrf2),
        "another session's token"
    );
    assert!(!a.check_csrf(one.token.expose(), ""));
    assert_eq!(
        a.authenticate(one.token.expose(), T0).await.unwrap().kind,
        SessionKind::Browser
    );
}

#[tokio::test]
async fn a_sign_in_from_a_new_device_is_emailed_to_the_owner() {
    let f = fixture().await;
    let a = &f.a;
    verified(a, "alice@example.com").await;
    let laptop = client("Firefox", "203.0.113.5");
    for _ in 0..2 {
        sign_in(
            a,
            "alice@example.com",
            PASSWORD,
            None,
            SessionKind::Browser,
            laptop.clone(),
            T0,
        )
        .await
        .unwrap();
    }
    assert_eq!(
        templates(a).await,
        ["verify_email"],
        "the first device is not news"
    );
    sign_in(
        a,
        "alice@example.com",
        PASSWORD,
        None,
        SessionKind::App,
        client("COSS iOS", "198.51.100.7"),
        T0,
    )
    .await
    .unwrap();
    // A security notice is sent before the links waiting with it.
    assert_eq!(templates(a).await, ["new_device_login", "verify_email"]);
    let mail = a.store().due_mail(i64::MAX, 10).await.unwrap();
    let payload = &mail[0].mail.payload;
    assert!(payload.contains("COSS iOS at 198.51.100.7"), "{payload}");
    assert!(payload.contains("2023-11-14 22:13 UTC"), "{payload}");
}

#[tokio::test]
async fn wrong_passwords_lock_the_account_and_the_address_until_time_or_a_reset_frees_them() {
    let f = fixture().await;
    let a = &f.a;
    verified(a, "alice@example.com").await;
    let from = client("x", "192.0.2.1");
    for i in 0..5 {
        let err = sign_in(
            a,
            "alice@example.com",
            "wrong password",
            None,
            SessionKind::App,
            from.clone(),
            T0 + i,
        )
        .await
        .unwrap_err();
        assert_eq!(err.code(), "invalid_credentials");
    }
    // Locked: even the right password is refused, without revealing it was right.
    let err = sign_in(
        a,
        "alice@example.com",
        PASSWORD,
        None,
        SessionKind::App,
        client("x", "192.0.2.2"),
        T0 + 10,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "too_many_attempts");
    assert!(
        matches!(err, IdentityError::TooManyAttempts { retry_after_ms } if retry_after_ms == LOCKOUT_MS - 6)
    );
    // An unknown account is throttled exactly like a known one.
    for i in 0..5 {
        sign_in(
            a,
            "nobody@example.com",
            "wrong password",
            None,
            SessionKind::App,
            client("x", "192.0.2.3"),
            T0 + i,
        )
        .await
        .unwrap_err();
    }
    assert_eq!(
        sign_in(
            a,
            "nobody@example.com",
            "wrong password",
            None,
            SessionKind::App,
            client("x", "192.0.2.3"),
            T0 + 9
        )
        .await
        .unwrap_err()
        .code(),
        "too_many_attempts"
    );
    // The lock ends by itself...
    sign_in(
        a,
        "alice@example.com",
        PASSWORD,
        None,
        SessionKind::App,
        from.clone(),
        T0 + 4 + LOCKOUT_MS,
    )
    .await
    .unwrap();
    // ...or with a password reset.
    for i in 0..5 {
        sign_in(
            a,
            "alice@example.com",
            "wrong password",
            None,
            SessionKind::App,
            from.clone(),
            T0 + 2 * LOCKOUT_MS + i,
        )
        .await
        .unwrap_err();
    }
    a.request_password_reset(
        "alice@example.com",
        &Client::default(),
        T0 + 2 * LOCKOUT_MS + 10,
    )
    .await
    .unwrap();
    let mail = a.store().due_mail(i64::MAX, 100).await.unwrap();
    let token: serde_json::Value =
        serde_json::from_str(&mail.last().unwrap().mail.payload).unwrap();
    a.reset_password(
        token["token"].as_str().unwrap(),
        "a new password!",
        T0 + 2 * LOCKOUT_MS + 11,
    )
    .await
    .unwrap();
    sign_in(
        a,
        "alice@example.com",
        "a new password!",
        None,
        SessionKind::App,
        from,
        T0 + 2 * LOCKOUT_MS + 12,
    )
    .await
    .unwrap();

    // One address trying many accounts is locked too.
    let attacker = client("bot", "198.51.100.99");
    for i in 0..50 {
        sign_in(
            a,
            &format!("user{i}@example.com"),
            "guess guess",
            None,
            SessionKind::App,
            attacker.clone(),
            T0 + i,
        )
        .await
        .unwrap_err();
    }
    let err = sign_in(
        a,
        "alice@example.com",
        "a new password!",
        None,
        SessionKind::App,
        attacker,
        T0 + 60,
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "too_many_attempts");
}

#[tokio::test]
async fn a_password_change_needs_the_current_one_and_ends_the_other_sessions() {
    let f = fixture().await;
    let a = &f.a;
    verified(a, "alice@example.com").await;
    let here = app(a, "alice@example.com", T0).await;
    let elsewhere = app(a, "alice@example.com", T0).await;
    let who = auth(&here, SessionKind::App);
    assert_eq!(
        a.change_password(&who, "wrong password", "brand new password", T0)
            .await
            .unwrap_err()
            .code(),
        "invalid_credentials"
    );
    assert_eq!(
        a.change_password(&who, PASSWORD, "short", T0)
            .await
            .unwrap_err()
            .code(),
        "weak_password"
    );
    a.change_password(&who, PASSWORD, "brand new password", T0 + 1)
        .await
        .unwrap();
    a.authenticate(here.token.expose(), T0 + 2).await.unwrap();
    assert!(
        a.authenticate(elsewhere.token.expose(), T0 + 2)
            .await
            .is_err()
    );
    assert!(
        a.refresh(elsewhere.refresh.unwrap().0.expose(), T0 + 2)
            .await
            .is_err()
    );
    assert_eq!(templates(a).await.first().unwrap(), "password_changed");
    sign_in(
        a,
        "alice@example.com",
        "brand new password",
        None,
        SessionKind::App,
        Client::default(),
        T0 + 3,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn totp_is_active_once_confirmed_and_then_every_login_needs_a_fresh_code() {
    let f = fixture().await;
    let a = &f.a;
    let id = verified(a, "alice@example.com").await;
    let grant = app(a, "alice@example.com", T0).await;
    let who = auth(&grant, SessionKind::App);
    assert_eq!(
        a.confirm_totp(&who, "123456", T0).await.unwrap_err().code(),
        "no_pending_enrolment"
    );

    let enrolment = a.begin_totp_enrolment(&who, PASSWORD, T0).await.unwrap();
    let uri = enrolment.otpauth_uri.expose();
    assert!(
        uri.starts_with("otpauth://totp/COSS:alice%40example.com?"),
        "{uri}"
    );
    assert!(
        uri.contains(&format!("secret={}", enrolment.secret.expose())),
        "{uri}"
    );
    assert!(enrolment.qr_svg.starts_with("<?xml") && enrolment.qr_svg.contains("<svg"));
    assert!(
        !format!("{enrolment:?}").contains(enrolment.secret.expose()),
        "Debug hides the seed"
    );
    let seed = enrolment.secret.expose().to_owned();

    // Not active until confirmed: login needs no code yet.
    sign_in(
        a,
        "alice@example.com",
        PASSWORD,
        None,
        SessionKind::App,
        Client::default(),
        T0,
    )
    .await
    .unwrap();
    assert_eq!(
        a.confirm_totp(&who, "000000", T0).await.unwrap_err().code(),
        "invalid_two_factor_code"
    );
    assert_eq!(
        a.confirm_totp(&who, "12345", T0).await.unwrap_err().code(),
        "invalid_two_factor_code"
    );
    let recovery = a
        .confirm_totp(&who, &totp_code(&seed, T0).unwrap(), T0)
        .await
        .unwrap();
    assert_eq!(recovery.len(), 10);
    assert!(a.two_factor_enabled(id).await.unwrap());
    assert_eq!(
        a.begin_totp_enrolment(&who, PASSWORD, T0)
            .await
            .unwrap_err()
            .code(),
        "two_factor_already_enabled"
    );

    let login = |factor, now| {
        sign_in(
            a,
            "alice@example.com",
            PASSWORD,
            factor,
            SessionKind::App,
            Client::default(),
            now,
        )
    };
    assert_eq!(
        login(None, T0 + STEP).await.unwrap_err().code(),
        "two_factor_required"
    );
    assert_eq!(
        login(Some(SecondFactor::Totp("000000")), T0 + STEP)
            .await
            .unwrap_err()
            .code(),
        "invalid_two_factor_code"
    );
    // The confirming code's step is spent; the next step's code works once.
    let used = totp_code(&seed, T0).unwrap();
    assert_eq!(
        login(Some(SecondFactor::Totp(&used)), T0 + 10)
            .await
            .unwrap_err()
            .code(),
        "invalid_two_factor_code"
    );
    let code = totp_code(&seed, T0 + STEP).unwrap();
    login(Some(SecondFactor::Totp(&code)), T0 + STEP)
        .await
        .unwrap();
    assert_eq!(
        login(Some(SecondFactor::Totp(&code)), T0 + STEP + 1)
            .await
            .unwrap_err()
            .code(),
        "invalid_two_factor_code",
        "replayed"
    );
    // A code from the next step is accepted (clock skew), one from two steps away is not.
    let far = totp_code(&seed, T0 + 4 * STEP).unwrap();
    assert!(
        login(Some(SecondFactor::Totp(&far)), T0 + 2 * STEP)
            .await
            .is_err()
    );
    let ahead = totp_code(&seed, T0 + 3 * STEP).unwrap();
    login(Some(SecondFactor::Totp(&ahead)), T0 + 2 * STEP)
        .await
        .unwrap();

    // A recovery code works once, in any case and with or without dashes.
    let spoken = recovery[0].expose().to_uppercase().replace('-', " ");
    login(Some(SecondFactor::Recovery(&spoken)), T0 + 3 * STEP)
        .await
        .unwrap();
    assert!(
        login(
            Some(SecondFactor::Recovery(recovery[0].expose())),
            T0 + 3 * STEP
        )
        .await
        .is_err()
    );
    assert_eq!(a.recovery_codes_left(id).await.unwrap(), 9);

    // Off again only with a code; both changes were emailed.
    assert_eq!(
        a.disable_totp(&who, &SecondFactor::Totp("000000"), T0 + 5 * STEP)
            .await
            .unwrap_err()
            .code(),
        "invalid_two_factor_code"
    );
    a.disable_totp(
        &who,
        &SecondFactor::Totp(&totp_code(&seed, T0 + 5 * STEP).unwrap()),
        T0 + 5 * STEP,
    )
    .await
    .unwrap();
    login(None, T0 + 6 * STEP).await.unwrap();
    let changes: Vec<_> = templates(a)
        .await
        .into_iter()
        .filter(|t| t == "two_factor_changed")
        .collect();
    assert_eq!(changes.len(), 2);
}

#[tokio::test]
async fn the_seed_is_sealed_at_rest_and_wrong_codes_lock_the_second_factor() {
    let f = fixture().await;
    let a = &f.a;
    let id = verified(a, "alice@example.com").await;
    let who = auth(&app(a, "alice@example.com", T0).await, SessionKind::App);
    let enrolment = a.begin_totp_enrolment(&who, PASSWORD, T0).await.unwrap();
    let record = a.store().totp(id).await.unwrap().unwrap();
    let seed = totp_rs::Secret::try_from_base32(enrolment.secret.expose()).unwrap();
    let seed = seed.as_bytes();
    assert!(
        !record.sealed_secret.windows(seed.len()).any(|w| w == seed),
        "the seed is not stored in the clear"
    );
    a.confirm_totp(&who, &totp_code(enrolment.secret.expose(), T0).unwrap(), T0)
        .await
        .unwrap();
    for i in 0..5 {
        let err = a
            .require_second_factor(id, Some("000000"), T0 + i)
            .await
            .unwrap_err();
        assert_eq!(err.code(), "invalid_two_factor_code");
    }
    let good = totp_code(enrolment.secret.expose(), T0 + STEP).unwrap();
    assert_eq!(
        a.require_second_factor(id, Some(&good), T0 + STEP)
            .await
            .unwrap_err()
            .code(),
        "too_many_attempts"
    );
    a.require_second_factor(id, Some(&good), T0 + LOCKOUT_MS)
        .await
        .unwrap_err();
    let later = totp_code(enrolment.secret.expose(), T0 + LOCKOUT_MS + STEP).unwrap();
    a.require_second_factor(id, Some(&later), T0 + LOCKOUT_MS + STEP)
        .await
        .unwrap();
}

fn signed(
    api_key: &str,
    secret: &str,
    query: &str,
    ip: &str,
    needs: Permission,
) -> (String, String, std::net::IpAddr, Permission) {
    let signature = sign(secret, query);
    (
        api_key.to_owned(),
        format!("{query}&signature={signature}"),
        ip.parse().unwrap(),
        needs,
    )
}

async fn check(
    a: &Accounts,
    request: &(String, String, std::net::IpAddr, Permission),
    now: i64,
) -> Result<UserId, IdentityError> {
    a.verify_signed(
        &SignedRequest {
            api_key: &request.0,
            query: &request.1,
            body: "",
            client_ip: Some(request.2),
            needs: request.3,
        },
        now,
    )
    .await
    .map(|k| k.user_id)
}

#[tokio::test]
async fn api_keys_need_a_second_factor_and_sign_requests_the_binance_way() {
    let f = fixture().await;
    let a = &f.a;
    let id = verified(a, "alice@example.com").await;
    let who = auth(&app(a, "alice@example.com", T0).await, SessionKind::App);
    let create = |perms: Vec<Permission>, allow: Vec<String>, code: Option<String>, now: i64| async move {
        a.create_api_key(&who, "bot", &perms, &allow, code.as_deref(), now)
            .await
    };
    assert_eq!(
        create(vec![Permission::Trade], vec![], None, T0)
            .await
            .unwrap_err()
            .code(),
        "two_factor_setup_required"
    );
    let seed = enable_totp(a, &who, T0).await;
    assert_eq!(
        create(vec![Permission::Trade], vec![], None, T0 + STEP)
            .await
            .unwrap_err()
            .code(),
        "two_factor_required"
    );
    assert_eq!(
        create(
            vec![Permission::Trade],
            vec![],
            Some("000000".into()),
            T0 + STEP
        )
        .await
        .unwrap_err()
        .code(),
        "invalid_two_factor_code"
    );
    assert_eq!(
        create(
            vec![Permission::Withdraw],
            vec![],
            totp_code(&seed, T0 + STEP),
            T0 + STEP
        )
        .await
        .unwrap_err()
        .code(),
        "withdraw_needs_ip_allow_list"
    );
    assert_eq!(
        create(
            vec![],
            vec!["10.0.0.0/99".into()],
            totp_code(&seed, T0 + STEP),
            T0 + STEP
        )
        .await
        .unwrap_err()
        .code(),
        "invalid_ip_allow_list"
    );
    assert_eq!(
        a.create_api_key(&who, " ", &[], &[], None, T0)
            .await
            .unwrap_err()
            .code(),
        "invalid_label"
    );
    assert!(
        a.api_keys(id).await.unwrap().is_empty(),
        "refusals created nothing"
    );

    let trading = create(
        vec![Permission::Trade],
        vec![],
        totp_code(&seed, T0 + STEP),
        T0 + STEP,
    )
    .await
    .unwrap();
    assert_eq!(
        trading.key.permissions,
        [Permission::Read, Permission::Trade]
    );
    assert_eq!(
        (trading.key.api_key.len(), trading.secret.expose().len()),
        (64, 64)
    );
    assert!(!format!("{trading:?}").contains(trading.secret.expose()));
    let listed = a.api_keys(id).await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&trading.key));
    let (key, secret) = (trading.key.api_key.as_str(), trading.secret.expose());

    let now = T0 + 100 * STEP;
    let q = |ts: i64| format!("symbol=COSSETH&side=BUY&quantity=1&timestamp={ts}");
    assert_eq!(
        check(
            a,
            &signed(key, secret, &q(now), "127.0.0.1", Permission::Trade),
            now
        )
        .await
        .unwrap(),
        id
    );
    // The body counts too: query and body are signed as one string.
    let body = format!("quantity=1&timestamp={now}");
    let sig = sign(secret, &format!("symbol=COSSETH{body}"));
    let ok = a
        .verify_signed(
            &SignedRequest {
                api_key: key,
                query: "symbol=COSSETH",
                body: &format!("{body}&signature={sig}"),
                client_ip: None,
                needs: Permission::Read,
            },
            now,
        )
        .await;
    assert_eq!(ok.unwrap().user_id, id);

    let code = |r: Result<UserId, IdentityError>| r.unwrap_err().code();
    let forged = (
        key.to_owned(),
        format!("{}&signature={}", q(now), sign("not the secret", &q(now))),
        "127.0.0.1".parse().unwrap(),
        Permission::Trade,
    );
    assert_eq!(code(check(a, &forged, now).await), "invalid_signature");
    let tampered = (
        key.to_owned(),
        signed(key, secret, &q(now), "127.0.0.1", Permission::Trade)
            .1
            .replace("quantity=1", "quantity=9"),
        "127.0.0.1".parse().unwrap(),
        Permission::Trade,
    );
    assert_eq!(code(check(a, &tampered, now).await), "invalid_signature");
    let garbage = (
        key.to_owned(),
        format!("{}&signature=zz", q(now)),
        "127.0.0.1".parse().unwrap(),
        Permission::Trade,
    );
    assert_eq!(code(check(a, &garbage, now).await), "invalid_signature");
    assert_eq!(
        code(
            check(
                a,
                &signed(key, secret, &q(now - 5_001), "127.0.0.1", Permission::Trade),
                now
            )
            .await
        ),
        "timestamp_outside_recv_window"
    );
    assert_eq!(
        code(
            check(
                a,
                &signed(key, secret, &q(now + 1_001), "127.0.0.1", Permission::Trade),
                now
            )
            .await
        ),
        "timestamp_ahead"
    );
    let wide = format!("{}&recvWindow=60000", q(now - 59_000));
    check(
        a,
        &signed(key, secret, &wide, "127.0.0.1", Permission::Trade),
        now,
    )
    .await
    .unwrap();
    let too_wide = format!("{}&recvWindow=60001", q(now));
    assert_eq!(
        code(
            check(
                a,
                &signed(key, secret, &too_wide, "127.0.0.1", Permission::Trade),
                now
            )
            .await
        ),
        "invalid_parameter"
    );
    assert_eq!(
        code(
            check(
                a,
                &signed(
                    key,
                    secret,
                    "symbol=COSSETH",
                    "127.0.0.1",
                    Permission::Trade
                ),
                now
            )
            .await
        ),
        "missing_parameter"
    );
    assert_eq!(
        code(
            check(
                a,
                &signed(key, secret, &q(now), "127.0.0.1", Permission::Withdraw),
                now
            )
            .await
        ),
        "permission_denied"
    );
    assert_eq!(
        code(
            check(
                a,
                &signed("nope", secret, &q(now), "127.0.0.1", Permission::Read),
                now
            )
            .await
        ),
        "invalid_api_key"
    );

    // An allow-listed key refuses other addresses.
    let pinned = create(
        vec![Permission::Withdraw],
        vec!["192.0.2.0/24".into()],
        totp_code(&seed, now),
        now,
    )
    .await
    .unwrap();
    let (pk, ps) = (pinned.key.api_key.as_str(), pinned.secret.expose());
    check(
        a,
        &signed(pk, ps, &q(now), "192.0.2.77", Permission::Withdraw),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        code(
            check(
                a,
                &signed(pk, ps, &q(now), "198.51.100.1", Permission::Withdraw),
                now
            )
            .await
        ),
        "ip_not_allowed"
    );

    // Revocation takes effect on the next request; revoking twice or another's key is refused.
    a.revoke_api_key(id, trading.key.id, now).await.unwrap();
    assert_eq!(
        code(
            check(
                a,
                &signed(key, secret, &q(now), "127.0.0.1", Permission::Read),
                now
            )
            .await
        ),
        "api_key_revoked"
    );
    assert_eq!(
        a.revoke_api_key(id, trading.key.id, now)
            .await
            .unwrap_err()
            .code(),
        "api_key_not_found"
    );
    assert_eq!(
        a.revoke_api_key(UserId(id.0 + 1), pinned.key.id, now)
            .await
            .unwrap_err()
            .code(),
        "api_key_not_found"
    );
    assert_eq!(a.api_keys(id).await.unwrap()[0].revoked_at, Some(now));
}

#[tokio::test]
async fn profiles_are_validated_field_by_field_and_nothing_changes_on_a_refusal() {
    let f = fixture().await;
    let a = &f.a;
    let id = verified(a, "alice@example.com").await;
    let profile = a.profile(id).await.unwrap();
    assert_eq!(
        (
            profile.display_name,
            profile.country,
            profile.verification_level
        ),
        (None, None, 0)
    );
    let patch = |name: Option<Option<&str>>, country: Option<Option<&str>>| ProfilePatch {
        display_name: name.map(|n| n.map(str::to_owned)),
        country: country.map(|c| c.map(str::to_owned)),
    };
    let set = a
        .update_profile(id, &patch(Some(Some(" Alice ")), Some(Some("kr"))), T0)
        .await
        .unwrap();
    assert_eq!(
        (set.display_name.as_deref(), set.country.as_deref()),
        (Some("Alice"), Some("KR"))
    );
    for (bad, code) in [
        (patch(Some(Some("")), None), "invalid_display_name"),
        (
            patch(Some(Some(&"x".repeat(65))), None),
            "invalid_display_name",
        ),
        (patch(Some(Some("a\u{7}b")), None), "invalid_display_name"),
        (
            patch(Some(Some("Bob")), Some(Some("XX"))),
            "invalid_country",
        ),
        (patch(None, Some(Some("Korea"))), "invalid_country"),
    ] {
        assert_eq!(
            a.update_profile(id, &bad, T0).await.unwrap_err().code(),
            code
        );
    }
    assert_eq!(
        a.profile(id).await.unwrap().display_name.as_deref(),
        Some("Alice"),
        "nothing changed"
    );
    let cleared = a
        .update_profile(id, &patch(None, Some(None)), T0)
        .await
        .unwrap();
    assert_eq!(
        (cleared.display_name.as_deref(), cleared.country),
        (Some("Alice"), None)
    );

    let shop = MerchantInput {
        business_name: "Alice's Coffee".into(),
        website: Some("https://coffee.example".into()),
        settlement_asset: "USDT".into(),
        settlement_mode: "convert".into(),
        webhook_url: Some("https://coffee.example/coss-hook".into()),
    };
    for (bad, code) in [
        (
            MerchantInput {
                business_name: " ".into(),
                ..shop.clone()
            },
            "invalid_business_name",
        ),
        (
            MerchantInput {
                website: Some("ftp://coffee.example".into()),
                ..shop.clone()
            },
            "invalid_website",
        ),
        (
            MerchantInput {
                website: Some("coffee.example".into()),
                ..shop.clone()
            },
            "invalid_website",
        ),
        (
            MerchantInput {
                settlement_asset: "usdt".into(),
                ..shop.clone()
            },
            "invalid_settlement_asset",
        ),
        (
            MerchantInput {
                settlement_mode: "later".into(),
                ..shop.clone()
            },
            "invalid_settlement_mode",
        ),
        (
            MerchantInput {
                webhook_url: Some("http://coffee.example/hook".into()),
                ..shop.clone()
            },
            "invalid_webhook_url",
        ),
        (
            MerchantInput {
                webhook_url: Some("https://user:pw@coffee.example/".into()),
                ..shop.clone()
            },
            "invalid_webhook_url",
        ),
    ] {
        assert_eq!(a.put_merchant(id, &bad, T0).await.unwrap_err().code(), code);
    }
    assert_eq!(
        a.merchant(id).await.unwrap(),
        None,
        "refusals saved nothing"
    );
    let (saved, secret) = a.put_merchant(id, &shop, T0).await.unwrap();
    let secret = secret.expect("the first save makes the webhook secret");
    assert!(secret.expose().starts_with("whsec_"));
    assert_eq!(a.webhook_secret(id).await.unwrap().unwrap(), secret);
    let local = MerchantInput {
        webhook_url: Some("http://127.0.0.1:8080/hook".into()),
        ..shop.clone()
    };
    let (again, none) = a.put_merchant(id, &local, T0 + 5).await.unwrap();
    assert!(none.is_none(), "later saves keep the secret");
    assert_eq!(
        (again.created_at, again.updated_at),
        (saved.created_at, T0 + 5)
    );
    let rotated = a.rotate_webhook_secret(id, T0 + 6).await.unwrap();
    assert_ne!(rotated, secret);
    assert_eq!(a.webhook_secret(id).await.unwrap().unwrap(), rotated);
}

#[cfg(unix)]
#[test]
fn a_server_key_other_users_can_read_is_refused_and_the_data_files_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret.key");
    coss_identity::Vault::open_or_create(&path).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    // Loosened (a careless copy, a default umask): refused, naming the file and the way out.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let error = coss_identity::Vault::open_or_create(&path)
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("secret.key") && error.contains("chmod 600"),
        "{error}"
    );
    assert!(error.contains("644"), "{error}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    coss_identity::Vault::open_or_create(&path).unwrap();
    // A data dir others may enter is narrowed to its owner.
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    coss_identity::private_dir(&data).unwrap();
    assert_eq!(mode(&data), 0o700);
}
