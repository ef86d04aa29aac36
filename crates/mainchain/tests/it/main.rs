//! Integration tests against a real `litecoind -regtest` (install: `apt-get install -y litecoind`).
//!
//! Each test starts its own node on free loopback ports. Without `litecoind` they fail, and the
//! failure names the install command: the harness never skips silently.

mod custody;
mod decoders;
mod node;
mod proofs;

use anyhow::{Context, ensure};
use bitcoin::block::Header;
use consort_mainchain::regtest::LitecoindRegtest;
use consort_mainchain::{HeaderRecord, Network, RpcClient, decode_header, verify_header};

/// Starts a node and mines 101 blocks, so the wallet has one mature coinbase (50 LTC).
async fn node_with_mature_coins() -> anyhow::Result<LitecoindRegtest> {
    let node = LitecoindRegtest::start().await?;
    let mined = node.mine(101).await?;
    ensure!(
        mined.len() == 101,
        "mined {} blocks, asked for 101",
        mined.len()
    );
    Ok(node)
}

/// Fetches the header at `height` on the node's active chain.
async fn header_at(rpc: &RpcClient, height: u32) -> anyhow::Result<Header> {
    let hash = rpc.get_block_hash(height).await?;
    let raw = rpc.get_block_header_raw(&hash).await?;
    Ok(decode_header(&raw)?)
}

/// Verifies the node's active chain from genesis to its tip; returns one record per height.
async fn verified_chain(rpc: &RpcClient, network: &Network) -> anyhow::Result<Vec<HeaderRecord>> {
    let tip = rpc.get_block_count().await?;
    let genesis = HeaderRecord::genesis(network, &header_at(rpc, 0).await?)?;
    let mut records = vec![genesis];
    for height in 1..=tip {
        let header = header_at(rpc, height).await?;
        let parent = *records.last().context("the chain starts at genesis")?;
        let record = verify_header(network, &parent, &header, &records[..])
            .with_context(|| format!("header at height {height}"))?;
        records.push(record);
    }
    Ok(records)
}
