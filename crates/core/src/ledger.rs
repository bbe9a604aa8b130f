//! Balances and the commands that move money without trading: deposits, withdrawals,
//! transfers, fee collection, and the listing/parameter commands.

use crate::command::{FeeTier, MarketStatus};
use crate::event::{Event, EventKind, RejectReason};
use crate::fees::{PPM, fee_for, holders_part};
use crate::{
    Asset, DAO_PAYOUTS, Exchange, FEES_HOLDERS, FEES_HOLDERS_INDEX, FEES_PLATFORM_INDEX,
    FIRST_USER_ACCOUNT, GATEWAY, GATEWAY_INDEX, MAX_ASSETS, MAX_MARKETS, Market, Outcome,
    TransferInfo, WITHDRAWAL_FEES_INDEX, Withdrawal, WithdrawalState, invariant_broken,
};
use coss_book::OrderBook;
use coss_types::{AccountId, Amount, AssetId, MarketId, RequestId};
use rustc_hash::FxHashMap;
use std::collections::BTreeMap;

/// Longest deposit reference.
pub const MAX_REFERENCE_BYTES: usize = 128;
/// Most fee tiers.
pub const MAX_FEE_TIERS: usize = 16;
/// Highest fee rate: 10%.
pub const MAX_FEE_PPM: u32 = 100_000;
/// Highest open-order bound.
pub const MAX_OPEN_ORDER_LIMIT: u32 = 1_000_000;
/// Most decimal places of an asset.
pub const MAX_DECIMALS: u8 = 30;

impl Exchange {
    /// The balance cell of `account` (dense index) in `asset`, marked as touched by this command.
    #[inline(always)]
    pub(crate) fn cell(&mut self, account: u32, asset: AssetId) -> &mut crate::BalanceCell {
        let at = self.cell_index(account, asset);
        if !self.touched_flags[at] {
            self.touched_flags[at] = true;
            self.touched.push((account, asset.0));
        }
        &mut self.cells[at]
    }

    /// Where a balance lives in `cells`; only listed assets have one.
    #[inline(always)]
    pub(crate) fn cell_index(&self, account: u32, asset: AssetId) -> usize {
        let slot = asset.0 as usize;
        if slot >= self.stride {
            invariant_broken("balance of an unlisted asset");
        }
        account as usize * self.stride + slot
    }

    /// Read-only balance of a dense account index.
    #[inline(always)]
    pub(crate) fn available_of(&self, account: u32, asset: AssetId) -> u128 {
        self.cell_at(account, asset).map_or(0, |c| c.available)
    }

    #[inline(always)]
    pub(crate) fn credit(&mut self, account: u32, asset: AssetId, amount: u128) {
        let cell = self.cell(account, asset);
        cell.available = cell
            .available
            .checked_add(amount)
            .unwrap_or_else(|| invariant_broken("credit overflow"));
    }

    /// Credits without marking the balance as touched (no `BalanceChanged` for it unless
    /// something else touches it in the same command).
    #[inline(always)]
    fn credit_quietly(&mut self, account: u32, asset: AssetId, amount: u128) {
        let at = self.cell_index(account, asset);
        let cell = &mut self.cells[at];
        cell.available = cell
            .available
            .checked_add(amount)
            .unwrap_or_else(|| invariant_broken("credit overflow"));
    }

    #[inline(always)]
    pub(crate) fn lock(&mut self, account: u32, asset: AssetId, amount: u128) {
        let cell = self.cell(account, asset);
        cell.available = cell
            .available
            .checked_sub(amount)
            .unwrap_or_else(|| invariant_broken("lock exceeds available"));
        cell.locked += amount;
    }

    #[inline(always)]
    pub(crate) fn unlock(&mut self, account: u32, asset: AssetId, amount: u128) {
        let cell = self.cell(account, asset);
        cell.locked = cell
            .locked
            .checked_sub(amount)
            .unwrap_or_else(|| invariant_broken("unlock exceeds locked"));
        cell.available += amount;
    }

    /// Takes `amount` out of locked funds (it is being paid to someone else).
    #[inline(always)]
    pub(crate) fn spend_locked(&mut self, account: u32, asset: AssetId, amount: u128) {
        let cell = self.cell(account, asset);
        cell.locked = cell
            .locked
            .checked_sub(amount)
            .unwrap_or_else(|| invariant_broken("spend exceeds locked"));
    }

    /// Books a trading fee in `asset`: splits it between the platform and the holders.
    pub(crate) fn collect_fee(&mut self, asset_id: AssetId, fee: u128) {
        if fee == 0 {
            return;
        }
        let share = self.params.holders_share_ppm;
        let Some(asset) = self.assets[asset_id.0 as usize].as_mut() else {
            invariant_broken("fee in an unlisted asset")
        };
        let holders = if asset.fees_shared {
            if asset.shared_fees.checked_add(fee).is_none() {
                // Fold whole millions out of the running total: each is worth exactly `share`
                // to the holders, so the carry and `holders_credited = floor(shared_fees ×
                // share)` stay exact, and the total of a long-lived asset cannot overflow.
                let millions = asset.shared_fees / u128::from(PPM);
                asset.shared_fees -= millions * u128::from(PPM);
                asset.holders_credited -= millions * u128::from(share);
            }
            asset.shared_fees = asset
                .shared_fees
                .checked_add(fee)
                .unwrap_or_else(|| invariant_broken("fee total overflow"));
            let due = holders_part(asset.shared_fees, share);
            let part = due - asset.holders_credited;
            asset.holders_credited = due;
            part
        } else {
            0
        };
        let platform = fee - holders;
        // The fee accounts are credited without a `BalanceChanged` each: the command's
        // `FeesCollected` event carries these credits (fewer events on the hottest path).
        self.credit_quietly(FEES_HOLDERS_INDEX, asset_id, holders);
        self.credit_quietly(FEES_PLATFORM_INDEX, asset_id, platform);
        match self.fees_collected.iter_mut().find(|f| f.0 == asset_id) {
            Some(entry) => {
                entry.1 += platform;
                entry.2 += holders;
            }
            None => self.fees_collected.push((asset_id, platform, holders)),
        }
    }

    pub(crate) fn flush_fees(&mut self, events: &mut Vec<Event>) {
        let collected = std::mem::take(&mut self.fees_collected);
        for &(asset, platform, holders) in &collected {
            self.emit(
                events,
                EventKind::FeesCollected {
                    asset,
                    platform: Amount(platform),
                    holders: Amount(holders),
                },
            );
        }
        self.fees_collected = collected;
        self.fees_collected.clear();
    }

    pub(crate) fn flush_touched(&mut self, events: &mut Vec<Event>) {
        let touched = std::mem::take(&mut self.touched);
        for &(account, asset) in &touched {
            let at = self.cell_index(account, AssetId(asset));
            self.touched_flags[at] = false;
            let cell = self.cells[at];
            let kind = EventKind::BalanceChanged {
                account: self.hot[account as usize].id,
                asset: AssetId(asset),
                available: Amount(cell.available),
                locked: Amount(cell.locked),
            };
            self.emit(events, kind);
        }
        self.touched = touched;
        self.touched.clear();
    }

    pub(crate) fn deposit(
        &mut self,
        account: AccountId,
        asset_id: AssetId,
        amount: Amount,
        reference: &str,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let asset = self.asset(asset_id).ok_or(RejectReason::UnknownAsset)?;
        if amount.is_zero() {
            return Err(RejectReason::InvalidAmount);
        }
        if reference.is_empty() || reference.len() > MAX_REFERENCE_BYTES {
            return Err(RejectReason::InvalidReference);
        }
        if self.deposit_refs.contains(reference) {
            return Err(RejectReason::DuplicateReference);
        }
        let supply = asset
            .deposited
            .checked_add(amount.0)
            .ok_or(RejectReason::Overflow)?;
        let index = self.account_or_open(account);
        if let Some(asset) = self.assets[asset_id.0 as usize].as_mut() {
            asset.deposited = supply;
        }
        self.deposit_refs.insert(reference.to_owned());
        self.emit(
            events,
            EventKind::Deposited {
                account,
                asset: asset_id,
                amount,
                reference: reference.to_owned(),
            },
        );
        self.credit(index, asset_id, amount.0);
        Ok(())
    }

    pub(crate) fn withdraw_hold(
        &mut self,
        request: RequestId,
        account: AccountId,
        asset_id: AssetId,
        amount: Amount,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let asset = self.asset(asset_id).ok_or(RejectReason::UnknownAsset)?;
        if amount.is_zero() {
            return Err(RejectReason::InvalidAmount);
        }
        if amount.0 < asset.withdrawal_minimum {
            return Err(RejectReason::BelowMinimum);
        }
        if self.withdrawals.contains_key(&request) || self.transfers.contains_key(&request) {
            return Err(RejectReason::DuplicateRequest);
        }
        let fee = asset.withdrawal_fee;
        let total = amount.0.checked_add(fee).ok_or(RejectReason::Overflow)?;
        let index = *self
            .account_index
            .get(&account)
            .ok_or(RejectReason::InsufficientBalance)?;
        if self.hot[index as usize].locked {
            return Err(RejectReason::AccountLocked);
        }
        if self.available_of(index, asset_id) < total {
            return Err(RejectReason::InsufficientBalance);
        }
        self.withdrawals.insert(
            request,
            Withdrawal {
                account,
                asset: asset_id,
                amount: amount.0,
                fee,
                state: WithdrawalState::Pending,
            },
        );
        self.emit(
            events,
            EventKind::WithdrawalHeld {
                request,
                account,
                asset: asset_id,
                amount,
                fee: Amount(fee),
            },
        );
        self.lock(index, asset_id, total);
        Ok(())
    }

    pub(crate) fn withdraw_finish(
        &mut self,
        request: RequestId,
        confirm: bool,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let withdrawal = *self
            .withdrawals
            .get(&request)
            .ok_or(RejectReason::UnknownRequest)?;
        if withdrawal.state != WithdrawalState::Pending {
            return Err(RejectReason::RequestNotPending);
        }
        let index = self.account_or_open(withdrawal.account);
        let total = withdrawal.amount + withdrawal.fee;
        let (account, asset, amount, fee) = (
            withdrawal.account,
            withdrawal.asset,
            Amount(withdrawal.amount),
            Amount(withdrawal.fee),
        );
        if confirm {
            self.emit(
                events,
                EventKind::WithdrawalConfirmed {
                    request,
                    account,
                    asset,
                    amount,
                    fee,
                },
            );
            self.spend_locked(index, asset, total);
            let fee_account = WITHDRAWAL_FEES_INDEX;
            if withdrawal.fee > 0 {
                self.credit(fee_account, asset, withdrawal.fee);
            }
            if let Some(listed) = self.assets[asset.0 as usize].as_mut() {
                listed.withdrawn += withdrawal.amount;
            }
        } else {
            self.emit(
                events,
                EventKind::WithdrawalReleased {
                    request,
                    account,
                    asset,
                    amount,
                    fee,
                },
            );
            self.unlock(index, asset, total);
        }
        if let Some(record) = self.withdrawals.get_mut(&request) {
            record.state = if confirm {
                WithdrawalState::Confirmed
            } else {
                WithdrawalState::Released
            };
        }
        Ok(())
    }

    pub(crate) fn transfer(
        &mut self,
        request: RequestId,
        from: AccountId,
        to: AccountId,
        asset: AssetId,
        amount: Amount,
        events: &mut Vec<Event>,
    ) -> Outcome {
        self.asset(asset).ok_or(RejectReason::UnknownAsset)?;
        if amount.is_zero() {
            return Err(RejectReason::InvalidAmount);
        }
        if from == to {
            return Err(RejectReason::SameAccount);
        }
        // The holders' fees leave only through the weekly payout, and the payout account
        // holds exactly what open weeks owe: no transfer touches either.
        if from == FEES_HOLDERS || from == DAO_PAYOUTS || to == DAO_PAYOUTS {
            return Err(RejectReason::SystemAccount);
        }
        if self.withdrawals.contains_key(&request) || self.transfers.contains_key(&request) {
            return Err(RejectReason::DuplicateRequest);
        }
        let source = *self
            .account_index
            .get(&from)
            .ok_or(RejectReason::InsufficientBalance)?;
        if self.hot[source as usize].locked {
            return Err(RejectReason::AccountLocked);
        }
        if self.available_of(source, asset) < amount.0 {
            return Err(RejectReason::InsufficientBalance);
        }
        let target = self.account_or_open(to);
        self.transfers.insert(
            request,
            TransferInfo {
                from,
                to,
                asset,
                amount,
            },
        );
        self.emit(
            events,
            EventKind::Transferred {
                request,
                from,
                to,
                asset,
                amount,
            },
        );
        let cell = self.cell(source, asset);
        cell.available -= amount.0;
        self.credit(target, asset, amount.0);
        Ok(())
    }

    pub(crate) fn gateway_settle(
        &mut self,
        request: RequestId,
        merchant: AccountId,
        asset: AssetId,
        amount: Amount,
        fee_ppm: u32,
        events: &mut Vec<Event>,
    ) -> Outcome {
        self.asset(asset).ok_or(RejectReason::UnknownAsset)?;
        if amount.is_zero() {
            return Err(RejectReason::InvalidAmount);
        }
        if fee_ppm > MAX_FEE_PPM {
            return Err(RejectReason::InvalidFee);
        }
        if merchant < FIRST_USER_ACCOUNT {
            return Err(RejectReason::SystemAccount);
        }
        if self.withdrawals.contains_key(&request) || self.transfers.contains_key(&request) {
            return Err(RejectReason::DuplicateRequest);
        }
        if self.available_of(GATEWAY_INDEX, asset) < amount.0 {
            return Err(RejectReason::InsufficientBalance);
        }
        let fee = fee_for(amount.0, fee_ppm);
        let target = self.account_or_open(merchant);
        self.transfers.insert(
            request,
            TransferInfo {
                from: GATEWAY,
                to: merchant,
                asset,
                amount,
            },
        );
        self.emit(
            events,
            EventKind::GatewaySettled {
                request,
                merchant,
                asset,
                amount,
                fee: Amount(fee),
            },
        );
        let cell = self.cell(GATEWAY_INDEX, asset);
        cell.available -= amount.0;
        if amount.0 > fee {
            self.credit(target, asset, amount.0 - fee);
        }
        self.collect_fee(asset, fee);
        Ok(())
    }

    pub(crate) fn list_asset(
        &mut self,
        id: AssetId,
        symbol: &str,
        decimals: u8,
        fees_shared: bool,
        withdrawal_fee: Amount,
        events: &mut Vec<Event>,
    ) -> Outcome {
        if id.0 >= MAX_ASSETS {
            return Err(RejectReason::UnknownAsset);
        }
        if self.asset(id).is_some() {
            return Err(RejectReason::AssetExists);
        }
        if !valid_symbol(symbol) || self.assets.iter().flatten().any(|a| a.symbol == symbol) {
            return Err(RejectReason::InvalidSymbol);
        }
        if decimals > MAX_DECIMALS {
            return Err(RejectReason::InvalidDecimals);
        }
        let slot = id.0 as usize;
        if self.assets.len() <= slot {
            self.assets.resize(slot + 1, None);
            self.restride(slot + 1);
        }
        self.assets[slot] = Some(Asset {
            id,
            symbol: symbol.to_owned(),
            decimals,
            fees_shared,
            withdrawal_fee: withdrawal_fee.0,
            withdrawal_minimum: 0,
            deposited: 0,
            withdrawn: 0,
            shared_fees: 0,
            holders_credited: 0,
        });
        self.emit(
            events,
            EventKind::AssetListed {
                asset: id,
                symbol: symbol.to_owned(),
                decimals,
                fees_shared,
                withdrawal_fee,
            },
        );
        Ok(())
    }

    pub(crate) fn set_withdrawal_fee(
        &mut self,
        id: AssetId,
        fee: Amount,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let asset = self
            .assets
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(RejectReason::UnknownAsset)?;
        asset.withdrawal_fee = fee.0;
        self.emit(events, EventKind::WithdrawalFeeSet { asset: id, fee });
        Ok(())
    }

    pub(crate) fn set_withdrawal_minimum(
        &mut self,
        id: AssetId,
        minimum: Amount,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let asset = self
            .assets
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(RejectReason::UnknownAsset)?;
        if minimum.is_zero() {
            return Err(RejectReason::InvalidAmount);
        }
        asset.withdrawal_minimum = minimum.0;
        self.emit(
            events,
            EventKind::WithdrawalMinimumSet { asset: id, minimum },
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn list_market(
        &mut self,
        id: MarketId,
        base: AssetId,
        quote: AssetId,
        lot_size: Amount,
        tick_size: Amount,
        min_notional: Amount,
        events: &mut Vec<Event>,
    ) -> Outcome {
        if id.0 >= MAX_MARKETS {
            return Err(RejectReason::UnknownMarket);
        }
        if self.market(id).is_some() {
            return Err(RejectReason::MarketExists);
        }
        let base_decimals = self.asset(base).ok_or(RejectReason::UnknownAsset)?.decimals;
        self.asset(quote).ok_or(RejectReason::UnknownAsset)?;
        if base == quote {
            return Err(RejectReason::InvalidMarket);
        }
        let unit = notional_unit(base_decimals, lot_size.0, tick_size.0)
            .ok_or(RejectReason::InvalidMarket)?;
        let slot = id.0 as usize;
        if self.markets.len() <= slot {
            self.markets.resize_with(slot + 1, || None);
        }
        self.markets[slot] = Some(Market {
            id,
            base,
            quote,
            lot_size: lot_size.0,
            tick_size: tick_size.0,
            min_notional: min_notional.0,
            notional_unit: unit,
            status: MarketStatus::Trading,
            last_price: None,
            book: OrderBook::new(),
            rising: BTreeMap::new(),
            falling: BTreeMap::new(),
            stop_keys: FxHashMap::default(),
        });
        self.emit(
            events,
            EventKind::MarketListed {
                market: id,
                base,
                quote,
                lot_size,
                tick_size,
                min_notional,
            },
        );
        Ok(())
    }

    pub(crate) fn set_market_status(
        &mut self,
        id: MarketId,
        status: MarketStatus,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let market = self
            .markets
            .get_mut(id.0 as usize)
            .and_then(Option::as_mut)
            .ok_or(RejectReason::UnknownMarket)?;
        market.status = status;
        self.emit(
            events,
            EventKind::MarketStatusChanged { market: id, status },
        );
        Ok(())
    }

    pub(crate) fn set_fee_schedule(
        &mut self,
        tiers: &[FeeTier],
        events: &mut Vec<Event>,
    ) -> Outcome {
        if !valid_fee_schedule(tiers) {
            return Err(RejectReason::InvalidFeeSchedule);
        }
        self.params.fee_tiers = tiers.to_vec();
        self.emit(
            events,
            EventKind::FeeScheduleSet {
                tiers: tiers.to_vec(),
            },
        );
        Ok(())
    }

    pub(crate) fn set_account_fee_tier(
        &mut self,
        account: AccountId,
        tier: u8,
        events: &mut Vec<Event>,
    ) -> Outcome {
        if usize::from(tier) >= self.params.fee_tiers.len() {
            return Err(RejectReason::UnknownFeeTier);
        }
        let index = self.account_or_open(account);
        self.hot[index as usize].fee_tier = tier;
        self.emit(events, EventKind::AccountFeeTierSet { account, tier });
        Ok(())
    }

    pub(crate) fn set_holders_share(&mut self, share_ppm: u32, events: &mut Vec<Event>) -> Outcome {
        if share_ppm > PPM {
            return Err(RejectReason::InvalidShare);
        }
        self.params.holders_share_ppm = share_ppm;
        // A new rate starts a new running total, so the carry stays exact under each rate.
        for asset in self.assets.iter_mut().flatten() {
            asset.shared_fees = 0;
            asset.holders_credited = 0;
        }
        self.emit(events, EventKind::HoldersShareSet { share_ppm });
        Ok(())
    }

    pub(crate) fn set_open_order_limit(&mut self, max: u32, events: &mut Vec<Event>) -> Outcome {
        if max == 0 || max > MAX_OPEN_ORDER_LIMIT {
            return Err(RejectReason::InvalidLimit);
        }
        self.params.max_open_orders = max;
        self.emit(
            events,
            EventKind::OpenOrderLimitSet {
                max_open_orders: max,
            },
        );
        Ok(())
    }

    pub(crate) fn set_account_lock(
        &mut self,
        account: AccountId,
        locked: bool,
        events: &mut Vec<Event>,
    ) -> Outcome {
        if account < FIRST_USER_ACCOUNT {
            return Err(RejectReason::SystemAccount);
        }
        let index = self.account_or_open(account);
        if locked && self.hot[index as usize].open_orders > 0 {
            for market in 0..self.markets.len() {
                let id = MarketId(u32::try_from(market).unwrap_or(u32::MAX));
                if self.markets[market].is_some() {
                    self.cancel_every_open(index, id, events);
                }
            }
        }
        self.hot[index as usize].locked = locked;
        self.emit(events, EventKind::AccountLockSet { account, locked });
        Ok(())
    }

    pub(crate) fn set_gateway_fee(&mut self, fee_ppm: u32, events: &mut Vec<Event>) -> Outcome {
        if fee_ppm > MAX_FEE_PPM {
            return Err(RejectReason::InvalidFee);
        }
        self.params.gateway_fee_ppm = fee_ppm;
        self.emit(events, EventKind::GatewayFeeSet { fee_ppm });
        Ok(())
    }

    /// The fee rate (ppm) of a dense account index.
    #[inline(always)]
    pub(crate) fn fee_rate(&self, account: u32, maker: bool) -> u32 {
        let tiers = &self.params.fee_tiers;
        let tier = usize::from(self.hot[account as usize].fee_tier).min(tiers.len() - 1);
        if maker {
            tiers[tier].maker_ppm
        } else {
            tiers[tier].taker_ppm
        }
    }

    /// Rejects system accounts where only users may act.
    pub(crate) fn user_account(&self, account: AccountId) -> Result<Option<u32>, RejectReason> {
        if account < FIRST_USER_ACCOUNT {
            return Err(RejectReason::SystemAccount);
        }
        Ok(self.account_index.get(&account).copied())
    }
}

/// Whether a fee schedule has 1 to 16 tiers with every rate at most 10%.
pub(crate) fn valid_fee_schedule(tiers: &[FeeTier]) -> bool {
    !tiers.is_empty()
        && tiers.len() <= MAX_FEE_TIERS
        && tiers
            .iter()
            .all(|t| t.maker_ppm <= MAX_FEE_PPM && t.taker_ppm <= MAX_FEE_PPM)
}

/// Quote units per lot per tick, `lot_size × tick_size / 10^base_decimals`, if both sizes are
/// positive and the division is exact (so every trade's quote amount is an integer).
pub(crate) fn notional_unit(base_decimals: u8, lot_size: u128, tick_size: u128) -> Option<u128> {
    if lot_size == 0 || tick_size == 0 {
        return None;
    }
    let scale = 10u128.checked_pow(u32::from(base_decimals))?;
    let product = lot_size.checked_mul(tick_size)?;
    (product % scale == 0).then_some(product / scale)
}

fn valid_symbol(symbol: &str) -> bool {
    (1..=16).contains(&symbol.len())
        && symbol
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}
