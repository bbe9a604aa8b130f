//! Password hashing off the async workers, bounded. argon2id takes 19 MiB and tens of
//! milliseconds of a core per password by design; on the runtime's worker threads a burst of
//! sign-ups or logins would stall every other request. So each hashing runs on the blocking
//! pool, at most one per core at a time (memory stays bounded too), and when too many wait
//! for a turn the request is refused at once as `busy` rather than queued without bound.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use argon2::Argon2;
use argon2::password_hash::PasswordVerifier;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::IdentityError;

/// Most hashings waiting for a turn before further ones are refused (`busy`).
pub const MAX_HASHING_QUEUE: usize = 256;

/// The shared hashing turns of one set of accounts.
#[derive(Debug)]
pub(crate) struct Hashing {
    hasher: Argon2<'static>,
    turns: Semaphore,
    waiting: AtomicUsize,
}

impl Hashing {
    pub(crate) fn new(hasher: Argon2<'static>) -> Arc<Hashing> {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        Arc::new(Hashing {
            hasher,
            turns: Semaphore::new(cores),
            waiting: AtomicUsize::new(0),
        })
    }

    /// A PHC string of `password` (a fresh salt).
    pub(crate) async fn hash(self: &Arc<Self>, password: &str) -> Result<String, IdentityError> {
        let password = Zeroizing::new(password.to_owned());
        self.run(move |hasher| crate::hash(hasher, &password)).await
    }

    /// Whether `password` matches the PHC string `stored`.
    pub(crate) async fn matches(
        self: &Arc<Self>,
        password: &str,
        stored: &str,
    ) -> Result<bool, IdentityError> {
        let password = Zeroizing::new(password.to_owned());
        let stored = stored.to_owned();
        self.run(move |hasher| {
            Ok(hasher
                .verify_password(password.as_bytes(), stored.as_str())
                .is_ok())
        })
        .await
    }

    async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        work: impl FnOnce(&Argon2<'static>) -> Result<T, IdentityError> + Send + 'static,
    ) -> Result<T, IdentityError> {
        let turn = match self.turns.try_acquire() {
            Ok(turn) => turn,
            Err(_) => {
                // Counted among the waiting until it has its turn (or its request is gone);
                // refused past the bound.
                let waiting = Waiting(&self.waiting);
                if self.waiting.fetch_add(1, Ordering::AcqRel) >= MAX_HASHING_QUEUE {
                    return Err(IdentityError::Busy);
                }
                let turn = self.turns.acquire().await;
                drop(waiting);
                turn.map_err(|_| IdentityError::Crypto)?
            }
        };
        let this = Arc::clone(self);
        let done = tokio::task::spawn_blocking(move || work(&this.hasher)).await;
        drop(turn);
        done.map_err(|_| IdentityError::Crypto)?
    }
}

/// One request waiting for a turn; uncounted when dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
