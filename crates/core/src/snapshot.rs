//! The canonical form of the state: snapshots, the state hash, and the invariant checks.
//!
//! The canonical form lists everything that can influence a future event, in a fixed order
//! (ids ascending, book orders in priority order) and nothing that cannot (slab positions,
//! hash-map layout, dense account indexes). So two exchanges with the same canonical form
//! behave identically, and `state_hash` = SHA-256 of its bytes.

use crate::command::{FeeTier, MarketStatus, SelfTradePrevention, TimeInForce};
use crate::dao::{DaoSchedule, Pool, Week, WeekStage};
use crate::fees::{PPM, holders_part};
use crate::ledger::{
    MAX_DECIMALS, MAX_FEE_PPM, MAX_OPEN_ORDER_LIMIT, notional_unit, valid_fee_schedule,
};
use crate::{
    Account, Asset, BalanceCell, Exchange, Maker, Market, Params, StopOrder, TransferInfo,
    Withdrawal, WithdrawalState,
};
use coss_book::OrderBook;
use coss_types::{
    AccountId, AssetId, ClientOrderId, MarketId, OrderId, Price, Qty, RequestId, Side,
};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fmt;

const SNAPSHOT_VERSION: u32 = 4;

/// SHA-256 of the canonical state.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateHash(pub [u8; 32]);

impl fmt::Display for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for StateHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateHash({self})")
    }
}

/// A snapshot that cannot be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes do not decode.
    #[error("snapshot does not decode: {0}")]
    Decode(String),
    /// Written by an incompatible version.
    #[error("snapshot version {found} is not {expected}")]
    Version {
        /// In the file.
        found: u32,
        /// Understood here.
        expected: u32,
    },
    /// Decodes, but describes an impossible state.
    #[error("snapshot is inconsistent: {0}")]
    Inconsistent(String),
}

/// An invariant that does not hold: a bug, never an input error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invariant violated: {0}")]
pub struct InvariantViolation(pub String);

#[derive(Serialize, Deserialize)]
struct Canonical {
    version: u32,
    holders_share_ppm: u32,
    fee_tiers: Vec<FeeTier>,
    max_open_orders: u32,
    gateway_fee_ppm: u32,
    next_order_id: u64,
    next_trade_id: u64,
    next_seq: u64,
    time_ms: u64,
    commands: u64,
    assets: Vec<AssetState>,
    markets: Vec<MarketState>,
    accounts: Vec<AccountState>,
    open_client_ids: Vec<(OrderId, ClientOrderId)>,
    deposit_refs: Vec<String>,
    withdrawals: Vec<(RequestId, WithdrawalRecord)>,
    transfers: Vec<(RequestId, TransferInfo)>,
    dao_schedule: Option<DaoSchedule>,
    dao_weeks: Vec<WeekState>,
}

#[derive(Serialize, Deserialize)]
struct WeekState {
    close_ms: u64,
    stage: WeekStage,
    holders: Vec<(AccountId, u128)>,
    chain: Vec<(AccountId, u128)>,
    chain_parts: u32,
    total: u128,
    pools: Vec<Pool>,
    holder_at: u32,
}

#[derive(Serialize, Deserialize)]
struct AssetState {
    id: AssetId,
    symbol: String,
    decimals: u8,
    fees_shared: bool,
    withdrawal_fee: u128,
    withdrawal_minimum: u128,
    deposited: u128,
    withdrawn: u128,
    shared_fees: u128,
    holders_credited: u128,
}

#[derive(Serialize, Deserialize)]
struct MarketState {
    id: MarketId,
    base: AssetId,
    quote: AssetId,
    lot_size: u128,
    tick_size: u128,
    min_notional: u128,
    notional_unit: u128,
    status: MarketStatus,
    last_price: Option<Price>,
    /// Each side in priority order.
    bids: Vec<RestingState>,
    asks: Vec<RestingState>,
    /// Waiting stops by id.
    stops: Vec<StopState>,
}

#[derive(Serialize, Deserialize)]
struct RestingState {
    id: OrderId,
    price: Price,
    qty: Qty,
    account: AccountId,
    stp: SelfTradePrevention,
    post_only: bool,
}

#[derive(Serialize, Deserialize)]
struct StopState {
    id: OrderId,
    account: AccountId,
    side: Side,
    stop: Price,
    price: Price,
    qty: Qty,
    tif: TimeInForce,
    stp: SelfTradePrevention,
    rising: bool,
}

#[derive(Serialize, Deserialize)]
struct AccountState {
    id: AccountId,
    fee_tier: u8,
    locked: bool,
    /// Non-zero balances by asset.
    balances: Vec<(AssetId, u128, u128)>,
    /// Reserved client ids of closed orders, oldest first, with the order each named.
    recent_client_ids: Vec<(ClientOrderId, OrderId)>,
}

#[derive(Serialize, Deserialize)]
struct WithdrawalRecord {
    account: AccountId,
    asset: AssetId,
    amount: u128,
    fee: u128,
    state: u8,
}

fn state_code(state: WithdrawalState) -> u8 {
    match state {
        WithdrawalState::Pending => 0,
        WithdrawalState::Confirmed => 1,
        WithdrawalState::Released => 2,
    }
}

impl Exchange {
    /// The balances of a dense account index, by asset.
    fn account_cells(&self, account: u32) -> impl Iterator<Item = (AssetId, &BalanceCell)> {
        let row = account as usize * self.stride;
        self.cells[row..row + self.stride]
            .iter()
            .enumerate()
            .map(|(asset, cell)| (AssetId(u32::try_from(asset).unwrap_or(u32::MAX)), cell))
    }

    fn canonical(&self) -> Canonical {
        let assets = self
            .assets
            .iter()
            .flatten()
            .map(|a| AssetState {
                id: a.id,
                symbol: a.symbol.clone(),
                decimals: a.decimals,
                fees_shared: a.fees_shared,
                withdrawal_fee: a.withdrawal_fee,
                withdrawal_minimum: a.withdrawal_minimum,
                deposited: a.deposited,
                withdrawn: a.withdrawn,
                shared_fees: a.shared_fees,
                holders_credited: a.holders_credited,
            })
            .collect();
        let account_id = |index: u32| self.accounts[index as usize].id;
        let markets = self
            .markets
            .iter()
            .flatten()
            .map(|m| {
                let side_orders = |side: Side| {
                    let mut orders = Vec::new();
                    m.book.visit(side, |o| {
                        orders.push(RestingState {
                            id: o.id,
                            price: o.price,
                            qty: o.qty,
                            account: account_id(o.payload.account),
                            stp: o.payload.stp,
                            post_only: o.payload.post_only,
                        });
                        true
                    });
                    orders
                };
                let mut stops: Vec<StopState> = m
                    .rising
                    .values()
                    .chain(m.falling.values())
                    .map(|s| StopState {
                        id: s.id,
                        account: account_id(s.account),
                        side: s.side,
                        stop: s.stop,
                        price: s.price,
                        qty: s.qty,
                        tif: s.tif,
                        stp: s.stp,
                        rising: s.rising,
                    })
                    .collect();
                stops.sort_by_key(|s| s.id);
                MarketState {
                    id: m.id,
                    base: m.base,
                    quote: m.quote,
                    lot_size: m.lot_size,
                    tick_size: m.tick_size,
                    min_notional: m.min_notional,
                    notional_unit: m.notional_unit,
                    status: m.status,
                    last_price: m.last_price,
                    bids: side_orders(Side::Buy),
                    asks: side_orders(Side::Sell),
                    stops,
                }
            })
            .collect();
        let mut accounts: Vec<(u32, &Account)> = self
            .accounts
            .iter()
            .enumerate()
            .map(|(i, a)| (u32::try_from(i).unwrap_or(u32::MAX), a))
            .collect();
        accounts.sort_by_key(|(_, a)| a.id);
        let accounts = accounts
            .into_iter()
            .map(|(index, a)| AccountState {
                id: a.id,
                fee_tier: self.hot[index as usize].fee_tier,
                locked: self.hot[index as usize].locked,
                balances: self
                    .account_cells(index)
                    .filter(|(_, c)| c.available != 0 || c.locked != 0)
                    .map(|(asset, c)| (asset, c.available, c.locked))
                    .collect(),
                recent_client_ids: a
                    .recent_client_ids
                    .iter()
                    .map(|cid| {
                        (
                            *cid,
                            self.client_ids
                                .get(&(index, *cid))
                                .copied()
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
            })
            .collect();
        let mut open_client_ids: Vec<_> = self.order_client.iter().map(|(o, c)| (*o, *c)).collect();
        open_client_ids.sort_unstable_by_key(|(o, _)| *o);
        let mut deposit_refs: Vec<String> = self.deposit_refs.iter().cloned().collect();
        deposit_refs.sort_unstable();
        let mut withdrawals: Vec<_> = self
            .withdrawals
            .iter()
            .map(|(r, w)| {
                (
                    *r,
                    WithdrawalRecord {
                        account: w.account,
                        asset: w.asset,
                        amount: w.amount,
                        fee: w.fee,
                        state: state_code(w.state),
                    },
                )
            })
            .collect();
        withdrawals.sort_unstable_by_key(|(r, _)| *r);
        let mut transfers: Vec<(RequestId, TransferInfo)> =
            self.transfers.iter().map(|(r, t)| (*r, *t)).collect();
        transfers.sort_unstable_by_key(|(r, _)| *r);
        Canonical {
            version: SNAPSHOT_VERSION,
            holders_share_ppm: self.params.holders_share_ppm,
            fee_tiers: self.params.fee_tiers.clone(),
            max_open_orders: self.params.max_open_orders,
            gateway_fee_ppm: self.params.gateway_fee_ppm,
            next_order_id: self.next_order_id,
            next_trade_id: self.next_trade_id,
            next_seq: self.next_seq,
            time_ms: self.time_ms,
            commands: self.commands,
            assets,
            markets,
            accounts,
            open_client_ids,
            deposit_refs,
            withdrawals,
            transfers,
            dao_schedule: self.dao.schedule,
            dao_weeks: self
                .dao
                .weeks
                .iter()
                .map(|w| WeekState {
                    close_ms: w.close_ms,
                    stage: w.stage,
                    holders: w.holders.clone(),
                    chain: w.chain.iter().map(|(&a, &h)| (a, h)).collect(),
                    chain_parts: w.chain_parts,
                    total: w.total,
                    pools: w.pools.clone(),
                    holder_at: w.holder_at,
                })
                .collect(),
        }
    }

    /// The canonical state as bytes: a snapshot that [`Exchange::restore`] reads back.
    #[must_use]
    pub fn snapshot(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        postcard::to_stdvec(&self.canonical()).unwrap_or_default()
    }

    /// SHA-256 of the canonical state: equal hashes mean equal future behaviour.
    #[must_use]
    pub fn state_hash(&self) -> StateHash {
        StateHash(Sha256::digest(self.snapshot()).into())
    }

    /// Rebuilds an exchange from [`Exchange::snapshot`] bytes.
    pub fn restore(bytes: &[u8]) -> Result<Exchange, SnapshotError> {
        // The version leads, so that an older layout is told apart from damage.
        let (version, _) = postcard::take_from_bytes::<u32>(bytes)
            .map_err(|e| SnapshotError::Decode(e.to_string()))?;
        if version != SNAPSHOT_VERSION {
            return Err(SnapshotError::Version {
                found: version,
                expected: SNAPSHOT_VERSION,
            });
        }
        let c: Canonical =
            postcard::from_bytes(bytes).map_err(|e| SnapshotError::Decode(e.to_string()))?;
        let bad = |what: &str| SnapshotError::Inconsistent(what.to_owned());
        // Everything a command could trip over is checked here: a snapshot either restores to a
        // state that commands can run on, or is refused.
        if c.holders_share_ppm > PPM
            || !valid_fee_schedule(&c.fee_tiers)
            || c.max_open_orders == 0
            || c.max_open_orders > MAX_OPEN_ORDER_LIMIT
            || c.gateway_fee_ppm > MAX_FEE_PPM
        {
            return Err(bad("invalid parameters"));
        }
        if c.next_seq == 0 || c.next_order_id == 0 || c.next_trade_id == 0 {
            return Err(bad("counters start at 1"));
        }
        let mut ex = Exchange::new();
        ex.params = Params {
            holders_share_ppm: c.holders_share_ppm,
            fee_tiers: c.fee_tiers,
            max_open_orders: c.max_open_orders,
            gateway_fee_ppm: c.gateway_fee_ppm,
        };
        ex.next_order_id = c.next_order_id;
        ex.next_trade_id = c.next_trade_id;
        ex.next_seq = c.next_seq;
        ex.time_ms = c.time_ms;
        ex.commands = c.commands;
        for a in c.assets {
            let slot = a.id.0 as usize;
            if slot >= crate::MAX_ASSETS as usize {
                return Err(bad("asset id out of range"));
            }
            if a.decimals > MAX_DECIMALS {
                return Err(bad("asset decimals out of range"));
            }
            if ex.assets.len() <= slot {
                ex.assets.resize(slot + 1, None);
            }
            ex.assets[slot] = Some(Asset {
                id: a.id,
                symbol: a.symbol,
                decimals: a.decimals,
                fees_shared: a.fees_shared,
                withdrawal_fee: a.withdrawal_fee,
                withdrawal_minimum: a.withdrawal_minimum,
                deposited: a.deposited,
                withdrawn: a.withdrawn,
                shared_fees: a.shared_fees,
                holders_credited: a.holders_credited,
            });
        }
        let stride = ex.assets.len();
        ex.restride(stride);
        // The system accounts are already open, at their fixed indexes.
        for a in c.accounts {
            let index = ex.account_or_open(a.id);
            ex.hot[index as usize].fee_tier = a.fee_tier;
            ex.hot[index as usize].locked = a.locked;
            for (asset, available, locked) in a.balances {
                if ex.asset(asset).is_none() {
                    return Err(bad("balance in an unlisted asset"));
                }
                let at = ex.cell_index(index, asset);
                ex.cells[at] = BalanceCell { available, locked };
            }
            for (cid, order) in a.recent_client_ids {
                ex.accounts[index as usize].recent_client_ids.push_back(cid);
                ex.client_ids.insert((index, cid), order);
            }
        }
        for m in c.markets {
            let slot = m.id.0 as usize;
            if slot >= crate::MAX_MARKETS as usize {
                return Err(bad("market id out of range"));
            }
            let unit = match (ex.asset(m.base), ex.asset(m.quote)) {
                (Some(base), Some(_)) if m.base != m.quote => {
                    notional_unit(base.decimals, m.lot_size, m.tick_size)
                }
                _ => None,
            };
            if unit != Some(m.notional_unit) {
                return Err(bad("invalid market definition"));
            }
            let mut market = Market {
                id: m.id,
                base: m.base,
                quote: m.quote,
                lot_size: m.lot_size,
                tick_size: m.tick_size,
                min_notional: m.min_notional,
                notional_unit: m.notional_unit,
                status: m.status,
                last_price: m.last_price,
                book: OrderBook::with_capacity(m.bids.len() + m.asks.len()),
                rising: BTreeMap::new(),
                falling: BTreeMap::new(),
                stop_keys: FxHashMap::default(),
            };
            for (side, orders) in [(Side::Buy, m.bids), (Side::Sell, m.asks)] {
                for o in orders {
                    if o.price.0 == 0 || o.id.0 >= c.next_order_id {
                        return Err(bad("invalid resting order"));
                    }
                    let account = *ex
                        .account_index
                        .get(&o.account)
                        .ok_or_else(|| bad("order of an unknown account"))?;
                    let maker = Maker {
                        account,
                        stp: o.stp,
                        post_only: o.post_only,
                    };
                    market
                        .book
                        .add(o.id, side, o.price, o.qty, maker)
                        .map_err(|_| bad("invalid resting order"))?;
                    ex.hot[account as usize].open_orders += 1;
                }
            }
            for s in m.stops {
                if s.qty.0 == 0 || s.price.0 == 0 || s.stop.0 == 0 || s.id.0 >= c.next_order_id {
                    return Err(bad("invalid stop order"));
                }
                let account = *ex
                    .account_index
                    .get(&s.account)
                    .ok_or_else(|| bad("stop of an unknown account"))?;
                let stop = StopOrder {
                    id: s.id,
                    account,
                    side: s.side,
                    stop: s.stop,
                    price: s.price,
                    qty: s.qty,
                    tif: s.tif,
                    stp: s.stp,
                    rising: s.rising,
                };
                market.insert_stop(stop);
                ex.hot[account as usize].open_orders += 1;
            }
            if ex.markets.len() <= slot {
                ex.markets.resize_with(slot + 1, || None);
            }
            ex.markets[slot] = Some(market);
        }
        // Open orders' client ids: find each order's account through its market.
        let mut owner: FxHashMap<OrderId, u32> = FxHashMap::default();
        let mut reused_id = false;
        for m in ex.markets.iter().flatten() {
            for side in [Side::Buy, Side::Sell] {
                m.book.visit(side, |o| {
                    reused_id |= owner.insert(o.id, o.payload.account).is_some();
                    true
                });
            }
            for s in m.rising.values().chain(m.falling.values()) {
                reused_id |= owner.insert(s.id, s.account).is_some();
            }
        }
        if reused_id {
            return Err(bad("two open orders share an id"));
        }
        for (order, cid) in c.open_client_ids {
            let account = *owner
                .get(&order)
                .ok_or_else(|| bad("client id of a closed order"))?;
            ex.order_client.insert(order, cid);
            ex.client_ids.insert((account, cid), order);
        }
        ex.deposit_refs = c.deposit_refs.into_iter().collect::<FxHashSet<_>>();
        for (request, w) in c.withdrawals {
            let state = match w.state {
                0 => WithdrawalState::Pending,
                1 => WithdrawalState::Confirmed,
                2 => WithdrawalState::Released,
                _ => return Err(bad("unknown withdrawal state")),
            };
            if ex.asset(w.asset).is_none() || w.amount == 0 || w.amount.checked_add(w.fee).is_none()
            {
                return Err(bad("invalid withdrawal"));
            }
            ex.withdrawals.insert(
                request,
                Withdrawal {
                    account: w.account,
                    asset: w.asset,
                    amount: w.amount,
                    fee: w.fee,
                    state,
                },
            );
        }
        ex.transfers = c.transfers.into_iter().collect();
        ex.dao.schedule = c.dao_schedule;
        for w in c.dao_weeks {
            let ascending = |list: &[(AccountId, u128)]| list.windows(2).all(|p| p[0].0 < p[1].0);
            if !ascending(&w.holders) || !ascending(&w.chain) {
                return Err(bad("DAO holders out of order"));
            }
            let dense = match w.stage {
                WeekStage::Sealed => w
                    .holders
                    .iter()
                    .map(|&(account, _)| ex.account_or_open(account))
                    .collect(),
                WeekStage::Collecting => Vec::new(),
            };
            ex.dao.weeks.push_back(Week {
                close_ms: w.close_ms,
                stage: w.stage,
                dense,
                holders: w.holders,
                chain: w.chain.into_iter().collect(),
                chain_parts: w.chain_parts,
                total: w.total,
                pools: w.pools,
                holder_at: w.holder_at,
            });
        }
        ex.check_invariants()
            .map_err(|v| SnapshotError::Inconsistent(v.0))?;
        Ok(ex)
    }

    /// Checks every invariant of the ledger and the books:
    /// - per asset, the sum of all balances equals deposits minus withdrawals (and no balance is
    ///   held in an unlisted asset);
    /// - every account's locked funds equal what its open orders and pending withdrawals need;
    /// - open-order counts match the books, no book is crossed;
    /// - the holders have been credited exactly `floor(shareable fees × share)`;
    /// - client order ids of open orders point at open orders.
    pub fn check_invariants(&self) -> Result<(), InvariantViolation> {
        let fail = |what: String| Err(InvariantViolation(what));
        // Expected locked funds, from first principles.
        let mut expected: BTreeMap<(u32, u32), u128> = BTreeMap::new();
        let mut open: Vec<u32> = vec![0; self.accounts.len()];
        let mut open_orders: FxHashMap<OrderId, u32> = FxHashMap::default();
        // A checker must not panic on the state it checks (a restored snapshot may be corrupt).
        let mut overflow = false;
        let mut need = |account: u32, asset: AssetId, amount: Option<u128>| {
            let slot = expected.entry((account, asset.0)).or_default();
            match amount.and_then(|amount| slot.checked_add(amount)) {
                Some(sum) => *slot = sum,
                None => overflow = true,
            }
        };
        for m in self.markets.iter().flatten() {
            if let (Some(bid), Some(ask)) = (m.book.best(Side::Buy), m.book.best(Side::Sell))
                && bid >= ask
            {
                return fail(format!(
                    "market {} book is crossed: bid {bid} >= ask {ask}",
                    m.id
                ));
            }
            let mut orders: Vec<(u32, Side, Qty, Price, OrderId)> = Vec::new();
            for side in [Side::Buy, Side::Sell] {
                m.book.visit(side, |o| {
                    orders.push((o.payload.account, side, o.qty, o.price, o.id));
                    true
                });
            }
            for s in m.rising.values().chain(m.falling.values()) {
                orders.push((s.account, s.side, s.qty, s.price, s.id));
                if !m.stop_keys.contains_key(&s.id) {
                    return fail(format!("stop {} missing from the index", s.id));
                }
            }
            if m.stop_keys.len() != m.rising.len() + m.falling.len() {
                return fail(format!("market {} stop index out of step", m.id));
            }
            for (account, side, qty, price, id) in orders {
                let (asset, amount) = match side {
                    Side::Buy => (
                        m.quote,
                        u128::from(qty.0)
                            .checked_mul(u128::from(price.0))
                            .and_then(|value| value.checked_mul(m.notional_unit)),
                    ),
                    Side::Sell => (m.base, u128::from(qty.0).checked_mul(m.lot_size)),
                };
                need(account, asset, amount);
                open[account as usize] += 1;
                open_orders.insert(id, account);
            }
        }
        for w in self.withdrawals.values() {
            if w.state == WithdrawalState::Pending {
                let Some(&account) = self.account_index.get(&w.account) else {
                    return fail("pending withdrawal of an unknown account".into());
                };
                need(account, w.asset, w.amount.checked_add(w.fee));
            }
        }
        if overflow {
            return fail("locked funds overflow".into());
        }
        let mut totals: BTreeMap<u32, u128> = BTreeMap::new();
        for (index, account) in self.accounts.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let counted = self.hot[index as usize].open_orders;
            if counted != open[index as usize] {
                return fail(format!(
                    "account {} counts {counted} open orders, books hold {}",
                    account.id, open[index as usize]
                ));
            }
            for (asset, cell) in self.account_cells(index) {
                let asset = asset.0;
                let want = expected.get(&(index, asset)).copied().unwrap_or(0);
                if cell.locked != want {
                    return fail(format!(
                        "account {} asset {asset}: locked {} but open orders and withdrawals need {want}",
                        account.id, cell.locked
                    ));
                }
                let total = totals.entry(asset).or_default();
                *total = total
                    .checked_add(cell.available)
                    .and_then(|t| t.checked_add(cell.locked))
                    .ok_or_else(|| InvariantViolation(format!("asset {asset} total overflows")))?;
            }
        }
        if let Some((asset, _)) = totals
            .iter()
            .find(|&(&asset, &total)| total != 0 && self.asset(AssetId(asset)).is_none())
        {
            return fail(format!("balance in unlisted asset {asset}"));
        }
        for a in self.assets.iter().flatten() {
            let supply = a.deposited.checked_sub(a.withdrawn);
            let held = totals.get(&a.id.0).copied().unwrap_or(0);
            if supply != Some(held) {
                return fail(format!(
                    "asset {}: balances sum to {held} but deposits {} minus withdrawals {}",
                    a.symbol, a.deposited, a.withdrawn
                ));
            }
            if a.holders_credited != holders_part(a.shared_fees, self.params.holders_share_ppm) {
                return fail(format!("asset {}: holders' share out of step", a.symbol));
            }
        }
        for (order, cid) in &self.order_client {
            let Some(&account) = open_orders.get(order) else {
                return fail(format!("client id {cid} names closed order {order}"));
            };
            if self.client_ids.get(&(account, *cid)) != Some(order) {
                return fail(format!("client id {cid} not reserved for order {order}"));
            }
        }
        if self.hot.len() != self.accounts.len()
            || self
                .hot
                .iter()
                .zip(&self.accounts)
                .any(|(h, a)| h.id != a.id)
            || self.cells.len() != self.accounts.len() * self.stride
            || self.touched_flags.len() != self.cells.len()
            || self.stride != self.assets.len()
        {
            return fail("account tables out of step".into());
        }
        if self.touched_flags.iter().any(|&t| t) {
            return fail("a balance was left marked as touched".into());
        }
        let system_in_place = crate::SYSTEM_ACCOUNTS
            .iter()
            .enumerate()
            .all(|(i, id)| self.accounts.get(i).is_some_and(|a| a.id == *id));
        if !system_in_place {
            return fail("system accounts are not at their fixed indexes".into());
        }
        // The payout account holds exactly what the open weeks have yet to pay.
        let mut unpaid: BTreeMap<u32, u128> = BTreeMap::new();
        for week in &self.dao.weeks {
            for pool in &week.pools {
                let Some(left) = pool.pool.0.checked_sub(pool.paid.0) else {
                    return fail(format!("week {} paid more than its pool", week.close_ms));
                };
                *unpaid.entry(pool.asset.0).or_default() += left;
            }
            if week.holder_at as usize > week.holders.len() {
                return fail(format!("week {} cursor out of range", week.close_ms));
            }
        }
        if let Some(&payouts) = self.account_index.get(&crate::DAO_PAYOUTS) {
            for (asset, cell) in self.account_cells(payouts) {
                let want = unpaid.get(&asset.0).copied().unwrap_or(0);
                if cell.available != want {
                    return fail(format!(
                        "DAO payouts hold {} of asset {} but open weeks owe {want}",
                        cell.available, asset.0
                    ));
                }
            }
        }
        if !self.touched.is_empty() || !self.fees_collected.is_empty() {
            return fail("per-command scratch not empty between commands".into());
        }
        Ok(())
    }
}
