//! Paying an invoice from a COSS balance: instant, exact, no chain fee. The payer pays what
//! is still missing in the asset they choose, in one core transfer to the gateway account,
//! recorded first (with a random request id) and counted in the payer's 24-hour outflow
//! limit like withdrawals and transfers. A payer with a second factor confirms with a code;
//! one whose password or second factor changed in the last 24 hours cannot pay (the rule of
//! every outflow).

use coss_core::{Command, GATEWAY, TransferInfo};
use coss_store::{BalancePayment, InvoiceStatus, MoveStatus};
use coss_types::{Amount, UserId};

use crate::invoices::{account, remaining_of};
use crate::model::{self, PPM};
use crate::{Gateway, GatewayError, InvoiceView, gateway_request, new_request_key};

impl Gateway {
    /// Pays what is missing of invoice `public_id` in `asset` from `payer`'s balance.
    pub async fn pay_from_balance(
        &self,
        payer: UserId,
        public_id: &str,
        asset: &str,
        code: Option<&str>,
    ) -> Result<InvoiceView, GatewayError> {
        let inner = &self.inner;
        let record = self.public_invoice(public_id).await?;
        let now = self.now();
        match record.status {
            InvoiceStatus::New if now >= record.expires_at => return Err(GatewayError::Expired),
            InvoiceStatus::New => {}
            InvoiceStatus::Expired => return Err(GatewayError::Expired),
            InvoiceStatus::Processing | InvoiceStatus::Settled => {
                return Err(GatewayError::NotPayable("already paid"));
            }
            InvoiceStatus::Invalid => return Err(GatewayError::NotPayable("invalid")),
        }
        if payer == record.merchant_id {
            return Err(GatewayError::InvalidParameter(
                "payer (a merchant cannot pay its own invoice)".into(),
            ));
        }
        let config = self.asset(asset)?.clone();
        // The second factor (when the payer has one) and the outflow rules before any look
        // at the money.
        if inner.accounts.two_factor_enabled(payer).await? {
            inner
                .accounts
                .require_second_factor(payer, code, now)
                .await?;
        }
        inner
            .accounts
            .ensure_withdrawals_allowed(payer, now)
            .await?;
        let limit = inner.wallet.outflow_limit(payer, &config, now).await?;
        let money = inner.money.lock().await;
        // Looked at again under the lock: a second click must not pay twice.
        let record = self.reconcile_locked(record.id).await?;
        if record.status != InvoiceStatus::New {
            return Err(GatewayError::NotPayable("already paid"));
        }
        let facts = self.facts(&record).await?;
        let index = facts
            .assets
            .iter()
            .position(|a| a.asset == asset)
            .ok_or_else(|| GatewayError::UnknownAsset(asset.to_owned()))?;
        let seen = model::coverage(
            &facts.assets.iter().map(|a| a.due.0).collect::<Vec<_>>(),
            &facts.paid(),
        );
        let amount = remaining_of(facts.assets[index].due.0, PPM.saturating_sub(seen));
        if amount == 0 {
            return Err(GatewayError::NotPayable("already paid"));
        }
        // Checked before anything is recorded, so a payer without the funds changes nothing
        // (the core checks again: a spend in between ends the payment `rejected`).
        let (payer_account, asset_id) = (account(payer)?, config.asset);
        let available = inner
            .engine
            .read_async(move |e| e.balance(payer_account, asset_id).available.0)
            .await?;
        if available < amount {
            return Err(GatewayError::InsufficientBalance);
        }
        let payment = inner
            .store
            .create_balance_payment(
                record.id,
                payer,
                asset,
                Amount(amount),
                new_request_key()?,
                limit,
                now,
            )
            .await;
        let payment = coss_wallet::Wallet::within_limit(payment, &config, limit)?;
        self.finish_payment(&payment).await?;
        let record = self.reconcile_locked(record.id).await?;
        drop(money);
        self.view(&record, false).await
    }

    /// Runs a recorded payment's core transfer (again, after a crash: the request id makes
    /// the retry harmless) and records how it ended. Called under the money lock.
    pub(crate) async fn finish_payment(
        &self,
        payment: &BalancePayment,
    ) -> Result<(), GatewayError> {
        let request = gateway_request(payment.request_key);
        let made = TransferInfo {
            from: account(payment.payer_id)?,
            to: GATEWAY,
            asset: self.asset(&payment.asset)?.asset,
            amount: payment.amount,
        };
        let command = Command::Transfer {
            request,
            from: made.from,
            to: made.to,
            asset: made.asset,
            amount: made.amount,
        };
        let outcome = self.run_once(command, request, made).await?;
        let status = match outcome {
            Ok(()) => MoveStatus::Done,
            Err(_) => MoveStatus::Rejected,
        };
        self.inner
            .store
            .finish_balance_payment(payment.id, status, self.now())
            .await?;
        Ok(outcome?)
    }
}
