//! Transaction-inclusion proofs from a live node.

use anyhow::{Context, ensure};
use bitcoin::consensus::encode;
use bitcoin::{Amount, Transaction};
use consort_mainchain::{MerkleProofError, verify_tx_out_proof};

use crate::{node_with_mature_coins, verified_chain};

#[tokio::test]
async fn regtest_payment_is_proven_by_gettxoutproof_and_a_forged_proof_is_refused()
-> anyhow::Result<()> {
    let node = node_with_mature_coins().await?;
    let rpc = node.rpc();
    let address = rpc.get_new_address("", Some("bech32")).await?;
    let txid = rpc
        .send_to_address(&address, Amount::from_sat(150_000_000))
        .await?;
    let mined = node.mine(1).await?;

    let records = verified_chain(rpc, &node.network()).await?;
    let block = records.last().context("chain is not empty")?;
    ensure!(block.height == 102 && block.hash == mined[0]);
    let proof = rpc.get_tx_out_proof(&[txid], None).await?;

    let inclusion = verify_tx_out_proof(&proof, block.hash, txid)?;
    ensure!(
        inclusion.index == 1 && inclusion.total_transactions == 2,
        "{inclusion:?}"
    );

    // Header (80) + nTx (4) + hash count (1): byte 85 starts the coinbase's hash.
    let mut forged = proof.clone();
    forged[85] ^= 0x01;
    let result = verify_tx_out_proof(&forged, block.hash, txid);
    ensure!(result == Err(MerkleProofError::RootMismatch), "{result:?}");
    let mut forged = proof.clone();
    forged[0] ^= 0x01;
    let result = verify_tx_out_proof(&forged, block.hash, txid);
    ensure!(
        matches!(result, Err(MerkleProofError::BlockMismatch { .. })),
        "{result:?}"
    );
    let parent = records[101].hash;
    let result = verify_tx_out_proof(&proof, parent, txid);
    ensure!(
        matches!(result, Err(MerkleProofError::BlockMismatch { .. })),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_raw_transaction_round_trips_and_rebroadcast_after_mining_is_refused()
-> anyhow::Result<()> {
    let node = node_with_mature_coins().await?;
    let rpc = node.rpc();
    let address = rpc.get_new_address("", Some("bech32")).await?;
    let txid = rpc
        .send_to_address(&address, Amount::from_sat(25_000_000))
        .await?;

    let raw = rpc.get_raw_transaction(&txid, None).await?;
    let transaction: Transaction = encode::deserialize(&raw)?;
    ensure!(
        transaction.compute_txid() == txid,
        "txid differs from the node's"
    );
    // Already in the mempool: accepted again, same txid.
    ensure!(rpc.send_raw_transaction(&raw).await? == txid);

    let mined = node.mine(1).await?;
    let in_block = rpc.get_raw_transaction(&txid, Some(&mined[0])).await?;
    ensure!(in_block == raw);
    let error = rpc
        .send_raw_transaction(&raw)
        .await
        .expect_err("already confirmed");
    // RPC_VERIFY_ALREADY_IN_CHAIN.
    ensure!(error.rpc_code() == Some(-27), "{error}");
    Ok(())
}
