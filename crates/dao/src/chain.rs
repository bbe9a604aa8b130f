//! COSS held in users' own Ethereum addresses at a week's close, and whom it counts for.
//!
//! The holdings are read at the first block whose timestamp is at or after the close, by
//! replaying the token's logs from its deployment (or the configured first block) to that
//! block, in (block, log index) order:
//! - `Transfer` gives every address's balance at the block;
//! - `RevenueUsernameSet` gives the username each address last set (zero clears it);
//! - the sale's `Purchased` gives the username a buyer named when buying.
//!
//! An address counts for the account its own username names. If it set none (or a name no
//! account has), it counts for the **original buyer** of its tokens: an address that bought
//! in the sale has the purchase's username; an address that first received COSS from another
//! address inherits that address's original buyer at that moment (for an address whose coins
//! came from several origins, the first one decides). If neither is known it counts for
//! nobody that week. The platform's own addresses (hot, cold, deposit) are left out: their
//! COSS is already counted inside the platform.
//!
//! Attribution must not be capturable by others, so: the platform's addresses never pass an
//! origin on (anyone can dust the hot wallet, and every withdrawal leaves from it); a transfer
//! below the dust threshold sets no origin (anyone can dust a fresh address before its owner's
//! first real transfer); and a username counts for an address only if the account claimed it
//! on the platform before the address named it on chain (usernames seen on chain could
//! otherwise be claimed by whoever is first).

use std::collections::{BTreeMap, HashMap, HashSet};

use alloy::eips::BlockNumberOrTag;
use alloy::primitives::{Address, B256};
use alloy::providers::{DynProvider, Provider};
use alloy::rpc::types::{Filter, Log};
use alloy::sol_types::SolEvent;
use coss_contracts::{CossSale, CossToken, username_from_bytes32};

use crate::DaoError;

/// Blocks per `eth_getLogs` request.
pub const LOG_RANGE: u64 = 5_000;

/// Where COSS lives on chain.
#[derive(Debug, Clone)]
pub struct ChainReader {
    provider: DynProvider,
    token: Address,
    sale: Option<Address>,
    from_block: u64,
}

/// One address at a week's block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressHolding {
    /// The address.
    pub address: Address,
    /// Its COSS (smallest units).
    pub amount: u128,
    /// The username it set with `setRevenueUsername`, if any.
    pub username: Option<String>,
    /// When it set that username (the block's time, Unix ms, end of its second).
    pub username_at_ms: u64,
    /// The username of the original buyer of its coins, if known.
    pub buyer: Option<String>,
    /// When the buyer named it in the purchase (Unix ms, end of its second).
    pub buyer_at_ms: u64,
}

/// Every address holding COSS at a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSnapshot {
    /// The block.
    pub block: u64,
    /// Holders with a positive balance, ascending by address.
    pub addresses: Vec<AddressHolding>,
}

fn rpc<E: std::fmt::Display>(error: E) -> DaoError {
    DaoError::Chain(error.to_string())
}

impl ChainReader {
    /// Reads the token (and the sale's purchases) through `provider`, from `from_block`.
    #[must_use]
    pub fn new(
        provider: DynProvider,
        token: Address,
        sale: Option<Address>,
        from_block: u64,
    ) -> Self {
        Self {
            provider,
            token,
            sale,
            from_block,
        }
    }

    async fn timestamp(&self, number: u64) -> Result<u64, DaoError> {
        let block = self
            .provider
            .get_block_by_number(BlockNumberOrTag::Number(number))
            .await
            .map_err(rpc)?
            .ok_or_else(|| DaoError::Chain(format!("block {number} missing")))?;
        Ok(block.header.timestamp)
    }

    /// The first block whose timestamp is at or after `close_ms`, or `None` while the chain
    /// has not reached it.
    pub async fn block_at_or_after(&self, close_ms: u64) -> Result<Option<u64>, DaoError> {
        let close = close_ms.div_ceil(1000);
        let head = self.provider.get_block_number().await.map_err(rpc)?;
        if self.timestamp(head).await? < close {
            return Ok(None);
        }
        // Binary search: timestamps never decrease along the chain.
        let (mut low, mut high) = (self.from_block.min(head), head);
        if self.timestamp(low).await? >= close {
            return Ok(Some(low));
        }
        while high - low > 1 {
            let middle = low + (high - low) / 2;
            if self.timestamp(middle).await? >= close {
                high = middle;
            } else {
                low = middle;
            }
        }
        Ok(Some(high))
    }

    async fn logs(
        &self,
        address: Address,
        topics: Vec<B256>,
        to: u64,
    ) -> Result<Vec<Log>, DaoError> {
        let mut logs = Vec::new();
        let mut from = self.from_block;
        while from <= to {
            let until = (from + LOG_RANGE - 1).min(to);
            let filter = Filter::new()
                .address(address)
                .event_signature(topics.clone())
                .from_block(from)
                .to_block(until);
            logs.extend(self.provider.get_logs(&filter).await.map_err(rpc)?);
            from = until + 1;
        }
        Ok(logs)
    }

    /// When the block of `log` was made (Unix ms, the end of its second): from the log, or
    /// asked once per block.
    async fn named_at(&self, log: &Log, times: &mut HashMap<u64, u64>) -> Result<u64, DaoError> {
        let number = log.block_number.unwrap_or(0);
        let seconds = match (log.block_timestamp, times.get(&number)) {
            (Some(seconds), _) | (None, Some(&seconds)) => seconds,
            (None, None) => {
                let seconds = self.timestamp(number).await?;
                times.insert(number, seconds);
                seconds
            }
        };
        Ok(seconds.saturating_mul(1000).saturating_add(999))
    }

    /// Every holder at `block`, with its username and original buyer. Transfers from
    /// `platform` addresses and transfers below `dust` pass no origin.
    pub async fn snapshot(
        &self,
        block: u64,
        platform: &HashSet<Address>,
        dust: u128,
    ) -> Result<ChainSnapshot, DaoError> {
        let mut logs = self
            .logs(
                self.token,
                vec![
                    CossToken::Transfer::SIGNATURE_HASH,
                    CossToken::RevenueUsernameSet::SIGNATURE_HASH,
                ],
                block,
            )
            .await?;
        if let Some(sale) = self.sale {
            logs.extend(
                self.logs(sale, vec![CossSale::Purchased::SIGNATURE_HASH], block)
                    .await?,
            );
        }
        let position = |log: &Log| (log.block_number.unwrap_or(0), log.log_index.unwrap_or(0));
        logs.sort_by_key(position);
        let mut balances: BTreeMap<Address, u128> = BTreeMap::new();
        let mut usernames: HashMap<Address, (String, u64)> = HashMap::new();
        let mut purchases: HashMap<Address, (String, u64)> = HashMap::new();
        let mut origins: HashMap<Address, Option<(String, u64)>> = HashMap::new();
        let mut times: HashMap<u64, u64> = HashMap::new();
        for log in &logs {
            let topic = log.topic0().copied().unwrap_or_default();
            if topic == CossToken::Transfer::SIGNATURE_HASH && log.address() == self.token {
                let event = log.log_decode::<CossToken::Transfer>().map_err(rpc)?;
                let CossToken::Transfer { from, to, value } = event.inner.data;
                let value = u128::try_from(value).map_err(rpc)?;
                if from != Address::ZERO {
                    let balance = balances.entry(from).or_default();
                    *balance = balance
                        .checked_sub(value)
                        .ok_or_else(|| DaoError::Chain(format!("{from} spent more than it had")))?;
                }
                if to != Address::ZERO {
                    *balances.entry(to).or_default() += value;
                    let passes = value >= dust.max(1) && !platform.contains(&from);
                    if !origins.contains_key(&to) && passes {
                        let origin = if from == Address::ZERO {
                            purchases.get(&to).cloned()
                        } else {
                            origins.get(&from).cloned().flatten()
                        };
                        origins.insert(to, origin);
                    }
                }
            } else if topic == CossToken::RevenueUsernameSet::SIGNATURE_HASH {
                let event = log
                    .log_decode::<CossToken::RevenueUsernameSet>()
                    .map_err(rpc)?;
                let CossToken::RevenueUsernameSet { holder, username } = event.inner.data;
                match username_from_bytes32(username) {
                    Some(name) => {
                        let at = self.named_at(log, &mut times).await?;
                        usernames.insert(holder, (name, at))
                    }
                    None => usernames.remove(&holder),
                };
            } else if topic == CossSale::Purchased::SIGNATURE_HASH {
                let event = log.log_decode::<CossSale::Purchased>().map_err(rpc)?;
                let purchase = event.inner.data;
                if let Some(name) = username_from_bytes32(purchase.username)
                    && !purchases.contains_key(&purchase.buyer)
                {
                    let at = self.named_at(log, &mut times).await?;
                    purchases.insert(purchase.buyer, (name, at));
                }
            }
        }
        let addresses = balances
            .into_iter()
            .filter(|&(_, amount)| amount > 0)
            .map(|(address, amount)| {
                let (username, username_at_ms) = usernames
                    .get(&address)
                    .cloned()
                    .map_or((None, 0), |(n, t)| (Some(n), t));
                let (buyer, buyer_at_ms) = origins
                    .get(&address)
                    .cloned()
                    .flatten()
                    .map_or((None, 0), |(n, t)| (Some(n), t));
                AddressHolding {
                    address,
                    amount,
                    username,
                    username_at_ms,
                    buyer,
                    buyer_at_ms,
                }
            })
            .collect();
        Ok(ChainSnapshot { block, addresses })
    }
}

/// How an address was counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Its own username.
    Username,
    /// The original buyer of its coins.
    Buyer,
    /// Nobody (no known username or buyer).
    Nobody,
}

impl Rule {
    /// Stable name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Rule::Username => "username",
            Rule::Buyer => "buyer",
            Rule::Nobody => "none",
        }
    }
}

/// Applies the rules: each address (other than `excluded`) to an account id, through
/// `accounts` (username → account and when it claimed the name, Unix ms). Returns the
/// attribution per address.
#[must_use]
pub fn attribute(
    snapshot: &ChainSnapshot,
    excluded: &HashSet<Address>,
    accounts: &HashMap<String, (u64, i64)>,
) -> Vec<(AddressHolding, Option<u64>, Rule)> {
    snapshot
        .addresses
        .iter()
        .filter(|a| !excluded.contains(&a.address))
        .map(|a| {
            // A name counts only for the account that claimed it before it was named here.
            let by = |name: &Option<String>, named_ms: u64| {
                let (account, claimed_ms) = *accounts.get(name.as_ref()?)?;
                (u64::try_from(claimed_ms).unwrap_or(u64::MAX) <= named_ms).then_some(account)
            };
            let username = by(&a.username, a.username_at_ms);
            let (account, rule) = match (username, by(&a.buyer, a.buyer_at_ms)) {
                (Some(account), _) => (Some(account), Rule::Username),
                (None, Some(account)) => (Some(account), Rule::Buyer),
                (None, None) => (None, Rule::Nobody),
            };
            (a.clone(), account, rule)
        })
        .collect()
}
