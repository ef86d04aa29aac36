//! A Byzantine validator for simulations. It runs the real validator stack, but its outgoing
//! votes are two-faced: for every notarize and finalize it signs, it signs a conflicting twin
//! for another digest in the same view with the same ed25519 simplex key, tells the truth to one
//! peer and sends the twin to the others. In a view it leads, its notarize is its proposal, so
//! it proposes two different blocks for one view.

use crate::sim::{Chain, State};
use commonware_actor::{Feedback, Unreliable};
use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_consensus::{
    Viewable as _,
    simplex::{
        elector::{Config as _, Elector as _, RoundRobin, RoundRobinElector},
        scheme::ed25519::Scheme,
        types::{Finalize, Notarize, Proposal, Vote},
    },
    types::{Participant, View},
};
use commonware_cryptography::{Hasher as _, Sha256, Signer as _, ed25519};
use commonware_glue::simulate::{
    engine::{EngineDefinition, InitContext},
    processed::ProcessedHeight,
};
use commonware_p2p::{CheckedSender, LimitedSender, Recipients, Sender as _};
use commonware_runtime::{Handle, IoBufs, Quota};
use commonware_utils::ordered::Quorum as _;
use consort_chain::validator::{self, Channels};
use consort_types::{CONSENSUS_NAMESPACE, Digest};
use std::{
    collections::BTreeSet,
    sync::{Arc, Mutex},
    time::SystemTime,
};

/// The views in which the Byzantine validator sent two different signed votes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Views with two notarizes for different digests.
    pub notarized: BTreeSet<View>,
    /// Views with two finalizes for different digests.
    pub finalized: BTreeSet<View>,
    /// Views it led, so the two notarizes were two proposals.
    pub proposed: BTreeSet<View>,
}

/// Signs the conflicting twins of one validator's votes.
struct Equivocation {
    scheme: Scheme,
    me: Participant,
    elector: RoundRobinElector<Scheme>,
    evidence: Arc<Mutex<Evidence>>,
}

impl Equivocation {
    fn new(chain: &Chain, signer: ed25519::PrivateKey, evidence: Arc<Mutex<Evidence>>) -> Self {
        let participants = validator::participants(&chain.genesis);
        let me = participants
            .index(&signer.public_key())
            .expect("the equivocator is a genesis validator");
        // The elector honest validators use, to know which views the equivocator leads.
        let elector = RoundRobin::<Sha256>::default().build(&participants);
        let scheme = Scheme::signer(CONSENSUS_NAMESPACE, participants, signer)
            .expect("the equivocator is a genesis validator");
        Self {
            scheme,
            me,
            elector,
            evidence,
        }
    }

    /// The view of an outgoing vote and its signed, encoded twin; `None` for a nullify, which
    /// carries no digest to contradict.
    fn twin(&self, message: &IoBufs) -> Option<(View, IoBufs)> {
        // Consensus channels carry each epoch's messages behind the epoch's subchannel prefix.
        let (epoch, vote) = commonware_p2p::utils::mux::parse(message.clone().coalesce())
            .expect("the validator's own message carries its epoch");
        let vote = Vote::<Scheme, Digest>::decode(vote).expect("the validator's own vote decodes");
        let prefixed = |twin: Vote<Scheme, Digest>| -> IoBufs {
            let mut bytes = commonware_codec::varint::UInt(epoch).encode().to_vec();
            bytes.extend_from_slice(&twin.encode());
            bytes.into()
        };
        let mut evidence = self.evidence.lock().expect("evidence lock");
        match vote {
            Vote::Notarize(notarize) => {
                let view = notarize.view();
                if self.elector.elect(notarize.round(), ()) == self.me {
                    evidence.proposed.insert(view);
                }
                evidence.notarized.insert(view);
                let twin = Notarize::sign(&self.scheme, conflicting(&notarize.proposal))
                    .expect("the equivocator signs");
                Some((view, prefixed(Vote::Notarize(twin))))
            }
            Vote::Finalize(finalize) => {
                let view = finalize.view();
                evidence.finalized.insert(view);
                let twin = Finalize::sign(&self.scheme, conflicting(&finalize.proposal))
                    .expect("the equivocator signs");
                Some((view, prefixed(Vote::Finalize(twin))))
            }
            Vote::Nullify(_) => None,
        }
    }
}

/// The same round and parent with another payload. Derived from the real payload, so a vote the
/// engine re-sends gets the same twin: a fresh twin per retry would show each peer two votes and
/// get the equivocator caught and blocked at once.
fn conflicting(proposal: &Proposal<Digest>) -> Proposal<Digest> {
    let payload = Sha256::hash(&[proposal.payload.as_ref(), b"twin"]);
    Proposal::new(proposal.round, proposal.parent, payload)
}

/// A channel sender that equivocates when given an [`Equivocation`] and passes through
/// otherwise (every channel of a validator must have the same type).
#[derive(Clone)]
pub struct TwoFaced<S> {
    inner: S,
    spare: S,
    equivocation: Option<Arc<Equivocation>>,
}

impl<S: LimitedSender> LimitedSender for TwoFaced<S> {
    type PublicKey = S::PublicKey;
    type Checked<'a>
        = Checked<'a, S>
    where
        Self: 'a;

    fn check(
        &mut self,
        recipients: Recipients<Self::PublicKey>,
    ) -> Result<Self::Checked<'_>, SystemTime> {
        Ok(Checked {
            inner: self.inner.check(recipients)?,
            spare: &mut self.spare,
            equivocation: self.equivocation.as_deref(),
        })
    }
}

/// A checked send of [`TwoFaced`].
pub struct Checked<'a, S: LimitedSender + 'a> {
    inner: S::Checked<'a>,
    spare: &'a mut S,
    equivocation: Option<&'a Equivocation>,
}

impl<S: LimitedSender> CheckedSender for Checked<'_, S> {
    type PublicKey = S::PublicKey;

    fn recipients(&self) -> Vec<Self::PublicKey> {
        self.inner.recipients()
    }

    fn send(self, message: impl Into<IoBufs> + Send, priority: bool) -> Unreliable<Feedback> {
        let message = message.into();
        let mut recipients = self.inner.recipients();
        let twin = match self.equivocation {
            Some(equivocation) if recipients.len() > 1 => equivocation.twin(&message),
            _ => None,
        };
        let Some((view, twin)) = twin else {
            return self.inner.send(message, priority);
        };
        // One peer, rotating with the view, hears the truth; the rest hear the twin. No peer
        // hears both, so no single peer holds proof of the equivocation.
        recipients.sort();
        let len = u64::try_from(recipients.len()).expect("few recipients");
        let told_truth = recipients
            .remove(usize::try_from(view.get() % len).expect("an index below the recipient count"));
        self.spare
            .send(Recipients::Some(recipients), twin, priority);
        match self.spare.check(Recipients::One(told_truth)) {
            Ok(checked) => checked.send(message, priority),
            Err(_) => Unreliable::Rejected,
        }
    }
}

/// A validator as the harness sees it: its state and whether it is the honest kind.
pub struct Member {
    /// The validator's mailboxes.
    pub state: State,
    /// False for the equivocator.
    pub honest: bool,
}

impl ProcessedHeight for Member {
    async fn processed_height(&self) -> u64 {
        self.state.processed_height().await
    }
}

/// The scenario's validators, one of them (`equivocator`) sending two-faced votes.
#[derive(Clone)]
pub struct WithEquivocator {
    /// The honest scenario.
    pub chain: Chain,
    /// The Byzantine validator.
    pub equivocator: ed25519::PublicKey,
    /// What the equivocator did, for the test to check that it did it.
    pub evidence: Arc<Mutex<Evidence>>,
}

impl EngineDefinition for WithEquivocator {
    type PublicKey = ed25519::PublicKey;
    type Engine = Handle<()>;
    type State = Member;

    fn participants(&self) -> Vec<ed25519::PublicKey> {
        self.chain.participants()
    }

    fn channels(&self) -> Vec<(u64, Quota)> {
        self.chain.channels()
    }

    fn max_message_size(&self) -> u32 {
        self.chain.max_message_size()
    }

    async fn init(&self, ctx: InitContext<'_, ed25519::PublicKey>) -> (Handle<()>, Member) {
        let honest = ctx.public_key != &self.equivocator;
        let equivocation = (!honest).then(|| {
            let signer = self.chain.signer(ctx.public_key);
            Arc::new(Equivocation::new(
                &self.chain,
                signer,
                self.evidence.clone(),
            ))
        });
        let pairs = ctx
            .channels
            .into_iter()
            .zip(validator::channel::CONSENSUS)
            .map(|((sender, receiver), channel)| {
                let equivocation = equivocation
                    .clone()
                    .filter(|_| channel == validator::channel::VOTES);
                let sender = TwoFaced {
                    spare: sender.clone(),
                    inner: sender,
                    equivocation,
                };
                (sender, receiver)
            });
        let (engine, state) = self
            .chain
            .start_validator(
                ctx.context,
                ctx.index,
                ctx.public_key,
                ctx.oracle,
                Channels::from_ordered(pairs),
                ctx.monitor,
            )
            .await;
        (engine, Member { state, honest })
    }

    fn start(engine: Handle<()>) -> Handle<()> {
        engine
    }
}
