//! COSS's own accounts API under `/api/v1`, as routes the platform mounts: sign-up, email
//! verification, login for browsers (cookies and CSRF tokens) or apps (access and refresh
//! tokens), logout, password change and reset, the TOTP second factor, API keys (and a signed
//! `self` check of a client's signatures), the user profile (`me`) and the merchant profile.
//! Every error is `{"code": "...", "message": "..."}` with a stable code and the matching
//! status (429 carries Retry-After); request bodies are JSON of at most 16 KiB with no unknown
//! fields. The OpenAPI description is generated from the handlers' annotations. This layer
//! maps HTTP to the rules of `coss-identity`; what every edge shares (the caller, errors,
//! bodies, the client's address) is `coss-http`.

use coss_http::{ApiError, Gate, Routes, SESSION_COOKIE};
use utoipa::OpenApi;

mod auth;
mod keys;
mod profile;
mod sessions;

/// The accounts, API-key and profile routes.
pub fn router(gate: Gate) -> Routes {
    auth::routes()
        .merge(keys::routes())
        .merge(profile::routes())
        .merge(sessions::routes())
        .with_state(gate)
}

/// The OpenAPI document of everything [`accounts_router`] serves.
pub fn openapi() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "COSS API",
        description = "COSS's own API: accounts, second factor, API keys, profiles. Errors are {\"code\", \"message\"}."
    ),
    paths(
        auth::signup,
        auth::verify_email,
        auth::login,
        auth::refresh,
        auth::logout,
        auth::password_reset,
        auth::password_reset_confirm,
        auth::change_password,
        auth::totp_begin,
        auth::totp_confirm,
        auth::totp_disable,
        keys::list,
        keys::create,
        keys::revoke,
        keys::whoami,
        profile::me,
        profile::patch_me,
        profile::get_merchant,
        profile::put_merchant,
        profile::rotate_webhook_secret,
        sessions::list,
        sessions::revoke,
        sessions::revoke_others,
    ),
    components(schemas(ApiError)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

struct SecuritySchemes;

impl utoipa::Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                SESSION_COOKIE,
                "browser session; changes also need the X-CSRF-Token header",
            ))),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-MBX-APIKEY",
                "with timestamp, recvWindow and an HMAC-SHA256 signature of query + body",
            ))),
        );
    }
}
