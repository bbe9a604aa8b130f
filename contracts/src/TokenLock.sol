// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title A locked allocation: tokens held for one beneficiary until a release time.
/// @notice Nothing can move the tokens before `releaseTime`; after it, `release()` (callable
/// by anyone) sends everything held to the beneficiary. Beneficiary, token and time are fixed
/// at construction.
contract TokenLock {
    using SafeERC20 for IERC20;

    /// @notice The locked token.
    IERC20 public immutable token;
    /// @notice Who receives the tokens.
    address public immutable beneficiary;
    /// @notice When they may be released (seconds since the Unix epoch).
    uint256 public immutable releaseTime;

    /// @notice `amount` tokens were released to the beneficiary.
    event Released(address indexed beneficiary, uint256 amount);

    /// @notice The lock has not ended yet.
    error StillLocked(uint256 releaseTime, uint256 now_);
    /// @notice There is nothing to release.
    error NothingToRelease();
    /// @notice The beneficiary cannot be the zero address.
    error ZeroBeneficiary();

    constructor(IERC20 token_, address beneficiary_, uint256 releaseTime_) {
        if (beneficiary_ == address(0)) revert ZeroBeneficiary();
        token = token_;
        beneficiary = beneficiary_;
        releaseTime = releaseTime_;
    }

    /// @notice Sends every token held to the beneficiary, once the lock has ended.
    function release() external {
        if (block.timestamp < releaseTime) revert StillLocked(releaseTime, block.timestamp);
        uint256 amount = token.balanceOf(address(this));
        if (amount == 0) revert NothingToRelease();
        emit Released(beneficiary, amount);
        token.safeTransfer(beneficiary, amount);
    }
}
