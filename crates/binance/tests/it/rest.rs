use crate::{ETH_1, Key, TUSD_1, code, fixture, now};
use axum::http::StatusCode;
use coss_binance::RateLimits;
use coss_identity::{Permission, sign};
use serde_json::Value;

#[tokio::test]
async fn general_endpoints_and_exchange_info_describe_the_markets_with_binance_filters() {
    let f = fixture(RateLimits::default()).await;
    assert_eq!(
        f.public("/api/v3/ping").await,
        (StatusCode::OK, serde_json::json!({}))
    );
    let (status, time) = f.public("/api/v3/time").await;
    assert_eq!(status, StatusCode::OK);
    assert!((time["serverTime"].as_i64().unwrap() - now()).abs() < 5_000);

    let (_, info) = f.public("/api/v3/exchangeInfo").await;
    assert_eq!(info["timezone"], "UTC");
    let symbol = &info["symbols"][0];
    assert_eq!(symbol["symbol"], "ETHTUSD");
    assert_eq!(symbol["status"], "TRADING");
    assert_eq!(symbol["baseAsset"], "ETH");
    assert_eq!(symbol["quoteAsset"], "TUSD");
    let filter = |name: &str| {
        symbol["filters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["filterType"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(filter("PRICE_FILTER")["tickSize"], "0.01000000");
    assert_eq!(filter("LOT_SIZE")["stepSize"], "0.00010000");
    assert_eq!(filter("MIN_NOTIONAL")["minNotional"], "1.00000000");
    assert_eq!(info["rateLimits"][0]["limit"], 6000);

    let (_, one) = f.public("/api/v3/exchangeInfo?symbol=ETHTUSD").await;
    assert_eq!(one["symbols"].as_array().unwrap().len(), 1);
    let (status, error) = f.public("/api/v3/exchangeInfo?symbol=NOPE").await;
    assert_eq!((status, code(&error)), (StatusCode::BAD_REQUEST, -1121));
    let (_, error) = f.public("/api/v3/ping?surprise=1").await;
    assert_eq!(
        code(&error),
        -1104,
        "every parameter sent must be one the endpoint reads"
    );
}

#[tokio::test]
async fn a_limit_order_rests_is_filled_by_a_crossing_order_and_shows_everywhere() {
    let f = fixture(RateLimits::default()).await;
    let alice = f
        .trader("alice@example.com", &[Permission::Trade], 2 * ETH_1, 0)
        .await;
    let bob = f
        .trader("bob@example.com", &[Permission::Trade], 0, 10_000 * TUSD_1)
        .await;

    // Alice offers 0.5 ETH at 2000.
    let (status, placed) = f
        .post_form(
            "/api/v3/order",
            &alice,
            "symbol=ETHTUSD&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.5&price=2000&newClientOrderId=alice-1",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{placed}");
    assert_eq!(placed["status"], "NEW");
    assert_eq!(placed["clientOrderId"], "alice-1");
    assert_eq!(placed["origQty"], "0.50000000");
    assert_eq!(placed["price"], "2000.00000000");
    assert_eq!(placed["fills"], serde_json::json!([]));
    let alice_order = placed["orderId"].as_u64().unwrap();

    let (_, depth) = f.public("/api/v3/depth?symbol=ETHTUSD&limit=5").await;
    assert_eq!(
        depth["asks"],
        serde_json::json!([["2000.00000000", "0.50000000"]])
    );
    assert_eq!(depth["bids"], serde_json::json!([]));
    let first_update = depth["lastUpdateId"].as_u64().unwrap();

    let (_, open) = f
        .signed("GET", "/api/v3/openOrders", &alice, "symbol=ETHTUSD")
        .await;
    assert_eq!(open.as_array().unwrap().len(), 1);
    let (_, account) = f.signed("GET", "/api/v3/account", &alice, "").await;
    let eth = account["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == "ETH")
        .unwrap()
        .clone();
    assert_eq!(
        (eth["free"].as_str(), eth["locked"].as_str()),
        (Some("1.50000000"), Some("0.50000000"))
    );

    // Bob buys 0.8 ETH up to 2001: 0.5 fills at 2000 (the maker's price), 0.3 rests at 2001.
    let (status, bought) = f
        .post_form(
            "/api/v3/order",
            &bob,
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.8&price=2001",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{bought}");
    assert_eq!(bought["status"], "PARTIALLY_FILLED");
    assert_eq!(bought["executedQty"], "0.50000000");
    assert_eq!(bought["cummulativeQuoteQty"], "1000.00000000");
    assert_eq!(bought["fills"][0]["price"], "2000.00000000");
    assert_eq!(bought["fills"][0]["qty"], "0.50000000");
    assert_eq!(bought["fills"][0]["commissionAsset"], "ETH");
    assert_eq!(
        bought["clientOrderId"].as_str().unwrap().len(),
        22,
        "a generated client order id"
    );

    let (_, order) = f
        .signed(
            "GET",
            "/api/v3/order",
            &alice,
            "symbol=ETHTUSD&origClientOrderId=alice-1",
        )
        .await;
    assert_eq!(order["orderId"].as_u64(), Some(alice_order));
    assert_eq!(order["status"], "FILLED");
    assert_eq!(order["executedQty"], "0.50000000");

    let (_, depth) = f.public("/api/v3/depth?symbol=ETHTUSD").await;
    assert_eq!(depth["asks"], serde_json::json!([]));
    assert_eq!(
        depth["bids"],
        serde_json::json!([["2001.00000000", "0.30000000"]])
    );
    assert!(depth["lastUpdateId"].as_u64().unwrap() > first_update);

    let (_, trades) = f.public("/api/v3/trades?symbol=ETHTUSD").await;
    assert_eq!(trades.as_array().unwrap().len(), 1);
    assert_eq!(trades[0]["price"], "2000.00000000");
    assert_eq!(trades[0]["quoteQty"], "1000.00000000");
    assert_eq!(trades[0]["isBuyerMaker"], false);
    let (_, agg) = f.public("/api/v3/aggTrades?symbol=ETHTUSD").await;
    assert_eq!(agg[0]["p"], "2000.00000000");

    let (_, mine) = f
        .signed("GET", "/api/v3/myTrades", &alice, "symbol=ETHTUSD")
        .await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    assert_eq!(mine[0]["isBuyer"], false);
    assert_eq!(mine[0]["isMaker"], true);
    assert_eq!(mine[0]["commissionAsset"], "TUSD");
    let (_, theirs) = f
        .signed("GET", "/api/v3/myTrades", &bob, "symbol=ETHTUSD")
        .await;
    assert_eq!(theirs[0]["isBuyer"], true);

    // Balances are exact: alice received 1000 TUSD less her maker fee.
    let (_, account) = f.signed("GET", "/api/v3/account", &alice, "").await;
    let fee: u128 = coss_core::fee_for(
        1_000 * TUSD_1,
        coss_core::default_fee_schedule()[0].maker_ppm,
    );
    let tusd = account["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == "TUSD")
        .unwrap()
        .clone();
    let expected = coss_types::Amount(1_000 * TUSD_1 - fee).to_decimal_string(6);
    assert_eq!(
        tusd["free"].as_str().unwrap().trim_end_matches('0'),
        expected.trim_end_matches('0')
    );
    assert_eq!(
        account["commissionRates"]["maker"].as_str().unwrap().len(),
        10
    );

    // Candles and tickers see the trade.
    let (_, klines) = f.public("/api/v3/klines?symbol=ETHTUSD&interval=1m").await;
    assert_eq!(klines.as_array().unwrap().len(), 1);
    assert_eq!(klines[0][1], "2000.00000000");
    assert_eq!(klines[0][5], "0.50000000");
    assert_eq!(klines[0][8], 1);
    let (_, ticker) = f.public("/api/v3/ticker/24hr?symbol=ETHTUSD").await;
    assert_eq!(ticker["lastPrice"], "2000.00000000");
    assert_eq!(ticker["volume"], "0.50000000");
    assert_eq!(ticker["bidPrice"], "2001.00000000");
    assert_eq!(ticker["count"], 1);
    let (_, price) = f.public("/api/v3/ticker/price?symbol=ETHTUSD").await;
    assert_eq!(price["price"], "2000.00000000");
    let (_, all) = f.public("/api/v3/ticker/price").await;
    assert!(all.is_array());
    let (_, listed) = f
        .public("/api/v3/ticker/24hr?symbols=%5B%22ETHTUSD%22%5D")
        .await;
    assert_eq!(listed[0]["symbol"], "ETHTUSD", "symbols=[…] answers a list");
    let (_, both) = f
        .public("/api/v3/ticker/price?symbol=ETHTUSD&symbols=%5B%22ETHTUSD%22%5D")
        .await;
    assert_eq!(code(&both), -1128);
    let (_, average) = f.public("/api/v3/avgPrice?symbol=ETHTUSD").await;
    assert_eq!(
        (average["mins"].as_i64(), average["price"].as_str()),
        (Some(5), Some("2000.00000000"))
    );
    let (_, ui) = f
        .public("/api/v3/uiKlines?symbol=ETHTUSD&interval=1h")
        .await;
    assert_eq!(ui[0][4], "2000.00000000");
    let (_, from_start) = f
        .public(&format!(
            "/api/v3/klines?symbol=ETHTUSD&interval=1d&startTime={}",
            now() - 86_400_000
        ))
        .await;
    assert_eq!(from_start.as_array().unwrap().len(), 1);
    let trade_id = trades[0]["id"].as_u64().unwrap();
    let (_, historical) = f
        .public(&format!(
            "/api/v3/historicalTrades?symbol=ETHTUSD&fromId={trade_id}"
        ))
        .await;
    assert_eq!(historical[0]["id"].as_u64(), Some(trade_id));
    let (_, later) = f
        .public(&format!(
            "/api/v3/historicalTrades?symbol=ETHTUSD&fromId={}",
            trade_id + 1
        ))
        .await;
    assert_eq!(later, serde_json::json!([]));
    let (_, book) = f.public("/api/v3/ticker/bookTicker?symbol=ETHTUSD").await;
    assert_eq!(
        (book["bidPrice"].as_str(), book["askQty"].as_str()),
        (Some("2001.00000000"), Some("0.00000000"))
    );

    // Bob cancels the rest; a second cancel names no open order.
    let bob_order = bought["orderId"].as_u64().unwrap();
    let (status, cancelled) = f
        .signed(
            "DELETE",
            "/api/v3/order",
            &bob,
            &format!("symbol=ETHTUSD&orderId={bob_order}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "CANCELED");
    assert_eq!(cancelled["executedQty"], "0.50000000");
    let (_, again) = f
        .signed(
            "DELETE",
            "/api/v3/order",
            &bob,
            &format!("symbol=ETHTUSD&orderId={bob_order}"),
        )
        .await;
    assert_eq!(code(&again), -2011);
    let (_, all_orders) = f
        .signed("GET", "/api/v3/allOrders", &bob, "symbol=ETHTUSD")
        .await;
    assert_eq!(all_orders.as_array().unwrap().len(), 1);
    assert_eq!(all_orders[0]["status"], "CANCELED");
    let (_, missing) = f
        .signed("GET", "/api/v3/order", &bob, "symbol=ETHTUSD&orderId=999")
        .await;
    assert_eq!(code(&missing), -2013);
    let (_, none_open) = f
        .signed("DELETE", "/api/v3/openOrders", &bob, "symbol=ETHTUSD")
        .await;
    assert_eq!(code(&none_open), -2011);
}

#[tokio::test]
async fn market_orders_by_quantity_or_quote_amount_and_time_in_force_behave_like_binance() {
    let f = fixture(RateLimits::default()).await;
    let maker = f
        .trader("maker@example.com", &[Permission::Trade], 10 * ETH_1, 0)
        .await;
    let taker = f
        .trader(
            "taker@example.com",
            &[Permission::Trade],
            0,
            100_000 * TUSD_1,
        )
        .await;
    for (price, qty) in [("100", "1"), ("101", "1"), ("102", "1")] {
        let (status, answer) = f
            .post_form("/api/v3/order", &maker, &format!("symbol=ETHTUSD&side=SELL&type=LIMIT&timeInForce=GTC&quantity={qty}&price={price}"))
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let (_, market) = f
        .post_form(
            "/api/v3/order",
            &taker,
            "symbol=ETHTUSD&side=BUY&type=MARKET&quantity=1.5",
        )
        .await;
    assert_eq!(market["status"], "FILLED");
    assert_eq!(market["type"], "MARKET");
    assert_eq!(market["cummulativeQuoteQty"], "150.50000000");
    assert_eq!(market["fills"].as_array().unwrap().len(), 2);

    let (_, by_quote) = f
        .post_form(
            "/api/v3/order",
            &taker,
            "symbol=ETHTUSD&side=BUY&type=MARKET&quoteOrderQty=50.5",
        )
        .await;
    assert_eq!(by_quote["executedQty"], "0.50000000", "{by_quote}");
    assert_eq!(by_quote["origQuoteOrderQty"], "50.50000000");

    // IOC: what does not fill at once expires. FOK: all or nothing.
    let (_, ioc) = f
        .post_form(
            "/api/v3/order",
            &taker,
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=IOC&quantity=2&price=102",
        )
        .await;
    assert_eq!(
        (ioc["status"].as_str(), ioc["executedQty"].as_str()),
        (Some("EXPIRED"), Some("1.00000000"))
    );
    let (_, fok) = f
        .post_form(
            "/api/v3/order",
            &taker,
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=FOK&quantity=1&price=200",
        )
        .await;
    assert_eq!(
        (fok["status"].as_str(), fok["executedQty"].as_str()),
        (Some("EXPIRED"), Some("0.00000000"))
    );

    // LIMIT_MAKER that would take is refused; one that rests is accepted.
    f.post_form(
        "/api/v3/order",
        &maker,
        "symbol=ETHTUSD&side=SELL&type=LIMIT&timeInForce=GTC&quantity=1&price=110",
    )
    .await;
    let (_, taking) = f
        .post_form(
            "/api/v3/order",
            &taker,
            "symbol=ETHTUSD&side=BUY&type=LIMIT_MAKER&quantity=1&price=110",
        )
        .await;
    assert_eq!(
        (code(&taking), taking["msg"].as_str()),
        (-2010, Some("Order would immediately match and take."))
    );
    let (_, resting) = f
        .post_form(
            "/api/v3/order",
            &taker,
            "symbol=ETHTUSD&side=BUY&type=LIMIT_MAKER&quantity=1&price=109",
        )
        .await;
    assert_eq!(resting["type"], "LIMIT_MAKER");
    assert_eq!(resting["status"], "NEW");

    // order/test validates without placing anything.
    let (status, tested) = f
        .post_form(
            "/api/v3/order/test",
            &taker,
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1",
        )
        .await;
    assert_eq!((status, tested), (StatusCode::OK, serde_json::json!({})));
    let (_, open) = f.signed("GET", "/api/v3/openOrders", &taker, "").await;
    assert_eq!(open.as_array().unwrap().len(), 1);

    // DELETE openOrders cancels every open order of the symbol.
    let (_, cancelled) = f
        .signed("DELETE", "/api/v3/openOrders", &maker, "symbol=ETHTUSD")
        .await;
    assert_eq!(cancelled.as_array().unwrap().len(), 1, "{cancelled}");
    assert_eq!(cancelled[0]["status"], "CANCELED");
}

#[tokio::test]
async fn mistakes_get_binance_codes_and_move_nothing() {
    let f = fixture(RateLimits::default()).await;
    let alice = f
        .trader(
            "alice@example.com",
            &[Permission::Trade],
            ETH_1,
            1_000 * TUSD_1,
        )
        .await;
    let reader = f
        .trader("reader@example.com", &[Permission::Read], 0, 0)
        .await;
    let order = |params: &'static str| {
        let f = &f;
        let alice = &alice;
        async move { f.post_form("/api/v3/order", alice, params).await }
    };
    let cases: [(&str, i64, &str); 15] = [
        (
            "symbol=NOPE&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1",
            -1121,
            "Invalid symbol.",
        ),
        (
            "symbol=ETHTUSD&side=UP&type=LIMIT&timeInForce=GTC&quantity=1&price=1",
            -1117,
            "Invalid side.",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=ICEBERG&quantity=1",
            -1116,
            "Invalid orderType.",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTD&quantity=1&price=1",
            -1115,
            "Invalid timeInForce.",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&price=1",
            -1102,
            "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1.005",
            -1013,
            "Filter failure: PRICE_FILTER",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1.00001&price=1",
            -1013,
            "Filter failure: LOT_SIZE",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.0001&price=1",
            -1013,
            "Filter failure: MIN_NOTIONAL",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1.0000001",
            -1111,
            "Precision is over the maximum defined for this asset.",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=abc",
            -1100,
            "Illegal characters found in parameter 'price'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=5000",
            -2010,
            "Account has insufficient balance for requested action.",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=MARKET",
            -1102,
            "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=MARKET&quantity=1&price=5",
            -1106,
            "Parameter 'price' sent when not required.",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1&colour=red",
            -1104,
            "Not all sent parameters were read; read '8' parameter(s) but was sent '9'.",
        ),
        (
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1&newClientOrderId=bad%20id",
            -1100,
            "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[a-zA-Z0-9-_.:/]{1,36}$'.",
        ),
    ];
    for (params, expected, message) in cases {
        let (status, answer) = order(params).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{params}: {answer}");
        assert_eq!(
            (code(&answer), answer["msg"].as_str().unwrap()),
            (expected, message),
            "{params}"
        );
    }
    // A repeated client order id is a duplicate.
    let place = "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1&newClientOrderId=once";
    assert_eq!(order(place).await.0, StatusCode::OK);
    let (_, duplicate) = order(place).await;
    assert_eq!(
        (code(&duplicate), duplicate["msg"].as_str()),
        (-2010, Some("Duplicate order sent."))
    );

    // Signature, timestamp and key mistakes.
    let query = format!("symbol=ETHTUSD&timestamp={}", now());
    let uri = format!("/api/v3/openOrders?{query}&signature={}", "0".repeat(64));
    let (status, bad_signature, _) = f.send("GET", &uri, Some(&alice.key), "").await;
    assert_eq!(
        (status, code(&bad_signature)),
        (StatusCode::BAD_REQUEST, -1022)
    );
    let stale = format!("symbol=ETHTUSD&timestamp={}", now() - 60_000);
    let uri = format!(
        "/api/v3/openOrders?{stale}&signature={}",
        sign(&alice.secret, &stale)
    );
    let (_, old, _) = f.send("GET", &uri, Some(&alice.key), "").await;
    assert_eq!(code(&old), -1021);
    let uri = format!(
        "/api/v3/openOrders?{query}&signature={}",
        sign(&alice.secret, &query)
    );
    let (status, no_key, _) = f.send("GET", &uri, None, "").await;
    assert_eq!((status, code(&no_key)), (StatusCode::UNAUTHORIZED, -2014));
    let (status, unknown_key, _) = f.send("GET", &uri, Some("nobody"), "").await;
    assert_eq!(
        (status, code(&unknown_key)),
        (StatusCode::UNAUTHORIZED, -2015)
    );
    let unsigned = format!("/api/v3/openOrders?{query}");
    let (_, unsigned, _) = f.send("GET", &unsigned, Some(&alice.key), "").await;
    assert_eq!(code(&unsigned), -1102);
    // A body that is not text is refused, not read as empty: the order signed in the query
    // beside it is not placed.
    let order_query = format!(
        "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1&timestamp={}",
        now()
    );
    let uri = format!(
        "/api/v3/order?{order_query}&signature={}",
        sign(&alice.secret, &order_query)
    );
    let (status, not_text, _) = f
        .send_bytes("POST", &uri, Some(&alice.key), b"price=\xff\xfe")
        .await;
    assert_eq!(
        (status, code(&not_text), not_text["msg"].as_str()),
        (
            StatusCode::BAD_REQUEST,
            -1100,
            Some("Illegal characters found in the request body; it must be UTF-8 text.")
        )
    );
    // A read-only key cannot trade.
    let (status, denied) = f
        .post_form(
            "/api/v3/order",
            &reader,
            "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1",
        )
        .await;
    assert_eq!((status, code(&denied)), (StatusCode::UNAUTHORIZED, -2015));
    let (status, _) = f.signed("GET", "/api/v3/account", &reader, "").await;
    assert_eq!(status, StatusCode::OK);

    // Nothing but the one accepted order moved alice's money.
    let (_, account) = f.signed("GET", "/api/v3/account", &alice, "").await;
    let tusd = account["balances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["asset"] == "TUSD")
        .unwrap()
        .clone();
    assert_eq!(
        (tusd["free"].as_str(), tusd["locked"].as_str()),
        (Some("999.00000000"), Some("1.00000000"))
    );
    let (_, klines) = f.public("/api/v3/klines?symbol=ETHTUSD&interval=2m").await;
    assert_eq!(code(&klines), -1120);
    assert_eq!(f.accounts.store().due_mail(0, 1).await.unwrap().len(), 0);
    let _ = alice.account;
}

#[tokio::test]
async fn request_weight_over_the_limit_gets_429_with_retry_after_then_418() {
    let f = fixture(RateLimits {
        weight_per_minute: 30,
        ..RateLimits::default()
    })
    .await;
    // exchangeInfo weighs 20: the first passes, the second is over 30.
    let (status, _, headers) = f.send("GET", "/api/v3/exchangeInfo", None, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-mbx-used-weight-1m"], "20");
    let (status, error, headers) = f.send("GET", "/api/v3/exchangeInfo", None, "").await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::TOO_MANY_REQUESTS, -1003)
    );
    assert!(headers.contains_key("retry-after"));
    let mut last = StatusCode::OK;
    for _ in 0..12 {
        last = f.send("GET", "/api/v3/ping", None, "").await.0;
    }
    assert_eq!(
        last,
        StatusCode::IM_A_TEAPOT,
        "an address that ignores 429s is banned"
    );
}

#[tokio::test]
async fn order_rate_limits_count_per_account() {
    let f = fixture(RateLimits {
        orders_per_10s: 2,
        ..RateLimits::default()
    })
    .await;
    let alice = f
        .trader("alice@example.com", &[Permission::Trade], 0, 1_000 * TUSD_1)
        .await;
    let place = "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=1";
    assert_eq!(
        f.post_form("/api/v3/order", &alice, place).await.0,
        StatusCode::OK
    );
    assert_eq!(
        f.post_form("/api/v3/order", &alice, place).await.0,
        StatusCode::OK
    );
    let (status, error) = f.post_form("/api/v3/order", &alice, place).await;
    assert_eq!(
        (status, code(&error)),
        (StatusCode::TOO_MANY_REQUESTS, -1015)
    );
}

#[tokio::test]
async fn listen_keys_are_created_kept_alive_and_closed_with_the_api_key() {
    let f = fixture(RateLimits::default()).await;
    let alice = f
        .trader("alice@example.com", &[Permission::Read], 0, 0)
        .await;
    let (status, created, _) = f
        .send("POST", "/api/v3/userDataStream", Some(&alice.key), "")
        .await;
    assert_eq!(status, StatusCode::OK);
    let key = created["listenKey"].as_str().unwrap().to_owned();
    assert_eq!(key.len(), 60);
    let uri = format!("/api/v3/userDataStream?listenKey={key}");
    assert_eq!(
        f.send("PUT", &uri, Some(&alice.key), "").await.0,
        StatusCode::OK
    );
    assert_eq!(
        f.send("DELETE", &uri, Some(&alice.key), "").await.0,
        StatusCode::OK
    );
    let (_, gone, _) = f.send("PUT", &uri, Some(&alice.key), "").await;
    assert_eq!(code(&gone), -1125);
    let (status, _, _) = f.send("POST", "/api/v3/userDataStream", None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn thousands_of_parameter_names_are_refused_by_count_and_still_weigh() {
    // `ping?0&1&2&…` with 12,000 names (about what a URI holds) used to be decoded and
    // compared pairwise at weight 1; now the names are counted first, the request is refused
    // with -1101, and the refusal is weighed like any request.
    let f = fixture(RateLimits::default()).await;
    let names: Vec<String> = (0..12_000).map(|n| format!("{n:x}")).collect();
    let uri = format!("/api/v3/ping?{}", names.join("&"));
    let (status, error, headers) = f.send("GET", &uri, None, "").await;
    assert_eq!((status, code(&error)), (StatusCode::BAD_REQUEST, -1101));
    assert!(
        error["msg"].as_str().unwrap().contains("received '12000'"),
        "{error}"
    );
    assert_eq!(headers["x-mbx-used-weight-1m"], "1");
    // Duplicates are still found (by sorting, not pairwise), across query and body.
    let (status, error, _) = f
        .send("POST", "/api/v3/order/test?b=1&a=1", None, "c=1&a=2")
        .await;
    assert_eq!((status, code(&error)), (StatusCode::BAD_REQUEST, -1101));
    assert!(error["msg"].as_str().unwrap().contains("'a'"), "{error}");
}

#[tokio::test]
async fn an_account_holds_one_listen_key_however_often_it_asks() {
    // A new key per request let one API key hold 40,000; as on Binance, asking again answers
    // the live key and keeps it alive.
    let f = fixture(RateLimits::default()).await;
    let alice = f
        .trader("alice@example.com", &[Permission::Read], 0, 0)
        .await;
    let bob = f.trader("bob@example.com", &[Permission::Read], 0, 0).await;
    let ask = |key: &Key| {
        let key = key.key.clone();
        let f = &f;
        async move {
            let (status, created, _) = f
                .send("POST", "/api/v3/userDataStream", Some(&key), "")
                .await;
            assert_eq!(status, StatusCode::OK);
            created["listenKey"].as_str().unwrap().to_owned()
        }
    };
    let first = ask(&alice).await;
    for _ in 0..50 {
        assert_eq!(ask(&alice).await, first);
    }
    let bobs = ask(&bob).await;
    assert_ne!(bobs, first);
    // Once closed, the next request makes a new one.
    let uri = format!("/api/v3/userDataStream?listenKey={first}");
    assert_eq!(
        f.send("DELETE", &uri, Some(&alice.key), "").await.0,
        StatusCode::OK
    );
    assert_ne!(ask(&alice).await, first);
}

#[tokio::test]
async fn orders_beyond_the_advertised_max_price_and_qty_are_refused() {
    let f = fixture(RateLimits::default()).await;
    let alice = f
        .trader("alice@example.com", &[Permission::Trade], 0, 1_000 * TUSD_1)
        .await;
    let (_, info) = f.public("/api/v3/exchangeInfo?symbol=ETHTUSD").await;
    let filters = info["symbols"][0]["filters"].as_array().unwrap().clone();
    let filter = |kind: &str, field: &str| {
        filters.iter().find(|f| f["filterType"] == kind).unwrap()[field]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (max_price, tick) = (
        filter("PRICE_FILTER", "maxPrice"),
        filter("PRICE_FILTER", "tickSize"),
    );
    let (max_qty, step) = (filter("LOT_SIZE", "maxQty"), filter("LOT_SIZE", "stepSize"));
    let above = |max: &str, unit: &str| {
        // max + one unit, in decimal text: both have the same number of decimals.
        let scale = unit.split('.').nth(1).map_or(0, str::len);
        let as_int = |t: &str| t.replace('.', "").parse::<u128>().unwrap();
        let sum = as_int(max) + as_int(unit);
        let text = format!("{sum:0>width$}", width = scale + 1);
        let (int, frac) = text.split_at(text.len() - scale);
        if scale == 0 {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        }
    };
    let place = |price: &str, qty: &str| {
        format!("symbol=ETHTUSD&side=SELL&type=LIMIT&timeInForce=GTC&quantity={qty}&price={price}")
    };
    let filter_failure = |json: &Value| json["msg"].as_str().unwrap().to_owned();
    let (status, error) = f
        .post_form(
            "/api/v3/order/test",
            &alice,
            &place(&above(&max_price, &tick), "1"),
        )
        .await;
    assert_eq!((status, code(&error)), (StatusCode::BAD_REQUEST, -1013));
    assert!(filter_failure(&error).contains("PRICE_FILTER"), "{error}");
    let (status, error) = f
        .post_form(
            "/api/v3/order/test",
            &alice,
            &place("1", &above(&max_qty, &step)),
        )
        .await;
    assert_eq!((status, code(&error)), (StatusCode::BAD_REQUEST, -1013));
    assert!(filter_failure(&error).contains("LOT_SIZE"), "{error}");
    // At the advertised bounds, accepted.
    let (status, _) = f
        .post_form("/api/v3/order/test", &alice, &place(&max_price, "1"))
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn timestamps_far_off_or_malformed_get_their_own_answers_and_never_overflow() {
    let f = fixture(RateLimits::default()).await;
    let alice = f
        .trader("alice@example.com", &[Permission::Read], 0, 0)
        .await;
    let at = |timestamp: &str| {
        let query = format!("timestamp={timestamp}");
        let signature = sign(&alice.secret, &query);
        format!("/api/v3/account?{query}&signature={signature}")
    };
    for (timestamp, expected, words) in [
        (u64::MAX.to_string(), -1021, "ahead of the server's time"),
        (
            (now() + 60_000).to_string(),
            -1021,
            "ahead of the server's time",
        ),
        ("1".to_owned(), -1021, "outside of the recvWindow"),
        // i64::MIN used to overflow `now - timestamp` (a panic in the request's task).
        (i64::MIN.to_string(), -1100, "'timestamp'"),
        ("12abc".to_owned(), -1100, "'timestamp'"),
    ] {
        let (status, error, _) = f.send("GET", &at(&timestamp), Some(&alice.key), "").await;
        assert_eq!(
            (status, code(&error)),
            (StatusCode::BAD_REQUEST, expected),
            "{timestamp}"
        );
        assert!(
            error["msg"].as_str().unwrap().contains(words),
            "{timestamp}: {error}"
        );
    }
}
