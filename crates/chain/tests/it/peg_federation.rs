//! The peg's federation follows the validator set, against a real `litecoind -regtest`: a
//! fifth validator registers its federation key and is voted in, the next committee forms
//! the next federation, the old federation's coins are swept to the new one (signed by the
//! old members), a deposit to an old address within the grace period is credited and swept,
//! a later peg-out is signed by the new members, a deposit to an old address after the grace
//! period is refused, and a removed validator's key stops counting. The invariant is
//! re-derived after every block and the audit checked against litecoind.

use super::peg::{
    CHAIN_ID, Ledger, deposit, federation_key, genesis, on_tokio, peg_error, start_litecoind, user,
    validator, watcher_round,
};
use super::peg_scale::{payee, received, until};
use anyhow::{Context as _, ensure};
use bitcoin::hashes::Hash as _;
use commonware_cryptography::Signer as _;
use commonware_runtime::tokio as cw_tokio;
use consort_types::{
    AccountId, Amount, Call, Genesis, TxError,
    codec_util::{Blob, List},
    gov::{Action, GenesisOrg, GovError, GovernanceConfig, Mode, OrgKind},
    peg::{Batch, ClaimRecord, FederationRecord, Outpoint, PegError},
    state_key::{peg as key, validators as validators_key},
    validators::ValidatorSet,
};

/// Consort blocks per epoch: the committee (and so the federation) can change every 10.
const EPOCH_BLOCKS: u64 = 10;
/// The validator that joins.
const JOINER: u64 = 4;
/// Main-chain blocks a replaced federation's addresses stay credited (genesis' setting).
const GRACE: u32 = 20;

fn admin(i: u64) -> commonware_cryptography::ed25519::PrivateKey {
    user(100 + i)
}

/// The peg genesis with four organisations (admins users 100..104), alice a customer, and
/// epochs of [`EPOCH_BLOCKS`].
fn governed() -> Genesis {
    let mut genesis = genesis();
    let org = |name: &str, kind, i| GenesisOrg {
        id: name.parse().expect("org id"),
        kind,
        admins: vec![AccountId::new(admin(i).public_key())],
    };
    genesis.governance = Some(GovernanceConfig {
        mode: Mode::Consortium,
        organisations: vec![
            org("platform", OrgKind::Operator, 0),
            org("shop", OrgKind::Seller, 1),
            org("bank", OrgKind::Bank, 2),
            org("reg", OrgKind::Regulator, 3),
        ],
        registrar: "platform".parse().expect("org id"),
        vote_period_blocks: 1_000,
        alert_threshold: None,
        customers: vec![AccountId::new(user(1).public_key())],
        rotation_delay_blocks: None,
    });
    genesis.epoch_blocks = Some(EPOCH_BLOCKS);
    genesis
        .peg
        .as_mut()
        .expect("peg genesis")
        .federation_grace_blocks = GRACE;
    genesis
}

fn id(i: u64) -> AccountId {
    AccountId::new(validator(i).public_key())
}

/// Watchers of validators `which`, each watching `account`.
fn watchers(
    ledger: &Ledger,
    rpc: &consort_mainchain::RpcClient,
    which: &[u64],
    account: AccountId,
) -> Vec<(u64, consort_watcher::Watcher)> {
    which
        .iter()
        .map(|&i| {
            let signer = (id(i), federation_key(u8::try_from(i).expect("small")));
            let mut watcher =
                consort_watcher::Watcher::new(ledger.peg.clone(), rpc.clone(), Some(signer));
            watcher.watch(account, 0);
            (i, watcher)
        })
        .collect()
}

/// Governance passes `action`: proposed by the platform, approved by the shop and the bank.
async fn pass(ledger: &mut Ledger, proposal: u64, action: Action) -> anyhow::Result<()> {
    ledger
        .submit(&admin(0), Call::Propose { action })
        .await
        .map_err(|e| anyhow::anyhow!("proposal refused: {e}"))?;
    for voter in [1, 2] {
        ledger
            .submit(
                &admin(voter),
                Call::Vote {
                    proposal,
                    approve: true,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("vote refused: {e}"))?;
    }
    Ok(())
}

async fn registry(ledger: &Ledger) -> ValidatorSet {
    ledger
        .read(&validators_key::registry())
        .await
        .unwrap_or_default()
}

/// Empty Consort blocks until the peg's current federation is `generation`.
async fn until_federation(ledger: &mut Ledger, generation: u32) -> anyhow::Result<()> {
    for _ in 0..3 * EPOCH_BLOCKS {
        if ledger.totals().await.federation == generation {
            return Ok(());
        }
        ensure!(ledger.block(Vec::new()).await.is_empty());
        ledger.rederive().await?;
    }
    anyhow::bail!("federation {generation} never formed")
}

fn register_key(i: u8, account: &AccountId) -> Call {
    let key = federation_key(i);
    Call::RegisterFederationKey {
        key: Blob(key.public_key().serialize().to_vec()),
        proof: Blob(key.prove_possession(CHAIN_ID, account.as_bytes()).to_vec()),
    }
}

#[test]
fn the_federation_follows_a_joining_validator_and_sweeps_the_coins_to_the_new_keys() {
    on_tokio(migration);
}

async fn migration(context: cw_tokio::Context) -> anyhow::Result<()> {
    let node = start_litecoind().await?;
    let rpc = node.rpc().clone();
    node.mine(101).await?;
    let mut ledger = Ledger::with_genesis(context, governed()).await;
    ledger.relay(&rpc).await?;
    let alice = user(1);
    let alice_id = AccountId::new(alice.public_key());
    // Validator 2 is down throughout: the others (and later the joiner) do everything.
    let mut watchers = watchers(&ledger, &rpc, &[0, 1, 3, JOINER], alice_id);

    // A deposit held by federation 0.
    let old = ledger.fed().await;
    let old_address = ledger.peg.deposit_address(&old, &alice_id);
    let fee = ledger.peg.deposit_fee(&old);
    deposit(&node, &ledger, &alice_id, 100_000_000).await?;
    until(
        &node,
        &mut ledger,
        &mut watchers,
        40,
        "first deposit",
        async move |l| l.pegged(&alice_id).await == 100_000_000 - fee,
    )
    .await?;

    // The joiner must register a key before it may be proposed; the key must be its own
    // and nobody else's.
    let joiner = validator(JOINER);
    let joiner_id = id(JOINER);
    let add = Action::AddValidator {
        key: joiner_id,
        address: "127.0.0.1:31004".parse()?,
    };
    let refused = ledger
        .submit(&admin(0), Call::Propose { action: add })
        .await;
    ensure!(
        matches!(refused, Err(TxError::Gov(GovError::NoFederationKey(_)))),
        "a validator without a federation key was proposed: {refused:?}"
    );
    let Call::RegisterFederationKey { key, .. } = register_key(4, &joiner_id) else {
        unreachable!()
    };
    let Call::RegisterFederationKey { proof: wrong, .. } = register_key(5, &joiner_id) else {
        unreachable!()
    };
    let forged = Call::RegisterFederationKey {
        key: key.clone(),
        proof: wrong,
    };
    ensure!(matches!(
        peg_error(ledger.submit(&joiner, forged).await),
        PegError::BadFederationKey(_)
    ));
    ensure!(matches!(
        peg_error(ledger.submit(&joiner, register_key(0, &joiner_id)).await),
        PegError::KeyInUse
    ));
    ledger
        .submit(&joiner, register_key(4, &joiner_id))
        .await
        .map_err(|e| anyhow::anyhow!("key registration refused: {e}"))?;
    pass(&mut ledger, 0, add).await?;
    ensure!(registry(&ledger).await.contains(&joiner_id));
    // A validator's key is fixed while it is one.
    ensure!(matches!(
        peg_error(ledger.submit(&joiner, register_key(6, &joiner_id)).await),
        PegError::KeyLocked
    ));

    // The next committee forms federation 1: five keys, four must sign.
    until_federation(&mut ledger, 1).await?;
    let new = ledger.federated(1).await;
    ensure!(new.record.members.0.len() == 5 && new.federation.threshold() == 4);
    ensure!(new.position(&joiner_id).is_some());
    let new_address = ledger.peg.deposit_address(&new.federation, &alice_id);
    ensure!(new_address != old_address, "deposit addresses switch");
    let replaced: FederationRecord = ledger.read(&key::federation(0)).await.context("fed 0")?;
    let switched = replaced.replaced_main.context("federation 0 replaced")?;

    // Within the grace period, a deposit to the old address; and one to the new address.
    let wallet = node.wallet_rpc()?;
    let within = wallet
        .send_to_address(&old_address, bitcoin::Amount::from_sat(30_000_000))
        .await?;
    let fee = ledger.peg.deposit_fee(&new.federation);
    deposit(&node, &ledger, &alice_id, 20_000_000).await?;
    let expected = 100_000_000 - ledger.peg.deposit_fee(&old) + 50_000_000 - 2 * fee;
    until(
        &node,
        &mut ledger,
        &mut watchers,
        60,
        "migration",
        async move |l| {
            let totals = l.totals().await;
            l.pegged(&alice_id).await == expected
                && totals.in_flight.is_none()
                && l.coins().await.iter().all(|c| c.federation == 1)
        },
    )
    .await?;
    let vout = vout_of(&rpc, within, &ledger.peg.deposit_script(&old, &alice_id)).await?;
    let claim: ClaimRecord = ledger
        .read(&key::claim(&Outpoint {
            txid: within.to_byte_array(),
            vout,
        }))
        .await
        .context("the old-address deposit's claim")?;
    ensure!(
        claim.federation == 0 && claim.height > switched && claim.height <= switched + GRACE,
        "the old-address deposit was mined after the switch, within the grace period"
    );
    // The sweeps spent federation 0's coins, signed by its members still in the registry.
    let mut sweeps = 0;
    for batch_id in 0..ledger.totals().await.next_batch {
        let batch: Batch = ledger.read(&key::batch(batch_id)).await.context("batch")?;
        if batch.federation == 0 && batch.change_to == 1 {
            sweeps += 1;
            ensure!(batch.requests.0.is_empty(), "nothing was queued to pay");
        }
    }
    ensure!(sweeps >= 1, "federation 0's coins were swept");
    ledger.audit(&rpc).await?;

    // A peg-out now is paid by federation 1: four of its five members sign, so the joiner
    // (validator 2 is down).
    let (payee_address, script) = payee(&node).await?;
    let batch_id = ledger.totals().await.next_batch;
    ledger
        .submit(
            &alice,
            Call::PegOut {
                amount: Amount::new(40_000_000),
                script: Blob(script.to_bytes()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("peg-out refused: {e}"))?;
    let (quote, _) = ledger.peg.quote(&new.federation, &script, ledger.relayed)?;
    until(
        &node,
        &mut ledger,
        &mut watchers,
        40,
        "peg-out",
        async move |l| l.totals().await.pending_peg_outs == 0,
    )
    .await?;
    let batch: Batch = ledger.read(&key::batch(batch_id)).await.context("batch")?;
    ensure!(batch.federation == 1 && batch.requests.0 == vec![0]);
    let joiner_place = new.position(&joiner_id).context("joiner place")?;
    ensure!(
        batch.signers.0.contains(&joiner_place) && batch.signers.0.len() >= 4,
        "the new members signed: {:?}",
        batch.signers.0
    );
    node.mine(1).await?;
    ensure!(received(&node, &payee_address).await? == 40_000_000 - quote);
    ledger.audit(&rpc).await?;

    // After the grace period, a deposit to the old address is refused (and not claimed).
    let now = node.rpc().get_block_count().await?;
    if now <= switched + GRACE {
        node.mine(switched + GRACE + 1 - now).await?;
    }
    let late = wallet
        .send_to_address(&old_address, bitcoin::Amount::from_sat(30_000_000))
        .await?;
    node.mine(3).await?;
    ledger.relay(&rpc).await?;
    watcher_round(&mut ledger, &mut watchers).await?;
    let raw = rpc.get_raw_transaction(&late, None).await?;
    let vout = vout_of(&rpc, late, &ledger.peg.deposit_script(&old, &alice_id)).await?;
    let proof = rpc.get_tx_out_proof(&[late], None).await?;
    let claim = Call::ClaimDeposit {
        transaction: Blob(raw),
        proof: Blob(proof),
        outputs: List(vec![consort_types::peg::DepositOutput {
            account: alice_id,
            vout,
        }]),
    };
    ensure!(matches!(
        peg_error(ledger.submit(&alice, claim).await),
        PegError::AddressRetired { federation: 0, .. }
    ));
    ensure!(ledger.pegged(&alice_id).await == expected - 40_000_000);

    ensure!(
        ledger
            .read::<ClaimRecord>(&key::claim(&Outpoint {
                txid: late.to_byte_array(),
                vout,
            }))
            .await
            .is_none(),
        "the watchers did not claim the late deposit"
    );

    // Validator 0 is removed: the next federation (validators 1 to 4, validator 2 back) takes
    // the coins. The sweep costs more than the deposits prepaid (these coins moved before),
    // so the platform tops up the fee pool from its pegged coins; until then it waits.
    pass(&mut ledger, 1, Action::RemoveValidator { key: id(0) }).await?;
    ensure!(!registry(&ledger).await.contains(&id(0)));
    let mut watchers = watchers_of(&ledger, &rpc, alice_id);
    until_federation(&mut ledger, 2).await?;
    let third = ledger.federated(2).await;
    ensure!(third.position(&id(0)).is_none() && third.record.members.0.len() == 4);
    let gift = 200_000;
    ledger
        .submit(
            &alice,
            Call::FundPegFees {
                amount: Amount::new(gift),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("fee pool gift refused: {e}"))?;
    let balance = expected - 40_000_000 - gift;
    until(
        &node,
        &mut ledger,
        &mut watchers,
        40,
        "second migration",
        async move |l| {
            l.totals().await.in_flight.is_none()
                && l.coins().await.iter().all(|c| c.federation == 2)
        },
    )
    .await?;
    ensure!(ledger.pegged(&alice_id).await == balance);
    ledger.audit(&rpc).await?;

    // Validator 0's key counts for nothing new: it cannot sign federation 2's batches.
    let batch_id = ledger.totals().await.next_batch;
    ledger
        .submit(
            &alice,
            Call::PegOut {
                amount: Amount::new(10_000_000),
                script: Blob(script.to_bytes()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("peg-out refused: {e}"))?;
    let batch: Batch = ledger.read(&key::batch(batch_id)).await.context("batch")?;
    ensure!(batch.federation == 2);
    ensure!(matches!(
        peg_error(
            ledger
                .submit(
                    &validator(0),
                    Call::SignBatch {
                        batch: batch_id,
                        signatures: List(Vec::new()),
                    },
                )
                .await
        ),
        PegError::NotAMember(2)
    ));
    until(
        &node,
        &mut ledger,
        &mut watchers,
        40,
        "last peg-out",
        async move |l| l.totals().await.pending_peg_outs == 0,
    )
    .await?;
    ledger.audit(&rpc).await?;
    Ok(())
}

/// The output of main-chain transaction `txid` paying `script`.
async fn vout_of(
    rpc: &consort_mainchain::RpcClient,
    txid: bitcoin::Txid,
    script: &bitcoin::ScriptBuf,
) -> anyhow::Result<u32> {
    let raw = rpc.get_raw_transaction(&txid, None).await?;
    let tx: bitcoin::Transaction = bitcoin::consensus::deserialize(&raw)?;
    let vout = tx
        .output
        .iter()
        .position(|o| o.script_pubkey == *script)
        .context("no output pays the script")?;
    Ok(u32::try_from(vout)?)
}

/// Watchers of validators 1 to 4 (validator 0 was removed).
fn watchers_of(
    ledger: &Ledger,
    rpc: &consort_mainchain::RpcClient,
    account: AccountId,
) -> Vec<(u64, consort_watcher::Watcher)> {
    watchers(ledger, rpc, &[1, 2, 3, JOINER], account)
}
