//! The same specification run against both backends: an SQLite file in a temporary
//! directory, and a fresh database on the PostgreSQL server at 127.0.0.1:5432 (trust auth;
//! `COSS_TEST_POSTGRES` overrides the admin URL), dropped afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_store::{Backend, EmailToken, Mail, Purpose, Store, StoreError};

struct Db {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
    drop_pg: Option<(String, String)>,
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
        let admin = std::env::var("COSS_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
        let name = format!(
            "coss_test_{:016x}",
            rand::TryRngCore::try_next_u64(&mut rand::rngs::OsRng).unwrap()
        );
        sqlx::any::install_default_drivers();
        let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').unwrap().0;
        let url = format!("{base}/{name}");
        let store = Store::open(&url).await.unwrap();
        assert_eq!(store.backend(), Backend::Postgres);
        Self {
            store,
            url,
            _dir: None,
            drop_pg: Some((admin, name)),
        }
    }

    async fn finish(self) {
        self.store.close().await;
        if let Some((admin, name)) = self.drop_pg {
            let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
                .await
                .unwrap();
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await
            .unwrap();
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
    the_outbox_hands_out_due_mail_and_records_each_delivery_once,
    reopening_keeps_the_data_and_runs_no_migration_twice,
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
    store
        .issue_token(
            user.id,
            &token(2, Purpose::ResetPassword, T0 + 1000),
            &mail("alice@example.com", "password_reset"),
            T0,
        )
        .await
        .unwrap();
    store
        .issue_token(
            user.id,
            &token(3, Purpose::ResetPassword, T0 + 10),
            &mail("alice@example.com", "password_reset"),
            T0,
        )
        .await
        .unwrap();

    let invalid = |r: Result<i64, StoreError>| matches!(r, Err(StoreError::TokenInvalid));
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
        user.id
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
        user.id
    );
    assert!(invalid(
        store
            .use_token(&[1; 32], Purpose::VerifyEmail, T0 + 999)
            .await
    ));
}

async fn sessions_live_until_revoked_or_expired_and_a_password_change_ends_the_others(db: &Db) {
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
    for byte in [10u8, 11, 12] {
        store
            .create_session(&[byte; 32], user.id, T0, T0 + 100)
            .await
            .unwrap();
    }
    assert_eq!(
        store.session_user(&[10; 32], T0 + 99).await.unwrap(),
        Some(user.id)
    );
    assert_eq!(
        store.session_user(&[10; 32], T0 + 100).await.unwrap(),
        None,
        "expired"
    );
    assert_eq!(
        store.session_user(&[99; 32], T0).await.unwrap(),
        None,
        "unknown"
    );
    store.revoke_session(&[10; 32], T0 + 1).await.unwrap();
    assert_eq!(
        store.session_user(&[10; 32], T0 + 2).await.unwrap(),
        None,
        "revoked"
    );

    store.set_password(user.id, "h2", T0 + 3).await.unwrap();
    assert_eq!(
        store
            .revoke_other_sessions(user.id, Some(&[11; 32]), T0 + 3)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        store.session_user(&[11; 32], T0 + 4).await.unwrap(),
        Some(user.id)
    );
    assert_eq!(store.session_user(&[12; 32], T0 + 4).await.unwrap(), None);
    let changed = store.user(user.id).await.unwrap().unwrap();
    assert_eq!(
        (changed.password_hash.as_str(), changed.password_changed_at),
        ("h2", T0 + 3)
    );
    assert!(matches!(
        store.set_password(user.id + 1000, "x", T0).await,
        Err(StoreError::NotFound)
    ));
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
