//! Gateway records: invoices and the amount each accepted asset must pay, payments from COSS
//! balances, the core moves made for an invoice (settlements and refunds), webhook endpoints,
//! events, deliveries and their attempts, and POS products. On-chain payments are deposits
//! rows with an `invoice_id` (the wallet's watcher records them). Every status change is a
//! compare-and-set from the state the caller expects.

use coss_types::{Amount, UserId};
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::{Store, StoreError, is_unique_violation, stored_amount};

stored_status!(
    /// An invoice's status, as merchants know them from BTCPay Server.
    InvoiceStatus {
        /// Waiting for payment (perhaps paid in part).
        New => "new",
        /// Paid in full; some of it still waits for confirmations.
        Processing => "processing",
        /// Paid and confirmed: the money went to the merchant (final but for refunds).
        Settled => "settled",
        /// Not paid in full before it expired (payments may still arrive while monitored).
        Expired => "expired",
        /// Paid, but a payment was lost (a reorg) or the merchant marked it invalid.
        Invalid => "invalid",
    }
);

stored_status!(
    /// Where a payment from a balance, or a core move, is.
    MoveStatus {
        /// Recorded; its core command may not have run yet.
        Requested => "requested",
        /// The core applied it.
        Done => "done",
        /// The core refused it (nothing moved).
        Rejected => "rejected",
        /// A refund waiting for the payer to give an address through the refund link.
        AwaitingAddress => "awaiting_address",
    }
);

stored_status!(
    /// Where a webhook delivery is.
    DeliveryStatus {
        /// Waiting for its next attempt.
        Pending => "pending",
        /// Answered 2xx.
        Delivered => "delivered",
        /// Gave up after the retry window.
        Failed => "failed",
    }
);

/// An invoice to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewInvoice {
    /// Random public id (`inv_…`).
    pub public_id: String,
    /// The merchant.
    pub merchant_id: UserId,
    /// The caller's idempotency key and the hash of the body it came with.
    pub idempotency: Option<(String, String)>,
    /// The pricing currency (a fiat code or an asset symbol).
    pub currency: String,
    /// The total price in it (decimal).
    pub price: String,
    /// The tax included in the price (decimal).
    pub tax: String,
    /// The tip included in the price (decimal).
    pub tip: String,
    /// When it expires (Unix ms).
    pub expires_at: i64,
    /// Until when payments are still watched for (Unix ms).
    pub monitor_until: i64,
    /// Accepted shortfall in parts per million.
    pub tolerance_ppm: i64,
    /// The merchant's order id.
    pub order_id: Option<String>,
    /// The buyer's email.
    pub buyer_email: Option<String>,
    /// What is sold.
    pub description: Option<String>,
    /// Free JSON text.
    pub metadata: Option<String>,
    /// Where the checkout sends the payer after paying.
    pub redirect_url: Option<String>,
    /// `api` or `pos`.
    pub source: String,
    /// The currency of its fiat values (reports): its own for a fiat price.
    pub fiat_currency: Option<String>,
    /// The assets it accepts.
    pub assets: Vec<InvoiceAsset>,
}

/// What one accepted asset must pay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceAsset {
    /// The asset's symbol.
    pub asset: String,
    /// Smallest units due.
    pub due: Amount,
    /// The rate used (pricing currency per whole unit, decimal), if converted.
    pub rate: Option<String>,
    /// The sources the rate is the median of.
    pub rate_sources: Option<String>,
    /// A whole unit's value in the invoice's fiat currency at creation (decimal), if known.
    pub fiat_rate: Option<String>,
    /// Confirmations an on-chain payment needs.
    pub confirmations: i64,
}

/// A stored invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceRecord {
    /// Row id.
    pub id: i64,
    /// Public id.
    pub public_id: String,
    /// The merchant.
    pub merchant_id: UserId,
    /// The idempotency key it was made with.
    pub idempotency_key: Option<String>,
    /// The hash of the body it was made with.
    pub body_hash: Option<String>,
    /// Pricing currency.
    pub currency: String,
    /// Total price (decimal).
    pub price: String,
    /// Tax included (decimal).
    pub tax: String,
    /// Tip included (decimal).
    pub tip: String,
    /// Status.
    pub status: InvoiceStatus,
    /// Flags (bits, see the gateway).
    pub flags: i64,
    /// Expiry (Unix ms).
    pub expires_at: i64,
    /// End of monitoring (Unix ms).
    pub monitor_until: i64,
    /// Tolerance (ppm).
    pub tolerance_ppm: i64,
    /// Merchant's order id.
    pub order_id: Option<String>,
    /// Buyer's email.
    pub buyer_email: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Metadata (JSON text).
    pub metadata: Option<String>,
    /// Redirect URL.
    pub redirect_url: Option<String>,
    /// `api` or `pos`.
    pub source: String,
    /// The currency of its fiat values.
    pub fiat_currency: Option<String>,
    /// The chain of its receiving address.
    pub chain_id: Option<i64>,
    /// Its on-chain receiving address.
    pub pay_address: Option<String>,
    /// When it settled.
    pub settled_at: Option<i64>,
    /// Created (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// A payment from a COSS balance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancePayment {
    /// Row id.
    pub id: i64,
    /// The invoice.
    pub invoice_id: i64,
    /// The payer.
    pub payer_id: UserId,
    /// Asset symbol.
    pub asset: String,
    /// Smallest units.
    pub amount: Amount,
    /// The core request key.
    pub request_key: u64,
    /// Status.
    pub status: MoveStatus,
    /// Made (Unix ms).
    pub created_at: i64,
}

/// A settlement or refund to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMove {
    /// The invoice.
    pub invoice_id: i64,
    /// `settlement` or `refund`.
    pub kind: String,
    /// Asset symbol.
    pub asset: String,
    /// Smallest units moved (a settlement: before the fee).
    pub amount: Amount,
    /// The fee kept (settlements).
    pub fee: Amount,
    /// The fee rate it was computed at (ppm; the core's gateway fee then).
    pub fee_ppm: u32,
    /// Whether it leaves the gateway account (else the merchant's).
    pub from_gateway: bool,
    /// A refund's payer (to their COSS account).
    pub payer_id: Option<UserId>,
    /// A refund link's token hash (to an address the payer gives).
    pub token_hash: Option<String>,
    /// The core request key.
    pub request_key: u64,
    /// First status.
    pub status: MoveStatus,
}

/// A recorded settlement or refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveRecord {
    /// Row id.
    pub id: i64,
    /// The invoice.
    pub invoice_id: i64,
    /// `settlement` or `refund`.
    pub kind: String,
    /// Asset symbol.
    pub asset: String,
    /// Smallest units.
    pub amount: Amount,
    /// Fee kept.
    pub fee: Amount,
    /// The fee rate (ppm) it was computed at.
    pub fee_ppm: u32,
    /// Leaves the gateway account (else the merchant's).
    pub from_gateway: bool,
    /// The payer refunded to, by account.
    pub payer_id: Option<UserId>,
    /// The address refunded to.
    pub address: Option<String>,
    /// The core request key.
    pub request_key: u64,
    /// Status.
    pub status: MoveStatus,
    /// The order that converted a settlement to the merchant's settlement asset.
    pub conversion_order: Option<i64>,
    /// Made (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// A webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEndpoint {
    /// Row id.
    pub id: i64,
    /// Its merchant.
    pub merchant_id: UserId,
    /// Where deliveries go.
    pub url: String,
    /// The signing secret, sealed.
    pub sealed_secret: Vec<u8>,
    /// Event kinds delivered (`*` for all), comma-separated.
    pub events: String,
    /// Whether it receives new events.
    pub enabled: bool,
    /// Created (Unix ms).
    pub created_at: i64,
}

/// A webhook event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookEvent {
    /// Row id.
    pub id: i64,
    /// Public id (`evt_…`), the receiver's de-duplication key.
    pub public_id: String,
    /// The merchant.
    pub merchant_id: UserId,
    /// The invoice it is about.
    pub invoice_id: Option<i64>,
    /// Its kind (`invoice.settled`, …).
    pub kind: String,
    /// The JSON body delivered.
    pub payload: String,
    /// Made (Unix ms).
    pub created_at: i64,
}

/// A delivery of one event to one endpoint, with its event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Row id.
    pub id: i64,
    /// The endpoint.
    pub endpoint_id: i64,
    /// The event.
    pub event: WebhookEvent,
    /// Status.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: i64,
    /// Next attempt (Unix ms).
    pub next_at: i64,
    /// Made (Unix ms).
    pub created_at: i64,
    /// Last change (Unix ms).
    pub updated_at: i64,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    /// Row id.
    pub id: i64,
    /// The delivery.
    pub delivery_id: i64,
    /// When (Unix ms).
    pub at: i64,
    /// How long it took.
    pub duration_ms: i64,
    /// The answer's status code.
    pub status_code: Option<i64>,
    /// The network error, if no answer.
    pub error: Option<String>,
    /// The answer's first bytes.
    pub response: Option<String>,
}

/// A POS product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosProduct {
    /// Row id.
    pub id: i64,
    /// Its merchant.
    pub merchant_id: UserId,
    /// Name.
    pub name: String,
    /// Price (decimal) in `currency`.
    pub price: String,
    /// The currency (fiat or asset) of the price.
    pub currency: String,
    /// Shown at the POS.
    pub enabled: bool,
}

const INVOICE_COLUMNS: &str = "id, public_id, merchant_id, idempotency_key, body_hash, currency, \
     price, tax, tip, status, flags, expires_at, monitor_until, tolerance_ppm, order_id, \
     buyer_email, description, metadata, redirect_url, source, chain_id, pay_address, \
     settled_at, created_at, updated_at, fiat_currency";

fn invoice(row: &AnyRow) -> Result<InvoiceRecord, StoreError> {
    Ok(InvoiceRecord {
        id: row.try_get(0)?,
        public_id: row.try_get(1)?,
        merchant_id: UserId(row.try_get(2)?),
        idempotency_key: row.try_get(3)?,
        body_hash: row.try_get(4)?,
        currency: row.try_get(5)?,
        price: row.try_get(6)?,
        tax: row.try_get(7)?,
        tip: row.try_get(8)?,
        status: InvoiceStatus::parse(row.try_get(9)?)?,
        flags: row.try_get(10)?,
        expires_at: row.try_get(11)?,
        monitor_until: row.try_get(12)?,
        tolerance_ppm: row.try_get(13)?,
        order_id: row.try_get(14)?,
        buyer_email: row.try_get(15)?,
        description: row.try_get(16)?,
        metadata: row.try_get(17)?,
        redirect_url: row.try_get(18)?,
        source: row.try_get(19)?,
        chain_id: row.try_get(20)?,
        pay_address: row.try_get(21)?,
        settled_at: row.try_get(22)?,
        created_at: row.try_get(23)?,
        updated_at: row.try_get(24)?,
        fiat_currency: row.try_get(25)?,
    })
}

const PAYMENT_COLUMNS: &str =
    "id, invoice_id, payer_id, asset, amount, request_key, status, created_at";

fn payment(row: &AnyRow) -> Result<BalancePayment, StoreError> {
    Ok(BalancePayment {
        id: row.try_get(0)?,
        invoice_id: row.try_get(1)?,
        payer_id: UserId(row.try_get(2)?),
        asset: row.try_get(3)?,
        amount: stored_amount(row.try_get(4)?)?,
        request_key: request_key(row.try_get(5)?)?,
        status: MoveStatus::parse(row.try_get(6)?)?,
        created_at: row.try_get(7)?,
    })
}

const MOVE_COLUMNS: &str = "id, invoice_id, kind, asset, amount, fee, from_gateway, payer_id, \
     address, request_key, status, created_at, updated_at, conversion_order, fee_ppm";

fn a_move(row: &AnyRow) -> Result<MoveRecord, StoreError> {
    Ok(MoveRecord {
        id: row.try_get(0)?,
        invoice_id: row.try_get(1)?,
        kind: row.try_get(2)?,
        asset: row.try_get(3)?,
        amount: stored_amount(row.try_get(4)?)?,
        fee: stored_amount(row.try_get(5)?)?,
        from_gateway: row.try_get::<i64, _>(6)? != 0,
        payer_id: row.try_get::<Option<i64>, _>(7)?.map(UserId),
        address: row.try_get(8)?,
        request_key: request_key(row.try_get(9)?)?,
        status: MoveStatus::parse(row.try_get(10)?)?,
        created_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
        conversion_order: row.try_get(13)?,
        fee_ppm: u32::try_from(row.try_get::<i64, _>(14)?)
            .map_err(|_| StoreError::Invalid("fee_ppm".into()))?,
    })
}

fn request_key(text: &str) -> Result<u64, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Invalid(format!("request key {text:?}")))
}

const EVENT_COLUMNS: &str = "e.id, e.public_id, e.merchant_id, e.invoice_id, e.kind, e.payload, \
     e.created_at";

fn webhook_event(row: &AnyRow, at: usize) -> Result<WebhookEvent, StoreError> {
    Ok(WebhookEvent {
        id: row.try_get(at)?,
        public_id: row.try_get(at + 1)?,
        merchant_id: UserId(row.try_get(at + 2)?),
        invoice_id: row.try_get(at + 3)?,
        kind: row.try_get(at + 4)?,
        payload: row.try_get(at + 5)?,
        created_at: row.try_get(at + 6)?,
    })
}

const DELIVERY_COLUMNS: &str =
    "d.id, d.endpoint_id, d.status, d.attempts, d.next_at, d.created_at, d.updated_at";

fn delivery(row: &AnyRow) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: row.try_get(0)?,
        endpoint_id: row.try_get(1)?,
        status: DeliveryStatus::parse(row.try_get(2)?)?,
        attempts: row.try_get(3)?,
        next_at: row.try_get(4)?,
        created_at: row.try_get(5)?,
        updated_at: row.try_get(6)?,
        event: webhook_event(row, 7)?,
    })
}

const ENDPOINT_COLUMNS: &str = "id, merchant_id, url, sealed_secret, events, enabled, created_at";

fn endpoint(row: &AnyRow) -> Result<WebhookEndpoint, StoreError> {
    Ok(WebhookEndpoint {
        id: row.try_get(0)?,
        merchant_id: UserId(row.try_get(1)?),
        url: row.try_get(2)?,
        sealed_secret: row.try_get(3)?,
        events: row.try_get(4)?,
        enabled: row.try_get::<i64, _>(5)? != 0,
        created_at: row.try_get(6)?,
    })
}

/// Filters of an invoice listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceFilter {
    /// Only this status.
    pub status: Option<InvoiceStatus>,
    /// Only this order id.
    pub order_id: Option<String>,
    /// Made at or after (Unix ms).
    pub since: Option<i64>,
    /// Made before (Unix ms).
    pub until: Option<i64>,
    /// Row ids below this (paging backwards).
    pub before_id: Option<i64>,
}

impl Store {
    /// Creates an invoice with its assets; with an idempotency key already used by the
    /// merchant, returns that invoice instead (and `false`).
    pub async fn create_invoice(
        &self,
        new: &NewInvoice,
        now: i64,
    ) -> Result<(InvoiceRecord, bool), StoreError> {
        if let Some((key, _)) = &new.idempotency
            && let Some(existing) = self.invoice_by_key(new.merchant_id, key).await?
        {
            return Ok((existing, false));
        }
        let mut tx = self.pool.begin().await?;
        let (key, hash) = match &new.idempotency {
            Some((k, h)) => (Some(k.as_str()), Some(h.as_str())),
            None => (None, None),
        };
        let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO invoices (public_id, merchant_id, idempotency_key, body_hash, currency, \
             price, tax, tip, status, flags, expires_at, monitor_until, tolerance_ppm, order_id, \
             buyer_email, description, metadata, redirect_url, source, created_at, updated_at, \
             fiat_currency) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10, $11, $12, $13, $14, $15, $16, \
             $17, $18, $19, $19, $20) RETURNING {INVOICE_COLUMNS}"
        )))
        .bind(new.public_id.as_str())
        .bind(new.merchant_id.0)
        .bind(key)
        .bind(hash)
        .bind(new.currency.as_str())
        .bind(new.price.as_str())
        .bind(new.tax.as_str())
        .bind(new.tip.as_str())
        .bind(InvoiceStatus::New.as_str())
        .bind(new.expires_at)
        .bind(new.monitor_until)
        .bind(new.tolerance_ppm)
        .bind(new.order_id.as_deref())
        .bind(new.buyer_email.as_deref())
        .bind(new.description.as_deref())
        .bind(new.metadata.as_deref())
        .bind(new.redirect_url.as_deref())
        .bind(new.source.as_str())
        .bind(now)
        .bind(new.fiat_currency.as_deref())
        .fetch_one(&mut *tx)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(e) if is_unique_violation(&e) && key.is_some() => {
                drop(tx);
                let existing = self
                    .invoice_by_key(new.merchant_id, key.unwrap_or_default())
                    .await?
                    .ok_or(StoreError::Conflict)?;
                return Ok((existing, false));
            }
            Err(e) => return Err(e.into()),
        };
        let record = invoice(&row)?;
        for asset in &new.assets {
            sqlx::query(
                "INSERT INTO invoice_assets (invoice_id, asset, due, rate, rate_sources, \
                 confirmations, fiat_rate) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(record.id)
            .bind(asset.asset.as_str())
            .bind(asset.due.to_string())
            .bind(asset.rate.as_deref())
            .bind(asset.rate_sources.as_deref())
            .bind(asset.confirmations)
            .bind(asset.fiat_rate.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok((record, true))
    }

    /// Gives an invoice its on-chain receiving address (once).
    pub async fn set_invoice_address(
        &self,
        id: i64,
        chain_id: i64,
        address: &str,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE invoices SET chain_id = $2, pay_address = $3 WHERE id = $1 \
             AND pay_address IS NULL",
        )
        .bind(id)
        .bind(chain_id)
        .bind(address)
        .execute(&self.pool)
        .await?
        .rows_affected();
        if done != 1 {
            return Err(StoreError::Conflict);
        }
        Ok(())
    }

    /// Invoice receiving addresses made since `since` (Unix ms): address, merchant, invoice,
    /// creation time.
    pub async fn invoice_addresses_since(
        &self,
        chain_id: i64,
        since: i64,
    ) -> Result<Vec<(String, UserId, i64, i64)>, StoreError> {
        let rows = sqlx::query(
            "SELECT pay_address, merchant_id, id, created_at FROM invoices WHERE chain_id = $1 \
             AND pay_address IS NOT NULL AND created_at >= $2",
        )
        .bind(chain_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0)?,
                    UserId(r.try_get(1)?),
                    r.try_get(2)?,
                    r.try_get(3)?,
                ))
            })
            .collect()
    }

    /// The merchant's invoice made with this idempotency key.
    pub async fn invoice_by_key(
        &self,
        merchant_id: UserId,
        key: &str,
    ) -> Result<Option<InvoiceRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE merchant_id = $1 AND idempotency_key = $2"
        )))
        .bind(merchant_id.0)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invoice).transpose()
    }

    /// An invoice by public id.
    pub async fn invoice_by_public_id(
        &self,
        public_id: &str,
    ) -> Result<Option<InvoiceRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE public_id = $1"
        )))
        .bind(public_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invoice).transpose()
    }

    /// An invoice by row id.
    pub async fn invoice(&self, id: i64) -> Result<Option<InvoiceRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(invoice).transpose()
    }

    /// A merchant's invoices, newest first.
    pub async fn invoices_of(
        &self,
        merchant_id: UserId,
        filter: &InvoiceFilter,
        limit: i64,
    ) -> Result<Vec<InvoiceRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {INVOICE_COLUMNS} FROM invoices WHERE merchant_id = $1 \
             AND ($2 = '' OR status = $2) AND ($3 = '' OR order_id = $3) \
             AND created_at >= $4 AND created_at < $5 AND id < $6 \
             ORDER BY id DESC LIMIT $7"
        )))
        .bind(merchant_id.0)
        .bind(filter.status.map_or("", InvoiceStatus::as_str))
        .bind(filter.order_id.as_deref().unwrap_or_default())
        .bind(filter.since.unwrap_or(i64::MIN))
        .bind(filter.until.unwrap_or(i64::MAX))
        .bind(filter.before_id.unwrap_or(i64::MAX))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invoice).collect()
    }

    /// Invoices with an on-chain payment recorded or changed since `since` (Unix ms).
    pub async fn invoices_with_deposits_since(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT invoice_id FROM deposits WHERE invoice_id IS NOT NULL \
             AND updated_at >= $1 LIMIT $2",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Open invoices (new or processing) whose expiry has come.
    pub async fn overdue_invoices(&self, now: i64, limit: i64) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT id FROM invoices WHERE status IN ($1, $2) AND expires_at <= $3 \
             ORDER BY id LIMIT $4",
        )
        .bind(InvoiceStatus::New.as_str())
        .bind(InvoiceStatus::Processing.as_str())
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// Invoices in a status.
    pub async fn invoices_in(
        &self,
        status: InvoiceStatus,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let rows = sqlx::query("SELECT id FROM invoices WHERE status = $1 ORDER BY id LIMIT $2")
            .bind(status.as_str())
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
    }

    /// The accepted assets of an invoice.
    pub async fn invoice_assets(&self, invoice_id: i64) -> Result<Vec<InvoiceAsset>, StoreError> {
        let rows = sqlx::query(
            "SELECT asset, due, rate, rate_sources, confirmations, fiat_rate FROM invoice_assets \
             WHERE invoice_id = $1 ORDER BY asset",
        )
        .bind(invoice_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(InvoiceAsset {
                    asset: r.try_get(0)?,
                    due: stored_amount(r.try_get(1)?)?,
                    rate: r.try_get(2)?,
                    rate_sources: r.try_get(3)?,
                    confirmations: r.try_get(4)?,
                    fiat_rate: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Changes an invoice's status and flags if they are still `from` (compare-and-set).
    pub async fn set_invoice_state(
        &self,
        id: i64,
        from: (InvoiceStatus, i64),
        to: (InvoiceStatus, i64),
        now: i64,
    ) -> Result<bool, StoreError> {
        let settled =
            (to.0 == InvoiceStatus::Settled && from.0 != InvoiceStatus::Settled).then_some(now);
        let done = sqlx::query(
            "UPDATE invoices SET status = $4, flags = $5, updated_at = $6, \
             settled_at = COALESCE(settled_at, $7) WHERE id = $1 AND status = $2 AND flags = $3",
        )
        .bind(id)
        .bind(from.0.as_str())
        .bind(from.1)
        .bind(to.0.as_str())
        .bind(to.1)
        .bind(now)
        .bind(settled)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Records a payment from a balance, counted against the payer's 24-hour outflow limit.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_balance_payment(
        &self,
        invoice_id: i64,
        payer_id: UserId,
        asset: &str,
        amount: Amount,
        request_key: u64,
        limit: Option<crate::OutflowLimit>,
        now: i64,
    ) -> Result<BalancePayment, StoreError> {
        let mut tx = self.pool.begin().await?;
        crate::wallet::lock_user(&mut tx, payer_id).await?;
        if let Some(limit) = limit {
            crate::wallet::check_outflow(&mut tx, payer_id, asset, amount, limit).await?;
        }
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO invoice_payments (invoice_id, payer_id, asset, amount, request_key, \
             status, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             RETURNING {PAYMENT_COLUMNS}"
        )))
        .bind(invoice_id)
        .bind(payer_id.0)
        .bind(asset)
        .bind(amount.to_string())
        .bind(request_key.to_string())
        .bind(MoveStatus::Requested.as_str())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let record = payment(&row)?;
        tx.commit().await?;
        Ok(record)
    }

    /// An invoice's payments from balances.
    pub async fn balance_payments(
        &self,
        invoice_id: i64,
    ) -> Result<Vec<BalancePayment>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM invoice_payments WHERE invoice_id = $1 ORDER BY id"
        )))
        .bind(invoice_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payment).collect()
    }

    /// Payments from balances still `requested` made before `before` (a crash came between
    /// their record and their end): for the reconciler.
    pub async fn requested_balance_payments(
        &self,
        before: i64,
        limit: i64,
    ) -> Result<Vec<BalancePayment>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {PAYMENT_COLUMNS} FROM invoice_payments WHERE status = $1 AND created_at < $2 \
             ORDER BY id LIMIT $3"
        )))
        .bind(MoveStatus::Requested.as_str())
        .bind(before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payment).collect()
    }

    /// Ends a payment from a balance (compare-and-set from `requested`).
    pub async fn finish_balance_payment(
        &self,
        id: i64,
        status: MoveStatus,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE invoice_payments SET status = $2, updated_at = $3 WHERE id = $1 AND status = $4",
        )
        .bind(id)
        .bind(status.as_str())
        .bind(now)
        .bind(MoveStatus::Requested.as_str())
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// The on-chain payments of an invoice (its deposits rows).
    pub async fn invoice_deposits(
        &self,
        invoice_id: i64,
    ) -> Result<Vec<crate::DepositRecord>, StoreError> {
        self.deposits_where_invoice(invoice_id).await
    }

    /// Records a settlement or refund (before its core command), with an email to send in
    /// the same transaction (a refund link).
    pub async fn create_move(
        &self,
        new: &NewMove,
        mail: Option<&crate::Mail>,
        now: i64,
    ) -> Result<MoveRecord, StoreError> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO invoice_moves (invoice_id, kind, asset, amount, fee, from_gateway, \
             payer_id, token_hash, request_key, status, created_at, updated_at, fee_ppm) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12) \
             RETURNING {MOVE_COLUMNS}"
        )))
        .bind(new.invoice_id)
        .bind(new.kind.as_str())
        .bind(new.asset.as_str())
        .bind(new.amount.to_string())
        .bind(new.fee.to_string())
        .bind(i64::from(new.from_gateway))
        .bind(new.payer_id.map(|u| u.0))
        .bind(new.token_hash.as_deref())
        .bind(new.request_key.to_string())
        .bind(new.status.as_str())
        .bind(now)
        .bind(i64::from(new.fee_ppm))
        .fetch_one(&mut *tx)
        .await?;
        if let Some(mail) = mail {
            crate::enqueue(&mut tx, mail, now).await?;
        }
        tx.commit().await?;
        a_move(&row)
    }

    /// An invoice's settlements and refunds, oldest first.
    pub async fn invoice_moves(&self, invoice_id: i64) -> Result<Vec<MoveRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MOVE_COLUMNS} FROM invoice_moves WHERE invoice_id = $1 ORDER BY id"
        )))
        .bind(invoice_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(a_move).collect()
    }

    /// A refund waiting for its address, by its link's token hash.
    pub async fn move_by_token(&self, token_hash: &str) -> Result<Option<MoveRecord>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MOVE_COLUMNS} FROM invoice_moves WHERE token_hash = $1"
        )))
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(a_move).transpose()
    }

    /// Moves a settlement or refund from `from` to `to` (compare-and-set), with the fee it
    /// ended with and, for a refund by link, the address.
    pub async fn set_move_status(
        &self,
        id: i64,
        from: MoveStatus,
        to: MoveStatus,
        address: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE invoice_moves SET status = $3, address = COALESCE($4, address), \
             updated_at = $5 WHERE id = $1 AND status = $2",
        )
        .bind(id)
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(address)
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Records the order that converted a settlement.
    pub async fn set_conversion_order(&self, id: i64, order: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE invoice_moves SET conversion_order = $2 WHERE id = $1")
            .bind(id)
            .bind(order)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Moves not finished (their core command may not have run): for the reconciler.
    pub async fn requested_moves(&self, limit: i64) -> Result<Vec<MoveRecord>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {MOVE_COLUMNS} FROM invoice_moves WHERE status = $1 ORDER BY id LIMIT $2"
        )))
        .bind(MoveStatus::Requested.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(a_move).collect()
    }

    // ---- Webhooks ----

    /// Adds a webhook endpoint.
    pub async fn add_webhook_endpoint(
        &self,
        merchant_id: UserId,
        url: &str,
        sealed_secret: &[u8],
        events: &str,
        now: i64,
    ) -> Result<WebhookEndpoint, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO webhook_endpoints (merchant_id, url, sealed_secret, events, enabled, \
             created_at) VALUES ($1, $2, $3, $4, 1, $5) RETURNING {ENDPOINT_COLUMNS}"
        )))
        .bind(merchant_id.0)
        .bind(url)
        .bind(sealed_secret)
        .bind(events)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        endpoint(&row)
    }

    /// A merchant's webhook endpoints.
    pub async fn webhook_endpoints(
        &self,
        merchant_id: UserId,
    ) -> Result<Vec<WebhookEndpoint>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE merchant_id = $1 ORDER BY id"
        )))
        .bind(merchant_id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(endpoint).collect()
    }

    /// One webhook endpoint.
    pub async fn webhook_endpoint(&self, id: i64) -> Result<Option<WebhookEndpoint>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(endpoint).transpose()
    }

    /// Turns an endpoint off (it keeps its log) or on.
    pub async fn set_webhook_enabled(
        &self,
        merchant_id: UserId,
        id: i64,
        enabled: bool,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_endpoints SET enabled = $3 WHERE id = $1 AND merchant_id = $2",
        )
        .bind(id)
        .bind(merchant_id.0)
        .bind(i64::from(enabled))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    /// Records an event and one pending delivery per enabled endpoint of its merchant that
    /// wants its kind, in one transaction.
    pub async fn record_webhook_event(
        &self,
        public_id: &str,
        merchant_id: UserId,
        invoice_id: Option<i64>,
        kind: &str,
        payload: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query(
            "INSERT INTO webhook_events (public_id, merchant_id, invoice_id, kind, payload, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(public_id)
        .bind(merchant_id.0)
        .bind(invoice_id)
        .bind(kind)
        .bind(payload)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        let endpoints = sqlx::query(
            "SELECT id, events FROM webhook_endpoints WHERE merchant_id = $1 AND enabled = 1",
        )
        .bind(merchant_id.0)
        .fetch_all(&mut *tx)
        .await?;
        for row in endpoints {
            let endpoint: i64 = row.try_get(0)?;
            let events: String = row.try_get(1)?;
            if events != "*" && !events.split(',').any(|e| e.trim() == kind) {
                continue;
            }
            sqlx::query(
                "INSERT INTO webhook_deliveries (endpoint_id, event_id, status, attempts, \
                 next_at, created_at, updated_at) VALUES ($1, $2, $3, 0, $4, $4, $4)",
            )
            .bind(endpoint)
            .bind(id)
            .bind(DeliveryStatus::Pending.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(id)
    }

    /// Deliveries due at `now`: per endpoint, its oldest pending delivery that is due, and
    /// later ones only behind a head that has been retried `ordered_attempts` times (a
    /// failing event does not block the endpoint forever).
    pub async fn due_deliveries(
        &self,
        now: i64,
        ordered_attempts: i64,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS}, {EVENT_COLUMNS} FROM webhook_deliveries d \
             JOIN webhook_events e ON e.id = d.event_id \
             WHERE d.status = $1 AND d.next_at <= $2 AND NOT EXISTS ( \
               SELECT 1 FROM webhook_deliveries p WHERE p.endpoint_id = d.endpoint_id \
               AND p.status = $1 AND p.id < d.id AND p.attempts < $3) \
             ORDER BY d.next_at, d.id LIMIT $4"
        )))
        .bind(DeliveryStatus::Pending.as_str())
        .bind(now)
        .bind(ordered_attempts)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// Records an attempt and the delivery's next state (compare-and-set on its attempt count).
    pub async fn record_attempt(
        &self,
        delivery_id: i64,
        attempts_before: i64,
        attempt: &DeliveryAttempt,
        status: DeliveryStatus,
        next_at: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $3, attempts = attempts + 1, next_at = $4, \
             updated_at = $5 WHERE id = $1 AND attempts = $2",
        )
        .bind(delivery_id)
        .bind(attempts_before)
        .bind(status.as_str())
        .bind(next_at)
        .bind(attempt.at)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if done != 1 {
            return Ok(false);
        }
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, at, duration_ms, status_code, error, \
             response) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(delivery_id)
        .bind(attempt.at)
        .bind(attempt.duration_ms)
        .bind(attempt.status_code)
        .bind(attempt.error.as_deref())
        .bind(attempt.response.as_deref())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A merchant's deliveries, newest first (optionally of one endpoint).
    pub async fn deliveries_of(
        &self,
        merchant_id: UserId,
        endpoint_id: Option<i64>,
        limit: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS}, {EVENT_COLUMNS} FROM webhook_deliveries d \
             JOIN webhook_events e ON e.id = d.event_id \
             WHERE e.merchant_id = $1 AND ($2 = 0 OR d.endpoint_id = $2) \
             ORDER BY d.id DESC LIMIT $3"
        )))
        .bind(merchant_id.0)
        .bind(endpoint_id.unwrap_or(0))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(delivery).collect()
    }

    /// One delivery.
    pub async fn delivery(&self, id: i64) -> Result<Option<Delivery>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {DELIVERY_COLUMNS}, {EVENT_COLUMNS} FROM webhook_deliveries d \
             JOIN webhook_events e ON e.id = d.event_id WHERE d.id = $1"
        )))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(delivery).transpose()
    }

    /// A delivery's attempts, oldest first.
    pub async fn delivery_attempts(
        &self,
        delivery_id: i64,
    ) -> Result<Vec<DeliveryAttempt>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, delivery_id, at, duration_ms, status_code, error, response \
             FROM webhook_attempts WHERE delivery_id = $1 ORDER BY id",
        )
        .bind(delivery_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeliveryAttempt {
                    id: r.try_get(0)?,
                    delivery_id: r.try_get(1)?,
                    at: r.try_get(2)?,
                    duration_ms: r.try_get(3)?,
                    status_code: r.try_get(4)?,
                    error: r.try_get(5)?,
                    response: r.try_get(6)?,
                })
            })
            .collect()
    }

    /// Sends a delivery again: pending and due now, whatever it was.
    pub async fn redeliver(&self, delivery_id: i64, now: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE webhook_deliveries SET status = $2, next_at = $3, updated_at = $3 \
             WHERE id = $1",
        )
        .bind(delivery_id)
        .bind(DeliveryStatus::Pending.as_str())
        .bind(now)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(done == 1)
    }

    // ---- POS products ----

    /// Adds a POS product.
    pub async fn add_pos_product(
        &self,
        merchant_id: UserId,
        name: &str,
        price: &str,
        currency: &str,
        now: i64,
    ) -> Result<PosProduct, StoreError> {
        let row = sqlx::query(
            "INSERT INTO pos_products (merchant_id, name, price, currency, enabled, created_at) \
             VALUES ($1, $2, $3, $4, 1, $5) RETURNING id",
        )
        .bind(merchant_id.0)
        .bind(name)
        .bind(price)
        .bind(currency)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(PosProduct {
            id: row.try_get(0)?,
            merchant_id,
            name: name.to_owned(),
            price: price.to_owned(),
            currency: currency.to_owned(),
            enabled: true,
        })
    }

    /// A merchant's POS products.
    pub async fn pos_products(&self, merchant_id: UserId) -> Result<Vec<PosProduct>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, merchant_id, name, price, enabled, currency FROM pos_products \
             WHERE merchant_id = $1 AND enabled = 1 ORDER BY id",
        )
        .bind(merchant_id.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PosProduct {
                    id: r.try_get(0)?,
                    merchant_id: UserId(r.try_get(1)?),
                    name: r.try_get(2)?,
                    price: r.try_get(3)?,
                    enabled: r.try_get::<i64, _>(4)? != 0,
                    currency: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Removes a POS product from the counter.
    pub async fn remove_pos_product(
        &self,
        merchant_id: UserId,
        id: i64,
    ) -> Result<bool, StoreError> {
        let done =
            sqlx::query("UPDATE pos_products SET enabled = 0 WHERE id = $1 AND merchant_id = $2")
                .bind(id)
                .bind(merchant_id.0)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(done == 1)
    }
}
