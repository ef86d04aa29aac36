//! The bounded pool of admitted transactions.
//!
//! Everything in the pool passed the stateless checks and its signature verified once, on
//! admission; block verification does not verify such transactions again. Per sender the pool
//! keeps a nonce-ordered queue no further than [`NONCE_WINDOW_MAX`] ahead of the account, and it
//! refuses a transaction that, with the sender's pending ones, would overdraw the account.
//!
//! Proposals draw transactions in arrival order (first come, first served, whichever sender),
//! each sender's in nonce order. A transaction in a proposed or verified block that is not yet
//! final is *in flight*: later proposals skip it, and it returns to the candidates if a
//! different block is finalized at that height.

use consort_types::{
    Account, AccountId, Amount, Block, SignedTx, TxError, TxHash, limits::NONCE_WINDOW_MAX,
};
use std::{
    collections::{BTreeMap, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
};

/// Most transactions the pool holds.
pub const MEMPOOL_TXS_MAX: usize = 200_000;

/// Most rejections remembered for status queries.
pub const REJECTIONS_REMEMBERED_MAX: usize = 100_000;

struct Entry {
    tx: SignedTx,
    /// Arrival order.
    seq: u64,
    /// Height of an unfinalized block that holds it.
    in_flight: Option<u64>,
}

#[derive(Default)]
struct Pool {
    /// Per sender: nonce → hash.
    by_sender: BTreeMap<AccountId, BTreeMap<u64, TxHash>>,
    entries: BTreeMap<TxHash, Entry>,
    /// Arrival order → hash.
    arrival: BTreeMap<u64, TxHash>,
    next_seq: u64,
    /// Height → transactions marked in flight at that height (some may be gone since).
    in_flight: BTreeMap<u64, Vec<TxHash>>,
    /// Entries now in flight.
    in_flight_count: usize,
    outbox: Vec<SignedTx>,
    rejected: BTreeMap<TxHash, TxError>,
    rejected_order: VecDeque<TxHash>,
}

/// A shared handle on the pool; clones see the same pool.
#[derive(Clone, Default)]
pub struct Mempool {
    inner: Arc<Mutex<Pool>>,
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
    /// An empty pool.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Pool> {
        self.inner.lock().expect("mempool lock is never poisoned")
    }

    /// How many transactions of `sender` wait in the pool.
    pub fn pending_of(&self, sender: &AccountId) -> usize {
        self.lock()
            .by_sender
            .get(sender)
            .map_or(0, |queue| queue.len())
    }

    /// Admit a transaction whose stateless checks and signature already passed, given its
    /// sender's finalized account (`None`: no such account). `gossip` queues it for peers.
    pub fn admit(
        &self,
        tx: SignedTx,
        sender: Option<Account>,
        gossip: bool,
    ) -> Result<TxHash, TxError> {
        let hash = tx.hash();
        let mut pool = self.lock();
        if pool.entries.contains_key(&hash) {
            return Err(TxError::Duplicate);
        }
        if pool.entries.len() >= MEMPOOL_TXS_MAX {
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
        let nonce = tx.tx.nonce;
        if nonce < account.nonce {
            return Err(TxError::NonceReused {
                expected: account.nonce,
                got: nonce,
            });
        }
        if nonce >= account.nonce.saturating_add(NONCE_WINDOW_MAX) {
            return Err(TxError::NonceTooHigh {
                expected: account.nonce,
                got: nonce,
            });
        }
        let mut needed = tx.spend();
        if let Some(queue) = pool.by_sender.get(&tx.tx.sender) {
            if queue.contains_key(&nonce) {
                return Err(TxError::Duplicate);
            }
            for pending in queue.range(account.nonce..).map(|(_, h)| &pool.entries[h]) {
                needed = needed
                    .checked_add(pending.tx.spend())
                    .ok_or(TxError::InvalidAmount("pending spend overflows"))?;
            }
        }
        if needed > account.balance {
            return Err(TxError::InsufficientBalance {
                balance: account.balance,
                needed,
            });
        }
        let seq = pool.next_seq;
        pool.next_seq += 1;
        pool.by_sender
            .entry(tx.tx.sender)
            .or_default()
            .insert(nonce, hash);
        pool.arrival.insert(seq, hash);
        if gossip {
            pool.outbox.push(tx.clone());
        }
        pool.entries.insert(
            hash,
            Entry {
                tx,
                seq,
                in_flight: None,
            },
        );
        Ok(hash)
    }

    /// Whether the pool holds this transaction (its signature was verified on admission).
    pub fn contains(&self, hash: &TxHash) -> bool {
        self.lock().entries.contains_key(hash)
    }

    /// Number of pending transactions (in flight or not).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether some transaction waits to be proposed (pending and not in flight).
    pub fn has_candidates(&self) -> bool {
        let pool = self.lock();
        pool.entries.len() > pool.in_flight_count
    }

    /// Up to `max` transactions of at most `max_bytes` encoded, not in flight, oldest arrivals
    /// first, each sender's in nonce order.
    pub fn candidates(&self, max: usize, max_bytes: usize) -> Vec<SignedTx> {
        use commonware_codec::EncodeSize as _;
        let pool = self.lock();
        let mut bytes = 0usize;
        let chosen: Vec<&Entry> = pool
            .arrival
            .values()
            .map(|h| &pool.entries[h])
            .filter(|e| e.in_flight.is_none())
            .take_while(|e| {
                bytes = bytes.saturating_add(e.tx.encode_size());
                bytes <= max_bytes
            })
            .take(max)
            .collect();
        // Within the chosen set, give each sender's slots to its transactions in nonce order.
        let mut per_sender: BTreeMap<AccountId, Vec<&Entry>> = BTreeMap::new();
        for entry in &chosen {
            per_sender
                .entry(entry.tx.tx.sender)
                .or_default()
                .push(entry);
        }
        for queue in per_sender.values_mut() {
            queue.sort_by_key(|e| std::cmp::Reverse(e.tx.tx.nonce));
        }
        chosen
            .iter()
            .filter_map(|e| per_sender.get_mut(&e.tx.tx.sender)?.pop())
            .map(|e| e.tx.clone())
            .collect()
    }

    /// Mark transactions of a not yet final block at `height` as in flight.
    pub fn mark_in_flight(&self, height: u64, hashes: impl IntoIterator<Item = TxHash>) {
        let mut pool = self.lock();
        let mut marked = Vec::new();
        for hash in hashes {
            if let Some(entry) = pool.entries.get_mut(&hash)
                && entry.in_flight.is_none()
            {
                entry.in_flight = Some(height);
                marked.push(hash);
            }
        }
        pool.in_flight_count += marked.len();
        if !marked.is_empty() {
            pool.in_flight.entry(height).or_default().extend(marked);
        }
    }

    /// Take what was admitted locally and not yet sent to peers: up to `max` transactions of
    /// at most `max_bytes` encoded (at least one, if any waits).
    pub fn drain_outbox(&self, max: usize, max_bytes: usize) -> Vec<SignedTx> {
        use commonware_codec::EncodeSize as _;
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

    /// Remove transactions a proposal found invalid, remembering why.
    pub fn reject(&self, rejected: Vec<(TxHash, TxError)>) {
        let mut pool = self.lock();
        for (hash, error) in rejected {
            remove(&mut pool, &hash);
            remember_rejection(&mut pool, hash, error);
        }
    }

    /// Remember a refusal at admission, for status queries.
    pub fn remember_rejection(&self, hash: TxHash, error: TxError) {
        remember_rejection(&mut self.lock(), hash, error);
    }

    /// The pool's view of a transaction.
    pub fn status(&self, hash: &TxHash) -> Option<PoolStatus> {
        let pool = self.lock();
        if pool.entries.contains_key(hash) {
            return Some(PoolStatus::Pending);
        }
        pool.rejected.get(hash).cloned().map(PoolStatus::Rejected)
    }

    /// Drop what a finalized block included and anything of its senders now stale; what was in
    /// flight at this height or below and is still here returns to the candidates.
    pub fn on_finalized(&self, block: &Block) {
        let mut pool = self.lock();
        let mut next_nonce: BTreeMap<AccountId, u64> = BTreeMap::new();
        for tx in &block.txs {
            remove(&mut pool, &tx.hash());
            next_nonce.insert(tx.tx.sender, tx.tx.nonce + 1);
        }
        for (sender, next) in next_nonce {
            let stale: Vec<TxHash> = pool
                .by_sender
                .get(&sender)
                .map(|q| q.range(..next).map(|(_, h)| *h).collect())
                .unwrap_or_default();
            for hash in stale {
                remove(&mut pool, &hash);
            }
        }
        let height = block.number();
        let released: Vec<u64> = pool.in_flight.range(..=height).map(|(h, _)| *h).collect();
        for h in released {
            for hash in pool.in_flight.remove(&h).unwrap_or_default() {
                if let Some(entry) = pool.entries.get_mut(&hash)
                    && entry.in_flight == Some(h)
                {
                    entry.in_flight = None;
                    pool.in_flight_count -= 1;
                }
            }
        }
    }

    /// The nonce a new transaction of `sender` should carry: the first at or after its
    /// finalized `nonce` that no pending transaction holds.
    pub fn next_nonce(&self, sender: &AccountId, nonce: u64) -> u64 {
        let pool = self.lock();
        let mut next = nonce;
        if let Some(queue) = pool.by_sender.get(sender) {
            for (&pending, _) in queue.range(nonce..) {
                if pending != next {
                    break;
                }
                next += 1;
            }
        }
        next
    }

    /// Total a sender has pending (for display).
    pub fn pending_spend(&self, sender: &AccountId) -> Amount {
        let pool = self.lock();
        pool.by_sender.get(sender).map_or(Amount::ZERO, |q| {
            q.values().fold(Amount::ZERO, |t, h| {
                t.checked_add(pool.entries[h].tx.spend()).unwrap_or(t)
            })
        })
    }
}

fn remove(pool: &mut Pool, hash: &TxHash) {
    let Some(entry) = pool.entries.remove(hash) else {
        return;
    };
    pool.arrival.remove(&entry.seq);
    if entry.in_flight.is_some() {
        pool.in_flight_count -= 1;
    }
    let sender = entry.tx.tx.sender;
    if let Some(queue) = pool.by_sender.get_mut(&sender) {
        queue.remove(&entry.tx.tx.nonce);
        if queue.is_empty() {
            pool.by_sender.remove(&sender);
        }
    }
}

fn remember_rejection(pool: &mut Pool, hash: TxHash, error: TxError) {
    if pool.rejected.insert(hash, error).is_none() {
        pool.rejected_order.push_back(hash);
    }
    while pool.rejected_order.len() > REJECTIONS_REMEMBERED_MAX {
        if let Some(old) = pool.rejected_order.pop_front() {
            pool.rejected.remove(&old);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{Signer, ed25519};
    use consort_types::{Call, Tx};

    fn id(seed: u64) -> AccountId {
        AccountId::new(ed25519::PrivateKey::from_seed(seed).public_key())
    }

    fn transfer(nonce: u64, amount: u64) -> SignedTx {
        Tx {
            chain_id: 1,
            sender: id(1),
            nonce,
            call: Call::Transfer {
                to: id(2),
                amount: Amount::new(amount),
            },
        }
        .sign(&ed25519::PrivateKey::from_seed(1))
    }

    fn account(balance: u64, nonce: u64) -> Option<Account> {
        Some(Account {
            balance: Amount::new(balance),
            nonce,
        })
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

    fn transfer_from(sender: u64, nonce: u64) -> SignedTx {
        Tx {
            chain_id: 1,
            sender: id(sender),
            nonce,
            call: Call::Transfer {
                to: id(99),
                amount: Amount::new(1),
            },
        }
        .sign(&ed25519::PrivateKey::from_seed(sender))
    }

    fn block(height: u64, txs: Vec<SignedTx>) -> Block {
        use commonware_consensus::types::{Epoch, Height, Round, View};
        let key = ed25519::PrivateKey::from_seed(0).public_key();
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
            tx_root: consort_types::block::tx_root(&txs),
            state_root: [0u8; 32].into(),
            ops_root: [0u8; 32].into(),
            ops_range: commonware_utils::range::NonEmptyRange::new(
                commonware_storage::mmr::Location::new(0)
                    ..commonware_storage::mmr::Location::new(1),
            )
            .expect("non-empty"),
            next_committee: None,
        };
        Block::new(header, txs)
    }

    #[test]
    fn candidates_come_in_arrival_order_each_sender_in_nonce_order() {
        let pool = Mempool::new();
        // Sender 2 arrives first; sender 1's nonces arrive out of order.
        pool.admit(transfer_from(2, 0), account(100, 0), false)
            .expect("admits");
        pool.admit(transfer_from(1, 1), account(100, 0), false)
            .expect("admits");
        pool.admit(transfer_from(1, 0), account(100, 0), false)
            .expect("admits");
        let order: Vec<(AccountId, u64)> = pool
            .candidates(10, usize::MAX)
            .iter()
            .map(|t| (t.tx.sender, t.tx.nonce))
            .collect();
        assert_eq!(order, vec![(id(2), 0), (id(1), 0), (id(1), 1)]);
        assert_eq!(pool.candidates(1, usize::MAX).len(), 1);
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
            .candidates(10, usize::MAX)
            .iter()
            .map(|t| t.tx.nonce)
            .collect();
        assert_eq!(left, vec![2]);
        assert!(pool.has_candidates());
        pool.mark_in_flight(6, [transfer(2, 1).hash()]);
        assert!(!pool.has_candidates());
        // Another block (without them) is final at height 5: nonces 0 and 1 come back.
        pool.on_finalized(&block(5, Vec::new()));
        let back: Vec<u64> = pool
            .candidates(10, usize::MAX)
            .iter()
            .map(|t| t.tx.nonce)
            .collect();
        assert_eq!(back, vec![0, 1]);
        assert_eq!(pool.len(), 3);
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
        pool.reject(vec![(
            transfer(2, 1).hash(),
            TxError::InsufficientBalance {
                balance: Amount::new(0),
                needed: Amount::new(1),
            },
        )]);
        assert!(pool.is_empty());
        assert!(matches!(
            pool.status(&transfer(2, 1).hash()),
            Some(PoolStatus::Rejected(TxError::InsufficientBalance { .. }))
        ));
    }
}
