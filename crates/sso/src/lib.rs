//! COSS as an OpenID Connect provider, so one COSS account signs in to the exchange, wallets,
//! merchant dashboard, POS and partner apps. It serves discovery
//! (`/.well-known/openid-configuration`), the JWKS (`/oauth2/jwks`: ES256 P-256 keys, rotated
//! every 30 days, a retired key published 7 more days), the authorization code flow with PKCE
//! (S256, required of every client) at `/oauth2/authorize` with a sign-in page and, for
//! third-party clients, a consent page (remembered per user and client; the platform's own
//! apps are first-party and skip it), the token endpoint (client secret by Basic or POST, or
//! none for public clients; a code works once within 60 s and a second use revokes what the
//! first issued), ID tokens (iss, sub, aud, exp, iat, auth_time, nonce, at_hash, email,
//! name) and userinfo. The browser session is the account's `__Host-coss_session` cookie,
//! shared with the `/api/v1` endpoints; forms check the session's CSRF token and the Origin.
//! Signing keys are sealed with the server key; client secrets and codes are stored hashed.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use coss_http::{Auth, BufferedBody, ClientInfo, Gate, Public, Routes};
use coss_identity::{Accounts, Authenticated, IdentityError, Login, SecondFactor};
use coss_store::{CodeOutcome, OidcClient, OidcCode, OidcKey, SessionKind, StoreError};
use coss_types::UserId;
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

mod jwt;
mod pages;

/// The browser session cookie (the same one `/api/v1` sets).
pub use coss_http::SESSION_COOKIE;
/// A signing key signs for 30 days before a new one replaces it.
pub const KEY_ROTATION_MS: i64 = 30 * 24 * 3_600_000;
/// A retired key stays in the JWKS this long (longer than any token it signed lives).
pub const KEY_OVERLAP_MS: i64 = 7 * 24 * 3_600_000;
/// An authorization code works for 60 seconds.
pub const CODE_TTL_MS: i64 = 60_000;
/// ID and access tokens last one hour.
pub const TOKEN_TTL_MS: i64 = 3_600_000;
/// The scopes this provider knows; others are ignored.
pub const SCOPES: [&str; 3] = ["openid", "email", "profile"];

/// Why the provider failed internally (requests get OAuth errors, not these).
#[derive(Debug, thiserror::Error)]
pub enum SsoError {
    /// Storage failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Keys could not be made, sealed or used.
    #[error("a cryptographic operation failed")]
    Crypto,
    /// A client registration was refused.
    #[error("{0}")]
    InvalidClient(String),
}

impl SsoError {
    /// A stable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Store(_) | Self::Crypto => "internal",
            Self::InvalidClient(_) => "invalid_client_metadata",
        }
    }
}

impl From<IdentityError> for SsoError {
    fn from(_: IdentityError) -> Self {
        Self::Crypto
    }
}

impl From<coss_identity::VaultError> for SsoError {
    fn from(_: coss_identity::VaultError) -> Self {
        Self::Crypto
    }
}

/// A newly registered client: the secret is shown once.
#[derive(Debug, Clone)]
pub struct Registered {
    /// The client id.
    pub client_id: String,
    /// The secret for confidential clients.
    pub client_secret: Option<String>,
}

/// The provider: the accounts (behind the HTTP gate) plus the issuer URL it is reached at.
#[derive(Debug, Clone)]
pub struct Provider {
    gate: Gate,
    issuer: String,
}

impl axum::extract::FromRef<Provider> for Gate {
    fn from_ref(provider: &Provider) -> Gate {
        provider.gate.clone()
    }
}

impl Provider {
    /// A provider whose issuer (and base of every endpoint) is `issuer`, e.g.
    /// `https://coss.example` (no trailing slash).
    pub fn new(gate: Gate, issuer: &str) -> Self {
        Self {
            gate,
            issuer: issuer.trim_end_matches('/').to_owned(),
        }
    }

    fn accounts(&self) -> &Accounts {
        &self.gate.accounts
    }

    /// The issuer URL.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Registers a client. Redirect URIs must be absolute https URLs (http only to a loopback
    /// host) without fragments; `confidential` clients get a secret, public ones use PKCE
    /// alone.
    pub async fn register_client(
        &self,
        name: &str,
        redirect_uris: &[String],
        first_party: bool,
        confidential: bool,
        now: i64,
    ) -> Result<Registered, SsoError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(SsoError::InvalidClient(
                "the name must have 1 to 100 characters".into(),
            ));
        }
        if redirect_uris.is_empty() || redirect_uris.len() > 10 {
            return Err(SsoError::InvalidClient("give 1 to 10 redirect URIs".into()));
        }
        for uri in redirect_uris {
            check_redirect_uri(uri)?;
        }
        let client_id = hex::encode(random::<16>()?);
        let secret = if confidential {
            Some(hex::encode(random::<32>()?))
        } else {
            None
        };
        let client = OidcClient {
            client_id: client_id.clone(),
            secret_hash: secret
                .as_ref()
                .map(|s| Sha256::digest(s.as_bytes()).to_vec()),
            name: name.to_owned(),
            redirect_uris: redirect_uris.to_vec(),
            first_party,
        };
        self.accounts()
            .store()
            .create_oidc_client(&client, now)
            .await?;
        Ok(Registered {
            client_id,
            client_secret: secret,
        })
    }

    /// Makes a new signing key now; the previous one stops signing and stays published for
    /// [`KEY_OVERLAP_MS`].
    pub async fn rotate_keys(&self, now: i64) -> Result<String, SsoError> {
        let (pkcs8, public_key) = jwt::generate()?;
        let kid = hex::encode(random::<8>()?);
        let sealed = self.accounts().vault().seal(&pkcs8, &key_purpose(&kid))?;
        let key = OidcKey {
            kid: kid.clone(),
            sealed_private_key: sealed,
            public_key,
            created_at: now,
            retired_at: None,
        };
        self.accounts().store().add_oidc_key(&key, now).await?;
        Ok(kid)
    }

    /// The published keys (after dropping those retired more than [`KEY_OVERLAP_MS`] ago),
    /// newest first, rotating first if the newest is older than [`KEY_ROTATION_MS`].
    async fn keys(&self, now: i64) -> Result<Vec<OidcKey>, SsoError> {
        let store = self.accounts().store();
        store
            .drop_oidc_keys_retired_before(now - KEY_OVERLAP_MS)
            .await?;
        let keys = store.oidc_keys().await?;
        let fresh = keys
            .first()
            .is_some_and(|k| k.retired_at.is_none() && now - k.created_at < KEY_ROTATION_MS);
        if fresh {
            return Ok(keys);
        }
        self.rotate_keys(now).await?;
        Ok(store.oidc_keys().await?)
    }

    /// The JWKS document.
    pub async fn jwks(&self, now: i64) -> Result<Value, SsoError> {
        let keys: Vec<Value> = self
            .keys(now)
            .await?
            .iter()
            .filter_map(|k| jwt::jwk(&k.kid, &k.public_key))
            .collect();
        Ok(json!({ "keys": keys }))
    }

    /// The discovery document.
    pub fn discovery(&self) -> Value {
        let base = &self.issuer;
        json!({
            "issuer": base,
            "authorization_endpoint": format!("{base}/oauth2/authorize"),
            "token_endpoint": format!("{base}/oauth2/token"),
            "userinfo_endpoint": format!("{base}/oauth2/userinfo"),
            "jwks_uri": format!("{base}/oauth2/jwks"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": SCOPES,
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "email", "email_verified", "name"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": true,
        })
    }

    async fn sign_id_token(&self, claims: &Value, now: i64) -> Result<String, SsoError> {
        let keys = self.keys(now).await?;
        let key = keys.first().ok_or(SsoError::Crypto)?;
        let pkcs8 = self
            .accounts()
            .vault()
            .open(&key.sealed_private_key, &key_purpose(&key.kid))?;
        jwt::sign(&pkcs8, &key.kid, claims)
    }
}

/// The OpenAPI description of the provider's endpoints (merged into `/openapi.json`).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    SsoDoc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(
    discovery,
    jwks,
    authorize_get,
    authorize_post,
    login_post,
    token,
    userinfo
))]
struct SsoDoc;

/// The provider's routes.
pub fn router(provider: Provider) -> Routes {
    Routes::new()
        .get("/.well-known/openid-configuration", discovery)
        .get("/oauth2/jwks", jwks)
        .get("/oauth2/authorize", authorize_get)
        .post("/oauth2/authorize", authorize_post)
        .post("/oauth2/login", login_post)
        .post("/oauth2/token", token)
        .get("/oauth2/userinfo", userinfo)
        .post("/oauth2/userinfo", userinfo)
        .map(|router| {
            router.layer(axum::extract::DefaultBodyLimit::max(
                coss_http::MAX_BODY_BYTES,
            ))
        })
        .with_state(provider)
}

/// The authorization endpoint's caller: the browser's session if one is signed in (anyone
/// else is shown the sign-in page), with its cookie token for the consent form's CSRF token.
struct BrowserSession(Option<(Authenticated, String)>);

impl Auth for BrowserSession {
    const SCHEME: &'static str = "session_or_sign_in";
}

impl FromRequestParts<Provider> for BrowserSession {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        provider: &Provider,
    ) -> Result<Self, Self::Rejection> {
        let Some(token) = coss_http::cookie(&parts.headers, SESSION_COOKIE) else {
            return Ok(BrowserSession(None));
        };
        let who = provider
            .accounts()
            .authenticate(token, provider.gate.now_ms())
            .await
            .ok()
            .filter(|w| w.kind == SessionKind::Browser);
        Ok(BrowserSession(who.map(|who| (who, token.to_owned()))))
    }
}

/// The token endpoint's caller: a registered client, authenticated by its secret (HTTP
/// Basic, or `client_id` and `client_secret` in the form) or, for a public client, by its
/// id alone (PKCE then proves the rest), with the form it sent. Failures answer in the OAuth
/// error shape.
struct OAuthClient {
    client: OidcClient,
    form: HashMap<String, String>,
}

impl Auth for OAuthClient {
    const SCHEME: &'static str = "oauth_client";
    const READS_BODY: bool = true;
}

impl FromRequestParts<Provider> for OAuthClient {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, provider: &Provider) -> Result<Self, Response> {
        let body = match parts
            .extensions
            .get::<BufferedBody>()
            .map(BufferedBody::bytes)
        {
            Some(Ok(body)) => body.clone(),
            _ => {
                return Err(oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "the request body is unreadable or too large",
                ));
            }
        };
        let form: HashMap<String, String> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        let Some((client_id, secret)) = client_credentials(&parts.headers, &form) else {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication is missing",
            ));
        };
        let client = match provider.accounts().store().oidc_client(&client_id).await {
            Ok(Some(client)) => client,
            Ok(None) => {
                return Err(oauth_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    "unknown client",
                ));
            }
            Err(error) => return Err(internal(&error.into())),
        };
        let authenticated = match (&client.secret_hash, &secret) {
            (Some(hash), Some(secret)) => {
                coss_identity::constant_time_eq(hash, &Sha256::digest(secret.as_bytes()))
            }
            (None, None) => true,
            _ => false,
        };
        if !authenticated {
            return Err(oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "client authentication failed",
            ));
        }
        Ok(OAuthClient { client, form })
    }
}

/// The userinfo endpoint's caller: a live access token this provider issued, as a Bearer
/// token; the grant it stands for (account, client, scopes).
struct AccessToken {
    user_id: UserId,
    scopes: String,
}

impl Auth for AccessToken {
    const SCHEME: &'static str = "oauth_access_token";
}

impl FromRequestParts<Provider> for AccessToken {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, provider: &Provider) -> Result<Self, Response> {
        let unauthorized = || {
            let mut response = (StatusCode::UNAUTHORIZED, Json(json!({"error": "invalid_token", "error_description": "send a live access token as Bearer"}))).into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            response
        };
        let Some(token) = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return Err(unauthorized());
        };
        match provider
            .accounts()
            .store()
            .oidc_token(
                &Sha256::digest(token.trim().as_bytes()),
                provider.gate.now_ms(),
            )
            .await
        {
            Ok(Some((user_id, _client, scopes))) => Ok(AccessToken { user_id, scopes }),
            Ok(None) => Err(unauthorized()),
            Err(error) => Err(internal(&error.into())),
        }
    }
}

fn key_purpose(kid: &str) -> Vec<u8> {
    format!("oidc_key:{kid}").into_bytes()
}

fn random<const N: usize>() -> Result<[u8; N], SsoError> {
    Ok(*coss_identity::random_bytes::<N>()?)
}

fn check_redirect_uri(uri: &str) -> Result<(), SsoError> {
    let bad = |why: &str| SsoError::InvalidClient(format!("redirect URI {uri:?}: {why}"));
    let parsed = url::Url::parse(uri).map_err(|_| bad("not an absolute URL"))?;
    if parsed.fragment().is_some() {
        return Err(bad("must not have a fragment"));
    }
    let host = parsed.host_str().ok_or_else(|| bad("needs a host"))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if coss_identity::is_loopback_host(host) => Ok(()),
        _ => Err(bad("must use https (http only to a loopback host)")),
    }
}

fn internal(error: &SsoError) -> Response {
    tracing::error!(%error, "single sign-on");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Html(pages::error("Something went wrong; try again.")),
    )
        .into_response()
}

/// The OpenID Provider's discovery document.
#[utoipa::path(get, path = "/.well-known/openid-configuration", tag = "sso",
    responses((status = 200, description = "OpenID Connect Discovery 1.0 metadata")))]
async fn discovery(_: Public, State(provider): State<Provider>) -> Json<Value> {
    Json(provider.discovery())
}

/// The ID-token signing keys (JWKS), retired keys included while tokens they signed live.
#[utoipa::path(get, path = "/oauth2/jwks", tag = "sso",
    responses((status = 200, description = "a JSON Web Key Set")))]
async fn jwks(_: Public, State(provider): State<Provider>) -> Response {
    match provider.jwks(provider.gate.now_ms()).await {
        Ok(doc) => Json(doc).into_response(),
        Err(error) => internal(&error),
    }
}

/// An authorization request's parameters (from the query, or the consent form).
#[derive(Debug, Clone, Default, Deserialize)]
struct AuthRequest {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    // Consent form only.
    csrf: Option<String>,
    decision: Option<String>,
}

impl AuthRequest {
    /// The request as a query string (to resume after sign-in, or to carry in the consent form).
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![];
        for (name, value) in [
            ("response_type", &self.response_type),
            ("client_id", &self.client_id),
            ("redirect_uri", &self.redirect_uri),
            ("scope", &self.scope),
            ("state", &self.state),
            ("nonce", &self.nonce),
            ("code_challenge", &self.code_challenge),
            ("code_challenge_method", &self.code_challenge_method),
        ] {
            if let Some(value) = value {
                out.push((name, value.clone()));
            }
        }
        out
    }

    fn query(&self) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in self.fields() {
            query.append_pair(name, &value);
        }
        query.finish()
    }
}

/// Sends the browser back to the client with `params` (an error or a code), plus `state` and
/// `iss` (RFC 9207).
fn back_to_client(
    provider: &Provider,
    redirect_uri: &str,
    state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::error("invalid redirect URI")),
        )
            .into_response();
    };
    {
        let mut pairs = url.query_pairs_mut();
        for (name, value) in params {
            pairs.append_pair(name, value);
        }
        if let Some(state) = state {
            pairs.append_pair("state", state);
        }
        pairs.append_pair("iss", &provider.issuer);
    }
    Redirect::to(url.as_str()).into_response()
}

/// Forms must come from this origin (when the browser says where they come from).
fn same_origin(provider: &Provider, headers: &HeaderMap) -> bool {
    match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(origin) => {
            let issuer = url::Url::parse(&provider.issuer).ok();
            issuer.is_some_and(|u| u.origin().ascii_serialization() == origin)
        }
    }
}

/// The authorization endpoint (code flow with PKCE S256): the sign-in or consent page, or a
/// redirect back to the client with a code or an OAuth error.
#[utoipa::path(get, path = "/oauth2/authorize", tag = "sso",
    responses((status = 200, description = "the sign-in or consent page"),
              (status = 303, description = "back to the client's redirect URI"),
              (status = 400, description = "an unknown client or redirect URI, or a malformed request (no redirect to an unverified URI)")))]
async fn authorize_get(
    BrowserSession(session): BrowserSession,
    State(provider): State<Provider>,
    Query(request): Query<AuthRequest>,
) -> Response {
    let request = AuthRequest {
        csrf: None,
        decision: None,
        ..request
    };
    authorize(&provider, session, request).await
}

/// The consent form's answer (same origin, with the session's CSRF token).
#[utoipa::path(post, path = "/oauth2/authorize", tag = "sso",
    responses((status = 303, description = "back to the client's redirect URI"),
              (status = 400, description = "a malformed form, or an unknown client or redirect URI"),
              (status = 403, description = "a cross-origin form or an expired form")))]
async fn authorize_post(
    BrowserSession(session): BrowserSession,
    State(provider): State<Provider>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !same_origin(&provider, &headers) {
        return (
            StatusCode::FORBIDDEN,
            Html(pages::error("cross-origin form refused")),
        )
            .into_response();
    }
    let request: AuthRequest = match serde_urlencoded_from(&body) {
        Some(request) => request,
        None => {
            return (
                StatusCode::BAD_REQUEST,
                Html(pages::error("malformed form")),
            )
                .into_response();
        }
    };
    authorize(&provider, session, request).await
}

fn serde_urlencoded_from<T: serde::de::DeserializeOwned>(body: &[u8]) -> Option<T> {
    let map: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    serde_json::from_value(serde_json::to_value(map).ok()?).ok()
}

async fn authorize(
    provider: &Provider,
    session: Option<(Authenticated, String)>,
    request: AuthRequest,
) -> Response {
    let now = provider.gate.now_ms();
    // Errors that cannot be sent back to the client are shown to the person.
    let Some(client_id) = request.client_id.as_deref() else {
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::error("the request names no client")),
        )
            .into_response();
    };
    let client = match provider.accounts().store().oidc_client(client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return (
                StatusCode::BAD_REQUEST,
                Html(pages::error("unknown client")),
            )
                .into_response();
        }
        Err(error) => return internal(&error.into()),
    };
    let Some(redirect_uri) = request
        .redirect_uri
        .as_deref()
        .filter(|uri| client.redirect_uris.iter().any(|r| r == uri))
    else {
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::error(
                "this redirect URI is not registered for the client",
            )),
        )
            .into_response();
    };
    let state = request.state.as_deref();
    let fail = |error: &str, description: &str| {
        back_to_client(
            provider,
            redirect_uri,
            state,
            &[("error", error), ("error_description", description)],
        )
    };
    if request.response_type.as_deref() != Some("code") {
        return fail(
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let requested: Vec<&str> = request
        .scope
        .as_deref()
        .unwrap_or_default()
        .split(' ')
        .collect();
    if !requested.contains(&"openid") {
        return fail("invalid_scope", "the openid scope is required");
    }
    let scopes: Vec<&str> = SCOPES
        .iter()
        .copied()
        .filter(|s| requested.contains(s))
        .collect();
    let challenge_ok = request.code_challenge.as_deref().is_some_and(|c| {
        c.len() == 43
            && c.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    });
    if !challenge_ok || request.code_challenge_method.as_deref() != Some("S256") {
        return fail(
            "invalid_request",
            "PKCE is required: code_challenge with code_challenge_method=S256",
        );
    }
    let prompt_none = request.prompt.as_deref() == Some("none");

    // Who is signed in?
    let Some((who, session_token)) = session else {
        if prompt_none {
            return fail("login_required", "the user is not signed in");
        }
        return Html(pages::login(&client.name, &request.query(), None)).into_response();
    };

    // Consent, for third-party clients, once per scope set.
    let scope_text = scopes.join(" ");
    if !client.first_party {
        let granted = match provider
            .accounts()
            .store()
            .oidc_consent(who.user_id, &client.client_id)
            .await
        {
            Ok(granted) => granted,
            Err(error) => return internal(&error.into()),
        };
        let covered = granted.is_some_and(|g| scopes.iter().all(|s| g.split(' ').any(|x| x == *s)));
        if !covered {
            match request.decision.as_deref() {
                Some(decision) => {
                    let csrf = request.csrf.as_deref().unwrap_or_default();
                    if !provider.accounts().check_csrf(&session_token, csrf) {
                        return (
                            StatusCode::FORBIDDEN,
                            Html(pages::error("the form expired; start again")),
                        )
                            .into_response();
                    }
                    if decision != "allow" {
                        return fail("access_denied", "the user denied access");
                    }
                    if let Err(error) = provider
                        .accounts()
                        .store()
                        .grant_oidc_consent(who.user_id, &client.client_id, &scope_text, now)
                        .await
                    {
                        return internal(&error.into());
                    }
                }
                None if prompt_none => {
                    return fail("consent_required", "the user has not consented");
                }
                None => {
                    let mut fields = request.fields();
                    fields.push(("csrf", provider.accounts().csrf_token(&session_token)));
                    return Html(pages::consent(&client.name, &scopes, &fields)).into_response();
                }
            }
        }
    }

    // Issue the code.
    let Ok(code) = random::<32>().map(hex::encode) else {
        return internal(&SsoError::Crypto);
    };
    let auth_time = provider
        .accounts()
        .store()
        .session_created_at(who.session_id)
        .await
        .ok()
        .flatten()
        .unwrap_or(now);
    let record = OidcCode {
        code_hash: Sha256::digest(code.as_bytes()).to_vec(),
        client_id: client.client_id.clone(),
        user_id: who.user_id,
        redirect_uri: redirect_uri.to_owned(),
        scopes: scope_text,
        nonce: request.nonce.clone(),
        code_challenge: request.code_challenge.clone().unwrap_or_default(),
        auth_time,
        expires_at: now + CODE_TTL_MS,
    };
    if let Err(error) = provider.accounts().store().create_oidc_code(&record).await {
        return internal(&error.into());
    }
    back_to_client(provider, redirect_uri, state, &[("code", &code)])
}

#[derive(Deserialize)]
struct LoginForm {
    email: String,
    password: String,
    totp_code: Option<String>,
    request: String,
}

/// The sign-in form of the authorization flow (same origin): sets the session cookies and
/// resumes the authorization request.
#[utoipa::path(post, path = "/oauth2/login", tag = "sso",
    responses((status = 303, description = "signed in: back to the authorization request"),
              (status = 400, description = "a malformed form"),
              (status = 401, description = "the sign-in page with the reason")))]
async fn login_post(
    _: Public,
    State(provider): State<Provider>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !same_origin(&provider, &headers) {
        return (
            StatusCode::FORBIDDEN,
            Html(pages::error("cross-origin form refused")),
        )
            .into_response();
    }
    let Some(form) = serde_urlencoded_from::<LoginForm>(&body) else {
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::error("malformed form")),
        )
            .into_response();
    };
    if form.request.contains(['\r', '\n', '#']) {
        return (
            StatusCode::BAD_REQUEST,
            Html(pages::error("malformed request")),
        )
            .into_response();
    }
    let client_name = serde_urlencoded_from::<AuthRequest>(form.request.as_bytes())
        .and_then(|r| r.client_id)
        .unwrap_or_default();
    let client_name = match provider.accounts().store().oidc_client(&client_name).await {
        Ok(Some(client)) => client.name,
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                Html(pages::error("unknown client")),
            )
                .into_response();
        }
    };
    let totp = form.totp_code.as_deref().filter(|c| !c.is_empty());
    let login = Login {
        email: &form.email,
        password: &form.password,
        second_factor: totp.map(SecondFactor::Totp),
        kind: SessionKind::Browser,
        client,
    };
    let now = provider.gate.now_ms();
    match provider.accounts().login(&login, now).await {
        Ok(grant) => {
            let mut response =
                Redirect::to(&format!("/oauth2/authorize?{}", form.request)).into_response();
            coss_http::set_session_cookies(&mut response, &grant);
            response
        }
        Err(error @ (IdentityError::Store(_) | IdentityError::Crypto)) => internal(&error.into()),
        Err(error) => {
            let status = match error {
                IdentityError::TooManyAttempts { .. } => StatusCode::TOO_MANY_REQUESTS,
                _ => StatusCode::UNAUTHORIZED,
            };
            (
                status,
                Html(pages::login(
                    &client_name,
                    &form.request,
                    Some(&error.to_string()),
                )),
            )
                .into_response()
        }
    }
}

/// An OAuth error from the token or userinfo endpoint (RFC 6749 §5.2 shape, which relying
/// parties parse).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut response = (
        status,
        Json(json!({ "error": error, "error_description": description })),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"coss\""),
        );
    }
    response
}

fn decode_component(text: &str) -> String {
    url::form_urlencoded::parse(format!("v={text}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// The client's credentials from Basic auth or the form.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Option<(String, Option<String>)> {
    if let Some(basic) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    {
        use base64::Engine;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (id, secret) = text.split_once(':')?;
        return Some((decode_component(id), Some(decode_component(secret))));
    }
    let id = form.get("client_id")?.clone();
    Some((id, form.get("client_secret").cloned()))
}

/// The token endpoint: a code (once, within 60 s, with its PKCE verifier) for an access
/// token and an ID token. Client secret by Basic or POST, or none for public clients.
#[utoipa::path(post, path = "/oauth2/token", tag = "sso",
    responses((status = 200, description = "access and ID tokens"),
              (status = 400, description = "an OAuth error (RFC 6749 §5.2)"),
              (status = 401, description = "invalid_client")))]
async fn token(
    OAuthClient { client, form }: OAuthClient,
    State(provider): State<Provider>,
) -> Response {
    let now = provider.gate.now_ms();
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "only authorization_code is supported",
        );
    }
    let (Some(code), Some(redirect_uri), Some(verifier)) = (
        form.get("code"),
        form.get("redirect_uri"),
        form.get("code_verifier"),
    ) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "code, redirect_uri and code_verifier are required",
        );
    };
    let code_hash = Sha256::digest(code.as_bytes()).to_vec();
    let grant = match provider
        .accounts()
        .store()
        .redeem_oidc_code(&code_hash, now)
        .await
    {
        Ok(CodeOutcome::Redeemed(grant)) => grant,
        Ok(CodeOutcome::Reused) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the code was already used; tokens issued with it are revoked",
            );
        }
        Ok(CodeOutcome::Invalid) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_grant",
                "the code is invalid or expired",
            );
        }
        Err(error) => return internal(&error.into()),
    };
    if grant.client_id != client.client_id || &grant.redirect_uri != redirect_uri {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code was issued to another client or redirect URI",
        );
    }
    let verifier_ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        && jwt::b64(&Sha256::digest(verifier.as_bytes())) == grant.code_challenge;
    if !verifier_ok {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "the code_verifier does not match the code_challenge",
        );
    }
    match issue_tokens(&provider, &grant, now).await {
        Ok(body) => {
            let mut response = Json(body).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(error) => internal(&error),
    }
}

async fn issue_tokens(provider: &Provider, grant: &OidcCode, now: i64) -> Result<Value, SsoError> {
    let access = hex::encode(random::<32>()?);
    provider
        .accounts()
        .store()
        .create_oidc_token(
            &Sha256::digest(access.as_bytes()),
            grant,
            now + TOKEN_TTL_MS,
        )
        .await?;
    let at_hash = jwt::b64(&Sha256::digest(access.as_bytes())[..16]);
    let mut claims = json!({
        "iss": provider.issuer,
        "sub": grant.user_id.to_string(),
        "aud": grant.client_id,
        "exp": (now + TOKEN_TTL_MS) / 1000,
        "iat": now / 1000,
        "auth_time": grant.auth_time / 1000,
        "at_hash": at_hash,
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    for (name, value) in user_claims(provider, grant.user_id, &grant.scopes).await? {
        claims[name] = value;
    }
    let id_token = provider.sign_id_token(&claims, now).await?;
    Ok(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": TOKEN_TTL_MS / 1000,
        "scope": grant.scopes,
        "id_token": id_token,
    }))
}

/// The claims the scopes allow: `email`, `email_verified` (email), `name` (profile).
async fn user_claims(
    provider: &Provider,
    user_id: UserId,
    scopes: &str,
) -> Result<Vec<(&'static str, Value)>, SsoError> {
    let mut claims = vec![];
    let scopes: Vec<&str> = scopes.split(' ').collect();
    if scopes.contains(&"email")
        && let Some(user) = provider.accounts().store().user(user_id).await?
    {
        claims.push(("email", json!(user.email)));
        claims.push(("email_verified", json!(user.email_verified_at.is_some())));
    }
    if scopes.contains(&"profile")
        && let Some(name) = provider.accounts().profile(user_id).await?.display_name
    {
        claims.push(("name", json!(name)));
    }
    Ok(claims)
}

/// The signed-in user's claims, for a live access token.
#[utoipa::path(method(get, post), path = "/oauth2/userinfo", tag = "sso",
    responses((status = 200, description = "sub and the claims the scopes allow"),
              (status = 401, description = "invalid_token")))]
async fn userinfo(
    AccessToken { user_id, scopes }: AccessToken,
    State(provider): State<Provider>,
) -> Response {
    let mut body = json!({ "sub": user_id.to_string() });
    match user_claims(&provider, user_id, &scopes).await {
        Ok(claims) => {
            for (name, value) in claims {
                body[name] = value;
            }
            Json(body).into_response()
        }
        Err(error) => internal(&error),
    }
}
