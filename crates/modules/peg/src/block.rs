//! End of block (batches built, claims settled) and the conservation invariant.

use crate::{Peg, list, spend_params, to_utxo};
use bitcoin::{Amount as Sats, ScriptBuf, hashes::Hash as _};
use consort_execution::{BlockError, Runtime, Store};
use consort_mainchain::{self as mc, Custody, UnsignedSpend, Utxo};
use consort_types::{
    codec_util::{Blob, List},
    peg::{
        BATCH_BUMPS_MAX, BATCH_INPUTS_MAX, BATCH_REQUESTS_MAX, BATCH_SCAN_REQUESTS_MAX,
        BUMP_AFTER_EXTRA_BLOCKS, Batch, BatchOutput, BatchStatus, BatchVersion, ClaimRecord,
        ClaimStatus, FederationCoin, ListHead, Outpoint, PegOutRequest, PegOutStatus, PegTotals,
        SELECTION_COINS_MAX,
    },
    state_key::peg as key,
};

/// What end of block does with the queue.
enum Plan {
    /// Pay these requests (a prefix of the queue, or one later request) with this spend.
    Pay(Vec<PegOutRequest>, UnsignedSpend),
    /// The oldest request needs more inputs than a batch holds: merge coins first.
    Consolidate,
    /// Nothing payable yet (coins in their contest period, or fees the pool cannot cover).
    Wait,
}

/// The coins one batch may spend: a window of one federation's oldest coins.
struct Window<'a> {
    /// The federation holding them (its members sign).
    source: &'a mc::Federation,
    /// The current federation's base script: change and consolidations go there.
    change: &'a ScriptBuf,
    /// The oldest coins, at most [`SELECTION_COINS_MAX`].
    coins: &'a [FederationCoin],
    /// Whether they are all of the federation's coins.
    all: bool,
    /// Whether the federation was replaced (its coins are being swept).
    replaced: bool,
}

/// Which coins a consolidation merges.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Merge {
    /// Only if a coin is half the recovery delay deep: the coins a quarter deep.
    Due,
    /// A request needs it: the oldest [`BATCH_INPUTS_MAX`], at least two.
    Forced,
    /// A replaced federation's: the oldest [`BATCH_INPUTS_MAX`], even one.
    Sweep,
}

/// Requests after the first that end of block tries to pay alone when the first cannot be
/// paid yet, so that one request never holds up the others.
const SINGLE_TRIES: usize = 16;

impl Peg {
    /// End of block, when no batch is in flight: build the next batch. Custody comes first:
    /// if a coin of the window is half the recovery delay deep, a consolidation moves it (and
    /// the other coins a quarter deep, up to [`BATCH_INPUTS_MAX`]) to a new federation coin,
    /// paid from the fee pool, so custody never passes to the recovery keys by neglect. Then
    /// queued peg-outs: the longest prefix of the queue one transaction can pay; if the
    /// oldest cannot be paid yet, a later one alone; if the oldest needs more inputs than a
    /// batch holds and no later one can go, a consolidation of the oldest coins.
    ///
    /// Work is bounded: at most [`BATCH_SCAN_REQUESTS_MAX`] requests and
    /// [`SELECTION_COINS_MAX`] coins (of all live federations together) are read, and not at all while nothing changed since the
    /// last attempt that built nothing ([`PegTotals::idle`]).
    ///
    /// # Errors
    /// A database failure.
    pub async fn end_block<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        height: u64,
    ) -> Result<(), BlockError> {
        let mut totals = self.totals(store).await?;
        if let Some(id) = totals.in_flight {
            return self.bump(store, &totals, id).await;
        }
        if totals.idle {
            return Ok(());
        }
        let tip = self.tip(store).await?;
        self.retire(store, &mut totals, tip.height).await?;
        let params = spend_params(self.network, &self.config, tip.height);
        let current = self.federation(store, totals.federation).await?;
        let base = current.federation.script_pubkey(&Custody::Base);
        let mut requests = Vec::new();
        for (id, _) in list::queue()
            .first::<u64, E>(store, BATCH_SCAN_REQUESTS_MAX)
            .await?
        {
            let request: PegOutRequest = store
                .get(&key::request(id))
                .await?
                .ok_or(BlockError::CorruptState(key::request(id)))?;
            requests.push(request);
        }
        // Replaced federations first, oldest first: their coins go to the current one. The
        // windows share one budget of coins read.
        let mut budget = SELECTION_COINS_MAX;
        for generation in totals.oldest_federation..=totals.federation {
            if budget == 0 {
                break;
            }
            let coin_list: ListHead<Outpoint> = list::coins(generation).head(store).await?;
            if coin_list.len == 0 {
                continue;
            }
            let source = if generation == totals.federation {
                current.clone()
            } else {
                self.federation(store, generation).await?
            };
            let mut coins = Vec::new();
            for (outpoint, _) in list::coins(generation).first(store, budget).await? {
                coins.push(self.coin(store, &outpoint).await?);
            }
            budget = budget.saturating_sub(coins.len());
            let window = Window {
                source: &source.federation,
                change: &base,
                coins: &coins,
                all: coin_list.len <= coins.len() as u64,
                replaced: generation < totals.federation,
            };
            if let Some(chosen) =
                self.choose(&params, &window, &requests, tip.height, totals.fee_pool)?
            {
                return self
                    .record_batch(store, &mut totals, &coins, chosen, height, generation)
                    .await;
            }
        }
        self.rest(store, totals).await
    }

    /// The batch to build from one federation's window of coins, if any: for a replaced
    /// federation, a payment from its coins (change to the current federation) or else a
    /// sweep of them; for the current one, a due consolidation, then payments, then a forced
    /// consolidation.
    fn choose(
        &self,
        params: &mc::SpendParams,
        window: &Window<'_>,
        requests: &[PegOutRequest],
        tip: u32,
        fee_pool: u64,
    ) -> Result<Option<(Vec<PegOutRequest>, UnsignedSpend)>, BlockError> {
        let utxos: Vec<Utxo> = window.coins.iter().map(to_utxo).collect();
        let affordable = |spend: UnsignedSpend| {
            (spend.fee().to_sat() <= fee_pool).then_some((Vec::new(), spend))
        };
        if window.replaced {
            if !requests.is_empty()
                && let Plan::Pay(paid, spend) =
                    self.plan(params, window, &utxos, requests, fee_pool)?
            {
                return Ok(Some((paid, spend)));
            }
            return Ok(self
                .consolidation(params, window, tip, Merge::Sweep)
                .and_then(affordable));
        }
        // Custody first: a coin half the recovery delay deep is moved before any payment.
        if let Some(chosen) = self
            .consolidation(params, window, tip, Merge::Due)
            .and_then(affordable)
        {
            return Ok(Some(chosen));
        }
        if requests.is_empty() {
            return Ok(None);
        }
        Ok(
            match self.plan(params, window, &utxos, requests, fee_pool)? {
                Plan::Pay(paid, spend) => Some((paid, spend)),
                Plan::Consolidate => self
                    .consolidation(params, window, tip, Merge::Forced)
                    .and_then(affordable),
                Plan::Wait => None,
            },
        )
    }

    /// Nothing to build until something changes.
    async fn rest<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        mut totals: PegTotals,
    ) -> Result<(), BlockError> {
        totals.idle = true;
        store.put(&key::totals(), &totals).await?;
        Ok(())
    }

    async fn coin<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        outpoint: &Outpoint,
    ) -> Result<FederationCoin, BlockError> {
        store
            .get(&key::coin(outpoint))
            .await?
            .ok_or(BlockError::CorruptState(key::coin(outpoint)))
    }

    /// The spend paying `requests` from `utxos`, if one exists whose fee the quotes and the
    /// fee pool cover.
    fn try_pay(
        &self,
        params: &mc::SpendParams,
        window: &Window<'_>,
        utxos: &[Utxo],
        requests: &[PegOutRequest],
        fee_pool: u64,
    ) -> Result<Result<UnsignedSpend, mc::SpendError>, BlockError> {
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
        let spend = match mc::build_spend_to(window.source, params, utxos, &payments, window.change)
        {
            Ok(spend) => spend,
            Err(error) => return Ok(Err(error)),
        };
        let quoted = requests.iter().try_fold(0, |sum, r| add(sum, r.fee))?;
        if spend.fee().to_sat() > quoted.saturating_add(fee_pool) {
            return Ok(Err(mc::SpendError::InsufficientFunds {
                available: Sats::from_sat(quoted.saturating_add(fee_pool)),
                needed: spend.fee(),
            }));
        }
        Ok(Ok(spend))
    }

    /// Which requests to pay now: the longest payable prefix of the queue (binary search; at
    /// most [`BATCH_REQUESTS_MAX`]), else the first of the next [`SINGLE_TRIES`] payable
    /// alone. A first request that no [`BATCH_INPUTS_MAX`] coins of the window can pay asks
    /// for a consolidation.
    fn plan(
        &self,
        params: &mc::SpendParams,
        window: &Window<'_>,
        utxos: &[Utxo],
        requests: &[PegOutRequest],
        fee_pool: u64,
    ) -> Result<Plan, BlockError> {
        let most = requests.len().min(BATCH_REQUESTS_MAX);
        match self.try_pay(params, window, utxos, &requests[..1], fee_pool)? {
            Ok(spend) => {
                // Invariant: a prefix of `low` requests is payable (by `best`); none longer
                // than `high` is.
                let (mut low, mut high, mut best) = (1, most, spend);
                while low < high {
                    let mid = (low + high).div_ceil(2);
                    match self.try_pay(params, window, utxos, &requests[..mid], fee_pool)? {
                        Ok(spend) => (low, best) = (mid, spend),
                        Err(_) => high = mid - 1,
                    }
                }
                Ok(Plan::Pay(requests[..low].to_vec(), best))
            }
            Err(error) => {
                let stuck = matches!(error, mc::SpendError::TooManyInputs { .. })
                    || (!window.all && matches!(error, mc::SpendError::InsufficientFunds { .. }));
                // A later request payable alone goes first: one request never holds up the
                // rest (not even while the fee pool cannot pay the consolidation it needs).
                for request in requests.iter().skip(1).take(SINGLE_TRIES) {
                    let alone = std::slice::from_ref(request);
                    if let Ok(spend) = self.try_pay(params, window, utxos, alone, fee_pool)? {
                        return Ok(Plan::Pay(vec![request.clone()], spend));
                    }
                }
                Ok(if stuck { Plan::Consolidate } else { Plan::Wait })
            }
        }
    }

    /// A consolidation of the window's oldest spendable coins into one coin of the current
    /// federation (see [`Merge`]).
    fn consolidation(
        &self,
        params: &mc::SpendParams,
        window: &Window<'_>,
        tip: u32,
        merge: Merge,
    ) -> Option<UnsignedSpend> {
        let delay = u32::from(self.config.recovery_delay_blocks);
        let age = |coin: &FederationCoin| tip.saturating_sub(coin.height);
        let mut spendable: Vec<&FederationCoin> = window
            .coins
            .iter()
            .filter(|c| to_utxo(c).spendable_height() <= params.next_block_height)
            .collect();
        spendable.sort_by_key(|c| (c.height, c.outpoint));
        if merge == Merge::Due {
            if !spendable.iter().any(|c| age(c) >= delay / 2) {
                return None;
            }
            spendable.retain(|c| age(c) >= delay / 4);
        }
        spendable.truncate(BATCH_INPUTS_MAX);
        if spendable.is_empty() || (merge == Merge::Forced && spendable.len() < 2) {
            return None;
        }
        let utxos: Vec<Utxo> = spendable.into_iter().map(to_utxo).collect();
        mc::build_sweep(
            window.source,
            params,
            &utxos,
            window.change,
            mc::SpendBranch::Federation,
        )
        .ok()
    }

    /// Record `spend` as the next batch, paying `paid` (none: a consolidation), and take its
    /// requests off the queue and its coins off the coin list.
    async fn record_batch<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        totals: &mut PegTotals,
        coins: &[FederationCoin],
        (paid, spend): (Vec<PegOutRequest>, UnsignedSpend),
        height: u64,
        generation: u32,
    ) -> Result<(), BlockError> {
        let id = totals.next_batch;
        let inputs = spend
            .inputs()
            .iter()
            .map(|(utxo, _)| {
                coins
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
        let quoted = paid.iter().try_fold(0, |sum, r| add(sum, r.fee))?;
        let batch = Batch {
            id,
            requests: List(paid.iter().map(|r| r.id).collect()),
            inputs: List(inputs.clone()),
            outputs: List(outputs),
            fee: spend.fee().to_sat(),
            quoted,
            txid: spend.transaction().compute_txid().to_byte_array(),
            status: BatchStatus::Signing.tag(),
            signers: List(Vec::new()),
            created_at: height,
            confirmed_height: 0,
            signed_at: 0,
            replaced: List(Vec::new()),
            federation: generation,
            change_to: totals.federation,
        };
        store.put(&key::batch(id), &batch).await?;
        for mut request in paid {
            request.status = PegOutStatus::Batched.tag();
            request.batch = Some(id);
            list::queue().remove(store, &request.id).await?;
            store.put(&key::request(request.id), &request).await?;
        }
        for input in &inputs {
            if list::coins(generation)
                .remove(store, &input.outpoint)
                .await?
                .is_none()
            {
                return Err(BlockError::Invariant(format!(
                    "batch {id} spends {:?}, not a listed coin",
                    input.outpoint
                )));
            }
        }
        totals.in_flight = Some(id);
        totals.next_batch = add(id, 1)?;
        store.put(&key::totals(), &*totals).await?;
        Ok(())
    }

    /// Replace the fully signed batch in flight by one paying twice the fee (replace-by-fee:
    /// same coins, same payments, the federation output smaller by the difference, which the
    /// fee pool pays) once it has stayed unconfirmed `confirmations +`
    /// [`BUMP_AFTER_EXTRA_BLOCKS`] main-chain blocks since it was signed. The validators sign
    /// the new version; a proof of any version confirms the batch. At most
    /// [`BATCH_BUMPS_MAX`] bumps, and none without a federation output that stays above dust
    /// or a fee pool that covers the new fee.
    async fn bump<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        totals: &PegTotals,
        id: u64,
    ) -> Result<(), BlockError> {
        let mut batch: Batch = store
            .get(&key::batch(id))
            .await?
            .ok_or(BlockError::CorruptState(key::batch(id)))?;
        if batch.status != BatchStatus::Signed.tag() || batch.replaced.0.len() >= BATCH_BUMPS_MAX {
            return Ok(());
        }
        let tip = self.tip(store).await?;
        let after = self
            .config
            .confirmations
            .saturating_add(BUMP_AFTER_EXTRA_BLOCKS);
        if tip.height < batch.signed_at.saturating_add(after) {
            return Ok(());
        }
        let base = self
            .federation(store, batch.change_to)
            .await?
            .federation
            .script_pubkey(&Custody::Base);
        let source = self.federation(store, batch.federation).await?;
        let Some(index) = batch.change_index() else {
            return Ok(());
        };
        let old_change = batch.outputs.0[index].value;
        let dust = mc::dust_threshold(&self.network, &base).to_sat();
        let Some(change) = old_change
            .checked_sub(batch.fee)
            .filter(|change| *change >= dust)
        else {
            return Ok(());
        };
        let fee = add(batch.fee, batch.fee)?;
        if fee > batch.quoted.saturating_add(totals.fee_pool) {
            return Ok(());
        }
        batch.replaced.0.push(BatchVersion {
            txid: batch.txid,
            fee: batch.fee,
            change: old_change,
        });
        batch.outputs.0[index].value = change;
        batch.fee = fee;
        batch.txid = self
            .rebuild(&batch, &source.federation)?
            .transaction()
            .compute_txid()
            .to_byte_array();
        for signer in &batch.signers.0 {
            store.delete(&key::batch_signatures(id, *signer)).await?;
        }
        batch.signers = List(Vec::new());
        batch.status = BatchStatus::Signing.tag();
        batch.signed_at = 0;
        store.put(&key::batch(id), &batch).await?;
        Ok(())
    }

    /// Up to `n` federation coins after `after` (from the oldest if `None`; `None` if `after`
    /// is no longer a coin), every live federation's in turn (oldest federation first), and
    /// their count and sum (in a [`ListHead`] without ends). For the node's routes and
    /// audits.
    ///
    /// # Errors
    /// A database failure or a broken list.
    pub async fn coins_after<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        after: Option<Outpoint>,
        n: usize,
    ) -> Result<(Option<Vec<FederationCoin>>, ListHead<Outpoint>), BlockError> {
        let totals = self.totals(store).await?;
        let mut head = ListHead::default();
        for generation in totals.oldest_federation..=totals.federation {
            let one: ListHead<Outpoint> = list::coins(generation).head(store).await?;
            head.len += one.len;
            head.sum = add(head.sum, one.sum)?;
        }
        let (mut generation, mut cursor) = match after {
            None => (totals.oldest_federation, None),
            Some(outpoint) => match store.get::<FederationCoin>(&key::coin(&outpoint)).await? {
                Some(coin) if coin.federation >= totals.oldest_federation => {
                    (coin.federation, Some(outpoint))
                }
                _ => return Ok((None, head)),
            },
        };
        let mut coins = Vec::new();
        while generation <= totals.federation && coins.len() < n {
            let Some(page) = list::coins(generation)
                .after(store, cursor, n - coins.len())
                .await?
            else {
                return Ok((None, head));
            };
            for (outpoint, _) in page {
                coins.push(self.coin(store, &outpoint).await?);
            }
            generation += 1;
            cursor = None;
        }
        Ok((Some(coins), head))
    }

    /// Up to `n` claims in their contest period after `after` (from the oldest if `None`;
    /// `None` if `after` is no longer pending), and the pending list's head.
    ///
    /// # Errors
    /// A database failure or a broken list.
    pub async fn pending_after<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        after: Option<Outpoint>,
        n: usize,
    ) -> Result<(Option<Vec<(Outpoint, ClaimRecord)>>, ListHead<Outpoint>), BlockError> {
        let head = list::pending().head(store).await?;
        let Some(page) = list::pending().after(store, after, n).await? else {
            return Ok((None, head));
        };
        let mut claims = Vec::new();
        for (outpoint, _) in page {
            let claim: ClaimRecord = store
                .get(&key::claim(&outpoint))
                .await?
                .ok_or(BlockError::CorruptState(key::claim(&outpoint)))?;
            claims.push((outpoint, claim));
        }
        Ok((Some(claims), head))
    }

    /// The number of queued peg-out requests and the satoshis they burned.
    ///
    /// # Errors
    /// A database failure.
    pub async fn queued<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<ListHead<u64>, BlockError> {
        list::queue().head(store).await
    }

    /// The conservation invariant from the running totals: O(1) reads plus the batch in
    /// flight. Run after every block that touches the peg; [`Peg::rederive`] checks the same
    /// from every record.
    ///
    /// # Errors
    /// [`BlockError::Invariant`] if the totals and the lists' sums disagree.
    pub async fn check_invariant<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<(), BlockError> {
        let totals = self.totals(store).await?;
        let mut held = self.in_flight_inputs(store, &totals).await?;
        for generation in totals.oldest_federation..=totals.federation {
            let coins: ListHead<Outpoint> = list::coins(generation).head(store).await?;
            held += u128::from(coins.sum);
        }
        let pending: ListHead<Outpoint> = list::pending().head(store).await?;
        check(&totals, held, u128::from(pending.sum))
    }

    async fn in_flight_inputs<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        totals: &PegTotals,
    ) -> Result<u128, BlockError> {
        let Some(id) = totals.in_flight else {
            return Ok(0);
        };
        let batch: Batch = store
            .get(&key::batch(id))
            .await?
            .ok_or(BlockError::CorruptState(key::batch(id)))?;
        Ok(batch.inputs.0.iter().map(|c| u128::from(c.value)).sum())
    }

    /// The conservation invariant re-derived from every record: each list walked and checked
    /// link by link, each coin, pending claim and queued request read and compared with its
    /// list entry, and the totals compared with the sums. O(records): for tests and audits.
    ///
    /// # Errors
    /// [`BlockError::Invariant`] naming the first disagreement.
    pub async fn rederive<E: Runtime>(&self, store: &mut Store<'_, E>) -> Result<(), BlockError> {
        let totals = self.totals(store).await?;
        let broken = |what: String| Err(BlockError::Invariant(what));
        let mut held = 0u128;
        let mut pending_per_federation = std::collections::BTreeMap::<u32, u64>::new();
        for generation in 0..=totals.federation {
            let coins = list::coins(generation).verify::<Outpoint, E>(store).await?;
            if generation < totals.oldest_federation && !coins.is_empty() {
                return broken(format!("retired federation {generation} holds coins"));
            }
            for (outpoint, value) in coins {
                let coin = self.coin(store, &outpoint).await?;
                if coin.value != value || coin.federation != generation {
                    return broken(format!(
                        "coin {outpoint:?} is worth {} of federation {}, listed as {value} of \
                         {generation}",
                        coin.value, coin.federation
                    ));
                }
                held += u128::from(value);
            }
        }
        held += self.in_flight_inputs(store, &totals).await?;
        let mut pending_sum = 0u128;
        for (outpoint, value) in list::pending().verify::<Outpoint, E>(store).await? {
            let claim: ClaimRecord = store
                .get(&key::claim(&outpoint))
                .await?
                .ok_or(BlockError::CorruptState(key::claim(&outpoint)))?;
            if claim.value != value || claim.status != ClaimStatus::Pending.tag() {
                return broken(format!(
                    "pending claim {outpoint:?} disagrees with its record"
                ));
            }
            if claim.federation < totals.oldest_federation {
                return broken(format!(
                    "pending claim {outpoint:?} pays retired federation {}",
                    claim.federation
                ));
            }
            *pending_per_federation.entry(claim.federation).or_default() += 1;
            pending_sum += u128::from(value);
        }
        for generation in totals.oldest_federation..=totals.federation {
            let counted = self
                .federation(store, generation)
                .await?
                .record
                .pending_claims;
            let listed = pending_per_federation
                .get(&generation)
                .copied()
                .unwrap_or(0);
            if counted != listed {
                return broken(format!(
                    "federation {generation} counts {counted} pending claims, {listed} listed"
                ));
            }
        }
        let mut burned = 0u128;
        for (id, amount) in list::queue().verify::<u64, E>(store).await? {
            let request: PegOutRequest = store
                .get(&key::request(id))
                .await?
                .ok_or(BlockError::CorruptState(key::request(id)))?;
            if request.amount != amount || request.status != PegOutStatus::Queued.tag() {
                return broken(format!("queued request {id} disagrees with its record"));
            }
            burned += u128::from(amount);
        }
        if let Some(id) = totals.in_flight {
            let batch: Batch = store
                .get(&key::batch(id))
                .await?
                .ok_or(BlockError::CorruptState(key::batch(id)))?;
            for id in &batch.requests.0 {
                let request: PegOutRequest = store
                    .get(&key::request(*id))
                    .await?
                    .ok_or(BlockError::CorruptState(key::request(*id)))?;
                burned += u128::from(request.amount);
            }
        }
        if burned != u128::from(totals.pending_peg_outs) {
            return broken(format!(
                "pending peg-outs {} but the queue and the batch in flight burned {burned}",
                totals.pending_peg_outs
            ));
        }
        check(&totals, held, pending_sum)
    }

    /// The peg's totals (supply, fee pool, pending amounts).
    ///
    /// # Errors
    /// If the state cannot be read or the record is missing.
    pub async fn totals<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<PegTotals, BlockError> {
        store
            .get(&key::totals())
            .await?
            .ok_or(BlockError::CorruptState(key::totals()))
    }
}

fn check(totals: &PegTotals, held: u128, pending: u128) -> Result<(), BlockError> {
    let owed = u128::from(totals.supply)
        + u128::from(totals.fee_pool)
        + u128::from(totals.pending_peg_outs);
    if pending != u128::from(totals.pending_claims) || owed != held {
        return Err(BlockError::Invariant(format!(
            "peg conservation broken: supply {} + fee pool {} + pending peg-outs {} != \
             federation coins {held}; pending claims {} vs records {pending}",
            totals.supply, totals.fee_pool, totals.pending_peg_outs, totals.pending_claims
        )));
    }
    Ok(())
}

pub(crate) fn add(a: u64, b: u64) -> Result<u64, BlockError> {
    a.checked_add(b)
        .ok_or_else(|| BlockError::Invariant("peg total overflows".into()))
}

pub(crate) fn sub(a: u64, b: u64) -> Result<u64, BlockError> {
    a.checked_sub(b)
        .ok_or_else(|| BlockError::Invariant("peg total underflows".into()))
}
