// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {CossToken} from "../src/CossToken.sol";
import {CossSale} from "../src/CossSale.sol";

/// A wallet that tries to buy again while receiving the raised ETH.
contract ReenteringWallet {
    CossSale public sale;

    function setSale(CossSale sale_) external {
        sale = sale_;
    }

    receive() external payable {
        sale.buy{value: 1 ether}(bytes32("again"));
    }
}

contract CossSaleTest is Test {
    CossToken token;
    CossSale sale;
    address payable wallet = payable(makeAddr("wallet"));
    address alice = makeAddr("alice");
    address bob = makeAddr("bob");
    // 1 ETH buys 10,000 COSS before any bonus.
    uint256 constant RATE = 10_000e8;
    uint64 constant FIRE_START = 1_000_000;
    uint64 constant FIRE_END = FIRE_START + 3 days;
    uint64 constant SWAP_START = FIRE_END + 26 days;
    uint64 constant SWAP_END = SWAP_START + 29 days;

    event Purchased(address indexed buyer, uint8 indexed phase, bytes32 username, uint256 weiPaid, uint256 tokens);

    function setUp() public {
        token = new CossToken(address(this));
        sale = new CossSale(token, wallet, RATE, fireSwap(), tokenSwap());
        token.changeMinter(address(sale));
        vm.deal(alice, 1_000_000 ether);
        vm.deal(bob, 1_000_000 ether);
    }

    function fireSwap() internal pure returns (CossSale.Phase memory) {
        return CossSale.Phase({start: FIRE_START, end: FIRE_END, cap: 25_000_000e8, minWei: 50 ether, bonusBps: 2_500});
    }

    function tokenSwap() internal pure returns (CossSale.Phase memory) {
        return CossSale.Phase({start: SWAP_START, end: SWAP_END, cap: 130_000_000e8, minWei: 0.001 ether, bonusBps: 0});
    }

    function test_nothing_sells_outside_the_windows() public {
        uint64[4] memory closed = [FIRE_START - 1, FIRE_END, SWAP_START - 1, SWAP_END];
        for (uint256 i = 0; i < closed.length; i++) {
            vm.warp(closed[i]);
            vm.expectRevert(CossSale.SaleClosed.selector);
            vm.prank(alice);
            sale.buy{value: 100 ether}(bytes32(0));
        }
        assertEq(token.totalSupply(), 0);
    }

    function test_fire_swap_adds_a_25_percent_bonus_and_records_buyer_and_username() public {
        vm.warp(FIRE_START);
        vm.expectEmit(true, true, false, true, address(sale));
        emit Purchased(alice, 0, bytes32("alice"), 50 ether, 625_000e8);
        vm.prank(alice);
        sale.buy{value: 50 ether}(bytes32("alice"));
        assertEq(token.balanceOf(alice), 625_000e8);
        assertEq(sale.sold(0), 625_000e8);
    }

    function test_fire_swap_needs_at_least_50_eth() public {
        vm.warp(FIRE_START);
        vm.expectRevert(abi.encodeWithSelector(CossSale.BelowMinimum.selector, 50 ether - 1, 50 ether));
        vm.prank(alice);
        sale.buy{value: 50 ether - 1}(bytes32(0));
    }

    function test_token_swap_sells_from_0_001_eth_without_bonus() public {
        vm.warp(SWAP_START);
        vm.prank(bob);
        sale.buy{value: 0.001 ether}(bytes32(0));
        assertEq(token.balanceOf(bob), 10e8);
        vm.expectRevert(abi.encodeWithSelector(CossSale.BelowMinimum.selector, 0.001 ether - 1, 0.001 ether));
        vm.prank(bob);
        sale.buy{value: 0.001 ether - 1}(bytes32(0));
    }

    function test_a_purchase_past_the_cap_is_rejected_and_the_cap_can_be_filled_exactly() public {
        vm.warp(FIRE_START);
        // 2,000 ETH × 12,500 COSS = 25,000,000 COSS: exactly the fire-swap cap.
        vm.prank(alice);
        sale.buy{value: 1_999 ether}(bytes32(0));
        uint256 available = 25_000_000e8 - sale.sold(0);
        vm.expectRevert(abi.encodeWithSelector(CossSale.CapExceeded.selector, 625_000e8, available));
        vm.prank(bob);
        sale.buy{value: 50 ether}(bytes32(0));
        vm.warp(FIRE_END - 1);
        vm.prank(bob);
        vm.expectRevert(abi.encodeWithSelector(CossSale.BelowMinimum.selector, 1 ether, 50 ether));
        sale.buy{value: 1 ether}(bytes32(0));
        assertEq(sale.sold(0), 1_999 * 12_500e8);
        assertEq(token.totalSupply(), sale.sold(0));
    }

    function test_raised_eth_is_withdrawn_to_the_wallet() public {
        vm.warp(SWAP_START);
        vm.prank(alice);
        sale.buy{value: 3 ether}(bytes32(0));
        sale.withdraw();
        assertEq(wallet.balance, 3 ether);
        assertEq(address(sale).balance, 0);
    }

    function test_a_wallet_that_reenters_cannot_buy_during_withdrawal() public {
        ReenteringWallet evil = new ReenteringWallet();
        CossToken own = new CossToken(address(this));
        CossSale guarded = new CossSale(own, payable(address(evil)), RATE, fireSwap(), tokenSwap());
        evil.setSale(guarded);
        own.changeMinter(address(guarded));
        vm.deal(address(guarded), 0);
        vm.warp(SWAP_START);
        vm.prank(alice);
        guarded.buy{value: 2 ether}(bytes32(0));
        vm.deal(address(evil), 1 ether);
        vm.expectRevert();
        guarded.withdraw();
        assertEq(address(guarded).balance, 2 ether);
        assertEq(guarded.sold(1), 20_000e8);
    }

    function testFuzz_rounding_never_creates_tokens_from_nothing(uint96 weiPaid, bool fire) public view {
        uint8 phase = fire ? 0 : 1;
        uint256 tokens = sale.quote(phase, weiPaid);
        uint256 bonus = fire ? 2_500 : 0;
        // tokens ≤ wei × rate × (1 + bonus) / 1e18, compared without any division.
        assertLe(tokens * 1e18 * 10_000, uint256(weiPaid) * RATE * (10_000 + bonus));
    }

    function testFuzz_supply_is_what_was_sold_and_never_past_a_cap(uint256 first, uint256 second) public {
        vm.warp(SWAP_START);
        first = bound(first, 0.001 ether, 12_000 ether);
        second = bound(second, 0.001 ether, 20_000 ether);
        vm.prank(alice);
        sale.buy{value: first}(bytes32(0));
        uint256 tokens = sale.quote(1, second);
        uint256 available = 130_000_000e8 - sale.sold(1);
        vm.prank(bob);
        if (tokens > available) {
            vm.expectRevert(abi.encodeWithSelector(CossSale.CapExceeded.selector, tokens, available));
        }
        sale.buy{value: second}(bytes32(0));
        assertLe(sale.sold(1), 130_000_000e8);
        assertEq(token.totalSupply(), sale.sold(0) + sale.sold(1));
        assertEq(token.balanceOf(alice) + token.balanceOf(bob), token.totalSupply());
    }
}
