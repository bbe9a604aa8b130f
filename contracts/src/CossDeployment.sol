// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {CossToken} from "./CossToken.sol";
import {CossSale} from "./CossSale.sol";
import {TokenLock} from "./TokenLock.sol";

/// @title Creates the whole COSS set in one transaction with the paper's allocation table.
/// @notice Deploys the token, the sale and the locks; mints the 45,000,000 COSS of the
/// allocations into their locks (the affiliate programme's straight to its wallet); makes the
/// sale the only minter, keeping no power over the token itself. So at most 200,000,000 COSS can ever
/// exist: 45,000,000 allocated now plus the sale's 25,000,000 and 130,000,000 caps.
contract CossDeployment {
    /// @notice Who receives each allocation.
    struct Beneficiaries {
        address team; // developers, staff, operations, strategic partners: 30M, 180 days
        address affiliates; // CAP, the COSS affiliate programme: 10M, no lock
        address board; // shareholders and board of directors: 180 days
        address advisors; // advisory board: 90 days
    }

    uint256 public constant TEAM = 30_000_000e8;
    uint256 public constant AFFILIATES = 10_000_000e8;
    uint256 public constant BOARD_AND_ADVISORS = 5_000_000e8;
    uint256 public constant FIRE_SWAP_CAP = 25_000_000e8;
    uint256 public constant TOKEN_SWAP_CAP = 130_000_000e8;

    CossToken public immutable token;
    CossSale public immutable sale;
    TokenLock public immutable teamLock;
    TokenLock public immutable boardLock;
    TokenLock public immutable advisorsLock;

    /// @notice The advisory board's part of the 5,000,000 is above it.
    error InvalidSplit();

    /// @param advisorsAmount The advisory board's part of the 5,000,000 COSS (the paper does
    /// not split it); the rest goes to shareholders and the board.
    constructor(
        Beneficiaries memory to,
        uint256 advisorsAmount,
        address payable wallet,
        uint256 rate,
        uint64 fireSwapStart,
        uint64 fireSwapEnd,
        uint64 tokenSwapStart,
        uint64 tokenSwapEnd
    ) {
        if (advisorsAmount > BOARD_AND_ADVISORS) revert InvalidSplit();
        token = new CossToken(address(this));
        sale = new CossSale(
            token,
            wallet,
            rate,
            CossSale.Phase({
                start: fireSwapStart, end: fireSwapEnd, cap: FIRE_SWAP_CAP, minWei: 50 ether, bonusBps: 2_500
            }),
            CossSale.Phase({
                start: tokenSwapStart, end: tokenSwapEnd, cap: TOKEN_SWAP_CAP, minWei: 0.001 ether, bonusBps: 0
            })
        );
        IERC20 erc20 = IERC20(address(token));
        teamLock = new TokenLock(erc20, to.team, block.timestamp + 180 days);
        boardLock = new TokenLock(erc20, to.board, block.timestamp + 180 days);
        advisorsLock = new TokenLock(erc20, to.advisors, block.timestamp + 90 days);

        token.mint(address(teamLock), TEAM);
        token.mint(to.affiliates, AFFILIATES);
        token.mint(address(boardLock), BOARD_AND_ADVISORS - advisorsAmount);
        token.mint(address(advisorsLock), advisorsAmount);
        token.changeMinter(address(sale));
    }
}
