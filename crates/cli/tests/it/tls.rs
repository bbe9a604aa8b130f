//! HTTPS and plain HTTP on one listener: `coss up` with a certificate (made here with the
//! `openssl` command) answers a TLS client that negotiates HTTP/2 or HTTP/1.1 by ALPN, and a
//! plaintext client on the same port.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::commands::http;
use crate::{Running, coss};

async fn tls_client(
    port: u16,
    cert: &std::path::Path,
    alpn: &[&[u8]],
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    connector
        .connect(ServerName::try_from("localhost").unwrap(), stream)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_http_share_the_listener_with_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = crate::self_signed_certificate(dir.path());
    let port = coss_testkit::free_port();
    let mut server = Running(
        coss()
            .args(["up", "--listen", &format!("127.0.0.1:{port}")])
            .env("COSS_DATA_DIR", dir.path().join("data"))
            .env("COSS_TLS_CERT", &cert)
            .env("COSS_TLS_KEY", &key)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("up.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    );
    // Plain HTTP on the port.
    let plain = tokio::task::spawn_blocking(move || {
        http(
            port,
            "GET /api/v3/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    })
    .await
    .unwrap();
    assert!(
        plain.starts_with("HTTP/1.1 200") && plain.ends_with("{}"),
        "{plain}"
    );
    // TLS offering h2 gets h2.
    let h2 = tls_client(port, &cert, &[b"h2", b"http/1.1"]).await;
    assert_eq!(h2.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    drop(h2);
    // TLS with HTTP/1.1 answers the API.
    let mut h1 = tls_client(port, &cert, &[b"http/1.1"]).await;
    h1.write_all(b"GET /api/v3/time HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    let _ = h1.read_to_string(&mut answer).await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("serverTime"),
        "{answer}"
    );
    // A clean stop.
    assert!(
        Command::new("kill")
            .args(["-TERM", &server.0.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = server.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "coss up did not stop");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let log = std::fs::read_to_string(dir.path().join("up.log")).unwrap();
    assert!(status.success(), "{log}");
    assert!(log.contains("HTTPS and HTTP on the same listener"), "{log}");
}
