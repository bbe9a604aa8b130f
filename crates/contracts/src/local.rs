//! The embedded platform's own chain: a local anvil in a directory of its own (`<data dir>/chain`
//! for `coss up`), reached over IPC, mining a block every 2 seconds, its state dumped every
//! few seconds and on exit so a restart continues the same chain (a damaged dump, from a full
//! disk, is set aside for the one before it). On its
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
use serde::{Deserialize, Serialize};

use crate::ChainError;

/// The embedded chain's id (anvil's default).
pub const LOCAL_CHAIN_ID: u64 = 31337;

/// What the embedded chain deployed once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalDeployment {
    /// The COSS token.
    pub coss: Address,
    /// The token sale.
    pub sale: Address,
    /// The test stablecoin tUSD.
    pub tusd: Address,
    /// Hot wallets already funded.
    hot_funded: Vec<Address>,
}

/// A running local chain with the COSS contracts and tUSD deployed.
#[derive(Debug)]
pub struct LocalChain {
    /// The node (stop it with [`LocalNode::stop`]).
    pub node: LocalNode,
    /// Its IPC socket, the platform's connection to it.
    pub ipc: PathBuf,
    /// The contracts.
    pub deployment: LocalDeployment,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ChainError + '_ {
    move |source| ChainError::Io {
        path: path.to_owned(),
        source,
    }
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
    /// Present for the node of a data dir (see [`local_chain`]).
    keeper: Option<(StateKeeper, PathBuf)>,
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

impl LocalNode {
    /// Its HTTP endpoint.
    #[must_use]
    pub fn endpoint(&self) -> &str {
        &self.http
    }

    /// Its process id.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
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
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The dump anvil wrote on exit becomes the state of the next start.
        if let Some((mut keeper, dir)) = self.keeper.take() {
            keeper.stop();
            if let Some(Err(reason)) = promote(&dir) {
                tracing::warn!(%reason, "chain: anvil's state dump on exit is not usable");
            }
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
    let chain = crate::connect(&running.http, None).await.ok()?;
    (chain.chain_id == LOCAL_CHAIN_ID).then_some(LocalNode {
        anvil: None,
        pid: running.pid,
        http: running.http,
        keeper: None,
    })
}

/// The local chain in `dir`: the anvil a previous run left running there (adopted), or a new
/// one on the directory's saved state; the contracts are deployed on its first start (or after
/// its state was lost).
pub async fn local_chain(dir: &Path) -> Result<LocalChain, ChainError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let ipc = dir.join("anvil.ipc");
    let mut node = match adopt(dir, &ipc).await {
        Some(node) => {
            tracing::warn!(
                pid = node.pid,
                "chain: adopted the local anvil a previous run left running"
            );
            node
        }
        None => start(dir, &ipc).await?,
    };
    node.keeper = Some((StateKeeper::start(dir), dir.to_path_buf()));
    match local_deployment(&node, dir).await {
        Ok(deployment) => Ok(LocalChain {
            node,
            ipc,
            deployment,
        }),
        Err(error) => {
            node.stop();
            Err(error)
        }
    }
}

/// Starts anvil on the data dir's chain state and records where it runs.
async fn start(dir: &Path, ipc: &Path) -> Result<LocalNode, ChainError> {
    let _ = std::fs::remove_file(ipc);
    let mut anvil = Anvil::at(crate::anvil_binary()?)
        .chain_id(LOCAL_CHAIN_ID)
        .block_time(2)
        .arg("--ipc")
        .arg(ipc)
        .arg("--dump-state")
        .arg(dir.join(DUMPED_STATE))
        .arg("--state-interval")
        .arg("5")
        .keep_stdout();
    if let Some(state) = promote_dumped_state(dir)? {
        anvil = anvil.arg("--load-state").arg(state);
    }
    let mut anvil = anvil.try_spawn()?;
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
        keeper: None,
    };
    let running = Running {
        pid: node.pid,
        http: node.http.clone(),
    };
    let file = dir.join("anvil.json");
    std::fs::write(&file, json(&running)?).map_err(io(&file))?;
    Ok(node)
}

/// Anvil dumps its state by writing the file in place (every few seconds and on exit), so a
/// full disk or a crash mid-write leaves it cut short, and anvil then refuses to load it. So
/// anvil loads `state.json` and dumps to `state.next.json`; a dump that parses becomes the
/// new `state.json` (written aside, synced, renamed: never half-written), while the node runs
/// ([`StateKeeper`]) and at the next start. Returns the state to load, if any.
fn promote_dumped_state(dir: &Path) -> Result<Option<PathBuf>, ChainError> {
    let dumped = dir.join(DUMPED_STATE);
    if let Some(Err(reason)) = promote(dir) {
        tracing::warn!(
            dump = %dumped.display(),
            %reason,
            "chain: anvil's last state dump is damaged (a full disk or a crash while it wrote); \
             going on from the last good one: the blocks in between are lost"
        );
        let _ = std::fs::remove_file(&dumped);
    }
    let state = dir.join(STATE);
    match parses(&state) {
        None => Ok(None),
        Some(Ok(())) => Ok(Some(state)),
        Some(Err(reason)) => Err(ChainError::LocalState(format!(
            "{} is damaged ({reason}): restore it from a backup, or remove it to start a new \
             local chain",
            state.display()
        ))),
    }
}

/// The state anvil starts from.
const STATE: &str = "state.json";
/// Where anvil dumps its state.
const DUMPED_STATE: &str = "state.next.json";

/// Makes anvil's dump the state to start from, if it parses: `None` when there is no dump,
/// `Some(Err)` when it does not parse (or cannot be copied: a full disk keeps the old state).
fn promote(dir: &Path) -> Option<Result<(), String>> {
    let dumped = dir.join(DUMPED_STATE);
    match parses(&dumped)? {
        Ok(()) => {}
        Err(reason) => return Some(Err(reason)),
    }
    let partial = dir.join("state.json.partial");
    let copied = std::fs::copy(&dumped, &partial)
        .and_then(|_| std::fs::File::open(&partial)?.sync_all())
        .and_then(|()| std::fs::rename(&partial, dir.join(STATE)));
    if copied.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    Some(copied.map_err(|e| e.to_string()))
}

/// Keeps `state.json` up with anvil's dumps while the node runs (see
/// [`promote_dumped_state`]), so a damaged dump loses seconds, not the run.
#[derive(Debug)]
struct StateKeeper {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl StateKeeper {
    fn start(dir: &Path) -> StateKeeper {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let dir = dir.to_path_buf();
        let thread = std::thread::Builder::new()
            .name("coss-chain-state".into())
            .spawn(move || {
                let mut seen = None;
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(250));
                    let modified = std::fs::metadata(dir.join(DUMPED_STATE))
                        .and_then(|m| m.modified())
                        .ok();
                    if modified.is_some()
                        && modified != seen
                        && matches!(promote(&dir), Some(Ok(())))
                    {
                        seen = modified;
                    }
                }
            })
            .ok();
        StateKeeper { stop, thread }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for StateKeeper {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Whether a file holds one JSON document (`None`: there is no file).
fn parses(path: &Path) -> Option<Result<(), String>> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
        Err(error) => return Some(Err(error.to_string())),
    };
    let reader = std::io::BufReader::new(file);
    Some(
        serde_json::from_reader::<_, serde::de::IgnoredAny>(reader)
            .map(|_| ())
            .map_err(|e| e.to_string()),
    )
}

/// The contracts of the local chain, deployed on first start (or after its state was lost).
async fn local_deployment(node: &LocalNode, dir: &Path) -> Result<LocalDeployment, ChainError> {
    let file = dir.join("deployment.json");
    let dev = crate::connect(node.endpoint(), None).await?;
    if let Ok(text) = std::fs::read_to_string(&file)
        && let Ok(known) = serde_json::from_str::<LocalDeployment>(&text)
        && !dev.provider.get_code_at(known.coss).await?.is_empty()
    {
        return Ok(known);
    }
    let now = crate::chain_time(&dev).await?;
    let params = crate::DeployParams::development(dev.sender, now);
    let set = crate::deploy(&dev, &params).await?;
    let pending = crate::TestUsd::deploy_builder(&dev.provider)
        .from(dev.sender)
        .send()
        .await?;
    let receipt = crate::receipt(pending).await?;
    let Some(tusd) = receipt.contract_address else {
        return Err(ChainError::NoContract(receipt.transaction_hash));
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

/// Gives the hot wallet 100 ETH and 1,000,000 tUSD on the local chain in `dir`, once.
pub async fn fund_hot_wallet(node: &LocalNode, dir: &Path, hot: Address) -> Result<(), ChainError> {
    let file = dir.join("deployment.json");
    let text = std::fs::read_to_string(&file).map_err(io(&file))?;
    let mut deployment: LocalDeployment =
        serde_json::from_str(&text).map_err(|e| ChainError::LocalState(e.to_string()))?;
    if deployment.hot_funded.contains(&hot) {
        return Ok(());
    }
    let dev = crate::connect(node.endpoint(), None).await?;
    give(
        &dev,
        deployment.tusd,
        hot,
        U256::from(100u128 * 10u128.pow(18)),
        U256::from(1_000_000u128 * 10u128.pow(6)),
    )
    .await?;
    deployment.hot_funded.push(hot);
    write(&file, &deployment)?;
    tracing::info!(%hot, "local chain: hot wallet funded with 100 ETH and 1,000,000 tUSD");
    Ok(())
}

/// Sends `wei` and `tusd` (smallest units) from anvil's development account to `to` on the
/// local chain running in `dir` (the node `coss up` started or adopted there): a real transfer
/// and a real mint that the deposit watcher sees like any other. Returns both transactions.
///
/// # Errors
/// [`ChainError::LocalState`] when no local chain runs in `dir`, or the node's errors.
pub async fn send_test_funds(
    dir: &Path,
    to: Address,
    wei: U256,
    tusd: U256,
) -> Result<(alloy::primitives::B256, alloy::primitives::B256), ChainError> {
    let running: Running = read_json(&dir.join("anvil.json"))?;
    if !alive(running.pid) {
        return Err(ChainError::LocalState(format!(
            "the local chain in {} is not running: start `coss up` first",
            dir.display()
        )));
    }
    let deployment: LocalDeployment = read_json(&dir.join("deployment.json"))?;
    let dev = crate::connect(&running.http, None).await?;
    if dev.chain_id != LOCAL_CHAIN_ID {
        return Err(ChainError::LocalState(format!(
            "{} serves chain {}, not the local chain",
            running.http, dev.chain_id
        )));
    }
    give(&dev, deployment.tusd, to, wei, tusd).await
}

/// Sends `wei` from anvil's development account to `to` and mints it `tusd` (smallest units),
/// each awaited to its receipt; returns both transactions.
async fn give(
    dev: &crate::Chain,
    tusd_contract: Address,
    to: Address,
    wei: U256,
    tusd: U256,
) -> Result<(alloy::primitives::B256, alloy::primitives::B256), ChainError> {
    let eth = TransactionRequest::default()
        .with_from(dev.sender)
        .with_to(to)
        .with_value(wei);
    let eth = crate::receipt(dev.provider.send_transaction(eth).await?).await?;
    let mint = crate::TestUsd::new(tusd_contract, &dev.provider)
        .mint(to, tusd)
        .from(dev.sender)
        .send()
        .await?;
    let mint = crate::receipt(mint).await?;
    Ok((eth.transaction_hash, mint.transaction_hash))
}

fn read_json<T: serde::de::DeserializeOwned>(file: &Path) -> Result<T, ChainError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        ChainError::LocalState(format!(
            "no local chain in {} ({e}): start `coss up` first",
            file.parent().unwrap_or(file).display()
        ))
    })?;
    serde_json::from_str(&text).map_err(|e| ChainError::LocalState(e.to_string()))
}

fn write(file: &Path, deployment: &LocalDeployment) -> Result<(), ChainError> {
    std::fs::write(file, json(deployment)?).map_err(io(file))
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>, ChainError> {
    serde_json::to_vec_pretty(value).map_err(|e| ChainError::LocalState(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Found by issue 20's full-disk test: anvil wrote its state in place, a full disk cut it
    /// short, and the next start failed. A damaged dump is set aside for the last good state.
    #[test]
    fn a_damaged_state_dump_falls_back_to_the_last_good_state() {
        let dir = tempfile::tempdir().unwrap();
        let (state, dumped) = (dir.path().join(STATE), dir.path().join(DUMPED_STATE));
        assert_eq!(
            promote_dumped_state(dir.path()).unwrap(),
            None,
            "a new chain"
        );
        std::fs::write(&dumped, r#"{"block": 1}"#).unwrap();
        assert_eq!(
            promote_dumped_state(dir.path()).unwrap(),
            Some(state.clone())
        );
        assert_eq!(std::fs::read_to_string(&state).unwrap(), r#"{"block": 1}"#);
        std::fs::write(&dumped, r#"{"block": 2, "accounts": {"0x"#).unwrap();
        assert_eq!(
            promote_dumped_state(dir.path()).unwrap(),
            Some(state.clone())
        );
        assert_eq!(std::fs::read_to_string(&state).unwrap(), r#"{"block": 1}"#);
        assert!(!dumped.exists(), "the damaged dump is set aside");
        std::fs::write(&state, r#"{"block": "#).unwrap();
        let error = promote_dumped_state(dir.path()).unwrap_err();
        assert_eq!(error.code(), "chain.local_state");
        assert!(
            error.to_string().contains("restore it from a backup"),
            "{error}"
        );
    }
}
