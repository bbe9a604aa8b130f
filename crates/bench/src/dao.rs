//! `coss bench dao`: one whole DAO week for many holders and assets, end to end on the durable
//! engine and an SQLite database: the close (platform holdings and pools), the seal, the
//! report (every payout computed, the Merkle tree built, a million holder rows written) and
//! the payout (one fee-free credit per holder and asset, through journaled `PayWeek`
//! commands). The peer, measured in the same run on the same engine: crediting holders the
//! naive way, one journaled internal `Transfer` command per (holder, asset), timed on a
//! sample and scaled to the same number of credits.

use std::time::Instant;

use crate::{BenchError, Context, Result};
use coss_core::{Command, FEES_HOLDERS};
use coss_engine::{Engine, EngineConfig, EngineHandle};
use coss_types::{AccountId, Amount, AssetId, RequestId};
use serde_json::json;

/// Deposits (or transfers) per engine batch during setup.
const BATCH: usize = 4_096;

/// Runs the benchmark; the report as JSON.
pub fn run(holders: usize, assets: u32, peer_sample: usize) -> Result<serde_json::Value> {
    if holders == 0 || assets == 0 || assets > 1_000 {
        return Err(BenchError::failed(
            "--holders must be positive and --assets 1 to 1000",
        ));
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = std::env::temp_dir().join(format!("coss-bench-dao-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let result = runtime.block_on(measure(&dir, holders, assets, peer_sample));
    drop(runtime);
    let _ = std::fs::remove_dir_all(&dir);
    let report = result?;
    Ok(report)
}

const COSS: AssetId = AssetId(1);

fn pool_asset(i: u32) -> AssetId {
    AssetId(2 + i)
}

async fn batches(handle: &EngineHandle, commands: Vec<Command>) -> Result<()> {
    let mut pending = Vec::new();
    for chunk in commands.chunks(BATCH) {
        let handle = handle.clone();
        let chunk = chunk.to_vec();
        pending.push(tokio::task::spawn_blocking(move || {
            handle.send_batch(chunk)
        }));
    }
    for p in pending {
        let receipt = p.await??;
        let receipt = tokio::task::spawn_blocking(move || receipt.wait()).await??;
        if let Some(Err(reason)) = receipt.outcomes.iter().find(|o| o.is_err()) {
            return Err(BenchError::failed(format!(
                "setup command refused: {reason:?}"
            )));
        }
    }
    Ok(())
}

async fn measure(
    dir: &std::path::Path,
    holders: usize,
    assets: u32,
    peer_sample: usize,
) -> Result<serde_json::Value> {
    let store = coss_store::Store::open_in(dir).await?;
    // The engine's time stands still until the bench moves it past the week's close.
    let clock = coss_clock::ManualClock::starting_now();
    let mut config = EngineConfig::new(dir.join("engine"));
    config.snapshot_every = 0;
    config.clock = clock.clock();
    let (engine, _) = Engine::start(config)?;
    let handle = engine.handle();

    // Setup: COSS and the pool assets, a million holders with distinct holdings, a week of
    // fees in every pool asset.
    let setup = Instant::now();
    let mut listings = vec![Command::ListAsset {
        asset: COSS,
        symbol: "COSS".into(),
        decimals: 8,
        fees_shared: true,
        withdrawal_fee: Amount(0),
    }];
    for i in 0..assets {
        listings.push(Command::ListAsset {
            asset: pool_asset(i),
            symbol: format!("A{i}"),
            decimals: 18,
            fees_shared: true,
            withdrawal_fee: Amount(0),
        });
    }
    batches(&handle, listings).await?;
    let holder = |i: usize| AccountId(1_000 + i as u64);
    let deposits: Vec<Command> = (0..holders)
        .map(|i| Command::Deposit {
            account: holder(i),
            asset: COSS,
            amount: Amount(100_000_000 + (i as u128 * 7_919) % 1_000_000_000_000),
            reference: format!("h{i}"),
        })
        .collect();
    batches(&handle, deposits).await?;
    let donor = AccountId(1 << 40);
    let mut fees = Vec::new();
    for i in 0..assets {
        let pool = 1_000_000_000_000_000_000u128 * u128::from(i + 1) + 12_345;
        fees.push(Command::Deposit {
            account: donor,
            asset: pool_asset(i),
            amount: Amount(pool * 2),
            reference: format!("fees{i}"),
        });
        fees.push(Command::Transfer {
            request: RequestId(u128::from(i) + 1),
            from: donor,
            to: FEES_HOLDERS,
            asset: pool_asset(i),
            amount: Amount(pool),
        });
    }
    batches(&handle, fees).await?;
    let close_ms = clock.now().0 + 500;
    batches(
        &handle,
        vec![Command::SetDaoSchedule(coss_core::DaoSchedule {
            coss: COSS,
            next_close_ms: close_ms,
            period_ms: coss_dao::WEEK_MS,
            min_holding: Amount(100_000_000),
        })],
    )
    .await?;
    let setup_s = setup.elapsed().as_secs_f64();
    clock.advance(1_000);

    // The week, end to end, phase by phase.
    let mut dao_config = coss_dao::DaoConfig::new(COSS);
    dao_config.pay_chunk = 2_000;
    let dao = coss_dao::Dao::new(
        handle.clone(),
        store.clone(),
        None,
        dao_config,
        clock.clock(),
    );
    let started = Instant::now();
    let weeks = dao.snapshot().await?;
    let snapshot_s = started.elapsed().as_secs_f64();
    let week = weeks.first().context("the week did not close")?.clone();
    // The report's payouts and tree are computed first; its database write then runs
    // beside the payout, which waits for it before the last chunk.
    let paying = Instant::now();
    let paid = dao.report_and_pay(&week, None).await?;
    let pay_s = paying.elapsed().as_secs_f64();
    let total_s = started.elapsed().as_secs_f64();
    if !paid {
        return Err(BenchError::failed("the week was not paid out"));
    }
    let record = store
        .dao_week_at(i64::try_from(close_ms).unwrap_or(0))
        .await?
        .context("no report")?;
    let credits = holders as u64 * u64::from(assets);
    // Every holder received its share of the first pool.
    let last = holder(holders - 1);
    let credited = handle
        .read_async(move |ex| ex.balance(last, pool_asset(0)).available.0)
        .await?;
    if credited == 0 {
        return Err(BenchError::failed("the last holder was not paid"));
    }

    // The peer: one journaled Transfer per credit, on a sample.
    let sample = peer_sample.min(holders).max(1);
    let transfers: Vec<Command> = (0..sample)
        .map(|i| Command::Transfer {
            request: RequestId(1_000_000 + i as u128),
            from: holder(i),
            to: holder((i + 1) % holders),
            asset: pool_asset(0),
            amount: Amount(1),
        })
        .collect();
    let peer = Instant::now();
    batches(&handle, transfers).await?;
    let peer_s = peer.elapsed().as_secs_f64();
    let peer_per_s = sample as f64 / peer_s;
    drop(dao);
    drop(handle);
    tokio::task::spawn_blocking(move || engine.shutdown()).await??;
    let per_s = credits as f64 / total_s;
    Ok(json!({
        "holders": holders,
        "assets": assets,
        "credits": credits,
        "report_holders": record.holders,
        "setup_s": setup_s,
        "week": {
            "close_and_seal_s": snapshot_s,
            "report_and_payout_s": pay_s,
            "total_s": total_s,
            "credits_per_s": per_s,
        },
        "peer_transfer_per_credit": {
            "sample": sample,
            "credits_per_s": peer_per_s,
            "projected_total_s": credits as f64 / peer_per_s,
        },
        "speedup_vs_peer": per_s / peer_per_s,
        "target_total_s": 10,
    }))
}
