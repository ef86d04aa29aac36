//! Validator-set changes on a running network, decided by governance and taking effect at epoch
//! boundaries: five validators of the real stack on the deterministic runtime and simulated
//! network, with a fixed seed.

use crate::sim;
use commonware_consensus::{
    simplex::{
        scheme::ed25519::Scheme,
        types::{Finalize, Proposal},
    },
    types::{Epoch, Height},
};
use commonware_cryptography::{Signer as _, certificate::Provider as _, ed25519};
use commonware_p2p::{Manager as _, simulated};
use commonware_runtime::{Clock as _, Handle, Quota, Runner as _, Supervisor as _, deterministic};
use commonware_utils::{NZU32, NZUsize};
use consort_chain::{
    Mempool,
    application::NoObserver,
    epochs::{self, Schemes},
    validator::{self, Channels, StatefulMailbox},
};
use consort_types::{
    Account, AccountId, Amount, CONSENSUS_NAMESPACE, Call, Digest, Genesis, SignedTx, Tx,
    gov::{Action, GenesisOrg, GovernanceConfig, Mode, OrgKind},
    state_key,
    validators::ValidatorSet,
};
use std::{sync::Arc, time::Duration};

const EPOCH_BLOCKS: u64 = 20;
const JOINER: u64 = 4;

type Oracle = simulated::Oracle<ed25519::PublicKey, deterministic::Context>;

fn key(i: u64) -> ed25519::PublicKey {
    sim::validator_key(i).public_key()
}

fn id(i: u64) -> AccountId {
    AccountId::new(key(i))
}

/// Four validators and four organisations (platform, shop, bank, reg administered by users
/// 0..4), epochs of 20 blocks.
fn genesis() -> Genesis {
    let mut genesis = sim::genesis(4);
    let org = |name: &str, kind, admin| GenesisOrg {
        id: name.parse().expect("org id"),
        kind,
        admins: vec![sim::user(admin)],
    };
    genesis.governance = Some(GovernanceConfig {
        mode: Mode::Consortium,
        organisations: vec![
            org("platform", OrgKind::Operator, 0),
            org("shop", OrgKind::Seller, 1),
            org("bank", OrgKind::Bank, 2),
            org("reg", OrgKind::Regulator, 3),
        ],
        registrar: "platform".parse().expect("org id"),
        vote_period_blocks: 1_000,
        alert_threshold: None,
        customers: Vec::new(),
        rotation_delay_blocks: None,
    });
    genesis.epoch_blocks = Some(EPOCH_BLOCKS);
    genesis
}

fn tx(user: u64, nonce: u64, call: Call) -> SignedTx {
    Tx {
        chain_id: sim::CHAIN_ID,
        sender: sim::user(user),
        nonce,
        call,
    }
    .sign(&sim::user_key(user))
}

struct Node {
    mempool: Mempool,
    marshal: commonware_consensus::marshal::core::Mailbox<
        Scheme,
        commonware_consensus::marshal::standard::Standard<consort_types::Block>,
    >,
    stateful: StatefulMailbox<deterministic::Context>,
    schemes: Schemes,
    consensus: Handle<()>,
}

impl Node {
    async fn height(&self) -> u64 {
        self.marshal
            .get_processed()
            .await
            .map_or(0, |p| p.height().get())
    }

    async fn committee(&self, epoch: u64) -> Option<ValidatorSet> {
        use commonware_glue::stateful::db::DatabaseSet as _;
        let databases = self.stateful.subscribe_databases().await;
        let batch = databases.new_batches().await;
        consort_state::Store::new(&batch)
            .get(&state_key::validators::committee(epoch))
            .await
            .expect("state reads")
    }

    fn submit(&self, txs: &[SignedTx]) {
        for tx in txs {
            let funded = Account {
                balance: Amount::new(sim::FUNDING),
                nonce: 0,
            };
            let _ = self.mempool.admit(tx.clone(), Some(funded), false);
        }
    }
}

async fn start(
    context: &deterministic::Context,
    oracle: &Oracle,
    genesis: &Arc<Genesis>,
    i: u64,
) -> Node {
    let control = oracle.control(key(i));
    let mut pairs = Vec::new();
    for channel in validator::channel::CONSENSUS {
        pairs.push(
            control
                .register(channel, Quota::per_second(NZU32!(100_000)))
                .await
                .expect("register channel"),
        );
    }
    let mut manager = oracle.manager();
    let mempool = Mempool::new();
    let running = validator::start(
        context.child("validator").with_attribute("index", i),
        validator::Config {
            genesis: genesis.clone(),
            signer: sim::validator_key(i),
            partition_prefix: format!("validator-{i}"),
            mempool: mempool.clone(),
            observer: Arc::new(NoObserver),
            tracker: Box::new(move |epoch, committee| {
                let _ = manager.track(epoch, epochs::participants(committee));
            }),
            page_cache_mib: validator::PAGE_CACHE_MIB_MIN,
        },
        Channels::from_ordered(pairs.into_iter()),
        oracle.manager(),
        oracle.control(key(i)),
        |inner| inner,
    )
    .await;
    Node {
        mempool,
        marshal: running.marshal,
        stateful: running.stateful,
        schemes: running.schemes,
        consensus: running.engine,
    }
}

/// Cut validator `i` off: its consensus stops and no message reaches or leaves it.
async fn isolate(oracle: &Oracle, nodes: &[Node], i: u64) {
    nodes[i as usize].consensus.abort();
    for j in 0..nodes.len() as u64 {
        if j != i {
            let _ = oracle.remove_link(key(i), key(j)).await;
            let _ = oracle.remove_link(key(j), key(i)).await;
        }
    }
}

/// Wait until every node in `live` processed `height`.
async fn wait_height(context: &deterministic::Context, nodes: &[Node], live: &[u64], height: u64) {
    loop {
        let mut lowest = u64::MAX;
        for i in live {
            lowest = lowest.min(nodes[*i as usize].height().await);
        }
        if lowest >= height {
            return;
        }
        context.sleep(Duration::from_millis(500)).await;
    }
}

/// The first epoch whose committee satisfies `wanted`, as node `i` finalized it.
async fn wait_committee(
    context: &deterministic::Context,
    node: &Node,
    wanted: impl Fn(&ValidatorSet) -> bool,
) -> u64 {
    let mut epoch = 1;
    loop {
        match node.committee(epoch).await {
            Some(committee) if wanted(&committee) => return epoch,
            Some(_) => epoch += 1,
            None => context.sleep(Duration::from_millis(500)).await,
        }
    }
}

/// The leaders of the finalized blocks in heights `from..to` as node `node` holds them.
async fn leaders(node: &Node, from: u64, to: u64) -> Vec<ed25519::PublicKey> {
    let mut leaders = Vec::new();
    for height in from..to {
        let block = node
            .marshal
            .get_block(Height::new(height))
            .await
            .expect("finalized block");
        leaders.push(block.inner().header.context.leader.clone());
    }
    leaders
}

/// The digests of the finalized blocks at heights `1..=to`.
async fn digests(node: &Node, to: u64) -> Vec<Digest> {
    let mut digests = Vec::new();
    for height in 1..=to {
        let (_, digest) = node
            .marshal
            .get_info(Height::new(height))
            .await
            .expect("finalized block");
        digests.push(digest);
    }
    digests
}

#[test]
fn a_validator_joins_by_vote_and_another_is_removed_on_the_running_network() {
    let runner = deterministic::Runner::new(
        deterministic::Config::new()
            .with_seed(21)
            .with_timeout(Some(Duration::from_secs(3_600))),
    );
    runner.start(|context| async move {
        let genesis = Arc::new(genesis());
        let (network, oracle) = simulated::Network::new(
            context.child("network"),
            simulated::Config {
                max_size: validator::max_message_size(8),
                max_peers_per_set: NZUsize!(8),
                disconnect_on_block: true,
                tracked_peer_sets: NZUsize!(3),
            },
        );
        network.start();
        for a in 0..=JOINER {
            for b in 0..=JOINER {
                if a != b {
                    oracle
                        .add_link(
                            key(a),
                            key(b),
                            simulated::Link {
                                latency: Duration::from_millis(20),
                                jitter: Duration::from_millis(5),
                                success_rate: commonware_utils::probability!(1.0),
                            },
                        )
                        .await
                        .expect("link");
                }
            }
        }
        let mut nodes = Vec::new();
        for i in 0..=JOINER {
            nodes.push(start(&context, &oracle, &genesis, i).await);
        }

        // The platform proposes validator 4; the shop and the bank approve: 3 of 4 members.
        let joiner_address = "127.0.0.1:30004".parse().expect("address");
        let admission = [
            tx(
                0,
                0,
                Call::Propose {
                    action: Action::AddValidator {
                        key: id(JOINER),
                        address: joiner_address,
                    },
                },
            ),
            tx(1, 0, Call::Vote { proposal: 0, approve: true }),
            tx(2, 0, Call::Vote { proposal: 0, approve: true }),
        ];
        for node in &nodes[..4] {
            node.submit(&admission);
        }
        let joined = wait_committee(&context, &nodes[0], |c| c.contains(&id(JOINER))).await;
        assert!(joined >= 1, "the joiner is not in the genesis committee");
        let first_joined = joined * EPOCH_BLOCKS;
        wait_height(&context, &nodes, &[0, 1, 2, 3, 4], first_joined + 5).await;
        // Every node, the joiner included, runs epoch `joined` with five validators.
        for (i, node) in nodes.iter().enumerate() {
            let participants = node
                .schemes
                .participants(Epoch::new(joined))
                .unwrap_or_else(|| panic!("validator {i} entered epoch {joined}"));
            assert_eq!(participants.len(), 5, "validator {i}: five validators");
        }

        // Validator 3 stops. Four of five is a quorum only if the joiner's votes count.
        isolate(&oracle, &nodes, 3).await;
        let cut = nodes[0].height().await;
        wait_height(&context, &nodes, &[0, 1, 2, 4], cut + EPOCH_BLOCKS + 5).await;
        let led = leaders(&nodes[0], first_joined, cut + EPOCH_BLOCKS).await;
        assert!(
            led.contains(&key(JOINER)),
            "the joiner leads views and its blocks finalize"
        );

        // The shop proposes removing validator 0; the bank and the regulator approve.
        let removal = [
            tx(
                1,
                1,
                Call::Propose {
                    action: Action::RemoveValidator { key: id(0) },
                },
            ),
            tx(2, 1, Call::Vote { proposal: 1, approve: true }),
            tx(3, 0, Call::Vote { proposal: 1, approve: true }),
        ];
        for i in [0, 1, 2, 4] {
            nodes[i].submit(&removal);
        }
        let removed = wait_committee(&context, &nodes[1], |c| !c.contains(&id(0))).await;
        let first_removed = removed * EPOCH_BLOCKS;
        wait_height(&context, &nodes, &[0, 1, 2, 4], first_removed + 2).await;
        let committee = nodes[1].committee(removed).await.expect("committee");
        let expected: Vec<AccountId> = [1, 2, 3, JOINER].into_iter().map(id).collect();
        assert_eq!(committee.keys().collect::<Vec<_>>(), expected);

        // Validator 0 goes too. Validators 1, 2 and 4 are three of the four members: a quorum
        // now, but not if validator 0 still counted (four of five needed).
        isolate(&oracle, &nodes, 0).await;
        let cut = nodes[1].height().await;
        wait_height(&context, &nodes, &[1, 2, 4], cut + EPOCH_BLOCKS + 5).await;

        // A vote validator 0 signs for the new epoch does not verify under its committee.
        let scheme = nodes[1]
            .schemes
            .scheme(Epoch::new(removed))
            .expect("the epoch's scheme");
        let finalized = nodes[1]
            .marshal
            .get_finalization(Height::new(first_removed + 1))
            .await
            .expect("finalization in the new epoch");
        let old_committee = nodes[1].schemes.participants(Epoch::new(removed - 1)).expect("old");
        let rogue = Scheme::signer(CONSENSUS_NAMESPACE, old_committee, sim::validator_key(0))
            .expect("validator 0 was a member");
        let proposal: Proposal<Digest> = finalized.proposal.clone();
        assert_eq!(proposal.round.epoch(), Epoch::new(removed));
        let vote = Finalize::<Scheme, Digest>::sign(&rogue, proposal.clone()).expect("signs");
        let mut rng = context.child("verify");
        assert!(
            !vote.verify(&mut rng, &scheme, &commonware_parallel::Sequential),
            "the removed validator's finalize vote is refused"
        );
        // The same vote by a member verifies (the check is not vacuous).
        let member = Scheme::signer(
            CONSENSUS_NAMESPACE,
            nodes[1].schemes.participants(Epoch::new(removed)).expect("new"),
            sim::validator_key(1),
        )
        .expect("validator 1 is a member");
        let honest = Finalize::<Scheme, Digest>::sign(&member, proposal).expect("signs");
        assert!(honest.verify(&mut rng, &scheme, &commonware_parallel::Sequential));

        eprintln!(
            "joined at epoch {joined}, removed at epoch {removed}, joiner led {} of {} blocks, final heights {} {} {}",
            led.iter().filter(|k| **k == key(JOINER)).count(),
            led.len(),
            nodes[1].height().await,
            nodes[2].height().await,
            nodes[4].height().await
        );
        // A light client trusting only genesis follows the committee changes through each
        // epoch's last block and accepts a block of the final epoch; without the boundary
        // where validator 0 left, it cannot.
        use commonware_codec::Encode as _;
        let tip = nodes[1].height().await;
        let last_epoch = tip / EPOCH_BLOCKS;
        let mut boundaries = Vec::new();
        for epoch in 0..last_epoch {
            let height = Height::new((epoch + 1) * EPOCH_BLOCKS - 1);
            let block = nodes[1].marshal.get_block(height).await.expect("boundary");
            let finalization = nodes[1]
                .marshal
                .get_finalization(height)
                .await
                .expect("boundary finalization");
            boundaries.push((
                block.inner().header.encode().to_vec(),
                finalization.encode().to_vec(),
            ));
        }
        let block = nodes[1]
            .marshal
            .get_block(Height::new(tip))
            .await
            .expect("tip");
        let finalization = nodes[1]
            .marshal
            .get_finalization(Height::new(tip))
            .await
            .expect("tip finalization");
        let header = block.inner().header.encode().to_vec();
        let (verified, _) = consort_client::light::verify_header(
            &genesis,
            &header,
            &finalization.encode(),
            &boundaries,
        )
        .expect("the light client follows the committee changes");
        assert_eq!(verified.height.get(), tip);
        let mut stale = boundaries.clone();
        // Claim the last block before the removal named the old committee again.
        let mut forged = nodes[1]
            .marshal
            .get_block(Height::new(removed * EPOCH_BLOCKS - 1))
            .await
            .expect("boundary")
            .inner()
            .header
            .clone();
        forged.next_committee = nodes[1].committee(removed - 1).await;
        stale[removed as usize - 1].0 = forged.encode().to_vec();
        assert!(
            consort_client::light::verify_header(&genesis, &header, &finalization.encode(), &stale)
                .is_err(),
            "a boundary header naming another committee does not match its finalization"
        );

        // The live validators, the joiner included, hold one chain.
        let common = nodes[1].height().await.min(nodes[4].height().await);
        let reference = digests(&nodes[1], common).await;
        for i in [2, 4] {
            assert_eq!(digests(&nodes[i], common).await, reference, "validator {i}");
        }
    });
}
