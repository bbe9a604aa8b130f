//! Fixtures shared by COSS's tests (a dev-dependency only, never part of the platform):
//! accounts over a scratch SQLite store, a verified user (signed up and confirmed with the
//! token from its queued email), TOTP and API keys, deposits into the engine, the ETH/TUSD
//! market most trading tests use, a scratch PostgreSQL database, a free port, and the whole
//! platform running on a free port ([`TestPlatform`]). Each is the one way the tests do it,
//! so that a change of the sign-up flow, say, is made once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use coss_core::{Command, NewOrder, OrderKind, SelfTradePrevention, TimeInForce};
use coss_engine::EngineHandle;
use coss_identity::{Accounts, Authenticated, Client, Permission, Vault, totp_code};
use coss_store::{ScratchDatabase, SessionKind, Store};
use coss_types::{AccountId, Amount, AssetId, MarketId, Price, Qty, Side, UserId};

/// The password every test account has.
pub const PASSWORD: &str = "correct horse battery staple";
/// ETH in the trading tests' market (18 decimals).
pub const ETH: AssetId = AssetId(1);
/// TUSD in the trading tests' market (6 decimals).
pub const TUSD: AssetId = AssetId(2);
/// The ETH/TUSD market.
pub const ETH_TUSD: MarketId = MarketId(1);
/// One ETH in wei.
pub const ETH_1: u128 = 1_000_000_000_000_000_000;
/// One TUSD in its smallest unit.
pub const TUSD_1: u128 = 1_000_000;

/// Accounts over a SQLite store in `dir`, with a random server key.
pub async fn accounts_in(dir: &std::path::Path) -> Accounts {
    let store = Store::open_in(dir).await.unwrap();
    Accounts::new(store, Vault::random().unwrap()).unwrap()
}

/// The token in the newest queued email to `to`.
pub async fn emailed_token(accounts: &Accounts, to: &str) -> String {
    token_in(accounts, to, None).await
}

/// The token in the newest queued email of `template` (`verify`, `reset`, …) to `to`.
pub async fn emailed_token_of(accounts: &Accounts, to: &str, template: &str) -> String {
    token_in(accounts, to, Some(template)).await
}

async fn token_in(accounts: &Accounts, to: &str, template: Option<&str>) -> String {
    let mail = accounts.store().due_mail(i64::MAX, 1000).await.unwrap();
    let payload = &mail
        .iter()
        .rev()
        .find(|m| m.mail.recipient == to && template.is_none_or(|t| m.mail.template == t))
        .unwrap_or_else(|| panic!("no {template:?} email to {to}"))
        .mail
        .payload;
    let payload: serde_json::Value = serde_json::from_str(payload).unwrap();
    payload["token"].as_str().unwrap().to_owned()
}

/// Signs `email` up (password [`PASSWORD`]) and verifies it with its emailed token, at `now`.
pub async fn verified(accounts: &Accounts, email: &str, now: i64) -> UserId {
    accounts
        .signup(email, PASSWORD, &Client::default(), now)
        .await
        .unwrap();
    let token = emailed_token(accounts, email).await;
    accounts.verify_email(&token, now).await.unwrap()
}

/// Who `user` is, as an app session (for the account services that take the caller).
#[must_use]
pub fn app(user: UserId) -> Authenticated {
    Authenticated {
        user_id: user,
        session_id: 0,
        kind: SessionKind::App,
    }
}

/// Turns TOTP on for `user` (password [`PASSWORD`]; confirmed with the previous step's code,
/// so that the current step's code is still unused) and returns its seed.
pub async fn with_totp(accounts: &Accounts, user: UserId, now: i64) -> String {
    let who = app(user);
    let enrolment = accounts
        .begin_totp_enrolment(&who, PASSWORD, now)
        .await
        .unwrap();
    let seed = enrolment.secret.expose().to_owned();
    accounts
        .confirm_totp(&who, &totp_code(&seed, now - 30_000).unwrap(), now)
        .await
        .unwrap();
    seed
}

/// An API key of `user` (TOTP on, with `seed`) with `permissions`: (key, secret).
pub async fn api_key(
    accounts: &Accounts,
    user: UserId,
    seed: &str,
    permissions: &[Permission],
    now: i64,
) -> (String, String) {
    let key = accounts
        .create_api_key(
            &app(user),
            "test",
            permissions,
            &[],
            totp_code(seed, now).as_deref(),
            now,
        )
        .await
        .unwrap();
    (key.key.api_key, key.secret.expose().to_owned())
}

/// Deposits `amount` of `asset` to `account` (a reference no other deposit has).
pub async fn deposit(engine: &EngineHandle, account: AccountId, asset: AssetId, amount: u128) {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let command = Command::Deposit {
        account,
        asset,
        amount: Amount(amount),
        reference: format!("testkit-{}-{n}", std::process::id()),
    };
    submit(engine, command).await;
}

/// Submits a command the test expects to be applied.
pub async fn submit(engine: &EngineHandle, command: Command) {
    let receipt = engine.submit_async(command.clone()).await.unwrap();
    assert_eq!(receipt.outcome, Ok(()), "{command:?}");
}

/// The trading tests' market: ETH (18 decimals) and TUSD (6) listed, and ETH/TUSD with a lot of
/// 0.0001 ETH, a tick of 0.01 TUSD and a minimum order of 1 TUSD.
#[must_use]
pub fn eth_tusd() -> [Command; 3] {
    eth_tusd_with_minimum(TUSD_1)
}

/// [`eth_tusd`] with a minimum order value of `min_notional` TUSD units.
#[must_use]
pub fn eth_tusd_with_minimum(min_notional: u128) -> [Command; 3] {
    [
        Command::ListAsset {
            asset: ETH,
            symbol: "ETH".into(),
            decimals: 18,
            fees_shared: true,
            withdrawal_fee: Amount(0),
        },
        Command::ListAsset {
            asset: TUSD,
            symbol: "TUSD".into(),
            decimals: 6,
            fees_shared: true,
            withdrawal_fee: Amount(0),
        },
        Command::ListMarket {
            market: ETH_TUSD,
            base: ETH,
            quote: TUSD,
            lot_size: Amount(100_000_000_000_000),
            tick_size: Amount(10_000),
            min_notional: Amount(min_notional),
        },
    ]
}

/// A good-till-cancelled limit order of `account` on ETH/TUSD: `qty` lots at `price` ticks,
/// without a client order id or self-trade prevention.
#[must_use]
pub fn limit_order(account: AccountId, side: Side, price: u64, qty: u64) -> Command {
    Command::PlaceOrder(NewOrder {
        account,
        market: ETH_TUSD,
        side,
        kind: OrderKind::Limit {
            price: Price(price),
            qty: Qty(qty),
            tif: TimeInForce::Gtc,
        },
        client_id: None,
        stp: SelfTradePrevention::None,
    })
}

/// A fresh PostgreSQL database on `COSS_TEST_POSTGRES` (default: the local server's `test`
/// database as admin), named after `purpose`, the process and the time; drop it with
/// [`ScratchDatabase::drop_now`].
pub async fn scratch_postgres(purpose: &str) -> ScratchDatabase {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let admin = std::env::var("COSS_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("coss_test_{purpose}_{}_{nanos}_{n}", std::process::id());
    ScratchDatabase::create(&admin, &name).await.unwrap()
}

/// A loopback port nobody listens on now.
#[must_use]
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The whole platform (as `coss up` runs it: engine, database, local anvil, wallets, DAO,
/// every edge) serving on a free loopback port, on a scratch data dir. Stop it with
/// [`TestPlatform::stop`]; dropping it without stopping kills its anvil and leaves the rest
/// to the end of the test process.
#[derive(Debug)]
pub struct TestPlatform {
    /// Where it listens.
    pub address: SocketAddr,
    /// Where the back office's internal API listens (its own loopback port).
    pub internal_address: SocketAddr,
    /// Its engine.
    pub engine: EngineHandle,
    /// Its accounts.
    pub accounts: Accounts,
    /// The routes it mounted, with the authentication each declares.
    pub mounted: Vec<coss_http::Mounted>,
    anvil_pid: Option<u32>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    serving:
        Option<tokio::task::JoinHandle<Result<coss_server::Stopped, coss_server::PlatformError>>>,
    dir: Option<tempfile::TempDir>,
}

impl TestPlatform {
    /// Opens and serves a platform with the built-in configuration and the rate limits off.
    pub async fn start() -> TestPlatform {
        TestPlatform::start_with(|settings| settings.config.limits = coss_server::Limits::OFF).await
    }

    /// Opens and serves a platform with settings `edit` changed.
    pub async fn start_with(edit: impl FnOnce(&mut coss_server::Settings)) -> TestPlatform {
        let dir = tempfile::tempdir().unwrap();
        let mut settings =
            coss_server::Settings::new(dir.path(), coss_server::Config::defaults().unwrap());
        edit(&mut settings);
        let platform = coss_server::Platform::open(settings).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let internal = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let internal_address = internal.local_addr().unwrap();
        let mounted = platform
            .routes(&format!("http://{address}"))
            .mounted()
            .to_vec();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let engine = platform.engine().clone();
        let accounts = platform.accounts().clone();
        let anvil_pid = platform.local_node().map(|node| node.pid());
        let serving = tokio::spawn(platform.serve_with(listener, Some(internal), async move {
            let _ = stop.await;
        }));
        TestPlatform {
            address,
            internal_address,
            engine,
            accounts,
            mounted,
            anvil_pid,
            shutdown: Some(shutdown),
            serving: Some(serving),
            dir: Some(dir),
        }
    }

    /// `http://<address><path>`.
    #[must_use]
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The data dir.
    #[must_use]
    pub fn data_dir(&self) -> &std::path::Path {
        self.dir
            .as_ref()
            .map_or(std::path::Path::new("/nonexistent"), |d| d.path())
    }

    /// Stops serving, stops the local chain and shuts the engine down.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        let serving = self.serving.take().unwrap();
        let stopped = serving.await.unwrap().unwrap();
        // The chain stops with the platform; the data dir goes once both are down.
        self.anvil_pid = None;
        let dir = self.dir.take();
        drop(self);
        tokio::task::spawn_blocking(move || stopped.finish())
            .await
            .unwrap()
            .unwrap();
        drop(dir);
    }
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(pid) = self.anvil_pid.take() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// An HTTP/1.1 answer: status, headers (lower-case names) and body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The status code.
    pub status: u16,
    /// The headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: String,
}

impl Answer {
    /// The body as JSON (`null` when it is not JSON).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// A header's value.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request to `to` (from the local address `from`, e.g. `127.0.0.2`, when given),
/// `Connection: close`, with `headers` (`"Name: value"`) and a JSON `body` if any.
pub async fn http(
    from: Option<std::net::IpAddr>,
    to: SocketAddr,
    method: &str,
    path: &str,
    headers: &[&str],
    body: Option<&str>,
) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0)).unwrap();
    }
    let mut stream = socket.connect(to).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    let body = body.unwrap_or_default();
    if !body.is_empty() {
        request.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        unchunk(rest)
    } else {
        rest.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn unchunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        text = rest[size..].trim_start_matches("\r\n");
    }
    out
}
