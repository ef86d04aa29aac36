//! A node's one admission pipeline, used by the API and by gossip alike: stateless checks
//! (size, chain id, signature), then the stateful ones against the finalized state (the
//! sender's eligibility, cached until a finalized block writes a key it was read from; a
//! rotation's own checks; the nonce window, per-sender limits and pending spends in the
//! pool), then the pool.

use crate::{
    admission::{check_size, sender_may},
    mempool::Mempool,
    rules::Rules,
    txindex::TxIndex,
};
use commonware_cryptography::ed25519;
use commonware_glue::stateful::db::DatabaseSet as _;
use consort_execution::{BlockError, Fail, Runtime, Store, accounts};
use consort_governance::Gov;
use consort_peg::Peg;
use consort_state::Databases;
use consort_types::{
    Account, AccountId, Call, Digest, Genesis, SignedTx, TxError, TxHash, state_key,
};
use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
};

/// Reads retried when a block is applied while they run.
pub const STALE_READ_RETRIES_MAX: u32 = 16;

/// Most decoded sender keys an admission pipeline keeps (about 200 bytes each); when full it
/// starts over.
pub const DECODED_KEYS_MAX: usize = 65_536;

/// Admission of transactions into a node's pool.
pub struct Admission<E: Runtime> {
    genesis: Arc<Genesis>,
    peg: Option<Peg>,
    gov: Option<Gov>,
    commerce: Option<consort_commerce::Commerce>,
    mempool: Mempool,
    databases: Databases<E>,
    /// Senders' keys, decoded: decoding (point decompression) costs about as much as a
    /// batched signature check, and senders send again and again.
    keys: Mutex<BTreeMap<AccountId, ed25519::PublicKey>>,
    /// The node's index of finalized transactions, to tell a resent final transaction from
    /// another one reusing its nonce.
    txindex: Option<Arc<TxIndex<E>>>,
}

impl<E: Runtime> Admission<E> {
    /// The pipeline of `genesis`'s chain into `mempool`, reading the finalized `databases`.
    ///
    /// # Errors
    /// If genesis's peg section is unusable.
    pub fn new(
        genesis: Arc<Genesis>,
        mempool: Mempool,
        databases: Databases<E>,
    ) -> Result<Self, String> {
        Ok(Self {
            peg: Peg::from_genesis(&genesis)?,
            gov: Gov::from_genesis(&genesis),
            commerce: consort_commerce::Commerce::from_genesis(&genesis),
            genesis,
            mempool,
            databases,
            keys: Mutex::default(),
            txindex: None,
        })
    }

    /// Answer [`TxError::Duplicate`] for a transaction `txindex` holds as finalized.
    #[must_use]
    pub fn with_tx_index(mut self, txindex: Arc<TxIndex<E>>) -> Self {
        self.txindex = Some(txindex);
        self
    }

    /// Whether every one of `txs`' signatures verifies, checked in one batch with the
    /// senders' keys decoded once per sender (not once per transaction).
    pub fn verify_signatures(
        &self,
        txs: &[&SignedTx],
        rng: &mut impl rand_core::CryptoRng,
    ) -> bool {
        match self.decoded_keys(txs) {
            Some(keys) => consort_types::tx::verify_batch_with_keys(txs, &keys, rng),
            // A sender id that is not a valid key cannot have signed anything.
            None => false,
        }
    }

    /// Each transaction's sender key, decoded (outside the lock) if not known yet.
    fn decoded_keys(&self, txs: &[&SignedTx]) -> Option<Vec<ed25519::PublicKey>> {
        let known: Vec<Option<ed25519::PublicKey>> = {
            let keys = self.keys.lock().expect("key cache lock is never poisoned");
            txs.iter()
                .map(|tx| keys.get(&tx.tx.sender).cloned())
                .collect()
        };
        let mut decoded = Vec::new();
        let keys = txs
            .iter()
            .zip(known)
            .map(|(tx, known)| match known {
                Some(key) => Some(key),
                None => {
                    let key = tx.tx.sender.public_key()?;
                    decoded.push((tx.tx.sender, key.clone()));
                    Some(key)
                }
            })
            .collect::<Option<Vec<_>>>()?;
        if !decoded.is_empty() {
            let mut keys = self.keys.lock().expect("key cache lock is never poisoned");
            for (sender, key) in decoded {
                if keys.len() >= DECODED_KEYS_MAX {
                    keys.clear();
                }
                keys.insert(sender, key);
            }
        }
        Some(keys)
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            genesis: &self.genesis,
            peg: self.peg.as_ref(),
            gov: self.gov.as_ref(),
            commerce: self.commerce.as_ref(),
        }
    }

    /// Admit a transaction whose signature is not checked yet. `gossip` sends it to peers.
    ///
    /// # Errors
    /// Why it is refused.
    pub async fn admit(&self, tx: SignedTx, gossip: bool) -> Result<TxHash, TxError> {
        tx.check_stateless(self.genesis.chain_id)?;
        self.admit_verified(tx, gossip).await
    }

    /// Admit a transaction whose signature was verified (in a batch, by the caller).
    ///
    /// # Errors
    /// Why it is refused.
    pub async fn admit_verified(&self, tx: SignedTx, gossip: bool) -> Result<TxHash, TxError> {
        self.admit_verified_many(vec![tx], gossip)
            .await
            .pop()
            .expect("one answer per transaction")
    }

    /// Admit transactions whose signatures were verified (in a batch, by the caller), in
    /// order: the senders' eligibility and accounts are read from one snapshot and the pool
    /// is locked once. The answers come in the same order.
    pub async fn admit_verified_many(
        &self,
        txs: Vec<SignedTx>,
        gossip: bool,
    ) -> Vec<Result<TxHash, TxError>> {
        let mut answers: Vec<Option<Result<TxHash, TxError>>> = Vec::with_capacity(txs.len());
        let mut checked = Vec::with_capacity(txs.len());
        for tx in txs {
            match tx
                .check_without_signature(self.genesis.chain_id)
                .and_then(|()| check_size(self.rules(), &tx))
            {
                Ok(()) => {
                    answers.push(None);
                    checked.push(tx);
                }
                Err(error) => answers.push(Some(Err(error))),
            }
        }
        let admitted = self.pool_many(checked, gossip).await;
        let mut admitted = admitted.into_iter();
        answers
            .into_iter()
            .map(|answer| {
                answer.unwrap_or_else(|| admitted.next().expect("one answer per checked one"))
            })
            .collect()
    }

    /// The stateful checks and the pool, for transactions whose stateless ones passed.
    async fn pool_many(&self, txs: Vec<SignedTx>, gossip: bool) -> Vec<Result<TxHash, TxError>> {
        let reads = match self.stateful_many(&txs).await {
            Ok(reads) => reads,
            Err(error) => return txs.iter().map(|_| Err(error.clone())).collect(),
        };
        let mut answers: Vec<Option<Result<TxHash, TxError>>> = Vec::with_capacity(txs.len());
        let mut admissible = Vec::with_capacity(txs.len());
        for (tx, read) in txs.into_iter().zip(reads) {
            match read {
                Ok(account) => {
                    answers.push(None);
                    admissible.push((tx, account));
                }
                Err(error) => answers.push(Some(Err(error))),
            }
        }
        let hashes: Vec<TxHash> = admissible.iter().map(|(tx, _)| tx.hash()).collect();
        let pooled = self.mempool.admit_many(admissible, gossip);
        let mut pooled = pooled.into_iter().zip(hashes);
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                Some(refused) => refused,
                None => {
                    let (result, hash) = pooled.next().expect("one answer per admissible one");
                    self.explain_reused(result, &hash).await
                }
            });
        }
        results
    }

    /// A used nonce: say so plainly if it is this very transaction, already final (the index
    /// is read only on this error path).
    async fn explain_reused(
        &self,
        result: Result<TxHash, TxError>,
        hash: &TxHash,
    ) -> Result<TxHash, TxError> {
        match (result, &self.txindex) {
            (Err(TxError::NonceReused { .. }), Some(txindex))
                if txindex.get(hash).await.ok().flatten().is_some() =>
            {
                Err(TxError::Duplicate)
            }
            (result, _) => result,
        }
    }

    /// Each transaction's sender eligibility (cached per sender and call kind until a
    /// finalized block writes what it was read from) and finalized account, all read from one snapshot (retried if a block
    /// lands while it is read).
    async fn stateful_many(
        &self,
        txs: &[SignedTx],
    ) -> Result<Vec<Result<Option<Account>, TxError>>, TxError> {
        let generation = self.mempool.eligibility_generation();
        let cached =
            self.mempool
                .cached_eligibilities(txs.iter().map(|tx| {
                    cacheable(&tx.tx.call).then_some((&tx.tx.sender, tx.tx.call.kind()))
                }));
        let mut attempt = 0;
        loop {
            attempt += 1;
            let batch = self.databases.new_batches().await;
            match self.read_many(&batch, txs, &cached).await {
                Ok((eligible, accounts, fresh)) => {
                    self.mempool.cache_eligibilities(generation, fresh);
                    return Ok(txs
                        .iter()
                        .zip(eligible)
                        .map(|(tx, eligible)| {
                            eligible.map(|()| accounts.get(&tx.tx.sender).copied().flatten())
                        })
                        .collect());
                }
                Err(BlockError::StaleRead) if attempt < STALE_READ_RETRIES_MAX => {}
                Err(error) => {
                    tracing::warn!(%error, "admission cannot read the finalized state");
                    return Err(TxError::StateUnavailable);
                }
            }
        }
    }

    /// Eligibility of each transaction (`cached` where known, one read per sender and call
    /// kind otherwise) and the senders' accounts, from `batch`; and the results read, each
    /// with the state keys it was read from, for the cache.
    async fn read_many(
        &self,
        batch: &consort_state::Unmerkleized<E>,
        txs: &[SignedTx],
        cached: &[Option<Result<(), TxError>>],
    ) -> Result<ReadMany, BlockError> {
        let mut store = Store::new(batch);
        let mut read: BTreeMap<(AccountId, &'static str), Result<(), TxError>> = BTreeMap::new();
        let mut fresh = Vec::new();
        let mut eligible = Vec::with_capacity(txs.len());
        for (tx, cached) in txs.iter().zip(cached) {
            let (sender, call) = (tx.tx.sender, &tx.tx.call);
            let key = (sender, call.kind());
            let known = cached
                .clone()
                .or_else(|| cacheable(call).then(|| read.get(&key).cloned()).flatten());
            let result = match known {
                Some(result) => result,
                None => {
                    store.record_reads();
                    let mut may = sender_may(&mut store, self.rules(), &sender, call).await;
                    // A rotation that can never apply (to its own key or a registered one,
                    // or past the hop limit) is refused here rather than failing in a block.
                    if let (Ok(()), Call::Rotate { account, new }) = (&may, call)
                        && self.gov.is_some()
                    {
                        may = Gov::check_rotation(&mut store, account, new).await;
                    }
                    let result = match may {
                        Ok(()) => Ok(()),
                        Err(Fail::Tx(error)) => Err(error),
                        Err(Fail::Db(error)) => return Err(error),
                    };
                    let reads = store.take_reads();
                    if cacheable(call) {
                        read.insert(key, result.clone());
                        fresh.push((sender, call.kind(), result.clone(), reads));
                    }
                    result
                }
            };
            eligible.push(result);
        }
        let senders: BTreeSet<AccountId> = txs.iter().map(|tx| tx.tx.sender).collect();
        let keys: Vec<_> = senders.iter().map(state_key::account).collect();
        store.prefetch(&keys).await?;
        let mut found = BTreeMap::new();
        for sender in senders {
            let account = accounts::get(&mut store, &sender).await?;
            found.insert(sender, account);
        }
        Ok((eligible, found, fresh))
    }
}

/// What [`Admission::read_many`] read: each transaction's eligibility, the senders' accounts,
/// and the eligibility results read fresh with the keys they were read from.
type ReadMany = (
    Vec<Result<(), TxError>>,
    BTreeMap<AccountId, Option<Account>>,
    Vec<(AccountId, &'static str, Result<(), TxError>, Vec<Digest>)>,
);

/// Whether a call's eligibility depends only on its sender and kind (not `rotate`, which
/// names the account rotated), so it may be cached.
fn cacheable(call: &Call) -> bool {
    !matches!(call, Call::Rotate { .. })
}
