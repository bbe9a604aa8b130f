// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";

/// @title COSS, the token whose holders receive 50% of the platform's fee revenue.
/// @notice ERC-20 with 8 decimals and a hard cap of 200,000,000 COSS. Tokens exist only once
/// minted by the sale (when bought) or by the deployment (the locked allocations), so unsold
/// tokens are never created. A holder links an address to a COSS account with
/// `setRevenueUsername`; the platform pays that address's weekly share to that account.
contract CossToken is ERC20, AccessControl {
    /// @notice 200,000,000 COSS in its smallest unit (8 decimals).
    uint256 public constant CAP = 200_000_000 * 10 ** 8;
    /// @notice May mint, up to the cap: the sale and, during deployment, the deployer.
    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");

    /// @notice The COSS username each address receives its revenue share under (0: none).
    mapping(address => bytes32) public revenueDistribution;

    /// @notice `holder` set (or, with zero, cleared) the COSS username its share goes to.
    event RevenueUsernameSet(address indexed holder, bytes32 username);

    /// @notice Minting would exceed the 200,000,000 COSS cap.
    error CapExceeded(uint256 requested, uint256 available);

    constructor(address admin) ERC20("COSS", "COSS") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    /// @inheritdoc ERC20
    function decimals() public pure override returns (uint8) {
        return 8;
    }

    /// @notice Creates `amount` new tokens for `to`; never beyond the cap.
    /// @dev The cap is checked here rather than in `_update`, so transfers cost exactly what a
    /// plain OpenZeppelin ERC-20's do.
    function mint(address to, uint256 amount) external onlyRole(MINTER_ROLE) {
        uint256 available = CAP - totalSupply();
        if (amount > available) revert CapExceeded(amount, available);
        _mint(to, amount);
    }

    /// @notice Links the caller's address to a COSS username for the weekly revenue share;
    /// setting it again replaces it, zero clears it.
    function setRevenueUsername(bytes32 cossUsername) external {
        revenueDistribution[msg.sender] = cossUsername;
        emit RevenueUsernameSet(msg.sender, cossUsername);
    }
}
