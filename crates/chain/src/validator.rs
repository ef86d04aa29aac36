//! One validator's stack: marshal (ordered finalized blocks, dissemination, backfill),
//! `glue::stateful` (speculative and finalized QMDB state), and simplex BFT consensus, over any
//! runtime and any p2p implementation (authenticated `lookup` in production, the simulated
//! network in tests).

use crate::{
    application::{App, ChainObserver, genesis_block},
    epochs::{BoundaryObserver, PeerTracker, Schemes},
    mempool::Mempool,
};
use commonware_broadcast::buffered;
use commonware_consensus::{
    Reporter,
    marshal::{
        self,
        core::{Actor as MarshalActor, Mailbox as MarshalMailbox},
        resolver::p2p as marshal_resolver,
        standard::{Deferred, Standard},
    },
    simplex::{self, scheme::ed25519::Scheme},
    types::ViewDelta,
};
use commonware_cryptography::{Digestible, Signer as _, ed25519};
use commonware_glue::stateful::{
    self as stateful, Config as StatefulConfig, PruneConfig, Stateful, SyncPlan,
    db::{SyncEngineConfig, p2p as qmdb_resolver},
};
use commonware_p2p::{Blocker, Provider, Receiver, Sender};
use commonware_parallel::Sequential;
use commonware_runtime::{Handle, buffer::paged::CacheRef};
use commonware_storage::{archive::prunable, mmr, translator::EightCap};
use commonware_utils::{NZDuration, NZU64, NZUsize, ordered::Set};
use consort_state::{self as state, Runtime, StateDb};
use consort_types::{Block, Genesis};
use std::{
    num::{NonZeroU16, NonZeroU64, NonZeroUsize},
    sync::Arc,
    time::Duration,
};

/// Operations per state-sync batch.
pub const SYNC_BATCH_OPS: NonZeroU64 = NZU64!(1024);

const IO_BUFFER: NonZeroUsize = NZUsize!(1 << 16);
const MAILBOX: NonZeroUsize = NZUsize!(1024);

/// The p2p channels a validator speaks on, in this order.
pub mod channel {
    /// Consensus votes.
    pub const VOTES: u64 = 0;
    /// Consensus certificates.
    pub const CERTIFICATES: u64 = 1;
    /// Consensus certificate repair.
    pub const RESOLVER: u64 = 2;
    /// Marshal block backfill.
    pub const BACKFILL: u64 = 3;
    /// Block dissemination.
    pub const BROADCAST: u64 = 4;
    /// State sync.
    pub const STATE_SYNC: u64 = 5;
    /// Transaction gossip.
    pub const TXS: u64 = 6;
    /// Every consensus channel, in the order [`Channels`] takes them.
    pub const CONSENSUS: [u64; 6] = [
        VOTES,
        CERTIFICATES,
        RESOLVER,
        BACKFILL,
        BROADCAST,
        STATE_SYNC,
    ];
}

/// The consensus channels of one validator, one (sender, receiver) pair each.
pub struct Channels<S, R> {
    /// Votes.
    pub votes: (S, R),
    /// Certificates.
    pub certificates: (S, R),
    /// Certificate repair.
    pub resolver: (S, R),
    /// Block backfill.
    pub backfill: (S, R),
    /// Block dissemination.
    pub broadcast: (S, R),
    /// State sync.
    pub state_sync: (S, R),
}

impl<S, R> Channels<S, R> {
    /// Take channels in [`channel::CONSENSUS`] order.
    pub fn from_ordered(mut pairs: impl Iterator<Item = (S, R)>) -> Self {
        let mut next = || pairs.next().expect("six consensus channels");
        Self {
            votes: next(),
            certificates: next(),
            resolver: next(),
            backfill: next(),
            broadcast: next(),
            state_sync: next(),
        }
    }
}

/// The validator set of a genesis, sorted as consensus indexes it.
pub fn participants(genesis: &Genesis) -> Set<ed25519::PublicKey> {
    consort_validators::genesis_participants(genesis)
}

/// How many views of notarized blocks and certificates marshal keeps behind the latest
/// finalization: half an epoch (at least 8, at most 1024). Marshal keeps whole earlier epochs
/// to stand in for the views the current epoch has not reached yet (one per view), so a window
/// longer than an epoch would keep about that many old epochs' caches on disk for ever (≈ 165
/// KB each on the devnet). Peers further behind catch up from the finalized archives.
pub fn marshal_view_retention(genesis: &Genesis) -> ViewDelta {
    ViewDelta::new((genesis.epoch_blocks() / 2).clamp(8, 1024))
}

/// The largest p2p message a validator sends (consensus, blocks, state sync).
pub fn max_message_size(validators: u32) -> u32 {
    use commonware_codec::FixedSize;
    let qmdb = qmdb_resolver::max_payload_size::<mmr::Family, consort_types::Digest>(
        SYNC_BATCH_OPS,
        state::STATE_VALUE_SIZE + consort_types::Digest::SIZE * 2 + 16,
    );
    commonware_p2p::max_message_size(&[
        simplex::max_payload_size::<Scheme, consort_types::Digest>(validators),
        marshal::max_payload_size::<Standard<Block>, Scheme>(validators, &()),
        qmdb,
    ])
}

/// What a running validator exposes to the node around it.
pub struct Running<E: Runtime> {
    /// Finalized blocks and certificates.
    pub marshal: MarshalMailbox<Scheme, Standard<Block>>,
    /// Finalized state.
    pub stateful: stateful::Mailbox<E, App>,
    /// The consensus task (the epoch orchestrator and its engines).
    pub engine: Handle<()>,
    /// The consensus scheme of every epoch this node has entered.
    pub schemes: Schemes,
}

/// How to build one validator.
pub struct Config {
    /// The chain's genesis.
    pub genesis: Arc<Genesis>,
    /// This validator's consensus and p2p key.
    pub signer: ed25519::PrivateKey,
    /// Prefix of every storage partition.
    pub partition_prefix: String,
    /// The node's mempool (proposals draw from it).
    pub mempool: Mempool,
    /// Hears of finalized blocks.
    pub observer: Arc<dyn ChainObserver>,
    /// Hands each epoch's committee to the p2p layer.
    pub tracker: PeerTracker,
    /// MiB of the storage page cache (state, blocks, consensus journals), within
    /// [`PAGE_CACHE_MIB_MIN`]..=[`PAGE_CACHE_MIB_MAX`] (a value outside is taken to the nearer
    /// bound). Allocated when the node starts.
    pub page_cache_mib: u32,
}

/// Bytes of one page of the storage page cache.
pub const PAGE_CACHE_PAGE_SIZE: u16 = 4096;
/// The storage page cache of a node whose config names none. The cache holds the pages most
/// recently written and read (state operations, Merkle nodes, blocks, consensus journals);
/// while the state written since the inactivity floor fits in it, the floor walk of each
/// block's state commit reads from memory, and otherwise from disk (direct reads), whatever
/// the size. Under `consort bench orders`, 256 MiB settled about a tenth more orders per
/// second over 20 s from genesis, but about the same over 60 s: the benefit is a young
/// chain's, so the default stays at the smallest size. Allocated and zeroed when the node
/// starts.
pub const PAGE_CACHE_MIB_DEFAULT: u32 = 32;
/// The smallest storage page cache (what the simulations give each validator).
pub const PAGE_CACHE_MIB_MIN: u32 = 32;
/// The largest storage page cache a node may name (64 GiB).
pub const PAGE_CACHE_MIB_MAX: u32 = 65_536;

/// The page cache for `mib` MiB, taken into the allowed range.
fn page_cache(mib: u32) -> CacheRef {
    let mib = mib.clamp(PAGE_CACHE_MIB_MIN, PAGE_CACHE_MIB_MAX);
    // At most 2^24 pages: no overflow where usize has 32 bits.
    let pages = (mib as usize) * ((1 << 20) / usize::from(PAGE_CACHE_PAGE_SIZE));
    CacheRef::new(
        NonZeroU16::new(PAGE_CACHE_PAGE_SIZE).expect("a page holds bytes"),
        NonZeroUsize::new(pages).expect("at least PAGE_CACHE_MIB_MIN"),
    )
}

fn archive_config<C>(
    prefix: &str,
    name: &str,
    page_cache: CacheRef,
    codec_config: C,
) -> prunable::Config<EightCap, C> {
    prunable::Config {
        translator: EightCap,
        metadata_partition: format!("{prefix}-{name}-metadata"),
        key_partition: format!("{prefix}-{name}-key"),
        key_page_cache: page_cache,
        value_partition: format!("{prefix}-{name}-value"),
        compression: None,
        codec_config,
        items_per_section: NZU64!(4096),
        key_write_buffer: IO_BUFFER,
        value_write_buffer: IO_BUFFER,
        replay_buffer: IO_BUFFER,
    }
}

/// Start one validator. `wrap` may wrap the reporter that receives marshal's finalized blocks
/// (simulations use it to observe progress); production passes it through.
pub async fn start<E, S, R, P, B, W, Rep>(
    context: E,
    config: Config,
    channels: Channels<S, R>,
    peers: P,
    blocker: B,
    wrap: W,
) -> Running<E>
where
    E: Runtime + commonware_runtime::Storage,
    S: Sender<PublicKey = ed25519::PublicKey>,
    R: Receiver<PublicKey = ed25519::PublicKey>,
    P: Provider<PublicKey = ed25519::PublicKey> + Clone,
    B: Blocker<PublicKey = ed25519::PublicKey> + Clone,
    W: FnOnce(stateful::Mailbox<E, App>) -> Rep,
    Rep: Reporter<Activity = marshal::Update<Block>>,
{
    let Config {
        genesis,
        signer,
        partition_prefix: prefix,
        mempool,
        observer,
        tracker,
        page_cache_mib,
    } = config;
    let public_key = signer.public_key();
    let epocher = consort_validators::epocher(&genesis);
    let schemes = Schemes::default();
    let (boundary_sender, boundaries) = commonware_utils::channel::mpsc::unbounded_channel();
    let observer: Arc<dyn ChainObserver> = Arc::new(BoundaryObserver {
        inner: observer,
        genesis: genesis.clone(),
        boundaries: boundary_sender,
    });
    let page_cache = page_cache(page_cache_mib);
    let genesis_block = genesis_block::<E>(&genesis);

    let resolver = marshal_resolver::init(
        context.child("marshal_resolver"),
        marshal_resolver::Config {
            public_key: public_key.clone(),
            peer_provider: peers.clone(),
            blocker: blocker.clone(),
            mailbox_size: MAILBOX,
            fetch_timeout: NZDuration!(Duration::from_secs(2)),
            fetch_retry_delay: Duration::from_millis(100),
            priority_requests: false,
            priority_responses: false,
        },
        channels.backfill,
    );
    let (broadcast_engine, buffer) = buffered::Engine::new(
        context.child("broadcast"),
        buffered::Config {
            public_key: public_key.clone(),
            mailbox_size: MAILBOX,
            deque_size: 16,
            priority: false,
            codec_config: (),
            peer_provider: peers.clone(),
            strategy: Sequential,
        },
    );
    broadcast_engine.start(channels.broadcast);

    let finalizations = prunable::Archive::init(
        context.child("finalizations_by_height"),
        archive_config(
            &prefix,
            "finalizations",
            page_cache.clone(),
            consort_types::limits::VALIDATORS_MAX,
        ),
    )
    .await
    .expect("open the finalizations archive");
    let blocks = prunable::Archive::init(
        context.child("finalized_blocks"),
        archive_config(&prefix, "blocks", page_cache.clone(), ()),
    )
    .await
    .expect("open the blocks archive");

    let plan = SyncPlan::init(context.child("plan"), prefix.clone()).await;
    let (marshal_actor, marshal_mailbox, floor) =
        MarshalActor::<_, Standard<Block>, _, _, _, _, _>::init(
            context.child("marshal"),
            finalizations,
            blocks,
            marshal::Config {
                provider: schemes.clone(),
                epocher: epocher.clone(),
                start: plan.marshal_start(commonware_cryptography::Digested::precomputed(
                    genesis_block.clone(),
                    genesis_block.digest(),
                )),
                partition_prefix: prefix.clone(),
                mailbox_size: MAILBOX,
                view_retention: marshal_view_retention(&genesis),
                prunable_items_per_section: NZU64!(4096),
                page_cache: page_cache.clone(),
                replay_buffer: IO_BUFFER,
                key_write_buffer: IO_BUFFER,
                value_write_buffer: IO_BUFFER,
                block_codec_config: (),
                max_repair: NZUsize!(64),
                max_pending_acks: NZUsize!(16),
                strategy: Sequential,
            },
        )
        .await;

    let (qmdb_resolver_actor, qmdb_sync_resolver) =
        qmdb_resolver::Actor::<_, ed25519::PublicKey, _, _, mmr::Family, StateDb<_>>::new(
            context.child("qmdb_resolver"),
            qmdb_resolver::Config {
                peer_provider: peers.clone(),
                blocker: blocker.clone(),
                database: None,
                mailbox_size: MAILBOX,
                me: Some(public_key.clone()),
                fetch_timeout: NZDuration!(Duration::from_secs(2)),
                fetch_retry_delay: Duration::from_millis(100),
                max_serve_ops: SYNC_BATCH_OPS,
                priority_requests: false,
                priority_responses: false,
            },
        );
    qmdb_resolver_actor.start(channels.state_sync);

    let application = App::new(
        genesis.clone(),
        genesis_block.clone(),
        observer,
        mempool.clone(),
    );
    let (stateful_actor, stateful_mailbox) = Stateful::new(
        context.child("stateful"),
        StatefulConfig {
            application,
            db_config: state::db_config(&prefix, page_cache.clone()),
            provider: mempool,
            marshal: (marshal_mailbox.clone(), floor),
            mailbox_size: MAILBOX,
            plan,
            resolvers: qmdb_sync_resolver,
            sync_config: SyncEngineConfig {
                fetch_batch_size: SYNC_BATCH_OPS,
                apply_batch_size: NZU64!(1024),
                max_outstanding_requests: NZUsize!(8),
            },
            prune_config: Some(PruneConfig {
                maintenance_interval: NZUsize!(256),
                retained_marshal_blocks: usize::MAX / 2,
                retained_qmdb_blocks: 1024,
            }),
            strategy: Sequential,
        },
    );
    let deferred = Deferred::new(
        context.child("deferred"),
        stateful_mailbox.clone(),
        marshal_mailbox.clone(),
        epocher,
    );
    marshal_actor.start(wrap(stateful_mailbox.clone()), buffer, resolver);
    stateful_actor.start();

    let engine = crate::epochs::Orchestrator {
        context: context.child("epochs"),
        signer,
        genesis: genesis.clone(),
        genesis_digest: genesis_block.digest(),
        schemes: schemes.clone(),
        marshal: marshal_mailbox.clone(),
        stateful: stateful_mailbox.clone(),
        application: deferred,
        blocker,
        tracker,
        boundaries,
        prefix,
        page_cache,
    }
    .start(channels.votes, channels.certificates, channels.resolver);
    Running {
        marshal: marshal_mailbox,
        stateful: stateful_mailbox,
        engine,
        schemes,
    }
}

/// The stateful actor's mailbox of a validator.
pub type StatefulMailbox<E> = stateful::Mailbox<E, App>;
