//! The payment gateway through the running platform's API, on its real local anvil with the
//! real wallet watcher (interval mining off, so blocks come when a test mines them), the
//! platform's clock in the test's hands, and a real HTTP receiver for the webhooks: paid on
//! chain in ETH and in tUSD, paid from a balance, underpaid, overpaid, paid late, paid twice,
//! a payment removed by a reorg, refunds, and bad input that changes nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use coss_clock::ManualClock;
use coss_core::{FEES_HOLDERS, FEES_PLATFORM};
use coss_identity::{Permission, sign};
use coss_testkit::{Answer, TestPlatform, http, verified, with_totp};
use coss_types::{AssetId, UserId};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ETH: AssetId = coss_wallet::DEV_ETH;
const TUSD: AssetId = coss_wallet::DEV_TUSD;
const WEI: u128 = 1_000_000_000_000_000_000;

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }

    fn kind(&self) -> String {
        serde_json::from_str::<Value>(&self.body).unwrap()["type"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// A webhook receiver on loopback: records every request and answers the next scripted
/// status (200 once the script is used up).
#[derive(Debug, Clone)]
struct Receiver {
    url: String,
    got: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<Vec<u16>>>,
}

impl Receiver {
    async fn start(answer: Option<&'static str>) -> Receiver {
        Receiver::serving(|_| None, answer).await
    }

    /// A receiver that answers `route(request line)` when it says something.
    async fn serving(
        route: fn(&str) -> Option<(u16, &'static str)>,
        answer: Option<&'static str>,
    ) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(Vec::new()));
        let (g, s) = (got.clone(), script.clone());
        tokio::spawn(async move {
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                let (g, s) = (g.clone(), s.clone());
                tokio::spawn(async move {
                    let mut raw = Vec::new();
                    let mut buf = [0u8; 4096];
                    let (head, body_start) = loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        raw.extend_from_slice(&buf[..n]);
                        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                            break (String::from_utf8_lossy(&raw[..at]).into_owned(), at + 4);
                        }
                    };
                    let headers: Vec<(String, String)> = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let length: usize = headers
                        .iter()
                        .find(|(n, _)| n == "content-length")
                        .map_or(0, |(_, v)| v.parse().unwrap());
                    while raw.len() < body_start + length {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        raw.extend_from_slice(&buf[..n]);
                    }
                    let body = String::from_utf8_lossy(&raw[body_start..]).into_owned();
                    g.lock().unwrap().push(Received { headers, body });
                    let first = head.lines().next().unwrap_or("").to_owned();
                    let (status, text) = match route(&first) {
                        Some(routed) => routed,
                        None => {
                            let mut script = s.lock().unwrap();
                            let status = if script.is_empty() {
                                200
                            } else {
                                script.remove(0)
                            };
                            (status, answer.unwrap_or("ok"))
                        }
                    };
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                        text.len()
                    );
                    let _ = socket.write_all(reply.as_bytes()).await;
                });
            }
        });
        Receiver { url, got, script }
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

/// The platform with a merchant (TOTP on, a `merchant` API key), a buyer signed in, the
/// dev account of the local anvil, and the clock.
struct World {
    platform: TestPlatform,
    clock: ManualClock,
    chain: coss_contracts::Chain,
    tusd: Address,
    merchant: UserId,
    key: (String, String),
    merchant_bearer: String,
    buyer: UserId,
    buyer_bearer: String,
}

async fn bearer(platform: &TestPlatform, email: &str, now: i64, code: Option<&str>) -> String {
    let grant = platform
        .accounts
        .login(
            &coss_identity::Login {
                email,
                password: coss_testkit::PASSWORD,
                second_factor: code.map(coss_identity::SecondFactor::Totp),
                kind: coss_store::SessionKind::App,
                client: coss_identity::Client::default(),
            },
            now,
        )
        .await
        .unwrap();
    format!("Authorization: Bearer {}", grant.token.expose())
}

impl World {
    async fn start(edit: impl FnOnce(&mut coss_server::Settings)) -> World {
        let clock = ManualClock::starting_now();
        let manual = clock.clock();
        let platform = TestPlatform::start_with(|settings| {
            settings.config.limits = coss_server::Limits::OFF;
            settings.clock = manual;
            edit(settings);
        })
        .await;
        let now = clock.now().as_i64();
        let merchant = verified(&platform.accounts, "shop@example.com", now).await;
        let seed = with_totp(&platform.accounts, merchant, now).await;
        clock.advance(30_000);
        let now = clock.now().as_i64();
        let key = coss_testkit::api_key(
            &platform.accounts,
            merchant,
            &seed,
            &[Permission::Merchant],
            now,
        )
        .await;
        clock.advance(30_000);
        let now = clock.now().as_i64();
        let code = coss_identity::totp_code(&seed, now).unwrap();
        let merchant_bearer = bearer(&platform, "shop@example.com", now, Some(&code)).await;
        let buyer = verified(&platform.accounts, "buyer@example.com", now).await;
        let buyer_bearer = bearer(&platform, "buyer@example.com", now, None).await;
        let chain_dir = platform.data_dir().join("chain");
        let running: Value =
            serde_json::from_str(&std::fs::read_to_string(chain_dir.join("anvil.json")).unwrap())
                .unwrap();
        let deployment: Value = serde_json::from_str(
            &std::fs::read_to_string(chain_dir.join("deployment.json")).unwrap(),
        )
        .unwrap();
        let chain = coss_contracts::connect(running["http"].as_str().unwrap(), None)
            .await
            .unwrap();
        // Blocks only when the test mines them (each transaction still gets its own).
        let _: Value = chain
            .provider
            .raw_request("evm_setIntervalMining".into(), (0,))
            .await
            .unwrap();
        let _: Value = chain
            .provider
            .raw_request("evm_setAutomine".into(), (true,))
            .await
            .unwrap();
        World {
            platform,
            clock,
            chain,
            tusd: deployment["tusd"].as_str().unwrap().parse().unwrap(),
            merchant,
            key,
            merchant_bearer,
            buyer,
            buyer_bearer,
        }
    }

    /// A request signed with the merchant's API key.
    async fn signed(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.signed_with(method, path, body, &[]).await
    }

    async fn signed_with(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        extra: &[&str],
    ) -> Answer {
        let body = body.map(Value::to_string).unwrap_or_default();
        let (path, asked) = path.split_once('?').unwrap_or((path, ""));
        let stamp = format!("timestamp={}", self.clock.now().as_i64());
        let query = if asked.is_empty() {
            stamp
        } else {
            format!("{asked}&{stamp}")
        };
        let signature = sign(&self.key.1, &format!("{query}{body}"));
        let target = format!("{path}?{query}&signature={signature}");
        let key = format!("X-MBX-APIKEY: {}", self.key.0);
        let mut headers = vec![key.as_str()];
        headers.extend_from_slice(extra);
        http(
            None,
            self.platform.address,
            method,
            &target,
            &headers,
            (!body.is_empty()).then_some(body.as_str()),
        )
        .await
    }

    async fn as_buyer(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.with_bearer(&self.buyer_bearer, method, path, body)
            .await
    }

    async fn as_merchant_session(&self, method: &str, path: &str, body: Option<&Value>) -> Answer {
        self.with_bearer(&self.merchant_bearer, method, path, body)
            .await
    }

    async fn with_bearer(
        &self,
        bearer: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> Answer {
        let body = body.map(Value::to_string);
        http(
            None,
            self.platform.address,
            method,
            path,
            &[bearer],
            body.as_deref(),
        )
        .await
    }

    async fn create(&self, body: Value) -> Value {
        let answer = self
            .signed("POST", "/api/v1/gateway/invoices", Some(&body))
            .await;
        assert_eq!(answer.status, 201, "{}", answer.body);
        answer.json()
    }

    async fn checkout(&self, id: &str) -> Value {
        let answer = http(
            None,
            self.platform.address,
            "GET",
            &format!("/api/v1/checkout/{id}"),
            &[],
            None,
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()
    }

    /// Waits (real time, at most 30 s) until the invoice's checkout view satisfies `done`.
    async fn until(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let view = self.checkout(id).await;
            if done(&view) {
                return view;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {view:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn until_status(&self, id: &str, status: &str) -> Value {
        self.until(id, status, |v| v["status"] == status).await
    }

    async fn pay_eth(&self, to: &str, wei: u128) {
        let tx = TransactionRequest::default()
            .with_from(self.chain.sender)
            .with_to(to.parse::<Address>().unwrap())
            .with_value(U256::from(wei));
        let pending = self.chain.provider.send_transaction(tx).await.unwrap();
        pending.get_receipt().await.unwrap();
    }

    async fn pay_tusd(&self, to: &str, units: u128) {
        let token = coss_contracts::TestUsd::new(self.tusd, &self.chain.provider);
        token
            .mint(self.chain.sender, U256::from(units))
            .from(self.chain.sender)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
        token
            .transfer(to.parse().unwrap(), U256::from(units))
            .from(self.chain.sender)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }

    async fn mine(&self, blocks: u64) {
        let _: Value = self
            .chain
            .provider
            .raw_request("anvil_mine".into(), (format!("0x{blocks:x}"),))
            .await
            .unwrap();
    }

    async fn balance(&self, account: coss_types::AccountId, asset: AssetId) -> u128 {
        self.platform
            .engine
            .read_async(move |e| e.balance(account, asset).available.0)
            .await
            .unwrap()
    }

    async fn user_balance(&self, user: UserId, asset: AssetId) -> u128 {
        self.balance(coss_identity::exchange_account(user).unwrap(), asset)
            .await
    }
}

fn fee(amount: u128) -> u128 {
    coss_core::fee_for(amount, coss_gateway::FEE_PPM)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invoices_paid_on_chain_in_eth_and_tusd_settle_less_the_fee_with_signed_webhooks() {
    let w = World::start(|_| {}).await;
    let receiver = Receiver::start(None).await;
    let endpoint = w
        .signed(
            "POST",
            "/api/v1/gateway/webhooks",
            Some(&json!({ "url": receiver.url })),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.body);
    let secret = endpoint.json()["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));

    // ETH, priced in ETH.
    let invoice = w
        .create(json!({ "price": "0.01", "currency": "ETH", "order_id": "A-1" }))
        .await;
    let id = invoice["id"].as_str().unwrap();
    let address = invoice["address"].as_str().unwrap();
    assert_eq!(invoice["status"], "new");
    assert_eq!(invoice["assets"][0]["due"], "0.01");
    assert_eq!(
        invoice["assets"][0]["payment_uri"],
        format!("ethereum:{address}@31337?value=10000000000000000")
    );
    assert!(
        invoice["checkout_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/pay/{id}"))
    );
    let holders_before = w.balance(FEES_HOLDERS, ETH).await;
    let platform_before = w.balance(FEES_PLATFORM, ETH).await;

    w.pay_eth(address, WEI / 100).await;
    let seen = w.until_status(id, "processing").await;
    assert_eq!(seen["payments"][0]["status"], "pending");
    assert_eq!(seen["assets"][0]["paid"], "0.01");
    assert_eq!(
        w.user_balance(w.merchant, ETH).await,
        0,
        "nothing before confirmations"
    );
    w.mine(2).await;
    let settled = w.until_status(id, "settled").await;
    assert_eq!(settled["flags"], json!([]));
    let due = WEI / 100;
    assert_eq!(w.user_balance(w.merchant, ETH).await, due - fee(due));
    assert_eq!(fee(due), 75_000_000_000_000, "0.75%");
    // The fee is split with the holders exactly as trading fees are.
    assert_eq!(
        w.balance(FEES_HOLDERS, ETH).await - holders_before,
        fee(due) / 2
    );
    assert_eq!(
        w.balance(FEES_PLATFORM, ETH).await - platform_before,
        fee(due) / 2
    );
    let merchant_view = w
        .signed("GET", &format!("/api/v1/gateway/invoices/{id}"), None)
        .await
        .json();
    assert_eq!(merchant_view["settlements"][0]["net"], "0.009925");
    assert_eq!(merchant_view["settlements"][0]["fee"], "0.000075");

    // tUSD, priced in US dollars (tUSD is pegged to the dollar), paid with an ERC-20 transfer.
    let invoice = w
        .create(json!({ "price": "25.00", "currency": "USD", "accepted_assets": ["TUSD"] }))
        .await;
    let id2 = invoice["id"].as_str().unwrap();
    assert_eq!(invoice["assets"][0]["due"], "25");
    assert_eq!(invoice["assets"][0]["rate"], "1");
    let tusd = format!("{:#x}", w.tusd);
    assert_eq!(
        invoice["assets"][0]["payment_uri"],
        format!(
            "ethereum:{tusd}@31337/transfer?address={}&uint256=25000000",
            invoice["address"].as_str().unwrap()
        )
    );
    w.pay_tusd(invoice["address"].as_str().unwrap(), 25_000_000)
        .await;
    w.until_status(id2, "processing").await;
    w.mine(2).await;
    w.until_status(id2, "settled").await;
    assert_eq!(w.user_balance(w.merchant, TUSD).await, 25_000_000 - 187_500);

    // Reports: the fiat value at payment time (tUSD priced in dollars; the ETH invoice was
    // priced in ETH and no source knew a dollar rate for it then).
    let csv = w
        .signed(
            "GET",
            "/api/v1/gateway/reports/settlements?format=csv",
            None,
        )
        .await;
    assert_eq!(csv.status, 200, "{}", csv.body);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(
        lines[0],
        "invoice,order_id,at,asset,amount,fee,net,status,fiat_currency,fiat_rate,fiat_amount,\
         fiat_fee,fiat_net,tax,tip"
    );
    assert_eq!(lines.len(), 3, "{}", csv.body);
    assert!(
        lines[1].starts_with(&format!("{id},A-1,"))
            && lines[1].ends_with(",ETH,0.01,0.000075,0.009925,done,USD,,,,,0,0"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(",TUSD,25,0.1875,24.8125,done,USD,1,25.00,0.19,24.81,0,0"),
        "{}",
        lines[2]
    );
    let payments = w
        .signed("GET", "/api/v1/gateway/reports/payments", None)
        .await
        .json();
    assert_eq!(payments.as_array().unwrap().len(), 2, "{payments:#}");
    assert_eq!(payments[1]["fiat_value"], "25.00");
    assert_eq!(payments[1]["method"], "chain");
    let unknown = w
        .signed("GET", "/api/v1/gateway/reports/everything", None)
        .await;
    assert_eq!(unknown.status, 400);

    // The receiver got every event, signed with the endpoint's secret.
    let deadline = Instant::now() + Duration::from_secs(20);
    while receiver.got().len() < 6 {
        assert!(Instant::now() < deadline, "{:?}", receiver.got());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got = receiver.got();
    let kinds: Vec<String> = got.iter().map(Received::kind).collect();
    assert_eq!(
        kinds,
        [
            "invoice.created",
            "invoice.processing",
            "invoice.settled",
            "invoice.created",
            "invoice.processing",
            "invoice.settled"
        ]
    );
    let now_s = w.clock.now().as_i64() / 1000;
    let mut ids = std::collections::BTreeSet::new();
    for r in &got {
        assert!(
            coss_gateway::webhooks::verify(
                secret.as_bytes(),
                r.header("coss-signature"),
                &r.body,
                now_s,
                300
            ),
            "{r:?}"
        );
        assert!(!coss_gateway::webhooks::verify(
            secret.as_bytes(),
            r.header("coss-signature"),
            &r.body.replace("settled", "expired"),
            now_s,
            300
        ));
        ids.insert(r.header("coss-event-id").to_owned());
    }
    assert_eq!(ids.len(), 6, "each event has its own id");
    w.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn underpaid_expired_then_paid_late_the_merchant_settles_it_in_one_call() {
    let w = World::start(|_| {}).await;
    let invoice = w
        .create(json!({ "price": "0.01", "currency": "ETH", "expires_in_s": 60 }))
        .await;
    let id = invoice["id"].as_str().unwrap();
    let address = invoice["address"].as_str().unwrap();
    // A wallet that sent less (its fee taken from the amount).
    w.pay_eth(address, 4 * WEI / 1000).await;
    let partial = w
        .until(id, "paid_partial", |v| {
            v["flags"] == json!(["paid_partial"])
        })
        .await;
    assert_eq!(partial["status"], "new");
    assert_eq!(partial["assets"][0]["remaining"], "0.006");
    w.mine(3).await;
    w.clock.advance(61_000);
    let expired = w.until_status(id, "expired").await;
    assert_eq!(expired["flags"], json!(["paid_partial"]));
    assert!(
        expired["assets"][0]["payment_uri"].is_null(),
        "no URI after expiry"
    );
    // An expired invoice cannot be paid from a balance.
    coss_testkit::deposit(
        &w.platform.engine,
        coss_identity::exchange_account(w.buyer).unwrap(),
        ETH,
        WEI,
    )
    .await;
    let refused = w
        .as_buyer(
            "POST",
            &format!("/api/v1/checkout/{id}/pay"),
            Some(&json!({ "asset": "ETH" })),
        )
        .await;
    assert_eq!(
        (refused.status, refused.json()["code"].as_str()),
        (409, Some("invoice_expired"))
    );
    assert_eq!(w.user_balance(w.buyer, ETH).await, WEI, "nothing moved");
    // The rest arrives late: flagged, left for the merchant.
    w.pay_eth(address, 6 * WEI / 1000).await;
    w.mine(3).await;
    let late = w
        .until(id, "paid_late", |v| v["flags"] == json!(["paid_late"]))
        .await;
    assert_eq!(late["status"], "expired");
    assert_eq!(w.user_balance(w.merchant, ETH).await, 0);
    let settled = w
        .signed(
            "POST",
            &format!("/api/v1/gateway/invoices/{id}/mark"),
            Some(&json!({ "status": "settled" })),
        )
        .await;
    assert_eq!(settled.status, 200, "{}", settled.body);
    assert_eq!(settled.json()["status"], "settled");
    assert_eq!(settled.json()["flags"], json!(["paid_late", "marked"]));
    let due = WEI / 100;
    assert_eq!(w.user_balance(w.merchant, ETH).await, due - fee(due));
    // Marking it again is refused.
    let again = w
        .signed(
            "POST",
            &format!("/api/v1/gateway/invoices/{id}/mark"),
            Some(&json!({ "status": "invalid" })),
        )
        .await;
    assert_eq!(
        (again.status, again.json()["code"].as_str()),
        (409, Some("invalid_transition"))
    );
    w.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_removed_by_a_reorg_reopens_the_invoice_and_a_double_payment_is_paid_over() {
    let w = World::start(|_| {}).await;
    let invoice = w
        .create(json!({ "price": "0.02", "currency": "ETH", "buyer_email": "payer@example.com" }))
        .await;
    let id = invoice["id"].as_str().unwrap();
    let address = invoice["address"].as_str().unwrap();
    w.pay_eth(address, 2 * WEI / 100).await;
    w.until_status(id, "processing").await;
    // The payment's block leaves the chain before its confirmations.
    let _: Value = w
        .chain
        .provider
        .raw_request("anvil_reorg".into(), (1, json!([])))
        .await
        .unwrap();
    let reopened = w.until_status(id, "new").await;
    assert_eq!(reopened["payments"][0]["status"], "orphaned");
    assert_eq!(reopened["assets"][0]["remaining"], "0.02");
    // Paid twice: both count, the invoice settles, flagged paid over.
    w.pay_eth(address, 2 * WEI / 100).await;
    w.pay_eth(address, 2 * WEI / 100).await;
    w.mine(3).await;
    let settled = w
        .until(id, "settled, paid over", |v| {
            v["status"] == "settled" && v["flags"] == json!(["paid_over"])
        })
        .await;
    assert_eq!(settled["assets"][0]["confirmed"], "0.04");
    let paid = 4 * WEI / 100;
    let deadline = Instant::now() + Duration::from_secs(20);
    while w.user_balance(w.merchant, ETH).await != paid - fee(2 * WEI / 100) * 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The overpaid part goes back to the payer, who paid from outside COSS: through a link
    // emailed to the buyer, where they give an address.
    let refunds = format!("/api/v1/gateway/invoices/{id}/refunds");
    let answer = w
        .signed(
            "POST",
            &refunds,
            Some(&json!({ "asset": "ETH", "kind": "overpaid" })),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let link = answer.json()["refund_link"].as_str().unwrap().to_owned();
    let token = link.rsplit('/').next().unwrap().to_owned();
    // The buyer got the link by email (the platform's mail worker delivers to its maildir).
    let maildir = w.platform.data_dir().join("mail").join("new");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let emailed = std::fs::read_dir(&maildir)
            .into_iter()
            .flatten()
            .flatten()
            .any(|f| {
                // Undo quoted-printable: soft line breaks and the encoded '='.
                let text = std::fs::read_to_string(f.path())
                    .unwrap_or_default()
                    .replace("=\r\n", "")
                    .replace("=\n", "")
                    .replace("=3D", "=");
                text.contains("payer@example.com") && text.contains(&format!("/refund/{token}"))
            });
        if emailed {
            break;
        }
        assert!(Instant::now() < deadline, "no refund email");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(answer.json()["refunds"][0]["status"], "awaiting_address");
    // Nothing more can be refunded as overpaid: the link holds it.
    let again = w
        .signed(
            "POST",
            &refunds,
            Some(&json!({ "asset": "ETH", "kind": "overpaid" })),
        )
        .await;
    assert_eq!(
        (again.status, again.json()["code"].as_str()),
        (409, Some("refund_refused"))
    );
    let page = format!("/api/v1/checkout/refunds/{token}");
    let shown = http(None, w.platform.address, "GET", &page, &[], None).await;
    assert_eq!(shown.status, 200, "{}", shown.body);
    assert_eq!(
        (
            shown.json()["amount"].as_str(),
            shown.json()["status"].as_str()
        ),
        (Some("0.02"), Some("awaiting_address"))
    );
    let typo = http(
        None,
        w.platform.address,
        "POST",
        &page,
        &[],
        Some(r#"{"address":"0x1234"}"#),
    )
    .await;
    assert_eq!(
        (typo.status, typo.json()["code"].as_str()),
        (400, Some("invalid_address"))
    );
    let payer_address = Address::from([0x77; 20]);
    let claim = format!(r#"{{"address":"{payer_address:#x}"}}"#);
    let claimed = http(None, w.platform.address, "POST", &page, &[], Some(&claim)).await;
    assert_eq!(claimed.status, 200, "{}", claimed.body);
    assert_eq!(claimed.json()["status"], "done");
    let used = http(None, w.platform.address, "POST", &page, &[], Some(&claim)).await;
    assert_eq!(
        (used.status, used.json()["code"].as_str()),
        (404, Some("refund_link_invalid"))
    );
    // It leaves as the merchant's withdrawal (network fee on top) and reaches the address.
    let withdrawal_fee = WEI / 2000;
    assert_eq!(
        w.user_balance(w.merchant, ETH).await,
        paid - fee(2 * WEI / 100) * 2 - 2 * WEI / 100 - withdrawal_fee
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while w.chain.provider.get_balance(payer_address).await.unwrap() != U256::from(2 * WEI / 100) {
        assert!(
            Instant::now() < deadline,
            "the refund never arrived on chain"
        );
        w.mine(1).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    w.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_from_a_balance_it_settles_at_once_and_refunds_go_back_to_the_payer() {
    let w = World::start(|_| {}).await;
    let buyer_account = coss_identity::exchange_account(w.buyer).unwrap();
    coss_testkit::deposit(&w.platform.engine, buyer_account, TUSD, 100_000_000).await;
    let invoice = w
        .create(json!({ "price": "40", "currency": "TUSD", "tax": "4", "tip": "2" }))
        .await;
    let id = invoice["id"].as_str().unwrap();
    // Unknown assets and unauthenticated payers are refused.
    let wrong = w
        .as_buyer(
            "POST",
            &format!("/api/v1/checkout/{id}/pay"),
            Some(&json!({ "asset": "ETH" })),
        )
        .await;
    assert_eq!(
        (wrong.status, wrong.json()["code"].as_str()),
        (400, Some("unknown_asset"))
    );
    let anonymous = http(
        None,
        w.platform.address,
        "POST",
        &format!("/api/v1/checkout/{id}/pay"),
        &[],
        Some(r#"{"asset":"TUSD"}"#),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    let paid = w
        .as_buyer(
            "POST",
            &format!("/api/v1/checkout/{id}/pay"),
            Some(&json!({ "asset": "TUSD" })),
        )
        .await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.json()["status"], "settled");
    assert_eq!(paid.json()["payments"][0]["method"], "balance");
    assert!(paid.json()["buyer_email"].is_null());
    assert_eq!(w.user_balance(w.buyer, TUSD).await, 60_000_000);
    assert_eq!(w.user_balance(w.merchant, TUSD).await, 40_000_000 - 300_000);
    // A second click pays nothing more.
    let twice = w
        .as_buyer(
            "POST",
            &format!("/api/v1/checkout/{id}/pay"),
            Some(&json!({ "asset": "TUSD" })),
        )
        .await;
    assert_eq!(
        (twice.status, twice.json()["code"].as_str()),
        (409, Some("invoice_not_payable"))
    );
    assert_eq!(w.user_balance(w.buyer, TUSD).await, 60_000_000);

    // Refunds: part, then the rest, then nothing is left.
    let refunds = format!("/api/v1/gateway/invoices/{id}/refunds");
    let part = w
        .signed(
            "POST",
            &refunds,
            Some(&json!({ "asset": "TUSD", "kind": "amount", "amount": "10" })),
        )
        .await;
    assert_eq!(part.status, 201, "{}", part.body);
    assert_eq!(w.user_balance(w.buyer, TUSD).await, 70_000_000);
    let over = w
        .signed(
            "POST",
            &refunds,
            Some(&json!({ "asset": "TUSD", "kind": "amount", "amount": "30.000001" })),
        )
        .await;
    assert_eq!(
        (over.status, over.json()["code"].as_str()),
        (409, Some("refund_refused"))
    );
    let nothing_over = w
        .signed(
            "POST",
            &refunds,
            Some(&json!({ "asset": "TUSD", "kind": "overpaid" })),
        )
        .await;
    assert_eq!(nothing_over.status, 409, "{}", nothing_over.body);
    // The payer gets the whole amount back; settled money comes from the merchant's balance,
    // which was charged the fee once (the stated policy): here its other takings cover it.
    coss_testkit::deposit(
        &w.platform.engine,
        coss_identity::exchange_account(w.merchant).unwrap(),
        TUSD,
        1_000_000,
    )
    .await;
    // The merchant's dashboard session may refund too.
    let rest = w
        .as_merchant_session(
            "POST",
            &refunds,
            Some(&json!({ "asset": "TUSD", "kind": "all" })),
        )
        .await;
    assert_eq!(rest.status, 201, "{}", rest.body);
    assert_eq!(rest.json()["refunds"].as_array().unwrap().len(), 2);
    assert_eq!(
        w.user_balance(w.buyer, TUSD).await,
        100_000_000,
        "all paid back"
    );
    assert_eq!(
        w.user_balance(w.merchant, TUSD).await,
        40_000_000 - 300_000 + 1_000_000 - 40_000_000
    );
    let again = w
        .signed(
            "POST",
            &refunds,
            Some(&json!({ "asset": "TUSD", "kind": "all" })),
        )
        .await;
    assert_eq!(
        (again.status, again.json()["code"].as_str()),
        (409, Some("refund_refused"))
    );
    w.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_retry_in_order_without_one_failing_event_blocking_the_rest_and_are_logged() {
    let w = World::start(|_| {}).await;
    let receiver = Receiver::start(None).await;
    // The first event fails three times; then it succeeds.
    receiver.script.lock().unwrap().extend([500, 503, 500]);
    let endpoint = w
        .signed(
            "POST",
            "/api/v1/gateway/webhooks",
            Some(&json!({ "url": receiver.url, "events": ["invoice.created"] })),
        )
        .await;
    assert_eq!(endpoint.status, 201, "{}", endpoint.body);
    let wait_for = |n: usize| {
        let receiver = receiver.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            while receiver.got().len() < n {
                assert!(Instant::now() < deadline, "{:?}", receiver.got());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let first = w.create(json!({ "price": "1", "currency": "TUSD" })).await;
    wait_for(1).await;
    let second = w.create(json!({ "price": "2", "currency": "TUSD" })).await;
    // The second waits behind the first while the first has had fewer than three tries.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(receiver.got().len(), 1);
    w.clock.advance(10_000);
    wait_for(2).await;
    w.clock.advance(30_000);
    wait_for(4).await;
    let order: Vec<String> = receiver
        .got()
        .iter()
        .map(|r| {
            serde_json::from_str::<Value>(&r.body).unwrap()["data"]["invoice"]["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let (a, b) = (
        first["id"].as_str().unwrap(),
        second["id"].as_str().unwrap(),
    );
    assert_eq!(order, [a, a, a, b], "after three tries the rest go on");
    // The first is retried on its own schedule (two minutes after its third try).
    w.clock.advance(120_000);
    wait_for(5).await;
    assert_eq!(
        receiver.got()[4].header("coss-event-id"),
        receiver.got()[0].header("coss-event-id")
    );

    // The log: every attempt with its answer.
    let list = w
        .signed("GET", "/api/v1/gateway/webhooks/deliveries", None)
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    let deliveries = list.json();
    assert_eq!(deliveries.as_array().unwrap().len(), 2);
    assert!(
        deliveries
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["status"] == "delivered")
    );
    let first_delivery = deliveries[1]["id"].as_i64().unwrap();
    let one = w
        .signed(
            "GET",
            &format!("/api/v1/gateway/webhooks/deliveries/{first_delivery}"),
            None,
        )
        .await
        .json();
    let codes: Vec<i64> = one["log"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 503, 500, 200]);
    assert_eq!(one["log"][3]["response"], "ok");
    assert!(one["request_body"].as_str().unwrap().contains(a));
    // Sent again by hand: the same event, once more.
    let again = w
        .signed(
            "POST",
            &format!("/api/v1/gateway/webhooks/deliveries/{first_delivery}/redeliver"),
            None,
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    wait_for(6).await;
    assert_eq!(
        receiver.got()[5].header("coss-event-id"),
        receiver.got()[0].header("coss-event-id")
    );
    // Another merchant sees none of it.
    let foreign = w
        .as_buyer(
            "GET",
            &format!("/api/v1/gateway/webhooks/deliveries/{first_delivery}"),
            None,
        )
        .await;
    assert_eq!(foreign.status, 404);
    // A client error is not retried.
    receiver.script.lock().unwrap().push(400);
    w.create(json!({ "price": "3", "currency": "TUSD" })).await;
    wait_for(7).await;
    w.clock.advance(3_600_000);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(receiver.got().len(), 7);
    let newest = &w
        .signed("GET", "/api/v1/gateway/webhooks/deliveries", None)
        .await
        .json()[0];
    assert_eq!(
        (newest["status"].as_str(), newest["attempts"].as_i64()),
        (Some("failed"), Some(1))
    );
    w.platform.stop().await;
}

fn rates(request_line: &str) -> Option<(u16, &'static str)> {
    if request_line.contains("/rates/ETH/USD") {
        Some((200, r#"{"data":{"rate":"3000"}}"#))
    } else if request_line.contains("/rates/") {
        Some((404, "{}"))
    } else {
        None
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fiat_prices_use_the_rate_sources_that_answer_and_bad_input_changes_nothing() {
    let source = Receiver::serving(rates, None).await;
    let base = source.url.trim_end_matches("/hook").to_owned();
    let w = World::start(move |settings| {
        settings.config.gateway.rate_sources = vec![
            coss_gateway::rates::HttpSource {
                name: "down".into(),
                url: "http://127.0.0.1:1/{asset}/{currency}".into(),
                pointer: "/rate".into(),
            },
            coss_gateway::rates::HttpSource {
                name: "quotes".into(),
                url: format!("{base}/rates/{{asset}}/{{currency}}"),
                pointer: "/data/rate".into(),
            },
        ];
    })
    .await;
    // One source is down: the invoice is made at the other's rate, rounded up in wei.
    let invoice = w
        .create(json!({ "price": "10.00", "currency": "USD", "accepted_assets": ["ETH"] }))
        .await;
    assert_eq!(invoice["assets"][0]["due"], "0.003333333333333334");
    assert_eq!(invoice["assets"][0]["rate"], "3000");
    assert_eq!(invoice["assets"][0]["rate_sources"], "quotes=3000");
    let id = invoice["id"].as_str().unwrap().to_owned();
    let payer_view = w.checkout(&id).await;
    assert!(payer_view["assets"][0]["rate_sources"].is_null());

    let bad = [
        (
            json!({ "price": "1", "currency": "USD", "accepted_assets": ["DOGE"] }),
            400,
            "unknown_asset",
        ),
        (
            json!({ "price": "-1", "currency": "ETH" }),
            400,
            "invalid_amount",
        ),
        (
            json!({ "price": "0", "currency": "ETH" }),
            400,
            "invalid_amount",
        ),
        (
            json!({ "price": "0.0000000000000000001", "currency": "ETH" }),
            400,
            "invalid_amount",
        ),
        (
            json!({ "price": "1.001", "currency": "USD" , "accepted_assets": ["TUSD"]}),
            400,
            "invalid_amount",
        ),
        (
            json!({ "price": "1", "currency": "XYZ" }),
            400,
            "unknown_currency",
        ),
        (
            json!({ "price": "1000", "currency": "KRW", "accepted_assets": ["ETH"] }),
            422,
            "no_rate",
        ),
        (
            json!({ "price": "1", "currency": "ETH", "tolerance_ppm": 200_000 }),
            400,
            "invalid_parameter",
        ),
        (
            json!({ "price": "1", "currency": "ETH", "expires_in_s": 10 }),
            400,
            "invalid_parameter",
        ),
        (
            json!({ "price": "1", "currency": "ETH", "redirect_url": "javascript:alert(1)" }),
            400,
            "invalid_parameter",
        ),
        (
            json!({ "price": "1", "currency": "ETH", "tax": "0.6", "tip": "0.5" }),
            400,
            "invalid_amount",
        ),
    ];
    for (body, status, code) in &bad {
        let answer = w
            .signed("POST", "/api/v1/gateway/invoices", Some(body))
            .await;
        assert_eq!(
            (answer.status, answer.json()["code"].as_str()),
            (*status, Some(*code)),
            "{body} → {}",
            answer.body
        );
    }
    // An idempotency key replayed: the same body gets the same invoice, another is refused.
    let body = json!({ "price": "5", "currency": "TUSD", "order_id": "K-1" });
    let first = w
        .signed_with(
            "POST",
            "/api/v1/gateway/invoices",
            Some(&body),
            &["Idempotency-Key: order-K-1"],
        )
        .await;
    assert_eq!(first.status, 201, "{}", first.body);
    let replay = w
        .signed_with(
            "POST",
            "/api/v1/gateway/invoices",
            Some(&body),
            &["Idempotency-Key: order-K-1"],
        )
        .await;
    assert_eq!(replay.json()["id"], first.json()["id"]);
    let changed = w
        .signed_with(
            "POST",
            "/api/v1/gateway/invoices",
            Some(&json!({ "price": "6", "currency": "TUSD", "order_id": "K-1" })),
            &["Idempotency-Key: order-K-1"],
        )
        .await;
    assert_eq!(
        (changed.status, changed.json()["code"].as_str()),
        (409, Some("idempotency_key_reused"))
    );
    // Another merchant's invoice does not exist for the caller.
    let foreign = w
        .as_buyer("GET", &format!("/api/v1/gateway/invoices/{id}"), None)
        .await;
    assert_eq!(
        (foreign.status, foreign.json()["code"].as_str()),
        (404, Some("invoice_not_found"))
    );
    let foreign_mark = w
        .as_buyer(
            "POST",
            &format!("/api/v1/gateway/invoices/{id}/mark"),
            Some(&json!({ "status": "invalid" })),
        )
        .await;
    assert_eq!(foreign_mark.status, 404);
    // Paying without the funds moves nothing.
    let broke = w
        .as_buyer(
            "POST",
            &format!("/api/v1/checkout/{id}/pay"),
            Some(&json!({ "asset": "ETH" })),
        )
        .await;
    assert_eq!(
        (broke.status, broke.json()["code"].as_str()),
        (400, Some("insufficient_balance"))
    );
    // Nothing but the two good invoices exists, and the first is untouched.
    let list = w
        .signed("GET", "/api/v1/gateway/invoices", None)
        .await
        .json();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list:#}");
    let untouched = w.checkout(&id).await;
    assert_eq!(
        (untouched["status"].as_str(), untouched["flags"].clone()),
        (Some("new"), json!([]))
    );
    assert_eq!(untouched["payments"], json!([]));
    let by_status = w
        .signed("GET", "/api/v1/gateway/invoices?status=settled", None)
        .await
        .json();
    assert_eq!(by_status, json!([]));
    let by_order = w
        .signed("GET", "/api/v1/gateway/invoices?order_id=K-1", None)
        .await
        .json();
    assert_eq!(by_order.as_array().unwrap().len(), 1);
    w.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_counter_sale_is_priced_by_the_server_with_tax_and_tip() {
    let w = World::start(|_| {}).await;
    let products = "/api/v1/gateway/pos/products";
    let mut ids = Vec::new();
    for (name, price) in [("Coffee", "4.50"), ("Cake", "3.25")] {
        let added = w
            .as_merchant_session(
                "POST",
                products,
                Some(&json!({ "name": name, "price": price, "currency": "USD" })),
            )
            .await;
        assert_eq!(added.status, 201, "{}", added.body);
        ids.push(added.json()["id"].as_i64().unwrap());
    }
    let listed = w.as_merchant_session("GET", products, None).await.json();
    assert_eq!(listed[0]["price"], "4.5");
    // 2 coffees, a cake and 1.00 keyed in: 13.25; 10% tax 1.325 → 1.33; a 15% tip 1.9875 → 1.99.
    let sale = json!({
        "currency": "USD",
        "lines": [
            { "product_id": ids[0], "quantity": 2 },
            { "product_id": ids[1] },
            { "amount": "1.00" },
        ],
        "tax_ppm": 100_000,
        "tip_percent": 15,
    });
    let rung = w
        .as_merchant_session("POST", "/api/v1/gateway/pos/sales", Some(&sale))
        .await;
    assert_eq!(rung.status, 201, "{}", rung.body);
    let invoice = rung.json();
    assert_eq!(
        (
            invoice["price"].as_str(),
            invoice["tax"].as_str(),
            invoice["tip"].as_str()
        ),
        (Some("16.57"), Some("1.33"), Some("1.99"))
    );
    assert_eq!(invoice["source"], "pos");
    assert_eq!(invoice["description"], "2× Coffee, Cake, amount");
    // By default a fiat sale is payable in every asset with a rate: here tUSD, pegged.
    let assets: Vec<&str> = invoice["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["asset"].as_str().unwrap())
        .collect();
    assert_eq!(assets, ["TUSD"]);
    assert_eq!(invoice["assets"][0]["due"], "16.57");
    // The tablet cannot sell another merchant's product, nor change a price.
    let foreign = w
        .as_buyer(
            "POST",
            "/api/v1/gateway/pos/sales",
            Some(&json!({ "currency": "USD", "lines": [{ "product_id": ids[0] }] })),
        )
        .await;
    assert_eq!(
        (foreign.status, foreign.json()["code"].as_str()),
        (400, Some("invalid_parameter"))
    );
    let priced = w
        .as_merchant_session(
            "POST",
            "/api/v1/gateway/pos/sales",
            Some(
                &json!({ "currency": "USD", "lines": [{ "product_id": ids[0], "price": "0.01" }] }),
            ),
        )
        .await;
    assert_eq!(priced.status, 400, "{}", priced.body);
    // Paid from a balance at the counter; the report keeps tax and tip.
    coss_testkit::deposit(
        &w.platform.engine,
        coss_identity::exchange_account(w.buyer).unwrap(),
        TUSD,
        100_000_000,
    )
    .await;
    let id = invoice["id"].as_str().unwrap();
    let paid = w
        .as_buyer(
            "POST",
            &format!("/api/v1/checkout/{id}/pay"),
            Some(&json!({ "asset": "TUSD" })),
        )
        .await;
    assert_eq!(paid.json()["status"], "settled", "{}", paid.body);
    let report = w
        .signed("GET", "/api/v1/gateway/reports/settlements", None)
        .await
        .json();
    assert_eq!(
        (
            report[0]["tax"].as_str(),
            report[0]["tip"].as_str(),
            report[0]["fiat_amount"].as_str()
        ),
        (Some("1.33"), Some("1.99"), Some("16.57"))
    );
    let removed = w
        .as_merchant_session("DELETE", &format!("{products}/{}", ids[1]), None)
        .await;
    assert_eq!(removed.status, 200);
    let listed = w.as_merchant_session("GET", products, None).await.json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    w.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merchant_who_converts_gets_the_settlement_sold_into_its_settlement_asset() {
    let w = World::start(|_| {}).await;
    let now = w.clock.now().as_i64();
    w.platform
        .accounts
        .put_merchant(
            w.merchant,
            &coss_identity::MerchantInput {
                business_name: "Corner Cafe".into(),
                website: None,
                settlement_asset: "TUSD".into(),
                settlement_mode: "convert".into(),
                webhook_url: None,
            },
            now,
        )
        .await
        .unwrap();
    // A maker bids 2000 TUSD for up to 1 ETH.
    let maker = verified(&w.platform.accounts, "maker@example.com", now).await;
    let maker_account = coss_identity::exchange_account(maker).unwrap();
    coss_testkit::deposit(&w.platform.engine, maker_account, TUSD, 10_000_000_000).await;
    coss_testkit::submit(
        &w.platform.engine,
        coss_testkit::limit_order(maker_account, coss_types::Side::Buy, 200_000, 10_000),
    )
    .await;
    coss_testkit::deposit(
        &w.platform.engine,
        coss_identity::exchange_account(w.buyer).unwrap(),
        ETH,
        WEI,
    )
    .await;
    let invoice = w.create(json!({ "price": "0.1", "currency": "ETH" })).await;
    let id = invoice["id"].as_str().unwrap();
    let paid = w
        .as_buyer(
            "POST",
            &format!("/api/v1/checkout/{id}/pay"),
            Some(&json!({ "asset": "ETH" })),
        )
        .await;
    assert_eq!(paid.json()["status"], "settled", "{}", paid.body);
    // 0.1 ETH less 0.75% is 0.09925 ETH: 0.0992 (992 lots) sold at 2000, the rest below a lot.
    assert_eq!(
        w.user_balance(w.merchant, ETH).await,
        50_000_000_000_000,
        "what is left below one lot"
    );
    let sold = 198_400_000u128;
    let taker_fee = coss_core::fee_for(sold, coss_core::default_fee_schedule()[0].taker_ppm);
    assert_eq!(w.user_balance(w.merchant, TUSD).await, sold - taker_fee);
    let view = w
        .signed("GET", &format!("/api/v1/gateway/invoices/{id}"), None)
        .await
        .json();
    assert!(
        view["settlements"][0]["conversion_order"]
            .as_i64()
            .is_some(),
        "{view:#}"
    );
    w.platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_paid_part_of_an_expired_partial_payment_is_refunded_whole_without_fee() {
    let w = World::start(|_| {}).await;
    let invoice = w
        .create(json!({ "price": "0.01", "currency": "ETH", "expires_in_s": 60 }))
        .await;
    let id = invoice["id"].as_str().unwrap();
    w.pay_eth(invoice["address"].as_str().unwrap(), 4 * WEI / 1000)
        .await;
    w.mine(3).await;
    w.until(id, "confirmed partial payment", |v| {
        v["assets"][0]["confirmed"] == "0.004"
    })
    .await;
    // Still open: nothing to refund yet.
    let refunds = format!("/api/v1/gateway/invoices/{id}/refunds");
    let early = w
        .signed(
            "POST",
            &refunds,
            Some(&json!({ "asset": "ETH", "kind": "all" })),
        )
        .await;
    assert_eq!(
        (early.status, early.json()["code"].as_str()),
        (409, Some("refund_refused"))
    );
    w.clock.advance(61_000);
    w.until_status(id, "expired").await;
    // The merchant's own ETH pays the network fee of the refund's withdrawal.
    coss_testkit::deposit(
        &w.platform.engine,
        coss_identity::exchange_account(w.merchant).unwrap(),
        ETH,
        WEI / 1000,
    )
    .await;
    let answer = w
        .signed(
            "POST",
            &refunds,
            Some(&json!({ "asset": "ETH", "kind": "all" })),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let token = answer.json()["refund_link"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_owned();
    let claimed = http(
        None,
        w.platform.address,
        "POST",
        &format!("/api/v1/checkout/refunds/{token}"),
        &[],
        Some(r#"{"address":"0x00000000000000000000000000000000000000aa"}"#),
    )
    .await;
    assert_eq!(claimed.json()["status"], "done", "{}", claimed.body);
    // The whole 0.004 went back (no gateway fee was ever taken of it); the merchant paid
    // only the network fee; the gateway account holds nothing of this invoice any more.
    assert_eq!(
        w.user_balance(w.merchant, ETH).await,
        WEI / 1000 - WEI / 2000
    );
    assert_eq!(w.balance(coss_core::GATEWAY, ETH).await, 0);
    let again = w
        .signed(
            "POST",
            &refunds,
            Some(&json!({ "asset": "ETH", "kind": "all" })),
        )
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    w.platform.stop().await;
}
