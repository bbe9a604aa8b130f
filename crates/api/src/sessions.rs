//! `/api/v1/sessions`: the account's signed-in browsers and apps, and signing one out (a lost
//! phone) or every other one.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use coss_http::{ApiError, Caller, Gate, Routes};
use coss_identity::IdentityError;
use serde::Serialize;
use utoipa::ToSchema;

pub(crate) fn routes() -> Routes<Gate> {
    Routes::new()
        .get("/api/v1/sessions", list)
        .post("/api/v1/sessions/revoke-others", revoke_others)
        .delete("/api/v1/sessions/{id}", revoke)
}

/// A signed-in browser or app.
#[derive(Serialize, ToSchema)]
pub(crate) struct SessionView {
    id: i64,
    /// `browser` (a cookie) or `app` (tokens).
    kind: String,
    /// The browser or app and the address it signed in from.
    device: String,
    /// Unix ms.
    created_at: i64,
    /// The session of this request.
    current: bool,
}

/// How many sessions ended.
#[derive(Serialize, ToSchema)]
pub(crate) struct Ended {
    ended: u64,
}

/// The account's live sessions, newest first.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "auth",
    responses((status = 200, body = Vec<SessionView>), (status = 401, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn list(
    who: Caller,
    State(gate): State<Gate>,
) -> Result<Json<Vec<SessionView>>, ApiError> {
    let sessions = gate.accounts.sessions(who.user_id).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|(id, kind, device, created_at)| SessionView {
                current: id == who.session_id,
                id,
                kind,
                device,
                created_at,
            })
            .collect(),
    ))
}

/// Signs one session out (its tokens stop working at once).
#[utoipa::path(delete, path = "/api/v1/sessions/{id}", tag = "auth",
    params(("id" = i64, Path, description = "the session")),
    responses((status = 204, description = "signed out"), (status = 401, body = ApiError), (status = 403, body = ApiError),
              (status = 404, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn revoke(
    who: Caller,
    State(gate): State<Gate>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id.parse().map_err(|_| IdentityError::SessionNotFound)?;
    gate.accounts
        .end_session(who.user_id, id, gate.now_ms())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Signs out every session but this one.
#[utoipa::path(post, path = "/api/v1/sessions/revoke-others", tag = "auth",
    responses((status = 200, body = Ended), (status = 401, body = ApiError), (status = 403, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
pub(crate) async fn revoke_others(
    who: Caller,
    State(gate): State<Gate>,
) -> Result<Json<Ended>, ApiError> {
    let ended = gate
        .accounts
        .end_other_sessions(who.user_id, who.session_id, gate.now_ms())
        .await?;
    Ok(Json(Ended { ended }))
}
