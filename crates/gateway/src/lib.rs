//! The payment gateway: merchants accept crypto online (checkout) and at a counter (POS) for
//! a 0.75% fee taken in the crypto paid. An invoice is priced in an asset or in a fiat
//! currency (converted at creation at the median of several rate sources, COSS's own markets
//! among them, the rate stored with it) and is paid on chain to its own HD-derived address
//! (found by the wallet's reorg-safe watcher and credited to the core's gateway account after
//! the asset's confirmations) or from a COSS balance (a core transfer to the gateway
//! account). Its status is a pure function of its payments and the clock ([`model`]),
//! applied by compare-and-set; once settled, what arrived moves to the merchant in the
//! exchange core (`GatewaySettle`: less the fee, whose holders' half accrues to the weekly
//! share like trading fees). Refunds, webhooks signed with HMAC-SHA256 and retried for three
//! days, POS products and reports complete it. Money moves only through core commands, each
//! recorded first with a random request id so a crash or a retry never moves it twice.

use std::collections::BTreeMap;
use std::sync::Arc;

use coss_clock::Clock;
use coss_core::RejectReason;
use coss_engine::EngineHandle;
use coss_identity::{Accounts, IdentityError};
use coss_market::MarketService;
use coss_store::{Store, StoreError};
use coss_types::RequestId;
use coss_wallet::{Wallet, WalletError};
use serde::Deserialize;

pub mod api;
mod invoices;
pub mod model;
mod pay;
pub mod pos;
pub mod rates;
mod refunds;
pub mod reports;
pub mod webhooks;

pub use invoices::{CreateInvoice, InvoiceView};
pub use refunds::{RefundAnswer, RefundLinkView, RefundRequest};

/// The gateway's default fee: 0.75% of what is paid, in parts per million. The rate in force
/// is the core's (`Exchange::gateway_fee_ppm`, changed by the back office with the journaled
/// `SetGatewayFee`); each settlement records the rate it was computed at.
pub const FEE_PPM: u32 = coss_core::DEFAULT_GATEWAY_FEE_PPM;

/// Everything that can go wrong, with a stable `code()`.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No such asset on the platform.
    #[error("unknown asset {0:?}")]
    UnknownAsset(String),
    /// Neither a listed asset nor a known fiat currency.
    #[error("unknown currency {0:?}")]
    UnknownCurrency(String),
    /// Not a positive decimal with at most the currency's decimals.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// A parameter out of its bounds.
    #[error("invalid {0}")]
    InvalidParameter(String),
    /// No rate source answered for this pair.
    #[error("no rate for {asset} in {currency}: every rate source failed")]
    NoRate {
        /// The asset.
        asset: String,
        /// The currency.
        currency: String,
    },
    /// The idempotency key was used with another request body.
    #[error("this Idempotency-Key was used with a different request")]
    IdempotencyMismatch,
    /// No such invoice (of this merchant).
    #[error("no such invoice")]
    NotFound,
    /// The invoice expired: it cannot be paid from a balance any more.
    #[error("the invoice has expired")]
    Expired,
    /// The invoice is paid already, or in a status that takes no payment.
    #[error("the invoice takes no payment now ({0})")]
    NotPayable(&'static str),
    /// The status change is not allowed from the invoice's status.
    #[error("cannot change the invoice from {from} to {to}")]
    InvalidTransition {
        /// Current status.
        from: &'static str,
        /// Asked status.
        to: String,
    },
    /// Nothing (or not that much) can be refunded.
    #[error("refund refused: {0}")]
    RefundRefused(String),
    /// A refund link that is unknown or used.
    #[error("the refund link is invalid or used")]
    RefundLinkInvalid,
    /// Not enough available balance.
    #[error("insufficient balance")]
    InsufficientBalance,
    /// Too many webhook endpoints or products.
    #[error("too many {0}")]
    TooMany(&'static str),
    /// A webhook URL that cannot be used.
    #[error("invalid webhook URL: {0}")]
    InvalidUrl(String),
    /// The exchange core refused.
    #[error("refused: {0}")]
    Rejected(RejectReason),
    /// Authentication or the second factor failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The wallets failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine is not running.
    #[error("engine: {0}")]
    Engine(#[from] coss_engine::EngineError),
    /// A record and the exchange core disagree: money is held until an operator looks.
    #[error("the records and the exchange core disagree; held for an operator")]
    Mismatch,
    /// Keys or randomness failed.
    #[error("crypto: {0}")]
    Crypto(&'static str),
}

impl GatewayError {
    /// A stable, machine-readable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownAsset(_) => "unknown_asset",
            Self::UnknownCurrency(_) => "unknown_currency",
            Self::InvalidAmount(_) => "invalid_amount",
            Self::InvalidParameter(_) => "invalid_parameter",
            Self::NoRate { .. } => "no_rate",
            Self::IdempotencyMismatch => "idempotency_key_reused",
            Self::NotFound => "invoice_not_found",
            Self::Expired => "invoice_expired",
            Self::NotPayable(_) => "invoice_not_payable",
            Self::InvalidTransition { .. } => "invalid_transition",
            Self::RefundRefused(_) => "refund_refused",
            Self::RefundLinkInvalid => "refund_link_invalid",
            Self::InsufficientBalance => "insufficient_balance",
            Self::TooMany(_) => "limit_reached",
            Self::InvalidUrl(_) => "invalid_url",
            Self::Rejected(_) => "rejected",
            Self::Identity(e) => e.code(),
            Self::Wallet(e) => e.code(),
            Self::Store(e) => e.code(),
            Self::Engine(_) => "engine_unavailable",
            Self::Mismatch => "held_for_operator",
            Self::Crypto(_) => "internal",
        }
    }
}

impl From<RejectReason> for GatewayError {
    fn from(reason: RejectReason) -> Self {
        match reason {
            RejectReason::InsufficientBalance => Self::InsufficientBalance,
            other => Self::Rejected(other),
        }
    }
}

/// The gateway's settings (`[gateway]` in the configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Default time to pay, in seconds (15 minutes).
    pub expiry_s: u64,
    /// Default window in which late payments are still watched, in seconds (24 hours).
    pub monitoring_s: u64,
    /// Assets worth one unit of a fiat currency (`TUSD = "USD"`): their markets give rates.
    pub pegs: BTreeMap<String, String>,
    /// Fiat currencies invoices may be priced in, with their decimals.
    pub fiat: BTreeMap<String, u8>,
    /// The currency reports value crypto-priced invoices in (their rate taken at creation).
    pub report_currency: String,
    /// HTTP rate sources (beside COSS's own markets).
    pub rate_sources: Vec<rates::HttpSource>,
    /// The platform's public URL (checkout and refund links), e.g. `https://coss.example`.
    pub public_url: Option<String>,
    /// Whether webhooks may go to loopback and private addresses (development only).
    pub allow_private_webhooks: bool,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            expiry_s: 15 * 60,
            monitoring_s: 24 * 3600,
            pegs: BTreeMap::from([("TUSD".to_owned(), "USD".to_owned())]),
            fiat: BTreeMap::from([
                ("USD".to_owned(), 2),
                ("EUR".to_owned(), 2),
                ("GBP".to_owned(), 2),
                ("KRW".to_owned(), 0),
                ("JPY".to_owned(), 0),
            ]),
            report_currency: "USD".to_owned(),
            rate_sources: Vec::new(),
            public_url: None,
            allow_private_webhooks: false,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) config: GatewayConfig,
    pub(crate) store: Store,
    pub(crate) engine: EngineHandle,
    pub(crate) wallet: Wallet,
    pub(crate) accounts: Accounts,
    pub(crate) clock: Clock,
    pub(crate) rates: rates::Rates,
    /// COSS's markets (rates, and converting settlements).
    pub(crate) markets: Option<MarketService>,
    /// Wakes the reconciler (a payment from a balance, a mark, a refund).
    pub(crate) poke: tokio::sync::Notify,
    /// Wakes the webhook sender (an event recorded, a redelivery asked).
    pub(crate) deliver: tokio::sync::Notify,
    /// Bumped on every change of any invoice (benchmarks, tests).
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
    /// Per followed invoice: bumped when that invoice may have changed (its checkout
    /// streams look again at it alone, never at every change of every invoice).
    pub(crate) followed:
        std::sync::Mutex<std::collections::HashMap<i64, tokio::sync::watch::Sender<u64>>>,
    pub(crate) http: reqwest::Client,
    /// Serialises every money move of the gateway (settlements, refunds, payments from
    /// balances): each decides from the recorded moves, which another must not change
    /// between its look and its record.
    pub(crate) money: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

/// The payment gateway: cheap to clone, shared by the API and its workers.
#[derive(Debug, Clone)]
pub struct Gateway {
    pub(crate) inner: Arc<Inner>,
}

impl Gateway {
    /// The gateway over the platform's database, engine and wallets; `markets` gives COSS's
    /// own prices as a rate source.
    ///
    /// # Errors
    /// A rate source or the HTTP client that cannot be set up.
    pub fn new(
        config: GatewayConfig,
        store: Store,
        engine: EngineHandle,
        wallet: Wallet,
        markets: Option<MarketService>,
        clock: Clock,
    ) -> Result<Self, GatewayError> {
        let http = http_client()?;
        let rates = rates::Rates::new(&config, markets.clone(), http.clone(), clock.clone());
        let accounts = wallet.accounts().clone();
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                engine,
                wallet,
                accounts,
                clock,
                rates,
                markets,
                poke: tokio::sync::Notify::new(),
                deliver: tokio::sync::Notify::new(),
                changes: tokio::sync::watch::Sender::new(0),
                followed: std::sync::Mutex::new(std::collections::HashMap::new()),
                http,
                money: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// The wallets it takes on-chain payments with.
    #[must_use]
    pub fn wallet(&self) -> &Wallet {
        &self.inner.wallet
    }

    /// Wakes on every change of any invoice's status, payments or moves.
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// Wakes when invoice `id` may have changed (a checkout stream follows one invoice).
    #[must_use]
    pub fn follow(&self, id: i64) -> tokio::sync::watch::Receiver<u64> {
        let mut followed = self
            .inner
            .followed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // Invoices nobody follows any more are forgotten as new ones are followed.
        followed.retain(|_, sender| sender.receiver_count() > 0);
        followed
            .entry(id)
            .or_insert_with(|| tokio::sync::watch::Sender::new(0))
            .subscribe()
    }

    /// Says that invoice `id` may have changed: its followers (and `subscribe`rs) look again.
    pub(crate) fn touched(&self, id: i64) {
        self.inner.changes.send_modify(|n| *n += 1);
        if let Some(sender) = self
            .inner
            .followed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
        {
            sender.send_modify(|n| *n += 1);
        }
    }

    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now().as_i64()
    }

    /// A listed asset of the chain, by symbol.
    pub(crate) fn asset(&self, symbol: &str) -> Result<&coss_wallet::AssetConfig, GatewayError> {
        self.inner
            .wallet
            .config()
            .asset(symbol)
            .ok_or_else(|| GatewayError::UnknownAsset(symbol.to_owned()))
    }

    /// The decimals of an asset, for showing amounts (0 for one no longer configured).
    pub(crate) fn decimals(&self, symbol: &str) -> u8 {
        self.asset(symbol).map_or(0, |a| a.decimals)
    }

    /// The decimals of a pricing currency: a listed asset's, or a configured fiat one's.
    pub(crate) fn currency_decimals(&self, currency: &str) -> Result<u8, GatewayError> {
        match (self.asset(currency), self.inner.config.fiat.get(currency)) {
            (Ok(asset), _) => Ok(asset.decimals),
            (Err(_), Some(decimals)) => Ok(*decimals),
            (Err(_), None) => Err(GatewayError::UnknownCurrency(currency.to_owned())),
        }
    }

    /// A page of the web app (`pay/…`, `refund/…`) at the configured public URL.
    pub(crate) fn link(&self, path: &str) -> String {
        let base = self.inner.config.public_url.as_deref().unwrap_or("");
        format!("{}/{path}", base.trim_end_matches('/'))
    }

    /// A merchant's business name, if it has a profile.
    pub(crate) async fn merchant_name(&self, merchant: coss_types::UserId) -> Option<String> {
        self.inner
            .accounts
            .merchant(merchant)
            .await
            .ok()
            .flatten()
            .map(|m| m.business_name)
    }

    /// Runs a money move of the core under its request id, at most once: the core's answer,
    /// where a `DuplicateRequest` (an earlier attempt, before a crash) counts as applied only
    /// if the core made exactly `expected` under that id, and is otherwise a
    /// [`GatewayError::Mismatch`].
    pub(crate) async fn run_once(
        &self,
        command: coss_core::Command,
        request: RequestId,
        expected: coss_core::TransferInfo,
    ) -> Result<Result<(), RejectReason>, GatewayError> {
        let engine = &self.inner.engine;
        match engine.submit_async(command).await?.outcome {
            Err(RejectReason::DuplicateRequest) => {
                let made = engine.read_async(move |e| e.transferred(request)).await?;
                if made == Some(expected) {
                    Ok(Ok(()))
                } else {
                    tracing::error!(
                        ?request,
                        "ALERT: the exchange core made a different move under a gateway request id"
                    );
                    Err(GatewayError::Mismatch)
                }
            }
            outcome => Ok(outcome),
        }
    }

    /// Runs the reconciler (invoice statuses, settlements, unfinished moves) and the webhook
    /// sender until the process ends.
    pub fn spawn(&self) -> Vec<tokio::task::JoinHandle<()>> {
        let reconciler = self.clone();
        let sender = self.clone();
        vec![
            tokio::spawn(async move { reconciler.run_reconciler().await }),
            tokio::spawn(async move { sender.run_webhooks().await }),
        ]
    }
}

/// The client of webhooks and rate sources: 10-second timeout, no redirects (a webhook or a
/// source cannot bounce a request elsewhere), rustls with ring (the one TLS stack).
pub(crate) fn http_client() -> Result<reqwest::Client, GatewayError> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|_| GatewayError::Crypto("cannot build the HTTP client"))
}

/// The core request id of a gateway move (its own range, apart from the wallets').
#[must_use]
pub fn gateway_request(key: u64) -> RequestId {
    RequestId((5u128 << 64) | u128::from(key))
}

/// A fresh random request key (see the wallet's: a restored database reuses row ids).
pub(crate) fn new_request_key() -> Result<u64, GatewayError> {
    Ok(u64::from_le_bytes(
        *coss_identity::random_bytes::<8>().map_err(|_| GatewayError::Crypto("no randomness"))?,
    ))
}

/// A random public id with a prefix (`inv_…`, `evt_…`): 16 random bytes, hex.
pub(crate) fn public_id(prefix: &str) -> Result<String, GatewayError> {
    let bytes =
        coss_identity::random_bytes::<16>().map_err(|_| GatewayError::Crypto("no randomness"))?;
    Ok(format!("{prefix}_{}", hex::encode(bytes)))
}
