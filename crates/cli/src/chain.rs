//! `coss chain …`: talking to an Ethereum node (today: deploying the COSS contracts).

use std::path::PathBuf;

use alloy::primitives::{Address, U256};
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use coss_contracts::DeployParams;

#[derive(Debug, Subcommand)]
pub enum ChainCommand {
    /// Deploys the whole COSS set (token, sale, locks, allocation table) in one transaction
    /// and prints one JSON object of addresses. Unset parameters take the development
    /// defaults: beneficiaries and wallet are the sender, the fire-swap opens at the node's
    /// latest block time for 3 days, the token swap 26 days after it for 29 days.
    Deploy(Box<DeployArgs>),
}

#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The node's JSON-RPC URL (http or https).
    #[arg(long, env = "COSS_RPC_URL")]
    rpc_url: String,
    /// The deployer's key: an encrypted JSON keystore (needs its password) or a file holding
    /// one hex private key that only its owner can read. Without it the node's first unlocked
    /// account sends (development nodes such as anvil).
    #[arg(long, env = "COSS_KEY_FILE")]
    key_file: Option<PathBuf>,
    /// A file holding the keystore's password (else env COSS_KEY_PASSWORD).
    #[arg(long)]
    password_file: Option<PathBuf>,
    /// Where the raised ETH goes.
    #[arg(long)]
    wallet: Option<Address>,
    /// Developers, staff, operations and partners (30,000,000 COSS, 180 days).
    #[arg(long)]
    team: Option<Address>,
    /// CAP, the affiliate programme (10,000,000 COSS).
    #[arg(long)]
    affiliates: Option<Address>,
    /// Shareholders and board (the rest of 5,000,000 COSS, 180 days).
    #[arg(long)]
    board: Option<Address>,
    /// Advisory board (90 days).
    #[arg(long)]
    advisors: Option<Address>,
    /// The advisory board's part of the 5,000,000 COSS, in COSS (up to 8 decimals).
    #[arg(long, default_value = "1000000")]
    advisors_amount: String,
    /// COSS per ETH (up to 8 decimals).
    #[arg(long, default_value = "10000")]
    rate: String,
    /// Fire-swap opening, Unix seconds (default: the latest block's time).
    #[arg(long)]
    fire_swap_start: Option<u64>,
    /// Fire-swap close, Unix seconds (default: 3 days after it opens).
    #[arg(long)]
    fire_swap_end: Option<u64>,
    /// Token swap opening, Unix seconds (default: 26 days after the fire-swap closes).
    #[arg(long)]
    token_swap_start: Option<u64>,
    /// Token swap close, Unix seconds (default: 29 days after it opens).
    #[arg(long)]
    token_swap_end: Option<u64>,
}

pub fn run(command: ChainCommand) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match command {
        ChainCommand::Deploy(args) => runtime.block_on(deploy(*args)),
    }
}

async fn deploy(args: DeployArgs) -> Result<()> {
    let signer = match &args.key_file {
        Some(path) => {
            let password = password(args.password_file.as_deref())?;
            Some(coss_contracts::load_signer(
                path,
                password.as_ref().map(|p| p.as_str()),
            )?)
        }
        None => None,
    };
    let chain = coss_contracts::connect(&args.rpc_url, signer)
        .await
        .with_context(|| format!("cannot use the node at {}", args.rpc_url))?;
    let now = coss_contracts::chain_time(&chain).await?;
    let mut params = DeployParams::development(chain.sender, now);
    let to = &mut params.beneficiaries;
    for (slot, given) in [
        (&mut to.team, args.team),
        (&mut to.affiliates, args.affiliates),
        (&mut to.board, args.board),
        (&mut to.advisors, args.advisors),
        (&mut params.wallet, args.wallet),
    ] {
        if let Some(address) = given {
            *slot = address;
        }
    }
    params.advisors_amount = coss_amount("--advisors-amount", &args.advisors_amount)?;
    params.rate = coss_amount("--rate", &args.rate)?;
    (params.fire_swap, params.token_swap) = coss_contracts::sale_windows(
        args.fire_swap_start.unwrap_or(now),
        args.fire_swap_end,
        args.token_swap_start,
        args.token_swap_end,
    );
    let deployment = coss_contracts::deploy(&chain, &params).await?;
    println!("{}", serde_json::to_string(&deployment)?);
    Ok(())
}

/// The keystore password from `--password-file` or `COSS_KEY_PASSWORD` (never echoed).
fn password(file: Option<&std::path::Path>) -> Result<Option<zeroize::Zeroizing<String>>> {
    if let Some(file) = file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the password file {}", file.display()))?,
        );
        let line = text.lines().next().unwrap_or_default();
        return Ok(Some(zeroize::Zeroizing::new(line.to_owned())));
    }
    Ok(std::env::var("COSS_KEY_PASSWORD")
        .ok()
        .map(zeroize::Zeroizing::new))
}

/// A COSS amount with up to 8 decimals, as token units; more decimals are refused, never
/// rounded.
fn coss_amount(flag: &str, text: &str) -> Result<U256> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let valid = !whole.is_empty() && digits(whole) && digits(fraction) && fraction.len() <= 8;
    let units = valid
        .then(|| format!("{whole}{fraction:0<8}"))
        .and_then(|units| U256::from_str_radix(&units, 10).ok());
    match units {
        Some(units) => Ok(units),
        None => bail!("{flag} {text:?} is not a COSS amount (a number with up to 8 decimals)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coss_amounts_take_up_to_8_decimals_and_nothing_is_rounded() {
        assert_eq!(
            coss_amount("--rate", "10000").unwrap(),
            U256::from(10_000u64 * 100_000_000)
        );
        assert_eq!(
            coss_amount("--rate", "1.5").unwrap(),
            U256::from(150_000_000u64)
        );
        assert_eq!(
            coss_amount("--rate", "0.00000001").unwrap(),
            U256::from(1u8)
        );
        for bad in ["1.123456789", "-1", "", ".5", "1e3", "1,000", "0x10"] {
            let err = coss_amount("--rate", bad).unwrap_err().to_string();
            assert!(err.contains("not a COSS amount"), "{bad}: {err}");
        }
    }
}
