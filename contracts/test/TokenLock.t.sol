// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {CossToken} from "../src/CossToken.sol";
import {TokenLock} from "../src/TokenLock.sol";

contract TokenLockTest is Test {
    CossToken token;
    TokenLock lock;
    address beneficiary = makeAddr("beneficiary");
    uint256 constant LOCKED = 30_000_000e8;
    uint256 releaseTime;

    function setUp() public {
        vm.warp(1_700_000_000);
        token = new CossToken(address(this));
        releaseTime = block.timestamp + 180 days;
        lock = new TokenLock(IERC20(address(token)), beneficiary, releaseTime);
        token.mint(address(lock), LOCKED);
    }

    function test_release_is_refused_until_the_lock_ends() public {
        vm.warp(releaseTime - 1);
        vm.expectRevert(abi.encodeWithSelector(TokenLock.StillLocked.selector, releaseTime, releaseTime - 1));
        lock.release();
        assertEq(token.balanceOf(beneficiary), 0);
        assertEq(token.balanceOf(address(lock)), LOCKED);
    }

    function test_after_the_lock_anyone_releases_everything_to_the_beneficiary() public {
        vm.warp(releaseTime);
        vm.prank(makeAddr("anyone"));
        lock.release();
        assertEq(token.balanceOf(beneficiary), LOCKED);
        assertEq(token.balanceOf(address(lock)), 0);
        vm.expectRevert(TokenLock.NothingToRelease.selector);
        lock.release();
    }

    function test_a_zero_beneficiary_is_refused() public {
        vm.expectRevert(TokenLock.ZeroBeneficiary.selector);
        new TokenLock(IERC20(address(token)), address(0), releaseTime);
    }

    function testFuzz_locked_tokens_are_unreachable_before_their_time(uint256 when) public {
        when = bound(when, 0, releaseTime - 1);
        vm.warp(when);
        vm.expectRevert(abi.encodeWithSelector(TokenLock.StillLocked.selector, releaseTime, when));
        lock.release();
        assertEq(token.balanceOf(address(lock)), LOCKED);
    }
}
