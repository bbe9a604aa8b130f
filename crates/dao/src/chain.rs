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
    /// The username of the original buyer of its coins, if known.
    pub buyer: Option<String>,
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

    /// Every holder at `block`, with its username and original buyer.
    pub async fn snapshot(&self, block: u64) -> Result<ChainSnapshot, DaoError> {
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
        let mut usernames: HashMap<Address, String> = HashMap::new();
        let mut purchases: HashMap<Address, String> = HashMap::new();
        let mut origins: HashMap<Address, Option<String>> = HashMap::new();
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
                    if !origins.contains_key(&to) && value > 0 {
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
                    Some(name) => usernames.insert(holder, name),
                    None => usernames.remove(&holder),
                };
            } else if topic == CossSale::Purchased::SIGNATURE_HASH {
                let event = log.log_decode::<CossSale::Purchased>().map_err(rpc)?;
                let purchase = event.inner.data;
                if let Some(name) = username_from_bytes32(purchase.username) {
                    purchases.entry(purchase.buyer).or_insert(name);
                }
            }
        }
        let addresses = balances
            .into_iter()
            .filter(|&(_, amount)| amount > 0)
            .map(|(address, amount)| AddressHolding {
                address,
                amount,
                username: usernames.get(&address).cloned(),
                buyer: origins.get(&address).cloned().flatten(),
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
/// `accounts` (username → account). Returns the attribution per address.
#[must_use]
pub fn attribute(
    snapshot: &ChainSnapshot,
    excluded: &HashSet<Address>,
    accounts: &HashMap<String, u64>,
) -> Vec<(AddressHolding, Option<u64>, Rule)> {
    snapshot
        .addresses
        .iter()
        .filter(|a| !excluded.contains(&a.address))
        .map(|a| {
            let by = |name: &Option<String>| name.as_ref().and_then(|n| accounts.get(n)).copied();
            let (account, rule) = match (by(&a.username), by(&a.buyer)) {
                (Some(account), _) => (Some(account), Rule::Username),
                (None, Some(account)) => (Some(account), Rule::Buyer),
                (None, None) => (None, Rule::Nobody),
            };
            (a.clone(), account, rule)
        })
        .collect()
}
