//! Validator-set changes on a running network: one simplex engine per epoch.
//!
//! The state machine fixes the committee of epoch `e + 1` in the last block of epoch `e`
//! ([`crate::validators`]). When this node finalizes that block, the orchestrator
//!
//! 1. reads the committee from finalized state and installs its consensus scheme (a signer if
//!    this node is a member, a verifier otherwise) in [`Schemes`], which marshal also uses to
//!    check the epoch's certificates;
//! 2. hands the committee to the p2p layer (`track(e + 1, …)`), which connects new members and
//!    lets removed ones go once older sets age out;
//! 3. starts the simplex engine of epoch `e + 1` on epoch-scoped sub-channels, its floor the
//!    boundary block, and stops the engine of epoch `e`.
//!
//! A node that is behind (it was down, or it just joined) hears consensus messages of a later
//! epoch; it asks the sender for the finalization of its own epoch's last block, processes it,
//! and moves on, epoch by epoch, until it is current. The design follows the per-epoch
//! orchestrator of `commonware-glue`'s threshold reshare, without the DKG: ed25519 committees
//! are read from governance state.

use crate::application::{App, ChainObserver};
pub use crate::pace::Timeouts;
use commonware_consensus::{
    marshal::{core::Mailbox as MarshalMailbox, standard::Deferred, standard::Standard},
    simplex::{
        self,
        config::{ForwardPolicy, SkipPolicy},
        elector::RoundRobin,
        scheme::ed25519::Scheme,
    },
    types::{Epoch, Epocher, FixedEpocher, Height, ViewDelta},
};
use commonware_cryptography::{
    Sha256, Signer as _,
    certificate::{Provider, Scoped},
    ed25519,
};
use commonware_glue::stateful::{self as stateful, db::DatabaseSet as _};
use commonware_macros::select_loop;
use commonware_p2p::{
    Blocker, Receiver, Sender,
    utils::mux::{Builder as _, MuxHandle, Muxer},
};
use commonware_parallel::Sequential;
use commonware_runtime::{Handle, buffer::paged::CacheRef};
use commonware_utils::{NZDuration, NZUsize, channel::mpsc, ordered::Set, vec::NonEmptyVec};
use consort_state::{Runtime, Store};
use consort_types::{Block, CONSENSUS_NAMESPACE, Digest, Genesis, validators::ValidatorSet};
use consort_validators as validators;
use std::{
    collections::BTreeMap,
    num::NonZeroUsize,
    sync::{Arc, Mutex},
    time::Duration,
};
use tracing::{debug, error, info, warn};

const IO_BUFFER: NonZeroUsize = NZUsize!(1 << 16);
const MAILBOX: NonZeroUsize = NZUsize!(1024);

/// The consensus scheme of every epoch this node knows, shared by marshal (which verifies each
/// epoch's certificates with it) and the orchestrator (which runs each epoch's engine with it).
#[derive(Clone, Default)]
pub struct Schemes(Arc<Mutex<BTreeMap<Epoch, Arc<Scheme>>>>);

impl Schemes {
    fn insert(&self, epoch: Epoch, scheme: Scheme) -> Arc<Scheme> {
        let scheme = Arc::new(scheme);
        self.0
            .lock()
            .expect("schemes lock")
            .insert(epoch, scheme.clone());
        scheme
    }

    /// The participants of `epoch`, sorted as consensus indexes them.
    pub fn participants(&self, epoch: Epoch) -> Option<Set<ed25519::PublicKey>> {
        use commonware_cryptography::certificate::Scheme as _;
        self.0
            .lock()
            .expect("schemes lock")
            .get(&epoch)
            .map(|s| s.participants().clone())
    }

    /// The latest epoch with a scheme.
    pub fn latest(&self) -> Option<Epoch> {
        self.0
            .lock()
            .expect("schemes lock")
            .keys()
            .next_back()
            .copied()
    }
}

impl Provider for Schemes {
    type Scope = Epoch;
    type Scheme = Scheme;

    fn scoped(&self, epoch: Epoch) -> Option<Scoped<Scheme>> {
        self.0
            .lock()
            .expect("schemes lock")
            .get(&epoch)
            .cloned()
            .map(Scoped::scheme)
    }
}

/// The consensus scheme `me` runs `committee` with: a signer if a member, else a verifier.
pub fn scheme_for(committee: &ValidatorSet, me: &ed25519::PrivateKey) -> Scheme {
    let participants = participants(committee);
    Scheme::signer(CONSENSUS_NAMESPACE, participants.clone(), me.clone())
        .unwrap_or_else(|| Scheme::verifier(CONSENSUS_NAMESPACE, participants))
}

pub use consort_validators::participants;

/// Forwards the heights of finalized epoch-boundary blocks to the orchestrator, then passes
/// every block on.
pub(crate) struct BoundaryObserver {
    pub(crate) inner: Arc<dyn ChainObserver>,
    pub(crate) genesis: Arc<Genesis>,
    pub(crate) boundaries: mpsc::UnboundedSender<u64>,
}

impl ChainObserver for BoundaryObserver {
    fn finalized(&self, block: &Arc<Block>) {
        let height = block.number();
        if validators::is_boundary(&self.genesis, height) {
            let _ = self.boundaries.send(height);
        }
        self.inner.finalized(block);
    }

    fn captured(&self, block: &Block, changes: Option<&consort_types::changes::Changes>) {
        self.inner.captured(block, changes);
    }
}

/// Hands each epoch's committee to the p2p layer: `track(epoch, committee)`.
pub type PeerTracker = Box<dyn FnMut(u64, &ValidatorSet) + Send + Sync>;

type Application<E> = Deferred<E, Scheme, stateful::Mailbox<E, App>, Block, FixedEpocher>;

struct Active {
    epoch: Epoch,
    handle: Handle<()>,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.handle.abort();
    }
}

/// Everything the orchestrator runs with.
pub(crate) struct Orchestrator<E: Runtime, B> {
    pub(crate) context: E,
    pub(crate) signer: ed25519::PrivateKey,
    pub(crate) genesis: Arc<Genesis>,
    pub(crate) genesis_digest: Digest,
    pub(crate) schemes: Schemes,
    pub(crate) marshal: MarshalMailbox<Scheme, Standard<Block>>,
    pub(crate) stateful: stateful::Mailbox<E, App>,
    pub(crate) application: Application<E>,
    pub(crate) blocker: B,
    pub(crate) tracker: PeerTracker,
    pub(crate) boundaries: mpsc::UnboundedReceiver<u64>,
    pub(crate) prefix: String,
    pub(crate) page_cache: CacheRef,
}

struct Channels<S: Sender> {
    votes: MuxHandle<S>,
    votes_backup: mpsc::Receiver<(u64, commonware_p2p::Message<ed25519::PublicKey>)>,
    certificates: MuxHandle<S>,
    certificates_backup: mpsc::Receiver<(u64, commonware_p2p::Message<ed25519::PublicKey>)>,
    resolver: MuxHandle<S>,
}

impl<E, B> Orchestrator<E, B>
where
    E: Runtime + commonware_runtime::Storage,
    B: Blocker<PublicKey = ed25519::PublicKey> + Clone,
{
    /// Start on the consensus channels; returns the orchestrator's task.
    pub(crate) fn start<S, R>(
        self,
        votes: (S, R),
        certificates: (S, R),
        resolver: (S, R),
    ) -> Handle<()>
    where
        S: Sender<PublicKey = ed25519::PublicKey>,
        R: Receiver<PublicKey = ed25519::PublicKey>,
    {
        let context = self.context.child("orchestrator");
        context.spawn(move |context| {
            // Everything the orchestrator starts descends from its task: aborting it stops all.
            let mut this = self;
            this.context = context;
            this.run(votes, certificates, resolver)
        })
    }

    async fn run<S, R>(mut self, votes: (S, R), certificates: (S, R), resolver: (S, R))
    where
        S: Sender<PublicKey = ed25519::PublicKey>,
        R: Receiver<PublicKey = ed25519::PublicKey>,
    {
        let (mux, votes, votes_backup) =
            Muxer::builder(self.context.child("votes_mux"), votes.0, votes.1)
                .with_backup()
                .build();
        mux.start();
        let (mux, certificates, certificates_backup) = Muxer::builder(
            self.context.child("certificates_mux"),
            certificates.0,
            certificates.1,
        )
        .with_backup()
        .build();
        mux.start();
        let (mux, resolver) =
            Muxer::new(self.context.child("resolver_mux"), resolver.0, resolver.1);
        mux.start();
        let mut channels = Channels {
            votes,
            votes_backup,
            certificates,
            certificates_backup,
            resolver,
        };
        let epocher = validators::epocher(&self.genesis);

        // Resume where marshal stopped: the epoch of the next height to finalize. Every
        // earlier epoch's scheme is installed so marshal can still verify its certificates.
        let processed = self
            .marshal
            .get_processed()
            .await
            .map_or(0, |p| p.height().get());
        let current = validators::epoch_of(&self.genesis, processed + 1);
        for epoch in 0..current.get() {
            let Some(committee) = self.committee(Epoch::new(epoch)).await else {
                return;
            };
            self.schemes
                .insert(Epoch::new(epoch), scheme_for(&committee, &self.signer));
        }
        let Some(mut active) = self.enter(current, &epocher, &mut channels).await else {
            error!(
                epoch = current.get(),
                "cannot enter the current epoch: this node stops voting; restart it"
            );
            return;
        };
        // Journals of epochs before the previous one are never reopened: a restarted node
        // resumes in the epoch after its last processed block.
        self.prune_before(current.get().saturating_sub(1)).await;
        select_loop! {
            self.context,
            on_stopped => {
                debug!("orchestrator stopping");
            },
            Some((epoch, (from, _))) = channels.votes_backup.recv() else break => {
                self.catch_up(&epocher, active.epoch, epoch, from);
            },
            Some((epoch, (from, _))) = channels.certificates_backup.recv() else break => {
                self.catch_up(&epocher, active.epoch, epoch, from);
            },
            Some(height) = self.boundaries.recv() else break => {
                let last = epocher.last(active.epoch).map_or(u64::MAX, Height::get);
                if height != last {
                    // A boundary replayed at startup, before the epoch already entered.
                    continue;
                }
                let next = active.epoch.next();
                let Some(entered) = self.enter(next, &epocher, &mut channels).await else {
                    error!(
                        epoch = next.get(),
                        "cannot enter the next epoch: this node stops voting; restart it"
                    );
                    break;
                };
                // Dropping the old epoch stops its engine; its journal goes an epoch later.
                active = entered;
                self.prune_before(active.epoch.get().saturating_sub(1)).await;
            },
        }
    }

    /// A message of a later epoch: ask its sender for the finalization of our epoch's last
    /// block, so marshal can process it and we can move on.
    fn catch_up(&self, epocher: &FixedEpocher, ours: Epoch, theirs: u64, from: ed25519::PublicKey) {
        if theirs <= ours.get() {
            return;
        }
        let Some(last) = epocher.last(ours) else {
            return;
        };
        debug!(
            ours = ours.get(),
            theirs, "behind: fetching the boundary finalization"
        );
        self.marshal.hint_finalized(last, NonEmptyVec::new(from));
    }

    /// Where `epoch`'s simplex engine journals its votes.
    fn journal_partition(&self, epoch: Epoch) -> String {
        journal_partition(&self.prefix, epoch.get())
    }

    /// Delete the simplex journals of the epochs before `below`.
    fn prune_before(&self, below: u64) -> impl Future<Output = ()> + Send + 'static {
        prune_journals(self.context.child("prune"), self.prefix.clone(), below)
    }

    /// The committee of `epoch` from finalized state.
    fn committee(
        &self,
        epoch: Epoch,
    ) -> impl Future<Output = Option<ValidatorSet>> + Send + 'static {
        read_committee(
            self.context.child("committee"),
            self.stateful.clone(),
            self.genesis.clone(),
            epoch,
        )
    }

    /// Install `epoch`'s scheme and peers and start its engine.
    async fn enter<S: Sender<PublicKey = ed25519::PublicKey>>(
        &mut self,
        epoch: Epoch,
        epocher: &FixedEpocher,
        channels: &mut Channels<S>,
    ) -> Option<Active> {
        let committee = self.committee(epoch).await?;
        let scheme = self
            .schemes
            .insert(epoch, scheme_for(&committee, &self.signer));
        (self.tracker)(epoch.get(), &committee);
        let floor = match epoch.previous().and_then(|e| epocher.last(e)) {
            None => self.genesis_digest,
            Some(boundary) => self.marshal.get_info(boundary).await?.1,
        };
        let timeouts = Timeouts::for_interval(self.genesis.empty_block_interval_ms());
        let engine = simplex::Engine::new(
            self.context.child("simplex").with_attribute("epoch", epoch),
            simplex::Config {
                scheme: scheme.as_ref().clone(),
                elector: RoundRobin::<Sha256>::default(),
                blocker: self.blocker.clone(),
                automaton: self.application.clone(),
                relay: self.application.clone(),
                reporter: self.application.clone(),
                strategy: Sequential,
                partition: self.journal_partition(epoch),
                mailbox_size: MAILBOX,
                epoch,
                floor: simplex::config::Floor::Genesis(floor),
                replay_buffer: IO_BUFFER,
                write_buffer: IO_BUFFER,
                page_cache: self.page_cache.clone(),
                leader_timeout: timeouts.leader,
                certification_timeout: timeouts.certification,
                timeout_retry: Duration::from_secs(1),
                view_retention: ViewDelta::new(1024),
                skip: SkipPolicy::Enabled {
                    timeout: timeouts.skip,
                    budget: simplex::SkipBudget::Participants,
                },
                fetch_timeout: NZDuration!(Duration::from_secs(2)),
                fetch_retry_delay: Duration::from_millis(500),
                forward: ForwardPolicy::Disabled,
                track_historical_votes: false,
            },
        );
        let votes = channels.votes.register(epoch.get()).await.ok()?;
        let certificates = channels.certificates.register(epoch.get()).await.ok()?;
        let resolver = channels.resolver.register(epoch.get()).await.ok()?;
        let handle = engine.start(votes, certificates, resolver);
        let member = committee.contains(&consort_types::AccountId::new(self.signer.public_key()));
        info!(
            epoch = epoch.get(),
            validators = committee.members.0.len(),
            member,
            "entered epoch"
        );
        Some(Active { epoch, handle })
    }
}

/// The committee of `epoch` from finalized state (written by the boundary block, which this
/// node has processed; the read retries while the state catches up).
async fn read_committee<E: Runtime>(
    context: E,
    stateful: stateful::Mailbox<E, App>,
    genesis: Arc<Genesis>,
    epoch: Epoch,
) -> Option<ValidatorSet> {
    for attempt in 0u32.. {
        let databases = stateful.subscribe_databases().await;
        let batch = databases.new_batches().await;
        match validators::committee(&mut Store::new(&batch), &genesis, epoch.get()).await {
            Ok(Some(committee)) => return Some(committee),
            Ok(None) if attempt < 600 => {
                context.sleep(Duration::from_millis(50)).await;
            }
            Ok(None) => {
                warn!(
                    epoch = epoch.get(),
                    "committee missing from finalized state"
                );
                return None;
            }
            // A block applied during the read: read again from a fresh snapshot.
            Err(consort_execution::BlockError::StaleRead) if attempt < 600 => {}
            Err(error) => {
                warn!(epoch = epoch.get(), %error, "cannot read the committee");
                return None;
            }
        }
    }
    None
}

/// Where the simplex engine of `epoch` journals its votes.
fn journal_partition(prefix: &str, epoch: u64) -> String {
    format!("{prefix}-simplex-epoch-{epoch}")
}

/// Delete the simplex journals of the epochs before `below`, oldest first, so the journals
/// left (even after a crash midway) are always the newest ones, without gaps. A restarted node
/// resumes in the epoch after its last processed block, so older journals are never reopened.
async fn prune_journals<E: Runtime + commonware_runtime::Storage>(
    context: E,
    prefix: String,
    below: u64,
) {
    let mut oldest = below;
    while oldest > 0
        && context
            .scan(&journal_partition(&prefix, oldest - 1))
            .await
            .is_ok()
    {
        oldest -= 1;
    }
    for epoch in oldest..below {
        match context
            .remove(&journal_partition(&prefix, epoch), None)
            .await
        {
            Ok(()) => debug!(epoch, "deleted an old epoch's consensus journal"),
            Err(error) => {
                warn!(epoch, %error, "cannot delete an old epoch's consensus journal");
                return;
            }
        }
    }
}
