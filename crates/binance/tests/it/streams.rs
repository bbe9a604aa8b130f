use crate::{ETH, ETH_1, Fixture, TUSD_1, fixture, fixture_with_backlog};
use coss_binance::RateLimits;
use coss_core::{Command, OrderRef};
use coss_identity::Permission;
use coss_types::{AccountId, MarketId, OrderId, Side};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Serves the fixture's router on a loopback port.
async fn serve(f: &Fixture) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let router = f.router.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    address
}

/// A listen key of `trader`'s API key, and a stream connection opened with it.
async fn user_stream(f: &Fixture, address: SocketAddr, trader: &crate::Key) -> (String, Socket) {
    let (_, created, _) = f
        .send("POST", "/api/v3/userDataStream", Some(&trader.key), "")
        .await;
    let key = created["listenKey"].as_str().unwrap().to_owned();
    let socket = connect(address, &format!("/ws/{key}")).await;
    (key, socket)
}

async fn connect(address: SocketAddr, path: &str) -> Socket {
    let (socket, _) = tokio_tungstenite::connect_async(format!("ws://{address}{path}"))
        .await
        .unwrap();
    socket
}

/// The next JSON text message, within 5 seconds.
async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("no message within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

/// Reads until a message matches, within 5 seconds.
async fn until(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no matching message"
        );
        let message = next(socket).await;
        if wanted(&message) {
            return message;
        }
    }
}

fn order(account: AccountId, side: Side, price: u64, qty: u64) -> Command {
    coss_testkit::limit_order(account, side, price, qty)
}

type Book = BTreeMap<String, String>;

fn apply_levels(book: &mut Book, levels: &Value) {
    for level in levels.as_array().unwrap() {
        let (price, qty) = (level[0].as_str().unwrap(), level[1].as_str().unwrap());
        if qty.trim_start_matches(['0', '.']).is_empty() {
            book.remove(price);
        } else {
            book.insert(price.to_owned(), qty.to_owned());
        }
    }
}

fn book_of(levels: &Value) -> Book {
    let mut book = Book::new();
    apply_levels(&mut book, levels);
    book
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_syncing_the_depth_stream_with_the_snapshot_keeps_the_exchanges_book() {
    let f = fixture(RateLimits {
        weight_per_minute: 0,
        ..RateLimits::default()
    })
    .await;
    let address = serve(&f).await;
    let seller = f
        .trader("seller@example.com", &[Permission::Trade], 1_000 * ETH_1, 0)
        .await;
    let buyer = f
        .trader(
            "buyer@example.com",
            &[Permission::Trade],
            0,
            10_000_000 * TUSD_1,
        )
        .await;
    let mut socket = connect(address, "/ws/ethtusd@depth@100ms").await;

    // Orders arrive while the client syncs: some rest, some cross and trade, some are cancelled.
    let handle = f.handle.clone();
    let (seller_account, buyer_account) = (seller.account, buyer.account);
    let producer = tokio::spawn(async move {
        for i in 0..400u64 {
            let command = if i % 10 == 9 {
                Command::Cancel {
                    account: if (i - 5) % 2 == 0 {
                        seller_account
                    } else {
                        buyer_account
                    },
                    market: MarketId(1),
                    order: OrderRef::Id(OrderId(i - 5)),
                }
            } else if i % 2 == 0 {
                order(
                    seller_account,
                    Side::Sell,
                    200_000 + (i * 7) % 23,
                    100 + i % 5,
                )
            } else {
                order(
                    buyer_account,
                    Side::Buy,
                    199_990 + (i * 5) % 19,
                    100 + i % 4,
                )
            };
            let receipt = handle.submit_async(command).await.unwrap();
            if i % 10 != 9 {
                receipt.outcome.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    });

    // Binance's documented procedure: buffer the stream, take a snapshot, drop what it already
    // holds, check the first event straddles it, then apply each event in order.
    let mut buffered = vec![next(&mut socket).await];
    let snapshot = loop {
        let (_, snapshot) = f.public("/api/v3/depth?symbol=ETHTUSD&limit=5000").await;
        if snapshot["lastUpdateId"].as_u64().unwrap() >= buffered[0]["U"].as_u64().unwrap() {
            break snapshot;
        }
        buffered.push(next(&mut socket).await);
    };
    let last_update = snapshot["lastUpdateId"].as_u64().unwrap();
    let mut bids = book_of(&snapshot["bids"]);
    let mut asks = book_of(&snapshot["asks"]);
    let mut previous_u = None;
    let mut pending: std::collections::VecDeque<Value> = buffered.into();
    let mut applied = 0;
    loop {
        let event = match pending.pop_front() {
            Some(event) => event,
            None if producer.is_finished() && previous_u.is_some() => {
                let (_, now) = f.public("/api/v3/depth?symbol=ETHTUSD&limit=5000").await;
                if now["lastUpdateId"].as_u64() == previous_u {
                    break;
                }
                next(&mut socket).await
            }
            // The producer's last commands may leave the book as it was, so no diff need follow
            // the one just applied: wait for a diff or for the producer to end, whichever
            // comes first, and then look again.
            None if !producer.is_finished() => tokio::select! {
                event = next(&mut socket) => event,
                () = async {
                    while !producer.is_finished() {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                } => continue,
            },
            None => next(&mut socket).await,
        };
        let (first, last) = (event["U"].as_u64().unwrap(), event["u"].as_u64().unwrap());
        if last <= last_update {
            continue;
        }
        match previous_u {
            None => assert!(
                first <= last_update + 1 && last_update < last,
                "the first event must straddle the snapshot: U={first} u={last} lastUpdateId={last_update}"
            ),
            Some(previous) => assert_eq!(first, previous + 1, "a gap in the stream"),
        }
        apply_levels(&mut bids, &event["b"]);
        apply_levels(&mut asks, &event["a"]);
        previous_u = Some(last);
        applied += 1;
    }
    producer.await.unwrap();
    assert!(
        applied >= 3,
        "the test should apply several diffs, applied {applied}"
    );
    let (_, truth) = f.public("/api/v3/depth?symbol=ETHTUSD&limit=5000").await;
    assert_eq!(bids, book_of(&truth["bids"]));
    assert_eq!(asks, book_of(&truth["asks"]));
    // And the projection's book is the core's.
    let core = f
        .handle
        .read_async(|e| {
            e.depth(MarketId(1), Side::Buy, 5000).len()
                + e.depth(MarketId(1), Side::Sell, 5000).len()
        })
        .await
        .unwrap();
    assert_eq!(core, bids.len() + asks.len());
    assert!(!bids.is_empty() && !asks.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn market_streams_by_subscribe_message_on_a_combined_connection() {
    let f = fixture(RateLimits::default()).await;
    let address = serve(&f).await;
    let seller = f
        .trader("seller@example.com", &[Permission::Trade], 10 * ETH_1, 0)
        .await;
    let buyer = f
        .trader(
            "buyer@example.com",
            &[Permission::Trade],
            0,
            100_000 * TUSD_1,
        )
        .await;
    let mut socket = connect(address, "/stream?streams=ethtusd@trade").await;
    let subscribe = json!({
        "method": "SUBSCRIBE",
        "params": ["ethtusd@bookTicker", "ethtusd@kline_1m", "ethtusd@ticker", "ethtusd@depth5"],
        "id": 1,
    });
    socket
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await, json!({"result": null, "id": 1}));
    socket
        .send(Message::Text(
            json!({"method": "LIST_SUBSCRIPTIONS", "id": 2})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let listed = next(&mut socket).await;
    assert_eq!(listed["id"], 2);
    assert_eq!(listed["result"].as_array().unwrap().len(), 5);

    // 0.1 ETH offered at 2000; 0.04 ETH bought.
    f.handle
        .submit_async(order(seller.account, Side::Sell, 200_000, 1000))
        .await
        .unwrap()
        .outcome
        .unwrap();
    f.handle
        .submit_async(order(buyer.account, Side::Buy, 200_000, 400))
        .await
        .unwrap()
        .outcome
        .unwrap();

    // Each stream delivers its view of the trade, in whatever order the streams interleave.
    type Check = fn(&Value) -> bool;
    let expectations: [(&str, Check); 5] = [
        ("ethtusd@trade", |d| {
            d["e"] == "trade"
                && d["p"] == "2000.00000000"
                && d["q"] == "0.04000000"
                && d["m"] == false
        }),
        ("ethtusd@bookTicker", |d| {
            d["a"] == "2000.00000000" && d["A"] == "0.06000000"
        }),
        ("ethtusd@kline_1m", |d| {
            d["k"]["c"] == "2000.00000000" && d["k"]["n"] == 1
        }),
        ("ethtusd@ticker", |d| {
            d["c"] == "2000.00000000" && d["v"] == "0.04000000"
        }),
        ("ethtusd@depth5", |d| {
            d["asks"] == json!([["2000.00000000", "0.06000000"]])
        }),
    ];
    let mut seen = [false; 5];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while seen.contains(&false) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "streams not seen: {seen:?}"
        );
        let message = next(&mut socket).await;
        for (n, (stream, check)) in expectations.iter().enumerate() {
            if message["stream"] == *stream && check(&message["data"]) {
                seen[n] = true;
            }
        }
    }

    // Unsubscribed streams stop. The hub sends a second's partial books in one pass, depth5
    // before depth10: once a depth10 arrives, a depth5 of that second would have come first.
    socket
        .send(Message::Text(json!({"method": "UNSUBSCRIBE", "params": ["ethtusd@depth5", "ethtusd@ticker", "ethtusd@kline_1m"], "id": 3}).to_string().into()))
        .await
        .unwrap();
    until(&mut socket, |m| m["id"] == 3).await;
    socket
        .send(Message::Text(
            json!({"method": "SUBSCRIBE", "params": ["ethtusd@depth10"], "id": 4})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    loop {
        let message = next(&mut socket).await;
        assert_ne!(message["stream"], "ethtusd@depth5", "{message}");
        if message["stream"] == "ethtusd@depth10" {
            break;
        }
    }
    let _ = ETH;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_data_stream_reports_orders_fills_and_balances() {
    let f = fixture(RateLimits::default()).await;
    let address = serve(&f).await;
    let alice = f
        .trader("alice@example.com", &[Permission::Trade], ETH_1, 0)
        .await;
    let bob = f
        .trader("bob@example.com", &[Permission::Trade], 0, 10_000 * TUSD_1)
        .await;
    let (_, mut socket) = user_stream(&f, address, &alice).await;

    let (_, placed) = f
        .post_form("/api/v3/order", &alice, "symbol=ETHTUSD&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.5&price=2000&newClientOrderId=a1")
        .await;
    let id = placed["orderId"].as_u64().unwrap();
    let new = until(&mut socket, |m| m["e"] == "executionReport").await;
    assert_eq!(
        (new["x"].as_str(), new["X"].as_str(), new["c"].as_str()),
        (Some("NEW"), Some("NEW"), Some("a1"))
    );
    assert_eq!(new["i"].as_u64(), Some(id));
    let position = until(&mut socket, |m| m["e"] == "outboundAccountPosition").await;
    let eth = position["B"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["a"] == "ETH")
        .unwrap()
        .clone();
    assert_eq!(
        (eth["f"].as_str(), eth["l"].as_str()),
        (Some("0.50000000"), Some("0.50000000"))
    );

    f.post_form(
        "/api/v3/order",
        &bob,
        "symbol=ETHTUSD&side=BUY&type=LIMIT&timeInForce=GTC&quantity=0.5&price=2000",
    )
    .await;
    let fill = until(&mut socket, |m| {
        m["e"] == "executionReport" && m["x"] == "TRADE"
    })
    .await;
    assert_eq!(fill["X"], "FILLED");
    assert_eq!(fill["l"], "0.50000000");
    assert_eq!(fill["L"], "2000.00000000");
    assert_eq!(fill["m"], true);
    assert_eq!(fill["N"], "TUSD");
    // Nobody else's events reach alice's stream.
    let (_, bob_orders) = f
        .signed("GET", "/api/v3/allOrders", &bob, "symbol=ETHTUSD")
        .await;
    let bob_id = bob_orders[0]["orderId"].as_u64().unwrap();
    assert_ne!(fill["i"].as_u64(), Some(bob_id));

    // A deposit arrives as a balance update.
    f.handle
        .submit_async(Command::Deposit {
            account: alice.account,
            asset: ETH,
            amount: coss_types::Amount(ETH_1),
            reference: "more".into(),
        })
        .await
        .unwrap();
    let update = until(&mut socket, |m| m["e"] == "balanceUpdate").await;
    assert_eq!(
        (update["a"].as_str(), update["d"].as_str()),
        (Some("ETH"), Some("1.00000000"))
    );
}

/// Defect (issue 20, item 2): a password reset kept the account's open user data streams
/// (and its API keys) working, so whoever had stolen them went on watching and trading. Now
/// a reset revokes them: the stream hears `listenKeyExpired` and its user data stops, the
/// listen key and the API key are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_reset_ends_the_accounts_user_data_streams_and_api_keys() {
    let f = fixture(RateLimits::default()).await;
    let address = serve(&f).await;
    let alice = f
        .trader("alice@example.com", &[Permission::Trade], ETH_1, 0)
        .await;
    let (key, mut socket) = user_stream(&f, address, &alice).await;
    let deposit = |reference: &str| Command::Deposit {
        account: alice.account,
        asset: ETH,
        amount: coss_types::Amount(ETH_1),
        reference: reference.into(),
    };
    f.handle.submit_async(deposit("before")).await.unwrap();
    until(&mut socket, |m| m["e"] == "balanceUpdate").await;

    let (accounts, t) = (&f.accounts, crate::now());
    accounts
        .request_password_reset("alice@example.com", &coss_identity::Client::default(), t)
        .await
        .unwrap();
    let token =
        coss_testkit::emailed_token_of(accounts, "alice@example.com", "password_reset").await;
    accounts
        .reset_password(&token, "the owner's new password", t)
        .await
        .unwrap();
    let expired = until(&mut socket, |m| m["e"] == "listenKeyExpired").await;
    assert_eq!(expired["listenKey"].as_str(), Some(key.as_str()));
    f.handle.submit_async(deposit("after")).await.unwrap();
    let quiet = tokio::time::timeout(Duration::from_secs(2), async {
        loop {
            let message = next(&mut socket).await;
            if message["e"] == "balanceUpdate" {
                return message;
            }
        }
    })
    .await;
    assert!(quiet.is_err(), "user data after the reset: {quiet:?}");
    let uri = format!("/api/v3/userDataStream?listenKey={key}");
    let (status, _, _) = f.send("PUT", &uri, Some(&alice.key), "").await;
    assert_ne!(status, axum::http::StatusCode::OK, "the API key is revoked");
    let (status, _) = f.signed("GET", "/api/v3/account", &alice, "").await;
    assert_eq!(status, axum::http::StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_that_stops_reading_is_disconnected_instead_of_buffered() {
    let f = fixture_with_backlog(RateLimits::default(), 256).await;
    let address = serve(&f).await;
    let seller = f
        .trader("seller@example.com", &[Permission::Trade], 1_000 * ETH_1, 0)
        .await;
    let buyer = f
        .trader(
            "buyer@example.com",
            &[Permission::Trade],
            0,
            10_000_000 * TUSD_1,
        )
        .await;
    // A client with a tiny receive window that never reads.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let (mut slow, _) = tokio_tungstenite::client_async(
        format!("ws://{address}/ws/ethtusd@trade/ethtusd@bookTicker"),
        stream,
    )
    .await
    .unwrap();
    // 20,000 trades' worth of messages.
    let handle = f.handle.clone();
    tokio::task::spawn_blocking(move || {
        for round in 0..40u64 {
            let batch: Vec<Command> = (0..1000u64)
                .map(|i| {
                    let (account, side) = if i % 2 == 0 {
                        (seller.account, Side::Sell)
                    } else {
                        (buyer.account, Side::Buy)
                    };
                    let _ = round;
                    order(account, side, 200_000, 100)
                })
                .collect();
            handle.submit_batch(batch).unwrap();
        }
    })
    .await
    .unwrap();
    // Now read: what was buffered, then the server's close with 1008 (policy violation).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let close = loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow consumer was never closed"
        );
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(u16::from(frame.code), 1008);
    assert_eq!(frame.reason.as_str(), "slow consumer");
    // The server is fine, and a new connection works.
    let mut fresh = connect(address, "/ws/ethtusd@trade").await;
    f.handle
        .submit_async(order(seller.account, Side::Sell, 200_000, 100))
        .await
        .unwrap();
    f.handle
        .submit_async(order(buyer.account, Side::Buy, 200_000, 100))
        .await
        .unwrap();
    let trade = until(&mut fresh, |m| m["e"] == "trade").await;
    assert_eq!(trade["p"], "2000.00000000");
}

/// The HTTP status a refused stream connection gets.
async fn refused(address: SocketAddr, path: &str) -> u16 {
    match tokio_tungstenite::connect_async(format!("ws://{address}{path}")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status().as_u16(),
        other => panic!("{path}: not refused: {:?}", other.map(|_| ())),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_names_that_cannot_exist_are_never_held_and_listen_keys_keep_their_case() {
    let f = fixture(RateLimits::default()).await;
    let address = serve(&f).await;
    // In a connection's path: an unknown symbol, an unknown kind, an endless name, and the
    // placeholder ccxt.pro connects to are not held (the connection opens, as on Binance, and
    // lists only the real stream).
    let long = "x".repeat(60_000);
    for path in [
        "/ws/0",
        "/ws/nosuch@trade/ethtusd@trade",
        "/ws/ethtusd@bogus/ethtusd@trade",
        "/ws/ethtusd@depth7/ethtusd@trade",
        &format!("/stream?streams=ethtusd@trade/{long}"),
    ] {
        let mut socket = connect(address, path).await;
        let list = json!({ "method": "LIST_SUBSCRIPTIONS", "id": 1 }).to_string();
        socket.send(Message::Text(list.into())).await.unwrap();
        let expected = if path == "/ws/0" {
            json!([])
        } else {
            json!(["ethtusd@trade"])
        };
        assert_eq!(
            next(&mut socket).await["result"],
            expected,
            "{}",
            &path[..path.len().min(60)]
        );
    }
    // On SUBSCRIBE: refused with code 2 naming the stream, and nothing is subscribed.
    let mut socket = connect(address, "/ws").await;
    for (id, params) in [
        (1, json!(["ethtusd@trade", "nosuch@trade"])),
        (2, json!(["ethtusd@bogus"])),
        (3, json!([long.clone()])),
    ] {
        let request = json!({ "method": "SUBSCRIBE", "params": params, "id": id });
        socket
            .send(Message::Text(request.to_string().into()))
            .await
            .unwrap();
        let answer = next(&mut socket).await;
        assert_eq!(
            (answer["code"].as_i64(), answer["id"].as_i64()),
            (Some(2), Some(id))
        );
        assert!(
            answer["msg"]
                .as_str()
                .unwrap()
                .contains("invalid stream name"),
            "{answer}"
        );
        assert!(
            answer["msg"].as_str().unwrap().len() < 200,
            "the name is not echoed whole"
        );
    }
    socket
        .send(Message::Text(
            json!({ "method": "LIST_SUBSCRIPTIONS", "id": 4 })
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await["result"], json!([]));

    // A listen key subscribed by message keeps its case and delivers the account's events.
    let alice = f
        .trader("alice@example.com", &[Permission::Trade], ETH_1, 0)
        .await;
    let (_, created, _) = f
        .send("POST", "/api/v3/userDataStream", Some(&alice.key), "")
        .await;
    let key = created["listenKey"].as_str().unwrap().to_owned();
    assert_ne!(
        key.to_lowercase(),
        key,
        "a key with capitals shows the case matters"
    );
    let request = json!({ "method": "SUBSCRIBE", "params": ["ETHTUSD@trade", key], "id": 5 });
    socket
        .send(Message::Text(request.to_string().into()))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await, json!({ "result": null, "id": 5 }));
    f.post_form(
        "/api/v3/order",
        &alice,
        "symbol=ETHTUSD&side=SELL&type=LIMIT&timeInForce=GTC&quantity=0.5&price=2000",
    )
    .await;
    let report = until(&mut socket, |m| m["e"] == "executionReport").await;
    assert_eq!(report["X"], "NEW");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_holds_a_bounded_number_of_stream_connections() {
    let f = fixture(RateLimits::default()).await;
    let address = serve(&f).await;
    let mut open = Vec::new();
    for _ in 0..RateLimits::default().stream_connections_per_address {
        open.push(connect(address, "/ws/ethtusd@trade").await);
    }
    assert_eq!(refused(address, "/ws/ethtusd@trade").await, 429);
    // One closes: its place is free again.
    let mut gone = open.pop().unwrap();
    gone.close(None).await.unwrap();
    while gone.next().await.is_some() {}
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match tokio_tungstenite::connect_async(format!("ws://{address}/ws/ethtusd@trade")).await {
            Ok((socket, _)) => {
                open.push(socket);
                break;
            }
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("the freed place was not given back: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_sending_more_than_five_messages_a_second_is_closed() {
    let f = fixture(RateLimits::default()).await;
    let address = serve(&f).await;
    let mut socket = connect(address, "/ws").await;
    let list = json!({ "method": "LIST_SUBSCRIPTIONS", "id": 1 }).to_string();
    for _ in 0..10 {
        if socket
            .send(Message::Text(list.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => break frame,
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    };
    let frame = close.expect("a close frame with a code");
    assert_eq!(
        (u16::from(frame.code), frame.reason.as_str()),
        (1008, "too many messages")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_dropped_after_the_send_timeout() {
    // The hub's backlog is large enough that the client never lags behind it, and more is
    // sent than the socket buffers hold: before, its task waited in `send` forever.
    let f = fixture_with_backlog(RateLimits::default(), 1 << 20).await;
    let address = serve(&f).await;
    let seller = f
        .trader("seller@example.com", &[Permission::Trade], 1_000 * ETH_1, 0)
        .await;
    let buyer = f
        .trader(
            "buyer@example.com",
            &[Permission::Trade],
            0,
            10_000_000 * TUSD_1,
        )
        .await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(address).await.unwrap();
    let (stuck, _) = tokio_tungstenite::client_async(
        format!("ws://{address}/ws/ethtusd@trade/ethtusd@bookTicker"),
        stream,
    )
    .await
    .unwrap();
    let handle = f.handle.clone();
    tokio::task::spawn_blocking(move || {
        for _ in 0..80u64 {
            let batch: Vec<Command> = (0..1000u64)
                .map(|i| {
                    let (account, side) = if i % 2 == 0 {
                        (seller.account, Side::Sell)
                    } else {
                        (buyer.account, Side::Buy)
                    };
                    order(account, side, 200_000, 100)
                })
                .collect();
            handle.submit_batch(batch).unwrap();
        }
    })
    .await
    .unwrap();
    // Without reading a byte: past the send timeout the server has given up on it (its task
    // is gone), whatever the kernel still holds for the socket.
    assert_eq!(f.binance.stream_connections(), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    while f.binance.stream_connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server still waits on a client that never reads"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(stuck);
}
