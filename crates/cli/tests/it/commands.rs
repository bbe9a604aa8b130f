use crate::{coss, stderr_of, verify_json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[test]
fn bench_engine_prints_every_figure_and_writes_an_ordinary_journal() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("bench");
    let output = coss()
        .args([
            "bench",
            "engine",
            "--commands",
            "3000",
            "--memory-orders",
            "2000",
            "--repeats",
            "1",
            "--json",
            "--durable",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for key in [
        "book_ops_per_s",
        "core_cmds_per_s",
        "durable_cmds_per_s",
        "core_p50_ns",
        "core_p99_ns",
        "core_p999_ns",
        "peer_name",
        "peer_book_ops_per_s",
        "bytes_per_resting_order",
        "state_hash",
    ] {
        assert!(!report[key].is_null(), "missing {key} in {report}");
    }
    let verified = verify_json(&data);
    assert!(verified["commands"].as_u64().unwrap() > 3000);

    // Same seed, same state hash.
    let again = coss()
        .args([
            "bench",
            "engine",
            "--commands",
            "3000",
            "--memory-orders",
            "2000",
            "--repeats",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["state_hash"], again["state_hash"]);
}

#[test]
fn durable_bench_refuses_a_data_dir_that_already_has_a_journal() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "engine",
        "--commands",
        "100",
        "--memory-orders",
        "10",
        "--repeats",
        "1",
        "--durable",
        "--data-dir",
    ];
    assert!(
        coss()
            .args(args)
            .arg(dir.path())
            .output()
            .unwrap()
            .status
            .success()
    );
    let second = coss().args(args).arg(dir.path()).output().unwrap();
    assert!(!second.status.success());
    let stderr = stderr_of(&second);
    assert!(
        stderr.starts_with("error: ") && stderr.contains("already holds a journal"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn verify_of_a_corrupt_journal_exits_non_zero_naming_file_and_offset() {
    let dir = tempfile::tempdir().unwrap();
    let ok = coss()
        .args(["engine", "feed", "--commands", "200", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(ok.status.success(), "{}", stderr_of(&ok));
    let segment = std::fs::read_dir(dir.path().join("journal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "log"))
        .unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    bytes[100] ^= 0x55;
    std::fs::write(&segment, bytes).unwrap();
    let output = coss()
        .args(["journal", "verify", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = stderr_of(&output);
    assert!(
        stderr.contains(&segment.display().to_string()) && stderr.contains("offset"),
        "{stderr}"
    );
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn verify_without_a_journal_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let output = coss()
        .args(["journal", "verify", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr_of(&output).starts_with("error: "));
}

#[test]
fn up_serves_engine_status_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = coss_testkit::free_port();
    let mut child = coss()
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .env("COSS_DATA_DIR", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let body = http(
        port,
        "GET /api/v1/engine/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let json: serde_json::Value =
        serde_json::from_str(body.split("\r\n\r\n").nth(1).unwrap()).unwrap();
    // The wallets listed the local chain's assets (ETH, COSS, tUSD) in the engine with their
    // withdrawal minimums, the DAO set its weekly schedule, then the default configuration's
    // three markets were listed.
    assert_eq!(json["commands"], 10);
    assert_eq!(json["last_seq"], 10);
    let info = http(
        port,
        "GET /api/v3/exchangeInfo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    for symbol in ["ETHTUSD", "COSSETH", "COSSTUSD"] {
        assert!(info.contains(&format!("\"symbol\":\"{symbol}\"")), "{info}");
    }
    let assets = http(
        port,
        "GET /api/v1/wallet/assets HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        assets.starts_with("HTTP/1.1 200") && assets.contains("\"symbol\":\"TUSD\""),
        "{assets}"
    );
    // The accounts API is served from the embedded SQLite database.
    let response = sign_up_alice(port);
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    assert!(dir.path().join("coss.db").is_file());
    // The OpenAPI document and the OpenID Connect provider are served too.
    let openapi = http(
        port,
        "GET /openapi.json HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        openapi.starts_with("HTTP/1.1 200") && openapi.contains("/api/v1/api-keys"),
        "{openapi}"
    );
    let discovery = http(
        port,
        "GET /.well-known/openid-configuration HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(
        discovery.contains(&format!("\"issuer\":\"http://127.0.0.1:{port}\"")),
        "{discovery}"
    );
    let jwks = http(
        port,
        "GET /oauth2/jwks HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(jwks.contains("\"kty\":\"EC\""), "{jwks}");
    // Its verification email is delivered to the maildir in the data dir.
    let new_mail = dir.path().join("mail").join("new");
    let deadline = Instant::now() + Duration::from_secs(20);
    let message = loop {
        let found = std::fs::read_dir(&new_mail)
            .ok()
            .and_then(|mut entries| entries.next())
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap());
        if let Some(message) = found {
            break message;
        }
        assert!(
            Instant::now() < deadline,
            "no email in {}",
            new_mail.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(message.contains("To: alice@example.com"), "{message}");
    assert!(message.contains("/verify-email?token="), "{message}");
    // The server key that seals TOTP seeds and API secrets is made once, owner-only.
    let key = std::fs::metadata(dir.path().join("secret.key")).unwrap();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o777,
        0o600
    );
    // Prometheus metrics: the request counters by route, and the engine's gauges.
    let metrics = http(
        port,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(metrics.contains("coss_engine_commands 10"), "{metrics}");
    assert!(
        metrics.contains(
            "coss_http_requests_total{method=\"GET\",route=\"/api/v3/exchangeInfo\",status=\"200\"} 1"
        ),
        "{metrics}"
    );
    // HTTP/2 without TLS (prior knowledge) on the same listener: the server answers the
    // connection preface with its SETTINGS frame.
    let mut h2 = TcpStream::connect(("127.0.0.1", port)).unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .unwrap();
    let mut frame = [0u8; 9];
    h2.read_exact(&mut frame).unwrap();
    assert_eq!(frame[3], 0x04, "a SETTINGS frame: {frame:?}");
    drop(h2);
    // A WebSocket stream stays open across the shutdown request: it must not hold it up.
    let mut ws = TcpStream::connect(("127.0.0.1", port)).unwrap();
    ws.write_all(b"GET /ws/ethtusd@trade HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .unwrap();
    let mut upgrade = [0u8; 12];
    ws.read_exact(&mut upgrade).unwrap();
    assert_eq!(&upgrade, b"HTTP/1.1 101");
    // SIGTERM, as a service manager would send.
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "coss up did not stop within 30 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    drop(ws);
    let mut stderr = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .lines()
        .for_each(|l| stderr.push_str(&l.unwrap()));
    assert!(status.success(), "{stderr}");
    assert!(dir.path().join("journal").is_dir());
}

#[test]
fn unknown_arguments_fail_with_a_non_zero_exit() {
    let output = coss()
        .args(["bench", "engine", "--commands", "many"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(!stderr_of(&output).is_empty());
}

fn psql(sql: &str) {
    let status = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "test",
            "-q",
            "-c",
            sql,
        ])
        .status()
        .unwrap();
    assert!(status.success(), "psql {sql}");
}

/// One HTTP/1.1 request to `coss up`, retried until it listens; the whole response.
pub(crate) fn http(port: u16, request: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            stream.write_all(request.as_bytes()).unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            return response;
        }
        assert!(Instant::now() < deadline, "coss up did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Signs alice up through the accounts API; the whole response.
fn sign_up_alice(port: u16) -> String {
    let body = r#"{"email":"alice@example.com","password":"correct horse battery"}"#;
    http(
        port,
        &format!(
            "POST /api/v1/auth/signup HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
}

#[test]
fn up_keeps_accounts_in_postgres_when_given_a_database_url() {
    let name = format!("coss_up_{}", std::process::id());
    psql(&format!("DROP DATABASE IF EXISTS {name}"));
    psql(&format!("CREATE DATABASE {name}"));
    let dir = tempfile::tempdir().unwrap();
    let port = coss_testkit::free_port();
    let mut child = coss()
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .env("COSS_DATA_DIR", dir.path())
        .env(
            "COSS_DATABASE_URL",
            format!("postgres://postgres@127.0.0.1:5432/{name}"),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let response = sign_up_alice(port);
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    let output = std::process::Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            &name,
            "-tA",
            "-c",
            "SELECT email FROM users",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "alice@example.com"
    );
    assert!(
        !dir.path().join("coss.db").exists(),
        "no SQLite file when PostgreSQL is used"
    );
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    psql(&format!("DROP DATABASE {name} WITH (FORCE)"));
}

#[test]
fn sso_add_client_registers_an_app_and_prints_its_secret_once() {
    let dir = tempfile::tempdir().unwrap();
    let output = coss()
        .args([
            "sso",
            "add-client",
            "--name",
            "Partner App",
            "--redirect-uri",
            "https://partner.example/cb",
        ])
        .env("COSS_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(json["client_id"].as_str().unwrap().len(), 32);
    assert_eq!(json["client_secret"].as_str().unwrap().len(), 64);
    let public = coss()
        .args([
            "sso",
            "add-client",
            "--name",
            "Wallet",
            "--redirect-uri",
            "http://127.0.0.1:5000/cb",
            "--public",
            "--first-party",
        ])
        .env("COSS_DATA_DIR", dir.path())
        .output()
        .unwrap();
    let json: serde_json::Value = serde_json::from_slice(&public.stdout).unwrap();
    assert!(json["client_secret"].is_null());
    let refused = coss()
        .args([
            "sso",
            "add-client",
            "--name",
            "Evil",
            "--redirect-uri",
            "http://evil.example/cb",
        ])
        .env("COSS_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(
        stderr_of(&refused).contains("must use https"),
        "{}",
        stderr_of(&refused)
    );
    let rotated = coss()
        .args(["sso", "rotate-keys"])
        .env("COSS_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{}", stderr_of(&rotated));
}

#[test]
fn bench_auth_prints_signature_and_login_rates_with_their_peers() {
    let output = coss()
        .args([
            "bench",
            "auth",
            "--json",
            "--signatures",
            "50",
            "--logins",
            "1",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for figure in [
        "signed_requests_per_s",
        "bare_hmac_sha256_verifications_per_s",
        "logins_per_s",
        "bare_argon2id_verifications_per_s",
    ] {
        assert!(json[figure].as_f64().unwrap() > 0.0, "{figure}: {json}");
    }
    assert_eq!(json["argon2id"]["memory_kib"], 19 * 1024);
}

#[test]
fn bench_gateway_prints_invoice_rates_against_orders_and_detection_latency() {
    let output = coss()
        .args([
            "bench",
            "gateway",
            "--json",
            "--seconds",
            "1",
            "--connections",
            "4",
            "--samples",
            "3",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for phase in ["invoices", "peer_signed_orders"] {
        assert!(
            json[phase]["requests"].as_u64().unwrap() > 0,
            "{phase}: {json}"
        );
        assert_eq!(json[phase]["errors"], 0, "{phase}: {json}");
    }
    assert!(json["invoices_vs_orders"].as_f64().unwrap() > 0.0, "{json}");
    let detection = &json["payment_detection"];
    assert_eq!(detection["samples"], 3, "{json}");
    assert!(detection["p99_ms"].as_f64().unwrap() > 0.0, "{json}");
    assert_eq!(detection["gas"]["payer_eth_transfer"], 21_000, "{json}");
    assert!(
        detection["gas"]["sweep_token_per_invoice_address"]
            .as_u64()
            .unwrap()
            > 21_000
    );
}

#[test]
fn bench_api_prints_order_rates_against_both_peers_and_the_fan_out() {
    let output = coss()
        .args([
            "bench",
            "api",
            "--json",
            "--seconds",
            "1",
            "--connections",
            "4",
            "--subscribers",
            "5",
        ])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    for phase in ["signed_orders", "peer_ping", "peer_signed_order_test"] {
        assert!(
            json[phase]["requests"].as_u64().unwrap() > 0,
            "{phase}: {json}"
        );
        assert_eq!(json[phase]["errors"], 0, "{phase}: {json}");
        assert!(
            json[phase]["p99_ms"].as_f64().unwrap() > 0.0,
            "{phase}: {json}"
        );
    }
    for ratio in ["orders_vs_ping", "orders_vs_order_test"] {
        assert!(json[ratio].as_f64().unwrap() > 0.0, "{ratio}: {json}");
    }
    assert_eq!(json["target_orders_per_second"], 50_000);
    assert!(
        json["depth_fan_out"]["messages"].as_u64().unwrap() > 0,
        "{json}"
    );
    // Every order the engine took reached the history.
    let placed = json["signed_orders"]["requests"].as_u64().unwrap();
    assert!(
        json["history"]["orders"].as_u64().unwrap() >= placed,
        "{json}"
    );
}

/// `coss admin …` as an operator runs it on the server: the first superadmin once, the audit
/// log checked (and a changed or cut entry found), a service key for another machine.
#[test]
fn admin_bootstrap_audit_verify_and_keygen_work_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bootstrap = |email: &str| {
        let mut child = coss()
            .args(["admin", "bootstrap", "--email", email, "--data-dir"])
            .arg(&data)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"a long operator passphrase\n")
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let first = bootstrap("root@coss.example");
    assert!(first.status.success(), "{}", stderr_of(&first));
    let printed: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(printed["role"], "superadmin");
    assert!(
        printed["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    assert_eq!(printed["totp_secret"].as_str().unwrap().len(), 32);
    let second = bootstrap("other@coss.example");
    assert!(!second.status.success());
    assert!(
        stderr_of(&second).contains("already_bootstrapped"),
        "{}",
        stderr_of(&second)
    );

    let verify = || {
        coss()
            .args(["admin", "audit", "verify", "--json", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap()
    };
    let intact = verify();
    assert!(intact.status.success(), "{}", stderr_of(&intact));
    let verdict: serde_json::Value = serde_json::from_slice(&intact.stdout).unwrap();
    assert_eq!(
        (verdict["entries"].as_i64(), &verdict["problem"]),
        (Some(1), &serde_json::Value::Null)
    );

    // Changed, then removed: found, and the exit code says so.
    let sql = |statement: &str| {
        let done = std::process::Command::new("python3")
            .arg("-c")
            .arg(format!(
                "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute(\"{statement}\"); c.commit()"
            ))
            .arg(data.join("coss.db"))
            .status()
            .unwrap();
        assert!(done.success());
    };
    sql("UPDATE admin_audit SET detail = '{}' WHERE seq = 1");
    let changed = verify();
    assert!(!changed.status.success());
    let verdict: serde_json::Value = serde_json::from_slice(&changed.stdout).unwrap();
    assert_eq!(verdict["problem"], "entry 1 was changed");
    sql("DELETE FROM admin_audit");
    let cut = verify();
    assert!(!cut.status.success());
    let verdict: serde_json::Value = serde_json::from_slice(&cut.stdout).unwrap();
    assert!(
        verdict["problem"]
            .as_str()
            .unwrap()
            .contains("entries removed from the end"),
        "{verdict}"
    );

    let key = dir.path().join("console.key");
    let made = coss()
        .args(["admin", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr_of(&made));
    let printed: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(printed["service_public_key"].as_str().unwrap().len(), 44);
    let again = coss()
        .args(["admin", "keygen", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(!again.status.success(), "a key is never overwritten");
}
