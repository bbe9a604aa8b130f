//! The same specification run against both backends: an SQLite file in a temporary
//! directory, and a fresh database on the PostgreSQL server at 127.0.0.1:5432 (trust auth;
//! `COSS_TEST_POSTGRES` overrides the admin URL), dropped afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_store::{
    Backend, CodeOutcome, DaoAssetRecord, DaoChainRecord, DaoReportRecord, DaoWeekRecord,
    EmailToken, Mail, MerchantRecord, NewApiKey, NewSession, NewToken, NewWithdrawal, OidcClient,
    OidcCode, OidcKey, ProfileRecord, Purpose, RefreshOutcome, ScratchDatabase, SessionKind, Store,
    StoreError, Subject, TokenKind, TransferStatus, UsernameClaim, WithdrawalStatus,
};
use coss_types::{Amount, UserId};

struct Db {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
    drop_pg: Option<ScratchDatabase>,
}

impl Db {
    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("coss.db").display());
        let store = Store::open_in(dir.path()).await.unwrap();
        assert_eq!(store.backend(), Backend::Sqlite);
        Self {
            store,
            url,
            _dir: Some(dir),
            drop_pg: None,
        }
    }

    async fn postgres() -> Self {
        let scratch = coss_testkit::scratch_postgres("store").await;
        let url = scratch.url().to_owned();
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        Self {
            store,
            url,
            _dir: None,
            drop_pg: Some(scratch),
        }
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some(scratch) = self.drop_pg {
            scratch.drop_now().await.unwrap();
        }
    }
}

/// Runs each spec against SQLite and PostgreSQL.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { let db = super::Db::sqlite().await; super::$name(&db).await; db.finish().await; } )* }
        mod postgres { $( #[tokio::test] async fn $name() { let db = super::Db::postgres().await; super::$name(&db).await; db.finish().await; } )* }
    };
}

on_both!(
    an_account_is_created_with_its_token_and_email_in_one_transaction,
    an_email_can_hold_one_account_only_and_a_refused_signup_leaves_nothing,
    a_token_works_once_for_its_purpose_and_until_it_expires,
    sessions_live_until_revoked_or_expired_and_a_password_change_ends_the_others,
    a_refresh_token_works_once_and_a_replay_ends_its_session,
    a_sign_in_from_a_new_device_queues_one_email_with_the_session,
    a_second_factor_is_active_once_confirmed_and_each_step_and_recovery_code_works_once,
    failures_lock_a_key_for_a_while_and_a_window_or_a_clear_forgets_them,
    api_keys_are_listed_found_by_key_and_revoked_by_their_owner_only,
    profiles_default_to_nothing_and_keep_the_verification_level,
    a_password_reset_uses_its_token_sets_the_password_and_ends_sessions_at_once,
    oidc_codes_work_once_and_a_replay_revokes_their_tokens,
    the_outbox_hands_out_due_mail_and_records_each_delivery_once,
    reopening_keeps_the_data_and_runs_no_migration_twice,
    a_username_is_given_once_for_good_and_a_dao_report_is_written_once,
    a_status_change_is_a_compare_and_set_that_one_of_many_racers_wins,
    invoices_their_payments_moves_and_webhook_deliveries_keep_their_order_and_states,
);

const T0: i64 = 1_700_000_000_000;

fn token(byte: u8, purpose: Purpose, expires_at: i64) -> EmailToken {
    EmailToken {
        hash: vec![byte; 32],
        purpose,
        expires_at,
    }
}

fn mail(to: &str, template: &str) -> Mail {
    Mail {
        recipient: to.to_owned(),
        template: template.to_owned(),
        payload: r#"{"k":"v"}"#.to_owned(),
    }
}

async fn an_account_is_created_with_its_token_and_email_in_one_transaction(db: &Db) {
    let store = &db.store;
    let user = store
        .create_user(
            "alice@example.com",
            "$argon2id$…",
            T0,
            &token(1, Purpose::VerifyEmail, T0 + 1000),
            &mail("alice@example.com", "verify_email"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.user_by_email("alice@example.com").await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(store.user(user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(store.user_by_email("bob@example.com").await.unwrap(), None);
    let due = store.due_mail(T0, 10).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].mail, mail("alice@example.com", "verify_email"));
    assert_eq!(
        store
            .use_token(&[1; 32], Purpose::VerifyEmail, T0)
            .await
            .unwrap(),
        user.id
    );
    store.mark_email_verified(user.id, T0 + 5).await.unwrap();
    store.mark_email_verified(user.id, T0 + 9).await.unwrap();
    assert_eq!(
        store
            .user(user.id)
            .await
            .unwrap()
            .unwrap()
            .email_verified_at,
        Some(T0 + 5)
    );
}

async fn an_email_can_hold_one_account_only_and_a_refused_signup_leaves_nothing(db: &Db) {
    let store = &db.store;
    store
        .create_user(
            "alice@example.com",
            "h1",
            T0,
            &token(1, Purpose::VerifyEmail, T0 + 1000),
            &mail("alice@example.com", "verify_email"),
        )
        .await
        .unwrap();
    let err = store
        .create_user(
            "alice@example.com",
            "h2",
            T0,
            &token(2, Purpose::VerifyEmail, T0 + 1000),
            &mail("alice@example.com", "verify_email"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::EmailTaken), "{err}");
    assert_eq!(err.code(), "store.email_taken");
    // The refused sign-up left no token and no email behind.
    assert!(matches!(
        store.use_token(&[2; 32], Purpose::VerifyEmail, T0).await,
        Err(StoreError::TokenInvalid)
    ));
    assert_eq!(store.due_mail(T0, 10).await.unwrap().len(), 1);
    assert_eq!(
        store
            .user_by_email("alice@example.com")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "h1"
    );
}

async fn a_token_works_once_for_its_purpose_and_until_it_expires(db: &Db) {
    let store = &db.store;
    let user = alice(store).await;
    store
        .issue_token(
            user,
            &token(2, Purpose::ResetPassword, T0 + 1000),
            &mail("alice@example.com", "password_reset"),
            T0,
        )
        .await
        .unwrap();
    store
        .issue_token(
            user,
            &token(3, Purpose::ResetPassword, T0 + 10),
            &mail("alice@example.com", "password_reset"),
            T0,
        )
        .await
        .unwrap();

    let invalid = |r: Result<UserId, StoreError>| matches!(r, Err(StoreError::TokenInvalid));
    // Wrong purpose, unknown, expired.
    assert!(invalid(
        store.use_token(&[1; 32], Purpose::ResetPassword, T0).await
    ));
    assert!(invalid(
        store.use_token(&[9; 32], Purpose::VerifyEmail, T0).await
    ));
    assert!(invalid(
        store
            .use_token(&[3; 32], Purpose::ResetPassword, T0 + 10)
            .await
    ));
    // Once, then never again.
    assert_eq!(
        store
            .use_token(&[2; 32], Purpose::ResetPassword, T0 + 1)
            .await
            .unwrap(),
        user
    );
    assert!(invalid(
        store
            .use_token(&[2; 32], Purpose::ResetPassword, T0 + 2)
            .await
    ));
    assert_eq!(
        store
            .use_token(&[1; 32], Purpose::VerifyEmail, T0 + 999)
            .await
            .unwrap(),
        user
    );
    assert!(invalid(
        store
            .use_token(&[1; 32], Purpose::VerifyEmail, T0 + 999)
            .await
    ));
}

async fn alice(store: &Store) -> UserId {
    user_with(store, "alice@example.com", 1).await
}

/// A user with `email`, made with a verification token of bytes `token_byte`.
async fn user_with(store: &Store, email: &str, token_byte: u8) -> UserId {
    store
        .create_user(
            email,
            "h",
            T0,
            &token(token_byte, Purpose::VerifyEmail, T0 + 1000),
            &mail(email, "verify_email"),
        )
        .await
        .unwrap()
        .id
}

fn sign_in(
    user_id: UserId,
    kind: SessionKind,
    device: u8,
    tokens: &[(u8, TokenKind, i64)],
) -> NewSession {
    NewSession {
        user_id,
        kind,
        device: format!("device {device}"),
        device_hash: vec![device; 32],
        tokens: tokens
            .iter()
            .map(|&(byte, kind, expires_at)| NewToken {
                hash: vec![byte; 32],
                kind,
                expires_at,
            })
            .collect(),
        new_device_mail: mail("alice@example.com", "new_device_login"),
    }
}

async fn outbox_templates(db: &Db) -> Vec<String> {
    db.store
        .due_mail(i64::MAX, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.mail.template)
        .collect()
}

async fn sessions_live_until_revoked_or_expired_and_a_password_change_ends_the_others(db: &Db) {
    let store = &db.store;
    let user = alice(store).await;
    let mut ids = vec![];
    for byte in [10u8, 11, 12] {
        let (id, _) = store
            .open_session(
                &sign_in(
                    user,
                    SessionKind::Browser,
                    1,
                    &[(byte, TokenKind::Session, T0 + 100)],
                ),
                T0,
            )
            .await
            .unwrap();
        ids.push(id);
    }
    let live = store.live_token(&[10; 32], T0 + 99).await.unwrap().unwrap();
    assert_eq!(
        (live.session_id, live.user_id, live.kind),
        (ids[0], user, TokenKind::Session)
    );
    assert_eq!(
        store.live_token(&[10; 32], T0 + 100).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.live_token(&[99; 32], T0).await.unwrap(),
        None,
        "unknown"
    );
    store.revoke_session(ids[0], T0 + 1).await.unwrap();
    assert_eq!(
        store.live_token(&[10; 32], T0 + 2).await.unwrap(),
        None,
        "revoked"
    );

    store.set_password(user, "h2", T0 + 3).await.unwrap();
    assert_eq!(
        store
            .revoke_other_sessions(user, Some(ids[1]), T0 + 3)
            .await
            .unwrap(),
        1
    );
    assert!(store.live_token(&[11; 32], T0 + 4).await.unwrap().is_some());
    assert_eq!(store.live_token(&[12; 32], T0 + 4).await.unwrap(), None);
    assert_eq!(store.sessions_of(user).await.unwrap().len(), 1);
    let changed = store.user(user).await.unwrap().unwrap();
    assert_eq!(
        (changed.password_hash.as_str(), changed.password_changed_at),
        ("h2", T0 + 3)
    );
    assert!(matches!(
        store.set_password(UserId(user.0 + 1000), "x", T0).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_refresh_token_works_once_and_a_replay_ends_its_session(db: &Db) {
    let store = &db.store;
    let user = alice(store).await;
    let (session, _) = store
        .open_session(
            &sign_in(
                user,
                SessionKind::App,
                1,
                &[
                    (20, TokenKind::Access, T0 + 10),
                    (21, TokenKind::Refresh, T0 + 1000),
                ],
            ),
            T0,
        )
        .await
        .unwrap();
    let next = [
        NewToken {
            hash: vec![22; 32],
            kind: TokenKind::Access,
            expires_at: T0 + 20,
        },
        NewToken {
            hash: vec![23; 32],
            kind: TokenKind::Refresh,
            expires_at: T0 + 1000,
        },
    ];
    assert_eq!(
        store
            .rotate_refresh(&[21; 32], &next, T0 + 5)
            .await
            .unwrap(),
        RefreshOutcome::Rotated {
            session_id: session,
            user_id: user
        }
    );
    assert!(store.live_token(&[22; 32], T0 + 6).await.unwrap().is_some());
    assert_eq!(
        store.live_token(&[21; 32], T0 + 6).await.unwrap(),
        None,
        "a used refresh token is dead"
    );
    assert_eq!(
        store.rotate_refresh(&[99; 32], &[], T0 + 6).await.unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        store.rotate_refresh(&[20; 32], &[], T0 + 6).await.unwrap(),
        RefreshOutcome::Invalid,
        "an access token does not refresh"
    );

    // The old refresh token comes back: whoever holds it is not the session's owner.
    assert_eq!(
        store
            .rotate_refresh(&[21; 32], &next, T0 + 7)
            .await
            .unwrap(),
        RefreshOutcome::Reused
    );
    assert_eq!(
        store.live_token(&[22; 32], T0 + 8).await.unwrap(),
        None,
        "the whole session ended"
    );
    assert_eq!(
        store.rotate_refresh(&[23; 32], &[], T0 + 8).await.unwrap(),
        RefreshOutcome::Invalid
    );
    assert_eq!(
        store
            .rotate_refresh(&[99; 32], &[], T0 + 2000)
            .await
            .unwrap(),
        RefreshOutcome::Invalid
    );
}

async fn a_sign_in_from_a_new_device_queues_one_email_with_the_session(db: &Db) {
    let store = &db.store;
    let user = alice(store).await;
    let first = store
        .open_session(
            &sign_in(
                user,
                SessionKind::Browser,
                1,
                &[(30, TokenKind::Session, T0 + 100)],
            ),
            T0,
        )
        .await
        .unwrap();
    assert!(!first.1, "the first device of an account is not news");
    let again = store
        .open_session(
            &sign_in(
                user,
                SessionKind::Browser,
                1,
                &[(31, TokenKind::Session, T0 + 100)],
            ),
            T0,
        )
        .await
        .unwrap();
    assert!(!again.1);
    let other = store
        .open_session(
            &sign_in(
                user,
                SessionKind::App,
                2,
                &[(32, TokenKind::Access, T0 + 100)],
            ),
            T0,
        )
        .await
        .unwrap();
    assert!(other.1);
    assert_eq!(
        outbox_templates(db).await,
        ["new_device_login", "verify_email"]
    );
}

async fn a_second_factor_is_active_once_confirmed_and_each_step_and_recovery_code_works_once(
    db: &Db,
) {
    let store = &db.store;
    let user = alice(store).await;
    assert_eq!(store.totp(user).await.unwrap(), None);
    store.put_pending_totp(user, b"sealed-1", T0).await.unwrap();
    store.put_pending_totp(user, b"sealed-2", T0).await.unwrap();
    let pending = store.totp(user).await.unwrap().unwrap();
    assert_eq!(
        (pending.sealed_secret.as_slice(), pending.confirmed_at),
        (&b"sealed-2"[..], None)
    );
    assert!(
        !store.use_totp_step(user, 5).await.unwrap(),
        "not active before confirmation"
    );

    let codes = vec![vec![40u8; 32], vec![41u8; 32]];
    let changed = mail("alice@example.com", "two_factor_changed");
    assert!(
        store
            .confirm_totp(user, 100, &codes, &changed, T0 + 1)
            .await
            .unwrap()
    );
    assert!(
        !store
            .confirm_totp(user, 101, &codes, &changed, T0 + 1)
            .await
            .unwrap(),
        "confirmed once"
    );
    assert!(matches!(
        store.put_pending_totp(user, b"x", T0).await,
        Err(StoreError::Conflict)
    ));
    assert!(
        !store.use_totp_step(user, 100).await.unwrap(),
        "the confirming code's step is used"
    );
    assert!(store.use_totp_step(user, 101).await.unwrap());
    assert!(!store.use_totp_step(user, 101).await.unwrap(), "a replay");
    assert!(
        !store.use_totp_step(user, 99).await.unwrap(),
        "an older step"
    );

    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 2);
    assert!(
        store
            .use_recovery_code(user, &[40; 32], T0 + 2)
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(user, &[40; 32], T0 + 3)
            .await
            .unwrap()
    );
    assert!(
        !store
            .use_recovery_code(UserId(user.0 + 1), &[41; 32], T0 + 3)
            .await
            .unwrap(),
        "another account's code"
    );
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 1);

    store.remove_totp(user, &changed, T0 + 4).await.unwrap();
    assert_eq!(store.totp(user).await.unwrap(), None);
    assert_eq!(store.recovery_codes_left(user).await.unwrap(), 0);
    assert_eq!(
        outbox_templates(db).await,
        // Security notices first (issue 20, item 1), then the rest in order.
        ["two_factor_changed", "two_factor_changed", "verify_email"]
    );
}

async fn failures_lock_a_key_for_a_while_and_a_window_or_a_clear_forgets_them(db: &Db) {
    let store = &db.store;
    let key = "login:alice@example.com";
    for i in 0..4 {
        assert_eq!(
            store
                .record_failure(key, T0 + i, 5, 1000, 500)
                .await
                .unwrap(),
            None
        );
    }
    assert_eq!(store.locked_until(&[key], T0 + 4).await.unwrap(), None);
    assert_eq!(
        store
            .record_failure(key, T0 + 4, 5, 1000, 500)
            .await
            .unwrap(),
        Some(T0 + 504)
    );
    assert_eq!(
        store.locked_until(&["ip:1", key], T0 + 10).await.unwrap(),
        Some(T0 + 504)
    );
    assert_eq!(
        store.locked_until(&[key], T0 + 504).await.unwrap(),
        None,
        "the lock ends"
    );
    // The count restarted with the lock; failures outside the window start over.
    for i in 0..4 {
        store
            .record_failure(key, T0 + 600 + i * 2000, 5, 1000, 500)
            .await
            .unwrap();
    }
    assert_eq!(store.locked_until(&[key], T0 + 10_000).await.unwrap(), None);
    for i in 0..5 {
        store
            .record_failure(key, T0 + 20_000 + i, 5, 1000, 500)
            .await
            .unwrap();
    }
    assert!(
        store
            .locked_until(&[key], T0 + 20_010)
            .await
            .unwrap()
            .is_some()
    );
    store.clear_throttle(key).await.unwrap();
    assert_eq!(store.locked_until(&[key], T0 + 20_010).await.unwrap(), None);
}

async fn api_keys_are_listed_found_by_key_and_revoked_by_their_owner_only(db: &Db) {
    let store = &db.store;
    let user = alice(store).await;
    let key = NewApiKey {
        api_key: "K1".into(),
        user_id: user,
        label: "bot".into(),
        sealed_secret: b"sealed".to_vec(),
        permissions: "read,trade".into(),
        ip_allow_list: "127.0.0.1".into(),
    };
    let id = store.create_api_key(&key, T0).await.unwrap();
    assert!(matches!(
        store.create_api_key(&key, T0).await,
        Err(StoreError::Conflict)
    ));
    let found = store.api_key("K1").await.unwrap().unwrap();
    assert_eq!(
        (
            found.id,
            found.user_id,
            found.permissions.as_str(),
            found.revoked_at
        ),
        (id, user, "read,trade", None)
    );
    assert_eq!(store.api_keys_of(user).await.unwrap().len(), 1);
    assert!(
        !store
            .revoke_api_key(UserId(user.0 + 1), id, T0)
            .await
            .unwrap(),
        "not the owner"
    );
    assert!(store.revoke_api_key(user, id, T0 + 1).await.unwrap());
    assert!(
        !store.revoke_api_key(user, id, T0 + 2).await.unwrap(),
        "already revoked"
    );
    assert_eq!(
        store.api_key("K1").await.unwrap().unwrap().revoked_at,
        Some(T0 + 1)
    );
    assert_eq!(store.api_key("nope").await.unwrap(), None);
}

async fn profiles_default_to_nothing_and_keep_the_verification_level(db: &Db) {
    let store = &db.store;
    let user = alice(store).await;
    assert_eq!(store.profile(user).await.unwrap(), ProfileRecord::default());
    store.set_verification_level(user, 2, T0).await.unwrap();
    store
        .put_profile(user, Some("Alice"), Some("KR"), T0 + 1)
        .await
        .unwrap();
    assert_eq!(
        store.profile(user).await.unwrap(),
        ProfileRecord {
            display_name: Some("Alice".into()),
            country: Some("KR".into()),
            verification_level: 2
        }
    );
    assert_eq!(store.merchant(user).await.unwrap(), None);
    let mut shop = MerchantRecord {
        business_name: "Alice's".into(),
        website: None,
        settlement_asset: "USDT".into(),
        settlement_mode: "convert".into(),
        webhook_url: Some("https://alice.example/hook".into()),
        sealed_webhook_secret: b"s".to_vec(),
        created_at: T0,
        updated_at: T0,
    };
    store.put_merchant(user, &shop).await.unwrap();
    shop.website = Some("https://alice.example".into());
    shop.updated_at = T0 + 5;
    let replaced = MerchantRecord {
        created_at: T0 + 5,
        ..shop.clone()
    };
    store.put_merchant(user, &replaced).await.unwrap();
    assert_eq!(
        store.merchant(user).await.unwrap(),
        Some(shop),
        "created_at is kept"
    );
}

async fn a_password_reset_uses_its_token_sets_the_password_and_ends_sessions_at_once(db: &Db) {
    let store = &db.store;
    let user = alice(store).await;
    store
        .open_session(
            &sign_in(
                user,
                SessionKind::Browser,
                1,
                &[(50, TokenKind::Session, T0 + 100)],
            ),
            T0,
        )
        .await
        .unwrap();
    store
        .issue_token(
            user,
            &token(2, Purpose::ResetPassword, T0 + 50),
            &mail("alice@example.com", "password_reset"),
            T0,
        )
        .await
        .unwrap();
    store
        .record_failure("login:alice@example.com", T0, 1, 1000, 1000)
        .await
        .unwrap();
    assert_eq!(
        store
            .peek_token(&[2; 32], Purpose::ResetPassword, T0 + 1)
            .await
            .unwrap(),
        user
    );
    assert!(matches!(
        store
            .peek_token(&[2; 32], Purpose::VerifyEmail, T0 + 1)
            .await,
        Err(StoreError::TokenInvalid)
    ));
    let key = |email: &str| format!("login:{email}");
    let mail = |email: &str| Mail {
        recipient: email.to_owned(),
        template: "password_changed".to_owned(),
        payload: "{}".to_owned(),
    };
    assert_eq!(
        store
            .complete_password_reset(&[2; 32], "new", key, mail, T0 + 2)
            .await
            .unwrap(),
        user
    );
    assert!(matches!(
        store
            .complete_password_reset(&[2; 32], "newer", key, mail, T0 + 3)
            .await,
        Err(StoreError::TokenInvalid)
    ));
    let changed = store.user(user).await.unwrap().unwrap();
    assert_eq!(
        (changed.password_hash.as_str(), changed.email_verified_at),
        ("new", Some(T0 + 2))
    );
    assert_eq!(store.live_token(&[50; 32], T0 + 3).await.unwrap(), None);
    assert_eq!(
        store
            .locked_until(&["login:alice@example.com"], T0 + 3)
            .await
            .unwrap(),
        None,
        "the lockout is lifted"
    );
}

async fn the_outbox_hands_out_due_mail_and_records_each_delivery_once(db: &Db) {
    let store = &db.store;
    for (i, address) in ["a@example.com", "b@example.com", "c@example.com"]
        .iter()
        .enumerate()
    {
        store
            .create_user(
                address,
                "h",
                T0,
                &token(i as u8 + 1, Purpose::VerifyEmail, T0 + 1000),
                &mail(address, "verify_email"),
            )
            .await
            .unwrap();
    }
    let due = store.due_mail(T0, 2).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|m| m.mail.recipient.as_str())
            .collect::<Vec<_>>(),
        ["a@example.com", "b@example.com"]
    );
    assert!(store.mark_sent(due[0].id, T0 + 1).await.unwrap());
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let payload: String = sqlx::Row::get(
        &sqlx::query("SELECT payload FROM outbox WHERE id = $1")
            .bind(due[0].id)
            .fetch_one(&mut conn)
            .await
            .unwrap(),
        0,
    );
    assert_eq!(payload, "{}", "a delivered message keeps no token");
    sqlx::Connection::close(conn).await.unwrap();
    assert!(
        !store.mark_sent(due[0].id, T0 + 2).await.unwrap(),
        "a second record of one delivery changes nothing"
    );
    store
        .mark_failed(due[1].id, "421 try later", T0 + 60_000)
        .await
        .unwrap();
    let due = store.due_mail(T0 + 1, 10).await.unwrap();
    assert_eq!(
        due.iter()
            .map(|m| m.mail.recipient.as_str())
            .collect::<Vec<_>>(),
        ["c@example.com"]
    );
    let later = store.due_mail(T0 + 60_000, 10).await.unwrap();
    assert_eq!(later.len(), 2);
    assert_eq!(
        (later[0].mail.recipient.as_str(), later[0].attempts),
        ("b@example.com", 1)
    );
}

async fn reopening_keeps_the_data_and_runs_no_migration_twice(db: &Db) {
    let store = &db.store;
    let user = store
        .create_user(
            "alice@example.com",
            "h",
            T0,
            &token(1, Purpose::VerifyEmail, T0 + 1000),
            &mail("alice@example.com", "verify_email"),
        )
        .await
        .unwrap();
    let again = Store::open(&db.url).await.unwrap();
    assert_eq!(
        again.user_by_email("alice@example.com").await.unwrap(),
        Some(user)
    );
    again.close().await;
}

async fn oidc_codes_work_once_and_a_replay_revokes_their_tokens(db: &Db) {
    let store = &db.store;
    let user = alice(store).await;
    let client = OidcClient {
        client_id: "c1".into(),
        secret_hash: Some(vec![7; 32]),
        name: "Partner".into(),
        redirect_uris: vec!["https://a.example/cb".into(), "https://b.example/cb".into()],
        first_party: false,
    };
    store.create_oidc_client(&client, T0).await.unwrap();
    assert!(matches!(
        store.create_oidc_client(&client, T0).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(store.oidc_client("c1").await.unwrap(), Some(client));
    assert_eq!(store.oidc_consent(user, "c1").await.unwrap(), None);
    store
        .grant_oidc_consent(user, "c1", "openid", T0)
        .await
        .unwrap();
    store
        .grant_oidc_consent(user, "c1", "openid email", T0)
        .await
        .unwrap();
    assert_eq!(
        store.oidc_consent(user, "c1").await.unwrap().as_deref(),
        Some("openid email")
    );

    let code = OidcCode {
        code_hash: vec![60; 32],
        client_id: "c1".into(),
        user_id: user,
        redirect_uri: "https://a.example/cb".into(),
        scopes: "openid email".into(),
        nonce: Some("n".into()),
        code_challenge: "x".repeat(43),
        auth_time: T0,
        expires_at: T0 + 60,
    };
    store.create_oidc_code(&code).await.unwrap();
    assert_eq!(
        store.redeem_oidc_code(&[60; 32], T0 + 1).await.unwrap(),
        CodeOutcome::Redeemed(code.clone())
    );
    store
        .create_oidc_token(&[61; 32], &code, T0 + 100)
        .await
        .unwrap();
    assert_eq!(
        store.oidc_token(&[61; 32], T0 + 2).await.unwrap(),
        Some((user, "c1".to_owned(), "openid email".to_owned()))
    );
    assert_eq!(
        store.redeem_oidc_code(&[60; 32], T0 + 3).await.unwrap(),
        CodeOutcome::Reused
    );
    assert_eq!(
        store.oidc_token(&[61; 32], T0 + 4).await.unwrap(),
        None,
        "revoked by the replay"
    );
    assert_eq!(
        store.redeem_oidc_code(&[99; 32], T0).await.unwrap(),
        CodeOutcome::Invalid
    );
    let late = OidcCode {
        code_hash: vec![62; 32],
        ..code
    };
    store.create_oidc_code(&late).await.unwrap();
    assert_eq!(
        store.redeem_oidc_code(&[62; 32], T0 + 60).await.unwrap(),
        CodeOutcome::Invalid,
        "expired"
    );

    let key = |kid: &str, at: i64| OidcKey {
        kid: kid.into(),
        sealed_private_key: vec![1],
        public_key: vec![2],
        created_at: at,
        retired_at: None,
    };
    store.add_oidc_key(&key("k1", T0), T0).await.unwrap();
    store
        .add_oidc_key(&key("k2", T0 + 10), T0 + 10)
        .await
        .unwrap();
    let keys = store.oidc_keys().await.unwrap();
    assert_eq!(
        (keys[0].kid.as_str(), keys[0].retired_at, keys[1].retired_at),
        ("k2", None, Some(T0 + 10))
    );
    assert_eq!(
        store.drop_oidc_keys_retired_before(T0 + 10).await.unwrap(),
        0
    );
    assert_eq!(
        store.drop_oidc_keys_retired_before(T0 + 11).await.unwrap(),
        1
    );
    assert_eq!(store.oidc_keys().await.unwrap().len(), 1);
}

async fn a_username_is_given_once_for_good_and_a_dao_report_is_written_once(db: &Db) {
    let store = &db.store;
    let alice = alice(store).await;
    let bob = user_with(store, "bob@example.com", 2).await;
    assert_eq!(
        store.claim_username(alice, "alice", T0).await.unwrap(),
        UsernameClaim::Claimed
    );
    assert_eq!(
        store.claim_username(alice, "alice", T0).await.unwrap(),
        UsernameClaim::AlreadyYours
    );
    assert_eq!(
        store.claim_username(alice, "alice2", T0).await.unwrap(),
        UsernameClaim::HasAnother("alice".into())
    );
    assert_eq!(
        store.claim_username(bob, "alice", T0).await.unwrap(),
        UsernameClaim::Taken
    );
    assert_eq!(store.username_of(bob).await.unwrap(), None);
    assert_eq!(
        store.usernames().await.unwrap(),
        vec![("alice".to_owned(), alice, T0)]
    );

    // A report with more holders than one statement takes, written twice.
    let holders: Vec<(i64, Amount)> = (0..4_500)
        .map(|i| (1_000 + i, Amount(u128::try_from(i * 3).unwrap())))
        .collect();
    let report = DaoReportRecord {
        week: DaoWeekRecord {
            close_ms: T0,
            week: "2023-W46".into(),
            block_number: None,
            holders: 4_500,
            total: Amount(123),
            root: "ab".repeat(32),
            created_at: T0,
            paid_at: None,
        },
        assets: vec![DaoAssetRecord {
            asset: 1,
            pool: Amount(100),
            total: Amount(123),
            holders: 3,
            paid: Amount(99),
            carried: Amount(1),
        }],
        holders: holders.clone(),
        chain: vec![DaoChainRecord {
            address: "0x00000000000000000000000000000000000000aA".into(),
            amount: Amount(5),
            account: None,
            rule: "none".into(),
        }],
    };
    assert!(store.save_dao_report(&report).await.unwrap());
    let mut again = report.clone();
    again.week.root = "cd".repeat(32);
    assert!(
        !store.save_dao_report(&again).await.unwrap(),
        "written once"
    );
    let week = store.dao_week("2023-W46").await.unwrap().unwrap();
    assert_eq!(week, report.week);
    assert_eq!(
        store.dao_week_at(T0).await.unwrap(),
        Some(report.week.clone())
    );
    assert_eq!(
        store.dao_weeks(10).await.unwrap(),
        vec![report.week.clone()]
    );
    assert_eq!(store.dao_week_assets(T0).await.unwrap(), report.assets);
    assert_eq!(store.dao_holdings(T0).await.unwrap(), holders);
    assert_eq!(
        store.dao_holdings_of(1_002, 5).await.unwrap(),
        vec![(T0, 2, Amount(6))]
    );
    assert_eq!(store.dao_chain_holdings(T0).await.unwrap(), report.chain);
    store.mark_dao_paid(T0, T0 + 5).await.unwrap();
    store.mark_dao_paid(T0, T0 + 9).await.unwrap();
    assert_eq!(
        store.dao_week_at(T0).await.unwrap().unwrap().paid_at,
        Some(T0 + 5),
        "paid once"
    );
}

async fn a_status_change_is_a_compare_and_set_that_one_of_many_racers_wins(db: &Db) {
    let store = &db.store;
    let user = alice(store).await;
    let (withdrawal, created) = store
        .create_withdrawal(
            &NewWithdrawal {
                user_id: user,
                chain_id: 31337,
                asset: "ETH".into(),
                to_address: "0x00000000000000000000000000000000000000d2".into(),
                amount: Amount(10),
                fee: Amount(1),
                idempotency_key: "k".into(),
                request_key: 7,
                review_reason: None,
            },
            None,
            T0,
        )
        .await
        .unwrap();
    assert!(created);
    assert_eq!(withdrawal.status, WithdrawalStatus::Requested);
    assert_eq!((withdrawal.amount, withdrawal.fee), (Amount(10), Amount(1)));
    // Eight racers move it out of `requested` at once: one wins, the others change nothing.
    let racers: Vec<_> = (0..8)
        .map(|n| {
            let store = store.clone();
            let to = if n % 2 == 0 {
                WithdrawalStatus::Held
            } else {
                WithdrawalStatus::Rejected
            };
            tokio::spawn(async move {
                store
                    .set_withdrawal_status(
                        withdrawal.id,
                        &[WithdrawalStatus::Requested],
                        to,
                        None,
                        None,
                        T0 + 1,
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        won += usize::from(racer.await.unwrap());
    }
    assert_eq!(won, 1, "exactly one status change from `requested`");
    let now = store.withdrawal(withdrawal.id).await.unwrap().unwrap();
    assert_ne!(now.status, WithdrawalStatus::Requested);
    let history = store
        .wallet_events(Subject::Withdrawal, withdrawal.id)
        .await
        .unwrap();
    assert_eq!(history.len(), 2, "{history:?}");
    assert_eq!(history[1].status, now.status.as_str());
    // From a state it is not in: refused, nothing recorded.
    assert!(
        !store
            .set_withdrawal_status(
                withdrawal.id,
                &[WithdrawalStatus::Broadcast],
                WithdrawalStatus::Settled,
                None,
                Some(9),
                T0 + 2,
            )
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .wallet_events(Subject::Withdrawal, withdrawal.id)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(matches!(
        store
            .set_withdrawal_status(
                404,
                &[WithdrawalStatus::Held],
                WithdrawalStatus::Cancelling,
                None,
                None,
                T0
            )
            .await,
        Err(StoreError::NotFound)
    ));

    // A transfer ends once.
    let bob = user_with(store, "bob@example.com", 2).await;
    let (transfer, _) = store
        .create_transfer(
            &coss_store::NewTransfer {
                from_user: user,
                to_user: bob,
                asset: "ETH".into(),
                amount: Amount(5),
                idempotency_key: "t".into(),
                request_key: u64::MAX,
            },
            None,
            T0,
        )
        .await
        .unwrap();
    assert_eq!(transfer.status, TransferStatus::Requested);
    assert_eq!(
        transfer.request_key,
        Some(u64::MAX),
        "the whole u64 survives"
    );
    let settle = |from, to| store.set_transfer_status(transfer.id, from, to);
    assert!(
        settle(TransferStatus::Requested, TransferStatus::Settled)
            .await
            .unwrap()
    );
    assert!(
        !settle(TransferStatus::Requested, TransferStatus::Rejected)
            .await
            .unwrap()
    );
    let transfers = store.transfers_of(bob, 10).await.unwrap();
    assert_eq!(
        (transfers[0].status, transfers[0].amount),
        (TransferStatus::Settled, Amount(5))
    );
}

async fn invoices_their_payments_moves_and_webhook_deliveries_keep_their_order_and_states(db: &Db) {
    use coss_store::{
        DeliveryAttempt, DeliveryStatus, InvoiceAsset, InvoiceFilter, InvoiceStatus, MoveStatus,
        NewInvoice, NewMove,
    };
    let store = &db.store;
    let shop = alice(store).await;
    let new = NewInvoice {
        public_id: "inv_1".into(),
        merchant_id: shop,
        idempotency: Some(("k1".into(), "hash-a".into())),
        currency: "USD".into(),
        price: "10".into(),
        tax: "1".into(),
        tip: "0".into(),
        expires_at: T0 + 900_000,
        monitor_until: T0 + 86_400_000,
        tolerance_ppm: 0,
        order_id: Some("A-1".into()),
        buyer_email: None,
        description: None,
        metadata: Some("{}".into()),
        redirect_url: None,
        source: "api".into(),
        fiat_currency: Some("USD".into()),
        assets: vec![InvoiceAsset {
            asset: "ETH".into(),
            due: Amount(3_333_333_333_333_334),
            rate: Some("3000".into()),
            rate_sources: Some("quotes=3000".into()),
            fiat_rate: Some("3000".into()),
            confirmations: 3,
        }],
    };
    let (invoice, created) = store.create_invoice(&new, T0).await.unwrap();
    assert!(created);
    // The same idempotency key gives the same invoice.
    let (again, created) = store
        .create_invoice(
            &NewInvoice {
                public_id: "inv_2".into(),
                ..new.clone()
            },
            T0,
        )
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.id, invoice.id);
    assert_eq!(store.invoice_assets(invoice.id).await.unwrap(), new.assets);
    store
        .set_invoice_address(invoice.id, 31337, "0xab")
        .await
        .unwrap();
    assert!(matches!(
        store.set_invoice_address(invoice.id, 31337, "0xcd").await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.invoice_addresses_since(31337, T0).await.unwrap(),
        vec![("0xab".to_owned(), shop, invoice.id, T0)]
    );
    // Filters (empty ones match everything).
    let all = store
        .invoices_of(shop, &InvoiceFilter::default(), 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 1);
    let settled = InvoiceFilter {
        status: Some(InvoiceStatus::Settled),
        ..InvoiceFilter::default()
    };
    assert!(
        store
            .invoices_of(shop, &settled, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let by_order = InvoiceFilter {
        order_id: Some("A-1".into()),
        ..InvoiceFilter::default()
    };
    assert_eq!(
        store.invoices_of(shop, &by_order, 10).await.unwrap().len(),
        1
    );
    // Status changes are compare-and-set.
    let new_state = (InvoiceStatus::New, 0);
    assert!(
        store
            .set_invoice_state(invoice.id, new_state, (InvoiceStatus::Settled, 2), T0 + 5)
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_invoice_state(invoice.id, new_state, (InvoiceStatus::Expired, 0), T0 + 6)
            .await
            .unwrap()
    );
    let now = store.invoice(invoice.id).await.unwrap().unwrap();
    assert_eq!(
        (now.status, now.flags, now.settled_at),
        (InvoiceStatus::Settled, 2, Some(T0 + 5))
    );
    assert_eq!(
        store.overdue_invoices(T0 + 1_000_000, 10).await.unwrap(),
        Vec::<i64>::new()
    );
    // A payment from a balance counts against the payer's outflow limit.
    let limit = coss_store::OutflowLimit {
        limit: Amount(100),
        since: T0 - 1,
    };
    let paid = store
        .create_balance_payment(invoice.id, shop, "ETH", Amount(60), 7, Some(limit), T0)
        .await
        .unwrap();
    assert!(matches!(
        store
            .create_balance_payment(invoice.id, shop, "ETH", Amount(41), 8, Some(limit), T0)
            .await,
        Err(StoreError::OverLimit { used: Amount(60) })
    ));
    assert!(
        store
            .finish_balance_payment(paid.id, MoveStatus::Done, T0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .finish_balance_payment(paid.id, MoveStatus::Rejected, T0)
            .await
            .unwrap()
    );
    // Moves: recorded, then finished once.
    let recorded = store
        .create_move(
            &NewMove {
                invoice_id: invoice.id,
                kind: "settlement".into(),
                asset: "ETH".into(),
                amount: Amount(60),
                fee: Amount(1),
                fee_ppm: 7_500,
                from_gateway: true,
                payer_id: None,
                token_hash: None,
                request_key: u64::MAX,
                status: MoveStatus::Requested,
            },
            None,
            T0,
        )
        .await
        .unwrap();
    assert_eq!(recorded.request_key, u64::MAX);
    assert_eq!(store.requested_moves(10).await.unwrap().len(), 1);
    assert!(
        store
            .set_move_status(
                recorded.id,
                MoveStatus::Requested,
                MoveStatus::Done,
                None,
                T0
            )
            .await
            .unwrap()
    );
    assert!(
        !store
            .set_move_status(
                recorded.id,
                MoveStatus::Requested,
                MoveStatus::Rejected,
                None,
                T0
            )
            .await
            .unwrap()
    );
    assert!(store.requested_moves(10).await.unwrap().is_empty());
    // Webhooks: an event makes a delivery per interested endpoint; per endpoint, in order
    // until the oldest has had its ordered attempts.
    let all_events = store
        .add_webhook_endpoint(shop, "https://a.example/h", b"s", "*", T0)
        .await
        .unwrap();
    let created_only = store
        .add_webhook_endpoint(shop, "https://b.example/h", b"s", "invoice.created", T0)
        .await
        .unwrap();
    store
        .record_webhook_event("evt_1", shop, Some(invoice.id), "invoice.settled", "{}", T0)
        .await
        .unwrap();
    store
        .record_webhook_event("evt_2", shop, Some(invoice.id), "invoice.created", "{}", T0)
        .await
        .unwrap();
    let due = store.due_deliveries(T0, 3, 10).await.unwrap();
    let heads: Vec<(i64, &str)> = due
        .iter()
        .map(|d| (d.endpoint_id, d.event.public_id.as_str()))
        .collect();
    assert_eq!(
        heads,
        [(all_events.id, "evt_1"), (created_only.id, "evt_2")]
    );
    let head = &due[0];
    let attempt = |at| DeliveryAttempt {
        id: 0,
        delivery_id: head.id,
        at,
        duration_ms: 5,
        status_code: Some(500),
        error: None,
        response: Some("no".into()),
    };
    for n in 0..3 {
        assert!(
            store
                .record_attempt(
                    head.id,
                    n,
                    &attempt(T0 + n),
                    DeliveryStatus::Pending,
                    T0 + 1_000
                )
                .await
                .unwrap()
        );
    }
    // A stale attempt count is refused (two senders cannot both record).
    assert!(
        !store
            .record_attempt(head.id, 0, &attempt(T0), DeliveryStatus::Delivered, T0)
            .await
            .unwrap()
    );
    let due = store.due_deliveries(T0 + 10, 3, 10).await.unwrap();
    assert!(
        due.iter()
            .any(|d| d.endpoint_id == all_events.id && d.event.public_id == "evt_2"),
        "after three tries the head no longer blocks its endpoint"
    );
    assert_eq!(store.delivery_attempts(head.id).await.unwrap().len(), 3);
    assert_eq!(
        store
            .deliveries_of(shop, Some(all_events.id), 10)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(store.redeliver(head.id, T0 + 20).await.unwrap());
    assert!(
        store
            .set_webhook_enabled(shop, all_events.id, false)
            .await
            .unwrap()
    );
    store
        .record_webhook_event("evt_3", shop, None, "invoice.settled", "{}", T0)
        .await
        .unwrap();
    assert_eq!(
        store
            .deliveries_of(shop, Some(all_events.id), 10)
            .await
            .unwrap()
            .len(),
        2
    );
}
