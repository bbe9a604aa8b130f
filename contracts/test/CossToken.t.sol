// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Vm} from "forge-std/Vm.sol";
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
        vm.prank(admin);
        token.changeMinter(minter);
    }

    function test_is_named_COSS_with_8_decimals_and_nothing_minted() public view {
        assertEq(token.name(), "COSS");
        assertEq(token.symbol(), "COSS");
        assertEq(token.decimals(), 8);
        assertEq(token.totalSupply(), 0);
        assertEq(token.cap(), 200_000_000 * 1e8);
    }

    function test_minter_can_mint_up_to_the_cap_and_not_one_unit_more() public {
        vm.startPrank(minter);
        token.mint(alice, token.cap() - 1);
        token.mint(bob, 1);
        vm.expectRevert(abi.encodeWithSelector(CossToken.CapExceeded.selector, 1, 0));
        token.mint(bob, 1);
        vm.stopPrank();
        assertEq(token.totalSupply(), token.cap());
    }

    event MinterChanged(address indexed previous, address indexed next);

    function test_only_the_minter_mints_or_hands_minting_over() public {
        assertEq(token.minter(), minter);
        vm.startPrank(admin);
        vm.expectRevert(abi.encodeWithSelector(CossToken.NotMinter.selector, admin));
        token.mint(admin, 1);
        vm.expectRevert(abi.encodeWithSelector(CossToken.NotMinter.selector, admin));
        token.changeMinter(admin);
        vm.stopPrank();
    }

    function test_handing_minting_over_is_one_way_and_zero_ends_it() public {
        vm.expectEmit(true, true, false, false, address(token));
        emit MinterChanged(minter, alice);
        vm.prank(minter);
        token.changeMinter(alice);
        vm.prank(minter);
        vm.expectRevert(abi.encodeWithSelector(CossToken.NotMinter.selector, minter));
        token.mint(minter, 1);

        vm.prank(alice);
        token.changeMinter(address(0));
        assertEq(token.minter(), address(0));
        vm.prank(alice);
        vm.expectRevert(abi.encodeWithSelector(CossToken.NotMinter.selector, alice));
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
        // The same conditions for both: the sender's balance slot warm (just written), the
        // recipient's cold (a first transfer to a fresh account), then a second transfer with
        // both warm. The figure is the call's own gas, as the gas report counts it.
        vm.startPrank(alice);
        plain.transfer(bob, 1);
        uint256 plainFirst = vm.lastCallGas().gasTotalUsed;
        token.transfer(bob, 1);
        uint256 cossFirst = vm.lastCallGas().gasTotalUsed;
        plain.transfer(bob, 1);
        uint256 plainWarm = vm.lastCallGas().gasTotalUsed;
        token.transfer(bob, 1);
        uint256 cossWarm = vm.lastCallGas().gasTotalUsed;
        vm.stopPrank();
        assertLe(cossFirst, plainFirst);
        assertLe(cossWarm, plainWarm);
    }

    function testFuzz_mint_never_exceeds_the_cap(uint256 first, uint256 second) public {
        first = bound(first, 0, token.cap());
        vm.startPrank(minter);
        token.mint(alice, first);
        uint256 available = token.cap() - first;
        if (second > available) {
            vm.expectRevert(abi.encodeWithSelector(CossToken.CapExceeded.selector, second, available));
            token.mint(bob, second);
        } else {
            token.mint(bob, second);
        }
        vm.stopPrank();
        assertLe(token.totalSupply(), token.cap());
        assertEq(token.balanceOf(alice) + token.balanceOf(bob), token.totalSupply());
    }
}
