// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test} from "forge-std/Test.sol";
import {CossToken} from "../src/CossToken.sol";
import {CossSale} from "../src/CossSale.sol";

/// Drives the sale with random purchases at random times; failed purchases are fine.
contract SaleHandler is Test {
    CossSale public sale;
    address[3] public buyers = [address(0xA11CE), address(0xB0B), address(0xCA11)];

    constructor(CossSale sale_) {
        sale = sale_;
    }

    function buy(uint256 who, uint256 weiPaid, uint256 when) external {
        address buyer = buyers[who % buyers.length];
        weiPaid = bound(weiPaid, 0, 30_000 ether);
        vm.warp(bound(when, 0, 10_000_000));
        vm.deal(buyer, weiPaid);
        vm.prank(buyer);
        try sale.buy{value: weiPaid}(bytes32(0)) {} catch {}
    }
}

contract SaleInvariantsTest is Test {
    CossToken token;
    CossSale sale;
    SaleHandler handler;

    function setUp() public {
        token = new CossToken(address(this));
        CossSale.Phase memory fire =
            CossSale.Phase({start: 1_000_000, end: 1_259_200, cap: 25_000_000e8, minWei: 50 ether, bonusBps: 2_500});
        CossSale.Phase memory swap =
            CossSale.Phase({start: 3_505_600, end: 6_011_200, cap: 130_000_000e8, minWei: 0.001 ether, bonusBps: 0});
        sale = new CossSale(token, payable(makeAddr("wallet")), 10_000e8, fire, swap);
        token.changeMinter(address(sale));
        handler = new SaleHandler(sale);
        targetContract(address(handler));
    }

    function invariant_supply_never_exceeds_the_cap() public view {
        assertLe(token.totalSupply(), token.cap());
        assertLe(sale.sold(0), 25_000_000e8);
        assertLe(sale.sold(1), 130_000_000e8);
    }

    function invariant_supply_is_exactly_what_was_sold_and_held() public view {
        assertEq(token.totalSupply(), sale.sold(0) + sale.sold(1));
        uint256 held;
        for (uint256 i = 0; i < 3; i++) {
            held += token.balanceOf(handler.buyers(i));
        }
        assertEq(held, token.totalSupply());
    }
}
