//! The session mirror the web app trades through: `/api/v1/spot/<endpoint>` runs the same
//! endpoint as `/api/v3/<endpoint>`, with the same parameters and answers, for the browser's
//! session (its CSRF token on every change) instead of an API key's signature.

use super::*;
use axum::http::HeaderMap;
use coss_identity::{Client, Login};

struct Browser {
    cookie: String,
    csrf: String,
}

async fn browser(f: &Fixture, email: &str, tusd: u128) -> Browser {
    let t = now();
    let user = coss_testkit::verified(&f.accounts, email, t).await;
    let account = coss_identity::exchange_account(user).unwrap();
    if tusd > 0 {
        coss_testkit::deposit(&f.handle, account, TUSD, tusd).await;
    }
    let grant = f
        .accounts
        .login(
            &Login {
                email,
                password: coss_testkit::PASSWORD,
                second_factor: None,
                kind: coss_store::SessionKind::Browser,
                client: Client::default(),
            },
            t,
        )
        .await
        .unwrap();
    Browser {
        cookie: format!("{}={}", coss_http::SESSION_COOKIE, grant.token.expose()),
        csrf: grant.csrf.unwrap(),
    }
}

async fn call(
    f: &Fixture,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, Value, HeaderMap) {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/x-www-form-urlencoded");
    }
    let mut request = request.body(Body::from(body.to_owned())).unwrap();
    request.extensions_mut().insert(ConnectInfo(
        "127.0.0.1:40000".parse::<SocketAddr>().unwrap(),
    ));
    let response = f.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers,
    )
}

const ORDER: &str = "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=2000";

#[tokio::test]
async fn the_browser_session_places_reads_and_cancels_orders_with_its_csrf_token() {
    let f = fixture(RateLimits::default()).await;
    let web = browser(&f, "web@example.com", 5_000 * TUSD_1).await;
    let session = [("cookie", web.cookie.as_str())];
    let with_csrf = [
        ("cookie", web.cookie.as_str()),
        ("x-csrf-token", web.csrf.as_str()),
    ];

    // No session: Binance's error shape, 401.
    let (status, json, _) = call(&f, "POST", "/api/v1/spot/order", &[], ORDER).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["code"], -2015, "{json}");
    // A session without its CSRF token cannot change anything (a forged cross-site form).
    let (status, json, _) = call(&f, "POST", "/api/v1/spot/order", &session, ORDER).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(json["code"], -1022, "{json}");
    let (_, open, _) = call(
        &f,
        "GET",
        "/api/v1/spot/openOrders?symbol=ETHTUSD",
        &session,
        "",
    )
    .await;
    assert_eq!(
        open,
        serde_json::json!([]),
        "the forged order was not placed"
    );

    // With it: the same answer as /api/v3/order, weighed like it.
    let (status, order, headers) = call(&f, "POST", "/api/v1/spot/order", &with_csrf, ORDER).await;
    assert_eq!(status, StatusCode::OK, "{order}");
    assert_eq!(order["status"], "NEW");
    assert_eq!(order["price"], "2000.00000000");
    assert!(headers.contains_key("x-mbx-used-weight-1m"));
    // Reads need only the session.
    let (status, open, _) = call(
        &f,
        "GET",
        "/api/v1/spot/openOrders?symbol=ETHTUSD",
        &session,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(open[0]["orderId"], order["orderId"]);
    let (_, account, _) = call(&f, "GET", "/api/v1/spot/account", &session, "").await;
    let tusd = account["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == "TUSD")
        .unwrap();
    assert_eq!(tusd["locked"], "2000.00000000", "{account}");
    // Parameters are checked as on /api/v3: an unknown one is refused.
    let (status, json, _) = call(
        &f,
        "GET",
        "/api/v1/spot/openOrders?symbol=ETHTUSD&bogus=1",
        &session,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["code"], -1104);

    let cancel = format!("symbol=ETHTUSD&orderId={}", order["orderId"]);
    let (status, json, _) = call(&f, "DELETE", "/api/v1/spot/order", &session, &cancel).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{json}");
    let (status, cancelled, _) =
        call(&f, "DELETE", "/api/v1/spot/order", &with_csrf, &cancel).await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELED");
}

#[tokio::test]
async fn a_session_listen_key_is_the_accounts_one_key_and_api_keys_do_not_open_the_mirror() {
    let f = fixture(RateLimits::default()).await;
    let web = browser(&f, "web@example.com", 0).await;
    let with_csrf = [
        ("cookie", web.cookie.as_str()),
        ("x-csrf-token", web.csrf.as_str()),
    ];
    let (status, first, _) = call(&f, "POST", "/api/v1/spot/userDataStream", &with_csrf, "").await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let (_, again, _) = call(&f, "POST", "/api/v1/spot/userDataStream", &with_csrf, "").await;
    assert_eq!(
        first["listenKey"], again["listenKey"],
        "one key per account"
    );
    assert!(
        f.binance
            .listen_key_user(first["listenKey"].as_str().unwrap())
            .is_some()
    );

    // A bot's key is for /api/v3: the mirror answers only to a session.
    let bot = f.trader("bot@example.com", &[Permission::Read], 0, 0).await;
    let query = format!("timestamp={}", now());
    let uri = format!(
        "/api/v1/spot/account?{query}&signature={}",
        sign(&bot.secret, &query)
    );
    let (status, json, _) = call(&f, "GET", &uri, &[("x-mbx-apikey", &bot.key)], "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{json}");
    // And public endpoints have no mirror.
    let (status, _, _) = call(&f, "GET", "/api/v1/spot/depth?symbol=ETHTUSD", &[], "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
