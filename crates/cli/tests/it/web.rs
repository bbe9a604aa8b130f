//! The web app in a real browser: `coss up --web-dir web/dist` (local anvil, SQLite, maildir)
//! and `web/tests/browser/journey.mjs`, which drives Debian's Chromium with playwright-core
//! through sign-up, verification, 2FA, test funds, a trade, a withdrawal and a bot's burst of
//! 1,000 orders (the screen must equal REST), with axe-core on every screen. `make test`
//! builds the app and installs its packages first.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_newcomer_signs_up_trades_and_withdraws_in_a_real_browser() {
    let web = repo().join("web");
    for needed in [
        "dist/index.html",
        "node_modules/playwright-core/package.json",
    ] {
        assert!(
            web.join(needed).is_file(),
            "web/{needed} is missing: `make web` builds the app (make test does)"
        );
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        std::path::Path::new(&chromium).is_file(),
        "{chromium} is missing: `apt-get install chromium` (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, port) = crate::up_with(&data, &dir.path().join("up.log"), |command| {
        command
            .arg("--web-dir")
            .arg(web.join("dist"))
            // The bot's burst of 1,000 orders runs in seconds, not at Binance's default pace.
            .env("COSS_ORDERS_PER_10S", "100000")
            .env("COSS_WEIGHT_PER_MINUTE", "1000000");
    });
    let artifacts = repo().join("target/web-artifacts");
    let output = Command::new("node")
        .arg(web.join("tests/browser/journey.mjs"))
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .arg("--artifacts")
        .arg(&artifacts)
        .args(["--chromium", &chromium])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    // `coss dev fund` beside the running platform: test funds for a newcomer by email.
    let funded = stdout
        .lines()
        .find_map(|line| line.strip_prefix("newcomer: "))
        .map(|email| {
            crate::coss()
                .args(["dev", "fund", "--email", email, "--data-dir"])
                .arg(&data)
                .output()
                .unwrap()
        });
    let stranger = crate::coss()
        .args(["dev", "fund", "--email", "nobody@example.com", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let stopped = server.0.wait().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "the browser journey failed (screenshots in {})\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log (last lines)\n{}",
            artifacts.display(),
            crate::last_lines(&dir.path().join("up.log"), 40)
        );
    }
    assert!(stdout.contains("OK: every step held"), "{stdout}");
    let funded = funded.expect("the journey names its newcomer");
    assert!(
        funded.status.success() && String::from_utf8_lossy(&funded.stdout).contains("sent 10 ETH"),
        "coss dev fund: {}",
        crate::stderr_of(&funded)
    );
    assert!(!stranger.status.success());
    assert!(
        crate::stderr_of(&stranger).contains("no account with the email nobody@example.com"),
        "{}",
        crate::stderr_of(&stranger)
    );
    assert!(stopped.success(), "coss up stops cleanly on SIGTERM");
}

/// The back office in a real browser: `coss up`, the first superadmin made with `coss admin
/// bootstrap`, the operator program `coss admin serve --web-dir web/dist-admin` beside it, and
/// `web/tests/browser/admin.mjs` in Chromium: TOTP sign-in, an invited admin's set-up, a user
/// found and locked, a large withdrawal approved by a second operator after the first submitted
/// it, a market listed by four eyes, and the audit log showing all of it.
#[test]
fn operators_lock_a_user_approve_a_withdrawal_and_list_a_market_in_a_real_browser() {
    use std::io::Write;
    let web = repo().join("web");
    for needed in [
        "dist-admin/index.html",
        "node_modules/playwright-core/package.json",
    ] {
        assert!(
            web.join(needed).is_file(),
            "web/{needed} is missing: `make web` builds the app (make test does)"
        );
    }
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let internal = coss_testkit::free_port();
    let (mut server, port) = crate::up_with(&data, &dir.path().join("up.log"), |command| {
        command.args(["--admin-listen", &format!("127.0.0.1:{internal}")]);
    });
    // Open (not just listening): the service key and the migrated database exist.
    let status = crate::commands::http(
        port,
        "GET /api/v1/engine/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let mut bootstrap = crate::coss()
        .args([
            "admin",
            "bootstrap",
            "--email",
            "root@coss.example",
            "--data-dir",
        ])
        .arg(&data)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    bootstrap
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long operator passphrase\n")
        .unwrap();
    let made = bootstrap.wait_with_output().unwrap();
    assert!(made.status.success(), "{}", crate::stderr_of(&made));
    let root: serde_json::Value = serde_json::from_slice(&made.stdout).unwrap();
    let console_port = coss_testkit::free_port();
    let console_log = dir.path().join("console.log");
    let console = crate::Running(
        crate::coss()
            .args([
                "admin",
                "serve",
                "--listen",
                &format!("127.0.0.1:{console_port}"),
            ])
            .args(["--internal-url", &format!("http://127.0.0.1:{internal}")])
            .arg("--data-dir")
            .arg(&data)
            .arg("--web-dir")
            .arg(web.join("dist-admin"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&console_log).unwrap())
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", console_port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "coss admin serve did not start: {}",
            crate::last_lines(&console_log, 20)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let artifacts = repo().join("target/web-artifacts");
    let output = Command::new("node")
        .arg(web.join("tests/browser/admin.mjs"))
        .args(["--console", &format!("http://127.0.0.1:{console_port}")])
        .args(["--platform", &format!("http://127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .args(["--root-email", "root@coss.example"])
        .args(["--root-secret", root["totp_secret"].as_str().unwrap()])
        .arg("--artifacts")
        .arg(&artifacts)
        .args(["--chromium", &chromium])
        .output()
        .unwrap();
    drop(console);
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let stopped = server.0.wait().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "the back office journey failed (screenshots in {})\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log (last lines)\n{}\n--- console log\n{}",
            artifacts.display(),
            crate::last_lines(&dir.path().join("up.log"), 40),
            crate::last_lines(&console_log, 20)
        );
    }
    assert!(stdout.contains("OK: every step held"), "{stdout}");
    assert!(stopped.success(), "coss up stops cleanly on SIGTERM");
    // The operators' actions are in the chain, and it verifies from the command line.
    let verified = crate::coss()
        .args(["admin", "audit", "verify", "--json", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(verified.status.success(), "{}", crate::stderr_of(&verified));
}
