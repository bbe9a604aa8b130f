//! What a chain and its assets are configured with: the node's URL, how much history the
//! watcher keeps against reorgs, the cold wallet, and per asset (ETH or a listed ERC-20) its
//! contract, decimals, confirmations, withdrawal fee and minimum, daily limits by
//! verification level and hot-wallet thresholds. Amounts are in the asset's smallest unit.

use alloy::primitives::Address;
use coss_types::AssetId;
use serde::{Deserialize, Serialize};

use crate::WalletError;

/// One asset on a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetConfig {
    /// The ticker in the exchange core (`A-Z 0-9`).
    pub symbol: String,
    /// Its id in the exchange core.
    pub asset: AssetId,
    /// The ERC-20 contract; `None` is the chain's own coin (ETH).
    pub token: Option<Address>,
    /// Decimal places of the smallest unit (ETH: 18).
    pub decimals: u8,
    /// Blocks (the deposit's included) before a deposit is credited or a withdrawal settles.
    pub confirmations: u64,
    /// Charged on top of each withdrawal; it pays the network fee and is never shared.
    pub withdrawal_fee: u128,
    /// The smallest withdrawal (before the fee).
    pub min_withdrawal: u128,
    /// Most that may be withdrawn per rolling 24 hours, by verification level (the last entry
    /// applies to every higher level; an empty list means no limit).
    pub daily_limits: Vec<u128>,
    /// Above this hot-wallet balance the excess moves to the cold wallet (`None`: never).
    pub hot_max: Option<u128>,
    /// What the hot wallet keeps after a move to the cold wallet.
    pub hot_keep: u128,
    /// Whether trading fees in this asset are shared with COSS holders (the DAO revenue
    /// share; default yes, as for every crypto asset). Fixed when the asset is listed.
    #[serde(default = "shared")]
    pub fees_shared: bool,
    /// The most a withdrawal of this asset may pay per gas (wei), bumps included. Above it
    /// nothing is signed or bumped: the sender alerts and waits for the network to calm, so a
    /// fee spike (or a stuck transaction re-bumped forever) can never drain the hot wallet.
    #[serde(default = "max_fee_per_gas")]
    pub max_fee_per_gas: u128,
    /// Above this amount a withdrawal waits for two operators' approval before it is signed,
    /// by verification level (the last entry applies to every higher level). Empty: half the
    /// level's daily limit.
    #[serde(default)]
    pub review_above: Vec<u128>,
}

fn shared() -> bool {
    true
}

/// The default fee cap (wei per gas): 500 gwei, well above any ordinary mainnet fee, far
/// below what a runaway bump reaches.
pub(crate) const DEFAULT_MAX_FEE_PER_GAS: u128 = 500_000_000_000;

fn max_fee_per_gas() -> u128 {
    DEFAULT_MAX_FEE_PER_GAS
}

fn cancel_after_ms() -> u64 {
    6 * 3_600_000
}

/// One chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainConfig {
    /// The chain id the node must report.
    pub chain_id: u64,
    /// The node: `http(s)://…`, `ws(s)://…` or the path of its IPC socket.
    pub rpc_url: String,
    /// Recent blocks the watcher keeps to detect reorgs; a deeper reorg halts crediting.
    pub reorg_bound: u64,
    /// Where the watcher starts on an empty database (`None`: the node's head then).
    pub start_block: Option<u64>,
    /// How often the node is polled when it cannot push new heads (ms).
    pub poll_interval_ms: u64,
    /// After this long unmined, a withdrawal's transaction is replaced with a higher fee (ms).
    pub stuck_after_ms: u64,
    /// After this long with none of its transactions mined, a withdrawal is cancelled on
    /// chain (a zero-value send to the hot wallet itself at its nonce), so that a transaction
    /// no node will mine never blocks the later nonces; once the cancel is mined, its hold is
    /// released (ms).
    #[serde(default = "cancel_after_ms")]
    pub cancel_after_ms: u64,
    /// The cold wallet (an address only: its key is never on the server).
    pub cold_address: Option<Address>,
    /// The assets.
    pub assets: Vec<AssetConfig>,
    /// The COSS token sale, whose purchases name each buyer's account (for the DAO revenue
    /// share's original-buyer rule); `None` when unknown.
    #[serde(default)]
    pub sale: Option<Address>,
}

/// ETH's core asset id in the development configuration.
pub const DEV_ETH: AssetId = AssetId(1);
/// COSS's core asset id in the development configuration.
pub const DEV_COSS: AssetId = AssetId(2);
/// tUSD's core asset id in the development configuration.
pub const DEV_TUSD: AssetId = AssetId(3);

impl ChainConfig {
    /// A development chain (anvil) with ETH, COSS and the test stablecoin tUSD: a few
    /// confirmations, small fees, limits of 10 / 1,000 / 100,000 units by verification level.
    #[must_use]
    pub fn development(chain_id: u64, rpc_url: &str, coss: Address, tusd: Address) -> Self {
        let eth = 10u128.pow(18);
        let coss_unit = 10u128.pow(8);
        let usd = 10u128.pow(6);
        Self {
            chain_id,
            rpc_url: rpc_url.to_owned(),
            reorg_bound: 64,
            start_block: Some(0),
            poll_interval_ms: 500,
            stuck_after_ms: 60_000,
            cancel_after_ms: cancel_after_ms(),
            cold_address: None,
            sale: None,
            assets: vec![
                AssetConfig {
                    symbol: "ETH".into(),
                    asset: DEV_ETH,
                    token: None,
                    decimals: 18,
                    confirmations: 3,
                    withdrawal_fee: eth / 2000,
                    min_withdrawal: eth / 1000,
                    daily_limits: vec![10 * eth, 1_000 * eth, 100_000 * eth],
                    hot_max: Some(100 * eth),
                    hot_keep: 20 * eth,
                    fees_shared: true,
                    max_fee_per_gas: max_fee_per_gas(),
                    review_above: Vec::new(),
                },
                AssetConfig {
                    symbol: "COSS".into(),
                    asset: DEV_COSS,
                    token: Some(coss),
                    decimals: 8,
                    confirmations: 3,
                    withdrawal_fee: 10 * coss_unit,
                    min_withdrawal: 20 * coss_unit,
                    daily_limits: vec![100_000 * coss_unit, 10_000_000 * coss_unit],
                    hot_max: None,
                    hot_keep: 0,
                    fees_shared: true,
                    max_fee_per_gas: max_fee_per_gas(),
                    review_above: Vec::new(),
                },
                AssetConfig {
                    symbol: "TUSD".into(),
                    asset: DEV_TUSD,
                    token: Some(tusd),
                    decimals: 6,
                    confirmations: 3,
                    withdrawal_fee: usd,
                    min_withdrawal: 10 * usd,
                    daily_limits: vec![10_000 * usd, 1_000_000 * usd],
                    hot_max: None,
                    hot_keep: 0,
                    fees_shared: true,
                    max_fee_per_gas: max_fee_per_gas(),
                    review_above: Vec::new(),
                },
            ],
        }
    }

    /// Checks the configuration: unique symbols, ids and contracts, 1 ≤ confirmations ≤
    /// the reorg bound, a minimum no smaller than one unit, `hot_keep ≤ hot_max`.
    pub fn validate(&self) -> Result<(), WalletError> {
        let bad = |why: String| Err(WalletError::Config(why));
        if self.reorg_bound < 2 {
            return bad("reorg_bound must be at least 2".into());
        }
        for (i, a) in self.assets.iter().enumerate() {
            let others = &self.assets[..i];
            if others
                .iter()
                .any(|o| o.symbol == a.symbol || o.asset == a.asset)
            {
                return bad(format!("asset {} is configured twice", a.symbol));
            }
            if others.iter().any(|o| o.token == a.token) {
                return bad(format!("{}: its contract is configured twice", a.symbol));
            }
            if a.confirmations == 0 || a.confirmations > self.reorg_bound {
                return bad(format!(
                    "{}: confirmations must be 1 to reorg_bound ({})",
                    a.symbol, self.reorg_bound
                ));
            }
            if a.min_withdrawal == 0 {
                return bad(format!("{}: min_withdrawal must be positive", a.symbol));
            }
            if a.hot_max.is_some_and(|max| a.hot_keep > max) {
                return bad(format!("{}: hot_keep exceeds hot_max", a.symbol));
            }
        }
        Ok(())
    }

    /// The asset with this symbol.
    #[must_use]
    pub fn asset(&self, symbol: &str) -> Option<&AssetConfig> {
        self.assets.iter().find(|a| a.symbol == symbol)
    }

    /// The chain's own coin.
    #[must_use]
    pub fn native(&self) -> Option<&AssetConfig> {
        self.assets.iter().find(|a| a.token.is_none())
    }
}

impl AssetConfig {
    /// Above what amount a withdrawal at a verification level waits for operators (`None`:
    /// never).
    #[must_use]
    pub fn review_threshold(&self, level: i64) -> Option<u128> {
        let index = usize::try_from(level.max(0)).unwrap_or(usize::MAX);
        match self.review_above.get(index).or(self.review_above.last()) {
            Some(threshold) => Some(*threshold),
            None => self.daily_limit(level).map(|limit| limit / 2),
        }
    }

    /// The daily limit at a verification level (`None`: unlimited).
    #[must_use]
    pub fn daily_limit(&self, level: i64) -> Option<u128> {
        let index = usize::try_from(level.max(0)).unwrap_or(usize::MAX);
        self.daily_limits
            .get(index)
            .or(self.daily_limits.last())
            .copied()
    }
}
