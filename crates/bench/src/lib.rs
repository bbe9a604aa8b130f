//! Benchmarks behind `coss bench`, each measured against a peer in the same run. The engine:
//! a seeded, exchange-core-like workload (see [`workload`]) run through the order book alone,
//! through a peer order book (the `lobster` crate, driven by the same operation stream),
//! through the full exchange core, and through the durable engine service with its journal.
//! [`api`]: the running platform's trading API under load on loopback. [`auth`]: what
//! security costs. [`dao`]: one DAO week for a million holders. [`wallet`]: the deposit
//! watcher on anvil. Results are figures and ratios, returned as JSON for the command to
//! print, never asserted as timings in tests. Floats appear here only for reporting ratios and
//! durations, never near money.

pub mod api;
pub mod auth;
pub mod dao;
pub mod gateway;
pub mod wallet;
pub mod workload;

use coss_book::OrderBook;
use coss_core::{
    Command, Envelope, Exchange, NewOrder, OrderKind, SelfTradePrevention, TimeInForce,
};
use coss_engine::{Engine, EngineConfig};
use coss_types::{OrderId, Price, Qty, Side};
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;
use workload::{BookOp, MARKET, Workload};

/// What to run.
#[derive(Debug, Clone)]
pub struct EngineBenchOptions {
    /// Measured commands.
    pub commands: usize,
    /// Workload seed.
    pub seed: u64,
    /// Also run the durable engine service, journaling into this data directory.
    pub durable_data_dir: Option<PathBuf>,
    /// Resting orders for the memory measurement.
    pub memory_orders: usize,
    /// Timed repetitions of each throughput measurement (the best is reported).
    pub repeats: usize,
}

/// Errors of a benchmark run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The engine service failed.
    #[error(transparent)]
    Engine(#[from] coss_engine::EngineError),
    /// The durable data directory already holds a journal.
    #[error("{0} already holds a journal: use an empty data directory")]
    NotEmpty(PathBuf),
    /// The runs disagree with each other.
    #[error("benchmark runs disagree: {0}")]
    Mismatch(String),
    /// A step of a benchmark's set-up or run failed.
    #[error("{0}")]
    Failed(String),
}

impl BenchError {
    /// A failure, said in words.
    pub fn failed(message: impl Into<String>) -> BenchError {
        BenchError::Failed(message.into())
    }
}

/// The result of a benchmark step.
pub type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Says what failed.
pub(crate) trait Context<T> {
    /// On failure, `what: why`.
    fn context(self, what: &str) -> Result<T>;
}

impl<T, E: std::fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: &str) -> Result<T> {
        self.map_err(|e| BenchError::Failed(format!("{what}: {e}")))
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: &str) -> Result<T> {
        self.ok_or_else(|| BenchError::Failed(what.to_owned()))
    }
}

/// The errors of the parts a benchmark drives, said in words.
macro_rules! failures {
    ($($error:ty),* $(,)?) => {
        $(impl From<$error> for BenchError {
            fn from(error: $error) -> Self {
                BenchError::Failed(error.to_string())
            }
        })*
    };
}

failures!(
    std::io::Error,
    serde_json::Error,
    tokio::task::JoinError,
    coss_store::StoreError,
    coss_identity::IdentityError,
    coss_identity::VaultError,
    coss_wallet::WalletError,
    coss_dao::DaoError,
    coss_server::PlatformError,
    coss_contracts::ChainError,
    alloy::transports::TransportError,
    alloy::node_bindings::NodeError,
    alloy::contract::Error,
    alloy::providers::PendingTransactionError,
);

/// The figures of one `coss bench engine` run.
#[derive(Debug, Clone, Serialize)]
pub struct EngineReport {
    /// Measured commands.
    pub commands: usize,
    /// Seed.
    pub seed: u64,
    /// Order book alone: operations per second.
    pub book_ops_per_s: u64,
    /// The peer book on the same operations.
    pub peer_name: String,
    /// Peer operations per second.
    pub peer_book_ops_per_s: u64,
    /// `book_ops_per_s / peer_book_ops_per_s`.
    pub book_vs_peer: f64,
    /// Full state machine (balances, fees, events): commands per second.
    pub core_cmds_per_s: u64,
    /// Per-command latency in the core (includes ~20 ns of clock reading).
    pub core_p50_ns: u64,
    /// 99th percentile.
    pub core_p99_ns: u64,
    /// 99.9th percentile.
    pub core_p999_ns: u64,
    /// Worst command.
    pub core_max_ns: u64,
    /// Engine service with journal and fsync: commands per second (if run).
    pub durable_cmds_per_s: Option<u64>,
    /// Batches submitted in the durable run.
    pub durable_batches: Option<u64>,
    /// Heap bytes per resting order in the full core, measured with `memory_orders` orders.
    pub bytes_per_resting_order: u64,
    /// Heap bytes per resting order in the book alone.
    pub book_bytes_per_resting_order: u64,
    /// Orders resting in the memory measurement.
    pub memory_orders: usize,
    /// Trades executed by the core in the measured stream.
    pub trades: u64,
    /// Orders resting at the end.
    pub resting_orders_end: usize,
    /// Hash of the core's state at the end (same seed, same hash).
    pub state_hash: String,
}

fn per_second(count: usize, nanos: u128) -> u64 {
    let nanos = nanos.max(1);
    u64::try_from(count as u128 * 1_000_000_000 / nanos).unwrap_or(u64::MAX)
}

/// Applies a book operation to our book; returns the number of fills.
#[inline]
fn book_apply(book: &mut OrderBook<u32>, op: &BookOp) -> u64 {
    let mut fills = 0u64;
    let count = |_: &coss_book::Fill<u32>| fills += 1;
    match *op {
        BookOp::Limit {
            id,
            side,
            price,
            qty,
        } => {
            let _ = book.execute_limit(id, side, price, qty, 0, count);
        }
        BookOp::Ioc { side, price, qty } => {
            book.match_incoming(side, Some(price), qty, count);
        }
        BookOp::Fok { side, price, qty } => {
            if book.liquidity(side.opposite(), Some(price), qty.0) >= qty.0 {
                book.match_incoming(side, Some(price), qty, count);
            }
        }
        BookOp::Market { side, qty } => {
            book.execute_market(side, qty, count);
        }
        BookOp::Cancel { id } => {
            book.cancel(id);
        }
        BookOp::Reduce { id, qty, .. } => {
            let _ = book.reduce(id, qty);
        }
        BookOp::Move {
            id,
            side,
            price,
            qty,
        } => {
            if book.cancel(id).is_some() {
                let _ = book.execute_limit(id, side, price, qty, 0, count);
            }
        }
    }
    fills
}

fn lobster_side(side: Side) -> lobster::Side {
    match side {
        Side::Buy => lobster::Side::Bid,
        Side::Sell => lobster::Side::Ask,
    }
}

/// Applies a book operation to the peer with its closest equivalents: IOC and FOK are a limit
/// order followed by a cancel of any remainder (lobster has neither), a reduce or a move is a
/// cancel and a new limit order (lobster has no amend).
#[inline]
fn peer_apply(book: &mut lobster::OrderBook, op: &BookOp, scratch_id: &mut u128) {
    use lobster::{OrderEvent, OrderType};
    let limit = |book: &mut lobster::OrderBook, id: u128, side: Side, price: Price, qty: Qty| {
        book.execute(OrderType::Limit {
            id,
            side: lobster_side(side),
            qty: qty.0,
            price: price.0,
        })
    };
    match *op {
        BookOp::Limit {
            id,
            side,
            price,
            qty,
        } => {
            limit(book, u128::from(id.0), side, price, qty);
        }
        BookOp::Ioc { side, price, qty } | BookOp::Fok { side, price, qty } => {
            *scratch_id += 1;
            let id = *scratch_id;
            match limit(book, id, side, price, qty) {
                OrderEvent::Placed { .. } | OrderEvent::PartiallyFilled { .. } => {
                    book.execute(OrderType::Cancel { id });
                }
                _ => {}
            }
        }
        BookOp::Market { side, qty } => {
            *scratch_id += 1;
            book.execute(OrderType::Market {
                id: *scratch_id,
                side: lobster_side(side),
                qty: qty.0,
            });
        }
        BookOp::Cancel { id } => {
            book.execute(OrderType::Cancel {
                id: u128::from(id.0),
            });
        }
        BookOp::Reduce {
            id,
            side,
            price,
            qty,
        }
        | BookOp::Move {
            id,
            side,
            price,
            qty,
        } => {
            // Without an amend, reducing or moving is a cancel and a new order.
            book.execute(OrderType::Cancel {
                id: u128::from(id.0),
            });
            limit(book, u128::from(id.0), side, price, qty);
        }
    }
}

/// Runs the book-only stream on our book; returns (ns, fills, resting).
fn run_book(w: &Workload) -> (u128, u64, usize) {
    let mut book = OrderBook::<u32>::with_capacity(4096);
    for op in &w.setup_book_ops {
        book_apply(&mut book, op);
    }
    let start = Instant::now();
    let mut fills = 0;
    for op in &w.book_ops {
        fills += book_apply(&mut book, op);
    }
    let nanos = start.elapsed().as_nanos();
    std::hint::black_box(&book);
    (nanos, fills, book.len())
}

fn run_peer(w: &Workload, ops: &[BookOp]) -> u128 {
    let mut book = lobster::OrderBook::default();
    let mut scratch_id = 1u128 << 100;
    for op in &w.setup_book_ops {
        peer_apply(&mut book, op, &mut scratch_id);
    }
    let start = Instant::now();
    for op in ops {
        peer_apply(&mut book, op, &mut scratch_id);
    }
    let nanos = start.elapsed().as_nanos();
    std::hint::black_box(&book);
    nanos
}

fn fresh_core(w: &Workload) -> Exchange {
    let mut exchange = Exchange::new();
    let mut events = Vec::new();
    for envelope in &w.setup {
        events.clear();
        let _ = exchange.apply(envelope, &mut events);
    }
    exchange
}

/// Runs the measured stream through the core; returns (ns, trades, exchange).
fn run_core(w: &Workload) -> (u128, u64, Exchange) {
    let mut exchange = fresh_core(w);
    let mut events = Vec::with_capacity(256);
    let mut trades = 0u64;
    let start = Instant::now();
    for envelope in &w.commands {
        events.clear();
        let _ = exchange.apply(envelope, &mut events);
        trades += events
            .iter()
            .filter(|e| matches!(e.kind, coss_core::EventKind::Trade { .. }))
            .count() as u64;
    }
    let nanos = start.elapsed().as_nanos();
    (nanos, trades, exchange)
}

fn core_latencies(w: &Workload) -> Vec<u64> {
    let mut exchange = fresh_core(w);
    let mut events = Vec::with_capacity(256);
    let mut samples = Vec::with_capacity(w.commands.len());
    for envelope in &w.commands {
        events.clear();
        let start = Instant::now();
        let _ = exchange.apply(envelope, &mut events);
        samples.push(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    }
    samples.sort_unstable();
    samples
}

fn percentile(sorted: &[u64], per_mille: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = (sorted.len() * per_mille / 1000).min(sorted.len() - 1);
    sorted[at]
}

fn run_durable(w: &Workload, dir: &PathBuf) -> Result<(u128, u64), BenchError> {
    let journal = coss_engine::journal_dir(dir);
    if journal.is_dir()
        && std::fs::read_dir(&journal)
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    {
        return Err(BenchError::NotEmpty(dir.clone()));
    }
    let config = EngineConfig::new(dir);
    let batch = config.max_batch;
    let (engine, _) = Engine::start(config)?;
    let handle = engine.handle();
    let strip = |envelopes: &[Envelope]| -> Vec<Command> {
        envelopes.iter().map(|e| e.command.clone()).collect()
    };
    for chunk in w.setup.chunks(batch) {
        handle.submit_batch(strip(chunk))?;
    }
    let batches: Vec<Vec<Command>> = w.commands.chunks(batch).map(strip).collect();
    let count = batches.len() as u64;
    let start = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    for commands in batches {
        in_flight.push_back(handle.send_batch(commands)?);
        if in_flight.len() > 4
            && let Some(pending) = in_flight.pop_front()
        {
            pending.wait()?;
        }
    }
    for pending in in_flight {
        pending.wait()?;
    }
    let nanos = start.elapsed().as_nanos();
    drop(handle);
    engine.shutdown()?;
    Ok((nanos, count))
}

/// Heap bytes per resting order, in the core and in the book alone, with `orders` orders
/// resting across 2,000 accounts and 20,000 price levels.
fn memory(orders: usize, allocated: &dyn Fn() -> usize) -> (u64, u64) {
    let mut exchange = Exchange::new();
    let mut events = Vec::with_capacity(64);
    let mut time_ms = 0;
    for command in workload::listing_and_funding(workload::ACCOUNTS) {
        time_ms += 1;
        events.clear();
        let _ = exchange.apply(&Envelope { time_ms, command }, &mut events);
    }
    let orders_of = |n: usize| {
        let side = if n.is_multiple_of(2) {
            Side::Buy
        } else {
            Side::Sell
        };
        let level = (n / 2 % 10_000) as u64;
        let price = match side {
            Side::Buy => Price(4_990_000 - level),
            Side::Sell => Price(5_010_000 + level),
        };
        (side, price, Qty(1 + (n % 7) as u64))
    };
    let before = allocated();
    for n in 0..orders {
        let (side, price, qty) = orders_of(n);
        time_ms += 1;
        events.clear();
        let command = Command::PlaceOrder(NewOrder {
            account: workload::account_id((n as u64) % workload::ACCOUNTS),
            market: MARKET,
            side,
            kind: OrderKind::Limit {
                price,
                qty,
                tif: TimeInForce::Gtc,
            },
            client_id: None,
            stp: SelfTradePrevention::None,
        });
        let _ = exchange.apply(&Envelope { time_ms, command }, &mut events);
    }
    let core_bytes = allocated().saturating_sub(before);
    std::hint::black_box(&exchange);
    let rested = exchange.resting_orders(MARKET).max(1);
    drop(exchange);

    let before = allocated();
    let mut book = OrderBook::<u32>::new();
    for n in 0..orders {
        let (side, price, qty) = orders_of(n);
        let _ = book.add(OrderId(n as u64 + 1), side, price, qty, 0);
    }
    let book_bytes = allocated().saturating_sub(before);
    let book_rested = book.len().max(1);
    drop(book);
    (
        (core_bytes / rested) as u64,
        (book_bytes / book_rested) as u64,
    )
}

/// Runs `coss bench engine`. `allocated` reports the process's live heap bytes (the binary
/// installs a counting allocator).
pub fn engine(
    options: &EngineBenchOptions,
    allocated: &dyn Fn() -> usize,
) -> Result<EngineReport, BenchError> {
    let w = workload::generate(options.commands, options.seed);
    let repeats = options.repeats.max(1);

    // Rounds interleave the three measurements so that a noisy moment of the machine hits
    // them alike; the best round of each is reported.
    let (mut book_best, mut peer_best, mut core_best) = (u128::MAX, u128::MAX, u128::MAX);
    let mut book_fills = 0;
    let mut last = None;
    for _ in 0..repeats {
        let (nanos, fills, _) = run_book(&w);
        book_best = book_best.min(nanos);
        book_fills = fills;
        peer_best = peer_best.min(run_peer(&w, &w.book_ops));
        let (nanos, trades, exchange) = run_core(&w);
        core_best = core_best.min(nanos);
        last = Some((trades, exchange));
    }
    let Some((trades, exchange)) = last else {
        return Err(BenchError::Mismatch("no core run".into()));
    };
    if trades != book_fills {
        return Err(BenchError::Mismatch(format!(
            "the core made {trades} trades but the book alone {book_fills}"
        )));
    }
    let mut latencies = core_latencies(&w);
    for _ in 1..repeats {
        // Keep the quietest run's distribution (judged by its 99th percentile).
        let again = core_latencies(&w);
        if percentile(&again, 990) < percentile(&latencies, 990) {
            latencies = again;
        }
    }
    let durable = match &options.durable_data_dir {
        Some(dir) => Some(run_durable(&w, dir)?),
        None => None,
    };
    let (bytes_per_resting_order, book_bytes_per_resting_order) =
        memory(options.memory_orders, allocated);

    let book_ops_per_s = per_second(w.book_ops.len(), book_best);
    let peer_book_ops_per_s = per_second(w.book_ops.len(), peer_best);
    let ratio_hundredths =
        u64::try_from(u128::from(book_ops_per_s) * 100 / u128::from(peer_book_ops_per_s.max(1)))
            .unwrap_or(u64::MAX);
    Ok(EngineReport {
        commands: w.commands.len(),
        seed: options.seed,
        book_ops_per_s,
        peer_name: "lobster 0.7.0".into(),
        peer_book_ops_per_s,
        book_vs_peer: ratio_hundredths as f64 / 100.0,
        core_cmds_per_s: per_second(w.commands.len(), core_best),
        core_p50_ns: percentile(&latencies, 500),
        core_p99_ns: percentile(&latencies, 990),
        core_p999_ns: percentile(&latencies, 999),
        core_max_ns: latencies.last().copied().unwrap_or(0),
        durable_cmds_per_s: durable.map(|(nanos, _)| per_second(w.commands.len(), nanos)),
        durable_batches: durable.map(|(_, batches)| batches),
        bytes_per_resting_order,
        book_bytes_per_resting_order,
        memory_orders: options.memory_orders,
        trades,
        resting_orders_end: exchange.resting_orders(MARKET),
        state_hash: exchange.state_hash().to_string(),
    })
}

/// Runs only the core throughput measurement, `repeats` times (for profilers); returns the
/// best commands per second.
#[must_use]
pub fn core_only(commands: usize, seed: u64, repeats: usize) -> u64 {
    let w = workload::generate(commands, seed);
    let mut best = u128::MAX;
    for _ in 0..repeats.max(1) {
        best = best.min(run_core(&w).0);
    }
    per_second(w.commands.len(), best)
}
