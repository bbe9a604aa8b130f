//! `/api/v1/wallet/…`: assets and balances, the deposit address, deposit and withdrawal
//! history (with transaction hashes, confirmations and every status change), withdrawal
//! requests and cancellation, internal transfers, and the withdrawal allow-list. Callers
//! authenticate as for the rest of `/api/v1` (bearer token, or session cookie plus CSRF
//! token); money-moving requests take the second-factor code in the body and an optional
//! `Idempotency-Key` header (a retry with the same key returns the first result). Amounts
//! are decimal strings in whole units. Errors are `{"code", "message"}` with stable codes.

use axum::Json;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, StatusCode};
use coss_http::{ApiError, Caller, Gate, JsonBody, Public, Query, Routes};
use coss_store::{DepositRecord, DepositStatus, Subject, WalletEvent, WithdrawalRecord};
use coss_types::{Amount, UserId};
use serde::{Deserialize, Serialize};

use crate::{BalanceView, TransferRequest, Wallet, WalletError, WithdrawalRequest, hex_of};

/// How many records a history lists.
pub const HISTORY_LIMIT: i64 = 200;

/// The OpenAPI description of the wallet routes (merged into `/openapi.json`).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    WalletDoc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        assets,
        balances,
        statement,
        deposit_address,
        deposits,
        withdrawals,
        one_withdrawal,
        withdraw,
        cancel,
        transfer,
        transfers,
        allow_list,
        allow_address,
        disallow_address,
        allow_list_mode,
        test_funds_offer,
        test_funds,
    ),
    components(schemas(ApiError))
)]
struct WalletDoc;

/// The wallet routes' state: the wallets, and the gate their callers pass.
#[derive(Debug, Clone)]
struct WalletApi {
    wallet: Wallet,
    gate: Gate,
}

impl FromRef<WalletApi> for Wallet {
    fn from_ref(api: &WalletApi) -> Wallet {
        api.wallet.clone()
    }
}

impl FromRef<WalletApi> for Gate {
    fn from_ref(api: &WalletApi) -> Gate {
        api.gate.clone()
    }
}

/// The wallet API.
pub fn router(wallet: Wallet, gate: Gate) -> Routes {
    Routes::new()
        .get("/api/v1/wallet/assets", assets)
        .get("/api/v1/wallet/balances", balances)
        .get("/api/v1/wallet/statement", statement)
        .get("/api/v1/wallet/deposit-address", deposit_address)
        .get("/api/v1/wallet/deposits", deposits)
        .get("/api/v1/wallet/withdrawals", withdrawals)
        .post("/api/v1/wallet/withdrawals", withdraw)
        .get("/api/v1/wallet/withdrawals/{id}", one_withdrawal)
        .post("/api/v1/wallet/withdrawals/{id}/cancel", cancel)
        .get("/api/v1/wallet/transfers", transfers)
        .post("/api/v1/wallet/transfers", transfer)
        .get("/api/v1/wallet/withdrawal-addresses", allow_list)
        .post("/api/v1/wallet/withdrawal-addresses", allow_address)
        .delete(
            "/api/v1/wallet/withdrawal-addresses/{address}",
            disallow_address,
        )
        .post("/api/v1/wallet/withdrawal-addresses/mode", allow_list_mode)
        .get("/api/v1/wallet/test-funds", test_funds_offer)
        .post("/api/v1/wallet/test-funds", test_funds)
        .with_state(WalletApi { wallet, gate })
}

impl From<WalletError> for ApiError {
    fn from(error: WalletError) -> Self {
        use WalletError as E;
        let status = match error {
            E::Identity(e) => return e.into(),
            E::UnknownAsset(_)
            | E::InvalidAmount(_)
            | E::InvalidAddress
            | E::BadChecksum
            | E::InternalAddress
            | E::BelowMinimum { .. }
            | E::InsufficientBalance
            | E::Rejected(_)
            | E::UnknownRecipient
            | E::SameAccount
            | E::InvalidIdempotencyKey => StatusCode::BAD_REQUEST,
            E::LimitExceeded { .. } | E::NotAllowListed => StatusCode::FORBIDDEN,
            E::NotFound | E::NoTestFunds => StatusCode::NOT_FOUND,
            E::TestFundsTooSoon { retry_after_s } => {
                let seconds = i64::try_from(retry_after_s).unwrap_or(i64::MAX);
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    error.code(),
                    error.to_string(),
                )
                .retry_after_ms(seconds.saturating_mul(1000));
            }
            E::NotCancellable(_) => StatusCode::CONFLICT,
            E::Chain(_)
            | E::WrongChain { .. }
            | E::Engine(_)
            | E::HoldMismatch
            | E::Halted
            | E::WithdrawalsHalted => StatusCode::SERVICE_UNAVAILABLE,
            E::Config(_) | E::Keys(_) | E::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(%error, "wallet internal error");
            return ApiError::new(status, "internal", "internal error");
        }
        ApiError::new(status, error.code(), error.to_string())
    }
}

#[derive(Serialize, utoipa::ToSchema)]
struct AssetView {
    symbol: String,
    /// `null` for the chain's own coin.
    contract: Option<String>,
    decimals: u8,
    confirmations: u64,
    withdrawal_fee: String,
    min_withdrawal: String,
    chain_id: u64,
}

#[utoipa::path(get, path = "/api/v1/wallet/assets", tag = "wallet",
    responses((status = 200, body = Vec<AssetView>)))]
async fn assets(_: Public, State(wallet): State<Wallet>) -> Json<Vec<AssetView>> {
    let config = wallet.config();
    // The fee in force is the core's (the back office changes it); the configuration only
    // seeds it at the first listing.
    let ids: Vec<coss_types::AssetId> = config.assets.iter().map(|a| a.asset).collect();
    let fees: Vec<Option<(u128, u128)>> = wallet
        .inner
        .engine
        .read_async(move |e| {
            ids.iter()
                .map(|id| {
                    e.asset_info(*id)
                        .map(|info| (info.withdrawal_fee.0, info.withdrawal_minimum.0))
                })
                .collect()
        })
        .await
        .unwrap_or_default();
    Json(
        config
            .assets
            .iter()
            .enumerate()
            .map(|(i, a)| AssetView {
                symbol: a.symbol.clone(),
                contract: a.token.map(|t| t.to_checksum(None)),
                decimals: a.decimals,
                confirmations: a.confirmations,
                withdrawal_fee: Amount(
                    fees.get(i)
                        .copied()
                        .flatten()
                        .map_or(a.withdrawal_fee, |(fee, _)| fee),
                )
                .to_decimal_string(a.decimals),
                min_withdrawal: Amount(
                    fees.get(i)
                        .copied()
                        .flatten()
                        .map(|(_, minimum)| minimum)
                        .filter(|m| *m > 0)
                        .unwrap_or(a.min_withdrawal),
                )
                .to_decimal_string(a.decimals),
                chain_id: config.chain_id,
            })
            .collect(),
    )
}

#[utoipa::path(get, path = "/api/v1/wallet/balances", tag = "wallet",
    responses((status = 200, body = Vec<BalanceView>), (status = 401, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn balances(
    who: Caller,
    State(wallet): State<Wallet>,
) -> Result<Json<Vec<BalanceView>>, ApiError> {
    let user = who.user_id;
    Ok(Json(wallet.balances(user).await?))
}

/// One line of a statement: the balance after a change.
#[derive(Serialize, utoipa::ToSchema)]
struct StatementLine {
    /// The event's sequence number (pass it as `after` for the next page).
    seq: i64,
    /// Spendable after the change, whole units.
    available: String,
    /// Held after the change, whole units.
    locked: String,
    /// When (Unix ms).
    time: i64,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct StatementQuery {
    /// The asset's symbol.
    asset: String,
    /// Lines after this sequence number (default: from the start).
    after: Option<i64>,
    /// At most this many lines (1–1000, default 500).
    limit: Option<i64>,
}

/// The caller's statement in one asset: the balance after every change (deposits, trades,
/// fees, withdrawals, transfers), oldest first, from the history the engine's events fill.
#[utoipa::path(get, path = "/api/v1/wallet/statement", tag = "wallet", params(StatementQuery),
    responses((status = 200, body = Vec<StatementLine>), (status = 400, body = ApiError), (status = 401, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
async fn statement(
    who: Caller,
    State(wallet): State<Wallet>,
    Query(query): Query<StatementQuery>,
) -> Result<Json<Vec<StatementLine>>, ApiError> {
    let user = who.user_id;
    let asset = wallet
        .config()
        .asset(&query.asset)
        .ok_or_else(|| WalletError::UnknownAsset(query.asset.clone()))?;
    let limit = query.limit.unwrap_or(500).clamp(1, 1000);
    let account = coss_identity::exchange_account(user).ok_or(WalletError::NotFound)?;
    let after = u64::try_from(query.after.unwrap_or(0)).unwrap_or(0);
    let rows = wallet
        .store()
        .statement(account, asset.asset, after, limit.unsigned_abs())
        .await
        .map_err(WalletError::from)?;
    Ok(Json(
        rows.iter()
            .map(|r| StatementLine {
                seq: i64::try_from(r.seq).unwrap_or(i64::MAX),
                available: r.available.to_decimal_string(asset.decimals),
                locked: r.locked.to_decimal_string(asset.decimals),
                time: r.time_ms.as_i64(),
            })
            .collect(),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
struct AddressView {
    chain_id: u64,
    /// EIP-55 checksummed.
    address: String,
    /// Every asset of the chain is deposited to this address.
    assets: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/wallet/deposit-address", tag = "wallet",
    responses((status = 200, body = AddressView), (status = 401, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn deposit_address(
    who: Caller,
    State(wallet): State<Wallet>,
) -> Result<Json<AddressView>, ApiError> {
    let user = who.user_id;
    let address = wallet.deposit_address(user).await?;
    Ok(Json(AddressView {
        chain_id: wallet.config().chain_id,
        address: address.to_checksum(None),
        assets: wallet
            .config()
            .assets
            .iter()
            .map(|a| a.symbol.clone())
            .collect(),
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
struct EventView {
    status: String,
    detail: Option<String>,
    at: i64,
}

fn events(list: Vec<WalletEvent>) -> Vec<EventView> {
    list.into_iter()
        .map(|e| EventView {
            status: e.status,
            detail: e.detail,
            at: e.at,
        })
        .collect()
}

fn whole(wallet: &Wallet, asset: &str, amount: Amount) -> String {
    let decimals = wallet.config().asset(asset).map_or(0, |a| a.decimals);
    amount.to_decimal_string(decimals)
}

#[derive(Serialize, utoipa::ToSchema)]
struct DepositView {
    id: i64,
    asset: String,
    amount: String,
    address: String,
    sender: String,
    tx_hash: String,
    /// `log:N` (a token transfer) or `call:` and the call's trace address (ETH).
    position: String,
    block_height: i64,
    confirmations: u64,
    required_confirmations: u64,
    /// `pending` (waiting for confirmations), `credited`, `orphaned` (its block left the
    /// chain; it returns to `pending` if the transaction is mined again) or `refused` (it
    /// cannot be credited, e.g. it would overflow the asset's supply; support handles it).
    status: &'static str,
    created_at: i64,
    updated_at: i64,
    history: Vec<EventView>,
}

async fn deposit_view(wallet: &Wallet, d: DepositRecord) -> Result<DepositView, ApiError> {
    let history = events(
        wallet
            .inner
            .store
            .wallet_events(Subject::Deposit, d.id)
            .await
            .map_err(WalletError::from)?,
    );
    let required = wallet
        .config()
        .asset(&d.asset)
        .map_or(0, |a| a.confirmations);
    let confirmations = if d.status == DepositStatus::Orphaned {
        0
    } else {
        (wallet.head() + 1).saturating_sub(u64::try_from(d.block_height).unwrap_or(u64::MAX))
    };
    Ok(DepositView {
        id: d.id,
        amount: whole(wallet, &d.asset, d.amount),
        asset: d.asset,
        address: d.address,
        sender: d.sender,
        tx_hash: d.tx_hash,
        position: d.position,
        block_height: d.block_height,
        confirmations,
        required_confirmations: required,
        status: d.status.as_str(),
        created_at: d.created_at,
        updated_at: d.updated_at,
        history,
    })
}

#[utoipa::path(get, path = "/api/v1/wallet/deposits", tag = "wallet",
    responses((status = 200, body = Vec<DepositView>), (status = 401, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn deposits(
    who: Caller,
    State(wallet): State<Wallet>,
) -> Result<Json<Vec<DepositView>>, ApiError> {
    let user = who.user_id;
    let list = wallet
        .inner
        .store
        .deposits_of(user, HISTORY_LIMIT)
        .await
        .map_err(WalletError::from)?;
    let mut views = Vec::with_capacity(list.len());
    for d in list {
        views.push(deposit_view(&wallet, d).await?);
    }
    Ok(Json(views))
}

#[derive(Serialize, utoipa::ToSchema)]
struct WithdrawalView {
    id: i64,
    asset: String,
    address: String,
    amount: String,
    fee: String,
    /// `requested`, `held`, `signed`, `broadcast`, `settled`, `cancelling`, `cancelled`,
    /// `failing`, `failed` or `rejected`.
    status: &'static str,
    tx_hash: Option<String>,
    block_height: Option<i64>,
    confirmations: Option<u64>,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
    history: Vec<EventView>,
}

async fn withdrawal_view(wallet: &Wallet, w: WithdrawalRecord) -> Result<WithdrawalView, ApiError> {
    let history = events(
        wallet
            .inner
            .store
            .wallet_events(Subject::Withdrawal, w.id)
            .await
            .map_err(WalletError::from)?,
    );
    let confirmations = w
        .block_height
        .map(|h| (wallet.head() + 1).saturating_sub(u64::try_from(h).unwrap_or(u64::MAX)));
    Ok(WithdrawalView {
        id: w.id,
        amount: whole(wallet, &w.asset, w.amount),
        fee: whole(wallet, &w.asset, w.fee),
        asset: w.asset,
        address: w.to_address,
        status: w.status.as_str(),
        tx_hash: w.tx_hash,
        block_height: w.block_height,
        confirmations,
        error: w.error,
        created_at: w.created_at,
        updated_at: w.updated_at,
        history,
    })
}

#[utoipa::path(get, path = "/api/v1/wallet/withdrawals", tag = "wallet",
    responses((status = 200, body = Vec<WithdrawalView>), (status = 401, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn withdrawals(
    who: Caller,
    State(wallet): State<Wallet>,
) -> Result<Json<Vec<WithdrawalView>>, ApiError> {
    let user = who.user_id;
    let list = wallet
        .inner
        .store
        .withdrawals_of(user, HISTORY_LIMIT)
        .await
        .map_err(WalletError::from)?;
    let mut views = Vec::with_capacity(list.len());
    for w in list {
        views.push(withdrawal_view(&wallet, w).await?);
    }
    Ok(Json(views))
}

#[utoipa::path(get, path = "/api/v1/wallet/withdrawals/{id}", tag = "wallet",
    params(("id" = i64, Path, description = "the withdrawal's id")),
    responses((status = 200, body = WithdrawalView), (status = 401, body = ApiError), (status = 404, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn one_withdrawal(
    who: Caller,
    State(wallet): State<Wallet>,
    Path(id): Path<i64>,
) -> Result<Json<WithdrawalView>, ApiError> {
    let user = who.user_id;
    let record = wallet
        .inner
        .store
        .withdrawal(id)
        .await
        .map_err(WalletError::from)?
        .filter(|w| w.user_id == user)
        .ok_or(WalletError::NotFound)?;
    Ok(Json(withdrawal_view(&wallet, record).await?))
}

fn idempotency_key(headers: &HeaderMap) -> Result<String, ApiError> {
    match headers.get("idempotency-key") {
        Some(value) => value
            .to_str()
            .map(str::to_owned)
            .map_err(|_| ApiError::from(WalletError::InvalidIdempotencyKey)),
        // No key: every request acts on its own.
        None => {
            let bytes = coss_identity::random_bytes::<16>().map_err(|_| {
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
            })?;
            Ok(format!("auto-{}", hex_of(*bytes)))
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct WithdrawBody {
    asset: String,
    address: String,
    amount: String,
    code: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/wallet/withdrawals", tag = "wallet", request_body = WithdrawBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first result")),
    responses((status = 201, body = WithdrawalView), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn withdraw(
    who: Caller,
    State(wallet): State<Wallet>,
    State(gate): State<Gate>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<WithdrawBody>,
) -> Result<(StatusCode, Json<WithdrawalView>), ApiError> {
    let user = who.user_id;
    let record = wallet
        .request_withdrawal(&WithdrawalRequest {
            user_id: user,
            asset: input.asset,
            address: input.address,
            amount: input.amount,
            code: input.code,
            idempotency_key: idempotency_key(&headers)?,
            now: gate.now_ms(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(withdrawal_view(&wallet, record).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/wallet/withdrawals/{id}/cancel", tag = "wallet",
    params(("id" = i64, Path, description = "the withdrawal's id")),
    responses((status = 200, body = WithdrawalView), (status = 401, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn cancel(
    who: Caller,
    State(wallet): State<Wallet>,
    Path(id): Path<i64>,
) -> Result<Json<WithdrawalView>, ApiError> {
    let user = who.user_id;
    let record = wallet.cancel_withdrawal(user, id).await?;
    Ok(Json(withdrawal_view(&wallet, record).await?))
}

#[derive(Serialize, utoipa::ToSchema)]
struct TransferView {
    id: i64,
    /// `sent` or `received`, from the caller's side.
    direction: &'static str,
    asset: String,
    amount: String,
    /// `requested`, `settled` or `rejected`.
    status: &'static str,
    created_at: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TransferBody {
    to_email: String,
    asset: String,
    amount: String,
    code: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/wallet/transfers", tag = "wallet", request_body = TransferBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first result")),
    responses((status = 201, body = TransferView), (status = 400, body = ApiError), (status = 401, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn transfer(
    who: Caller,
    State(wallet): State<Wallet>,
    State(gate): State<Gate>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<TransferBody>,
) -> Result<(StatusCode, Json<TransferView>), ApiError> {
    let user = who.user_id;
    let record = wallet
        .transfer(&TransferRequest {
            user_id: user,
            to_email: input.to_email,
            asset: input.asset,
            amount: input.amount,
            code: input.code,
            idempotency_key: idempotency_key(&headers)?,
            now: gate.now_ms(),
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(TransferView {
            id: record.id,
            direction: "sent",
            amount: whole(&wallet, &record.asset, record.amount),
            asset: record.asset,
            status: record.status.as_str(),
            created_at: record.created_at,
        }),
    ))
}

#[utoipa::path(get, path = "/api/v1/wallet/transfers", tag = "wallet",
    responses((status = 200, body = Vec<TransferView>), (status = 401, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn transfers(
    who: Caller,
    State(wallet): State<Wallet>,
) -> Result<Json<Vec<TransferView>>, ApiError> {
    let user = who.user_id;
    let list = wallet
        .inner
        .store
        .transfers_of(user, HISTORY_LIMIT)
        .await
        .map_err(WalletError::from)?;
    Ok(Json(
        list.into_iter()
            .map(|t| TransferView {
                id: t.id,
                direction: if t.from_user == user {
                    "sent"
                } else {
                    "received"
                },
                amount: whole(&wallet, &t.asset, t.amount),
                asset: t.asset,
                status: t.status.as_str(),
                created_at: t.created_at,
            })
            .collect(),
    ))
}

#[derive(Serialize, utoipa::ToSchema)]
struct AllowListView {
    /// Withdrawals go only to these addresses.
    allow_list_only: bool,
    addresses: Vec<AllowedView>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct AllowedView {
    address: String,
    label: String,
    created_at: i64,
}

async fn allow_list_view(wallet: &Wallet, user: UserId) -> Result<AllowListView, ApiError> {
    let store = &wallet.inner.store;
    let only = store
        .allow_list_only(user)
        .await
        .map_err(WalletError::from)?;
    let addresses = store
        .withdrawal_addresses(user, wallet.chain_key())
        .await
        .map_err(WalletError::from)?;
    Ok(AllowListView {
        allow_list_only: only,
        addresses: addresses
            .into_iter()
            .map(|a| AllowedView {
                address: a.address,
                label: a.label,
                created_at: a.created_at,
            })
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/wallet/withdrawal-addresses", tag = "wallet",
    responses((status = 200, body = AllowListView), (status = 401, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn allow_list(
    who: Caller,
    State(wallet): State<Wallet>,
) -> Result<Json<AllowListView>, ApiError> {
    let user = who.user_id;
    Ok(Json(allow_list_view(&wallet, user).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AllowBody {
    address: String,
    #[serde(default)]
    label: String,
    code: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/wallet/withdrawal-addresses", tag = "wallet", request_body = AllowBody,
    responses((status = 200, body = AllowListView), (status = 400, body = ApiError), (status = 401, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn allow_address(
    who: Caller,
    State(wallet): State<Wallet>,
    State(gate): State<Gate>,
    JsonBody(input): JsonBody<AllowBody>,
) -> Result<(StatusCode, Json<AllowListView>), ApiError> {
    let user = who.user_id;
    let address = crate::withdraw::parse_address(&input.address)?;
    if input.label.chars().count() > 64 {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_label",
            "labels are at most 64 characters",
        ));
    }
    let now = gate.now_ms();
    wallet
        .accounts()
        .require_second_factor(user, input.code.as_deref(), now)
        .await?;
    wallet
        .inner
        .store
        .allow_withdrawal_address(
            user,
            wallet.chain_key(),
            &hex_of(address),
            &input.label,
            now,
        )
        .await
        .map_err(WalletError::from)?;
    Ok((
        StatusCode::CREATED,
        Json(allow_list_view(&wallet, user).await?),
    ))
}

#[utoipa::path(delete, path = "/api/v1/wallet/withdrawal-addresses/{address}", tag = "wallet",
    params(("address" = String, Path, description = "the address to remove")),
    responses((status = 200, body = AllowListView), (status = 400, body = ApiError), (status = 401, body = ApiError),
              (status = 404, body = ApiError, description = "the address is not on the list")),
    security(("bearer" = []), ("cookie" = [])))]
async fn disallow_address(
    who: Caller,
    State(wallet): State<Wallet>,
    Path(address): Path<String>,
) -> Result<Json<AllowListView>, ApiError> {
    let user = who.user_id;
    let address = crate::withdraw::parse_address(&address)?;
    let removed = wallet
        .inner
        .store
        .remove_withdrawal_address(user, wallet.chain_key(), &hex_of(address))
        .await
        .map_err(WalletError::from)?;
    if !removed {
        return Err(WalletError::NotFound.into());
    }
    Ok(Json(allow_list_view(&wallet, user).await?))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ModeBody {
    allow_list_only: bool,
    code: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/wallet/withdrawal-addresses/mode", tag = "wallet", request_body = ModeBody,
    responses((status = 200, body = AllowListView), (status = 400, body = ApiError), (status = 401, body = ApiError)), security(("bearer" = []), ("cookie" = [])))]
async fn allow_list_mode(
    who: Caller,
    State(wallet): State<Wallet>,
    State(gate): State<Gate>,
    JsonBody(input): JsonBody<ModeBody>,
) -> Result<Json<AllowListView>, ApiError> {
    let user = who.user_id;
    let now = gate.now_ms();
    // Turning the protection off is the sensitive direction; both need the second factor.
    wallet
        .accounts()
        .require_second_factor(user, input.code.as_deref(), now)
        .await?;
    wallet
        .inner
        .store
        .set_allow_list_only(user, input.allow_list_only, now)
        .await
        .map_err(WalletError::from)?;
    Ok(Json(allow_list_view(&wallet, user).await?))
}

/// Whether test funds are offered, and how much each request sends.
#[derive(Serialize, utoipa::ToSchema)]
struct TestFundsOffer {
    /// True only when the platform runs its own local chain.
    available: bool,
    /// ETH per request, whole units.
    eth: &'static str,
    /// tUSD per request, whole units.
    tusd: &'static str,
}

/// Whether "get test funds" is offered (only on the platform's own local chain).
#[utoipa::path(get, path = "/api/v1/wallet/test-funds", tag = "wallet",
    responses((status = 200, body = TestFundsOffer), (status = 401, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
async fn test_funds_offer(_: Caller, State(wallet): State<Wallet>) -> Json<TestFundsOffer> {
    Json(TestFundsOffer {
        available: wallet.test_funds_offered(),
        eth: "10",
        tusd: "10000",
    })
}

/// Sends 10 ETH and 10,000 tUSD on the local chain to the caller's deposit address: a real
/// deposit, credited after its confirmations. Once a minute per account; refused (404) on any
/// chain that is not the platform's own.
#[utoipa::path(post, path = "/api/v1/wallet/test-funds", tag = "wallet",
    responses((status = 200, body = crate::dev::TestFundsSent), (status = 401, body = ApiError),
              (status = 404, body = ApiError), (status = 429, body = ApiError),
              (status = 503, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
async fn test_funds(
    who: Caller,
    State(wallet): State<Wallet>,
) -> Result<Json<crate::dev::TestFundsSent>, ApiError> {
    Ok(Json(wallet.test_funds(who.user_id).await?))
}
