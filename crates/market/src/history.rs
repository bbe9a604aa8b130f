//! The history writer: puts trades, orders (latest state), every balance change (the
//! statement) and one-minute candles into the database, from the same events the projection
//! applies, with its position in the same transaction. The engine replays the whole journal
//! into the feed at every start, so the writer skips what its position already covers and a
//! lost or emptied database is rebuilt from the journal. Rows are read from the projection
//! (which has applied at least the batch being written), so a row always holds the newest
//! state; writes are idempotent.

use crate::{Interval, MarketService, OrderStatus, order_type_name, side_name, stp_name, tif_name};
use coss_core::{Event, EventKind};
use coss_store::{BalanceRow, HistoryBatch, OrderRow, Store, TradeRow};
use coss_types::{Amount, MarketId, OrderId, UnixMs};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Event chunks the history may fall behind the projection before the projection (and so
/// the engine) waits for it: enough to absorb minutes of peak load, so trading never waits
/// for the database, while memory stays bounded. Behind is safe: a restart replays the
/// journal after the history's position.
pub const HISTORY_BACKLOG: usize = 16_384;

/// Most event chunks written in one transaction.
const CHUNKS_PER_WRITE: usize = 4096;

/// How long the writer gathers chunks before writing them, unless it already holds
/// [`CHUNKS_PER_WRITE`]: one transaction per gathering, so the pages that every write touches
/// (the tails of the tables and their indexes) go to the log once per gathering rather than
/// once per engine commit. The history lags the engine by about this much.
const GATHER: Duration = Duration::from_millis(100);

/// Starts the writer on the current runtime.
pub fn spawn_history(
    store: Store,
    market: MarketService,
    events: mpsc::Receiver<Arc<Vec<Event>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(store, market, events))
}

async fn run(store: Store, market: MarketService, mut events: mpsc::Receiver<Arc<Vec<Event>>>) {
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
    let mut chunks = Vec::new();
    loop {
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
                None if chunks.is_empty() => return,
                None => break,
            }
        }
        let batch = collect(&market, &chunks, position);
        // The last event gathered: once written (or if the database already had it), the
        // projection may let go of what it covers.
        let last = chunks
            .iter()
            .rev()
            .find_map(|c| c.last())
            .map(|e| (e.seq, e.time_ms));
        chunks.clear();
        if batch.seq > position {
            let mut backoff = Duration::from_millis(100);
            while let Err(error) = store.write_history(&batch).await {
                tracing::error!(%error, "history: write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
            position = batch.seq;
        }
        if let Some((seq, time_ms)) = last {
            market.write().set_persisted(seq, time_ms);
        }
    }
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
