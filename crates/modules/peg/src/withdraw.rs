//! Peg-outs: requests queued and paid in batches the validators sign on chain, confirmed from
//! the main chain.

use crate::{Peg, add, list, sub};
use bitcoin::{Amount as Sats, OutPoint, ScriptBuf, TxOut, Txid, hashes::Hash as _};
use consort_execution::{BlockError, Fail, Runtime, Store, ledger::debit};
use consort_mainchain::{
    self as mc, Custody, DepositAccount, Federation, PartialSignatures, UnsignedSpend, Utxo,
};
use consort_types::{
    AccountId,
    codec_util::{Blob, List},
    peg::{
        Batch, BatchStatus, BatchVersion, FederationCoin, Outpoint, PegError, PegOutRequest,
        PegOutStatus,
    },
    state_key::peg as key,
};

impl Peg {
    pub(crate) async fn peg_out<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        amount: u64,
        script: &Blob<{ consort_types::peg::PAYOUT_SCRIPT_SIZE_MAX }>,
        height: u64,
    ) -> Result<(), Fail> {
        let tip = self.tip(store).await?;
        let script_buf = ScriptBuf::from_bytes(script.0.clone());
        // No live federation's script: a payment to one would be a deposit nobody claims.
        for federation in self.live(store).await? {
            if script_buf == self.deposit_script(&federation.federation, sender)
                || script_buf == federation.federation.script_pubkey(&Custody::Base)
            {
                return Err(PegError::BadDestination.into());
            }
        }
        let current = self.current(store).await?;
        let (fee, minimum) = self.quote(&current.federation, &script_buf, tip.height)?;
        if amount < minimum {
            return Err(PegError::BelowMinimum { minimum, fee }.into());
        }
        debit(store, &self.asset(), sender, amount).await?;
        let mut totals = self.totals(store).await?;
        totals.supply = sub(totals.supply, amount)?;
        totals.pending_peg_outs = add(totals.pending_peg_outs, amount)?;
        let id = totals.next_request;
        totals.next_request = add(id, 1)?;
        totals.idle = false;
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
        list::queue().push(store, id, amount).await?;
        store.put(&key::totals(), &totals).await?;
        Ok(())
    }

    /// `fund_peg_fees`: `amount` of the sender's pegged coins leave the supply for the fee
    /// pool.
    pub(crate) async fn fund_fees<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
        amount: u64,
    ) -> Result<(), Fail> {
        debit(store, &self.asset(), sender, amount).await?;
        let mut totals = self.totals(store).await?;
        totals.supply = sub(totals.supply, amount)?;
        totals.fee_pool = add(totals.fee_pool, amount)?;
        totals.idle = false;
        store.put(&key::totals(), &totals).await?;
        Ok(())
    }

    /// The unsigned transaction of a recorded batch.
    ///
    /// # Errors
    /// [`BlockError::Invariant`] if the recorded coins and outputs no longer make one (they
    /// were built into one when the batch was recorded).
    pub(crate) fn rebuild(
        &self,
        batch: &Batch,
        federation: &Federation,
    ) -> Result<UnsignedSpend, BlockError> {
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
        UnsignedSpend::rebuild(federation, inputs, outputs).map_err(|e| {
            BlockError::Invariant(format!("recorded batch {} does not rebuild: {e}", batch.id))
        })
    }

    /// The unsigned transaction of a batch (what validators sign), given the federation
    /// whose coins it spends (`batch.federation`). For the node and tools, on batches read
    /// from the finalized state; execution uses the fallible `rebuild`.
    ///
    /// # Panics
    /// If the recorded batch does not rebuild (a broken invariant: it was built from these
    /// coins and outputs).
    pub fn unsigned(&self, batch: &Batch, federation: &Federation) -> UnsignedSpend {
        self.rebuild(batch, federation)
            .expect("a recorded batch was built from these coins and outputs")
    }

    /// `sign_batch` from `sender`: a member of the federation whose coins the batch spends.
    /// A member removed from the validator registry is in no later federation, so its key
    /// counts only towards sweeping its old federation's coins away (which the main chain
    /// would accept from it anyway; refusing it would only let those coins wait).
    pub(crate) async fn sign<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        sender: &AccountId,
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
        let source = self.federation(store, batch.federation).await?;
        let index = source
            .position(sender)
            .ok_or(PegError::NotAMember(batch.federation))?;
        if batch.signers.0.contains(&index) {
            return Err(PegError::AlreadySigned(id).into());
        }
        let parsed = signatures
            .0
            .iter()
            .map(|s| bitcoin::ecdsa::Signature::from_slice(s.as_slice()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| PegError::BadSignatures(e.to_string()))?;
        let signer = source.key(index).ok_or_else(|| {
            BlockError::Invariant(format!(
                "member {index} of federation {} has no key",
                batch.federation
            ))
        })?;
        self.rebuild(&batch, &source.federation)?
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
        if batch.signers.0.len() >= source.federation.threshold()
            && batch.status == BatchStatus::Signing.tag()
        {
            batch.status = BatchStatus::Signed.tag();
            batch.signed_at = self.tip(store).await?.height;
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
        let source = self.federation(store, batch.federation).await?;
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
                signer: source.key(*index).ok_or(BlockError::CorruptState(key))?,
                signatures,
            });
        }
        Ok(partials)
    }

    pub(crate) async fn confirm<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        id: u64,
        proof: &[u8],
    ) -> Result<(), Fail> {
        let mut batch: Batch = store
            .get(&key::batch(id))
            .await?
            .ok_or(PegError::BadBatch(id))?;
        if batch.status == BatchStatus::Confirmed.tag() {
            return Err(PegError::BadBatch(id).into());
        }
        let change_at = batch.change_index();
        // The version the proof shows: the current one or one a fee bump replaced (they spend
        // the same coins, so only one can ever be mined).
        let current = BatchVersion {
            txid: batch.txid,
            fee: batch.fee,
            change: change_at.map_or(0, |i| batch.outputs.0[i].value),
        };
        let block_hash = mc::decode_tx_out_proof(proof)
            .map_err(|e| PegError::BadProof(e.to_string()))?
            .header
            .block_hash();
        let version = std::iter::once(current)
            .chain(batch.replaced.0.iter().copied())
            .find(|v| {
                mc::verify_tx_out_proof(proof, block_hash, Txid::from_byte_array(v.txid)).is_ok()
            })
            .ok_or_else(|| {
                PegError::BadProof(format!("the proof shows no version of batch {id}"))
            })?;
        let (block, confirmations) = self
            .locate(store, proof, Txid::from_byte_array(version.txid))
            .await?;
        if batch.status == BatchStatus::Signing.tag() && version.txid == batch.txid {
            // The current version is not fully signed: it cannot have been mined.
            return Err(PegError::BadBatch(id).into());
        }
        if confirmations < self.config.confirmations {
            return Err(PegError::TooFewConfirmations {
                have: confirmations,
                need: self.config.confirmations,
            }
            .into());
        }
        // Record the version that was mined.
        batch.txid = version.txid;
        batch.fee = version.fee;
        if let Some(i) = change_at {
            batch.outputs.0[i].value = version.change;
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
        // The signatures served their purpose: the batch is on the main chain.
        for signer in &batch.signers.0 {
            store.delete(&key::batch_signatures(id, *signer)).await?;
        }
        if let Some((vout, change)) = change_at.and_then(|i| batch.outputs.0.get(i).map(|o| (i, o)))
        {
            let outpoint = Outpoint {
                txid: batch.txid,
                vout: u32::try_from(vout).map_err(|_| {
                    BlockError::Invariant(format!("batch {id} has over u32::MAX outputs"))
                })?,
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
                        federation: batch.change_to,
                    },
                )
                .await?;
            if !list::coins(batch.change_to)
                .push(store, outpoint, change.value)
                .await?
            {
                return Err(BlockError::Invariant(format!(
                    "batch {id}'s change is already a federation coin"
                ))
                .into());
            }
        }
        totals.pending_peg_outs = sub(totals.pending_peg_outs, burned)?;
        totals.fee_pool = sub(add(totals.fee_pool, batch.quoted)?, batch.fee)?;
        totals.in_flight = None;
        totals.idle = false;
        store.put(&key::totals(), &totals).await?;
        batch.status = BatchStatus::Confirmed.tag();
        batch.confirmed_height = block.height;
        store.put(&key::batch(id), &batch).await?;
        Ok(())
    }
}

pub(crate) fn to_utxo(coin: &FederationCoin) -> Utxo {
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
