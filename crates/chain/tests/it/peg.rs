//! The peg's state machine against a real `litecoind -regtest`: headers relayed from the node,
//! deposits claimed with the node's own transactions and merkle proofs, a reorg made with
//! `invalidateblock`, and a peg-out batch signed 3-of-4 and broadcast to the node. After every
//! step the conservation audit is checked from both sides: the ledger's totals against the
//! values litecoind reports for the federation's coins.

use anyhow::{Context as _, ensure};
use bitcoin::{BlockHash, Txid, hashes::Hash as _};
use commonware_cryptography::{Signer as _, ed25519};
use commonware_glue::stateful::db::DatabaseSet as _;
use commonware_runtime::{Runner as _, tokio as cw_tokio};
use consort_chain::rules::Rules;
use consort_mainchain::{
    RpcClient, SigningKey,
    regtest::{LitecoindRegtest, RegtestOptions},
    script_pubkey_for_address,
};
use consort_peg::Peg;
use consort_state::{self as state, Databases, Store};
use consort_types::{
    AccountId, Amount, Call, Genesis, GenesisValidator, SignedTx, Tx, TxError,
    codec_util::{Blob, List},
    peg::{
        Batch, BatchStatus, ClaimRecord, ClaimStatus, DepositOutput, FederationCoin, PegConfig,
        PegError, PegTotals,
    },
    state_key::{self, peg as key},
};
use serde_json::json;
use std::collections::BTreeMap;

pub(super) const CHAIN_ID: u64 = 9;
pub(super) const CONFIRMATIONS: u32 = 3;
pub(super) const CONTEST: u32 = 4;
pub(super) const FEE_RATE: u64 = 10;

pub(super) fn validator(i: u64) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(1_000 + i)
}

pub(super) fn federation_key(i: u8) -> SigningKey {
    SigningKey::from_secret_bytes(&[11 + i; 32]).expect("valid secret")
}

pub(super) fn user(i: u64) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(5_000 + i)
}

pub(super) fn genesis() -> Genesis {
    let recovery: Vec<String> = (21u8..=23)
        .map(|s| {
            SigningKey::from_secret_bytes(&[s; 32])
                .expect("valid")
                .public_key()
                .to_string()
        })
        .collect();
    Genesis {
        chain_id: CHAIN_ID,
        genesis_time_ms: 0,
        validators: (0..4)
            .map(|i| GenesisValidator {
                public_key: AccountId::new(validator(i).public_key()),
                p2p_address: format!("127.0.0.1:{}", 31_000 + i),
            })
            .collect(),
        accounts: Vec::new(),
        governance: None,
        epoch_blocks: None,
        account_limits: None,
        empty_block_interval_ms: None,
        peg: Some(PegConfig {
            network: "litecoin-regtest".into(),
            asset: "LTC".parse().expect("asset"),
            federation_keys: (0..4)
                .map(|i| federation_key(i).public_key().to_string())
                .collect(),
            recovery_keys: recovery,
            recovery_threshold: 2,
            recovery_delay_blocks: 144,
            confirmations: CONFIRMATIONS,
            large_deposit_sat: 0,
            large_confirmations: 0,
            contest_blocks: CONTEST,
            fee_rate_sat_per_vb: FEE_RATE,
            federation_grace_blocks: 20,
            checkpoint: None,
        }),
        commerce: None,
    }
}

/// One node's state, executing one block per call.
pub(super) struct Ledger {
    pub(super) databases: Databases<cw_tokio::Context>,
    genesis: Genesis,
    pub(super) peg: Peg,
    gov: Option<consort_governance::Gov>,
    commerce: Option<consort_commerce::Commerce>,
    pub(super) height: u64,
    nonces: BTreeMap<AccountId, u64>,
    pub(super) relayed: u32,
}

impl Ledger {
    pub(super) async fn new(context: cw_tokio::Context) -> Self {
        Self::with_genesis(context, genesis()).await
    }

    pub(super) async fn with_genesis(context: cw_tokio::Context, genesis: Genesis) -> Self {
        let databases = crate::harness::open(context, "peg-test").await;
        let peg = Peg::from_genesis(&genesis)
            .expect("valid peg")
            .expect("peg configured");
        let gov = consort_governance::Gov::from_genesis(&genesis);
        let commerce = consort_commerce::Commerce::from_genesis(&genesis);
        let mut ledger = Self {
            databases,
            genesis,
            peg,
            gov,
            commerce,
            height: 0,
            nonces: BTreeMap::new(),
            relayed: 0,
        };
        assert!(ledger.block(Vec::new()).await.is_empty());
        ledger
    }

    /// Execute one block; the errors of refused transactions, in order.
    pub(super) async fn block(&mut self, txs: Vec<SignedTx>) -> Vec<TxError> {
        // What a node's admission refuses never reaches a block.
        for tx in &txs {
            let size = commonware_codec::Encode::encode(tx).len();
            assert!(
                size <= consort_types::limits::TX_SIZE_MAX,
                "a {} transaction of {size} bytes: over TX_SIZE_MAX, no node would take it",
                tx.tx.call.kind()
            );
        }
        self.height += 1;
        let rules = Rules {
            genesis: &self.genesis,
            peg: Some(&self.peg),
            gov: self.gov.as_ref(),
            commerce: self.commerce.as_ref(),
        };
        // Refused a place, then failed at execution (included, nonce used).
        crate::harness::block(&self.databases, self.height, txs, rules)
            .await
            .errors()
    }

    /// Submit calls from `key` in one block; the errors of refused ones.
    pub(super) async fn submit_all(
        &mut self,
        key: &ed25519::PrivateKey,
        calls: Vec<Call>,
    ) -> Vec<TxError> {
        let sender = AccountId::new(key.public_key());
        let mut nonce = *self.nonces.get(&sender).unwrap_or(&0);
        let txs: Vec<SignedTx> = calls
            .into_iter()
            .map(|call| {
                let tx = Tx {
                    chain_id: CHAIN_ID,
                    sender,
                    nonce,
                    call,
                }
                .sign(key);
                nonce += 1;
                tx
            })
            .collect();
        let errors = self.block(txs).await;
        // A refused call leaves later ones out of nonce order: take the nonce from the state.
        let account: Option<consort_types::Account> = state::read_account(&self.databases, &sender)
            .await
            .ok()
            .flatten();
        self.nonces.insert(sender, account.map_or(0, |a| a.nonce));
        errors
    }

    /// Submit one call from `key` in its own block.
    pub(super) async fn submit(
        &mut self,
        key: &ed25519::PrivateKey,
        call: Call,
    ) -> Result<(), TxError> {
        let sender = AccountId::new(key.public_key());
        let nonce = *self.nonces.get(&sender).unwrap_or(&0);
        let tx = Tx {
            chain_id: CHAIN_ID,
            sender,
            nonce,
            call,
        }
        .sign(key);
        let result = match self.block(vec![tx]).await.pop() {
            Some(error) => Err(error),
            None => Ok(()),
        };
        // A failed call uses its nonce too; a refused one does not: ask the state.
        let account: Option<consort_types::Account> = state::read_account(&self.databases, &sender)
            .await
            .ok()
            .flatten();
        self.nonces.insert(sender, account.map_or(0, |a| a.nonce));
        result
    }

    pub(super) async fn read<T: commonware_codec::Read<Cfg = ()>>(
        &self,
        key: &consort_types::Digest,
    ) -> Option<T> {
        let batch = self.databases.new_batches().await;
        let mut store = Store::new(&batch);
        store.get(key).await.expect("state reads")
    }

    /// Every federation coin, oldest first.
    pub(super) async fn coins(&self) -> Vec<FederationCoin> {
        let batch = self.databases.new_batches().await;
        let mut store = Store::new(&batch);
        let (coins, head) = self
            .peg
            .coins_after(&mut store, None, usize::MAX)
            .await
            .expect("coins read");
        let coins = coins.expect("a page from the start");
        assert_eq!(coins.len() as u64, head.len);
        coins
    }

    /// The outpoints of every claim in its contest period.
    pub(super) async fn pending(&self) -> Vec<consort_types::peg::Outpoint> {
        let batch = self.databases.new_batches().await;
        let mut store = Store::new(&batch);
        let (claims, _) = self
            .peg
            .pending_after(&mut store, None, usize::MAX)
            .await
            .expect("pending claims read");
        let claims = claims.expect("a page from the start");
        claims.into_iter().map(|(outpoint, _)| outpoint).collect()
    }

    /// The conservation invariant re-derived from every record.
    pub(super) async fn rederive(&self) -> anyhow::Result<()> {
        let batch = self.databases.new_batches().await;
        let mut store = Store::new(&batch);
        self.peg
            .rederive(&mut store)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))
    }

    /// Federation `generation`.
    pub(super) async fn federated(&self, generation: u32) -> consort_peg::Federated {
        let batch = self.databases.new_batches().await;
        let mut store = Store::new(&batch);
        self.peg
            .federation(&mut store, generation)
            .await
            .expect("federation reads")
    }

    /// The current federation's scripts.
    pub(super) async fn fed(&self) -> consort_mainchain::Federation {
        self.federated(self.totals().await.federation)
            .await
            .federation
    }

    pub(super) async fn totals(&self) -> PegTotals {
        self.read(&key::totals()).await.expect("totals exist")
    }

    pub(super) async fn pegged(&self, account: &AccountId) -> u64 {
        self.read(&state_key::balance(&self.peg.asset(), account))
            .await
            .unwrap_or(0)
    }

    /// Relay every header litecoind has that the ledger lacks, from validator 0, walking back
    /// to the fork point.
    pub(super) async fn relay(&mut self, rpc: &RpcClient) -> anyhow::Result<()> {
        let tip = rpc.get_best_block_hash().await?;
        let mut headers = Vec::new();
        let mut cursor = tip;
        loop {
            let known: Option<consort_types::peg::HeaderEntry> =
                self.read(&key::header(&cursor.to_byte_array())).await;
            if known.is_some() {
                break;
            }
            let raw = rpc.get_block_header_raw(&cursor).await?;
            let header: [u8; 80] = raw.as_slice().try_into()?;
            headers.push(header);
            cursor = BlockHash::from_byte_array(header[4..36].try_into()?);
        }
        headers.reverse();
        for chunk in headers.chunks(consort_types::peg::RELAY_HEADERS_MAX) {
            self.submit(
                &validator(0),
                Call::RelayHeaders {
                    headers: List(chunk.to_vec()),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("relay refused: {e}"))?;
        }
        self.relayed = rpc.get_block_count().await?;
        Ok(())
    }

    /// The conservation audit from both sides: the ledger's owed total, and the value
    /// litecoind reports for every coin the ledger says the federation holds (confirmed,
    /// unspent). A batch confirmed on the main chain but not yet on the ledger counts its
    /// change instead of its inputs.
    pub(super) async fn audit(&self, rpc: &RpcClient) -> anyhow::Result<(u64, u64)> {
        let totals = self.totals().await;
        let mut owed =
            totals.supply + totals.pending_claims + totals.fee_pool + totals.pending_peg_outs;
        self.rederive().await?;
        let mut outpoints: Vec<_> = self.coins().await.iter().map(|c| c.outpoint).collect();
        outpoints.extend(self.pending().await);
        let mut held = 0u64;
        if let Some(id) = totals.in_flight {
            let batch: Batch = self.read(&key::batch(id)).await.context("batch")?;
            let txid = Txid::from_byte_array(batch.txid);
            let mined = rpc.get_tx_out(&txid, 0, false).await?.is_some();
            if mined {
                // Paid on the main chain, not yet recorded here: what the ledger will take
                // off when it is (the burned amounts, less the quoted fees the batch did not
                // spend).
                let mut burned = 0;
                for request in &batch.requests.0 {
                    let request: consort_types::peg::PegOutRequest = self
                        .read(&key::request(*request))
                        .await
                        .context("request")?;
                    burned += request.amount;
                }
                owed = owed - burned + batch.quoted - batch.fee;
                let base = self
                    .federated(batch.change_to)
                    .await
                    .federation
                    .script_pubkey(&consort_mainchain::Custody::Base);
                for (vout, output) in batch.outputs.0.iter().enumerate() {
                    if output.script.as_slice() == base.as_bytes() {
                        let out = rpc.get_tx_out(&txid, vout as u32, false).await?;
                        held += out.context("change unspent")?.value.to_sat();
                    }
                }
            } else {
                outpoints.extend(batch.inputs.0.iter().map(|c| c.outpoint));
            }
        }
        for outpoint in outpoints {
            let txid = Txid::from_byte_array(outpoint.txid);
            let out = rpc
                .get_tx_out(&txid, outpoint.vout, false)
                .await?
                .with_context(|| {
                    format!("federation coin {txid}:{} is not unspent", outpoint.vout)
                })?;
            held += out.value.to_sat();
        }
        ensure!(
            owed == held,
            "audit fails: Consort owes {owed} sat, the federation holds {held} sat"
        );
        Ok((owed, held))
    }
}

pub(super) async fn deposit(
    node: &LitecoindRegtest,
    ledger: &Ledger,
    account: &AccountId,
    sats: u64,
) -> anyhow::Result<(Txid, u32)> {
    let wallet = node.wallet_rpc()?;
    let federation = ledger.fed().await;
    let peg = &ledger.peg;
    let address = peg.deposit_address(&federation, account);
    let txid = wallet
        .send_to_address(&address, bitcoin::Amount::from_sat(sats))
        .await?;
    let raw = node.rpc().get_raw_transaction(&txid, None).await?;
    let tx: bitcoin::Transaction = bitcoin::consensus::deserialize(&raw)?;
    let script = peg.deposit_script(&federation, account);
    let vout = tx
        .output
        .iter()
        .position(|o| o.script_pubkey == script)
        .context("deposit output")?;
    Ok((txid, u32::try_from(vout)?))
}

pub(super) async fn claim_call(
    rpc: &RpcClient,
    account: AccountId,
    txid: Txid,
    vout: u32,
) -> anyhow::Result<Call> {
    let transaction = rpc.get_raw_transaction(&txid, None).await?;
    let proof = rpc.get_tx_out_proof(&[txid], None).await?;
    Ok(Call::ClaimDeposit {
        transaction: Blob(transaction),
        proof: Blob(proof),
        outputs: List(vec![DepositOutput { account, vout }]),
    })
}

pub(super) fn peg_error(result: Result<(), TxError>) -> PegError {
    match result {
        Err(TxError::Peg(error)) => error,
        other => panic!("expected a peg error, got {other:?}"),
    }
}

/// Run `scenario` on the commonware tokio runtime with a fresh storage directory.
pub(super) fn on_tokio<F, Fut>(scenario: F)
where
    F: FnOnce(cw_tokio::Context) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("tempdir");
    let runner = cw_tokio::Runner::new(cw_tokio::Config::new().with_storage_directory(dir.path()));
    runner.start(|context| async move {
        scenario(context).await.expect("peg scenario");
    });
}

/// A litecoind whose blocks rust-bitcoin decodes (legacy serialization after MWEB).
pub(super) async fn start_litecoind() -> anyhow::Result<LitecoindRegtest> {
    Ok(LitecoindRegtest::start_with(RegtestOptions {
        extra_args: vec!["-rpcserialversion=0".into()],
        ..RegtestOptions::default()
    })
    .await?)
}

/// A litecoind whose wallet holds matured coins (101 blocks), its RPC client, and a fresh
/// ledger: where most scenarios start.
pub(super) async fn funded_start(
    context: cw_tokio::Context,
) -> anyhow::Result<(LitecoindRegtest, RpcClient, Ledger)> {
    let node = start_litecoind().await?;
    let rpc = node.rpc().clone();
    node.mine(101).await?;
    Ok((node, rpc, Ledger::new(context).await))
}

/// Watchers of validators 0, 1 and 3 (validator 2 is down), all watching `account`.
pub(super) fn three_watchers(
    ledger: &Ledger,
    rpc: &RpcClient,
    account: AccountId,
) -> Vec<(u64, consort_watcher::Watcher)> {
    [0u64, 1, 3]
        .into_iter()
        .map(|i| {
            let signer = (
                AccountId::new(validator(i).public_key()),
                federation_key(i as u8),
            );
            let mut watcher =
                consort_watcher::Watcher::new(ledger.peg.clone(), rpc.clone(), Some(signer));
            watcher.watch(account, 0);
            (i, watcher)
        })
        .collect()
}

#[test]
fn peg_in_contest_reorg_and_peg_out_against_litecoind() {
    on_tokio(run);
}

async fn run(context: cw_tokio::Context) -> anyhow::Result<()> {
    let (node, rpc, mut ledger) = funded_start(context).await?;
    let alice = user(1);
    let alice_id = AccountId::new(alice.public_key());
    let bob_id = AccountId::new(user(2).public_key());

    // Headers: validators only; a header with too little work is refused.
    let refused = ledger
        .submit(
            &alice,
            Call::RelayHeaders {
                headers: List(vec![[0u8; 80]]),
            },
        )
        .await;
    assert!(
        matches!(refused, Err(TxError::Unauthorized { .. })),
        "{refused:?}"
    );
    ledger.relay(&rpc).await?;
    let tip = rpc.get_best_block_hash().await?;
    let mut weak = bitcoin::block::Header {
        version: bitcoin::block::Version::from_consensus(0x2000_0000),
        prev_blockhash: tip,
        merkle_root: bitcoin::TxMerkleNode::all_zeros(),
        // After its parent's (so past the median time past): refused for its work alone.
        time: rpc
            .call::<serde_json::Value>("getblockheader", vec![json!(tip.to_string())])
            .await?["time"]
            .as_u64()
            .and_then(|t| u32::try_from(t + 1).ok())
            .context("tip time")?,
        bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
        nonce: 0,
    };
    while consort_mainchain::check_proof_of_work(&node.network(), &weak).is_ok() {
        weak.nonce += 1;
    }
    let weak_bytes: [u8; 80] = bitcoin::consensus::serialize(&weak).try_into().expect("80");
    let error = peg_error(
        ledger
            .submit(
                &validator(1),
                Call::RelayHeaders {
                    headers: List(vec![weak_bytes]),
                },
            )
            .await,
    );
    assert!(matches!(error, PegError::BadHeader { .. }), "{error:?}");
    assert_eq!(ledger.audit(&rpc).await?, (0, 0));

    // Peg-in: pay, then a claim before k confirmations is refused.
    let (txid, vout) = deposit(&node, &ledger, &alice_id, 100_000_000).await?;
    node.mine(1).await?;
    ledger.relay(&rpc).await?;
    let early = claim_call(&rpc, alice_id, txid, vout).await?;
    let error = peg_error(ledger.submit(&alice, early).await);
    assert_eq!(
        error,
        PegError::TooFewConfirmations {
            have: 1,
            need: CONFIRMATIONS
        }
    );
    node.mine(CONFIRMATIONS - 1).await?;
    ledger.relay(&rpc).await?;

    // Forged proof, wrong account, and a payment to an address that is not the federation's.
    let Call::ClaimDeposit {
        transaction, proof, ..
    } = claim_call(&rpc, alice_id, txid, vout).await?
    else {
        unreachable!()
    };
    let mut forged = proof.0.clone();
    let last = forged.len() - 2;
    forged[last - 40] ^= 0x01;
    let error = peg_error(
        ledger
            .submit(
                &alice,
                Call::ClaimDeposit {
                    transaction: transaction.clone(),
                    proof: Blob(forged),
                    outputs: List(vec![DepositOutput {
                        account: alice_id,
                        vout,
                    }]),
                },
            )
            .await,
    );
    assert!(matches!(error, PegError::BadProof(_)), "{error:?}");
    let error = peg_error(
        ledger
            .submit(
                &alice,
                Call::ClaimDeposit {
                    transaction: transaction.clone(),
                    proof: proof.clone(),
                    outputs: List(vec![DepositOutput {
                        account: bob_id,
                        vout,
                    }]),
                },
            )
            .await,
    );
    assert_eq!(error, PegError::NotADeposit { vout });
    let error = peg_error(
        ledger
            .submit(
                &alice,
                Call::ClaimDeposit {
                    transaction: transaction.clone(),
                    proof: proof.clone(),
                    outputs: List(vec![DepositOutput {
                        account: alice_id,
                        vout: 1 - vout,
                    }]),
                },
            )
            .await,
    );
    assert_eq!(error, PegError::NotADeposit { vout: 1 - vout });

    // The claim: pending, not spendable; the same outpoint again is refused.
    ledger
        .submit(&alice, claim_call(&rpc, alice_id, txid, vout).await?)
        .await
        .map_err(|e| anyhow::anyhow!("claim refused: {e}"))?;
    let totals = ledger.totals().await;
    assert_eq!((totals.pending_claims, totals.supply), (100_000_000, 0));
    assert_eq!(ledger.pegged(&alice_id).await, 0);
    assert_eq!(ledger.audit(&rpc).await?.0, 100_000_000);
    let error = peg_error(
        ledger
            .submit(&validator(2), claim_call(&rpc, alice_id, txid, vout).await?)
            .await,
    );
    assert!(matches!(error, PegError::AlreadyClaimed(_)), "{error:?}");

    // The contest period: spendable only after c more blocks.
    node.mine(CONTEST - 1).await?;
    ledger.relay(&rpc).await?;
    assert_eq!(ledger.pegged(&alice_id).await, 0);
    ledger.audit(&rpc).await?;
    node.mine(1).await?;
    ledger.relay(&rpc).await?;
    // The deposit prepays the fee of the input that will spend it, into the fee pool.
    let deposit_fee = ledger.peg.deposit_fee(&ledger.fed().await);
    assert!(deposit_fee > 0 && deposit_fee < 100_000);
    assert_eq!(ledger.pegged(&alice_id).await, 100_000_000 - deposit_fee);
    let totals = ledger.totals().await;
    assert_eq!(
        (totals.pending_claims, totals.supply, totals.fee_pool),
        (0, 100_000_000 - deposit_fee, deposit_fee)
    );
    ledger.audit(&rpc).await?;

    // Reorg: a second deposit is claimed, then its block is invalidated and a longer fork
    // without it is mined: the claim is void and nothing of it stays credited.
    let (txid2, vout2) = deposit(&node, &ledger, &alice_id, 50_000_000).await?;
    let mined = node.mine(CONFIRMATIONS).await?;
    ledger.relay(&rpc).await?;
    ledger
        .submit(&alice, claim_call(&rpc, alice_id, txid2, vout2).await?)
        .await
        .map_err(|e| anyhow::anyhow!("second claim refused: {e}"))?;
    assert_eq!(ledger.totals().await.pending_claims, 50_000_000);
    ledger.audit(&rpc).await?;
    rpc.invalidate_block(&mined[0]).await?;
    let fork_address = node
        .wallet_rpc()?
        .get_new_address("", Some("bech32"))
        .await?;
    for _ in 0..=CONFIRMATIONS {
        let _: serde_json::Value = rpc
            .call("generateblock", vec![json!(fork_address), json!([])])
            .await?;
    }
    ledger.relay(&rpc).await?;
    let outpoint = consort_types::peg::Outpoint {
        txid: txid2.to_byte_array(),
        vout: vout2,
    };
    let claim: ClaimRecord = ledger.read(&key::claim(&outpoint)).await.context("claim")?;
    assert_eq!(claim.status, ClaimStatus::Void.tag());
    let totals = ledger.totals().await;
    assert_eq!(
        (totals.pending_claims, totals.supply),
        (0, 100_000_000 - deposit_fee)
    );
    assert_eq!(ledger.pegged(&alice_id).await, 100_000_000 - deposit_fee);
    ledger.audit(&rpc).await?;

    // Peg-out: minimum and overdraft refused; then burn → batch → 3 of 4 signatures on the
    // ledger (validator 2 is down) → broadcast → confirmation recorded.
    let wallet = node.wallet_rpc()?;
    let payee = wallet.get_new_address("", Some("bech32")).await?;
    let script = script_pubkey_for_address(&node.network(), &payee)?;
    let (fee, minimum) = ledger
        .peg
        .quote(&ledger.fed().await, &script, ledger.relayed)?;
    let out = |amount: u64| Call::PegOut {
        amount: Amount::new(amount),
        script: Blob(script.to_bytes()),
    };
    let error = peg_error(ledger.submit(&alice, out(minimum - 1)).await);
    assert!(matches!(error, PegError::BelowMinimum { .. }), "{error:?}");
    let result = ledger.submit(&alice, out(100_000_001)).await;
    assert!(
        matches!(result, Err(TxError::InsufficientBalance { .. })),
        "{result:?}"
    );
    let amount = 40_000_000;
    ledger
        .submit(&alice, out(amount))
        .await
        .map_err(|e| anyhow::anyhow!("peg-out refused: {e}"))?;
    assert_eq!(ledger.pegged(&alice_id).await, 60_000_000 - deposit_fee);
    let totals = ledger.totals().await;
    assert_eq!(totals.pending_peg_outs, amount);
    let batch_id = totals.in_flight.context("a batch was built")?;
    ledger.audit(&rpc).await?;
    let batch: Batch = ledger.read(&key::batch(batch_id)).await.context("batch")?;
    let unsigned = ledger
        .peg
        .unsigned(&batch, &ledger.federated(batch.federation).await.federation);
    let signature_list = |key: &SigningKey| -> anyhow::Result<_> {
        let partial = unsigned.sign(key)?;
        Ok(List(
            partial
                .signatures
                .iter()
                .map(|s| Blob(s.to_vec()))
                .collect(),
        ))
    };
    // Validator 0 posting validator 1's signatures is refused.
    let error = peg_error(
        ledger
            .submit(
                &validator(0),
                Call::SignBatch {
                    batch: batch_id,
                    signatures: signature_list(&federation_key(1))?,
                },
            )
            .await,
    );
    assert!(matches!(error, PegError::BadSignatures(_)), "{error:?}");
    for i in [0u8, 1, 3] {
        ledger
            .submit(
                &validator(u64::from(i)),
                Call::SignBatch {
                    batch: batch_id,
                    signatures: signature_list(&federation_key(i))?,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("signature {i} refused: {e}"))?;
    }
    let batch: Batch = ledger.read(&key::batch(batch_id)).await.context("batch")?;
    assert_eq!(batch.status, BatchStatus::Signed.tag());
    let partials = {
        let parent = ledger.databases.new_batches().await;
        let mut store = Store::new(&parent);
        ledger.peg.signatures(&mut store, &batch).await?
    };
    let signed = unsigned.assemble(&partials)?;
    let sent = rpc
        .send_raw_transaction(&bitcoin::consensus::serialize(&signed))
        .await?;
    assert_eq!(sent.to_byte_array(), batch.txid);
    ledger.audit(&rpc).await?;
    node.mine(CONFIRMATIONS).await?;
    ledger.audit(&rpc).await?;
    ledger.relay(&rpc).await?;
    let proof = rpc.get_tx_out_proof(&[sent], None).await?;
    ledger
        .submit(
            &validator(3),
            Call::ConfirmBatch {
                batch: batch_id,
                proof: Blob(proof),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("confirmation refused: {e}"))?;
    let totals = ledger.totals().await;
    assert_eq!(totals.pending_peg_outs, 0);
    assert_eq!(totals.in_flight, None);
    assert_eq!(totals.fee_pool, deposit_fee + batch.quoted - batch.fee);
    let paid = rpc
        .get_tx_out(&sent, 0, false)
        .await?
        .context("payment output")?;
    assert_eq!(paid.value.to_sat(), amount - fee);
    assert_eq!(
        paid.script_pubkey.hex,
        script.to_hex_string(),
        "paid to the requested address"
    );
    ledger.audit(&rpc).await?;
    let change = ledger.coins().await;
    assert!(
        change.iter().any(|c| c.custody.is_none()),
        "change returned to the federation"
    );
    Ok(())
}

#[test]
fn a_coinbase_deposit_is_claimed_only_after_coinbase_maturity() {
    on_tokio(coinbase);
}

/// A miner pays a block reward straight to a deposit address: the federation could not spend
/// it for 100 blocks (and a reorganisation would delete it for good), so the claim waits for
/// coinbase maturity, not just the peg's k confirmations; the watcher waits as long.
async fn coinbase(context: cw_tokio::Context) -> anyhow::Result<()> {
    let (node, rpc, mut ledger) = funded_start(context).await?;
    let alice = user(1);
    let alice_id = AccountId::new(alice.public_key());
    let address = ledger.peg.deposit_address(&ledger.fed().await, &alice_id);
    let block = rpc
        .generate_to_address(1, &address)
        .await?
        .pop()
        .context("a mined block")?;
    let raw = rpc.get_block_raw(&block).await?;
    let mined: bitcoin::Block = bitcoin::consensus::deserialize(&raw)?;
    let reward = mined.txdata.first().context("a coinbase")?;
    assert!(reward.is_coinbase());
    let script = ledger.peg.deposit_script(&ledger.fed().await, &alice_id);
    let vout = u32::try_from(
        reward
            .output
            .iter()
            .position(|o| o.script_pubkey == script)
            .context("the reward pays the deposit address")?,
    )?;
    let txid = reward.compute_txid();
    let value = reward.output[vout as usize].value.to_sat();

    // Past the peg's k confirmations, short of maturity: refused, and the watcher does not try.
    node.mine(CONFIRMATIONS + 5).await?;
    ledger.relay(&rpc).await?;
    let mut watcher = consort_watcher::Watcher::new(ledger.peg.clone(), rpc.clone(), None);
    watcher.watch(alice_id, 0);
    let early = claim_call(&rpc, alice_id, txid, vout).await?;
    let error = peg_error(ledger.submit(&alice, early).await);
    assert_eq!(
        error,
        PegError::TooFewConfirmations {
            have: CONFIRMATIONS + 6,
            need: consort_mainchain::COINBASE_MATURITY_BLOCKS,
        }
    );
    let calls = watcher_duties(&ledger, &mut watcher).await?;
    assert!(
        !calls.iter().any(|c| matches!(c, Call::ClaimDeposit { .. })),
        "the watcher claims an immature coinbase: {calls:?}"
    );

    // At maturity the claim is taken; after the contest period the reward is credited.
    node.mine(consort_mainchain::COINBASE_MATURITY_BLOCKS - (CONFIRMATIONS + 6))
        .await?;
    ledger.relay(&rpc).await?;
    let calls = watcher_duties(&ledger, &mut watcher).await?;
    assert!(
        calls
            .iter()
            .any(|c| matches!(c, Call::ClaimDeposit { outputs, .. }
                if outputs.0.iter().any(|o| o.vout == vout))),
        "the watcher claims a mature coinbase: {calls:?}"
    );
    let claim = claim_call(&rpc, alice_id, txid, vout).await?;
    ledger.submit(&alice, claim).await.expect("claimed");
    node.mine(CONTEST).await?;
    ledger.relay(&rpc).await?;
    assert_eq!(
        ledger.pegged(&alice_id).await,
        value - ledger.peg.deposit_fee(&ledger.fed().await)
    );
    ledger.audit(&rpc).await?;
    Ok(())
}

#[test]
fn a_watcher_ignores_and_reports_deposits_below_the_minimum_and_claims_the_rest() {
    on_tokio(below_minimum);
}

/// A deposit one satoshi below the minimum is never claimed (the chain refuses such a claim,
/// so claiming it every round would only spend the validator's transactions); it is reported
/// once, and a normal deposit to the same account is claimed as usual.
async fn below_minimum(context: cw_tokio::Context) -> anyhow::Result<()> {
    let (node, rpc, mut ledger) = funded_start(context).await?;
    ledger.relay(&rpc).await?;
    let alice_id = AccountId::new(user(1).public_key());
    let minimum = ledger.peg.deposit_minimum(&ledger.fed().await);
    let (small, small_vout) = deposit(&node, &ledger, &alice_id, minimum - 1).await?;
    let (normal, normal_vout) = deposit(&node, &ledger, &alice_id, 100_000_000).await?;
    node.mine(CONFIRMATIONS).await?;
    ledger.relay(&rpc).await?;
    let mut watcher = consort_watcher::Watcher::new(ledger.peg.clone(), rpc.clone(), None);
    watcher.watch(alice_id, 0);
    for _ in 0..2 {
        let claimed: Vec<(Txid, u32)> = watcher_duties(&ledger, &mut watcher)
            .await?
            .into_iter()
            .filter_map(|call| match call {
                Call::ClaimDeposit {
                    transaction,
                    outputs,
                    ..
                } => bitcoin::consensus::deserialize::<bitcoin::Transaction>(&transaction.0)
                    .ok()
                    .map(|tx| (tx.compute_txid(), outputs.0[0].vout)),
                _ => None,
            })
            .collect();
        assert_eq!(claimed, vec![(normal, normal_vout)]);
    }
    // Watching again rescans from the start: still reported once.
    watcher.watch(AccountId::new(user(2).public_key()), 0);
    watcher_duties(&ledger, &mut watcher).await?;
    let ignored: Vec<_> = watcher.ignored().cloned().collect();
    assert_eq!(
        ignored,
        vec![consort_watcher::IgnoredDeposit {
            outpoint: consort_types::peg::Outpoint {
                txid: small.to_byte_array(),
                vout: small_vout,
            },
            account: alice_id,
            value: minimum - 1,
            minimum,
        }]
    );
    Ok(())
}

#[test]
fn validator_watchers_claim_sign_broadcast_and_confirm_on_their_own() {
    on_tokio(watchers);
}

async fn watchers(context: cw_tokio::Context) -> anyhow::Result<()> {
    let (node, rpc, mut ledger) = funded_start(context).await?;
    let alice = user(1);
    let alice_id = AccountId::new(alice.public_key());
    // Validator 2 is down: three watchers do everything.
    let mut watchers = three_watchers(&ledger, &rpc, alice_id);
    let (txid, vout) = deposit(&node, &ledger, &alice_id, 30_000_000).await?;
    let mut rounds = 0;
    while ledger.pegged(&alice_id).await < 30_000_000 - ledger.peg.deposit_fee(&ledger.fed().await)
    {
        rounds += 1;
        ensure!(rounds < 30, "the deposit was not credited by the watchers");
        node.mine(1).await?;
        watcher_round(&mut ledger, &mut watchers).await?;
        ledger.audit(&rpc).await?;
    }
    let claim: ClaimRecord = ledger
        .read(&key::claim(&consort_types::peg::Outpoint {
            txid: txid.to_byte_array(),
            vout,
        }))
        .await
        .context("claim record")?;
    assert_eq!(claim.status, ClaimStatus::Credited.tag());

    let payee = node
        .wallet_rpc()?
        .get_new_address("", Some("bech32"))
        .await?;
    let script = script_pubkey_for_address(&node.network(), &payee)?;
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
    let mut rounds = 0;
    while ledger.totals().await.pending_peg_outs > 0 {
        rounds += 1;
        ensure!(rounds < 30, "the peg-out was not completed by the watchers");
        watcher_round(&mut ledger, &mut watchers).await?;
        ledger.audit(&rpc).await?;
        node.mine(1).await?;
    }
    let received: f64 = node
        .wallet_rpc()?
        .call("getreceivedbyaddress", vec![json!(payee), json!(1)])
        .await?;
    let (fee, _) = ledger
        .peg
        .quote(&ledger.fed().await, &script, ledger.relayed)?;
    assert_eq!(
        bitcoin::Amount::from_btc(received)?.to_sat(),
        10_000_000 - fee,
        "the payee received the amount less the quoted fee"
    );
    ledger.audit(&rpc).await?;
    Ok(())
}

/// One round of every watcher's duties, each validator's calls in one block.
/// What `watcher` would submit now, read from the ledger's state.
pub(super) async fn watcher_duties(
    ledger: &Ledger,
    watcher: &mut consort_watcher::Watcher,
) -> anyhow::Result<Vec<Call>> {
    let parent = ledger.databases.new_batches().await;
    let mut store = Store::new(&parent);
    Ok(watcher.duties(&mut store).await?)
}

pub(super) async fn watcher_round(
    ledger: &mut Ledger,
    watchers: &mut [(u64, consort_watcher::Watcher)],
) -> anyhow::Result<()> {
    for (i, watcher) in watchers.iter_mut() {
        let calls = {
            let parent = ledger.databases.new_batches().await;
            let mut store = Store::new(&parent);
            watcher.duties(&mut store).await?
        };
        let _ = ledger.submit_all(&validator(*i), calls).await;
    }
    Ok(())
}

#[test]
fn deposits_after_mweb_activation_and_from_an_mweb_wallet_are_claimed_and_spent() {
    on_tokio(mweb);
}

async fn mweb(context: cw_tokio::Context) -> anyhow::Result<()> {
    use consort_mainchain::regtest::MWEB_ACTIVATION_HEIGHT;
    let node = start_litecoind().await?;
    let rpc = node.rpc().clone();
    let height = node.activate_mweb().await?;
    ensure!(height >= MWEB_ACTIVATION_HEIGHT);
    let mut ledger = Ledger::new(context).await;
    let alice = user(1);
    let alice_id = AccountId::new(alice.public_key());
    let mut watchers = three_watchers(&ledger, &rpc, alice_id);
    // A deposit from an ordinary wallet after activation, and one from an MWEB wallet: that
    // one has no visible sender and lands in the block's HogEx transaction.
    deposit(&node, &ledger, &alice_id, 20_000_000).await?;
    let wallet = node.wallet_rpc()?;
    rpc.create_wallet("mweb-payer").await?;
    let payer = rpc.for_wallet("mweb-payer")?;
    let payer_mweb = payer.get_new_address("", Some("mweb")).await?;
    wallet
        .send_to_address(&payer_mweb, bitcoin::Amount::from_sat(300_000_000))
        .await?;
    node.mine(1).await?;
    payer
        .send_to_address(
            &ledger.peg.deposit_address(&ledger.fed().await, &alice_id),
            bitcoin::Amount::from_sat(100_000_000),
        )
        .await?;
    let mut rounds = 0;
    while ledger.pegged(&alice_id).await
        < 120_000_000 - 2 * ledger.peg.deposit_fee(&ledger.fed().await)
    {
        rounds += 1;
        ensure!(rounds < 40, "the MWEB-era deposits were not both credited");
        node.mine(1).await?;
        watcher_round(&mut ledger, &mut watchers).await?;
        ledger.audit(&rpc).await?;
    }
    let mut mweb_coins = 0;
    for coin in ledger.coins().await {
        ensure!(coin.height >= MWEB_ACTIVATION_HEIGHT);
        if coin.mweb {
            mweb_coins += 1;
            ensure!(coin.value == 100_000_000);
        }
    }
    ensure!(
        mweb_coins == 1,
        "the MWEB wallet's deposit is flagged as a HogEx output"
    );

    // A peg-out that needs both coins: the HogEx coin is spent too, and litecoind accepts it.
    let payee = wallet.get_new_address("", Some("bech32")).await?;
    let script = script_pubkey_for_address(&node.network(), &payee)?;
    ledger
        .submit(
            &alice,
            Call::PegOut {
                amount: Amount::new(110_000_000),
                script: Blob(script.to_bytes()),
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("peg-out refused: {e}"))?;
    let mut rounds = 0;
    while ledger.totals().await.pending_peg_outs > 0 {
        rounds += 1;
        ensure!(
            rounds < 40,
            "the peg-out spending the HogEx coin did not complete"
        );
        watcher_round(&mut ledger, &mut watchers).await?;
        ledger.audit(&rpc).await?;
        node.mine(1).await?;
    }
    let (fee, _) = ledger
        .peg
        .quote(&ledger.fed().await, &script, ledger.relayed)?;
    let received: f64 = wallet
        .call("getreceivedbyaddress", vec![json!(payee), json!(1)])
        .await?;
    assert_eq!(
        bitcoin::Amount::from_btc(received)?.to_sat(),
        110_000_000 - fee
    );
    ledger.audit(&rpc).await?;
    Ok(())
}
