//! An invoice's status as a pure function of its terms, its payments and the time: what the
//! reconciler applies (compare-and-set) whenever a payment or the clock moves. Coverage is
//! counted in parts per million of the price, summed over the accepted assets (each
//! payment's share is `floor(paid × 10^6 / due)`), so an invoice may be paid in several
//! assets and integer arithmetic decides every boundary.

use coss_store::InvoiceStatus;

/// Some of the price arrived, not enough.
pub const PAID_PARTIAL: i64 = 1;
/// More than the price arrived.
pub const PAID_OVER: i64 = 2;
/// Enough arrived, but only after the invoice expired.
pub const PAID_LATE: i64 = 4;
/// The merchant set the status by hand.
pub const MARKED: i64 = 8;

/// Parts per million.
pub const PPM: u128 = 1_000_000;

/// The names of the flags set in `flags`, for the API.
#[must_use]
pub fn flag_names(flags: i64) -> Vec<&'static str> {
    [
        (PAID_PARTIAL, "paid_partial"),
        (PAID_OVER, "paid_over"),
        (PAID_LATE, "paid_late"),
        (MARKED, "marked"),
    ]
    .into_iter()
    .filter(|(bit, _)| flags & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

/// One payment as the model counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paid {
    /// Index of its asset in the invoice's dues.
    pub asset: usize,
    /// Smallest units.
    pub amount: u128,
    /// Has its confirmations (a balance payment always has).
    pub confirmed: bool,
    /// When the platform first saw it (Unix ms).
    pub seen_at: i64,
}

/// What an invoice asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Terms {
    /// Expiry (Unix ms).
    pub expires_at: i64,
    /// End of monitoring (Unix ms).
    pub monitor_until: i64,
    /// Accepted shortfall, ppm.
    pub tolerance_ppm: u128,
}

/// How much of the price `payments` cover, in ppm (saturating).
#[must_use]
pub fn coverage<'a>(dues: &[u128], payments: impl IntoIterator<Item = &'a Paid>) -> u128 {
    let mut paid = vec![0u128; dues.len()];
    for p in payments {
        if let Some(slot) = paid.get_mut(p.asset) {
            *slot = slot.saturating_add(p.amount);
        }
    }
    paid.iter()
        .zip(dues)
        .map(|(paid, due)| paid.saturating_mul(PPM) / (*due).max(1))
        .fold(0u128, u128::saturating_add)
}

/// Whether `covered` ppm pays the price within the tolerance.
#[must_use]
pub fn enough(covered: u128, terms: &Terms) -> bool {
    covered.saturating_add(terms.tolerance_ppm) >= PPM
}

/// The status and flags an invoice should have now.
#[must_use]
pub fn assess(
    status: InvoiceStatus,
    flags: i64,
    terms: &Terms,
    dues: &[u128],
    payments: &[Paid],
    now: i64,
) -> (InvoiceStatus, i64) {
    use InvoiceStatus as S;
    let seen = coverage(dues, payments);
    let on_time = coverage(
        dues,
        payments.iter().filter(|p| p.seen_at < terms.expires_at),
    );
    let confirmed = coverage(dues, payments.iter().filter(|p| p.confirmed));
    let mut flags = flags & !(PAID_PARTIAL | PAID_OVER);
    if seen > 0 && !enough(seen, terms) {
        flags |= PAID_PARTIAL;
    }
    if seen > PPM {
        flags |= PAID_OVER;
    }
    // A status the merchant set stays; so does a settlement (refunds do not reopen it).
    if flags & MARKED != 0 || status == S::Settled {
        return (status, flags);
    }
    let next = match status {
        S::New | S::Processing if enough(on_time, terms) => {
            if enough(confirmed, terms) {
                S::Settled
            } else if now > terms.monitor_until {
                // Never confirmed within the whole monitoring window.
                S::Invalid
            } else {
                S::Processing
            }
        }
        // A payment that had covered it left the chain (a reorg) after it expired.
        S::Processing if now >= terms.expires_at => S::Invalid,
        S::New | S::Processing if now >= terms.expires_at => S::Expired,
        S::New | S::Processing => S::New,
        S::Expired | S::Invalid => status,
        S::Settled => S::Settled,
    };
    if next == S::Expired && enough(seen, terms) {
        flags |= PAID_LATE;
    } else if next == S::Expired {
        flags &= !PAID_LATE;
    }
    (next, flags)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use InvoiceStatus as S;
    use proptest::prelude::*;

    const TERMS: Terms = Terms {
        expires_at: 1_000,
        monitor_until: 10_000,
        tolerance_ppm: 0,
    };

    fn paid(amount: u128, confirmed: bool, seen_at: i64) -> Paid {
        Paid {
            asset: 0,
            amount,
            confirmed,
            seen_at,
        }
    }

    #[test]
    fn an_invoice_goes_new_processing_settled_as_its_payment_confirms() {
        let dues = [100];
        assert_eq!(assess(S::New, 0, &TERMS, &dues, &[], 10), (S::New, 0));
        let seen = [paid(100, false, 10)];
        assert_eq!(
            assess(S::New, 0, &TERMS, &dues, &seen, 20),
            (S::Processing, 0)
        );
        let confirmed = [paid(100, true, 10)];
        assert_eq!(
            assess(S::Processing, 0, &TERMS, &dues, &confirmed, 2_000),
            (S::Settled, 0)
        );
    }

    #[test]
    fn underpaid_stays_new_then_expires_partial_and_a_late_top_up_is_paid_late() {
        let dues = [100];
        let part = [paid(60, true, 10)];
        assert_eq!(
            assess(S::New, 0, &TERMS, &dues, &part, 20),
            (S::New, PAID_PARTIAL)
        );
        assert_eq!(
            assess(S::New, PAID_PARTIAL, &TERMS, &dues, &part, 1_000),
            (S::Expired, PAID_PARTIAL)
        );
        let topped = [paid(60, true, 10), paid(40, false, 1_500)];
        assert_eq!(
            assess(S::Expired, PAID_PARTIAL, &TERMS, &dues, &topped, 1_600),
            (S::Expired, PAID_LATE)
        );
    }

    #[test]
    fn the_tolerance_accepts_a_shortfall_and_overpayment_is_flagged() {
        let terms = Terms {
            tolerance_ppm: 10_000,
            ..TERMS
        };
        let dues = [1_000];
        assert_eq!(
            assess(S::New, 0, &terms, &dues, &[paid(990, true, 1)], 2),
            (S::Settled, 0)
        );
        assert_eq!(
            assess(S::New, 0, &terms, &dues, &[paid(989, true, 1)], 2),
            (S::New, PAID_PARTIAL)
        );
        assert_eq!(
            assess(S::New, 0, &terms, &dues, &[paid(1_001, true, 1)], 2),
            (S::Settled, PAID_OVER)
        );
    }

    #[test]
    fn a_payment_lost_to_a_reorg_reopens_the_invoice_or_invalidates_it_after_expiry() {
        let dues = [100];
        assert_eq!(
            assess(S::Processing, 0, &TERMS, &dues, &[], 500),
            (S::New, 0)
        );
        assert_eq!(
            assess(S::Processing, 0, &TERMS, &dues, &[], 1_500),
            (S::Invalid, 0)
        );
    }

    #[test]
    fn a_payment_never_confirmed_in_the_monitoring_window_is_invalid() {
        let dues = [100];
        let seen = [paid(100, false, 10)];
        assert_eq!(
            assess(S::Processing, 0, &TERMS, &dues, &seen, 10_001),
            (S::Invalid, 0)
        );
    }

    #[test]
    fn payments_in_two_assets_add_up() {
        let dues = [100, 3_000];
        let both = [
            paid(50, true, 1),
            Paid {
                asset: 1,
                amount: 1_500,
                confirmed: true,
                seen_at: 2,
            },
        ];
        assert_eq!(assess(S::New, 0, &TERMS, &dues, &both, 3), (S::Settled, 0));
    }

    #[test]
    fn marked_and_settled_invoices_keep_their_status() {
        let dues = [100];
        assert_eq!(
            assess(S::Invalid, MARKED, &TERMS, &dues, &[paid(100, true, 1)], 2),
            (S::Invalid, MARKED)
        );
        assert_eq!(
            assess(S::Settled, 0, &TERMS, &dues, &[], 2_000),
            (S::Settled, 0)
        );
        assert_eq!(
            assess(
                S::Settled,
                0,
                &TERMS,
                &dues,
                &[paid(100, true, 1), paid(100, true, 50)],
                60
            ),
            (S::Settled, PAID_OVER)
        );
    }

    fn status() -> impl Strategy<Value = InvoiceStatus> {
        prop_oneof![
            Just(S::New),
            Just(S::Processing),
            Just(S::Settled),
            Just(S::Expired),
            Just(S::Invalid)
        ]
    }

    proptest! {
        /// Only the transitions merchants know happen: New → Processing → Settled,
        /// New → Expired, Processing → Invalid (and back to New when a payment is lost
        /// before expiry); settled and marked invoices never change status.
        #[test]
        fn only_known_transitions_happen(
            from in status(),
            marked in any::<bool>(),
            amounts in prop::collection::vec((0u128..200, any::<bool>(), 0i64..2_000), 0..4),
            now in 0i64..12_000,
        ) {
            let flags = if marked { MARKED } else { 0 };
            let payments: Vec<Paid> =
                amounts.iter().map(|(a, c, t)| paid(*a, *c, *t)).collect();
            let (to, new_flags) = assess(from, flags, &TERMS, &[100], &payments, now);
            let allowed = from == to
                || matches!(
                    (from, to),
                    (S::New, S::Processing | S::Settled | S::Expired | S::Invalid)
                        | (S::Processing, S::Settled | S::Invalid | S::New)
                );
            prop_assert!(allowed, "{from:?} → {to:?}");
            prop_assert!(!marked || to == from);
            prop_assert_eq!(new_flags & MARKED, flags & MARKED);
            // Settled means the confirmed payments cover the price (unless marked).
            if to == S::Settled && from != S::Settled {
                let confirmed = coverage(&[100], payments.iter().filter(|p| p.confirmed));
                prop_assert!(enough(confirmed, &TERMS));
            }
        }
    }
}
