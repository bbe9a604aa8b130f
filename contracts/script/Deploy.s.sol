// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {Script, console} from "forge-std/Script.sol";
import {CossDeployment} from "../src/CossDeployment.sol";

/// Deploys the full COSS set through `CossDeployment`. Every parameter comes from the
/// environment, with development defaults (beneficiaries and wallet default to the sender):
/// COSS_TEAM, COSS_AFFILIATES, COSS_BOARD, COSS_ADVISORS, COSS_WALLET (addresses),
/// COSS_ADVISORS_AMOUNT (COSS units, default 1,000,000 COSS), COSS_RATE (COSS units per ETH,
/// default 10,000 COSS), COSS_FIRE_START/END, COSS_SWAP_START/END (Unix seconds; default: the
/// fire-swap opens now for 3 days, the token swap 26 days later for 29 days).
contract Deploy is Script {
    function run() external returns (CossDeployment deployment) {
        address sender = msg.sender;
        uint64 fireStart = uint64(vm.envOr("COSS_FIRE_START", block.timestamp));
        uint64 fireEnd = uint64(vm.envOr("COSS_FIRE_END", uint256(fireStart) + 3 days));
        uint64 swapStart = uint64(vm.envOr("COSS_SWAP_START", uint256(fireEnd) + 26 days));
        uint64 swapEnd = uint64(vm.envOr("COSS_SWAP_END", uint256(swapStart) + 29 days));
        CossDeployment.Beneficiaries memory to = CossDeployment.Beneficiaries({
            team: vm.envOr("COSS_TEAM", sender),
            affiliates: vm.envOr("COSS_AFFILIATES", sender),
            board: vm.envOr("COSS_BOARD", sender),
            advisors: vm.envOr("COSS_ADVISORS", sender)
        });
        vm.startBroadcast();
        deployment = new CossDeployment(
            to,
            vm.envOr("COSS_ADVISORS_AMOUNT", uint256(1_000_000e8)),
            payable(vm.envOr("COSS_WALLET", sender)),
            vm.envOr("COSS_RATE", uint256(10_000e8)),
            fireStart,
            fireEnd,
            swapStart,
            swapEnd
        );
        vm.stopBroadcast();
        console.log("deployment", address(deployment));
        console.log("token", address(deployment.token()));
        console.log("sale", address(deployment.sale()));
    }
}
