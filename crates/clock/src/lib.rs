//! The platform's one clock. Every service that needs the time (the engine service stamping
//! commands, the wallets, the DAO runner, the HTTP edges checking tokens and signatures, the
//! mail worker) is handed a [`Clock`] when it is built and reads [`Clock::now`]; none reads the
//! system time by itself. A running platform uses [`Clock::system`]; a test builds a
//! [`ManualClock`] and moves it forward by hand, so that nothing waits on the wall clock for
//! time to pass. The exchange core never holds a clock: time reaches it inside commands.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

pub use coss_types::UnixMs;

/// Where the time comes from; cheap to clone (clones of a manual clock share its time).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's wall clock.
    #[must_use]
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// Now.
    #[must_use]
    pub fn now(&self) -> UnixMs {
        match &self.manual {
            Some(time) => UnixMs(time.load(Ordering::Acquire)),
            None => system_now(),
        }
    }

    /// Whether this is a test's manual clock.
    #[must_use]
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }
}

/// A clock that stands still until a test moves it. [`ManualClock::clock`] gives the
/// [`Clock`] to hand to the services; they all see every move at once.
#[derive(Debug, Clone)]
pub struct ManualClock {
    time: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock showing `start`.
    #[must_use]
    pub fn new(start: UnixMs) -> ManualClock {
        ManualClock {
            time: Arc::new(AtomicU64::new(start.0)),
        }
    }

    /// A clock showing the system's time now (then standing still).
    #[must_use]
    pub fn starting_now() -> ManualClock {
        ManualClock::new(system_now())
    }

    /// The clock to give to the services.
    #[must_use]
    pub fn clock(&self) -> Clock {
        Clock {
            manual: Some(Arc::clone(&self.time)),
        }
    }

    /// Now.
    #[must_use]
    pub fn now(&self) -> UnixMs {
        UnixMs(self.time.load(Ordering::Acquire))
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: u64) {
        let _ = self
            .time
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |t| {
                Some(t.saturating_add(ms))
            });
    }

    /// Sets the time to `to` if that is later (a clock never runs backwards).
    pub fn advance_to(&self, to: UnixMs) {
        self.time.fetch_max(to.0, Ordering::AcqRel);
    }
}

fn system_now() -> UnixMs {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(UnixMs::EPOCH, |d| {
            UnixMs(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_forward_and_every_copy_sees_it() {
        let manual = ManualClock::new(UnixMs(1_000));
        let clock = manual.clock();
        let copy = clock.clone();
        assert_eq!(clock.now(), UnixMs(1_000));
        manual.advance(500);
        assert_eq!(copy.now(), UnixMs(1_500));
        manual.advance_to(UnixMs(1_200));
        assert_eq!(clock.now(), UnixMs(1_500), "never backwards");
        manual.advance_to(UnixMs(9_000));
        assert_eq!(clock.now(), UnixMs(9_000));
        assert!(clock.is_manual());
    }

    #[test]
    fn the_system_clock_is_after_2026() {
        let clock = Clock::system();
        assert!(!clock.is_manual());
        assert!(clock.now() > UnixMs(1_767_225_600_000));
    }
}
