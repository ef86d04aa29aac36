//! The bounded pool of admitted transactions.
//!
//! Everything in the pool passed the stateless checks and its signature verified once, on
//! admission; block verification does not verify such transactions again. Per sender the pool
//! keeps a nonce-ordered queue no further than [`NONCE_WINDOW_MAX`] ahead of the account, and it
//! refuses a transaction that, with the sender's pending ones, would overdraw the account.

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

#[derive(Default)]
struct Pool {
    by_sender: BTreeMap<AccountId, BTreeMap<u64, SignedTx>>,
    hashes: BTreeMap<TxHash, (AccountId, u64)>,
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
        if pool.hashes.contains_key(&hash) {
            return Err(TxError::Duplicate);
        }
        if pool.hashes.len() >= MEMPOOL_TXS_MAX {
            return Err(TxError::MempoolFull);
        }
        let Some(account) = sender else {
            return Err(TxError::UnknownAccount(Box::new(tx.tx.sender.clone())));
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
        let queue = pool.by_sender.entry(tx.tx.sender.clone()).or_default();
        if queue.contains_key(&nonce) {
            return Err(TxError::Duplicate);
        }
        let mut needed = tx.spend();
        for (_, pending) in queue.range(account.nonce..) {
            needed = needed
                .checked_add(pending.spend())
                .ok_or(TxError::InvalidAmount("pending spend overflows"))?;
        }
        if needed > account.balance {
            if queue.is_empty() {
                pool.by_sender.remove(&tx.tx.sender);
            }
            return Err(TxError::InsufficientBalance {
                balance: account.balance,
                needed,
            });
        }
        queue.insert(nonce, tx.clone());
        pool.hashes.insert(hash, (tx.tx.sender.clone(), nonce));
        if gossip {
            pool.outbox.push(tx);
        }
        Ok(hash)
    }

    /// Whether the pool holds this transaction (its signature was verified on admission).
    pub fn contains(&self, hash: &TxHash) -> bool {
        self.lock().hashes.contains_key(hash)
    }

    /// Number of pending transactions.
    pub fn len(&self) -> usize {
        self.lock().hashes.len()
    }

    /// Whether nothing is pending.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Up to `max` pending transactions, each sender's in nonce order.
    pub fn candidates(&self, max: usize) -> Vec<SignedTx> {
        let pool = self.lock();
        let mut out = Vec::with_capacity(max.min(pool.hashes.len()));
        'senders: for queue in pool.by_sender.values() {
            for tx in queue.values() {
                if out.len() >= max {
                    break 'senders;
                }
                out.push(tx.clone());
            }
        }
        out
    }

    /// Take what was admitted locally and not yet sent to peers.
    pub fn drain_outbox(&self, max: usize) -> Vec<SignedTx> {
        let mut pool = self.lock();
        let n = pool.outbox.len().min(max);
        pool.outbox.drain(..n).collect()
    }

    /// Remove transactions a proposal found invalid. A stale nonce means the transaction was
    /// already included, so it is dropped silently; anything else is remembered as rejected.
    pub fn reject(&self, rejected: Vec<(TxHash, TxError)>) {
        let mut pool = self.lock();
        for (hash, error) in rejected {
            remove(&mut pool, &hash);
            if !matches!(error, TxError::NonceReused { .. }) {
                remember_rejection(&mut pool, hash, error);
            }
        }
    }

    /// Remember a refusal at admission, for status queries.
    pub fn remember_rejection(&self, hash: TxHash, error: TxError) {
        remember_rejection(&mut self.lock(), hash, error);
    }

    /// The pool's view of a transaction.
    pub fn status(&self, hash: &TxHash) -> Option<PoolStatus> {
        let pool = self.lock();
        if pool.hashes.contains_key(hash) {
            return Some(PoolStatus::Pending);
        }
        pool.rejected.get(hash).cloned().map(PoolStatus::Rejected)
    }

    /// Drop what a finalized block included, and anything of its senders now stale.
    pub fn on_finalized(&self, block: &Block) {
        let mut pool = self.lock();
        let mut next_nonce: BTreeMap<&AccountId, u64> = BTreeMap::new();
        for tx in &block.txs {
            remove(&mut pool, &tx.hash());
            next_nonce.insert(&tx.tx.sender, tx.tx.nonce + 1);
        }
        for (sender, next) in next_nonce {
            let stale: Vec<TxHash> = pool
                .by_sender
                .get(sender)
                .map(|q| q.range(..next).map(|(_, t)| t.hash()).collect())
                .unwrap_or_default();
            for hash in stale {
                remove(&mut pool, &hash);
            }
        }
    }

    /// Total a sender has pending (for display).
    pub fn pending_spend(&self, sender: &AccountId) -> Amount {
        let pool = self.lock();
        pool.by_sender.get(sender).map_or(Amount::ZERO, |q| {
            q.values()
                .fold(Amount::ZERO, |t, tx| t.checked_add(tx.spend()).unwrap_or(t))
        })
    }
}

fn remove(pool: &mut Pool, hash: &TxHash) {
    if let Some((sender, nonce)) = pool.hashes.remove(hash)
        && let Some(queue) = pool.by_sender.get_mut(&sender)
    {
        queue.remove(&nonce);
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

    #[test]
    fn finalization_removes_included_and_stale_transactions() {
        let pool = Mempool::new();
        for nonce in 0..3 {
            pool.admit(transfer(nonce, 1), account(100, 0), false)
                .expect("admits");
        }
        assert_eq!(pool.candidates(10).len(), 3);
        pool.reject(vec![(
            transfer(0, 1).hash(),
            TxError::NonceReused {
                expected: 1,
                got: 0,
            },
        )]);
        assert_eq!(pool.len(), 2);
        assert_eq!(pool.status(&transfer(0, 1).hash()), None);
    }
}
