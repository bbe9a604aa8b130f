//! The web app as the platform serves it. `vite build` writes the app (`web/dist`: an
//! `index.html` and content-hashed files under `assets/`); [`WebApp::open`] reads that folder
//! into memory once, bounded in files and bytes, compresses each text file with gzip once, and
//! [`with_app`] serves it as the platform's fallback: a file by its exact path, `index.html`
//! for any other page path (the app routes in the browser, so `/wallet` and the links in
//! emails, `/verify-email?token=…`, open it), while the API, stream and sign-on paths keep
//! their JSON 404. No Node.js at run time, and a request never touches the disk.
//!
//! Every answer carries the app's security headers: a Content-Security-Policy with scripts
//! from this origin only (no inline script, no eval), no framing, no referrer (a token in a
//! link's query must not leak to another site), `nosniff`. Hashed assets are cached for a
//! year (`immutable`); `index.html` is revalidated (`no-cache`, with an ETag) so a new
//! release is seen on the next load.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Most files the app may have: a build has a few dozen.
const MAX_FILES: usize = 2_000;
/// Most bytes the app may hold in memory.
const MAX_BYTES: u64 = 64 << 20;

/// Paths that belong to the platform's APIs, never to the app: an unknown one stays a JSON 404.
const API_PREFIXES: &[&str] = &[
    "/api/",
    "/oauth2/",
    "/.well-known/",
    "/ws",
    "/stream",
    "/health",
    "/metrics",
    "/openapi.json",
];

/// The policy of every page: scripts, styles, fonts and connections (streams included) from
/// this origin; images also as `data:`/`blob:` (QR codes, the chart's export); styles may be
/// inline (Vue sets style attributes), scripts never.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self'; \
     connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; \
     frame-ancestors 'none'";

/// Why the app cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// The folder or a file in it cannot be read.
    #[error("cannot read the web app at {path}: {source}")]
    Io {
        /// What was read.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The folder has no `index.html`: not a built app.
    #[error("{0} holds no index.html: build the app first (`make web`)")]
    NoIndex(PathBuf),
    /// The folder is larger than an app can be.
    #[error("{0} is too large for a web app (at most {MAX_FILES} files and {MAX_BYTES} bytes)")]
    TooLarge(PathBuf),
}

impl WebError {
    /// A stable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            WebError::Io { .. } => "web.io",
            WebError::NoIndex(_) => "web.no_index",
            WebError::TooLarge(_) => "web.too_large",
        }
    }
}

/// One file, ready to send.
#[derive(Debug)]
struct File {
    body: axum::body::Bytes,
    gzip: Option<axum::body::Bytes>,
    content_type: &'static str,
    etag: HeaderValue,
    immutable: bool,
}

/// The built app, in memory. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebApp {
    files: std::sync::Arc<HashMap<String, File>>,
}

impl WebApp {
    /// Reads the built app in `dir` (with its `index.html`).
    ///
    /// # Errors
    /// [`WebError`] when the folder cannot be read, has no `index.html`, or is larger than an
    /// app can be.
    pub fn open(dir: &Path) -> Result<WebApp, WebError> {
        let mut files = HashMap::new();
        let mut total = 0u64;
        let mut pending = vec![dir.to_owned()];
        while let Some(folder) = pending.pop() {
            let entries = std::fs::read_dir(&folder).map_err(|source| WebError::Io {
                path: folder.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| WebError::Io {
                    path: folder.clone(),
                    source,
                })?;
                let path = entry.path();
                let kind = entry.file_type().map_err(|source| WebError::Io {
                    path: path.clone(),
                    source,
                })?;
                if kind.is_dir() {
                    pending.push(path);
                    continue;
                }
                if !kind.is_file() {
                    continue;
                }
                let bytes = std::fs::read(&path).map_err(|source| WebError::Io {
                    path: path.clone(),
                    source,
                })?;
                total += bytes.len() as u64;
                if files.len() >= MAX_FILES || total > MAX_BYTES {
                    return Err(WebError::TooLarge(dir.to_owned()));
                }
                let Ok(relative) = path.strip_prefix(dir) else {
                    continue;
                };
                let name = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                files.insert(format!("/{name}"), file(&name, bytes));
            }
        }
        if !files.contains_key("/index.html") {
            return Err(WebError::NoIndex(dir.to_owned()));
        }
        tracing::info!(dir = %dir.display(), files = files.len(), bytes = total, "web app loaded");
        Ok(WebApp {
            files: std::sync::Arc::new(files),
        })
    }

    /// The answer to a request the platform's routes did not take: a file of the app, its
    /// page for a page path, or `None` for paths that are not the app's (the APIs' unknown
    /// paths, other methods).
    #[must_use]
    pub fn respond(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Response> {
        if (method != Method::GET && method != Method::HEAD)
            || API_PREFIXES.iter().any(|p| path.starts_with(p))
        {
            return None;
        }
        let file = match self.files.get(path) {
            Some(file) => file,
            // A page of the app (no extension in its last segment): the app decides.
            None if !path.rsplit('/').next().unwrap_or_default().contains('.') => {
                self.files.get("/index.html")?
            }
            None => return Some(with_security(StatusCode::NOT_FOUND.into_response())),
        };
        Some(send(file, method, headers))
    }
}

fn file(name: &str, bytes: Vec<u8>) -> File {
    let extension = name.rsplit('.').next().unwrap_or_default();
    let content_type = match extension {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "webp" => "image/webp",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    let compressible = content_type.starts_with("text/")
        || content_type.starts_with("application/json")
        || content_type == "image/svg+xml";
    let gzip = compressible
        .then(|| gzip(&bytes))
        .flatten()
        .filter(|g| g.len() < bytes.len())
        .map(axum::body::Bytes::from);
    let digest = Sha256::digest(&bytes);
    let etag = HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..12])))
        .unwrap_or_else(|_| HeaderValue::from_static("\"0\""));
    File {
        body: axum::body::Bytes::from(bytes),
        gzip,
        content_type,
        etag,
        // Vite names every file under assets/ by its content's hash.
        immutable: name.starts_with("assets/"),
    }
}

fn gzip(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).ok()?;
    encoder.finish().ok()
}

fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.trim().split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
            name.eq_ignore_ascii_case("gzip") && !refused
        })
}

fn send(file: &File, method: &Method, headers: &HeaderMap) -> Response {
    let cache = if file.immutable {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tag| tag.as_bytes() == file.etag.as_bytes());
    let mut builder = Response::builder()
        .header(header::CONTENT_TYPE, file.content_type)
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, file.etag.clone())
        .header(header::VARY, "accept-encoding");
    let body = if fresh {
        builder = builder.status(StatusCode::NOT_MODIFIED);
        None
    } else {
        match &file.gzip {
            Some(gzip) if accepts_gzip(headers) => {
                builder = builder.header(header::CONTENT_ENCODING, "gzip");
                Some(gzip.clone())
            }
            _ => Some(file.body.clone()),
        }
    };
    let body = match body {
        Some(bytes) if method != Method::HEAD => Body::from(bytes),
        Some(bytes) => {
            builder = builder.header(header::CONTENT_LENGTH, bytes.len());
            Body::empty()
        }
        None => Body::empty(),
    };
    let response = builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    with_security(response)
}

/// Adds the app's security headers.
fn with_security(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("x-frame-options", "DENY"),
        ("cross-origin-opener-policy", "same-origin"),
        (
            "permissions-policy",
            "camera=(), microphone=(), geolocation=(), payment=()",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

/// The router with the app as its fallback: what no route takes goes to the app, and what the
/// app does not take gets `otherwise` (the platform's JSON 404). Apply after every other
/// fallback.
pub fn with_app(router: Router, app: WebApp, otherwise: fn() -> Response) -> Router {
    router.fallback(move |request: Request| {
        let answer = app
            .respond(request.method(), request.uri().path(), request.headers())
            .unwrap_or_else(otherwise);
        std::future::ready(answer)
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn app() -> (tempfile::TempDir, WebApp) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("assets")).unwrap();
        std::fs::write(
            dir.path().join("index.html"),
            "<!doctype html><div id=app></div>",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("assets/index-abc123.js"),
            "console.log('app');".repeat(100),
        )
        .unwrap();
        let app = WebApp::open(dir.path()).unwrap();
        (dir, app)
    }

    #[test]
    fn a_folder_without_index_html_is_not_an_app() {
        let dir = tempfile::tempdir().unwrap();
        let error = WebApp::open(dir.path()).unwrap_err();
        assert_eq!(error.code(), "web.no_index");
        let error = WebApp::open(&dir.path().join("missing")).unwrap_err();
        assert_eq!(error.code(), "web.io");
    }

    #[test]
    fn pages_open_the_app_files_are_served_and_api_paths_are_left_alone() {
        let (_dir, app) = app();
        let none = HeaderMap::new();
        for page in ["/", "/trade/ETHTUSD", "/verify-email", "/wallet"] {
            let response = app.respond(&Method::GET, page, &none).unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{page}");
            assert_eq!(
                response.headers()[header::CONTENT_TYPE],
                "text/html; charset=utf-8"
            );
            assert_eq!(response.headers()[header::CACHE_CONTROL], "no-cache");
            assert!(
                response.headers()["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("script-src 'self';")
            );
            assert_eq!(response.headers()["referrer-policy"], "no-referrer");
        }
        let asset = app
            .respond(&Method::GET, "/assets/index-abc123.js", &none)
            .unwrap();
        assert!(
            asset.headers()[header::CACHE_CONTROL]
                .to_str()
                .unwrap()
                .contains("immutable")
        );
        let missing = app
            .respond(&Method::GET, "/assets/gone-123.js", &none)
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        for api in [
            "/api/v3/nope",
            "/api/v1/nope",
            "/oauth2/x",
            "/ws/x",
            "/stream",
        ] {
            assert!(app.respond(&Method::GET, api, &none).is_none(), "{api}");
        }
        assert!(app.respond(&Method::POST, "/wallet", &none).is_none());
    }

    #[test]
    fn text_goes_out_gzipped_to_who_accepts_it_and_an_etag_saves_the_body() {
        let (_dir, app) = app();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("br, gzip"),
        );
        let zipped = app
            .respond(&Method::GET, "/assets/index-abc123.js", &headers)
            .unwrap();
        assert_eq!(zipped.headers()[header::CONTENT_ENCODING], "gzip");
        let etag = zipped.headers()[header::ETAG].clone();
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static("gzip;q=0"),
        );
        let plain = app
            .respond(&Method::GET, "/assets/index-abc123.js", &headers)
            .unwrap();
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        headers.insert(header::IF_NONE_MATCH, etag);
        let unchanged = app
            .respond(&Method::GET, "/assets/index-abc123.js", &headers)
            .unwrap();
        assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    }
}
