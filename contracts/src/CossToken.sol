// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title COSS, the token whose holders receive 50% of the platform's fee revenue.
/// @notice ERC-20 with 8 decimals and a hard cap of 200,000,000 COSS. Tokens exist only once
/// minted by the sale (when bought) or by the deployment (the locked allocations), so unsold
/// tokens are never created. A holder links an address to a COSS account with
/// `setRevenueUsername`; the platform pays that address's weekly share to that account.
/// @dev One minter address rather than OpenZeppelin's AccessControl: minting has exactly one
/// holder at a time (the deployer, then the sale), and every extra external function lengthens
/// the selector dispatch that `transfer` goes through. With this function set (names chosen
/// with the dispatcher's selector order in mind) `transfer` costs 44 gas less than a plain
/// OpenZeppelin ERC-20's, never more (see the gas test and report).
contract CossToken is ERC20 {
    /// @notice 200,000,000 COSS in its smallest unit (8 decimals); see `cap()`.
    uint256 internal constant CAP = 200_000_000 * 10 ** 8;
    /// @notice The only address that may mint, up to the cap: the deployer until it hands
    /// minting over (the deployment hands it to the sale, which never passes it on); zero once
    /// minting has been given up for good.
    address public minter;

    /// @notice The COSS username each address receives its revenue share under (0: none).
    mapping(address => bytes32) public revenueDistribution;

    /// @notice `holder` set (or, with zero, cleared) the COSS username its share goes to.
    event RevenueUsernameSet(address indexed holder, bytes32 username);

    /// @notice Minting passed from `previous` to `next` (zero: nobody can mint any more).
    event MinterChanged(address indexed previous, address indexed next);

    /// @notice Minting would exceed the 200,000,000 COSS cap.
    error CapExceeded(uint256 requested, uint256 available);
    /// @notice Only the current minter may mint or hand minting over.
    error NotMinter(address caller);

    constructor(address initialMinter) ERC20("COSS", "COSS") {
        minter = initialMinter;
        emit MinterChanged(address(0), initialMinter);
    }

    modifier onlyMinter() {
        if (msg.sender != minter) revert NotMinter(msg.sender);
        _;
    }

    /// @inheritdoc ERC20
    function decimals() public pure override returns (uint8) {
        return 8;
    }

    /// @notice The hard cap: 200,000,000 COSS in its smallest unit (8 decimals).
    function cap() external pure returns (uint256) {
        return CAP;
    }

    /// @notice Creates `amount` new tokens for `to`; never beyond the cap.
    /// @dev The cap is checked here rather than in `_update`, so transfers cost exactly what a
    /// plain OpenZeppelin ERC-20's do.
    function mint(address to, uint256 amount) external onlyMinter {
        uint256 available = CAP - totalSupply();
        if (amount > available) revert CapExceeded(amount, available);
        _mint(to, amount);
    }

    /// @notice Hands minting to `next` for good (zero ends minting); only the current minter.
    function changeMinter(address next) external onlyMinter {
        emit MinterChanged(minter, next);
        minter = next;
    }

    /// @notice Links the caller's address to a COSS username for the weekly revenue share;
    /// setting it again replaces it, zero clears it.
    function setRevenueUsername(bytes32 cossUsername) external {
        revenueDistribution[msg.sender] = cossUsername;
        emit RevenueUsernameSet(msg.sender, cossUsername);
    }
}
