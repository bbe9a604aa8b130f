//! The back office through its real path: the operator program's client ([`Console`]) signs
//! each call with the service key `coss up` made in the data dir and sends it to the internal
//! API on its own loopback listener of a running platform. Operators sign in with TOTP; every
//! operation is tried by every role; four eyes hold across sessions; the internal API refuses
//! what is not signed, replayed, expired or signed by another key, and is absent from the
//! public listener; a locked user can neither sign in, trade nor withdraw; the audit log records
//! everything and its chain finds tampering.

use std::net::IpAddr;

use axum::http::StatusCode;
use coss_admin::console::Console;
use coss_admin::ops::OPERATIONS;
use coss_admin::{Permission, Role, ServiceKey};
use coss_clock::{Clock, ManualClock};
use coss_testkit::{TestPlatform, http, verified};
use serde_json::{Value, json};

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const OPERATOR_PASSWORD: &str = "a long operator passphrase";

struct Office {
    platform: TestPlatform,
    console: Console,
    clock: Clock,
}

/// A signed-in operator.
struct Signed {
    token: String,
    secret: String,
    email: String,
}

impl Office {
    async fn start() -> Office {
        Office::with_clock(Clock::system()).await
    }

    async fn with_clock(clock: Clock) -> Office {
        let manual = clock.clone();
        let platform = TestPlatform::start_with(move |settings| {
            settings.config.limits = coss_server::Limits::OFF;
            settings.clock = manual;
        })
        .await;
        let key = ServiceKey::load(&platform.data_dir().join("admin/service.key"), false).unwrap();
        let console = Console::new(
            &format!("http://{}", platform.internal_address),
            key,
            false,
            clock.clone(),
        )
        .unwrap();
        Office {
            platform,
            console,
            clock,
        }
    }

    fn now(&self) -> i64 {
        self.clock.now().as_i64()
    }

    async fn call(&self, op: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
        self.console
            .call(op, token, LOOPBACK, body.to_string().as_bytes())
            .await
            .unwrap()
    }

    async fn ok(&self, op: &str, who: &Signed, body: Value) -> Value {
        let (status, answer) = self.call(op, Some(&who.token), body).await;
        assert!(status.is_success(), "{op}: {status} {answer}");
        answer
    }

    /// The first superadmin, as `coss admin bootstrap` makes it, signed in.
    async fn superadmin(&self) -> Signed {
        let enrolment = coss_admin::bootstrap(
            &self.platform.accounts,
            None,
            "root@coss.example",
            OPERATOR_PASSWORD,
            self.now(),
        )
        .await
        .unwrap();
        let secret = enrolment.secret.expose().to_owned();
        self.sign_in("root@coss.example", &secret, 0).await
    }

    /// Signs in with the code of the step `steps` away from now (each code works once).
    async fn sign_in(&self, email: &str, secret: &str, steps: i64) -> Signed {
        let code = coss_identity::totp_code(secret, self.now() + steps * 30_000).unwrap();
        let (status, answer) = self
            .call(
                "auth.login",
                None,
                json!({ "email": email, "password": OPERATOR_PASSWORD, "code": code }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        Signed {
            token: answer["session_token"].as_str().unwrap().to_owned(),
            secret: secret.to_owned(),
            email: email.to_owned(),
        }
    }

    /// An operator invited by `by` with `role`, set up (password, TOTP) and signed in.
    async fn operator(&self, by: &Signed, email: &str, role: Role) -> Signed {
        let invited = self
            .ok(
                "operators.invite",
                by,
                json!({ "email": email, "role": role.as_str() }),
            )
            .await;
        let token = invited["setup_token"].as_str().unwrap();
        let (status, enrolment) = self
            .call("auth.setup", None, json!({ "token": token }))
            .await;
        assert_eq!(status, StatusCode::OK, "{enrolment}");
        let secret = enrolment["secret"].as_str().unwrap().to_owned();
        let code = coss_identity::totp_code(&secret, self.now() - 30_000).unwrap();
        let (status, answer) = self
            .call(
                "auth.activate",
                None,
                json!({ "token": token, "password": OPERATOR_PASSWORD, "code": code }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        // The set-up link works once.
        let (status, _) = self
            .call("auth.setup", None, json!({ "token": token }))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        self.sign_in(email, &secret, 0).await
    }

    async fn audit(&self, who: &Signed) -> Vec<Value> {
        self.ok("audit.list", who, json!({ "limit": 1000 })).await["entries"]
            .as_array()
            .unwrap()
            .clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_each_role_exactly_as_its_permissions_say() {
    let office = Office::start().await;
    let root = office.superadmin().await;
    let mut operators = vec![(Role::Superadmin, root)];
    for role in Role::ALL.iter().filter(|r| **r != Role::Superadmin) {
        let email = format!("{}@coss.example", role.as_str());
        let root = &operators[0].1;
        let signed = office.operator(root, &email, *role).await;
        operators.push((*role, signed));
    }
    let mut checked = 0;
    for (role, signed) in &operators {
        for operation in OPERATIONS.iter().filter(|o| o.name != "auth.logout") {
            // Empty parameters: every operation either refuses the role or says what is
            // missing (or, for reads that need nothing, answers) — it never acts.
            let (status, answer) = office
                .call(operation.name, Some(&signed.token), json!({}))
                .await;
            let forbidden = status == StatusCode::FORBIDDEN && answer["code"] == "forbidden";
            let granted = operation.permission.is_none_or(|p| role.grants(p));
            assert_eq!(
                forbidden,
                !granted,
                "{} as {}: {status} {answer}",
                operation.name,
                role.as_str()
            );
            if granted {
                assert!(
                    status.is_success() || status == StatusCode::BAD_REQUEST,
                    "{} as {}: {status} {answer}",
                    operation.name,
                    role.as_str()
                );
            }
            checked += 1;
        }
        let (status, _) = office
            .call("auth.logout", Some(&signed.token), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK);
        let (status, answer) = office.call("me", Some(&signed.token), json!({})).await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
        );
    }
    assert_eq!(checked, Role::ALL.len() * (OPERATIONS.len() - 1));
    // The matrix itself: support reads users only; only a superadmin manages operators.
    assert_eq!(Role::Support.permissions(), vec![Permission::UsersRead]);
    assert!(
        Role::ALL
            .iter()
            .filter(|r| r.grants(Permission::OperatorsManage))
            .eq([Role::Superadmin].iter())
    );
    office.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_need_their_code_an_allowed_network_and_lose_idle_sessions() {
    let manual = ManualClock::starting_now();
    let office = Office::with_clock(manual.clock()).await;
    let root = office.superadmin().await;
    // A wrong code, a replayed code, a wrong password: the same refusal.
    let used = coss_identity::totp_code(&root.secret, office.now()).unwrap();
    for (password, code) in [
        (OPERATOR_PASSWORD, "000000".to_owned()),
        (OPERATOR_PASSWORD, used),
        (
            "wrong password here",
            coss_identity::totp_code(&root.secret, office.now() + 30_000).unwrap(),
        ),
    ] {
        let (status, answer) = office
            .call(
                "auth.login",
                None,
                json!({ "email": root.email, "password": password, "code": code }),
            )
            .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::UNAUTHORIZED, Some("invalid_credentials")),
            "{answer}"
        );
    }
    // An unknown operator is answered alike.
    let (status, answer) = office
        .call("auth.login", None, json!({ "email": "nobody@coss.example", "password": OPERATOR_PASSWORD, "code": "123456" }))
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_credentials"))
    );

    // Another network than the operator's: refused at sign-in and on every call.
    let support = office
        .operator(&root, "support@coss.example", Role::Support)
        .await;
    let elsewhere: IpAddr = "192.0.2.7".parse().unwrap();
    let (status, answer) = office
        .console
        .call("me", Some(&support.token), elsewhere, b"{}")
        .await
        .unwrap();
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("network_not_allowed"))
    );

    // Fourteen idle minutes keep a session; fifteen end it.
    manual.advance(14 * 60 * 1000);
    let (status, _) = office.call("me", Some(&support.token), json!({})).await;
    assert_eq!(status, StatusCode::OK);
    manual.advance(15 * 60 * 1000 + 1);
    let (status, answer) = office.call("me", Some(&support.token), json!({})).await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );

    // Bootstrap works once.
    let again = coss_admin::bootstrap(
        &office.platform.accounts,
        None,
        "second@coss.example",
        OPERATOR_PASSWORD,
        office.now(),
    )
    .await;
    assert_eq!(again.unwrap_err().code(), "already_bootstrapped");
    office.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_needs_a_second_operator_never_the_submitter_from_any_session() {
    let office = Office::start().await;
    let root = office.superadmin().await;
    let alice = office
        .operator(&root, "alice@coss.example", Role::Admin)
        .await;
    let bob = office
        .operator(&root, "bob@coss.example", Role::Admin)
        .await;
    let support = office
        .operator(&root, "support@coss.example", Role::Support)
        .await;

    let (status, submitted) = office
        .call(
            "fees.set_gateway_fee",
            Some(&alice.token),
            json!({ "fee_ppm": 10_000 }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{submitted}");
    assert_eq!(submitted["status"], "pending");
    let id = submitted["request_id"].as_i64().unwrap();
    let fee = || async {
        office
            .platform
            .engine
            .read_async(|e| e.gateway_fee_ppm())
            .await
            .unwrap()
    };
    assert_eq!(
        fee().await,
        7_500,
        "nothing changes before a second operator approves"
    );

    // Alice cannot approve her own request, from this session or a second one.
    let alice_again = office.sign_in(&alice.email, &alice.secret, 1).await;
    assert_ne!(alice_again.token, alice.token);
    for token in [&alice.token, &alice_again.token] {
        let (status, answer) = office
            .call("requests.approve", Some(token), json!({ "id": id }))
            .await;
        assert_eq!(
            (status, answer["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("four_eyes"))
        );
    }
    // Support holds no fee permission.
    let (status, answer) = office
        .call(
            "requests.approve",
            Some(&support.token),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    assert_eq!(fee().await, 7_500);

    let approved = office
        .ok("requests.approve", &bob, json!({ "id": id }))
        .await;
    assert_eq!(approved["status"], "executed");
    assert_eq!(fee().await, 10_000);
    let (status, answer) = office
        .call("requests.approve", Some(&root.token), json!({ "id": id }))
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_pending"))
    );

    // A market listing the same way; a rejected one changes nothing.
    let (status, listing) = office
        .call(
            "markets.list_market",
            Some(&bob.token),
            json!({ "id": 7, "base": "ETH", "quote": "COSS", "lot_size": "0.0001", "tick_size": "0.01", "min_notional": "1" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{listing}");
    let listing = listing["request_id"].as_i64().unwrap();
    let (status, bad) = office
        .call("markets.list_market", Some(&bob.token), json!({ "id": 8, "base": "NOPE", "quote": "TUSD", "lot_size": "1", "tick_size": "1", "min_notional": "1" }))
        .await;
    assert_eq!(
        (status, bad["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found")),
        "an unknown asset is refused at submission"
    );
    let (status, rejected) = office
        .call(
            "fees.set_schedule",
            Some(&bob.token),
            json!({ "tiers": [{ "maker_ppm": 0, "taker_ppm": 0 }] }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let rejected = rejected["request_id"].as_i64().unwrap();
    office
        .ok(
            "requests.reject",
            &alice,
            json!({ "id": rejected, "reason": "no free trading" }),
        )
        .await;
    office
        .ok("requests.approve", &alice, json!({ "id": listing }))
        .await;
    let markets = office.ok("markets.list", &root, json!({})).await;
    assert!(
        markets["markets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["symbol"] == "ETHCOSS" && m["status"] == "trading"),
        "{markets}"
    );
    assert_ne!(
        markets["fee_schedule"],
        json!([{ "maker_ppm": 0, "taker_ppm": 0 }])
    );
    assert_eq!(markets["gateway_fee_ppm"], 10_000);

    // Halting is one operator's emergency action, journaled like the rest.
    office
        .ok(
            "markets.set_status",
            &alice,
            json!({ "market": "ETHCOSS", "status": "halted" }),
        )
        .await;
    let markets = office.ok("markets.list", &root, json!({})).await;
    assert!(
        markets["markets"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["symbol"] == "ETHCOSS" && m["status"] == "halted")
    );

    // Hidden: out of the lists, still found by name (to cancel what rests there).
    office
        .ok(
            "markets.set_status",
            &alice,
            json!({ "market": "ETHCOSS", "status": "hidden" }),
        )
        .await;
    let info = http(
        None,
        office.platform.address,
        "GET",
        "/api/v3/exchangeInfo",
        &[],
        None,
    )
    .await;
    let listed: Vec<String> = info.json()["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        !listed.contains(&"ETHCOSS".to_owned()) && listed.contains(&"ETHTUSD".to_owned()),
        "{listed:?}"
    );
    let one = http(
        None,
        office.platform.address,
        "GET",
        "/api/v3/exchangeInfo?symbol=ETHCOSS",
        &[],
        None,
    )
    .await;
    assert_eq!(one.json()["symbols"][0]["status"], "BREAK", "{}", one.body);

    // A withdrawal minimum the same way: the wallet's API shows the core's from then on.
    let (status, minimum) = office
        .call(
            "fees.set_withdrawal_minimum",
            Some(&alice.token),
            json!({ "asset": "ETH", "minimum": "0.5" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{minimum}");
    let (_, zero) = office
        .call(
            "fees.set_withdrawal_minimum",
            Some(&alice.token),
            json!({ "asset": "ETH", "minimum": "0" }),
        )
        .await;
    assert_eq!(zero["code"], "invalid_amount");
    office
        .ok(
            "requests.approve",
            &bob,
            json!({ "id": minimum["request_id"] }),
        )
        .await;
    let assets = http(
        None,
        office.platform.address,
        "GET",
        "/api/v1/wallet/assets",
        &[],
        None,
    )
    .await;
    let eth = assets
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["symbol"] == "ETH")
        .cloned()
        .unwrap();
    assert_eq!(eth["min_withdrawal"], "0.500000000000000000", "{eth}");

    let requests = office.ok("requests.list", &root, json!({})).await;
    let statuses: Vec<&str> = requests["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["executed", "rejected", "executed", "executed"],
        "newest first"
    );
    office.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_internal_api_takes_only_fresh_calls_signed_by_the_service_key() {
    let office = Office::start().await;
    let root = office.superadmin().await;
    let to = office.platform.internal_address;
    let path = "/internal/v1/me";
    let sign = |key: &ServiceKey, time_ms: i64, nonce: &str| {
        key.sign(&coss_admin::signing::Call {
            method: "POST",
            path,
            time_ms,
            nonce,
            operator: &root.token,
            client_ip: "127.0.0.1",
            body: b"{}",
        })
    };
    let key =
        ServiceKey::load(&office.platform.data_dir().join("admin/service.key"), false).unwrap();
    let other = ServiceKey::from_pkcs8(&ServiceKey::generate().unwrap()).unwrap();
    let send = |time_ms: i64, nonce: String, signature: String| {
        let operator = root.token.clone();
        async move {
            http(
                None,
                to,
                "POST",
                path,
                &[
                    &format!("X-Coss-Time: {time_ms}"),
                    &format!("X-Coss-Nonce: {nonce}"),
                    &format!("X-Coss-Operator: {operator}"),
                    "X-Coss-Client-Ip: 127.0.0.1",
                    &format!("X-Coss-Signature: {signature}"),
                ],
                Some("{}"),
            )
            .await
        }
    };
    let now = office.now();
    let nonce = "0123456789abcdef0123456789abcdef".to_owned();
    let good = send(now, nonce.clone(), sign(&key, now, &nonce)).await;
    assert_eq!(good.status, 200, "{}", good.body);
    let replayed = send(now, nonce.clone(), sign(&key, now, &nonce)).await;
    assert_eq!(
        (replayed.status, replayed.json()["code"].as_str()),
        (401, Some("internal_replayed"))
    );
    let fresh = "fedcba9876543210fedcba9876543210".to_owned();
    let foreign = send(now, fresh.clone(), sign(&other, now, &fresh)).await;
    assert_eq!(
        (foreign.status, foreign.json()["code"].as_str()),
        (401, Some("internal_bad_signature"))
    );
    let old = now - 31_000;
    let expired = send(old, fresh.clone(), sign(&key, old, &fresh)).await;
    assert_eq!(
        (expired.status, expired.json()["code"].as_str()),
        (401, Some("internal_expired"))
    );
    let unsigned = http(
        None,
        to,
        "POST",
        path,
        &[&format!("X-Coss-Operator: {}", root.token)],
        Some("{}"),
    )
    .await;
    assert_eq!(
        (unsigned.status, unsigned.json()["code"].as_str()),
        (401, Some("internal_unsigned"))
    );
    // A body changed after signing.
    let tampered = http(
        None,
        to,
        "POST",
        path,
        &[
            &format!("X-Coss-Time: {now}"),
            &format!("X-Coss-Nonce: {fresh}"),
            &format!("X-Coss-Operator: {}", root.token),
            "X-Coss-Client-Ip: 127.0.0.1",
            &format!("X-Coss-Signature: {}", sign(&key, now, &fresh)),
        ],
        Some("{ }"),
    )
    .await;
    assert_eq!(
        (tampered.status, tampered.json()["code"].as_str()),
        (401, Some("internal_bad_signature"))
    );

    // Not on the public listener, by any method.
    for method in ["GET", "POST"] {
        let public = http(None, office.platform.address, method, path, &[], Some("{}")).await;
        assert_eq!(public.status, 404, "{method}");
    }
    assert!(
        !office
            .platform
            .mounted
            .iter()
            .any(|m| m.path.starts_with("/internal"))
    );

    // A user's stolen session is no operator session, at the internal API or the console.
    let now = office.now();
    verified(&office.platform.accounts, "victim@example.com", now).await;
    let login = http(
        None, office.platform.address, "POST", "/api/v1/auth/login", &[],
        Some(&json!({ "email": "victim@example.com", "password": coss_testkit::PASSWORD, "client": "browser" }).to_string()),
    ).await;
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_owned();
    let (status, answer) = office
        .call("users.search", Some(&cookie), json!({ "query": "victim" }))
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("unauthenticated"))
    );

    // Every refusal is in the audit log.
    let entries = office.audit(&root).await;
    let denied: Vec<String> = entries
        .iter()
        .filter(|e| e["outcome"] == "denied")
        .map(|e| e["detail"]["code"].as_str().unwrap_or_default().to_owned())
        .collect();
    for code in [
        "internal_replayed",
        "internal_bad_signature",
        "internal_expired",
        "internal_unsigned",
        "unauthenticated",
    ] {
        assert!(
            denied.iter().any(|c| c == code),
            "{code} not audited: {denied:?}"
        );
    }
    office.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_user_cannot_sign_in_trade_or_withdraw_and_their_orders_are_cancelled() {
    use coss_core::{Command, NewOrder, OrderKind, SelfTradePrevention, TimeInForce};
    use coss_types::{Price, Qty, RequestId, Side};
    let office = Office::start().await;
    let root = office.superadmin().await;
    let compliance = office
        .operator(&root, "compliance@coss.example", Role::Compliance)
        .await;
    let support = office
        .operator(&root, "support@coss.example", Role::Support)
        .await;
    let now = office.now();
    let user = verified(&office.platform.accounts, "trader@example.com", now).await;
    let account = coss_identity::exchange_account(user).unwrap();
    let engine = &office.platform.engine;
    coss_testkit::deposit(
        engine,
        account,
        coss_wallet::DEV_TUSD,
        1_000 * coss_testkit::TUSD_1,
    )
    .await;
    let market = coss_types::MarketId(1); // ETHTUSD, listed from the configuration
    let order = Command::PlaceOrder(NewOrder {
        account,
        market,
        side: Side::Buy,
        kind: OrderKind::Limit {
            price: Price(100_000),
            qty: Qty(10),
            tif: TimeInForce::Gtc,
        },
        client_id: None,
        stp: SelfTradePrevention::None,
    });
    let placed = engine.submit_async(order.clone()).await.unwrap();
    assert!(placed.outcome.is_ok(), "{placed:?}");

    // Support finds the user, masked; unmasking is not theirs.
    let found = office
        .ok("users.search", &support, json!({ "query": "trader" }))
        .await;
    assert_eq!(found["users"][0]["email"], "t***@example.com");
    let (status, answer) = office
        .call(
            "users.view",
            Some(&support.token),
            json!({ "user_id": user.0, "unmask": true }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let (status, answer) = office
        .call(
            "users.lock",
            Some(&support.token),
            json!({ "user_id": user.0, "reason": "x" }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    let view = office
        .ok(
            "users.view",
            &compliance,
            json!({ "user_id": user.0, "unmask": true }),
        )
        .await;
    assert_eq!(view["email"], "trader@example.com");
    assert_eq!(view["open_orders"].as_array().unwrap().len(), 1);

    // Bad input changes nothing.
    for (body, code) in [
        (json!({ "user_id": user.0 }), "invalid_params"),
        (
            json!({ "user_id": user.0, "reason": " " }),
            "invalid_reason",
        ),
        (
            json!({ "user_id": 999_999, "reason": "fraud" }),
            "not_found",
        ),
        (
            json!({ "user_id": user.0, "reason": "fraud", "extra": 1 }),
            "invalid_params",
        ),
    ] {
        let (_, answer) = office
            .call("users.lock", Some(&compliance.token), body)
            .await;
        assert_eq!(answer["code"], code);
    }
    assert!(
        !engine
            .read_async(move |e| e.account_locked(account))
            .await
            .unwrap()
    );

    let locked = office
        .ok(
            "users.lock",
            &compliance,
            json!({ "user_id": user.0, "reason": "reported stolen" }),
        )
        .await;
    assert_eq!(locked["orders_cancelled"], 1);
    assert_eq!(
        engine
            .read_async(move |e| e.open_orders(account))
            .await
            .unwrap(),
        0
    );
    let refused = engine.submit_async(order.clone()).await.unwrap();
    assert_eq!(refused.outcome, Err(coss_core::RejectReason::AccountLocked));
    let hold = engine
        .submit_async(Command::WithdrawHold {
            request: RequestId(77),
            account,
            asset: coss_wallet::DEV_TUSD,
            amount: coss_types::Amount(20 * coss_testkit::TUSD_1),
        })
        .await
        .unwrap();
    assert_eq!(hold.outcome, Err(coss_core::RejectReason::AccountLocked));
    let login = http(
        None,
        office.platform.address,
        "POST",
        "/api/v1/auth/login",
        &[],
        Some(
            &json!({ "email": "trader@example.com", "password": coss_testkit::PASSWORD })
                .to_string(),
        ),
    )
    .await;
    assert_eq!(
        (login.status, login.json()["code"].as_str()),
        (403, Some("account_locked"))
    );
    let view = office
        .ok("users.view", &compliance, json!({ "user_id": user.0 }))
        .await;
    assert_eq!(
        (view["locked"].as_bool(), view["locked_in_core"].as_bool()),
        (Some(true), Some(true))
    );
    assert_eq!(view["open_orders"].as_array().unwrap().len(), 0);
    assert_eq!(view["orders"][0]["status"], "Canceled", "{view}");

    office
        .ok(
            "users.unlock",
            &compliance,
            json!({ "user_id": user.0, "reason": "owner verified" }),
        )
        .await;
    assert!(engine.submit_async(order).await.unwrap().outcome.is_ok());
    let login = http(
        None,
        office.platform.address,
        "POST",
        "/api/v1/auth/login",
        &[],
        Some(
            &json!({ "email": "trader@example.com", "password": coss_testkit::PASSWORD })
                .to_string(),
        ),
    )
    .await;
    assert_eq!(login.status, 200);
    office
        .ok(
            "users.set_level",
            &compliance,
            json!({ "user_id": user.0, "level": 2 }),
        )
        .await;
    let (_, answer) = office
        .call(
            "users.set_level",
            Some(&compliance.token),
            json!({ "user_id": user.0, "level": 9 }),
        )
        .await;
    assert_eq!(answer["code"], "invalid_level");

    // The audit log names who did what to whom, and the unmasking.
    let entries = office.audit(&root).await;
    let did = |operation: &str, outcome: &str| {
        entries.iter().any(|e| {
            e["operation"] == operation
                && e["outcome"] == outcome
                && e["operator"] == "compliance@coss.example"
        })
    };
    assert!(did("users.lock", "ok") && did("users.unlock", "ok") && did("users.set_level", "ok"));
    assert!(
        entries
            .iter()
            .any(|e| e["operation"] == "users.view" && e["detail"]["result"]["unmasked"] == true)
    );
    assert!(entries.iter().any(|e| e["operation"] == "users.lock"
        && e["outcome"] == "denied"
        && e["operator"] == "support@coss.example"));
    assert!(
        entries
            .iter()
            .all(|e| !e["detail"].to_string().contains(OPERATOR_PASSWORD)),
        "no password in the log"
    );
    let verdict = office.ok("audit.verify", &root, json!({})).await;
    assert_eq!(verdict["problem"], Value::Null);

    // The export is CSV a spreadsheet opens safely: an attacker's "email" stays text.
    let (status, _) = office
        .call(
            "auth.login",
            None,
            json!({ "email": "=HYPERLINK(\"http://x\")", "password": "p", "code": "1" }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let export = office.ok("audit.export", &root, json!({})).await;
    let csv = export["csv"].as_str().unwrap();
    assert!(csv.starts_with(
        "seq,at,operator_id,operator,operation,target,outcome,detail,client_ip,prev_hash,hash\r\n"
    ));
    assert!(csv.contains(",users.lock,"), "{csv}");
    assert!(csv.contains("\"'=HYPERLINK(\"\"http://x\"\")\""), "{csv}");
    assert!(!csv.contains(",=HYPERLINK"));
    office.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_keeps_the_session_in_an_http_only_cookie_and_wants_its_guard_header() {
    let office = Office::start().await;
    let root = office.superadmin().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let console_address = listener.local_addr().unwrap();
    let router = office.console.router(None);
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let code = coss_identity::totp_code(&root.secret, office.now() + 30_000).unwrap();
    let body = json!({ "email": "root@coss.example", "password": OPERATOR_PASSWORD, "code": code })
        .to_string();
    let unguarded = http(
        None,
        console_address,
        "POST",
        "/api/auth.login",
        &[],
        Some(&body),
    )
    .await;
    assert_eq!(
        (unguarded.status, unguarded.json()["code"].as_str()),
        (403, Some("csrf_guard_missing"))
    );
    let login = http(
        None,
        console_address,
        "POST",
        "/api/auth.login",
        &["X-Coss-Admin: 1"],
        Some(&body),
    )
    .await;
    assert_eq!(login.status, 200, "{}", login.body);
    assert!(
        login.json().get("session_token").is_none(),
        "the token never reaches the page"
    );
    let cookie = login.header("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    let me = http(
        None,
        console_address,
        "POST",
        "/api/me",
        &["X-Coss-Admin: 1", &format!("Cookie: {pair}")],
        Some("{}"),
    )
    .await;
    assert_eq!(
        (me.status, me.json()["role"].as_str()),
        (200, Some("superadmin"))
    );
    let unknown = http(
        None,
        console_address,
        "POST",
        "/api/no.such",
        &["X-Coss-Admin: 1", &format!("Cookie: {pair}")],
        Some("{}"),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.json()["code"].as_str()),
        (404, Some("unknown_operation"))
    );
    let out = http(
        None,
        console_address,
        "POST",
        "/api/auth.logout",
        &["X-Coss-Admin: 1", &format!("Cookie: {pair}")],
        Some("{}"),
    )
    .await;
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    let me = http(
        None,
        console_address,
        "POST",
        "/api/me",
        &["X-Coss-Admin: 1", &format!("Cookie: {pair}")],
        Some("{}"),
    )
    .await;
    assert_eq!(me.status, 401);
    office.platform.stop().await;
}

/// A user with TOTP and `eth` ETH on the platform, signed in: (bearer header, TOTP seed).
async fn funded_user(office: &Office, email: &str, eth: u128) -> (String, String) {
    let now = office.now();
    let user = verified(&office.platform.accounts, email, now).await;
    let seed = coss_testkit::with_totp(&office.platform.accounts, user, now - 60_000).await;
    let account = coss_identity::exchange_account(user).unwrap();
    coss_testkit::deposit(
        &office.platform.engine,
        account,
        coss_wallet::DEV_ETH,
        eth * coss_testkit::ETH_1,
    )
    .await;
    let code = coss_identity::totp_code(&seed, now - 30_000).unwrap();
    let grant = office
        .platform
        .accounts
        .login(
            &coss_identity::Login {
                email,
                password: coss_testkit::PASSWORD,
                second_factor: Some(coss_identity::SecondFactor::Totp(&code)),
                kind: coss_store::SessionKind::App,
                client: coss_identity::Client::default(),
            },
            now,
        )
        .await
        .unwrap();
    (
        format!("Authorization: Bearer {}", grant.token.expose()),
        seed,
    )
}

/// Asks for a withdrawal of `amount` ETH with the code of `step` steps from now.
async fn withdraw(
    office: &Office,
    bearer: &str,
    seed: &str,
    amount: &str,
    step: i64,
) -> coss_testkit::Answer {
    let code = coss_identity::totp_code(seed, office.now() + step * 30_000).unwrap();
    http(
        None,
        office.platform.address,
        "POST",
        "/api/v1/wallet/withdrawals",
        &[bearer],
        Some(&json!({ "asset": "ETH", "address": "0x00000000000000000000000000000000000000aa", "amount": amount, "code": code }).to_string()),
    )
    .await
}

/// Waits (at most 30 s) until the withdrawal's status is one of `wanted`.
async fn until_status(office: &Office, bearer: &str, id: i64, wanted: &[&str]) -> String {
    for _ in 0..300 {
        let answer = http(
            None,
            office.platform.address,
            "GET",
            &format!("/api/v1/wallet/withdrawals/{id}"),
            &[bearer],
            None,
        )
        .await;
        let status = answer.json()["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if wanted.contains(&status.as_str()) {
            return status;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("withdrawal {id} never reached {wanted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_withdrawal_waits_for_two_operators_and_the_kill_switch_stops_signing() {
    let office = Office::start().await;
    let root = office.superadmin().await;
    let alice = office
        .operator(&root, "alice@coss.example", Role::Admin)
        .await;
    let bob = office
        .operator(&root, "bob@coss.example", Role::Compliance)
        .await;
    let tech = office
        .operator(&root, "tech@coss.example", Role::Technical)
        .await;
    let (carol, carol_seed) = funded_user(&office, "carol@example.com", 20).await;
    let (dave, dave_seed) = funded_user(&office, "dave@example.com", 20).await;

    // Above half the daily limit of level 0 (10 ETH): held in the core, not signed.
    let large = withdraw(&office, &carol, &carol_seed, "6", 0).await;
    assert_eq!(
        (large.status, large.json()["status"].as_str()),
        (201, Some("review")),
        "{}",
        large.body
    );
    let id = large.json()["id"].as_i64().unwrap();
    let small = withdraw(&office, &dave, &dave_seed, "1", 0).await;
    assert_eq!(small.status, 201, "{}", small.body);
    until_status(
        &office,
        &dave,
        small.json()["id"].as_i64().unwrap(),
        &["broadcast", "settled"],
    )
    .await;
    let queue = office.ok("withdrawals.list", &alice, json!({})).await;
    assert_eq!(queue["review"][0]["id"], id);
    assert_eq!(queue["review"][0]["amount"], "6.000000000000000000");
    let status = http(
        None,
        office.platform.address,
        "GET",
        &format!("/api/v1/wallet/withdrawals/{id}"),
        &[&carol],
        None,
    )
    .await;
    assert_eq!(
        status.json()["status"],
        "review",
        "the sender signed nothing meanwhile"
    );

    // The first approval submits it; the same operator again is not a second pair of eyes;
    // a role without the permission cannot approve.
    let first = office
        .ok("withdrawals.approve", &alice, json!({ "id": id }))
        .await;
    assert_eq!(first["status"], "review");
    let again = office.sign_in(&alice.email, &alice.secret, 1).await;
    let (status, answer) = office
        .call(
            "withdrawals.approve",
            Some(&again.token),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("four_eyes"))
    );
    let (status, answer) = office
        .call(
            "withdrawals.approve",
            Some(&tech.token),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );

    // The kill switch: nothing of ETH is signed while it is pulled, and nothing new accepted.
    for (body, code) in [
        (json!({ "asset": "ETH", "reason": "  " }), "invalid_reason"),
        (json!({ "asset": "ETH" }), "invalid_reason"),
        (json!({ "asset": "NOPE", "reason": "x" }), "not_found"),
    ] {
        let (_, answer) = office
            .call("withdrawals.halt", Some(&tech.token), body)
            .await;
        assert_eq!(answer["code"], code);
    }
    let halts = office.ok("withdrawals.list", &alice, json!({})).await;
    assert_eq!(halts["halts"], json!([]), "a refused halt changes nothing");
    office
        .ok(
            "withdrawals.halt",
            &tech,
            json!({ "asset": "ETH", "reason": "hot wallet check" }),
        )
        .await;
    let second = office
        .ok("withdrawals.approve", &bob, json!({ "id": id }))
        .await;
    assert_eq!(second["status"], "held");
    let refused = withdraw(&office, &dave, &dave_seed, "1", 1).await;
    assert_eq!(
        (refused.status, refused.json()["code"].as_str()),
        (503, Some("withdrawals_halted"))
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let status = http(
        None,
        office.platform.address,
        "GET",
        &format!("/api/v1/wallet/withdrawals/{id}"),
        &[&carol],
        None,
    )
    .await;
    assert_eq!(status.json()["status"], "held", "halted: not signed");
    office
        .ok("withdrawals.resume", &tech, json!({ "asset": "ETH" }))
        .await;
    until_status(&office, &carol, id, &["broadcast", "settled"]).await;

    // A rejection gives the hold back.
    let (erin, erin_seed) = funded_user(&office, "erin@example.com", 20).await;
    let rejected = withdraw(&office, &erin, &erin_seed, "7", 0).await;
    assert_eq!(rejected.json()["status"], "review");
    let rid = rejected.json()["id"].as_i64().unwrap();
    let (_, answer) = office
        .call("withdrawals.reject", Some(&bob.token), json!({ "id": rid }))
        .await;
    assert_eq!(
        answer["code"], "invalid_params",
        "a rejection needs a reason"
    );
    office
        .ok(
            "withdrawals.reject",
            &bob,
            json!({ "id": rid, "reason": "destination on a sanctions list" }),
        )
        .await;
    until_status(&office, &erin, rid, &["cancelled"]).await;
    let (status, answer) = office
        .call(
            "withdrawals.approve",
            Some(&alice.token),
            json!({ "id": rid }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::CONFLICT, Some("not_pending"))
    );
    let balances = http(
        None,
        office.platform.address,
        "GET",
        "/api/v1/wallet/balances",
        &[&erin],
        None,
    )
    .await;
    let eth = balances
        .json()
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == "ETH")
        .cloned()
        .unwrap();
    assert_eq!(eth["available"], "20.000000000000000000", "{eth}");

    let entries = office.audit(&root).await;
    for (operation, who) in [
        ("withdrawals.approve", "alice@coss.example"),
        ("withdrawals.approve", "bob@coss.example"),
        ("withdrawals.halt", "tech@coss.example"),
        ("withdrawals.resume", "tech@coss.example"),
        ("withdrawals.reject", "bob@coss.example"),
    ] {
        assert!(
            entries.iter().any(|e| e["operation"] == operation
                && e["operator"] == who
                && e["outcome"] == "ok"),
            "{operation} by {who}"
        );
    }
    office.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_factor_reset_needs_two_operators_and_tells_the_owner() {
    let office = Office::start().await;
    let root = office.superadmin().await;
    let compliance = office
        .operator(&root, "compliance@coss.example", Role::Compliance)
        .await;
    let admin = office
        .operator(&root, "admin@coss.example", Role::Admin)
        .await;
    let now = office.now();
    let user = verified(&office.platform.accounts, "lost@example.com", now).await;
    coss_testkit::with_totp(&office.platform.accounts, user, now).await;
    let login = || async {
        http(
            None,
            office.platform.address,
            "POST",
            "/api/v1/auth/login",
            &[],
            Some(
                &json!({ "email": "lost@example.com", "password": coss_testkit::PASSWORD })
                    .to_string(),
            ),
        )
        .await
    };
    assert_eq!(login().await.json()["code"], "two_factor_required");

    let (_, answer) = office
        .call(
            "users.reset_2fa",
            Some(&compliance.token),
            json!({ "user_id": user.0 }),
        )
        .await;
    assert_eq!(answer["code"], "invalid_params", "a reset needs a reason");
    let (status, submitted) = office
        .call(
            "users.reset_2fa",
            Some(&compliance.token),
            json!({ "user_id": user.0, "reason": "lost phone; identity checked by video call" }),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{submitted}");
    let id = submitted["request_id"].as_i64().unwrap();
    let (status, answer) = office
        .call(
            "requests.approve",
            Some(&compliance.token),
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        (status, answer["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("four_eyes"))
    );
    assert_eq!(
        login().await.json()["code"],
        "two_factor_required",
        "nothing changed yet"
    );

    office
        .ok("requests.approve", &admin, json!({ "id": id }))
        .await;
    let signed_in = login().await;
    assert_eq!(signed_in.status, 200, "{}", signed_in.body);
    // The owner hears of it at once (a thief's accomplice cannot do it quietly).
    let maildir = office.platform.data_dir().join("mail/new");
    let mut told = false;
    for _ in 0..100 {
        told = std::fs::read_dir(&maildir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| {
                let text = std::fs::read_to_string(f.path()).unwrap_or_default();
                text.contains("lost@example.com") && text.contains("removed by COSS support")
            });
        if told {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(told, "the owner is emailed");
    // And money waits a day after the change.
    let allowed = office
        .platform
        .accounts
        .ensure_withdrawals_allowed(user, office.now())
        .await;
    assert_eq!(allowed.unwrap_err().code(), "withdrawals_locked");
    office.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accountants_see_revenue_by_week_and_liabilities_against_the_chain() {
    use coss_core::{Command, NewOrder, OrderKind, SelfTradePrevention, TimeInForce};
    use coss_types::{Price, Qty, Side};
    let office = Office::start().await;
    let root = office.superadmin().await;
    let accountant = office
        .operator(&root, "books@coss.example", Role::Accountant)
        .await;
    let now = office.now();
    let engine = &office.platform.engine;
    let seller = coss_identity::exchange_account(
        verified(&office.platform.accounts, "seller@example.com", now).await,
    )
    .unwrap();
    let buyer = coss_identity::exchange_account(
        verified(&office.platform.accounts, "buyer@example.com", now).await,
    )
    .unwrap();
    // Credited without coins on chain: more ETH owed than the hot wallet's 100.
    coss_testkit::deposit(
        engine,
        seller,
        coss_wallet::DEV_ETH,
        200 * coss_testkit::ETH_1,
    )
    .await;
    coss_testkit::deposit(
        engine,
        buyer,
        coss_wallet::DEV_TUSD,
        1_000 * coss_testkit::TUSD_1,
    )
    .await;
    for (account, side) in [(seller, Side::Sell), (buyer, Side::Buy)] {
        let placed = engine
            .submit_async(Command::PlaceOrder(NewOrder {
                account,
                market: coss_types::MarketId(1),
                side,
                kind: OrderKind::Limit {
                    price: Price(100_000),
                    qty: Qty(10),
                    tif: TimeInForce::Gtc,
                },
                client_id: None,
                stp: SelfTradePrevention::None,
            }))
            .await
            .unwrap();
        assert!(placed.outcome.is_ok());
    }

    let overview = office.ok("money.overview", &accountant, json!({})).await;
    let asset = |symbol: &str| {
        overview["assets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["asset"] == symbol)
            .cloned()
            .unwrap()
    };
    let eth = asset("ETH");
    assert_eq!(eth["in_accounts"], "200.000000000000000000", "{eth}");
    assert!(
        eth["shortfall"].is_string(),
        "the chain holds less ETH than is owed: {eth}"
    );
    let tusd = asset("TUSD");
    assert_eq!(tusd["shortfall"], Value::Null, "{tusd}");
    assert_ne!(
        tusd["platform_fees"], "0",
        "the trade's fees are the platform's: {tusd}"
    );

    let revenue = office.ok("money.revenue", &accountant, json!({})).await;
    let week = coss_market::week_start(u64::try_from(office.now()).unwrap());
    let rows = revenue["weeks"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["week_start"] == week && r["asset"] == "TUSD" && r["holders"] != "0"),
        "{revenue}"
    );
    assert!(
        rows.iter()
            .any(|r| r["week_start"] == week && r["asset"] == "ETH" && r["platform"] != "0"),
        "{revenue}"
    );
    let csv = office
        .ok("money.export", &accountant, json!({ "what": "overview" }))
        .await;
    assert!(
        csv["csv"]
            .as_str()
            .unwrap()
            .starts_with("asset,in_accounts,users,")
    );
    let (_, answer) = office
        .call(
            "money.export",
            Some(&accountant.token),
            json!({ "what": "secrets" }),
        )
        .await;
    assert_eq!(answer["code"], "invalid_export");
    office.ok("money.dao_weeks", &accountant, json!({})).await;
    let support = office
        .operator(&root, "support@coss.example", Role::Support)
        .await;
    let (status, _) = office
        .call("money.overview", Some(&support.token), json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    office.platform.stop().await;
}
