//! Withdrawals. A request is checked (asset, amount, address and its EIP-55 checksum, the
//! minimum, the second factor, the allow-list, the 24-hour limit of the account's
//! verification level) before anything moves; then it is recorded (`requested`) with a random
//! core request id and its amount plus fee is held in the exchange core (`held`; a
//! `DuplicateRequest` counts only if the core holds exactly this withdrawal, else the wallet
//! halts). The sender, one at a time per hot address, signs a withdrawal only when the hot
//! wallet holds its amount and, in ETH, its worst-case gas, and the network fee is within the
//! asset's cap; it takes the next nonce and stores the raw transaction together with the
//! advanced nonce in one database transaction (`signed`) — only then is it broadcast
//! (`broadcast` once a node took it). Stored transactions are sent again byte for byte until
//! the chain decides, so nothing is sent twice or lost. The chain alone decides the end: one
//! of its transactions mined with the asset's confirmations settles it (`settled`), or
//! releases the hold if it reverted or was the withdrawal's cancel (`failed`); its nonce used
//! on chain by a transaction not recorded for it releases it too. What a node answered is
//! only logged. A transaction left unmined is replaced (same nonce, fees up by at least
//! 12.5%, never above the asset's cap), and one unmined too long is cancelled with a
//! zero-value send to the hot wallet itself at its nonce, so no nonce stays a hole under the
//! later ones. Releases go through `cancelling` / `failing`, so a crash between the core's
//! release and the record can never let a released withdrawal be signed.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::BlockId;
use alloy::eips::eip2718::{Decodable2718, Encodable2718};
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, Bytes, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::{TransactionReceipt, TransactionRequest};
use alloy::sol_types::SolCall;
use alloy::transports::RpcError;
use coss_core::{Command, RejectReason};
use coss_store::{
    NewWithdrawal, OutflowLimit, SignedTx, StoreError, WithdrawalRecord, WithdrawalStatus,
};
use coss_types::{Amount, RequestId, UserId};
use std::sync::atomic::Ordering;

use crate::chain::timed;
use crate::sweep::ETH_TRANSFER_GAS;
use crate::{
    AssetConfig, Wallet, WalletError, account_of, held_request, hex_of, new_request_key, rpc_error,
    withdrawal_request,
};

alloy::sol! {
    #[sol(rpc)]
    interface IERC20 {
        function transfer(address to, uint256 amount) external returns (bool);
        function balanceOf(address owner) external view returns (uint256);
    }
}

/// A user's withdrawal request.
#[derive(Debug, Clone)]
pub struct WithdrawalRequest {
    /// Who.
    pub user_id: UserId,
    /// The asset's symbol.
    pub asset: String,
    /// Destination: `0x` and 40 hex digits (mixed case must be a valid EIP-55 checksum).
    pub address: String,
    /// What the destination receives, in whole units (`"0.25"`); the fee comes on top.
    pub amount: String,
    /// The current TOTP code (or a recovery code).
    pub code: Option<String>,
    /// The caller's idempotency key: a retry with the same key returns the first result.
    pub idempotency_key: String,
    /// When it was made (Unix ms): the second factor and the 24-hour limit are checked at it.
    pub now: i64,
}

/// What one [`Wallet::process_withdrawals`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessReport {
    /// Signed and stored.
    pub signed: u64,
    /// Broadcast.
    pub broadcast: u64,
    /// Replaced with a higher fee.
    pub replaced: u64,
    /// Settled.
    pub settled: u64,
    /// Failed (hold released).
    pub failed: u64,
}

/// Longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 64;
/// The window of the daily withdrawal limit.
pub const LIMIT_WINDOW_MS: i64 = 24 * 3_600_000;
/// A user's withdrawal that makes this many in 24 hours (and every one after) waits for
/// operators.
pub const VELOCITY_LIMIT: i64 = 10;

/// Parses a destination address: `0x` and 40 hex digits; all-lower or all-upper case is
/// taken as is, mixed case must carry a correct EIP-55 checksum. The zero address is refused.
pub fn parse_address(text: &str) -> Result<Address, WalletError> {
    let hex = text.strip_prefix("0x").ok_or(WalletError::InvalidAddress)?;
    if hex.len() != 40 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(WalletError::InvalidAddress);
    }
    let address: Address = text.parse().map_err(|_| WalletError::InvalidAddress)?;
    let lower = !hex.chars().any(|c| c.is_ascii_uppercase());
    let upper = !hex.chars().any(|c| c.is_ascii_lowercase());
    if !lower && !upper && address.to_checksum(None) != text {
        return Err(WalletError::BadChecksum);
    }
    if address == Address::ZERO {
        return Err(WalletError::InvalidAddress);
    }
    Ok(address)
}

pub(crate) fn check_key(key: &str) -> Result<(), WalletError> {
    if key.is_empty() || key.chars().count() > MAX_IDEMPOTENCY_KEY {
        return Err(WalletError::InvalidIdempotencyKey);
    }
    Ok(())
}

pub(crate) fn parse_positive(text: &str, asset: &AssetConfig) -> Result<u128, WalletError> {
    let amount = Amount::parse_decimal(text, asset.decimals)
        .map_err(|e| WalletError::InvalidAmount(e.to_string()))?;
    if amount.is_zero() {
        return Err(WalletError::InvalidAmount("must be positive".into()));
    }
    Ok(amount.0)
}

impl Wallet {
    /// The user's rolling 24-hour outflow limit of `asset` (withdrawals and internal
    /// transfers together), by verification level; `None` when unlimited.
    pub async fn outflow_limit(
        &self,
        user_id: UserId,
        asset: &AssetConfig,
        now: i64,
    ) -> Result<Option<OutflowLimit>, WalletError> {
        let level = self
            .inner
            .accounts
            .profile(user_id)
            .await?
            .verification_level;
        Ok(asset.daily_limit(level).map(|limit| OutflowLimit {
            limit: Amount(limit),
            since: now - LIMIT_WINDOW_MS,
        }))
    }

    /// A store answer, with its limit refusal in the wallet's words.
    pub fn within_limit<T>(
        created: Result<T, StoreError>,
        asset: &AssetConfig,
        limit: Option<OutflowLimit>,
    ) -> Result<T, WalletError> {
        created.map_err(|error| match (error, limit) {
            (StoreError::OverLimit { used }, Some(limit)) => WalletError::LimitExceeded {
                limit: limit.limit.to_decimal_string(asset.decimals),
                used: used.to_decimal_string(asset.decimals),
            },
            (other, _) => other.into(),
        })
    }
}

/// How a withdrawal's hold is named in the exchange core.
fn request_of(record: &WithdrawalRecord) -> RequestId {
    match record.request_key {
        Some(key) => held_request(key),
        None => withdrawal_request(record.id),
    }
}

/// The exchange core's answer to a withdrawal's hold, not yet recorded (see
/// [`Wallet::hold_in_core`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoreHold(Result<(), RejectReason>);

impl CoreHold {
    /// Whether the core holds the withdrawal.
    #[must_use]
    pub fn held(&self) -> bool {
        self.0.is_ok()
    }
}

/// What the hot wallet has promised: ETH (values and worst-case gas) and each token.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    pub(crate) eth: U256,
    pub(crate) tokens: std::collections::HashMap<Address, U256>,
}

impl Committed {
    /// What is promised of `asset`.
    pub(crate) fn of(&self, asset: &AssetConfig) -> U256 {
        match asset.token {
            None => self.eth,
            Some(token) => self.tokens.get(&token).copied().unwrap_or_default(),
        }
    }
}

/// What one signed hot-wallet transaction takes if it is mined.
struct Cost {
    nonce: u64,
    /// Value plus worst-case gas.
    eth: U256,
    /// For a transfer of a configured token: the token and amount.
    token: Option<(Address, U256)>,
}

/// A stored hot-wallet transaction (every one is signed EIP-1559), decoded.
pub(crate) fn stored_tx(raw: &[u8]) -> Result<TxEip1559, WalletError> {
    match TxEnvelope::decode_2718(&mut &raw[..]) {
        Ok(TxEnvelope::Eip1559(signed)) => Ok(signed.tx().clone()),
        _ => Err(WalletError::Chain(
            "a stored transaction does not decode as EIP-1559".into(),
        )),
    }
}

fn cost_of(
    raw: &[u8],
    tokens: &std::collections::HashMap<Address, usize>,
) -> Result<Cost, WalletError> {
    let tx = stored_tx(raw)?;
    let gas = U256::from(tx.gas_limit) * U256::from(tx.max_fee_per_gas);
    let token = match tx.to {
        TxKind::Call(to) if tokens.contains_key(&to) => IERC20::transferCall::abi_decode(&tx.input)
            .ok()
            .map(|call| (to, call.amount)),
        _ => None,
    };
    Ok(Cost {
        nonce: tx.nonce,
        eth: tx.value + gas,
        token,
    })
}

impl Wallet {
    /// Checks and records a withdrawal and holds its amount plus fee in the exchange core.
    /// Nothing moves unless every check passes; a retry with the same idempotency key
    /// returns the first withdrawal without checking the (used) second-factor code again.
    pub async fn request_withdrawal(
        &self,
        request: &WithdrawalRequest,
    ) -> Result<WithdrawalRecord, WalletError> {
        self.withdraw_as(request, false).await
    }

    /// A merchant's refund of a gateway payment to the address its payer gave through the
    /// refund link: a withdrawal from the merchant's balance like any other (fee on top,
    /// within the 24-hour limit, never in the 24 hours after a security change), authorised
    /// by the merchant's refund call instead of a second-factor code, and not held to the
    /// merchant's own allow-list (the address is the payer's).
    pub async fn request_refund_withdrawal(
        &self,
        request: &WithdrawalRequest,
    ) -> Result<WithdrawalRecord, WalletError> {
        self.withdraw_as(request, true).await
    }

    async fn withdraw_as(
        &self,
        request: &WithdrawalRequest,
        refund: bool,
    ) -> Result<WithdrawalRecord, WalletError> {
        let inner = &self.inner;
        let store = &inner.store;
        check_key(&request.idempotency_key)?;
        if let Some(existing) = store
            .withdrawal_by_key(request.user_id, &request.idempotency_key)
            .await?
        {
            return Ok(existing);
        }
        let asset = inner
            .config
            .asset(&request.asset)
            .ok_or_else(|| WalletError::UnknownAsset(request.asset.clone()))?;
        let amount = parse_positive(&request.amount, asset)?;
        let to = parse_address(&request.address)?;
        if inner.book.user(&to).is_some() || to == inner.hot.address() {
            return Err(WalletError::InternalAddress);
        }
        let now = request.now;
        if store.withdrawals_halted(&asset.symbol).await? {
            return Err(WalletError::WithdrawalsHalted);
        }
        if refund {
            inner
                .accounts
                .ensure_withdrawals_allowed(request.user_id, now)
                .await?;
        } else {
            inner
                .accounts
                .authorize_outflow(request.user_id, request.code.as_deref(), now)
                .await?;
        }
        // The minimum and fee in force are the core's (the back office changes them). Read
        // after the second factor, so that requests reach their checks in the order they
        // came (the database serves them first come, first served).
        let asset_id = asset.asset;
        let listed = inner
            .engine
            .read_async(move |e| e.asset_info(asset_id))
            .await?;
        let minimum = listed
            .as_ref()
            .map(|info| info.withdrawal_minimum.0)
            .filter(|m| *m > 0)
            .unwrap_or(asset.min_withdrawal);
        if amount < minimum {
            return Err(WalletError::BelowMinimum {
                minimum: Amount(minimum).to_decimal_string(asset.decimals),
            });
        }
        let chain = self.chain_key();
        let to_hex = hex_of(to);
        if !refund
            && store.allow_list_only(request.user_id).await?
            && !store
                .withdrawal_addresses(request.user_id, chain)
                .await?
                .iter()
                .any(|a| a.address == to_hex)
        {
            return Err(WalletError::NotAllowListed);
        }
        let limit = self.outflow_limit(request.user_id, asset, now).await?;
        let fee = listed.map_or(asset.withdrawal_fee, |info| info.withdrawal_fee.0);
        let review_reason = self
            .review_reason(request.user_id, asset, amount, now)
            .await?;
        // Random, not the row id (see `new_request_key`).
        let request_key = new_request_key()?;
        let created = store
            .create_withdrawal(
                &NewWithdrawal {
                    user_id: request.user_id,
                    chain_id: chain,
                    asset: asset.symbol.clone(),
                    to_address: to_hex,
                    amount: Amount(amount),
                    fee: Amount(fee),
                    idempotency_key: request.idempotency_key.clone(),
                    request_key,
                    review_reason,
                },
                limit,
                now,
            )
            .await;
        let (record, created) = Self::within_limit(created, asset, limit)?;
        if !created {
            return Ok(record);
        }
        self.hold(&record).await?;
        store
            .withdrawal(record.id)
            .await?
            .ok_or(WalletError::NotFound)
    }

    /// Why a withdrawal must wait for operators, if it must: above the review threshold of
    /// the user's verification level, or the user's [`VELOCITY_LIMIT`]th withdrawal in 24
    /// hours.
    async fn review_reason(
        &self,
        user_id: UserId,
        asset: &AssetConfig,
        amount: u128,
        now: i64,
    ) -> Result<Option<String>, WalletError> {
        let level = self
            .inner
            .accounts
            .profile(user_id)
            .await?
            .verification_level;
        if let Some(threshold) = asset.review_threshold(level)
            && amount > threshold
        {
            return Ok(Some(format!(
                "above {} {} at verification level {level}",
                Amount(threshold).to_decimal_string(asset.decimals),
                asset.symbol
            )));
        }
        let recent = self
            .inner
            .store
            .withdrawals_of(user_id, VELOCITY_LIMIT)
            .await?
            .iter()
            .filter(|w| w.created_at > now - LIMIT_WINDOW_MS)
            .count();
        if i64::try_from(recent).unwrap_or(i64::MAX) >= VELOCITY_LIMIT - 1 {
            return Ok(Some(format!(
                "{VELOCITY_LIMIT} or more withdrawals in 24 hours"
            )));
        }
        Ok(None)
    }

    /// Holds a `requested` withdrawal in the core (again, after a crash: the core's
    /// request id makes that harmless). The API and the sender's recovery may both try at
    /// once, and either may run between the other's two halves ([`Wallet::hold_in_core`],
    /// then [`Wallet::record_hold`]).
    async fn hold(&self, record: &WithdrawalRecord) -> Result<(), WalletError> {
        let answer = self.hold_in_core(record).await?;
        self.record_hold(record, answer).await
    }

    /// The first half of a hold: asks the exchange core to hold the withdrawal and returns
    /// its answer without recording it. A `DuplicateRequest` counts as held only if the core
    /// holds exactly this withdrawal under the id; otherwise the wallet halts
    /// (`HoldMismatch`). Public so that tests can interleave the two halves of two paths.
    #[doc(hidden)]
    pub async fn hold_in_core(&self, record: &WithdrawalRecord) -> Result<CoreHold, WalletError> {
        let inner = &self.inner;
        let asset = inner
            .config
            .asset(&record.asset)
            .ok_or_else(|| WalletError::UnknownAsset(record.asset.clone()))?;
        let request = request_of(record);
        let account = account_of(record.user_id)?;
        let outcome = inner
            .engine
            .submit_async(Command::WithdrawHold {
                request,
                account,
                asset: asset.asset,
                amount: record.amount,
            })
            .await?
            .outcome;
        if outcome != Err(RejectReason::DuplicateRequest) {
            return Ok(CoreHold(outcome));
        }
        // Trusted only if the core holds exactly this withdrawal: anything else means the
        // database and the core disagree (a restored database, a reused id), and marking it
        // held would promise coins that nothing locks.
        let held = inner
            .engine
            .read_async(move |e| e.withdrawal(request))
            .await?;
        let same = held.is_some_and(|h| {
            h.account == account && h.asset == asset.asset && h.amount == record.amount
        });
        if !same {
            let reason = format!(
                "withdrawal {}: the exchange core holds a different withdrawal under its \
                 request id",
                record.id
            );
            self.halt(reason).await?;
            return Err(WalletError::HoldMismatch);
        }
        Ok(CoreHold(Ok(())))
    }

    /// The second half of a hold: records the core's answer with a compare-and-set from
    /// `requested`. Whichever path loses follows the winner: a hold made after the other path
    /// recorded a refusal is given back to the balance, and a refusal seen after the other
    /// path recorded the hold is no refusal for the user (`Ok`). Public so that tests can
    /// interleave the two halves of two paths.
    #[doc(hidden)]
    pub async fn record_hold(
        &self,
        record: &WithdrawalRecord,
        answer: CoreHold,
    ) -> Result<(), WalletError> {
        let inner = &self.inner;
        let now = self.now();
        if let Err(reason) = answer.0 {
            if inner
                .store
                .set_withdrawal_status(
                    record.id,
                    &[WithdrawalStatus::Requested],
                    WithdrawalStatus::Rejected,
                    Some(reason.code()),
                    None,
                    now,
                )
                .await?
            {
                return Err(reason.into());
            }
            // The other path held it meanwhile: the withdrawal stands.
            return Ok(());
        }
        // One that needs operators waits in `review`, held but never signed, until two
        // approve it (or one rejects it).
        let held = if record.review_reason.is_some() {
            WithdrawalStatus::Review
        } else {
            WithdrawalStatus::Held
        };
        if !inner
            .store
            .set_withdrawal_status(
                record.id,
                &[WithdrawalStatus::Requested],
                held,
                None,
                None,
                now,
            )
            .await?
        {
            let current = inner.store.withdrawal(record.id).await?;
            if current.is_some_and(|w| w.status == WithdrawalStatus::Rejected) {
                // The other path recorded a refusal before this hold was recorded: the user
                // was told "rejected", so the hold goes back.
                self.release_in_core(record).await?;
            }
        }
        Ok(())
    }

    /// Cancels a withdrawal that is not signed yet; its hold returns to the balance.
    pub async fn cancel_withdrawal(
        &self,
        user_id: UserId,
        id: i64,
    ) -> Result<WithdrawalRecord, WalletError> {
        let store = &self.inner.store;
        let record = store
            .withdrawal(id)
            .await?
            .filter(|w| w.user_id == user_id)
            .ok_or(WalletError::NotFound)?;
        // Claims it from the sender first: once `cancelling`, it is never signed.
        let _guard = self.inner.signing.lock().await;
        if !store
            .set_withdrawal_status(
                id,
                &[WithdrawalStatus::Held, WithdrawalStatus::Review],
                WithdrawalStatus::Cancelling,
                Some("by the user"),
                None,
                self.now(),
            )
            .await?
        {
            let now = store.withdrawal(id).await?.unwrap_or(record);
            return Err(WalletError::NotCancellable(now.status));
        }
        self.release(
            &record,
            WithdrawalStatus::Cancelling,
            WithdrawalStatus::Cancelled,
            None,
        )
        .await?;
        store.withdrawal(id).await?.ok_or(WalletError::NotFound)
    }

    async fn release_in_core(&self, record: &WithdrawalRecord) -> Result<(), WalletError> {
        let outcome = self
            .inner
            .engine
            .submit_async(Command::WithdrawRelease {
                request: request_of(record),
            })
            .await?
            .outcome;
        match outcome {
            Ok(()) | Err(RejectReason::RequestNotPending | RejectReason::UnknownRequest) => Ok(()),
            Err(other) => Err(WalletError::Rejected(other)),
        }
    }

    /// Returns a withdrawal's hold and ends it (`from` is `cancelling` or `failing`).
    async fn release(
        &self,
        record: &WithdrawalRecord,
        from: WithdrawalStatus,
        to: WithdrawalStatus,
        reason: Option<&str>,
    ) -> Result<(), WalletError> {
        self.release_in_core(record).await?;
        self.inner
            .store
            .set_withdrawal_status(record.id, &[from], to, reason, None, self.now())
            .await?;
        Ok(())
    }

    /// Moves a withdrawal none of whose transactions can ever be mined to `failed`, releasing
    /// its hold. Callers decide that from chain state only (a receipt, or its nonce used on
    /// chain by another transaction), never from what a node said.
    async fn fail(&self, record: &WithdrawalRecord, reason: &str) -> Result<(), WalletError> {
        tracing::warn!(withdrawal = record.id, %reason, "withdrawal failed; hold released");
        if self
            .inner
            .store
            .set_withdrawal_status(
                record.id,
                &[
                    WithdrawalStatus::Held,
                    WithdrawalStatus::Signed,
                    WithdrawalStatus::Broadcast,
                ],
                WithdrawalStatus::Failing,
                Some(reason),
                None,
                self.now(),
            )
            .await?
        {
            self.release(
                record,
                WithdrawalStatus::Failing,
                WithdrawalStatus::Failed,
                Some(reason),
            )
            .await?;
        }
        Ok(())
    }

    /// Gives back every hold the exchange core keeps for a withdrawal of this chain whose
    /// record says `rejected`. A path that lost the race to record a hold releases it at once
    /// (`record_hold`); this covers a crash (or a stopped engine) between that path's loss and
    /// its release, which would otherwise leave the user told "rejected" with the coins
    /// locked for good. A held withdrawal with no matching record is alerted, not touched:
    /// the database may have been restored, and an operator decides.
    async fn reconcile_holds(&self) -> Result<(), WalletError> {
        let inner = &self.inner;
        let chain = self.chain_key();
        let pending = inner.engine.read_async(|e| e.pending_withdrawals()).await?;
        for (request, held) in pending {
            let (range, low) = ((request.0 >> 64) as u64, request.0 as u64);
            let record = match range {
                1 => match i64::try_from(low) {
                    Ok(id) => inner.store.withdrawal(id).await?,
                    Err(_) => None,
                },
                3 => inner.store.withdrawal_by_request_key(low).await?,
                _ => continue,
            };
            let Some(record) = record.filter(|r| request_of(r) == request) else {
                tracing::error!(
                    ?request,
                    "ALERT: the exchange core holds a withdrawal with no record"
                );
                continue;
            };
            if record.chain_id != chain || record.status != WithdrawalStatus::Rejected {
                continue;
            }
            let asset = inner.config.asset(&record.asset).map(|a| a.asset);
            let same = account_of(record.user_id).is_ok_and(|a| a == held.account)
                && asset == Some(held.asset)
                && record.amount == held.amount;
            if !same {
                tracing::error!(
                    withdrawal = record.id,
                    "ALERT: the exchange core holds a different withdrawal under a rejected \
                     record's request id"
                );
                continue;
            }
            tracing::warn!(
                withdrawal = record.id,
                "a rejected withdrawal was still held in the core: given back"
            );
            self.release_in_core(&record).await?;
        }
        Ok(())
    }

    /// One pass of the sender: finishes what a crash interrupted, follows the withdrawals
    /// already signed to settlement (or resends, bumps or cancels them), then signs held
    /// withdrawals and broadcasts them. Following first sends each pending transaction once
    /// per pass: the newly signed ones are followed from the next pass on.
    pub async fn process_withdrawals(&self) -> Result<ProcessReport, WalletError> {
        let mut report = ProcessReport::default();
        self.recover().await?;
        self.track(&mut report).await?;
        report.signed = self.sign_held().await?;
        report.broadcast += self.broadcast_signed().await?;
        Ok(report)
    }

    /// Completes steps a crash cut short: holds for `requested`, releases for `cancelling`
    /// and `failing`, and (once per process) holds the core keeps for withdrawals whose
    /// record says `rejected`.
    async fn recover(&self) -> Result<(), WalletError> {
        let chain = self.chain_key();
        let store = &self.inner.store;
        if !self.inner.reconciled.load(Ordering::Acquire) {
            self.reconcile_holds().await?;
            self.inner.reconciled.store(true, Ordering::Release);
        }
        for record in store
            .withdrawals_in(chain, WithdrawalStatus::Requested)
            .await?
        {
            // A refusal is recorded on the withdrawal; nothing else to do here.
            let _ = self.hold(&record).await;
        }
        for record in store
            .withdrawals_in(chain, WithdrawalStatus::Cancelling)
            .await?
        {
            self.release(
                &record,
                WithdrawalStatus::Cancelling,
                WithdrawalStatus::Cancelled,
                None,
            )
            .await?;
        }
        for record in store
            .withdrawals_in(chain, WithdrawalStatus::Failing)
            .await?
        {
            let reason = record.error.clone();
            self.release(
                &record,
                WithdrawalStatus::Failing,
                WithdrawalStatus::Failed,
                reason.as_deref(),
            )
            .await?;
        }
        Ok(())
    }

    /// The hot wallet's next nonce: the recorded one, or the chain's count when it is ahead.
    pub(crate) async fn next_nonce(&self) -> Result<u64, WalletError> {
        let inner = &self.inner;
        let hot = inner.hot.address();
        let recorded = inner
            .store
            .hot_nonce(self.chain_key(), &hex_of(hot))
            .await?
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let on_chain = timed(inner.provider.get_transaction_count(hot).pending())
            .await?
            .map_err(rpc_error)?;
        Ok(recorded.max(on_chain))
    }

    /// What the hot wallet holds of an asset at the latest block. What is on its way out is
    /// [`Self::promised`], from the records, not from a node's mempool (which may have
    /// dropped it, or never taken it).
    pub(crate) async fn hot_balance(&self, asset: &AssetConfig) -> Result<U256, WalletError> {
        self.balance_of(asset, self.inner.hot.address()).await
    }

    async fn hot_eth(&self) -> Result<U256, WalletError> {
        self.eth_of(self.inner.hot.address()).await
    }

    /// An address's ETH at the latest block.
    async fn eth_of(&self, owner: Address) -> Result<U256, WalletError> {
        timed(
            self.inner
                .provider
                .get_balance(owner)
                .block_id(BlockId::latest()),
        )
        .await?
        .map_err(rpc_error)
    }

    /// What the hot wallet's recorded transactions not yet mined will take from it: every
    /// signed or broadcast withdrawal and every pending hot-wallet move whose nonce the chain
    /// has not used at the latest block, each at the most expensive of the transactions
    /// recorded for its nonce (a replacement or a cancel may be the one mined). A signed
    /// transaction a node never took, or dropped, still counts: its coins are promised.
    pub(crate) async fn promised(&self) -> Result<Committed, WalletError> {
        let inner = &self.inner;
        let chain = self.chain_key();
        let used = self.hot_nonces_used().await?;
        let mut raws = Vec::new();
        for status in [WithdrawalStatus::Signed, WithdrawalStatus::Broadcast] {
            for record in inner.store.withdrawals_in(chain, status).await? {
                raws.extend(
                    inner
                        .store
                        .withdrawal_txs(record.id)
                        .await?
                        .into_iter()
                        .map(|t| t.raw),
                );
            }
        }
        raws.extend(
            inner
                .store
                .pending_hot_txs(chain)
                .await?
                .into_iter()
                .map(|t| t.raw),
        );
        let mut by_nonce: std::collections::BTreeMap<u64, (U256, Option<(Address, U256)>)> =
            std::collections::BTreeMap::new();
        for raw in raws {
            let Cost { nonce, eth, token } = cost_of(&raw, &inner.tokens)?;
            if nonce < used {
                continue;
            }
            let worst = by_nonce.entry(nonce).or_insert((U256::ZERO, None));
            worst.0 = worst.0.max(eth);
            if let Some((token, amount)) = token
                && worst.1.is_none_or(|(_, a)| a < amount)
            {
                worst.1 = Some((token, amount));
            }
        }
        let mut promised = Committed::default();
        for (eth, token) in by_nonce.into_values() {
            promised.eth += eth;
            if let Some((token, amount)) = token {
                *promised.tokens.entry(token).or_default() += amount;
            }
        }
        Ok(promised)
    }

    /// Signs every `held` withdrawal the hot wallet can pay, storing each signed transaction
    /// with its nonce before anything is broadcast. A withdrawal is signed only if the hot
    /// wallet holds, beyond what its recorded transactions not yet mined and this pass
    /// already promised ([`Self::promised`]), the amount and (in ETH) the
    /// transaction's worst-case gas, and only while the network's fee is within the asset's
    /// cap; otherwise it waits, so a signed transaction is never one the node must refuse for
    /// funds. Returns how many were signed.
    pub async fn sign_held(&self) -> Result<u64, WalletError> {
        let inner = &self.inner;
        let _guard = inner.signing.lock().await;
        if let Some(reason) = self.halted() {
            tracing::warn!(%reason, "withdrawals wait: the wallet is halted");
            return Ok(0);
        }
        let held = inner
            .store
            .withdrawals_in(self.chain_key(), WithdrawalStatus::Held)
            .await?;
        if held.is_empty() {
            return Ok(0);
        }
        let fees = timed(inner.provider.estimate_eip1559_fees())
            .await?
            .map_err(rpc_error)?;
        let mut committed = self.promised().await?;
        let mut signed = 0;
        let halts = inner.store.withdrawal_halts().await?;
        for record in held {
            if halts
                .iter()
                .any(|h| h.asset == "*" || h.asset == record.asset)
            {
                tracing::warn!(withdrawal = record.id, asset = %record.asset, "withdrawals halted by the operators: it waits");
                continue;
            }
            let Some(asset) = inner.config.asset(&record.asset) else {
                self.fail(&record, "asset no longer configured").await?;
                continue;
            };
            if fees.max_fee_per_gas > asset.max_fee_per_gas {
                tracing::error!(
                    withdrawal = record.id,
                    asset = %asset.symbol,
                    fee = fees.max_fee_per_gas,
                    cap = asset.max_fee_per_gas,
                    "ALERT: the network fee is above the asset's cap; the withdrawal waits"
                );
                continue;
            }
            let amount = U256::from(record.amount.0);
            let to: Address = record
                .to_address
                .parse()
                .map_err(|_| WalletError::InvalidAddress)?;
            let (kind_to, value, input) = match asset.token {
                None => (to, amount, Bytes::new()),
                Some(token) => (
                    token,
                    U256::ZERO,
                    Bytes::from(IERC20::transferCall { to, amount }.abi_encode()),
                ),
            };
            if let Some(token) = asset.token {
                let spent = committed.tokens.get(&token).copied().unwrap_or_default();
                if self.hot_balance(asset).await? < spent + amount {
                    tracing::warn!(
                        withdrawal = record.id,
                        asset = %asset.symbol,
                        "the hot wallet is short; the withdrawal waits for a refill"
                    );
                    continue;
                }
            }
            let estimate = timed(
                inner.provider.estimate_gas(
                    TransactionRequest::default()
                        .from(inner.hot.address())
                        .to(kind_to)
                        .value(value)
                        .input(input.clone().into()),
                ),
            )
            .await?;
            let gas_limit = match estimate {
                Ok(gas) => gas + gas / 5,
                Err(RpcError::ErrorResp(e)) => {
                    // Nothing was signed, no nonce taken: the transfer itself would fail.
                    self.fail(&record, &format!("the transfer would fail: {}", e.message))
                        .await?;
                    continue;
                }
                Err(e) => return Err(rpc_error(e)),
            };
            let worst_gas = U256::from(gas_limit) * U256::from(fees.max_fee_per_gas);
            let eth_needed = committed.eth + value + worst_gas;
            if self.hot_eth().await? < eth_needed {
                tracing::warn!(
                    withdrawal = record.id,
                    asset = %asset.symbol,
                    "the hot wallet lacks ETH for the value and gas; the withdrawal waits"
                );
                continue;
            }
            let nonce = self.next_nonce().await?;
            let tx = TxEip1559 {
                chain_id: inner.config.chain_id,
                nonce,
                gas_limit,
                max_fee_per_gas: fees.max_fee_per_gas,
                max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
                to: TxKind::Call(kind_to),
                value,
                access_list: Default::default(),
                input,
            };
            let stored = self.sign(tx, false)?;
            if inner
                .store
                .sign_withdrawal(record.id, &hex_of(inner.hot.address()), &stored)
                .await?
            {
                committed.eth = eth_needed;
                if let Some(token) = asset.token {
                    *committed.tokens.entry(token).or_default() += amount;
                }
                signed += 1;
                if std::env::var_os("COSS_WALLET_CRASH_AFTER_SIGN").is_some() {
                    // Fault injection for the crash test: die between storing and broadcast.
                    tracing::error!("COSS_WALLET_CRASH_AFTER_SIGN: aborting");
                    std::process::abort();
                }
            }
        }
        Ok(signed)
    }

    pub(crate) fn sign(&self, mut tx: TxEip1559, cancels: bool) -> Result<SignedTx, WalletError> {
        let signature = self
            .inner
            .hot
            .sign_transaction_sync(&mut tx)
            .map_err(|_| WalletError::Keys("cannot sign"))?;
        let nonce = tx.nonce;
        let max_fee = tx.max_fee_per_gas;
        let envelope: TxEnvelope = tx.into_signed(signature).into();
        Ok(SignedTx {
            tx_hash: hex_of(envelope.tx_hash()),
            nonce: i64::try_from(nonce).map_err(|_| WalletError::Keys("nonce overflow"))?,
            raw: envelope.encoded_2718(),
            max_fee_per_gas: max_fee,
            created_at: self.now(),
            cancels,
        })
    }

    /// Sends stored bytes to the node. Whatever the node answers is only logged: whether a
    /// transaction counts is decided from the chain (receipts and nonces), never from the
    /// wording of an error. `true` when the node took it without complaint.
    async fn send_raw(&self, withdrawal: i64, raw: &[u8]) -> Result<bool, WalletError> {
        let sent = timed(self.inner.provider.send_raw_transaction(raw)).await;
        let complaint = match sent {
            Ok(Ok(_)) => return Ok(true),
            Err(timeout) => timeout.to_string(),
            Ok(Err(e)) => e.to_string(),
        };
        tracing::warn!(withdrawal, %complaint, "the node did not take the transaction; it is sent again later");
        Ok(false)
    }

    /// Broadcasts every `signed` withdrawal's stored transaction; those a node took move to
    /// `broadcast`. Returns how many.
    pub async fn broadcast_signed(&self) -> Result<u64, WalletError> {
        let inner = &self.inner;
        let _guard = inner.signing.lock().await;
        let mut done = 0;
        for record in inner
            .store
            .withdrawals_in(self.chain_key(), WithdrawalStatus::Signed)
            .await?
        {
            let txs = inner.store.withdrawal_txs(record.id).await?;
            let Some(latest) = txs.last() else { continue };
            if self.send_latest(record.id, latest).await? {
                done += 1;
            }
        }
        Ok(done)
    }

    /// Sends a withdrawal's latest transaction; `true` when a node took it and that moved the
    /// withdrawal from `signed` to `broadcast` (a resend of a broadcast one is `false`).
    async fn send_latest(&self, id: i64, latest: &SignedTx) -> Result<bool, WalletError> {
        if !self.send_raw(id, &latest.raw).await? {
            return Ok(false);
        }
        Ok(self
            .inner
            .store
            .set_withdrawal_status(
                id,
                &[WithdrawalStatus::Signed],
                WithdrawalStatus::Broadcast,
                Some(&latest.tx_hash),
                None,
                self.now(),
            )
            .await?)
    }

    /// The first of `txs` the chain has mined, with its receipt.
    async fn mined<'t>(
        &self,
        txs: &'t [SignedTx],
    ) -> Result<Option<(&'t SignedTx, TransactionReceipt)>, WalletError> {
        for tx in txs {
            let hash = tx
                .tx_hash
                .parse()
                .map_err(|_| WalletError::Chain("stored hash does not parse".into()))?;
            if let Some(receipt) = timed(self.inner.provider.get_transaction_receipt(hash))
                .await?
                .map_err(rpc_error)?
            {
                return Ok(Some((tx, receipt)));
            }
        }
        Ok(None)
    }

    /// Follows signed and broadcast withdrawals, deciding from the chain alone: one of its
    /// transactions mined with the asset's confirmations settles it (or, reverted or a
    /// cancel, releases it); its nonce used with those confirmations by a transaction not
    /// recorded for it releases it (none of its can ever be mined). Otherwise its latest
    /// transaction is sent again, replaced with a higher fee when stuck (up to the asset's
    /// cap), or cancelled when it has waited too long. Counts into `report`.
    async fn track(&self, report: &mut ProcessReport) -> Result<(), WalletError> {
        let inner = &self.inner;
        let store = &inner.store;
        let chain = self.chain_key();
        let mut pending = store
            .withdrawals_in(chain, WithdrawalStatus::Signed)
            .await?;
        pending.extend(
            store
                .withdrawals_in(chain, WithdrawalStatus::Broadcast)
                .await?,
        );
        if pending.is_empty() {
            return Ok(());
        }
        let head = timed(inner.provider.get_block_number())
            .await?
            .map_err(rpc_error)?;
        for record in pending {
            let Some(asset) = inner.config.asset(&record.asset) else {
                continue;
            };
            let txs = store.withdrawal_txs(record.id).await?;
            let Some(first) = txs.first() else { continue };
            let confirmed = head.saturating_add(1).saturating_sub(asset.confirmations);
            if let Some((tx, receipt)) = self.mined(&txs).await? {
                let height = receipt.block_number.unwrap_or(u64::MAX);
                if height > confirmed {
                    continue;
                }
                if tx.cancels {
                    store.set_withdrawal_tx(record.id, &tx.tx_hash).await?;
                    self.fail(
                        &record,
                        "cancelled on chain: its transfer could not be mined",
                    )
                    .await?;
                    report.failed += 1;
                } else if receipt.status() {
                    self.settle(&record, &tx.tx_hash, height).await?;
                    report.settled += 1;
                } else {
                    store.set_withdrawal_tx(record.id, &tx.tx_hash).await?;
                    self.fail(&record, "the transaction reverted on chain")
                        .await?;
                    report.failed += 1;
                }
                continue;
            }
            // A node that cannot answer at that block (pruned state, a restart that kept no
            // history) decides nothing: no release, but the transaction is still sent again.
            let used = match timed(
                inner
                    .provider
                    .get_transaction_count(inner.hot.address())
                    .block_id(BlockId::number(confirmed)),
            )
            .await
            {
                Ok(Ok(used)) => used,
                Ok(Err(error)) => {
                    tracing::debug!(%error, block = confirmed, "nonce at the confirmed block unknown");
                    0
                }
                Err(timeout) => return Err(timeout),
            };
            let nonce = u64::try_from(first.nonce).unwrap_or(u64::MAX);
            // Receipts again after the count: one of ours mined in between must not be taken
            // for another transaction.
            if used > nonce && self.mined(&txs).await?.is_none() {
                self.fail(
                    &record,
                    "its nonce was used on chain by another transaction",
                )
                .await?;
                report.failed += 1;
                continue;
            }
            let Some(latest) = txs.last() else { continue };
            let now = self.now();
            let waited = now - first.created_at;
            let age = now - latest.created_at;
            let stuck = i64::try_from(inner.config.stuck_after_ms).unwrap_or(i64::MAX);
            let cancel = i64::try_from(inner.config.cancel_after_ms).unwrap_or(i64::MAX);
            let cancel_now = !latest.cancels && waited > cancel;
            if cancel_now || age > stuck {
                let cancels = cancel_now || latest.cancels;
                if self.replace(&record, latest, asset, cancels).await? {
                    report.replaced += 1;
                }
            } else if self.send_latest(record.id, latest).await? {
                report.broadcast += 1;
            }
        }
        Ok(())
    }

    async fn settle(
        &self,
        record: &WithdrawalRecord,
        hash: &str,
        height: u64,
    ) -> Result<(), WalletError> {
        let outcome = self
            .inner
            .engine
            .submit_async(Command::WithdrawConfirm {
                request: request_of(record),
            })
            .await?
            .outcome;
        match outcome {
            Ok(()) | Err(RejectReason::RequestNotPending) => {}
            Err(other) => return Err(WalletError::Rejected(other)),
        }
        self.inner.store.set_withdrawal_tx(record.id, hash).await?;
        self.inner
            .store
            .set_withdrawal_status(
                record.id,
                &[WithdrawalStatus::Signed, WithdrawalStatus::Broadcast],
                WithdrawalStatus::Settled,
                Some(hash),
                i64::try_from(height).ok(),
                self.now(),
            )
            .await?;
        tracing::info!(withdrawal = record.id, tx = %hash, "withdrawal settled");
        Ok(())
    }

    /// Replaces a withdrawal's latest transaction at the same nonce with fees raised by at
    /// least 12.5% (what nodes require of a replacement) or to the current estimate if
    /// higher: the same transfer, or with `cancel` a zero-value send to the hot wallet
    /// itself. Above the asset's fee cap nothing is signed: it alerts, sends the latest again
    /// and waits. Returns whether a replacement was stored.
    async fn replace(
        &self,
        record: &WithdrawalRecord,
        latest: &SignedTx,
        asset: &AssetConfig,
        cancel: bool,
    ) -> Result<bool, WalletError> {
        let inner = &self.inner;
        let _guard = inner.signing.lock().await;
        let old = stored_tx(&latest.raw)?;
        let mut tx = match self.bumped(&old, asset.max_fee_per_gas).await? {
            Ok(tx) => tx,
            Err(fee) => {
                tracing::error!(
                    withdrawal = record.id,
                    asset = %asset.symbol,
                    fee,
                    cap = asset.max_fee_per_gas,
                    "ALERT: a stuck withdrawal needs a fee above the asset's cap; it waits"
                );
                self.send_raw(record.id, &latest.raw).await?;
                return Ok(false);
            }
        };
        if cancel {
            tx.to = TxKind::Call(inner.hot.address());
            tx.value = U256::ZERO;
            tx.input = Bytes::new();
            tx.gas_limit = ETH_TRANSFER_GAS;
        }
        let replacement = self.sign(tx, cancel)?;
        inner
            .store
            .replace_withdrawal_tx(record.id, &replacement)
            .await?;
        tracing::warn!(
            withdrawal = record.id,
            tx = %replacement.tx_hash,
            cancel,
            "stuck withdrawal replaced"
        );
        self.send_raw(record.id, &replacement.raw).await?;
        Ok(true)
    }

    /// `old` with fees raised for a replacement at its nonce: by at least 12.5% (what nodes
    /// require of one) or to the current estimate if higher. `Err(fee)` when that fee per gas
    /// would pass `cap`: nothing may be signed then.
    pub(crate) async fn bumped(
        &self,
        old: &TxEip1559,
        cap: u128,
    ) -> Result<Result<TxEip1559, u128>, WalletError> {
        let fees = timed(self.inner.provider.estimate_eip1559_fees())
            .await?
            .map_err(rpc_error)?;
        let raise = |fee: u128| fee.saturating_add(fee / 8).saturating_add(1);
        let max_fee_per_gas = raise(old.max_fee_per_gas).max(fees.max_fee_per_gas);
        if max_fee_per_gas > cap {
            return Ok(Err(max_fee_per_gas));
        }
        Ok(Ok(TxEip1559 {
            max_fee_per_gas,
            max_priority_fee_per_gas: raise(old.max_priority_fee_per_gas)
                .max(fees.max_priority_fee_per_gas)
                .min(max_fee_per_gas),
            ..old.clone()
        }))
    }

    /// How many nonces of the hot wallet the chain has used at the latest block: a recorded
    /// transaction below it is mined (it or another at its nonce).
    pub(crate) async fn hot_nonces_used(&self) -> Result<u64, WalletError> {
        timed(
            self.inner
                .provider
                .get_transaction_count(self.inner.hot.address())
                .latest(),
        )
        .await?
        .map_err(rpc_error)
    }

    /// Stops signing (and crediting) until an operator clears it: persisted and alerted.
    pub(crate) async fn halt(&self, reason: String) -> Result<(), WalletError> {
        tracing::error!(%reason, "ALERT: the wallet is halted");
        self.inner
            .store
            .set_chain_halt(self.chain_key(), Some(&reason), self.now())
            .await?;
        if let Ok(mut halted) = self.inner.halted.write() {
            *halted = Some(reason);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn addresses_need_a_correct_checksum_when_mixed_case() {
        let good = "0x9858EfFD232B4033E47d90003D41EC34EcaEda94";
        assert!(parse_address(good).is_ok());
        assert!(parse_address(&good.to_lowercase()).is_ok());
        assert!(matches!(
            parse_address("0x9858EfFD232B4033E47d90003D41EC34EcaEda95"),
            Ok(_) | Err(WalletError::BadChecksum)
        ));
        let typo = "0x9858efFD232B4033E47d90003D41EC34EcaEda94";
        assert!(matches!(parse_address(typo), Err(WalletError::BadChecksum)));
        for bad in [
            "",
            "0x",
            "9858EfFD232B4033E47d90003D41EC34EcaEda94",
            "0x1234",
            "0xZZ58EfFD232B4033E47d90003D41EC34EcaEda94",
        ] {
            assert!(
                matches!(parse_address(bad), Err(WalletError::InvalidAddress)),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_address("0x0000000000000000000000000000000000000000"),
            Err(WalletError::InvalidAddress)
        ));
    }
}

/// Where the platform keeps one asset on chain, in its smallest units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    /// The asset's symbol.
    pub symbol: String,
    /// Its id in the exchange core.
    pub asset: coss_types::AssetId,
    /// In the hot wallet (latest block).
    pub hot: u128,
    /// In the cold wallet (`None`: no cold address configured).
    pub cold: Option<u128>,
    /// Still in deposit addresses (credited, not yet swept).
    pub deposit_addresses: u128,
    /// Whether more unswept addresses exist than were read ([`RESERVE_ADDRESSES`]).
    pub partial: bool,
}

/// Unswept deposit addresses read by [`Wallet::reserves`] at most.
pub const RESERVE_ADDRESSES: i64 = 1_000;

impl Wallet {
    /// What the platform holds on chain per configured asset: the hot wallet, the cold wallet
    /// and the credited deposits not yet swept, read at the latest block (for the
    /// accountants' comparison with what the exchange core owes).
    pub async fn reserves(&self) -> Result<Vec<Reserve>, WalletError> {
        let inner = &self.inner;
        let addresses = inner
            .store
            .unswept_addresses(self.chain_key(), RESERVE_ADDRESSES + 1)
            .await?;
        let partial = i64::try_from(addresses.len()).unwrap_or(i64::MAX) > RESERVE_ADDRESSES;
        let mut parsed = Vec::new();
        for (address, _, _) in addresses.iter().take(RESERVE_ADDRESSES as usize) {
            parsed.push(parse_address(address)?);
        }
        let mut out = Vec::new();
        for asset in &inner.config.assets {
            let hot = self.hot_balance(asset).await?;
            let cold = match inner.config.cold_address {
                Some(cold) => Some(self.balance_of(asset, cold).await?),
                None => None,
            };
            let mut in_addresses = U256::ZERO;
            for address in &parsed {
                in_addresses = in_addresses.saturating_add(self.balance_of(asset, *address).await?);
            }
            let units = |v: U256| u128::try_from(v).unwrap_or(u128::MAX);
            out.push(Reserve {
                symbol: asset.symbol.clone(),
                asset: asset.asset,
                hot: units(hot),
                cold: cold.map(units),
                deposit_addresses: units(in_addresses),
                partial,
            });
        }
        Ok(out)
    }

    /// An address's balance of an asset at the latest block.
    async fn balance_of(&self, asset: &AssetConfig, owner: Address) -> Result<U256, WalletError> {
        match asset.token {
            None => self.eth_of(owner).await,
            Some(token) => timed(
                IERC20::new(token, &self.inner.provider)
                    .balanceOf(owner)
                    .call()
                    .block(BlockId::latest()),
            )
            .await?
            .map_err(rpc_error),
        }
    }
}
