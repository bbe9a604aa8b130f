//! `coss bench gateway`: the payment gateway of the whole platform as `coss up` runs it, on
//! loopback with the rate limits off. Invoices created per second through the API (signed
//! `POST /api/v1/gateway/invoices`, each a database transaction, a fresh HD receiving address
//! and a webhook event) against the API's other signed write path in the same run, a signed
//! `POST /api/v3/order` (journaled in the engine); then payment-detection latency on the
//! platform's own anvil: a block paying an invoice is mined, and the time from its receipt to
//! the invoice turning `processing` (the payment seen at 1 confirmation) is taken, p50/p99;
//! with the gas each payment costs on chain: the payer's transfer, and the sweep of the
//! invoice's address to the hot wallet that the per-invoice-address scheme costs the platform.

use std::sync::Arc;
use std::time::{Duration, Instant};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, U256};
use alloy::providers::Provider;
use alloy::rpc::types::TransactionRequest;
use coss_identity::{Authenticated, Permission};
use coss_store::{InvoiceStatus, SessionKind};
use serde_json::{Value, json};

use crate::api::{Key, Kind, load, on_loopback, ratio, round3, traders};
use crate::{BenchError, Context, Result};

/// The knobs.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Concurrent keep-alive connections of the load generator.
    pub connections: usize,
    /// Seconds per measured phase.
    pub seconds: u64,
    /// Payments timed from their block to the invoice's status change.
    pub samples: usize,
}

/// Runs the benchmark; the report as JSON.
pub fn run(options: Options) -> Result<Value> {
    let (dir, server_rt, client_rt, settings) = on_loopback()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let (address, traders_keys, merchant, gateway, serving) = server_rt.block_on(async {
        let platform = coss_server::Platform::open(settings).await?;
        let traders_keys = traders(platform.accounts(), platform.engine()).await?;
        let now = coss_clock::Clock::system().now().as_i64();
        let accounts = platform.accounts();
        let shop = crate::auth::verified(accounts, "shop@example.com", now).await?;
        let who = Authenticated {
            user_id: shop,
            session_id: 0,
            kind: SessionKind::App,
        };
        let (api_key, secret) =
            crate::auth::key_with(accounts, &who, &[Permission::Merchant], now).await?;
        let gateway = platform.gateway().clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let serving = tokio::spawn(platform.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok::<_, BenchError>((
            address,
            traders_keys,
            (shop, Key { api_key, secret }),
            gateway,
            serving,
        ))
    })?;
    let (shop, merchant_key) = merchant;
    let seconds = Duration::from_secs(options.seconds.max(1));
    let load_report = client_rt.block_on(async {
        let merchants = Arc::new(vec![merchant_key]);
        let invoices = load(
            address,
            options.connections,
            seconds,
            Arc::clone(&merchants),
            Kind::Invoice,
        )
        .await?;
        let orders = load(
            address,
            options.connections,
            seconds,
            Arc::new(traders_keys),
            Kind::Order,
        )
        .await?;
        Ok::<_, BenchError>(json!({
            "invoices": invoices.to_json(),
            "peer_signed_orders": orders.to_json(),
            "invoices_vs_orders": ratio(invoices.per_second(), orders.per_second()),
        }))
    })?;
    let detection = server_rt.block_on(detect(&gateway, shop, dir.path(), options.samples))?;
    let _ = stop.send(());
    let stopped = server_rt
        .block_on(serving)
        .context("the server task failed")??;
    drop(gateway);
    drop(client_rt);
    drop(server_rt);
    stopped.finish()?;
    let mut report = load_report;
    report["connections"] = json!(options.connections);
    report["seconds_per_phase"] = json!(seconds.as_secs());
    report["payment_detection"] = detection;
    Ok(report)
}

/// Pays `samples` invoices on the local chain, one block each, and times each from the
/// paying block's receipt to the invoice's `processing`; then the gas of each payment.
async fn detect(
    gateway: &coss_gateway::Gateway,
    shop: coss_types::UserId,
    data_dir: &std::path::Path,
    samples: usize,
) -> Result<Value> {
    let chain_dir = data_dir.join("chain");
    let running: Value =
        serde_json::from_str(&std::fs::read_to_string(chain_dir.join("anvil.json"))?)?;
    let deployment: Value =
        serde_json::from_str(&std::fs::read_to_string(chain_dir.join("deployment.json"))?)?;
    let rpc = running["http"].as_str().context("no local chain")?;
    let tusd: Address = deployment["tusd"]
        .as_str()
        .context("no tUSD")?
        .parse()
        .map_err(|_| BenchError::failed("tUSD address"))?;
    let chain = coss_contracts::connect(rpc, None).await?;
    // A block when a payment is sent, no other blocks in between.
    let _: Value = chain
        .provider
        .raw_request("evm_setIntervalMining".into(), (0,))
        .await?;
    let _: Value = chain
        .provider
        .raw_request("evm_setAutomine".into(), (true,))
        .await?;
    let store = gateway.wallet().store().clone();
    let mut changes = gateway.subscribe();
    let mut latencies = Vec::with_capacity(samples);
    let mut eth_gas = 0;
    for _ in 0..samples.max(1) {
        let invoice = gateway
            .create_invoice(
                shop,
                &coss_gateway::CreateInvoice {
                    price: "0.001".into(),
                    currency: "ETH".into(),
                    ..coss_gateway::CreateInvoice::default()
                },
                None,
                "api",
            )
            .await
            .map_err(|e| BenchError::failed(e.to_string()))?;
        let to: Address = invoice
            .address
            .as_deref()
            .context("no address")?
            .parse()
            .map_err(|_| BenchError::failed("address"))?;
        let tx = TransactionRequest::default()
            .with_from(chain.sender)
            .with_to(to)
            .with_value(U256::from(10u128.pow(15)));
        let receipt = chain
            .provider
            .send_transaction(tx)
            .await?
            .get_receipt()
            .await?;
        let mined = Instant::now();
        eth_gas = receipt.gas_used;
        let record = gateway
            .public_invoice(&invoice.id)
            .await
            .map_err(|e| BenchError::failed(e.to_string()))?;
        loop {
            let now = store
                .invoice(record.id)
                .await?
                .context("invoice vanished")?;
            if now.status != InvoiceStatus::New {
                break;
            }
            if mined.elapsed() > Duration::from_secs(30) {
                return Err(BenchError::failed("a payment was not seen in 30 s"));
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), changes.changed()).await;
        }
        latencies.push(mined.elapsed());
    }
    latencies.sort_unstable();
    let at = |p: usize| {
        let i = (latencies.len() * p / 100).min(latencies.len() - 1);
        round3(latencies[i].as_secs_f64() * 1000.0)
    };
    // The payer's ERC-20 transfer, and the sweep of an invoice address's tokens (the
    // platform's cost per token payment under the per-invoice-address scheme: this transfer
    // plus a 21,000-gas top-up of the address's gas).
    let token = coss_contracts::TestUsd::new(tusd, &chain.provider);
    token
        .mint(chain.sender, U256::from(1_000_000u64))
        .from(chain.sender)
        .send()
        .await?
        .get_receipt()
        .await?;
    let fresh = Address::from([0x42; 20]);
    let pay = token
        .transfer(fresh, U256::from(500_000u64))
        .from(chain.sender)
        .send()
        .await?
        .get_receipt()
        .await?;
    let sweep = token
        .transfer(chain.sender, U256::from(500_000u64))
        .from(fresh)
        .estimate_gas()
        .await
        .context("estimating a sweep")?;
    Ok(json!({
        "samples": latencies.len(),
        "p50_ms": at(50),
        "p99_ms": at(99),
        "node_poll_ms": gateway.wallet().config().poll_interval_ms,
        "gas": {
            "payer_eth_transfer": eth_gas,
            "payer_token_transfer_to_a_fresh_address": pay.gas_used,
            "sweep_eth_per_invoice_address": 21_000,
            "sweep_token_per_invoice_address": sweep + 21_000,
        },
    }))
}
