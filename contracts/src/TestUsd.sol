// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title COSS Test USD (tUSD), the stablecoin of development chains.
/// @notice A plain 6-decimal ERC-20, like the USD stablecoins exchanges list, that the embedded
/// platform deploys on its local anvil so deposits, withdrawals and trading of a second token
/// can be tried without a real one. Only its deployer may mint; it has no value anywhere.
contract TestUsd is ERC20 {
    /// @notice The only address that may mint.
    address public immutable issuer;

    /// @notice Only the issuer may mint.
    error NotIssuer();

    constructor() ERC20("COSS Test USD", "tUSD") {
        issuer = msg.sender;
    }

    /// @notice 6 decimals, as the common USD stablecoins have.
    function decimals() public pure override returns (uint8) {
        return 6;
    }

    /// @notice Creates `amount` (smallest units) for `to`.
    function mint(address to, uint256 amount) external {
        if (msg.sender != issuer) revert NotIssuer();
        _mint(to, amount);
    }
}
