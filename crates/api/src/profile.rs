//! `/api/v1/me` (account and user profile) and `/api/v1/merchant` (merchant profile and its
//! webhook signing secret).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use coss_http::{ApiError, Caller, Gate, JsonBody, Routes};
use coss_identity::{Accounts, IdentityError, Merchant, MerchantInput, ProfilePatch};
use coss_types::UserId;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

pub(crate) fn routes() -> Routes<Gate> {
    Routes::new()
        .get("/api/v1/me", me)
        .patch("/api/v1/me", patch_me)
        .get("/api/v1/merchant", get_merchant)
        .put("/api/v1/merchant", put_merchant)
        .post("/api/v1/merchant/webhook-secret", rotate_webhook_secret)
}

/// The signed-in account and its profile.
#[derive(Serialize, ToSchema)]
pub(crate) struct Me {
    user_id: i64,
    email: String,
    email_verified: bool,
    created_at: i64,
    two_factor_enabled: bool,
    display_name: Option<String>,
    /// ISO 3166-1 alpha-2.
    country: Option<String>,
    /// Set by the back office; bounds withdrawals.
    verification_level: i64,
}

/// Fields to change; `null` clears a field, an absent field stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MePatch {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    display_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    country: Option<Option<String>>,
}

/// Tells a present `null` (Some(None)) from an absent field (None).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A merchant profile.
#[derive(Serialize, ToSchema)]
pub(crate) struct MerchantView {
    business_name: String,
    website: Option<String>,
    settlement_asset: String,
    /// `hold` or `convert`.
    settlement_mode: String,
    webhook_url: Option<String>,
    created_at: i64,
    updated_at: i64,
    /// Only in the response that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    webhook_secret: Option<String>,
}

impl MerchantView {
    fn new(merchant: Merchant, webhook_secret: Option<String>) -> Self {
        Self {
            business_name: merchant.business_name,
            website: merchant.website,
            settlement_asset: merchant.settlement_asset,
            settlement_mode: merchant.settlement_mode,
            webhook_url: merchant.webhook_url,
            created_at: merchant.created_at,
            updated_at: merchant.updated_at,
            webhook_secret,
        }
    }
}

/// A merchant profile as submitted.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MerchantBody {
    business_name: String,
    website: Option<String>,
    settlement_asset: String,
    /// `hold` (keep what was paid) or `convert` (to the settlement asset).
    settlement_mode: String,
    /// https (http only to loopback).
    webhook_url: Option<String>,
}

/// A new webhook signing secret (shown once).
#[derive(Serialize, ToSchema)]
pub(crate) struct WebhookSecret {
    webhook_secret: String,
}

/// The signed-in account and its profile.
#[utoipa::path(get, path = "/api/v1/me", tag = "profile",
    responses((status = 200, body = Me), (status = 401, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn me(who: Caller, State(gate): State<Gate>) -> Result<Json<Me>, ApiError> {
    view(&gate.accounts, who.user_id).await
}

async fn view(accounts: &Accounts, user_id: UserId) -> Result<Json<Me>, ApiError> {
    let user = accounts
        .store()
        .user(user_id)
        .await
        .map_err(IdentityError::from)?
        .ok_or(IdentityError::Unauthenticated)?;
    let profile = accounts.profile(user_id).await?;
    Ok(Json(Me {
        user_id: user.id.0,
        email: user.email,
        email_verified: user.email_verified_at.is_some(),
        created_at: user.created_at,
        two_factor_enabled: accounts.two_factor_enabled(user_id).await?,
        display_name: profile.display_name,
        country: profile.country,
        verification_level: profile.verification_level,
    }))
}

/// Change the display name or country.
#[utoipa::path(patch, path = "/api/v1/me", tag = "profile", request_body = MePatch,
    responses((status = 200, body = Me), (status = 400, body = ApiError),
              (status = 401, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn patch_me(
    who: Caller,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<MePatch>,
) -> Result<Json<Me>, ApiError> {
    let patch = ProfilePatch {
        display_name: request.display_name,
        country: request.country,
    };
    gate.accounts
        .update_profile(who.user_id, &patch, gate.now_ms())
        .await?;
    view(&gate.accounts, who.user_id).await
}

fn no_merchant() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_merchant_profile",
        "this account has no merchant profile; PUT one first",
    )
}

/// The merchant profile.
#[utoipa::path(get, path = "/api/v1/merchant", tag = "profile",
    responses((status = 200, body = MerchantView), (status = 404, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn get_merchant(
    who: Caller,
    State(gate): State<Gate>,
) -> Result<Json<MerchantView>, ApiError> {
    let merchant = gate
        .accounts
        .merchant(who.user_id)
        .await?
        .ok_or_else(no_merchant)?;
    Ok(Json(MerchantView::new(merchant, None)))
}

/// Create or replace the merchant profile; the first save returns the webhook signing secret.
#[utoipa::path(put, path = "/api/v1/merchant", tag = "profile", request_body = MerchantBody,
    responses((status = 200, body = MerchantView), (status = 400, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn put_merchant(
    who: Caller,
    State(gate): State<Gate>,
    JsonBody(request): JsonBody<MerchantBody>,
) -> Result<Json<MerchantView>, ApiError> {
    let input = MerchantInput {
        business_name: request.business_name,
        website: request.website,
        settlement_asset: request.settlement_asset,
        settlement_mode: request.settlement_mode,
        webhook_url: request.webhook_url,
    };
    let (merchant, secret) = gate
        .accounts
        .put_merchant(who.user_id, &input, gate.now_ms())
        .await?;
    Ok(Json(MerchantView::new(
        merchant,
        secret.map(|s| s.expose().to_owned()),
    )))
}

/// Replace the webhook signing secret (shown once).
#[utoipa::path(post, path = "/api/v1/merchant/webhook-secret", tag = "profile",
    responses((status = 200, body = WebhookSecret), (status = 404, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn rotate_webhook_secret(
    who: Caller,
    State(gate): State<Gate>,
) -> Result<Json<WebhookSecret>, ApiError> {
    if gate.accounts.merchant(who.user_id).await?.is_none() {
        return Err(no_merchant());
    }
    let secret = gate
        .accounts
        .rotate_webhook_secret(who.user_id, gate.now_ms())
        .await?;
    Ok(Json(WebhookSecret {
        webhook_secret: secret.expose().to_owned(),
    }))
}
