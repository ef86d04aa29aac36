//! Deposits: claims with a contest period, settled (or voided by a reorganisation) as the main
//! chain moves on.

use crate::{Peg, add, list, sub};
use bitcoin::{Amount as Sats, OutPoint, Transaction, Txid, hashes::Hash as _};
use consort_execution::{BlockError, Fail, Runtime, Store, ledger::credit};
use consort_mainchain::{self as mc};
use consort_types::{
    TxError,
    peg::{
        ClaimRecord, ClaimStatus, DepositOutput, FederationCoin, HeaderEntry, MainTip, Outpoint,
        PENDING_CLAIMS_MAX, PegError, PegTotals,
    },
    state_key::peg as key,
};
use std::collections::BTreeSet;

impl Peg {
    /// The main chain moved from `old` to `new` (`fork`: the lowest height whose block changed,
    /// if a reorganisation replaced blocks): void pending claims whose block left the best
    /// chain, then credit those whose contest period ended at a height now passed. Work:
    /// every pending claim on a reorganisation (at most [`PENDING_CLAIMS_MAX`]), otherwise
    /// the claims maturing at the heights passed.
    pub(crate) async fn settle_claims<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        old: &MainTip,
        new: &MainTip,
        fork: Option<u32>,
    ) -> Result<(), Fail> {
        let mut totals = self.totals(store).await?;
        totals.idle = false;
        let fee = self.deposit_fee(&self.current(store).await?.federation);
        if fork.is_some() {
            let pending = list::pending();
            let all: Vec<(Outpoint, u64)> = pending.first(store, PENDING_CLAIMS_MAX).await?;
            for (outpoint, _) in all {
                let mut claim = self.claim_record(store, &outpoint).await?;
                if Self::best_at(store, claim.height).await? == Some(claim.block) {
                    continue;
                }
                claim.status = ClaimStatus::Void.tag();
                totals.pending_claims = sub(totals.pending_claims, claim.value)?;
                self.count_pending(store, claim.federation, false).await?;
                store.put(&key::claim(&outpoint), &claim).await?;
                pending.remove(store, &outpoint).await?;
                // Out of its maturity bucket too: buckets hold only pending claims.
                list::maturing(claim.matures_at)
                    .remove(store, &outpoint)
                    .await?;
            }
        }
        for height in old.height.saturating_add(1)..=new.height {
            let bucket = list::maturing(height);
            let listed: Vec<(Outpoint, u64)> = bucket.first(store, usize::MAX).await?;
            for (outpoint, _) in listed {
                let claim = self.claim_record(store, &outpoint).await?;
                // Voided (and maybe claimed again since, maturing elsewhere): skip.
                if claim.status != ClaimStatus::Pending.tag() || claim.matures_at != height {
                    continue;
                }
                list::pending().remove(store, &outpoint).await?;
                totals.pending_claims = sub(totals.pending_claims, claim.value)?;
                self.count_pending(store, claim.federation, false).await?;
                self.credit_claim(store, &mut totals, outpoint, claim, new.height, fee)
                    .await?;
            }
            bucket.clear::<Outpoint, E>(store).await?;
        }
        store.put(&key::totals(), &totals).await?;
        Ok(())
    }

    async fn claim_record<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        outpoint: &Outpoint,
    ) -> Result<ClaimRecord, BlockError> {
        store
            .get(&key::claim(outpoint))
            .await?
            .ok_or(BlockError::CorruptState(key::claim(outpoint)))
    }

    /// Credit a claim whose contest period is over: the account is paid less the deposit
    /// fee `fee` (of the current federation), the fee pool takes the fee, and the output
    /// becomes a coin of the federation it paid: last in its coin list, or first if it is
    /// already a quarter of the recovery delay deep at main-chain height `tip` (a deposit
    /// claimed late), so the next consolidation sees it.
    async fn credit_claim<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        totals: &mut PegTotals,
        outpoint: Outpoint,
        mut claim: ClaimRecord,
        tip: u32,
        fee: u64,
    ) -> Result<(), Fail> {
        claim.status = ClaimStatus::Credited.tag();
        let fee = fee.min(claim.value);
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
                    federation: claim.federation,
                },
            )
            .await?;
        let old =
            tip.saturating_sub(claim.height) >= u32::from(self.config.recovery_delay_blocks) / 4;
        let listed = if old {
            list::coins(claim.federation)
                .push_front(store, outpoint, claim.value)
                .await?
        } else {
            list::coins(claim.federation)
                .push(store, outpoint, claim.value)
                .await?
        };
        if !listed {
            return Err(BlockError::Invariant(format!(
                "deposit {outpoint:?} is already a federation coin"
            ))
            .into());
        }
        store.put(&key::claim(&outpoint), &claim).await?;
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
        transaction: &[u8],
        proof: &[u8],
        outputs: &[DepositOutput],
        height: u64,
    ) -> Result<(), Fail> {
        if outputs.is_empty() {
            return Err(PegError::BadOutputs("a claim names at least one output").into());
        }
        let mut vouts = BTreeSet::new();
        if !outputs.iter().all(|o| vouts.insert(o.vout)) {
            return Err(PegError::BadOutputs("a claim names each output once").into());
        }
        let tx: Transaction = bitcoin::consensus::deserialize(transaction)
            .map_err(|e| PegError::BadTransaction(e.to_string()))?;
        let txid = tx.compute_txid();
        let (block, confirmations) = self.locate(store, proof, txid).await?;
        let tip = self.tip(store).await?;
        // Newest first: the current federation's scripts, then those it replaced.
        let mut live = self.live(store).await?;
        live.reverse();
        let fee = self.deposit_fee(&live[0].federation);
        let mut totals = self.totals(store).await?;
        let pending = list::pending();
        let mut waiting = pending.head::<Outpoint, E>(store).await?.len;
        for &DepositOutput { account, vout } in outputs {
            let output = tx
                .output
                .get(vout as usize)
                .ok_or(PegError::NotADeposit { vout })?;
            if output.value == Sats::ZERO {
                return Err(PegError::NotADeposit { vout }.into());
            }
            let paid = live
                .iter()
                .find(|f| output.script_pubkey == self.deposit_script(&f.federation, &account))
                .ok_or(PegError::NotADeposit { vout })?;
            let federation = paid.record.generation;
            if !self.takes_deposit(&paid.record, block.height, tip.height) {
                return Err(PegError::AddressRetired { vout, federation }.into());
            }
            // The federation the output pays decides what moving it costs (an older one may
            // have more keys than the current one).
            let minimum = self
                .deposit_minimum(&paid.federation)
                .max(fee.saturating_mul(2));
            let value = output.value.to_sat();
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
            // Deposits are the only way in, and every total is a share of what came in:
            // refusing a deposit that would take the sum past u64 keeps every later total
            // addition (in transactions and at the end of blocks) from overflowing. Only a
            // forged main-chain block (cheap on a test network) carries such a value.
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
            let matures_at = block
                .height
                .saturating_add(need)
                .saturating_add(self.config.contest_blocks)
                .saturating_sub(1);
            let claim = ClaimRecord {
                account,
                value,
                block: block.hash,
                height: block.height,
                mweb: mc::is_hogex(&tx),
                status: ClaimStatus::Pending.tag(),
                claimed_at: height,
                matures_at,
                federation,
            };
            if matures_at <= tip.height {
                // Claimed after its contest period: spendable at once.
                self.credit_claim(store, &mut totals, outpoint, claim, tip.height, fee)
                    .await?;
                continue;
            }
            if waiting >= PENDING_CLAIMS_MAX as u64 {
                return Err(PegError::AtCapacity("pending claims").into());
            }
            waiting += 1;
            store.put(&key::claim(&outpoint), &claim).await?;
            pending.push(store, outpoint, value).await?;
            list::maturing(matures_at)
                .push(store, outpoint, value)
                .await?;
            totals.pending_claims = add(totals.pending_claims, value)?;
            self.count_pending(store, federation, true).await?;
        }
        totals.idle = false;
        store.put(&key::totals(), &totals).await?;
        Ok(())
    }
}
