// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {CossToken} from "../src/CossToken.sol";

/// A plain OpenZeppelin ERC-20, the yardstick for transfer gas.
contract PlainToken is ERC20 {
    constructor(address holder, uint256 amount) ERC20("PLAIN", "PLAIN") {
        _mint(holder, amount);
    }
}

contract CossTokenTest is Test {
    CossToken token;
    address admin = makeAddr("admin");
    address minter = makeAddr("minter");
    address alice = makeAddr("alice");
    address bob = makeAddr("bob");

    event RevenueUsernameSet(address indexed holder, bytes32 username);

    function setUp() public {
        token = new CossToken(admin);
        bytes32 role = token.MINTER_ROLE();
        vm.prank(admin);
        token.grantRole(role, minter);
    }

    function test_is_named_COSS_with_8_decimals_and_nothing_minted() public view {
        assertEq(token.name(), "COSS");
        assertEq(token.symbol(), "COSS");
        assertEq(token.decimals(), 8);
        assertEq(token.totalSupply(), 0);
        assertEq(token.CAP(), 200_000_000 * 1e8);
    }

    function test_minter_can_mint_up_to_the_cap_and_not_one_unit_more() public {
        vm.startPrank(minter);
        token.mint(alice, token.CAP() - 1);
        token.mint(bob, 1);
        vm.expectRevert(abi.encodeWithSelector(CossToken.CapExceeded.selector, 1, 0));
        token.mint(bob, 1);
        vm.stopPrank();
        assertEq(token.totalSupply(), token.CAP());
    }

    function test_only_minters_mint() public {
        bytes32 role = token.MINTER_ROLE();
        vm.expectRevert(
            abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, alice, role)
        );
        vm.prank(alice);
        token.mint(alice, 1);
    }

    function test_revenue_username_is_set_replaced_and_cleared_with_events() public {
        bytes32 first = bytes32("alice");
        bytes32 second = bytes32("alice-2");
        vm.expectEmit(true, false, false, true, address(token));
        emit RevenueUsernameSet(alice, first);
        vm.prank(alice);
        token.setRevenueUsername(first);
        assertEq(token.revenueDistribution(alice), first);

        vm.prank(alice);
        token.setRevenueUsername(second);
        assertEq(token.revenueDistribution(alice), second);

        vm.expectEmit(true, false, false, true, address(token));
        emit RevenueUsernameSet(alice, bytes32(0));
        vm.prank(alice);
        token.setRevenueUsername(bytes32(0));
        assertEq(token.revenueDistribution(alice), bytes32(0));
        assertEq(token.revenueDistribution(bob), bytes32(0));
    }

    function test_transfers_and_allowances_follow_erc20() public {
        vm.prank(minter);
        token.mint(alice, 100e8);
        vm.prank(alice);
        assertTrue(token.transfer(bob, 40e8));
        vm.prank(alice);
        token.approve(bob, 10e8);
        vm.prank(bob);
        assertTrue(token.transferFrom(alice, bob, 10e8));
        assertEq(token.balanceOf(alice), 50e8);
        assertEq(token.balanceOf(bob), 50e8);
        assertEq(token.allowance(alice, bob), 0);
    }

    function test_transfer_gas_does_not_exceed_a_plain_openzeppelin_erc20() public {
        PlainToken plain = new PlainToken(alice, 100e8);
        vm.prank(minter);
        token.mint(alice, 100e8);
        // Warm both recipients the same way: first transfers to a fresh account.
        vm.startPrank(alice);
        uint256 before = gasleft();
        plain.transfer(bob, 1);
        uint256 plainGas = before - gasleft();
        before = gasleft();
        token.transfer(bob, 1);
        uint256 cossGas = before - gasleft();
        vm.stopPrank();
        assertLe(cossGas, plainGas);
    }

    function testFuzz_mint_never_exceeds_the_cap(uint256 first, uint256 second) public {
        first = bound(first, 0, token.CAP());
        vm.startPrank(minter);
        token.mint(alice, first);
        uint256 available = token.CAP() - first;
        if (second > available) {
            vm.expectRevert(abi.encodeWithSelector(CossToken.CapExceeded.selector, second, available));
            token.mint(bob, second);
        } else {
            token.mint(bob, second);
        }
        vm.stopPrank();
        assertLe(token.totalSupply(), token.CAP());
        assertEq(token.balanceOf(alice) + token.balanceOf(bob), token.totalSupply());
    }
}
