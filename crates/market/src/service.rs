//! The projection at run time: the engine's journal writer applies its durable events in
//! place, readers share it.

use crate::{Projection, Retention, Update};
use coss_core::Event;
use coss_engine::{EventFeed, EventSink};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::{broadcast, mpsc, watch};

/// What one applied batch changed, as published to subscribers.
#[derive(Debug, Clone)]
pub struct Published {
    /// The last event sequence number of the batch.
    pub seq: u64,
    /// The changes.
    pub updates: Arc<Vec<Update>>,
}

/// The running projection: cloneable, shared by every API handler.
#[derive(Debug, Clone)]
pub struct MarketService {
    state: Arc<RwLock<Projection>>,
    applied: watch::Receiver<u64>,
    published: broadcast::Sender<Published>,
    lag: Arc<Mutex<HistoryLag>>,
}

/// Where the history writer stands against the feed. The feed never waits for the writer:
/// when its queue is full the feed stops queueing (`behind`) and the writer, once it has
/// written what was queued, replays the journal for the rest and then resumes the feed (see
/// [`crate::spawn_history`]).
#[derive(Debug, Default)]
pub(crate) struct HistoryLag {
    /// The feed stopped queueing chunks: everything after the last queued one is missing.
    pub(crate) behind: bool,
    /// The sequence number of the last event the feed delivered (queued or not).
    pub(crate) delivered: u64,
}

/// How many batches a subscriber may fall behind before it is told it lagged.
const PUBLISH_CAPACITY: usize = 4096;

impl MarketService {
    /// The service with the feed to give the engine (its
    /// [`coss_engine::EngineConfig::feed`]): the engine replays the whole journal into it at
    /// start, so the projection is rebuilt from the journal every time.
    #[must_use]
    pub fn start() -> (MarketService, EventFeed) {
        Self::start_with_history(None)
    }

    /// As [`MarketService::start`], and every applied chunk of events then goes to `history`
    /// (the history writer, [`crate::spawn_history`]). The engine never waits for it: when
    /// the channel is full the writer has fallen behind (a database stall) and catches up from
    /// the journal instead.
    ///
    /// The projection is applied in place by the engine's journal writer, right after each
    /// group commit and before the group's callers hear back: a caller holding its receipt
    /// reads its own writes with no wait and no extra thread hand-off.
    #[must_use]
    pub fn start_with_history(
        history: Option<tokio::sync::mpsc::Sender<Arc<Vec<Event>>>>,
    ) -> (MarketService, EventFeed) {
        Self::start_with(Retention::default(), history)
    }

    /// As [`MarketService::start_with_history`], keeping `retention` in memory.
    #[must_use]
    pub fn start_with(
        retention: Retention,
        history: Option<tokio::sync::mpsc::Sender<Arc<Vec<Event>>>>,
    ) -> (MarketService, EventFeed) {
        let projection = if history.is_some() {
            Projection::with_history(retention)
        } else {
            Projection::with_retention(retention)
        };
        let state = Arc::new(RwLock::new(projection));
        let (applied_tx, applied) = watch::channel(0u64);
        let (published, _) = broadcast::channel(PUBLISH_CAPACITY);
        let lag = Arc::new(Mutex::new(HistoryLag::default()));
        let service = MarketService {
            state: Arc::clone(&state),
            applied,
            published: published.clone(),
            lag: Arc::clone(&lag),
        };
        let sink = Applier {
            state,
            applied: applied_tx,
            published,
            history,
            lag,
        };
        (
            service,
            EventFeed {
                after_seq: 0,
                sink: Box::new(sink),
            },
        )
    }

    /// Reads the projection (hold the guard briefly: the engine's writer waits while it is
    /// held).
    ///
    /// # Panics
    /// Never: a poisoned lock (a panic while applying) is read through.
    pub fn read(&self) -> RwLockReadGuard<'_, Projection> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Writes to the projection: only for taking changed depth levels.
    pub fn write(&self) -> RwLockWriteGuard<'_, Projection> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last event sequence number applied.
    #[must_use]
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until the projection has applied event `seq`, so a caller reads its own writes.
    /// Returns at once for a receipt's events (they are applied before the receipt is sent);
    /// false if the projection stopped first.
    pub async fn caught_up(&self, seq: u64) -> bool {
        let mut applied = self.applied.clone();
        applied.wait_for(|s| *s >= seq).await.is_ok()
    }

    /// Subscribes to what each applied batch changes.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.published.subscribe()
    }

    /// Whether the history writer has fallen behind the feed and is catching up from the
    /// journal.
    #[must_use]
    pub fn history_behind(&self) -> bool {
        self.lag().behind
    }

    pub(crate) fn lag(&self) -> std::sync::MutexGuard<'_, HistoryLag> {
        self.lag
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The engine's sink: applies each chunk to the projection, publishes what changed and passes
/// the chunk on to the history writer.
struct Applier {
    state: Arc<RwLock<Projection>>,
    applied: watch::Sender<u64>,
    published: broadcast::Sender<Published>,
    history: Option<tokio::sync::mpsc::Sender<Arc<Vec<Event>>>>,
    lag: Arc<Mutex<HistoryLag>>,
}

impl EventSink for Applier {
    fn deliver(&mut self, events: Vec<Event>) -> bool {
        let (seq, updates) = {
            let mut projection = self
                .state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for event in &events {
                if event.seq > projection.seq() {
                    projection.apply(event);
                }
            }
            (projection.seq(), projection.finish_batch())
        };
        self.applied.send_replace(seq);
        if let Some(sender) = &self.history {
            // Never wait for the database here: this is the journal writer's thread, and
            // every order acknowledgement waits for it. A writer that cannot keep up (a
            // database stall) is left behind and catches up from the journal, which holds
            // every event; memory stays bounded by the channel.
            let mut lag = self
                .lag
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(last) = events.last() {
                lag.delivered = last.seq;
            }
            let gone = if lag.behind {
                sender.is_closed()
            } else {
                match sender.try_send(Arc::new(events)) {
                    Ok(()) => false,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        lag.behind = true;
                        tracing::warn!(
                            seq,
                            "the history writer fell behind (is the database stalled?); it \
                             will catch up from the journal"
                        );
                        false
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => true,
                }
            };
            drop(lag);
            if gone {
                tracing::warn!("the history writer stopped; the projection goes on without it");
                self.history = None;
            }
        }
        if !updates.is_empty() {
            // No subscriber is fine.
            let _ = self.published.send(Published {
                seq,
                updates: Arc::new(updates),
            });
        }
        true
    }
}
