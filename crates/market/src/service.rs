//! The projection at run time: one thread applies the engine's feed, readers share it.

use crate::{Projection, Update};
use coss_core::Event;
use coss_engine::EventFeed;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc};
use tokio::sync::{broadcast, watch};

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
}

/// How many batches a subscriber may fall behind before it is told it lagged.
const PUBLISH_CAPACITY: usize = 4096;
/// How many event chunks the engine may queue ahead of the projection.
const FEED_CAPACITY: usize = 1024;

impl MarketService {
    /// Starts the projection thread and returns the service with the feed to give the engine
    /// (its [`coss_engine::EngineConfig::feed`]): the engine replays the whole journal into it
    /// at start, so the projection is rebuilt from the journal every time.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start() -> std::io::Result<(MarketService, EventFeed)> {
        Self::start_with_history(None)
    }

    /// As [`MarketService::start`], and every applied chunk of events then goes to `history`
    /// (the history writer, [`crate::spawn_history`]); a full channel makes the projection,
    /// and so the engine, wait rather than lose a chunk.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start_with_history(
        history: Option<tokio::sync::mpsc::Sender<Arc<Vec<Event>>>>,
    ) -> std::io::Result<(MarketService, EventFeed)> {
        let (sender, receiver) = mpsc::sync_channel::<Vec<Event>>(FEED_CAPACITY);
        let state = Arc::new(RwLock::new(Projection::new()));
        let (applied_tx, applied) = watch::channel(0u64);
        let (published, _) = broadcast::channel(PUBLISH_CAPACITY);
        let service = MarketService {
            state: Arc::clone(&state),
            applied,
            published: published.clone(),
        };
        std::thread::Builder::new()
            .name("coss-market".into())
            .spawn(move || run(&state, &receiver, &applied_tx, &published, history))?;
        Ok((
            service,
            EventFeed {
                after_seq: 0,
                sender,
            },
        ))
    }

    /// Reads the projection (hold the guard briefly: the feed waits while it is held).
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

    /// Waits until the projection has applied event `seq` (a receipt's last event), so a
    /// caller reads its own writes. Returns false if the projection stopped first.
    pub async fn caught_up(&self, seq: u64) -> bool {
        let mut applied = self.applied.clone();
        applied.wait_for(|s| *s >= seq).await.is_ok()
    }

    /// Subscribes to what each applied batch changes.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Published> {
        self.published.subscribe()
    }
}

fn run(
    state: &RwLock<Projection>,
    receiver: &mpsc::Receiver<Vec<Event>>,
    applied: &watch::Sender<u64>,
    published: &broadcast::Sender<Published>,
    mut history: Option<tokio::sync::mpsc::Sender<Arc<Vec<Event>>>>,
) {
    let mut applied_chunks: Vec<Vec<Event>> = Vec::new();
    while let Ok(first) = receiver.recv() {
        let (seq, updates) = {
            let mut projection = state
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let mut next = Some(first);
            // Apply what is queued under one lock, up to a bound so readers get their turn.
            let mut chunks = 0;
            while let Some(events) = next.take() {
                for event in &events {
                    if event.seq > projection.seq() {
                        projection.apply(event);
                    }
                }
                if history.is_some() {
                    applied_chunks.push(events);
                }
                chunks += 1;
                if chunks < 64 {
                    next = receiver.try_recv().ok();
                }
            }
            (projection.seq(), projection.finish_batch())
        };
        applied.send_replace(seq);
        if let Some(sender) = &history {
            for events in applied_chunks.drain(..) {
                if sender.blocking_send(Arc::new(events)).is_err() {
                    tracing::warn!("the history writer stopped; the projection goes on without it");
                    history = None;
                    break;
                }
            }
        }
        if !updates.is_empty() {
            // No subscriber is fine.
            let _ = published.send(Published {
                seq,
                updates: Arc::new(updates),
            });
        }
    }
    tracing::info!("the engine's event feed ended; the market projection stops");
}
