//! Fee arithmetic: the one rounding policy of the exchange.
//!
//! - A trading fee is `ceil(received × rate_ppm / 1,000,000)`: rounded in the platform's favour
//!   by less than one smallest unit, never more than what was received.
//! - The holders' part of shareable fees is kept exact in aggregate: after every fee, the
//!   holders have been credited `floor(total_shareable_fees × share_ppm / 1,000,000)` (a running
//!   carry, so thousands of tiny fees do not each round the holders down); the platform keeps
//!   the rest.

use crate::command::FeeTier;

/// Parts per million: 1,000,000 = 100%.
pub const PPM: u32 = 1_000_000;

/// The default maker-taker schedule: 7 volume tiers from 0.20% (taker, tier 0) down to
/// 0.04% (maker, tier 6).
#[must_use]
pub fn default_fee_schedule() -> Vec<FeeTier> {
    [
        (1_000, 2_000),
        (900, 1_800),
        (800, 1_600),
        (700, 1_400),
        (600, 1_200),
        (500, 1_000),
        (400, 800),
    ]
    .into_iter()
    .map(|(maker_ppm, taker_ppm)| FeeTier {
        maker_ppm,
        taker_ppm,
    })
    .collect()
}

/// `ceil(amount × rate_ppm / 10^6)` without overflow, for `rate_ppm ≤ 10^6`.
#[inline]
#[must_use]
pub fn fee_for(amount: u128, rate_ppm: u32) -> u128 {
    debug_assert!(rate_ppm <= PPM);
    if let Ok(small) = u64::try_from(amount) {
        // Fast path in 64-bit arithmetic: no 128-bit division.
        let (whole, rest) = (small / u64::from(PPM), small % u64::from(PPM));
        let rate = u64::from(rate_ppm);
        return u128::from(whole * rate + (rest * rate).div_ceil(u64::from(PPM)));
    }
    let (whole, rest) = (amount / u128::from(PPM), amount % u128::from(PPM));
    let rate = u128::from(rate_ppm);
    whole * rate + (rest * rate).div_ceil(u128::from(PPM))
}

/// `floor(amount × share_ppm / 10^6)` without overflow, for `share_ppm ≤ 10^6`.
#[inline]
#[must_use]
pub fn holders_part(amount: u128, share_ppm: u32) -> u128 {
    debug_assert!(share_ppm <= PPM);
    if let Ok(small) = u64::try_from(amount) {
        // Fast path in 64-bit arithmetic: no 128-bit division.
        let (whole, rest) = (small / u64::from(PPM), small % u64::from(PPM));
        let share = u64::from(share_ppm);
        return u128::from(whole * share + rest * share / u64::from(PPM));
    }
    let (whole, rest) = (amount / u128::from(PPM), amount % u128::from(PPM));
    let share = u128::from(share_ppm);
    whole * share + rest * share / u128::from(PPM)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fee_rounds_up_to_the_next_smallest_unit() {
        assert_eq!(fee_for(1_000_000, 2_000), 2_000);
        assert_eq!(fee_for(1, 2_000), 1);
        assert_eq!(fee_for(0, 2_000), 0);
        assert_eq!(fee_for(499, 2_000), 1);
        assert_eq!(fee_for(501, 2_000), 2);
        assert_eq!(fee_for(u128::MAX, PPM), u128::MAX);
    }

    #[test]
    fn default_schedule_spans_point_two_to_point_zero_four_percent() {
        let tiers = default_fee_schedule();
        assert_eq!(tiers.first().map(|t| t.taker_ppm), Some(2_000));
        assert_eq!(tiers.last().map(|t| t.maker_ppm), Some(400));
        assert!(
            tiers
                .windows(2)
                .all(|w| w[1].maker_ppm < w[0].maker_ppm && w[1].taker_ppm < w[0].taker_ppm)
        );
    }

    proptest! {
        #[test]
        fn fee_exceeds_the_exact_fee_by_less_than_one_unit(amount in any::<u64>(), rate in 0u32..=PPM) {
            let exact_times_ppm = u128::from(amount) * u128::from(rate);
            let fee = fee_for(u128::from(amount), rate);
            prop_assert!(fee * u128::from(PPM) >= exact_times_ppm);
            prop_assert!(fee * u128::from(PPM) < exact_times_ppm + u128::from(PPM));
            prop_assert!(fee <= u128::from(amount));
        }

        #[test]
        fn wide_and_narrow_fee_paths_agree(amount in any::<u128>(), rate in 0u32..=PPM) {
            let (whole, rest) = (amount / 1_000_000, amount % 1_000_000);
            let slow = whole * u128::from(rate) + (rest * u128::from(rate)).div_ceil(1_000_000);
            prop_assert_eq!(fee_for(amount, rate), slow);
        }

        #[test]
        fn holders_part_is_the_floor(amount in any::<u64>(), share in 0u32..=PPM) {
            let exact = u128::from(amount) * u128::from(share) / u128::from(PPM);
            prop_assert_eq!(holders_part(u128::from(amount), share), exact);
        }
    }
}
