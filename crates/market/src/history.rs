//! The history writer: puts trades, orders (latest state), every balance change (the
//! statement) and one-minute candles into the database, from the same events the projection
//! applies, with its position in the same transaction. The engine replays the whole journal
//! into the feed at every start, so the writer skips what its position already covers and a
//! lost or emptied database is rebuilt from the journal. Rows are read from the projection
//! (which has applied at least the batch being written), so a row always holds the newest
//! state; writes are idempotent.

use crate::{Interval, MarketService, OrderStatus, order_type_name, side_name, stp_name, tif_name};
use coss_core::{Event, EventKind};
use coss_store::{BalanceRow, CandleRow, HistoryBatch, OrderRow, Store, TradeRow};
use coss_types::{MarketId, OrderId};
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

fn i64_of(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The rows of the events after `position`.
fn collect(market: &MarketService, chunks: &[Arc<Vec<Event>>], position: i64) -> HistoryBatch {
    let mut batch = HistoryBatch {
        seq: position,
        ..HistoryBatch::default()
    };
    let mut trades: BTreeSet<(MarketId, u64)> = BTreeSet::new();
    let mut orders: BTreeSet<OrderId> = BTreeSet::new();
    let mut candles: BTreeSet<(MarketId, u64)> = BTreeSet::new();
    for event in chunks.iter().flat_map(|c| c.iter()) {
        let seq = i64_of(event.seq);
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
                account: i64_of(account.0),
                asset: i64::from(asset.0),
                available: available.0.to_string(),
                locked: locked.0.to_string(),
                time_ms: i64_of(event.time_ms),
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
                id: i64_of(t.id),
                market: i64::from(t.market.0),
                price: i64_of(t.price.0),
                qty: i64_of(t.qty.0),
                quote: t.quote.to_string(),
                taker_side: side_name(t.taker_side),
                maker_order: i64_of(t.maker_order.0),
                taker_order: i64_of(t.taker_order.0),
                maker_account: i64_of(t.maker_account.0),
                taker_account: i64_of(t.taker_account.0),
                maker_fee: t.maker_fee.to_string(),
                taker_fee: t.taker_fee.to_string(),
                time_ms: i64_of(t.time_ms),
            });
        }
    }
    for id in orders {
        let Some(o) = projection.order(id) else {
            continue;
        };
        batch.orders.push(OrderRow {
            id: i64_of(o.id.0),
            account: i64_of(o.new.account.0),
            market: i64::from(o.new.market.0),
            side: side_name(o.new.side),
            kind: order_type_name(&o.new.kind),
            price: o.price.map(|p| i64_of(p.0)),
            qty: o.qty.map(|q| i64_of(q.0)),
            client_id: o.new.client_id.map(|c| c.as_str().to_owned()),
            executed: i64_of(o.executed),
            cum_quote: o.cum_quote.to_string(),
            status: OrderStatus::name(o.status),
            time_ms: i64_of(o.time_ms),
            update_ms: i64_of(o.update_ms),
            time_in_force: o.time_in_force().map(tif_name),
            stop_price: o.stop_price().map(|p| i64_of(p.0)),
            quote_order_qty: o.quote_order_qty().map(|a| a.0.to_string()),
            stp: stp_name(o.stp()),
            working_ms: o.working_ms.map(i64_of),
        });
    }
    for (market_id, open) in candles {
        let Some(c) = projection
            .market(market_id)
            .and_then(|v| v.candles[Interval::M1.index()].get(&open))
        else {
            continue;
        };
        batch.candles.push(CandleRow {
            market: i64::from(market_id.0),
            open_time: i64_of(c.open_time),
            open: i64_of(c.open.0),
            high: i64_of(c.high.0),
            low: i64_of(c.low.0),
            close: i64_of(c.close.0),
            volume: c.volume.to_string(),
            quote_volume: c.quote_volume.to_string(),
            trades: i64_of(c.trades),
            taker_buy_volume: c.taker_buy_volume.to_string(),
            taker_buy_quote: c.taker_buy_quote.to_string(),
        });
    }
    batch
}
