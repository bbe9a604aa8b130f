//! The DAO revenue share: every week (Sunday 05:00 UTC by default) the holders' half of the
//! fees goes to COSS holders, pro rata, automatically, fee-free and verifiably. The money moves
//! only in the exchange core (`coss-core`'s `CloseWeek`, `AddChainHoldings`, `SealWeek`,
//! `PayWeek`); this crate runs the week around it:
//! - [`Dao::configure`] keeps the core's schedule, minimum holding and share in line with the
//!   configuration;
//! - [`Dao::run_due`] takes the oldest closed week through its steps: the chain holdings read
//!   at the first block at or after the close ([`chain`]) are added in numbered parts, the
//!   week is sealed, its report — per asset pool, total holding, holders, paid, carried over,
//!   and the Merkle root of every payout ([`merkle`]) — is written to the database, and then it
//!   is paid in chunks. Each step is a journaled command of the core, and the core's cursor
//!   only moves forward, so a run killed at any point and started again pays everyone exactly
//!   once. Missed weeks are caught up in order.
//! - [`Dao::holder_week`] gives a holder their leaf and proof; [`merkle::verify`] checks it
//!   offline (`coss dao verify`).
//! - [`api`] serves `/api/v1/dao/…`.

pub mod api;
pub mod chain;
pub mod merkle;
pub mod week;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use alloy::primitives::Address;
use coss_clock::Clock;
use coss_core::{Command, EventKind, Exchange, RejectReason, WeekStage, WeekView};
use coss_engine::EngineHandle;
use coss_store::{DaoAssetRecord, DaoChainRecord, DaoReportRecord, DaoWeekRecord, Store};
use coss_types::{AccountId, Amount, AssetId, UnixMs};
use serde::Serialize;

pub use chain::{ChainReader, ChainSnapshot, Rule};
pub use merkle::{Hash, MerkleTree, ProofStep, leaf_hash, verify};
pub use week::{WEEK_MS, WeeklyClose, parse_week, week_name};

/// Why a DAO step failed.
#[derive(Debug, thiserror::Error)]
pub enum DaoError {
    /// Not a week name (`YYYY-Www`).
    #[error("not a week: {0} (expected YYYY-Www)")]
    InvalidWeek(String),
    /// Not a schedule (`SUN 05:00`).
    #[error("not a weekly close: {0} (expected e.g. SUN 05:00)")]
    InvalidSchedule(String),
    /// No report for that week.
    #[error("no such week")]
    UnknownWeek,
    /// A username must be 1–32 of a-z 0-9 . _ -.
    #[error("a username is 1 to 32 characters: a-z, 0-9, '.', '_' or '-'")]
    InvalidUsername,
    /// Another account has this username.
    #[error("this username belongs to another account")]
    UsernameTaken,
    /// Usernames are permanent.
    #[error("this account's username is already {0}")]
    HasUsername(String),
    /// The core refused a step.
    #[error("the exchange core refused: {0}")]
    Rejected(RejectReason),
    /// The chain could not be read.
    #[error("chain: {0}")]
    Chain(String),
    /// What the core paid differs from the report: a bug; the week stops here.
    #[error("week {week}: the core paid {paid} of asset {asset} but the report says {expected}")]
    Mismatch {
        /// The week.
        week: String,
        /// The asset.
        asset: u32,
        /// Paid by the core.
        paid: u128,
        /// In the report.
        expected: u128,
    },
    /// The engine.
    #[error("engine: {0}")]
    Engine(#[from] coss_engine::EngineError),
    /// The database.
    #[error("database: {0}")]
    Store(#[from] coss_store::StoreError),
}

impl DaoError {
    /// A stable, machine-readable code.
    #[must_use]
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidWeek(_) => "dao.invalid_week",
            Self::InvalidSchedule(_) => "dao.invalid_schedule",
            Self::UnknownWeek => "dao.unknown_week",
            Self::InvalidUsername => "dao.invalid_username",
            Self::UsernameTaken => "dao.username_taken",
            Self::HasUsername(_) => "dao.has_username",
            Self::Rejected(_) => "dao.rejected",
            Self::Chain(_) => "dao.chain",
            Self::Mismatch { .. } => "dao.mismatch",
            Self::Engine(_) => "dao.engine",
            Self::Store(_) => "dao.store",
        }
    }
}

/// How the revenue share runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaoConfig {
    /// The COSS asset in the core.
    pub coss: AssetId,
    /// When weeks close.
    pub close: WeeklyClose,
    /// The holders' share of shareable fees (parts per million; 500,000 = 50%).
    pub share_ppm: u32,
    /// Accounts holding less (platform plus chain) get nothing that week (COSS units).
    pub min_holding: u128,
    /// Holders per payout command.
    pub pay_chunk: u32,
    /// A chain transfer smaller than this (COSS units) passes no original buyer to a fresh
    /// address, so nobody can capture an address's attribution by dusting it first.
    pub origin_dust: u128,
}

impl DaoConfig {
    /// Sunday 05:00 UTC, 50%, at least 1 COSS (8 decimals), 2,000 holders per command,
    /// transfers below 1 COSS pass no origin.
    #[must_use]
    pub fn new(coss: AssetId) -> Self {
        Self {
            coss,
            close: WeeklyClose::default(),
            share_ppm: coss_core::DEFAULT_HOLDERS_SHARE_PPM,
            min_holding: 100_000_000,
            pay_chunk: 2_000,
            origin_dust: 100_000_000,
        }
    }
}

/// Where on-chain holdings come from, and which addresses are the platform's own.
#[derive(Debug, Clone)]
pub struct ChainSource {
    /// The reader.
    pub reader: ChainReader,
    /// The chain id (deposit addresses are per chain).
    pub chain_id: i64,
    /// Hot and cold wallets (deposit addresses are read from the database each week).
    pub platform: Vec<Address>,
}

/// One step the runner made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Progress {
    /// The week.
    pub week: String,
    /// What happened: `sealed`, `reported`, `paid`, `waiting_for_chain`.
    pub step: &'static str,
}

/// A holder's view of one week, with what they need to check it offline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HolderWeek {
    /// The week, e.g. `2026-W48`.
    pub week: String,
    /// Its close (Unix ms).
    pub close_ms: u64,
    /// The account (exchange account number).
    pub account: u64,
    /// The holding counted (COSS smallest units, decimal digits).
    pub holding: String,
    /// Payouts: asset id and amount (smallest units), ascending by asset.
    pub payouts: Vec<HolderPayout>,
    /// Position of the leaf.
    pub leaf_index: u64,
    /// The leaf (hex).
    pub leaf: String,
    /// Partner hashes from the leaf up.
    #[schema(value_type = Vec<Object>)]
    pub proof: Vec<ProofStep>,
    /// The week's root (hex).
    pub root: String,
}

/// One payout of a holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HolderPayout {
    /// Asset id.
    pub asset: u32,
    /// Asset symbol.
    pub symbol: String,
    /// Amount, smallest units.
    pub amount: String,
    /// Amount in whole units.
    pub value: String,
}

impl HolderWeek {
    /// Recomputes the leaf from the holder's data and checks it against the proof and root.
    #[must_use]
    pub fn verify(&self) -> bool {
        let Ok(holding) = self.holding.parse::<u128>() else {
            return false;
        };
        let mut payouts = Vec::with_capacity(self.payouts.len());
        for p in &self.payouts {
            let Ok(amount) = p.amount.parse::<u128>() else {
                return false;
            };
            payouts.push((AssetId(p.asset), amount));
        }
        let leaf = leaf_hash(self.close_ms, self.account, holding, &payouts);
        let mut root = [0u8; 32];
        if hex::decode_to_slice(self.root.trim_start_matches("0x"), &mut root).is_err() {
            return false;
        }
        hex::encode(leaf) == self.leaf && verify(leaf, &self.proof, &root)
    }
}

/// A report being written.
type PendingReport = tokio::task::JoinHandle<Result<bool, coss_store::StoreError>>;

/// Waits for a report's write; `true` if it was written now.
async fn saved(pending: PendingReport) -> Result<bool, DaoError> {
    match pending.await {
        Ok(written) => Ok(written?),
        Err(e) => Err(DaoError::Chain(format!("the report writer failed: {e}"))),
    }
}

/// A week's computed payouts: per holder the nonzero amounts, per asset the totals.
struct Computed {
    leaves: Vec<Hash>,
    assets: Vec<DaoAssetRecord>,
}

/// The payouts of one holder of a week.
/// Each pool divided by the total once: (asset, pool / total, pool % total).
fn divide(pools: &[(AssetId, u128)], total: u128) -> Vec<(AssetId, u128, u128)> {
    pools
        .iter()
        .map(|&(asset, pool)| match total {
            0 => (asset, 0, 0),
            _ => (asset, pool / total, pool % total),
        })
        .collect()
}

/// A holder's non-zero payouts in pool order: what the core pays it and what its leaf
/// commits to.
fn payouts_into(
    divided: &[(AssetId, u128, u128)],
    holding: u128,
    total: u128,
    out: &mut Vec<(AssetId, u128)>,
) {
    out.clear();
    out.extend(
        divided
            .iter()
            .map(|&(asset, q, r)| (asset, coss_core::dao_share_of(q, r, holding, total)))
            .filter(|&(_, amount)| amount > 0),
    );
}

fn compute(close_ms: u64, holders: &[(AccountId, u128)], pools: &[(AssetId, u128)]) -> Computed {
    let total: u128 = holders.iter().map(|&(_, h)| h).sum();
    let divided = divide(pools, total);
    // Leaves and sums for a run of holders; two runs in parallel (the machine has two cores
    // and the engine is idle while the report is made).
    let run = |part: &[(AccountId, u128)]| {
        let mut paid = vec![(0u128, 0i64); pools.len()];
        let mut leaves = Vec::with_capacity(part.len());
        let mut payouts = Vec::with_capacity(pools.len());
        for &(account, holding) in part {
            payouts_into(&divided, holding, total, &mut payouts);
            // The payouts follow the pools' order, zeros left out.
            let mut at = 0;
            for &(asset, amount) in &payouts {
                while divided[at].0 != asset {
                    at += 1;
                }
                paid[at].0 += amount;
                paid[at].1 += 1;
            }
            leaves.push(leaf_hash(close_ms, account.0, holding, &payouts));
        }
        (leaves, paid)
    };
    let (first, second) = holders.split_at(holders.len() / 2);
    let ((mut leaves, mut paid), (more, paid_more)) = std::thread::scope(|scope| {
        let other = scope.spawn(|| run(second));
        let mine = run(first);
        match other.join() {
            Ok(theirs) => (mine, theirs),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    });
    leaves.extend(more);
    for (sum, extra) in paid.iter_mut().zip(paid_more) {
        sum.0 += extra.0;
        sum.1 += extra.1;
    }
    let assets = pools
        .iter()
        .zip(paid)
        .map(|(&(asset, pool), (paid, credited))| DaoAssetRecord {
            asset: i64::from(asset.0),
            pool: Amount(pool),
            total: Amount(total),
            holders: credited,
            paid: Amount(paid),
            carried: Amount(pool - paid),
        })
        .collect();
    Computed { leaves, assets }
}

/// The whole tree of a week, while its report is made.
#[derive(Debug)]
struct WeekTree {
    close_ms: u64,
    tree: MerkleTree,
    holders: Vec<(AccountId, u128)>,
    pools: Vec<(AssetId, u128)>,
    /// The report's per-asset lines.
    assets: Vec<DaoAssetRecord>,
}

/// Leaves per block of a week's tree: a proof rebuilds only its leaf's block (from the stored
/// holdings of that block) and takes the rest from the week's [`WeekTop`].
const BLOCK_LEVELS: usize = 10;

/// What a reported week keeps in memory for proofs: its tree above the blocks (one hash per
/// 1,024 holders), its total and its pools. Built once per week and process.
#[derive(Debug)]
struct WeekTop {
    total: u128,
    pools: Vec<(AssetId, u128)>,
    top: MerkleTree,
}

/// Most weeks whose tops are kept (about 31 KB each at a million holders).
const TOPS_KEPT: usize = 520;

struct Inner {
    engine: EngineHandle,
    store: Store,
    chain: Option<ChainSource>,
    config: DaoConfig,
    clock: Clock,
    /// Reported weeks' tops, by close.
    tops: Mutex<HashMap<u64, Arc<WeekTop>>>,
    /// Held while a week's top is built, so concurrent first requests build it once.
    building: tokio::sync::Mutex<()>,
    /// Whole trees built from the database for proofs (a figure for tests and metrics).
    trees_built: std::sync::atomic::AtomicU64,
    /// Chain holdings read for the week being collected, kept for its report.
    chain_read: Mutex<Option<(u64, u64, Vec<DaoChainRecord>)>>,
}

/// The DAO runner and query service (cheap to clone).
#[derive(Clone)]
pub struct Dao {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Dao {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dao")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// A username as holders give it to the contract: 1–32 of `a-z 0-9 . _ -`.
#[must_use]
pub fn valid_username(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

impl Dao {
    /// The runner over the engine and the database; `chain` is where on-chain holdings come
    /// from (`None`: platform holdings only); `clock` says when the schedule starts and when
    /// reports are made and paid.
    #[must_use]
    pub fn new(
        engine: EngineHandle,
        store: Store,
        chain: Option<ChainSource>,
        config: DaoConfig,
        clock: Clock,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                store,
                chain,
                config,
                clock,
                tops: Mutex::new(HashMap::new()),
                building: tokio::sync::Mutex::new(()),
                trees_built: std::sync::atomic::AtomicU64::new(0),
                chain_read: Mutex::new(None),
            }),
        }
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &DaoConfig {
        &self.inner.config
    }

    /// The database.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The engine.
    #[must_use]
    pub fn engine(&self) -> &EngineHandle {
        &self.inner.engine
    }

    async fn submit(&self, command: Command) -> Result<Vec<EventKind>, DaoError> {
        let receipt = self.inner.engine.submit_async(command).await?;
        receipt.outcome.map_err(DaoError::Rejected)?;
        Ok(receipt.events.into_iter().map(|e| e.kind).collect())
    }

    /// Brings the core in line with the configuration: the holders' share, and the schedule
    /// (a changed close time, minimum or COSS asset takes effect from the next close).
    pub async fn configure(&self) -> Result<(), DaoError> {
        let now_ms = self.inner.clock.now().0;
        let config = self.inner.config.clone();
        let (share, schedule, last_close) = self
            .inner
            .engine
            .read_async(|ex: &Exchange| {
                (
                    ex.holders_share_ppm(),
                    ex.dao_schedule(),
                    ex.dao_weeks().last().map(|w| w.close_ms),
                )
            })
            .await?;
        if share != config.share_ppm {
            self.submit(Command::SetHoldersShare {
                share_ppm: config.share_ppm,
            })
            .await?;
        }
        let in_line = schedule.is_some_and(|s| {
            s.coss == config.coss
                && s.min_holding.0 == config.min_holding
                && s.period_ms == WEEK_MS
                && config.close.next_after(s.next_close_ms - 1) == s.next_close_ms
        });
        if !in_line {
            let after = now_ms.max(last_close.unwrap_or(0));
            self.submit(Command::SetDaoSchedule(coss_core::DaoSchedule {
                coss: config.coss,
                next_close_ms: config.close.next_after(after),
                period_ms: WEEK_MS,
                min_holding: Amount(config.min_holding),
            }))
            .await?;
        }
        Ok(())
    }

    /// Runs every step that is due: chain holdings, seals, reports and payouts, oldest week
    /// first, until nothing is left or the chain has not reached a close yet. (The engine
    /// closes due weeks itself, before it answers the read of the open weeks.)
    pub async fn run_due(&self) -> Result<Vec<Progress>, DaoError> {
        let mut progress = Vec::new();
        loop {
            let weeks = self.open_weeks().await?;
            let Some(week) = weeks.into_iter().next() else {
                break;
            };
            let name = week_name(week.close_ms);
            match week.stage {
                WeekStage::Collecting => {
                    if !self.collect(&week).await? {
                        progress.push(Progress {
                            week: name,
                            step: "waiting_for_chain",
                        });
                        break;
                    }
                    progress.push(Progress {
                        week: name,
                        step: "sealed",
                    });
                }
                WeekStage::Sealed => {
                    if let Some(pending) = self.report(&week).await? {
                        progress.push(Progress {
                            week: name.clone(),
                            step: "reported",
                        });
                        self.pay(&week, None, Some(pending)).await?;
                    } else {
                        self.pay(&week, None, None).await?;
                    }
                    progress.push(Progress {
                        week: name,
                        step: "paid",
                    });
                }
            }
        }
        Ok(progress)
    }

    /// Takes the oldest open week's snapshot if it has not been taken (due weeks are closed
    /// by the engine): chain holdings added and sealed (`coss dao snapshot`). Returns the open
    /// weeks.
    pub async fn snapshot(&self) -> Result<Vec<WeekView>, DaoError> {
        let weeks = self.open_weeks().await?;
        if let Some(week) = weeks.first().filter(|w| w.stage == WeekStage::Collecting)
            && !self.collect(week).await?
        {
            return Err(DaoError::Chain(format!(
                "the chain has no block at or after the close of {} yet",
                week_name(week.close_ms)
            )));
        }
        self.open_weeks().await
    }

    /// Reports and pays `week` (`coss dao distribute`): it must be the oldest open week, and
    /// sealed. `true` once paid out (also when it was paid before).
    pub async fn distribute(&self, week: &str) -> Result<bool, DaoError> {
        let week = parse_week(week)?;
        if let Some(record) = self.inner.store.dao_week(&week).await?
            && record.paid_at.is_some()
        {
            return Ok(true);
        }
        let weeks = self.open_weeks().await?;
        let Some(oldest) = weeks.first() else {
            return Err(DaoError::UnknownWeek);
        };
        if week_name(oldest.close_ms) != week {
            return Err(if weeks.iter().any(|w| week_name(w.close_ms) == week) {
                DaoError::Rejected(RejectReason::EarlierWeekOpen)
            } else {
                DaoError::UnknownWeek
            });
        }
        if oldest.stage != WeekStage::Sealed {
            return Err(DaoError::Rejected(RejectReason::WeekNotSealed));
        }
        self.report_and_pay(oldest, None).await
    }

    /// The weeks closed and not yet paid out, oldest first.
    pub async fn open_weeks(&self) -> Result<Vec<WeekView>, DaoError> {
        Ok(self
            .inner
            .engine
            .read_async(|ex: &Exchange| ex.dao_weeks())
            .await?)
    }

    /// Reads the chain holdings of a week: `None` while the chain has not reached the close.
    async fn read_chain(
        &self,
        close_ms: u64,
    ) -> Result<Option<(u64, Vec<(AccountId, u128)>, Vec<DaoChainRecord>)>, DaoError> {
        let Some(source) = &self.inner.chain else {
            return Ok(Some((0, Vec::new(), Vec::new())));
        };
        let Some(block) = source.reader.block_at_or_after(close_ms).await? else {
            return Ok(None);
        };
        let mut excluded: HashSet<Address> = source.platform.iter().copied().collect();
        for (address, _, _) in self
            .inner
            .store
            .deposit_addresses_since(source.chain_id, 0)
            .await?
        {
            if let Ok(address) = address.parse::<Address>() {
                excluded.insert(address);
            }
        }
        let snapshot = source
            .reader
            .snapshot(block, &excluded, self.inner.config.origin_dust)
            .await?;
        let accounts: HashMap<String, (u64, i64)> = self
            .inner
            .store
            .usernames()
            .await?
            .into_iter()
            .filter_map(|(name, user, claimed)| {
                coss_identity::exchange_account(user).map(|a| (name, (a.0, claimed)))
            })
            .collect();
        let mut per_account: std::collections::BTreeMap<u64, u128> =
            std::collections::BTreeMap::new();
        let mut records = Vec::new();
        for (holding, account, rule) in chain::attribute(&snapshot, &excluded, &accounts) {
            if let Some(account) = account {
                *per_account.entry(account).or_default() += holding.amount;
            }
            records.push(DaoChainRecord {
                address: holding.address.to_checksum(None),
                amount: Amount(holding.amount),
                account: account.map(|a| i64::try_from(a).unwrap_or(i64::MAX)),
                rule: rule.name().to_owned(),
            });
        }
        let holdings = per_account
            .into_iter()
            .map(|(a, h)| (AccountId(a), h))
            .collect();
        Ok(Some((block, holdings, records)))
    }

    /// Adds the chain holdings (the parts not yet accepted) and seals; `false` while the
    /// chain has not reached the close.
    async fn collect(&self, week: &WeekView) -> Result<bool, DaoError> {
        let Some((block, holdings, records)) = self.read_chain(week.close_ms).await? else {
            return Ok(false);
        };
        let parts: Vec<&[(AccountId, u128)]> =
            holdings.chunks(coss_core::MAX_CHAIN_HOLDINGS).collect();
        for (number, part) in parts.iter().enumerate().skip(week.chain_parts as usize) {
            self.submit(Command::AddChainHoldings {
                close_ms: week.close_ms,
                part: u32::try_from(number).unwrap_or(u32::MAX),
                holdings: part.iter().map(|&(a, h)| (a, Amount(h))).collect(),
            })
            .await?;
        }
        self.submit(Command::SealWeek {
            close_ms: week.close_ms,
            chain_parts: u32::try_from(parts.len()).unwrap_or(u32::MAX),
        })
        .await?;
        if let Ok(mut read) = self.inner.chain_read.lock() {
            *read = Some((week.close_ms, block, records));
        }
        Ok(true)
    }

    async fn sealed_week(&self, close_ms: u64) -> Result<Arc<WeekTree>, DaoError> {
        let (holders, pools) = self
            .inner
            .engine
            .read_async(move |ex: &Exchange| {
                let pools = ex
                    .dao_weeks()
                    .into_iter()
                    .find(|w| w.close_ms == close_ms)
                    .map(|w| w.pools);
                (ex.dao_holders(close_ms), pools)
            })
            .await?;
        let (Some(holders), Some(pools)) = (holders, pools) else {
            return Err(DaoError::UnknownWeek);
        };
        let holders: Vec<(AccountId, u128)> = holders.into_iter().map(|(a, h)| (a, h.0)).collect();
        let pools: Vec<(AssetId, u128)> = pools.into_iter().map(|p| (p.asset, p.pool.0)).collect();
        Ok(Arc::new(build_tree(close_ms, holders, pools).await))
    }

    /// Starts writing a sealed week's report if it is not there yet (`None` if it is): the
    /// payouts are computed and the tree built here; the database write (a million holder
    /// rows take seconds) runs on while the payout starts, and the payout waits for it
    /// before its last chunk, which ends the week in the core.
    async fn report(&self, week: &WeekView) -> Result<Option<PendingReport>, DaoError> {
        if self
            .inner
            .store
            .dao_week_at(UnixMs(week.close_ms).as_i64())
            .await?
            .is_some()
        {
            return Ok(None);
        }
        let close_ms = week.close_ms;
        let tree = self.sealed_week(close_ms).await?;
        // The chain holdings read for this week, or read again (the same block gives the
        // same answer) after a restart.
        let kept = self
            .inner
            .chain_read
            .lock()
            .ok()
            .and_then(|mut r| r.take())
            .filter(|(close, _, _)| *close == close_ms);
        let (block, records) = match kept {
            Some((_, block, records)) => (block, records),
            None => match self.read_chain(close_ms).await? {
                Some((block, _, records)) => (block, records),
                None => (0, Vec::new()),
            },
        };
        let total: u128 = tree.holders.iter().map(|&(_, h)| h).sum();
        let record = DaoReportRecord {
            week: DaoWeekRecord {
                close_ms: UnixMs(close_ms).as_i64(),
                week: week_name(close_ms),
                block_number: self
                    .inner
                    .chain
                    .as_ref()
                    .map(|_| i64::try_from(block).unwrap_or(i64::MAX)),
                holders: i64::try_from(tree.holders.len()).unwrap_or(i64::MAX),
                total: Amount(total),
                root: hex::encode(tree.tree.root()),
                created_at: self.inner.clock.now().as_i64(),
                paid_at: None,
            },
            assets: tree.assets.clone(),
            holders: tree
                .holders
                .iter()
                .map(|&(a, h)| (i64::try_from(a.0).unwrap_or(i64::MAX), Amount(h)))
                .collect(),
            chain: records,
        };
        self.remember(&tree);
        let store = self.inner.store.clone();
        Ok(Some(tokio::spawn(async move {
            store.save_dao_report(&record).await
        })))
    }

    /// Writes a sealed week's report (if not yet written) and pays it, to the end or (for
    /// tests and operators' drills) for at most `max_commands` payout commands; `true` once the
    /// week is paid out.
    pub async fn report_and_pay(
        &self,
        week: &WeekView,
        max_commands: Option<u32>,
    ) -> Result<bool, DaoError> {
        let pending = self.report(week).await?;
        self.pay(week, max_commands, pending).await
    }

    /// Pays the sealed oldest week to the end (or stops after `max_commands` payout
    /// commands).
    async fn pay(
        &self,
        week: &WeekView,
        max_commands: Option<u32>,
        mut pending: Option<PendingReport>,
    ) -> Result<bool, DaoError> {
        let name = week_name(week.close_ms);
        let chunk = self.inner.config.pay_chunk;
        let mut left = week.holders.saturating_sub(week.paid_holders);
        let mut sent = 0u32;
        let mut report = Vec::new();
        loop {
            if max_commands.is_some_and(|max| sent >= max) {
                if let Some(pending) = pending.take() {
                    saved(pending).await?;
                }
                return Ok(false);
            }
            // The last chunk ends the week in the core (its holders are gone from there):
            // the report must be in the database before it.
            if left <= chunk {
                if let Some(pending) = pending.take() {
                    saved(pending).await?;
                }
                if report.is_empty() {
                    report = self
                        .inner
                        .store
                        .dao_week_assets(UnixMs(week.close_ms).as_i64())
                        .await?;
                }
            }
            // The receipt holds a balance change per credit: look only for the DAO's events.
            let receipt = self
                .inner
                .engine
                .submit_async(Command::PayWeek {
                    close_ms: week.close_ms,
                    max_holders: self.inner.config.pay_chunk,
                })
                .await?;
            receipt.outcome.map_err(DaoError::Rejected)?;
            sent += 1;
            left = left.saturating_sub(chunk);
            let mut done = false;
            // The DAO's own events come first, then one balance change per credit.
            let own = receipt
                .events
                .iter()
                .map(|e| &e.kind)
                .take_while(|k| !matches!(k, EventKind::BalanceChanged { .. }));
            for event in own {
                match *event {
                    EventKind::DaoAssetPaid { asset, paid, .. } => {
                        let expected = report
                            .iter()
                            .find(|r| r.asset == i64::from(asset.0))
                            .map_or(0, |r| r.paid.0);
                        if expected != paid.0 {
                            tracing::error!(week = %name, asset = asset.0, "DAO payout differs from its report");
                            return Err(DaoError::Mismatch {
                                week: name,
                                asset: asset.0,
                                paid: paid.0,
                                expected,
                            });
                        }
                    }
                    EventKind::WeekPaid { .. } => done = true,
                    _ => {}
                }
            }
            if done {
                self.inner
                    .store
                    .mark_dao_paid(
                        UnixMs(week.close_ms).as_i64(),
                        self.inner.clock.now().as_i64(),
                    )
                    .await?;
                tracing::info!(week = %name, "DAO week paid out");
                return Ok(true);
            }
        }
    }

    fn remember(&self, tree: &WeekTree) {
        let top = WeekTop {
            total: tree.holders.iter().map(|&(_, h)| h).sum(),
            pools: tree.pools.clone(),
            top: tree.tree.above(BLOCK_LEVELS),
        };
        self.keep(tree.close_ms, Arc::new(top));
    }

    fn keep(&self, close_ms: u64, top: Arc<WeekTop>) {
        if let Ok(mut tops) = self.inner.tops.lock() {
            if tops.len() >= TOPS_KEPT
                && let Some(&oldest) = tops.keys().min()
            {
                tops.remove(&oldest);
            }
            tops.insert(close_ms, top);
        }
    }

    /// How many whole week trees were rebuilt from the database for proofs.
    #[must_use]
    pub fn trees_built(&self) -> u64 {
        self.inner
            .trees_built
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The top of a reported week: kept, or built once from the database (under a lock, so
    /// concurrent first requests build it once) and checked against the stored root.
    async fn top(&self, record: &DaoWeekRecord) -> Result<Arc<WeekTop>, DaoError> {
        let close_ms = UnixMs::from_i64(record.close_ms).0;
        let kept = |dao: &Self| {
            dao.inner
                .tops
                .lock()
                .ok()
                .and_then(|t| t.get(&close_ms).cloned())
        };
        if let Some(top) = kept(self) {
            return Ok(top);
        }
        let _building = self.inner.building.lock().await;
        if let Some(top) = kept(self) {
            return Ok(top);
        }
        let holders = self
            .inner
            .store
            .dao_holdings(record.close_ms)
            .await?
            .into_iter()
            .map(|(a, h)| (AccountId(u64::try_from(a).unwrap_or(0)), h.0))
            .collect();
        let pools = self.pools_of(record.close_ms).await?;
        let tree = build_tree(close_ms, holders, pools).await;
        self.inner
            .trees_built
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if hex::encode(tree.tree.root()) != record.root {
            return Err(DaoError::Chain(format!(
                "week {}: the stored holdings do not give the stored root",
                record.week
            )));
        }
        self.remember(&tree);
        kept(self).ok_or_else(|| DaoError::Chain("the week's tree was not kept".into()))
    }

    async fn pools_of(&self, close_ms: i64) -> Result<Vec<(AssetId, u128)>, DaoError> {
        Ok(self
            .inner
            .store
            .dao_week_assets(close_ms)
            .await?
            .into_iter()
            .map(|a| (AssetId(u32::try_from(a.asset).unwrap_or(0)), a.pool.0))
            .collect())
    }

    /// A holder's leaf, payouts and proof for a reported week (`None`: not a holder then).
    /// The holder is looked up first (one indexed row), so asking costs a non-holder
    /// nothing more; a holder's proof rebuilds only its leaf's block of 1,024 holdings and
    /// takes the rest from the week's kept top.
    pub async fn holder_week(
        &self,
        account: AccountId,
        week: &str,
        symbols: &HashMap<u32, (String, u8)>,
    ) -> Result<Option<HolderWeek>, DaoError> {
        let week = parse_week(week)?;
        let record = self
            .inner
            .store
            .dao_week(&week)
            .await?
            .ok_or(DaoError::UnknownWeek)?;
        let Some((leaf, holding)) = self
            .inner
            .store
            .dao_holding_of(
                i64::try_from(account.0).unwrap_or(i64::MAX),
                record.close_ms,
            )
            .await?
        else {
            return Ok(None);
        };
        let top = self.top(&record).await?;
        let close_ms = UnixMs::from_i64(record.close_ms).0;
        let index = usize::try_from(leaf).map_err(|_| DaoError::UnknownWeek)?;
        let block = 1usize << BLOCK_LEVELS;
        let start = index / block * block;
        let rows = self
            .inner
            .store
            .dao_holdings_between(
                record.close_ms,
                i64::try_from(start).unwrap_or(i64::MAX),
                i64::try_from(start + block).unwrap_or(i64::MAX),
            )
            .await?;
        let divided = divide(&top.pools, top.total);
        let mut payouts = Vec::new();
        let mut leaves = Vec::with_capacity(rows.len());
        for (holder, amount) in rows {
            payouts_into(&divided, amount.0, top.total, &mut payouts);
            let holder = u64::try_from(holder).unwrap_or(0);
            leaves.push(leaf_hash(close_ms, holder, amount.0, &payouts));
        }
        let own = MerkleTree::build(leaves);
        let mut proof = own.proof(index - start).unwrap_or_default();
        proof.extend(top.top.proof(index / block).unwrap_or_default());
        payouts_into(&divided, holding.0, top.total, &mut payouts);
        let payouts = payouts
            .into_iter()
            .map(|(asset, amount)| {
                let (symbol, decimals) = symbols.get(&asset.0).cloned().unwrap_or_default();
                HolderPayout {
                    asset: asset.0,
                    symbol,
                    amount: amount.to_string(),
                    value: Amount(amount).to_decimal_string(decimals),
                }
            })
            .collect();
        Ok(Some(HolderWeek {
            week: record.week.clone(),
            close_ms,
            account: account.0,
            holding: holding.0.to_string(),
            payouts,
            leaf_index: index as u64,
            leaf: hex::encode(own.leaf(index - start).unwrap_or([0; 32])),
            proof,
            root: record.root,
        }))
    }
}

async fn build_tree(
    close_ms: u64,
    holders: Vec<(AccountId, u128)>,
    pools: Vec<(AssetId, u128)>,
) -> WeekTree {
    let work = move || {
        let computed = compute(close_ms, &holders, &pools);
        WeekTree {
            close_ms,
            tree: MerkleTree::build(computed.leaves),
            holders,
            pools,
            assets: computed.assets,
        }
    };
    match tokio::task::spawn_blocking(work).await {
        Ok(tree) => tree,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}
