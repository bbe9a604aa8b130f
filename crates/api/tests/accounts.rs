//! The accounts API in process (the router as `coss up` mounts it), on a real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use coss_identity::Accounts;
use coss_store::Store;
use serde_json::{Value, json};
use tower::ServiceExt;

struct Api {
    router: Router,
    accounts: Accounts,
    _dir: tempfile::TempDir,
}

impl Api {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let accounts = Accounts::new(
            Store::open_in(dir.path()).await.unwrap(),
            coss_identity::Vault::random().unwrap(),
        )
        .unwrap();
        Self {
            router: coss_api::router(coss_http::Gate::new(accounts.clone())).into_router(),
            accounts,
            _dir: dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        (status, value)
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = Request::get(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// The token in the newest queued email of `template` (a reset link is queued just after
    /// the answer, so it is waited for).
    async fn emailed(&self, template: &str) -> String {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let mail = self.accounts.store().due_mail(i64::MAX, 100).await.unwrap();
            if let Some(last) = mail.iter().rev().find(|m| m.mail.template == template) {
                let payload: Value = serde_json::from_str(&last.mail.payload).unwrap();
                return payload["token"].as_str().unwrap().to_owned();
            }
            assert!(std::time::Instant::now() < deadline, "no {template} email");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    async fn verified_login(&self, email: &str, password: &str) -> String {
        assert_eq!(
            self.post(
                "/api/v1/auth/signup",
                json!({"email": email, "password": password})
            )
            .await
            .0,
            StatusCode::ACCEPTED
        );
        let token = self.emailed("verify_email").await;
        assert_eq!(
            self.post("/api/v1/auth/verify-email", json!({"token": token}))
                .await
                .0,
            StatusCode::OK
        );
        let (status, body) = self
            .post(
                "/api/v1/auth/login",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

fn assert_error(got: (StatusCode, Value), status: StatusCode, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["code"], code, "{}", got.1);
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}

const PASSWORD: &str = "correct horse battery";

#[tokio::test]
async fn sign_up_verify_log_in_read_me_and_log_out() {
    let api = Api::new().await;
    let (status, body) = api
        .post(
            "/api/v1/auth/signup",
            json!({"email": "Alice@Example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"email_verification": "sent"}), "no account id");

    let login = json!({"email": "alice@example.com", "password": PASSWORD});
    assert_error(
        api.post("/api/v1/auth/login", login.clone()).await,
        StatusCode::FORBIDDEN,
        "email_unverified",
    );

    let token = api.emailed("verify_email").await;
    let (status, body) = api
        .post("/api/v1/auth/verify-email", json!({"token": token}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let user_id = body["user_id"].as_i64().unwrap();
    assert_error(
        api.post("/api/v1/auth/verify-email", json!({"token": token}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    );

    let (status, body) = api.post("/api/v1/auth/login", login).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let access = body["access_token"].as_str().unwrap().to_owned();

    let (status, me) = api.get("/api/v1/me", Some(&access)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["email_verified"], true);
    assert_eq!(me["user_id"].as_i64(), Some(user_id));

    let request = Request::post("/api/v1/auth/logout")
        .header(header::AUTHORIZATION, format!("Bearer {access}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.send(request).await.0, StatusCode::NO_CONTENT);
    assert_error(
        api.get("/api/v1/me", Some(&access)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn every_bad_input_gets_a_clear_error_and_changes_nothing() {
    let api = Api::new().await;
    let signup = "/api/v1/auth/signup";
    assert_error(
        api.post(signup, json!({"email": "nope", "password": PASSWORD}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_email",
    );
    assert_error(
        api.post(
            signup,
            json!({"email": "a@example.com", "password": "short"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "weak_password",
    );
    assert_error(
        api.post(signup, json!({"email": "a@example.com"})).await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    );
    assert_error(
        api.post(
            signup,
            json!({"email": "a@example.com", "password": PASSWORD, "admin": true}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    );
    let raw = Request::post(signup)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .unwrap();
    assert_error(
        api.send(raw).await,
        StatusCode::BAD_REQUEST,
        "malformed_request",
    );
    let text = Request::post(signup)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    assert_error(
        api.send(text).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let huge = json!({"email": "a@example.com", "password": "x".repeat(coss_http::MAX_BODY_BYTES)});
    assert_error(
        api.post(signup, huge).await,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    assert_eq!(
        api.accounts
            .store()
            .due_mail(i64::MAX, 100)
            .await
            .unwrap()
            .len(),
        0,
        "nothing was queued"
    );

    assert_eq!(
        api.post(
            signup,
            json!({"email": "a@example.com", "password": PASSWORD})
        )
        .await
        .0,
        StatusCode::ACCEPTED
    );

    assert_error(
        api.post(
            "/api/v1/auth/verify-email",
            json!({"token": "0".repeat(64)}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    );
    assert_error(
        api.post("/api/v1/auth/verify-email", json!({"token": "zz"}))
            .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    );
    assert_error(
        api.get("/api/v1/me", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_error(
        api.get("/api/v1/me", Some(&"f".repeat(64))).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_account_look_the_same() {
    let api = Api::new().await;
    api.verified_login("alice@example.com", PASSWORD).await;
    let wrong = api
        .post(
            "/api/v1/auth/login",
            json!({"email": "alice@example.com", "password": "not the password"}),
        )
        .await;
    let unknown = api
        .post(
            "/api/v1/auth/login",
            json!({"email": "bob@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(
        wrong.clone(),
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn a_password_reset_answers_the_same_for_anyone_and_ends_every_session() {
    let api = Api::new().await;
    let access = api.verified_login("alice@example.com", PASSWORD).await;
    let nobody = api
        .post(
            "/api/v1/auth/password-reset",
            json!({"email": "nobody@example.com"}),
        )
        .await;
    let alice = api
        .post(
            "/api/v1/auth/password-reset",
            json!({"email": "alice@example.com"}),
        )
        .await;
    assert_eq!(nobody.0, StatusCode::ACCEPTED);
    assert_eq!(nobody, alice);

    let token = api.emailed("password_reset").await;
    let confirm = "/api/v1/auth/password-reset/confirm";
    assert_error(
        api.post(confirm, json!({"token": token, "password": "short"}))
            .await,
        StatusCode::BAD_REQUEST,
        "weak_password",
    );
    let (status, body) = api
        .post(
            confirm,
            json!({"token": token, "password": "a brand new password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_error(
        api.post(
            confirm,
            json!({"token": token, "password": "another new password"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "invalid_token",
    );
    assert_error(
        api.get("/api/v1/me", Some(&access)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    let (status, _) = api
        .post(
            "/api/v1/auth/login",
            json!({"email": "alice@example.com", "password": "a brand new password"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

/// Defect (issue 20, item 3): sign-up answered `email_taken` (409) for an address with an
/// account, telling anyone who is a customer. Now it answers alike, and the owner is told.
#[tokio::test]
async fn sign_up_answers_alike_whether_or_not_the_address_has_an_account() {
    let api = Api::new().await;
    api.verified_login("alice@example.com", PASSWORD).await;
    let taken = api
        .post(
            "/api/v1/auth/signup",
            json!({"email": "alice@example.com", "password": "someone else's password"}),
        )
        .await;
    let fresh = api
        .post(
            "/api/v1/auth/signup",
            json!({"email": "bob@example.com", "password": "someone else's password"}),
        )
        .await;
    assert_eq!(taken, fresh);
    assert_eq!(taken.0, StatusCode::ACCEPTED);
    let mail = api.accounts.store().due_mail(i64::MAX, 100).await.unwrap();
    assert!(mail.iter().any(|m| {
        m.mail.recipient == "alice@example.com" && m.mail.template == "account_exists"
    }));
    // Alice's account is unchanged.
    let (status, body) = api
        .post(
            "/api/v1/auth/login",
            json!({"email": "alice@example.com", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// Defect (issue 20, item 1): reset requests were unthrottled, so one client could queue
/// millions of emails to a victim. Past five an hour for one recipient the answer is 429,
/// alike for an address with an account and one without.
#[tokio::test]
async fn reset_requests_for_one_recipient_are_limited_alike_with_or_without_an_account() {
    let api = Api::new().await;
    api.verified_login("alice@example.com", PASSWORD).await;
    // Alice's sign-up sent her one email already.
    for (email, sent) in [("alice@example.com", 1), ("nobody@example.com", 0)] {
        for _ in sent..coss_identity::MAILS_PER_RECIPIENT {
            let (status, _) = api
                .post("/api/v1/auth/password-reset", json!({"email": email}))
                .await;
            assert_eq!(status, StatusCode::ACCEPTED, "{email}");
        }
        assert_error(
            api.post("/api/v1/auth/password-reset", json!({"email": email}))
                .await,
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
        );
    }
}
