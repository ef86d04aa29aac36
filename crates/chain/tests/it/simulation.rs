//! Consensus and fault tests: N validators of the real stack on the deterministic runtime, with
//! fixed seeds.

use crate::{
    equivocator::{Evidence, Member, WithEquivocator},
    sim::{self, Chain, State},
};
use commonware_consensus::types::Height;
use commonware_glue::simulate::processed::ProcessedHeight as _;
use commonware_glue::simulate::{
    action::{Action, Crash, Schedule},
    plan::PlanBuilder,
    property::{FinalizationProperty, Property},
    tracker::ProgressTracker,
};
use commonware_p2p::simulated::Link;
use commonware_runtime::Clock;
use commonware_utils::probability;
use consort_types::{Account, AccountId};
use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, UNIX_EPOCH},
};

type Key = commonware_cryptography::ed25519::PublicKey;

#[derive(Clone)]
/// Every live validator holds exactly the balances the transfers should produce.
struct BalancesMatch(Vec<(AccountId, Account)>);

impl Property<Key, State> for BalancesMatch {
    fn name(&self) -> &str {
        "balances_match"
    }

    fn check<'a>(
        &'a self,
        _tracker: &'a ProgressTracker<Key>,
        states: &'a [&'a State],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            for (v, state) in states.iter().enumerate() {
                balances_match(state, &self.0)
                    .await
                    .map_err(|e| format!("validator {v}: {e}"))?;
            }
            Ok(())
        })
    }
}

async fn balances_match(state: &State, expected: &[(AccountId, Account)]) -> Result<(), String> {
    for (id, expected) in expected {
        let got = state.account(id).await;
        if got != Some(*expected) {
            return Err(format!("account {id} is {got:?}, expected {expected:?}"));
        }
    }
    Ok(())
}

#[derive(Clone)]
/// The honest validators each finalized at least `heights_min` blocks, hold the same block digest
/// at every height they all finalized, and hold the balances the transfers should produce.
struct HonestValidatorsAgree {
    honest: usize,
    heights_min: u64,
    balances: Vec<(AccountId, Account)>,
}

impl Property<Key, Member> for HonestValidatorsAgree {
    fn name(&self) -> &str {
        "honest_validators_agree"
    }

    fn check<'a>(
        &'a self,
        _tracker: &'a ProgressTracker<Key>,
        members: &'a [&'a Member],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let honest: Vec<&State> = members
                .iter()
                .filter(|m| m.honest)
                .map(|m| &m.state)
                .collect();
            if honest.len() != self.honest {
                return Err(format!("{} honest validators ran", honest.len()));
            }
            let mut common = u64::MAX;
            for state in &honest {
                common = common.min(state.processed_height().await);
            }
            if common < self.heights_min {
                return Err(format!(
                    "every honest validator finalized only {common} blocks, expected {}",
                    self.heights_min
                ));
            }
            for height in 1..=common {
                let mut digests = Vec::with_capacity(honest.len());
                for state in &honest {
                    let (_, digest) = state
                        .marshal
                        .get_info(Height::new(height))
                        .await
                        .ok_or_else(|| format!("no finalized block at height {height}"))?;
                    digests.push(digest);
                }
                if digests.windows(2).any(|pair| pair[0] != pair[1]) {
                    return Err(format!("fork at height {height}: {digests:?}"));
                }
            }
            for (v, state) in honest.iter().enumerate() {
                balances_match(state, &self.balances)
                    .await
                    .map_err(|e| format!("honest validator {v}: {e}"))?;
            }
            Ok(())
        })
    }
}

#[derive(Clone)]
/// No finalization happens inside a time window (seconds since the simulation started).
struct NoFinalizationBetween(u64, u64);

impl FinalizationProperty<State> for NoFinalizationBetween {
    fn name(&self) -> &str {
        "no_finalization_during_partition"
    }

    fn check<'a>(
        &'a self,
        states: &'a [&'a State],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let Some(state) = states.first() else {
                return Ok(());
            };
            let now = state
                .clock
                .lock()
                .expect("clock")
                .current()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            if now > Duration::from_secs(self.0) && now < Duration::from_secs(self.1) {
                return Err(format!(
                    "a block was finalized at {now:?}, inside the partition"
                ));
            }
            Ok(())
        })
    }
}

/// Exit once `count` validators finalized `view` (a crashed validator cannot count).
#[derive(Clone)]
struct QuorumReached {
    count: usize,
    view: u64,
}

impl commonware_glue::simulate::exit::ExitCondition<Key, State> for QuorumReached {
    fn name(&self) -> &str {
        "quorum_reached"
    }

    fn reached<'a>(
        &'a self,
        tracker: &'a ProgressTracker<Key>,
        _states: &'a [&'a State],
        _target: usize,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move { Ok(tracker.all_reached(self.count, self.view)) })
    }
}

/// Exit once every running validator processed `0` blocks (views restart in every epoch, so
/// progress across epochs is measured in heights).
#[derive(Clone)]
struct HeightReached(u64);

impl commonware_glue::simulate::exit::ExitCondition<Key, State> for HeightReached {
    fn name(&self) -> &str {
        "height_reached"
    }

    fn reached<'a>(
        &'a self,
        _tracker: &'a ProgressTracker<Key>,
        states: &'a [&'a State],
        _target: usize,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            for state in states {
                if state.processed_height().await < self.0 {
                    return Ok(false);
                }
            }
            Ok(!states.is_empty())
        })
    }
}

/// Every validator keeps the consensus journals of its current and previous epochs only:
/// older ones were deleted as it moved on (or when it restarted).
#[derive(Clone)]
struct OldJournalsDeleted {
    epoch_blocks: u64,
}

impl Property<Key, State> for OldJournalsDeleted {
    fn name(&self) -> &str {
        "old_journals_deleted"
    }

    fn check<'a>(
        &'a self,
        _tracker: &'a ProgressTracker<Key>,
        states: &'a [&'a State],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        use commonware_runtime::{Storage as _, Supervisor as _};
        Box::pin(async move {
            for state in states {
                let context = state.clock.lock().expect("clock").child("journals");
                // The epoch of the next height; the orchestrator is in it or, if it has not
                // yet heard of the boundary, in the one before.
                let current = (state.processed_height().await + 1) / self.epoch_blocks;
                let mut recent = 0;
                for epoch in 0..=current {
                    let partition = format!("{}-simplex-epoch-{epoch}", state.prefix);
                    let kept = context.scan(&partition).await.is_ok();
                    if epoch + 2 < current && kept {
                        return Err(format!(
                            "{}: epoch {epoch}'s journal is still there in epoch {current}",
                            state.prefix
                        ));
                    }
                    recent += usize::from(kept);
                }
                if recent == 0 {
                    return Err(format!("{}: no consensus journal at all", state.prefix));
                }
            }
            Ok(())
        })
    }
}

fn link(success_percent: u64) -> Link {
    Link {
        latency: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        success_rate: probability!(success_percent, 100),
    }
}

fn scenario(validators: u64, per_sender: u64) -> (Chain, BalancesMatch) {
    let txs = sim::transfers(per_sender);
    let chain = Chain::new(validators, txs.clone());
    let expected = BalancesMatch(sim::expected_accounts(&chain.genesis, &txs));
    (chain, expected)
}

#[test]
fn four_validators_finalize_transfers_and_agree_on_balances() {
    let run = |seed: u64| {
        let (chain, expected) = scenario(4, 5);
        PlanBuilder::new(chain)
            .seed(seed)
            .required_finalizations(20)
            .timeout(Duration::from_secs(600))
            .property(expected)
            .run()
            .expect("four validators finalize and agree")
            .remove(0)
            .state
    };
    let first = run(1);
    assert_eq!(first, run(1), "a seed replays identically");
    assert_ne!(first, run(2), "another seed is another run");
}

#[test]
fn three_of_four_keep_finalizing_with_one_crashed() {
    let (chain, expected) = scenario(4, 3);
    let crashed = sim::validator_key(3);
    use commonware_cryptography::Signer;
    PlanBuilder::new(chain)
        .seed(3)
        .crash(Crash::Schedule(Schedule::new().at(
            Duration::from_millis(1),
            Action::Crash(crashed.public_key()),
        )))
        .exit_condition(QuorumReached { count: 3, view: 30 })
        .timeout(Duration::from_secs(900))
        .property(expected)
        .run()
        .expect("three validators keep finalizing");
}

#[test]
fn lossy_network_with_ten_percent_loss_still_finalizes() {
    let (chain, expected) = scenario(4, 3);
    PlanBuilder::new(chain)
        .seed(4)
        .link(link(90))
        .required_finalizations(15)
        .timeout(Duration::from_secs(900))
        .property(expected)
        .run()
        .expect("finalizes over 10% loss");
}

#[test]
fn two_two_partition_halts_without_fork_and_resumes_after_healing() {
    use commonware_cryptography::Signer;
    let (chain, expected) = scenario(4, 3);
    let keys: Vec<Key> = (0..4).map(|i| sim::validator_key(i).public_key()).collect();
    let mut schedule = Schedule::new();
    let cut = Duration::from_secs(10);
    for a in 0..4 {
        for b in 0..4 {
            if a != b && (a < 2) != (b < 2) {
                schedule = schedule.at(
                    cut,
                    Action::UpdateLink {
                        from: keys[a].clone(),
                        to: keys[b].clone(),
                        link: link(0),
                    },
                );
            }
        }
    }
    schedule = schedule.at(Duration::from_secs(40), Action::Heal(link(100)));
    PlanBuilder::new(chain)
        .seed(5)
        .crash(Crash::Schedule(schedule))
        .required_finalizations(60)
        .timeout(Duration::from_secs(1200))
        // Blocks already in flight at the cut may still finalize for a few seconds.
        .finalization_property(NoFinalizationBetween(15, 40))
        .property(expected)
        .run()
        .expect("the partition halts progress without a fork; healing resumes it");
}

#[test]
fn an_equivocating_validator_causes_no_fork() {
    use commonware_cryptography::Signer;
    let run = |seed: u64| {
        let (chain, expected) = scenario(4, 3);
        let evidence = Arc::new(Mutex::new(Evidence::default()));
        let definition = WithEquivocator {
            chain,
            equivocator: sim::validator_key(3).public_key(),
            evidence: evidence.clone(),
        };
        let state = PlanBuilder::new(definition)
            .seed(seed)
            .required_finalizations(20)
            .timeout(Duration::from_secs(900))
            .property(HonestValidatorsAgree {
                honest: 3,
                heights_min: 10,
                balances: expected.0,
            })
            .run()
            .expect("the honest validators finalize one chain despite the equivocator")
            .remove(0)
            .state;
        let evidence = std::mem::take(&mut *evidence.lock().expect("evidence lock"));
        (state, evidence)
    };
    let (state, evidence) = run(6);
    // The run proves something only if the equivocator did equivocate.
    assert!(
        !evidence.proposed.is_empty(),
        "the equivocator proposed twice in a view it led: {evidence:?}"
    );
    assert!(
        evidence.notarized.len() >= 10 && evidence.finalized.len() >= 10,
        "the equivocator sent conflicting notarizes and finalizes: {evidence:?}"
    );
    assert_eq!((state, evidence), run(6), "a seed replays identically");
}

/// Organisations platform, shop, bank and reg, administered by users 0..4.
fn consortium_genesis(validators: u64) -> consort_types::Genesis {
    use consort_types::gov::{GenesisOrg, GovernanceConfig, Mode, OrgKind};
    let mut genesis = sim::genesis(validators);
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
    genesis
}

fn gov_tx(user: u64, nonce: u64, call: consort_types::Call) -> consort_types::SignedTx {
    consort_types::Tx {
        chain_id: sim::CHAIN_ID,
        sender: sim::user(user),
        nonce,
        call,
    }
    .sign(&sim::user_key(user))
}

#[derive(Clone)]
/// Every validator admitted `ship` (3 of 4 votes) and not `rogue` (2 of 4 against), and
/// agrees on both proposals.
struct GovernanceDecided;

impl Property<Key, State> for GovernanceDecided {
    fn name(&self) -> &str {
        "governance_decided"
    }

    fn check<'a>(
        &'a self,
        _tracker: &'a ProgressTracker<Key>,
        states: &'a [&'a State],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        use consort_types::{
            gov::{Org, Proposal, ProposalStatus},
            state_key::gov as key,
        };
        Box::pin(async move {
            for (v, state) in states.iter().enumerate() {
                let ship: Option<Org> = state.record(&key::org(&"ship".parse().expect("id"))).await;
                if !ship.is_some_and(|o| o.active) {
                    return Err(format!("validator {v}: ship was not admitted"));
                }
                let rogue: Option<Org> =
                    state.record(&key::org(&"rogue".parse().expect("id"))).await;
                if rogue.is_some() {
                    return Err(format!("validator {v}: rogue was admitted"));
                }
                let statuses = [
                    state
                        .record::<Proposal>(&key::proposal(0))
                        .await
                        .map(|p| p.status),
                    state
                        .record::<Proposal>(&key::proposal(1))
                        .await
                        .map(|p| p.status),
                ];
                let expected = [
                    Some(ProposalStatus::Passed.tag()),
                    Some(ProposalStatus::Rejected.tag()),
                ];
                if statuses != expected {
                    return Err(format!("validator {v}: proposals are {statuses:?}"));
                }
            }
            Ok(())
        })
    }
}

#[test]
fn a_consortium_of_four_validators_admits_an_organisation_by_vote_and_refuses_one_without() {
    use consort_types::{
        Call,
        gov::{Action, OrgKind},
    };
    // Each organisation brings its own first admin (an account belongs to one).
    let admit = |org: &str, kind, admin| Call::Propose {
        action: Action::AdmitOrg {
            org: org.parse().expect("org id"),
            kind,
            admin: sim::user(admin),
        },
    };
    let vote = |proposal, approve| Call::Vote { proposal, approve };
    // In arrival order (the order the mempools propose them): the shop's proposal and two
    // votes for it; the regulator's proposal and two votes against it.
    let txs = vec![
        gov_tx(1, 0, admit("ship", OrgKind::Logistics, 7)),
        gov_tx(0, 0, vote(0, true)),
        gov_tx(2, 0, vote(0, true)),
        gov_tx(3, 0, admit("rogue", OrgKind::Seller, 8)),
        gov_tx(0, 1, vote(1, false)),
        gov_tx(2, 1, vote(1, false)),
    ];
    let chain = Chain::with_genesis(consortium_genesis(4), txs);
    PlanBuilder::new(chain)
        .seed(3)
        .required_finalizations(10)
        .timeout(Duration::from_secs(600))
        .property(GovernanceDecided)
        .run()
        .expect("the consortium decides both proposals the same way on every validator");
}

#[test]
fn validators_cross_epoch_boundaries_through_random_crashes_and_restarts() {
    let txs = sim::transfers(3);
    let mut genesis = sim::genesis(4);
    // Short epochs: the run crosses several boundaries, some while a validator is down, so a
    // restarted validator resumes in a later epoch than it crashed in.
    genesis.epoch_blocks = Some(8);
    let chain = Chain::with_genesis(genesis, txs.clone());
    let expected = BalancesMatch(sim::expected_accounts(&chain.genesis, &txs));
    PlanBuilder::new(chain)
        .seed(9)
        .crash(Crash::Random {
            frequency: Duration::from_secs(5),
            downtime: Duration::from_secs(4),
            count: 1,
        })
        .exit_condition(HeightReached(120))
        .timeout(Duration::from_secs(900))
        .property(expected)
        .property(OldJournalsDeleted { epoch_blocks: 8 })
        .run()
        .expect("validators keep finalizing across epochs while crashing and restarting");
}

/// The shop's race on the real stack: customers 100.. each place one order for the last ten
/// items of a product, all in one block.
mod race {
    use super::*;
    use consort_types::{
        Call,
        codec_util::{List, Text},
        commerce::{
            CommerceCall, CommerceConfig, Holdings, LineRequest, Order, PaymentMethod,
            ProductContent, ProductKind, RecordId, VariantSpec, VariantState,
        },
        sealed,
        state_key::commerce as key,
    };

    pub const CUSTOMERS: std::ops::Range<u64> = 100..150;
    pub const PRICE: u64 = 8_800;
    /// Where the product lands: the setup takes block 1 whole, in arrival order (seal keys of
    /// the seller, the regulator and 50 customers, 50 issues, then the publication).
    pub const PRODUCT: RecordId = RecordId {
        height: 1,
        index: 102,
    };

    fn cny() -> consort_types::Asset {
        "CNY".parse().expect("asset")
    }

    pub fn genesis(validators: u64) -> consort_types::Genesis {
        let mut genesis = consortium_genesis(validators);
        if let Some(gov) = &mut genesis.governance {
            gov.customers = CUSTOMERS.map(sim::user).collect();
        }
        genesis.commerce = Some(CommerceConfig {
            fee_rate_bp: 100,
            fee_account: sim::user(0),
            payment_window_ms: 600_000,
            receipt_window_ms: 600_000,
            after_sale_window_ms: 600_000,
        });
        genesis
    }

    fn seal_key(user: u64) -> [u8; 32] {
        use commonware_codec::Encode as _;
        sealed::keypair(&sim::user_key(user).encode()).1
    }

    pub fn txs() -> Vec<consort_types::SignedTx> {
        fn text<const N: usize>(s: &str) -> Text<N> {
            Text::new(s).expect("fits")
        }
        let mut txs = Vec::new();
        for user in [1, 3].into_iter().chain(CUSTOMERS) {
            txs.push(gov_tx(
                user,
                0,
                Call::SetSealKey {
                    key: seal_key(user),
                },
            ));
        }
        for (nonce, customer) in (0..).zip(CUSTOMERS) {
            txs.push(gov_tx(
                2,
                nonce,
                Call::Issue {
                    asset: cny(),
                    to: sim::user(customer),
                    amount: consort_types::Amount::new(100_000),
                },
            ));
        }
        txs.push(gov_tx(
            1,
            1,
            Call::Commerce(CommerceCall::PublishProduct {
                content: ProductContent {
                    kind: ProductKind::Physical,
                    title_zh: text("限量版耳机"),
                    title_en: text("Limited edition headphones"),
                    description_zh: text("最后十副"),
                    description_en: text("The last ten"),
                    category: text("electronics/audio"),
                    attributes: List(Vec::new()),
                    images: List(Vec::new()),
                    variants: List(vec![VariantSpec {
                        name: text("black"),
                        price: PRICE,
                        currency: cny(),
                        stock: 10,
                    }]),
                },
            }),
        ));
        for customer in CUSTOMERS {
            let recipients = [customer, 1, 3].map(|u| (sim::user(u), seal_key(u)));
            let address = sealed::seal(b"Room 1, Shanghai", &recipients, b"race").expect("seals");
            txs.push(gov_tx(
                customer,
                1,
                Call::Commerce(CommerceCall::PlaceOrder {
                    lines: List(vec![LineRequest {
                        product: PRODUCT,
                        variant: 0,
                        quantity: 1,
                        price: PRICE,
                    }]),
                    method: PaymentMethod::Wallet,
                    pay: true,
                    address,
                }),
            ));
        }
        txs
    }

    #[derive(Clone)]
    /// On every validator: ten orders placed, forty refused (their nonces used), the stock
    /// at 0 available and 10 reserved, ten prices in escrow.
    pub struct LastTenSold;

    impl Property<Key, State> for LastTenSold {
        fn name(&self) -> &str {
            "last_ten_sold"
        }

        fn check<'a>(
            &'a self,
            _tracker: &'a ProgressTracker<Key>,
            states: &'a [&'a State],
        ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
            Box::pin(async move {
                for (v, state) in states.iter().enumerate() {
                    let stock: Option<VariantState> =
                        state.record_fixed(&key::variant(&PRODUCT, 0)).await;
                    let stock = stock.ok_or(format!("validator {v}: no product at {PRODUCT}"))?;
                    if (stock.available, stock.reserved) != (0, 10) {
                        return Err(format!("validator {v}: stock is {stock:?}"));
                    }
                    let mut placed = 0;
                    for index in 0..400 {
                        let id = RecordId {
                            height: PRODUCT.height,
                            index,
                        };
                        if state.record::<Order>(&key::order(&id)).await.is_some() {
                            placed += 1;
                        }
                    }
                    if placed != 10 {
                        return Err(format!("validator {v}: {placed} orders placed"));
                    }
                    for customer in CUSTOMERS {
                        let nonce = state.account(&sim::user(customer)).await.map(|a| a.nonce);
                        if nonce != Some(2) {
                            return Err(format!(
                                "validator {v}: customer {customer} nonce {nonce:?}, not 2"
                            ));
                        }
                    }
                    let held: Holdings = state
                        .record(&key::holdings(&cny()))
                        .await
                        .unwrap_or_default();
                    if held.escrow != 10 * PRICE {
                        return Err(format!("validator {v}: escrow {}", held.escrow));
                    }
                }
                Ok(())
            })
        }
    }
}

#[test]
fn fifty_customers_race_for_the_last_ten_items_on_four_validators_and_ten_win() {
    let chain = Chain::with_genesis(race::genesis(4), race::txs());
    PlanBuilder::new(chain)
        .seed(11)
        .required_finalizations(5)
        .timeout(Duration::from_secs(600))
        .property(race::LastTenSold)
        .run()
        .expect("exactly ten orders on every validator, forty out of stock");
}
