//! Invoices: creation (prices converted at creation, stored with the rate), what merchants
//! and payers see, the reconciler that applies [`crate::model::assess`] by compare-and-set,
//! the settlement of confirmed funds in the exchange core, and marking by hand.

use std::collections::{BTreeMap, BTreeSet};

use alloy::primitives::U256;
use coss_core::{Command, GATEWAY, TransferInfo};
use coss_store::{
    BalancePayment, DepositRecord, DepositStatus, InvoiceAsset, InvoiceRecord, InvoiceStatus,
    MoveRecord, MoveStatus, NewInvoice, NewMove,
};
use coss_types::{AccountId, Amount, UserId};
use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::model::{self, PPM, Paid, Terms};
use crate::rates::RATE_DECIMALS;
use crate::{Gateway, GatewayError, gateway_request, new_request_key, public_id};

/// Longest order id, description, metadata (bytes of JSON) and redirect URL.
const MAX_ORDER_ID: usize = 128;
const MAX_DESCRIPTION: usize = 512;
const MAX_METADATA: usize = 4096;
const MAX_URL: usize = 2048;
/// Bounds of an invoice's times.
const MIN_EXPIRY_S: u64 = 60;
const MAX_EXPIRY_S: u64 = 7 * 24 * 3600;
const MAX_MONITORING_S: u64 = 30 * 24 * 3600;
/// Highest tolerance: 10%.
const MAX_TOLERANCE_PPM: u32 = 100_000;
/// Invoices a reconciler pass looks at, at most.
const PASS_LIMIT: i64 = 1_000;

/// A new invoice, as the API takes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateInvoice {
    /// The total price, a decimal string (`"12.50"`), tax and tip included.
    pub price: String,
    /// What the price is in: a listed asset (`ETH`) or a fiat currency (`USD`, `KRW`…).
    pub currency: String,
    /// The assets the payer may pay with (default: the priced asset, or every listed asset
    /// for a fiat price).
    #[serde(default)]
    pub accepted_assets: Option<Vec<String>>,
    /// The tax included in the price (reports).
    #[serde(default)]
    pub tax: Option<String>,
    /// The tip included in the price (reports).
    #[serde(default)]
    pub tip: Option<String>,
    /// Seconds to pay (default 900, 60 to 604800).
    #[serde(default)]
    pub expires_in_s: Option<u64>,
    /// Seconds late payments are still watched for (default 86400, at least the expiry).
    #[serde(default)]
    pub monitoring_s: Option<u64>,
    /// Accepted shortfall in parts per million (default 0, at most 100000).
    #[serde(default)]
    pub tolerance_ppm: Option<u32>,
    /// Confirmations per asset (at least the platform's).
    #[serde(default)]
    pub confirmations: Option<BTreeMap<String, u64>>,
    /// The merchant's order id.
    #[serde(default)]
    pub order_id: Option<String>,
    /// The buyer's email (refund links go there).
    #[serde(default)]
    pub buyer_email: Option<String>,
    /// What is sold.
    #[serde(default)]
    pub description: Option<String>,
    /// Free JSON, returned as given (at most 4 KiB).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Option<serde_json::Value>,
    /// Where the checkout sends the payer once paid (http or https).
    #[serde(default)]
    pub redirect_url: Option<String>,
}

/// What one accepted asset must pay, and what arrived.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AssetDue {
    /// The asset.
    pub asset: String,
    /// Due at creation (decimal, whole units).
    pub due: String,
    /// The rate used: price currency per unit, if converted.
    pub rate: Option<String>,
    /// The rate sources (merchant view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_sources: Option<String>,
    /// Confirmations needed.
    pub confirmations: i64,
    /// Seen so far (decimal).
    pub paid: String,
    /// Confirmed so far (decimal).
    pub confirmed: String,
    /// Still to pay in this asset for the whole invoice (decimal).
    pub remaining: String,
    /// The EIP-681 URI that pays `remaining` on chain (any Ethereum wallet scans it).
    pub payment_uri: Option<String>,
}

/// One payment of an invoice.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct PaymentView {
    /// `chain` or `balance`.
    pub method: &'static str,
    /// The asset.
    pub asset: String,
    /// Decimal.
    pub amount: String,
    /// `pending` (waiting for confirmations), `confirmed`, `orphaned` (left the chain),
    /// `refused`, or for a balance payment `done` / `rejected`.
    pub status: String,
    /// The transaction (on chain).
    pub tx_hash: Option<String>,
    /// Confirmations so far (on chain).
    pub confirmations: Option<u64>,
    /// When the platform saw it (Unix ms).
    pub seen_at: i64,
}

/// A settlement or refund.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct MoveView {
    /// Its id.
    pub id: i64,
    /// The asset.
    pub asset: String,
    /// Decimal: what moved (a settlement: before the fee).
    pub amount: String,
    /// Decimal: the fee kept (settlements).
    pub fee: String,
    /// Decimal: what the merchant got (settlements) or the payer (refunds).
    pub net: String,
    /// `requested`, `done`, `rejected`, `awaiting_address`.
    pub status: &'static str,
    /// A refund: `account` (the payer's COSS account) or `address`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// A settlement converted to the merchant's settlement asset: the order that did it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conversion_order: Option<i64>,
    /// When (Unix ms).
    pub created_at: i64,
}

/// An invoice as its merchant sees it (the payer's view leaves out the buyer's email, the
/// metadata and the rate sources).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct InvoiceView {
    /// Public id.
    pub id: String,
    /// `new`, `processing`, `settled`, `expired`, `invalid`.
    pub status: &'static str,
    /// `paid_partial`, `paid_over`, `paid_late`, `marked`.
    pub flags: Vec<&'static str>,
    /// Price currency.
    pub currency: String,
    /// Total price (decimal).
    pub price: String,
    /// Tax included.
    pub tax: String,
    /// Tip included.
    pub tip: String,
    /// The merchant's order id.
    pub order_id: Option<String>,
    /// What is sold.
    pub description: Option<String>,
    /// The buyer's email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buyer_email: Option<String>,
    /// The metadata as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub metadata: Option<serde_json::Value>,
    /// Where the checkout sends the payer.
    pub redirect_url: Option<String>,
    /// `api` or `pos`.
    pub source: String,
    /// The merchant's display name.
    pub merchant: String,
    /// Made (Unix ms).
    pub created_at: i64,
    /// Expires (Unix ms).
    pub expires_at: i64,
    /// Late payments watched until (Unix ms).
    pub monitor_until: i64,
    /// Settled (Unix ms).
    pub settled_at: Option<i64>,
    /// Accepted shortfall (ppm).
    pub tolerance_ppm: i64,
    /// The checkout page.
    pub checkout_url: String,
    /// The on-chain receiving address.
    pub address: Option<String>,
    /// Its chain.
    pub chain_id: Option<i64>,
    /// Per accepted asset.
    pub assets: Vec<AssetDue>,
    /// Payments, oldest first.
    pub payments: Vec<PaymentView>,
    /// Settlements to the merchant.
    pub settlements: Vec<MoveView>,
    /// Refunds.
    pub refunds: Vec<MoveView>,
}

/// Everything recorded about an invoice's money.
#[derive(Debug, Clone)]
pub(crate) struct Facts {
    pub(crate) assets: Vec<InvoiceAsset>,
    pub(crate) deposits: Vec<DepositRecord>,
    pub(crate) balance: Vec<BalancePayment>,
    pub(crate) moves: Vec<MoveRecord>,
    pub(crate) head: u64,
}

impl Facts {
    fn index(&self, asset: &str) -> Option<usize> {
        self.assets.iter().position(|a| a.asset == asset)
    }

    fn deposit_confirmations(&self, deposit: &DepositRecord) -> u64 {
        let height = u64::try_from(deposit.block_height).unwrap_or(u64::MAX);
        (self.head + 1).saturating_sub(height)
    }

    /// The payments the model counts.
    pub(crate) fn paid(&self) -> Vec<Paid> {
        let mut paid = Vec::new();
        for d in &self.deposits {
            let Some(asset) = self.index(&d.asset) else {
                continue;
            };
            let counted = matches!(d.status, DepositStatus::Pending | DepositStatus::Credited);
            if !counted {
                continue;
            }
            let needed = u64::try_from(self.assets[asset].confirmations).unwrap_or(u64::MAX);
            paid.push(Paid {
                asset,
                amount: d.amount.0,
                confirmed: d.status == DepositStatus::Credited
                    && self.deposit_confirmations(d) >= needed,
                seen_at: d.created_at,
            });
        }
        for b in self.balance.iter().filter(|b| b.status == MoveStatus::Done) {
            if let Some(asset) = self.index(&b.asset) {
                paid.push(Paid {
                    asset,
                    amount: b.amount.0,
                    confirmed: true,
                    seen_at: b.created_at,
                });
            }
        }
        paid
    }

    fn dues(&self) -> Vec<u128> {
        self.assets.iter().map(|a| a.due.0).collect()
    }

    /// Confirmed (in the gateway account) per asset.
    pub(crate) fn confirmed(&self, asset: &str) -> u128 {
        let Some(index) = self.index(asset) else {
            return 0;
        };
        self.paid()
            .iter()
            .filter(|p| p.asset == index && p.confirmed)
            .map(|p| p.amount)
            .fold(0, u128::saturating_add)
    }

    /// What moves of `kind` took or hold of `asset` (all but rejected ones), from the gateway
    /// account only if `from_gateway`.
    pub(crate) fn moved(&self, kind: &str, asset: &str, from_gateway: Option<bool>) -> u128 {
        self.moves
            .iter()
            .filter(|m| m.kind == kind && m.asset == asset && m.status != MoveStatus::Rejected)
            .filter(|m| from_gateway.is_none_or(|g| m.from_gateway == g))
            .map(|m| m.amount.0)
            .fold(0, u128::saturating_add)
    }

    /// Confirmed funds of `asset` still in the gateway account (neither settled nor refunded).
    pub(crate) fn unsettled(&self, asset: &str) -> u128 {
        self.confirmed(asset)
            .saturating_sub(self.moved("settlement", asset, None))
            .saturating_sub(self.moved("refund", asset, Some(true)))
    }
}

impl Gateway {
    /// Creates an invoice for `merchant`. With an idempotency key the merchant used before,
    /// returns that invoice if the body is the same, and refuses otherwise.
    pub async fn create_invoice(
        &self,
        merchant: UserId,
        request: &CreateInvoice,
        idempotency_key: Option<&str>,
        source: &str,
    ) -> Result<InvoiceView, GatewayError> {
        let inner = &self.inner;
        let hash = hex::encode(sha2::Sha256::digest(
            serde_json::to_vec(request).map_err(|_| GatewayError::Crypto("serialise"))?,
        ));
        if let Some(key) = idempotency_key {
            if key.is_empty() || key.len() > 64 {
                return Err(GatewayError::InvalidParameter(
                    "Idempotency-Key (1 to 64 characters)".into(),
                ));
            }
            if let Some(existing) = inner.store.invoice_by_key(merchant, key).await? {
                return self.same_request(existing, &hash).await;
            }
        }
        let new = self
            .new_invoice(merchant, request, idempotency_key, &hash, source)
            .await?;
        let now = self.now();
        let (record, created) = inner.store.create_invoice(&new, now).await?;
        if !created {
            return self.same_request(record, &hash).await;
        }
        let address = inner.wallet.invoice_address(record.id, merchant).await?;
        let record = InvoiceRecord {
            chain_id: Some(i64::try_from(inner.wallet.config().chain_id).unwrap_or(i64::MAX)),
            pay_address: Some(coss_wallet::hex_address(address)),
            ..record
        };
        let view = self.view(&record, true).await?;
        self.emit(&record, "invoice.created", &view).await?;
        Ok(view)
    }

    async fn same_request(
        &self,
        existing: InvoiceRecord,
        hash: &str,
    ) -> Result<InvoiceView, GatewayError> {
        if existing.body_hash.as_deref() != Some(hash) {
            return Err(GatewayError::IdempotencyMismatch);
        }
        self.view(&existing, true).await
    }

    async fn new_invoice(
        &self,
        merchant: UserId,
        request: &CreateInvoice,
        idempotency_key: Option<&str>,
        hash: &str,
        source: &str,
    ) -> Result<NewInvoice, GatewayError> {
        let inner = &self.inner;
        let config = &inner.config;
        let chain = inner.wallet.config();
        let currency = request.currency.trim().to_ascii_uppercase();
        let decimals = self.currency_decimals(&currency)?;
        let fiat = config.fiat.get(&currency).copied();
        let crypto = chain.asset(&currency);
        let price = parse_money(&request.price, decimals, "price")?;
        if price == 0 {
            return Err(GatewayError::InvalidAmount(
                "the price must be positive".into(),
            ));
        }
        let tax = match &request.tax {
            Some(t) => parse_money(t, decimals, "tax")?,
            None => 0,
        };
        let tip = match &request.tip {
            Some(t) => parse_money(t, decimals, "tip")?,
            None => 0,
        };
        if tax.saturating_add(tip) > price {
            return Err(GatewayError::InvalidAmount(
                "tax and tip are part of the price and cannot exceed it".into(),
            ));
        }
        let accepted: Vec<String> = match &request.accepted_assets {
            Some(list) if list.is_empty() || list.len() > 16 => {
                return Err(GatewayError::InvalidParameter(
                    "accepted_assets (1 to 16 assets)".into(),
                ));
            }
            Some(list) => list
                .iter()
                .map(|a| a.trim().to_ascii_uppercase())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            None if crypto.is_some() => vec![currency.clone()],
            None => chain.assets.iter().map(|a| a.symbol.clone()).collect(),
        };
        let explicit = request.accepted_assets.is_some();
        let expires_in = request.expires_in_s.unwrap_or(config.expiry_s);
        if !(MIN_EXPIRY_S..=MAX_EXPIRY_S).contains(&expires_in) {
            return Err(GatewayError::InvalidParameter(format!(
                "expires_in_s ({MIN_EXPIRY_S} to {MAX_EXPIRY_S})"
            )));
        }
        let monitoring = request
            .monitoring_s
            .unwrap_or(config.monitoring_s)
            .max(expires_in);
        if monitoring > MAX_MONITORING_S {
            return Err(GatewayError::InvalidParameter(format!(
                "monitoring_s (at most {MAX_MONITORING_S})"
            )));
        }
        let tolerance = request.tolerance_ppm.unwrap_or(0);
        if tolerance > MAX_TOLERANCE_PPM {
            return Err(GatewayError::InvalidParameter(format!(
                "tolerance_ppm (at most {MAX_TOLERANCE_PPM})"
            )));
        }
        let order_id = bounded(&request.order_id, MAX_ORDER_ID, "order_id")?;
        let description = bounded(&request.description, MAX_DESCRIPTION, "description")?;
        let buyer_email = match &request.buyer_email {
            Some(email) => Some(
                coss_identity::normalise_email(email)
                    .map_err(|_| GatewayError::InvalidParameter("buyer_email".into()))?,
            ),
            None => None,
        };
        let metadata = match &request.metadata {
            Some(value) => {
                let text = value.to_string();
                if text.len() > MAX_METADATA || !value.is_object() {
                    return Err(GatewayError::InvalidParameter(
                        "metadata (a JSON object of at most 4 KiB)".into(),
                    ));
                }
                Some(text)
            }
            None => None,
        };
        let redirect_url = match &request.redirect_url {
            Some(text) => {
                let ok = text.len() <= MAX_URL
                    && url::Url::parse(text).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
                if !ok {
                    return Err(GatewayError::InvalidParameter(
                        "redirect_url (an http or https URL)".into(),
                    ));
                }
                Some(text.clone())
            }
            None => None,
        };
        let mut assets = Vec::with_capacity(accepted.len());
        for symbol in &accepted {
            let asset = chain
                .asset(symbol)
                .ok_or_else(|| GatewayError::UnknownAsset(symbol.clone()))?;
            let asked = request
                .confirmations
                .as_ref()
                .and_then(|c| c.get(symbol))
                .copied();
            if asked.is_some_and(|c| c < asset.confirmations || c > 1_000) {
                return Err(GatewayError::InvalidParameter(format!(
                    "confirmations of {symbol} ({} to 1000)",
                    asset.confirmations
                )));
            }
            let confirmations =
                i64::try_from(asked.unwrap_or(asset.confirmations)).unwrap_or(i64::MAX);
            let (due, rate, sources, fiat_rate) = if crypto.is_some() {
                if *symbol != currency {
                    return Err(GatewayError::InvalidParameter(format!(
                        "accepted_assets: an invoice priced in {currency} is paid in {currency}"
                    )));
                }
                // Reports value it in the report currency at this moment, when a source
                // answers (invoicing never waits for that).
                let reference = inner.rates.rate(symbol, &config.report_currency).await;
                (price, None, None, reference.map(|r| r.decimal()))
            } else {
                let Some(rate) = inner.rates.rate(symbol, &currency).await else {
                    if explicit {
                        return Err(GatewayError::NoRate {
                            asset: symbol.clone(),
                            currency: currency.clone(),
                        });
                    }
                    // By default a fiat price is payable in every asset with a rate now.
                    continue;
                };
                let due = convert(price, decimals, rate.scaled, asset.decimals)
                    .ok_or_else(|| GatewayError::InvalidAmount("the price is too large".into()))?;
                let decimal = rate.decimal();
                (
                    due,
                    Some(decimal.clone()),
                    Some(rate.sources),
                    Some(decimal),
                )
            };
            if due == 0 {
                return Err(GatewayError::InvalidAmount(format!(
                    "the price is less than one unit of {symbol}"
                )));
            }
            assets.push(InvoiceAsset {
                asset: symbol.clone(),
                due: Amount(due),
                rate,
                rate_sources: sources,
                fiat_rate,
                confirmations,
            });
        }
        if assets.is_empty() {
            return Err(GatewayError::NoRate {
                asset: accepted.join(","),
                currency,
            });
        }
        let now = self.now();
        let expires_at = now.saturating_add(i64::try_from(expires_in * 1000).unwrap_or(i64::MAX));
        let fiat_currency = Some(if fiat.is_some() {
            currency.clone()
        } else {
            config.report_currency.clone()
        });
        Ok(NewInvoice {
            fiat_currency,
            public_id: public_id("inv")?,
            merchant_id: merchant,
            idempotency: idempotency_key.map(|k| (k.to_owned(), hash.to_owned())),
            currency,
            price: decimal(Amount(price), decimals),
            tax: decimal(Amount(tax), decimals),
            tip: decimal(Amount(tip), decimals),
            expires_at,
            monitor_until: now.saturating_add(i64::try_from(monitoring * 1000).unwrap_or(i64::MAX)),
            tolerance_ppm: i64::from(tolerance),
            order_id,
            buyer_email,
            description,
            metadata,
            redirect_url,
            source: source.to_owned(),
            assets,
        })
    }

    /// The merchant's invoice by public id (another merchant's is "not found").
    pub async fn merchant_invoice(
        &self,
        merchant: UserId,
        public_id: &str,
    ) -> Result<InvoiceRecord, GatewayError> {
        self.inner
            .store
            .invoice_by_public_id(public_id)
            .await?
            .filter(|i| i.merchant_id == merchant)
            .ok_or(GatewayError::NotFound)
    }

    /// Any invoice by public id (the checkout's).
    pub async fn public_invoice(&self, public_id: &str) -> Result<InvoiceRecord, GatewayError> {
        self.inner
            .store
            .invoice_by_public_id(public_id)
            .await?
            .ok_or(GatewayError::NotFound)
    }

    pub(crate) async fn facts(&self, record: &InvoiceRecord) -> Result<Facts, GatewayError> {
        let store = &self.inner.store;
        Ok(Facts {
            assets: store.invoice_assets(record.id).await?,
            deposits: store.invoice_deposits(record.id).await?,
            balance: store.balance_payments(record.id).await?,
            moves: store.invoice_moves(record.id).await?,
            head: self.inner.wallet.head(),
        })
    }

    /// An invoice as its merchant (`full`) or its payer sees it.
    pub async fn view(
        &self,
        record: &InvoiceRecord,
        full: bool,
    ) -> Result<InvoiceView, GatewayError> {
        let facts = self.facts(record).await?;
        let chain = self.inner.wallet.config();
        let paid = facts.paid();
        let dues = facts.dues();
        let seen = model::coverage(&dues, &paid);
        let missing = PPM.saturating_sub(seen);
        let mut assets = Vec::with_capacity(facts.assets.len());
        for (i, a) in facts.assets.iter().enumerate() {
            let decimals = self.decimals(&a.asset);
            let sum = |confirmed_only: bool| {
                paid.iter()
                    .filter(|p| p.asset == i && (p.confirmed || !confirmed_only))
                    .map(|p| p.amount)
                    .fold(0u128, u128::saturating_add)
            };
            let remaining = remaining_of(a.due.0, missing);
            let open = matches!(record.status, InvoiceStatus::New);
            let uri = match (&record.pay_address, chain.asset(&a.asset)) {
                (Some(address), Some(config)) if open && remaining > 0 => Some(payment_uri(
                    address,
                    chain.chain_id,
                    config.token.map(coss_wallet::hex_address).as_deref(),
                    remaining,
                )),
                _ => None,
            };
            assets.push(AssetDue {
                asset: a.asset.clone(),
                due: decimal(a.due, decimals),
                rate: a.rate.clone(),
                rate_sources: if full { a.rate_sources.clone() } else { None },
                confirmations: a.confirmations,
                paid: decimal(Amount(sum(false)), decimals),
                confirmed: decimal(Amount(sum(true)), decimals),
                remaining: decimal(Amount(remaining), decimals),
                payment_uri: uri,
            });
        }
        let mut payments = Vec::new();
        for d in &facts.deposits {
            let decimals = self.decimals(&d.asset);
            let needed = facts
                .index(&d.asset)
                .map_or(0, |i| facts.assets[i].confirmations);
            let confirmations = facts.deposit_confirmations(d);
            let status = match d.status {
                DepositStatus::Credited
                    if i64::try_from(confirmations).unwrap_or(i64::MAX) >= needed =>
                {
                    "confirmed"
                }
                DepositStatus::Credited | DepositStatus::Pending => "pending",
                DepositStatus::Orphaned => "orphaned",
                DepositStatus::Refused => "refused",
            };
            payments.push(PaymentView {
                method: "chain",
                asset: d.asset.clone(),
                amount: decimal(d.amount, decimals),
                status: status.to_owned(),
                tx_hash: Some(d.tx_hash.clone()),
                confirmations: Some(match d.status {
                    DepositStatus::Orphaned | DepositStatus::Refused => 0,
                    _ => confirmations,
                }),
                seen_at: d.created_at,
            });
        }
        for b in facts
            .balance
            .iter()
            .filter(|b| b.status != MoveStatus::Rejected)
        {
            let decimals = self.decimals(&b.asset);
            payments.push(PaymentView {
                method: "balance",
                asset: b.asset.clone(),
                amount: decimal(b.amount, decimals),
                status: b.status.as_str().to_owned(),
                tx_hash: None,
                confirmations: None,
                seen_at: b.created_at,
            });
        }
        payments.sort_by_key(|p| p.seen_at);
        let move_view = |m: &MoveRecord| {
            let decimals = self.decimals(&m.asset);
            MoveView {
                id: m.id,
                asset: m.asset.clone(),
                amount: decimal(m.amount, decimals),
                fee: decimal(m.fee, decimals),
                net: decimal(Amount(m.amount.0.saturating_sub(m.fee.0)), decimals),
                status: m.status.as_str(),
                destination: (m.kind == "refund").then(|| {
                    if m.payer_id.is_some() {
                        "account".to_owned()
                    } else {
                        "address".to_owned()
                    }
                }),
                conversion_order: m.conversion_order,
                created_at: m.created_at,
            }
        };
        let merchant = self
            .merchant_name(record.merchant_id)
            .await
            .unwrap_or_default();
        Ok(InvoiceView {
            id: record.public_id.clone(),
            status: record.status.as_str(),
            flags: model::flag_names(record.flags),
            currency: record.currency.clone(),
            price: record.price.clone(),
            tax: record.tax.clone(),
            tip: record.tip.clone(),
            order_id: record.order_id.clone(),
            description: record.description.clone(),
            buyer_email: if full {
                record.buyer_email.clone()
            } else {
                None
            },
            metadata: if full {
                record
                    .metadata
                    .as_deref()
                    .and_then(|m| serde_json::from_str(m).ok())
            } else {
                None
            },
            redirect_url: record.redirect_url.clone(),
            source: record.source.clone(),
            merchant,
            created_at: record.created_at,
            expires_at: record.expires_at,
            monitor_until: record.monitor_until,
            settled_at: record.settled_at,
            tolerance_ppm: record.tolerance_ppm,
            checkout_url: self.checkout_url(&record.public_id),
            address: record.pay_address.clone(),
            chain_id: record.chain_id,
            assets,
            payments,
            settlements: facts
                .moves
                .iter()
                .filter(|m| m.kind == "settlement")
                .map(move_view)
                .collect(),
            refunds: facts
                .moves
                .iter()
                .filter(|m| m.kind == "refund")
                .map(move_view)
                .collect(),
        })
    }

    /// The checkout page of an invoice.
    #[must_use]
    pub fn checkout_url(&self, public_id: &str) -> String {
        self.link(&format!("pay/{public_id}"))
    }

    /// Brings an invoice's status up to date and settles its confirmed funds once settled.
    /// Serialised with every other money move of the gateway.
    pub async fn reconcile(&self, id: i64) -> Result<InvoiceRecord, GatewayError> {
        let _money = self.inner.money.lock().await;
        self.reconcile_locked(id).await
    }

    pub(crate) async fn reconcile_locked(&self, id: i64) -> Result<InvoiceRecord, GatewayError> {
        let store = &self.inner.store;
        let mut record = store.invoice(id).await?.ok_or(GatewayError::NotFound)?;
        let facts = self.facts(&record).await?;
        let terms = Terms {
            expires_at: record.expires_at,
            monitor_until: record.monitor_until,
            tolerance_ppm: u128::try_from(record.tolerance_ppm).unwrap_or(0),
        };
        let now = self.now();
        let (status, flags) = model::assess(
            record.status,
            record.flags,
            &terms,
            &facts.dues(),
            &facts.paid(),
            now,
        );
        if (status, flags) != (record.status, record.flags) {
            if !store
                .set_invoice_state(id, (record.status, record.flags), (status, flags), now)
                .await?
            {
                // Someone else moved it: look again next pass.
                return store.invoice(id).await?.ok_or(GatewayError::NotFound);
            }
            let before = (record.status, record.flags);
            record = store.invoice(id).await?.ok_or(GatewayError::NotFound)?;
            self.announce(&record, before).await?;
        }
        if record.status == InvoiceStatus::Settled {
            self.settle_funds(&record, &facts).await?;
        }
        // Looked at because its payments or its clock moved: its followers look again.
        self.touched(record.id);
        Ok(record)
    }

    /// Webhook events for a change of status or flags; the merchant's view they carry.
    async fn announce(
        &self,
        record: &InvoiceRecord,
        before: (InvoiceStatus, i64),
    ) -> Result<InvoiceView, GatewayError> {
        self.touched(record.id);
        let view = self.view(record, true).await?;
        if record.status != before.0 {
            let kind = match record.status {
                InvoiceStatus::New => "invoice.reopened",
                InvoiceStatus::Processing => "invoice.processing",
                InvoiceStatus::Settled => "invoice.settled",
                InvoiceStatus::Expired => "invoice.expired",
                InvoiceStatus::Invalid => "invoice.invalid",
            };
            self.emit(record, kind, &view).await?;
        }
        let gained = record.flags & !before.1;
        for (bit, kind) in [
            (model::PAID_PARTIAL, "invoice.paid_partial"),
            (model::PAID_OVER, "invoice.paid_over"),
            (model::PAID_LATE, "invoice.paid_late"),
        ] {
            if gained & bit != 0 {
                self.emit(record, kind, &view).await?;
            }
        }
        Ok(view)
    }

    /// Moves the confirmed funds of a settled invoice still in the gateway account to the
    /// merchant, less the fee.
    async fn settle_funds(
        &self,
        record: &InvoiceRecord,
        facts: &Facts,
    ) -> Result<(), GatewayError> {
        let fee_ppm = self
            .inner
            .engine
            .read_async(coss_core::Exchange::gateway_fee_ppm)
            .await?;
        for asset in &facts.assets {
            let amount = facts.unsettled(&asset.asset);
            if amount == 0 {
                continue;
            }
            let fee = coss_core::fee_for(amount, fee_ppm);
            let recorded = self
                .inner
                .store
                .create_move(
                    &NewMove {
                        invoice_id: record.id,
                        kind: "settlement".into(),
                        asset: asset.asset.clone(),
                        amount: Amount(amount),
                        fee: Amount(fee),
                        fee_ppm,
                        from_gateway: true,
                        payer_id: None,
                        token_hash: None,
                        request_key: new_request_key()?,
                        status: MoveStatus::Requested,
                    },
                    None,
                    self.now(),
                )
                .await?;
            if self.apply_move(record, &recorded).await? == MoveStatus::Done {
                self.convert(record, &recorded).await;
            }
        }
        Ok(())
    }

    /// For a merchant whose profile says `convert`: sells what a settlement paid into the
    /// merchant's settlement asset at market, through COSS's own order book (a market order
    /// of the merchant's account, client order id `gw<move>`, its trades in the merchant's
    /// history like any other). Attempted once, right after the settlement; without a market
    /// between the two assets, or liquidity, the funds stay in the asset paid.
    async fn convert(&self, record: &InvoiceRecord, settled: &MoveRecord) {
        let inner = &self.inner;
        let Ok(Some(profile)) = inner.accounts.merchant(record.merchant_id).await else {
            return;
        };
        if profile.settlement_mode != "convert" || profile.settlement_asset == settled.asset {
            return;
        }
        let Some(markets) = &inner.markets else {
            return;
        };
        let net = settled.amount.0.saturating_sub(settled.fee.0);
        let order = {
            let projection = markets.read();
            projection.markets().find_map(|view| {
                let m = &view.market;
                if m.base.symbol == settled.asset && m.quote.symbol == profile.settlement_asset {
                    let lots = u64::try_from(net / m.lot_size.max(1)).ok()?;
                    (lots > 0).then_some((
                        m.id,
                        coss_types::Side::Sell,
                        coss_core::OrderKind::Market {
                            qty: coss_types::Qty(lots),
                        },
                    ))
                } else if m.base.symbol == profile.settlement_asset
                    && m.quote.symbol == settled.asset
                {
                    Some((
                        m.id,
                        coss_types::Side::Buy,
                        coss_core::OrderKind::MarketQuote {
                            amount: Amount(net),
                        },
                    ))
                } else {
                    None
                }
            })
        };
        let (Some((market, side, kind)), Ok(account)) = (order, account(record.merchant_id)) else {
            tracing::info!(invoice = %record.public_id, "no market to convert a settlement");
            return;
        };
        let Ok(client_id) = coss_types::ClientOrderId::new(&format!("gw{}", settled.id)) else {
            return;
        };
        let placed = inner
            .engine
            .submit_async(Command::PlaceOrder(coss_core::NewOrder {
                account,
                market,
                side,
                kind,
                client_id: Some(client_id),
                stp: coss_core::SelfTradePrevention::ExpireTaker,
            }))
            .await;
        match placed {
            Ok(receipt) => {
                let order = receipt.events.iter().find_map(|e| match &e.kind {
                    coss_core::EventKind::OrderAccepted { order, .. } => Some(order.0),
                    _ => None,
                });
                if let Some(order) = order.and_then(|o| i64::try_from(o).ok()) {
                    let _ = inner.store.set_conversion_order(settled.id, order).await;
                } else if let Err(reason) = receipt.outcome {
                    tracing::warn!(invoice = %record.public_id, code = reason.code(), "conversion refused");
                }
            }
            Err(error) => {
                tracing::warn!(invoice = %record.public_id, %error, "conversion not placed")
            }
        }
    }

    /// Runs a recorded move's core command (again, after a crash: the request id makes the
    /// retry harmless) and records how it ended.
    pub(crate) async fn apply_move(
        &self,
        record: &InvoiceRecord,
        recorded: &MoveRecord,
    ) -> Result<MoveStatus, GatewayError> {
        let asset = self.asset(&recorded.asset)?.asset;
        let merchant = account(record.merchant_id)?;
        let request = gateway_request(recorded.request_key);
        let amount = recorded.amount;
        let (command, expected) = match (recorded.kind.as_str(), recorded.payer_id) {
            ("settlement", _) => (
                Command::GatewaySettle {
                    request,
                    merchant,
                    asset,
                    amount,
                    fee_ppm: recorded.fee_ppm,
                },
                TransferInfo {
                    from: GATEWAY,
                    to: merchant,
                    asset,
                    amount,
                },
            ),
            ("refund", Some(payer)) => {
                let from = if recorded.from_gateway {
                    GATEWAY
                } else {
                    merchant
                };
                let to = account(payer)?;
                (
                    Command::Transfer {
                        request,
                        from,
                        to,
                        asset,
                        amount,
                    },
                    TransferInfo {
                        from,
                        to,
                        asset,
                        amount,
                    },
                )
            }
            ("refund", None) => return self.refund_to_address(record, recorded).await,
            _ => return Ok(recorded.status),
        };
        let outcome = self.run_once(command, request, expected).await?;
        let status = match outcome {
            Ok(()) => MoveStatus::Done,
            Err(_) => MoveStatus::Rejected,
        };
        self.inner
            .store
            .set_move_status(recorded.id, MoveStatus::Requested, status, None, self.now())
            .await?;
        if let Err(reason) = outcome {
            tracing::warn!(invoice = %record.public_id, code = reason.code(), "gateway move refused");
            return Err(reason.into());
        }
        self.touched(record.id);
        Ok(status)
    }

    /// A refund to the address its payer gave: unsettled money back to the merchant first
    /// (no fee), then a withdrawal from the merchant's balance to the address (its own
    /// idempotency key, so a retry after a crash sends it once).
    async fn refund_to_address(
        &self,
        record: &InvoiceRecord,
        recorded: &MoveRecord,
    ) -> Result<MoveStatus, GatewayError> {
        let inner = &self.inner;
        let Some(address) = recorded.address.clone() else {
            return Ok(recorded.status);
        };
        let config = self.asset(&recorded.asset)?;
        let merchant = account(record.merchant_id)?;
        if recorded.from_gateway {
            let request = gateway_request(recorded.request_key);
            let back = TransferInfo {
                from: GATEWAY,
                to: merchant,
                asset: config.asset,
                amount: recorded.amount,
            };
            let command = Command::Transfer {
                request,
                from: back.from,
                to: back.to,
                asset: back.asset,
                amount: back.amount,
            };
            self.run_once(command, request, back).await??;
        }
        let sent = inner
            .wallet
            .request_refund_withdrawal(&coss_wallet::WithdrawalRequest {
                user_id: record.merchant_id,
                asset: recorded.asset.clone(),
                address,
                amount: recorded.amount.to_decimal_string(config.decimals),
                code: None,
                idempotency_key: format!("refund-{}", recorded.id),
                now: self.now(),
            })
            .await;
        let status = match &sent {
            Ok(_) => MoveStatus::Done,
            Err(error) => {
                tracing::warn!(invoice = %record.public_id, %error, "refund withdrawal refused");
                MoveStatus::Rejected
            }
        };
        inner
            .store
            .set_move_status(recorded.id, MoveStatus::Requested, status, None, self.now())
            .await?;
        self.touched(record.id);
        sent?;
        Ok(status)
    }

    /// Sets an invoice's status by hand: `settled` (its confirmed funds, late ones included,
    /// then go to the merchant) or `invalid`. Flags it `marked`.
    pub async fn mark(
        &self,
        merchant: UserId,
        public_id: &str,
        to: &str,
    ) -> Result<InvoiceView, GatewayError> {
        let _money = self.inner.money.lock().await;
        let record = self.merchant_invoice(merchant, public_id).await?;
        let target = match to {
            "settled" => InvoiceStatus::Settled,
            "invalid" => InvoiceStatus::Invalid,
            other => {
                return Err(GatewayError::InvalidParameter(format!(
                    "status {other:?} (settled or invalid)"
                )));
            }
        };
        if record.status == target || record.status == InvoiceStatus::Settled {
            return Err(GatewayError::InvalidTransition {
                from: record.status.as_str(),
                to: to.to_owned(),
            });
        }
        let before = (record.status, record.flags);
        let flags = record.flags | model::MARKED;
        if !self
            .inner
            .store
            .set_invoice_state(record.id, before, (target, flags), self.now())
            .await?
        {
            return Err(GatewayError::InvalidTransition {
                from: record.status.as_str(),
                to: to.to_owned(),
            });
        }
        let record = self.reconcile_locked(record.id).await?;
        let view = self.announce(&record, before).await?;
        self.emit(&record, "invoice.marked", &view).await?;
        Ok(view)
    }

    /// The reconciler: looks at invoices whose payments changed, that reached their expiry
    /// or monitoring end, and (after a new block) those waiting for confirmations; finishes
    /// moves a crash interrupted.
    pub(crate) async fn run_reconciler(self) {
        let mut chain = self.inner.wallet.chain_changes();
        let mut since = self.now() - 60_000;
        let mut chain_moved = true;
        loop {
            let started = self.now();
            if let Err(error) = self.reconcile_pass(since, chain_moved).await {
                tracing::warn!(%error, code = error.code(), "gateway reconciler");
            } else {
                // Deposits changed while the pass ran are looked at again (overlap).
                since = started - 5_000;
            }
            chain_moved = false;
            tokio::select! {
                changed = chain.changed() => chain_moved = changed.is_ok(),
                () = self.inner.poke.notified() => {}
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }

    /// One reconciler pass.
    pub async fn reconcile_pass(&self, since: i64, chain_moved: bool) -> Result<(), GatewayError> {
        let store = &self.inner.store;
        let now = self.now();
        let mut ids: BTreeSet<i64> = store
            .invoices_with_deposits_since(since, PASS_LIMIT)
            .await?
            .into_iter()
            .collect();
        ids.extend(store.overdue_invoices(now, PASS_LIMIT).await?);
        if chain_moved {
            ids.extend(
                store
                    .invoices_in(InvoiceStatus::Processing, PASS_LIMIT)
                    .await?,
            );
        }
        for id in ids {
            if let Err(error) = self.reconcile(id).await {
                tracing::warn!(invoice = id, %error, code = error.code(), "invoice not reconciled");
            }
        }
        // Payments from balances a crash interrupted (older than any request in flight).
        for payment in store
            .requested_balance_payments(now - 10_000, PASS_LIMIT)
            .await?
        {
            let _money = self.inner.money.lock().await;
            if let Err(error) = self.finish_payment(&payment).await {
                tracing::warn!(payment = payment.id, %error, "balance payment not finished");
            }
            let _ = self.reconcile_locked(payment.invoice_id).await;
        }
        for recorded in store.requested_moves(PASS_LIMIT).await? {
            let _money = self.inner.money.lock().await;
            if let Some(record) = store.invoice(recorded.invoice_id).await? {
                let _ = self.apply_move(&record, &recorded).await;
            }
        }
        Ok(())
    }
}

/// An amount as a decimal string without trailing zeros (`0.02`, `25`).
#[must_use]
pub fn decimal(amount: Amount, decimals: u8) -> String {
    let text = amount.to_decimal_string(decimals);
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

/// The core account of a user.
pub(crate) fn account(user: UserId) -> Result<AccountId, GatewayError> {
    coss_identity::exchange_account(user).ok_or(GatewayError::NotFound)
}

fn bounded(value: &Option<String>, max: usize, name: &str) -> Result<Option<String>, GatewayError> {
    match value {
        Some(v) if v.len() > max || v.chars().any(char::is_control) => {
            Err(GatewayError::InvalidParameter(format!(
                "{name} (at most {max} bytes, no control characters)"
            )))
        }
        Some(v) => Ok(Some(v.clone())),
        None => Ok(None),
    }
}

/// A non-negative decimal amount with at most `decimals` places, in smallest units.
pub(crate) fn parse_money(text: &str, decimals: u8, name: &str) -> Result<u128, GatewayError> {
    Amount::parse_decimal(text.trim(), decimals)
        .map(|a| a.0)
        .map_err(|e| GatewayError::InvalidAmount(format!("{name}: {e}")))
}

/// `price` (with `price_decimals`) at `rate` (currency per whole unit, scaled by 10^12) in
/// the asset's smallest units, rounded up (the merchant never gets less than the price).
#[must_use]
pub fn convert(price: u128, price_decimals: u8, rate: u128, asset_decimals: u8) -> Option<u128> {
    if rate == 0 {
        return None;
    }
    let ten = U256::from(10u8);
    let numerator = U256::from(price)
        .checked_mul(ten.pow(U256::from(asset_decimals)))?
        .checked_mul(ten.pow(U256::from(RATE_DECIMALS)))?;
    let denominator = U256::from(rate).checked_mul(ten.pow(U256::from(price_decimals)))?;
    let (quotient, rest) = numerator.div_rem(denominator);
    let due = if rest.is_zero() {
        quotient
    } else {
        quotient + U256::from(1u8)
    };
    u128::try_from(due).ok()
}

/// What is still to pay in an asset due `due` when `missing` ppm of the price is missing,
/// rounded up.
#[must_use]
pub fn remaining_of(due: u128, missing: u128) -> u128 {
    let product = U256::from(due) * U256::from(missing);
    let (q, r) = product.div_rem(U256::from(PPM));
    let q = if r.is_zero() { q } else { q + U256::from(1u8) };
    u128::try_from(q).unwrap_or(u128::MAX)
}

/// The EIP-681 URI paying `amount` to `address` on `chain_id`: a plain value transfer for
/// the chain's coin, an ERC-20 `transfer` call for a token.
#[must_use]
pub fn payment_uri(address: &str, chain_id: u64, token: Option<&str>, amount: u128) -> String {
    match token {
        None => format!("ethereum:{address}@{chain_id}?value={amount}"),
        Some(token) => {
            format!("ethereum:{token}@{chain_id}/transfer?address={address}&uint256={amount}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fiat_price_converts_up_to_the_next_unit() {
        // $30.00 at 3000 USD/ETH is 0.01 ETH exactly.
        let rate = 3_000 * 10u128.pow(12);
        assert_eq!(convert(3_000, 2, rate, 18), Some(10u128.pow(16)));
        // $10.00 at 3000 USD/ETH: 0.00333… ETH, rounded up in wei.
        assert_eq!(convert(1_000, 2, rate, 18), Some(3_333_333_333_333_334));
        // ₩50,000 at 1,400,000 KRW per unit of a 6-decimal asset.
        assert_eq!(
            convert(50_000, 0, 1_400_000 * 10u128.pow(12), 6),
            Some(35_715)
        );
        assert_eq!(convert(1, 2, 0, 18), None);
        assert_eq!(convert(u128::MAX, 0, 1, 30), None);
    }

    #[test]
    fn the_remaining_part_rounds_up() {
        assert_eq!(remaining_of(100, PPM), 100);
        assert_eq!(remaining_of(100, 0), 0);
        assert_eq!(remaining_of(3, 333_334), 2);
    }

    #[test]
    fn payment_uris_follow_eip_681() {
        assert_eq!(
            payment_uri("0xab", 31337, None, 10),
            "ethereum:0xab@31337?value=10"
        );
        assert_eq!(
            payment_uri("0xab", 1, Some("0xcd"), 5),
            "ethereum:0xcd@1/transfer?address=0xab&uint256=5"
        );
    }
}
