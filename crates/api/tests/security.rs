//! Sessions, CSRF, throttling, the second factor, API keys, profiles and the OpenAPI document
//! through the HTTP API in process, on a real SQLite store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::ConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use coss_identity::{Accounts, Vault, sign, totp_code};
use coss_store::Store;
use serde_json::{Value, json};
use tower::ServiceExt;

const PASSWORD: &str = "correct horse battery";

enum As<'a> {
    Nobody,
    Bearer(&'a str),
    Cookie {
        session: &'a str,
        csrf: Option<&'a str>,
    },
}

struct Api {
    router: Router,
    accounts: Accounts,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
}

impl Reply {
    fn error(&self, status: StatusCode, code: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert!(self.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    fn ok(&self, status: StatusCode) -> &Value {
        assert_eq!(self.status, status, "{}", self.body);
        &self.body
    }
}

impl Api {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_in(dir.path()).await.unwrap();
        let accounts = Accounts::new(store, Vault::random().unwrap()).unwrap();
        Self {
            router: coss_http::with_json_fallbacks(
                coss_api::router(coss_http::Gate::new(accounts.clone())).into_router(),
            ),
            accounts,
            _dir: dir,
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>, who: As<'_>) -> Reply {
        self.call_from(method, path, body, who, "127.0.0.1:50000")
            .await
    }

    async fn call_from(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        who: As<'_>,
        peer: &str,
    ) -> Reply {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::USER_AGENT, "tests");
        match who {
            As::Nobody => {}
            As::Bearer(token) => {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"))
            }
            As::Cookie { session, csrf } => {
                request = request.header(
                    header::COOKIE,
                    format!("theme=dark; __Host-coss_session={session}"),
                );
                if let Some(csrf) = csrf {
                    request = request.header("X-CSRF-Token", csrf);
                }
            }
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = request.body(body).unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap()
        };
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn signed_whoami(&self, key: &str, query: &str, peer: &str) -> Reply {
        self.signed_whoami_with_body(key, query, peer, b"").await
    }

    async fn signed_whoami_with_body(
        &self,
        key: &str,
        query: &str,
        peer: &str,
        body: &'static [u8],
    ) -> Reply {
        let mut request = Request::get(format!("/api/v1/api-keys/self?{query}"))
            .header("X-MBX-APIKEY", key)
            .body(Body::from(body))
            .unwrap();
        request
            .extensions_mut()
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        Reply {
            status,
            headers: HeaderMap::new(),
            body: serde_json::from_slice(&bytes).unwrap(),
        }
    }

    /// Signs up and verifies `email`; returns an app access token.
    async fn member(&self, email: &str) -> String {
        self.call(
            Method::POST,
            "/api/v1/auth/signup",
            Some(json!({"email": email, "password": PASSWORD})),
            As::Nobody,
        )
        .await
        .ok(StatusCode::ACCEPTED);
        let mail = self.accounts.store().due_mail(i64::MAX, 100).await.unwrap();
        let payload: Value = serde_json::from_str(
            &mail
                .iter()
                .rev()
                .find(|m| m.mail.recipient == email)
                .unwrap()
                .mail
                .payload,
        )
        .unwrap();
        self.call(
            Method::POST,
            "/api/v1/auth/verify-email",
            Some(json!({"token": payload["token"]})),
            As::Nobody,
        )
        .await
        .ok(StatusCode::OK);
        let login = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                Some(json!({"email": email, "password": PASSWORD})),
                As::Nobody,
            )
            .await;
        login.ok(StatusCode::OK)["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Enables TOTP through the API; returns the base32 seed.
    async fn enable_totp(&self, token: &str) -> String {
        let enrolment = self
            .call(
                Method::POST,
                "/api/v1/auth/2fa/totp",
                Some(json!({"password": PASSWORD})),
                As::Bearer(token),
            )
            .await;
        let seed = enrolment.ok(StatusCode::OK)["secret"]
            .as_str()
            .unwrap()
            .to_owned();
        let code = totp_code(&seed, now()).unwrap();
        self.call(
            Method::POST,
            "/api/v1/auth/2fa/totp/confirm",
            Some(json!({"code": code})),
            As::Bearer(token),
        )
        .await
        .ok(StatusCode::OK);
        seed
    }
}

/// Now, by the clock the API under test reads.
fn now() -> i64 {
    coss_clock::Clock::system().now().as_i64()
}

fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(cookies: &[String], name: &str) -> String {
    let line = cookies
        .iter()
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap();
    line[name.len() + 1..].split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn a_browser_session_lives_in_a_secure_cookie_and_changes_need_its_csrf_token() {
    let api = Api::new().await;
    api.member("alice@example.com").await;
    let login = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": "alice@example.com", "password": PASSWORD, "client": "browser"})),
            As::Nobody,
        )
        .await;
    let body = login.ok(StatusCode::OK).clone();
    assert!(
        body.get("access_token").is_none(),
        "the session token never reaches page scripts"
    );
    let cookies = set_cookies(&login.headers);
    let session_line = cookies
        .iter()
        .find(|c| c.starts_with("__Host-coss_session="))
        .unwrap();
    for attribute in [
        "Path=/",
        "Secure",
        "HttpOnly",
        "SameSite=Lax",
        "Max-Age=2592000",
    ] {
        assert!(session_line.contains(attribute), "{session_line}");
    }
    let session = cookie_value(&cookies, "__Host-coss_session");
    let csrf = cookie_value(&cookies, "__Host-coss_csrf");
    assert_eq!(body["csrf_token"], csrf);

    // Reading needs no CSRF token; changing does, and it must be this session's.
    api.call(
        Method::GET,
        "/api/v1/me",
        None,
        As::Cookie {
            session: &session,
            csrf: None,
        },
    )
    .await
    .ok(StatusCode::OK);
    let patch = Some(json!({"display_name": "Alice"}));
    api.call(
        Method::PATCH,
        "/api/v1/me",
        patch.clone(),
        As::Cookie {
            session: &session,
            csrf: None,
        },
    )
    .await
    .error(StatusCode::FORBIDDEN, "csrf_token_invalid");
    api.call(
        Method::PATCH,
        "/api/v1/me",
        patch.clone(),
        As::Cookie {
            session: &session,
            csrf: Some("0123"),
        },
    )
    .await
    .error(StatusCode::FORBIDDEN, "csrf_token_invalid");
    assert_eq!(
        api.accounts
            .profile(coss_types::UserId(1))
            .await
            .unwrap()
            .display_name,
        None,
        "nothing changed"
    );
    let me = api
        .call(
            Method::PATCH,
            "/api/v1/me",
            patch,
            As::Cookie {
                session: &session,
                csrf: Some(&csrf),
            },
        )
        .await;
    assert_eq!(me.ok(StatusCode::OK)["display_name"], "Alice");

    let out = api
        .call(
            Method::POST,
            "/api/v1/auth/logout",
            None,
            As::Cookie {
                session: &session,
                csrf: Some(&csrf),
            },
        )
        .await;
    out.ok(StatusCode::NO_CONTENT);
    assert!(
        set_cookies(&out.headers)
            .iter()
            .all(|c| c.contains("Max-Age=0"))
    );
    api.call(
        Method::GET,
        "/api/v1/me",
        None,
        As::Cookie {
            session: &session,
            csrf: None,
        },
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn apps_refresh_their_tokens_and_a_replayed_refresh_token_ends_the_session() {
    let api = Api::new().await;
    api.member("alice@example.com").await;
    let login = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": "alice@example.com", "password": PASSWORD})),
            As::Nobody,
        )
        .await;
    let tokens = login.ok(StatusCode::OK).clone();
    assert_eq!(tokens["expires_in"], 900);
    assert_eq!(tokens["refresh_expires_in"], 2_592_000);
    let first = tokens["refresh_token"].as_str().unwrap();
    let next = api
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            Some(json!({"refresh_token": first})),
            As::Nobody,
        )
        .await;
    let next = next.ok(StatusCode::OK).clone();
    let access = next["access_token"].as_str().unwrap();
    api.call(Method::GET, "/api/v1/me", None, As::Bearer(access))
        .await
        .ok(StatusCode::OK);
    api.call(
        Method::POST,
        "/api/v1/auth/refresh",
        Some(json!({"refresh_token": first})),
        As::Nobody,
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "refresh_token_reused");
    api.call(Method::GET, "/api/v1/me", None, As::Bearer(access))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");
    api.call(
        Method::POST,
        "/api/v1/auth/refresh",
        Some(json!({"refresh_token": "x"})),
        As::Nobody,
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_token");
}

#[tokio::test]
async fn repeated_wrong_passwords_get_429_with_retry_after() {
    let api = Api::new().await;
    api.member("alice@example.com").await;
    let wrong = Some(json!({"email": "alice@example.com", "password": "not the password"}));
    for _ in 0..5 {
        api.call(
            Method::POST,
            "/api/v1/auth/login",
            wrong.clone(),
            As::Nobody,
        )
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let locked = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": "alice@example.com", "password": PASSWORD})),
            As::Nobody,
        )
        .await;
    locked.error(StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    let retry: i64 = locked.headers[header::RETRY_AFTER]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((890..=900).contains(&retry), "{retry}");
}

#[tokio::test]
async fn password_change_keeps_this_session_and_ends_the_others() {
    let api = Api::new().await;
    let here = api.member("alice@example.com").await;
    let there = api
        .call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": "alice@example.com", "password": PASSWORD})),
            As::Nobody,
        )
        .await;
    let there = there.ok(StatusCode::OK)["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = "/api/v1/auth/password";
    api.call(
        Method::POST,
        path,
        Some(json!({"current_password": "wrong one!", "new_password": "the new password"})),
        As::Bearer(&here),
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    api.call(
        Method::POST,
        path,
        Some(json!({"current_password": PASSWORD, "new_password": "short"})),
        As::Bearer(&here),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "weak_password");
    api.call(
        Method::POST,
        path,
        Some(json!({"current_password": PASSWORD, "new_password": "the new password"})),
        As::Bearer(&here),
    )
    .await
    .ok(StatusCode::NO_CONTENT);
    api.call(Method::GET, "/api/v1/me", None, As::Bearer(&here))
        .await
        .ok(StatusCode::OK);
    api.call(Method::GET, "/api/v1/me", None, As::Bearer(&there))
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn two_factor_enrolment_confirmation_login_and_removal() {
    let api = Api::new().await;
    let token = api.member("alice@example.com").await;
    // A stolen session alone cannot enrol (issue 20, item 2): the password is needed.
    api.call(
        Method::POST,
        "/api/v1/auth/2fa/totp",
        Some(json!({"password": "not the password"})),
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    api.call(
        Method::POST,
        "/api/v1/auth/2fa/totp",
        Some(json!({})),
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "malformed_request");
    let enrolment = api
        .call(
            Method::POST,
            "/api/v1/auth/2fa/totp",
            Some(json!({"password": PASSWORD})),
            As::Bearer(&token),
        )
        .await;
    let enrolment = enrolment.ok(StatusCode::OK).clone();
    assert!(
        enrolment["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/COSS:")
    );
    assert!(enrolment["qr_svg"].as_str().unwrap().contains("<svg"));
    let seed = enrolment["secret"].as_str().unwrap();
    let confirm = "/api/v1/auth/2fa/totp/confirm";
    api.call(
        Method::POST,
        confirm,
        Some(json!({"code": "000000"})),
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_two_factor_code");
    api.call(
        Method::POST,
        confirm,
        Some(json!({"code": 123456})),
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "malformed_request");
    let codes = api
        .call(
            Method::POST,
            confirm,
            Some(json!({"code": totp_code(seed, now()).unwrap()})),
            As::Bearer(&token),
        )
        .await;
    let codes = codes.ok(StatusCode::OK)["recovery_codes"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(codes.len(), 10);
    api.call(
        Method::POST,
        "/api/v1/auth/2fa/totp",
        Some(json!({"password": PASSWORD})),
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::CONFLICT, "two_factor_already_enabled");
    let me = api
        .call(Method::GET, "/api/v1/me", None, As::Bearer(&token))
        .await;
    assert_eq!(me.ok(StatusCode::OK)["two_factor_enabled"], true);

    let login = |extra: Value| {
        let mut body = json!({"email": "alice@example.com", "password": PASSWORD});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        api.call(Method::POST, "/api/v1/auth/login", Some(body), As::Nobody)
    };
    login(json!({}))
        .await
        .error(StatusCode::UNAUTHORIZED, "two_factor_required");
    login(json!({"totp_code": "000000"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_two_factor_code");
    login(json!({"totp_code": "1", "recovery_code": "2"}))
        .await
        .error(StatusCode::BAD_REQUEST, "malformed_request");
    login(json!({"recovery_code": codes[0]}))
        .await
        .ok(StatusCode::OK);
    login(json!({"recovery_code": codes[0]}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_two_factor_code");

    let off = "/api/v1/auth/2fa/totp";
    api.call(Method::DELETE, off, Some(json!({})), As::Bearer(&token))
        .await
        .error(StatusCode::UNAUTHORIZED, "two_factor_required");
    api.call(
        Method::DELETE,
        off,
        Some(json!({"recovery_code": codes[1]})),
        As::Bearer(&token),
    )
    .await
    .ok(StatusCode::NO_CONTENT);
    login(json!({})).await.ok(StatusCode::OK);
}

#[tokio::test]
async fn api_keys_are_made_with_a_code_shown_once_checked_by_signature_and_revoked() {
    let api = Api::new().await;
    let token = api.member("alice@example.com").await;
    let keys = "/api/v1/api-keys";
    let new_key = json!({"label": "grid bot", "permissions": ["trade"]});
    api.call(
        Method::POST,
        keys,
        Some(new_key.clone()),
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::FORBIDDEN, "two_factor_setup_required");
    let seed = api.enable_totp(&token).await;
    api.call(
        Method::POST,
        keys,
        Some(new_key.clone()),
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "two_factor_required");
    let bad_perm = json!({"label": "x", "permissions": ["admin"], "totp_code": "000000"});
    api.call(Method::POST, keys, Some(bad_perm), As::Bearer(&token))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_permission");
    let listed = api.call(Method::GET, keys, None, As::Bearer(&token)).await;
    assert_eq!(
        listed.ok(StatusCode::OK),
        &json!([]),
        "refusals created nothing"
    );

    // The enrolment's code was spent at confirmation: use the next step's code.
    let code = totp_code(&seed, now() + 30_000).unwrap();
    let mut with_code = new_key.clone();
    with_code["totp_code"] = json!(code);
    let created = api
        .call(
            Method::POST,
            keys,
            Some(with_code.clone()),
            As::Bearer(&token),
        )
        .await;
    let created = created.ok(StatusCode::CREATED).clone();
    assert_eq!(created["permissions"], json!(["read", "trade"]));
    let (key, secret) = (
        created["api_key"].as_str().unwrap(),
        created["secret"].as_str().unwrap(),
    );
    api.call(Method::POST, keys, Some(with_code), As::Bearer(&token))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_two_factor_code");
    let listed = api.call(Method::GET, keys, None, As::Bearer(&token)).await;
    let listed = listed.ok(StatusCode::OK).clone();
    assert_eq!(listed[0]["api_key"], key);
    assert!(
        listed[0].get("secret").is_none(),
        "the secret is shown once"
    );

    let query = format!("timestamp={}&recvWindow=10000", now());
    let good = format!("{query}&signature={}", sign(secret, &query));
    let me = api.signed_whoami(key, &good, "127.0.0.1:1").await;
    assert_eq!(
        me.ok(StatusCode::OK)["permissions"],
        json!(["read", "trade"])
    );
    let forged = format!("{query}&signature={}", sign("guess", &query));
    api.signed_whoami(key, &forged, "127.0.0.1:1")
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_signature");
    let stale = format!("timestamp={}", now() - 60_000);
    api.signed_whoami(
        key,
        &format!("{stale}&signature={}", sign(secret, &stale)),
        "127.0.0.1:1",
    )
    .await
    .error(StatusCode::BAD_REQUEST, "timestamp_outside_recv_window");
    api.signed_whoami("unknown", &good, "127.0.0.1:1")
        .await
        .error(StatusCode::UNAUTHORIZED, "invalid_api_key");
    // The signature covers the body's text: a body that is not text is refused, not
    // checked as if it were empty.
    api.signed_whoami_with_body(key, &good, "127.0.0.1:1", b"\xff\xfe")
        .await
        .error(StatusCode::BAD_REQUEST, "malformed_request");

    let id = created["id"].as_i64().unwrap();
    api.call(
        Method::DELETE,
        &format!("{keys}/{id}"),
        None,
        As::Bearer(&token),
    )
    .await
    .ok(StatusCode::NO_CONTENT);
    api.call(
        Method::DELETE,
        &format!("{keys}/{id}"),
        None,
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::NOT_FOUND, "api_key_not_found");
    api.call(
        Method::DELETE,
        &format!("{keys}/abc"),
        None,
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::NOT_FOUND, "api_key_not_found");
    api.signed_whoami(key, &good, "127.0.0.1:1")
        .await
        .error(StatusCode::UNAUTHORIZED, "api_key_revoked");
}

#[tokio::test]
async fn profile_and_merchant_profile_with_a_webhook_secret_shown_once() {
    let api = Api::new().await;
    let token = api.member("alice@example.com").await;
    let me = api
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(json!({"display_name": "Alice", "country": "kr"})),
            As::Bearer(&token),
        )
        .await;
    let me = me.ok(StatusCode::OK).clone();
    assert_eq!(
        (
            me["display_name"].as_str(),
            me["country"].as_str(),
            me["verification_level"].as_i64()
        ),
        (Some("Alice"), Some("KR"), Some(0))
    );
    api.call(
        Method::PATCH,
        "/api/v1/me",
        Some(json!({"country": "Narnia"})),
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_country");
    api.call(
        Method::PATCH,
        "/api/v1/me",
        Some(json!({"verification_level": 3})),
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "malformed_request");
    let cleared = api
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(json!({"country": null})),
            As::Bearer(&token),
        )
        .await;
    let cleared = cleared.ok(StatusCode::OK).clone();
    assert_eq!(
        (
            cleared["display_name"].as_str(),
            cleared["country"].is_null()
        ),
        (Some("Alice"), true)
    );

    let merchant = "/api/v1/merchant";
    api.call(Method::GET, merchant, None, As::Bearer(&token))
        .await
        .error(StatusCode::NOT_FOUND, "no_merchant_profile");
    api.call(
        Method::POST,
        "/api/v1/merchant/webhook-secret",
        None,
        As::Bearer(&token),
    )
    .await
    .error(StatusCode::NOT_FOUND, "no_merchant_profile");
    let shop = json!({"business_name": "Alice's Coffee", "website": "https://coffee.example", "settlement_asset": "USDT", "settlement_mode": "hold", "webhook_url": "https://coffee.example/hook"});
    let mut bad = shop.clone();
    bad["webhook_url"] = json!("http://coffee.example/hook");
    api.call(Method::PUT, merchant, Some(bad), As::Bearer(&token))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_webhook_url");
    let saved = api
        .call(
            Method::PUT,
            merchant,
            Some(shop.clone()),
            As::Bearer(&token),
        )
        .await;
    let secret = saved.ok(StatusCode::OK)["webhook_secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(secret.starts_with("whsec_"));
    let again = api
        .call(Method::PUT, merchant, Some(shop), As::Bearer(&token))
        .await;
    assert!(again.ok(StatusCode::OK).get("webhook_secret").is_none());
    let read = api
        .call(Method::GET, merchant, None, As::Bearer(&token))
        .await;
    let read = read.ok(StatusCode::OK).clone();
    assert_eq!(
        (read["business_name"].as_str(), read.get("webhook_secret")),
        (Some("Alice's Coffee"), None)
    );
    let rotated = api
        .call(
            Method::POST,
            "/api/v1/merchant/webhook-secret",
            None,
            As::Bearer(&token),
        )
        .await;
    assert_ne!(
        rotated.ok(StatusCode::OK)["webhook_secret"]
            .as_str()
            .unwrap(),
        secret
    );
}

#[tokio::test]
async fn every_accounts_route_is_described_in_the_openapi_document() {
    let api = Api::new().await;
    let routes = coss_api::router(coss_http::Gate::new(api.accounts.clone()));
    let doc = serde_json::to_value(coss_api::openapi()).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut described = 0;
    for (path, item) in paths {
        described += item.as_object().unwrap().len();
        for method in item.as_object().unwrap().keys() {
            let method = method.to_uppercase();
            assert!(
                routes
                    .mounted()
                    .iter()
                    .any(|r| r.method == method.as_str() && r.path == *path),
                "{method} {path} is described but not mounted"
            );
        }
    }
    for route in routes.mounted() {
        let method = route.method.as_str().to_lowercase();
        assert!(
            paths
                .get(&route.path)
                .and_then(|p| p.get(&method))
                .is_some(),
            "{method} {} is mounted but not described",
            route.path
        );
    }
    assert_eq!(described, routes.mounted().len());
    assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    assert!(doc["components"]["schemas"]["ApiError"].is_object());
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_get_json_errors() {
    let api = Api::new().await;
    api.call(Method::GET, "/api/v1/nope", None, As::Nobody)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.call(Method::DELETE, "/api/v1/me", None, As::Nobody)
        .await
        .error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn a_lost_device_is_signed_out_from_the_session_list() {
    let api = Api::new().await;
    let here = api.member("alice@example.com").await;
    let login = || async {
        api.call(
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"email": "alice@example.com", "password": PASSWORD})),
            As::Nobody,
        )
        .await
        .ok(StatusCode::OK)["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (phone, tablet) = (login().await, login().await);
    let listed = api
        .call(Method::GET, "/api/v1/sessions", None, As::Bearer(&here))
        .await;
    let sessions = listed.ok(StatusCode::OK).as_array().unwrap().clone();
    assert_eq!(sessions.len(), 3, "{sessions:?}");
    assert_eq!(
        sessions.iter().filter(|s| s["current"] == true).count(),
        1,
        "exactly this request's session is marked"
    );
    let phone_id = sessions.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_i64()
        .unwrap();

    // Someone else's session, or nonsense, is not found (and not ended).
    let bob = api.member("bob@example.com").await;
    api.call(
        Method::DELETE,
        &format!("/api/v1/sessions/{phone_id}"),
        None,
        As::Bearer(&bob),
    )
    .await
    .error(StatusCode::NOT_FOUND, "session_not_found");
    api.call(
        Method::DELETE,
        "/api/v1/sessions/x",
        None,
        As::Bearer(&here),
    )
    .await
    .error(StatusCode::NOT_FOUND, "session_not_found");
    let alive = |token: &str| {
        let token = token.to_owned();
        let api = &api;
        async move {
            api.call(Method::GET, "/api/v1/me", None, As::Bearer(&token))
                .await
                .status
                == StatusCode::OK
        }
    };
    assert!(alive(&phone).await && alive(&tablet).await);

    api.call(
        Method::DELETE,
        &format!("/api/v1/sessions/{phone_id}"),
        None,
        As::Bearer(&here),
    )
    .await
    .ok(StatusCode::NO_CONTENT);
    let ended = [alive(&phone).await, alive(&tablet).await];
    assert_eq!(ended.iter().filter(|a| !**a).count(), 1, "one device out");

    let others = api
        .call(
            Method::POST,
            "/api/v1/sessions/revoke-others",
            None,
            As::Bearer(&here),
        )
        .await;
    assert_eq!(others.ok(StatusCode::OK)["ended"], 1);
    assert!(!alive(&phone).await && !alive(&tablet).await);
    assert!(alive(&here).await, "this session stays");
    assert!(alive(&bob).await, "nobody else's");
}
