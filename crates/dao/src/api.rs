//! `/api/v1/dao/…`: the revenue-share configuration, every week's report (public: pools, total
//! holding, holders, paid, carried over and the Merkle root), and for a signed-in holder their
//! username (the one to give the token contract's `setRevenueUsername`) and, per week, their
//! holding, payouts and Merkle proof. Amounts are given both in smallest units and in whole
//! units. Errors are `{"code", "message"}` with stable codes.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use coss_core::Exchange;
use coss_http::{ApiError, Caller, Gate, JsonBody, Public, Query, Routes};
use coss_store::UsernameClaim;
use coss_types::{AccountId, Amount, AssetId};
use serde::{Deserialize, Serialize};

use crate::{Dao, DaoError, HolderWeek, parse_week, valid_username, week_name};

/// How many weeks the lists show.
pub const WEEKS_LIMIT: i64 = 104;

/// The OpenAPI description of the DAO routes (merged into `/openapi.json`).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    DaoDoc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(config, weeks, one_week, me, username, set_username),
    components(schemas(ApiError))
)]
struct DaoDoc;

#[derive(Clone)]
struct DaoApi {
    dao: Dao,
    gate: Gate,
}

impl FromRef<DaoApi> for Gate {
    fn from_ref(api: &DaoApi) -> Gate {
        api.gate.clone()
    }
}

/// The DAO API.
pub fn router(dao: Dao, gate: Gate) -> Routes {
    Routes::new()
        .get("/api/v1/dao/config", config)
        .get("/api/v1/dao/weeks", weeks)
        .get("/api/v1/dao/weeks/{week}", one_week)
        .get("/api/v1/dao/me", me)
        .get("/api/v1/dao/username", username)
        .put("/api/v1/dao/username", set_username)
        .with_state(DaoApi { dao, gate })
}

impl From<DaoError> for ApiError {
    fn from(error: DaoError) -> Self {
        use DaoError as E;
        let status = match &error {
            E::InvalidWeek(_) | E::InvalidUsername | E::InvalidSchedule(_) => {
                StatusCode::BAD_REQUEST
            }
            E::UnknownWeek => StatusCode::NOT_FOUND,
            E::UsernameTaken | E::HasUsername(_) => StatusCode::CONFLICT,
            E::Engine(_) | E::Chain(_) => StatusCode::SERVICE_UNAVAILABLE,
            E::Rejected(_) | E::Mismatch { .. } | E::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "DAO internal error");
            return ApiError::new(status, "internal", "internal error");
        }
        ApiError::new(status, error.code(), error.to_string())
    }
}

/// Symbol and decimals of every listed asset.
async fn assets(dao: &Dao) -> Result<HashMap<u32, (String, u8, bool)>, ApiError> {
    dao.engine()
        .read_async(|ex: &Exchange| {
            (0..coss_core::MAX_ASSETS)
                .filter_map(|id| {
                    ex.asset_info(AssetId(id))
                        .map(|a| (id, (a.symbol, a.decimals, a.fees_shared)))
                })
                .collect()
        })
        .await
        .map_err(|e| ApiError::from(DaoError::from(e)))
}

/// An asset's place in the revenue share.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct AssetShare {
    asset: u32,
    symbol: String,
    /// Whether its fees are shared with holders (crypto yes, fiat no).
    fees_shared: bool,
}

/// The revenue share's configuration.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct ConfigView {
    /// Holders' share of shareable trading and gateway fees, e.g. `0.5`.
    share: String,
    /// The same in parts per million.
    share_ppm: u32,
    /// When weeks close (UTC), e.g. `SUN 05:00`.
    close: String,
    /// The next close (Unix ms) and its week.
    next_close_ms: Option<u64>,
    next_week: Option<String>,
    /// The smallest holding that counts, in COSS.
    min_holding: String,
    /// Every asset and whether its fees are shared.
    assets: Vec<AssetShare>,
}

#[utoipa::path(get, path = "/api/v1/dao/config", tag = "dao",
    responses((status = 200, body = ConfigView)))]
async fn config(_: Public, State(api): State<DaoApi>) -> Result<Json<ConfigView>, ApiError> {
    let config = api.dao.config().clone();
    let (share_ppm, schedule) = api
        .dao
        .engine()
        .read_async(|ex: &Exchange| (ex.holders_share_ppm(), ex.dao_schedule()))
        .await
        .map_err(|e| ApiError::from(DaoError::from(e)))?;
    let assets = assets(&api.dao).await?;
    let coss_decimals = assets.get(&config.coss.0).map_or(8, |a| a.1);
    let mut list: Vec<AssetShare> = assets
        .into_iter()
        .map(|(asset, (symbol, _, fees_shared))| AssetShare {
            asset,
            symbol,
            fees_shared,
        })
        .collect();
    list.sort_by_key(|a| a.asset);
    Ok(Json(ConfigView {
        share: {
            let text = Amount(u128::from(share_ppm)).to_decimal_string(6);
            let text = text.trim_end_matches('0');
            text.strip_suffix('.').unwrap_or(text).to_owned()
        },
        share_ppm,
        close: config.close.to_string(),
        next_close_ms: schedule.map(|s| s.next_close_ms),
        next_week: schedule.map(|s| week_name(s.next_close_ms)),
        min_holding: Amount(config.min_holding).to_decimal_string(coss_decimals),
        assets: list,
    }))
}

/// One asset of a week's report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct AssetReport {
    asset: u32,
    symbol: String,
    /// What the holders' fee account held at the close (with last week's remainder).
    pool: String,
    /// Holders credited a non-zero amount.
    holders: i64,
    paid: String,
    /// Left over by rounding down; part of next week's pool.
    carried: String,
}

/// A week's report.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct WeekReport {
    week: String,
    close_ms: i64,
    /// The chain block on-chain holdings were read at.
    block_number: Option<i64>,
    holders: i64,
    /// Total COSS counted.
    total_holding: String,
    /// Merkle root of the payouts (hex).
    root: String,
    /// When it was paid out completely (Unix ms), if it has been.
    paid_at: Option<i64>,
    assets: Vec<AssetReport>,
}

async fn report(
    api: &DaoApi,
    record: coss_store::DaoWeekRecord,
    symbols: &HashMap<u32, (String, u8, bool)>,
) -> Result<WeekReport, ApiError> {
    let coss_decimals = symbols.get(&api.dao.config().coss.0).map_or(8, |a| a.1);
    let lines = api
        .dao
        .store()
        .dao_week_assets(record.close_ms)
        .await
        .map_err(DaoError::from)?;
    let assets = lines
        .into_iter()
        .map(|line| {
            let asset = u32::try_from(line.asset).unwrap_or(0);
            let (symbol, decimals, _) = symbols.get(&asset).cloned().unwrap_or_default();
            AssetReport {
                asset,
                symbol,
                pool: line.pool.to_decimal_string(decimals),
                holders: line.holders,
                paid: line.paid.to_decimal_string(decimals),
                carried: line.carried.to_decimal_string(decimals),
            }
        })
        .collect();
    Ok(WeekReport {
        week: record.week,
        close_ms: record.close_ms,
        block_number: record.block_number,
        holders: record.holders,
        total_holding: record.total.to_decimal_string(coss_decimals),
        root: record.root,
        paid_at: record.paid_at,
        assets,
    })
}

#[utoipa::path(get, path = "/api/v1/dao/weeks", tag = "dao",
    responses((status = 200, body = Vec<WeekReport>)))]
async fn weeks(_: Public, State(api): State<DaoApi>) -> Result<Json<Vec<WeekReport>>, ApiError> {
    let symbols = assets(&api.dao).await?;
    let records = api
        .dao
        .store()
        .dao_weeks(WEEKS_LIMIT)
        .await
        .map_err(DaoError::from)?;
    let mut list = Vec::with_capacity(records.len());
    for record in records {
        list.push(report(&api, record, &symbols).await?);
    }
    Ok(Json(list))
}

#[utoipa::path(get, path = "/api/v1/dao/weeks/{week}", tag = "dao",
    params(("week" = String, Path, description = "ISO week, e.g. 2026-W48")),
    responses((status = 200, body = WeekReport), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn one_week(
    _: Public,
    State(api): State<DaoApi>,
    Path(week): Path<String>,
) -> Result<Json<WeekReport>, ApiError> {
    let week = parse_week(&week)?;
    let record = api
        .dao
        .store()
        .dao_week(&week)
        .await
        .map_err(DaoError::from)?
        .ok_or(DaoError::UnknownWeek)?;
    let symbols = assets(&api.dao).await?;
    Ok(Json(report(&api, record, &symbols).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeQuery {
    week: Option<String>,
}

/// A holder's weeks.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct MeView {
    /// The username to give `setRevenueUsername` (none chosen yet: null).
    username: Option<String>,
    /// The weeks, newest first, with leaves and proofs.
    weeks: Vec<HolderWeek>,
}

fn account_of(user: coss_types::UserId) -> Result<AccountId, ApiError> {
    coss_identity::exchange_account(user).ok_or_else(|| ApiError::from(DaoError::UnknownWeek))
}

#[utoipa::path(get, path = "/api/v1/dao/me", tag = "dao",
    params(("week" = Option<String>, Query, description = "one week (default: the last twelve)")),
    responses((status = 200, body = MeView), (status = 401, body = ApiError), (status = 404, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
async fn me(
    who: Caller,
    State(api): State<DaoApi>,
    Query(query): Query<MeQuery>,
) -> Result<Json<MeView>, ApiError> {
    let user = who.user_id;
    let account = account_of(user)?;
    let symbols: HashMap<u32, (String, u8)> = assets(&api.dao)
        .await?
        .into_iter()
        .map(|(id, (symbol, decimals, _))| (id, (symbol, decimals)))
        .collect();
    let names = match query.week {
        Some(week) => vec![parse_week(&week)?],
        None => {
            let account = i64::try_from(account.0).unwrap_or(i64::MAX);
            let mut names = Vec::new();
            for (close_ms, _, _) in api
                .dao
                .store()
                .dao_holdings_of(account, 12)
                .await
                .map_err(DaoError::from)?
            {
                names.push(week_name(u64::try_from(close_ms).unwrap_or(0)));
            }
            names
        }
    };
    let mut weeks = Vec::with_capacity(names.len());
    for name in names {
        if let Some(week) = api.dao.holder_week(account, &name, &symbols).await? {
            weeks.push(week);
        }
    }
    let username = api
        .dao
        .store()
        .username_of(user)
        .await
        .map_err(DaoError::from)?;
    Ok(Json(MeView { username, weeks }))
}

/// The account's COSS username.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct UsernameView {
    /// 1–32 of a-z 0-9 . _ - (permanent once chosen).
    username: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/dao/username", tag = "dao",
    responses((status = 200, body = UsernameView), (status = 401, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
async fn username(who: Caller, State(api): State<DaoApi>) -> Result<Json<UsernameView>, ApiError> {
    let user = who.user_id;
    let username = api
        .dao
        .store()
        .username_of(user)
        .await
        .map_err(DaoError::from)?;
    Ok(Json(UsernameView { username }))
}

#[utoipa::path(put, path = "/api/v1/dao/username", tag = "dao", request_body = UsernameView,
    responses((status = 200, body = UsernameView), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 409, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
async fn set_username(
    who: Caller,
    State(api): State<DaoApi>,
    JsonBody(input): JsonBody<UsernameView>,
) -> Result<Json<UsernameView>, ApiError> {
    let user = who.user_id;
    let name = input.username.unwrap_or_default();
    if !valid_username(&name) {
        return Err(DaoError::InvalidUsername.into());
    }
    let claim = api
        .dao
        .store()
        .claim_username(user, &name, api.gate.now_ms())
        .await
        .map_err(DaoError::from)?;
    match claim {
        UsernameClaim::Claimed | UsernameClaim::AlreadyYours => Ok(Json(UsernameView {
            username: Some(name),
        })),
        UsernameClaim::Taken => Err(DaoError::UsernameTaken.into()),
        UsernameClaim::HasAnother(current) => Err(DaoError::HasUsername(current).into()),
    }
}
