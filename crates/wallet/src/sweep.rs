//! Sweeps: moving credited deposits from users' deposit addresses into the hot wallet, and
//! the hot wallet's excess into the cold wallet. User balances do not change (the exchange
//! core already holds them); only where the platform keeps the coins does.
//!
//! A deposit address holding tokens first needs gas: the hot wallet tops it up with exactly
//! the estimated cost, then the address sends each token's whole balance to the hot wallet
//! (legacy transactions at the current gas price, so the cost is known to the wei), and last
//! its ETH less one transfer's cost. An address whose remaining ETH is worth less than the
//! transfer is marked swept. Balances are read at the pending block, so a sweep in flight is
//! not sent twice. The hot wallet keeps `hot_keep` of an asset once it holds more than
//! `hot_max`; the rest goes to the cold wallet, whose key never touches the server — the
//! platform's fee revenue included, since the hot wallet only keeps a float. The watcher
//! ignores transfers sent by the hot wallet, so top-ups are never taken for deposits.
//! The hot wallet's own moves take their nonce from the same allocator as withdrawals and
//! are recorded before broadcast and sent again until the chain has them (or their nonce was
//! used), one at a time per destination, so a dropped move never leaves a hole under later
//! withdrawals; a stuck one is replaced with a higher fee like a withdrawal. What signed
//! withdrawals and moves not yet mined will take is never moved to cold.

use alloy::consensus::{SignableTransaction, TxEip1559, TxEnvelope, TxLegacy};
use alloy::eips::BlockId;
use alloy::eips::eip2718::Encodable2718;
use alloy::network::TxSignerSync;
use alloy::primitives::{Address, Bytes, TxKind, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolCall;

use coss_store::HotTx;

use crate::chain::timed;
use crate::withdraw::{IERC20, stored_tx};
use crate::{Wallet, WalletError, hd, rpc_error};

/// Gas of a plain ETH transfer.
pub(crate) const ETH_TRANSFER_GAS: u64 = 21_000;
/// Deposit addresses looked at per pass.
const SWEEP_BATCH: i64 = 100;

/// What one [`Wallet::sweep`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Transfers from deposit addresses to the hot wallet.
    pub swept: u64,
    /// Gas top-ups sent to deposit addresses.
    pub topped_up: u64,
    /// Addresses found empty and marked swept.
    pub finished: u64,
    /// Transfers from the hot wallet to the cold wallet.
    pub to_cold: u64,
}

impl Wallet {
    /// One sweep pass (see the module documentation).
    pub async fn sweep(&self) -> Result<SweepReport, WalletError> {
        let inner = &self.inner;
        let _guard = inner.signing.lock().await;
        let mut report = SweepReport::default();
        self.follow_hot_txs().await?;
        let chain = self.chain_key();
        let gas_price = timed(inner.provider.get_gas_price())
            .await?
            .map_err(rpc_error)?;
        for (address, user, invoice) in inner.store.unswept_addresses(chain, SWEEP_BATCH).await? {
            let signer = match invoice {
                Some(invoice) => hd::invoice_signer(&inner.seed, invoice)?,
                None => hd::deposit_signer(&inner.seed, user)?,
            };
            if crate::hex_of(signer.address()) != address {
                return Err(WalletError::Keys(
                    "a deposit address does not match its key",
                ));
            }
            match self.sweep_address(&signer, gas_price, &mut report).await {
                Ok(true) => {
                    inner.store.mark_swept(chain, &address, self.now()).await?;
                    report.finished += 1;
                }
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, %address, "sweep deferred"),
            }
        }
        self.move_to_cold(&mut report).await?;
        Ok(report)
    }

    /// Sends what can be sent from one deposit address; true when nothing is left to sweep.
    async fn sweep_address(
        &self,
        signer: &PrivateKeySigner,
        gas_price: u128,
        report: &mut SweepReport,
    ) -> Result<bool, WalletError> {
        let inner = &self.inner;
        let provider = &inner.provider;
        let from = signer.address();
        let hot = inner.hot.address();
        let mut tokens = Vec::new();
        for token in inner.config.assets.iter().filter_map(|a| a.token) {
            let balance = timed(
                IERC20::new(token, provider)
                    .balanceOf(from)
                    .call()
                    .block(BlockId::pending()),
            )
            .await?
            .map_err(rpc_error)?;
            if !balance.is_zero() {
                tokens.push((token, balance));
            }
        }
        let eth = timed(provider.get_balance(from).block_id(BlockId::pending()))
            .await?
            .map_err(rpc_error)?;
        let mut nonce = timed(provider.get_transaction_count(from).pending())
            .await?
            .map_err(rpc_error)?;
        if !tokens.is_empty() {
            let mut calls = Vec::new();
            let mut gas_total = 0u64;
            for (token, balance) in tokens {
                let input = Bytes::from(
                    IERC20::transferCall {
                        to: hot,
                        amount: balance,
                    }
                    .abi_encode(),
                );
                let gas = timed(
                    provider.estimate_gas(
                        TransactionRequest::default()
                            .from(from)
                            .to(token)
                            .input(input.clone().into()),
                    ),
                )
                .await?
                .map_err(rpc_error)?;
                let gas = gas + gas / 5;
                gas_total += gas;
                calls.push((token, input, gas));
            }
            let need = U256::from(gas_total) * U256::from(gas_price);
            if eth < need {
                // One top-up at a time: a recorded one on its way is sent again, not doubled.
                if !self.move_pending(from).await? {
                    self.send_from_hot(from, need - eth, Bytes::new(), "top_up", from)
                        .await?;
                    report.topped_up += 1;
                }
                return Ok(false);
            }
            for (token, input, gas) in calls {
                let tx = TxLegacy {
                    chain_id: Some(inner.config.chain_id),
                    nonce,
                    gas_price,
                    gas_limit: gas,
                    to: TxKind::Call(token),
                    value: U256::ZERO,
                    input,
                };
                self.send_legacy(signer, tx).await?;
                nonce += 1;
                report.swept += 1;
            }
            return Ok(false);
        }
        let cost = U256::from(ETH_TRANSFER_GAS) * U256::from(gas_price);
        if eth <= cost {
            return Ok(true);
        }
        let tx = TxLegacy {
            chain_id: Some(inner.config.chain_id),
            nonce,
            gas_price,
            gas_limit: ETH_TRANSFER_GAS,
            to: TxKind::Call(hot),
            value: eth - cost,
            input: Bytes::new(),
        };
        self.send_legacy(signer, tx).await?;
        report.swept += 1;
        Ok(false)
    }

    async fn send_legacy(
        &self,
        signer: &PrivateKeySigner,
        mut tx: TxLegacy,
    ) -> Result<(), WalletError> {
        let signature = signer
            .sign_transaction_sync(&mut tx)
            .map_err(|_| WalletError::Keys("cannot sign"))?;
        let envelope: TxEnvelope = tx.into_signed(signature).into();
        let _pending = timed(
            self.inner
                .provider
                .send_raw_transaction(&envelope.encoded_2718()),
        )
        .await?
        .map_err(rpc_error)?;
        Ok(())
    }

    /// Sends from the hot wallet with its next nonce (top-ups and moves to cold), recorded with
    /// that nonce before the broadcast, like a withdrawal: [`Self::follow_hot_txs`] sends it
    /// again until the chain has it, so a dropped one never leaves a gap under later nonces.
    async fn send_from_hot(
        &self,
        to: Address,
        value: U256,
        input: Bytes,
        purpose: &str,
        destination: Address,
    ) -> Result<(), WalletError> {
        let inner = &self.inner;
        let fees = timed(inner.provider.estimate_eip1559_fees())
            .await?
            .map_err(rpc_error)?;
        let gas = timed(
            inner.provider.estimate_gas(
                TransactionRequest::default()
                    .from(inner.hot.address())
                    .to(to)
                    .value(value)
                    .input(input.clone().into()),
            ),
        )
        .await?
        .map_err(rpc_error)?;
        let nonce = self.next_nonce().await?;
        let tx = TxEip1559 {
            chain_id: inner.config.chain_id,
            nonce,
            gas_limit: gas + gas / 5,
            max_fee_per_gas: fees.max_fee_per_gas,
            max_priority_fee_per_gas: fees.max_priority_fee_per_gas,
            to: TxKind::Call(to),
            value,
            access_list: Default::default(),
            input,
        };
        let signed = self.sign(tx, false)?;
        self.record_and_send(&signed, purpose, &crate::hex_of(destination))
            .await
    }

    /// Records a signed hot-wallet move with its nonce, then broadcasts it; a node's refusal
    /// is only logged ([`Self::follow_hot_txs`] sends it again).
    async fn record_and_send(
        &self,
        signed: &coss_store::SignedTx,
        purpose: &str,
        destination: &str,
    ) -> Result<(), WalletError> {
        let inner = &self.inner;
        inner
            .store
            .record_hot_tx(
                self.chain_key(),
                &crate::hex_of(inner.hot.address()),
                &HotTx {
                    tx_hash: signed.tx_hash.clone(),
                    nonce: signed.nonce,
                    purpose: purpose.to_owned(),
                    destination: destination.to_owned(),
                    raw: signed.raw.clone(),
                    created_at: signed.created_at,
                },
            )
            .await?;
        if let Err(error) = timed(inner.provider.send_raw_transaction(&signed.raw)).await {
            tracing::warn!(%error, purpose, tx = %signed.tx_hash, "hot-wallet move not sent yet; it is sent again");
        }
        Ok(())
    }

    /// Follows the recorded hot-wallet moves, by nonce: a nonce the chain used at the latest
    /// block is done (whichever of its transactions was mined); otherwise the newest
    /// transaction at it is sent again, byte for byte, or, once it has waited longer than
    /// `stuck_after_ms`, replaced with a higher fee (up to the ETH asset's cap). Returns how
    /// many nonces remain pending.
    pub async fn follow_hot_txs(&self) -> Result<usize, WalletError> {
        let inner = &self.inner;
        let pending = inner.store.pending_hot_txs(self.chain_key()).await?;
        if pending.is_empty() {
            return Ok(0);
        }
        let used = self.hot_nonces_used().await?;
        let mut by_nonce: std::collections::BTreeMap<i64, Vec<HotTx>> = Default::default();
        for tx in pending {
            by_nonce.entry(tx.nonce).or_default().push(tx);
        }
        let stuck = i64::try_from(inner.config.stuck_after_ms).unwrap_or(i64::MAX);
        let mut left = 0;
        for (nonce, txs) in by_nonce {
            if used > u64::try_from(nonce).unwrap_or(u64::MAX) {
                for tx in &txs {
                    inner.store.finish_hot_tx(&tx.tx_hash, self.now()).await?;
                }
                continue;
            }
            left += 1;
            let Some(newest) = txs.iter().max_by_key(|t| t.created_at) else {
                continue;
            };
            if self.now() - newest.created_at > stuck && self.bump_hot_tx(newest).await? {
                continue;
            }
            if let Ok(Err(error)) = timed(inner.provider.send_raw_transaction(&newest.raw)).await {
                tracing::debug!(%error, tx = %newest.tx_hash, "hot-wallet move resent");
            }
        }
        Ok(left)
    }

    /// Replaces a stuck hot-wallet move at the same nonce with fees raised by at least 12.5%
    /// (what nodes require of a replacement) or to the current estimate if higher, recorded
    /// before it is sent. Above the ETH asset's fee cap nothing is signed: it alerts and the
    /// move waits. Returns whether a replacement was made.
    async fn bump_hot_tx(&self, stuck: &HotTx) -> Result<bool, WalletError> {
        let inner = &self.inner;
        let cap = inner
            .config
            .assets
            .iter()
            .find(|a| a.token.is_none())
            .map_or(crate::config::DEFAULT_MAX_FEE_PER_GAS, |a| {
                a.max_fee_per_gas
            });
        let tx = match self.bumped(&stored_tx(&stuck.raw)?, cap).await? {
            Ok(tx) => tx,
            Err(fee) => {
                tracing::error!(
                    tx = %stuck.tx_hash,
                    purpose = %stuck.purpose,
                    fee,
                    cap,
                    "ALERT: a stuck hot-wallet move needs a fee above the cap; it waits"
                );
                return Ok(false);
            }
        };
        let signed = self.sign(tx, false)?;
        tracing::warn!(tx = %signed.tx_hash, purpose = %stuck.purpose, "stuck hot-wallet move replaced");
        self.record_and_send(&signed, &stuck.purpose, &stuck.destination)
            .await?;
        Ok(true)
    }

    /// Whether a recorded hot-wallet move to `destination` is still on its way.
    async fn move_pending(&self, destination: Address) -> Result<bool, WalletError> {
        let destination = crate::hex_of(destination);
        Ok(self
            .inner
            .store
            .pending_hot_txs(self.chain_key())
            .await?
            .iter()
            .any(|t| t.destination == destination))
    }

    /// Moves each asset's hot balance above `hot_max` down to `hot_keep`, into the cold wallet.
    async fn move_to_cold(&self, report: &mut SweepReport) -> Result<(), WalletError> {
        let inner = &self.inner;
        let Some(cold) = inner.config.cold_address else {
            return Ok(());
        };
        if inner.config.assets.iter().all(|a| a.hot_max.is_none()) {
            return Ok(());
        }
        // What signed withdrawals and moves not yet mined will take stays: moving it to cold
        // would leave them unpayable.
        let promised = self.promised().await?;
        for asset in &inner.config.assets {
            let Some(max) = asset.hot_max else { continue };
            let free = self
                .hot_balance(asset)
                .await?
                .saturating_sub(promised.of(asset));
            if free <= U256::from(max) {
                continue;
            }
            if self.move_pending(cold).await? {
                // A move to cold is on its way: the balance will drop when it lands.
                continue;
            }
            let excess = free - U256::from(asset.hot_keep);
            match asset.token {
                None => {
                    self.send_from_hot(cold, excess, Bytes::new(), "to_cold", cold)
                        .await?;
                }
                Some(token) => {
                    let input = Bytes::from(
                        IERC20::transferCall {
                            to: cold,
                            amount: excess,
                        }
                        .abi_encode(),
                    );
                    self.send_from_hot(token, U256::ZERO, input, "to_cold", cold)
                        .await?;
                }
            }
            tracing::info!(asset = %asset.symbol, amount = %excess, %cold, "hot wallet excess moved to cold");
            report.to_cold += 1;
        }
        Ok(())
    }
}
