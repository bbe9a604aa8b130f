//! The chain `coss up` uses: the node and assets in `COSS_CHAIN_CONFIG` (a JSON chain
//! configuration: rpc_url, chain_id, assets…), or — the embedded default — a local anvil in
//! `<data dir>/chain`: reached over IPC, mining a block every 2 seconds, its state saved to
//! `state.json` every few seconds and on exit so a restart continues the same chain. On its
//! first start the COSS contracts and the test stablecoin tUSD are deployed, and the hot
//! wallet is funded with 100 ETH and 1,000,000 tUSD from anvil's development account; the
//! addresses are kept in `deployment.json`. If `coss up` itself was killed, its anvil keeps
//! running (with the newest chain, some seconds past its last saved state): the next start
//! finds it through `anvil.json` (pid and HTTP endpoint) and its IPC socket, and adopts it
//! rather than starting a second node on an older state.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::network::TransactionBuilder;
use alloy::node_bindings::{Anvil, AnvilInstance};
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use anyhow::{Context, Result, bail};
use coss_wallet::ChainConfig;
use serde::{Deserialize, Serialize};

/// The embedded chain's id (anvil's default).
pub const LOCAL_CHAIN_ID: u64 = 31337;

/// What the embedded chain deployed once.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct LocalDeployment {
    coss: Address,
    sale: Address,
    tusd: Address,
    hot_funded: Vec<Address>,
}

/// Where a running local anvil is (`anvil.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Running {
    pid: u32,
    http: String,
}

/// A running local anvil, started here or adopted; stopped (state saved) by
/// [`LocalNode::stop`].
#[derive(Debug)]
pub struct LocalNode {
    /// Present when this process started it.
    anvil: Option<AnvilInstance>,
    pid: u32,
    http: String,
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl LocalNode {
    /// Its HTTP endpoint.
    fn endpoint(&self) -> &str {
        &self.http
    }

    /// Asks anvil to stop (SIGTERM: it saves its state) and waits for it.
    pub fn stop(mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        for _ in 0..50 {
            let exited = match self.anvil.as_mut() {
                Some(anvil) => matches!(anvil.child_mut().try_wait(), Ok(Some(_))),
                None => !alive(self.pid),
            };
            if exited {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The anvil a killed `coss up` left running on this data dir, if it still answers.
async fn adopt(dir: &Path, ipc: &Path) -> Option<LocalNode> {
    let text = std::fs::read_to_string(dir.join("anvil.json")).ok()?;
    let running: Running = serde_json::from_str(&text).ok()?;
    if !alive(running.pid) || !ipc.exists() {
        return None;
    }
    let chain = coss_contracts::connect(&running.http, None).await.ok()?;
    (chain.chain_id == LOCAL_CHAIN_ID).then_some(LocalNode {
        anvil: None,
        pid: running.pid,
        http: running.http,
    })
}

/// The chain configuration from `COSS_CHAIN_CONFIG`, or a local anvil (started here).
pub async fn chain(data_dir: &Path) -> Result<(ChainConfig, Option<LocalNode>)> {
    if let Some(path) = std::env::var_os("COSS_CHAIN_CONFIG") {
        let path = PathBuf::from(path);
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read COSS_CHAIN_CONFIG {}", path.display()))?;
        let config: ChainConfig = serde_json::from_str(&text).with_context(|| {
            format!(
                "COSS_CHAIN_CONFIG {} is not a chain configuration",
                path.display()
            )
        })?;
        tracing::info!(
            chain_id = config.chain_id,
            "chain: the configured node (COSS_CHAIN_CONFIG)"
        );
        return Ok((config, None));
    }
    let dir = data_dir.join("chain");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let ipc = dir.join("anvil.ipc");
    let node = match adopt(&dir, &ipc).await {
        Some(node) => {
            tracing::warn!(
                pid = node.pid,
                "chain: adopted the local anvil a previous run left running"
            );
            node
        }
        None => start(&dir, &ipc).await?,
    };
    let deployment = match local_deployment(&node, &dir).await {
        Ok(d) => d,
        Err(e) => {
            node.stop();
            return Err(e);
        }
    };
    let mut config = ChainConfig::development(
        LOCAL_CHAIN_ID,
        &ipc.display().to_string(),
        deployment.coss,
        deployment.tusd,
    );
    config.sale = Some(deployment.sale);
    tracing::info!(
        ipc = %ipc.display(),
        http = %node.endpoint(),
        coss = %deployment.coss,
        sale = %deployment.sale,
        tusd = %deployment.tusd,
        "chain: a local anvil in the data dir (set COSS_CHAIN_CONFIG for a real node)"
    );
    Ok((config, Some(node)))
}

/// Starts anvil on the data dir's chain state and records where it runs.
async fn start(dir: &Path, ipc: &Path) -> Result<LocalNode> {
    let _ = std::fs::remove_file(ipc);
    let state = dir.join("state.json");
    let mut anvil = Anvil::at(coss_contracts::anvil_binary()?)
        .chain_id(LOCAL_CHAIN_ID)
        .block_time(2)
        .arg("--ipc")
        .arg(ipc)
        .arg("--state")
        .arg(&state)
        .arg("--state-interval")
        .arg("5")
        .keep_stdout()
        .try_spawn()
        .context("cannot start the local anvil")?;
    if let Some(mut stdout) = anvil.child_mut().stdout.take() {
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    }
    for _ in 0..100 {
        if ipc.exists() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let node = LocalNode {
        pid: anvil.child().id(),
        http: anvil.endpoint(),
        anvil: Some(anvil),
    };
    let running = Running {
        pid: node.pid,
        http: node.http.clone(),
    };
    std::fs::write(dir.join("anvil.json"), serde_json::to_vec(&running)?)
        .with_context(|| format!("cannot write {}", dir.join("anvil.json").display()))?;
    Ok(node)
}

/// The contracts of the local chain, deployed on first start (or after its state was lost).
async fn local_deployment(node: &LocalNode, dir: &Path) -> Result<LocalDeployment> {
    let file = dir.join("deployment.json");
    let dev = coss_contracts::connect(node.endpoint(), None).await?;
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(known) = serde_json::from_str::<LocalDeployment>(&text)
        && !dev.provider.get_code_at(known.coss).await?.is_empty()
    {
        return Ok(known);
    }
    let now = coss_contracts::chain_time(&dev).await?;
    let params = coss_contracts::DeployParams::development(dev.sender, now);
    let set = coss_contracts::deploy(&dev, &params).await?;
    let pending = coss_contracts::TestUsd::deploy_builder(&dev.provider)
        .from(dev.sender)
        .send()
        .await?;
    let receipt = coss_contracts::receipt(pending).await?;
    let Some(tusd) = receipt.contract_address else {
        bail!("the tUSD deployment created no contract");
    };
    let deployment = LocalDeployment {
        coss: set.token,
        sale: set.sale,
        tusd,
        hot_funded: Vec::new(),
    };
    write(&file, &deployment)?;
    Ok(deployment)
}

/// Gives the hot wallet 100 ETH and 1,000,000 tUSD on the local chain, once.
pub async fn fund_hot_wallet(node: &LocalNode, data_dir: &Path, hot: Address) -> Result<()> {
    let file = data_dir.join("chain").join("deployment.json");
    let mut deployment: LocalDeployment = serde_json::from_str(&std::fs::read_to_string(&file)?)?;
    if deployment.hot_funded.contains(&hot) {
        return Ok(());
    }
    let dev = coss_contracts::connect(node.endpoint(), None).await?;
    let eth = TransactionRequest::default()
        .with_from(dev.sender)
        .with_to(hot)
        .with_value(U256::from(100u128 * 10u128.pow(18)));
    coss_contracts::receipt(dev.provider.send_transaction(eth).await?).await?;
    let tusd = coss_contracts::TestUsd::new(deployment.tusd, &dev.provider);
    let mint = tusd
        .mint(hot, U256::from(1_000_000u128 * 10u128.pow(6)))
        .from(dev.sender)
        .send()
        .await?;
    coss_contracts::receipt(mint).await?;
    deployment.hot_funded.push(hot);
    write(&file, &deployment)?;
    tracing::info!(%hot, "local chain: hot wallet funded with 100 ETH and 1,000,000 tUSD");
    Ok(())
}

fn write(file: &Path, deployment: &LocalDeployment) -> Result<()> {
    std::fs::write(file, serde_json::to_vec_pretty(deployment)?)
        .with_context(|| format!("cannot write {}", file.display()))
}
