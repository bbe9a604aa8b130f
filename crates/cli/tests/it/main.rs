//! The `coss` binary as a user runs it: real processes, real files, real signals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain;
mod commands;
mod crash;
mod e2e;
mod fuzz;
mod nginx;
mod tls;
mod wallet;
mod web;

use std::path::Path;
use std::process::{Command, Output};

pub fn coss() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coss"));
    command
        .env_remove("COSS_DATA_DIR")
        .env_remove("COSS_LISTEN")
        .env_remove("COSS_DATABASE_URL")
        .env_remove("COSS_SMTP_URL")
        .env_remove("COSS_SECRET_KEY_FILE")
        .env_remove("COSS_CONFIG")
        // Tests run many platforms at once: each its own internal API port.
        .env("COSS_ADMIN_LISTEN", "127.0.0.1:0")
        .env_remove("COSS_WEB_DIR")
        .env_remove("COSS_TLS_CERT")
        .env_remove("COSS_TLS_KEY")
        .env_remove("COSS_WEIGHT_PER_MINUTE")
        .env_remove("COSS_ORDERS_PER_10S")
        .env_remove("COSS_ORDERS_PER_DAY");
    command
}

/// A server process that is stopped when the test ends, even by a panic: SIGTERM (so it stops
/// its anvil too), then SIGKILL if it has not exited within 10 s.
#[derive(Debug)]
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `coss up` on a free loopback port with its data in `data_dir` and its log in `log`,
/// once it accepts connections (within two minutes: the first start deploys the local chain).
pub fn up(data_dir: &Path, log: &Path) -> (Running, u16) {
    up_with(data_dir, log, |_| {})
}

/// [`up`] with the command changed by `edit` (more arguments, environment).
pub fn up_with(data_dir: &Path, log: &Path, edit: impl FnOnce(&mut Command)) -> (Running, u16) {
    let port = coss_testkit::free_port();
    let mut command = coss();
    command.args(["up", "--listen", &format!("127.0.0.1:{port}")]);
    edit(&mut command);
    let server = Running(
        command
            .env("COSS_DATA_DIR", data_dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::from(
                std::fs::File::create(log).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "coss up did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    (server, port)
}

/// A self-signed P-256 certificate for `localhost` and 127.0.0.1, made with the `openssl`
/// command: `(cert.pem, key.pem)` in `dir`.
pub fn self_signed_certificate(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "openssl: {}", stderr_of(&made));
    (cert, key)
}

pub fn verify_json(dir: &Path) -> serde_json::Value {
    let output = coss()
        .args(["journal", "verify", "--json", "--data-dir"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "verify failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

/// The last `n` lines of a log file (empty if there is none), for a failure's message.
pub fn last_lines(log: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(n).collect();
    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
}

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
