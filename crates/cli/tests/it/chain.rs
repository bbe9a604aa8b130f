//! `coss chain deploy` against a real anvil that each test starts (and that dies with it).

use crate::{coss, stderr_of};
use alloy::node_bindings::AnvilInstance;
use alloy::primitives::{Address, U256};
use coss_contracts::{CossSale, CossToken, connect, foundry_tool, spawn_anvil};
use std::os::unix::fs::PermissionsExt;
use std::process::Output;

const COSS: u64 = 100_000_000;

fn deploy(anvil: &AnvilInstance, extra: &[&str]) -> Output {
    coss()
        .env_remove("COSS_RPC_URL")
        .env_remove("COSS_KEY_FILE")
        .env_remove("COSS_KEY_PASSWORD")
        .args(["chain", "deploy", "--rpc-url", &anvil.endpoint()])
        .args(extra)
        .output()
        .unwrap()
}

/// The one JSON object a successful deploy prints.
fn addresses(output: &Output) -> serde_json::Value {
    assert!(output.status.success(), "{}", stderr_of(output));
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one JSON line: {stdout}");
    serde_json::from_str(&stdout).unwrap()
}

fn address(json: &serde_json::Value, key: &str) -> Address {
    json[key]
        .as_str()
        .unwrap_or_else(|| panic!("no {key} in {json}"))
        .parse()
        .unwrap()
}

/// A failure: exit code 1 and one `error: …` line that never quotes `secret`.
fn refused(output: &Output, secret: &str) -> String {
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = stderr_of(output);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains(secret), "the secret leaked: {stderr}");
    stderr
}

fn anvil_key(anvil: &AnvilInstance, index: usize) -> String {
    alloy::hex::encode(anvil.keys()[index].to_bytes())
}

#[tokio::test]
async fn deploy_prints_one_json_object_of_addresses_of_a_working_set() {
    let anvil = spawn_anvil().unwrap();
    let json = addresses(&deploy(&anvil, &[]));
    assert_eq!(json["chain_id"], 31_337);
    assert_eq!(address(&json, "deployer"), anvil.addresses()[0]);
    for key in [
        "deployment",
        "token",
        "sale",
        "team_lock",
        "board_lock",
        "advisors_lock",
    ] {
        address(&json, key);
    }
    let chain = connect(&anvil.endpoint(), None).await.unwrap();
    let token = CossToken::new(address(&json, "token"), &chain.provider);
    assert_eq!(token.minter().call().await.unwrap(), address(&json, "sale"));
    assert_eq!(
        token.totalSupply().call().await.unwrap(),
        U256::from(45_000_000 * COSS)
    );
    assert_eq!(
        token
            .balanceOf(address(&json, "team_lock"))
            .call()
            .await
            .unwrap(),
        U256::from(30_000_000 * COSS)
    );
}

#[tokio::test]
async fn deploy_takes_the_wallet_rate_and_windows_from_flags() {
    let anvil = spawn_anvil().unwrap();
    let wallet = anvil.addresses()[9].to_string();
    let json = addresses(&deploy(
        &anvil,
        &[
            "--wallet",
            &wallet,
            "--rate",
            "2500.5",
            "--fire-swap-start",
            "2000000000",
            "--fire-swap-end",
            "2000259200",
            "--token-swap-start",
            "2002505600",
            "--token-swap-end",
            "2005011200",
        ],
    ));
    let chain = connect(&anvil.endpoint(), None).await.unwrap();
    let sale = CossSale::new(address(&json, "sale"), &chain.provider);
    assert_eq!(sale.wallet().call().await.unwrap(), anvil.addresses()[9]);
    assert_eq!(
        sale.rate().call().await.unwrap(),
        U256::from(250_050_000_000u64)
    );
    let fire = sale.phase(0).call().await.unwrap();
    assert_eq!((fire.start, fire.end), (2_000_000_000, 2_000_259_200));
    let swap = sale.phase(1).call().await.unwrap();
    assert_eq!((swap.start, swap.end), (2_002_505_600, 2_005_011_200));
    assert_eq!(json["token_swap"]["end"], 2_005_011_200u64);
}

#[test]
fn deploy_signs_with_an_encrypted_keystore_that_cast_wrote() {
    let anvil = spawn_anvil().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let password = "correct horse battery staple";
    let import = std::process::Command::new(foundry_tool("cast").unwrap())
        .args(["wallet", "import", "deployer", "--keystore-dir"])
        .arg(dir.path())
        .args([
            "--unsafe-password",
            password,
            "--private-key",
            &anvil_key(&anvil, 3),
        ])
        .output()
        .unwrap();
    assert!(import.status.success(), "{}", stderr_of(&import));
    let keystore = dir.path().join("deployer");
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, format!("{password}\n")).unwrap();

    let json = addresses(&deploy(
        &anvil,
        &[
            "--key-file",
            keystore.to_str().unwrap(),
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    ));
    assert_eq!(address(&json, "deployer"), anvil.addresses()[3]);

    std::fs::write(&password_file, "hunter2-nope\n").unwrap();
    let output = deploy(
        &anvil,
        &[
            "--key-file",
            keystore.to_str().unwrap(),
            "--password-file",
            password_file.to_str().unwrap(),
        ],
    );
    let stderr = refused(&output, "hunter2-nope");
    assert!(stderr.contains("cannot decrypt"), "{stderr}");
}

#[test]
fn deploy_signs_with_an_owner_only_hex_key_and_refuses_one_others_can_read() {
    let anvil = spawn_anvil().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let key = anvil_key(&anvil, 4);
    let file = dir.path().join("key");
    std::fs::write(&file, format!("0x{key}\n")).unwrap();

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = refused(
        &deploy(&anvil, &["--key-file", file.to_str().unwrap()]),
        &key,
    );
    assert!(stderr.contains("chmod 600"), "{stderr}");

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let json = addresses(&deploy(&anvil, &["--key-file", file.to_str().unwrap()]));
    assert_eq!(address(&json, "deployer"), anvil.addresses()[4]);
}

#[test]
fn deploy_refuses_bad_parameters_and_unreachable_nodes_with_one_line() {
    let anvil = spawn_anvil().unwrap();
    let stderr = refused(&deploy(&anvil, &["--rate", "1.123456789"]), "\u{0}");
    assert!(stderr.contains("--rate"), "{stderr}");
    let stderr = refused(
        &deploy(&anvil, &["--advisors-amount", "5000000.00000001"]),
        "\u{0}",
    );
    assert!(stderr.contains("advisory board"), "{stderr}");
    let stderr = refused(
        &deploy(
            &anvil,
            &[
                "--fire-swap-start",
                "2000000000",
                "--fire-swap-end",
                "1999999999",
            ],
        ),
        "\u{0}",
    );
    assert!(stderr.contains("window"), "{stderr}");

    let output = coss()
        .args(["chain", "deploy", "--rpc-url", "http://127.0.0.1:1"])
        .output()
        .unwrap();
    let stderr = refused(&output, "\u{0}");
    assert!(stderr.contains("cannot use the node"), "{stderr}");
}
