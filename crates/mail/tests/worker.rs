//! The outbox worker against real deliveries: a maildir on disk, and a real SMTP server on
//! loopback (Python's standard `smtpd` debugging server, which prints what it receives).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_mail::{Delivery, MailError, Mailer, TEMPLATES, render, retry_after};
use coss_store::{EmailToken, Mail, Purpose, Store};
use std::time::Duration;

const T0: i64 = 1_700_000_000_000;

async fn store_with_mail(dir: &std::path::Path, recipients: &[&str]) -> Store {
    let store = Store::open_in(dir).await.unwrap();
    for (i, to) in recipients.iter().enumerate() {
        let token = EmailToken {
            hash: vec![i as u8; 32],
            purpose: Purpose::VerifyEmail,
            expires_at: T0 + 1,
        };
        let mail = Mail {
            recipient: (*to).to_owned(),
            template: "verify_email".into(),
            payload: format!(r#"{{"token":"tok{i}<&>"}}"#),
        };
        store.create_user(to, "h", T0, &token, &mail).await.unwrap();
    }
    store
}

#[test]
fn every_template_renders_text_and_escaped_html() {
    let payload = r#"{"token":"t<1>","device":"Firefox","time":"12:00","change":"enabled","amount":"1.5","asset":"ETH","address":"0xabc","tx":"0xdef","week":"2026-W48","summary":"3 COSS","merchant":"Cafe <b>"}"#;
    for template in TEMPLATES {
        let r = render(template, payload, "https://coss.example/").unwrap();
        assert!(!r.subject.is_empty(), "{template}");
        assert!(r.text.contains("COSS"), "{template}");
        assert!(r.html.starts_with("<!doctype html>"), "{template}");
        assert!(!r.html.contains("t<1>"), "{template}: unescaped");
    }
    let r = render("verify_email", r#"{"token":"abc"}"#, "https://coss.example").unwrap();
    assert!(
        r.text
            .contains("https://coss.example/verify-email?token=abc"),
        "{}",
        r.text
    );
    assert!(matches!(
        render("nope", "{}", "x"),
        Err(MailError::Template(..))
    ));
    assert!(matches!(
        render("deposit_credited", r#"{"amount":"1"}"#, "x"),
        Err(MailError::Template(..))
    ));
    assert!(matches!(
        render("verify_email", "not json", "x"),
        Err(MailError::Template(..))
    ));
}

#[test]
fn backoff_doubles_from_30_seconds_up_to_an_hour() {
    assert_eq!(
        (retry_after(0), retry_after(1), retry_after(2)),
        (30_000, 60_000, 120_000)
    );
    assert_eq!(retry_after(7), 3_600_000);
    assert_eq!(retry_after(1_000), 3_600_000);
}

#[tokio::test]
async fn the_maildir_gets_each_message_once_named_by_its_outbox_id() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_mail(dir.path(), &["a@example.com", "b@example.com"]).await;
    let maildir = dir.path().join("mail");
    let mailer = Mailer::new(
        store.clone(),
        Delivery::Maildir(maildir.clone()),
        "COSS <no-reply@coss.example>",
        "https://coss.example",
    )
    .unwrap();
    assert_eq!(mailer.run_once(T0, 10).await.unwrap(), 2);
    assert_eq!(
        mailer.run_once(T0 + 1, 10).await.unwrap(),
        0,
        "nothing is sent twice"
    );
    let mut files: Vec<_> = std::fs::read_dir(maildir.join("new"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2);
    let first = std::fs::read_to_string(&files[0]).unwrap();
    assert!(first.contains("To: a@example.com"), "{first}");
    assert!(
        first.contains("Subject: Confirm your COSS email address"),
        "{first}"
    );
    assert!(
        first.contains(&format!("Message-ID: {}", mailer.message_id(1))),
        "{first}"
    );
    assert!(
        first.contains("text/plain") && first.contains("text/html"),
        "{first}"
    );
    assert!(store.due_mail(i64::MAX, 10).await.unwrap().is_empty());
    // Messages carry sign-in links and reset tokens: only the owner reads them.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for sub in ["", "tmp", "new", "cur"] {
            assert_eq!(mode(&maildir.join(sub)), 0o700, "{sub}/");
        }
        assert_eq!(mode(&files[0]), 0o600);
    }
}

/// A real SMTP server on loopback; killed on drop.
struct SmtpServer {
    child: tokio::process::Child,
}

impl SmtpServer {
    async fn start(port: u16) -> Self {
        let child = tokio::process::Command::new("python3")
            .args([
                "-u",
                "-W",
                "ignore",
                "-m",
                "smtpd",
                "-n",
                "-c",
                "DebuggingServer",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Self { child };
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the SMTP server did not start");
    }

    /// What the server printed up to the end of the first message it received (its debugging
    /// server prints each message between two marker lines); then stops the server.
    async fn received(mut self) -> String {
        use tokio::io::AsyncBufReadExt;
        let stdout = self.child.stdout.take().unwrap();
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        let mut out = String::new();
        let read = async {
            while let Some(line) = lines.next_line().await.unwrap() {
                out.push_str(&line);
                out.push('\n');
                if line.contains("END MESSAGE") {
                    return;
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("the SMTP server printed no whole message");
        self.child.start_kill().unwrap();
        out
    }
}

#[tokio::test]
async fn smtp_delivers_to_a_real_server_and_a_failure_is_retried_with_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = store_with_mail(dir.path(), &["alice@example.com"]).await;
    let port = coss_testkit::free_port();
    let delivery = Delivery::smtp(&format!("smtp://127.0.0.1:{port}")).unwrap();
    let mailer = Mailer::new(
        store.clone(),
        delivery,
        "COSS <no-reply@coss.example>",
        "https://coss.example",
    )
    .unwrap();

    // No server yet: the attempt fails and is rescheduled 30 s later.
    assert_eq!(mailer.run_once(T0, 10).await.unwrap(), 0);
    assert!(store.due_mail(T0 + 29_999, 10).await.unwrap().is_empty());
    let waiting = store.due_mail(T0 + 30_000, 10).await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].attempts, 1);

    let server = SmtpServer::start(port).await;
    assert_eq!(mailer.run_once(T0 + 30_000, 10).await.unwrap(), 1);
    assert_eq!(
        mailer.run_once(T0 + 90_000, 10).await.unwrap(),
        0,
        "delivered once"
    );
    let received = server.received().await;
    assert!(
        received.contains("Subject: Confirm your COSS email address"),
        "{received}"
    );
    assert!(received.contains(&mailer.message_id(1)), "{received}");
    assert!(received.contains("alice@example.com"), "{received}");
}
