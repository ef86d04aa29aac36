//! Consort's `commonware_glue::stateful::Application`: builds blocks from the mempool and
//! re-executes peers' blocks, committing each block to the resulting state root.

use crate::{
    mempool::Mempool,
    pace::{Pace, Timeouts},
    rules::{BlockInfo, Rules},
    runtime::{self as execute, Mode},
};
use commonware_consensus::{marshal::ancestry::Ancestry, types::Height};
use commonware_cryptography::{Digestible, ed25519};
use commonware_glue::stateful::{
    Application, Finality, Input, Proposed,
    db::{DatabaseSet, Merkleized as _},
};
use commonware_runtime::Clock;
use commonware_storage::qmdb::sync::Target;
use commonware_utils::range::NonEmptyRange;
use consort_state::{Databases, Merkleized, Runtime, Unmerkleized};
use consort_types::{
    Block, BlockContext, Digest, Genesis, Header, SignedTx, block::tx_root, changes::Changes,
    limits, receipt::FAILURE_CODE_MAX,
};
use futures::StreamExt;
use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, UNIX_EPOCH},
};
use tracing::{debug, warn};

/// Most bytes of transactions a proposal takes: the block limit less room for the header and
/// every transaction's outcome.
const CANDIDATE_BYTES_MAX: usize =
    limits::BLOCK_SIZE_MAX - 4096 - limits::BLOCK_TXS_MAX * (2 + FAILURE_CODE_MAX);

/// Most executed but not yet finalized blocks whose written keys are remembered (for the
/// mempool's eligibility cache; a block finalized without them clears the cache).
const WRITES_REMEMBERED_MAX: usize = 16;

/// Most written keys remembered of one block (about 2 MB); a block that wrote more clears the
/// eligibility cache when it is finalized.
const WRITES_TRACKED_MAX: usize = 65_536;

/// How long a leader building on a block that carried transactions waits for runnable work
/// before it proposes what it has (possibly nothing).
const BUSY_PARENT_WAIT_MS: u64 = 20;

/// How often a waiting leader looks at the mempool.
const PROPOSE_POLL: Duration = Duration::from_millis(2);

/// Most executed but not yet finalized blocks whose shop changes are remembered. A block
/// finalized without them (forgotten, or executed by no one here since a restart: never, as
/// a finalized block is executed again before its state is applied) leaves a gap the node's
/// change log reports.
const CHANGES_REMEMBERED_MAX: usize = 1024;

/// Hears of every block the node finalizes, after its state is applied.
pub trait ChainObserver: Send + Sync + 'static {
    /// Block `block` is final and its state is readable.
    fn finalized(&self, block: &Arc<Block>);

    /// Block `block` is final and about to be applied: `changes` are the shop records it
    /// changed (`None` if this node does not have them). Called in height order before the
    /// block's state is applied, and again for the same block after a crash until it is
    /// applied, so an observer that keeps them durably before returning misses none.
    fn captured(&self, block: &Block, changes: Option<&Changes>);
}

/// An observer that ignores everything.
pub struct NoObserver;

impl ChainObserver for NoObserver {
    fn finalized(&self, _: &Arc<Block>) {}
    fn captured(&self, _: &Block, _: Option<&Changes>) {}
}

/// The application. Clones share the genesis, mempool and observer.
#[derive(Clone)]
pub struct App {
    genesis: Arc<Genesis>,
    peg: Option<Arc<consort_peg::Peg>>,
    gov: Option<Arc<consort_governance::Gov>>,
    commerce: Option<Arc<consort_commerce::Commerce>>,
    genesis_block: Block,
    observer: Arc<dyn ChainObserver>,
    mempool: Mempool,
    /// Block digest → (height, the state keys the block wrote), for blocks executed and not
    /// yet finalized.
    writes: Arc<Mutex<BlockWrites>>,
    /// Block digest → (height, the shop records it changed), for blocks executed and not yet
    /// finalized.
    changes: Arc<Mutex<BlockChanges>>,
    /// Warns in the log when finality is slow (the chain stalled, or this node fell behind).
    pace: Arc<Pace>,
}

/// Block digest → (height, the shop records the block changed).
type BlockChanges = BTreeMap<Digest, (u64, Arc<Changes>)>;

/// Block digest → (height, the state keys the block wrote; `None`: too many to track).
type BlockWrites = BTreeMap<Digest, (u64, Option<Vec<Digest>>)>;

/// The genesis block of `genesis`: height 0, empty state, its parent field committing to the
/// genesis document so that chains with different genesis never share a block.
pub fn genesis_block<E: Runtime>(genesis: &Genesis) -> Block {
    let target = <Databases<E> as DatabaseSet<E>>::initial_sync_targets();
    let leader = genesis.validator_keys()[0].clone();
    let header = Header {
        context: BlockContext {
            round: commonware_consensus::types::Round::zero(),
            leader,
            parent: (commonware_consensus::types::View::zero(), genesis.digest()),
        },
        parent: genesis.digest(),
        height: Height::zero(),
        timestamp_ms: genesis.genesis_time_ms,
        tx_count: 0,
        tx_root: tx_root(&[], &[]),
        state_root: target.root,
        ops_root: target.root,
        ops_range: target.range,
        next_committee: None,
    };
    Block::new(header, Vec::new(), Vec::new())
}

impl App {
    /// An application for `genesis` reporting finalized blocks to `observer`. Block
    /// verification skips the signatures of transactions `mempool` already admitted.
    pub fn new(
        genesis: Arc<Genesis>,
        genesis_block: Block,
        observer: Arc<dyn ChainObserver>,
        mempool: Mempool,
    ) -> Self {
        let peg = consort_peg::Peg::from_genesis(&genesis)
            .expect("the node checks the peg configuration before starting")
            .map(Arc::new);
        let gov = consort_governance::Gov::from_genesis(&genesis).map(Arc::new);
        let commerce = consort_commerce::Commerce::from_genesis(&genesis).map(Arc::new);
        let leader_timeout = Timeouts::for_interval(genesis.empty_block_interval_ms()).leader;
        let pace = Arc::new(Pace::new(
            u64::try_from(leader_timeout.as_millis()).unwrap_or(u64::MAX),
        ));
        Self {
            genesis,
            gov,
            commerce,
            peg,
            genesis_block,
            observer,
            mempool,
            writes: Arc::default(),
            changes: Arc::default(),
            pace,
        }
    }

    /// Remember the shop records block `digest` at `height` changed, until it or a block at
    /// its height is finalized.
    fn remember_changes(&self, digest: Digest, height: u64, changes: Changes) {
        let mut remembered = self.changes.lock().expect("changes lock is never poisoned");
        remembered.insert(digest, (height, Arc::new(changes)));
        // Over the bound (finality stalled while blocks kept being built), forget the
        // newest: the next block finalized is among the oldest.
        while remembered.len() > CHANGES_REMEMBERED_MAX {
            let Some(highest) = remembered
                .iter()
                .max_by_key(|(digest, (height, _))| (*height, **digest))
                .map(|(digest, _)| *digest)
            else {
                break;
            };
            remembered.remove(&highest);
        }
    }

    /// The shop records finalized `block` changed, if it was executed here; forgets them and
    /// everything at its height or below.
    fn take_changes(&self, block: &Block) -> Option<Arc<Changes>> {
        let mut remembered = self.changes.lock().expect("changes lock is never poisoned");
        let changes = remembered.remove(&block.digest()).map(|(_, c)| c);
        let height = block.number();
        remembered.retain(|_, (h, _)| *h > height);
        changes
    }

    /// Remember what block `digest` at `height` wrote, until it or a block at its height is
    /// finalized.
    fn remember_writes(&self, digest: Digest, height: u64, written: Vec<Digest>) {
        let written = (written.len() <= WRITES_TRACKED_MAX).then_some(written);
        let mut writes = self.writes.lock().expect("writes lock is never poisoned");
        writes.insert(digest, (height, written));
        while writes.len() > WRITES_REMEMBERED_MAX {
            let Some(lowest) = writes
                .iter()
                .min_by_key(|(digest, (height, _))| (*height, **digest))
                .map(|(digest, _)| *digest)
            else {
                break;
            };
            writes.remove(&lowest);
        }
    }

    /// What finalized `block` wrote, if it was executed here; forgets it and everything at its
    /// height or below.
    fn take_writes(&self, block: &Block) -> Option<Vec<Digest>> {
        let mut writes = self.writes.lock().expect("writes lock is never poisoned");
        let written = writes
            .remove(&block.digest())
            .and_then(|(_, written)| written);
        let height = block.number();
        writes.retain(|_, (h, _)| *h > height);
        written
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            genesis: &self.genesis,
            peg: self.peg.as_deref(),
            gov: self.gov.as_deref(),
            commerce: self.commerce.as_deref(),
        }
    }
}

fn now_ms<E: Clock>(context: &E) -> u64 {
    let elapsed = context
        .current()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// Milliseconds of `context`'s clock since `since` (for logs).
fn elapsed_ms<E: Clock>(context: &E, since: std::time::SystemTime) -> u64 {
    let elapsed = context.current().duration_since(since).unwrap_or_default();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

fn header_for(
    context: BlockContext,
    parent: &Block,
    timestamp_ms: u64,
    executed: &execute::Executed<impl Runtime>,
) -> Header {
    let merkleized = &executed.merkleized;
    Header {
        context,
        parent: parent.digest(),
        height: Height::new(parent.number() + 1),
        timestamp_ms,
        tx_count: u32::try_from(executed.included.len()).expect("BLOCK_TXS_MAX fits u32"),
        tx_root: tx_root(&executed.included, &executed.outcomes),
        state_root: merkleized.root(),
        ops_root: (**merkleized).ops_root(),
        ops_range: NonEmptyRange::new(merkleized.sync_boundary()..merkleized.bounds().tip.size)
            .expect("the operation log is never empty"),
        next_committee: executed.next_committee.clone(),
    }
}

/// Checks of a peer's block that need no state: linkage, height, time (not before the parent,
/// not more than [`limits::BLOCK_FUTURE_DRIFT_MS`] ahead of `now_ms`: a far-future proposal is
/// refused, not waited for), transactions' stateless rules and signatures (those not already
/// verified by the local mempool, in one batch).
fn check_candidate<R: rand_core::CryptoRng>(
    block: &Block,
    parent: &Block,
    chain_id: u64,
    now_ms: u64,
    mempool: Option<&Mempool>,
    rng: &mut R,
) -> Result<(), String> {
    if block.header.parent != parent.digest() {
        return Err("parent digest does not match".into());
    }
    if block.number() != parent.number() + 1 {
        return Err("height is not parent + 1".into());
    }
    if block.header.timestamp_ms < parent.header.timestamp_ms {
        return Err("timestamp is before the parent's".into());
    }
    if block.header.timestamp_ms > now_ms.saturating_add(limits::BLOCK_FUTURE_DRIFT_MS) {
        return Err(format!(
            "timestamp is {} ms ahead of this node's clock (at most {} allowed)",
            block.header.timestamp_ms - now_ms,
            limits::BLOCK_FUTURE_DRIFT_MS
        ));
    }
    if block.txs.len() > limits::BLOCK_TXS_MAX {
        return Err("too many transactions".into());
    }
    for tx in block.txs.iter() {
        tx.check_without_signature(chain_id)
            .map_err(|e| format!("transaction {}: {e}", tx.hash()))?;
    }
    let unverified: Vec<&SignedTx> = match mempool {
        Some(mempool) => mempool.unknown_refs(&block.txs),
        None => block.txs.iter().collect(),
    };
    if !consort_types::tx::verify_batch(&unverified, rng) {
        return Err("a transaction signature does not verify".into());
    }
    Ok(())
}

impl<E: Runtime> Application<E> for App {
    type SigningScheme = commonware_consensus::simplex::scheme::ed25519::Scheme;
    type Context = BlockContext;
    type Block = Block;
    type Databases = Databases<E>;
    type Captured = ();
    type Provider = Mempool;
    type Input = ();

    fn sync_targets(block: &Block) -> <Databases<E> as DatabaseSet<E>>::SyncTargets {
        Target::new(block.header.ops_root, block.header.ops_range.clone())
    }

    async fn genesis(&mut self) -> Block {
        self.genesis_block.clone()
    }

    async fn propose(
        &mut self,
        (context, consensus): (E, BlockContext),
        ancestry: impl Ancestry<Block>,
        batches: Unmerkleized<E>,
        input: Input<(), Mempool>,
    ) -> Option<Proposed<Self, E>> {
        let mut ancestry = ancestry;
        let parent = ancestry.next().await?;
        let parent = parent.inner();
        let mempool = input.provider;
        // What sat in a proposal at this height or above (a skipped view's) may run again.
        mempool.release_in_flight_from(parent.number() + 1);
        // Pace empty blocks: build at once for runnable work, else wait out the interval. After
        // a block that carried transactions wait only briefly: while this build runs, the node
        // holds back the finalizations it hears (its pool keeps the parent's transactions in
        // flight, its clients hear nothing final), so waiting for new work here would stall
        // the very clients that bring it.
        let deadline = if parent.txs.is_empty() {
            parent
                .header
                .timestamp_ms
                .saturating_add(self.genesis.empty_block_interval_ms())
        } else {
            now_ms(&context).saturating_add(BUSY_PARENT_WAIT_MS)
        };
        while !mempool.has_runnable() && now_ms(&context) < deadline {
            context.sleep(PROPOSE_POLL).await;
        }
        let started = context.current();
        let timestamp_ms = now_ms(&context).max(parent.header.timestamp_ms);
        let height = parent.number() + 1;
        let per_sender_max = self
            .genesis
            .account_limits
            .map_or(limits::BLOCK_TXS_MAX, |l| l.txs_per_block as usize);
        let candidates =
            mempool.candidates(limits::BLOCK_TXS_MAX, CANDIDATE_BYTES_MAX, per_sender_max);
        let block_info = BlockInfo {
            height,
            timestamp_ms,
        };
        let mut executed = match execute::execute_block(
            batches,
            block_info,
            candidates,
            self.rules(),
            Mode::Propose,
        )
        .await
        {
            Ok(executed) => executed,
            Err(error) => {
                warn!(%error, height, "cannot build a block");
                return None;
            }
        };
        if !executed.rejected.is_empty() {
            debug!(
                height,
                refused = executed.rejected.len(),
                "block building refused transactions"
            );
        }
        mempool.reject(std::mem::take(&mut executed.rejected));
        mempool.mark_in_flight(height, executed.included.iter().map(SignedTx::hash));
        let header = header_for(consensus, parent, timestamp_ms, &executed);
        let failed = executed.outcomes.iter().filter(|o| !o.is_applied()).count();
        let build_ms = elapsed_ms(&context, started);
        debug!(
            height,
            txs = executed.included.len(),
            failed,
            build_ms,
            "proposing"
        );
        let block = Block::new(header, executed.included, executed.outcomes);
        self.remember_writes(block.digest(), height, executed.written);
        self.remember_changes(block.digest(), height, executed.changes);
        Some(Proposed {
            block,
            merkleized: executed.merkleized,
        })
    }

    async fn process(
        &mut self,
        (mut context, _consensus): (E, BlockContext),
        ancestry: impl Ancestry<Block>,
        batches: Unmerkleized<E>,
        finality: Finality,
    ) -> Option<Merkleized<E>> {
        let mut ancestry = ancestry;
        let block = ancestry.next().await?;
        let block = block.inner();
        let parent = ancestry.next().await?;
        let parent = parent.inner();
        // From here: checking and executing, not waiting for the parent to arrive.
        let started = context.current();
        if finality == Finality::Candidate
            && let Err(reason) = check_candidate(
                block,
                parent,
                self.genesis.chain_id,
                now_ms(&context),
                Some(&self.mempool),
                &mut context,
            )
        {
            warn!(height = block.number(), %reason, "rejecting block");
            return None;
        }
        let height = block.number();
        let block_info = BlockInfo {
            height,
            timestamp_ms: block.header.timestamp_ms,
        };
        let executed = match execute::execute_block(
            batches,
            block_info,
            block.txs.clone(),
            self.rules(),
            Mode::Verify,
        )
        .await
        {
            Ok(executed) => executed,
            Err(error) => {
                warn!(height, %error, "rejecting block");
                return None;
            }
        };
        let expected = header_for(
            block.header.context.clone(),
            parent,
            block.header.timestamp_ms,
            &executed,
        );
        if expected != block.header || executed.outcomes != *block.outcomes {
            warn!(
                height,
                "rejecting block: header or outcomes do not match execution"
            );
            return None;
        }
        debug!(
            height,
            txs = block.txs.len(),
            verify_ms = elapsed_ms(&context, started),
            ?finality,
            "verified"
        );
        self.mempool
            .mark_in_flight(height, block.txs.iter().map(SignedTx::hash));
        self.remember_writes(block.digest(), height, executed.written);
        self.remember_changes(block.digest(), height, executed.changes);
        Some(executed.merkleized)
    }

    async fn capture(
        &mut self,
        _context: (E, BlockContext),
        block: &Block,
        _batches: &Merkleized<E>,
        _readers: <Databases<E> as DatabaseSet<E>>::Readers,
    ) {
        let changes = self.take_changes(block);
        if changes.is_none() && block.number() > 0 {
            warn!(
                height = block.number(),
                "finalized a block whose shop changes this node does not have"
            );
        }
        self.observer.captured(block, changes.as_deref());
    }

    async fn finalized(
        &mut self,
        (context, _consensus): (E, BlockContext),
        block: &Block,
        _captured: (),
        _readers: <Databases<E> as DatabaseSet<E>>::Readers,
    ) {
        // Admission's cached eligibility results that read what this block wrote are stale.
        let written = self.take_writes(block);
        self.mempool.forget_eligibility(written.as_deref());
        self.pace.finalized(&block.header, now_ms(&context));
        self.observer.finalized(&Arc::new(block.clone()));
    }
}

/// The ed25519 public key type of validators.
pub type ValidatorKey = ed25519::PublicKey;

#[cfg(test)]
mod tests {
    use super::*;

    fn block(height: u64, parent: consort_types::Digest, timestamp_ms: u64) -> Block {
        crate::test_blocks::block(height, parent, timestamp_ms, Vec::new(), Vec::new())
    }

    #[test]
    fn a_proposal_from_the_far_future_or_before_its_parent_is_refused_not_waited_for() {
        let now = 1_800_000_000_000;
        let parent = block(1, [0u8; 32].into(), now - 1_000);
        let check = |timestamp_ms| {
            let child = block(2, parent.digest(), timestamp_ms);
            check_candidate(&child, &parent, 1, now, None, &mut rand::rng())
        };
        assert!(check(now).is_ok());
        assert!(check(now + limits::BLOCK_FUTURE_DRIFT_MS).is_ok());
        let far = check(now + limits::BLOCK_FUTURE_DRIFT_MS + 1).expect_err("far future");
        assert!(far.contains("ahead of this node's clock"), "{far}");
        assert!(check(now - 2_000).is_err(), "before the parent");
    }
}
