//! End of block (batches built, claims settled) and the conservation invariant.

use crate::{Ids, Outpoints, Peg, spend_params, to_utxo};
use bitcoin::{Amount as Sats, ScriptBuf, hashes::Hash as _};
use consort_execution::{BlockError, Runtime, Store};
use consort_mainchain::{self as mc, Utxo};
use consort_types::{
    codec_util::{Blob, List},
    peg::{
        BATCH_REQUESTS_MAX, Batch, BatchOutput, BatchStatus, ClaimRecord, FEDERATION_UTXOS_MAX,
        FederationCoin, Outpoint, PEG_OUT_QUEUE_MAX, PegOutRequest, PegOutStatus, PegTotals,
    },
    state_key::peg as key,
};

impl Peg {
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
        // A request's amount is at least its quote's minimum, the fee plus dust.
        let payments = requests
            .iter()
            .map(|r| {
                Ok(mc::Payment {
                    script_pubkey: ScriptBuf::from_bytes(r.script.0.clone()),
                    value: Sats::from_sat(sub(r.amount, r.fee)?),
                })
            })
            .collect::<Result<Vec<_>, BlockError>>()?;
        let params = spend_params(self.network, &self.config, tip.height);
        // Not enough spendable coins yet (deposits still in their contest period): wait.
        let Ok(spend) = mc::build_spend(&self.federation, &params, &utxos, &payments) else {
            return Ok(());
        };
        let quoted = requests.iter().try_fold(0, |sum, r| add(sum, r.fee))?;
        let fee = spend.fee().to_sat();
        if fee > quoted.saturating_add(totals.fee_pool) {
            return Ok(());
        }
        let id = totals.next_batch;
        let inputs = spend
            .inputs()
            .iter()
            .map(|(utxo, _)| {
                records
                    .iter()
                    .find(|c| {
                        c.outpoint.txid == utxo.outpoint.txid.to_byte_array()
                            && c.outpoint.vout == utxo.outpoint.vout
                    })
                    .copied()
                    .ok_or_else(|| {
                        BlockError::Invariant(format!(
                            "a batch spends {}, not a federation coin",
                            utxo.outpoint
                        ))
                    })
            })
            .collect::<Result<Vec<FederationCoin>, BlockError>>()?;
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
        totals.next_batch = add(id, 1)?;
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
    pub(crate) async fn totals<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<PegTotals, BlockError> {
        store
            .get(&key::totals())
            .await?
            .ok_or(BlockError::CorruptState(key::totals()))
    }
}

pub(crate) fn add(a: u64, b: u64) -> Result<u64, BlockError> {
    a.checked_add(b)
        .ok_or_else(|| BlockError::Invariant("peg total overflows".into()))
}

pub(crate) fn sub(a: u64, b: u64) -> Result<u64, BlockError> {
    a.checked_sub(b)
        .ok_or_else(|| BlockError::Invariant("peg total underflows".into()))
}
