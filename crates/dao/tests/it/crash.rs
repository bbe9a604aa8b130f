//! A run stopped in the middle of a payout (the engine shut down between two payout commands,
//! as a killed process leaves it: every command journaled, nothing else) pays everyone exactly
//! once when started again, with the same report.

use std::collections::HashMap;

use coss_core::{DAO_PAYOUTS, FEES_HOLDERS, dao_share};
use coss_identity::exchange_account;
use coss_store::Store;
use coss_types::AccountId;

use crate::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_payout_stopped_midway_pays_everyone_once_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_in(dir.path()).await.unwrap();
    // The engine's and the runner's clock: it moves only when the test moves it.
    let clock = ManualClock::starting_now();
    let (engine, handle) = engine(dir.path(), &clock).await;
    let holders: Vec<(AccountId, u128)> = (0..2_500u64)
        .map(|i| {
            (
                exchange_account(coss_types::UserId(i64::try_from(i).unwrap() + 1)).unwrap(),
                UNIT + u128::from(i) * 7_919,
            )
        })
        .collect();
    for &(account, holding) in &holders {
        deposit(&handle, account, COSS, holding).await;
    }
    let (eth_pool, coss_pool) = (123_456_789_012_345_678u128, 98_765_432_101u128);
    pool(&handle, ETH, eth_pool).await;
    pool(&handle, COSS, coss_pool).await;
    let close_ms = clock.now().0 + 500;
    let dao = dao_closing_at(&handle, &store, None, close_ms, 300, &clock).await;
    clock.advance(600);

    // Close, seal and report, then two payout commands, then the process "dies".
    let progress = {
        // run_due would pay everything: drive the steps by hand instead. The first command
        // after the close (here a deposit) finds the engine closing the week before it.
        deposit(&handle, AccountId(5_000_000), COSS, 1).await;
        let weeks = handle.read_async(|ex| ex.dao_weeks()).await.unwrap();
        assert_eq!(
            weeks.len(),
            1,
            "the engine closed the week before the deposit"
        );
        assert_eq!(
            weeks[0].holders, 2_500,
            "the deposit after the close does not count"
        );
        submit(
            &handle,
            coss_core::Command::SealWeek {
                close_ms,
                chain_parts: 0,
            },
        )
        .await;
        let weeks = handle.read_async(|ex| ex.dao_weeks()).await.unwrap();
        // Report, then stop after two chunks of 300 holders.
        let reported = dao.report_and_pay(&weeks[0], Some(2)).await.unwrap();
        assert!(!reported);
        weeks
    };
    let paid_before: HashMap<AccountId, u128> = {
        let mut map = HashMap::new();
        for &(account, _) in &holders {
            map.insert(account, available(&handle, account, ETH).await);
        }
        map
    };
    assert_eq!(
        paid_before.values().filter(|&&v| v > 0).count(),
        600,
        "two chunks of 300 were paid"
    );
    let report = store.dao_week_at(close_ms as i64).await.unwrap().unwrap();
    drop(handle);
    drop(dao);
    tokio::task::spawn_blocking(move || engine.shutdown().unwrap())
        .await
        .unwrap();

    // Started again: the runner continues where the core's cursor is.
    let (engine, handle) = crate::engine(dir.path(), &clock).await;
    let dao = dao_closing_at_existing(&handle, &store, &clock);
    let steps = dao.run_due().await.unwrap();
    assert_eq!(steps.last().unwrap().step, "paid", "{steps:?}");
    let total: u128 = holders.iter().map(|&(_, h)| h).sum();
    for &(account, holding) in &holders {
        assert_eq!(
            available(&handle, account, ETH).await,
            dao_share(eth_pool, holding, total),
            "{account} paid once"
        );
        assert_eq!(
            available(&handle, account, COSS).await,
            holding + dao_share(coss_pool, holding, total)
        );
    }
    let paid: u128 = holders
        .iter()
        .map(|&(_, h)| dao_share(eth_pool, h, total))
        .sum();
    assert_eq!(available(&handle, FEES_HOLDERS, ETH).await, eth_pool - paid);
    assert_eq!(available(&handle, DAO_PAYOUTS, ETH).await, 0);
    let after = store.dao_week_at(close_ms as i64).await.unwrap().unwrap();
    assert_eq!(after.root, report.root, "the report was written once");
    assert!(after.paid_at.is_some());
    let lines = store.dao_week_assets(close_ms as i64).await.unwrap();
    assert_eq!(lines[0].paid, Amount(paid));
    assert_eq!(
        lines[0].carried,
        Amount(eth_pool - paid),
        "paid + carried = pool"
    );
    assert!(progress.len() == 1);

    // Proofs after the restart: a non-holder costs no tree; holders' proofs (first, last and
    // around the 1,024-leaf block edges) verify against the root, and the week's tree is
    // built from the database once, however the weeks are asked for.
    let symbols = HashMap::from([(ETH.0, ("ETH".to_owned(), 18u8))]);
    let week = coss_dao::week_name(close_ms);
    let stranger = exchange_account(coss_types::UserId(999_999)).unwrap();
    assert!(
        dao.holder_week(stranger, &week, &symbols)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        dao.trees_built(),
        0,
        "asking for a non-holder built nothing"
    );
    for _ in 0..3 {
        for i in [0usize, 1, 1_023, 1_024, 1_025, 2_047, 2_048, 2_499] {
            let (account, holding) = holders[i];
            let mine = dao
                .holder_week(account, &week, &symbols)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(mine.root, report.root);
            assert_eq!(mine.holding, holding.to_string());
            assert!(mine.verify(), "holder {i}");
        }
    }
    assert_eq!(dao.trees_built(), 1, "one tree for the week, then blocks");
    drop(handle);
    drop(dao);
    tokio::task::spawn_blocking(move || engine.shutdown().unwrap())
        .await
        .unwrap();
}

fn dao_closing_at_existing(
    handle: &coss_engine::EngineHandle,
    store: &Store,
    clock: &ManualClock,
) -> coss_dao::Dao {
    let mut config = coss_dao::DaoConfig::new(COSS);
    config.pay_chunk = 300;
    coss_dao::Dao::new(handle.clone(), store.clone(), None, config, clock.clock())
}
