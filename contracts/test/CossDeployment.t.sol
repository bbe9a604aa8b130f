// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {CossToken} from "../src/CossToken.sol";
import {CossSale} from "../src/CossSale.sol";
import {CossDeployment} from "../src/CossDeployment.sol";
import {TokenLock} from "../src/TokenLock.sol";

contract CossDeploymentTest is Test {
    CossDeployment d;
    CossDeployment.Beneficiaries to;
    address payable wallet = payable(makeAddr("wallet"));
    uint64 constant FIRE_START = 2_000_000;

    function setUp() public {
        vm.warp(1_000_000);
        to = CossDeployment.Beneficiaries({
            team: makeAddr("team"),
            affiliates: makeAddr("affiliates"),
            board: makeAddr("board"),
            advisors: makeAddr("advisors")
        });
        d = new CossDeployment(
            to, 1_000_000e8, wallet, 10_000e8, FIRE_START, FIRE_START + 3 days, FIRE_START + 29 days, FIRE_START + 58 days
        );
    }

    function test_allocations_plus_sale_caps_are_exactly_200_million() public view {
        CossToken token = d.token();
        assertEq(token.totalSupply(), 45_000_000e8);
        assertEq(token.balanceOf(address(d.teamLock())), 30_000_000e8);
        assertEq(token.balanceOf(to.affiliates), 10_000_000e8);
        assertEq(token.balanceOf(address(d.boardLock())), 4_000_000e8);
        assertEq(token.balanceOf(address(d.advisorsLock())), 1_000_000e8);
        CossSale sale = d.sale();
        assertEq(token.totalSupply() + sale.phase(0).cap + sale.phase(1).cap, token.cap());
    }

    function test_the_sale_is_the_only_minter_and_the_deployment_keeps_no_power() public {
        CossToken token = d.token();
        assertEq(token.minter(), address(d.sale()));
        vm.prank(address(d));
        vm.expectRevert(abi.encodeWithSelector(CossToken.NotMinter.selector, address(d)));
        token.mint(address(d), 1);
        vm.prank(address(d));
        vm.expectRevert(abi.encodeWithSelector(CossToken.NotMinter.selector, address(d)));
        token.changeMinter(address(d));
    }

    function test_locks_end_after_180_and_90_days() public view {
        assertEq(d.teamLock().releaseTime(), 1_000_000 + 180 days);
        assertEq(d.boardLock().releaseTime(), 1_000_000 + 180 days);
        assertEq(d.advisorsLock().releaseTime(), 1_000_000 + 90 days);
        assertEq(d.advisorsLock().beneficiary(), to.advisors);
    }

    function test_advisors_release_after_90_days_while_the_team_still_waits() public {
        vm.warp(1_000_000 + 90 days);
        d.advisorsLock().release();
        assertEq(d.token().balanceOf(to.advisors), 1_000_000e8);
        TokenLock team = d.teamLock();
        vm.expectRevert(abi.encodeWithSelector(TokenLock.StillLocked.selector, 1_000_000 + 180 days, block.timestamp));
        team.release();
    }

    function test_a_split_above_five_million_is_refused() public {
        vm.expectRevert(CossDeployment.InvalidSplit.selector);
        new CossDeployment(to, 5_000_001e8, wallet, 1, 10, 20, 30, 40);
    }
}
