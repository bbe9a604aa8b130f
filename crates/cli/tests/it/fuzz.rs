//! Issue 20, item 11: a schema-driven fuzzer (schemathesis, pinned in
//! `tests/fuzz/requirements.txt`) against both OpenAPI documents of a real `coss up`, bounded
//! in time: no answer may be a server error, and every status must be one the document lists.
//! COSS's own API is fuzzed twice: as nobody, and signed in (a user made through the API);
//! the Binance-compatible one as nobody (its signed routes answer 401 to unsigned calls).

use std::path::PathBuf;
use std::process::Command;

/// Seconds of fuzzing per run (three runs).
const BUDGET_SECS: &str = "35";

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
    let (_server, port) = crate::up(&dir.path().join("data"), &dir.path().join("up.log"));
    let access = crate::wallet::signed_in_alice(port, &dir.path().join("data"));
    let signed_in = format!("Authorization: Bearer {access}");
    let runs = [
        ("/openapi.json", None),
        ("/openapi.json", Some(signed_in.as_str())),
        ("/api/v3/openapi.json", None),
    ];
    for (run, (document, header)) in runs.into_iter().enumerate() {
        let report = dir.path().join(format!("run-{run}.json"));
        let mut command = Command::new(&schemathesis);
        command
            .arg("run")
            .arg(format!("http://127.0.0.1:{port}{document}"));
        if let Some(header) = header {
            // Signing out or changing the password would end the session mid-run.
            command.args([
                "-H",
                header,
                "--exclude-path",
                "/api/v1/auth/logout",
                "--exclude-path",
                "/api/v1/auth/password",
            ]);
        }
        let output = command
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
                "--report",
                "json",
                "--report-json-path",
            ])
            .arg(&report)
            .current_dir(dir.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let fail = |why: &str| -> ! {
            panic!(
                "{why} in {document} (signed in: {})\n{stdout}\n{}\n--- server log (last lines)\n{}",
                header.is_some(),
                String::from_utf8_lossy(&output.stderr),
                crate::last_lines(&dir.path().join("up.log"), 30)
            );
        };
        let Ok(text) = std::fs::read_to_string(&report) else {
            fail("schemathesis wrote no report");
        };
        let report: serde_json::Value = serde_json::from_str(&text).unwrap();
        if report["failures"].as_array().is_none_or(|f| !f.is_empty()) {
            fail("schemathesis found failures");
        }
        // Schemathesis's own errors (an exception inside its generator, now and then) are not
        // the server's; a connection refused or a request timing out is.
        for error in report["errors"].as_array().into_iter().flatten() {
            let error = error.to_string();
            if error.contains("onnection") || error.contains("imeout") {
                fail("the server stopped answering");
            }
            eprintln!("schemathesis's own error, not the server's: {error:.300}");
        }
        let generated = report["test_cases"]["generated"].as_u64().unwrap_or(0);
        if generated < 500 {
            fail("too few test cases to mean anything");
        }
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "coss up is gone"
        );
    }
}
