//! Withdrawals. A request is checked (asset, amount, address and its EIP-55 checksum, the
//! minimum, the second factor, the allow-list, the 24-hour limit of the account's
//! verification level) before anything moves; then it is recorded (`requested`) and its
//! amount plus fee is held in the exchange core (`held`). The sender, one at a time per hot
//! address, takes the hot wallet's next nonce, signs the transfer and stores the raw
//! transaction together with the advanced nonce in one database transaction (`signed`) —
//! only then is it broadcast (`broadcast`). After a crash, signed transactions are broadcast
//! again byte for byte (the same hash: a node cannot mine it twice), so nothing is sent twice
//! or lost. Once mined with the asset's confirmations the hold is confirmed (`settled`); a
//! transaction that reverted, or that the node refused before it ever entered the mempool,
//! releases the hold (`failed`); one left unmined too long is replaced (same nonce, fees up
//! by at least 12.5%). Releases go through `cancelling` / `failing`, so a crash between the
//! core's release and the record can never let a released withdrawal be signed.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope};
use alloy::eips::BlockId;
use alloy::eips::eip2718::{Decodable2718, Encodable2718};
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, Bytes, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::sol_types::SolCall;
use alloy::transports::RpcError;
use coss_core::{Command, RejectReason};
use coss_store::{NewWithdrawal, SignedTx, WithdrawalRecord, WithdrawalStatus};
use coss_types::{Amount, UserId};

use crate::chain::timed;
use crate::{AssetConfig, Wallet, WalletError, account_of, hex_of, rpc_error, withdrawal_request};

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

enum Broadcast {
    /// The node has it (or already mined it).
    Accepted,
    /// The node refused it for good: it never entered the mempool.
    Refused(String),
    /// The node could not be asked: try again later.
    Unknown(String),
}

impl Wallet {
    /// Checks and records a withdrawal and holds its amount plus fee in the exchange core.
    /// Nothing moves unless every check passes; a retry with the same idempotency key
    /// returns the first withdrawal without checking the (used) second-factor code again.
    pub async fn request_withdrawal(
        &self,
        request: &WithdrawalRequest,
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
        if amount < asset.min_withdrawal {
            return Err(WalletError::BelowMinimum {
                minimum: Amount(asset.min_withdrawal).to_decimal_string(asset.decimals),
            });
        }
        let now = request.now;
        inner
            .accounts
            .require_second_factor(request.user_id, request.code.as_deref(), now)
            .await?;
        let chain = self.chain_key();
        let to_hex = hex_of(to);
        if store.allow_list_only(request.user_id).await?
            && !store
                .withdrawal_addresses(request.user_id, chain)
                .await?
                .iter()
                .any(|a| a.address == to_hex)
        {
            return Err(WalletError::NotAllowListed);
        }
        let level = inner
            .accounts
            .profile(request.user_id)
            .await?
            .verification_level;
        if let Some(limit) = asset.daily_limit(level) {
            let mut used = 0u128;
            for past in store
                .withdrawn_since(request.user_id, &asset.symbol, now - LIMIT_WINDOW_MS)
                .await?
            {
                used = used.saturating_add(past.0);
            }
            if used.saturating_add(amount) > limit {
                return Err(WalletError::LimitExceeded {
                    limit: Amount(limit).to_decimal_string(asset.decimals),
                    used: Amount(used).to_decimal_string(asset.decimals),
                });
            }
        }
        let asset_id = asset.asset;
        let fee = inner
            .engine
            .read_async(move |e| e.asset_info(asset_id))
            .await?
            .map_or(asset.withdrawal_fee, |info| info.withdrawal_fee.0);
        let (record, created) = store
            .create_withdrawal(
                &NewWithdrawal {
                    user_id: request.user_id,
                    chain_id: chain,
                    asset: asset.symbol.clone(),
                    to_address: to_hex,
                    amount: Amount(amount),
                    fee: Amount(fee),
                    idempotency_key: request.idempotency_key.clone(),
                },
                now,
            )
            .await?;
        if !created {
            return Ok(record);
        }
        self.hold(&record).await?;
        store
            .withdrawal(record.id)
            .await?
            .ok_or(WalletError::NotFound)
    }

    /// Holds a `requested` withdrawal in the core (again, after a crash: the core's
    /// request id makes that harmless).
    async fn hold(&self, record: &WithdrawalRecord) -> Result<(), WalletError> {
        let inner = &self.inner;
        let asset = inner
            .config
            .asset(&record.asset)
            .ok_or_else(|| WalletError::UnknownAsset(record.asset.clone()))?;
        let outcome = inner
            .engine
            .submit_async(Command::WithdrawHold {
                request: withdrawal_request(record.id),
                account: account_of(record.user_id)?,
                asset: asset.asset,
                amount: record.amount,
            })
            .await?
            .outcome;
        let now = self.now();
        match outcome {
            Ok(()) | Err(RejectReason::DuplicateRequest) => {
                inner
                    .store
                    .set_withdrawal_status(
                        record.id,
                        &[WithdrawalStatus::Requested],
                        WithdrawalStatus::Held,
                        None,
                        None,
                        now,
                    )
                    .await?;
                Ok(())
            }
            Err(reason) => {
                inner
                    .store
                    .set_withdrawal_status(
                        record.id,
                        &[WithdrawalStatus::Requested],
                        WithdrawalStatus::Rejected,
                        Some(reason.code()),
                        None,
                        now,
                    )
                    .await?;
                Err(reason.into())
            }
        }
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
                &[WithdrawalStatus::Held],
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
            id,
            WithdrawalStatus::Cancelling,
            WithdrawalStatus::Cancelled,
            None,
        )
        .await?;
        store.withdrawal(id).await?.ok_or(WalletError::NotFound)
    }

    /// Returns a withdrawal's hold and ends it (`from` is `cancelling` or `failing`).
    async fn release(
        &self,
        id: i64,
        from: WithdrawalStatus,
        to: WithdrawalStatus,
        reason: Option<&str>,
    ) -> Result<(), WalletError> {
        let outcome = self
            .inner
            .engine
            .submit_async(Command::WithdrawRelease {
                request: withdrawal_request(id),
            })
            .await?
            .outcome;
        match outcome {
            Ok(()) | Err(RejectReason::RequestNotPending | RejectReason::UnknownRequest) => {}
            Err(other) => return Err(WalletError::Rejected(other)),
        }
        self.inner
            .store
            .set_withdrawal_status(id, &[from], to, reason, None, self.now())
            .await?;
        Ok(())
    }

    /// Moves a withdrawal that never reached the chain to `failed`, releasing its hold.
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
                record.id,
                WithdrawalStatus::Failing,
                WithdrawalStatus::Failed,
                Some(reason),
            )
            .await?;
        }
        Ok(())
    }

    /// One pass of the sender: finishes what a crash interrupted, signs held withdrawals,
    /// broadcasts signed ones, and follows broadcast ones to settlement (or a fee bump).
    pub async fn process_withdrawals(&self) -> Result<ProcessReport, WalletError> {
        let mut report = ProcessReport::default();
        self.recover().await?;
        report.signed = self.sign_held().await?;
        let (broadcast, failed) = self.broadcast_signed().await?;
        report.broadcast = broadcast;
        report.failed = failed;
        let (settled, failed, replaced) = self.track().await?;
        report.settled = settled;
        report.failed += failed;
        report.replaced = replaced;
        Ok(report)
    }

    /// Completes steps a crash cut short: holds for `requested`, releases for `cancelling`
    /// and `failing`.
    async fn recover(&self) -> Result<(), WalletError> {
        let chain = self.chain_key();
        let store = &self.inner.store;
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
                record.id,
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
                record.id,
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

    /// What the hot wallet holds of an asset (at the pending block: sends in flight count).
    pub(crate) async fn hot_balance(&self, asset: &AssetConfig) -> Result<U256, WalletError> {
        let provider = &self.inner.provider;
        let hot = self.inner.hot.address();
        match asset.token {
            None => timed(provider.get_balance(hot).block_id(BlockId::pending()))
                .await?
                .map_err(rpc_error),
            Some(token) => timed(
                IERC20::new(token, provider)
                    .balanceOf(hot)
                    .call()
                    .block(BlockId::pending()),
            )
            .await?
            .map_err(rpc_error),
        }
    }

    /// Signs every `held` withdrawal the hot wallet can pay, storing each signed transaction
    /// with its nonce before anything is broadcast. Returns how many were signed.
    pub async fn sign_held(&self) -> Result<u64, WalletError> {
        let inner = &self.inner;
        let _guard = inner.signing.lock().await;
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
        let mut committed: std::collections::HashMap<String, U256> = Default::default();
        let mut signed = 0;
        for record in held {
            let Some(asset) = inner.config.asset(&record.asset) else {
                self.fail(&record, "asset no longer configured").await?;
                continue;
            };
            let amount = U256::from(record.amount.0);
            let to: Address = record
                .to_address
                .parse()
                .map_err(|_| WalletError::InvalidAddress)?;
            let spent = committed.entry(asset.symbol.clone()).or_default();
            let balance = self.hot_balance(asset).await?;
            if balance < *spent + amount {
                tracing::warn!(
                    withdrawal = record.id,
                    asset = %asset.symbol,
                    "the hot wallet is short; the withdrawal waits for a refill"
                );
                continue;
            }
            let (kind_to, value, input) = match asset.token {
                None => (to, amount, Bytes::new()),
                Some(token) => (
                    token,
                    U256::ZERO,
                    Bytes::from(IERC20::transferCall { to, amount }.abi_encode()),
                ),
            };
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
                    self.fail(&record, &format!("the transfer would fail: {}", e.message))
                        .await?;
                    continue;
                }
                Err(e) => return Err(rpc_error(e)),
            };
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
            let stored = self.sign(tx)?;
            if inner
                .store
                .sign_withdrawal(record.id, &hex_of(inner.hot.address()), &stored)
                .await?
            {
                *spent += amount;
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

    pub(crate) fn sign(&self, mut tx: TxEip1559) -> Result<SignedTx, WalletError> {
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
        })
    }

    async fn send_raw(&self, raw: &[u8]) -> Result<Broadcast, WalletError> {
        let sent = timed(self.inner.provider.send_raw_transaction(raw)).await;
        Ok(match sent {
            Err(timeout) => Broadcast::Unknown(timeout.to_string()),
            Ok(Ok(_)) => Broadcast::Accepted,
            Ok(Err(RpcError::ErrorResp(e))) => {
                let message = e.message.to_lowercase();
                if message.contains("already known")
                    || message.contains("known transaction")
                    || message.contains("already imported")
                    || message.contains("nonce too low")
                {
                    Broadcast::Accepted
                } else {
                    Broadcast::Refused(e.message.to_string())
                }
            }
            Ok(Err(other)) => Broadcast::Unknown(other.to_string()),
        })
    }

    /// Broadcasts every `signed` withdrawal's stored transaction. Returns (broadcast, failed).
    pub async fn broadcast_signed(&self) -> Result<(u64, u64), WalletError> {
        let inner = &self.inner;
        let _guard = inner.signing.lock().await;
        let mut done = (0, 0);
        for record in inner
            .store
            .withdrawals_in(self.chain_key(), WithdrawalStatus::Signed)
            .await?
        {
            let txs = inner.store.withdrawal_txs(record.id).await?;
            let Some(latest) = txs.last() else { continue };
            match self.send_raw(&latest.raw).await? {
                Broadcast::Accepted => {
                    inner
                        .store
                        .set_withdrawal_status(
                            record.id,
                            &[WithdrawalStatus::Signed],
                            WithdrawalStatus::Broadcast,
                            Some(&latest.tx_hash),
                            None,
                            self.now(),
                        )
                        .await?;
                    done.0 += 1;
                }
                Broadcast::Refused(reason) => {
                    // It never entered a mempool, so it can never be mined: free its nonce
                    // (it is the newest: signing and broadcast are serialised) and release.
                    let hot = hex_of(inner.hot.address());
                    if inner.store.hot_nonce(self.chain_key(), &hot).await?
                        == Some(latest.nonce + 1)
                    {
                        inner
                            .store
                            .set_hot_nonce(self.chain_key(), &hot, latest.nonce)
                            .await?;
                    }
                    self.fail(&record, &format!("the node refused it: {reason}"))
                        .await?;
                    done.1 += 1;
                }
                Broadcast::Unknown(reason) => {
                    tracing::warn!(withdrawal = record.id, %reason, "broadcast deferred");
                }
            }
        }
        Ok(done)
    }

    /// Follows broadcast withdrawals: settles mined ones with their confirmations, releases
    /// reverted ones, rebroadcasts or fee-bumps unmined ones. Returns (settled, failed,
    /// replaced).
    async fn track(&self) -> Result<(u64, u64, u64), WalletError> {
        let inner = &self.inner;
        let broadcast = inner
            .store
            .withdrawals_in(self.chain_key(), WithdrawalStatus::Broadcast)
            .await?;
        if broadcast.is_empty() {
            return Ok((0, 0, 0));
        }
        let head = timed(inner.provider.get_block_number())
            .await?
            .map_err(rpc_error)?;
        let mut done = (0, 0, 0);
        for record in broadcast {
            let txs = inner.store.withdrawal_txs(record.id).await?;
            let mut mined = None;
            for tx in &txs {
                let hash = tx
                    .tx_hash
                    .parse()
                    .map_err(|_| WalletError::Chain("stored hash does not parse".into()))?;
                if let Some(receipt) = timed(inner.provider.get_transaction_receipt(hash))
                    .await?
                    .map_err(rpc_error)?
                {
                    mined = Some((tx.tx_hash.clone(), receipt));
                    break;
                }
            }
            let Some(asset) = inner.config.asset(&record.asset) else {
                continue;
            };
            match mined {
                Some((hash, receipt)) => {
                    let height = receipt.block_number.unwrap_or(u64::MAX);
                    if head.saturating_add(1).saturating_sub(height) < asset.confirmations {
                        continue;
                    }
                    if receipt.status() {
                        self.settle(&record, &hash, height).await?;
                        done.0 += 1;
                    } else {
                        inner.store.set_withdrawal_tx(record.id, &hash).await?;
                        self.fail(&record, "the transaction reverted on chain")
                            .await?;
                        done.1 += 1;
                    }
                }
                None => {
                    let Some(latest) = txs.last() else { continue };
                    let age = self.now() - latest.created_at;
                    if age > i64::try_from(inner.config.stuck_after_ms).unwrap_or(i64::MAX) {
                        self.bump(&record, latest).await?;
                        done.2 += 1;
                    } else if let Broadcast::Unknown(reason) = self.send_raw(&latest.raw).await? {
                        tracing::debug!(withdrawal = record.id, %reason, "rebroadcast deferred");
                    }
                }
            }
        }
        Ok(done)
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
                request: withdrawal_request(record.id),
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
                &[WithdrawalStatus::Broadcast],
                WithdrawalStatus::Settled,
                Some(hash),
                i64::try_from(height).ok(),
                self.now(),
            )
            .await?;
        tracing::info!(withdrawal = record.id, tx = %hash, "withdrawal settled");
        Ok(())
    }

    /// Replaces a stuck transaction: the same nonce and transfer, fees raised by at least
    /// 12.5% (what nodes require of a replacement) or to the current estimate if higher.
    async fn bump(&self, record: &WithdrawalRecord, latest: &SignedTx) -> Result<(), WalletError> {
        let inner = &self.inner;
        let _guard = inner.signing.lock().await;
        let old = TxEnvelope::decode_2718(&mut latest.raw.as_slice())
            .map_err(|_| WalletError::Chain("stored transaction does not decode".into()))?;
        let TxEnvelope::Eip1559(old) = old else {
            return Err(WalletError::Chain(
                "stored transaction is not EIP-1559".into(),
            ));
        };
        let old = old.tx();
        let fees = timed(inner.provider.estimate_eip1559_fees())
            .await?
            .map_err(rpc_error)?;
        let raise = |fee: u128| fee.saturating_add(fee / 8).saturating_add(1);
        let tx = TxEip1559 {
            max_fee_per_gas: raise(old.max_fee_per_gas).max(fees.max_fee_per_gas),
            max_priority_fee_per_gas: raise(old.max_priority_fee_per_gas)
                .max(fees.max_priority_fee_per_gas),
            ..old.clone()
        };
        let replacement = self.sign(tx)?;
        inner
            .store
            .replace_withdrawal_tx(record.id, &replacement)
            .await?;
        tracing::warn!(
            withdrawal = record.id,
            tx = %replacement.tx_hash,
            "stuck withdrawal replaced with a higher fee"
        );
        if let Broadcast::Refused(reason) | Broadcast::Unknown(reason) =
            self.send_raw(&replacement.raw).await?
        {
            tracing::warn!(withdrawal = record.id, %reason, "replacement not accepted yet");
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
