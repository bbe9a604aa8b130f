use crate::{coss, verify_json};
use std::io::{BufRead, BufReader};
use std::process::Stdio;

/// Runs `coss engine feed` and returns the last acknowledged index, killing the process with
/// SIGKILL after `kill_after` acknowledgements (or letting it finish).
fn feed(dir: &std::path::Path, kill_after: Option<usize>) -> u64 {
    let mut child = coss()
        .args([
            "engine",
            "feed",
            "--commands",
            "30000",
            "--batch",
            "32",
            "--snapshot-every",
            "3000",
            "--data-dir",
        ])
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut last_acked = 0;
    for (n, line) in BufReader::new(stdout).lines().enumerate() {
        let line = line.unwrap();
        last_acked = line.strip_prefix("acked ").unwrap().parse().unwrap();
        if kill_after == Some(n + 1) {
            // SIGKILL: no chance to flush or clean up, like a power cut for the process.
            child.kill().unwrap();
            break;
        }
    }
    let status = child.wait().unwrap();
    if kill_after.is_none() {
        assert!(status.success());
    }
    last_acked
}

#[test]
fn no_acknowledged_command_is_lost_when_the_engine_is_killed_mid_write() {
    let crashed = tempfile::tempdir().unwrap();
    let mut acked = 0;
    // Kill it three times at different points, restarting each time from what survived.
    for kill_after in [40, 150, 300] {
        acked = feed(crashed.path(), Some(kill_after));
        let verified = verify_json(crashed.path());
        let survived = verified["commands"].as_u64().unwrap();
        assert!(
            survived >= acked,
            "acknowledged {acked} but only {survived} survived"
        );
    }
    assert!(acked > 0);
    // Let it finish; the end state matches a run that never crashed.
    feed(crashed.path(), None);
    let calm = tempfile::tempdir().unwrap();
    feed(calm.path(), None);
    let (a, b) = (verify_json(crashed.path()), verify_json(calm.path()));
    assert_eq!(a["commands"], b["commands"]);
    assert_eq!(
        a["last_seq"], b["last_seq"],
        "the same commands must produce the same events"
    );
    assert!(a["snapshots_checked"].as_u64().unwrap() >= 1);
}
