//! The wallets: users deposit ETH and listed ERC-20 tokens to their own HD-derived address,
//! withdraw through the hot wallet, and send each other funds inside the platform. Balances
//! move only through the exchange core (`Deposit`, `WithdrawHold` / `Confirm` / `Release`,
//! `Transfer`); this crate is the chain side that decides when. The watcher follows blocks
//! from the last recorded one, checks each block's parent against its stored recent chain
//! (so a reorg of any depth up to the bound is seen, also after a restart; deeper halts
//! crediting), and credits a deposit only after its asset's confirmations, idempotently by
//! (chain, transaction, position); one the core refuses ends `refused`. A withdrawal is held
//! in the core, signed with the next hot-wallet nonce (only if the hot wallet can pay it and
//! its gas, within the asset's fee cap) and stored (raw bytes) before it is broadcast, so a
//! crash can neither send it twice nor lose it; it settles after confirmations, stuck
//! transactions are replaced with a higher fee or, after long enough, cancelled at their
//! nonce, and its hold is released only when the chain shows none of its transactions can be
//! mined. The hot wallet's own moves share the nonce allocator and are recorded and resent
//! the same way. The node is reached over
//! IPC, WebSocket or HTTP by URL, with retries, new-head subscriptions where the transport has
//! them and polling otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use alloy::primitives::Address;
use alloy::providers::DynProvider;
use alloy::signers::local::PrivateKeySigner;
use coss_clock::Clock;
use coss_core::{Command, RejectReason};
use coss_engine::EngineHandle;
use coss_identity::{Accounts, IdentityError};
use coss_store::{SeedRecord, Store, StoreError};
use coss_types::{AccountId, Amount, AssetId, RequestId, UserId};
use zeroize::Zeroizing;

pub mod api;
pub mod chain;
mod config;
pub mod dev;
pub mod hd;
mod sweep;
mod transfer;
mod watcher;
mod withdraw;

pub use config::{AssetConfig, ChainConfig, DEV_COSS, DEV_ETH, DEV_TUSD};
pub use sweep::SweepReport;
pub use transfer::TransferRequest;
pub use watcher::{AddressBook, Owner, SyncReport};
pub use withdraw::{
    CoreHold, ProcessReport, RESERVE_ADDRESSES, Reserve, WithdrawalRequest, parse_address,
};

/// Everything that can go wrong, with a stable `code()`. Messages never contain keys.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The configuration is inconsistent.
    #[error("wallet configuration: {0}")]
    Config(String),
    /// A key could not be made or derived.
    #[error("wallet keys: {0}")]
    Keys(&'static str),
    /// The node failed or could not be reached.
    #[error("node: {0}")]
    Chain(String),
    /// The node serves another chain than configured.
    #[error("the node serves chain {actual}, not the configured {expected}")]
    WrongChain {
        /// Configured.
        expected: u64,
        /// Reported.
        actual: u64,
    },
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine is not running.
    #[error("engine: {0}")]
    Engine(#[from] coss_engine::EngineError),
    /// Authentication or the second factor failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// No such asset on this chain.
    #[error("unknown asset {0:?}")]
    UnknownAsset(String),
    /// The amount is not a positive decimal with at most the asset's decimals.
    #[error("invalid amount: {0}")]
    InvalidAmount(String),
    /// Not a 20-byte hex address.
    #[error("invalid address: expected 0x and 40 hex digits")]
    InvalidAddress,
    /// Mixed-case address whose EIP-55 checksum is wrong (probably a typo).
    #[error("address checksum (EIP-55) does not match: check the address")]
    BadChecksum,
    /// The address belongs to the platform: send it as an internal transfer.
    #[error("that is a COSS deposit address: use an internal transfer")]
    InternalAddress,
    /// Below the asset's minimum withdrawal.
    #[error("below the minimum withdrawal of {minimum}")]
    BelowMinimum {
        /// The minimum, in whole units.
        minimum: String,
    },
    /// Over the daily withdrawal limit of the account's verification level.
    #[error("over the 24-hour withdrawal limit of {limit} (already used {used})")]
    LimitExceeded {
        /// The limit, in whole units.
        limit: String,
        /// Already withdrawn in the window, in whole units.
        used: String,
    },
    /// The account withdraws only to its allow-list, and this address is not on it.
    #[error("the address is not on the account's withdrawal allow-list")]
    NotAllowListed,
    /// Not enough available balance (amount plus fee).
    #[error("insufficient balance")]
    InsufficientBalance,
    /// The exchange core refused.
    #[error("refused: {0}")]
    Rejected(RejectReason),
    /// No such withdrawal (of this user).
    #[error("no such withdrawal")]
    NotFound,
    /// The withdrawal is already signed or finished.
    #[error("the withdrawal can no longer be cancelled (status {0})")]
    NotCancellable(coss_store::WithdrawalStatus),
    /// No verified account with that email.
    #[error("no COSS account with that email")]
    UnknownRecipient,
    /// Sender and recipient are the same account.
    #[error("cannot transfer to yourself")]
    SameAccount,
    /// The exchange core holds a different withdrawal or transfer under this one's request
    /// id: the database and the core disagree, and the wallet halts until an operator looks.
    #[error("the exchange core disagrees with the wallet's record; the wallet is halted")]
    HoldMismatch,
    /// An operator pulled the kill switch for this asset (or for all): no withdrawal is
    /// accepted or signed until it is released.
    #[error("withdrawals of this asset are halted by the operators; try again later")]
    WithdrawalsHalted,
    /// The wallet is halted until an operator clears it (a deep reorganisation, or the
    /// database and the core disagreeing): nothing leaves an account meanwhile.
    #[error("the wallet is halted for an operator's check; try again later")]
    Halted,
    /// Test funds exist only on the platform's own local chain.
    #[error("test funds exist only on the platform's own local chain")]
    NoTestFunds,
    /// Test funds were sent to this account moments ago.
    #[error("test funds were sent a moment ago; ask again in {retry_after_s} s")]
    TestFundsTooSoon {
        /// Seconds until the next request is taken.
        retry_after_s: u64,
    },
    /// The idempotency key is empty or longer than 64 characters.
    #[error("the idempotency key must be 1 to 64 characters")]
    InvalidIdempotencyKey,
}

impl WalletError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Config(_) => "wallet_config",
            Self::Keys(_) => "wallet_keys",
            Self::Chain(_) => "chain_unavailable",
            Self::WrongChain { .. } => "wrong_chain",
            Self::Store(e) => e.code(),
            Self::Engine(_) => "engine_unavailable",
            Self::Identity(e) => e.code(),
            Self::UnknownAsset(_) => "unknown_asset",
            Self::InvalidAmount(_) => "invalid_amount",
            Self::InvalidAddress => "invalid_address",
            Self::BadChecksum => "bad_address_checksum",
            Self::InternalAddress => "internal_address",
            Self::BelowMinimum { .. } => "below_minimum",
            Self::LimitExceeded { .. } => "limit_exceeded",
            Self::NotAllowListed => "address_not_allowed",
            Self::InsufficientBalance => "insufficient_balance",
            Self::Rejected(reason) => reason.code(),
            Self::NotFound => "not_found",
            Self::NotCancellable(_) => "not_cancellable",
            Self::UnknownRecipient => "unknown_recipient",
            Self::SameAccount => "same_account",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::HoldMismatch => "hold_mismatch",
            Self::Halted => "wallet_halted",
            Self::WithdrawalsHalted => "withdrawals_halted",
            Self::NoTestFunds => "test_funds_unavailable",
            Self::TestFundsTooSoon { .. } => "test_funds_too_soon",
        }
    }
}

/// A refusal of a user's request by the exchange core: a short balance has its own code.
impl From<RejectReason> for WalletError {
    fn from(reason: RejectReason) -> Self {
        match reason {
            RejectReason::InsufficientBalance => Self::InsufficientBalance,
            other => Self::Rejected(other),
        }
    }
}

pub(crate) fn rpc_error(error: impl std::fmt::Display) -> WalletError {
    WalletError::Chain(error.to_string())
}

/// Records `address` as the user's deposit address on `chain` unless it already is (the
/// watcher reads the records).
pub(crate) async fn record_deposit_address(
    store: &Store,
    chain: i64,
    user_id: UserId,
    address: Address,
    now_ms: i64,
) -> Result<(), WalletError> {
    if store.deposit_address(chain, user_id).await?.is_none() {
        store
            .add_deposit_address(chain, user_id, &hex_of(address), now_ms)
            .await?;
    }
    Ok(())
}

/// An address as the database stores it: lower-case `0x` hex.
#[must_use]
pub fn hex_address(address: Address) -> String {
    hex_of(address)
}

/// Lower-case `0x` hex, as addresses and hashes are stored.
pub(crate) fn hex_of(bytes: impl AsRef<[u8]>) -> String {
    let mut text = String::with_capacity(2 + bytes.as_ref().len() * 2);
    text.push_str("0x");
    for b in bytes.as_ref() {
        text.push_str(&format!("{b:02x}"));
    }
    text
}

/// The core request id of a withdrawal (its own range, apart from transfers').
#[must_use]
pub fn withdrawal_request(id: i64) -> RequestId {
    RequestId((1u128 << 64) | u128::from(id.unsigned_abs()))
}

/// The core request id of a withdrawal made with a random request key (its own range, apart
/// from the row-id ones of older withdrawals).
#[must_use]
pub fn held_request(key: u64) -> RequestId {
    RequestId((3u128 << 64) | u128::from(key))
}

/// The core request id of an internal transfer made before request keys (by row id).
#[must_use]
pub fn transfer_request(id: i64) -> RequestId {
    RequestId((2u128 << 64) | u128::from(id.unsigned_abs()))
}

/// The core request id of an internal transfer made with a random request key (its own
/// range, apart from withdrawals' and from the row-id ones of older transfers).
#[must_use]
pub fn keyed_transfer_request(key: u64) -> RequestId {
    RequestId((4u128 << 64) | u128::from(key))
}

/// A fresh random request key: a database restored from a backup reuses row ids, and a reused
/// request id would name a hold or transfer the core already made for someone else.
pub(crate) fn new_request_key() -> Result<u64, WalletError> {
    Ok(u64::from_le_bytes(
        *coss_identity::random_bytes::<8>().map_err(|_| WalletError::Keys("no randomness"))?,
    ))
}

/// The core's deposit reference: chain, transaction and position in it.
#[must_use]
pub fn deposit_reference(chain_id: i64, tx_hash: &str, position: &str) -> String {
    format!("eth:{chain_id}:{tx_hash}:{position}")
}

pub(crate) fn account_of(user_id: UserId) -> Result<AccountId, WalletError> {
    coss_identity::exchange_account(user_id).ok_or(WalletError::NotFound)
}

/// One user's balance of one asset, in whole units and smallest units.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BalanceView {
    /// The asset's symbol.
    pub asset: String,
    /// Spendable, whole units.
    pub available: String,
    /// Held for open orders and pending withdrawals, whole units.
    pub locked: String,
}

pub(crate) struct Inner {
    pub(crate) config: ChainConfig,
    pub(crate) provider: DynProvider,
    pub(crate) store: Store,
    pub(crate) accounts: Accounts,
    pub(crate) engine: EngineHandle,
    pub(crate) book: AddressBook,
    pub(crate) xpub: bip32::XPub,
    pub(crate) seed: Zeroizing<Vec<u8>>,
    pub(crate) hot: PrivateKeySigner,
    /// The node's latest block as last seen.
    pub(crate) head: AtomicU64,
    /// ERC-20 contract → index in `config.assets`.
    pub(crate) tokens: HashMap<Address, usize>,
    /// Whether the node answers `trace_block` (internal ETH transfers are then credited).
    pub(crate) traces: bool,
    /// Serialises signing (one nonce manager per hot address).
    pub(crate) signing: tokio::sync::Mutex<()>,
    pub(crate) halted: RwLock<Option<String>>,
    /// Whether this process has reconciled the core's held withdrawals with their records.
    pub(crate) reconciled: std::sync::atomic::AtomicBool,
    /// When things happen (records, stuck transactions).
    pub(crate) clock: Clock,
    /// Test funds, when the chain is the platform's own local chain.
    pub(crate) faucet: std::sync::OnceLock<dev::Faucet>,
    /// Counts watcher passes that saw something change (blocks, credits, reorgs).
    pub(crate) changes: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("chain_id", &self.config.chain_id)
            .field("hot", &self.hot.address())
            .finish_non_exhaustive()
    }
}

/// The wallets of one chain: cheap to clone, shared by the API, the watcher and the sender.
#[derive(Debug, Clone)]
pub struct Wallet {
    pub(crate) inner: Arc<Inner>,
}

impl Wallet {
    /// Connects to the chain's node (checking its chain id), loads or makes the chain's HD seed
    /// (sealed with the server key), lists the configured assets in the exchange core (and
    /// brings their withdrawal fees in line with the configuration), and loads the deposit
    /// addresses the watcher recognises. `clock` times its records and decides when a
    /// transaction is stuck.
    pub async fn open(
        config: ChainConfig,
        accounts: Accounts,
        engine: EngineHandle,
        clock: Clock,
    ) -> Result<Self, WalletError> {
        config.validate()?;
        let provider = chain::connect(&config.rpc_url).await?;
        let actual = chain::chain_id(&provider).await?;
        if actual != config.chain_id {
            return Err(WalletError::WrongChain {
                expected: config.chain_id,
                actual,
            });
        }
        let store = accounts.store().clone();
        let chain_id = chain_key(config.chain_id)?;
        let purpose = format!("wallet-seed:{chain_id}");
        let record = match store.wallet_seed(chain_id).await? {
            Some(record) => record,
            None => {
                let seed = hd::new_seed()?;
                let sealed = accounts
                    .vault()
                    .seal(&seed, purpose.as_bytes())
                    .map_err(|_| WalletError::Keys("cannot seal the seed"))?;
                let record = SeedRecord {
                    sealed_seed: sealed,
                    xpub: hd::deposit_xpub(&seed)?,
                    hot_address: hex_of(hd::hot_signer(&seed)?.address()),
                };
                store
                    .create_wallet_seed(chain_id, &record, clock.now().as_i64())
                    .await?
            }
        };
        let seed = accounts
            .vault()
            .open(&record.sealed_seed, purpose.as_bytes())
            .map_err(|_| WalletError::Keys("the seed does not open with this server key"))?;
        let seed = Zeroizing::new(seed.to_vec());
        let hot = hd::hot_signer(&seed)?;
        let xpub = hd::parse_xpub(&record.xpub)?;
        list_assets(&engine, &config).await?;
        let tokens = config
            .assets
            .iter()
            .enumerate()
            .filter_map(|(i, a)| a.token.map(|t| (t, i)))
            .collect();
        let traces = chain::has_traces(&provider).await;
        let book = AddressBook::default();
        book.refresh(&store, chain_id).await?;
        let halted = store.chain_halt(chain_id).await?;
        tracing::info!(
            chain_id,
            hot_wallet = %hot.address(),
            deposit_addresses = book.len(),
            internal_transfers = if traces { "credited (trace_block)" } else { "not seen (no traces)" },
            "wallet open"
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                provider,
                store,
                accounts,
                engine,
                book,
                xpub,
                seed,
                hot,
                head: AtomicU64::new(0),
                tokens,
                traces,
                signing: tokio::sync::Mutex::new(()),
                halted: RwLock::new(halted),
                reconciled: std::sync::atomic::AtomicBool::new(false),
                clock,
                faucet: std::sync::OnceLock::new(),
                changes: tokio::sync::watch::Sender::new(0),
            }),
        })
    }

    /// The database (chain records and the history).
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The chain configuration.
    #[must_use]
    pub fn config(&self) -> &ChainConfig {
        &self.inner.config
    }

    /// The hot wallet's address.
    #[must_use]
    pub fn hot_address(&self) -> Address {
        self.inner.hot.address()
    }

    /// The node connection.
    #[must_use]
    pub fn provider(&self) -> &DynProvider {
        &self.inner.provider
    }

    /// The accounts service (users, second factor).
    #[must_use]
    pub fn accounts(&self) -> &Accounts {
        &self.inner.accounts
    }

    /// The watched deposit addresses.
    #[must_use]
    pub fn address_book(&self) -> &AddressBook {
        &self.inner.book
    }

    /// The node's latest block as last seen by the watcher.
    #[must_use]
    pub fn head(&self) -> u64 {
        self.inner.head.load(Ordering::Relaxed)
    }

    /// Why crediting is halted (a reorg deeper than the bound), if it is.
    #[must_use]
    pub fn halted(&self) -> Option<String> {
        self.inner
            .halted
            .read()
            .ok()
            .and_then(|h| h.as_ref().cloned())
    }

    /// Now, as the database counts time.
    pub(crate) fn now(&self) -> i64 {
        self.inner.clock.now().as_i64()
    }

    pub(crate) fn chain_key(&self) -> i64 {
        // Validated at open: chain ids fit.
        i64::try_from(self.inner.config.chain_id).unwrap_or(i64::MAX)
    }

    /// The user's deposit address on this chain (the same for every asset), made on first
    /// request and watched from then on.
    pub async fn deposit_address(&self, user_id: UserId) -> Result<Address, WalletError> {
        let address = hd::deposit_address(&self.inner.xpub, user_id)?;
        record_deposit_address(
            &self.inner.store,
            self.chain_key(),
            user_id,
            address,
            self.now(),
        )
        .await?;
        self.inner.book.insert(address, user_id);
        Ok(address)
    }

    /// Wakes when a watcher pass saw new blocks, credits or a reorg (the gateway follows
    /// its invoices' payments on it).
    #[must_use]
    pub fn chain_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.changes.subscribe()
    }

    /// The receiving address of a gateway invoice of `merchant`: derived on the deposit
    /// account's internal branch, recorded with the invoice, and watched from now on.
    pub async fn invoice_address(
        &self,
        invoice_id: i64,
        merchant: UserId,
    ) -> Result<Address, WalletError> {
        let address = hd::invoice_address(&self.inner.xpub, invoice_id)?;
        self.inner
            .store
            .set_invoice_address(invoice_id, self.chain_key(), &hex_of(address))
            .await?;
        self.inner.book.insert_owner(
            address,
            Owner {
                user: merchant,
                invoice: Some(invoice_id),
            },
        );
        Ok(address)
    }

    /// The user's balances of this chain's assets.
    pub async fn balances(&self, user_id: UserId) -> Result<Vec<BalanceView>, WalletError> {
        let account = account_of(user_id)?;
        let assets: Vec<(String, AssetId, u8)> = self
            .inner
            .config
            .assets
            .iter()
            .map(|a| (a.symbol.clone(), a.asset, a.decimals))
            .collect();
        let balances = self
            .inner
            .engine
            .read_async(move |exchange| {
                assets
                    .into_iter()
                    .map(|(symbol, asset, decimals)| {
                        let b = exchange.balance(account, asset);
                        BalanceView {
                            asset: symbol,
                            available: b.available.to_decimal_string(decimals),
                            locked: b.locked.to_decimal_string(decimals),
                        }
                    })
                    .collect()
            })
            .await?;
        Ok(balances)
    }

    /// Runs the watcher and the withdrawal sender until the process ends: each wakes on a
    /// new head (pushed by the node where the transport can, else polled) and on a timer.
    pub fn spawn(&self) -> tokio::task::JoinHandle<()> {
        let wallet = self.clone();
        tokio::spawn(async move { wallet.run().await })
    }

    async fn run(self) {
        let heads = chain::HeadSignal::start(
            self.inner.provider.clone(),
            std::time::Duration::from_millis(self.inner.config.poll_interval_ms),
        );
        loop {
            match self.sync().await {
                Ok(report) if report.scanned > 0 || report.credited > 0 || report.unwound > 0 => {
                    tracing::debug!(?report, "watcher");
                    self.inner.changes.send_modify(|n| *n += 1);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, code = error.code(), "watcher"),
            }
            match self.process_withdrawals().await {
                Ok(report) if report != ProcessReport::default() => {
                    tracing::info!(?report, "withdrawals");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, code = error.code(), "withdrawals"),
            }
            match self.sweep().await {
                Ok(report) if report != SweepReport::default() => {
                    tracing::info!(?report, "sweeps");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, code = error.code(), "sweeps"),
            }
            heads.wait().await;
        }
    }
}

pub(crate) fn chain_key(chain_id: u64) -> Result<i64, WalletError> {
    i64::try_from(chain_id).map_err(|_| WalletError::Config("chain id too large".into()))
}

/// Lists each configured asset in the core if it is missing (with the configured withdrawal
/// fee, which the back office may change afterwards).
async fn list_assets(engine: &EngineHandle, config: &ChainConfig) -> Result<(), WalletError> {
    for asset in &config.assets {
        let id = asset.asset;
        let listed = engine.read_async(move |e| e.asset_info(id)).await?;
        let command = match listed {
            None => Command::ListAsset {
                asset: id,
                symbol: asset.symbol.clone(),
                decimals: asset.decimals,
                fees_shared: asset.fees_shared,
                withdrawal_fee: Amount(asset.withdrawal_fee),
            },
            Some(info) if info.symbol != asset.symbol || info.decimals != asset.decimals => {
                return Err(WalletError::Config(format!(
                    "asset id {} is {} with {} decimals in the exchange core, not {} with {}",
                    id.0, info.symbol, info.decimals, asset.symbol, asset.decimals
                )));
            }
            // The configured minimum seeds the core once (journals from before it had one).
            Some(info) if info.withdrawal_minimum.is_zero() => Command::SetWithdrawalMinimum {
                asset: id,
                minimum: Amount(asset.min_withdrawal),
            },
            // The configured fee and minimum seed the first listing only: later the back
            // office sets them in the core (journaled), and a restart must not undo that.
            Some(_) => continue,
        };
        let listing = matches!(command, Command::ListAsset { .. });
        engine
            .submit_async(command)
            .await?
            .outcome
            .map_err(WalletError::Rejected)?;
        if listing {
            engine
                .submit_async(Command::SetWithdrawalMinimum {
                    asset: id,
                    minimum: Amount(asset.min_withdrawal),
                })
                .await?
                .outcome
                .map_err(WalletError::Rejected)?;
        }
    }
    Ok(())
}
