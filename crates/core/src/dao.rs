//! The DAO revenue share inside the exchange core: the weekly close, the holdings snapshot and
//! the payout of the holders' fee account to COSS holders.
//!
//! - **Close.** When the schedule's close time has come (the engine injects `CloseWeek` before
//!   the first command at or after it, so a week closes at the exact instant even after
//!   downtime), the core records every user account's COSS holding (available + locked) and
//!   moves each asset's balance of the holders' fee account (`FEES_HOLDERS`) into the payout
//!   account (`DAO_PAYOUTS`): that is the week's pool. Fees charged later belong to the next
//!   week.
//! - **Chain holdings.** COSS held in users' own Ethereum addresses is read outside (at the
//!   first block at or after the close) and added in numbered parts, so a retried part is
//!   refused rather than counted twice.
//! - **Seal.** Accounts below the minimum holding drop out; the holders are sorted by account
//!   and their total fixed.
//! - **Pay.** Each holder receives `floor(pool × holding / total)` of each pool asset (see
//!   [`share`]) as a fee-free credit from `DAO_PAYOUTS`, in chunks of bounded size so trading
//!   goes on between them; when an asset is done, what rounding left over returns to
//!   `FEES_HOLDERS` and is part of next week's pool. A (week, asset, holder) is paid once: the
//!   week's cursor only moves forward, and every step is a journaled command.
//!
//! Weeks are handled strictly in order: only the oldest open week takes chain holdings, is
//! sealed or paid.

use crate::event::{Event, EventKind, RejectReason};
use crate::{
    DAO_PAYOUTS, Exchange, FEES_HOLDERS, FIRST_USER_ACCOUNT, Outcome, WithdrawalState,
    invariant_broken,
};
use coss_types::{AccountId, Amount, AssetId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Most chain-holding entries one command may carry.
pub const MAX_CHAIN_HOLDINGS: usize = 10_000;
/// Most holders one `PayWeek` command pays (each in every pool asset).
pub const MAX_PAY_CHUNK: u32 = 100_000;

/// When weeks close and what counts as a holding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaoSchedule {
    /// The COSS asset.
    pub coss: AssetId,
    /// The next close (ms since the Unix epoch).
    pub next_close_ms: u64,
    /// Time between closes (a week: 604,800,000 ms).
    pub period_ms: u64,
    /// Accounts holding less (platform plus chain) receive nothing that week.
    pub min_holding: Amount,
}

/// One asset's pool of a week.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The asset.
    pub asset: AssetId,
    /// What the holders' fee account held at the close.
    pub pool: Amount,
    /// Paid out so far.
    pub paid: Amount,
    /// Holders credited a non-zero amount so far.
    pub credited: u32,
}

/// Where a week is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WeekStage {
    /// Closed; chain holdings may still be added.
    Collecting,
    /// Holders and total fixed; being paid.
    Sealed,
}

/// A closed week that is not paid out completely yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Week {
    pub(crate) close_ms: u64,
    pub(crate) stage: WeekStage,
    /// Collecting: platform holdings at the close, ascending by account. Sealed: every holder
    /// at or above the minimum, ascending by account, platform and chain together.
    pub(crate) holders: Vec<(AccountId, u128)>,
    /// Sealed: each holder's dense account index (the accounts are opened at the seal), so a
    /// payout credits without a lookup. Not part of the canonical form.
    pub(crate) dense: Vec<u32>,
    /// Chain holdings added so far (collecting only).
    pub(crate) chain: BTreeMap<AccountId, u128>,
    /// Chain-holding parts accepted.
    pub(crate) chain_parts: u32,
    /// Collecting: platform and chain holdings so far. Sealed: the holders' total.
    pub(crate) total: u128,
    pub(crate) pools: Vec<Pool>,
    /// Payment cursor: the next holder to pay (every pool at once).
    pub(crate) holder_at: u32,
}

/// The DAO part of the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Dao {
    pub(crate) schedule: Option<DaoSchedule>,
    pub(crate) weeks: VecDeque<Week>,
}

/// A week as the outside sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeekView {
    /// Its close (ms since the Unix epoch); the week's identity.
    pub close_ms: u64,
    /// Collecting or sealed.
    pub stage: WeekStage,
    /// Chain-holding parts accepted.
    pub chain_parts: u32,
    /// Holders (sealed: the final list).
    pub holders: u32,
    /// Total holding (collecting: everything so far, before the minimum; sealed: the holders').
    pub total: Amount,
    /// The pools, ascending by asset.
    pub pools: Vec<Pool>,
    /// Holders paid so far (sealed weeks).
    pub paid_holders: u32,
}

/// `floor(pool × holding / total)`: a holder's exact share of a pool, rounded down. Requires
/// `holding ≤ total` (then the result is at most `pool`); 0 when `total` is 0.
#[must_use]
pub fn share(pool: u128, holding: u128, total: u128) -> u128 {
    if total == 0 || holding == 0 {
        return 0;
    }
    debug_assert!(holding <= total);
    if let Some(product) = pool.checked_mul(holding) {
        return product / total;
    }
    // pool = q × total + r: pool × holding / total = q × holding + r × holding / total, and
    // q × holding ≤ pool cannot overflow.
    share_of(pool / total, pool % total, holding, total)
}

/// [`share`] with `pool = q × total + r` already divided: `q × holding + r × holding / total`
/// (`q × holding ≤ pool` cannot overflow).
#[inline]
#[must_use]
pub fn share_of(q: u128, r: u128, holding: u128, total: u128) -> u128 {
    let whole = q * holding;
    match r.checked_mul(holding) {
        Some(rest) => whole + rest / total,
        None => whole + mul_div_wide(r, holding, total),
    }
}

/// `floor(a × b / c)` through a 256-bit product, for `a, b < c` (so the result fits).
fn mul_div_wide(a: u128, b: u128, c: u128) -> u128 {
    const HALF: u32 = 64;
    let mask = u128::from(u64::MAX);
    let (a_hi, a_lo) = (a >> HALF, a & mask);
    let (b_hi, b_lo) = (b >> HALF, b & mask);
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_hi = a_hi * b_hi;
    let cross = (lo_lo >> HALF) + (hi_lo & mask) + (lo_hi & mask);
    let low = (cross << HALF) | (lo_lo & mask);
    let high = hi_hi + (hi_lo >> HALF) + (lo_hi >> HALF) + (cross >> HALF);
    // Long division of (high, low) by c, one bit at a time; high < c because a, b < c.
    let mut remainder = high;
    let mut quotient = 0u128;
    for bit in (0..128).rev() {
        let carry = remainder >> 127;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        quotient <<= 1;
        if carry == 1 || remainder >= c {
            remainder = remainder.wrapping_sub(c);
            quotient |= 1;
        }
    }
    quotient
}

impl Exchange {
    /// The holders' share of shareable fees (parts per million).
    #[must_use]
    pub fn holders_share_ppm(&self) -> u32 {
        self.params.holders_share_ppm
    }

    /// The DAO schedule, if set.
    #[must_use]
    pub fn dao_schedule(&self) -> Option<DaoSchedule> {
        self.dao.schedule
    }

    /// The close that is due at `time_ms`, if any: the engine closes it (a `CloseWeek`
    /// command) before applying anything stamped at or after it.
    #[must_use]
    pub fn week_close_due(&self, time_ms: u64) -> Option<u64> {
        let schedule = self.dao.schedule?;
        (time_ms >= schedule.next_close_ms).then_some(schedule.next_close_ms)
    }

    /// The weeks closed and not yet paid out completely, oldest first.
    #[must_use]
    pub fn dao_weeks(&self) -> Vec<WeekView> {
        self.dao
            .weeks
            .iter()
            .map(|w| WeekView {
                close_ms: w.close_ms,
                stage: w.stage,
                chain_parts: w.chain_parts,
                holders: u32::try_from(w.holders.len()).unwrap_or(u32::MAX),
                total: Amount(w.total),
                pools: w.pools.clone(),
                paid_holders: w.holder_at,
            })
            .collect()
    }

    /// A sealed week's holders (ascending by account) with their holdings.
    #[must_use]
    pub fn dao_holders(&self, close_ms: u64) -> Option<Vec<(AccountId, Amount)>> {
        let week = self.dao.weeks.iter().find(|w| w.close_ms == close_ms)?;
        (week.stage == WeekStage::Sealed)
            .then(|| week.holders.iter().map(|&(a, h)| (a, Amount(h))).collect())
    }

    pub(crate) fn set_dao_schedule(
        &mut self,
        schedule: DaoSchedule,
        events: &mut Vec<Event>,
    ) -> Outcome {
        self.asset(schedule.coss)
            .ok_or(RejectReason::UnknownAsset)?;
        if schedule.period_ms == 0 {
            return Err(RejectReason::InvalidSchedule);
        }
        // A close already passed would be due at once, and would snapshot the present as the
        // past: a new schedule starts in the future (after the last closed week).
        let last_close = self.dao.weeks.back().map_or(0, |w| w.close_ms);
        if schedule.next_close_ms <= self.time_ms || schedule.next_close_ms <= last_close {
            return Err(RejectReason::InvalidSchedule);
        }
        self.dao.schedule = Some(schedule);
        self.emit(
            events,
            EventKind::DaoScheduleSet {
                coss: schedule.coss,
                next_close_ms: schedule.next_close_ms,
                period_ms: schedule.period_ms,
                min_holding: schedule.min_holding,
            },
        );
        Ok(())
    }

    pub(crate) fn close_week(&mut self, close_ms: u64, events: &mut Vec<Event>) -> Outcome {
        let mut schedule = self.dao.schedule.ok_or(RejectReason::DaoNotConfigured)?;
        if close_ms != schedule.next_close_ms {
            return Err(RejectReason::UnknownWeek);
        }
        if self.time_ms < close_ms {
            return Err(RejectReason::WeekNotDue);
        }
        // Platform holdings: every user account's COSS, available and locked in orders. COSS
        // held for a pending withdrawal is on its way to an address, where the chain holdings
        // count it: counted here too, it would count twice. (If the withdrawal is released
        // later, it missed this week: never counted twice beats always counted.)
        let coss = schedule.coss;
        let mut in_flight: BTreeMap<AccountId, u128> = BTreeMap::new();
        for w in self.withdrawals.values() {
            if w.asset == coss && w.state == WithdrawalState::Pending {
                let sum = in_flight.entry(w.account).or_default();
                *sum = sum.saturating_add(w.amount.saturating_add(w.fee));
            }
        }
        let mut holders = Vec::new();
        if (coss.0 as usize) < self.stride {
            for (index, account) in self.hot.iter().enumerate() {
                if account.id < FIRST_USER_ACCOUNT {
                    continue;
                }
                let cell = &self.cells[index * self.stride + coss.0 as usize];
                let leaving = in_flight.get(&account.id).copied().unwrap_or(0);
                let holding = (cell.available + cell.locked).saturating_sub(leaving);
                if holding > 0 {
                    holders.push((account.id, holding));
                }
            }
        }
        holders.sort_unstable_by_key(|&(account, _)| account);
        // The pools: what the holders' fee account holds now moves to the payout account.
        let source = self.account_index_of(FEES_HOLDERS);
        let target = self.account_index_of(DAO_PAYOUTS);
        let mut pools = Vec::new();
        for id in 0..self.stride {
            let asset = AssetId(u32::try_from(id).unwrap_or(u32::MAX));
            let amount = self.available_of(source, asset);
            if amount == 0 {
                continue;
            }
            self.cell(source, asset).available -= amount;
            self.credit(target, asset, amount);
            pools.push(Pool {
                asset,
                pool: Amount(amount),
                paid: Amount::ZERO,
                credited: 0,
            });
        }
        let count = u32::try_from(holders.len()).unwrap_or(u32::MAX);
        // Every unit of COSS is in some balance, so the sum fits.
        let total = holders.iter().map(|&(_, h)| h).sum();
        self.dao.weeks.push_back(Week {
            close_ms,
            stage: WeekStage::Collecting,
            holders,
            dense: Vec::new(),
            chain: BTreeMap::new(),
            chain_parts: 0,
            total,
            pools,
            holder_at: 0,
        });
        schedule.next_close_ms = close_ms.saturating_add(schedule.period_ms);
        self.dao.schedule = Some(schedule);
        self.emit(
            events,
            EventKind::WeekClosed {
                close_ms,
                holders: count,
                next_close_ms: schedule.next_close_ms,
            },
        );
        Ok(())
    }

    /// The oldest open week, if it is `close_ms`.
    fn oldest_week(&self, close_ms: u64) -> Result<usize, RejectReason> {
        match self.dao.weeks.iter().position(|w| w.close_ms == close_ms) {
            Some(0) => Ok(0),
            Some(_) => Err(RejectReason::EarlierWeekOpen),
            None => Err(RejectReason::UnknownWeek),
        }
    }

    pub(crate) fn add_chain_holdings(
        &mut self,
        close_ms: u64,
        part: u32,
        holdings: &[(AccountId, Amount)],
        events: &mut Vec<Event>,
    ) -> Outcome {
        let at = self.oldest_week(close_ms)?;
        let week = &self.dao.weeks[at];
        if week.stage != WeekStage::Collecting {
            return Err(RejectReason::WeekSealed);
        }
        if part < week.chain_parts {
            return Err(RejectReason::DuplicateRequest);
        }
        if part > week.chain_parts {
            return Err(RejectReason::PartOutOfOrder);
        }
        if holdings.is_empty() || holdings.len() > MAX_CHAIN_HOLDINGS {
            return Err(RejectReason::InvalidAmount);
        }
        let mut added = 0u128;
        for &(account, amount) in holdings {
            if account < FIRST_USER_ACCOUNT {
                return Err(RejectReason::SystemAccount);
            }
            if amount.is_zero() {
                return Err(RejectReason::InvalidAmount);
            }
            added = added.checked_add(amount.0).ok_or(RejectReason::Overflow)?;
        }
        // All holdings together stay within `u128`, so nothing below can overflow.
        let total = week
            .total
            .checked_add(added)
            .ok_or(RejectReason::Overflow)?;
        let week = &mut self.dao.weeks[at];
        week.total = total;
        for &(account, amount) in holdings {
            *week.chain.entry(account).or_default() += amount.0;
        }
        week.chain_parts += 1;
        self.emit(
            events,
            EventKind::ChainHoldingsAdded {
                close_ms,
                part,
                entries: u32::try_from(holdings.len()).unwrap_or(u32::MAX),
                amount: Amount(added),
            },
        );
        Ok(())
    }

    pub(crate) fn seal_week(
        &mut self,
        close_ms: u64,
        chain_parts: u32,
        events: &mut Vec<Event>,
    ) -> Outcome {
        let at = self.oldest_week(close_ms)?;
        let min = self.dao.schedule.map_or(0, |s| s.min_holding.0);
        let week = &mut self.dao.weeks[at];
        if week.stage != WeekStage::Collecting {
            return Err(RejectReason::WeekSealed);
        }
        if chain_parts != week.chain_parts {
            return Err(RejectReason::PartOutOfOrder);
        }
        // Merge the two ascending lists, then apply the minimum.
        let platform = std::mem::take(&mut week.holders);
        let chain = std::mem::take(&mut week.chain);
        let mut merged = Vec::with_capacity(platform.len() + chain.len());
        let mut chain = chain.into_iter().peekable();
        for (account, holding) in platform {
            while let Some(&(c, h)) = chain.peek() {
                if c >= account {
                    break;
                }
                merged.push((c, h));
                chain.next();
            }
            match chain.peek() {
                Some(&(c, h)) if c == account => {
                    merged.push((account, holding + h));
                    chain.next();
                }
                _ => merged.push((account, holding)),
            }
        }
        merged.extend(chain);
        merged.retain(|&(_, holding)| holding >= min.max(1));
        // At most the collected total, which fits.
        let total = merged.iter().map(|&(_, h)| h).sum();
        let dense = merged
            .iter()
            .map(|&(account, _)| self.account_or_open(account))
            .collect();
        let week = &mut self.dao.weeks[at];
        week.dense = dense;
        week.holders = merged;
        week.total = total;
        week.stage = WeekStage::Sealed;
        let holders = u32::try_from(week.holders.len()).unwrap_or(u32::MAX);
        self.emit(
            events,
            EventKind::WeekSealed {
                close_ms,
                holders,
                total: Amount(total),
            },
        );
        Ok(())
    }

    /// Pays up to `max` more holders every pool of the week, holder by holder (each
    /// holder's balances sit together, so this walks memory in order); after the last
    /// holder, the rounding remainders return to `FEES_HOLDERS` and the week ends.
    pub(crate) fn pay_week(&mut self, close_ms: u64, max: u32, events: &mut Vec<Event>) -> Outcome {
        let at = self.oldest_week(close_ms)?;
        if self.dao.weeks[at].stage != WeekStage::Sealed {
            return Err(RejectReason::WeekNotSealed);
        }
        if max == 0 || max > MAX_PAY_CHUNK {
            return Err(RejectReason::InvalidLimit);
        }
        let payouts = self.account_index_of(DAO_PAYOUTS);
        let mut week = std::mem::replace(
            &mut self.dao.weeks[at],
            Week {
                close_ms,
                stage: WeekStage::Sealed,
                holders: Vec::new(),
                dense: Vec::new(),
                chain: BTreeMap::new(),
                chain_parts: 0,
                total: 0,
                pools: Vec::new(),
                holder_at: 0,
            },
        );
        let start = week.holder_at as usize;
        let end = (start + max as usize).min(week.holders.len());
        let total = week.total;
        let divided: Vec<(AssetId, u128, u128)> = week
            .pools
            .iter()
            .map(|p| match total {
                0 => (p.asset, 0, 0),
                _ => (p.asset, p.pool.0 / total, p.pool.0 % total),
            })
            .collect();
        // One balance change per credit (and this command's own events): room for all.
        let credits = (end - start) * divided.len();
        events.reserve(credits + divided.len() + 2);
        self.touched.reserve(credits);
        let mut paid = vec![(0u128, 0u32); divided.len()];
        for (&(_, holding), &target) in week.holders[start..end].iter().zip(&week.dense[start..end])
        {
            for (&(asset, q, r), sum) in divided.iter().zip(paid.iter_mut()) {
                let amount = share_of(q, r, holding, total);
                if amount == 0 {
                    continue;
                }
                self.credit(target, asset, amount);
                sum.0 += amount;
                sum.1 += 1;
            }
        }
        for (pool, &(amount, credited)) in week.pools.iter_mut().zip(&paid) {
            pool.paid = Amount(pool.paid.0 + amount);
            pool.credited += credited;
            let cell = self.cell(payouts, pool.asset);
            cell.available = cell
                .available
                .checked_sub(amount)
                .unwrap_or_else(|| invariant_broken("payout exceeds the pool"));
        }
        week.holder_at = u32::try_from(end).unwrap_or(u32::MAX);
        if end < week.holders.len() {
            self.dao.weeks[at] = week;
            return Ok(());
        }
        // Every holder is paid: what rounding left returns to the holders' account.
        let holders_account = self.account_index_of(FEES_HOLDERS);
        for pool in &week.pools {
            let carried = pool.pool.0 - pool.paid.0;
            if carried > 0 {
                self.cell(payouts, pool.asset).available -= carried;
                self.credit(holders_account, pool.asset, carried);
            }
            self.emit(
                events,
                EventKind::DaoAssetPaid {
                    close_ms,
                    asset: pool.asset,
                    pool: pool.pool,
                    paid: pool.paid,
                    carried: Amount(carried),
                    holders: pool.credited,
                },
            );
        }
        self.dao.weeks.remove(at);
        self.emit(events, EventKind::WeekPaid { close_ms });
        Ok(())
    }

    /// The dense index of a system account (opened at creation).
    fn account_index_of(&self, account: AccountId) -> u32 {
        *self
            .account_index
            .get(&account)
            .unwrap_or_else(|| invariant_broken("system account missing"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The reference: 256-bit arithmetic through four 64-bit limbs, by schoolbook steps on
    /// `u128` with no shortcuts.
    fn reference(pool: u128, holding: u128, total: u128) -> u128 {
        // Binary long multiplication and division on a 256-bit value held as (hi, lo).
        let (mut hi, mut lo) = (0u128, 0u128);
        for bit in (0..128).rev() {
            hi = (hi << 1) | (lo >> 127);
            lo <<= 1;
            if (holding >> bit) & 1 == 1 {
                let (sum, carry) = lo.overflowing_add(pool);
                lo = sum;
                hi += u128::from(carry);
            }
        }
        let mut remainder = 0u128;
        let mut quotient = 0u128;
        for bit in (0..256).rev() {
            let next = if bit >= 128 {
                (hi >> (bit - 128)) & 1
            } else {
                (lo >> bit) & 1
            };
            let carry = remainder >> 127;
            remainder = (remainder << 1) | next;
            let q_bit = if carry == 1 || remainder >= total {
                remainder = remainder.wrapping_sub(total);
                1
            } else {
                0
            };
            if bit < 128 {
                quotient |= q_bit << bit;
            }
        }
        quotient
    }

    #[test]
    fn share_edges() {
        assert_eq!(share(100, 1, 3), 33);
        assert_eq!(share(0, 5, 10), 0);
        assert_eq!(share(7, 0, 10), 0);
        assert_eq!(share(7, 10, 10), 7);
        assert_eq!(share(u128::MAX, u128::MAX, u128::MAX), u128::MAX);
        assert_eq!(share(u128::MAX, 1, 2), u128::MAX / 2);
        assert_eq!(share(u128::MAX, u128::MAX - 1, u128::MAX), u128::MAX - 1);
    }

    proptest! {
        #[test]
        fn share_is_the_exact_floor(pool in any::<u128>(), a in any::<u128>(), b in any::<u128>()) {
            let (holding, total) = if a <= b { (a, b) } else { (b, a) };
            prop_assume!(total > 0);
            prop_assert_eq!(share(pool, holding, total), reference(pool, holding, total));
        }

        #[test]
        fn share_is_exact_for_realistic_sizes(pool in any::<u64>(), holding in 0u64..1 << 55, extra in 0u64..1 << 55) {
            let total = u128::from(holding) + u128::from(extra);
            prop_assume!(total > 0);
            let exact = u128::from(pool) * u128::from(holding) / total;
            prop_assert_eq!(share(u128::from(pool), u128::from(holding), total), exact);
        }
    }
}
