//! `/api/v1/gateway/…` for merchants (an API key with the `merchant` permission, signed as
//! for trading, or the signed-in session of the dashboard): invoices, marking, refunds,
//! webhook endpoints and their delivery log. `/api/v1/checkout/…` for payers: the public
//! checkout view of an invoice and paying it from a COSS balance (signed in). Amounts are
//! decimal strings; errors are `{"code", "message"}` with stable codes.

use axum::Json;
use axum::extract::{FromRef, Path, State};
use axum::http::{HeaderMap, StatusCode};
use coss_http::{ApiError, Caller, Gate, JsonBody, MerchantCaller, Public, Query, Routes};
use coss_store::{InvoiceFilter, InvoiceStatus};
use serde::{Deserialize, Serialize};

use crate::pos::{ProductView, Sale};
use crate::webhooks::{DeliveryView, EndpointView};
use crate::{
    CreateInvoice, Gateway, GatewayError, InvoiceView, RefundAnswer, RefundLinkView, RefundRequest,
};

/// Most invoices or deliveries a listing returns.
pub const LIST_LIMIT: i64 = 200;

/// The OpenAPI description of the gateway routes (merged into `/openapi.json`).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    use utoipa::OpenApi;
    GatewayDoc::openapi()
}

#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        create_invoice,
        list_invoices,
        get_invoice,
        mark_invoice,
        refund_invoice,
        list_endpoints,
        add_endpoint,
        enable_endpoint,
        list_deliveries,
        get_delivery,
        redeliver,
        report,
        list_products,
        add_product,
        remove_product,
        sell,
        checkout,
        checkout_stream,
        pay,
        refund_link,
        claim_refund,
    ),
    components(schemas(ApiError))
)]
struct GatewayDoc;

#[derive(Debug, Clone)]
struct GatewayApi {
    gateway: Gateway,
    gate: Gate,
    /// Checkout streams open per client address.
    streams: coss_http::AddressSlots,
}

impl FromRef<GatewayApi> for coss_http::AddressSlots {
    fn from_ref(api: &GatewayApi) -> coss_http::AddressSlots {
        api.streams.clone()
    }
}

/// Checkout streams one client address may hold open.
pub const STREAMS_PER_ADDRESS: usize = 20;
/// Shortest time between two looks at an invoice for one stream.
const STREAM_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

impl FromRef<GatewayApi> for Gateway {
    fn from_ref(api: &GatewayApi) -> Gateway {
        api.gateway.clone()
    }
}

impl FromRef<GatewayApi> for Gate {
    fn from_ref(api: &GatewayApi) -> Gate {
        api.gate.clone()
    }
}

/// The gateway API.
pub fn router(gateway: Gateway, gate: Gate) -> Routes {
    Routes::new()
        .post("/api/v1/gateway/invoices", create_invoice)
        .get("/api/v1/gateway/invoices", list_invoices)
        .get("/api/v1/gateway/invoices/{id}", get_invoice)
        .post("/api/v1/gateway/invoices/{id}/mark", mark_invoice)
        .post("/api/v1/gateway/invoices/{id}/refunds", refund_invoice)
        .get("/api/v1/gateway/webhooks", list_endpoints)
        .post("/api/v1/gateway/webhooks", add_endpoint)
        .post("/api/v1/gateway/webhooks/{id}/enabled", enable_endpoint)
        .get("/api/v1/gateway/webhooks/deliveries", list_deliveries)
        .get("/api/v1/gateway/webhooks/deliveries/{id}", get_delivery)
        .post(
            "/api/v1/gateway/webhooks/deliveries/{id}/redeliver",
            redeliver,
        )
        .get("/api/v1/gateway/reports/{kind}", report)
        .get("/api/v1/gateway/pos/products", list_products)
        .post("/api/v1/gateway/pos/products", add_product)
        .delete("/api/v1/gateway/pos/products/{id}", remove_product)
        .post("/api/v1/gateway/pos/sales", sell)
        .get("/api/v1/checkout/{id}", checkout)
        .get("/api/v1/checkout/{id}/stream", checkout_stream)
        .post("/api/v1/checkout/{id}/pay", pay)
        .get("/api/v1/checkout/refunds/{token}", refund_link)
        .post("/api/v1/checkout/refunds/{token}", claim_refund)
        .with_state(GatewayApi {
            gateway,
            gate,
            streams: coss_http::AddressSlots::default(),
        })
}

impl From<GatewayError> for ApiError {
    fn from(error: GatewayError) -> Self {
        use GatewayError as E;
        let status = match error {
            E::Identity(e) => return e.into(),
            E::Wallet(e) => return e.into(),
            E::UnknownAsset(_)
            | E::UnknownCurrency(_)
            | E::InvalidAmount(_)
            | E::InvalidParameter(_)
            | E::InvalidUrl(_)
            | E::InsufficientBalance
            | E::Rejected(_) => StatusCode::BAD_REQUEST,
            E::NoRate { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            E::NotFound | E::RefundLinkInvalid => StatusCode::NOT_FOUND,
            E::IdempotencyMismatch
            | E::Expired
            | E::NotPayable(_)
            | E::InvalidTransition { .. }
            | E::RefundRefused(_)
            | E::TooMany(_) => StatusCode::CONFLICT,
            E::Engine(_) | E::Mismatch => StatusCode::SERVICE_UNAVAILABLE,
            E::Store(_) | E::Crypto(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return ApiError::internal("gateway", &error);
        }
        ApiError::new(status, error.code(), error.to_string())
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    match headers.get("idempotency-key") {
        None => Ok(None),
        Some(value) => value.to_str().map(|v| Some(v.to_owned())).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                "the Idempotency-Key header is not text",
            )
        }),
    }
}

#[utoipa::path(post, path = "/api/v1/gateway/invoices", tag = "gateway", request_body = CreateInvoice,
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first invoice; another body is refused")),
    responses((status = 201, body = InvoiceView), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 409, body = ApiError), (status = 422, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn create_invoice(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    headers: HeaderMap,
    JsonBody(input): JsonBody<CreateInvoice>,
) -> Result<(StatusCode, Json<InvoiceView>), ApiError> {
    let key = idempotency_key(&headers)?;
    let view = gateway
        .create_invoice(who.user_id, &input, key.as_deref(), "api")
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// Filters of the invoice list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ListQuery {
    /// Only this status.
    status: Option<String>,
    /// Only this order id.
    order_id: Option<String>,
    /// Made at or after (Unix ms).
    since: Option<i64>,
    /// Made before (Unix ms).
    until: Option<i64>,
    /// Page: invoices older than the one with this public id.
    before: Option<String>,
    /// At most this many (1 to 200, default 50).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/gateway/invoices", tag = "gateway", params(ListQuery),
    responses((status = 200, body = Vec<InvoiceView>), (status = 400, body = ApiError), (status = 401, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn list_invoices(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<InvoiceView>>, ApiError> {
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(InvoiceStatus::parse(s).map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_parameter",
                "status: new, processing, settled, expired or invalid",
            )
        })?),
    };
    let before_id = match &query.before {
        Some(public) => Some(gateway.merchant_invoice(who.user_id, public).await?.id),
        None => None,
    };
    let filter = InvoiceFilter {
        status,
        order_id: query.order_id,
        since: query.since,
        until: query.until,
        before_id,
    };
    let limit = query.limit.unwrap_or(50).clamp(1, LIST_LIMIT);
    Ok(Json(gateway.invoices(who.user_id, &filter, limit).await?))
}

#[utoipa::path(get, path = "/api/v1/gateway/invoices/{id}", tag = "gateway",
    params(("id" = String, Path, description = "the invoice's public id")),
    responses((status = 200, body = InvoiceView), (status = 401, body = ApiError), (status = 404, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn get_invoice(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
) -> Result<Json<InvoiceView>, ApiError> {
    let record = gateway.merchant_invoice(who.user_id, &id).await?;
    Ok(Json(gateway.view(&record, true).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct MarkBody {
    /// `settled` or `invalid`.
    status: String,
}

#[utoipa::path(post, path = "/api/v1/gateway/invoices/{id}/mark", tag = "gateway", request_body = MarkBody,
    params(("id" = String, Path, description = "the invoice's public id")),
    responses((status = 200, body = InvoiceView), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn mark_invoice(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<MarkBody>,
) -> Result<Json<InvoiceView>, ApiError> {
    Ok(Json(gateway.mark(who.user_id, &id, &body.status).await?))
}

#[utoipa::path(post, path = "/api/v1/gateway/invoices/{id}/refunds", tag = "gateway", request_body = RefundRequest,
    params(("id" = String, Path, description = "the invoice's public id")),
    responses((status = 201, body = RefundAnswer), (status = 400, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn refund_invoice(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RefundRequest>,
) -> Result<(StatusCode, Json<RefundAnswer>), ApiError> {
    let view = gateway.refund(who.user_id, &id, &body).await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[utoipa::path(get, path = "/api/v1/gateway/webhooks", tag = "gateway",
    responses((status = 200, body = Vec<EndpointView>), (status = 401, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn list_endpoints(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
) -> Result<Json<Vec<EndpointView>>, ApiError> {
    Ok(Json(gateway.endpoints(who.user_id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EndpointBody {
    /// Where deliveries go (https; http only where private addresses are allowed).
    url: String,
    /// Event kinds (default: all).
    #[serde(default)]
    events: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/gateway/webhooks", tag = "gateway", request_body = EndpointBody,
    responses((status = 201, body = EndpointView, description = "with its signing secret, shown only here"), (status = 400, body = ApiError), (status = 409, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn add_endpoint(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    JsonBody(body): JsonBody<EndpointBody>,
) -> Result<(StatusCode, Json<EndpointView>), ApiError> {
    let view = gateway
        .add_endpoint(who.user_id, &body.url, &body.events)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct EnabledBody {
    enabled: bool,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
struct Done {
    ok: bool,
}

#[utoipa::path(post, path = "/api/v1/gateway/webhooks/{id}/enabled", tag = "gateway", request_body = EnabledBody,
    params(("id" = i64, Path, description = "the endpoint's id")),
    responses((status = 200, body = Done), (status = 404, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn enable_endpoint(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Path(id): Path<i64>,
    JsonBody(body): JsonBody<EnabledBody>,
) -> Result<Json<Done>, ApiError> {
    gateway
        .set_endpoint_enabled(who.user_id, id, body.enabled)
        .await?;
    Ok(Json(Done { ok: true }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct DeliveriesQuery {
    /// Only this endpoint's.
    endpoint: Option<i64>,
    /// At most this many (default 50, at most 200).
    limit: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/gateway/webhooks/deliveries", tag = "gateway", params(DeliveriesQuery),
    responses((status = 200, body = Vec<DeliveryView>), (status = 401, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn list_deliveries(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Query(query): Query<DeliveriesQuery>,
) -> Result<Json<Vec<DeliveryView>>, ApiError> {
    let limit = query.limit.unwrap_or(50).clamp(1, LIST_LIMIT);
    Ok(Json(
        gateway
            .deliveries(who.user_id, query.endpoint, limit)
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/gateway/webhooks/deliveries/{id}", tag = "gateway",
    params(("id" = i64, Path, description = "the delivery's id")),
    responses((status = 200, body = DeliveryView), (status = 404, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn get_delivery(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Path(id): Path<i64>,
) -> Result<Json<DeliveryView>, ApiError> {
    Ok(Json(gateway.delivery(who.user_id, id).await?))
}

#[utoipa::path(post, path = "/api/v1/gateway/webhooks/deliveries/{id}/redeliver", tag = "gateway",
    params(("id" = i64, Path, description = "the delivery's id")),
    responses((status = 200, body = DeliveryView), (status = 404, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn redeliver(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Path(id): Path<i64>,
) -> Result<Json<DeliveryView>, ApiError> {
    Ok(Json(gateway.redeliver(who.user_id, id).await?))
}

#[utoipa::path(get, path = "/api/v1/gateway/pos/products", tag = "gateway",
    responses((status = 200, body = Vec<ProductView>), (status = 401, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn list_products(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
) -> Result<Json<Vec<ProductView>>, ApiError> {
    Ok(Json(gateway.products(who.user_id).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ProductBody {
    /// What the counter shows.
    name: String,
    /// Its price (decimal).
    price: String,
    /// The currency of the price (a fiat code or an asset).
    currency: String,
}

#[utoipa::path(post, path = "/api/v1/gateway/pos/products", tag = "gateway", request_body = ProductBody,
    responses((status = 201, body = ProductView), (status = 400, body = ApiError), (status = 409, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn add_product(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    JsonBody(body): JsonBody<ProductBody>,
) -> Result<(StatusCode, Json<ProductView>), ApiError> {
    let product = gateway
        .add_product(who.user_id, &body.name, &body.price, &body.currency)
        .await?;
    Ok((StatusCode::CREATED, Json(product)))
}

#[utoipa::path(delete, path = "/api/v1/gateway/pos/products/{id}", tag = "gateway",
    params(("id" = i64, Path, description = "the product's id")),
    responses((status = 200, body = Done), (status = 404, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn remove_product(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Path(id): Path<i64>,
) -> Result<Json<Done>, ApiError> {
    gateway.remove_product(who.user_id, id).await?;
    Ok(Json(Done { ok: true }))
}

#[utoipa::path(post, path = "/api/v1/gateway/pos/sales", tag = "gateway", request_body = Sale,
    responses((status = 201, body = InvoiceView, description = "the sale's invoice, priced by the server from its own product list"), (status = 400, body = ApiError), (status = 422, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn sell(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    JsonBody(sale): JsonBody<Sale>,
) -> Result<(StatusCode, Json<InvoiceView>), ApiError> {
    Ok((
        StatusCode::CREATED,
        Json(gateway.sell(who.user_id, &sale).await?),
    ))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
struct ReportQuery {
    /// `json` (default) or `csv`.
    format: Option<String>,
    /// Invoices made at or after (Unix ms).
    since: Option<i64>,
    /// Invoices made before (Unix ms).
    until: Option<i64>,
}

#[utoipa::path(get, path = "/api/v1/gateway/reports/{kind}", tag = "gateway",
    params(("kind" = String, Path, description = "invoices, payments, settlements or refunds"), ReportQuery),
    responses((status = 200, description = "a JSON array of objects, or CSV with a header line; money rows carry their fiat value at payment time"), (status = 400, body = ApiError), (status = 401, body = ApiError)),
    security(("api_key" = []), ("bearer" = []), ("cookie" = [])))]
async fn report(
    who: MerchantCaller,
    State(gateway): State<Gateway>,
    Path(kind): Path<String>,
    Query(query): Query<ReportQuery>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let kind = crate::reports::ReportKind::parse(&kind)?;
    let rows = gateway
        .report(who.user_id, kind, query.since, query.until)
        .await?;
    let columns = kind.columns();
    match query.format.as_deref().unwrap_or("json") {
        "csv" => Ok((
            [(axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            crate::reports::csv(columns, &rows),
        )
            .into_response()),
        "json" => {
            let objects: Vec<serde_json::Map<String, serde_json::Value>> = rows
                .into_iter()
                .map(|row| {
                    columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| ((*c).to_owned(), serde_json::Value::String(v)))
                        .collect()
                })
                .collect();
            Ok(Json(objects).into_response())
        }
        _ => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "format: json or csv",
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/checkout/{id}", tag = "checkout",
    params(("id" = String, Path, description = "the invoice's public id")),
    responses((status = 200, body = InvoiceView, description = "the payer's view (no buyer email, metadata or rate sources)"), (status = 404, body = ApiError)))]
async fn checkout(
    _: Public,
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
) -> Result<Json<InvoiceView>, ApiError> {
    let record = gateway.public_invoice(&id).await?;
    Ok(Json(gateway.view(&record, false).await?))
}

#[utoipa::path(get, path = "/api/v1/checkout/{id}/stream", tag = "checkout",
    params(("id" = String, Path, description = "the invoice's public id")),
    responses((status = 101, description = "a WebSocket sending the payer's view (JSON, as GET /api/v1/checkout/{id}) at once and on every change, closed once the invoice is final"), (status = 404, body = ApiError), (status = 429, body = ApiError)))]
async fn checkout_stream(
    _: Public,
    State(gateway): State<Gateway>,
    State(streams): State<coss_http::AddressSlots>,
    coss_http::ClientAddr(ip): coss_http::ClientAddr,
    Path(id): Path<String>,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let record = gateway.public_invoice(&id).await?;
    let ip = ip.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let slot = streams.take(ip, STREAMS_PER_ADDRESS).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            "too many checkout streams from this address",
        )
    })?;
    Ok(upgrade
        .on_upgrade(move |socket| async move {
            follow(gateway, record.id, socket).await;
            drop(slot);
        })
        .into_response())
}

/// Sends the payer's view whenever it changes, until the invoice is final or the payer goes.
async fn follow(gateway: Gateway, id: i64, mut socket: axum::extract::ws::WebSocket) {
    use axum::extract::ws::Message;
    let mut changes = gateway.follow(id);
    let mut last = String::new();
    loop {
        let Ok(Some(record)) = gateway.inner.store.invoice(id).await else {
            return;
        };
        let Ok(view) = gateway.view(&record, false).await else {
            return;
        };
        let text = serde_json::to_string(&view).unwrap_or_default();
        if text != last {
            if socket
                .send(Message::Text(text.clone().into()))
                .await
                .is_err()
            {
                return;
            }
            last = text;
        }
        // Settled and invalid invoices change no more for the payer (an expired one may
        // still get a late payment).
        if matches!(
            record.status,
            InvoiceStatus::Settled | InvoiceStatus::Invalid
        ) {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
        tokio::time::sleep(STREAM_MIN_INTERVAL).await;
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct PayBody {
    /// The asset to pay in (one the invoice accepts).
    asset: String,
    /// The payer's second-factor code, when they have one.
    #[serde(default)]
    code: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/checkout/{id}/pay", tag = "checkout", request_body = PayBody,
    params(("id" = String, Path, description = "the invoice's public id")),
    responses((status = 200, body = InvoiceView), (status = 400, body = ApiError), (status = 401, body = ApiError), (status = 403, body = ApiError), (status = 404, body = ApiError), (status = 409, body = ApiError)),
    security(("bearer" = []), ("cookie" = [])))]
async fn pay(
    who: Caller,
    State(gateway): State<Gateway>,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PayBody>,
) -> Result<Json<InvoiceView>, ApiError> {
    let asset = body.asset.trim().to_ascii_uppercase();
    Ok(Json(
        gateway
            .pay_from_balance(who.user_id, &id, &asset, body.code.as_deref())
            .await?,
    ))
}

#[utoipa::path(get, path = "/api/v1/checkout/refunds/{token}", tag = "checkout",
    params(("token" = String, Path, description = "the refund link's token")),
    responses((status = 200, body = RefundLinkView), (status = 404, body = ApiError)))]
async fn refund_link(
    _: Public,
    State(gateway): State<Gateway>,
    Path(token): Path<String>,
) -> Result<Json<RefundLinkView>, ApiError> {
    Ok(Json(gateway.refund_link(&token).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ClaimBody {
    /// Where the refund goes: `0x` and 40 hex digits (mixed case must be a valid checksum).
    address: String,
}

#[utoipa::path(post, path = "/api/v1/checkout/refunds/{token}", tag = "checkout", request_body = ClaimBody,
    params(("token" = String, Path, description = "the refund link's token")),
    responses((status = 200, body = RefundLinkView), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn claim_refund(
    _: Public,
    State(gateway): State<Gateway>,
    Path(token): Path<String>,
    JsonBody(body): JsonBody<ClaimBody>,
) -> Result<Json<RefundLinkView>, ApiError> {
    Ok(Json(gateway.claim_refund(&token, &body.address).await?))
}

impl Gateway {
    /// A merchant's invoices, newest first.
    pub async fn invoices(
        &self,
        merchant: coss_types::UserId,
        filter: &InvoiceFilter,
        limit: i64,
    ) -> Result<Vec<InvoiceView>, GatewayError> {
        let records = self
            .inner
            .store
            .invoices_of(merchant, filter, limit)
            .await?;
        let mut views = Vec::with_capacity(records.len());
        for record in &records {
            views.push(self.view(record, true).await?);
        }
        Ok(views)
    }
}
