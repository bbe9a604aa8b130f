//! The `coss` binary as a user runs it: real processes, real files, real signals.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod chain;
mod commands;
mod crash;
mod e2e;
mod tls;
mod wallet;

use std::path::Path;
use std::process::{Command, Output};

pub fn coss() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_coss"));
    command
        .env_remove("COSS_DATA_DIR")
        .env_remove("COSS_LISTEN")
        .env_remove("COSS_DATABASE_URL")
        .env_remove("COSS_SMTP_URL")
        .env_remove("COSS_SECRET_KEY_FILE");
    command
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

pub fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
