//! The deposit watcher. It records the canonical chain block by block from where it stopped,
//! checking that each new block's parent is the block it recorded below it, and that its own
//! tip is still the node's block at that height; on a mismatch it unwinds its tip (deposits
//! in unwound blocks turn `orphaned`) until the chains agree again. It keeps the last
//! `reorg_bound` blocks: a reorg that reaches below them, or removes a credited deposit,
//! halts crediting with an error-level alert until an operator looks. In each block it finds
//! ETH sent to a deposit address — every value-carrying call frame that did not revert when
//! the node offers `trace_block` (so ETH forwarded by contracts counts), else the
//! transactions' own values — and the `Transfer` logs of listed tokens to a deposit address,
//! ignoring what the hot wallet itself sends (gas top-ups). Addresses are matched in memory
//! (a hash map: a million addresses cost one lookup per transfer, never a filter on the node).
//! A deposit is credited in the exchange core once its block has the asset's confirmations,
//! with the reference `eth:{chain}:{tx}:{position}`, which the core refuses twice.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use alloy::consensus::Transaction as _;
use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::network::TransactionResponse as _;
use alloy::primitives::{Address, B256, U256, b256};
use alloy::providers::Provider;
use alloy::rpc::types::{Block, TransactionReceipt};
use coss_core::{Command, RejectReason};
use coss_store::{BlockRef, DepositStatus, NewDeposit, Store};
use coss_types::{Amount, UserId};
use serde::Deserialize;

use crate::chain::timed;
use crate::{Wallet, WalletError, account_of, deposit_reference, hex_of, rpc_error};

/// `keccak256("Transfer(address,address,uint256)")`.
pub const TRANSFER_TOPIC: B256 =
    b256!("ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef");

/// Who an address belongs to: a user's deposit address, or an invoice's receiving address
/// (with its merchant as the user).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    /// The user (for an invoice: its merchant).
    pub user: UserId,
    /// The invoice whose address it is.
    pub invoice: Option<i64>,
}

/// The watched deposit and invoice addresses and their owners, in memory.
#[derive(Debug, Default)]
pub struct AddressBook {
    map: RwLock<HashMap<Address, Owner>>,
    /// Creation time of the newest address loaded from the database.
    loaded_until: AtomicI64,
}

/// How far back a refresh re-reads, so an address committed late by another process (its
/// creation time earlier than one already loaded) is still picked up.
const REFRESH_OVERLAP_MS: i64 = 60_000;

impl AddressBook {
    /// Watches a user's deposit address.
    pub fn insert(&self, address: Address, user_id: UserId) {
        self.insert_owner(
            address,
            Owner {
                user: user_id,
                invoice: None,
            },
        );
    }

    /// Watches an address with its owner.
    pub fn insert_owner(&self, address: Address, owner: Owner) {
        if let Ok(mut map) = self.map.write() {
            map.insert(address, owner);
        }
    }

    /// The user an address belongs to (for an invoice's: its merchant).
    #[must_use]
    pub fn user(&self, address: &Address) -> Option<UserId> {
        self.owner(address).map(|o| o.user)
    }

    /// Who an address belongs to.
    #[must_use]
    pub fn owner(&self, address: &Address) -> Option<Owner> {
        self.map.read().ok().and_then(|m| m.get(address).copied())
    }

    /// How many addresses are watched.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.read().map_or(0, |m| m.len())
    }

    /// Whether none is.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Watches many deposit addresses at once (start-up, benchmarks).
    pub fn extend(&self, entries: impl IntoIterator<Item = (Address, UserId)>) {
        self.extend_owners(entries.into_iter().map(|(address, user)| {
            (
                address,
                Owner {
                    user,
                    invoice: None,
                },
            )
        }));
    }

    fn extend_owners(&self, entries: impl IntoIterator<Item = (Address, Owner)>) {
        if let Ok(mut map) = self.map.write() {
            map.extend(entries);
        }
    }

    /// Loads addresses made since the last refresh (by this or another process).
    pub async fn refresh(&self, store: &Store, chain_id: i64) -> Result<(), WalletError> {
        let since = self
            .loaded_until
            .load(Ordering::Relaxed)
            .saturating_sub(REFRESH_OVERLAP_MS);
        let rows = store.deposit_addresses_since(chain_id, since).await?;
        let invoices = store.invoice_addresses_since(chain_id, since).await?;
        let mut newest = self.loaded_until.load(Ordering::Relaxed);
        let mut entries = Vec::with_capacity(rows.len() + invoices.len());
        let rows = rows.into_iter().map(|(address, user, created)| {
            (
                address,
                Owner {
                    user,
                    invoice: None,
                },
                created,
            )
        });
        let invoices = invoices
            .into_iter()
            .map(|(address, user, invoice, created)| {
                (
                    address,
                    Owner {
                        user,
                        invoice: Some(invoice),
                    },
                    created,
                )
            });
        for (address, owner, created) in rows.chain(invoices) {
            if let Ok(address) = address.parse::<Address>() {
                entries.push((address, owner));
            }
            newest = newest.max(created);
        }
        self.extend_owners(entries);
        self.loaded_until.store(newest, Ordering::Relaxed);
        Ok(())
    }
}

/// What one [`Wallet::sync`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The node's head.
    pub head: u64,
    /// Blocks scanned and recorded.
    pub scanned: u64,
    /// Blocks unwound by reorgs.
    pub unwound: u64,
    /// Deposits found.
    pub found: u64,
    /// Deposits credited.
    pub credited: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceFrame {
    action: TraceAction,
    #[serde(default)]
    block_hash: Option<B256>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    trace_address: Vec<u64>,
    #[serde(default)]
    transaction_hash: Option<B256>,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TraceAction {
    #[serde(default)]
    from: Option<Address>,
    #[serde(default)]
    to: Option<Address>,
    #[serde(default)]
    value: Option<U256>,
    #[serde(default)]
    call_type: Option<String>,
    // selfdestruct
    #[serde(default)]
    address: Option<Address>,
    #[serde(default)]
    refund_address: Option<Address>,
    #[serde(default)]
    balance: Option<U256>,
}

impl Wallet {
    /// Follows the chain from the last recorded block to the node's head, then credits every
    /// deposit that has its confirmations.
    pub async fn sync(&self) -> Result<SyncReport, WalletError> {
        let inner = &self.inner;
        let chain = self.chain_key();
        let mut report = SyncReport::default();
        if self.halted().is_some() {
            return Ok(report);
        }
        inner.book.refresh(&inner.store, chain).await?;
        let head = timed(inner.provider.get_block_number())
            .await?
            .map_err(rpc_error)?;
        report.head = head;
        inner.head.store(head, Ordering::Relaxed);
        // Is the recorded tip still canonical? (A reorg at the same height or a shorter
        // chain shows here, before any new block does.)
        while let Some((height, hash)) = inner.store.chain_tip(chain).await? {
            let at = u64::try_from(height).unwrap_or_default();
            let canonical = if at <= head {
                self.block_hash(at).await?
            } else {
                None
            };
            if canonical.is_some_and(|h| hex_of(h) == hash) {
                break;
            }
            if !self.unwind(height, &mut report).await? {
                return Ok(report);
            }
        }
        loop {
            let tip = inner.store.chain_tip(chain).await?;
            let next = match &tip {
                Some((height, _)) => u64::try_from(*height).unwrap_or_default() + 1,
                None => inner.config.start_block.unwrap_or(head),
            };
            if next > head {
                break;
            }
            // The block, its receipts and its traces, asked of the node at once; the scan
            // checks they all belong to the same block.
            let (block, receipts, frames) = tokio::join!(
                timed(
                    inner
                        .provider
                        .get_block_by_number(BlockNumberOrTag::Number(next))
                        .full(),
                ),
                timed(inner.provider.get_block_receipts(BlockId::number(next))),
                self.fetch_traces(next),
            );
            let block = block?
                .map_err(rpc_error)?
                .ok_or_else(|| WalletError::Chain(format!("block {next} is missing")))?;
            let receipts = receipts?.map_err(rpc_error)?.unwrap_or_default();
            let frames = frames?;
            if let Some((height, hash)) = &tip
                && hex_of(block.header.parent_hash) != *hash
            {
                if !self.unwind(*height, &mut report).await? {
                    return Ok(report);
                }
                continue;
            }
            let deposits = self.scan(&block, &receipts, frames)?;
            report.found += deposits.len() as u64;
            inner
                .store
                .record_block(
                    chain,
                    &BlockRef {
                        height: i64::try_from(next).unwrap_or(i64::MAX),
                        hash: hex_of(block.header.hash),
                        parent_hash: hex_of(block.header.parent_hash),
                    },
                    &deposits,
                    i64::try_from(inner.config.reorg_bound).unwrap_or(i64::MAX),
                    self.now(),
                )
                .await?;
            report.scanned += 1;
        }
        report.credited = self.credit(head).await?;
        Ok(report)
    }

    async fn block_hash(&self, number: u64) -> Result<Option<B256>, WalletError> {
        let block = timed(
            self.inner
                .provider
                .get_block_by_number(BlockNumberOrTag::Number(number)),
        )
        .await?
        .map_err(rpc_error)?;
        Ok(block.map(|b| b.header.hash))
    }

    /// Unwinds the recorded block at `height`; false if crediting had to halt.
    async fn unwind(&self, height: i64, report: &mut SyncReport) -> Result<bool, WalletError> {
        let inner = &self.inner;
        let chain = self.chain_key();
        let now = self.now();
        let credited = inner.store.unwind_block(chain, height, now).await?;
        report.unwound += 1;
        tracing::warn!(chain, height, "reorg: unwound a block");
        let reason = if !credited.is_empty() {
            Some(format!(
                "a reorg at height {height} removed {} credited deposit(s) (first: {} {}); \
                 confirmations are too few for this chain",
                credited.len(),
                credited[0].tx_hash,
                credited[0].position
            ))
        } else if inner.store.chain_blocks_kept(chain).await? == 0 {
            Some(format!(
                "a reorg reached below the {} recorded blocks (at height {height})",
                inner.config.reorg_bound
            ))
        } else {
            None
        };
        match reason {
            Some(reason) => {
                tracing::error!(chain, %reason, "ALERT: deposit crediting halted");
                inner
                    .store
                    .set_chain_halt(chain, Some(&reason), now)
                    .await?;
                if let Ok(mut halted) = inner.halted.write() {
                    *halted = Some(reason);
                }
                Ok(false)
            }
            None => Ok(true),
        }
    }

    /// Lets crediting resume after an operator has looked at a halt.
    pub async fn clear_halt(&self) -> Result<(), WalletError> {
        self.inner
            .store
            .set_chain_halt(self.chain_key(), None, self.now())
            .await?;
        if let Ok(mut halted) = self.inner.halted.write() {
            *halted = None;
        }
        Ok(())
    }

    /// The deposits in one block.
    fn scan(
        &self,
        block: &Block,
        receipts: &[TransactionReceipt],
        frames: Vec<TraceFrame>,
    ) -> Result<Vec<NewDeposit>, WalletError> {
        let inner = &self.inner;
        if block.transactions.is_empty() || inner.book.is_empty() {
            return Ok(Vec::new());
        }
        if receipts.len() != block.transactions.len()
            || receipts
                .iter()
                .any(|r| r.block_hash != Some(block.header.hash))
        {
            return Err(WalletError::Chain(
                "the block changed while it was read".into(),
            ));
        }
        let hot = inner.hot.address();
        let succeeded: HashSet<B256> = receipts
            .iter()
            .filter(|r| r.status())
            .map(|r| r.transaction_hash)
            .collect();
        let mut found = Vec::new();
        let mut native = |tx: B256, position: String, from: Address, to: Address, value: U256| {
            if value.is_zero() || from == hot || !succeeded.contains(&tx) {
                return;
            }
            let (Some(owner), Some(asset)) = (inner.book.owner(&to), inner.config.native()) else {
                return;
            };
            let Some(amount) = amount_of(value, &tx) else {
                return;
            };
            found.push(NewDeposit {
                tx_hash: hex_of(tx),
                position,
                user_id: owner.user,
                asset: asset.symbol.clone(),
                amount,
                address: hex_of(to),
                sender: hex_of(from),
                invoice_id: owner.invoice,
            });
        };
        if inner.traces {
            for frame in succeeded_frames(frames, block.header.hash)? {
                let (Some(tx), None) = (frame.transaction_hash, &frame.error) else {
                    continue;
                };
                let position = format!(
                    "call:{}",
                    frame
                        .trace_address
                        .iter()
                        .map(u64::to_string)
                        .collect::<Vec<_>>()
                        .join(".")
                );
                let a = &frame.action;
                match (frame.kind.as_str(), a.call_type.as_deref()) {
                    ("call", Some("call")) => {
                        if let (Some(from), Some(to), Some(value)) = (a.from, a.to, a.value) {
                            native(tx, position, from, to, value);
                        }
                    }
                    ("suicide" | "selfdestruct", _) => {
                        if let (Some(from), Some(to), Some(value)) =
                            (a.address, a.refund_address, a.balance)
                        {
                            native(tx, position, from, to, value);
                        }
                    }
                    _ => {}
                }
            }
        } else {
            for tx in block.transactions.txns() {
                if let Some(to) = tx.to() {
                    native(tx.tx_hash(), "call:".into(), tx.from(), to, tx.value());
                }
            }
        }
        for receipt in receipts {
            if !receipt.status() {
                continue;
            }
            for (i, log) in receipt.inner.logs().iter().enumerate() {
                let Some(&index) = inner.tokens.get(&log.address()) else {
                    continue;
                };
                let topics = log.topics();
                let data = &log.data().data;
                if topics.len() != 3 || topics[0] != TRANSFER_TOPIC || data.len() != 32 {
                    continue;
                }
                let from = Address::from_word(topics[1]);
                let to = Address::from_word(topics[2]);
                let value = U256::from_be_slice(data);
                let Some(owner) = inner.book.owner(&to) else {
                    continue;
                };
                let Some(amount) = amount_of(value, &receipt.transaction_hash) else {
                    continue;
                };
                if value.is_zero() || from == hot {
                    continue;
                }
                found.push(NewDeposit {
                    tx_hash: hex_of(receipt.transaction_hash),
                    position: format!("log:{i}"),
                    user_id: owner.user,
                    asset: inner.config.assets[index].symbol.clone(),
                    amount,
                    address: hex_of(to),
                    sender: hex_of(from),
                    invoice_id: owner.invoice,
                });
            }
        }
        Ok(found)
    }

    /// The block's call frames (`trace_block`), when the node offers traces.
    async fn fetch_traces(&self, number: u64) -> Result<Vec<TraceFrame>, WalletError> {
        if !self.inner.traces {
            return Ok(Vec::new());
        }
        timed(
            self.inner
                .provider
                .raw_request("trace_block".into(), (format!("0x{number:x}"),)),
        )
        .await?
        .map_err(rpc_error)
    }

    /// Credits every pending deposit that has its asset's confirmations at `head`.
    async fn credit(&self, head: u64) -> Result<u64, WalletError> {
        let inner = &self.inner;
        let chain = self.chain_key();
        let mut credited = 0;
        for deposit in inner
            .store
            .deposits_in(chain, DepositStatus::Pending)
            .await?
        {
            let deposit = match deposit {
                Ok(deposit) => deposit,
                Err((id, error)) => {
                    self.refuse_deposit(id, &format!("its record does not read: {error}"))
                        .await?;
                    continue;
                }
            };
            let Some(asset) = inner.config.asset(&deposit.asset) else {
                continue;
            };
            let height = u64::try_from(deposit.block_height).unwrap_or(u64::MAX);
            if head.saturating_add(1).saturating_sub(height) < asset.confirmations {
                continue;
            }
            let reference = deposit_reference(chain, &deposit.tx_hash, &deposit.position);
            // A payment to an invoice's address waits in the gateway account until the
            // gateway settles it to the merchant.
            let account = match deposit.invoice_id {
                Some(_) => coss_core::GATEWAY,
                None => match account_of(deposit.user_id) {
                    Ok(account) => account,
                    Err(_) => {
                        self.refuse_deposit(deposit.id, "no exchange account for its user")
                            .await?;
                        continue;
                    }
                },
            };
            let receipt = inner
                .engine
                .submit_async(Command::Deposit {
                    account,
                    asset: asset.asset,
                    amount: deposit.amount,
                    reference: reference.clone(),
                })
                .await?;
            match receipt.outcome {
                // Credited before a crash kept the record from saying so: the core's
                // reference check makes the retry harmless.
                Ok(()) | Err(RejectReason::DuplicateReference) => {}
                Err(reason) => {
                    // Refused for good (the core is deterministic: the same command is
                    // refused again): a final state and one alert, not a retry every block.
                    let why = format!("the exchange core refused it: {}", reason.code());
                    self.refuse_deposit(deposit.id, &why).await?;
                    continue;
                }
            }
            if inner
                .store
                .mark_deposit_credited(deposit.id, &reference, self.now())
                .await?
            {
                credited += 1;
                tracing::info!(
                    user = %deposit.user_id,
                    asset = %deposit.asset,
                    amount = %deposit.amount,
                    tx = %deposit.tx_hash,
                    "deposit credited"
                );
            }
        }
        Ok(credited)
    }

    /// Ends a deposit that can never be credited as `refused`, with an alert; crediting of
    /// the others goes on.
    async fn refuse_deposit(&self, id: i64, reason: &str) -> Result<(), WalletError> {
        tracing::error!(deposit = id, %reason, "ALERT: a deposit is refused and left for an operator");
        self.inner
            .store
            .mark_deposit_refused(id, reason, self.now())
            .await?;
        Ok(())
    }
}

/// The call frames of block `hash` that did not revert (nor sit under a reverted frame).
fn succeeded_frames(frames: Vec<TraceFrame>, hash: B256) -> Result<Vec<TraceFrame>, WalletError> {
    if frames
        .iter()
        .any(|f| f.block_hash.is_some_and(|h| h != hash))
    {
        return Err(WalletError::Chain(
            "the block changed while it was traced".into(),
        ));
    }
    let failed: HashSet<(B256, Vec<u64>)> = frames
        .iter()
        .filter(|f| f.error.is_some())
        .filter_map(|f| Some((f.transaction_hash?, f.trace_address.clone())))
        .collect();
    Ok(frames
        .into_iter()
        .filter(|f| {
            let Some(tx) = f.transaction_hash else {
                return false;
            };
            !(0..=f.trace_address.len())
                .any(|n| failed.contains(&(tx, f.trace_address[..n].to_vec())))
        })
        .collect())
}

/// A transfer's value as an amount of the exchange core (128 bits): a larger one cannot be
/// credited, and is left for an operator (logged) instead of being truncated.
fn amount_of(value: U256, tx: &B256) -> Option<Amount> {
    match u128::try_from(value) {
        Ok(units) => Some(Amount(units)),
        Err(_) => {
            tracing::error!(%value, %tx, "a deposit larger than 2^128 units is not credited");
            None
        }
    }
}
