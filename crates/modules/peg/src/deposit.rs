//! Deposits: claims with a contest period, settled (or voided by a reorganisation) as the main
//! chain moves on.

use crate::{Outpoints, Peg, add, sub};
use bitcoin::{Amount as Sats, OutPoint, Transaction, Txid, hashes::Hash as _};
use consort_execution::{BlockError, Fail, Runtime, Store, ledger::credit};
use consort_mainchain::{self as mc};
use consort_types::{
    AccountId, TxError,
    codec_util::List,
    peg::{
        ClaimRecord, ClaimStatus, FEDERATION_UTXOS_MAX, FederationCoin, HeaderEntry, Outpoint,
        PENDING_CLAIMS_MAX, PegError,
    },
    state_key::peg as key,
};

impl Peg {
    /// Credit claims whose contest period is over; void those whose block left the best chain.
    pub(crate) async fn settle_claims<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<(), Fail> {
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
    pub(crate) async fn locate<E: Runtime>(
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
        // The block is on the best chain, so at most the tip's height.
        let confirmations = tip
            .height
            .checked_sub(entry.height)
            .and_then(|depth| depth.checked_add(1))
            .ok_or_else(|| {
                BlockError::Invariant(format!(
                    "best-chain block at main-chain height {} above the tip at {}",
                    entry.height, tip.height
                ))
            })?;
        Ok((entry, confirmations))
    }

    pub(crate) async fn claim<E: Runtime>(
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
        let minimum = self.deposit_minimum();
        if value < minimum {
            return Err(PegError::DepositTooSmall { value, minimum }.into());
        }
        let need = self.confirmations_needed(&tx, value);
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
        // Deposits are the only way in, and every total is a share of what came in: refusing
        // a deposit that would take the sum past u64 keeps every later total addition (in
        // transactions and at the end of blocks) from overflowing. Only a forged main-chain
        // block (cheap on a test network) carries such a value.
        let owed = [
            totals.supply,
            totals.fee_pool,
            totals.pending_peg_outs,
            totals.pending_claims,
        ]
        .into_iter()
        .try_fold(value, u64::checked_add);
        if owed.is_none() {
            return Err(
                TxError::InvalidAmount("the deposit would overflow the peg's totals").into(),
            );
        }
        totals.pending_claims = add(totals.pending_claims, value)?;
        store.put(&key::totals(), &totals).await?;
        self.settle_claims(store).await
    }
}
