//! The whole platform in process, as `coss up` assembles it, serving on a loopback port: every
//! mounted route is described and declares its authentication, the edges answer on one port,
//! and the client's address is believed from `X-Forwarded-For` only when a trusted proxy
//! sends it. A history database that runs ahead of the journal stops start-up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::net::IpAddr;

use coss_identity::{Permission, sign};
use coss_server::{Config, Platform, Settings};
use coss_testkit::{TestPlatform, http, verified, with_totp};

mod admin;
mod gateway;

/// `(method, path)` pairs of an OpenAPI document.
fn described(doc: &utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        for (method, operation) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if operation.is_some() {
                out.insert((method.to_owned(), path.clone()));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mounted_route_is_described_and_declares_how_its_caller_is_authenticated() {
    let platform = TestPlatform::start().await;
    let (own, binance) = coss_server::documents();
    let documented: BTreeSet<_> = described(&own)
        .union(&described(&binance))
        .cloned()
        .collect();
    let mounted: BTreeSet<(String, String)> = platform
        .mounted
        .iter()
        .map(|route| {
            // axum's `{*rest}` is OpenAPI's `{rest}`.
            (route.method.to_string(), route.path.replace("{*", "{"))
        })
        .collect();
    let undescribed: Vec<_> = mounted.difference(&documented).collect();
    assert!(
        undescribed.is_empty(),
        "mounted but not described: {undescribed:?}"
    );
    let unmounted: Vec<_> = documented.difference(&mounted).collect();
    assert!(
        unmounted.is_empty(),
        "described but not mounted: {unmounted:?}"
    );
    assert_eq!(
        mounted.len(),
        platform.mounted.len(),
        "a route mounted twice"
    );
    for route in &platform.mounted {
        assert!(!route.auth.is_empty(), "{route:?}");
    }
    let auth_of = |method: &str, path: &str| {
        platform
            .mounted
            .iter()
            .find(|r| r.method == method && r.path == path)
            .map(|r| r.auth)
    };
    assert_eq!(auth_of("GET", "/api/v1/wallet/balances"), Some("session"));
    assert_eq!(
        auth_of("GET", "/api/v1/api-keys/self"),
        Some("api_key:read")
    );
    assert_eq!(auth_of("POST", "/api/v3/order"), Some("api_key:trade"));
    assert_eq!(auth_of("POST", "/oauth2/token"), Some("oauth_client"));
    assert_eq!(auth_of("GET", "/health"), Some("public"));
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_status_accounts_wallets_and_the_binance_api() {
    let platform = TestPlatform::start().await;
    let get = |path: &'static str| http(None, platform.address, "GET", path, &[], None);
    let health = get("/health").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok"));
    let status = get("/api/v1/engine/status").await;
    assert_eq!(status.status, 200);
    assert!(
        status.json()["commands"].as_u64().unwrap() > 0,
        "{}",
        status.body
    );
    let ping = get("/api/v3/ping").await;
    assert_eq!((ping.status, ping.body.as_str()), (200, "{}"));
    assert!(ping.header("x-mbx-used-weight-1m").is_some());
    let assets = get("/api/v1/wallet/assets").await;
    assert_eq!(assets.status, 200);
    assert!(assets.body.contains("\"ETH\""), "{}", assets.body);
    let balances = get("/api/v1/wallet/balances").await;
    assert_eq!(
        (balances.status, balances.json()["code"].as_str()),
        (401, Some("unauthenticated"))
    );
    let missing = get("/api/v1/nothing-here").await;
    assert_eq!(
        (missing.status, missing.json()["code"].as_str()),
        (404, Some("not_found"))
    );
    let signup = http(
        None,
        platform.address,
        "POST",
        "/api/v1/auth/signup",
        &[],
        Some(r#"{"email":"alice@example.com","password":"correct horse battery"}"#),
    )
    .await;
    assert_eq!(signup.status, 202, "{}", signup.body);
    let metrics = get("/metrics").await;
    assert!(
        metrics.body.contains(
            "coss_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1"
        ),
        "{}",
        metrics.body
    );
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_client_address_is_believed_only_from_a_trusted_proxy() {
    let platform = TestPlatform::start_with(|settings| {
        settings.config.http.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let accounts = &platform.accounts;
    let now = coss_clock::Clock::system().now().as_i64();
    let user = verified(accounts, "bot@example.com", now).await;
    let seed = with_totp(accounts, user, now).await;
    let key = accounts
        .create_api_key(
            &coss_testkit::app(user),
            "bot",
            &[Permission::Read],
            &["198.51.100.7".to_owned()],
            coss_identity::totp_code(&seed, now).as_deref(),
            now,
        )
        .await
        .unwrap();
    let secret = key.secret.expose().to_owned();
    let whoami = |from: &'static str, forwarded: Option<&'static str>| {
        let query = format!("timestamp={}", coss_clock::Clock::system().now());
        let path = format!(
            "/api/v1/api-keys/self?{query}&signature={}",
            sign(&secret, &query)
        );
        let api_key = format!("X-MBX-APIKEY: {}", key.key.api_key);
        let address = platform.address;
        async move {
            let mut headers = vec![api_key.as_str()];
            let forwarded = forwarded.map(|f| format!("X-Forwarded-For: {f}"));
            headers.extend(forwarded.as_deref());
            let from: IpAddr = from.parse().unwrap();
            http(Some(from), address, "GET", &path, &headers, None).await
        }
    };
    // Through the trusted proxy, from the allowed address.
    let through_proxy = whoami("127.0.0.1", Some("203.0.113.66, 198.51.100.7")).await;
    assert_eq!(through_proxy.status, 200, "{}", through_proxy.body);
    assert_eq!(through_proxy.json()["user_id"], user.0);
    // The same header from an address that is not a trusted proxy is ignored.
    let spoofed = whoami("127.0.0.2", Some("198.51.100.7")).await;
    assert_eq!(
        (spoofed.status, spoofed.json()["code"].as_str()),
        (403, Some("ip_not_allowed"))
    );
    // The proxy itself is not the allowed client.
    let direct = whoami("127.0.0.1", None).await;
    assert_eq!(direct.status, 403, "{}", direct.body);
    platform.stop().await;
}

/// Opens the platform on `dir` (SQLite, the local anvil), waits until the history holds every
/// event of the engine, and stops it.
async fn run_platform(dir: &std::path::Path, work: impl AsyncFnOnce(&coss_engine::EngineHandle)) {
    let settings = Settings::new(dir, Config::defaults().unwrap());
    let platform = Platform::open(settings).await.unwrap();
    let engine = platform.engine().clone();
    work(&engine).await;
    let last = engine.status_async().await.unwrap().last_seq;
    let store = platform.accounts().store().clone();
    while store.history_position().await.unwrap() < last {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    drop(engine);
    let stopped = platform.stop();
    tokio::task::spawn_blocking(move || stopped.finish())
        .await
        .unwrap()
        .unwrap();
}

fn copy_files(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_ahead_of_the_journal_stops_start_up_until_it_is_reset() {
    // The history database saw events the journal no longer holds (here: an operator put back
    // an older journal). Starting anyway would give the next orders the ids of the lost ones
    // and keep their events out of the history, so start-up refuses and says the way out.
    let dir = tempfile::tempdir().unwrap();
    run_platform(dir.path(), async |_| {}).await;
    let journal = coss_engine::journal_dir(dir.path());
    let older = tempfile::tempdir().unwrap();
    copy_files(&journal, older.path());
    run_platform(dir.path(), async |engine| {
        let account = coss_identity::exchange_account(coss_types::UserId(7)).unwrap();
        coss_testkit::deposit(engine, account, coss_wallet::DEV_ETH, 5_000).await;
    })
    .await;
    std::fs::remove_dir_all(&journal).unwrap();
    copy_files(older.path(), &journal);

    let settings = || Settings::new(dir.path(), Config::defaults().unwrap());
    let error = Platform::open(settings()).await.unwrap_err();
    assert_eq!(error.code(), "history_ahead", "{error}");
    assert!(error.to_string().contains("coss history reset"), "{error}");

    let accounts = coss_server::open_accounts(&settings()).await.unwrap();
    accounts.store().reset_history().await.unwrap();
    drop(accounts);
    // Rebuilt from the journal it now has.
    run_platform(dir.path(), async |_| {}).await;
}

/// Reads until the server closes the connection (or `wait` passes: `None`).
async fn read_to_close(
    stream: &mut tokio::net::TcpStream,
    wait: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(wait, async {
        let mut buf = [0u8; 4096];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|()| String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_idle_connections_are_closed_after_the_header_timeout() {
    use tokio::io::AsyncWriteExt;
    let platform = TestPlatform::start_with(|s| {
        s.config.limits = coss_server::Limits::OFF;
        s.config.http.header_timeout_ms = 300;
    })
    .await;
    let wait = std::time::Duration::from_secs(5);
    // Headers that never finish: closed, not held (they stayed open for 100 s before).
    let mut slow = tokio::net::TcpStream::connect(platform.address)
        .await
        .unwrap();
    slow.write_all(b"GET /api/v3/ping HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    assert!(
        read_to_close(&mut slow, wait).await.is_some(),
        "slow headers kept open"
    );
    // Nothing sent at all: closed too.
    let mut silent = tokio::net::TcpStream::connect(platform.address)
        .await
        .unwrap();
    assert!(
        read_to_close(&mut silent, wait).await.is_some(),
        "a silent connection kept open"
    );
    // A kept-alive connection is answered, then closed once idle.
    let mut idle = tokio::net::TcpStream::connect(platform.address)
        .await
        .unwrap();
    idle.write_all(b"GET /api/v3/ping HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let answered = read_to_close(&mut idle, wait)
        .await
        .expect("an idle connection kept open");
    assert!(answered.starts_with("HTTP/1.1 200"), "{answered}");
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_body_that_stops_arriving_is_answered_408() {
    use tokio::io::AsyncWriteExt;
    let platform = TestPlatform::start_with(|s| {
        s.config.limits = coss_server::Limits::OFF;
        s.config.http.body_timeout_ms = 300;
    })
    .await;
    for path in ["/api/v3/order/test", "/api/v1/auth/login"] {
        let mut stream = tokio::net::TcpStream::connect(platform.address)
            .await
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: 100\r\nconnection: close\r\n\r\n{{\"email\":"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let answer = read_to_close(&mut stream, std::time::Duration::from_secs(5))
            .await
            .expect("a stalled body kept open");
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
    }
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_hold_more_than_its_share_of_connections() {
    use tokio::io::AsyncWriteExt;
    let platform = TestPlatform::start_with(|s| {
        s.config.limits = coss_server::Limits::OFF;
        s.config.http.max_connections_per_address = 5;
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(
            tokio::net::TcpStream::connect(platform.address)
                .await
                .unwrap(),
        );
    }
    // The sixth is told why and closed at once (about 20,000 idle ones from one client used
    // to fill the descriptor table).
    let mut sixth = tokio::net::TcpStream::connect(platform.address)
        .await
        .unwrap();
    let answer = read_to_close(&mut sixth, std::time::Duration::from_secs(5))
        .await
        .expect("the sixth connection was kept");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("too_many_connections"), "{answer}");
    // One goes: its place is free again.
    drop(held.pop());
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let mut next = tokio::net::TcpStream::connect(platform.address)
            .await
            .unwrap();
        next.write_all(b"GET /api/v3/ping HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let answer = read_to_close(&mut next, std::time::Duration::from_secs(5))
            .await
            .unwrap_or_default();
        if answer.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place was not given back: {answer}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    platform.stop().await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_the_database_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("coss");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    let settings = Settings::new(&data, Config::defaults().unwrap());
    let platform = Platform::open(settings).await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(&data.join("coss.db")), 0o600);
    assert_eq!(mode(&data.join("secret.key")), 0o600);
    let stopped = platform.stop();
    tokio::task::spawn_blocking(move || stopped.finish())
        .await
        .unwrap()
        .unwrap();
}

/// A tmpfs of a few MiB on a fresh directory, unmounted when dropped. Mounting needs root,
/// which the test machines and CI have.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(mib: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot mount a tmpfs (this test needs root)"
        );
        Tmpfs(dir)
    }

    /// Fills it to the last byte with a file named `filler`.
    fn fill(&self) {
        use std::io::Write as _;
        let mut filler = std::fs::File::create(self.0.path().join("filler")).unwrap();
        for size in [1 << 20, 4096, 1] {
            let chunk = vec![0u8; size];
            while filler.write_all(&chunk).is_ok() {}
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// What the platform logs, kept for the test to read (each test runs in its own process).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Defect (issue 20, item 9): on a full disk the failed journal write was not logged when it
/// happened (the first error came seconds later from another component), and once space was
/// freed the process stayed up answering 503 for ever. Now the cause is logged the moment the
/// write fails, the platform stops serving (so `coss up` exits non-zero, with the cause, for a
/// supervisor to restart it) and a restart once the disk has room recovers every
/// acknowledged command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_halts_with_the_cause_logged_at_once_and_a_restart_recovers() {
    let log = Captured::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let disk = Tmpfs::mount(24);
    let data = disk.0.path().join("data");
    let settings = || Settings::new(&data, Config::defaults().unwrap());
    let platform = Platform::open(settings()).await.unwrap();
    let engine = platform.engine().clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let serving = tokio::spawn(platform.serve(listener, std::future::pending()));
    let account = coss_identity::exchange_account(coss_types::UserId(7)).unwrap();
    let deposit = |n: u64| coss_core::Command::Deposit {
        account,
        asset: coss_wallet::DEV_ETH,
        amount: coss_types::Amount(1_000 + u128::from(n)),
        reference: format!("disk-full-{n}"),
    };
    coss_testkit::submit(&engine, deposit(0)).await;
    let mut acked = 1_000u128;

    disk.fill();
    let mut refused = None;
    for n in 1..100_000 {
        match engine.submit_async(deposit(n)).await {
            Ok(receipt) => {
                assert_eq!(receipt.outcome, Ok(()));
                acked += 1_000 + u128::from(n);
            }
            Err(_) => {
                refused = Some(1_000 + u128::from(n));
                break;
            }
        }
    }
    let refused = refused.expect("a full disk refuses a journal write");
    // The cause, in the log, by the time the caller hears the engine stopped.
    let logged = log.text();
    assert!(
        logged.contains("the journal could not be written")
            && logged.contains("No space left on device"),
        "{logged}"
    );
    drop(engine);
    // The platform stops serving by itself, and its shutdown reports the journal's error
    // (which `coss up` turns into a non-zero exit).
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(30), serving)
        .await
        .expect("the platform kept serving with a halted engine")
        .unwrap()
        .unwrap();
    let finished = tokio::task::spawn_blocking(move || stopped.finish())
        .await
        .unwrap();
    // As `coss up` prints it (anyhow's chain of causes) before exiting non-zero.
    let error = format!("{:?}", anyhow::Error::new(finished.unwrap_err()));
    assert!(error.contains("No space left on device"), "{error}");

    // Room again: a restart recovers every acknowledged deposit (the refused one's record
    // was torn, so it is dropped, unless it reached the disk whole).
    std::fs::remove_file(disk.0.path().join("filler")).unwrap();
    let platform = Platform::open(settings()).await.unwrap();
    let engine = platform.engine().clone();
    let recovered = engine
        .read_async(move |exchange| exchange.balance(account, coss_wallet::DEV_ETH).available)
        .await
        .unwrap();
    assert!(
        recovered.0 == acked || recovered.0 == acked + refused,
        "acknowledged {acked}, recovered {}",
        recovered.0
    );
    drop(engine);
    let stopped = platform.stop();
    tokio::task::spawn_blocking(move || stopped.finish())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_funds_go_on_chain_to_the_deposit_address_at_most_once_a_minute() {
    let platform = TestPlatform::start().await;
    let now = coss_clock::Clock::system().now().as_i64();
    verified(&platform.accounts, "alice@example.com", now).await;
    let grant = platform
        .accounts
        .login(
            &coss_identity::Login {
                email: "alice@example.com",
                password: coss_testkit::PASSWORD,
                second_factor: None,
                kind: coss_store::SessionKind::App,
                client: coss_identity::Client::default(),
            },
            now,
        )
        .await
        .unwrap();
    let bearer = format!("Authorization: Bearer {}", grant.token.expose());
    let headers = [bearer.as_str()];
    let call = |method: &'static str, path: &'static str| {
        http(None, platform.address, method, path, &headers, None)
    };
    let offer = call("GET", "/api/v1/wallet/test-funds").await;
    assert_eq!(offer.status, 200, "{}", offer.body);
    assert_eq!(
        offer.json()["available"],
        true,
        "the platform runs its own anvil"
    );

    let sent = call("POST", "/api/v1/wallet/test-funds").await;
    assert_eq!(sent.status, 200, "{}", sent.body);
    let deposit = call("GET", "/api/v1/wallet/deposit-address").await;
    assert_eq!(
        sent.json()["address"].as_str().unwrap(),
        deposit.json()["address"].as_str().unwrap().to_lowercase(),
        "the funds go to the user's own deposit address"
    );
    assert_eq!(
        (sent.json()["eth"].as_str(), sent.json()["tusd"].as_str()),
        (Some("10"), Some("10000"))
    );
    for tx in ["eth_tx", "tusd_tx"] {
        assert_eq!(sent.json()[tx].as_str().unwrap().len(), 66, "{}", sent.body);
    }

    // A second request within the minute sends nothing and says when to ask again.
    let again = call("POST", "/api/v1/wallet/test-funds").await;
    assert_eq!(
        (again.status, again.json()["code"].as_str()),
        (429, Some("test_funds_too_soon")),
        "{}",
        again.body
    );
    let wait: u64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    platform.stop().await;
}
