//! `coss bench wallet`: how fast the deposit watcher follows a real node (anvil over IPC)
//! while it watches 1,000,000 deposit addresses, against the peer measured in the same run:
//! fetching the same blocks and receipts from the node without matching or recording
//! anything (the ceiling the node sets). Then the deposit-to-credit latency: from sending
//! an ETH deposit to its credit in the exchange core, with one confirmation, through the
//! running watcher woken by the node's new-head notifications.

use std::time::{Duration, Instant};

use crate::{BenchError, Context, Result};
use alloy::eips::{BlockId, BlockNumberOrTag};
use alloy::network::TransactionBuilder;
use alloy::node_bindings::Anvil;
use alloy::primitives::{Address, U256, keccak256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use coss_engine::{Engine, EngineConfig};
use coss_identity::{Accounts, Vault};
use coss_store::Store;
use coss_types::UserId;
use coss_wallet::{ChainConfig, DEV_ETH, Wallet};
use serde_json::json;

const PASSWORD: &str = "correct horse battery";

/// Runs the benchmark; the report as JSON.
pub fn run(addresses: usize, blocks: u64, samples: usize) -> Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(measure(addresses, blocks.max(1), samples.max(1)))?;
    Ok(report)
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}

async fn measure(addresses: usize, blocks: u64, samples: usize) -> Result<serde_json::Value> {
    let dir = std::env::temp_dir().join(format!("coss-bench-wallet-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let ipc = dir.join("anvil.ipc");
    let mut anvil = Anvil::at(coss_contracts::anvil_binary()?)
        .arg("--ipc")
        .arg(&ipc)
        .keep_stdout()
        .try_spawn()?;
    if let Some(mut stdout) = anvil.child_mut().stdout.take() {
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    }
    while !ipc.exists() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let dev = coss_contracts::connect(&anvil.endpoint(), None).await?;
    let token = |pending| async move {
        coss_contracts::receipt(pending)
            .await
            .map(|r| r.contract_address.unwrap_or_default())
    };
    let usd = token(
        coss_contracts::TestUsd::deploy_builder(&dev.provider)
            .from(dev.sender)
            .send()
            .await?,
    )
    .await?;
    let coss = token(
        coss_contracts::TestUsd::deploy_builder(&dev.provider)
            .from(dev.sender)
            .send()
            .await?,
    )
    .await?;
    let store = Store::open_in(&dir).await?;
    let accounts = Accounts::new(store, Vault::random()?)?;
    let (engine, _) = Engine::start(EngineConfig::new(dir.join("engine")))?;
    let handle = engine.handle();
    let mut config =
        ChainConfig::development(anvil.chain_id(), &ipc.display().to_string(), coss, usd);
    config.start_block = Some(0);
    config.poll_interval_ms = 1000;
    for asset in &mut config.assets {
        asset.confirmations = 1;
    }
    let wallet = Wallet::open(
        config,
        accounts.clone(),
        handle.clone(),
        coss_clock::Clock::system(),
    )
    .await?;

    // Ten users with deposit addresses, and a million more addresses watched.
    let mut users = Vec::new();
    for i in 0..10 {
        let email = format!("bench{i}@example.com");
        let now = coss_clock::Clock::system().now().as_i64();
        let id = accounts
            .signup(&email, PASSWORD, &coss_identity::Client::default(), now)
            .await?
            .user();
        users.push((id, wallet.deposit_address(id).await?));
    }
    let rss_before = resident_bytes();
    let filling = Instant::now();
    wallet.address_book().extend((0..addresses).map(|i| {
        let word = keccak256((i as u64).to_le_bytes());
        (Address::from_slice(&word[12..]), UserId(-1))
    }));
    let fill_secs = filling.elapsed().as_secs_f64();
    let book_bytes = resident_bytes().saturating_sub(rss_before);

    // The chain: blocks of four transfers each — ETH and tUSD to watched addresses, ETH to
    // an address nobody watches, and a tUSD mint to one.
    let _: serde_json::Value = dev
        .provider
        .raw_request("evm_setAutomine".into(), (false,))
        .await?;
    let usd_contract = coss_contracts::TestUsd::new(usd, &dev.provider);
    let mut nonce = dev.provider.get_transaction_count(dev.sender).await?;
    for b in 0..blocks {
        let (_, to) = users[(b as usize) % users.len()];
        let stranger = Address::from_slice(&keccak256(format!("stranger {b}"))[12..]);
        for (target, value) in [(to, 10u64.pow(15)), (stranger, 10u64.pow(15))] {
            let tx = TransactionRequest::default()
                .with_from(dev.sender)
                .with_to(target)
                .with_value(U256::from(value))
                .with_nonce(nonce)
                .with_gas_limit(21_000)
                .with_max_fee_per_gas(10_000_000_000)
                .with_max_priority_fee_per_gas(1);
            let _ = dev.provider.send_transaction(tx).await?;
            nonce += 1;
        }
        for target in [to, stranger] {
            let _ = usd_contract
                .mint(target, U256::from(1_000_000u64))
                .from(dev.sender)
                .nonce(nonce)
                .gas(100_000)
                .max_fee_per_gas(10_000_000_000)
                .max_priority_fee_per_gas(1)
                .send()
                .await?;
            nonce += 1;
        }
        let _: serde_json::Value = dev.provider.raw_request("evm_mine".into(), ()).await?;
    }
    let head = dev.provider.get_block_number().await?;

    // The peer: the node's own delivery of the same blocks and receipts.
    let provider = wallet.provider().clone();
    let fetching = Instant::now();
    for n in 0..=head {
        let block = provider
            .get_block_by_number(BlockNumberOrTag::Number(n))
            .full()
            .await?;
        if let Some(block) = block
            && !block.transactions.is_empty()
        {
            let _ = provider
                .get_block_receipts(BlockId::hash(block.header.hash))
                .await?;
        }
    }
    let fetch_secs = fetching.elapsed().as_secs_f64();

    let scanning = Instant::now();
    let report = wallet.sync().await?;
    let scan_secs = scanning.elapsed().as_secs_f64();
    if report.found != 2 * blocks {
        return Err(BenchError::failed(format!(
            "found {} deposits, expected {}",
            report.found,
            2 * blocks
        )));
    }

    // Deposit-to-credit latency through the running watcher (new heads pushed over IPC).
    let _: serde_json::Value = dev
        .provider
        .raw_request("evm_setAutomine".into(), (true,))
        .await?;
    let running = wallet.spawn();
    let mut latencies = Vec::with_capacity(samples);
    for s in 0..samples {
        let (user, to) = users[s % users.len()];
        let account = coss_identity::exchange_account(user).context("user id")?;
        let before = handle
            .read_async(move |e| e.balance(account, DEV_ETH))
            .await?
            .available;
        let sent = Instant::now();
        let tx = TransactionRequest::default()
            .with_from(dev.sender)
            .with_to(to)
            .with_value(U256::from(10u64.pow(15)));
        let _ = dev.provider.send_transaction(tx).await?;
        loop {
            let now = handle
                .read_async(move |e| e.balance(account, DEV_ETH))
                .await?
                .available;
            if now != before {
                break;
            }
            if sent.elapsed() > Duration::from_secs(30) {
                return Err(BenchError::failed("a deposit was not credited within 30 s"));
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        latencies.push(sent.elapsed());
    }
    latencies.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
    let pick = |q: usize| latencies[(latencies.len() * q / 100).min(latencies.len() - 1)];
    running.abort();
    let _ = running.await;
    drop(wallet);
    drop(handle);
    let _ = tokio::task::spawn_blocking(move || engine.shutdown()).await;
    drop(anvil);
    let _ = std::fs::remove_dir_all(&dir);
    let scanned = report.scanned as f64;
    Ok(json!({
        "bench": "wallet",
        "node": "anvil 1.7.1 over IPC",
        "watched_addresses": addresses + users.len(),
        "address_book": {
            "fill_seconds": (fill_secs * 1000.0).round() / 1000.0,
            "resident_mb": book_bytes / 1_000_000,
        },
        "scan": {
            "blocks": report.scanned,
            "transfers_per_block": 4,
            "deposits_found": report.found,
            "seconds": (scan_secs * 1000.0).round() / 1000.0,
            "blocks_per_second": (scanned / scan_secs).round(),
        },
        "peer_node_fetch_only": {
            "seconds": (fetch_secs * 1000.0).round() / 1000.0,
            "blocks_per_second": (scanned / fetch_secs).round(),
        },
        "scan_vs_fetch_ratio": ((fetch_secs / scan_secs) * 100.0).round() / 100.0,
        "deposit_to_credit_ms": {
            "confirmations": 1,
            "samples": latencies.len(),
            "p50": ms(pick(50)),
            "p99": ms(pick(99)),
            "max": ms(latencies[latencies.len() - 1]),
        },
    }))
}
