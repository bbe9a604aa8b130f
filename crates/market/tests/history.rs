//! The history tables against the engine that feeds them, on SQLite and PostgreSQL: every
//! trade, order, balance change and candle lands once; a restart writes nothing twice; an
//! emptied database is rebuilt from the journal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use coss_core::Command;
use coss_engine::{Engine, EngineConfig};
use coss_market::{Interval, MarketService, Order, Trade, spawn_history};
use coss_store::{HistoryRange, ReadFrom, Store};
use coss_types::{AccountId, Amount, AssetId, MarketId, OrderId, Side, UnixMs};
use std::path::Path;
use std::time::Duration;

fn setup() -> Vec<Command> {
    let mut commands = coss_testkit::eth_tusd_with_minimum(1).to_vec();
    for (account, asset, amount) in [(1000, 1, 10u128.pow(19)), (1001, 2, 10u128.pow(10))] {
        commands.push(Command::Deposit {
            account: AccountId(account),
            asset: AssetId(asset),
            amount: Amount(amount),
            reference: format!("seed-{account}"),
        });
    }
    for (account, side, qty) in [
        (1000, Side::Sell, 50),
        (1001, Side::Buy, 20),
        (1001, Side::Buy, 10),
    ] {
        commands.push(coss_testkit::limit_order(
            AccountId(account),
            side,
            200_000,
            qty,
        ));
    }
    commands
}

/// Runs an engine on `dir` with the projection and the history writer on `store`, submits
/// `commands`, waits until the history holds every event, and stops; returns the last event
/// and the projection.
async fn run(dir: &Path, store: &Store, commands: Vec<Command>) -> (u64, MarketService) {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let (market, feed) = MarketService::start_with_history(Some(tx));
    let writer = spawn_history(store.clone(), market.clone(), rx, dir.to_path_buf());
    let mut config = EngineConfig::new(dir);
    config.feed = Some(feed);
    let (engine, _) = Engine::start(config).unwrap();
    let handle = engine.handle();
    for command in commands {
        handle.submit_async(command).await.unwrap();
    }
    let last = handle.status_async().await.unwrap().last_seq;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while store.history_position().await.unwrap() < last {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the history never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(handle);
    tokio::task::spawn_blocking(move || engine.shutdown().unwrap())
        .await
        .unwrap();
    writer.abort();
    (last, market)
}

/// What the history reads back equals what the projection holds in memory.
async fn reads_back(store: &Store, market: &MarketService) {
    let everything = |from| HistoryRange {
        from_id: 0,
        start_ms: UnixMs::EPOCH,
        end_ms: UnixMs(u64::MAX),
        limit: 1000,
        from,
    };
    let (kept_trades, kept_orders, kept_candles) = {
        let projection = market.read();
        let view = projection.market(MarketId(1)).unwrap();
        let orders: Vec<Vec<Order>> = [1000, 1001]
            .into_iter()
            .map(|a| projection.orders_of(AccountId(a)).cloned().collect())
            .collect();
        (
            view.trades.iter().copied().collect::<Vec<_>>(),
            orders,
            view.candles(Interval::M1, Some(0), None, 100),
        )
    };
    for from in [ReadFrom::Oldest, ReadFrom::Newest] {
        let trades = store
            .history_trades(MarketId(1), None, None, everything(from))
            .await
            .unwrap();
        let trades: Vec<Trade> = trades.iter().map(|t| Trade::from_row(t).unwrap()).collect();
        assert_eq!(trades, kept_trades);
    }
    let mine = store
        .history_trades(
            MarketId(1),
            Some(AccountId(1001)),
            None,
            everything(ReadFrom::Oldest),
        )
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    let first_order = mine[0].taker_order;
    let of_order = store
        .history_trades(
            MarketId(1),
            Some(AccountId(1001)),
            Some(first_order),
            everything(ReadFrom::Oldest),
        )
        .await
        .unwrap();
    assert_eq!(of_order, mine[..1]);
    let newest = HistoryRange {
        limit: 1,
        ..everything(ReadFrom::Newest)
    };
    assert_eq!(
        store
            .history_trades(MarketId(1), Some(AccountId(1000)), None, newest)
            .await
            .unwrap(),
        mine[1..]
    );
    for (account, kept) in [1000u64, 1001].into_iter().zip(&kept_orders) {
        let rows = store
            .history_orders(
                AccountId(account),
                MarketId(1),
                everything(ReadFrom::Oldest),
            )
            .await
            .unwrap();
        assert_eq!(rows.len(), kept.len());
        for (row, kept) in rows.iter().zip(kept) {
            let read = Order::from_row(row).unwrap();
            // All but the lots resting in the book, which only memory tracks.
            assert_eq!(read.new, kept.new);
            assert_eq!(
                (
                    read.id,
                    read.price,
                    read.qty,
                    read.executed,
                    read.cum_quote,
                    read.status
                ),
                (
                    kept.id,
                    kept.price,
                    kept.qty,
                    kept.executed,
                    kept.cum_quote,
                    kept.status
                )
            );
            assert_eq!(
                (read.time_ms, read.update_ms, read.working_ms),
                (kept.time_ms, kept.update_ms, kept.working_ms)
            );
            let by_id = store
                .history_order(AccountId(account), row.id)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(&by_id, row);
        }
    }
    assert_eq!(
        store
            .history_order(AccountId(1000), OrderId(999_999))
            .await
            .unwrap(),
        None
    );
    let minutes = store
        .history_candles(MarketId(1), UnixMs::EPOCH, UnixMs(u64::MAX))
        .await
        .unwrap();
    assert_eq!(
        coss_market::candles_from_minutes(Interval::M1, &minutes)
            .iter()
            .map(|c| (c.open_time, c.volume, c.taker_buy_volume, c.trades))
            .collect::<Vec<_>>(),
        kept_candles
            .iter()
            .map(|c| (c.open_time, c.volume, c.taker_buy_volume, c.trades))
            .collect::<Vec<_>>()
    );
}

async fn the_history_holds_everything_once_and_is_rebuilt_from_the_journal(
    store: Store,
    fresh: Store,
) {
    let dir = tempfile::tempdir().unwrap();
    let (last, market) = run(dir.path(), &store, setup()).await;
    reads_back(&store, &market).await;
    // Two trades (20 and 10 lots), three orders, one candle; a balance row per change.
    let counts = store.history_counts().await.unwrap();
    assert_eq!(counts[0], 2, "trades");
    assert_eq!(counts[1], 3, "orders");
    assert_eq!(counts[3], 1, "candles");
    let seller = store
        .statement(AccountId(1000), AssetId(2), 0, 100)
        .await
        .unwrap();
    let last_tusd = seller.last().unwrap();
    // 30 lots of 0.0001 ETH at 2000.00 = 6 TUSD, less the maker fee.
    let fee = coss_core::fee_for(6_000_000, coss_core::default_fee_schedule()[0].maker_ppm);
    assert_eq!(last_tusd.available, Amount(6_000_000 - fee));
    // A restart replays the journal; nothing is written twice.
    let (again, _) = run(dir.path(), &store, Vec::new()).await;
    assert_eq!(again, last);
    assert_eq!(store.history_counts().await.unwrap(), counts);
    assert_eq!(store.history_position().await.unwrap(), last);
    // An empty database is rebuilt from the journal to the same history.
    run(dir.path(), &fresh, Vec::new()).await;
    assert_eq!(fresh.history_counts().await.unwrap(), counts);
    assert_eq!(
        fresh
            .statement(AccountId(1000), AssetId(2), 0, 100)
            .await
            .unwrap(),
        seller
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sqlite() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let store = Store::open_in(a.path()).await.unwrap();
    let fresh = Store::open_in(b.path()).await.unwrap();
    the_history_holds_everything_once_and_is_rebuilt_from_the_journal(store, fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres() {
    let one = coss_testkit::scratch_postgres("history_a").await;
    let two = coss_testkit::scratch_postgres("history_b").await;
    let store = Store::open(one.url()).await.unwrap();
    let fresh = Store::open(two.url()).await.unwrap();
    the_history_holds_everything_once_and_is_rebuilt_from_the_journal(store.clone(), fresh.clone())
        .await;
    drop((store, fresh));
    one.drop_now().await.unwrap();
    two.drop_now().await.unwrap();
}

/// Defect (issue 20, item 6): the engine's journal thread waited for the history writer's
/// bounded queue, so a database stall stopped order acknowledgements. Now a stalled
/// database leaves the history behind, orders go on, and the history catches up from the
/// journal (from a snapshot, here) to exactly what an unstalled rebuild writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_stall_does_not_stop_trading_and_the_history_catches_up_from_the_journal() {
    use sqlx::Connection as _;
    let db = coss_testkit::scratch_postgres("history_stall").await;
    let rebuilt = coss_testkit::scratch_postgres("history_rebuilt").await;
    let store = Store::open(db.url()).await.unwrap();
    let fresh = Store::open(rebuilt.url()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A queue of two chunks: the stall fills it at once.
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    let (market, feed) = MarketService::start_with_history(Some(tx));
    let writer = spawn_history(store.clone(), market.clone(), rx, dir.path().to_path_buf());
    let mut config = EngineConfig::new(dir.path());
    config.feed = Some(feed);
    config.snapshot_every = 25;
    let (engine, _) = Engine::start(config).unwrap();
    let handle = engine.handle();
    let order = |n: u64| {
        let (account, side) = if n.is_multiple_of(2) {
            (1000, Side::Sell)
        } else {
            (1001, Side::Buy)
        };
        coss_testkit::limit_order(AccountId(account), side, 200_000, 1)
    };
    for command in setup().into_iter().chain((0..60).map(order)) {
        handle.submit_async(command).await.unwrap();
    }
    let before = handle.status_async().await.unwrap().last_seq;
    wait_for_history(&store, before).await;

    // The stall: another session holds the history's tables for writing.
    let mut locker = sqlx::PgConnection::connect(db.url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query(
        "LOCK TABLE trades, orders, balance_changes, candles, history_cursor IN EXCLUSIVE MODE",
    )
    .execute(&mut locker)
    .await
    .unwrap();
    // The writer takes what is queued while it gathers, then waits on the database: orders
    // go on until the queue is full and past it.
    let mut submitted = 0;
    let mut after_behind = 0;
    while after_behind < 100 {
        assert!(submitted < 20_000, "the history never fell behind");
        tokio::time::timeout(
            Duration::from_secs(5),
            handle.submit_async(order(submitted)),
        )
        .await
        .expect("an order waited for the stalled database")
        .unwrap();
        submitted += 1;
        if market.history_behind() {
            after_behind += 1;
        }
    }
    assert_eq!(store.history_position().await.unwrap(), before);
    let last = handle.status_async().await.unwrap().last_seq;

    // The database comes back: the history catches up and the feed queues again.
    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    wait_for_history(&store, last).await;
    assert!(!market.history_behind());
    for n in 0..10 {
        handle.submit_async(order(n)).await.unwrap();
    }
    let last = handle.status_async().await.unwrap().last_seq;
    wait_for_history(&store, last).await;

    drop(handle);
    tokio::task::spawn_blocking(move || engine.shutdown().unwrap())
        .await
        .unwrap();
    writer.abort();
    // The same history as a rebuild from the journal into an empty database.
    run(dir.path(), &fresh, Vec::new()).await;
    let counts = store.history_counts().await.unwrap();
    let buys = i64::try_from(submitted / 2).unwrap();
    assert_eq!(counts[0], 2 + 30 + buys + 5, "trades: one per buy");
    assert_eq!(fresh.history_counts().await.unwrap(), counts);
    let trades = |s: &Store| {
        let s = s.clone();
        async move {
            let range = HistoryRange {
                from_id: 0,
                start_ms: UnixMs::EPOCH,
                end_ms: UnixMs(u64::MAX),
                limit: 1000,
                from: ReadFrom::Oldest,
            };
            s.history_trades(MarketId(1), None, None, range)
                .await
                .unwrap()
        }
    };
    assert_eq!(trades(&store).await, trades(&fresh).await);
    for (account, asset) in [(1000, 1), (1000, 2), (1001, 1), (1001, 2)] {
        let read = |s: &Store| {
            let s = s.clone();
            async move {
                s.statement(AccountId(account), AssetId(asset), 0, 1000)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(read(&store).await, read(&fresh).await);
    }
    drop((store, fresh, locker));
    db.drop_now().await.unwrap();
    rebuilt.drop_now().await.unwrap();
}

async fn wait_for_history(store: &Store, seq: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while store.history_position().await.unwrap() < seq {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the history never caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
