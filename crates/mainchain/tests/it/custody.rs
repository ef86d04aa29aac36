//! Federation custody against a live node: deposits to per-account addresses, m-of-n spends,
//! the recovery branch's timelock, before and after Litecoin's MWEB activation.
//!
//! The node runs with `-rpcserialversion=0`, so full blocks after MWEB activation (and the HogEx
//! transaction) come back in the legacy serialization rust-bitcoin decodes.

use anyhow::{Context, ensure};
use bitcoin::consensus::encode;
use bitcoin::{Amount, Block, FeeRate, ScriptBuf, Transaction, Txid};
use consort_mainchain::regtest::{LitecoindRegtest, MWEB_ACTIVATION_HEIGHT, RegtestOptions};
use consort_mainchain::{
    Custody, DepositAccount, DepositIndex, Federation, PartialSignatures, Payment, Recovery,
    RpcClient, SigningKey, SpendBranch, SpendError, SpendParams, UnsignedSpend, Utxo, build_spend,
    build_sweep, custody_witness, is_hogex, quote_fee, script_pubkey_for_address,
};
use serde_json::Value;

/// The fee rate of every spend here, 10 sat/vB.
const FEE_RATE_SAT_PER_VB: u64 = 10;
/// Blocks before the recovery keys may spend.
const RECOVERY_DELAY_BLOCKS: u16 = 10;

/// Four validators (3 of 4 sign) and three recovery holders (2 of 3 sign).
struct Custodians {
    validators: Vec<SigningKey>,
    recovery: Vec<SigningKey>,
    federation: Federation,
}

fn custodians() -> anyhow::Result<Custodians> {
    let keys = |seeds: std::ops::RangeInclusive<u8>| -> anyhow::Result<Vec<SigningKey>> {
        seeds
            .map(|seed| SigningKey::from_secret_bytes(&[seed; 32]).context("valid secret"))
            .collect()
    };
    let validators = keys(11..=14)?;
    let recovery = keys(21..=23)?;
    let recovery_set = Recovery::new(
        recovery.iter().map(SigningKey::public_key).collect(),
        2,
        RECOVERY_DELAY_BLOCKS,
    )?;
    let federation = Federation::new(
        validators.iter().map(SigningKey::public_key).collect(),
        recovery_set,
    )?;
    ensure!(federation.threshold() == 3);
    Ok(Custodians {
        validators,
        recovery,
        federation,
    })
}

async fn start_node() -> anyhow::Result<LitecoindRegtest> {
    let options = RegtestOptions {
        extra_args: vec!["-rpcserialversion=0".into()],
        ..RegtestOptions::default()
    };
    Ok(LitecoindRegtest::start_with(options).await?)
}

async fn params(rpc: &RpcClient) -> anyhow::Result<SpendParams> {
    Ok(SpendParams {
        network: consort_mainchain::Network::LITECOIN_REGTEST,
        fee_rate: FeeRate::from_sat_per_vb(FEE_RATE_SAT_PER_VB).context("small rate")?,
        next_block_height: rpc.get_block_count().await? + 1,
    })
}

/// The tip block, decoded.
async fn tip_block(rpc: &RpcClient) -> anyhow::Result<(Block, u32)> {
    let hash = rpc.get_best_block_hash().await?;
    let block: Block = encode::deserialize(&rpc.get_block_raw(&hash).await?)?;
    Ok((block, rpc.get_block_count().await?))
}

/// Pays `amount` from the node's wallet to `account`'s deposit address, mines it, and finds
/// the deposit by scanning the block, as a validator would.
async fn deposit(
    node: &LitecoindRegtest,
    federation: &Federation,
    account: DepositAccount,
    amount: Amount,
) -> anyhow::Result<Utxo> {
    let address = federation.deposit_address(&node.network(), account);
    let txid = node.wallet_rpc()?.send_to_address(&address, amount).await?;
    node.mine(1).await?;
    let utxo = find_deposit(node.rpc(), federation, account).await?;
    ensure!(utxo.outpoint.txid == txid, "found {utxo:?}, paid in {txid}");
    Ok(utxo)
}

async fn find_deposit(
    rpc: &RpcClient,
    federation: &Federation,
    account: DepositAccount,
) -> anyhow::Result<Utxo> {
    let (block, height) = tip_block(rpc).await?;
    let found = DepositIndex::new(federation, [account]).scan_block(&block, height);
    ensure!(found.len() == 1, "expected one deposit, found {found:?}");
    let utxo = found[0].clone();
    ensure!(utxo.custody == Custody::Deposit(account) && utxo.height == height);
    // The node agrees that the output is unspent, with that value and our script.
    let on_chain = rpc
        .get_tx_out(&utxo.outpoint.txid, utxo.outpoint.vout, false)
        .await?
        .context("deposit output is unspent")?;
    ensure!(on_chain.value == utxo.value);
    let expected = federation.script_pubkey(&utxo.custody);
    ensure!(on_chain.script_pubkey.hex == hex::encode(expected.as_bytes()));
    Ok(utxo)
}

/// A fresh wallet address and its output script.
async fn recipient(node: &LitecoindRegtest) -> anyhow::Result<(String, ScriptBuf)> {
    let address = node
        .wallet_rpc()?
        .get_new_address("", Some("bech32"))
        .await?;
    let script = script_pubkey_for_address(&node.network(), &address)?;
    Ok((address, script))
}

fn sign(
    spend: &UnsignedSpend,
    keys: &[SigningKey],
    signers: &[usize],
) -> anyhow::Result<Vec<PartialSignatures>> {
    let mut partials = Vec::new();
    for index in signers {
        let partial = spend.sign(&keys[*index])?;
        spend.verify(&partial)?;
        partials.push(partial);
    }
    Ok(partials)
}

/// The spend with a hand-built witness from `partials` (in the order given): what a broken
/// assembler would broadcast.
fn with_witness(spend: &UnsignedSpend, partials: &[&PartialSignatures]) -> Transaction {
    let mut transaction = spend.transaction().clone();
    for (index, input) in transaction.input.iter_mut().enumerate() {
        let signatures: Vec<_> = partials
            .iter()
            .map(|partial| partial.signatures[index])
            .collect();
        input.witness = custody_witness(spend.branch(), &signatures, &spend.inputs()[index].1);
    }
    transaction
}

/// `testmempoolaccept`'s verdict on `transaction`: `Ok(vsize)` or `Err(reason)`.
async fn verdict(
    rpc: &RpcClient,
    transaction: &Transaction,
) -> anyhow::Result<Result<u64, String>> {
    let answer = rpc
        .test_mempool_accept(&encode::serialize(transaction))
        .await?;
    Ok(if answer.allowed {
        Ok(answer
            .vsize
            .context("an accepted transaction has a vsize")?)
    } else {
        Err(answer.reject_reason.unwrap_or_default())
    })
}

/// Broadcasts, mines one block, and returns the txid.
async fn broadcast(node: &LitecoindRegtest, transaction: &Transaction) -> anyhow::Result<Txid> {
    let txid = node
        .rpc()
        .send_raw_transaction(&encode::serialize(transaction))
        .await?;
    ensure!(txid == transaction.compute_txid());
    node.mine(1).await?;
    Ok(txid)
}

async fn output_value(rpc: &RpcClient, txid: &Txid, vout: u32) -> anyhow::Result<Amount> {
    let output = rpc
        .get_tx_out(txid, vout, false)
        .await?
        .with_context(|| format!("{txid}:{vout} is unspent"))?;
    ensure!(output.confirmations == 1);
    Ok(output.value)
}

/// Litecoin Core 0.21 reports every witness script failure as
/// `non-mandatory-script-verify-flag (<script error>)` (its mandatory flags are P2SH only).
fn is_script_failure(reason: &str) -> bool {
    reason.contains("script-verify-flag")
}

async fn softfork_active(rpc: &RpcClient, name: &str) -> anyhow::Result<bool> {
    let info: Value = rpc.call("getblockchaininfo", vec![]).await?;
    Ok(info["softforks"][name]["active"] == Value::Bool(true))
}

/// Pays `requested − quote` to a new wallet address from `utxos` with `signers`; checks the
/// recipient received exactly that and returns the spend and its txid.
async fn pay_out(
    node: &LitecoindRegtest,
    custodians: &Custodians,
    utxos: &[Utxo],
    requested: Amount,
    signers: &[usize],
) -> anyhow::Result<(UnsignedSpend, Txid)> {
    let rpc = node.rpc();
    let federation = &custodians.federation;
    let params = params(rpc).await?;
    let (_, destination) = recipient(node).await?;
    let quote = quote_fee(federation, &params, &destination)?;
    let payment = Payment {
        script_pubkey: destination,
        value: requested - quote,
    };
    let spend = build_spend(federation, &params, utxos, &[payment])?;
    let partials = sign(&spend, &custodians.validators, signers)?;
    let signed = spend.assemble(&partials)?;
    let vsize = verdict(rpc, &signed).await?.map_err(anyhow::Error::msg)?;
    ensure!(
        vsize <= spend.vsize_max(),
        "vsize {vsize} above the estimate"
    );
    let txid = broadcast(node, &signed).await?;
    ensure!(output_value(rpc, &txid, 0).await? == requested - quote);
    Ok((spend, txid))
}

#[tokio::test]
async fn a_deposit_before_mweb_is_paid_out_by_three_of_four_validators_with_one_down()
-> anyhow::Result<()> {
    let node = start_node().await?;
    node.mine(101).await?;
    let rpc = node.rpc();
    let custodians = custodians()?;
    let federation = &custodians.federation;
    let account = DepositAccount::new([0xa1; 32]);

    let utxo = deposit(&node, federation, account, Amount::from_sat(150_000_000)).await?;
    ensure!(utxo.height < MWEB_ACTIVATION_HEIGHT && !utxo.mweb_peg_out);

    // Validator 1 is down; 0, 2 and 3 sign.
    let requested = Amount::from_sat(100_000_000);
    let (spend, txid) = pay_out(
        &node,
        &custodians,
        std::slice::from_ref(&utxo),
        requested,
        &[0, 2, 3],
    )
    .await?;
    let quote = quote_fee(
        federation,
        &params(rpc).await?,
        &spend.transaction().output[0].script_pubkey,
    )?;
    ensure!(spend.fee() == quote, "a one-input payment costs its quote");
    let change = output_value(rpc, &txid, 1).await?;
    ensure!(change == utxo.value - (requested - quote) - spend.fee());

    // The change is recognised as the federation's base script and spent by another 3 of 4.
    let (block, height) = tip_block(rpc).await?;
    let found = DepositIndex::new(federation, [account]).scan_block(&block, height);
    ensure!(found.len() == 1 && found[0].custody == Custody::Base && found[0].value == change);
    pay_out(
        &node,
        &custodians,
        &found,
        Amount::from_sat(20_000_000),
        &[1, 2, 3],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn two_of_four_signatures_or_signatures_out_of_key_order_are_refused_by_litecoind()
-> anyhow::Result<()> {
    let node = start_node().await?;
    node.mine(101).await?;
    let rpc = node.rpc();
    let custodians = custodians()?;
    let federation = &custodians.federation;
    let account = DepositAccount::new([0xa2; 32]);
    let utxo = deposit(&node, federation, account, Amount::from_sat(50_000_000)).await?;
    let (_, destination) = recipient(&node).await?;
    let payment = Payment {
        script_pubkey: destination,
        value: Amount::from_sat(10_000_000),
    };
    let spend = build_spend(federation, &params(rpc).await?, &[utxo], &[payment])?;
    let partials = sign(&spend, &custodians.validators, &[0, 1, 2])?;
    // Keys sort differently from the signers' list: put the partials in script order.
    let position = |partial: &PartialSignatures| {
        federation
            .keys()
            .iter()
            .position(|key| *key == partial.signer)
    };
    let mut in_key_order: Vec<&PartialSignatures> = partials.iter().collect();
    in_key_order.sort_by_key(|partial| position(partial));

    ensure!(matches!(
        spend.assemble(&partials[..2]),
        Err(SpendError::InsufficientSignatures { have: 2, need: 3 })
    ));
    let two = with_witness(&spend, &in_key_order[..2]);
    let reason = verdict(rpc, &two).await?.err().context("2 of 4 accepted")?;
    ensure!(is_script_failure(&reason), "{reason}");

    let mut reversed = in_key_order.clone();
    reversed.reverse();
    let shuffled = with_witness(&spend, &reversed);
    let reason = verdict(rpc, &shuffled)
        .await?
        .err()
        .context("wrong order accepted")?;
    ensure!(is_script_failure(&reason), "{reason}");

    // The recovery keys cannot spend through the federation branch, nor early through theirs.
    let recovery_sweep = build_sweep(
        federation,
        &params(rpc).await?,
        &[spend.inputs()[0].0.clone()],
        &federation.script_pubkey(&Custody::Base),
        SpendBranch::Recovery,
    )?;
    let recovery_partials = sign(&recovery_sweep, &custodians.recovery, &[0, 1])?;
    let early = recovery_sweep.assemble(&recovery_partials)?;
    let reason = verdict(rpc, &early)
        .await?
        .err()
        .context("early recovery accepted")?;
    ensure!(reason.contains("non-BIP68-final"), "{reason}");

    let signed = spend.assemble(&partials)?;
    verdict(rpc, &signed).await?.map_err(anyhow::Error::msg)?;
    Ok(())
}

#[tokio::test]
async fn a_deposit_after_mweb_activation_is_found_in_the_block_and_paid_out() -> anyhow::Result<()>
{
    let node = start_node().await?;
    let height = node.activate_mweb().await?;
    let rpc = node.rpc();
    ensure!(height >= MWEB_ACTIVATION_HEIGHT && softfork_active(rpc, "mweb").await?);
    let custodians = custodians()?;
    let account = DepositAccount::new([0xb1; 32]);

    let utxo = deposit(
        &node,
        &custodians.federation,
        account,
        Amount::from_sat(200_000_000),
    )
    .await?;
    // The block decoded: it ends with the HogEx, which only the legacy serialization allows.
    let (block, _) = tip_block(rpc).await?;
    let last = block.txdata.last().context("block has transactions")?;
    ensure!(
        is_hogex(last),
        "an MWEB block ends with its HogEx transaction"
    );
    ensure!(!utxo.mweb_peg_out);

    pay_out(
        &node,
        &custodians,
        &[utxo],
        Amount::from_sat(150_000_000),
        &[1, 2, 3],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn an_mweb_wallet_deposit_lands_in_the_hogex_and_is_spent_after_six_blocks()
-> anyhow::Result<()> {
    let node = start_node().await?;
    node.activate_mweb().await?;
    let rpc = node.rpc();
    let wallet = node.wallet_rpc()?;
    rpc.create_wallet("mweb-payer").await?;
    let payer = rpc.for_wallet("mweb-payer")?;
    let payer_mweb = payer.get_new_address("", Some("mweb")).await?;
    wallet
        .send_to_address(&payer_mweb, Amount::from_sat(300_000_000))
        .await?;
    node.mine(1).await?;

    let custodians = custodians()?;
    let federation = &custodians.federation;
    let account = DepositAccount::new([0xc1; 32]);
    let address = federation.deposit_address(&node.network(), account);
    payer
        .send_to_address(&address, Amount::from_sat(100_000_000))
        .await?;
    node.mine(1).await?;
    let (block, height) = tip_block(rpc).await?;
    let found = DepositIndex::new(federation, [account]).scan_block(&block, height);
    ensure!(found.len() == 1, "{found:?}");
    let utxo = found[0].clone();
    ensure!(utxo.mweb_peg_out && utxo.value == Amount::from_sat(100_000_000));
    ensure!(block.txdata.last().map(|tx| tx.compute_txid()) == Some(utxo.outpoint.txid));

    // Coin selection skips it until it is six blocks deep.
    let (_, destination) = recipient(&node).await?;
    let payment = Payment {
        script_pubkey: destination,
        value: Amount::from_sat(50_000_000),
    };
    let now = params(rpc).await?;
    ensure!(matches!(
        build_spend(
            federation,
            &now,
            std::slice::from_ref(&utxo),
            std::slice::from_ref(&payment)
        ),
        Err(SpendError::InsufficientFunds { .. })
    ));
    // Litecoind agrees: a spend built anyway is refused at depth 1 and depth 5.
    let premature = SpendParams {
        next_block_height: utxo.spendable_height(),
        ..now
    };
    let spend = build_spend(
        federation,
        &premature,
        std::slice::from_ref(&utxo),
        &[payment],
    )?;
    let signed = spend.assemble(&sign(&spend, &custodians.validators, &[0, 1, 2])?)?;
    for depth in [1, 5] {
        let tip = rpc.get_block_count().await?;
        node.mine(height + depth - 1 - tip).await?;
        let reason = verdict(rpc, &signed)
            .await?
            .err()
            .context("premature spend accepted")?;
        ensure!(
            reason.contains("premature-spend-of-pegout"),
            "depth {depth}: {reason}"
        );
    }
    node.mine(1).await?;
    ensure!(params(rpc).await?.next_block_height == utxo.spendable_height());
    pay_out(
        &node,
        &custodians,
        &[utxo],
        Amount::from_sat(50_000_000),
        &[0, 1, 2],
    )
    .await?;
    Ok(())
}

#[tokio::test]
async fn the_recovery_keys_spend_after_the_csv_delay_and_not_before() -> anyhow::Result<()> {
    let node = start_node().await?;
    node.activate_mweb().await?;
    let rpc = node.rpc();
    ensure!(
        softfork_active(rpc, "csv").await?,
        "CSV is consensus from height 432"
    );
    let custodians = custodians()?;
    let federation = &custodians.federation;
    let account = DepositAccount::new([0xd1; 32]);
    let utxo = deposit(&node, federation, account, Amount::from_sat(80_000_000)).await?;
    let (_, destination) = recipient(&node).await?;

    let sweep = build_sweep(
        federation,
        &params(rpc).await?,
        std::slice::from_ref(&utxo),
        &destination,
        SpendBranch::Recovery,
    )?;
    let partials = sign(&sweep, &custodians.recovery, &[2, 0])?;
    let signed = sweep.assemble(&partials)?;
    let one = with_witness(&sweep, &[&partials[0]]);
    let delay = u32::from(RECOVERY_DELAY_BLOCKS);

    // Its block may be at height utxo.height + delay at the earliest: the mempool judges the
    // next block, so it refuses while the tip is below utxo.height + delay − 1.
    for tip in [utxo.height, utxo.height + delay - 2] {
        let now = rpc.get_block_count().await?;
        node.mine(tip - now).await?;
        let reason = verdict(rpc, &signed)
            .await?
            .err()
            .context("early recovery accepted")?;
        ensure!(reason.contains("non-BIP68-final"), "tip {tip}: {reason}");
    }
    node.mine(1).await?;
    let reason = verdict(rpc, &one)
        .await?
        .err()
        .context("1 of 3 recovery accepted")?;
    ensure!(is_script_failure(&reason), "{reason}");
    verdict(rpc, &signed).await?.map_err(anyhow::Error::msg)?;
    let txid = broadcast(&node, &signed).await?;
    ensure!(output_value(rpc, &txid, 0).await? == utxo.value - sweep.fee());
    ensure!(
        rpc.get_tx_out(&utxo.outpoint.txid, utxo.outpoint.vout, false)
            .await?
            .is_none()
    );
    Ok(())
}
