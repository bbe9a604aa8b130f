// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Test, console} from "forge-std/Test.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {TestUsd} from "../src/TestUsd.sol";

/// @notice The alternative the gateway did not choose, built only to measure it: one payment
/// contract that forwards each payment to the hot wallet and logs the invoice it pays. ETH is
/// paid with a call carrying the invoice id; a token needs the payer to approve first.
contract InvoicePay {
    using SafeERC20 for IERC20;

    address public immutable hot;

    event Paid(bytes32 indexed invoice, address indexed payer, address token, uint256 amount);

    error ForwardFailed();

    constructor(address hot_) {
        hot = hot_;
    }

    function pay(bytes32 invoice) external payable {
        (bool ok,) = hot.call{value: msg.value}("");
        if (!ok) revert ForwardFailed();
        emit Paid(invoice, msg.sender, address(0), msg.value);
    }

    function payToken(IERC20 token, bytes32 invoice, uint256 amount) external {
        token.safeTransferFrom(msg.sender, hot, amount);
        emit Paid(invoice, msg.sender, address(token), amount);
    }
}

/// @notice Gas per payment of the two receiving schemes, whole transactions (21,000 base and
/// calldata included), logged for the README: the per-invoice address (what the gateway
/// uses: the payer's plain transfer, then the platform's sweep) against the payment contract
/// (no sweep, but a contract call, and for a token an approval first).
contract ReceivingSchemesTest is Test {
    uint256 internal constant BASE = 21_000;

    TestUsd internal usd;
    InvoicePay internal gateway;
    address internal payer = address(0xA11CE);
    address internal hot = address(0x4071);

    function setUp() public {
        usd = new TestUsd();
        gateway = new InvoicePay(hot);
        vm.deal(payer, 10 ether);
        usd.mint(payer, 1_000_000_000);
        // The hot wallet exists and already holds tokens, as it does in real life.
        vm.deal(hot, 1 ether);
        usd.mint(hot, 1);
    }

    /// Calldata cost (EIP-2028): 16 per non-zero byte, 4 per zero byte.
    function calldataGas(bytes memory data) internal pure returns (uint256 gas) {
        for (uint256 i = 0; i < data.length; i++) {
            gas += data[i] == 0 ? 4 : 16;
        }
    }

    /// A whole transaction's gas: base, calldata and what the call used.
    function txGas(address to, uint256 value, bytes memory data) internal returns (uint256) {
        // A transaction's own `to` is warm (EIP-2929): warm it here too (its code size only,
        // no storage), so the call is measured as a transaction would pay it.
        assertGt(to.code.length, 0);
        vm.prank(payer);
        uint256 before = gasleft();
        (bool ok,) = to.call{value: value}(data);
        uint256 used = before - gasleft();
        assertTrue(ok);
        return BASE + calldataGas(data) + used;
    }

    function test_gas_per_payment_of_both_schemes() public {
        bytes32 invoice = keccak256("inv_1");
        // Per-invoice address: a plain transfer in, then the sweep out (measured on anvil by
        // `coss bench gateway`: 21,000 each for ETH; 51,599 + 55,499 for a token).
        uint256 contractEth = txGas(address(gateway), 0.01 ether, abi.encodeCall(InvoicePay.pay, (invoice)));
        uint256 approve = txGas(address(usd), 0, abi.encodeCall(IERC20.approve, (address(gateway), 25_000_000)));
        uint256 contractToken =
            txGas(address(gateway), 0, abi.encodeCall(InvoicePay.payToken, (IERC20(address(usd)), invoice, 25_000_000)));
        console.log("payment contract, ETH: payer", contractEth, "platform", uint256(0));
        console.log("payment contract, token: payer approve", approve, "+ payToken", contractToken);
        assertEq(hot.balance, 1.01 ether);
        assertEq(usd.balanceOf(hot), 25_000_001);
        // Both schemes cost the same order of gas in total; the contract moves the cost to the
        // payer and takes two transactions for a token.
        assertGt(contractEth, BASE);
        assertGt(approve + contractToken, 51_599);
    }
}
