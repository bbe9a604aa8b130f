//! Internal transfers: one COSS user pays another by email, settled at once in the exchange
//! core (`Transfer`), with no chain transaction and no fee. The sender confirms with the
//! second factor, as for a withdrawal, and within the same rolling 24-hour limit (what the
//! user withdrew and transferred together); a retry with the same idempotency key returns
//! the first transfer.

use coss_core::{Command, RejectReason, TransferInfo};
use coss_store::{NewTransfer, TransferRecord, TransferStatus};
use coss_types::{Amount, UserId};

use crate::withdraw::{check_key, parse_positive};
use crate::{
    Wallet, WalletError, account_of, keyed_transfer_request, new_request_key, transfer_request,
};

/// A user's transfer to another user.
#[derive(Debug, Clone)]
pub struct TransferRequest {
    /// The sender.
    pub user_id: UserId,
    /// The recipient's email.
    pub to_email: String,
    /// The asset's symbol.
    pub asset: String,
    /// Whole units (`"12.5"`).
    pub amount: String,
    /// The current TOTP code (or a recovery code).
    pub code: Option<String>,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// When it was made (Unix ms): the second factor is checked at it.
    pub now: i64,
}

impl Wallet {
    /// Moves funds to another user at once, without fee.
    pub async fn transfer(&self, request: &TransferRequest) -> Result<TransferRecord, WalletError> {
        let inner = &self.inner;
        let store = &inner.store;
        check_key(&request.idempotency_key)?;
        if let Some(existing) = store
            .transfer_by_key(request.user_id, &request.idempotency_key)
            .await?
        {
            // A crash may have come between the record and the core: finish it.
            if existing.status == TransferStatus::Requested {
                return self.settle_transfer(existing).await;
            }
            return Ok(existing);
        }
        // A halted wallet moves nothing: the halt may be about the very records a transfer
        // would trust.
        if self.halted().is_some() {
            return Err(WalletError::Halted);
        }
        let asset = inner
            .config
            .asset(&request.asset)
            .ok_or_else(|| WalletError::UnknownAsset(request.asset.clone()))?;
        let amount = parse_positive(&request.amount, asset)?;
        let email = coss_identity::normalise_email(&request.to_email)
            .map_err(|_| WalletError::UnknownRecipient)?;
        // The second factor first: who has an account is told only to a caller who passed
        // it, so a stolen session cannot probe emails for accounts.
        let now = request.now;
        inner
            .accounts
            .authorize_outflow(request.user_id, request.code.as_deref(), now)
            .await?;
        let recipient = store
            .user_by_email(&email)
            .await?
            .filter(|u| u.email_verified_at.is_some())
            .ok_or(WalletError::UnknownRecipient)?;
        if recipient.id == request.user_id {
            return Err(WalletError::SameAccount);
        }
        // Transfers count against the same 24-hour limit as withdrawals: a stolen account
        // must not move everything to an accomplice who withdraws it under a fresh limit.
        let limit = self.outflow_limit(request.user_id, asset, now).await?;
        let created = store
            .create_transfer(
                &NewTransfer {
                    from_user: request.user_id,
                    to_user: recipient.id,
                    asset: asset.symbol.clone(),
                    amount: Amount(amount),
                    idempotency_key: request.idempotency_key.clone(),
                    // Random, not the row id (see `new_request_key`).
                    request_key: new_request_key()?,
                },
                limit,
                now,
            )
            .await;
        let (record, created) = Self::within_limit(created, asset, limit)?;
        if !created {
            return Ok(record);
        }
        self.settle_transfer(record).await
    }

    async fn settle_transfer(&self, record: TransferRecord) -> Result<TransferRecord, WalletError> {
        let inner = &self.inner;
        if self.halted().is_some() {
            return Err(WalletError::Halted);
        }
        let asset = inner
            .config
            .asset(&record.asset)
            .ok_or_else(|| WalletError::UnknownAsset(record.asset.clone()))?;
        let request = match record.request_key {
            Some(key) => keyed_transfer_request(key),
            None => transfer_request(record.id),
        };
        let made = TransferInfo {
            from: account_of(record.from_user)?,
            to: account_of(record.to_user)?,
            asset: asset.asset,
            amount: record.amount,
        };
        let outcome = inner
            .engine
            .submit_async(Command::Transfer {
                request,
                from: made.from,
                to: made.to,
                asset: made.asset,
                amount: made.amount,
            })
            .await?
            .outcome;
        if outcome == Err(RejectReason::DuplicateRequest) {
            // Our own earlier attempt (a retry after a crash) only if the core made exactly
            // this transfer under the id: anything else means the database and the core
            // disagree, and calling it settled would report a payment nobody received.
            let earlier = inner
                .engine
                .read_async(move |e| e.transferred(request))
                .await?;
            if earlier != Some(made) {
                let reason = format!(
                    "transfer {}: the exchange core made a different transfer under its \
                     request id",
                    record.id
                );
                self.halt(reason).await?;
                return Err(WalletError::HoldMismatch);
            }
        }
        let status = match outcome {
            Ok(()) | Err(RejectReason::DuplicateRequest) => TransferStatus::Settled,
            Err(_) => TransferStatus::Rejected,
        };
        // Only the first to finish it records the end (a retry may race a crash recovery);
        // a later one answers with what the first recorded.
        let recorded = inner
            .store
            .set_transfer_status(record.id, TransferStatus::Requested, status)
            .await?;
        if !recorded
            && let Some(first) = inner
                .store
                .transfer_by_key(record.from_user, &record.idempotency_key)
                .await?
            && first.status == TransferStatus::Settled
        {
            return Ok(first);
        }
        match outcome {
            Ok(()) | Err(RejectReason::DuplicateRequest) => Ok(TransferRecord { status, ..record }),
            Err(reason) => Err(reason.into()),
        }
    }
}
