//! The engine service: the only owner of the exchange core at run time. One thread applies
//! commands to the [`coss_core::Exchange`] in arrival order, fed by a bounded queue; a second
//! thread makes each batch durable in the journal (`coss-journal`) with one `fdatasync` (group
//! commit) and only then hands the callers their results, so an acknowledged command is never
//! lost. The engine thread stamps each command with the time from the injected
//! [`coss_clock::Clock`] (the core itself never reads a clock) and journals the stamped command, so replaying the journal reproduces the state
//! exactly. Snapshots are taken every N commands; recovery loads the newest valid snapshot and
//! replays the journal after it. [`verify`] replays a journal read-only from the beginning and
//! checks every snapshot against the replayed state.

use coss_clock::Clock;
use coss_core::{Command, Envelope, Event, Exchange, Outcome, StateHash};
use coss_journal::{Journal, JournalOptions, TornTail};
use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;
use tokio::sync::{mpsc, oneshot};

/// Errors of the engine service.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The journal could not be read or written.
    #[error(transparent)]
    Journal(#[from] coss_journal::Error),
    /// A journal record does not decode as a command.
    #[error("journal record {index} does not decode: {reason}")]
    Decode {
        /// The record's index.
        index: u64,
        /// Why.
        reason: String,
    },
    /// A snapshot does not restore.
    #[error("snapshot at command {index} does not restore: {source}")]
    Snapshot {
        /// The snapshot's command index.
        index: u64,
        /// Why.
        source: coss_core::SnapshotError,
    },
    /// A snapshot disagrees with the state replayed from the journal.
    #[error(
        "snapshot at command {index} has hash {snapshot} but the journal replays to {replayed}"
    )]
    SnapshotMismatch {
        /// The snapshot's command index.
        index: u64,
        /// Hash of the snapshot.
        snapshot: StateHash,
        /// Hash of the replayed state.
        replayed: StateHash,
    },
    /// The newest snapshot is ahead of the journal.
    #[error("snapshot at command {snapshot} but the journal ends at {journal}")]
    SnapshotAhead {
        /// The snapshot's index.
        snapshot: u64,
        /// The journal's last index.
        journal: u64,
    },
    /// The replayed state breaks an invariant.
    #[error("replayed state is inconsistent: {0}")]
    Invariant(#[from] coss_core::InvariantViolation),
    /// Another process runs an engine on this data dir (a journal has one writer).
    #[error("another process is using the journal in {0} (is `coss up` running?)")]
    Locked(PathBuf),
    /// A batch larger than the configured maximum.
    #[error("batch of {len} commands exceeds the maximum of {max}")]
    BatchTooLarge {
        /// Its length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A command with a text or list field too long to journal (it is refused before it
    /// reaches the engine; the core would reject it anyway).
    #[error("command too large: {field} exceeds {max}")]
    CommandTooLarge {
        /// Which field.
        field: &'static str,
        /// Its bound.
        max: usize,
    },
    /// The journal and the replayed state disagree on how many commands there are.
    #[error("recovered {state} commands but the journal holds {journal}")]
    CountMismatch {
        /// Commands in the recovered state.
        state: u64,
        /// Records in the journal.
        journal: u64,
    },
    /// The engine has stopped (shut down, or halted by a journal failure).
    #[error("the engine has stopped")]
    Stopped,
    /// A thread could not be started.
    #[error("could not start the engine thread: {0}")]
    Spawn(std::io::Error),
}

/// Result alias of this crate.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// How the service runs.
#[derive(Debug)]
pub struct EngineConfig {
    /// The data directory; the journal lives in `<data_dir>/journal`.
    pub data_dir: PathBuf,
    /// Requests that may wait in the queue before submitters wait.
    pub queue_capacity: usize,
    /// Most commands per request and per engine group (a journal commit covers what the
    /// writer finds queued: at most 8 groups).
    pub max_batch: usize,
    /// Take a snapshot after this many commands since the last one (0: never).
    pub snapshot_every: u64,
    /// Journal segment size.
    pub segment_bytes: u64,
    /// Where every event goes once durable, in sequence order (see [`EventFeed`]).
    pub feed: Option<EventFeed>,
    /// What stamps each command with the time (and decides when a DAO week is due).
    pub clock: Clock,
}

/// A subscription to the engine's events: the projections' source. At start the engine replays
/// the journal and delivers every event after `after_seq` (a full replay when that lies before
/// the newest snapshot), then delivers the events of each batch once it is durable, before its
/// caller hears back. So the feed has no gaps and no duplicates, and a caller that saw its
/// receipt can rely on (or wait for) a projection having reached the receipt's sequence
/// number. A sink that blocks slows the engine rather than growing memory. If the sink says
/// its consumer is gone the engine goes on without a feed.
pub struct EventFeed {
    /// Events up to and including this sequence number are not sent.
    pub after_seq: u64,
    /// Where the events go, in chunks.
    pub sink: Box<dyn EventSink>,
}

impl EventFeed {
    /// A feed into a bounded channel, for a consumer on its own thread.
    #[must_use]
    pub fn channel(after_seq: u64, sender: std_mpsc::SyncSender<Vec<Event>>) -> Self {
        EventFeed {
            after_seq,
            sink: Box::new(sender),
        }
    }
}

impl std::fmt::Debug for EventFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFeed")
            .field("after_seq", &self.after_seq)
            .finish_non_exhaustive()
    }
}

/// Takes the engine's durable events. `deliver` runs on the journal writer's thread (and, at
/// start, on the thread recovering the engine) before the callers of those events hear back:
/// a sink that applies them in place (the market projection) spares every caller a wait and a
/// thread hand-off, but must be quick.
pub trait EventSink: Send + 'static {
    /// Takes one chunk, in sequence order; `false` when the consumer is gone for good.
    fn deliver(&mut self, events: Vec<Event>) -> bool;
}

impl EventSink for std_mpsc::SyncSender<Vec<Event>> {
    fn deliver(&mut self, events: Vec<Event>) -> bool {
        self.send(events).is_ok()
    }
}

impl EngineConfig {
    /// Defaults for `data_dir`.
    #[must_use]
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        EngineConfig {
            data_dir: data_dir.into(),
            queue_capacity: 1024,
            max_batch: 8192,
            snapshot_every: 1_000_000,
            segment_bytes: JournalOptions::default().segment_bytes,
            feed: None,
            clock: Clock::system(),
        }
    }
}

/// Where the journal of a data directory lives.
#[must_use]
pub fn journal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("journal")
}

/// What recovery found and did.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// Index of the snapshot that was loaded (0: none).
    pub snapshot_index: u64,
    /// Commands replayed after it.
    pub replayed: u64,
    /// A torn tail that was truncated.
    pub torn_tail: Option<TornTail>,
    /// Invalid snapshots that were skipped (path and reason).
    pub skipped_snapshots: Vec<String>,
    /// Commands in the journal.
    pub commands: u64,
    /// The last event's sequence number after recovery.
    pub last_seq: u64,
    /// The state's hash after recovery.
    pub state_hash: StateHash,
}

/// The result of one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The command's journal index (1, 2, …).
    pub index: u64,
    /// Applied, or rejected.
    pub outcome: Outcome,
    /// What it caused.
    pub events: Vec<Event>,
}

/// The results of a batch, in submission order.
#[derive(Debug, Default)]
pub struct BatchReceipt {
    /// Journal index of the first command.
    pub first_index: u64,
    /// One outcome per command.
    pub outcomes: Vec<Outcome>,
    /// All events of the batch.
    pub events: Vec<Event>,
    /// `events[ends[i-1]..ends[i]]` are command `i`'s events.
    pub event_ends: Vec<u32>,
}

impl BatchReceipt {
    /// Splits into one receipt per command.
    #[must_use]
    pub fn into_receipts(self) -> Vec<Receipt> {
        let mut receipts = Vec::with_capacity(self.outcomes.len());
        let mut start = 0usize;
        let mut events = self.events.into_iter();
        for (i, (outcome, end)) in self.outcomes.into_iter().zip(self.event_ends).enumerate() {
            let end = end as usize;
            receipts.push(Receipt {
                index: self.first_index + i as u64,
                outcome,
                events: events.by_ref().take(end - start).collect(),
            });
            start = end;
        }
        receipts
    }
}

/// A point-in-time view of the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Commands applied.
    pub commands: u64,
    /// Last event sequence number.
    pub last_seq: u64,
}

type BatchReply = oneshot::Sender<Result<BatchReceipt>>;

enum Request {
    Batch {
        commands: Vec<Command>,
        reply: BatchReply,
    },
    Status {
        reply: oneshot::Sender<Status>,
    },
    Read {
        read: Box<dyn FnOnce(&Exchange) + Send>,
    },
}

/// One caller's batch, applied, on its way to the journal.
struct Applied {
    payload: Vec<u8>,
    /// End offset of each record in `payload`.
    ends: Vec<usize>,
    first_index: u64,
    receipt: BatchReceipt,
    reply: BatchReply,
}

enum ToWriter {
    /// The batches of one engine group: one message (one hand-off, one wake-up of the writer
    /// at most) however many callers it serves.
    Group(Vec<Applied>),
    Snapshot {
        index: u64,
        bytes: Vec<u8>,
    },
}

/// A cheap, cloneable way to submit commands. The blocking methods must not be called from
/// async code (tokio panics on a blocking wait inside its runtime): use `submit_async` and
/// `status_async` there.
#[derive(Debug, Clone)]
pub struct EngineHandle {
    tx: mpsc::Sender<Request>,
    max_batch: usize,
}

/// A submitted batch whose result has not been collected yet.
#[derive(Debug)]
pub struct Pending {
    rx: oneshot::Receiver<Result<BatchReceipt>>,
}

impl Pending {
    /// Waits (blocking the thread) until the batch is durable.
    pub fn wait(self) -> Result<BatchReceipt> {
        self.rx.blocking_recv().map_err(|_| EngineError::Stopped)?
    }

    /// Waits (async) until the batch is durable.
    pub async fn done(self) -> Result<BatchReceipt> {
        self.rx.await.map_err(|_| EngineError::Stopped)?
    }
}

/// Longest text field a journaled command may carry (the core's own limits are far lower).
pub const MAX_TEXT_BYTES: usize = 1024;
/// Most fee tiers a journaled command may carry.
pub const MAX_LIST_LEN: usize = 64;

/// Refuses commands whose variable-length fields could not be journaled as one record: every
/// other command has a small fixed size.
fn check_size(command: &Command) -> Result<()> {
    let too_large = |field, max| Err(EngineError::CommandTooLarge { field, max });
    match command {
        Command::ListAsset { symbol, .. } if symbol.len() > MAX_TEXT_BYTES => {
            too_large("symbol", MAX_TEXT_BYTES)
        }
        Command::Deposit { reference, .. } if reference.len() > MAX_TEXT_BYTES => {
            too_large("reference", MAX_TEXT_BYTES)
        }
        Command::SetFeeSchedule { tiers } if tiers.len() > MAX_LIST_LEN => {
            too_large("tiers", MAX_LIST_LEN)
        }
        Command::AddChainHoldings { holdings, .. }
            if holdings.len() > coss_core::MAX_CHAIN_HOLDINGS =>
        {
            too_large("holdings", coss_core::MAX_CHAIN_HOLDINGS)
        }
        _ => Ok(()),
    }
}

impl EngineHandle {
    fn request(&self, commands: Vec<Command>) -> Result<(Request, Pending)> {
        if commands.len() > self.max_batch {
            return Err(EngineError::BatchTooLarge {
                len: commands.len(),
                max: self.max_batch,
            });
        }
        commands.iter().try_for_each(check_size)?;
        let (reply, rx) = oneshot::channel();
        Ok((Request::Batch { commands, reply }, Pending { rx }))
    }

    /// Queues a batch without waiting for its result (blocks while the queue is full).
    pub fn send_batch(&self, commands: Vec<Command>) -> Result<Pending> {
        let (request, pending) = self.request(commands)?;
        self.tx
            .blocking_send(request)
            .map_err(|_| EngineError::Stopped)?;
        Ok(pending)
    }

    /// Submits a batch and waits (blocking) until it is durable.
    pub fn submit_batch(&self, commands: Vec<Command>) -> Result<BatchReceipt> {
        self.send_batch(commands)?.wait()
    }

    /// Submits one command and waits (blocking) until it is durable.
    pub fn submit(&self, command: Command) -> Result<Receipt> {
        let receipt = self.submit_batch(vec![command])?;
        receipt.into_receipts().pop().ok_or(EngineError::Stopped)
    }

    /// Submits one command and waits (async) until it is durable.
    pub async fn submit_async(&self, command: Command) -> Result<Receipt> {
        let (request, pending) = self.request(vec![command])?;
        self.tx
            .send(request)
            .await
            .map_err(|_| EngineError::Stopped)?;
        let receipt = pending.done().await?;
        receipt.into_receipts().pop().ok_or(EngineError::Stopped)
    }

    /// The engine's current status (blocking). It reflects every command applied so far,
    /// including the last group whose fsync may still be under way.
    pub fn status(&self) -> Result<Status> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .blocking_send(Request::Status { reply })
            .map_err(|_| EngineError::Stopped)?;
        rx.blocking_recv().map_err(|_| EngineError::Stopped)
    }

    /// The engine's current status (async), cheap enough for a public endpoint.
    pub async fn status_async(&self) -> Result<Status> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request::Status { reply })
            .await
            .map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }

    /// The hash of the current state (blocking). It serializes the whole state on the engine
    /// thread: an operator's tool, not something to call per request.
    pub fn state_hash(&self) -> Result<StateHash> {
        self.read(Exchange::state_hash)
    }

    /// Runs a read-only query on the engine thread, between batches (blocking). Like
    /// [`EngineHandle::status`], it sees applied commands whose fsync may still be under way.
    pub fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Exchange) -> T + Send + 'static,
    ) -> Result<T> {
        let (read, rx) = read_request(query);
        self.tx
            .blocking_send(read)
            .map_err(|_| EngineError::Stopped)?;
        rx.blocking_recv().map_err(|_| EngineError::Stopped)
    }

    /// Runs a read-only query on the engine thread, between batches (async).
    pub async fn read_async<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Exchange) -> T + Send + 'static,
    ) -> Result<T> {
        let (read, rx) = read_request(query);
        self.tx.send(read).await.map_err(|_| EngineError::Stopped)?;
        rx.await.map_err(|_| EngineError::Stopped)
    }
}

/// A read request for the engine thread and where its answer arrives.
fn read_request<T: Send + 'static>(
    query: impl FnOnce(&Exchange) -> T + Send + 'static,
) -> (Request, oneshot::Receiver<T>) {
    let (reply, rx) = oneshot::channel();
    let read = Box::new(move |exchange: &Exchange| {
        let _ = reply.send(query(exchange));
    });
    (Request::Read { read }, rx)
}

/// The running service. Dropping every [`EngineHandle`] and calling [`Engine::shutdown`] stops
/// it after the queued work is durable.
#[derive(Debug)]
pub struct Engine {
    /// The journal's exclusive lock.
    _lock: std::fs::File,
    handle: EngineHandle,
    /// Why the engine halted on its own, once it has.
    halted: tokio::sync::watch::Receiver<Option<String>>,
    engine_thread: Option<JoinHandle<()>>,
    writer_thread: Option<JoinHandle<Result<()>>>,
}

impl Engine {
    /// Recovers the state from `<data_dir>/journal` and starts the service.
    pub fn start(config: EngineConfig) -> Result<(Engine, Recovery)> {
        let dir = journal_dir(&config.data_dir);
        std::fs::create_dir_all(&dir).map_err(|source| {
            EngineError::Journal(coss_journal::Error::Io {
                path: dir.clone(),
                source,
            })
        })?;
        // One writer per journal: an exclusive lock, released when the process ends (even
        // by a crash), held for the engine's life.
        let lock_path = dir.join("LOCK");
        let lock = std::fs::File::create(&lock_path).map_err(|source| {
            EngineError::Journal(coss_journal::Error::Io {
                path: lock_path.clone(),
                source,
            })
        })?;
        if lock.try_lock().is_err() {
            return Err(EngineError::Locked(dir));
        }
        let mut feed = config.feed;
        let (exchange, journal, recovery) = recover(&dir, config.segment_bytes, feed.as_mut())?;
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let (to_writer, writer_rx) = std_mpsc::sync_channel(8);
        let writer_dir = dir.clone();
        let feed = feed.map(|feed| feed.sink);
        let (halt, halted) = tokio::sync::watch::channel(None);
        let writer_thread = std::thread::Builder::new()
            .name("coss-journal".into())
            .spawn(move || write_loop(journal, &writer_dir, writer_rx, feed, &halt))
            .map_err(EngineError::Spawn)?;
        let max_batch = config.max_batch.max(1);
        let snapshot_every = config.snapshot_every;
        let clock = config.clock;
        let engine_thread = std::thread::Builder::new()
            .name("coss-engine".into())
            .spawn(move || engine_loop(exchange, rx, to_writer, max_batch, snapshot_every, clock))
            .map_err(EngineError::Spawn)?;
        let engine = Engine {
            _lock: lock,
            handle: EngineHandle { tx, max_batch },
            halted,
            engine_thread: Some(engine_thread),
            writer_thread: Some(writer_thread),
        };
        Ok((engine, recovery))
    }

    /// A handle to submit commands with.
    #[must_use]
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Resolves, with the cause, when the engine halts on its own: its journal could not be
    /// written (a full disk, an I/O error). It does not resume by itself: after a failed
    /// `fdatasync` the kernel may have dropped the pages it could not write, so what the file
    /// holds is unknown until it is read again (PostgreSQL panics for the same reason), and
    /// the journal refuses further commits. The way back is a restart, whose recovery reads
    /// the journal from the disk and drops a torn tail. Never resolves for a shutdown.
    pub fn halted(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut halted = self.halted.clone();
        async move {
            let reason = halted
                .wait_for(Option::is_some)
                .await
                .map(|reason| reason.clone().unwrap_or_default());
            match reason {
                Ok(reason) => reason,
                Err(_) => std::future::pending().await,
            }
        }
    }

    /// Stops accepting work, waits until everything queued is durable, and joins the threads.
    /// Other handles still alive keep the engine running until they are dropped.
    pub fn shutdown(mut self) -> Result<()> {
        let Engine {
            handle,
            engine_thread,
            writer_thread,
            ..
        } = &mut self;
        let (tx, _) = mpsc::channel(1);
        drop(std::mem::replace(&mut handle.tx, tx));
        // A panicked engine thread (a broken invariant) is a failure, not a clean stop.
        let engine_ok = engine_thread
            .take()
            .is_none_or(|thread| thread.join().is_ok());
        let written = match writer_thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(EngineError::Stopped),
            None => Ok(()),
        };
        written?;
        if engine_ok {
            Ok(())
        } else {
            Err(EngineError::Stopped)
        }
    }
}

fn engine_loop(
    mut exchange: Exchange,
    mut rx: mpsc::Receiver<Request>,
    to_writer: std_mpsc::SyncSender<ToWriter>,
    max_batch: usize,
    snapshot_every: u64,
    clock: Clock,
) {
    let mut since_snapshot = 0u64;
    let mut carried: Option<Request> = None;
    loop {
        let first = match carried.take() {
            Some(request) => request,
            None => match rx.blocking_recv() {
                Some(request) => request,
                None => return,
            },
        };
        // Reads and status answers see every week closed by now.
        if !close_due_weeks(
            &mut exchange,
            clock.now().0,
            &to_writer,
            &mut since_snapshot,
        ) {
            return;
        }
        // Group the queued batches into one journal commit, up to `max_batch` commands.
        let mut group: Vec<(Vec<Command>, BatchReply)> = Vec::new();
        let mut size = 0usize;
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Batch { commands, reply } => {
                    if !group.is_empty() && size + commands.len() > max_batch {
                        carried = Some(Request::Batch { commands, reply });
                        break;
                    }
                    size += commands.len();
                    group.push((commands, reply));
                }
                Request::Status { reply } => {
                    let _ = reply.send(Status {
                        commands: exchange.commands(),
                        last_seq: exchange.last_seq(),
                    });
                }
                Request::Read { read } => read(&exchange),
            }
            if size >= max_batch {
                break;
            }
            next = rx.try_recv().ok();
        }
        let time_ms = clock.now().0;
        if !close_due_weeks(&mut exchange, time_ms, &to_writer, &mut since_snapshot) {
            return;
        }
        let mut applied = Vec::with_capacity(group.len());
        for (commands, reply) in group {
            since_snapshot += commands.len() as u64;
            match apply_batch(&mut exchange, commands, reply, time_ms) {
                Some(batch) => applied.push(batch),
                None => return,
            }
        }
        if !applied.is_empty() && to_writer.send(ToWriter::Group(applied)).is_err() {
            return;
        }
        if snapshot_every > 0 && since_snapshot >= snapshot_every {
            since_snapshot = 0;
            let message = ToWriter::Snapshot {
                index: exchange.commands(),
                bytes: exchange.snapshot(),
            };
            if to_writer.send(message).is_err() {
                return;
            }
        }
    }
}

/// A DAO week closes at its exact instant: at the engine's first activity at or after the
/// close (a command, a read, a status), before answering or applying anything stamped later,
/// the engine applies (and journals) the close itself, once per due week, in order. Nobody
/// waits for its result; the events tell. `false` when the engine must stop.
fn close_due_weeks(
    exchange: &mut Exchange,
    time_ms: u64,
    to_writer: &std_mpsc::SyncSender<ToWriter>,
    since_snapshot: &mut u64,
) -> bool {
    while let Some(close_ms) = exchange.week_close_due(time_ms) {
        let (reply, _) = oneshot::channel();
        let close = vec![Command::CloseWeek { close_ms }];
        let Some(applied) = apply_batch(exchange, close, reply, time_ms) else {
            return false;
        };
        if to_writer.send(ToWriter::Group(vec![applied])).is_err() {
            return false;
        }
        *since_snapshot += 1;
        if exchange.week_close_due(time_ms) == Some(close_ms) {
            // Refused (it cannot be, as the core said it was due): never loop on it.
            break;
        }
    }
    true
}

/// Applies one caller's batch at `time_ms`, ready for the writer; `None` when the engine must
/// stop (a command could not be encoded, so the state would be ahead of the journal).
fn apply_batch(
    exchange: &mut Exchange,
    commands: Vec<Command>,
    reply: BatchReply,
    time_ms: u64,
) -> Option<Applied> {
    let first_index = exchange.commands() + 1;
    let mut receipt = BatchReceipt {
        first_index,
        outcomes: Vec::with_capacity(commands.len()),
        events: Vec::with_capacity(commands.len() * 4),
        event_ends: Vec::with_capacity(commands.len()),
    };
    let mut payload = Vec::with_capacity(commands.len() * 48);
    let mut ends = Vec::with_capacity(commands.len());
    for command in commands {
        let envelope = Envelope { time_ms, command };
        let before = payload.len();
        payload = match postcard::to_extend(&envelope, payload) {
            Ok(bytes) => bytes,
            // Encoding plain data into a Vec cannot fail; halt rather than journal a gap.
            Err(_) => return None,
        };
        debug_assert!(payload.len() > before);
        ends.push(payload.len());
        let outcome = exchange.apply(&envelope, &mut receipt.events);
        receipt.outcomes.push(outcome);
        receipt
            .event_ends
            .push(u32::try_from(receipt.events.len()).unwrap_or(u32::MAX));
    }
    Some(Applied {
        payload,
        ends,
        first_index,
        receipt,
        reply,
    })
}

/// Says why the journal could not be written, the moment it happens and before any caller
/// hears that the engine stopped: with the cause (a full disk, an I/O error), since every
/// caller from here on only hears "stopped".
fn halt(
    error: EngineError,
    dir: &Path,
    halted: &tokio::sync::watch::Sender<Option<String>>,
) -> EngineError {
    let reason = with_causes(&error);
    tracing::error!(
        error = %reason,
        journal = %dir.display(),
        "the journal could not be written: the engine has halted; nothing after the last \
         durable commit was acknowledged"
    );
    halted.send_replace(Some(reason));
    error
}

fn write_loop(
    mut journal: Journal,
    dir: &Path,
    rx: std_mpsc::Receiver<ToWriter>,
    mut feed: Option<Box<dyn EventSink>>,
    halted: &tokio::sync::watch::Sender<Option<String>>,
) -> Result<()> {
    let mut replies: Vec<(BatchReceipt, BatchReply)> = Vec::new();
    let mut snapshots: Vec<(u64, Vec<u8>)> = Vec::new();
    while let Ok(first) = rx.recv() {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                ToWriter::Group(group) => {
                    let mut group = group.into_iter();
                    while let Some(batch) = group.next() {
                        if let Err(error) = append(&mut journal, &batch) {
                            let error = halt(error, dir, halted);
                            // Nothing of this commit is durable: every caller in it, and the
                            // rest of the group, hears that the engine stopped.
                            let unwritten = std::iter::once(batch).chain(group);
                            fail_all(
                                replies
                                    .into_iter()
                                    .chain(unwritten.map(|b| (b.receipt, b.reply))),
                            );
                            return Err(error);
                        }
                        replies.push((batch.receipt, batch.reply));
                    }
                }
                ToWriter::Snapshot { index, bytes } => snapshots.push((index, bytes)),
            }
            next = rx.try_recv().ok();
        }
        if let Err(error) = journal.commit() {
            let error = halt(error.into(), dir, halted);
            fail_all(replies);
            return Err(error);
        }
        if let Some(sink) = &mut feed {
            let events: Vec<Event> = replies
                .iter()
                .flat_map(|(receipt, _)| receipt.events.iter().cloned())
                .collect();
            if !events.is_empty() && !sink.deliver(events) {
                tracing::warn!("the event feed's receiver is gone; going on without it");
                feed = None;
            }
        }
        for (receipt, reply) in replies.drain(..) {
            let _ = reply.send(Ok(receipt));
        }
        for (index, bytes) in snapshots.drain(..) {
            // The journal is the record; a snapshot only shortens recovery. Failing to write
            // one (a full disk, say) must not stop trading: say so and go on.
            if let Err(error) = coss_journal::write_snapshot(dir, index, &bytes) {
                tracing::error!(index, %error, "could not write a snapshot; recovery will replay further");
            }
        }
    }
    Ok(())
}

/// Appends one applied batch's records, checking that the journal numbers them as the engine
/// did.
fn append(journal: &mut Journal, batch: &Applied) -> Result<()> {
    let mut start = 0usize;
    for (offset, &end) in batch.ends.iter().enumerate() {
        let expected = batch.first_index + offset as u64;
        let index = journal.append(&batch.payload[start..end])?;
        if index != expected {
            return Err(EngineError::CountMismatch {
                state: expected,
                journal: index,
            });
        }
        start = end;
    }
    Ok(())
}

/// An error and every error under it, as one line ("journal i/o error on …: No space left on
/// device").
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        line.push_str(": ");
        line.push_str(&inner.to_string());
        cause = inner.source();
    }
    line
}

fn fail_all(replies: impl IntoIterator<Item = (BatchReceipt, BatchReply)>) {
    for (_, reply) in replies {
        let _ = reply.send(Err(EngineError::Stopped));
    }
}

fn decode(index: u64, payload: &[u8]) -> Result<Envelope> {
    postcard::from_bytes(payload).map_err(|e| EngineError::Decode {
        index,
        reason: e.to_string(),
    })
}

/// Most events per chunk sent to a feed during recovery.
const FEED_CHUNK: usize = 4096;

/// Loads the newest valid snapshot, opens the journal (truncating a torn tail) and replays it,
/// sending the replayed events after `feed.after_seq` to the feed.
fn recover(
    dir: &Path,
    segment_bytes: u64,
    mut feed: Option<&mut EventFeed>,
) -> Result<(Exchange, Journal, Recovery)> {
    let (journal, report) = Journal::open(dir, JournalOptions { segment_bytes })?;
    let latest = coss_journal::latest_snapshot(dir)?;
    let mut skipped_snapshots: Vec<String> =
        latest.skipped.iter().map(ToString::to_string).collect();
    let snapshot = match latest.snapshot {
        // A feed that needs events from before the snapshot gets them from a full replay.
        Some(_) if feed.as_ref().is_some_and(|f| f.after_seq == 0) => None,
        other => other,
    };
    let (snapshot_index, exchange) = match snapshot {
        Some((index, bytes)) => {
            if index > report.last_index {
                return Err(EngineError::SnapshotAhead {
                    snapshot: index,
                    journal: report.last_index,
                });
            }
            match Exchange::restore(&bytes) {
                Ok(exchange) => {
                    if exchange.commands() != index {
                        return Err(EngineError::CountMismatch {
                            state: exchange.commands(),
                            journal: index,
                        });
                    }
                    (index, exchange)
                }
                // Written before the state's layout changed (an upgrade): the journal holds
                // every command, so the state is rebuilt from the first one instead.
                Err(source @ coss_core::SnapshotError::Version { .. }) => {
                    skipped_snapshots.push(format!("snapshot at command {index}: {source}"));
                    (0, Exchange::new())
                }
                Err(source) => return Err(EngineError::Snapshot { index, source }),
            }
        }
        None => (0, Exchange::new()),
    };
    let (snapshot_index, mut exchange) = match &feed {
        Some(f) if exchange.last_seq() > f.after_seq => (0, Exchange::new()),
        _ => (snapshot_index, exchange),
    };
    let mut events = Vec::new();
    let mut chunk: Vec<Event> = Vec::new();
    let mut feed_open = feed.is_some();
    let scan = coss_journal::for_each_record(dir, snapshot_index + 1, |index, payload| {
        let envelope = decode(index, payload)?;
        events.clear();
        let _ = exchange.apply(&envelope, &mut events);
        if let (Some(f), true) = (feed.as_mut(), feed_open) {
            let after = f.after_seq;
            chunk.extend(events.drain(..).filter(|e| e.seq > after));
            if chunk.len() >= FEED_CHUNK {
                feed_open = f.sink.deliver(std::mem::take(&mut chunk));
            }
        }
        Ok::<(), EngineError>(())
    })?;
    if let (Some(f), true) = (feed, feed_open && !chunk.is_empty()) {
        let _ = f.sink.deliver(chunk);
    }
    if exchange.commands() != report.last_index {
        return Err(EngineError::CountMismatch {
            state: exchange.commands(),
            journal: report.last_index,
        });
    }
    exchange.check_invariants()?;
    let recovery = Recovery {
        snapshot_index,
        replayed: scan.records,
        torn_tail: report.torn_tail,
        skipped_snapshots,
        commands: exchange.commands(),
        last_seq: exchange.last_seq(),
        state_hash: exchange.state_hash(),
    };
    Ok((exchange, journal, recovery))
}

/// What a read-only replay of a journal found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Commands replayed.
    pub commands: u64,
    /// Last event sequence number.
    pub last_seq: u64,
    /// Hash of the replayed state.
    pub state_hash: StateHash,
    /// Snapshots whose hash matched the replay at their index (those of an older layout are
    /// not compared).
    pub snapshots_checked: u64,
    /// A torn tail (reported, not modified).
    pub torn_tail: Option<TornTail>,
}

/// Replays the journal of `data_dir` from the first command without modifying anything,
/// checks every snapshot against the replayed state at its index, and checks the invariants.
pub fn verify(data_dir: &Path) -> Result<Verified> {
    let dir = journal_dir(data_dir);
    if !dir.is_dir() {
        return Err(EngineError::Journal(coss_journal::Error::Io {
            path: dir,
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no journal here"),
        }));
    }
    let mut snapshots = coss_journal::list_snapshots(&dir)?.into_iter().peekable();
    let mut exchange = Exchange::new();
    let mut events = Vec::new();
    let mut snapshots_checked = 0;
    let check = |exchange: &Exchange, index: u64, path: &Path| -> Result<bool> {
        let (_, bytes) = coss_journal::read_snapshot(path)?;
        let snapshot = match Exchange::restore(&bytes) {
            Ok(snapshot) => snapshot.state_hash(),
            // An older layout (before an upgrade) cannot be compared; start-up skips it too.
            Err(coss_core::SnapshotError::Version { .. }) => return Ok(false),
            Err(source) => return Err(EngineError::Snapshot { index, source }),
        };
        let replayed = exchange.state_hash();
        if snapshot != replayed {
            return Err(EngineError::SnapshotMismatch {
                index,
                snapshot,
                replayed,
            });
        }
        Ok(true)
    };
    let scan = coss_journal::for_each_record(&dir, 1, |index, payload| {
        let envelope = decode(index, payload)?;
        events.clear();
        let _ = exchange.apply(&envelope, &mut events);
        while let Some((at, path)) = snapshots.next_if(|(at, _)| *at <= index) {
            if at == index && check(&exchange, at, &path)? {
                snapshots_checked += 1;
            }
        }
        Ok::<(), EngineError>(())
    })?;
    if let Some((at, _)) = snapshots.next() {
        return Err(EngineError::SnapshotAhead {
            snapshot: at,
            journal: scan.last_index,
        });
    }
    exchange.check_invariants()?;
    Ok(Verified {
        commands: exchange.commands(),
        last_seq: exchange.last_seq(),
        state_hash: exchange.state_hash(),
        snapshots_checked,
        torn_tail: scan.torn_tail,
    })
}

/// A read-only replica of a running (or stopped) engine's state, replayed from its journal:
/// how a consumer of the events that fell behind the live feed gets the events it missed,
/// without the engine keeping them for it (see the history writer in `coss-market`). It
/// modifies nothing and takes no lock, so it runs beside the engine's writer; it reads only
/// records the engine has already delivered (so durable), which the writer never rewrites.
#[derive(Debug)]
pub struct Replica {
    dir: PathBuf,
    exchange: Exchange,
}

/// Most events a replica hands over in one chunk.
const REPLICA_CHUNK: usize = 4096;

/// Why a replay stopped early (internal to [`Replica::replay_through`]).
enum ReplayStop {
    Reached,
    Failed(EngineError),
}

impl From<coss_journal::Error> for ReplayStop {
    fn from(error: coss_journal::Error) -> Self {
        ReplayStop::Failed(error.into())
    }
}

impl Replica {
    /// A replica of the engine of `data_dir` positioned so that its next events follow
    /// `after_seq`: restored from the newest snapshot whose state ends at or before
    /// `after_seq` (one of an older layout is passed over), else from the first command.
    pub fn open(data_dir: &Path, after_seq: u64) -> Result<Replica> {
        let dir = journal_dir(data_dir);
        let mut snapshots = coss_journal::list_snapshots(&dir)?;
        while let Some((index, path)) = snapshots.pop() {
            let (_, bytes) = coss_journal::read_snapshot(&path)?;
            match Exchange::restore(&bytes) {
                Ok(exchange) if exchange.last_seq() <= after_seq => {
                    if exchange.commands() != index {
                        return Err(EngineError::CountMismatch {
                            state: exchange.commands(),
                            journal: index,
                        });
                    }
                    return Ok(Replica { dir, exchange });
                }
                Ok(_) | Err(coss_core::SnapshotError::Version { .. }) => {}
                Err(source) => return Err(EngineError::Snapshot { index, source }),
            }
        }
        Ok(Replica {
            dir,
            exchange: Exchange::new(),
        })
    }

    /// The sequence number of the replica's last event.
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.exchange.last_seq()
    }

    /// Replays the journal's next records until the replica's last event is at least
    /// `through_seq` (the engine delivers whole commits, so a `through_seq` that a feed was
    /// given ends exactly at a record), handing their events to `on_events` in chunks, in
    /// order. Stops early, with no error, where the journal ends.
    pub fn replay_through(
        &mut self,
        through_seq: u64,
        mut on_events: impl FnMut(Vec<Event>),
    ) -> Result<()> {
        if self.exchange.last_seq() >= through_seq {
            return Ok(());
        }
        let exchange = &mut self.exchange;
        let mut chunk: Vec<Event> = Vec::new();
        let from = exchange.commands() + 1;
        let scan = coss_journal::for_each_record(&self.dir, from, |index, payload| {
            let envelope = decode(index, payload).map_err(ReplayStop::Failed)?;
            let _ = exchange.apply(&envelope, &mut chunk);
            if chunk.len() >= REPLICA_CHUNK {
                on_events(std::mem::take(&mut chunk));
            }
            if exchange.last_seq() >= through_seq {
                return Err(ReplayStop::Reached);
            }
            Ok(())
        });
        if !chunk.is_empty() {
            on_events(chunk);
        }
        match scan {
            Ok(_) | Err(ReplayStop::Reached) => Ok(()),
            Err(ReplayStop::Failed(error)) => Err(error),
        }
    }
}
