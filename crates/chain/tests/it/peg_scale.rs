//! The peg at scale against a real `litecoind -regtest`: thousands of deposit coins, peg-outs
//! larger than a batch's inputs can pay from the oldest coins, and custody that never falls
//! to the recovery keys by neglect. The conservation invariant is re-derived from every record
//! and audited against litecoind along the way.

use super::peg::{
    CONFIRMATIONS, Ledger, funded_start, genesis, on_tokio, three_watchers, user, watcher_round,
};
use anyhow::{Context as _, ensure};
use bitcoin::{Txid, hashes::Hash as _};
use commonware_cryptography::Signer as _;
use commonware_runtime::tokio as cw_tokio;
use consort_mainchain::{
    RpcClient, SigningKey, SpendBranch, Utxo, build_sweep,
    regtest::{LitecoindRegtest, RegtestOptions},
    script_pubkey_for_address,
};
use consort_peg::Peg;
use consort_types::{
    AccountId, Amount, Call,
    codec_util::Blob,
    peg::{Batch, PegOutRequest, PegOutStatus},
    state_key::peg as key,
};
use serde_json::{Map, Value, json};

/// `sats` as the decimal text litecoind reads exactly.
fn coins_text(sats: u64) -> String {
    format!("{}.{:08}", sats / 100_000_000, sats % 100_000_000)
}

/// One main-chain transaction paying `sats` to each account's deposit address.
async fn send_many(
    node: &LitecoindRegtest,
    ledger: &Ledger,
    accounts: &[AccountId],
    sats: u64,
) -> anyhow::Result<Txid> {
    let federation = ledger.fed().await;
    let mut payments = Map::new();
    for account in accounts {
        payments.insert(
            ledger.peg.deposit_address(&federation, account),
            json!(coins_text(sats)),
        );
    }
    let txid: String = node
        .wallet_rpc()?
        .call("sendmany", vec![json!(""), Value::Object(payments)])
        .await?;
    Ok(txid.parse()?)
}

/// Mine and run the watchers' rounds until `done` holds (at most `rounds` blocks).
pub(super) async fn until<F>(
    node: &LitecoindRegtest,
    ledger: &mut Ledger,
    watchers: &mut [(u64, consort_watcher::Watcher)],
    rounds: usize,
    what: &str,
    mut done: F,
) -> anyhow::Result<()>
where
    F: AsyncFnMut(&Ledger) -> bool,
{
    for _ in 0..rounds {
        if done(ledger).await {
            return Ok(());
        }
        node.mine(1).await?;
        watcher_round(ledger, watchers).await?;
        ledger.rederive().await?;
    }
    ensure!(done(ledger).await, "{what}: not done after {rounds} blocks");
    Ok(())
}

async fn request(ledger: &Ledger, id: u64) -> anyhow::Result<PegOutRequest> {
    ledger.read(&key::request(id)).await.context("request")
}

pub(super) async fn payee(node: &LitecoindRegtest) -> anyhow::Result<(String, bitcoin::ScriptBuf)> {
    let address = node
        .wallet_rpc()?
        .get_new_address("", Some("bech32"))
        .await?;
    let script = script_pubkey_for_address(&node.network(), &address)?;
    Ok((address, script))
}

pub(super) async fn received(node: &LitecoindRegtest, address: &str) -> anyhow::Result<u64> {
    let value: f64 = node
        .wallet_rpc()?
        .call("getreceivedbyaddress", vec![json!(address), json!(1)])
        .await?;
    Ok(bitcoin::Amount::from_btc(value)?.to_sat())
}

#[test]
fn a_peg_out_larger_than_the_oldest_150_coins_is_paid_after_a_consolidation() {
    on_tokio(larger_than_the_oldest);
}

/// 200 small coins older than one large coin, and a peg-out larger than the 150 oldest can
/// pay: oldest-first selection alone needs more inputs than a batch holds. The runtime
/// consolidates the oldest 150 into one coin (paid from the fee pool), then pays.
async fn larger_than_the_oldest(context: cw_tokio::Context) -> anyhow::Result<()> {
    let (node, rpc, mut ledger) = funded_start(context).await?;
    ledger.relay(&rpc).await?;
    let alice = user(1);
    let alice_id = AccountId::new(alice.public_key());
    let small: Vec<AccountId> = (100..300)
        .map(|i| AccountId::new(user(i).public_key()))
        .collect();
    let mut watchers = three_watchers(&ledger, &rpc, alice_id);
    for (_, watcher) in &mut watchers {
        for account in &small {
            watcher.watch(*account, 0);
        }
    }
    send_many(&node, &ledger, &small, 100_000).await?;
    node.mine(1).await?;
    super::peg::deposit(&node, &ledger, &alice_id, 100_000_000).await?;
    until(
        &node,
        &mut ledger,
        &mut watchers,
        40,
        "201 coins credited",
        async |l| l.coins().await.len() == 201,
    )
    .await?;
    ledger.audit(&rpc).await?;
    let oldest = ledger.coins().await[0].outpoint;

    let (address, script) = payee(&node).await?;
    let amount = 50_000_000;
    ledger
        .submit(
            &alice,
            Call::PegOut {
                amount: Amount::new(amount),
                script: Blob(script.to_bytes()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("peg-out refused: {e}"))?;
    until(
        &node,
        &mut ledger,
        &mut watchers,
        60,
        "peg-out completed",
        async |l| {
            request(l, 0)
                .await
                .is_ok_and(|r| r.status == PegOutStatus::Completed.tag())
        },
    )
    .await?;
    let consolidation: Batch = ledger.read(&key::batch(0)).await.context("batch 0")?;
    ensure!(
        consolidation.requests.0.is_empty() && consolidation.inputs.0.len() == 150,
        "the first batch consolidates the 150 oldest coins: {consolidation:?}"
    );
    ensure!(
        consolidation
            .inputs
            .0
            .iter()
            .all(|c| c.custody.is_some_and(|a| a != alice_id)),
        "the consolidation takes the small coins"
    );
    // A pager whose cursor was spent since is told to start again, not handed an empty page.
    {
        use commonware_glue::stateful::db::DatabaseSet as _;
        let parent = ledger.databases.new_batches().await;
        let mut store = consort_state::Store::new(&parent);
        let (page, _) = ledger
            .peg
            .coins_after(&mut store, Some(oldest), 10)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        ensure!(page.is_none(), "a spent cursor gives no page");
    }
    let payment: Batch = ledger.read(&key::batch(1)).await.context("batch 1")?;
    ensure!(
        payment.requests.0 == vec![0],
        "the second batch pays the request"
    );
    let (fee, _) = ledger
        .peg
        .quote(&ledger.fed().await, &script, ledger.relayed)?;
    ensure!(received(&node, &address).await? == amount - fee);
    ledger.audit(&rpc).await?;
    Ok(())
}

#[test]
fn thousands_of_minimum_deposits_are_claimed_and_a_peg_out_still_pays() {
    on_tokio(thousands);
}

/// 4,200 deposits of the minimum (three `sendmany` of 1,400: one of 4,200 would exceed a
/// standard main-chain transaction), claimed 1,400 outputs per claim, all credited; then a
/// peg-out whose change makes coin 4,202. The single-record lists this replaced held 4,096
/// coins at most: the claims past it were refused and a change past it stopped every block.
async fn thousands(context: cw_tokio::Context) -> anyhow::Result<()> {
    let (node, rpc, mut ledger) = funded_start(context).await?;
    ledger.relay(&rpc).await?;
    let alice = user(1);
    let alice_id = AccountId::new(alice.public_key());
    let mut watchers = three_watchers(&ledger, &rpc, alice_id);
    // Alice's coin is the oldest and first in the coin list (credited before the others are
    // claimed): the peg-out pays from it. Coins claimed in one round are listed in claim
    // order, not main-chain age; see the session note.
    super::peg::deposit(&node, &ledger, &alice_id, 100_000_000).await?;
    until(
        &node,
        &mut ledger,
        &mut watchers,
        30,
        "alice's coin credited",
        async |l| l.coins().await.len() == 1,
    )
    .await?;
    let minimum = ledger.peg.deposit_minimum(&ledger.fed().await);
    let accounts: Vec<AccountId> = (10_000..14_200)
        .map(|i| AccountId::new(user(i).public_key()))
        .collect();
    for (_, watcher) in &mut watchers {
        for account in &accounts {
            watcher.watch(*account, 0);
        }
    }
    // Each from its own matured coinbase, so that no chain of large unconfirmed
    // transactions meets litecoind's mempool limits.
    node.mine(3).await?;
    for chunk in accounts.chunks(1_400) {
        send_many(&node, &ledger, chunk, minimum).await?;
        node.mine(1).await?;
    }
    until(
        &node,
        &mut ledger,
        &mut watchers,
        40,
        "4,201 coins credited",
        async |l| l.coins().await.len() == 4_201,
    )
    .await?;
    for account in accounts.iter().step_by(997) {
        ensure!(
            ledger.pegged(account).await == minimum - ledger.peg.deposit_fee(&ledger.fed().await)
        );
    }
    ledger.audit(&rpc).await?;

    let (address, script) = payee(&node).await?;
    ledger
        .submit(
            &alice,
            Call::PegOut {
                amount: Amount::new(30_000_000),
                script: Blob(script.to_bytes()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("peg-out refused: {e}"))?;
    until(
        &node,
        &mut ledger,
        &mut watchers,
        30,
        "peg-out completed",
        async |l| {
            request(l, 0)
                .await
                .is_ok_and(|r| r.status == PegOutStatus::Completed.tag())
        },
    )
    .await?;
    let (fee, _) = ledger
        .peg
        .quote(&ledger.fed().await, &script, ledger.relayed)?;
    ensure!(received(&node, &address).await? == 30_000_000 - fee);
    let coins = ledger.coins().await;
    ensure!(coins.len() == 4_201, "alice's coin spent, its change added");
    ensure!(
        coins.iter().any(|c| c.custody.is_none()),
        "change is a coin"
    );
    ledger.audit(&rpc).await?;
    Ok(())
}

#[test]
fn the_runtime_consolidates_before_the_recovery_delay_so_the_recovery_keys_never_can() {
    on_tokio(before_the_delay);
}

const SHORT_DELAY: u16 = 24;

fn recovery_key(i: u8) -> SigningKey {
    SigningKey::from_secret_bytes(&[21 + i; 32]).expect("valid secret")
}

/// Whether the recovery keys (2 of 3) could move `coin` now: their sweep, signed, offered to
/// litecoind's mempool.
async fn recovery_can_spend(
    rpc: &RpcClient,
    peg: &Peg,
    federation: &consort_mainchain::Federation,
    coin: &Utxo,
    tip: u32,
    to: &bitcoin::ScriptBuf,
) -> anyhow::Result<bool> {
    let params = consort_mainchain::SpendParams {
        network: peg.network,
        fee_rate: bitcoin::FeeRate::from_sat_per_vb(10).context("fee rate")?,
        next_block_height: tip + 1,
    };
    let sweep = build_sweep(
        federation,
        &params,
        std::slice::from_ref(coin),
        to,
        SpendBranch::Recovery,
    )?;
    let partials = vec![sweep.sign(&recovery_key(0))?, sweep.sign(&recovery_key(1))?];
    let signed = sweep.assemble(&partials)?;
    let hex = bitcoin::consensus::encode::serialize_hex(&signed);
    let answer: Vec<Value> = rpc.call("testmempoolaccept", vec![json!([hex])]).await?;
    Ok(answer[0]["allowed"].as_bool() == Some(true))
}

/// A recovery delay of 24 blocks: a deposit coin is moved (a one-coin consolidation, paid by
/// the fee the deposit prepaid) once 12 blocks deep, and at no height up to well past the
/// delay do the recovery keys hold a coin they could sweep. Litecoind judges each would-be
/// recovery sweep (`testmempoolaccept`).
async fn before_the_delay(context: cw_tokio::Context) -> anyhow::Result<()> {
    let node = super::peg::start_litecoind().await?;
    let rpc = node.rpc().clone();
    node.mine(101).await?;
    let mut genesis = genesis();
    if let Some(peg) = &mut genesis.peg {
        peg.recovery_delay_blocks = SHORT_DELAY;
    }
    let mut ledger = Ledger::with_genesis(context, genesis).await;
    ledger.relay(&rpc).await?;
    let alice_id = AccountId::new(user(1).public_key());
    let mut watchers = three_watchers(&ledger, &rpc, alice_id);
    let (txid, vout) = super::peg::deposit(&node, &ledger, &alice_id, 20_000_000).await?;
    node.mine(1).await?;
    let deposit_height = rpc.get_block_count().await?;
    let (_, sink) = payee(&node).await?;
    let mut moved_at = None;
    // Well past the delay from the deposit. (The moved coin's own next move is paid from the
    // fee pool, which one deposit's prepaid fee does not refill: the test stops before that
    // coin is a delay deep.)
    let end = deposit_height + u32::from(SHORT_DELAY) + 2 * CONFIRMATIONS;
    while rpc.get_block_count().await? < end {
        node.mine(1).await?;
        watcher_round(&mut ledger, &mut watchers).await?;
        ledger.rederive().await?;
        let tip = rpc.get_block_count().await?;
        let original = rpc.get_tx_out(&txid, vout, true).await?;
        if original.is_none() && moved_at.is_none() {
            moved_at = Some(tip);
        }
        for coin in ledger.coins().await {
            let utxo = consort_mainchain::Utxo {
                outpoint: bitcoin::OutPoint::new(
                    Txid::from_byte_array(coin.outpoint.txid),
                    coin.outpoint.vout,
                ),
                value: bitcoin::Amount::from_sat(coin.value),
                custody: match coin.custody {
                    Some(a) => consort_mainchain::Custody::Deposit(
                        consort_mainchain::DepositAccount::new(*a.as_bytes()),
                    ),
                    None => consort_mainchain::Custody::Base,
                },
                height: coin.height,
                mweb_peg_out: coin.mweb,
            };
            ensure!(
                !recovery_can_spend(&rpc, &ledger.peg, &ledger.fed().await, &utxo, tip, &sink)
                    .await?,
                "at main-chain height {tip} the recovery keys can sweep {:?} (height {})",
                coin.outpoint,
                coin.height
            );
        }
    }
    let moved_at = moved_at.context("the deposit coin was never moved")?;
    ensure!(
        moved_at < deposit_height + u32::from(SHORT_DELAY),
        "the deposit coin moved at {moved_at}, after the delay"
    );
    ensure!(
        ledger.pegged(&alice_id).await == 20_000_000 - ledger.peg.deposit_fee(&ledger.fed().await)
    );
    ledger.audit(&rpc).await?;
    Ok(())
}

#[test]
fn a_batch_stuck_below_the_miners_fee_is_bumped_signed_again_and_confirms() {
    on_tokio(stuck_batch);
}

/// A peg-out batch the miner will not take (its fee de-prioritised by a large negative delta
/// in litecoind, as a too-low fee would be) stays unconfirmed; `confirmations + 6` main-chain
/// blocks after it was signed the runtime replaces it with one paying twice the fee from the
/// fee pool (replace-by-fee: same coins, same payment, smaller change), the validators sign
/// again, the replacement evicts the original from the mempool and confirms.
async fn stuck_batch(context: cw_tokio::Context) -> anyhow::Result<()> {
    // Litecoin Core relays replacements only when told to (`-mempoolreplacement`, default 0).
    let node = LitecoindRegtest::start_with(RegtestOptions {
        extra_args: vec!["-rpcserialversion=0".into(), "-mempoolreplacement=1".into()],
        ..RegtestOptions::default()
    })
    .await?;
    let rpc = node.rpc().clone();
    node.mine(101).await?;
    let mut ledger = Ledger::new(context).await;
    ledger.relay(&rpc).await?;
    let alice = user(1);
    let alice_id = AccountId::new(alice.public_key());
    let mut watchers = three_watchers(&ledger, &rpc, alice_id);
    super::peg::deposit(&node, &ledger, &alice_id, 100_000_000).await?;
    node.mine(1).await?;
    // Three more deposits fill the fee pool with what they prepay (a bump doubles the fee);
    // the batch spends alice's older coin alone.
    let others: Vec<AccountId> = (2..5)
        .map(|i| AccountId::new(user(i).public_key()))
        .collect();
    for (_, watcher) in &mut watchers {
        for account in &others {
            watcher.watch(*account, 0);
        }
    }
    send_many(&node, &ledger, &others, 1_000_000).await?;
    until(
        &node,
        &mut ledger,
        &mut watchers,
        30,
        "deposits credited",
        async |l| l.coins().await.len() == 4,
    )
    .await?;
    let (address, script) = payee(&node).await?;
    let amount = 10_000_000;
    ledger
        .submit(
            &alice,
            Call::PegOut {
                amount: Amount::new(amount),
                script: Blob(script.to_bytes()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("peg-out refused: {e}"))?;
    let pool_before = ledger.totals().await.fee_pool;
    let mut stuck: Option<Txid> = None;
    for _ in 0..60 {
        watcher_round(&mut ledger, &mut watchers).await?;
        ledger.rederive().await?;
        let batch: Option<Batch> = ledger.read(&key::batch(0)).await;
        if let Some(batch) = &batch
            && stuck.is_none()
        {
            let txid = Txid::from_byte_array(batch.txid);
            let entry: Result<Value, _> = rpc
                .call("getmempoolentry", vec![json!(txid.to_string())])
                .await;
            if entry.is_ok() {
                // The miner will not take it.
                let _: bool = rpc
                    .call(
                        "prioritisetransaction",
                        vec![json!(txid.to_string()), json!(0), json!(-100_000_000)],
                    )
                    .await?;
                stuck = Some(txid);
            }
        }
        if request(&ledger, 0)
            .await
            .is_ok_and(|r| r.status == PegOutStatus::Completed.tag())
        {
            break;
        }
        node.mine(1).await?;
    }
    let stuck = stuck.context("the batch was never broadcast")?;
    ensure!(
        request(&ledger, 0)
            .await
            .is_ok_and(|r| r.status == PegOutStatus::Completed.tag()),
        "the peg-out did not complete"
    );
    ensure!(
        rpc.get_tx_out(&stuck, 0, true).await?.is_none(),
        "the stuck version never confirmed"
    );
    let batch: Batch = ledger.read(&key::batch(0)).await.context("batch")?;
    ensure!(batch.replaced.0.len() == 1, "one bump: {batch:?}");
    let original = batch.replaced.0[0];
    ensure!(original.txid == stuck.to_byte_array());
    ensure!(batch.txid != original.txid, "the replacement confirmed");
    ensure!(batch.fee == 2 * original.fee, "the bump doubles the fee");
    let (fee, _) = ledger
        .peg
        .quote(&ledger.fed().await, &script, ledger.relayed)?;
    ensure!(
        received(&node, &address).await? == amount - fee,
        "the payee is paid as quoted"
    );
    let totals = ledger.totals().await;
    ensure!(
        totals.fee_pool == pool_before + batch.quoted - batch.fee,
        "the fee pool pays the whole fee beyond the quote"
    );
    ledger.audit(&rpc).await?;
    Ok(())
}

#[test]
fn soak_two_thousand_deposits_and_five_hundred_peg_outs_with_the_invariant_after_every_block() {
    on_tokio(soak);
}

/// 2,000 deposits to 20 accounts (100 `sendmany` of one output per account) claimed by the
/// watchers, then 500 peg-outs from those accounts (25 each) paid in batches; the
/// conservation invariant is re-derived from every record after every block, and audited
/// against litecoind at the end of each phase. The time of each phase is printed.
async fn soak(context: cw_tokio::Context) -> anyhow::Result<()> {
    let (node, rpc, mut ledger) = funded_start(context).await?;
    node.mine(20).await?;
    ledger.relay(&rpc).await?;
    let keys: Vec<_> = (20_000..20_020).map(user).collect();
    let accounts: Vec<AccountId> = keys
        .iter()
        .map(|k| AccountId::new(k.public_key()))
        .collect();
    let mut watchers = three_watchers(&ledger, &rpc, accounts[0]);
    for (_, watcher) in &mut watchers {
        for account in &accounts {
            watcher.watch(*account, 0);
        }
    }
    let started = std::time::Instant::now();
    for round in 0..100 {
        send_many(&node, &ledger, &accounts, 200_000).await?;
        if round % 10 == 9 {
            node.mine(1).await?;
            watcher_round(&mut ledger, &mut watchers).await?;
            ledger.rederive().await?;
        }
    }
    until(
        &node,
        &mut ledger,
        &mut watchers,
        40,
        "2,000 deposits credited",
        async |l| l.coins().await.len() == 2_000,
    )
    .await?;
    ledger.audit(&rpc).await?;
    eprintln!("soak: 2,000 deposits credited in {:?}", started.elapsed());

    let started = std::time::Instant::now();
    let mut payees = Vec::new();
    for _ in 0..5 {
        payees.push(payee(&node).await?);
    }
    for (i, key) in keys.iter().enumerate() {
        let calls = (0..25)
            .map(|j| Call::PegOut {
                amount: Amount::new(50_000),
                script: Blob(payees[(i + j) % payees.len()].1.to_bytes()),
            })
            .collect();
        let refused = ledger.submit_all(key, calls).await;
        ensure!(refused.is_empty(), "peg-outs refused: {refused:?}");
    }
    until(
        &node,
        &mut ledger,
        &mut watchers,
        120,
        "500 peg-outs completed",
        async |l| l.totals().await.pending_peg_outs == 0,
    )
    .await?;
    for id in 0..500 {
        ensure!(request(&ledger, id).await?.status == PegOutStatus::Completed.tag());
    }
    let batches = ledger.totals().await.next_batch;
    ledger.audit(&rpc).await?;
    let (fee, _) = ledger
        .peg
        .quote(&ledger.fed().await, &payees[0].1, ledger.relayed)?;
    let mut paid = 0;
    for (address, _) in &payees {
        paid += received(&node, address).await?;
    }
    ensure!(paid == 500 * (50_000 - fee), "every payee paid as quoted");
    eprintln!(
        "soak: 500 peg-outs completed in {:?} ({batches} batches)",
        started.elapsed()
    );
    Ok(())
}
