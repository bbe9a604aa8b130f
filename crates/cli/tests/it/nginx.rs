//! Production's shape: Debian's NGINX with `deploy/nginx/coss.conf` (only its addresses, paths
//! and certificate changed) in front of a real `coss up` that trusts it as its proxy, TLS with
//! a self-signed certificate made here. The browser journey and the CCXT end-to-end test run
//! through it, over HTTP/2 and WebSockets; the headers production relies on are checked.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::{Running, stderr_of};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// NGINX in the foreground with its own prefix, stopped when the test ends.
fn nginx(dir: &Path, conf: &Path) -> Running {
    Running(
        Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.join("nginx.stderr")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    )
}

fn curl(args: &[&str]) -> String {
    let output = Command::new("curl").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "curl {args:?}: {}",
        stderr_of(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_browser_journey_and_ccxt_run_through_nginx_with_tls_and_http2() {
    let python = repo().join("tests/e2e/.venv/bin/python");
    let web = repo().join("web");
    assert!(python.is_file(), "`make tests/e2e/.venv/ok` installs CCXT");
    assert!(
        web.join("dist/index.html").is_file(),
        "`make web` builds the app"
    );
    assert!(
        Command::new("nginx").arg("-v").output().is_ok(),
        "nginx is missing: `apt-get install nginx` (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    // NGINX's workers (nobody) read the certificate's folder and write their temp files here.
    std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (cert, key) = crate::self_signed_certificate(root);

    // COSS believes the X-Forwarded-For of its proxy, and only of it.
    let config = std::fs::read_to_string(repo().join("config/coss.toml"))
        .unwrap()
        .replace("trusted_proxies = []", "trusted_proxies = [\"127.0.0.1\"]");
    std::fs::write(root.join("coss.toml"), config).unwrap();
    let data = root.join("data");
    let (_coss, coss_port) = crate::up_with(&data, &root.join("up.log"), |command| {
        command
            .arg("--config")
            .arg(root.join("coss.toml"))
            .arg("--web-dir")
            .arg(web.join("dist"))
            .env("COSS_ORDERS_PER_10S", "100000")
            .env("COSS_WEIGHT_PER_MINUTE", "1000000");
    });

    let (https, http) = (coss_testkit::free_port(), coss_testkit::free_port());
    let shipped = std::fs::read_to_string(repo().join("deploy/nginx/coss.conf")).unwrap();
    let site = shipped
        .replace("listen 80;", &format!("listen 127.0.0.1:{http};"))
        .replace("listen [::]:80;", "")
        .replace(
            "listen 443 ssl http2;",
            &format!("listen 127.0.0.1:{https} ssl http2;"),
        )
        .replace("listen [::]:443 ssl http2;", "")
        .replace("/etc/coss/tls/fullchain.pem", &cert.display().to_string())
        .replace("/etc/coss/tls/privkey.pem", &key.display().to_string())
        .replace(
            "/usr/share/coss/web",
            &web.join("dist").display().to_string(),
        )
        .replace("127.0.0.1:8080", &format!("127.0.0.1:{coss_port}"));
    assert_ne!(site, shipped);
    std::fs::write(root.join("coss.conf"), site).unwrap();
    let main = format!(
        "worker_processes 1;\npid {r}/nginx.pid;\nerror_log {r}/error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  include /etc/nginx/mime.types;\n  default_type application/octet-stream;\n  \
         access_log {r}/access.log;\n  client_body_temp_path {r}/body;\n  proxy_temp_path {r}/proxy;\n  \
         fastcgi_temp_path {r}/fastcgi;\n  uwsgi_temp_path {r}/uwsgi;\n  scgi_temp_path {r}/scgi;\n  \
         include {r}/coss.conf;\n}}\n",
        r = root.display()
    );
    std::fs::write(root.join("nginx.conf"), main).unwrap();
    let _nginx = nginx(root, &root.join("nginx.conf"));
    let base = format!("https://127.0.0.1:{https}");
    let cacert = cert.display().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !Command::new("curl")
        .args(["-sf", "--cacert", &cacert, &format!("{base}/health")])
        .status()
        .unwrap()
        .success()
    {
        let log = std::fs::read_to_string(root.join("error.log")).unwrap_or_default()
            + &std::fs::read_to_string(root.join("nginx.stderr")).unwrap_or_default();
        assert!(
            std::time::Instant::now() < deadline,
            "nginx did not start: {log}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    // HTTP/2 over TLS; HTTP moves to HTTPS; the headers production relies on.
    let page = curl(&[
        "-sS",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--http2",
        "--cacert",
        &cacert,
        &format!("{base}/wallet"),
    ]);
    assert!(page.starts_with("HTTP/2 200"), "{page}");
    for header in [
        "strict-transport-security: max-age=63072000",
        "content-security-policy: default-src 'self'; script-src 'self';",
        "x-frame-options: DENY",
        "referrer-policy: no-referrer",
    ] {
        assert!(
            page.to_lowercase().contains(&header.to_lowercase()),
            "{header} missing:\n{page}"
        );
    }
    let index = curl(&["-sS", "--cacert", &cacert, &format!("{base}/")]);
    let asset = index
        .split('"')
        .find(|s| s.starts_with("/assets/") && s.ends_with(".js"))
        .expect("the page names its script");
    let asset_headers = curl(&[
        "-sS",
        "-D",
        "-",
        "-o",
        "/dev/null",
        "--cacert",
        &cacert,
        &format!("{base}{asset}"),
    ]);
    assert!(asset_headers.contains("immutable"), "{asset_headers}");
    let redirect = curl(&[
        "-sS",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://127.0.0.1:{http}/trade"),
    ]);
    assert!(redirect.starts_with("HTTP/1.1 301"), "{redirect}");
    let big = "x".repeat(100 * 1024);
    let refused = curl(&[
        "-sS",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--cacert",
        &cacert,
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data",
        &big,
        &format!("{base}/api/v1/auth/login"),
    ]);
    assert_eq!(refused, "413", "bodies over NGINX's limit never reach COSS");

    // The browser journey, then an unmodified CCXT, through NGINX.
    let journey = Command::new("node")
        .arg(web.join("tests/browser/journey.mjs"))
        .args(["--url", &base, "--ignore-https-errors"])
        .arg("--data-dir")
        .arg(&data)
        .arg("--artifacts")
        .arg(repo().join("target/web-artifacts/nginx"))
        .env("NODE_EXTRA_CA_CERTS", &cert)
        .output()
        .unwrap();
    let log = |name: &str| std::fs::read_to_string(root.join(name)).unwrap_or_default();
    assert!(
        journey.status.success(),
        "the journey through nginx failed\n--- stdout\n{}\n--- stderr\n{}\n--- nginx errors\n{}",
        String::from_utf8_lossy(&journey.stdout),
        stderr_of(&journey),
        log("error.log")
    );
    let ccxt = Command::new(&python)
        .arg(repo().join("tests/e2e/newcomer_ccxt.py"))
        .args(["--url", &base, "--tag", ".nginx", "--ca-file", &cacert])
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(
        ccxt.status.success()
            && String::from_utf8_lossy(&ccxt.stdout).contains("OK: every step held"),
        "CCXT through nginx failed\n--- stdout\n{}\n--- stderr\n{}\n--- nginx errors\n{}",
        String::from_utf8_lossy(&ccxt.stdout),
        stderr_of(&ccxt),
        log("error.log")
    );
}
