//! `coss dao …`: the weekly revenue share by hand. `coss up` runs every step by itself at each
//! close; these commands are for operators (with `coss up` stopped: the journal has one
//! writer) and for holders (`verify` works offline on what `/api/v1/dao/me` returned).

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum DaoCommand {
    /// Closes due weeks and takes the oldest open week's holdings snapshot (platform and
    /// chain), sealing it; prints the open weeks as JSON.
    Snapshot {
        #[command(flatten)]
        data: crate::DataDir,
        /// The database (default SQLite in the data dir).
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
        /// The configuration file (TOML).
        #[arg(long, env = "COSS_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Writes the report of a sealed week and pays it out (it must be the oldest open week);
    /// a run cut short continues where it stopped. Prints the report as JSON.
    Distribute {
        #[command(flatten)]
        data: crate::DataDir,
        /// The database (default SQLite in the data dir).
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
        /// The configuration file (TOML).
        #[arg(long, env = "COSS_CONFIG")]
        config: Option<PathBuf>,
        /// The week, e.g. 2026-W48.
        #[arg(long)]
        week: String,
    },
    /// Prints the reports (or one week's, with its assets) as JSON, from the database.
    Report {
        #[command(flatten)]
        data: crate::DataDir,
        /// The database (default SQLite in the data dir).
        #[arg(long, env = "COSS_DATABASE_URL")]
        database_url: Option<String>,
        /// One week, e.g. 2026-W48.
        #[arg(long)]
        week: Option<String>,
    },
    /// Checks a holder's payouts offline: recomputes the leaf from the JSON that
    /// `GET /api/v1/dao/me?week=…` returned (one week, or the whole answer) and follows the
    /// proof to the root. `--root` checks against a root published elsewhere.
    Verify {
        /// The JSON file (`-` for standard input).
        proof: PathBuf,
        /// The expected root (hex), e.g. from `GET /api/v1/dao/weeks/{week}`.
        #[arg(long)]
        root: Option<String>,
    },
}

pub fn run(command: DaoCommand) -> Result<()> {
    match command {
        DaoCommand::Verify { proof, root } => verify(&proof, root.as_deref()),
        DaoCommand::Report {
            data,
            database_url,
            week,
        } => block_on(async move {
            let settings = settings(data, database_url, None)?;
            let accounts = coss_server::open_accounts(&settings).await?;
            report(accounts.store(), week.as_deref()).await
        }),
        DaoCommand::Snapshot {
            data,
            database_url,
            config,
        } => with_dao(data, database_url, config, |dao| async move {
            let weeks = dao.snapshot().await?;
            let list: Vec<serde_json::Value> = weeks
                .iter()
                .map(|w| {
                    serde_json::json!({
                        "week": coss_dao::week_name(w.close_ms),
                        "closeMs": w.close_ms,
                        "stage": format!("{:?}", w.stage).to_lowercase(),
                        "holders": w.holders,
                        "totalHolding": w.total.0.to_string(),
                        "pools": w.pools.iter().map(|p| serde_json::json!({
                            "asset": p.asset.0, "pool": p.pool.0.to_string(),
                        })).collect::<Vec<_>>(),
                    })
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&list)?);
            Ok(())
        }),
        DaoCommand::Distribute {
            data,
            database_url,
            config,
            week,
        } => with_dao(data, database_url, config, |dao| async move {
            let week = coss_dao::parse_week(&week)?;
            let paid = dao.distribute(&week).await?;
            if !paid {
                bail!("{week} is not paid out yet");
            }
            report(dao.store(), Some(&week)).await
        }),
    }
}

fn block_on<F: std::future::Future<Output = Result<()>>>(future: F) -> Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?
        .block_on(future)
}

/// The platform's settings for a data dir, database and configuration file.
fn settings(
    data: crate::DataDir,
    database_url: Option<String>,
    config: Option<PathBuf>,
) -> Result<coss_server::Settings> {
    let data_dir = data.resolve()?;
    let config = coss_server::Config::load(config.as_deref(), &data_dir)?;
    Ok(coss_server::Settings::from_env(
        data_dir,
        database_url,
        config,
    ))
}

/// Opens the platform (as `coss up` would, without serving), runs `work` on its DAO, and
/// shuts down cleanly.
fn with_dao<F, Fut>(
    data: crate::DataDir,
    database_url: Option<String>,
    config: Option<PathBuf>,
    work: F,
) -> Result<()>
where
    F: FnOnce(coss_dao::Dao) -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let settings = settings(data, database_url, config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (stopped, outcome) = runtime.block_on(async {
        let platform = coss_server::Platform::open(settings).await?;
        let outcome = work(platform.dao().clone()).await;
        anyhow::Ok((platform.stop(), outcome))
    })?;
    drop(runtime);
    stopped.finish()?;
    outcome
}

async fn report(store: &coss_store::Store, week: Option<&str>) -> Result<()> {
    let weeks = match week {
        Some(week) => {
            let week = coss_dao::parse_week(week)?;
            vec![
                store
                    .dao_week(&week)
                    .await?
                    .with_context(|| format!("no report for {week}"))?,
            ]
        }
        None => store.dao_weeks(coss_dao::api::WEEKS_LIMIT).await?,
    };
    let mut list = Vec::new();
    for w in weeks {
        let assets = store.dao_week_assets(w.close_ms).await?;
        list.push(serde_json::json!({
            "week": w.week,
            "closeMs": w.close_ms,
            "blockNumber": w.block_number,
            "holders": w.holders,
            "totalHolding": w.total,
            "root": w.root,
            "paidAt": w.paid_at,
            "assets": assets.iter().map(|a| serde_json::json!({
                "asset": a.asset, "pool": a.pool, "holders": a.holders,
                "paid": a.paid, "carried": a.carried,
            })).collect::<Vec<_>>(),
        }));
    }
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(())
}

fn verify(path: &std::path::Path, root: Option<&str>) -> Result<()> {
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read standard input")?
    } else {
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?
    };
    let value: serde_json::Value = serde_json::from_str(&text).context("not JSON")?;
    // One week, or `/api/v1/dao/me`'s whole answer.
    let weeks: Vec<coss_dao::HolderWeek> = match value.get("weeks") {
        Some(weeks) => serde_json::from_value(weeks.clone()),
        None => serde_json::from_value(value).map(|w| vec![w]),
    }
    .context("not a holder's week from /api/v1/dao/me")?;
    if weeks.is_empty() {
        bail!("no weeks to verify");
    }
    let mut failed = false;
    for week in &weeks {
        let matches_root = root.is_none_or(|r| r.trim_start_matches("0x") == week.root);
        let ok = week.verify() && matches_root;
        failed |= !ok;
        println!(
            "{} account {}: {} ({} payouts, root {})",
            week.week,
            week.account,
            if ok { "OK" } else { "FAILED" },
            week.payouts.len(),
            week.root
        );
    }
    if failed {
        bail!("verification failed");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use coss_dao::{HolderPayout, HolderWeek, MerkleTree, leaf_hash};
    use coss_types::AssetId;

    /// A week of three holders, and the second holder's answer from `/api/v1/dao/me`.
    fn answer() -> HolderWeek {
        let close_ms = 1_795_928_400_000;
        let leaves: Vec<_> = (0..3u64)
            .map(|i| {
                leaf_hash(
                    close_ms,
                    1_000 + i,
                    100,
                    &[(AssetId(1), 10 + u128::from(i))],
                )
            })
            .collect();
        let tree = MerkleTree::build(leaves.clone());
        HolderWeek {
            week: "2026-W48".into(),
            close_ms,
            account: 1_001,
            holding: "100".into(),
            payouts: vec![HolderPayout {
                asset: 1,
                symbol: "ETH".into(),
                amount: "11".into(),
                value: "0.000000000000000011".into(),
            }],
            leaf_index: 1,
            leaf: hex::encode(leaves[1]),
            proof: tree.proof(1).unwrap(),
            root: hex::encode(tree.root()),
        }
    }

    fn file_with(json: &serde_json::Value) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), json.to_string()).unwrap();
        file
    }

    #[test]
    fn verify_accepts_a_true_answer_and_refuses_a_changed_amount_or_another_root() {
        let week = answer();
        let one = file_with(&serde_json::to_value(&week).unwrap());
        verify(one.path(), None).unwrap();
        verify(one.path(), Some(&week.root)).unwrap();
        assert!(verify(one.path(), Some(&"00".repeat(32))).is_err());
        let whole = file_with(&serde_json::json!({ "username": "bob", "weeks": [week.clone()] }));
        verify(whole.path(), None).unwrap();
        let mut changed = week;
        changed.payouts[0].amount = "12".into();
        let changed = file_with(&serde_json::to_value(&changed).unwrap());
        assert!(verify(changed.path(), None).is_err());
    }
}
