//! History: trades, orders, balance statements and one-minute candles, written from the
//! exchange core's events by the history writer (`coss-market`), with the position it has
//! reached. Writes are idempotent (rows are keyed by trade id, order id, event sequence
//! number and candle start), so a batch written twice after a crash changes nothing.

use sqlx::Row;

use crate::{Backend, Store, StoreError};

/// Most rows per multi-row statement (13 columns × 256 stays far below both backends' limits
/// on bound parameters).
pub const ROWS_PER_STATEMENT: usize = 256;

/// `head` followed by `rows` groups of `columns` placeholders, then `tail`. Only placeholders
/// are generated: every value is bound. SQLite gets anonymous `?` placeholders: SQLite finds
/// a numbered one's name by a linear search, which sqlx does for every parameter, so `$N`
/// costs time quadratic in the parameters of a statement (75% of a profile of DAO writes).
/// PostgreSQL gets `$N`, which it requires.
pub(crate) fn multi_row(
    backend: Backend,
    head: &str,
    columns: usize,
    rows: usize,
    tail: &str,
) -> String {
    let mut sql = String::with_capacity(head.len() + tail.len() + rows * columns * 6);
    sql.push_str(head);
    for row in 0..rows {
        if row > 0 {
            sql.push(',');
        }
        sql.push('(');
        for column in 0..columns {
            if column > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(row * columns + column + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
}

/// `rows` cut into slices whose lengths are powers of two, at most `max` (a power of two),
/// longest first: a table's inserts then use at most log2(`max`) + 1 distinct statements,
/// which stay in the connection's prepared-statement cache.
pub(crate) fn pow2_chunks<T>(mut rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        if rows.is_empty() {
            return None;
        }
        let len = if rows.len() >= max {
            max
        } else {
            1 << rows.len().ilog2()
        };
        let (chunk, rest) = rows.split_at(len);
        rows = rest;
        Some(chunk)
    })
}

/// A trade row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TradeRow {
    /// Trade id.
    pub id: i64,
    /// Market id.
    pub market: i64,
    /// Price in ticks.
    pub price: i64,
    /// Quantity in lots.
    pub qty: i64,
    /// Quote amount, smallest units.
    pub quote: String,
    /// `BUY` or `SELL`.
    pub taker_side: &'static str,
    /// Resting order.
    pub maker_order: i64,
    /// Incoming order.
    pub taker_order: i64,
    /// Resting order's account.
    pub maker_account: i64,
    /// Incoming order's account.
    pub taker_account: i64,
    /// Maker's fee, smallest units of what it received.
    pub maker_fee: String,
    /// Taker's fee.
    pub taker_fee: String,
    /// When.
    pub time_ms: i64,
}

/// An order row (its latest state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// Order id.
    pub id: i64,
    /// Owner.
    pub account: i64,
    /// Market id.
    pub market: i64,
    /// `BUY` or `SELL`.
    pub side: &'static str,
    /// `LIMIT`, `LIMIT_MAKER`, `MARKET`, `STOP_LOSS_LIMIT`, `TAKE_PROFIT_LIMIT`.
    pub kind: &'static str,
    /// Limit price in ticks.
    pub price: Option<i64>,
    /// Quantity in lots.
    pub qty: Option<i64>,
    /// Client order id.
    pub client_id: Option<String>,
    /// Lots executed.
    pub executed: i64,
    /// Quote exchanged, smallest units.
    pub cum_quote: String,
    /// Binance status name.
    pub status: &'static str,
    /// Accepted at.
    pub time_ms: i64,
    /// Last change.
    pub update_ms: i64,
}

/// A balance after a change (a statement line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    /// Event sequence number.
    pub seq: i64,
    /// Account.
    pub account: i64,
    /// Asset id.
    pub asset: i64,
    /// Available after, smallest units.
    pub available: String,
    /// Locked after.
    pub locked: String,
    /// When.
    pub time_ms: i64,
}

/// A one-minute candle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandleRow {
    /// Market id.
    pub market: i64,
    /// Start (ms).
    pub open_time: i64,
    /// Prices in ticks.
    pub open: i64,
    /// Highest.
    pub high: i64,
    /// Lowest.
    pub low: i64,
    /// Last.
    pub close: i64,
    /// Lots traded.
    pub volume: String,
    /// Quote traded.
    pub quote_volume: String,
    /// Number of trades.
    pub trades: i64,
}

/// One batch of history, written in one transaction with the new position.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistoryBatch {
    /// New trades.
    pub trades: Vec<TradeRow>,
    /// Orders in their latest state.
    pub orders: Vec<OrderRow>,
    /// Balance changes.
    pub balances: Vec<BalanceRow>,
    /// Candles in their latest state.
    pub candles: Vec<CandleRow>,
    /// The last event sequence number covered.
    pub seq: i64,
}

impl Store {
    /// The last event sequence number the history holds (0: none).
    pub async fn history_position(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT seq FROM history_cursor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get(0)?,
            None => 0,
        })
    }

    /// Writes a batch and the new position in one transaction (rows go in multi-row
    /// statements of at most [`ROWS_PER_STATEMENT`], see [`pow2_chunks`]).
    pub async fn write_history(&self, batch: &HistoryBatch) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for rows in pow2_chunks(&batch.trades, ROWS_PER_STATEMENT) {
            let sql = multi_row(
                self.backend,
                "INSERT INTO trades (id, market, price, qty, quote, taker_side, maker_order, \
                 taker_order, maker_account, taker_account, maker_fee, taker_fee, time_ms) VALUES ",
                13,
                rows.len(),
                " ON CONFLICT (id) DO NOTHING",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for t in rows {
                query = query
                    .bind(t.id)
                    .bind(t.market)
                    .bind(t.price)
                    .bind(t.qty)
                    .bind(t.quote.as_str())
                    .bind(t.taker_side)
                    .bind(t.maker_order)
                    .bind(t.taker_order)
                    .bind(t.maker_account)
                    .bind(t.taker_account)
                    .bind(t.maker_fee.as_str())
                    .bind(t.taker_fee.as_str())
                    .bind(t.time_ms);
            }
            query.execute(&mut *tx).await?;
        }
        for rows in pow2_chunks(&batch.orders, ROWS_PER_STATEMENT) {
            let sql = multi_row(
                self.backend,
                "INSERT INTO orders (id, account, market, side, kind, price, qty, client_id, \
                 executed, cum_quote, status, time_ms, update_ms) VALUES ",
                13,
                rows.len(),
                " ON CONFLICT (id) DO UPDATE SET price = excluded.price, qty = excluded.qty, \
                 executed = excluded.executed, cum_quote = excluded.cum_quote, \
                 status = excluded.status, update_ms = excluded.update_ms",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for o in rows {
                query = query
                    .bind(o.id)
                    .bind(o.account)
                    .bind(o.market)
                    .bind(o.side)
                    .bind(o.kind)
                    .bind(o.price)
                    .bind(o.qty)
                    .bind(o.client_id.as_deref())
                    .bind(o.executed)
                    .bind(o.cum_quote.as_str())
                    .bind(o.status)
                    .bind(o.time_ms)
                    .bind(o.update_ms);
            }
            query.execute(&mut *tx).await?;
        }
        for rows in pow2_chunks(&batch.balances, ROWS_PER_STATEMENT) {
            let sql = multi_row(
                self.backend,
                "INSERT INTO balance_changes (seq, account, asset, available, locked, time_ms) VALUES ",
                6,
                rows.len(),
                " ON CONFLICT (seq) DO NOTHING",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for b in rows {
                query = query
                    .bind(b.seq)
                    .bind(b.account)
                    .bind(b.asset)
                    .bind(b.available.as_str())
                    .bind(b.locked.as_str())
                    .bind(b.time_ms);
            }
            query.execute(&mut *tx).await?;
        }
        for rows in pow2_chunks(&batch.candles, ROWS_PER_STATEMENT) {
            let sql = multi_row(
                self.backend,
                "INSERT INTO candles (market, open_time, open, high, low, close, volume, \
                 quote_volume, trades) VALUES ",
                9,
                rows.len(),
                " ON CONFLICT (market, open_time) DO UPDATE SET open = excluded.open, \
                 high = excluded.high, low = excluded.low, close = excluded.close, \
                 volume = excluded.volume, quote_volume = excluded.quote_volume, \
                 trades = excluded.trades",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in rows {
                query = query
                    .bind(c.market)
                    .bind(c.open_time)
                    .bind(c.open)
                    .bind(c.high)
                    .bind(c.low)
                    .bind(c.close)
                    .bind(c.volume.as_str())
                    .bind(c.quote_volume.as_str())
                    .bind(c.trades);
            }
            query.execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO history_cursor (id, seq) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
        )
        .bind(batch.seq)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An account's statement in one asset: balances after each change, oldest first, from
    /// after `after_seq`, at most `limit`.
    pub async fn statement(
        &self,
        account: i64,
        asset: i64,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<BalanceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, account, asset, available, locked, time_ms FROM balance_changes \
             WHERE account = $1 AND asset = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(account)
        .bind(asset)
        .bind(after_seq)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BalanceRow {
                    seq: r.try_get(0)?,
                    account: r.try_get(1)?,
                    asset: r.try_get(2)?,
                    available: r.try_get(3)?,
                    locked: r.try_get(4)?,
                    time_ms: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Counts of the history tables: trades, orders, balance changes, candles.
    pub async fn history_counts(&self) -> Result<[i64; 4], StoreError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM trades), (SELECT COUNT(*) FROM orders), \
             (SELECT COUNT(*) FROM balance_changes), (SELECT COUNT(*) FROM candles)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok([
            row.try_get(0)?,
            row.try_get(1)?,
            row.try_get(2)?,
            row.try_get(3)?,
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_longest_first_and_cover_every_row() {
        let rows: Vec<u32> = (0..600).collect();
        let lens: Vec<usize> = pow2_chunks(&rows, 256).map(<[u32]>::len).collect();
        assert_eq!(lens, [256, 256, 64, 16, 8]);
        let joined: Vec<u32> = pow2_chunks(&rows, 256).flatten().copied().collect();
        assert_eq!(joined, rows);
        assert_eq!(pow2_chunks(&rows[..0], 256).count(), 0);
        assert_eq!(
            pow2_chunks(&rows[..1], 256)
                .map(<[u32]>::len)
                .collect::<Vec<_>>(),
            [1]
        );
    }

    #[test]
    fn sqlite_gets_anonymous_placeholders_and_postgres_numbered_ones() {
        assert_eq!(
            multi_row(Backend::Sqlite, "INSERT INTO t (a, b) VALUES ", 2, 2, ";"),
            "INSERT INTO t (a, b) VALUES (?,?),(?,?);"
        );
        assert_eq!(
            multi_row(Backend::Postgres, "INSERT INTO t (a, b) VALUES ", 2, 2, ";"),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4);"
        );
    }
}
