//! Memory keeps only the recent part of the history; what left it is answered from the
//! database, with the same JSON.

use crate::{ETH_1, Fixture, TUSD_1, fixture_with_history};
use axum::http::StatusCode;
use coss_core::Command;
use coss_identity::Permission;
use coss_market::Retention;
use coss_types::{Amount, OrderId};
use serde_json::Value;
use std::time::{Duration, Instant};

/// Every answer that reads orders and trades, for `alice`'s account.
async fn answers(f: &Fixture, alice: &crate::Key, ids: &[u64], trade_ids: &[u64]) -> Vec<Value> {
    let mut all = Vec::new();
    for params in [
        "symbol=ETHTUSD".to_owned(),
        "symbol=ETHTUSD&limit=3".to_owned(),
        format!("symbol=ETHTUSD&orderId={}&limit=2", ids[1]),
    ] {
        let (status, json) = f.signed("GET", "/api/v3/allOrders", alice, &params).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        all.push(json);
    }
    for params in [
        format!("symbol=ETHTUSD&orderId={}", ids[0]),
        "symbol=ETHTUSD&origClientOrderId=a-1".to_owned(),
    ] {
        let (status, json) = f.signed("GET", "/api/v3/order", alice, &params).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        all.push(json);
    }
    for params in [
        "symbol=ETHTUSD".to_owned(),
        format!("symbol=ETHTUSD&fromId={}&limit=2", trade_ids[2]),
        format!("symbol=ETHTUSD&orderId={}", ids[0]),
        "symbol=ETHTUSD&limit=2".to_owned(),
    ] {
        let (status, json) = f.signed("GET", "/api/v3/myTrades", alice, &params).await;
        assert_eq!(status, StatusCode::OK, "{json}");
        all.push(json);
    }
    for path in [
        "/api/v3/trades?symbol=ETHTUSD".to_owned(),
        "/api/v3/trades?symbol=ETHTUSD&limit=2".to_owned(),
        format!(
            "/api/v3/historicalTrades?symbol=ETHTUSD&fromId={}&limit=3",
            trade_ids[1]
        ),
        "/api/v3/aggTrades?symbol=ETHTUSD&startTime=0".to_owned(),
        format!(
            "/api/v3/aggTrades?symbol=ETHTUSD&fromId={}&limit=2",
            trade_ids[0]
        ),
    ] {
        let (status, json) = f.public(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}: {json}");
        all.push(json);
    }
    all
}

/// Alice's six offers that Bob's one order fills, one she cancels, one left open; returns her
/// key, her order ids and the trade ids.
async fn trade(f: &Fixture) -> (crate::Key, crate::Key, Vec<u64>, Vec<u64>) {
    let alice = f
        .trader("alice@example.com", &[Permission::Trade], 2 * ETH_1, 0)
        .await;
    let bob = f
        .trader("bob@example.com", &[Permission::Trade], 0, 10_000 * TUSD_1)
        .await;
    let mut ids = Vec::new();
    for n in 0..8 {
        let price = if n == 7 { "2100" } else { "2000" };
        let (status, placed) = f
            .post_form(
                "/api/v3/order",
                &alice,
                &format!(
                    "symbol=ETHTUSD&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.1&price={price}&newClientOrderId=a-{n}"
                ),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{placed}");
        ids.push(placed["orderId"].as_u64().unwrap());
        if n == 5 {
            let (status, bought) = f
                .post_form(
                    "/api/v3/order",
                    &bob,
                    "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.6&price=2000",
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{bought}");
            assert_eq!(bought["status"], "FILLED");
        }
    }
    let (status, cancelled) = f
        .signed(
            "DELETE",
            "/api/v3/order",
            &alice,
            "symbol=ETHTUSD&origClientOrderId=a-6",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    let (_, trades) = f.public("/api/v3/trades?symbol=ETHTUSD").await;
    let trade_ids: Vec<u64> = trades
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_u64().unwrap())
        .collect();
    assert_eq!(trade_ids.len(), 6, "{trades}");
    (alice, bob, ids, trade_ids)
}

/// The answers with every time stamp zeroed, to compare two runs of the same script.
fn timeless(mut value: Value) -> Value {
    match &mut value {
        Value::Object(fields) => {
            for (name, field) in fields.iter_mut() {
                if matches!(
                    name.as_str(),
                    "time" | "updateTime" | "transactTime" | "workingTime" | "T"
                ) {
                    *field = Value::from(0);
                } else {
                    *field = timeless(field.take());
                }
            }
        }
        Value::Array(items) => {
            for item in items.iter_mut() {
                *item = timeless(item.take());
            }
        }
        _ => {}
    }
    value
}

#[tokio::test]
async fn finished_orders_and_trades_that_left_memory_are_answered_from_the_history_unchanged() {
    // The reference: everything in memory, no history behind it.
    let reference = crate::fixture(coss_binance::RateLimits::default()).await;
    let (alice, _, ids, trade_ids) = trade(&reference).await;
    let expected = timeless(Value::Array(
        answers(&reference, &alice, &ids, &trade_ids).await,
    ));

    let f = fixture_with_history(Retention {
        trades_per_market: 1,
        done_orders: 1,
        candles_per_interval: 1,
        minute_candles: 1,
    })
    .await;
    let (alice, bob, ids, trade_ids) = trade(&f).await;
    let before = answers(&f, &alice, &ids, &trade_ids).await;

    // Once the history holds them, they leave memory (the next batch lets them go).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0;
    loop {
        let gone = {
            let projection = f.market.read();
            let view = projection.market(coss_types::MarketId(1)).unwrap();
            // The newest finished order (the cancelled one) stays, as does the open one.
            ids[..6]
                .iter()
                .all(|id| projection.order(OrderId(*id)).is_none())
                && view.trades.len() == 1
        };
        if gone {
            break;
        }
        if Instant::now() >= deadline {
            let position = f.accounts.store().history_position().await.unwrap();
            let projection = f.market.read();
            let view = projection.market(coss_types::MarketId(1)).unwrap();
            panic!(
                "nothing left memory: history at {position}, projection at {}, {} trades kept, first order kept: {}",
                projection.seq(),
                view.trades.len(),
                projection.order(OrderId(ids[0])).is_some()
            );
        }
        n += 1;
        f.handle
            .submit_async(Command::Deposit {
                account: bob.account,
                asset: crate::TUSD,
                amount: Amount(1),
                reference: format!("tick-{n}"),
            })
            .await
            .unwrap()
            .outcome
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    {
        let projection = f.market.read();
        // Open orders always stay.
        assert!(projection.order(OrderId(ids[7])).is_some());
        assert!(projection.order(OrderId(ids[6])).is_some());
    }

    let after = answers(&f, &alice, &ids, &trade_ids).await;
    assert_eq!(after, before);
    assert_eq!(timeless(Value::Array(after.clone())), expected);

    // And they say what happened.
    let all = &after[0];
    let statuses: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        [
            "FILLED", "FILLED", "FILLED", "FILLED", "FILLED", "FILLED", "CANCELED", "NEW"
        ]
    );
    let latest: Vec<&str> = after[1]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["clientOrderId"].as_str().unwrap())
        .collect();
    assert_eq!(latest, ["a-5", "a-6", "a-7"]);
    let from: Vec<&str> = after[2]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["clientOrderId"].as_str().unwrap())
        .collect();
    assert_eq!(from, ["a-1", "a-2"]);
    assert_eq!(after[3]["status"], "FILLED");
    assert_eq!(after[3]["executedQty"], "0.10000000");
    assert_eq!(after[3]["cummulativeQuoteQty"], "200.00000000");
    assert_eq!(after[4]["status"], "FILLED");
    assert_eq!(after[4]["orderId"].as_u64(), Some(ids[1]));
    assert_eq!(after[5].as_array().unwrap().len(), 6);
    assert_eq!(after[6].as_array().unwrap().len(), 2);
    assert_eq!(after[6][0]["id"].as_u64(), Some(trade_ids[2]));
    assert_eq!(after[7].as_array().unwrap().len(), 1);
    assert_eq!(after[8][1]["id"].as_u64(), Some(trade_ids[5]));
    assert_eq!(after[9].as_array().unwrap().len(), 6);
    assert_eq!(after[10].as_array().unwrap().len(), 2);
    assert_eq!(after[11].as_array().unwrap().len(), 3);
    assert_eq!(after[12].as_array().unwrap().len(), 6);
    assert_eq!(after[13].as_array().unwrap().len(), 2);

    // An order that never was is still unknown.
    let (status, json) = f
        .signed(
            "GET",
            "/api/v3/order",
            &alice,
            "symbol=ETHTUSD&orderId=999999",
        )
        .await;
    assert_eq!(
        (status, crate::code(&json)),
        (StatusCode::BAD_REQUEST, -2013)
    );
}
