//! The harness, the RPC client and the header verifier against a live node.

use std::path::Path;

use anyhow::ensure;
use bitcoin::Work;
use consort_mainchain::regtest::LitecoindRegtest;

use crate::{header_at, node_with_mature_coins, verified_chain};

#[tokio::test]
async fn regtest_headers_verify_from_genesis_with_scrypt_pow() -> anyhow::Result<()> {
    let node = node_with_mature_coins().await?;
    let rpc = node.rpc();
    let network = node.network();

    let records = verified_chain(rpc, &network).await?;

    ensure!(
        records.len() == 102,
        "genesis plus 101 headers, got {}",
        records.len()
    );
    for (height, pair) in records.windows(2).enumerate() {
        ensure!(
            pair[1].chainwork > pair[0].chainwork,
            "work did not grow at {}",
            height + 1
        );
        ensure!(
            pair[1].hash == rpc.get_block_hash(pair[1].height).await?,
            "hash differs at {}",
            height + 1
        );
    }
    let tip = records.last().expect("records are not empty");
    let tip_info = rpc.get_block_header_info(&tip.hash).await?;
    ensure!(tip_info.height == 101);
    ensure!(
        Work::from_unprefixed_hex(&tip_info.chainwork)? == tip.chainwork,
        "chainwork differs from Core's"
    );
    Ok(())
}

#[tokio::test]
async fn regtest_headers_would_fail_a_sha256d_check_so_scrypt_is_required() -> anyhow::Result<()> {
    let node = node_with_mature_coins().await?;
    let mut refused_by_sha256d = 0;
    for height in 1..=101 {
        let header = header_at(node.rpc(), height).await?;
        if header.validate_pow(header.target()).is_err() {
            refused_by_sha256d += 1;
        }
    }
    // The target is ~2^255, so about half the headers miss it under sha256d; all 101 meeting it
    // by chance has probability 2^-101.
    ensure!(
        refused_by_sha256d > 0,
        "every header met the target under sha256d"
    );
    Ok(())
}

#[tokio::test]
async fn an_invalidated_block_leaves_the_active_chain() -> anyhow::Result<()> {
    let node = LitecoindRegtest::start().await?;
    let rpc = node.rpc();
    let mined = node.mine(3).await?;
    ensure!(rpc.get_best_block_hash().await? == mined[2]);

    rpc.invalidate_block(&mined[2]).await?;

    ensure!(
        rpc.get_best_block_hash().await? == mined[1],
        "tip did not go back"
    );
    ensure!(rpc.get_block_count().await? == 2);
    let info = rpc.get_blockchain_info().await?;
    ensure!(info.chain == "regtest" && info.blocks == 2 && info.best_block_hash == mined[1]);
    ensure!(
        rpc.get_block_header_info(&mined[2]).await?.confirmations == -1,
        "still confirmed"
    );
    Ok(())
}

#[tokio::test]
async fn rpc_errors_from_litecoind_carry_the_node_code() -> anyhow::Result<()> {
    let node = LitecoindRegtest::start().await?;
    let error = node
        .rpc()
        .get_block_hash(10_000)
        .await
        .expect_err("height 10000 does not exist");
    // RPC_INVALID_PARAMETER: "Block height out of range".
    ensure!(error.rpc_code() == Some(-8), "{error}");
    let error = node
        .rpc()
        .create_wallet(node.wallet_name())
        .await
        .expect_err("wallet exists");
    // RPC_WALLET_ERROR.
    ensure!(error.rpc_code() == Some(-4), "{error}");
    Ok(())
}

#[tokio::test]
async fn dropping_the_harness_stops_litecoind_by_its_pid() -> anyhow::Result<()> {
    let node = LitecoindRegtest::start().await?;
    let pid = node.pid();
    let datadir = node.datadir().to_owned();
    ensure!(
        Path::new(&format!("/proc/{pid}")).exists(),
        "node not running"
    );

    drop(node);

    // Reaped, so the pid is gone (and not reused this quickly); the datadir is removed.
    ensure!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "litecoind {pid} still running"
    );
    ensure!(
        !datadir.exists(),
        "datadir {} left behind",
        datadir.display()
    );
    Ok(())
}
