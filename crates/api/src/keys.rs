//! `/api/v1/api-keys`: list, create (TOTP code required; the secret is shown once), revoke;
//! and `GET /api/v1/api-keys/self`, a signed request that tells a client whether its key and
//! signatures work.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use coss_http::{ApiError, Caller, Gate, JsonBody, KeyCaller, Routes, need};
use coss_identity::{ApiKey, IdentityError, Permission};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub(crate) fn routes() -> Routes<Gate> {
    Routes::new()
        .get("/api/v1/api-keys", list)
        .post("/api/v1/api-keys", create)
        .get("/api/v1/api-keys/self", whoami)
        .delete("/api/v1/api-keys/{id}", revoke)
}

/// A key as listed (never its secret).
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyView {
    id: i64,
    api_key: String,
    label: String,
    permissions: Vec<String>,
    ip_allow_list: Vec<String>,
    created_at: i64,
    revoked_at: Option<i64>,
}

impl From<ApiKey> for KeyView {
    fn from(key: ApiKey) -> Self {
        Self {
            id: key.id,
            api_key: key.api_key,
            label: key.label,
            permissions: key
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            ip_allow_list: key.ip_allow_list,
            created_at: key.created_at,
            revoked_at: key.revoked_at,
        }
    }
}

/// A new key: the secret is in this response only.
#[derive(Serialize, ToSchema)]
pub(crate) struct CreatedKey {
    #[serde(flatten)]
    key: KeyView,
    secret: String,
}

/// What the new key may do; `read` is always included; `withdraw` needs an allow-list.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKeyBody {
    label: String,
    /// Any of read, trade, withdraw, merchant.
    #[serde(default)]
    permissions: Vec<String>,
    /// IP addresses or CIDR networks; empty accepts any address.
    #[serde(default)]
    ip_allow_list: Vec<String>,
    /// A current TOTP code (required).
    totp_code: Option<String>,
}

/// The key a signed request was made with.
#[derive(Serialize, ToSchema)]
pub(crate) struct KeyIdentity {
    user_id: i64,
    key_id: i64,
    permissions: Vec<String>,
}

/// The account's API keys, revoked ones included.
#[utoipa::path(get, path = "/api/v1/api-keys", tag = "api-keys",
    responses((status = 200, body = Vec<KeyView>), (status = 401, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn list(
    who: Caller,
    State(gate): State<Gate>,
) -> Result<Json<Vec<KeyView>>, ApiError> {
    let keys = gate.accounts.api_keys(who.user_id).await?;
    Ok(Json(keys.into_iter().map(KeyView::from).collect()))
}

/// Create a key (a current TOTP code is required). The secret is shown only here.
#[utoipa::path(post, path = "/api/v1/api-keys", tag = "api-keys", request_body = NewKeyBody,
    responses((status = 201, body = CreatedKey), (status = 400, body = ApiError),
              (status = 401, body = ApiError), (status = 403, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn create(
    who: Caller,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<NewKeyBody>,
) -> Result<(StatusCode, Json<CreatedKey>), ApiError> {
    let permissions = request
        .permissions
        .iter()
        .map(|p| Permission::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    let created = gate
        .accounts
        .create_api_key(
            &who,
            &request.label,
            &permissions,
            &request.ip_allow_list,
            request.totp_code.as_deref(),
            gate.now_ms(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedKey {
            secret: created.secret.expose().to_owned(),
            key: created.key.into(),
        }),
    ))
}

/// Revoke a key; it stops working on the next request.
#[utoipa::path(delete, path = "/api/v1/api-keys/{id}", tag = "api-keys",
    params(("id" = i64, Path, description = "the key's id")),
    responses((status = 204, description = "revoked"), (status = 404, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn revoke(
    who: Caller,
    State(gate): State<Gate>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id.parse().map_err(|_| IdentityError::ApiKeyNotFound)?;
    gate.accounts
        .revoke_api_key(who.user_id, id, gate.now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Check a key and its signatures: sign `timestamp=…` (and optionally `recvWindow=…`) with
/// HMAC-SHA256 and send the key in `X-MBX-APIKEY`.
#[utoipa::path(get, path = "/api/v1/api-keys/self", tag = "api-keys",
    params(("timestamp" = i64, Query, description = "Unix ms"),
           ("recvWindow" = Option<i64>, Query, description = "ms, default 5000, at most 60000"),
           ("signature" = String, Query, description = "hex HMAC-SHA256 of query + body")),
    responses((status = 200, body = KeyIdentity), (status = 400, body = ApiError),
              (status = 401, body = ApiError), (status = 403, body = ApiError)),
    security(("api_key" = [])))]
pub(crate) async fn whoami(signed: KeyCaller<need::Read>) -> Json<KeyIdentity> {
    let key = signed.key;
    Json(KeyIdentity {
        user_id: key.user_id.0,
        key_id: key.key_id,
        permissions: key
            .permissions
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
    })
}
