// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {CossToken} from "./CossToken.sol";

/// @title The COSS token sale: fire-swap (pre-sale) and token swap (main sale).
/// @notice Each phase has a time window, a token cap, a minimum purchase and a bonus. A buyer
/// pays ETH and is minted `floor(wei × rate / 1e18)` COSS units, plus the phase's bonus
/// (rounded down): rounding never creates tokens from nothing. A purchase that would take a
/// phase past its cap is rejected (buy less); unsold tokens are never minted. Each purchase
/// records the buyer and an optional COSS username, so the platform knows who originally
/// owned tokens bought here. Raised ETH stays in this contract until `withdraw()` sends it
/// to the configured wallet (pull, reentrancy-guarded).
contract CossSale is ReentrancyGuard {
    /// @notice One phase of the sale.
    struct Phase {
        /// First second of the window (inclusive).
        uint64 start;
        /// End of the window (exclusive).
        uint64 end;
        /// Most COSS units this phase may mint, bonus included.
        uint256 cap;
        /// Smallest purchase, in wei.
        uint256 minWei;
        /// Bonus on top of the base amount, in basis points (2,500 = 25%).
        uint16 bonusBps;
    }

    /// @notice Phase 0: the fire-swap.
    uint8 public constant FIRE_SWAP = 0;
    /// @notice Phase 1: the token swap.
    uint8 public constant TOKEN_SWAP = 1;

    /// @notice The token minted to buyers.
    CossToken public immutable token;
    /// @notice Where raised ETH goes.
    address payable public immutable wallet;
    /// @notice COSS units (1e-8 COSS) per whole ETH.
    uint256 public immutable rate;

    Phase[2] internal phases;
    /// @notice COSS units minted so far, per phase.
    uint256[2] public sold;

    /// @notice `buyer` paid `weiPaid` in `phase` and received `tokens` COSS units; `username`
    /// is the COSS account it named (zero: none).
    event Purchased(address indexed buyer, uint8 indexed phase, bytes32 username, uint256 weiPaid, uint256 tokens);
    /// @notice `amount` wei were sent to the wallet.
    event Withdrawn(address indexed wallet, uint256 amount);

    /// @notice No phase is open now.
    error SaleClosed();
    /// @notice Below the phase's minimum purchase.
    error BelowMinimum(uint256 paid, uint256 minimum);
    /// @notice The purchase would take the phase past its cap.
    error CapExceeded(uint256 tokens, uint256 available);
    /// @notice The payment buys nothing.
    error NothingBought();
    /// @notice A constructor argument is invalid.
    error InvalidConfig();

    constructor(CossToken token_, address payable wallet_, uint256 rate_, Phase memory fireSwap, Phase memory tokenSwap) {
        if (wallet_ == address(0) || rate_ == 0) revert InvalidConfig();
        if (fireSwap.start >= fireSwap.end || tokenSwap.start >= tokenSwap.end) revert InvalidConfig();
        if (fireSwap.end > tokenSwap.start) revert InvalidConfig();
        token = token_;
        wallet = wallet_;
        rate = rate_;
        phases[FIRE_SWAP] = fireSwap;
        phases[TOKEN_SWAP] = tokenSwap;
    }

    /// @notice A phase's parameters.
    function phase(uint8 index) external view returns (Phase memory) {
        return phases[index];
    }

    /// @notice The COSS units `weiPaid` buys in `index` (base amount plus bonus, rounded down).
    function quote(uint8 index, uint256 weiPaid) public view returns (uint256) {
        uint256 base = weiPaid * rate / 1e18;
        return base + base * phases[index].bonusBps / 10_000;
    }

    /// @notice The phase open at this block, if any.
    function currentPhase() public view returns (bool open, uint8 index) {
        for (uint8 i = 0; i < 2; i++) {
            Phase storage p = phases[i];
            if (block.timestamp >= p.start && block.timestamp < p.end) return (true, i);
        }
        return (false, 0);
    }

    /// @notice Buys COSS with the ETH sent, naming an optional COSS username.
    function buy(bytes32 username) external payable nonReentrant returns (uint256 tokens) {
        (bool open, uint8 index) = currentPhase();
        if (!open) revert SaleClosed();
        Phase storage p = phases[index];
        if (msg.value < p.minWei) revert BelowMinimum(msg.value, p.minWei);
        tokens = quote(index, msg.value);
        if (tokens == 0) revert NothingBought();
        uint256 available = p.cap - sold[index];
        if (tokens > available) revert CapExceeded(tokens, available);
        sold[index] += tokens;
        emit Purchased(msg.sender, index, username, msg.value, tokens);
        token.mint(msg.sender, tokens);
    }

    /// @notice Sends all raised ETH to the wallet (anyone may trigger it).
    function withdraw() external nonReentrant {
        uint256 amount = address(this).balance;
        emit Withdrawn(wallet, amount);
        Address.sendValue(wallet, amount);
    }
}
