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
