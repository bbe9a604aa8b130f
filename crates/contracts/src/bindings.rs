//! Typed bindings generated from the committed artifacts (ABI, creation and runtime bytecode).
//! Regenerate the artifacts with `make artifacts` after changing a contract.
#![allow(
    missing_docs,
    missing_debug_implementations,
    clippy::too_many_arguments
)]

use alloy::sol;

sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    CossToken,
    "../../contracts/artifacts/CossToken.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    CossSale,
    "../../contracts/artifacts/CossSale.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    TokenLock,
    "../../contracts/artifacts/TokenLock.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    CossDeployment,
    "../../contracts/artifacts/CossDeployment.json"
);

sol!(
    #[sol(rpc)]
    #[derive(Debug, PartialEq, Eq)]
    TestUsd,
    "../../contracts/artifacts/TestUsd.json"
);
