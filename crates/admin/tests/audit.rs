//! The audit log's hash chain on SQLite and PostgreSQL: writers racing for the next position
//! all land, in one gap-free chain; and `verify` names the first entry that was changed,
//! removed, moved, or cut from the end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_admin::audit::{append, verify};
use coss_store::{NewAuditRecord, Store};

fn entry(n: usize) -> NewAuditRecord {
    NewAuditRecord {
        at: 1_700_000_000_000 + n as i64,
        operator_id: Some(1),
        operator_email: "root@coss.example".into(),
        operation: "users.lock".into(),
        target: format!("user:{n}"),
        outcome: "ok".into(),
        detail: format!("{{\"n\":{n}}}"),
        client_ip: "127.0.0.1".into(),
    }
}

async fn execute(url: &str, sql: &str) {
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
}

async fn check(store: Store, url: &str) {
    // Eight writers racing: every entry lands, the chain stays whole.
    let mut writers = Vec::new();
    for w in 0..8 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..5 {
                append(&store, entry(w * 10 + i)).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let whole = verify(&store, None).await.unwrap();
    assert_eq!(whole.entries, 40);
    assert!(whole.intact(), "{whole:?}");
    let head = Some((40, whole.head.clone()));
    assert!(verify(&store, head.clone()).await.unwrap().intact());

    // Changed.
    let original: Vec<_> = store.audit_entries(0, 100).await.unwrap();
    execute(
        url,
        "UPDATE admin_audit SET detail = '{\"n\":999}' WHERE seq = 7",
    )
    .await;
    let verdict = verify(&store, head.clone()).await.unwrap();
    assert_eq!(verdict.problem.as_deref(), Some("entry 7 was changed"));
    assert_eq!(verdict.entries, 6);
    let detail = &original[6].entry.detail;
    execute(
        url,
        &format!("UPDATE admin_audit SET detail = '{detail}' WHERE seq = 7"),
    )
    .await;
    assert!(verify(&store, head.clone()).await.unwrap().intact());

    // Moved: entries 10 and 11 swap places (each with its own hashes).
    execute(url, "UPDATE admin_audit SET seq = -10 WHERE seq = 10").await;
    execute(url, "UPDATE admin_audit SET seq = 10 WHERE seq = 11").await;
    execute(url, "UPDATE admin_audit SET seq = 11 WHERE seq = -10").await;
    let verdict = verify(&store, head.clone()).await.unwrap();
    assert_eq!(
        verdict.problem.as_deref(),
        Some("entry 10 does not follow entry 9 (removed or reordered)")
    );
    execute(url, "UPDATE admin_audit SET seq = -10 WHERE seq = 10").await;
    execute(url, "UPDATE admin_audit SET seq = 10 WHERE seq = 11").await;
    execute(url, "UPDATE admin_audit SET seq = 11 WHERE seq = -10").await;
    assert!(verify(&store, head.clone()).await.unwrap().intact());

    // Removed from the middle.
    execute(url, "DELETE FROM admin_audit WHERE seq = 20").await;
    let verdict = verify(&store, head.clone()).await.unwrap();
    assert_eq!(
        verdict.problem.as_deref(),
        Some("entry 20 is missing (found 21 next)")
    );

    // Cut from the end: only the recorded head can tell.
    execute(url, "DELETE FROM admin_audit WHERE seq >= 20").await;
    assert!(verify(&store, None).await.unwrap().intact());
    let verdict = verify(&store, head).await.unwrap();
    assert_eq!(
        verdict.problem.as_deref(),
        Some("the log ends at entry 19, but entry 40 was written (entries removed from the end)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_holds_under_racing_writers_and_exposes_tampering_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let url = format!("sqlite:{}", dir.path().join("coss.db").display());
    check(store, &url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_holds_under_racing_writers_and_exposes_tampering_on_postgres() {
    let scratch = coss_testkit::scratch_postgres("audit").await;
    let url = scratch.url().to_owned();
    let store = Store::open(&url).await.unwrap();
    check(store.clone(), &url).await;
    store.close().await;
    scratch.drop_now().await.unwrap();
}
