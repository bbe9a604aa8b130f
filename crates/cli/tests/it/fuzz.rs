//! Issue 20, item 11: a schema-driven fuzzer (schemathesis, pinned in
//! `tests/fuzz/requirements.txt`) against both OpenAPI documents of a real `coss up`, bounded
//! in time: no answer may be a server error, and every status must be one the document lists.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{Running, coss};

/// Seconds of fuzzing per document.
const BUDGET_SECS: &str = "45";

#[test]
fn a_schema_driven_fuzzer_finds_no_server_error_and_no_undocumented_status() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let schemathesis = repo.join("tests/fuzz/.venv/bin/schemathesis");
    assert!(
        schemathesis.is_file(),
        "{} is missing: `make tests/fuzz/.venv/ok` installs the pinned schemathesis (make test does)",
        schemathesis.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let port = coss_testkit::free_port();
    let log = std::fs::File::create(dir.path().join("up.log")).unwrap();
    let _server = Running(
        coss()
            .args(["up", "--listen", &format!("127.0.0.1:{port}")])
            .env("COSS_DATA_DIR", dir.path().join("data"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "coss up did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    for document in ["/openapi.json", "/api/v3/openapi.json"] {
        let output = Command::new(&schemathesis)
            .arg("run")
            .arg(format!("http://127.0.0.1:{port}{document}"))
            .args([
                "--checks",
                "not_a_server_error,status_code_conformance",
                "--max-time",
                BUDGET_SECS,
                "--seed",
                "20",
                "--no-shrink",
                "--workers",
                "2",
                "--request-timeout",
                "30",
                "--warnings",
                "off",
            ])
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let server = std::fs::read_to_string(dir.path().join("up.log")).unwrap_or_default();
            let tail: Vec<&str> = server.lines().rev().take(30).collect();
            panic!(
                "schemathesis found failures in {document}\n{stdout}\n{}\n--- server log (last lines)\n{}",
                String::from_utf8_lossy(&output.stderr),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        assert!(stdout.contains("Tested:"), "{stdout}");
    }
}
