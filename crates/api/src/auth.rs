//! `/api/v1/auth/…`: sign-up, verification, login (browser cookies or app tokens), refresh,
//! logout, password reset and change, and the TOTP second factor.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use coss_http::{
    ApiError, CSRF_COOKIE, Caller, ClientInfo, Gate, JsonBody, Public, Routes, SESSION_COOKIE,
    set_cookie, set_session_cookies,
};
use coss_identity::{Grant, IdentityError, Login, SecondFactor};
use coss_store::SessionKind;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(crate) fn routes() -> Routes<Gate> {
    Routes::new()
        .post("/api/v1/auth/signup", signup)
        .post("/api/v1/auth/verify-email", verify_email)
        .post("/api/v1/auth/login", login)
        .post("/api/v1/auth/refresh", refresh)
        .post("/api/v1/auth/logout", logout)
        .post("/api/v1/auth/password-reset", password_reset)
        .post(
            "/api/v1/auth/password-reset/confirm",
            password_reset_confirm,
        )
        .post("/api/v1/auth/password", change_password)
        .post("/api/v1/auth/2fa/totp", totp_begin)
        .delete("/api/v1/auth/2fa/totp", totp_disable)
        .post("/api/v1/auth/2fa/totp/confirm", totp_confirm)
}

/// Email and password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Credentials {
    email: String,
    password: String,
}

/// A single-use token from an email.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenBody {
    token: String,
}

/// An email address.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EmailBody {
    email: String,
}

/// A reset token and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ResetBody {
    token: String,
    password: String,
}

/// Who logs in, and how they hold the session.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    email: String,
    password: String,
    /// Needed once two-factor authentication is enabled (or `recovery_code`).
    totp_code: Option<String>,
    /// A one-time recovery code instead of `totp_code`.
    recovery_code: Option<String>,
    /// `app` (default): access and refresh tokens in the body. `browser`: an HttpOnly
    /// session cookie and a CSRF token.
    client: Option<ClientKind>,
}

#[derive(Deserialize, ToSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ClientKind {
    App,
    Browser,
}

/// An app's tokens.
#[derive(Serialize, ToSchema)]
pub(crate) struct AppTokens {
    user_id: i64,
    token_type: &'static str,
    access_token: String,
    /// Seconds until the access token expires.
    expires_in: i64,
    refresh_token: String,
    /// Seconds until the refresh token expires (each refresh issues a new one).
    refresh_expires_in: i64,
}

/// A browser session: the session itself is in the `__Host-coss_session` cookie.
#[derive(Serialize, ToSchema)]
pub(crate) struct BrowserSession {
    user_id: i64,
    /// Send it back in `X-CSRF-Token` with every POST/PUT/PATCH/DELETE.
    csrf_token: String,
    /// Unix ms.
    expires_at: i64,
}

/// A refresh token to exchange.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RefreshBody {
    refresh_token: String,
}

/// The account's password, for a sensitive change.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    password: String,
}

/// The current and the new password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordChange {
    current_password: String,
    new_password: String,
}

/// What an authenticator app needs (shown once).
#[derive(Serialize, ToSchema)]
pub(crate) struct TotpEnrolment {
    /// Base32 seed for manual entry.
    secret: String,
    otpauth_uri: String,
    /// The URI as a QR code (SVG).
    qr_svg: String,
}

/// A TOTP code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CodeBody {
    code: String,
}

/// A TOTP code or a recovery code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FactorBody {
    code: Option<String>,
    recovery_code: Option<String>,
}

/// Recovery codes (shown once; each works once in place of a TOTP code).
#[derive(Serialize, ToSchema)]
pub(crate) struct RecoveryCodes {
    recovery_codes: Vec<String>,
}

fn factor<'a>(
    code: Option<&'a str>,
    recovery: Option<&'a str>,
) -> Result<Option<SecondFactor<'a>>, ApiError> {
    match (code, recovery) {
        (Some(_), Some(_)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_request",
            "send a TOTP code or a recovery code, not both",
        )),
        (Some(code), None) => Ok(Some(SecondFactor::Totp(code))),
        (None, Some(code)) => Ok(Some(SecondFactor::Recovery(code))),
        (None, None) => Ok(None),
    }
}

/// Create an account. The answer is the same whether or not the address already has one
/// (its owner is emailed instead), so sign-up tells nobody who is a customer; the link in the
/// email finishes it. Counted per client address and per recipient (429 past either).
#[utoipa::path(post, path = "/api/v1/auth/signup", tag = "auth", request_body = Credentials,
    responses((status = 202, description = "verification email queued (or the owner told)"),
              (status = 400, body = ApiError), (status = 429, body = ApiError),
              (status = 503, body = ApiError)))]
pub(crate) async fn signup(
    _: Public,
    State(gate): State<Gate>,
    ClientInfo(client): ClientInfo,
    JsonBody(request): JsonBody<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    gate.accounts
        .signup(&request.email, &request.password, &client, gate.now_ms())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "email_verification": "sent" })),
    ))
}

/// Confirm an email address with the emailed token.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", tag = "auth", request_body = TokenBody,
    responses((status = 200, description = "verified"), (status = 400, body = ApiError)))]
pub(crate) async fn verify_email(
    _: Public,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<TokenBody>,
) -> Result<impl IntoResponse, ApiError> {
    let id = gate
        .accounts
        .verify_email(&request.token, gate.now_ms())
        .await?;
    Ok(Json(
        serde_json::json!({ "user_id": id, "email_verified": true }),
    ))
}

/// Sign in. Apps get tokens in the body; browsers get an HttpOnly session cookie and a CSRF
/// token. Too many failures answer 429 with Retry-After.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginBody,
    responses((status = 200, description = "app tokens (client=app)", body = AppTokens),
              (status = 401, body = ApiError), (status = 403, body = ApiError),
              (status = 429, body = ApiError)))]
pub(crate) async fn login(
    _: Public,
    State(gate): State<Gate>,
    ClientInfo(client): ClientInfo,
    JsonBody(request): JsonBody<LoginBody>,
) -> Result<Response, ApiError> {
    let kind = match request.client.unwrap_or(ClientKind::App) {
        ClientKind::App => SessionKind::App,
        ClientKind::Browser => SessionKind::Browser,
    };
    let login = Login {
        email: &request.email,
        password: &request.password,
        second_factor: factor(
            request.totp_code.as_deref(),
            request.recovery_code.as_deref(),
        )?,
        kind,
        client,
    };
    let now = gate.now_ms();
    let grant = gate.accounts.login(&login, now).await?;
    Ok(grant_response(grant, kind, now))
}

fn grant_response(grant: Grant, kind: SessionKind, now: i64) -> Response {
    match kind {
        SessionKind::App => {
            let (refresh, refresh_expires_at) = grant
                .refresh
                .map(|(t, at)| (t.expose().to_owned(), at))
                .unwrap_or_default();
            Json(AppTokens {
                user_id: grant.user_id.0,
                token_type: "Bearer",
                access_token: grant.token.expose().to_owned(),
                expires_in: (grant.expires_at - now) / 1000,
                refresh_token: refresh,
                refresh_expires_in: (refresh_expires_at - now) / 1000,
            })
            .into_response()
        }
        SessionKind::Browser => {
            let mut response = Json(BrowserSession {
                user_id: grant.user_id.0,
                csrf_token: grant.csrf.clone().unwrap_or_default(),
                expires_at: grant.expires_at,
            })
            .into_response();
            set_session_cookies(&mut response, &grant);
            response
        }
    }
}

/// Exchange a refresh token (once) for new app tokens. A refresh token used twice ends its
/// session (`refresh_token_reused`).
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, body = AppTokens), (status = 400, body = ApiError),
              (status = 401, body = ApiError)))]
pub(crate) async fn refresh(
    _: Public,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<RefreshBody>,
) -> Result<Response, ApiError> {
    let now = gate.now_ms();
    let grant = gate.accounts.refresh(&request.refresh_token, now).await?;
    Ok(grant_response(grant, SessionKind::App, now))
}

/// End this session (cookies are cleared).
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth",
    responses((status = 204, description = "signed out"), (status = 401, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn logout(who: Caller, State(gate): State<Gate>) -> Result<Response, ApiError> {
    gate.accounts.logout(who.session_id, gate.now_ms()).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        set_cookie(
            &mut response,
            format!("{name}=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0"),
        );
    }
    Ok(response)
}

/// Ask for a password-reset email: the same answer, in the same time, whether or not the
/// account exists (the email is queued after answering). Counted per client address and
/// per recipient (429 past either, for known and unknown addresses alike).
#[utoipa::path(post, path = "/api/v1/auth/password-reset", tag = "auth", request_body = EmailBody,
    responses((status = 202, description = "sent if the account exists"),
              (status = 429, body = ApiError)))]
pub(crate) async fn password_reset(
    _: Public,
    State(gate): State<Gate>,
    ClientInfo(client): ClientInfo,
    JsonBody(request): JsonBody<EmailBody>,
) -> Result<impl IntoResponse, ApiError> {
    let now = gate.now_ms();
    if gate
        .accounts
        .admit_password_reset(&request.email, &client, now)
        .await?
    {
        let accounts = gate.accounts.clone();
        tokio::spawn(async move {
            if let Err(error) = accounts.send_password_reset(&request.email, now).await {
                tracing::warn!(%error, "password reset: could not queue the email");
            }
        });
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "password_reset": "sent if the account exists" })),
    ))
}

/// Set a new password with the emailed token; every session ends.
#[utoipa::path(post, path = "/api/v1/auth/password-reset/confirm", tag = "auth", request_body = ResetBody,
    responses((status = 200, description = "password set"), (status = 400, body = ApiError)))]
pub(crate) async fn password_reset_confirm(
    _: Public,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<ResetBody>,
) -> Result<impl IntoResponse, ApiError> {
    let id = gate
        .accounts
        .reset_password(&request.token, &request.password, gate.now_ms())
        .await?;
    Ok(Json(
        serde_json::json!({ "user_id": id, "sessions_ended": true }),
    ))
}

/// Change the password; every other session ends and the owner is emailed.
#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordChange,
    responses((status = 204, description = "changed"), (status = 400, body = ApiError),
              (status = 401, body = ApiError), (status = 429, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn change_password(
    who: Caller,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<PasswordChange>,
) -> Result<StatusCode, ApiError> {
    gate.accounts
        .change_password(
            &who,
            &request.current_password,
            &request.new_password,
            gate.now_ms(),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start TOTP enrolment with the account's password: a fresh seed as otpauth URI and QR
/// code. Not active until confirmed; confirming emails the owner.
#[utoipa::path(post, path = "/api/v1/auth/2fa/totp", tag = "auth", request_body = PasswordBody,
    responses((status = 200, body = TotpEnrolment), (status = 400, body = ApiError),
              (status = 401, body = ApiError), (status = 409, body = ApiError),
              (status = 429, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn totp_begin(
    who: Caller,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<PasswordBody>,
) -> Result<Json<TotpEnrolment>, ApiError> {
    let enrolment = gate
        .accounts
        .begin_totp_enrolment(&who, &request.password, gate.now_ms())
        .await?;
    Ok(Json(TotpEnrolment {
        secret: enrolment.secret.expose().to_owned(),
        otpauth_uri: enrolment.otpauth_uri.expose().to_owned(),
        qr_svg: enrolment.qr_svg,
    }))
}

/// Confirm enrolment with a current code: TOTP is on, recovery codes are returned once.
#[utoipa::path(post, path = "/api/v1/auth/2fa/totp/confirm", tag = "auth", request_body = CodeBody,
    responses((status = 200, body = RecoveryCodes), (status = 400, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn totp_confirm(
    who: Caller,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<CodeBody>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let codes = gate
        .accounts
        .confirm_totp(&who, &request.code, gate.now_ms())
        .await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes.iter().map(|c| c.expose().to_owned()).collect(),
    }))
}

/// Turn TOTP off (needs a current code or a recovery code).
#[utoipa::path(delete, path = "/api/v1/auth/2fa/totp", tag = "auth", request_body = FactorBody,
    responses((status = 204, description = "off"), (status = 400, body = ApiError),
              (status = 403, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn totp_disable(
    who: Caller,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<FactorBody>,
) -> Result<StatusCode, ApiError> {
    let factor = factor(request.code.as_deref(), request.recovery_code.as_deref())?
        .ok_or(IdentityError::TwoFactorRequired)?;
    gate.accounts
        .disable_totp(&who, &factor, gate.now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
