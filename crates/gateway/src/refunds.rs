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
//! from a COSS balance; otherwise through a refund link (emailed to the buyer when the
//! invoice has their email, and returned to the merchant once) where the payer gives an
//! address: the refund then leaves as a withdrawal from the merchant's balance (unsettled
//! money is first returned to the merchant without fee), network fee on top, within the
//! merchant's 24-hour limit.

use coss_store::{InvoiceStatus, Mail, MoveStatus, NewMove};
use coss_types::{Amount, UserId};
use serde::{Deserialize, Serialize};
use sha2::Digest;

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

/// The answer to a refund: the invoice, and for a payment from outside COSS the refund
/// link (shown this once).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefundAnswer {
    /// The invoice with its refunds.
    #[serde(flatten)]
    pub invoice: InvoiceView,
    /// Where the payer gives the refund's address (only when it goes to an address).
    pub refund_link: Option<String>,
}

/// A refund link as its payer sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefundLinkView {
    /// The invoice's public id.
    pub invoice: String,
    /// Who refunds.
    pub merchant: String,
    /// The asset.
    pub asset: String,
    /// Decimal.
    pub amount: String,
    /// `awaiting_address`, `requested` (being sent), `done`, `rejected`.
    pub status: &'static str,
}

fn token_hash(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

impl Gateway {
    /// Refunds part of an invoice's payments (see the module documentation).
    pub async fn refund(
        &self,
        merchant: UserId,
        public_id: &str,
        request: &RefundRequest,
    ) -> Result<RefundAnswer, GatewayError> {
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
        let decimals = self.decimals(&asset);
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
            drop(money);
            return self.refund_by_link(&record, &asset, amount).await;
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
                        fee_ppm: 0,
                        from_gateway: gateway,
                        payer_id: Some(payer),
                        token_hash: None,
                        request_key: new_request_key()?,
                        status: MoveStatus::Requested,
                    },
                    None,
                    self.now(),
                )
                .await?;
            self.apply_move(&record, &recorded).await?;
        }
        drop(money);
        let view = self.view(&record, true).await?;
        self.emit(&record, "invoice.refunded", &view).await?;
        Ok(RefundAnswer {
            invoice: view,
            refund_link: None,
        })
    }

    /// A refund to an address the payer gives: recorded (the amount reserved), with a link.
    async fn refund_by_link(
        &self,
        record: &coss_store::InvoiceRecord,
        asset: &str,
        amount: u128,
    ) -> Result<RefundAnswer, GatewayError> {
        let inner = &self.inner;
        let config = self.asset(asset)?;
        if amount < config.min_withdrawal {
            return Err(GatewayError::RefundRefused(format!(
                "{} {asset} is below the minimum withdrawal of {}",
                crate::invoices::decimal(Amount(amount), config.decimals),
                crate::invoices::decimal(Amount(config.min_withdrawal), config.decimals)
            )));
        }
        let token = hex::encode(
            coss_identity::random_bytes::<32>()
                .map_err(|_| GatewayError::Crypto("no randomness"))?,
        );
        let link = self.link(&format!("refund/{token}"));
        let merchant_name = self
            .merchant_name(record.merchant_id)
            .await
            .unwrap_or_else(|| "A COSS merchant".to_owned());
        let amount_text = crate::invoices::decimal(Amount(amount), config.decimals);
        let mail = record.buyer_email.as_ref().map(|email| Mail {
            recipient: email.clone(),
            template: "refund_link".into(),
            payload: serde_json::json!({
                "merchant": merchant_name,
                "amount": amount_text,
                "asset": asset,
                "token": token,
            })
            .to_string(),
        });
        let money = inner.money.lock().await;
        // Looked at again under the lock: another refund may have taken it meanwhile.
        let facts = self.facts(record).await?;
        if amount
            > facts
                .confirmed(asset)
                .saturating_sub(facts.moved("refund", asset, None))
        {
            return Err(GatewayError::RefundRefused(
                "another refund took part of it meanwhile".into(),
            ));
        }
        let from_gateway = facts.unsettled(asset) >= amount;
        inner
            .store
            .create_move(
                &NewMove {
                    invoice_id: record.id,
                    kind: "refund".into(),
                    asset: asset.to_owned(),
                    amount: Amount(amount),
                    fee: Amount(0),
                    fee_ppm: 0,
                    from_gateway,
                    payer_id: None,
                    token_hash: Some(token_hash(&token)),
                    request_key: new_request_key()?,
                    status: MoveStatus::AwaitingAddress,
                },
                mail.as_ref(),
                self.now(),
            )
            .await?;
        drop(money);
        let view = self.view(record, true).await?;
        self.emit(record, "invoice.refunded", &view).await?;
        Ok(RefundAnswer {
            invoice: view,
            refund_link: Some(link),
        })
    }

    /// What a refund link is for (its payer's page).
    pub async fn refund_link(&self, token: &str) -> Result<RefundLinkView, GatewayError> {
        let inner = &self.inner;
        let recorded = inner
            .store
            .move_by_token(&token_hash(token))
            .await?
            .ok_or(GatewayError::RefundLinkInvalid)?;
        let record = inner
            .store
            .invoice(recorded.invoice_id)
            .await?
            .ok_or(GatewayError::RefundLinkInvalid)?;
        Ok(RefundLinkView {
            invoice: record.public_id.clone(),
            merchant: self
                .merchant_name(record.merchant_id)
                .await
                .unwrap_or_default(),
            asset: recorded.asset.clone(),
            amount: crate::invoices::decimal(recorded.amount, self.decimals(&recorded.asset)),
            status: recorded.status.as_str(),
        })
    }

    /// The payer gives the refund's address: the refund leaves (once; the link is then used).
    pub async fn claim_refund(
        &self,
        token: &str,
        address: &str,
    ) -> Result<RefundLinkView, GatewayError> {
        let inner = &self.inner;
        let to = coss_wallet::parse_address(address.trim())?;
        let money = inner.money.lock().await;
        let recorded = inner
            .store
            .move_by_token(&token_hash(token))
            .await?
            .filter(|m| m.status == MoveStatus::AwaitingAddress)
            .ok_or(GatewayError::RefundLinkInvalid)?;
        let record = inner
            .store
            .invoice(recorded.invoice_id)
            .await?
            .ok_or(GatewayError::RefundLinkInvalid)?;
        let hex = coss_wallet::hex_address(to);
        if !inner
            .store
            .set_move_status(
                recorded.id,
                MoveStatus::AwaitingAddress,
                MoveStatus::Requested,
                Some(&hex),
                self.now(),
            )
            .await?
        {
            return Err(GatewayError::RefundLinkInvalid);
        }
        let recorded = coss_store::MoveRecord {
            address: Some(hex),
            status: MoveStatus::Requested,
            ..recorded
        };
        let outcome = self.apply_move(&record, &recorded).await;
        drop(money);
        outcome?;
        self.refund_link(token).await
    }
}
