//! The wallets inside a running `coss up` on its local anvil: a user deposits ETH, and the
//! process is killed (aborted) right after it signed and stored a withdrawal, before the
//! broadcast; the restarted process adopts the still-running node, sends the stored
//! transaction and settles it: the coins leave exactly once.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::providers::{Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;

use crate::commands::http;
use crate::coss;

fn start(dir: &std::path::Path, port: u16, crash_after_sign: bool) -> Child {
    let mut command = coss();
    command
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .env("COSS_DATA_DIR", dir)
        .stdout(Stdio::null())
        // A file, not a pipe nobody drains while the server logs.
        .stderr(Stdio::from(
            std::fs::File::options()
                .create(true)
                .append(true)
                .open(dir.join("up.log"))
                .unwrap(),
        ));
    if crash_after_sign {
        command.env("COSS_WALLET_CRASH_AFTER_SIGN", "1");
    }
    command.spawn().unwrap()
}

/// One JSON request; (status, body).
fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    let body = body.unwrap_or("");
    let response = http(
        port,
        &format!(
            "{method} {path} HTTP/1.1\r\nHost: x\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    let status = response[9..12].parse().unwrap();
    let json =
        serde_json::from_str(response.split("\r\n\r\n").nth(1).unwrap_or("")).unwrap_or_default();
    (status, json)
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Alice signs up through the API of the `coss up` on `port` (its data in `data_dir`),
/// verifies with the link in her email and signs in as an app: her access token.
pub(crate) fn signed_in_alice(port: u16, data_dir: &std::path::Path) -> String {
    let (status, _) = call(
        port,
        "POST",
        "/api/v1/auth/signup",
        None,
        Some(r#"{"email":"alice@example.com","password":"correct horse battery"}"#),
    );
    assert_eq!(status, 202);
    let new_mail = data_dir.join("mail").join("new");
    let mut token = String::new();
    wait_for("the verification email", || {
        let Some(entry) = std::fs::read_dir(&new_mail).ok().and_then(|mut e| e.next()) else {
            return false;
        };
        let message = std::fs::read_to_string(entry.unwrap().path())
            .unwrap()
            // Undo quoted-printable: soft line breaks and the encoded '='.
            .replace("=\r\n", "")
            .replace("=\n", "")
            .replace("=3D", "=");
        token = message
            .split("token=")
            .nth(1)
            .unwrap()
            .chars()
            .take_while(char::is_ascii_alphanumeric)
            .collect();
        true
    });
    let (status, _) = call(
        port,
        "POST",
        "/api/v1/auth/verify-email",
        None,
        Some(&format!(r#"{{"token":"{token}"}}"#)),
    );
    assert_eq!(status, 200);
    let (status, login) = call(
        port,
        "POST",
        "/api/v1/auth/login",
        None,
        Some(r#"{"email":"alice@example.com","password":"correct horse battery"}"#),
    );
    assert_eq!(status, 200, "{login}");
    login["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_survives_a_kill_between_signing_and_broadcast_and_is_sent_once() {
    let dir = tempfile::tempdir().unwrap();
    let port = coss_testkit::free_port();
    let mut first = start(dir.path(), port, true);

    // Alice signs up, verifies, logs in, turns on TOTP.
    let access = signed_in_alice(port, dir.path());
    let (_, enrolment) = call(
        port,
        "POST",
        "/api/v1/auth/2fa/totp",
        Some(&access),
        Some(r#"{"password":"correct horse battery"}"#),
    );
    let seed = enrolment["secret"].as_str().unwrap().to_owned();
    let now = coss_clock::Clock::system().now().as_i64();
    let code = coss_identity::totp_code(&seed, now).unwrap();
    let (status, _) = call(
        port,
        "POST",
        "/api/v1/auth/2fa/totp/confirm",
        Some(&access),
        Some(&format!(r#"{{"code":"{code}"}}"#)),
    );
    assert_eq!(status, 200);

    // A deposit from anvil's development account, over the node's IPC socket.
    let (_, address) = call(
        port,
        "GET",
        "/api/v1/wallet/deposit-address",
        Some(&access),
        None,
    );
    let deposit: Address = address["address"].as_str().unwrap().parse().unwrap();
    let ipc = dir
        .path()
        .join("chain")
        .join("anvil.ipc")
        .display()
        .to_string();
    let node = ProviderBuilder::new().connect(&ipc).await.unwrap();
    let dev = node.get_accounts().await.unwrap()[0];
    let tx = TransactionRequest::default()
        .with_from(dev)
        .with_to(deposit)
        .with_value(U256::from(2u128 * 10u128.pow(18)));
    node.send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    wait_for("the deposit's credit", || {
        let (_, balances) = call(port, "GET", "/api/v1/wallet/balances", Some(&access), None);
        balances[0]["available"] == "2.000000000000000000"
    });

    // The withdrawal is accepted and held; the sender signs, stores, and the process dies.
    let to: Address = "0x00000000000000000000000000000000000000e1"
        .parse()
        .unwrap();
    let code = coss_identity::totp_code(&seed, now + 30_000).unwrap();
    let body = format!(
        r#"{{"asset":"ETH","address":"{}","amount":"1.5","code":"{code}"}}"#,
        to.to_checksum(None)
    );
    let (status, held) = call(
        port,
        "POST",
        "/api/v1/wallet/withdrawals",
        Some(&access),
        Some(&body),
    );
    assert_eq!(status, 201, "{held}");
    let id = held["id"].as_i64().unwrap();
    let status = first.wait().unwrap();
    assert!(!status.success(), "the fault injection aborts the process");
    let stderr = std::fs::read_to_string(dir.path().join("up.log")).unwrap();
    assert!(stderr.contains("COSS_WALLET_CRASH_AFTER_SIGN"), "{stderr}");
    assert_eq!(
        node.get_balance(to).await.unwrap(),
        U256::ZERO,
        "nothing was broadcast"
    );

    // Restarted: the stored transaction goes out once and settles.
    let port = coss_testkit::free_port();
    let mut second = start(dir.path(), port, false);
    wait_for("the withdrawal to settle", || {
        let (_, w) = call(
            port,
            "GET",
            &format!("/api/v1/wallet/withdrawals/{id}"),
            Some(&access),
            None,
        );
        w["status"] == "settled"
    });
    let (_, w) = call(
        port,
        "GET",
        &format!("/api/v1/wallet/withdrawals/{id}"),
        Some(&access),
        None,
    );
    let statuses: Vec<&str> = w["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        statuses,
        ["requested", "held", "signed", "broadcast", "settled"]
    );
    assert_eq!(
        node.get_balance(to).await.unwrap(),
        U256::from(15u128 * 10u128.pow(17))
    );
    let (_, balances) = call(port, "GET", "/api/v1/wallet/balances", Some(&access), None);
    assert_eq!(balances[0]["locked"], "0.000000000000000000");
    assert_eq!(balances[0]["available"], "0.499500000000000000");

    let pid = second.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(second.wait().unwrap().success());
}
