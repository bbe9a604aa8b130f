// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {TestUsd} from "../src/TestUsd.sol";

contract TestUsdTest is Test {
    TestUsd internal usd;

    function setUp() public {
        usd = new TestUsd();
    }

    function test_has_six_decimals_and_a_name() public view {
        assertEq(usd.decimals(), 6);
        assertEq(usd.symbol(), "tUSD");
    }

    function test_the_issuer_mints() public {
        usd.mint(address(0xBEEF), 5_000_000);
        assertEq(usd.balanceOf(address(0xBEEF)), 5_000_000);
        assertEq(usd.totalSupply(), 5_000_000);
    }

    function test_nobody_else_mints() public {
        vm.prank(address(0xBAD));
        vm.expectRevert(TestUsd.NotIssuer.selector);
        usd.mint(address(0xBAD), 1);
    }
}
