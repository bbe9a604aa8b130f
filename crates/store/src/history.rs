//! History: trades, orders, balance statements and one-minute candles, written from the
//! exchange core's events by the history writer (`coss-market`), with the position it has
//! reached. Writes are idempotent (rows are keyed by trade id, order id, event sequence
//! number and candle start), so a batch written twice after a crash changes nothing.

use coss_types::{AccountId, Amount, AssetId, MarketId, OrderId, Price, Qty, UnixMs};
use sqlx::Row;

use crate::{Backend, Store, StoreError, stored_amount};

/// A count, id or time as the database's BIGINT (none comes near `i64::MAX`).
fn db(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A stored BIGINT that must not be negative.
fn unsigned(n: i64) -> Result<u64, StoreError> {
    u64::try_from(n).map_err(|_| StoreError::Invalid(format!("negative count or id {n}")))
}

/// A stored decimal count of lots (128 bits, like an amount).
fn stored_lots(text: &str) -> Result<u128, StoreError> {
    stored_amount(text).map(|a| a.0)
}

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
    pub id: u64,
    /// Market.
    pub market: MarketId,
    /// Price in ticks.
    pub price: Price,
    /// Quantity in lots.
    pub qty: Qty,
    /// Quote amount, smallest units.
    pub quote: Amount,
    /// `BUY` or `SELL`.
    pub taker_side: &'static str,
    /// Resting order.
    pub maker_order: OrderId,
    /// Incoming order.
    pub taker_order: OrderId,
    /// Resting order's account.
    pub maker_account: AccountId,
    /// Incoming order's account.
    pub taker_account: AccountId,
    /// Maker's fee, smallest units of what it received.
    pub maker_fee: Amount,
    /// Taker's fee.
    pub taker_fee: Amount,
    /// When.
    pub time_ms: UnixMs,
}

/// An order row (its latest state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRow {
    /// Order id.
    pub id: OrderId,
    /// Owner.
    pub account: AccountId,
    /// Market.
    pub market: MarketId,
    /// `BUY` or `SELL`.
    pub side: &'static str,
    /// `LIMIT`, `LIMIT_MAKER`, `MARKET`, `STOP_LOSS_LIMIT`, `TAKE_PROFIT_LIMIT`.
    pub kind: &'static str,
    /// Limit price in ticks.
    pub price: Option<Price>,
    /// Quantity in lots.
    pub qty: Option<Qty>,
    /// Client order id.
    pub client_id: Option<String>,
    /// Lots executed.
    pub executed: u64,
    /// Quote exchanged, smallest units.
    pub cum_quote: Amount,
    /// Binance status name.
    pub status: &'static str,
    /// Accepted at.
    pub time_ms: UnixMs,
    /// Last change.
    pub update_ms: UnixMs,
    /// `GTC`, `IOC`, `FOK` (limit-like orders), or none.
    pub time_in_force: Option<&'static str>,
    /// Trigger price in ticks (stop and take-profit orders).
    pub stop_price: Option<Price>,
    /// Quote amount of a market order by quote amount, smallest units.
    pub quote_order_qty: Option<Amount>,
    /// Self-trade prevention mode: `NONE`, `EXPIRE_TAKER`, `EXPIRE_MAKER`, `EXPIRE_BOTH`.
    pub stp: &'static str,
    /// When it started working (stops: when triggered).
    pub working_ms: Option<UnixMs>,
}

/// Every name an order row's text columns may hold (what the history writer writes).
const ORDER_NAMES: [&str; 20] = [
    "BUY",
    "SELL",
    "LIMIT",
    "LIMIT_MAKER",
    "MARKET",
    "STOP_LOSS_LIMIT",
    "TAKE_PROFIT_LIMIT",
    "NEW",
    "PARTIALLY_FILLED",
    "FILLED",
    "CANCELED",
    "EXPIRED",
    "EXPIRED_IN_MATCH",
    "GTC",
    "IOC",
    "FOK",
    "NONE",
    "EXPIRE_TAKER",
    "EXPIRE_MAKER",
    "EXPIRE_BOTH",
];

/// The static name equal to a stored one.
fn known(stored: &str) -> Result<&'static str, StoreError> {
    ORDER_NAMES
        .iter()
        .find(|n| **n == stored)
        .copied()
        .ok_or_else(|| StoreError::Invalid(format!("unknown order field value {stored:?}")))
}

/// Which end of a range a read starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The oldest rows in range first (a starting id or time was given).
    Oldest,
    /// The newest `limit` rows in range (returned oldest first).
    Newest,
}

/// A range of history to read: ids from `from_id`, times within `[start_ms, end_ms]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRange {
    /// Smallest id.
    pub from_id: u64,
    /// Earliest time.
    pub start_ms: UnixMs,
    /// Latest time.
    pub end_ms: UnixMs,
    /// Most rows.
    pub limit: u64,
    /// Which end.
    pub from: ReadFrom,
}

impl HistoryRange {
    /// Whether a row with this id and time is in the range (what the reads' `WHERE` asks,
    /// for rows still in memory).
    #[must_use]
    pub fn holds(&self, id: u64, time: UnixMs) -> bool {
        id >= self.from_id && self.start_ms <= time && time <= self.end_ms
    }
}

const ORDER_COLUMNS: &str = "id, account, market, side, kind, price, qty, client_id, executed, \
     cum_quote, status, time_ms, update_ms, time_in_force, stop_price, quote_order_qty, stp, \
     working_ms";

fn order_row(r: &sqlx::any::AnyRow) -> Result<OrderRow, StoreError> {
    let ticks = |n: Option<i64>| n.map(unsigned).transpose();
    Ok(OrderRow {
        id: OrderId(unsigned(r.try_get(0)?)?),
        account: AccountId(unsigned(r.try_get(1)?)?),
        market: market_id(r.try_get(2)?)?,
        side: known(r.try_get(3)?)?,
        kind: known(r.try_get(4)?)?,
        price: ticks(r.try_get(5)?)?.map(Price),
        qty: ticks(r.try_get(6)?)?.map(Qty),
        client_id: r.try_get(7)?,
        executed: unsigned(r.try_get(8)?)?,
        cum_quote: stored_amount(r.try_get(9)?)?,
        status: known(r.try_get(10)?)?,
        time_ms: UnixMs(unsigned(r.try_get(11)?)?),
        update_ms: UnixMs(unsigned(r.try_get(12)?)?),
        time_in_force: r.try_get::<Option<&str>, _>(13)?.map(known).transpose()?,
        stop_price: ticks(r.try_get(14)?)?.map(Price),
        quote_order_qty: r
            .try_get::<Option<&str>, _>(15)?
            .map(stored_amount)
            .transpose()?,
        stp: known(r.try_get::<Option<&str>, _>(16)?.unwrap_or("NONE"))?,
        working_ms: ticks(r.try_get(17)?)?.map(UnixMs),
    })
}

const TRADE_COLUMNS: &str = "id, market, price, qty, quote, taker_side, maker_order, taker_order, \
     maker_account, taker_account, maker_fee, taker_fee, time_ms";

fn trade_row(r: &sqlx::any::AnyRow) -> Result<TradeRow, StoreError> {
    let number = |n: usize| -> Result<u64, StoreError> { unsigned(r.try_get(n)?) };
    Ok(TradeRow {
        id: number(0)?,
        market: market_id(r.try_get(1)?)?,
        price: Price(number(2)?),
        qty: Qty(number(3)?),
        quote: stored_amount(r.try_get(4)?)?,
        taker_side: known(r.try_get(5)?)?,
        maker_order: OrderId(number(6)?),
        taker_order: OrderId(number(7)?),
        maker_account: AccountId(number(8)?),
        taker_account: AccountId(number(9)?),
        maker_fee: stored_amount(r.try_get(10)?)?,
        taker_fee: stored_amount(r.try_get(11)?)?,
        time_ms: UnixMs(number(12)?),
    })
}

/// A stored 32-bit id (markets and assets are numbered in `u32`).
fn id32(n: i64, what: &str) -> Result<u32, StoreError> {
    u32::try_from(n).map_err(|_| StoreError::Invalid(format!("{what} {n}")))
}

/// A stored market id.
fn market_id(n: i64) -> Result<MarketId, StoreError> {
    id32(n, "market id").map(MarketId)
}

/// Rows read newest first put back oldest first.
fn in_order<T>(mut rows: Vec<T>, from: ReadFrom) -> Vec<T> {
    if from == ReadFrom::Newest {
        rows.reverse();
    }
    rows
}

fn direction(from: ReadFrom) -> &'static str {
    match from {
        ReadFrom::Oldest => "ASC",
        ReadFrom::Newest => "DESC",
    }
}

/// A balance after a change (a statement line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    /// Event sequence number.
    pub seq: u64,
    /// Account.
    pub account: AccountId,
    /// Asset.
    pub asset: AssetId,
    /// Available after, smallest units.
    pub available: Amount,
    /// Locked after.
    pub locked: Amount,
    /// When.
    pub time_ms: UnixMs,
}

/// A one-minute candle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandleRow {
    /// Market.
    pub market: MarketId,
    /// Start.
    pub open_time: UnixMs,
    /// Prices in ticks.
    pub open: Price,
    /// Highest.
    pub high: Price,
    /// Lowest.
    pub low: Price,
    /// Last.
    pub close: Price,
    /// Lots traded.
    pub volume: u128,
    /// Quote traded.
    pub quote_volume: Amount,
    /// Number of trades.
    pub trades: u64,
    /// Lots bought by takers.
    pub taker_buy_volume: u128,
    /// Quote spent by buying takers.
    pub taker_buy_quote: Amount,
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
    pub seq: u64,
}

impl Store {
    /// The last event sequence number the history holds (0: none).
    pub async fn history_position(&self) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT seq FROM history_cursor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => unsigned(row.try_get(0)?),
            None => Ok(0),
        }
    }

    /// Empties the history (trades, orders, balance changes, candles and the position), so
    /// that the next start rebuilds it from a full replay of the journal. For an operator who
    /// restored the journal from a backup on purpose: the history then runs ahead of it.
    pub async fn reset_history(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        for statement in [
            "DELETE FROM trades",
            "DELETE FROM orders",
            "DELETE FROM balance_changes",
            "DELETE FROM candles",
            "DELETE FROM history_cursor",
        ] {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
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
                    .bind(db(t.id))
                    .bind(i64::from(t.market.0))
                    .bind(db(t.price.0))
                    .bind(db(t.qty.0))
                    .bind(t.quote.to_string())
                    .bind(t.taker_side)
                    .bind(db(t.maker_order.0))
                    .bind(db(t.taker_order.0))
                    .bind(db(t.maker_account.0))
                    .bind(db(t.taker_account.0))
                    .bind(t.maker_fee.to_string())
                    .bind(t.taker_fee.to_string())
                    .bind(t.time_ms.as_i64());
            }
            query.execute(&mut *tx).await?;
        }
        for rows in pow2_chunks(&batch.orders, ROWS_PER_STATEMENT) {
            let sql = multi_row(
                self.backend,
                "INSERT INTO orders (id, account, market, side, kind, price, qty, client_id, \
                 executed, cum_quote, status, time_ms, update_ms, time_in_force, stop_price, \
                 quote_order_qty, stp, working_ms) VALUES ",
                18,
                rows.len(),
                " ON CONFLICT (id) DO UPDATE SET price = excluded.price, qty = excluded.qty, \
                 executed = excluded.executed, cum_quote = excluded.cum_quote, \
                 status = excluded.status, update_ms = excluded.update_ms, \
                 working_ms = excluded.working_ms",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for o in rows {
                query = query
                    .bind(db(o.id.0))
                    .bind(db(o.account.0))
                    .bind(i64::from(o.market.0))
                    .bind(o.side)
                    .bind(o.kind)
                    .bind(o.price.map(|p| db(p.0)))
                    .bind(o.qty.map(|q| db(q.0)))
                    .bind(o.client_id.as_deref())
                    .bind(db(o.executed))
                    .bind(o.cum_quote.to_string())
                    .bind(o.status)
                    .bind(o.time_ms.as_i64())
                    .bind(o.update_ms.as_i64())
                    .bind(o.time_in_force)
                    .bind(o.stop_price.map(|p| db(p.0)))
                    .bind(o.quote_order_qty.map(|q| q.to_string()))
                    .bind(o.stp)
                    .bind(o.working_ms.map(UnixMs::as_i64));
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
                    .bind(db(b.seq))
                    .bind(db(b.account.0))
                    .bind(i64::from(b.asset.0))
                    .bind(b.available.to_string())
                    .bind(b.locked.to_string())
                    .bind(b.time_ms.as_i64());
            }
            query.execute(&mut *tx).await?;
        }
        for rows in pow2_chunks(&batch.candles, ROWS_PER_STATEMENT) {
            let sql = multi_row(
                self.backend,
                "INSERT INTO candles (market, open_time, open, high, low, close, volume, \
                 quote_volume, trades, taker_buy_volume, taker_buy_quote) VALUES ",
                11,
                rows.len(),
                " ON CONFLICT (market, open_time) DO UPDATE SET open = excluded.open, \
                 high = excluded.high, low = excluded.low, close = excluded.close, \
                 volume = excluded.volume, quote_volume = excluded.quote_volume, \
                 trades = excluded.trades, taker_buy_volume = excluded.taker_buy_volume, \
                 taker_buy_quote = excluded.taker_buy_quote",
            );
            let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
            for c in rows {
                query = query
                    .bind(i64::from(c.market.0))
                    .bind(c.open_time.as_i64())
                    .bind(db(c.open.0))
                    .bind(db(c.high.0))
                    .bind(db(c.low.0))
                    .bind(db(c.close.0))
                    .bind(c.volume.to_string())
                    .bind(c.quote_volume.to_string())
                    .bind(db(c.trades))
                    .bind(c.taker_buy_volume.to_string())
                    .bind(c.taker_buy_quote.to_string());
            }
            query.execute(&mut *tx).await?;
        }
        sqlx::query(
            "INSERT INTO history_cursor (id, seq) VALUES (1, $1) \
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq",
        )
        .bind(db(batch.seq))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// An account's statement in one asset: balances after each change, oldest first, from
    /// after `after_seq`, at most `limit`.
    pub async fn statement(
        &self,
        account: AccountId,
        asset: AssetId,
        after_seq: u64,
        limit: u64,
    ) -> Result<Vec<BalanceRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, account, asset, available, locked, time_ms FROM balance_changes \
             WHERE account = $1 AND asset = $2 AND seq > $3 ORDER BY seq LIMIT $4",
        )
        .bind(db(account.0))
        .bind(i64::from(asset.0))
        .bind(db(after_seq))
        .bind(db(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(BalanceRow {
                    seq: unsigned(r.try_get(0)?)?,
                    account: AccountId(unsigned(r.try_get(1)?)?),
                    asset: AssetId(id32(r.try_get(2)?, "asset id")?),
                    available: stored_amount(r.try_get(3)?)?,
                    locked: stored_amount(r.try_get(4)?)?,
                    time_ms: UnixMs(unsigned(r.try_get(5)?)?),
                })
            })
            .collect()
    }

    /// An account's order by id.
    pub async fn history_order(
        &self,
        account: AccountId,
        id: OrderId,
    ) -> Result<Option<OrderRow>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE account = $1 AND id = $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(db(account.0))
            .bind(db(id.0))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_row).transpose()
    }

    /// An account's newest order with a client order id.
    pub async fn history_order_by_client_id(
        &self,
        account: AccountId,
        client_id: &str,
    ) -> Result<Option<OrderRow>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE account = $1 AND client_id = $2 \
             ORDER BY id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(db(account.0))
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_row).transpose()
    }

    /// An account's orders in one market within `range`, oldest first.
    pub async fn history_orders(
        &self,
        account: AccountId,
        market: MarketId,
        range: HistoryRange,
    ) -> Result<Vec<OrderRow>, StoreError> {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE account = $1 AND market = $2 AND id >= $3 \
             AND time_ms >= $4 AND time_ms <= $5 ORDER BY id {} LIMIT $6",
            direction(range.from)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(db(account.0))
            .bind(i64::from(market.0))
            .bind(db(range.from_id))
            .bind(range.start_ms.as_i64())
            .bind(range.end_ms.as_i64())
            .bind(db(range.limit))
            .fetch_all(&self.pool)
            .await?;
        let rows = rows.iter().map(order_row).collect::<Result<Vec<_>, _>>()?;
        Ok(in_order(rows, range.from))
    }

    /// A market's trades within `range` (of one account, as maker or taker, when `account`
    /// is given; of one of its orders when `order` is given too), oldest first.
    pub async fn history_trades(
        &self,
        market: MarketId,
        account: Option<AccountId>,
        order: Option<OrderId>,
        range: HistoryRange,
    ) -> Result<Vec<TradeRow>, StoreError> {
        let order_by = format!("ORDER BY id {} LIMIT $5", direction(range.from));
        let in_range = "market = $1 AND id >= $2 AND time_ms >= $3 AND time_ms <= $4";
        let sql = match (account, order) {
            (None, _) => format!("SELECT {TRADE_COLUMNS} FROM trades WHERE {in_range} {order_by}"),
            // Each side of a self-trade matches the account once; UNION keeps the trade once.
            (Some(_), None) => format!(
                "SELECT * FROM (SELECT {TRADE_COLUMNS} FROM trades WHERE {in_range} \
                 AND maker_account = $6 UNION SELECT {TRADE_COLUMNS} FROM trades \
                 WHERE {in_range} AND taker_account = $6) AS mine {order_by}"
            ),
            (Some(_), Some(_)) => format!(
                "SELECT * FROM (SELECT {TRADE_COLUMNS} FROM trades WHERE {in_range} \
                 AND maker_account = $6 AND maker_order = $7 UNION SELECT {TRADE_COLUMNS} \
                 FROM trades WHERE {in_range} AND taker_account = $6 AND taker_order = $7) \
                 AS mine {order_by}"
            ),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(i64::from(market.0))
            .bind(db(range.from_id))
            .bind(range.start_ms.as_i64())
            .bind(range.end_ms.as_i64())
            .bind(db(range.limit));
        if let Some(account) = account {
            query = query.bind(db(account.0));
            if let Some(order) = order {
                query = query.bind(db(order.0));
            }
        }
        let rows = query.fetch_all(&self.pool).await?;
        let rows = rows.iter().map(trade_row).collect::<Result<Vec<_>, _>>()?;
        Ok(in_order(rows, range.from))
    }

    /// A market's one-minute candles opening within `[start_ms, end_ms]`, oldest first.
    pub async fn history_candles(
        &self,
        market: MarketId,
        start_ms: UnixMs,
        end_ms: UnixMs,
    ) -> Result<Vec<CandleRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT market, open_time, open, high, low, close, volume, quote_volume, trades, \
             taker_buy_volume, taker_buy_quote FROM candles WHERE market = $1 AND open_time >= $2 AND open_time <= $3 \
             ORDER BY open_time",
        )
        .bind(i64::from(market.0))
        .bind(start_ms.as_i64())
        .bind(end_ms.as_i64())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let number = |n: usize| -> Result<u64, StoreError> { unsigned(r.try_get(n)?) };
                // Rows from before migration 0007 have no taker figures: zero.
                let taker = |n: usize| -> Result<&str, StoreError> {
                    Ok(r.try_get::<Option<&str>, _>(n)?.unwrap_or("0"))
                };
                Ok(CandleRow {
                    market: market_id(r.try_get(0)?)?,
                    open_time: UnixMs(number(1)?),
                    open: Price(number(2)?),
                    high: Price(number(3)?),
                    low: Price(number(4)?),
                    close: Price(number(5)?),
                    volume: stored_lots(r.try_get(6)?)?,
                    quote_volume: stored_amount(r.try_get(7)?)?,
                    trades: number(8)?,
                    taker_buy_volume: stored_lots(taker(9)?)?,
                    taker_buy_quote: stored_amount(taker(10)?)?,
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
