//! The two-way peg's state machine: an on-chain light client of the main chain's headers,
//! deposit claims with a contest period, peg-out requests paid in batches the validators sign
//! on chain, and the conservation invariant.
//!
//! Everything here is deterministic: it reads only the block's transactions and the state, and
//! every check of main-chain data (proof of work, difficulty, merkle proofs, scripts, ECDSA
//! signatures) is a pure function from `consort-mainchain`.
//!
//! Accounting, in satoshis, kept in [`PegTotals`] and re-derived from the records after every
//! block that touches the peg:
//!
//! ```text
//! supply + pending_claims + fee_pool + pending_peg_outs
//!     = Σ federation coins + Σ inputs of the batch in flight   (+ Σ pending claim values)
//! ```
//!
//! * claim: `pending_claims += v` and a pending claim record of `v`;
//! * maturity: `pending_claims -= v`, `supply += v`, a coin record of `v`;
//! * void (reorg): `pending_claims -= v`, the claim record is void;
//! * peg-out request of `a` with quoted fee `q`: `supply -= a`, `pending_peg_outs += a`;
//! * batch confirmed paying `Σ(a - q)` with real fee `f` and change `c`: the inputs leave,
//!   the change arrives, `pending_peg_outs -= Σa`, `fee_pool += Σq - f`.

use crate::{
    error::{BlockError, Fail},
    ledger::{credit, debit},
    state::Runtime,
    store::Store,
};
use bitcoin::{
    Amount as Sats, BlockHash, FeeRate, OutPoint, ScriptBuf, Transaction, TxOut, Txid,
    hashes::Hash as _,
    pow::{CompactTarget, Work},
    secp256k1::PublicKey,
};
use consort_mainchain::{
    self as mc, Custody, DepositAccount, Federation, HeaderRecord, Network, PartialSignatures,
    Recovery, SpendParams, UnsignedSpend, Utxo,
};
use consort_types::{
    AccountId, Asset, Call, Genesis, TxError,
    codec_util::{Blob, List},
    peg::{
        BATCH_REQUESTS_MAX, Batch, BatchOutput, BatchStatus, ClaimRecord, ClaimStatus,
        FEDERATION_UTXOS_MAX, FederationCoin, HeaderEntry, MainTip, Outpoint, PEG_OUT_QUEUE_MAX,
        PENDING_CLAIMS_MAX, PegConfig, PegError, PegOutRequest, PegOutStatus, PegTotals,
    },
    state_key::peg as key,
};
use std::collections::BTreeMap;

/// Lists kept as single records.
type Outpoints = List<Outpoint, FEDERATION_UTXOS_MAX>;
type Ids = List<u64, PEG_OUT_QUEUE_MAX>;

/// Regtest genesis blocks (Litecoin and Bitcoin share the timestamp and bits).
const REGTEST_GENESIS_TIME: u32 = 1_296_688_602;
const REGTEST_BITS: u32 = 0x207f_ffff;

/// Parse `litecoin-regtest`, `bitcoin-mainnet` and the like.
pub fn parse_network(name: &str) -> Option<Network> {
    Some(match name {
        "litecoin-regtest" => Network::LITECOIN_REGTEST,
        "litecoin-testnet" => Network::LITECOIN_TESTNET,
        "litecoin-mainnet" => Network::LITECOIN_MAINNET,
        "bitcoin-regtest" => Network::BITCOIN_REGTEST,
        "bitcoin-testnet" => Network::BITCOIN_TESTNET,
        "bitcoin-mainnet" => Network::BITCOIN_MAINNET,
        _ => return None,
    })
}

/// The peg of a chain: its configuration, parsed and checked once.
#[derive(Clone, Debug)]
pub struct Peg {
    /// The configuration from genesis.
    pub config: PegConfig,
    /// The main chain.
    pub network: Network,
    /// The custody scripts' keys.
    pub federation: Federation,
    /// Federation keys in validator order.
    keys: Vec<PublicKey>,
    /// Validator accounts in genesis order.
    validators: Vec<AccountId>,
    checkpoint: HeaderEntry,
}

fn parse_key(text: &str) -> Result<PublicKey, String> {
    text.parse()
        .map_err(|e| format!("{text:?} is not a compressed secp256k1 public key: {e}"))
}

impl Peg {
    /// The peg `genesis` configures, if any.
    ///
    /// # Errors
    /// What is wrong with the configuration.
    pub fn from_genesis(genesis: &Genesis) -> Result<Option<Self>, String> {
        let Some(config) = &genesis.peg else {
            return Ok(None);
        };
        let network = parse_network(&config.network).ok_or_else(|| {
            format!(
                "unknown network {:?}: use litecoin-regtest, litecoin-testnet, litecoin-mainnet, \
                 bitcoin-regtest, bitcoin-testnet or bitcoin-mainnet",
                config.network
            )
        })?;
        let keys = config
            .federation_keys
            .iter()
            .map(|k| parse_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.len() != genesis.validators.len() {
            return Err("one federation key per validator, in validator order".into());
        }
        let recovery_keys = config
            .recovery_keys
            .iter()
            .map(|k| parse_key(k))
            .collect::<Result<Vec<_>, _>>()?;
        let recovery = Recovery::new(
            recovery_keys,
            usize::from(config.recovery_threshold),
            config.recovery_delay_blocks,
        )
        .map_err(|e| e.to_string())?;
        let federation = Federation::new(keys.clone(), recovery).map_err(|e| e.to_string())?;
        if config.confirmations == 0 {
            return Err("confirmations must be at least 1".into());
        }
        mc::quote_fee(
            &federation,
            &spend_params(network, config, 0),
            &ScriptBuf::new(),
        )
        .map_err(|e| format!("fee rate: {e}"))?;
        let checkpoint = match &config.checkpoint {
            Some(checkpoint) => {
                let header = mc::decode_header(checkpoint.header.as_slice())
                    .map_err(|e| format!("checkpoint header: {e}"))?;
                let chainwork: [u8; 32] = checkpoint
                    .chainwork
                    .as_slice()
                    .try_into()
                    .map_err(|_| "checkpoint chainwork must be 32 bytes".to_string())?;
                mc::check_proof_of_work(&network, &header)
                    .map_err(|e| format!("checkpoint header: {e}"))?;
                HeaderEntry {
                    hash: header.block_hash().to_byte_array(),
                    prev: header.prev_blockhash.to_byte_array(),
                    height: checkpoint.height,
                    bits: header.bits.to_consensus(),
                    time: header.time,
                    chainwork,
                    last_regular_bits: header.bits.to_consensus(),
                }
            }
            None if network.kind == mc::NetworkKind::Regtest => {
                let bits = CompactTarget::from_consensus(REGTEST_BITS);
                let work = mc::target_from_bits(&network, bits)
                    .map_err(|e| e.to_string())?
                    .to_work();
                HeaderEntry {
                    hash: network.genesis_hash().to_byte_array(),
                    prev: [0; 32],
                    height: 0,
                    bits: REGTEST_BITS,
                    time: REGTEST_GENESIS_TIME,
                    chainwork: work.to_be_bytes(),
                    last_regular_bits: REGTEST_BITS,
                }
            }
            None => return Err("testnet and mainnet pegs need a checkpoint header".into()),
        };
        Ok(Some(Self {
            config: config.clone(),
            network,
            federation,
            keys,
            validators: genesis.validators.iter().map(|v| v.public_key).collect(),
            checkpoint,
        }))
    }

    /// The pegged asset.
    pub const fn asset(&self) -> Asset {
        self.config.asset
    }

    /// The validator index of `account`, if it is a validator.
    pub fn validator_index(&self, account: &AccountId) -> Option<u16> {
        self.validators
            .iter()
            .position(|v| v == account)
            .and_then(|i| u16::try_from(i).ok())
    }

    /// Validator `index`'s federation key.
    pub fn federation_key(&self, index: u16) -> Option<&PublicKey> {
        self.keys.get(usize::from(index))
    }

    /// `account`'s deposit script.
    pub fn deposit_script(&self, account: &AccountId) -> ScriptBuf {
        self.federation
            .script_pubkey(&Custody::Deposit(DepositAccount::new(*account.as_bytes())))
    }

    /// `account`'s deposit address.
    pub fn deposit_address(&self, account: &AccountId) -> String {
        self.federation
            .deposit_address(&self.network, DepositAccount::new(*account.as_bytes()))
    }

    /// Confirmations a deposit of `value` satoshis needs.
    pub const fn confirmations_for(&self, value: u64) -> u32 {
        if self.config.large_deposit_sat > 0
            && value >= self.config.large_deposit_sat
            && self.config.large_confirmations > self.config.confirmations
        {
            self.config.large_confirmations
        } else {
            self.config.confirmations
        }
    }

    /// What a deposit pays, out of its value, for the input that will one day spend it (into
    /// the fee pool), in satoshis.
    pub fn deposit_fee(&self) -> u64 {
        mc::deposit_input_fee(
            &self.federation,
            &spend_params(self.network, &self.config, 0),
        )
        .map_or(u64::MAX, |fee| fee.to_sat())
    }

    /// The fee quote and the minimum amount of a peg-out to `script`.
    ///
    /// # Errors
    /// [`PegError::BadDestination`] for a script that is not a standard output or is the
    /// federation's.
    pub fn quote(&self, script: &ScriptBuf, tip_height: u32) -> Result<(u64, u64), PegError> {
        let standard = script.is_p2pkh()
            || script.is_p2sh()
            || script.is_p2wpkh()
            || script.is_p2wsh()
            || script.is_p2tr();
        if !standard || *script == self.federation.script_pubkey(&Custody::Base) {
            return Err(PegError::BadDestination);
        }
        let params = spend_params(self.network, &self.config, tip_height);
        let fee = mc::quote_fee(&self.federation, &params, script)
            .map_err(|_| PegError::BadDestination)?;
        let minimum = mc::payment_minimum(&self.federation, &params, script)
            .map_err(|_| PegError::BadDestination)?;
        Ok((fee.to_sat(), minimum.to_sat()))
    }

    /// Write the light client's starting header and empty totals (block 1).
    pub async fn init<E: Runtime>(&self, store: &mut Store<'_, E>) -> Result<(), BlockError> {
        let entry = self.checkpoint;
        store.put(&key::header(&entry.hash), &entry).await?;
        store.put(&key::height(entry.height), &entry.hash).await?;
        store
            .put(
                &key::tip(),
                &MainTip {
                    hash: entry.hash,
                    height: entry.height,
                },
            )
            .await?;
        store.put(&key::totals(), &PegTotals::default()).await
    }

    /// Apply a peg call by `sender` in block `height`.
    pub async fn apply<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        call: &Call,
        height: u64,
    ) -> Result<(), Fail> {
        match call {
            Call::RelayHeaders { headers } => {
                self.validator_index(sender).ok_or(TxError::Unauthorized {
                    call: call.kind(),
                    reason: "only validators relay main-chain headers",
                })?;
                self.relay(store, &headers.0).await
            }
            Call::ClaimDeposit {
                account,
                transaction,
                proof,
                vout,
            } => {
                self.claim(
                    store,
                    account,
                    transaction.as_slice(),
                    proof.as_slice(),
                    *vout,
                    height,
                )
                .await
            }
            Call::PegOut { amount, script } => {
                self.peg_out(store, sender, amount.units(), script, height)
                    .await
            }
            Call::SignBatch { batch, signatures } => {
                let index = self.validator_index(sender).ok_or(TxError::Unauthorized {
                    call: call.kind(),
                    reason: "only validators sign peg-out batches",
                })?;
                self.sign(store, index, *batch, signatures).await
            }
            Call::ConfirmBatch { batch, proof } => {
                self.confirm(store, *batch, proof.as_slice()).await
            }
            _ => unreachable!("not a peg call"),
        }
    }

    async fn tip<E: Runtime>(&self, store: &mut Store<'_, E>) -> Result<MainTip, BlockError> {
        store
            .get(&key::tip())
            .await?
            .ok_or(BlockError::CorruptState(key::tip()))
    }

    async fn totals<E: Runtime>(&self, store: &mut Store<'_, E>) -> Result<PegTotals, BlockError> {
        store
            .get(&key::totals())
            .await?
            .ok_or(BlockError::CorruptState(key::totals()))
    }

    async fn best_at<E: Runtime>(
        store: &mut Store<'_, E>,
        height: u32,
    ) -> Result<Option<[u8; 32]>, BlockError> {
        store.get(&key::height(height)).await
    }

    async fn relay<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        headers: &[[u8; 80]],
    ) -> Result<(), Fail> {
        let tip = self.tip(store).await?;
        let mut best: HeaderEntry = store
            .get(&key::header(&tip.hash))
            .await?
            .ok_or(BlockError::CorruptState(key::header(&tip.hash)))?;
        let mut last: Option<HeaderEntry> = None;
        let mut added = 0usize;
        for (index, raw) in headers.iter().enumerate() {
            let bad = |reason: String| PegError::BadHeader { index, reason };
            let header = mc::decode_header(raw).map_err(|e| bad(e.to_string()))?;
            let hash = header.block_hash().to_byte_array();
            if let Some(known) = store.get::<HeaderEntry>(&key::header(&hash)).await? {
                last = Some(known);
                continue;
            }
            let prev = header.prev_blockhash.to_byte_array();
            let parent = match last {
                Some(entry) if entry.hash == prev => entry,
                _ => store
                    .get::<HeaderEntry>(&key::header(&prev))
                    .await?
                    .ok_or(PegError::UnknownParent { index })?,
            };
            // The retarget reads the period's first timestamp on the best chain: forks deeper
            // than a retarget period do not happen on the networks we peg to.
            let mut times = BTreeMap::new();
            let interval = self.network.retarget_interval_blocks();
            for back in [interval - 1, interval] {
                if let Some(at) = parent.height.checked_sub(back)
                    && let Some(hash) = Self::best_at(store, at).await?
                    && let Some(entry) = store.get::<HeaderEntry>(&key::header(&hash)).await?
                {
                    times.insert(at, entry.time);
                }
            }
            let record = mc::verify_header(&self.network, &to_record(&parent), &header, &times)
                .map_err(|e| bad(e.to_string()))?;
            let entry = HeaderEntry {
                hash,
                prev,
                height: record.height,
                bits: record.bits.to_consensus(),
                time: record.time,
                chainwork: record.chainwork.to_be_bytes(),
                last_regular_bits: record.last_regular_bits.to_consensus(),
            };
            store.put(&key::header(&hash), &entry).await?;
            added += 1;
            if entry.chainwork > best.chainwork {
                best = entry;
            }
            last = Some(entry);
        }
        if added == 0 {
            return Err(PegError::NothingNew.into());
        }
        if best.hash != tip.hash {
            self.reorganize(store, &tip, &best).await?;
        }
        self.settle_claims(store).await
    }

    /// Point the height index at `best`'s chain.
    async fn reorganize<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        old: &MainTip,
        best: &HeaderEntry,
    ) -> Result<(), BlockError> {
        let mut cursor = *best;
        loop {
            if Self::best_at(store, cursor.height).await? == Some(cursor.hash) {
                break;
            }
            store.put(&key::height(cursor.height), &cursor.hash).await?;
            if cursor.height == self.checkpoint.height {
                break;
            }
            cursor = store
                .get(&key::header(&cursor.prev))
                .await?
                .ok_or(BlockError::CorruptState(key::header(&cursor.prev)))?;
        }
        for stale in best.height.saturating_add(1)..=old.height {
            store.delete(&key::height(stale)).await?;
        }
        store
            .put(
                &key::tip(),
                &MainTip {
                    hash: best.hash,
                    height: best.height,
                },
            )
            .await
    }

    /// Credit claims whose contest period is over; void those whose block left the best chain.
    async fn settle_claims<E: Runtime>(&self, store: &mut Store<'_, E>) -> Result<(), Fail> {
        let tip = self.tip(store).await?;
        let pending: Outpoints = store.get(&key::pending()).await?.unwrap_or_default();
        if pending.0.is_empty() {
            return Ok(());
        }
        let mut totals = self.totals(store).await?;
        let mut coins: Outpoints = store.get(&key::coins()).await?.unwrap_or_default();
        let mut still = Vec::with_capacity(pending.0.len());
        for outpoint in pending.0 {
            let mut claim: ClaimRecord = store
                .get(&key::claim(&outpoint))
                .await?
                .ok_or(BlockError::CorruptState(key::claim(&outpoint)))?;
            let on_best = Self::best_at(store, claim.height).await? == Some(claim.block);
            if !on_best {
                claim.status = ClaimStatus::Void.tag();
                totals.pending_claims = sub(totals.pending_claims, claim.value)?;
            } else if tip.height >= claim.matures_at {
                claim.status = ClaimStatus::Credited.tag();
                let fee = self.deposit_fee().min(claim.value);
                totals.pending_claims = sub(totals.pending_claims, claim.value)?;
                totals.supply = add(totals.supply, claim.value - fee)?;
                totals.fee_pool = add(totals.fee_pool, fee)?;
                credit(store, &self.asset(), &claim.account, claim.value - fee).await?;
                store
                    .put(
                        &key::coin(&outpoint),
                        &FederationCoin {
                            outpoint,
                            value: claim.value,
                            custody: Some(claim.account),
                            height: claim.height,
                            mweb: claim.mweb,
                        },
                    )
                    .await?;
                coins.0.push(outpoint);
            } else {
                still.push(outpoint);
                continue;
            }
            store.put(&key::claim(&outpoint), &claim).await?;
        }
        store
            .put(
                &key::pending(),
                &List::<Outpoint, FEDERATION_UTXOS_MAX>(still),
            )
            .await?;
        store.put(&key::coins(), &coins).await?;
        store.put(&key::totals(), &totals).await?;
        Ok(())
    }

    /// Where a merkle proof puts a transaction: its block, which must be on the best chain,
    /// and that block's confirmations.
    async fn locate<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        proof: &[u8],
        txid: Txid,
    ) -> Result<(HeaderEntry, u32), Fail> {
        let block = mc::decode_tx_out_proof(proof)
            .map_err(|e| PegError::BadProof(e.to_string()))?
            .header
            .block_hash();
        mc::verify_tx_out_proof(proof, block, txid)
            .map_err(|e| PegError::BadProof(e.to_string()))?;
        let hash = block.to_byte_array();
        let not_best = || PegError::NotInBestChain(block.to_string());
        let entry: HeaderEntry = store.get(&key::header(&hash)).await?.ok_or_else(not_best)?;
        if Self::best_at(store, entry.height).await? != Some(hash) {
            return Err(not_best().into());
        }
        let tip = self.tip(store).await?;
        Ok((entry, tip.height - entry.height + 1))
    }

    async fn claim<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        account: &AccountId,
        transaction: &[u8],
        proof: &[u8],
        vout: u32,
        height: u64,
    ) -> Result<(), Fail> {
        let tx: Transaction = bitcoin::consensus::deserialize(transaction)
            .map_err(|e| PegError::BadTransaction(e.to_string()))?;
        let txid = tx.compute_txid();
        let (block, confirmations) = self.locate(store, proof, txid).await?;
        let output = tx
            .output
            .get(vout as usize)
            .ok_or(PegError::NotADeposit { vout })?;
        if output.script_pubkey != self.deposit_script(account) || output.value == Sats::ZERO {
            return Err(PegError::NotADeposit { vout }.into());
        }
        let value = output.value.to_sat();
        let minimum = self.deposit_fee().saturating_mul(2);
        if value < minimum {
            return Err(PegError::DepositTooSmall { value, minimum }.into());
        }
        let need = self.confirmations_for(value);
        if confirmations < need {
            return Err(PegError::TooFewConfirmations {
                have: confirmations,
                need,
            }
            .into());
        }
        let outpoint = Outpoint {
            txid: txid.to_byte_array(),
            vout,
        };
        if let Some(existing) = store.get::<ClaimRecord>(&key::claim(&outpoint)).await?
            && existing.status != ClaimStatus::Void.tag()
        {
            return Err(PegError::AlreadyClaimed(OutPoint::new(txid, vout).to_string()).into());
        }
        let mut pending: Outpoints = store.get(&key::pending()).await?.unwrap_or_default();
        let coins: Outpoints = store.get(&key::coins()).await?.unwrap_or_default();
        if pending.0.len() >= PENDING_CLAIMS_MAX {
            return Err(PegError::AtCapacity("pending claims").into());
        }
        if pending.0.len() + coins.0.len() >= FEDERATION_UTXOS_MAX {
            return Err(PegError::AtCapacity("federation coins").into());
        }
        let matures_at = block
            .height
            .saturating_add(need)
            .saturating_add(self.config.contest_blocks)
            .saturating_sub(1);
        store
            .put(
                &key::claim(&outpoint),
                &ClaimRecord {
                    account: *account,
                    value,
                    block: block.hash,
                    height: block.height,
                    mweb: mc::is_hogex(&tx),
                    status: ClaimStatus::Pending.tag(),
                    claimed_at: height,
                    matures_at,
                },
            )
            .await?;
        pending.0.push(outpoint);
        store.put(&key::pending(), &pending).await?;
        let mut totals = self.totals(store).await?;
        totals.pending_claims = add(totals.pending_claims, value)?;
        store.put(&key::totals(), &totals).await?;
        self.settle_claims(store).await
    }

    async fn peg_out<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        amount: u64,
        script: &Blob<{ consort_types::peg::PAYOUT_SCRIPT_SIZE_MAX }>,
        height: u64,
    ) -> Result<(), Fail> {
        let tip = self.tip(store).await?;
        let script_buf = ScriptBuf::from_bytes(script.0.clone());
        if script_buf == self.deposit_script(sender) {
            return Err(PegError::BadDestination.into());
        }
        let (fee, minimum) = self.quote(&script_buf, tip.height)?;
        if amount < minimum {
            return Err(PegError::BelowMinimum { minimum, fee }.into());
        }
        let mut queue: Ids = store.get(&key::queue()).await?.unwrap_or_default();
        if queue.0.len() >= PEG_OUT_QUEUE_MAX {
            return Err(PegError::AtCapacity("peg-out queue").into());
        }
        debit(store, &self.asset(), sender, amount).await?;
        let mut totals = self.totals(store).await?;
        totals.supply = sub(totals.supply, amount)?;
        totals.pending_peg_outs = add(totals.pending_peg_outs, amount)?;
        let id = totals.next_request;
        totals.next_request += 1;
        store
            .put(
                &key::request(id),
                &PegOutRequest {
                    id,
                    account: *sender,
                    amount,
                    fee,
                    script: script.clone(),
                    status: PegOutStatus::Queued.tag(),
                    batch: None,
                    requested_at: height,
                },
            )
            .await?;
        queue.0.push(id);
        store.put(&key::queue(), &queue).await?;
        store.put(&key::totals(), &totals).await?;
        Ok(())
    }

    fn rebuild(&self, batch: &Batch) -> UnsignedSpend {
        let inputs = batch.inputs.0.iter().map(to_utxo).collect();
        let outputs = batch
            .outputs
            .0
            .iter()
            .map(|o| TxOut {
                value: Sats::from_sat(o.value),
                script_pubkey: ScriptBuf::from_bytes(o.script.0.clone()),
            })
            .collect();
        UnsignedSpend::rebuild(&self.federation, inputs, outputs)
            .expect("a recorded batch was built from these coins and outputs")
    }

    /// The unsigned transaction of a batch (what validators sign).
    pub fn unsigned(&self, batch: &Batch) -> UnsignedSpend {
        self.rebuild(batch)
    }

    async fn sign<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        index: u16,
        id: u64,
        signatures: &List<
            Blob<{ consort_types::peg::PEG_SIGNATURE_SIZE_MAX }>,
            { consort_types::peg::BATCH_INPUTS_MAX },
        >,
    ) -> Result<(), Fail> {
        let mut batch: Batch = store
            .get(&key::batch(id))
            .await?
            .ok_or(PegError::BadBatch(id))?;
        if batch.status == BatchStatus::Confirmed.tag() {
            return Err(PegError::BadBatch(id).into());
        }
        if batch.signers.0.contains(&index) {
            return Err(PegError::AlreadySigned(id).into());
        }
        let parsed = signatures
            .0
            .iter()
            .map(|s| bitcoin::ecdsa::Signature::from_slice(s.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PegError::BadSignatures(e.to_string()))?;
        let signer = *self
            .federation_key(index)
            .expect("validator indexes have keys");
        self.rebuild(&batch)
            .verify(&PartialSignatures {
                signer,
                signatures: parsed,
            })
            .map_err(|e| PegError::BadSignatures(e.to_string()))?;
        store
            .put(&key::batch_signatures(id, index), signatures)
            .await?;
        batch.signers.0.push(index);
        batch.signers.0.sort_unstable();
        if batch.signers.0.len() >= self.federation.threshold() {
            batch.status = BatchStatus::Signed.tag();
        }
        store.put(&key::batch(id), &batch).await?;
        Ok(())
    }

    /// The signatures on chain for batch `id`, as partial signatures for assembly.
    pub async fn signatures<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        batch: &Batch,
    ) -> Result<Vec<PartialSignatures>, BlockError> {
        let mut partials = Vec::new();
        for index in &batch.signers.0 {
            let key = key::batch_signatures(batch.id, *index);
            let list: List<
                Blob<{ consort_types::peg::PEG_SIGNATURE_SIZE_MAX }>,
                { consort_types::peg::BATCH_INPUTS_MAX },
            > = store
                .get(&key)
                .await?
                .ok_or(BlockError::CorruptState(key))?;
            let signatures = list
                .0
                .iter()
                .map(|s| bitcoin::ecdsa::Signature::from_slice(s.as_slice()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|_| BlockError::CorruptState(key))?;
            partials.push(PartialSignatures {
                signer: *self.federation_key(*index).expect("validator"),
                signatures,
            });
        }
        Ok(partials)
    }

    async fn confirm<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        id: u64,
        proof: &[u8],
    ) -> Result<(), Fail> {
        let mut batch: Batch = store
            .get(&key::batch(id))
            .await?
            .ok_or(PegError::BadBatch(id))?;
        if batch.status != BatchStatus::Signed.tag() {
            return Err(PegError::BadBatch(id).into());
        }
        let txid = Txid::from_byte_array(batch.txid);
        let (block, confirmations) = self.locate(store, proof, txid).await?;
        if confirmations < self.config.confirmations {
            return Err(PegError::TooFewConfirmations {
                have: confirmations,
                need: self.config.confirmations,
            }
            .into());
        }
        let mut totals = self.totals(store).await?;
        let mut burned = 0u64;
        for request_id in &batch.requests.0 {
            let mut request: PegOutRequest = store
                .get(&key::request(*request_id))
                .await?
                .ok_or(BlockError::CorruptState(key::request(*request_id)))?;
            burned = add(burned, request.amount)?;
            request.status = PegOutStatus::Completed.tag();
            store.put(&key::request(*request_id), &request).await?;
        }
        for input in &batch.inputs.0 {
            store.delete(&key::coin(&input.outpoint)).await?;
        }
        let base = self.federation.script_pubkey(&Custody::Base);
        let mut coins: Outpoints = store.get(&key::coins()).await?.unwrap_or_default();
        if let Some((vout, change)) = batch
            .outputs
            .0
            .iter()
            .enumerate()
            .find(|(_, o)| o.script.as_slice() == base.as_bytes())
        {
            let outpoint = Outpoint {
                txid: batch.txid,
                vout: u32::try_from(vout).expect("few outputs"),
            };
            store
                .put(
                    &key::coin(&outpoint),
                    &FederationCoin {
                        outpoint,
                        value: change.value,
                        custody: None,
                        height: block.height,
                        mweb: false,
                    },
                )
                .await?;
            coins.0.push(outpoint);
            store.put(&key::coins(), &coins).await?;
        }
        totals.pending_peg_outs = sub(totals.pending_peg_outs, burned)?;
        totals.fee_pool = sub(add(totals.fee_pool, batch.quoted)?, batch.fee)?;
        totals.in_flight = None;
        store.put(&key::totals(), &totals).await?;
        batch.status = BatchStatus::Confirmed.tag();
        batch.confirmed_height = block.height;
        store.put(&key::batch(id), &batch).await?;
        Ok(())
    }

    /// End of block: batch queued peg-outs when no batch is in flight.
    ///
    /// # Errors
    /// A database failure.
    pub async fn end_block<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        height: u64,
    ) -> Result<(), BlockError> {
        let queue: Ids = store.get(&key::queue()).await?.unwrap_or_default();
        if queue.0.is_empty() {
            return Ok(());
        }
        let mut totals = self.totals(store).await?;
        if totals.in_flight.is_some() {
            return Ok(());
        }
        let tip = self.tip(store).await?;
        let mut requests = Vec::new();
        for id in queue.0.iter().take(BATCH_REQUESTS_MAX) {
            let request: PegOutRequest = store
                .get(&key::request(*id))
                .await?
                .ok_or(BlockError::CorruptState(key::request(*id)))?;
            requests.push(request);
        }
        let coins: Outpoints = store.get(&key::coins()).await?.unwrap_or_default();
        let mut records = Vec::with_capacity(coins.0.len());
        for outpoint in &coins.0 {
            let coin: FederationCoin = store
                .get(&key::coin(outpoint))
                .await?
                .ok_or(BlockError::CorruptState(key::coin(outpoint)))?;
            records.push(coin);
        }
        let utxos: Vec<Utxo> = records.iter().map(to_utxo).collect();
        let payments: Vec<mc::Payment> = requests
            .iter()
            .map(|r| mc::Payment {
                script_pubkey: ScriptBuf::from_bytes(r.script.0.clone()),
                value: Sats::from_sat(r.amount - r.fee),
            })
            .collect();
        let params = spend_params(self.network, &self.config, tip.height);
        // Not enough spendable coins yet (deposits still in their contest period): wait.
        let Ok(spend) = mc::build_spend(&self.federation, &params, &utxos, &payments) else {
            return Ok(());
        };
        let quoted = requests.iter().map(|r| r.fee).sum::<u64>();
        let fee = spend.fee().to_sat();
        if fee > quoted.saturating_add(totals.fee_pool) {
            return Ok(());
        }
        let id = totals.next_batch;
        let inputs: Vec<FederationCoin> = spend
            .inputs()
            .iter()
            .map(|(utxo, _)| {
                *records
                    .iter()
                    .find(|c| {
                        c.outpoint.txid == utxo.outpoint.txid.to_byte_array()
                            && c.outpoint.vout == utxo.outpoint.vout
                    })
                    .expect("spends only given coins")
            })
            .collect();
        let outputs = spend
            .transaction()
            .output
            .iter()
            .map(|o| BatchOutput {
                value: o.value.to_sat(),
                script: Blob(o.script_pubkey.to_bytes()),
            })
            .collect();
        let batch = Batch {
            id,
            requests: List(requests.iter().map(|r| r.id).collect()),
            inputs: List(inputs.clone()),
            outputs: List(outputs),
            fee,
            quoted,
            txid: spend.transaction().compute_txid().to_byte_array(),
            status: BatchStatus::Signing.tag(),
            signers: List(Vec::new()),
            created_at: height,
            confirmed_height: 0,
        };
        store.put(&key::batch(id), &batch).await?;
        for mut request in requests {
            request.status = PegOutStatus::Batched.tag();
            request.batch = Some(id);
            store.put(&key::request(request.id), &request).await?;
        }
        let rest: Vec<u64> = queue
            .0
            .iter()
            .skip(batch.requests.0.len())
            .copied()
            .collect();
        store
            .put(&key::queue(), &List::<u64, PEG_OUT_QUEUE_MAX>(rest))
            .await?;
        let left: Vec<Outpoint> = coins
            .0
            .into_iter()
            .filter(|o| !inputs.iter().any(|i| i.outpoint == *o))
            .collect();
        store
            .put(&key::coins(), &List::<Outpoint, FEDERATION_UTXOS_MAX>(left))
            .await?;
        totals.in_flight = Some(id);
        totals.next_batch += 1;
        store.put(&key::totals(), &totals).await?;
        Ok(())
    }

    /// Re-derive the conservation invariant from the records.
    ///
    /// # Errors
    /// [`BlockError::Invariant`] if the totals and the records disagree.
    pub async fn check_invariant<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<(), BlockError> {
        let totals = self.totals(store).await?;
        let mut held = 0u128;
        let coins: Outpoints = store.get(&key::coins()).await?.unwrap_or_default();
        for outpoint in &coins.0 {
            let coin: FederationCoin = store
                .get(&key::coin(outpoint))
                .await?
                .ok_or(BlockError::CorruptState(key::coin(outpoint)))?;
            held += u128::from(coin.value);
        }
        if let Some(id) = totals.in_flight {
            let batch: Batch = store
                .get(&key::batch(id))
                .await?
                .ok_or(BlockError::CorruptState(key::batch(id)))?;
            held += batch
                .inputs
                .0
                .iter()
                .map(|c| u128::from(c.value))
                .sum::<u128>();
        }
        let pending: Outpoints = store.get(&key::pending()).await?.unwrap_or_default();
        let mut pending_sum = 0u128;
        for outpoint in &pending.0 {
            let claim: ClaimRecord = store
                .get(&key::claim(outpoint))
                .await?
                .ok_or(BlockError::CorruptState(key::claim(outpoint)))?;
            pending_sum += u128::from(claim.value);
        }
        let owed = u128::from(totals.supply)
            + u128::from(totals.fee_pool)
            + u128::from(totals.pending_peg_outs);
        if pending_sum != u128::from(totals.pending_claims) || owed != held {
            return Err(BlockError::Invariant(format!(
                "peg conservation broken: supply {} + fee pool {} + pending peg-outs {} != \
                 federation coins {held}; pending claims {} vs records {pending_sum}",
                totals.supply, totals.fee_pool, totals.pending_peg_outs, totals.pending_claims
            )));
        }
        Ok(())
    }
}

fn spend_params(network: Network, config: &PegConfig, tip_height: u32) -> SpendParams {
    SpendParams {
        network,
        fee_rate: FeeRate::from_sat_per_vb(config.fee_rate_sat_per_vb).unwrap_or(FeeRate::MAX),
        next_block_height: tip_height.saturating_add(1),
    }
}

fn to_record(entry: &HeaderEntry) -> HeaderRecord {
    HeaderRecord {
        hash: BlockHash::from_byte_array(entry.hash),
        height: entry.height,
        bits: CompactTarget::from_consensus(entry.bits),
        time: entry.time,
        chainwork: Work::from_be_bytes(entry.chainwork),
        last_regular_bits: CompactTarget::from_consensus(entry.last_regular_bits),
    }
}

fn to_utxo(coin: &FederationCoin) -> Utxo {
    Utxo {
        outpoint: OutPoint::new(
            Txid::from_byte_array(coin.outpoint.txid),
            coin.outpoint.vout,
        ),
        value: Sats::from_sat(coin.value),
        custody: match coin.custody {
            Some(account) => Custody::Deposit(DepositAccount::new(*account.as_bytes())),
            None => Custody::Base,
        },
        height: coin.height,
        mweb_peg_out: coin.mweb,
    }
}

fn add(a: u64, b: u64) -> Result<u64, BlockError> {
    a.checked_add(b)
        .ok_or_else(|| BlockError::Invariant("peg total overflows".into()))
}

fn sub(a: u64, b: u64) -> Result<u64, BlockError> {
    a.checked_sub(b)
        .ok_or_else(|| BlockError::Invariant("peg total underflows".into()))
}
