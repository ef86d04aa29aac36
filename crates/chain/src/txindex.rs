//! A node's index of finalized transactions by hash: where each sits (height, position) and
//! whether it applied. It is the node's own record, outside the authenticated state, so
//! executing a block writes nothing per transaction but what the transaction itself changes.
//!
//! Entries live in an append-only archive under a dense sequence number (the transaction's
//! place in the chain's history), with an in-memory index of hashes. The index follows the
//! finalized chain with a durable cursor (height and next sequence number): a block's entries
//! are synced before the cursor moves past it, so a node killed at any point reopens at its
//! cursor and indexes the rest again from marshal's finalized blocks ([`follow`]); entries
//! written again are no-ops.

use commonware_codec::{EncodeSize, FixedSize, Read, ReadExt as _, Write};
use commonware_consensus::{
    marshal::{Identifier, core::Mailbox as MarshalMailbox, standard::Standard},
    simplex::scheme::ed25519::Scheme,
    types::Height,
};
use commonware_runtime::buffer::paged::CacheRef;
use commonware_storage::{
    archive::{self, Archive as _, prunable},
    metadata::{self, Metadata},
    translator::EightCap,
};
use commonware_utils::{NZU16, NZU64, NZUsize, sequence::U64};
use consort_state::Runtime;
use consort_types::{Block, TxHash, state_key::TxLocation};
use futures::{StreamExt as _, channel::mpsc, lock::Mutex};
use std::{
    num::NonZeroUsize,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tracing::{debug, warn};

const IO_BUFFER: NonZeroUsize = NZUsize!(1 << 16);

/// How often the follower asks marshal for the finalized tip when no block arrives (it also
/// wakes for every block the node finalizes).
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// Blocks handed to the follower and not yet taken; when full, it reads them from marshal.
pub const FOLLOW_QUEUE: usize = 64;

/// The metadata key of the cursor.
const CURSOR_KEY: u64 = 0;

/// Why the index failed. After a failed write its handles are gone: the node must restart
/// (and the index resumes from its last durable cursor).
#[derive(Debug, thiserror::Error)]
pub enum TxIndexError {
    /// The archive holding the entries failed.
    #[error("transaction index storage: {0}")]
    Archive(#[from] archive::Error),
    /// The cursor's metadata failed.
    #[error("transaction index cursor: {0}")]
    Metadata(#[from] metadata::Error),
    /// An earlier write failed and closed the index.
    #[error("the transaction index closed after an earlier failure; restart the node")]
    Closed,
}

/// The durable cursor: every block up to `height` is indexed, and the next transaction takes
/// sequence number `next`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Cursor {
    height: u64,
    next: u64,
}

impl Write for Cursor {
    fn write(&self, buf: &mut impl bytes::BufMut) {
        self.height.write(buf);
        self.next.write(buf);
    }
}

impl EncodeSize for Cursor {
    fn encode_size(&self) -> usize {
        2 * u64::SIZE
    }
}

impl Read for Cursor {
    type Cfg = ();
    fn read_cfg(
        buf: &mut impl commonware_codec::Buf,
        _: &(),
    ) -> Result<Self, commonware_codec::Error> {
        Ok(Self {
            height: u64::read(buf)?,
            next: u64::read(buf)?,
        })
    }
}

type Entries<E> = prunable::Archive<EightCap, E, TxHash, TxLocation>;

struct Stores<E: Runtime> {
    entries: Entries<E>,
    metadata: Metadata<E, U64, Cursor>,
    cursor: Cursor,
}

/// The index. Reads and writes may run concurrently from any task.
pub struct TxIndex<E: Runtime> {
    stores: Mutex<Option<Stores<E>>>,
    indexed: AtomicU64,
}

fn archive_config(prefix: &str) -> prunable::Config<EightCap, ()> {
    prunable::Config {
        translator: EightCap,
        metadata_partition: format!("{prefix}-txindex-metadata"),
        key_partition: format!("{prefix}-txindex-keys"),
        key_page_cache: CacheRef::new(NZU16!(4096), NZUsize!(1024)),
        value_partition: format!("{prefix}-txindex-values"),
        compression: None,
        codec_config: (),
        items_per_section: NZU64!(1 << 16),
        key_write_buffer: IO_BUFFER,
        value_write_buffer: IO_BUFFER,
        replay_buffer: IO_BUFFER,
    }
}

impl<E: Runtime> TxIndex<E> {
    /// Open (or create) the index under partitions named `prefix`-txindex-*, at its durable
    /// cursor.
    ///
    /// # Errors
    /// If its storage cannot be opened or is corrupt.
    pub async fn open(context: E, prefix: &str) -> Result<Self, TxIndexError> {
        let metadata = Metadata::<E, U64, Cursor>::init(
            context.child("txindex_cursor"),
            metadata::Config {
                partition: format!("{prefix}-txindex-cursor"),
                codec_config: (),
            },
        )
        .await?;
        let cursor = metadata
            .get(&U64::new(CURSOR_KEY))
            .copied()
            .unwrap_or_default();
        let entries = Entries::init(context.child("txindex"), archive_config(prefix)).await?;
        Ok(Self {
            stores: Mutex::new(Some(Stores {
                entries,
                metadata,
                cursor,
            })),
            indexed: AtomicU64::new(cursor.height),
        })
    }

    /// The height up to which every finalized block is indexed.
    pub fn indexed(&self) -> u64 {
        self.indexed.load(Ordering::Acquire)
    }

    /// Where the finalized transaction `hash` sits, if it is indexed.
    ///
    /// # Errors
    /// If the storage cannot be read.
    pub async fn get(&self, hash: &TxHash) -> Result<Option<TxLocation>, TxIndexError> {
        let stores = self.stores.lock().await;
        let stores = stores.as_ref().ok_or(TxIndexError::Closed)?;
        Ok(stores.entries.get(archive::Identifier::Key(hash)).await?)
    }

    /// Index `block` if it is the next height; any other height is ignored (`Ok(false)`).
    /// Its entries are durable before the cursor moves past it.
    ///
    /// # Errors
    /// If the storage fails; the index is then closed.
    pub async fn add(&self, block: &Block) -> Result<bool, TxIndexError> {
        self.advance(block.number(), Some(block)).await
    }

    /// Move the cursor past `height`, indexing `block`'s transactions if given (a block not
    /// available leaves them unindexed).
    async fn advance(&self, height: u64, block: Option<&Block>) -> Result<bool, TxIndexError> {
        let mut guard = self.stores.lock().await;
        if height != self.indexed() + 1 {
            return Ok(false);
        }
        let Stores {
            mut entries,
            mut metadata,
            cursor,
        } = guard.take().ok_or(TxIndexError::Closed)?;
        let mut next = cursor.next;
        for (index, (tx, outcome)) in block
            .iter()
            .flat_map(|b| b.txs.iter().zip(b.outcomes.iter()))
            .enumerate()
        {
            let location = TxLocation {
                height,
                // A block holds at most BLOCK_TXS_MAX (8192) transactions.
                index: u32::try_from(index).unwrap_or(u32::MAX),
                applied: outcome.is_applied(),
            };
            entries = entries.put(next, tx.hash(), &location).await?;
            next += 1;
        }
        if next != cursor.next {
            entries = entries.sync().await?;
        }
        let cursor = Cursor { height, next };
        metadata.put(U64::new(CURSOR_KEY), cursor);
        // A skipped height (no block) is made durable with the next indexed one: skipping it
        // again after a crash changes nothing.
        if block.is_some() {
            metadata = metadata.sync().await?;
        }
        *guard = Some(Stores {
            entries,
            metadata,
            cursor,
        });
        self.indexed.store(height, Ordering::Release);
        Ok(true)
    }
}

/// Keep `index` at the finalized tip: index each block handed over on `blocks` (the node's
/// finalized blocks, in order), and read from `marshal` whatever the index lacks (after a
/// restart, or when the queue overflowed). Runs until the index fails.
pub async fn follow<E: Runtime>(
    context: E,
    index: Arc<TxIndex<E>>,
    marshal: MarshalMailbox<Scheme, Standard<Block>>,
    mut blocks: mpsc::Receiver<Arc<Block>>,
) {
    let mut feed_open = true;
    loop {
        let handed = if feed_open {
            let sleep = Box::pin(context.sleep(FOLLOW_POLL));
            match futures::future::select(blocks.next(), sleep).await {
                futures::future::Either::Left((Some(block), _)) => Some(block),
                // The node stopped handing blocks over: follow marshal alone.
                futures::future::Either::Left((None, _)) => {
                    feed_open = false;
                    None
                }
                futures::future::Either::Right(((), _)) => None,
            }
        } else {
            context.sleep(FOLLOW_POLL).await;
            None
        };
        let result = match handed {
            Some(block) if block.number() <= index.indexed() => Ok(()),
            Some(block) => match catch_up(&index, &marshal, block.number() - 1).await {
                Ok(()) => index.add(&block).await.map(|_| ()),
                Err(error) => Err(error),
            },
            None => match marshal.get_info(Identifier::Latest).await {
                Some((tip, _)) => catch_up(&index, &marshal, tip.get()).await,
                None => Ok(()),
            },
        };
        if let Err(error) = result {
            tracing::error!(%error, "transaction index stopped; restart the node");
            return;
        }
    }
}

/// Index every finalized block up to `target` that is not indexed yet, from marshal. A block
/// marshal no longer holds (pruned, or skipped by state sync) leaves its transactions
/// unindexed; the cursor moves on.
async fn catch_up<E: Runtime>(
    index: &TxIndex<E>,
    marshal: &MarshalMailbox<Scheme, Standard<Block>>,
    target: u64,
) -> Result<(), TxIndexError> {
    let mut missing = 0u64;
    while index.indexed() < target {
        let height = index.indexed() + 1;
        match marshal
            .get_block(Identifier::Height(Height::new(height)))
            .await
        {
            Some(block) => {
                index.add(block.inner()).await?;
            }
            None => {
                index.advance(height, None).await?;
                missing += 1;
            }
        }
    }
    if missing > 0 {
        warn!(
            missing,
            target,
            "finalized blocks not held locally (state sync or pruning): their transactions stay unindexed"
        );
    }
    debug!(target, "transaction index caught up");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use commonware_cryptography::{Signer as _, ed25519};
    use commonware_runtime::{Runner as _, Supervisor as _, deterministic};

    use consort_types::{AccountId, Amount, Call, Outcome, SignedTx, Tx, TxError};

    fn tx(seed: u64, nonce: u64) -> SignedTx {
        let key = ed25519::PrivateKey::from_seed(seed);
        Tx {
            chain_id: 1,
            sender: AccountId::new(key.public_key()),
            nonce,
            call: Call::Transfer {
                to: AccountId::new(ed25519::PrivateKey::from_seed(seed + 1).public_key()),
                amount: Amount::new(1),
            },
        }
        .sign(&key)
    }

    fn block(height: u64, txs: Vec<SignedTx>) -> Block {
        // Every third transaction failed (it used its nonce only).
        let outcomes: Vec<Outcome> = (0..txs.len())
            .map(|i| {
                if i % 3 == 2 {
                    Outcome::failed(&TxError::Duplicate)
                } else {
                    Outcome::Applied
                }
            })
            .collect();
        crate::test_blocks::block(height, [0u8; 32].into(), height, txs, outcomes)
    }

    #[test]
    fn finalized_transactions_are_found_by_hash_in_order_and_after_a_restart() {
        deterministic::Runner::default().start(|context| async move {
            let one = block(1, (0..5).map(|n| tx(10, n)).collect());
            let two = block(2, Vec::new());
            let three = block(3, vec![tx(20, 0), tx(30, 0), tx(20, 1)]);
            let index = TxIndex::open(context.child("a"), "test")
                .await
                .expect("open");
            assert_eq!(index.indexed(), 0);
            assert!(!index.add(&two).await.expect("add"), "not the next height");
            for b in [&one, &two, &three] {
                assert!(index.add(b).await.expect("add"));
            }
            assert!(!index.add(&three).await.expect("add"), "already indexed");
            assert_eq!(index.indexed(), 3);
            let check = |index: Arc<TxIndex<deterministic::Context>>| {
                let (one, three) = (one.clone(), three.clone());
                async move {
                    for b in [&one, &three] {
                        for (i, t) in b.txs.iter().enumerate() {
                            let found = index.get(&t.hash()).await.expect("get");
                            assert_eq!(
                                found,
                                Some(TxLocation {
                                    height: b.number(),
                                    index: u32::try_from(i).expect("small"),
                                    applied: i % 3 != 2,
                                })
                            );
                        }
                    }
                    assert_eq!(index.get(&tx(99, 0).hash()).await.expect("get"), None);
                }
            };
            let index = Arc::new(index);
            check(index.clone()).await;
            drop(index);
            // Reopened (as after a kill: nothing was closed), at the durable cursor.
            let index = Arc::new(
                TxIndex::open(context.child("b"), "test")
                    .await
                    .expect("reopen"),
            );
            assert_eq!(index.indexed(), 3);
            check(index.clone()).await;
            let four = block(4, vec![tx(40, 0)]);
            assert!(index.add(&four).await.expect("add"));
            let found = index.get(&four.txs[0].hash()).await.expect("get");
            assert_eq!(found.map(|l| (l.height, l.index)), Some((4, 0)));
        });
    }
}
