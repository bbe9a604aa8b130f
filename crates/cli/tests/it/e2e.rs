//! The end-to-end test: a real `coss up` (local anvil, SQLite, maildir) driven by
//! `tests/e2e/newcomer_ccxt.py`: two newcomers sign up, verify, make API keys and deposit on
//! chain; an unmodified CCXT `binance` client loads the markets, trades, reads balances and
//! trades, and follows the depth stream with ccxt.pro to a consistent book; one withdraws.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn a_newcomer_and_an_unmodified_ccxt_client_trade_on_a_running_coss() {
    let python = repo().join("tests/e2e/.venv/bin/python");
    assert!(
        python.is_file(),
        "{} is missing: `make tests/e2e/.venv/ok` installs the pinned CCXT (make test does)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let (mut server, port) = crate::up(dir.path(), &dir.path().join("up.log"));
    let output = Command::new(&python)
        .arg(repo().join("tests/e2e/newcomer_ccxt.py"))
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    // SIGTERM: a clean stop, which also stops the embedded anvil.
    let _ = Command::new("kill")
        .args(["-TERM", &server.0.id().to_string()])
        .status();
    let stopped = server.0.wait().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        panic!(
            "the end-to-end script failed\n--- stdout\n{stdout}\n--- stderr\n{stderr}\n--- server log (last lines)\n{}",
            crate::last_lines(&dir.path().join("up.log"), 40)
        );
    }
    assert!(stdout.contains("OK: every step held"), "{stdout}");
    assert!(stopped.success(), "coss up stops cleanly on SIGTERM");
}
