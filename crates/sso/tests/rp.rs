//! A real OpenID Connect relying party (the `openidconnect` crate) signs a COSS user in
//! through the provider served on a loopback port; the test plays the browser (cookies and
//! forms by hand, redirects not followed) and checks every refusal on the way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_identity::{Accounts, ProfilePatch, Vault};
use coss_sso::Provider;
use coss_store::Store;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreJwsSigningAlgorithm, CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::header;

const PASSWORD: &str = "correct horse battery";
const CALLBACK: &str = "http://127.0.0.1:9/callback";

struct Op {
    issuer: String,
    provider: Provider,
    accounts: Accounts,
    _dir: tempfile::TempDir,
}

/// Now, by the system's clock (the provider under test reads the same one).
fn now_ms() -> i64 {
    coss_clock::Clock::system().now().as_i64()
}

async fn provider() -> Op {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    let accounts = Accounts::new(store, Vault::random().unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let provider = Provider::new(coss_http::Gate::new(accounts.clone()), &issuer);
    let app = coss_sso::router(provider.clone()).into_router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // Alice, verified, with a display name.
    let id = accounts
        .signup(
            "alice@example.com",
            PASSWORD,
            &coss_identity::Client::default(),
            now_ms(),
        )
        .await
        .unwrap()
        .user();
    let mail = accounts.store().due_mail(i64::MAX, 10).await.unwrap();
    let payload: serde_json::Value = serde_json::from_str(&mail[0].mail.payload).unwrap();
    accounts
        .verify_email(payload["token"].as_str().unwrap(), now_ms())
        .await
        .unwrap();
    let patch = ProfilePatch {
        display_name: Some(Some("Alice".into())),
        country: None,
    };
    accounts.update_profile(id, &patch, now_ms()).await.unwrap();
    Op {
        issuer,
        provider,
        accounts,
        _dir: dir,
    }
}

fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// The relying party's HTTP client, as openidconnect wants it.
async fn rp_send(
    client: reqwest::Client,
    request: openidconnect::HttpRequest,
) -> Result<openidconnect::HttpResponse, reqwest::Error> {
    let response = client.execute(reqwest::Request::try_from(request)?).await?;
    let mut builder = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(response.bytes().await?.to_vec()).unwrap())
}

async fn relying_party(
    issuer: &str,
    client_id: &str,
    secret: Option<&str>,
) -> (
    CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    >,
    impl Fn(
        openidconnect::HttpRequest,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<openidconnect::HttpResponse, reqwest::Error>> + Send>,
    >,
) {
    let http = browser();
    let send = move |r| -> std::pin::Pin<Box<dyn Future<Output = _> + Send>> {
        Box::pin(rp_send(http.clone(), r))
    };
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(issuer.to_owned()).unwrap(), &send)
            .await
            .unwrap();
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.to_owned()),
        secret.map(|s| ClientSecret::new(s.to_owned())),
    )
    .set_redirect_uri(RedirectUrl::new(CALLBACK.to_owned()).unwrap());
    (client, send)
}

fn location(response: &reqwest::Response) -> String {
    response.headers()[header::LOCATION]
        .to_str()
        .unwrap()
        .to_owned()
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The hidden inputs of a page's form.
fn hidden_inputs(html: &str) -> Vec<(String, String)> {
    html.split("<input type=\"hidden\" name=\"")
        .skip(1)
        .map(|rest| {
            let (name, rest) = rest.split_once("\" value=\"").unwrap();
            let value = rest.split_once('"').unwrap().0;
            (unescape(name), unescape(value))
        })
        .collect()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
}

/// Signs in on the provider's page; returns the session cookie and where the browser goes next.
async fn sign_in(op: &Op, login_page: &str) -> (String, String) {
    let mut form = hidden_inputs(login_page);
    form.push(("email".into(), "alice@example.com".into()));
    form.push(("password".into(), PASSWORD.into()));
    let response = browser()
        .post(format!("{}/oauth2/login", op.issuer))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303);
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|c| c.starts_with("__Host-coss_session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    (cookie, format!("{}{}", op.issuer, location(&response)))
}

#[tokio::test]
async fn a_relying_party_signs_a_user_in_with_consent_pkce_and_verified_id_tokens() {
    let op = provider().await;
    let partner = op
        .provider
        .register_client("Partner App", &[CALLBACK.to_owned()], false, true, now_ms())
        .await
        .unwrap();
    let secret = partner.client_secret.clone().unwrap();
    let (rp, http) = relying_party(&op.issuer, &partner.client_id, Some(&secret)).await;

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, state, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();

    // Not signed in: the sign-in page, naming the app.
    let page = browser().get(authorize_url.as_str()).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("Sign in to COSS") && page.contains("Partner App"),
        "{page}"
    );
    let (cookie, next) = sign_in(&op, &page).await;

    // A third-party app: the consent page, then allow.
    let consent = browser()
        .get(&next)
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(consent.status(), 200);
    let consent = consent.text().await.unwrap();
    assert!(
        consent.contains("Allow access?") && consent.contains("see your email address"),
        "{consent}"
    );
    let mut form = hidden_inputs(&consent);
    form.push(("decision".into(), "allow".into()));
    let back = browser()
        .post(format!("{}/oauth2/authorize", op.issuer))
        .header(header::COOKIE, &cookie)
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 303);
    let callback = location(&back);
    assert!(callback.starts_with(CALLBACK), "{callback}");
    assert_eq!(
        query_param(&callback, "state").as_deref(),
        Some(state.secret().as_str())
    );
    assert_eq!(
        query_param(&callback, "iss").as_deref(),
        Some(op.issuer.as_str())
    );
    let code = query_param(&callback, "code").unwrap();

    // The relying party redeems the code with its PKCE verifier and checks the ID token.
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code.clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let checker = rp
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let id_token = tokens.id_token().unwrap();
    let claims = id_token.claims(&checker, &nonce).unwrap();
    assert_eq!(claims.issuer().as_str(), op.issuer);
    assert_eq!(claims.email().unwrap().as_str(), "alice@example.com");
    assert_eq!(claims.email_verified(), Some(true));
    assert_eq!(claims.name().unwrap().get(None).unwrap().as_str(), "Alice");
    let sub = claims.subject().clone();
    let info: openidconnect::core::CoreUserInfoClaims = rp
        .user_info(tokens.access_token().clone(), Some(sub.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert_eq!(info.email().unwrap().as_str(), "alice@example.com");

    // The code works once; its replay also revokes the tokens the first use issued.
    let (_, other_verifier) = PkceCodeChallenge::new_random_sha256();
    let replay = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(other_verifier)
        .request_async(&http)
        .await;
    assert!(format!("{:?}", replay.unwrap_err()).contains("invalid_grant"));
    let revoked: Result<openidconnect::core::CoreUserInfoClaims, _> = rp
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await;
    assert!(revoked.is_err(), "tokens from a replayed code are revoked");

    // Consent is remembered: the next sign-in goes straight back with a code.
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url2, _, nonce2) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .set_pkce_challenge(challenge)
        .url();
    let straight = browser()
        .get(url2.as_str())
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(straight.status(), 303);
    let code2 = query_param(&location(&straight), "code").unwrap();

    // Keys rotate: new tokens are signed with the new key, and the JWKS still holds the old one
    // so tokens signed before the rotation keep verifying.
    let kid_of = |jwt: String| -> String {
        let header: serde_json::Value =
            serde_json::from_slice(&base64_decode(jwt.split('.').next().unwrap())).unwrap();
        header["kid"].as_str().unwrap().to_owned()
    };
    let old_kid = kid_of(id_token.to_string());
    let new_kid = op.provider.rotate_keys(now_ms()).await.unwrap();
    let jwks: serde_json::Value = browser()
        .get(format!("{}/oauth2/jwks", op.issuer))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2);
    assert_eq!(kids[0], new_kid);
    assert!(
        kids.contains(&old_kid.as_str()),
        "the retired key is still published"
    );
    let (rp, http) = relying_party(&op.issuer, &partner.client_id, Some(&secret)).await;
    let checker = rp
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let tokens2 = rp
        .exchange_code(AuthorizationCode::new(code2))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let fresh = tokens2.id_token().unwrap();
    fresh.claims(&checker, &nonce2).unwrap();
    assert_eq!(kid_of(fresh.to_string()), new_kid);
    id_token.claims(&checker, &nonce).unwrap();
    assert_eq!(op.accounts.store().oidc_keys().await.unwrap().len(), 2);
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

#[tokio::test]
async fn first_party_apps_skip_consent_and_public_clients_use_pkce_alone() {
    let op = provider().await;
    let wallet = op
        .provider
        .register_client("COSS Wallet", &[CALLBACK.to_owned()], true, false, now_ms())
        .await
        .unwrap();
    assert!(wallet.client_secret.is_none());
    let (rp, http) = relying_party(&op.issuer, &wallet.client_id, None).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = rp
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let page = browser()
        .get(url.as_str())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let (cookie, next) = sign_in(&op, &page).await;
    let back = browser()
        .get(&next)
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(
        back.status(),
        303,
        "no consent page for the platform's own apps"
    );
    let code = query_param(&location(&back), "code").unwrap();
    let tokens = rp
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .unwrap();
    let checker = rp
        .id_token_verifier()
        .set_allowed_algs(vec![CoreJwsSigningAlgorithm::EcdsaP256Sha256]);
    let claims = tokens.id_token().unwrap().claims(&checker, &nonce).unwrap();
    assert!(claims.email().is_none(), "no email scope, no email claim");
}

#[tokio::test]
async fn bad_requests_are_refused_where_it_is_safe_to_say_so() {
    let op = provider().await;
    let partner = op
        .provider
        .register_client("Partner App", &[CALLBACK.to_owned()], false, true, now_ms())
        .await
        .unwrap();
    assert!(
        op.provider
            .register_client(
                "Evil",
                &["http://evil.example/cb".to_owned()],
                false,
                true,
                now_ms()
            )
            .await
            .is_err(),
        "plain http off loopback"
    );
    assert!(
        op.provider
            .register_client(
                "Frag",
                &["https://a.example/cb#x".to_owned()],
                false,
                true,
                now_ms()
            )
            .await
            .is_err()
    );
    let base = format!("{}/oauth2/authorize", op.issuer);
    let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let get = |query: String| {
        let url = format!("{base}?{query}");
        async move { browser().get(url).send().await.unwrap() }
    };
    let ok = |extra: &str| {
        format!(
            "response_type=code&client_id={}&redirect_uri={CALLBACK}&scope=openid&state=s1&code_challenge={challenge}&code_challenge_method=S256{extra}",
            partner.client_id
        )
    };

    // The client or redirect is wrong: say so to the person, never redirect.
    let unknown = get(
        "response_type=code&client_id=nobody&redirect_uri=http://127.0.0.1:9/callback&scope=openid"
            .into(),
    )
    .await;
    assert_eq!(unknown.status(), 400);
    let elsewhere = get(ok("").replace("127.0.0.1:9", "127.0.0.1:10")).await;
    assert_eq!(elsewhere.status(), 400);
    assert!(elsewhere.headers().get(header::LOCATION).is_none());

    // Otherwise errors go back to the client, with its state.
    for (query, error) in [
        (
            ok("").replace("code_challenge_method=S256", "code_challenge_method=plain"),
            "invalid_request",
        ),
        (
            ok("").replace(&format!("&code_challenge={challenge}"), ""),
            "invalid_request",
        ),
        (
            ok("").replace("scope=openid", "scope=email"),
            "invalid_scope",
        ),
        (
            ok("").replace("response_type=code", "response_type=token"),
            "unsupported_response_type",
        ),
        (ok("&prompt=none"), "login_required"),
    ] {
        let response = get(query).await;
        assert_eq!(response.status(), 303);
        let to = location(&response);
        assert_eq!(query_param(&to, "error").as_deref(), Some(error), "{to}");
        assert_eq!(query_param(&to, "state").as_deref(), Some("s1"));
    }

    // A wrong password re-shows the page with the reason; a cross-origin form is refused.
    let page = get(ok("")).await.text().await.unwrap();
    let mut form = hidden_inputs(&page);
    form.push(("email".into(), "alice@example.com".into()));
    form.push(("password".into(), "wrong password".into()));
    let wrong = browser()
        .post(format!("{}/oauth2/login", op.issuer))
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(
        wrong
            .text()
            .await
            .unwrap()
            .contains("wrong email or password")
    );
    let forged = browser()
        .post(format!("{}/oauth2/login", op.issuer))
        .header(header::ORIGIN, "https://evil.example")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    // Denying consent tells the client; a forged consent form (no CSRF token) is refused.
    let (cookie, next) = sign_in(&op, &page).await;
    let consent = browser()
        .get(&next)
        .header(header::COOKIE, &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let fields = hidden_inputs(&consent);
    let mut deny = fields.clone();
    deny.push(("decision".into(), "deny".into()));
    let denied = browser()
        .post(&base)
        .header(header::COOKIE, &cookie)
        .form(&deny)
        .send()
        .await
        .unwrap();
    assert_eq!(
        query_param(&location(&denied), "error").as_deref(),
        Some("access_denied")
    );
    let mut forged: Vec<(String, String)> =
        fields.into_iter().filter(|(n, _)| n != "csrf").collect();
    forged.push(("decision".into(), "allow".into()));
    assert_eq!(
        browser()
            .post(&base)
            .header(header::COOKIE, &cookie)
            .form(&forged)
            .send()
            .await
            .unwrap()
            .status(),
        403
    );

    // The token endpoint: wrong secret, wrong verifier.
    let mut allow = hidden_inputs(&consent);
    allow.push(("decision".into(), "allow".into()));
    let code = query_param(
        &location(
            &browser()
                .post(&base)
                .header(header::COOKIE, &cookie)
                .form(&allow)
                .send()
                .await
                .unwrap(),
        ),
        "code",
    )
    .unwrap();
    let token = |secret: &str, verifier: &str| {
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
            ("code_verifier", verifier),
            ("client_id", partner.client_id.as_str()),
            ("client_secret", secret),
        ];
        let url = format!("{}/oauth2/token", op.issuer);
        let form: Vec<(String, String)> = form
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect();
        async move { browser().post(url).form(&form).send().await.unwrap() }
    };
    let wrong_secret = token("nope", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk").await;
    assert_eq!(wrong_secret.status(), 401);
    assert_eq!(
        wrong_secret.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_client"
    );
    // (The challenge above is RFC 7636's example; this is not its verifier.)
    let wrong_verifier = token(partner.client_secret.as_deref().unwrap(), &"a".repeat(43)).await;
    assert_eq!(wrong_verifier.status(), 400);
    assert_eq!(
        wrong_verifier.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    // A failed redemption burns the code: even the right verifier is refused now.
    let burned = token(
        partner.client_secret.as_deref().unwrap(),
        "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
    )
    .await;
    assert_eq!(
        burned.json::<serde_json::Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    let unauth = browser()
        .get(format!("{}/oauth2/userinfo", op.issuer))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(unauth.status(), 401);
}
