//! The platform's own routes (health, engine status, metrics, the OpenAPI documents) and the
//! assembly of every edge into one router.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use coss_binance::Binance;
use coss_engine::EngineHandle;
use coss_http::{ApiError, Public, Routes};
use utoipa::OpenApi;

use crate::Metrics;

/// The OpenAPI documents the server serves: COSS's own API (accounts, wallets, the DAO, single
/// sign-on and the platform's status) at `/openapi.json`, and the Binance-compatible API with
/// its streams at `/api/v3/openapi.json`. Both are also committed under `docs/openapi/`, and a
/// test fails when the code drifts from them.
#[must_use]
pub fn documents() -> (utoipa::openapi::OpenApi, utoipa::openapi::OpenApi) {
    let mut own = coss_api::openapi()
        .merge_from(coss_wallet::api::openapi())
        .merge_from(coss_gateway::api::openapi())
        .merge_from(coss_dao::api::openapi())
        .merge_from(coss_sso::openapi())
        .merge_from(StatusDoc::openapi());
    let mut binance = coss_binance::openapi();
    // Every status the server really sends, including the edge's own answers.
    coss_http::document_edge_answers(&mut own);
    coss_http::document_edge_answers(&mut binance);
    (own, binance)
}

#[derive(OpenApi)]
#[openapi(paths(health, engine_status, metrics, own_document, binance_document))]
struct StatusDoc;

/// What the status routes read.
#[derive(Debug, Clone)]
pub(crate) struct Status {
    pub(crate) engine: EngineHandle,
    pub(crate) binance: Binance,
    pub(crate) metrics: Metrics,
}

/// Health, engine status, metrics and the OpenAPI documents.
pub(crate) fn status_routes(status: Status) -> Routes {
    Routes::new()
        .get("/health", health)
        .get("/api/v1/engine/status", engine_status)
        .get("/metrics", metrics)
        .get("/openapi.json", own_document)
        .get("/api/v3/openapi.json", binance_document)
        .with_state(status)
}

/// Healthy while the engine answers (it stops answering once halted, e.g. by a journal
/// failure).
#[utoipa::path(get, path = "/health", tag = "platform",
    responses((status = 200, description = "ok"), (status = 503, description = "engine stopped")))]
async fn health(_: Public, State(status): State<Status>) -> (StatusCode, &'static str) {
    match status.engine.status_async().await {
        Ok(_) => (StatusCode::OK, "ok"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "engine stopped"),
    }
}

/// The engine's progress.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct EngineStatus {
    /// Commands applied.
    commands: u64,
    /// The last event's sequence number.
    last_seq: u64,
}

/// How far the engine is: commands applied and the last event's sequence number.
#[utoipa::path(get, path = "/api/v1/engine/status", tag = "platform",
    responses((status = 200, body = EngineStatus), (status = 503, body = ApiError)))]
async fn engine_status(
    _: Public,
    State(status): State<Status>,
) -> Result<Json<EngineStatus>, ApiError> {
    match status.engine.status_async().await {
        Ok(now) => Ok(Json(EngineStatus {
            commands: now.commands,
            last_seq: now.last_seq,
        })),
        Err(error) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "engine_stopped",
            error.to_string(),
        )),
    }
}

/// Prometheus metrics: requests by route and status with latency histograms, the engine's
/// commands and event sequence, how far the market projection lags, open stream connections.
#[utoipa::path(get, path = "/metrics", tag = "platform",
    responses((status = 200, description = "Prometheus text exposition format", content_type = "text/plain")))]
async fn metrics(
    _: Public,
    State(status): State<Status>,
) -> ([(axum::http::HeaderName, &'static str); 1], String) {
    use std::fmt::Write;
    let mut text = status.metrics.render();
    if let Ok(now) = status.engine.status_async().await {
        let _ = writeln!(
            text,
            "# HELP coss_engine_commands Commands applied by the engine.\n# TYPE coss_engine_commands counter\ncoss_engine_commands {}",
            now.commands
        );
        let _ = writeln!(
            text,
            "# HELP coss_engine_last_seq Last event sequence number.\n# TYPE coss_engine_last_seq gauge\ncoss_engine_last_seq {}",
            now.last_seq
        );
        let lag = now
            .last_seq
            .saturating_sub(status.binance.market().applied());
        let _ = writeln!(
            text,
            "# HELP coss_market_lag_events Events the market projection has yet to apply.\n# TYPE coss_market_lag_events gauge\ncoss_market_lag_events {lag}"
        );
    }
    let _ = writeln!(
        text,
        "# HELP coss_stream_connections Open WebSocket stream connections.\n# TYPE coss_stream_connections gauge\ncoss_stream_connections {}",
        status.binance.stream_connections()
    );
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        text,
    )
}

/// This document: COSS's own API.
#[utoipa::path(get, path = "/openapi.json", tag = "platform",
    responses((status = 200, description = "the OpenAPI document of COSS's own API")))]
async fn own_document(_: Public) -> Json<utoipa::openapi::OpenApi> {
    Json(documents().0)
}

/// The OpenAPI document of the Binance-compatible API.
#[utoipa::path(get, path = "/api/v3/openapi.json", tag = "platform",
    responses((status = 200, description = "the OpenAPI document of the Binance-compatible API")))]
async fn binance_document(_: Public) -> Json<utoipa::openapi::OpenApi> {
    Json(documents().1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::panic)]
mod tests {
    /// The committed OpenAPI documents equal what the code generates. After an API change,
    /// `make openapi` rewrites them (and the diff shows the change for review).
    #[test]
    fn the_committed_openapi_documents_match_the_code() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi");
        let (own, binance) = super::documents();
        for (name, doc) in [("coss-v1.json", own), ("binance-v3.json", binance)] {
            let generated = format!("{}\n", serde_json::to_string_pretty(&doc).unwrap());
            let path = dir.join(name);
            if std::env::var_os("COSS_WRITE_OPENAPI").is_some() {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&path, &generated).unwrap();
                continue;
            }
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == generated,
                "{} drifted from the code: run `make openapi` and commit the result",
                path.display()
            );
        }
    }
}
