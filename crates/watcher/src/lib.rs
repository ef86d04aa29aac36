//! A validator's peg duties, computed from its main-chain node and Consort's state: relay new
//! headers (from the fork point on a reorg), claim deposits to watched accounts once they have
//! k confirmations on the light client, sign the batch in flight, broadcast it once it has the
//! federation threshold of signatures, and record its confirmation.
//!
//! [`Watcher::duties`] returns the Consort calls to submit; broadcasting is its only effect on
//! the main chain. Everything it proposes is checked again by the runtime, so a confused or
//! malicious watcher can waste a transaction, never move coins.

use bitcoin::{Block, BlockHash, Transaction, Txid, hashes::Hash as _};
use consort_execution::{BlockError, Runtime, Store};
use consort_mainchain::{RpcClient, RpcError, SigningKey};
use consort_peg::{Federated, Peg};
use consort_types::{
    AccountId, Call,
    codec_util::{Blob, List},
    peg::{
        Batch, BatchStatus, CLAIM_OUTPUTS_MAX, ClaimRecord, ClaimStatus, DepositOutput,
        HeaderEntry, MainTip, Outpoint, PegTotals, RELAY_HEADERS_MAX,
    },
    state_key::peg as key,
};
use std::collections::{BTreeMap, BTreeSet};

/// Most headers relayed per round (a few relay transactions).
const RELAY_ROUND_MAX: usize = 4 * RELAY_HEADERS_MAX;

/// Rounds a validator waits, per place it stands after the designated relayer, before it
/// relays headers the designated one has not: one relayer per header range while all are up,
/// the next one stepping in when it is down.
pub const RELAY_STANDBY_ROUNDS: u32 = 3;

/// Bytes of a claim transaction besides the main-chain transaction, its proof and the outputs
/// (sender, nonce, chain id, signature, tags and length prefixes), with room to spare.
const CLAIM_OVERHEAD_BYTES: usize = 256;
/// Bytes of one claimed output (account and index).
const CLAIM_OUTPUT_BYTES: usize = 36;

/// The parts of a round. Each reads its own snapshot of the state, so a block that lands
/// during one (a stale snapshot) costs a retry of that part only, never the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Duty {
    /// Relay main-chain headers the light client lacks (validators only).
    Relay,
    /// Claim confirmed deposits to watched addresses.
    Claims,
    /// Sign, broadcast and confirm the batch in flight.
    Batch,
}

impl Duty {
    /// Every part, in round order.
    pub const ALL: [Self; 3] = [Self::Relay, Self::Claims, Self::Batch];
}

/// Most deposits below the minimum a watcher remembers for its report (the oldest go first).
pub const IGNORED_DEPOSITS_MAX: usize = 1024;

/// A payment to a watched deposit address below the peg's minimum: never claimed (the chain
/// would refuse it), only reported.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IgnoredDeposit {
    /// The output.
    pub outpoint: Outpoint,
    /// The account whose address it paid.
    pub account: AccountId,
    /// Its value (satoshis).
    pub value: u64,
    /// The minimum it fell short of (satoshis).
    pub minimum: u64,
}

/// Why a round of duties stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The main-chain node failed or answered nonsense.
    #[error("main-chain node: {0}")]
    Rpc(#[from] RpcError),
    /// Consort's state could not be read.
    #[error("state: {0}")]
    State(#[from] BlockError),
    /// Main-chain data did not decode.
    #[error("main-chain data: {0}")]
    Decode(String),
}

impl From<consort_execution::StateError> for WatchError {
    fn from(error: consort_execution::StateError) -> Self {
        Self::State(error.into())
    }
}

/// An output to claim and the federation whose script it pays.
type Paying = (DepositOutput, u32);

/// A deposit seen on the main chain.
#[derive(Clone, Debug)]
struct Seen {
    account: AccountId,
    block: BlockHash,
    /// The federation whose deposit script it paid.
    federation: u32,
}

/// One validator's watcher.
pub struct Watcher {
    peg: Peg,
    rpc: RpcClient,
    /// This validator's account and federation key (absent on a non-validator).
    signer: Option<(AccountId, SigningKey)>,
    /// Accounts whose deposits are claimed.
    accounts: BTreeSet<AccountId>,
    /// The live federations, oldest first, as last read.
    federations: Vec<Federated>,
    /// Deposit scripts of watched accounts under every live federation: whose, and which
    /// federation's.
    watched: BTreeMap<Vec<u8>, (AccountId, u32)>,
    /// The smallest deposit the chain credits (under the current federation).
    minimum: u64,
    /// Members of the current federation (relay turns go round them), and this validator's
    /// place among them.
    relayers: (usize, Option<usize>),
    /// Next main-chain height to scan for deposits.
    scan_from: u32,
    seen: BTreeMap<Outpoint, Seen>,
    /// Deposits below the minimum, oldest first, at most [`IGNORED_DEPOSITS_MAX`].
    ignored: std::collections::VecDeque<IgnoredDeposit>,
    /// Batch versions (txids) this watcher broadcast and the node accepted.
    broadcast: BTreeSet<[u8; 32]>,
    /// Main-chain transactions (raw, without MWEB data) and their proofs, by txid, fetched for
    /// claims not yet final: a retried round does not ask the node again.
    fetched: BTreeMap<[u8; 32], (Vec<u8>, Vec<u8>)>,
    /// The light client's tip when this watcher last looked, and the round it first saw it
    /// while the main chain was ahead of it.
    relay_wait: (Option<[u8; 32]>, u64),
    /// Rounds so far (one per [`Watcher::scan`]): retries of a duty within a round do not
    /// count.
    round: u64,
}

impl Watcher {
    /// A watcher of `peg` through `rpc`, signing as validator `account` with `key`.
    pub fn new(peg: Peg, rpc: RpcClient, signer: Option<(AccountId, SigningKey)>) -> Self {
        Self {
            peg,
            rpc,
            signer,
            accounts: BTreeSet::new(),
            federations: Vec::new(),
            watched: BTreeMap::new(),
            minimum: u64::MAX,
            relayers: (1, None),
            scan_from: 0,
            seen: BTreeMap::new(),
            ignored: std::collections::VecDeque::new(),
            broadcast: BTreeSet::new(),
            fetched: BTreeMap::new(),
            relay_wait: (None, 0),
            round: 0,
        }
    }

    /// Deposits to watched addresses that were below the peg's minimum, oldest first (the
    /// latest [`IGNORED_DEPOSITS_MAX`]): never claimed.
    pub fn ignored(&self) -> impl Iterator<Item = &IgnoredDeposit> {
        self.ignored.iter()
    }

    /// Watch `account`'s deposit addresses (under every live federation): deposits to them
    /// are claimed automatically. Blocks from `from_height` on are scanned (again) so that
    /// earlier deposits are found.
    pub fn watch(&mut self, account: AccountId, from_height: u32) {
        if self.accounts.insert(account) {
            for federation in &self.federations {
                let script = self
                    .peg
                    .deposit_script(&federation.federation, &account)
                    .to_bytes();
                self.watched
                    .insert(script, (account, federation.record.generation));
            }
            self.scan_from = self.scan_from.min(from_height);
        }
    }

    /// The accounts watched.
    pub fn watched(&self) -> impl Iterator<Item = &AccountId> {
        self.accounts.iter()
    }

    /// Follow the live federations in `store`: the deposit scripts watched, the minimum, the
    /// relay turns. A federation new since the last look has its blocks scanned from the
    /// switch.
    ///
    /// # Errors
    /// The state could not be read.
    pub async fn follow<E: Runtime>(&mut self, store: &mut Store<'_, E>) -> Result<(), WatchError> {
        if store.get::<PegTotals>(&key::totals()).await?.is_none() {
            return Ok(());
        }
        let live = self.peg.live(store).await?;
        let generations: Vec<u32> = live.iter().map(|f| f.record.generation).collect();
        let known: Vec<u32> = self
            .federations
            .iter()
            .map(|f| f.record.generation)
            .collect();
        let Some(current) = live.last() else {
            return Ok(());
        };
        self.minimum = self.peg.deposit_minimum(&current.federation);
        let me = self.signer.as_ref().map(|(account, _)| *account);
        self.relayers = (
            current.record.members.0.len().max(1),
            me.and_then(|me| current.position(&me)).map(usize::from),
        );
        if generations == known {
            // Records change too (a replaced federation's switch height): keep them fresh.
            self.federations = live;
            return Ok(());
        }
        if !known.is_empty() {
            for federation in &live {
                if !known.contains(&federation.record.generation) {
                    self.scan_from = self.scan_from.min(federation.record.since_main);
                }
            }
        }
        self.federations = live;
        self.watched.clear();
        for account in &self.accounts {
            for federation in &self.federations {
                let script = self
                    .peg
                    .deposit_script(&federation.federation, account)
                    .to_bytes();
                self.watched
                    .insert(script, (*account, federation.record.generation));
            }
        }
        Ok(())
    }

    /// One round from one snapshot: [`Watcher::scan`], then every [`Duty`]. A node takes a
    /// fresh snapshot per duty instead ([`Watcher::duty`]).
    ///
    /// # Errors
    /// A [`WatchError`]; the next round starts over.
    pub async fn duties<E: Runtime>(
        &mut self,
        store: &mut Store<'_, E>,
    ) -> Result<Vec<Call>, WatchError> {
        self.follow(store).await?;
        self.scan().await?;
        let mut calls = Vec::new();
        for duty in Duty::ALL {
            calls.extend(self.duty(duty, store).await?);
        }
        Ok(calls)
    }

    /// The calls of one duty, given the state in `store`. Claims use what [`Watcher::scan`]
    /// found.
    ///
    /// # Errors
    /// A [`WatchError`]; a stale snapshot ([`BlockError::StaleRead`]) is worth a retry with a
    /// fresh one.
    pub async fn duty<E: Runtime>(
        &mut self,
        duty: Duty,
        store: &mut Store<'_, E>,
    ) -> Result<Vec<Call>, WatchError> {
        let Some(tip) = store.get::<MainTip>(&key::tip()).await? else {
            // Block 1 writes the peg's starting point; until it is final there is nothing to do.
            return Ok(Vec::new());
        };
        match duty {
            Duty::Relay if self.signer.is_some() => self.relay(store, &tip).await,
            Duty::Relay => Ok(Vec::new()),
            Duty::Claims => {
                self.follow(store).await?;
                self.claims(store, &tip).await
            }
            Duty::Batch => {
                let totals: PegTotals = store
                    .get(&key::totals())
                    .await?
                    .ok_or(BlockError::CorruptState(key::totals()))?;
                let Some(id) = totals.in_flight else {
                    return Ok(Vec::new());
                };
                let batch: Batch = store
                    .get(&key::batch(id))
                    .await?
                    .ok_or(BlockError::CorruptState(key::batch(id)))?;
                self.batch_duties(store, &batch, &tip).await
            }
        }
    }

    /// Whether this validator relays now: the designated relayer of the light client's tip
    /// (validators take turns, drawn from its hash) at once, the others after
    /// [`RELAY_STANDBY_ROUNDS`] per place behind it of the tip standing still.
    fn my_turn(&mut self, tip: &MainTip) -> bool {
        if self.signer.is_none() {
            return false;
        }
        let validators = self.relayers.0;
        // A validator outside the current federation stands last.
        let index = self.relayers.1.unwrap_or(validators.saturating_sub(1));
        // By the tip's hash, not its height: a relay moves the tip by any number of headers,
        // and a down validator must not stay designated.
        let mut word = [0u8; 8];
        word.copy_from_slice(&tip.hash[..8]);
        let designated = (u64::from_le_bytes(word) % validators as u64) as usize;
        let place = (index + validators - designated) % validators;
        if self.relay_wait.0 != Some(tip.hash) {
            self.relay_wait = (Some(tip.hash), self.round);
        }
        let wait = u64::try_from(place)
            .unwrap_or(u64::MAX)
            .saturating_mul(u64::from(RELAY_STANDBY_ROUNDS));
        self.round.saturating_sub(self.relay_wait.1) >= wait
    }

    async fn relay<E: Runtime>(
        &mut self,
        store: &mut Store<'_, E>,
        tip: &MainTip,
    ) -> Result<Vec<Call>, WatchError> {
        let mut cursor = self.rpc.get_best_block_hash().await?;
        if cursor.to_byte_array() == tip.hash || !self.my_turn(tip) {
            return Ok(Vec::new());
        }
        let mut headers = Vec::new();
        loop {
            let known: Option<HeaderEntry> =
                store.get(&key::header(&cursor.to_byte_array())).await?;
            if known.is_some() {
                break;
            }
            let raw = self.rpc.get_block_header_raw(&cursor).await?;
            let header: [u8; 80] = raw
                .as_slice()
                .try_into()
                .map_err(|_| WatchError::Decode("a header is not 80 bytes".into()))?;
            headers.push(header);
            cursor = BlockHash::from_byte_array(header[4..36].try_into().expect("32 bytes"));
        }
        headers.reverse();
        // Far behind: relay the oldest first, a bounded amount per round.
        headers.truncate(RELAY_ROUND_MAX);
        Ok(headers
            .chunks(RELAY_HEADERS_MAX)
            .map(|chunk| Call::RelayHeaders {
                headers: List(chunk.to_vec()),
            })
            .collect())
    }

    /// Scan new main-chain blocks for payments to watched deposit scripts (main-chain RPC
    /// only).
    ///
    /// # Errors
    /// The main-chain node failed or sent a block that does not decode.
    pub async fn scan(&mut self) -> Result<(), WatchError> {
        self.round = self.round.saturating_add(1);
        if self.federations.is_empty() {
            // The federations are not read yet ([`Watcher::follow`]): nothing to match.
            return Ok(());
        }
        if self.accounts.is_empty() {
            self.scan_from = self.rpc.get_block_count().await?.saturating_add(1);
            return Ok(());
        }
        let height = self.rpc.get_block_count().await?;
        let minimum = self.minimum;
        while self.scan_from <= height {
            let hash = self.rpc.get_block_hash(self.scan_from).await?;
            let raw = self.rpc.get_block_raw(&hash).await?;
            let block: Block = bitcoin::consensus::deserialize(&raw)
                .map_err(|e| WatchError::Decode(format!("block {hash}: {e}")))?;
            for tx in &block.txdata {
                let txid = tx.compute_txid();
                for (vout, output) in tx.output.iter().enumerate() {
                    let Some(&(account, federation)) =
                        self.watched.get(output.script_pubkey.as_bytes())
                    else {
                        continue;
                    };
                    let outpoint = Outpoint {
                        txid: txid.to_byte_array(),
                        vout: u32::try_from(vout).unwrap_or(u32::MAX),
                    };
                    let value = output.value.to_sat();
                    if value < minimum {
                        if self.ignored.iter().any(|d| d.outpoint == outpoint) {
                            continue;
                        }
                        // The chain refuses such a claim: claiming it every round would only
                        // spend this validator's transactions (and nonces) on refusals.
                        tracing::warn!(
                            %txid, vout, %account, value, minimum,
                            "deposit below the peg's minimum: not claimed"
                        );
                        let account = &account;
                        if self.ignored.len() >= IGNORED_DEPOSITS_MAX {
                            self.ignored.pop_front();
                        }
                        self.ignored.push_back(IgnoredDeposit {
                            outpoint,
                            account: *account,
                            value,
                            minimum,
                        });
                        continue;
                    }
                    self.seen.insert(
                        outpoint,
                        Seen {
                            account,
                            block: hash,
                            federation,
                        },
                    );
                }
            }
            self.scan_from += 1;
        }
        Ok(())
    }

    /// Claims of the deposits seen that the light client shows confirmed enough: one call per
    /// main-chain transaction (at most [`CLAIM_OUTPUTS_MAX`] outputs each), leaving out
    /// outputs to frozen accounts or organisations, which would make the whole claim fail.
    async fn claims<E: Runtime>(
        &mut self,
        store: &mut Store<'_, E>,
        tip: &MainTip,
    ) -> Result<Vec<Call>, WatchError> {
        let mut done = Vec::new();
        // txid → the block and the outputs to claim.
        // By txid: the block, and the outputs with the federation each pays.
        let mut groups: BTreeMap<[u8; 32], (BlockHash, Vec<Paying>)> = BTreeMap::new();
        let freezes: u64 = store
            .get(&consort_types::state_key::gov::frozen_count())
            .await?
            .unwrap_or(0);
        for (outpoint, seen) in &self.seen {
            let claim: Option<ClaimRecord> = store.get(&key::claim(outpoint)).await?;
            if claim.is_some_and(|c| c.status != ClaimStatus::Void.tag()) {
                done.push(*outpoint);
                continue;
            }
            // Claim once the light client shows k confirmations on the block it is in.
            let Some(entry) = store
                .get::<HeaderEntry>(&key::header(&seen.block.to_byte_array()))
                .await?
            else {
                continue;
            };
            let on_best: Option<[u8; 32]> = store.get(&key::height(entry.height)).await?;
            if on_best != Some(entry.hash) {
                continue;
            }
            // A replaced federation's address paid after its grace period: the chain refuses
            // the claim, so it is never made.
            let takes = self
                .federations
                .iter()
                .find(|f| f.record.generation == seen.federation)
                .is_some_and(|f| self.peg.takes_deposit(&f.record, entry.height, tip.height));
            if !takes {
                tracing::warn!(
                    txid = %Txid::from_byte_array(outpoint.txid), vout = outpoint.vout,
                    federation = seen.federation,
                    "deposit to a replaced federation's address after its grace period: not claimed"
                );
                done.push(*outpoint);
                continue;
            }
            if freezes > 0 && frozen(store, &seen.account).await? {
                continue;
            }
            groups
                .entry(outpoint.txid)
                .or_insert_with(|| (seen.block, Vec::new()))
                .1
                .push((
                    DepositOutput {
                        account: seen.account,
                        vout: outpoint.vout,
                    },
                    seen.federation,
                ));
        }
        for outpoint in done {
            self.seen.remove(&outpoint);
        }
        let waiting: BTreeSet<[u8; 32]> = self.seen.keys().map(|o| o.txid).collect();
        self.fetched.retain(|txid, _| waiting.contains(txid));
        let mut calls = Vec::new();
        for (txid_bytes, (block, outputs)) in groups {
            let txid = Txid::from_byte_array(txid_bytes);
            let Some(entry) = store
                .get::<HeaderEntry>(&key::header(&block.to_byte_array()))
                .await?
            else {
                continue;
            };
            if !self.fetched.contains_key(&txid_bytes) {
                let raw = self.rpc.get_raw_transaction(&txid, Some(&block)).await?;
                let proof = self.rpc.get_tx_out_proof(&[txid], Some(&block)).await?;
                self.fetched.insert(txid_bytes, (raw, proof));
            }
            let (raw, proof) = &self.fetched[&txid_bytes];
            let decoded: Transaction = bitcoin::consensus::deserialize(raw)
                .map_err(|e| WatchError::Decode(e.to_string()))?;
            let confirmations = tip.height.saturating_sub(entry.height) + 1;
            // What the chain asks of each output: the current minimum and that of the
            // federation it pays (the larger).
            let minimum = |generation: u32| {
                self.federations
                    .iter()
                    .find(|f| f.record.generation == generation)
                    .map_or(u64::MAX, |f| {
                        self.peg.deposit_minimum(&f.federation).max(self.minimum)
                    })
            };
            let ready: Vec<DepositOutput> = outputs
                .into_iter()
                .filter(|(o, generation)| {
                    let value = decoded
                        .output
                        .get(o.vout as usize)
                        .map_or(0, |o| o.value.to_sat());
                    // Seen above an older, lower minimum (the federation grew since): the
                    // chain would refuse the whole claim.
                    value >= minimum(*generation)
                        && confirmations >= self.peg.confirmations_needed(&decoded, value)
                })
                .map(|(o, _)| o)
                .collect();
            if ready.is_empty() {
                continue;
            }
            // As many outputs per claim as fit one Consort transaction beside the main-chain
            // transaction and its proof (each output: an account and an index).
            let room = consort_types::limits::TX_SIZE_MAX
                .saturating_sub(raw.len() + proof.len() + CLAIM_OVERHEAD_BYTES);
            let per_claim = (room / CLAIM_OUTPUT_BYTES).clamp(1, CLAIM_OUTPUTS_MAX);
            for chunk in ready.chunks(per_claim) {
                calls.push(Call::ClaimDeposit {
                    transaction: Blob(raw.clone()),
                    proof: Blob(proof.clone()),
                    outputs: List(chunk.to_vec()),
                });
            }
        }
        Ok(calls)
    }

    async fn batch_duties<E: Runtime>(
        &mut self,
        store: &mut Store<'_, E>,
        batch: &Batch,
        tip: &MainTip,
    ) -> Result<Vec<Call>, WatchError> {
        // Any version mined (the current one, or one a fee bump replaced): confirm it once
        // the light client shows k confirmations.
        let versions = std::iter::once(batch.txid).chain(batch.replaced.0.iter().map(|v| v.txid));
        for txid in versions.collect::<Vec<_>>() {
            let txid = Txid::from_byte_array(txid);
            let Some(block) = self.mined_in(&txid).await else {
                continue;
            };
            let Some(entry) = store
                .get::<HeaderEntry>(&key::header(&block.to_byte_array()))
                .await?
            else {
                return Ok(Vec::new());
            };
            if tip.height.saturating_sub(entry.height) + 1 < self.peg.config.confirmations {
                return Ok(Vec::new());
            }
            let proof = self.rpc.get_tx_out_proof(&[txid], Some(&block)).await?;
            return Ok(vec![Call::ConfirmBatch {
                batch: batch.id,
                proof: Blob(proof),
            }]);
        }
        let source = self.peg.federation(store, batch.federation).await?;
        let unsigned = self.peg.unsigned(batch, &source.federation);
        if batch.status == BatchStatus::Signing.tag() {
            let Some((account, key)) = &self.signer else {
                return Ok(Vec::new());
            };
            // Only members of the batch's federation sign.
            let Some(index) = source.position(account) else {
                return Ok(Vec::new());
            };
            if batch.signers.0.contains(&index) {
                return Ok(Vec::new());
            }
            let partial = unsigned
                .sign(key)
                .map_err(|e| WatchError::Decode(e.to_string()))?;
            return Ok(vec![Call::SignBatch {
                batch: batch.id,
                signatures: List(
                    partial
                        .signatures
                        .iter()
                        .map(|s| Blob(s.to_vec()))
                        .collect(),
                ),
            }]);
        }
        if batch.status != BatchStatus::Signed.tag() {
            return Ok(Vec::new());
        }
        // Not mined: broadcast (again each round: a node that restarted or dropped it from
        // its mempool gets it back; the node answers a duplicate with an error).
        let txid = Txid::from_byte_array(batch.txid);
        let partials = self.peg.signatures(store, batch).await?;
        let signed = unsigned
            .assemble(&partials)
            .map_err(|e| WatchError::Decode(e.to_string()))?;
        match self
            .rpc
            .send_raw_transaction(&bitcoin::consensus::serialize(&signed))
            .await
        {
            Ok(_) => {
                if self.broadcast.insert(batch.txid) {
                    tracing::info!(batch = batch.id, %txid, "broadcast peg-out batch");
                }
            }
            Err(error) => tracing::debug!(batch = batch.id, %txid, %error, "broadcast"),
        }
        Ok(Vec::new())
    }

    /// The block a main-chain transaction is in, if the node knows it mined.
    async fn mined_in(&self, txid: &Txid) -> Option<BlockHash> {
        let info: serde_json::Value = self
            .rpc
            .call(
                "getrawtransaction",
                vec![serde_json::json!(txid), serde_json::json!(true)],
            )
            .await
            .ok()?;
        info.get("blockhash")?.as_str()?.parse().ok()
    }
}

/// Whether a claim crediting `account` would be refused because the account or its
/// organisation (on a governed chain) is frozen. (A frozen pegged asset stops every claim.)
async fn frozen<E: Runtime>(
    store: &mut Store<'_, E>,
    account: &AccountId,
) -> Result<bool, WatchError> {
    use consort_types::{
        gov::{FreezeTarget, Registration},
        state_key::gov,
    };
    let mut targets = vec![FreezeTarget::Account(*account)];
    if let Some(registration) = store
        .get::<Registration>(&gov::registration(account))
        .await?
    {
        targets.push(FreezeTarget::Org(registration.org));
    }
    for target in targets {
        if store.get::<bool>(&gov::frozen(&target)).await? == Some(true) {
            return Ok(true);
        }
    }
    Ok(false)
}
