//! Refunds in one call: the overpaid part, everything paid (a partial payment's paid part,
//! or a whole payment), or a given amount, in one asset. Nothing is refunded twice or beyond
//! what arrived and was confirmed: each refund is recorded (under the gateway's money lock)
//! before its core command, and what is refundable is computed from the records.
//!
//! Fee policy: money not yet settled (an expired invoice's partial or late payment) waits in
//! the gateway account and is refunded from there whole, with no fee. Money settled to the
//! merchant was charged the 0.75% fee once; its refund comes from the merchant's balance, the
//! payer gets the full refunded amount, and the fee is not returned (as card processors and
//! Coinbase Commerce do). A refund goes to the payer's COSS account when the payment came
//! from a COSS balance.

use coss_store::{InvoiceStatus, MoveStatus, NewMove};
use coss_types::{Amount, UserId};
use serde::Deserialize;

use crate::invoices::parse_money;
use crate::model::PPM;
use crate::{Gateway, GatewayError, InvoiceView, new_request_key};

/// A refund, as the API takes it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The asset to refund.
    pub asset: String,
    /// `overpaid` (what arrived beyond the price), `all` (everything not yet refunded), or
    /// `amount` (the given amount).
    pub kind: String,
    /// With `amount`: a decimal in whole units.
    #[serde(default)]
    pub amount: Option<String>,
}

impl Gateway {
    /// Refunds part of an invoice's payments (see the module documentation).
    pub async fn refund(
        &self,
        merchant: UserId,
        public_id: &str,
        request: &RefundRequest,
    ) -> Result<InvoiceView, GatewayError> {
        let inner = &self.inner;
        let money = inner.money.lock().await;
        let record = self.merchant_invoice(merchant, public_id).await?;
        let record = self.reconcile_locked(record.id).await?;
        if matches!(
            record.status,
            InvoiceStatus::New | InvoiceStatus::Processing
        ) {
            return Err(GatewayError::RefundRefused(
                "the invoice is still open: refund it once it is settled, expired or invalid"
                    .into(),
            ));
        }
        let facts = self.facts(&record).await?;
        let asset = request.asset.trim().to_ascii_uppercase();
        let index = facts
            .assets
            .iter()
            .position(|a| a.asset == asset)
            .ok_or_else(|| GatewayError::UnknownAsset(asset.clone()))?;
        let decimals = inner
            .wallet
            .config()
            .asset(&asset)
            .map_or(0, |a| a.decimals);
        let confirmed = facts.confirmed(&asset);
        let refundable = confirmed.saturating_sub(facts.moved("refund", &asset, None));
        let amount = match request.kind.as_str() {
            "all" => refundable,
            "amount" => {
                let text = request.amount.as_deref().ok_or_else(|| {
                    GatewayError::InvalidParameter("amount (required with kind amount)".into())
                })?;
                let amount = parse_money(text, decimals, "amount")?;
                if amount == 0 {
                    return Err(GatewayError::InvalidAmount("must be positive".into()));
                }
                if amount > refundable {
                    return Err(GatewayError::RefundRefused(format!(
                        "at most {} {asset} can be refunded",
                        crate::invoices::decimal(Amount(refundable), decimals)
                    )));
                }
                amount
            }
            "overpaid" => {
                let dues: Vec<u128> = facts.assets.iter().map(|a| a.due.0).collect();
                let paid = facts.paid();
                let confirmed_only: Vec<_> = paid.into_iter().filter(|p| p.confirmed).collect();
                let covered = crate::model::coverage(&dues, &confirmed_only);
                let over = covered.saturating_sub(PPM);
                // The overpaid part in this asset, never more than what it paid.
                let part = over.saturating_mul(dues[index]) / PPM;
                part.min(refundable)
                    .saturating_sub(facts.moved("refund", &asset, None).min(part))
            }
            other => {
                return Err(GatewayError::InvalidParameter(format!(
                    "kind {other:?} (overpaid, all or amount)"
                )));
            }
        };
        if amount == 0 {
            return Err(GatewayError::RefundRefused(format!(
                "nothing of {asset} is left to refund that way"
            )));
        }
        let payer = facts
            .balance
            .iter()
            .find(|p| p.status == MoveStatus::Done && p.asset == asset)
            .map(|p| p.payer_id);
        let Some(payer) = payer else {
            return Err(GatewayError::RefundRefused(
                "this payment came from outside COSS: refunds to an address are not open yet"
                    .into(),
            ));
        };
        // Unsettled money first (no fee was taken of it), then the merchant's settled money.
        let from_gateway = facts.unsettled(&asset).min(amount);
        let parts = [(true, from_gateway), (false, amount - from_gateway)];
        for (gateway, part) in parts {
            if part == 0 {
                continue;
            }
            let recorded = inner
                .store
                .create_move(
                    &NewMove {
                        invoice_id: record.id,
                        kind: "refund".into(),
                        asset: asset.clone(),
                        amount: Amount(part),
                        fee: Amount(0),
                        from_gateway: gateway,
                        payer_id: Some(payer),
                        token_hash: None,
                        request_key: new_request_key()?,
                        status: MoveStatus::Requested,
                    },
                    self.now(),
                )
                .await?;
            self.apply_move(&record, &recorded).await?;
        }
        drop(money);
        let view = self.view(&record, true).await?;
        self.emit(&record, "invoice.refunded", &view).await?;
        Ok(view)
    }
}
