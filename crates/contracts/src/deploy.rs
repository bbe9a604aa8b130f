//! Deploying the whole COSS set through `CossDeployment` in one transaction.

use alloy::primitives::{Address, TxHash, U256};
use alloy::providers::Provider;
use serde::Serialize;

use crate::{COSS, Chain, ChainError, CossDeployment};

/// A sale phase's window, Unix seconds: open from `start` (inclusive) to `end` (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Window {
    /// First second of the phase.
    pub start: u64,
    /// First second after it.
    pub end: u64,
}

/// Who receives each locked allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Beneficiaries {
    /// Developers, staff, operations, strategic partners: 30,000,000 COSS, 180 days.
    pub team: Address,
    /// CAP, the affiliate programme: 10,000,000 COSS, no lock.
    pub affiliates: Address,
    /// Shareholders and board: the rest of the 5,000,000 COSS, 180 days.
    pub board: Address,
    /// Advisory board: `advisors_amount`, 90 days.
    pub advisors: Address,
}

/// Everything `CossDeployment` takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployParams {
    /// Allocation beneficiaries.
    pub beneficiaries: Beneficiaries,
    /// The advisory board's part of the 5,000,000 COSS, in COSS units (8 decimals).
    pub advisors_amount: U256,
    /// Where the raised ETH goes.
    pub wallet: Address,
    /// COSS units (8 decimals) per ether.
    pub rate: U256,
    /// The fire-swap (pre-sale) window.
    pub fire_swap: Window,
    /// The token swap (main sale) window.
    pub token_swap: Window,
}

const DAY: u64 = 86_400;

/// The sale windows from the fire-swap's opening, each unset end or opening taking the
/// paper's spacing: the fire-swap lasts 3 days, the token swap opens 26 days after it closes
/// and lasts 29 days.
pub fn sale_windows(
    fire_swap_start: u64,
    fire_swap_end: Option<u64>,
    token_swap_start: Option<u64>,
    token_swap_end: Option<u64>,
) -> (Window, Window) {
    let fire_end = fire_swap_end.unwrap_or(fire_swap_start + 3 * DAY);
    let swap_start = token_swap_start.unwrap_or(fire_end + 26 * DAY);
    let swap_end = token_swap_end.unwrap_or(swap_start + 29 * DAY);
    (
        Window {
            start: fire_swap_start,
            end: fire_end,
        },
        Window {
            start: swap_start,
            end: swap_end,
        },
    )
}

impl DeployParams {
    /// The development defaults (the same as `contracts/script/Deploy.s.sol`): every
    /// beneficiary and the wallet are `sender`; the advisory board gets 1,000,000 COSS; the rate
    /// is 10,000 COSS per ether; the fire-swap opens at `now` for 3 days, and the token swap
    /// 26 days after it closes, for 29 days (the paper's spacing).
    pub fn development(sender: Address, now: u64) -> Self {
        let (fire_swap, token_swap) = sale_windows(now, None, None, None);
        Self {
            beneficiaries: Beneficiaries {
                team: sender,
                affiliates: sender,
                board: sender,
                advisors: sender,
            },
            advisors_amount: U256::from(1_000_000 * COSS),
            wallet: sender,
            rate: U256::from(10_000 * COSS),
            fire_swap,
            token_swap,
        }
    }

    /// Refuses what the contracts would revert on, with a reason instead of a bare revert.
    pub fn validate(&self) -> Result<(), ChainError> {
        let bad = |reason: &str| Err(ChainError::Params(reason.to_owned()));
        if self.advisors_amount > U256::from(5_000_000 * COSS) {
            return bad(
                "the advisory board's part exceeds the 5,000,000 COSS of board and advisors",
            );
        }
        if self.rate.is_zero() {
            return bad("the rate must be above zero");
        }
        if self.wallet == Address::ZERO {
            return bad("the wallet must not be the zero address");
        }
        let b = &self.beneficiaries;
        if [b.team, b.affiliates, b.board, b.advisors].contains(&Address::ZERO) {
            return bad("no beneficiary may be the zero address");
        }
        let (fire, swap) = (self.fire_swap, self.token_swap);
        if fire.start >= fire.end || swap.start >= swap.end {
            return bad("each window must end after it starts");
        }
        if fire.end > swap.start {
            return bad("the fire-swap must close before the token swap opens");
        }
        Ok(())
    }
}

/// Where everything landed: printed by `coss chain deploy` as one JSON object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// The chain it was deployed to.
    pub chain_id: u64,
    /// The account that sent the deployment transaction.
    pub deployer: Address,
    /// The deployment transaction.
    pub tx: TxHash,
    /// The block it was mined in.
    pub block: u64,
    /// `CossDeployment` itself (a record of the set; it keeps no power over it).
    pub deployment: Address,
    /// The COSS token.
    pub token: Address,
    /// The sale (the token's only minter).
    pub sale: Address,
    /// The developers', staff's, operations' and partners' lock (180 days).
    pub team_lock: Address,
    /// The shareholders' and board's lock (180 days).
    pub board_lock: Address,
    /// The advisory board's lock (90 days).
    pub advisors_lock: Address,
    /// The fire-swap window.
    pub fire_swap: Window,
    /// The token swap window.
    pub token_swap: Window,
}

/// Deploys the whole set from `chain.sender` and reads back every address.
pub async fn deploy(chain: &Chain, params: &DeployParams) -> Result<Deployment, ChainError> {
    params.validate()?;
    let b = params.beneficiaries;
    let pending = CossDeployment::deploy_builder(
        &chain.provider,
        CossDeployment::Beneficiaries {
            team: b.team,
            affiliates: b.affiliates,
            board: b.board,
            advisors: b.advisors,
        },
        params.advisors_amount,
        params.wallet,
        params.rate,
        params.fire_swap.start,
        params.fire_swap.end,
        params.token_swap.start,
        params.token_swap.end,
    )
    .from(chain.sender)
    .send()
    .await?;
    let receipt = crate::receipt(pending).await?;
    let tx = receipt.transaction_hash;
    if !receipt.status() {
        return Err(ChainError::Reverted(tx));
    }
    let address = receipt.contract_address.ok_or(ChainError::NoContract(tx))?;
    let set = CossDeployment::new(address, &chain.provider);
    Ok(Deployment {
        chain_id: chain.chain_id,
        deployer: chain.sender,
        tx,
        block: receipt.block_number.unwrap_or_default(),
        deployment: address,
        token: set.token().call().await?,
        sale: set.sale().call().await?,
        team_lock: set.teamLock().call().await?,
        board_lock: set.boardLock().call().await?,
        advisors_lock: set.advisorsLock().call().await?,
        fire_swap: params.fire_swap,
        token_swap: params.token_swap,
    })
}

/// The timestamp of the node's latest block: the clock sale windows are measured against.
pub async fn chain_time(chain: &Chain) -> Result<u64, ChainError> {
    let block = chain
        .provider
        .get_block_by_number(alloy::eips::BlockNumberOrTag::Latest)
        .await?;
    Ok(block.map(|b| b.header.timestamp).unwrap_or_default())
}
