//! The bounded pool of admitted transactions.
//!
//! Everything in the pool passed the stateless checks and its signature verified once, on
//! admission; block verification does not verify such transactions again. Per sender the pool
//! keeps a nonce-ordered queue no further than [`NONCE_WINDOW_MAX`] ahead of the sender's next
//! nonce, at most [`SENDER_BYTES_MAX`] bytes of it, and it refuses a transaction that, with the
//! sender's pending ones, would overdraw the account.
//!
//! Only *runnable* transactions are handed to block building: a sender's transactions from its
//! next nonce on, consecutive, none skipped. A sender whose queue starts past its next nonce
//! (a gap) gives nothing to blocks, however much it posts, and its queue is evicted once the gap
//! is older than [`NONCE_GAP_BLOCKS_MAX`] finalized blocks. Blocks take transactions in arrival
//! order (first come, first served), each sender's in nonce order.
//!
//! A transaction in a proposed or verified block that is not yet final is *in flight*: later
//! proposals skip it (and continue the sender's queue after it), and it returns to the
//! candidates if a different block is finalized at that height.

use commonware_codec::EncodeSize as _;
use consort_types::{
    Account, AccountId, Amount, Block, Digest, SignedTx, TxError, TxHash, limits::NONCE_WINDOW_MAX,
};
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

/// Most transactions the pool holds.
pub const MEMPOOL_TXS_MAX: usize = 200_000;

/// Most bytes (encoded transactions) the pool holds.
pub const MEMPOOL_BYTES_MAX: usize = 256 * 1024 * 1024;

/// Most bytes (encoded transactions) one sender may have waiting.
pub const SENDER_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Finalized blocks a sender's queue may wait behind a nonce gap before it is evicted.
pub const NONCE_GAP_BLOCKS_MAX: u64 = 20;

/// Most rejections remembered for status queries.
pub const REJECTIONS_REMEMBERED_MAX: usize = 100_000;

/// Per-sender limits of a pool.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Most transactions of one sender waiting.
    pub pending_max: usize,
    /// Most bytes of one sender waiting.
    pub sender_bytes_max: usize,
}

impl Default for PoolLimits {
    fn default() -> Self {
        Self {
            pending_max: NONCE_WINDOW_MAX as usize,
            sender_bytes_max: SENDER_BYTES_MAX,
        }
    }
}

struct Entry {
    tx: SignedTx,
    /// Arrival order.
    seq: u64,
    /// Encoded size.
    bytes: usize,
    /// Height of an unfinalized block that holds it.
    in_flight: Option<u64>,
}

/// One sender's queue.
struct Queue {
    /// The sender's next nonce as of the latest finalized state the pool knows.
    next: u64,
    /// Nonce → hash.
    txs: BTreeMap<u64, TxHash>,
    /// Encoded bytes queued.
    bytes: usize,
    /// What the queued transactions spend of the native balance, together (kept up to date
    /// so that admission does not visit every queued transaction).
    spend: Amount,
    /// Finalized height at which the queue was last seen blocked behind a gap (`None`: no gap).
    gap_since: Option<u64>,
}

#[derive(Default)]
struct Pool {
    limits: PoolLimits,
    queues: BTreeMap<AccountId, Queue>,
    /// Hash → transaction. A hash map: it is only looked up, never iterated (so its order
    /// cannot leak into anything), and its entries are large, which a B-tree would shift on
    /// every insert and removal.
    entries: HashMap<TxHash, Entry>,
    /// Senders with a runnable transaction not in flight → that transaction's arrival.
    ready: BTreeMap<AccountId, u64>,
    /// Arrival order → hash.
    arrival: BTreeMap<u64, TxHash>,
    next_seq: u64,
    bytes: usize,
    finalized_height: u64,
    /// Height → transactions marked in flight at that height (some may be gone since).
    in_flight: BTreeMap<u64, Vec<TxHash>>,
    outbox: Vec<SignedTx>,
    /// Refused hash → (when it was refused, in refusals counted, and why).
    rejected: BTreeMap<TxHash, (u64, TxError)>,
    /// (when, hash) of each refusal remembered, oldest first; an entry whose hash was
    /// forgotten or refused again since is stale and dropped without touching `rejected`.
    rejected_order: VecDeque<(u64, TxHash)>,
    rejected_seq: u64,
}

/// A shared handle on the pool; clones see the same pool.
#[derive(Clone, Default)]
pub struct Mempool {
    inner: Arc<Mutex<Pool>>,
    eligibility: Arc<Mutex<EligibilityCache>>,
}

/// Most eligibility results remembered (when full, the cache starts over).
pub const ELIGIBILITY_CACHE_MAX: usize = 65_536;

/// Most state keys one cached eligibility result may have been read from (a registered
/// sender's takes 4 to 7): a result that read more (an unregistered key checked against a
/// large validator registry) is not cached.
pub const ELIGIBILITY_READS_MAX: usize = 16;

/// Most (state key, result) links the cache keeps (when full, it starts over): about 40 MB.
pub const ELIGIBILITY_LINKS_MAX: usize = 8 * ELIGIBILITY_CACHE_MAX;

/// Admission's eligibility results (registration, role, freeze, halt) per (sender, call kind),
/// each with the state keys it was read from. A finalized block drops the results it may have
/// changed: those that read a key it wrote (all of them when its writes are unknown).
#[derive(Default)]
struct EligibilityCache {
    /// Bumped by every finalized block; results read before and handed in after are dropped.
    generation: u64,
    results: BTreeMap<EligibilityKey, Result<(), TxError>>,
    /// State key → the results read from it, so a block's writes find what they make stale
    /// without visiting the whole cache. Entries of results replaced or dropped since may
    /// linger (dropping a result again is harmless); the index starts over with the cache.
    readers: BTreeMap<Digest, Vec<EligibilityKey>>,
    /// Entries in `readers`, lingering ones included.
    indexed: usize,
}

type EligibilityKey = (AccountId, &'static str);

impl EligibilityCache {
    fn clear(&mut self) {
        self.results.clear();
        self.readers.clear();
        self.indexed = 0;
    }
}

/// Where a transaction the pool knows of stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolStatus {
    /// Waiting to be included.
    Pending,
    /// Refused, with why.
    Rejected(TxError),
}

impl Mempool {
    /// An empty pool with the default per-sender limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty pool with per-sender `limits`.
    pub fn with_limits(limits: PoolLimits) -> Self {
        let pool = Pool {
            limits,
            ..Pool::default()
        };
        Self {
            inner: Arc::new(Mutex::new(pool)),
            eligibility: Arc::default(),
        }
    }

    /// The eligibility generation: results read from state after this call are cached under it.
    pub fn eligibility_generation(&self) -> u64 {
        self.eligibility_lock().generation
    }

    /// Remember eligibility results read at `generation`, each with the state keys it was read
    /// from (dropped if a block was finalized since: they may be stale; not kept if read from
    /// more than [`ELIGIBILITY_READS_MAX`] keys).
    pub fn cache_eligibilities(
        &self,
        generation: u64,
        results: impl IntoIterator<Item = (AccountId, &'static str, Result<(), TxError>, Vec<Digest>)>,
    ) {
        let results: Vec<_> = results
            .into_iter()
            .filter_map(|(sender, kind, result, mut reads)| {
                reads.sort_unstable();
                reads.dedup();
                (reads.len() <= ELIGIBILITY_READS_MAX).then_some((sender, kind, result, reads))
            })
            .collect();
        let mut guard = self.eligibility_lock();
        let cache = &mut *guard;
        if cache.generation != generation {
            return;
        }
        for (sender, kind, result, reads) in results {
            if cache.results.len() >= ELIGIBILITY_CACHE_MAX
                || cache.indexed.saturating_add(reads.len()) > ELIGIBILITY_LINKS_MAX
            {
                cache.clear();
            }
            for key in reads {
                cache.readers.entry(key).or_default().push((sender, kind));
                cache.indexed += 1;
            }
            cache.results.insert((sender, kind), result);
        }
    }

    /// Cached eligibility results for many `(sender, kind)` pairs under one lock (`None` asks
    /// nothing).
    pub fn cached_eligibilities<'a>(
        &self,
        keys: impl IntoIterator<Item = Option<(&'a AccountId, &'static str)>>,
    ) -> Vec<Option<Result<(), TxError>>> {
        let cache = self.eligibility_lock();
        keys.into_iter()
            .map(|key| {
                key.and_then(|(sender, kind)| cache.results.get(&(*sender, kind)))
                    .cloned()
            })
            .collect()
    }

    /// A block was finalized that wrote the state keys `written` (sorted; `None`: not known):
    /// drop the eligibility results that read any of them (all of them if not known).
    pub fn forget_eligibility(&self, written: Option<&[Digest]>) {
        let mut guard = self.eligibility_lock();
        let cache = &mut *guard;
        cache.generation += 1;
        let Some(written) = written else {
            cache.clear();
            return;
        };
        for key in written {
            if let Some(readers) = cache.readers.remove(key) {
                cache.indexed -= readers.len();
                for reader in readers {
                    cache.results.remove(&reader);
                }
            }
        }
    }

    fn eligibility_lock(&self) -> MutexGuard<'_, EligibilityCache> {
        self.eligibility
            .lock()
            .expect("eligibility lock is never poisoned")
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.inner.lock().expect("mempool lock is never poisoned")
    }

    /// How many transactions of `sender` wait in the pool.
    pub fn pending_of(&self, sender: &AccountId) -> usize {
        self.lock().queues.get(sender).map_or(0, |q| q.txs.len())
    }

    /// Admit a transaction whose stateless checks, signature and stateful eligibility already
    /// passed, given its sender's finalized account (`None`: no such account). `gossip` queues
    /// it for peers.
    pub fn admit(
        &self,
        tx: SignedTx,
        sender: Option<Account>,
        gossip: bool,
    ) -> Result<TxHash, TxError> {
        admit(&mut self.lock(), tx, sender, gossip)
    }

    /// [`Mempool::admit`] many transactions under one lock, in order: each with its sender's
    /// finalized account. The answers come in the same order.
    pub fn admit_many(
        &self,
        txs: impl IntoIterator<Item = (SignedTx, Option<Account>)>,
        gossip: bool,
    ) -> Vec<Result<TxHash, TxError>> {
        let mut pool = self.lock();
        txs.into_iter()
            .map(|(tx, sender)| admit(&mut pool, tx, sender, gossip))
            .collect()
    }

    /// `txs` less those the pool holds, under one lock.
    pub fn unknown(&self, txs: Vec<SignedTx>) -> Vec<SignedTx> {
        let pool = self.lock();
        txs.into_iter()
            .filter(|tx| !pool.entries.contains_key(&tx.hash()))
            .collect()
    }

    /// Those of `txs` the pool does not hold, under one lock.
    pub fn unknown_refs<'a>(&self, txs: &'a [SignedTx]) -> Vec<&'a SignedTx> {
        let pool = self.lock();
        txs.iter()
            .filter(|tx| !pool.entries.contains_key(&tx.hash()))
            .collect()
    }

    /// Number of pending transactions (in flight or not).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Bytes of pending transactions.
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether some transaction can run in the next block (runnable and not in flight).
    pub fn has_runnable(&self) -> bool {
        !self.lock().ready.is_empty()
    }

    /// Runnable transactions for the next block: at most `max` of at most `max_bytes` encoded,
    /// at most `per_sender_max` of any sender. They come in arrival order, each sender's in
    /// nonce order from its next nonce: one that arrived before the nonce it follows comes
    /// right after it. Nothing that cannot run is handed out.
    pub fn candidates(&self, max: usize, max_bytes: usize, per_sender_max: usize) -> Vec<SignedTx> {
        let pool = self.lock();
        // Per sender: the nonce it needs next (u64::MAX: done for this block), and how many.
        let mut expected: BTreeMap<AccountId, (u64, usize)> = BTreeMap::new();
        let mut chosen = Vec::new();
        let mut bytes = 0usize;
        for (&seq, hash) in &pool.arrival {
            if chosen.len() >= max {
                break;
            }
            let Some(entry) = pool.entries.get(hash) else {
                continue;
            };
            let sender = entry.tx.tx.sender;
            if entry.in_flight.is_some() || !pool.ready.contains_key(&sender) {
                continue;
            }
            let Some(queue) = pool.queues.get(&sender) else {
                continue;
            };
            let (next, taken) = expected
                .entry(sender)
                .or_insert_with(|| (runnable_from(&pool, queue), 0));
            if entry.tx.tx.nonce != *next {
                continue;
            }
            // Take it, then its successors that arrived before it.
            let mut current = entry;
            loop {
                if *taken >= per_sender_max
                    || chosen.len() >= max
                    || bytes.saturating_add(current.bytes) > max_bytes
                {
                    *next = u64::MAX;
                    break;
                }
                bytes += current.bytes;
                *taken += 1;
                *next += 1;
                chosen.push(current.tx.clone());
                match queue.txs.get(next).and_then(|h| pool.entries.get(h)) {
                    Some(following) if following.seq < seq && following.in_flight.is_none() => {
                        current = following;
                    }
                    _ => break,
                }
            }
        }
        chosen
    }

    /// Mark transactions of a not yet final block at `height` as in flight.
    pub fn mark_in_flight(&self, height: u64, hashes: impl IntoIterator<Item = TxHash>) {
        let mut guard = self.lock();
        let pool = &mut *guard;
        let mut marked = Vec::new();
        let mut senders = Vec::new();
        for hash in hashes {
            if let Some(entry) = pool.entries.get_mut(&hash)
                && entry.in_flight.is_none()
            {
                entry.in_flight = Some(height);
                marked.push(hash);
                senders.push(entry.tx.tx.sender);
            }
        }
        if !marked.is_empty() {
            pool.in_flight.entry(height).or_default().extend(marked);
        }
        senders.sort_unstable();
        senders.dedup();
        for sender in senders {
            refresh(pool, &sender);
        }
    }

    /// Take what was admitted locally and not yet sent to peers: up to `max` transactions of
    /// at most `max_bytes` encoded (at least one, if any waits).
    pub fn drain_outbox(&self, max: usize, max_bytes: usize) -> Vec<SignedTx> {
        let mut pool = self.lock();
        let mut n = 0;
        let mut bytes = 0usize;
        for tx in pool.outbox.iter().take(max) {
            bytes = bytes.saturating_add(tx.encode_size());
            if n > 0 && bytes > max_bytes {
                break;
            }
            n += 1;
        }
        pool.outbox.drain(..n).collect()
    }

    /// Remove transactions block building refused, remembering why. A refused transaction
    /// leaves its nonce unused, so the sender's later ones can never run: they go too.
    pub fn reject(&self, rejected: Vec<(TxHash, TxError)>) {
        let mut guard = self.lock();
        let pool = &mut *guard;
        for (hash, error) in rejected {
            let Some(entry) = pool.entries.get(&hash) else {
                continue;
            };
            let sender = entry.tx.tx.sender;
            let nonce = entry.tx.tx.nonce;
            let later: Vec<TxHash> = pool
                .queues
                .get(&sender)
                .map(|q| q.txs.range(nonce + 1..).map(|(_, h)| *h).collect())
                .unwrap_or_default();
            remove(pool, &hash);
            remember_rejection(pool, hash, error);
            for hash in later {
                remove(pool, &hash);
                remember_rejection(
                    pool,
                    hash,
                    TxError::NonceTooHigh {
                        expected: nonce,
                        got: nonce + 1,
                    },
                );
            }
            refresh(pool, &sender);
        }
    }

    /// Remember a refusal at admission, for status queries. A used nonce is not remembered:
    /// at admission it is most often the transaction itself, sent again after a block took
    /// it, whose status is the block's (the sender of a different transaction with that nonce
    /// was told so when it sent it). Block building's refusals ([`Mempool::reject`]) are all
    /// remembered.
    pub fn remember_rejection(&self, hash: TxHash, error: TxError) {
        if !matches!(error, TxError::NonceReused { .. }) {
            remember_rejection(&mut self.lock(), hash, error);
        }
    }

    /// [`Mempool::remember_rejection`] for many refusals under one lock.
    pub fn remember_rejections(&self, rejections: impl IntoIterator<Item = (TxHash, TxError)>) {
        let mut pool = self.lock();
        for (hash, error) in rejections {
            if !matches!(error, TxError::NonceReused { .. }) {
                remember_rejection(&mut pool, hash, error);
            }
        }
    }

    /// The pool's view of a transaction.
    pub fn status(&self, hash: &TxHash) -> Option<PoolStatus> {
        let pool = self.lock();
        if pool.entries.contains_key(hash) {
            return Some(PoolStatus::Pending);
        }
        pool.rejected
            .get(hash)
            .map(|(_, error)| PoolStatus::Rejected(error.clone()))
    }

    /// The pool's view of a transaction together with the highest finalized height it has
    /// seen, read at one instant: a transaction the pool no longer holds and did not refuse,
    /// if it was finalized at all, is in a block at or below that height.
    pub fn status_at(&self, hash: &TxHash) -> (Option<PoolStatus>, u64) {
        let pool = self.lock();
        let status = if pool.entries.contains_key(hash) {
            Some(PoolStatus::Pending)
        } else {
            pool.rejected
                .get(hash)
                .map(|(_, error)| PoolStatus::Rejected(error.clone()))
        };
        (status, pool.finalized_height)
    }

    /// Drop what a finalized block included and anything of its senders now stale; what was in
    /// flight at this height or below and is still here returns to the candidates; queues
    /// blocked behind a nonce gap for more than [`NONCE_GAP_BLOCKS_MAX`] blocks are evicted.
    pub fn on_finalized(&self, block: &Block) {
        let mut guard = self.lock();
        let pool = &mut *guard;
        let height = block.number();
        pool.finalized_height = pool.finalized_height.max(height);
        let mut next_nonce: BTreeMap<AccountId, u64> = BTreeMap::new();
        for tx in block.txs.iter() {
            let hash = tx.hash();
            remove(pool, &hash);
            // Refused here (say, by this node's block building) but included by another
            // proposer: the block is the truth. Its entry in `rejected_order` is now stale.
            pool.rejected.remove(&hash);
            next_nonce.insert(tx.tx.sender, tx.tx.nonce.saturating_add(1));
        }
        for (sender, next) in &next_nonce {
            let stale: Vec<TxHash> = match pool.queues.get_mut(sender) {
                Some(queue) => {
                    queue.next = queue.next.max(*next);
                    queue.txs.range(..*next).map(|(_, h)| *h).collect()
                }
                None => Vec::new(),
            };
            for hash in stale {
                remove(pool, &hash);
            }
        }
        let released: Vec<u64> = pool.in_flight.range(..=height).map(|(h, _)| *h).collect();
        let mut touched: Vec<AccountId> = next_nonce.into_keys().collect();
        release(pool, released, &mut touched);
        touched.sort_unstable();
        touched.dedup();
        for sender in &touched {
            refresh(pool, sender);
        }
        evict_gapped(pool);
    }

    /// Return to the candidates what is in flight at `height` or above. Building block
    /// `height`, those proposals are not its ancestors (a view that was skipped, or a block that
    /// lost): without this, a pool whose every transaction sat in such a proposal would have
    /// nothing runnable and wait out the empty-block interval. Execution refuses a place to
    /// anything already in an ancestor, so releasing too much costs only candidate budget.
    pub fn release_in_flight_from(&self, height: u64) {
        let mut guard = self.lock();
        let pool = &mut *guard;
        let released: Vec<u64> = pool.in_flight.range(height..).map(|(h, _)| *h).collect();
        if released.is_empty() {
            return;
        }
        let mut touched = Vec::new();
        release(pool, released, &mut touched);
        touched.sort_unstable();
        touched.dedup();
        for sender in &touched {
            refresh(pool, sender);
        }
    }

    /// The nonce a new transaction of `sender` should carry: the first at or after its
    /// finalized `nonce` that no pending transaction holds.
    pub fn next_nonce(&self, sender: &AccountId, nonce: u64) -> u64 {
        let pool = self.lock();
        let Some(queue) = pool.queues.get(sender) else {
            return nonce;
        };
        let mut next = nonce.max(queue.next);
        for (&pending, _) in queue.txs.range(next..) {
            if pending != next {
                break;
            }
            next += 1;
        }
        next
    }

    /// Total a sender has pending (for display).
    pub fn pending_spend(&self, sender: &AccountId) -> Amount {
        self.lock()
            .queues
            .get(sender)
            .map_or(Amount::ZERO, |q| q.spend)
    }
}

/// Admit `tx` into `pool` (see [`Mempool::admit`]).
fn admit(
    pool: &mut Pool,
    tx: SignedTx,
    sender: Option<Account>,
    gossip: bool,
) -> Result<TxHash, TxError> {
    let hash = tx.hash();
    let bytes = tx.encode_size();
    if pool.entries.contains_key(&hash) {
        return Err(TxError::Duplicate);
    }
    if pool.entries.len() >= MEMPOOL_TXS_MAX || pool.bytes.saturating_add(bytes) > MEMPOOL_BYTES_MAX
    {
        return Err(TxError::MempoolFull);
    }
    let account = match sender {
        Some(account) => account,
        // A never-seen sender may make any call but a native transfer.
        None if matches!(tx.tx.call, consort_types::Call::Transfer { .. }) => {
            return Err(TxError::UnknownAccount(tx.tx.sender));
        }
        None => Account::default(),
    };
    let known_next = pool.queues.get(&tx.tx.sender).map_or(0, |q| q.next);
    let next = account.nonce.max(known_next);
    let nonce = tx.tx.nonce;
    if nonce < next {
        return Err(TxError::NonceReused {
            expected: next,
            got: nonce,
        });
    }
    if nonce >= next.saturating_add(NONCE_WINDOW_MAX) {
        return Err(TxError::NonceTooHigh {
            expected: next,
            got: nonce,
        });
    }
    let mut needed = tx.spend();
    if let Some(queue) = pool.queues.get(&tx.tx.sender) {
        if queue.txs.contains_key(&nonce) {
            return Err(TxError::Duplicate);
        }
        if queue.txs.len() >= pool.limits.pending_max {
            return Err(TxError::RateLimited {
                limit: u32::try_from(pool.limits.pending_max).unwrap_or(u32::MAX),
                scope: "pending",
            });
        }
        if queue.bytes.saturating_add(bytes) > pool.limits.sender_bytes_max {
            return Err(TxError::RateLimited {
                limit: u32::try_from(pool.limits.sender_bytes_max).unwrap_or(u32::MAX),
                scope: "bytes pending",
            });
        }
        needed = needed
            .checked_add(queue.spend)
            .ok_or(TxError::InvalidAmount("pending spend overflows"))?;
    }
    if needed > account.balance {
        return Err(TxError::InsufficientBalance {
            balance: account.balance,
            needed,
        });
    }
    let seq = pool.next_seq;
    pool.next_seq += 1;
    let sender = tx.tx.sender;
    let queue = pool.queues.entry(sender).or_insert(Queue {
        next,
        txs: BTreeMap::new(),
        bytes: 0,
        spend: Amount::ZERO,
        gap_since: None,
    });
    // Whether the sender already had a runnable transaction: then this one, later in its
    // nonce order, changes neither what runs first nor the gap.
    let was_ready = queue.next == next && pool.ready.contains_key(&sender);
    queue.next = next;
    queue.txs.insert(nonce, hash);
    queue.bytes += bytes;
    queue.spend = queue
        .spend
        .checked_add(tx.spend())
        .expect("the queue's spend is at most the balance checked above");
    pool.bytes += bytes;
    if gossip {
        pool.outbox.push(tx.clone());
    }
    pool.arrival.insert(seq, hash);
    pool.entries.insert(
        hash,
        Entry {
            tx,
            seq,
            bytes,
            in_flight: None,
        },
    );
    if !was_ready {
        refresh(pool, &sender);
    }
    Ok(hash)
}

/// The first nonce of `queue` not in flight, walking from its next nonce over in-flight ones.
fn runnable_from(pool: &Pool, queue: &Queue) -> u64 {
    let mut nonce = queue.next;
    while let Some(hash) = queue.txs.get(&nonce)
        && pool
            .entries
            .get(hash)
            .is_some_and(|e| e.in_flight.is_some())
    {
        nonce += 1;
    }
    nonce
}

/// Recompute whether `sender` has a runnable transaction not in flight, and its gap state.
/// Clear the in-flight marks of `heights`, adding the senders whose transactions return.
fn release(pool: &mut Pool, heights: Vec<u64>, touched: &mut Vec<AccountId>) {
    for h in heights {
        for hash in pool.in_flight.remove(&h).unwrap_or_default() {
            if let Some(entry) = pool.entries.get_mut(&hash)
                && entry.in_flight == Some(h)
            {
                entry.in_flight = None;
                touched.push(entry.tx.tx.sender);
            }
        }
    }
}

fn refresh(pool: &mut Pool, sender: &AccountId) {
    let Some(queue) = pool.queues.get(sender) else {
        pool.ready.remove(sender);
        return;
    };
    let head = runnable_from(pool, queue);
    let runnable = queue
        .txs
        .get(&head)
        .and_then(|hash| pool.entries.get(hash))
        .map(|entry| entry.seq);
    let gapped = queue
        .txs
        .keys()
        .next()
        .is_some_and(|first| *first > queue.next);
    let finalized = pool.finalized_height;
    if let Some(queue) = pool.queues.get_mut(sender) {
        queue.gap_since = match (gapped, queue.gap_since) {
            (false, _) => None,
            (true, None) => Some(finalized),
            (true, since) => since,
        };
    }
    match runnable {
        Some(seq) => {
            pool.ready.insert(*sender, seq);
        }
        None => {
            pool.ready.remove(sender);
        }
    }
}

/// Evict every queue blocked behind a nonce gap for more than [`NONCE_GAP_BLOCKS_MAX`].
fn evict_gapped(pool: &mut Pool) {
    let height = pool.finalized_height;
    let expired: Vec<(AccountId, u64)> = pool
        .queues
        .iter()
        .filter(|(_, q)| {
            q.gap_since
                .is_some_and(|since| height.saturating_sub(since) > NONCE_GAP_BLOCKS_MAX)
        })
        .map(|(sender, q)| (*sender, q.next))
        .collect();
    for (sender, next) in expired {
        let hashes: Vec<(u64, TxHash)> = pool
            .queues
            .get(&sender)
            .map(|q| q.txs.iter().map(|(n, h)| (*n, *h)).collect())
            .unwrap_or_default();
        for (nonce, hash) in hashes {
            remove(pool, &hash);
            remember_rejection(
                pool,
                hash,
                TxError::NonceTooHigh {
                    expected: next,
                    got: nonce,
                },
            );
        }
        pool.ready.remove(&sender);
    }
}

fn remove(pool: &mut Pool, hash: &TxHash) {
    let Some(entry) = pool.entries.remove(hash) else {
        return;
    };
    pool.bytes -= entry.bytes;
    pool.arrival.remove(&entry.seq);
    let sender = entry.tx.tx.sender;
    if let Some(queue) = pool.queues.get_mut(&sender) {
        queue.txs.remove(&entry.tx.tx.nonce);
        queue.bytes -= entry.bytes;
        queue.spend = queue
            .spend
            .checked_sub(entry.tx.spend())
            .expect("the queue's spend counts each of its transactions");
        if queue.txs.is_empty() {
            pool.queues.remove(&sender);
            pool.ready.remove(&sender);
        }
    }
}

fn remember_rejection(pool: &mut Pool, hash: TxHash, error: TxError) {
    // A copy of a transaction the pool holds is refused, not the transaction: it is pending.
    if pool.entries.contains_key(&hash) {
        return;
    }
    let seq = pool.rejected_seq;
    pool.rejected_seq += 1;
    pool.rejected.insert(hash, (seq, error));
    pool.rejected_order.push_back((seq, hash));
    while pool.rejected.len() > REJECTIONS_REMEMBERED_MAX
        || pool.rejected_order.len() > 2 * REJECTIONS_REMEMBERED_MAX
    {
        let Some((old_seq, old)) = pool.rejected_order.pop_front() else {
            break;
        };
        if pool
            .rejected
            .get(&old)
            .is_some_and(|(seq, _)| *seq == old_seq)
        {
            pool.rejected.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{Signer, ed25519};
    use consort_types::{Call, Outcome, Tx};

    fn id(seed: u64) -> AccountId {
        AccountId::new(ed25519::PrivateKey::from_seed(seed).public_key())
    }

    fn transfer_from(sender: u64, nonce: u64, amount: u64) -> SignedTx {
        Tx {
            chain_id: 1,
            sender: id(sender),
            nonce,
            call: Call::Transfer {
                to: id(99),
                amount: Amount::new(amount),
            },
        }
        .sign(&ed25519::PrivateKey::from_seed(sender))
    }

    fn transfer(nonce: u64, amount: u64) -> SignedTx {
        transfer_from(1, nonce, amount)
    }

    fn account(balance: u64, nonce: u64) -> Option<Account> {
        Some(Account {
            balance: Amount::new(balance),
            nonce,
        })
    }

    fn block(height: u64, txs: Vec<SignedTx>) -> Block {
        use commonware_consensus::types::{Epoch, Height, Round, View};
        let key = ed25519::PrivateKey::from_seed(0).public_key();
        let outcomes = vec![Outcome::Applied; txs.len()];
        let header = consort_types::Header {
            context: consort_types::BlockContext {
                round: Round::new(Epoch::zero(), View::new(height)),
                leader: key,
                parent: (View::zero(), [0u8; 32].into()),
            },
            parent: [0u8; 32].into(),
            height: Height::new(height),
            timestamp_ms: 0,
            tx_count: u32::try_from(txs.len()).expect("small"),
            tx_root: consort_types::block::tx_root(&txs, &outcomes),
            state_root: [0u8; 32].into(),
            ops_root: [0u8; 32].into(),
            ops_range: commonware_utils::range::NonEmptyRange::new(
                commonware_storage::mmr::Location::new(0)
                    ..commonware_storage::mmr::Location::new(1),
            )
            .expect("non-empty"),
            next_committee: None,
        };
        Block::new(header, txs, outcomes)
    }

    fn nonces(txs: &[SignedTx]) -> Vec<(AccountId, u64)> {
        txs.iter().map(|t| (t.tx.sender, t.tx.nonce)).collect()
    }

    #[test]
    fn pending_spends_count_against_the_balance() {
        let pool = Mempool::new();
        pool.admit(transfer(0, 60), account(100, 0), true)
            .expect("first fits");
        assert!(matches!(
            pool.admit(transfer(1, 50), account(100, 0), true),
            Err(TxError::InsufficientBalance { .. })
        ));
        assert_eq!(pool.len(), 1);
    }

    #[test]
    fn finalized_spends_no_longer_count_against_the_balance() {
        let pool = Mempool::new();
        let admitted = pool.admit_many(
            [
                (transfer(0, 40), account(100, 0)),
                (transfer(1, 40), account(100, 0)),
                (transfer(2, 40), account(100, 0)),
            ],
            false,
        );
        assert!(admitted[0].is_ok() && admitted[1].is_ok());
        assert!(matches!(
            admitted[2],
            Err(TxError::InsufficientBalance { .. })
        ));
        assert_eq!(pool.pending_spend(&id(1)), Amount::new(80));
        pool.on_finalized(&block(1, vec![transfer(0, 40)]));
        assert_eq!(pool.pending_spend(&id(1)), Amount::new(40));
        pool.admit(transfer(2, 20), account(60, 1), false)
            .expect("only nonce 1 is still pending");
        assert_eq!(pool.pending_spend(&id(1)), Amount::new(60));
    }

    #[test]
    fn duplicates_and_stale_nonces_are_refused() {
        let pool = Mempool::new();
        pool.admit(transfer(3, 1), account(100, 3), true)
            .expect("admits");
        assert_eq!(
            pool.admit(transfer(3, 1), account(100, 3), true),
            Err(TxError::Duplicate)
        );
        assert!(matches!(
            pool.admit(transfer(2, 1), account(100, 3), true),
            Err(TxError::NonceReused { .. })
        ));
        assert!(matches!(
            pool.admit(transfer(3 + NONCE_WINDOW_MAX, 1), account(100, 3), true),
            Err(TxError::NonceTooHigh { .. })
        ));
    }

    #[test]
    fn candidates_come_in_arrival_order_each_sender_in_nonce_order() {
        let pool = Mempool::new();
        // Sender 2 arrives first; sender 1's nonces arrive out of order.
        pool.admit(transfer_from(2, 0, 1), account(100, 0), false)
            .expect("admits");
        pool.admit(transfer_from(1, 1, 1), account(100, 0), false)
            .expect("admits");
        pool.admit(transfer_from(1, 0, 1), account(100, 0), false)
            .expect("admits");
        // Sender 3 arrives between sender 1's nonces: arrival order holds across senders.
        pool.admit(transfer_from(3, 0, 1), account(100, 0), false)
            .expect("admits");
        pool.admit(transfer_from(1, 2, 1), account(100, 0), false)
            .expect("admits");
        assert_eq!(
            nonces(&pool.candidates(10, usize::MAX, usize::MAX)),
            vec![(id(2), 0), (id(1), 0), (id(1), 1), (id(3), 0), (id(1), 2)]
        );
        assert_eq!(pool.candidates(1, usize::MAX, usize::MAX).len(), 1);
        assert_eq!(
            nonces(&pool.candidates(10, usize::MAX, 1)),
            vec![(id(2), 0), (id(1), 0), (id(3), 0)]
        );
    }

    #[test]
    fn a_sender_behind_a_nonce_gap_gives_blocks_nothing_and_is_evicted() {
        let pool = Mempool::new();
        // Nonce 0 never comes: everything from 1 on can never run.
        for nonce in 1..50 {
            pool.admit(transfer_from(1, nonce, 1), account(1000, 0), false)
                .expect("admits");
        }
        pool.admit(transfer_from(2, 0, 1), account(100, 0), false)
            .expect("admits");
        assert_eq!(
            nonces(&pool.candidates(10, usize::MAX, usize::MAX)),
            vec![(id(2), 0)]
        );
        pool.on_finalized(&block(1, vec![transfer_from(2, 0, 1)]));
        assert!(!pool.has_runnable(), "only the gapped sender is left");
        assert_eq!(pool.len(), 49);
        for height in 2..=NONCE_GAP_BLOCKS_MAX + 2 {
            pool.on_finalized(&block(height, Vec::new()));
        }
        assert!(pool.is_empty(), "the gapped queue is evicted");
        assert!(matches!(
            pool.status(&transfer_from(1, 7, 1).hash()),
            Some(PoolStatus::Rejected(TxError::NonceTooHigh { .. }))
        ));
    }

    #[test]
    fn a_gap_filled_in_time_makes_the_queue_runnable() {
        let pool = Mempool::new();
        pool.admit(transfer(1, 1), account(100, 0), false)
            .expect("admits");
        assert!(!pool.has_runnable());
        pool.on_finalized(&block(1, Vec::new()));
        pool.admit(transfer(0, 1), account(100, 0), false)
            .expect("admits");
        assert!(pool.has_runnable());
        assert_eq!(pool.candidates(10, usize::MAX, usize::MAX).len(), 2);
        for height in 2..=NONCE_GAP_BLOCKS_MAX + 3 {
            pool.on_finalized(&block(height, Vec::new()));
        }
        assert_eq!(pool.len(), 2, "no gap, nothing evicted");
    }

    #[test]
    fn a_sender_cannot_queue_more_than_its_byte_cap() {
        let pool = Mempool::with_limits(PoolLimits {
            pending_max: 1000,
            sender_bytes_max: 3 * transfer(0, 1).encode_size(),
        });
        for nonce in 0..3 {
            pool.admit(transfer(nonce, 1), account(100, 0), false)
                .expect("fits");
        }
        assert!(matches!(
            pool.admit(transfer(3, 1), account(100, 0), false),
            Err(TxError::RateLimited { .. })
        ));
        assert_eq!(pool.bytes(), 3 * transfer(0, 1).encode_size());
    }

    #[test]
    fn a_refused_transaction_takes_the_senders_later_ones_with_it() {
        let pool = Mempool::new();
        for nonce in 0..4 {
            pool.admit(transfer(nonce, 1), account(100, 0), false)
                .expect("admits");
        }
        pool.admit(transfer_from(2, 0, 1), account(100, 0), false)
            .expect("admits");
        pool.reject(vec![(
            transfer(1, 1).hash(),
            TxError::Unauthorized {
                call: "transfer",
                reason: "test",
            },
        )]);
        assert_eq!(
            nonces(&pool.candidates(10, usize::MAX, usize::MAX)),
            vec![(id(1), 0), (id(2), 0)]
        );
        assert_eq!(pool.len(), 2);
        assert!(matches!(
            pool.status(&transfer(3, 1).hash()),
            Some(PoolStatus::Rejected(TxError::NonceTooHigh { .. }))
        ));
    }

    #[test]
    fn a_refusal_is_forgotten_when_a_block_includes_the_transaction() {
        let pool = Mempool::new();
        pool.admit(transfer(0, 1), account(100, 0), false)
            .expect("admits");
        let hash = transfer(0, 1).hash();
        // Sent again while pending: the copy is refused, the transaction is still pending.
        assert_eq!(
            pool.admit(transfer(0, 1), account(100, 0), false),
            Err(TxError::Duplicate)
        );
        pool.remember_rejection(hash, TxError::Duplicate);
        let used = TxError::NonceReused {
            expected: 1,
            got: 0,
        };
        pool.remember_rejection(transfer(0, 2).hash(), used);
        assert_eq!(
            pool.status(&transfer(0, 2).hash()),
            None,
            "a used nonce is not remembered as a refusal"
        );
        pool.remember_rejection(
            hash,
            TxError::InsufficientBalance {
                balance: Amount::ZERO,
                needed: Amount::new(1),
            },
        );
        assert_eq!(pool.status(&hash), Some(PoolStatus::Pending));
        // This node's block building refused it; another proposer included it.
        pool.reject(vec![(
            hash,
            TxError::Unauthorized {
                call: "transfer",
                reason: "test",
            },
        )]);
        assert!(matches!(pool.status(&hash), Some(PoolStatus::Rejected(_))));
        pool.on_finalized(&block(1, vec![transfer(0, 1)]));
        assert_eq!(pool.status(&hash), None);
        assert_eq!(pool.status_at(&hash), (None, 1));
    }

    #[test]
    fn in_flight_transactions_are_skipped_until_another_block_is_final() {
        let pool = Mempool::new();
        for nonce in 0..3 {
            pool.admit(transfer(nonce, 1), account(100, 0), false)
                .expect("admits");
        }
        pool.mark_in_flight(5, [transfer(0, 1).hash(), transfer(1, 1).hash()]);
        let left: Vec<u64> = pool
            .candidates(10, usize::MAX, usize::MAX)
            .iter()
            .map(|t| t.tx.nonce)
            .collect();
        assert_eq!(left, vec![2]);
        assert!(pool.has_runnable());
        pool.mark_in_flight(6, [transfer(2, 1).hash()]);
        assert!(!pool.has_runnable());
        // Another block (without them) is final at height 5: nonces 0 and 1 come back.
        pool.on_finalized(&block(5, Vec::new()));
        let back: Vec<u64> = pool
            .candidates(10, usize::MAX, usize::MAX)
            .iter()
            .map(|t| t.tx.nonce)
            .collect();
        assert_eq!(back, vec![0, 1]);
        assert_eq!(pool.len(), 3);
    }

    #[test]
    fn building_a_height_takes_back_what_sat_in_a_skipped_proposal_at_that_height() {
        let pool = Mempool::new();
        for nonce in 0..3 {
            pool.admit(transfer(nonce, 1), account(100, 0), false)
                .expect("admits");
        }
        // Block 5 (an ancestor of what is built next) holds nonce 0; a proposal at height 6,
        // whose view was then skipped, held nonces 1 and 2: nothing is runnable.
        pool.mark_in_flight(5, [transfer(0, 1).hash()]);
        pool.mark_in_flight(6, [transfer(1, 1).hash(), transfer(2, 1).hash()]);
        assert!(!pool.has_runnable());
        // Building height 6 again: the skipped proposal's transactions run again, the
        // ancestor's stay in flight.
        let candidates = |pool: &Mempool| -> Vec<u64> {
            pool.candidates(10, usize::MAX, usize::MAX)
                .iter()
                .map(|t| t.tx.nonce)
                .collect()
        };
        assert!(candidates(&pool).is_empty());
        pool.release_in_flight_from(6);
        assert!(pool.has_runnable());
        assert_eq!(candidates(&pool), vec![1, 2]);
        // Building height 7 while block 6 is in flight keeps its marks, and height 5's.
        pool.mark_in_flight(6, [transfer(1, 1).hash(), transfer(2, 1).hash()]);
        pool.release_in_flight_from(7);
        assert!(!pool.has_runnable());
        assert!(candidates(&pool).is_empty());
    }

    #[test]
    fn finalization_removes_included_and_stale_transactions() {
        let pool = Mempool::new();
        for nonce in 0..3 {
            pool.admit(transfer(nonce, 1), account(100, 0), false)
                .expect("admits");
        }
        // A block holding nonce 1 makes nonce 0 stale too.
        pool.on_finalized(&block(1, vec![transfer(1, 1)]));
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.status(&transfer(0, 1).hash()), None);
        assert_eq!(
            pool.status(&transfer(2, 1).hash()),
            Some(PoolStatus::Pending)
        );
        assert!(pool.has_runnable());
        pool.reject(vec![(
            transfer(2, 1).hash(),
            TxError::InsufficientBalance {
                balance: Amount::new(0),
                needed: Amount::new(1),
            },
        )]);
        assert!(pool.is_empty());
        assert_eq!(pool.bytes(), 0);
        assert!(matches!(
            pool.status(&transfer(2, 1).hash()),
            Some(PoolStatus::Rejected(TxError::InsufficientBalance { .. }))
        ));
    }

    #[test]
    fn an_eligibility_result_lasts_until_a_block_writes_a_key_it_was_read_from() {
        let pool = Mempool::new();
        let (alice, bob) = (id(1), id(2));
        let key = |n: u8| Digest::from([n; 32]);
        let refused = Err(TxError::Unauthorized {
            call: "transfer",
            reason: "test",
        });
        let cache = |generation| {
            pool.cache_eligibilities(
                generation,
                vec![
                    (alice, "transfer", Ok(()), vec![key(3), key(1), key(3)]),
                    (bob, "transfer", refused.clone(), vec![key(2)]),
                ],
            );
        };
        let ask = || {
            pool.cached_eligibilities([
                Some((&alice, "transfer")),
                Some((&bob, "transfer")),
                Some((&alice, "vote")),
                None,
            ])
        };
        cache(pool.eligibility_generation());
        assert_eq!(ask(), vec![Some(Ok(())), Some(refused.clone()), None, None]);
        // A block writing neither key keeps both; one writing alice's drops only hers.
        pool.forget_eligibility(Some(&[key(0), key(9)]));
        assert_eq!(ask()[..2], [Some(Ok(())), Some(refused.clone())]);
        pool.forget_eligibility(Some(&[key(0), key(3)]));
        assert_eq!(ask()[..2], [None, Some(refused.clone())]);
        // A block whose writes are unknown drops everything.
        pool.forget_eligibility(None);
        assert_eq!(ask(), vec![None, None, None, None]);
        // Results read before a block was finalized and handed in after it are dropped.
        let stale = pool.eligibility_generation();
        pool.forget_eligibility(Some(&[]));
        cache(stale);
        assert_eq!(ask(), vec![None, None, None, None]);
        // A result read from more keys than a registered sender's check takes is not kept.
        let many: Vec<Digest> = (0..=ELIGIBILITY_READS_MAX as u8).map(key).collect();
        pool.cache_eligibilities(
            pool.eligibility_generation(),
            vec![(alice, "transfer", Ok(()), many)],
        );
        assert_eq!(ask()[0], None);
    }
}
