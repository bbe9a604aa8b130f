//! The history writer: puts trades, orders (latest state), every balance change (the
//! statement) and one-minute candles into the database, from the same events the projection
//! applies, with its position in the same transaction. The engine replays the whole journal
//! into the feed at every start, so the writer skips what its position already covers and a
//! lost or emptied database is rebuilt from the journal. Rows are read from the projection
//! (which has applied at least the batch being written), so a row always holds the newest
//! state; writes are idempotent.

use crate::{Interval, MarketService, OrderStatus, order_type_name, side_name, stp_name, tif_name};
use coss_core::{Event, EventKind};
use coss_engine::Replica;
use coss_store::{BalanceRow, HistoryBatch, OrderRow, Store, TradeRow};
use coss_types::{Amount, MarketId, OrderId, UnixMs};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Event chunks the history may fall behind the projection before it stops being queued
/// and catches up from the journal instead: enough to absorb bursts without a replay, while
/// memory stays bounded. The engine never waits for the history (a database stall must not
/// stop trading); behind is safe, as the journal holds every event.
pub const HISTORY_BACKLOG: usize = 16_384;

/// Most event chunks written in one transaction.
const CHUNKS_PER_WRITE: usize = 4096;

/// How long the writer gathers chunks before writing them, unless it already holds
/// [`CHUNKS_PER_WRITE`]: one transaction per gathering, so the pages that every write touches
/// (the tails of the tables and their indexes) go to the log once per gathering rather than
/// once per engine commit. The history lags the engine by about this much.
const GATHER: Duration = Duration::from_millis(100);

/// Most event chunks the journal replay of a catch-up runs ahead of the writer.
const CATCH_UP_BACKLOG: usize = 64;

/// Starts the writer on the current runtime. `data_dir` is the engine's: when the writer
/// falls behind the feed (a database stall fills its queue, and the engine does not wait for
/// it), it replays the missing events from the journal there.
pub fn spawn_history(
    store: Store,
    market: MarketService,
    events: mpsc::Receiver<Arc<Vec<Event>>>,
    data_dir: PathBuf,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(store, market, events, data_dir))
}

async fn run(
    store: Store,
    market: MarketService,
    mut events: mpsc::Receiver<Arc<Vec<Event>>>,
    data_dir: PathBuf,
) {
    let mut position = loop {
        match store.history_position().await {
            Ok(position) => break position,
            Err(error) => {
                tracing::error!(%error, "history: cannot read its position; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(position, "history writer started");
    loop {
        // The feed stops queueing only when the queue is full, so what is queued comes
        // first; once it is written, the rest is in the journal.
        if events.is_empty() && market.history_behind() {
            catch_up(&store, &market, &data_dir, &mut position).await;
            continue;
        }
        if !write_next(&store, &market, &mut events, &mut position).await {
            return;
        }
    }
}

/// Replays the journal from `position` until the history holds everything the feed
/// delivered, then lets the feed queue again. Rounds repeat while the engine goes on: each
/// replays only what the last one did not reach, from the same replica.
async fn catch_up(store: &Store, market: &MarketService, data_dir: &Path, position: &mut u64) {
    tracing::warn!(
        position,
        "history: behind the engine; catching up from the journal"
    );
    let mut replica: Option<Replica> = None;
    loop {
        let mut current = match replica.take() {
            Some(replica) => replica,
            None => {
                let (dir, after) = (data_dir.to_path_buf(), *position);
                match tokio::task::spawn_blocking(move || Replica::open(&dir, after)).await {
                    Ok(Ok(replica)) => replica,
                    outcome => {
                        let error = match outcome {
                            Ok(Err(error)) => error.to_string(),
                            _ => "the replay thread failed".to_owned(),
                        };
                        tracing::error!(%error, "history: cannot open the journal; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                }
            }
        };
        let target = market.lag().delivered;
        if current.last_seq() < target {
            let (tx, mut rx) = mpsc::channel(CATCH_UP_BACKLOG);
            let job = tokio::task::spawn_blocking(move || {
                let outcome = current.replay_through(target, |chunk| {
                    let _ = tx.blocking_send(Arc::new(chunk));
                });
                (current, outcome)
            });
            while write_next(store, market, &mut rx, position).await {}
            match job.await {
                Ok((back, Ok(()))) => current = back,
                Ok((back, Err(error))) => {
                    tracing::error!(%error, "history: replaying the journal failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    replica = Some(back);
                    continue;
                }
                Err(_) => {
                    tracing::error!("history: the replay thread failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let mut lag = market.lag();
        if lag.delivered == current.last_seq() {
            // Nothing was delivered since the target was read: the feed queues again from
            // the next event on, with no gap.
            lag.behind = false;
            drop(lag);
            tracing::info!(position = *position, "history: caught up with the engine");
            return;
        }
        drop(lag);
        replica = Some(current);
    }
}

/// Gathers chunks from `events` (until [`CHUNKS_PER_WRITE`] or [`GATHER`] after the first)
/// and writes them; `false` once the channel is closed and empty.
async fn write_next(
    store: &Store,
    market: &MarketService,
    events: &mut mpsc::Receiver<Arc<Vec<Event>>>,
    position: &mut u64,
) -> bool {
    let mut chunks = Vec::new();
    let mut deadline = tokio::time::Instant::now();
    while chunks.len() < CHUNKS_PER_WRITE {
        let wait = if chunks.is_empty() {
            // Idle: wait for the next chunk however long it takes, then gather.
            let next = events.recv().await;
            deadline = tokio::time::Instant::now() + GATHER;
            next
        } else {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(next) => next,
                Err(_) => break,
            }
        };
        match wait {
            Some(chunk) => chunks.push(chunk),
            None if chunks.is_empty() => return false,
            None => break,
        }
    }
    let batch = collect(market, &chunks, *position);
    // The last event gathered: once written (or if the database already had it), the
    // projection may let go of what it covers.
    let last = chunks
        .iter()
        .rev()
        .find_map(|c| c.last())
        .map(|e| (e.seq, e.time_ms));
    if batch.seq > *position {
        let mut backoff = Duration::from_millis(100);
        while let Err(error) = store.write_history(&batch).await {
            tracing::error!(%error, "history: write failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
        *position = batch.seq;
    }
    if let Some((seq, time_ms)) = last {
        market.write().set_persisted(seq, time_ms);
    }
    true
}

/// The rows of the events after `position`.
fn collect(market: &MarketService, chunks: &[Arc<Vec<Event>>], position: u64) -> HistoryBatch {
    let mut batch = HistoryBatch {
        seq: position,
        ..HistoryBatch::default()
    };
    let mut trades: BTreeSet<(MarketId, u64)> = BTreeSet::new();
    let mut orders: BTreeSet<OrderId> = BTreeSet::new();
    let mut candles: BTreeSet<(MarketId, u64)> = BTreeSet::new();
    for event in chunks.iter().flat_map(|c| c.iter()) {
        let seq = event.seq;
        if seq <= position {
            continue;
        }
        batch.seq = seq;
        match &event.kind {
            EventKind::Trade {
                trade,
                market,
                maker_order,
                taker_order,
                ..
            } => {
                trades.insert((*market, *trade));
                orders.insert(*maker_order);
                orders.insert(*taker_order);
                candles.insert((*market, Interval::M1.open_time(event.time_ms)));
            }
            EventKind::OrderAccepted { order, .. }
            | EventKind::OrderTriggered { order, .. }
            | EventKind::OrderAmended { order, .. }
            | EventKind::OrderDone { order, .. } => {
                orders.insert(*order);
            }
            EventKind::BalanceChanged {
                account,
                asset,
                available,
                locked,
            } => batch.balances.push(BalanceRow {
                seq,
                account: *account,
                asset: *asset,
                available: *available,
                locked: *locked,
                time_ms: UnixMs(event.time_ms),
            }),
            _ => {}
        }
    }
    let projection = market.read();
    for (market_id, id) in trades {
        let Some(view) = projection.market(market_id) else {
            continue;
        };
        if let Some(t) = view.trade(id) {
            batch.trades.push(TradeRow {
                id: t.id,
                market: t.market,
                price: t.price,
                qty: t.qty,
                quote: Amount(t.quote),
                taker_side: side_name(t.taker_side),
                maker_order: t.maker_order,
                taker_order: t.taker_order,
                maker_account: t.maker_account,
                taker_account: t.taker_account,
                maker_fee: Amount(t.maker_fee),
                taker_fee: Amount(t.taker_fee),
                time_ms: UnixMs(t.time_ms),
            });
        }
    }
    for id in orders {
        let Some(o) = projection.order(id) else {
            continue;
        };
        batch.orders.push(OrderRow {
            id: o.id,
            account: o.new.account,
            market: o.new.market,
            side: side_name(o.new.side),
            kind: order_type_name(&o.new.kind),
            price: o.price,
            qty: o.qty,
            client_id: o.new.client_id.map(|c| c.as_str().to_owned()),
            executed: o.executed,
            cum_quote: Amount(o.cum_quote),
            status: OrderStatus::name(o.status),
            time_ms: UnixMs(o.time_ms),
            update_ms: UnixMs(o.update_ms),
            time_in_force: o.time_in_force().map(tif_name),
            stop_price: o.stop_price(),
            quote_order_qty: o.quote_order_qty(),
            stp: stp_name(o.stp()),
            working_ms: o.working_ms.map(UnixMs),
        });
    }
    for (market_id, open) in candles {
        let Some(c) = projection
            .market(market_id)
            .and_then(|v| v.candles[Interval::M1.index()].get(&open))
        else {
            continue;
        };
        batch.candles.push(crate::candle_row(market_id, c));
    }
    batch
}
