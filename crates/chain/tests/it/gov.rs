//! Governance and write permissions on the state machine (deterministic runtime, real QMDB):
//! a consortium admits an organisation by vote and refuses one that lacks votes, private mode
//! lets only the founder decide, and every call kind is refused to every role that may not make
//! it, changing nothing.

use commonware_cryptography::{Signer as _, ed25519};
use commonware_glue::stateful::db::DatabaseSet as _;
use commonware_runtime::{Runner as _, deterministic};
use consort_chain::{
    rules::{BlockInfo, Rules},
    runtime::{Mode as ExecMode, execute_block},
};
use consort_governance::Gov;
use consort_state::{self as state, Databases, Store};
use consort_types::{
    Account, AccountId, Amount, Call, Genesis, GenesisAccount, GenesisValidator, SignedTx, Tx,
    TxError,
    codec_util::{Blob, List},
    gov::{
        Action, GenesisOrg, GovError, GovState, GovernanceConfig, Mode, OPEN_PROPOSALS_PER_ORG_MAX,
        Org, OrgKind, PendingRotation, Proposal, ProposalStatus, Registration, role,
    },
    limits::VALIDATORS_MAX,
    state_key::gov as key,
};

const CHAIN_ID: u64 = 11;
const VOTE_PERIOD: u64 = 5;
const ROTATION_DELAY: u64 = 3;

fn key(seed: u64) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(seed)
}

fn id(seed: u64) -> AccountId {
    AccountId::new(key(seed).public_key())
}

/// Admins: platform 1, shop 2, bank 3, regulator 4. Validators 100..104.
fn genesis(mode: Mode) -> Genesis {
    let org = |name: &str, kind, admin| GenesisOrg {
        id: name.parse().expect("org id"),
        kind,
        admins: vec![id(admin)],
    };
    Genesis {
        chain_id: CHAIN_ID,
        genesis_time_ms: 0,
        validators: (100..104)
            .map(|i| GenesisValidator {
                public_key: id(i),
                p2p_address: format!("127.0.0.1:{}", 32_000 + i),
            })
            .collect(),
        accounts: (1..=4)
            .map(|i| GenesisAccount {
                id: id(i),
                balance: Amount::new(1_000),
            })
            .collect(),
        peg: None,
        governance: Some(GovernanceConfig {
            mode,
            organisations: vec![
                org("platform", OrgKind::Operator, 1),
                org("shop", OrgKind::Seller, 2),
                org("bank", OrgKind::Bank, 3),
                org("reg", OrgKind::Regulator, 4),
            ],
            registrar: "platform".parse().expect("org id"),
            vote_period_blocks: VOTE_PERIOD,
            alert_threshold: None,
            customers: Vec::new(),
            rotation_delay_blocks: Some(ROTATION_DELAY),
        }),
        epoch_blocks: None,
        account_limits: None,
        empty_block_interval_ms: None,
        commerce: None,
    }
}

struct Chain {
    databases: Databases<deterministic::Context>,
    genesis: Genesis,
    gov: Gov,
    height: u64,
}

impl Chain {
    async fn new(context: deterministic::Context, mode: Mode) -> Self {
        let databases = crate::harness::open(context, "gov-test").await;
        let genesis = genesis(mode);
        let gov = Gov::from_genesis(&genesis).expect("governance");
        let mut chain = Self {
            databases,
            genesis,
            gov,
            height: 0,
        };
        assert!(chain.block(Vec::new()).await.is_empty());
        chain
    }

    async fn block(&mut self, txs: Vec<SignedTx>) -> Vec<TxError> {
        self.height += 1;
        let rules = Rules {
            genesis: &self.genesis,
            peg: None,
            gov: Some(&self.gov),
            commerce: None,
        };
        // Refused a place, then failed at execution (included, nonce used).
        crate::harness::block(&self.databases, self.height, txs, rules)
            .await
            .errors()
    }

    async fn account(&self, who: u64) -> Account {
        state::read_account(&self.databases, &id(who))
            .await
            .expect("read")
            .unwrap_or_default()
    }

    async fn submit(&mut self, who: u64, call: Call) -> Result<(), TxError> {
        let nonce = self.account(who).await.nonce;
        let tx = Tx {
            chain_id: CHAIN_ID,
            sender: id(who),
            nonce,
            call,
        }
        .sign(&key(who));
        match self.block(vec![tx]).await.pop() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    async fn read<T: commonware_codec::Read<Cfg = ()>>(
        &self,
        key: &consort_types::Digest,
    ) -> Option<T> {
        let batch = self.databases.new_batches().await;
        Store::new(&batch).get(key).await.expect("read")
    }

    async fn org(&self, name: &str) -> Option<Org> {
        self.read(&key::org(&name.parse().expect("org id"))).await
    }

    async fn proposal(&self, id: u64) -> Proposal {
        self.read(&key::proposal(id)).await.expect("proposal")
    }
}

fn admit(org: &str, kind: OrgKind, admin: u64) -> Call {
    Call::Propose {
        action: Action::AdmitOrg {
            org: org.parse().expect("org id"),
            kind,
            admin: id(admin),
        },
    }
}

fn vote(proposal: u64, approve: bool) -> Call {
    Call::Vote { proposal, approve }
}

#[test]
fn a_consortium_admits_a_fifth_organisation_by_vote_and_refuses_one_without_votes() {
    deterministic::Runner::default().start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        // The shop proposes a carrier: 1 of 4 in favour is not enough, 3 of 4 is (> 2/3).
        chain
            .submit(2, admit("ship", OrgKind::Logistics, 50))
            .await
            .expect("proposed");
        assert_eq!(chain.proposal(0).await.status, ProposalStatus::Open.tag());
        assert!(chain.org("ship").await.is_none());
        chain
            .submit(1, vote(0, true))
            .await
            .expect("platform votes");
        assert!(
            chain.org("ship").await.is_none(),
            "2 of 4 is not more than 2/3"
        );
        assert_eq!(
            chain.submit(1, vote(0, true)).await,
            Err(TxError::Gov(GovError::AlreadyVoted("platform".into())))
        );
        chain.submit(3, vote(0, true)).await.expect("bank votes");
        assert_eq!(chain.proposal(0).await.status, ProposalStatus::Passed.tag());
        let ship = chain.org("ship").await.expect("admitted");
        assert!(ship.active && ship.kind == OrgKind::Logistics);
        let admin: Registration = chain
            .read(&key::registration(&id(50)))
            .await
            .expect("the new organisation's admin is registered");
        assert_eq!(admin.roles, role::ADMIN | role::CARRIER);

        // Now five members: a proposal with two votes against can no longer pass.
        chain
            .submit(50, admit("rogue", OrgKind::Seller, 51))
            .await
            .expect("proposed");
        chain.submit(1, vote(1, false)).await.expect("against");
        assert_eq!(chain.proposal(1).await.status, ProposalStatus::Open.tag());
        chain.submit(3, vote(1, false)).await.expect("against");
        assert_eq!(
            chain.proposal(1).await.status,
            ProposalStatus::Rejected.tag()
        );
        assert!(chain.org("rogue").await.is_none());

        // Three of five in favour is not more than 2/3: the proposal expires at its deadline.
        chain
            .submit(2, admit("late", OrgKind::Seller, 52))
            .await
            .expect("proposed");
        chain.submit(1, vote(2, true)).await.expect("for");
        chain.submit(3, vote(2, true)).await.expect("for");
        for _ in 0..VOTE_PERIOD {
            chain.block(Vec::new()).await;
        }
        assert_eq!(
            chain.proposal(2).await.status,
            ProposalStatus::Expired.tag()
        );
        assert!(chain.org("late").await.is_none());
        assert_eq!(
            chain.submit(4, vote(2, true)).await,
            Err(TxError::Gov(GovError::NoSuchProposal(2)))
        );

        // Removal by vote: the removed organisation's accounts can no longer act.
        let remove_ship = Call::Propose {
            action: Action::RemoveOrg {
                org: "ship".parse().expect("org id"),
            },
        };
        chain.submit(1, remove_ship).await.expect("proposed");
        for admin in [2, 3, 4] {
            chain.submit(admin, vote(3, true)).await.expect("for");
        }
        assert!(!chain.org("ship").await.expect("record kept").active);
        assert!(matches!(
            chain
                .submit(
                    50,
                    Call::Transfer {
                        to: id(1),
                        amount: Amount::new(1)
                    }
                )
                .await,
            Err(TxError::Unauthorized { .. })
        ));
    });
}

#[test]
fn in_private_mode_the_founder_decides_alone() {
    deterministic::Runner::default().start(|context| async move {
        let mut chain = Chain::new(context, Mode::Private).await;
        assert!(matches!(
            chain.submit(2, admit("ship", OrgKind::Logistics, 50)).await,
            Err(TxError::Unauthorized { .. })
        ));
        chain
            .submit(1, admit("ship", OrgKind::Logistics, 50))
            .await
            .expect("founder decides");
        assert_eq!(chain.proposal(0).await.status, ProposalStatus::Passed.tag());
        assert!(chain.org("ship").await.is_some_and(|o| o.active));
        let remove_founder = Call::Propose {
            action: Action::RemoveOrg {
                org: "platform".parse().expect("org id"),
            },
        };
        assert!(matches!(
            chain.submit(1, remove_founder).await,
            Err(TxError::Unauthorized { .. })
        ));
    });
}

#[test]
fn every_call_kind_is_refused_to_every_role_that_may_not_make_it_and_changes_nothing() {
    deterministic::Runner::default().start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        // Accounts: 60 a customer (self-registered), 61 a shop clerk (seller, no admin),
        // 62 revoked, 63 never registered.
        chain
            .submit(60, Call::SelfRegister)
            .await
            .expect("self-registers");
        chain
            .submit(
                2,
                Call::Register {
                    account: id(61),
                    roles: role::SELLER,
                },
            )
            .await
            .expect("shop registers a clerk");
        chain
            .submit(
                2,
                Call::Register {
                    account: id(62),
                    roles: role::SELLER,
                },
            )
            .await
            .expect("registered");
        chain
            .submit(2, Call::Revoke { account: id(62) })
            .await
            .expect("revoked");
        chain
            .submit(
                1,
                Call::Transfer {
                    to: id(61),
                    amount: Amount::new(100),
                },
            )
            .await
            .expect("funded");
        chain
            .submit(
                1,
                Call::Transfer {
                    to: id(60),
                    amount: Amount::new(100),
                },
            )
            .await
            .expect("funded");

        let admin_calls = || {
            vec![
                admit("x", OrgKind::Seller, 70),
                vote(0, true),
                Call::Propose {
                    action: Action::AddValidator {
                        key: id(72),
                        address: "127.0.0.1:1".parse().expect("address"),
                    },
                },
                Call::Propose {
                    action: Action::RemoveValidator { key: id(100) },
                },
                Call::Propose {
                    action: Action::Halt,
                },
                Call::Register {
                    account: id(71),
                    roles: role::SELLER,
                },
                Call::Revoke { account: id(61) },
                Call::Rotate {
                    account: id(2),
                    new: id(74),
                },
                Call::Freeze {
                    target: consort_types::gov::FreezeTarget::Account(id(1)),
                },
                Call::Unfreeze {
                    target: consort_types::gov::FreezeTarget::Account(id(1)),
                },
                Call::Issue {
                    asset: "CNY".parse().expect("asset"),
                    to: id(1),
                    amount: Amount::new(1),
                },
                Call::ReserveReport {
                    asset: "CNY".parse().expect("asset"),
                    reserves: 1,
                    statement: [0; 32],
                },
            ]
        };
        let member_calls = || {
            vec![
                Call::Transfer {
                    to: id(1),
                    amount: Amount::new(1),
                },
                Call::TransferAsset {
                    asset: "CNY".parse().expect("asset"),
                    to: id(1),
                    amount: Amount::new(1),
                },
                Call::PegOut {
                    amount: Amount::new(1_000),
                    script: Blob(vec![0; 22]),
                },
                Call::ConfirmBatch {
                    batch: 0,
                    proof: Blob(Vec::new()),
                },
                Call::Redeem {
                    asset: "CNY".parse().expect("asset"),
                    amount: Amount::new(1),
                },
                Call::SetSealKey { key: [9; 32] },
                Call::PutPrivate {
                    about: id(1),
                    label: Blob(b"note".to_vec()),
                    envelope: Default::default(),
                },
            ]
        };
        // (who, calls that must be refused as unauthorized)
        let mut cases: Vec<(u64, Vec<Call>)> = vec![
            (60, admin_calls()),
            (61, admin_calls()),
            (
                62,
                admin_calls().into_iter().chain(member_calls()).collect(),
            ),
            (
                63,
                admin_calls().into_iter().chain(member_calls()).collect(),
            ),
        ];
        // Validators relay and sign; nobody else (the peg refuses them even without a peg).
        for who in [1, 60, 61] {
            cases.push((
                who,
                vec![
                    Call::RelayHeaders {
                        headers: List(vec![[0; 80]]),
                    },
                    Call::SignBatch {
                        batch: 0,
                        signatures: List(Vec::new()),
                    },
                    Call::LeaveValidator,
                ],
            ));
        }
        let state_before: consort_types::gov::GovState =
            chain.read(&key::state()).await.expect("state");
        let clerk_before: Registration = chain
            .read(&key::registration(&id(61)))
            .await
            .expect("clerk");
        for (who, calls) in cases {
            for call in calls {
                let kind = call.kind();
                let before = chain.account(who).await;
                let result = chain.submit(who, call).await;
                assert!(
                    matches!(
                        result,
                        Err(TxError::Unauthorized { .. }) | Err(TxError::Peg(_))
                    ),
                    "{kind} by {who} was not refused: {result:?}"
                );
                assert_eq!(
                    chain.account(who).await,
                    before,
                    "{kind} by {who} changed the sender"
                );
            }
        }
        let state_after: consort_types::gov::GovState =
            chain.read(&key::state()).await.expect("state");
        assert_eq!(
            state_after, state_before,
            "refused calls changed governance"
        );
        assert_eq!(
            chain
                .read::<Registration>(&key::registration(&id(61)))
                .await,
            Some(clerk_before)
        );
        assert!(
            chain
                .read::<Registration>(&key::registration(&id(71)))
                .await
                .is_none()
        );
        assert!(chain.org("x").await.is_none());

        // Granting roles outside the organisation's kind and registering twice are refused.
        assert_eq!(
            chain
                .submit(
                    3,
                    Call::Register {
                        account: id(72),
                        roles: role::SELLER
                    }
                )
                .await,
            Err(TxError::Gov(GovError::RolesNotGrantable {
                kind: OrgKind::Bank,
                roles: role::SELLER
            }))
        );
        assert!(matches!(
            chain.submit(60, Call::SelfRegister).await,
            Err(TxError::Gov(GovError::AlreadyRegistered(_)))
        ));
        // And what is allowed still works.
        chain
            .submit(
                60,
                Call::Transfer {
                    to: id(61),
                    amount: Amount::new(5),
                },
            )
            .await
            .expect("a customer pays");
    });
}

#[test]
fn e_money_supply_tracks_issue_and_redeem_and_freezes_stop_what_they_cover() {
    use consort_types::{
        Asset,
        gov::{EMoney, FreezeTarget},
        state_key,
    };
    deterministic::Runner::default().start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        let cny: Asset = "CNY".parse().expect("asset");
        chain
            .submit(60, Call::SelfRegister)
            .await
            .expect("customer");
        chain
            .submit(61, Call::SelfRegister)
            .await
            .expect("customer");
        let holders = [1u64, 2, 3, 4, 60, 61];
        // Supply = issued − redeemed, checked after every step.
        async fn supply_holds(chain: &Chain, asset: &Asset, holders: &[u64]) -> EMoney {
            let money: EMoney = chain
                .read(&key::emoney(asset))
                .await
                .expect("e-money record");
            let mut held = 0u64;
            for who in holders {
                held += chain
                    .read::<u64>(&state_key::balance(asset, &id(*who)))
                    .await
                    .unwrap_or(0);
            }
            assert_eq!(
                money.issued - money.redeemed,
                held,
                "supply != issued - redeemed"
            );
            money
        }
        let issue = |to: u64, amount: u64| Call::Issue {
            asset: cny,
            to: id(to),
            amount: Amount::new(amount),
        };
        let pay = |to: u64, amount: u64| Call::TransferAsset {
            asset: cny,
            to: id(to),
            amount: Amount::new(amount),
        };

        chain
            .submit(3, issue(60, 1_000))
            .await
            .expect("the bank issues");
        supply_holds(&chain, &cny, &holders).await;
        assert!(matches!(
            chain.submit(2, issue(2, 5)).await,
            Err(TxError::Unauthorized { .. })
        ));
        chain
            .submit(60, pay(61, 300))
            .await
            .expect("customers pay each other");
        supply_holds(&chain, &cny, &holders).await;
        chain
            .submit(
                61,
                Call::Redeem {
                    asset: cny,
                    amount: Amount::new(100),
                },
            )
            .await
            .expect("redeemed");
        let money = supply_holds(&chain, &cny, &holders).await;
        assert_eq!((money.issued, money.redeemed), (1_000, 100));
        assert!(matches!(
            chain
                .submit(
                    61,
                    Call::Redeem {
                        asset: cny,
                        amount: Amount::new(201)
                    }
                )
                .await,
            Err(TxError::Gov(GovError::RedeemTooMuch(_)))
        ));
        chain
            .submit(
                3,
                Call::ReserveReport {
                    asset: cny,
                    reserves: 900,
                    statement: [7; 32],
                },
            )
            .await
            .expect("reserve report");
        let money = supply_holds(&chain, &cny, &holders).await;
        assert_eq!((money.reserves, money.statement), (900, [7; 32]));

        // Only the regulator freezes. A frozen account cannot send or be paid.
        let freeze = |target| Call::Freeze { target };
        let unfreeze = |target| Call::Unfreeze { target };
        let alice = FreezeTarget::Account(id(60));
        assert!(matches!(
            chain.submit(1, freeze(alice)).await,
            Err(TxError::Unauthorized { .. })
        ));
        chain
            .submit(4, freeze(alice))
            .await
            .expect("regulator freezes");
        assert!(matches!(
            chain.submit(60, pay(61, 1)).await,
            Err(TxError::Gov(GovError::Frozen(_)))
        ));
        assert!(matches!(
            chain.submit(61, pay(60, 1)).await,
            Err(TxError::Gov(GovError::Frozen(_)))
        ));
        assert!(matches!(
            chain
                .submit(
                    1,
                    Call::Transfer {
                        to: id(60),
                        amount: Amount::new(1)
                    }
                )
                .await,
            Err(TxError::Gov(GovError::Frozen(_)))
        ));
        supply_holds(&chain, &cny, &holders).await;
        chain.submit(4, unfreeze(alice)).await.expect("unfrozen");
        chain.submit(60, pay(61, 1)).await.expect("pays again");
        supply_holds(&chain, &cny, &holders).await;

        // Freezes are counted once each (the count spares unfrozen chains their freeze
        // reads): a second freeze of the same target, or an unfreeze of a target not frozen,
        // changes nothing, and lifting one freeze leaves the others in force.
        let bob = FreezeTarget::Account(id(61));
        chain.submit(4, freeze(alice)).await.expect("frozen");
        chain.submit(4, freeze(alice)).await.expect("frozen again");
        chain
            .submit(4, unfreeze(bob))
            .await
            .expect("bob was not frozen");
        assert!(matches!(
            chain.submit(60, pay(61, 1)).await,
            Err(TxError::Gov(GovError::Frozen(_)))
        ));
        chain.submit(4, freeze(bob)).await.expect("bob frozen");
        chain
            .submit(4, unfreeze(alice))
            .await
            .expect("alice unfrozen");
        assert!(matches!(
            chain.submit(60, pay(61, 1)).await,
            Err(TxError::Gov(GovError::Frozen(_)))
        ));
        chain.submit(4, unfreeze(bob)).await.expect("bob unfrozen");
        chain.submit(60, pay(61, 1)).await.expect("pays again");

        // A frozen asset does not move or issue; a frozen issuer cannot issue.
        chain
            .submit(4, freeze(FreezeTarget::Asset(cny)))
            .await
            .expect("asset frozen");
        assert!(matches!(
            chain.submit(60, pay(61, 1)).await,
            Err(TxError::Gov(GovError::Frozen(_)))
        ));
        assert!(matches!(
            chain.submit(3, issue(60, 1)).await,
            Err(TxError::Gov(GovError::Frozen(_)))
        ));
        chain
            .submit(4, unfreeze(FreezeTarget::Asset(cny)))
            .await
            .expect("unfrozen");
        let bank = FreezeTarget::Org("bank".parse().expect("org"));
        chain.submit(4, freeze(bank)).await.expect("issuer frozen");
        assert!(matches!(
            chain.submit(3, issue(60, 1)).await,
            Err(TxError::Gov(GovError::Frozen(_)))
        ));
        chain.submit(4, unfreeze(bank)).await.expect("unfrozen");
        chain.submit(3, issue(60, 50)).await.expect("issues again");
        let money = supply_holds(&chain, &cny, &holders).await;
        assert_eq!((money.issued, money.redeemed), (1_050, 100));

        // Another bank cannot issue a code that belongs to this one, nor anyone the peg coin.
        chain
            .submit(1, admit("bank2", OrgKind::Bank, 80))
            .await
            .expect("proposed");
        chain.submit(2, vote(0, true)).await.expect("for");
        chain.submit(4, vote(0, true)).await.expect("for");
        assert!(matches!(
            chain.submit(80, issue(80, 5)).await,
            Err(TxError::Gov(GovError::NotIssuer(_)))
        ));
        supply_holds(&chain, &cny, &holders).await;
    });
}

#[test]
fn validators_are_added_and_removed_by_vote_or_leave_and_committees_change_at_epoch_boundaries() {
    use consort_types::{state_key::validators as vkey, validators::ValidatorSet};
    deterministic::Runner::seeded(8).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        chain.genesis.epoch_blocks = Some(10);
        let gov = Gov::from_genesis(&chain.genesis).expect("governance");
        chain.gov = gov;
        let keys = |set: Option<ValidatorSet>| set.map(|s| s.keys().collect::<Vec<_>>());
        let genesis_keys: Vec<AccountId> = (100..104).map(id).collect();
        let add = |key| Call::Propose {
            action: Action::AddValidator {
                key: id(key),
                address: "127.0.0.1:32104".parse().expect("address"),
            },
        };

        // Refused before any vote, changing nothing: a member again, removing a stranger.
        assert_eq!(
            chain.submit(1, add(100)).await,
            Err(TxError::Gov(GovError::ValidatorExists(id(100).to_string())))
        );
        assert_eq!(
            chain
                .submit(
                    1,
                    Call::Propose {
                        action: Action::RemoveValidator { key: id(105) }
                    }
                )
                .await,
            Err(TxError::Gov(GovError::UnknownValidator(
                id(105).to_string()
            )))
        );
        // Only a validator leaves.
        assert!(matches!(
            chain.submit(1, Call::LeaveValidator).await,
            Err(TxError::Unauthorized { .. })
        ));
        assert_eq!(keys(chain.read(&vkey::registry()).await), None);

        // 104 joins by 3 of 4 votes; the registry changes at once, the committee at the
        // boundary (block 9 fixes epoch 1).
        chain.submit(1, add(104)).await.expect("proposed");
        chain.submit(2, vote(0, true)).await.expect("voted");
        assert_eq!(keys(chain.read(&vkey::registry()).await), None, "2 of 4");
        chain.submit(3, vote(0, true)).await.expect("voted");
        let mut with_joiner = genesis_keys.clone();
        with_joiner.push(id(104));
        assert_eq!(
            keys(chain.read(&vkey::registry()).await),
            Some(with_joiner.clone())
        );
        assert!(chain.height < 9);
        assert_eq!(keys(chain.read(&vkey::committee(1)).await), None);
        while chain.height < 9 {
            assert!(chain.block(Vec::new()).await.is_empty());
        }
        assert_eq!(
            keys(chain.read(&vkey::committee(1)).await),
            Some(with_joiner.clone())
        );

        // Validator 100 leaves on its own; the registry drops it, epoch 1 keeps it, epoch 2
        // (fixed by block 19) does not.
        chain
            .submit(100, Call::LeaveValidator)
            .await
            .expect("a validator leaves");
        let without_leaver: Vec<AccountId> = with_joiner[1..].to_vec();
        assert_eq!(
            keys(chain.read(&vkey::registry()).await),
            Some(without_leaver.clone())
        );
        while chain.height < 19 {
            assert!(chain.block(Vec::new()).await.is_empty());
        }
        assert_eq!(
            keys(chain.read(&vkey::committee(1)).await),
            Some(with_joiner)
        );
        assert_eq!(
            keys(chain.read(&vkey::committee(2)).await),
            Some(without_leaver)
        );
        // The leaver is no validator any more: leaving again is unauthorized.
        assert!(matches!(
            chain.submit(100, Call::LeaveValidator).await,
            Err(TxError::Unauthorized { .. })
        ));
    });
}

#[test]
fn private_fields_are_sealed_to_buyer_seller_and_regulator_and_refused_without_them() {
    use commonware_codec::Encode as _;
    use consort_types::{
        sealed::{self, PrivateError, PrivateRecord, SealError},
        state_key::private as pkey,
    };
    deterministic::Runner::seeded(9).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        // The buyer (50) registers as a customer; the shop's admin (2) sells; 4 is the
        // regulator; the bank's admin (3) is a third party.
        let (buyer, seller, regulator, stranger) = (50, 2, 4, 3);
        chain
            .submit(buyer, Call::SelfRegister)
            .await
            .expect("customer");
        let seal_key = |who: u64| sealed::keypair(&key(who).encode());
        for who in [buyer, seller, regulator, stranger] {
            chain
                .submit(
                    who,
                    Call::SetSealKey {
                        key: seal_key(who).1,
                    },
                )
                .await
                .expect("publishes its sealing key");
        }
        let address = b"Room 5, 1 Harbour Road; phone +86 138 0000 0000".to_vec();
        let label = Blob(b"shipping-address".to_vec());
        let info = sealed::context(CHAIN_ID, &id(buyer), &id(seller), label.as_slice());
        let envelope = |to: &[u64]| {
            let recipients: Vec<_> = to.iter().map(|w| (id(*w), seal_key(*w).1)).collect();
            sealed::seal(&address, &recipients, &info).expect("seals")
        };
        let put = |envelope| Call::PutPrivate {
            about: id(seller),
            label: label.clone(),
            envelope,
        };

        // Refused, changing nothing: no regulator; the seller left out; an account without a
        // sealing key; a recipient twice; an unregistered author.
        let refusals = [
            (
                buyer,
                put(envelope(&[buyer, seller])),
                TxError::Private(PrivateError::RegulatorMissing),
            ),
            (
                buyer,
                put(envelope(&[buyer, regulator])),
                TxError::Private(PrivateError::RecipientMissing("party the record concerns")),
            ),
            (
                buyer,
                put({
                    let mut e = envelope(&[buyer, seller, regulator]);
                    e.copies.0.push(consort_types::sealed::SealedCopy {
                        recipient: id(61),
                        ..e.copies.0[0].clone()
                    });
                    e
                }),
                TxError::Private(PrivateError::NoSealKey(id(61).to_string())),
            ),
            (
                buyer,
                put({
                    let mut e = envelope(&[buyer, seller, regulator]);
                    e.copies.0.push(e.copies.0[0].clone());
                    e
                }),
                TxError::Private(PrivateError::BadEnvelope("a recipient holds two copies")),
            ),
        ];
        for (who, call, expected) in refusals {
            assert_eq!(chain.submit(who, call).await, Err(expected));
        }
        assert!(matches!(
            chain
                .submit(62, put(envelope(&[62, seller, regulator])))
                .await,
            Err(TxError::Unauthorized { .. })
        ));
        assert_eq!(
            chain.read::<u64>(&pkey::next()).await,
            None,
            "nothing written"
        );

        // The record as the chain holds it, and the transaction as blocks carry it: ciphertext.
        let call = put(envelope(&[buyer, seller, regulator]));
        let tx_bytes = Tx {
            chain_id: CHAIN_ID,
            sender: id(buyer),
            nonce: chain.account(buyer).await.nonce,
            call: call.clone(),
        }
        .sign(&key(buyer))
        .encode();
        chain.submit(buyer, call).await.expect("sealed record");
        let record: PrivateRecord = chain.read(&pkey::record(0)).await.expect("record");
        assert_eq!((record.author, record.about), (id(buyer), id(seller)));
        let contains = |bytes: &[u8]| {
            bytes
                .windows(16)
                .any(|w| address.windows(16).any(|a| a == w))
        };
        assert!(
            !contains(&tx_bytes),
            "the block's transaction holds only ciphertext"
        );
        assert!(
            !contains(&record.encode()),
            "the state holds only ciphertext"
        );

        // Buyer, seller and regulator open it; the third party holds no copy, and its key does
        // not open anyone else's.
        for who in [buyer, seller, regulator] {
            let opened = sealed::open(&record.envelope, &id(who), &seal_key(who).0, &info)
                .expect("a recipient opens its copy");
            assert_eq!(opened, address);
        }
        assert_eq!(
            sealed::open(
                &record.envelope,
                &id(stranger),
                &seal_key(stranger).0,
                &info
            ),
            Err(SealError::NotARecipient(id(stranger).to_string()))
        );
        let mut lifted = record.envelope.clone();
        lifted.copies.0[0].recipient = id(stranger);
        assert_eq!(
            sealed::open(&lifted, &id(stranger), &seal_key(stranger).0, &info),
            Err(SealError::Open)
        );
    });
}

#[test]
fn per_account_limits_defer_the_extra_transactions_of_a_block_and_refuse_oversized_ones() {
    deterministic::Runner::seeded(10).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        chain.genesis.account_limits = Some(consort_types::AccountLimits {
            txs_per_block: 2,
            tx_size_max: 512,
            pending_max: 8,
        });
        let transfer = |nonce| {
            Tx {
                chain_id: CHAIN_ID,
                sender: id(1),
                nonce,
                call: Call::Transfer {
                    to: id(2),
                    amount: Amount::new(1),
                },
            }
            .sign(&key(1))
        };
        // Three from one sender: two go in, the third waits (it is not refused).
        let rejected = chain.block((0..3).map(transfer).collect()).await;
        assert!(rejected.is_empty(), "{rejected:?}");
        assert_eq!(chain.account(1).await.nonce, 2);
        assert!(chain.block(vec![transfer(2)]).await.is_empty());
        assert_eq!(chain.account(1).await.nonce, 3);

        // A block carrying three of one sender's transactions is invalid.
        let batch = chain.databases.new_batches().await;
        let result = execute_block(
            batch,
            BlockInfo {
                height: chain.height + 1,
                timestamp_ms: (chain.height + 1) * 1_000,
            },
            (3..6).map(transfer).collect::<Vec<_>>(),
            Rules {
                genesis: &chain.genesis,
                peg: None,
                gov: Some(&chain.gov),
                commerce: None,
            },
            ExecMode::Verify,
        )
        .await;
        assert!(matches!(
            result,
            Err(consort_execution::BlockError::InvalidTx {
                index: 2,
                error: TxError::RateLimited { limit: 2, .. }
            })
        ));

        // Larger than the per-account size limit: refused, nothing changes.
        let before = chain.account(1).await;
        let big = Call::PutPrivate {
            about: id(2),
            label: Blob(b"note".to_vec()),
            envelope: consort_types::sealed::Sealed {
                copies: List(vec![consort_types::sealed::SealedCopy {
                    recipient: id(1),
                    encapped: [0; 32],
                    ciphertext: Blob(vec![0; 600]),
                }]),
            },
        };
        assert!(matches!(
            chain.submit(1, big).await,
            Err(TxError::Oversized { max: 512, .. })
        ));
        assert_eq!(chain.account(1).await, before);
    });
}

#[test]
fn keys_rotate_with_registration_and_every_balance_and_the_old_key_stops_working() {
    use consort_types::{Asset, gov::FreezeTarget};
    deterministic::Runner::seeded(12).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        let cny: Asset = "CNY".parse().expect("asset");
        async fn cny_of(chain: &Chain, who: u64) -> u64 {
            let cny: consort_types::Asset = "CNY".parse().expect("asset");
            chain
                .read::<u64>(&consort_types::state_key::balance(&cny, &id(who)))
                .await
                .unwrap_or(0)
        }
        chain
            .submit(
                3,
                Call::Issue {
                    asset: cny,
                    to: id(1),
                    amount: Amount::new(500),
                },
            )
            .await
            .expect("issued");
        let native = chain.account(1).await.balance;

        // Refused, changing nothing: to itself, to a registered key, by a stranger.
        for (who, call, code) in [
            (
                1,
                Call::Rotate {
                    account: id(1),
                    new: id(1),
                },
                "gov_same_key",
            ),
            (
                1,
                Call::Rotate {
                    account: id(1),
                    new: id(2),
                },
                "gov_already_registered",
            ),
            (
                2,
                Call::Rotate {
                    account: id(1),
                    new: id(70),
                },
                "unauthorized",
            ),
        ] {
            let error = chain.submit(who, call).await.expect_err("refused");
            assert_eq!(error.code(), code, "{error:?}");
        }
        assert_eq!(cny_of(&chain, 1).await, 500);

        // The platform's admin rotates its own key: registration, native coins and e-money move.
        chain
            .submit(
                1,
                Call::Rotate {
                    account: id(1),
                    new: id(70),
                },
            )
            .await
            .expect("rotated");
        let moved: Registration = chain
            .read(&key::registration(&id(70)))
            .await
            .expect("moved");
        assert!(moved.active && moved.roles & role::ADMIN != 0);
        let old: Registration = chain.read(&key::registration(&id(1))).await.expect("old");
        assert!(!old.active, "the old key is rotated away");
        assert_eq!(chain.account(70).await.balance, native);
        assert_eq!(chain.account(1).await.balance, Amount::new(0));
        assert_eq!(
            (cny_of(&chain, 1).await, cny_of(&chain, 70).await),
            (0, 500)
        );
        // The old key may no longer act; the new one administers the organisation.
        assert!(matches!(
            chain
                .submit(
                    1,
                    Call::Register {
                        account: id(71),
                        roles: role::CUSTOMER
                    }
                )
                .await,
            Err(TxError::Unauthorized { .. })
        ));
        chain
            .submit(
                70,
                Call::Register {
                    account: id(71),
                    roles: role::CUSTOMER,
                },
            )
            .await
            .expect("the new key administers");

        // A clerk lost its key: its organisation's admin rotates it.
        chain
            .submit(
                70,
                Call::Rotate {
                    account: id(71),
                    new: id(72),
                },
            )
            .await
            .expect("the admin rotates a lost key");
        for _ in 0..ROTATION_DELAY {
            chain.block(Vec::new()).await;
        }
        let clerk: Registration = chain
            .read(&key::registration(&id(72)))
            .await
            .expect("clerk");
        assert!(clerk.active && clerk.roles == role::CUSTOMER);

        // A frozen account cannot rotate away from the freeze.
        chain
            .submit(
                4,
                Call::Freeze {
                    target: FreezeTarget::Account(id(72)),
                },
            )
            .await
            .expect("frozen");
        let error = chain
            .submit(
                70,
                Call::Rotate {
                    account: id(72),
                    new: id(73),
                },
            )
            .await
            .expect_err("refused");
        assert_eq!(error.code(), "frozen");
        assert!(
            chain
                .read::<Registration>(&key::registration(&id(73)))
                .await
                .is_none()
        );
    });
}

#[test]
fn the_emergency_brake_halts_everything_but_governance_and_freezes_until_resumed() {
    deterministic::Runner::default().start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        let halted = || Err(TxError::Gov(GovError::Halted));
        let pay = |to| Call::Transfer {
            to: id(to),
            amount: Amount::new(5),
        };
        let resume = Call::Propose {
            action: Action::Resume,
        };
        assert_eq!(
            chain.submit(1, resume.clone()).await,
            Err(TxError::Gov(GovError::AlreadyInState("running")))
        );
        // Only an admin proposes it, and it takes more than 2/3 like any decision.
        let halt = Call::Propose {
            action: Action::Halt,
        };
        assert!(matches!(
            chain.submit(60, halt.clone()).await,
            Err(TxError::Unauthorized { .. })
        ));
        chain
            .submit(4, halt.clone())
            .await
            .expect("the regulator proposes");
        chain.submit(1, vote(0, true)).await.expect("for");
        chain
            .submit(2, pay(3))
            .await
            .expect("not halted yet: 2 of 4");
        chain.submit(3, vote(0, true)).await.expect("for");
        assert_eq!(chain.proposal(0).await.status, ProposalStatus::Passed.tag());
        let halted_at: u64 = chain.read(&key::halted()).await.expect("halted");
        assert_eq!(halted_at, chain.height);

        // Everything else is refused and changes nothing.
        let before: Vec<Account> =
            futures::future::join_all((1..=4).map(|i| chain.account(i))).await;
        assert_eq!(chain.submit(2, pay(3)).await, halted());
        assert_eq!(chain.submit(60, Call::SelfRegister).await, halted());
        assert_eq!(
            chain
                .submit(
                    2,
                    Call::Register {
                        account: id(61),
                        roles: role::SELLER,
                    },
                )
                .await,
            halted()
        );
        assert_eq!(
            chain
                .submit(
                    3,
                    Call::Issue {
                        asset: "CNY".parse().expect("asset"),
                        to: id(2),
                        amount: Amount::new(10),
                    },
                )
                .await,
            halted()
        );
        let after: Vec<Account> =
            futures::future::join_all((1..=4).map(|i| chain.account(i))).await;
        assert_eq!(
            before, after,
            "refused calls moved nothing and used no nonce"
        );
        assert!(
            chain
                .read::<Registration>(&key::registration(&id(60)))
                .await
                .is_none()
        );
        // The regulator still freezes; governance still decides; a second halt is refused.
        let target = consort_types::gov::FreezeTarget::Account(id(2));
        chain
            .submit(4, Call::Freeze { target })
            .await
            .expect("freezes during the halt");
        chain
            .submit(4, Call::Unfreeze { target })
            .await
            .expect("unfreezes during the halt");
        assert_eq!(
            chain.submit(1, halt).await,
            Err(TxError::Gov(GovError::AlreadyInState("halted")))
        );
        chain.submit(1, resume).await.expect("proposed");
        chain.submit(2, vote(1, true)).await.expect("for");
        assert_eq!(
            chain.submit(2, pay(3)).await,
            halted(),
            "2 of 4 is not enough"
        );
        chain.submit(3, vote(1, true)).await.expect("for");
        assert!(chain.read::<u64>(&key::halted()).await.is_none());
        let bank = chain.account(3).await.balance;
        chain.submit(2, pay(3)).await.expect("resumed");
        assert_eq!(
            chain.account(3).await.balance,
            bank.checked_add(Amount::new(5)).expect("sum")
        );
    });
}

fn rotate(account: u64, new: u64) -> Call {
    Call::Rotate {
        account: id(account),
        new: id(new),
    }
}

#[test]
fn an_account_rotates_its_key_at_most_rotation_hops_max_times_so_its_first_key_still_leads_to_its_last()
 {
    use consort_types::gov::ROTATION_HOPS_MAX;
    deterministic::Runner::seeded(16).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        let hops = u64::try_from(ROTATION_HOPS_MAX).expect("small");
        // The platform's admin (key 1) rotates to 101, 102, … up to the bound.
        let mut current = 1;
        for next in 101..101 + hops {
            chain
                .submit(current, rotate(current, next))
                .await
                .expect("rotated");
            current = next;
        }
        let before = chain.account(current).await;
        let error = chain
            .submit(current, rotate(current, 200))
            .await
            .expect_err("one rotation too many");
        assert_eq!(error.code(), "gov_rotation_limit", "{error:?}");
        assert!(
            error.to_string().contains("register a new account"),
            "{error}"
        );
        // Nothing changed: no registration for the refused key, no rotation recorded.
        assert!(
            chain
                .read::<Registration>(&key::registration(&id(200)))
                .await
                .is_none()
        );
        assert!(
            chain
                .read::<AccountId>(&key::rotated_to(&id(current)))
                .await
                .is_none()
        );
        assert_eq!(chain.account(current).await.balance, before.balance);
        // The refused rotation was included: its nonce is used.
        assert_eq!(chain.account(current).await.nonce, before.nonce + 1);
        // The first key still leads, within the bound, to the one the account holds now.
        let mut at = id(1);
        for _ in 0..ROTATION_HOPS_MAX {
            at = chain
                .read::<AccountId>(&key::rotated_to(&at))
                .await
                .expect("every earlier key names its successor");
        }
        assert_eq!(at, id(current));
        let batch = chain.databases.new_batches().await;
        for earlier in std::iter::once(1).chain(101..101 + hops) {
            let now = Gov::current_key(&mut Store::new(&batch), &id(earlier))
                .await
                .expect("read");
            assert_eq!(now, id(current), "from key {earlier}");
        }
        let registration: Registration = chain
            .read(&key::registration(&id(current)))
            .await
            .expect("registered");
        assert!(registration.active && registration.roles & role::ADMIN != 0);

        // An admin cannot rotate a clerk's key past the bound either.
        chain
            .submit(
                current,
                Call::Register {
                    account: id(50),
                    roles: role::CUSTOMER,
                },
            )
            .await
            .expect("registered a clerk");
        let mut clerk = 50;
        for next in 51..51 + hops {
            chain
                .submit(clerk, rotate(clerk, next))
                .await
                .expect("the clerk rotates");
            clerk = next;
        }
        let error = chain
            .submit(
                current,
                Call::Rotate {
                    account: id(clerk),
                    new: id(201),
                },
            )
            .await
            .expect_err("the admin's rotation is one too many");
        assert_eq!(error.code(), "gov_rotation_limit", "{error:?}");
        assert!(
            chain
                .read::<PendingRotation>(&key::rotation(&id(clerk)))
                .await
                .is_none(),
            "nothing is scheduled"
        );

        // A rotated-away key cannot come back as a new organisation's first admin.
        let error = chain
            .submit(current, admit("newco", OrgKind::Seller, 1))
            .await
            .expect_err("key 1 was rotated away");
        assert_eq!(error.code(), "gov_rotated_away", "{error:?}");
        assert!(chain.org("newco").await.is_none());
        let old: Registration = chain.read(&key::registration(&id(1))).await.expect("old");
        assert!(!old.active);
    });
}

#[test]
fn an_admission_whose_admin_key_joined_another_organisation_during_the_vote_is_rejected_and_frees_its_place()
 {
    deterministic::Runner::seeded(17).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        // An active member of an organisation cannot be another's first admin.
        let error = chain
            .submit(2, admit("ship", OrgKind::Logistics, 1))
            .await
            .expect_err("key 1 is the platform's admin");
        assert_eq!(error.code(), "gov_already_registered", "{error:?}");
        // A fresh key is proposed; while the vote runs the platform registers it.
        chain
            .submit(2, admit("ship", OrgKind::Logistics, 60))
            .await
            .expect("proposed");
        chain
            .submit(
                1,
                Call::Register {
                    account: id(60),
                    roles: role::CUSTOMER,
                },
            )
            .await
            .expect("the platform registers 60");
        chain
            .submit(1, vote(0, true))
            .await
            .expect("platform votes");
        chain
            .submit(3, vote(0, true))
            .await
            .expect("the deciding vote is taken");
        // Enough votes, but the key cannot be the carrier's admin any more: rejected.
        assert_eq!(
            chain.proposal(0).await.status,
            ProposalStatus::Rejected.tag()
        );
        assert!(chain.org("ship").await.is_none());
        let clerk: Registration = chain
            .read(&key::registration(&id(60)))
            .await
            .expect("registered");
        assert_eq!(clerk.org, "platform".parse().expect("org id"));
        assert_eq!(clerk.roles, role::CUSTOMER);
        // Its place is free: the same admission with a usable key is proposed and passes.
        chain
            .submit(2, admit("ship", OrgKind::Logistics, 61))
            .await
            .expect("not a duplicate of a closed proposal");
        chain.submit(1, vote(1, true)).await.expect("platform");
        chain.submit(3, vote(1, true)).await.expect("bank");
        assert_eq!(chain.proposal(1).await.status, ProposalStatus::Passed.tag());
        let admin: Registration = chain
            .read(&key::registration(&id(61)))
            .await
            .expect("the carrier's admin");
        assert!(admin.active && admin.org == "ship".parse().expect("org id"));
    });
}

#[test]
fn an_organisation_holds_at_most_four_open_proposals_and_a_slot_frees_the_block_after_a_deadline() {
    deterministic::Runner::seeded(13).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        let first_at = chain.height + 1;
        for (admin, name) in (50..).zip(["a", "b", "c", "d"]) {
            chain
                .submit(2, admit(name, OrgKind::Seller, admin))
                .await
                .expect("proposed");
        }
        assert_eq!(OPEN_PROPOSALS_PER_ORG_MAX, 4);
        // The shop's fifth is refused and changes nothing; another organisation still proposes.
        let before: GovState = chain.read(&key::state()).await.expect("state");
        let error = chain
            .submit(2, admit("e", OrgKind::Seller, 54))
            .await
            .expect_err("the shop is at its cap");
        assert!(
            matches!(error, TxError::Gov(GovError::AtCapacity(_))),
            "{error:?}"
        );
        assert_eq!(chain.read::<GovState>(&key::state()).await, Some(before));
        chain
            .submit(1, admit("f", OrgKind::Seller, 55))
            .await
            .expect("the platform proposes");
        // Votes on the first close at its deadline; the very next block the slot is free.
        while chain.height < first_at + VOTE_PERIOD {
            chain.block(Vec::new()).await;
        }
        chain
            .submit(2, admit("e", OrgKind::Seller, 54))
            .await
            .expect("the expired proposal no longer counts");
        assert_eq!(
            chain.proposal(0).await.status,
            ProposalStatus::Expired.tag()
        );
    });
}

#[test]
fn the_same_decision_cannot_be_proposed_twice_while_it_is_open() {
    deterministic::Runner::seeded(14).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        chain.gov.config.vote_period_blocks = 50;
        let duplicate = |id| Err(TxError::Gov(GovError::DuplicateProposal(id)));
        chain
            .submit(2, admit("ship", OrgKind::Logistics, 50))
            .await
            .expect("proposed");
        assert_eq!(
            chain.submit(3, admit("ship", OrgKind::Logistics, 50)).await,
            duplicate(0)
        );
        // The same organisation with another kind or admin is the same decision.
        assert_eq!(
            chain.submit(3, admit("ship", OrgKind::Seller, 51)).await,
            duplicate(0)
        );
        let halt = Call::Propose {
            action: Action::Halt,
        };
        chain.submit(4, halt.clone()).await.expect("proposed");
        assert_eq!(chain.submit(1, halt).await, duplicate(1));
        // Once decided, it may be proposed again.
        chain.submit(1, vote(0, false)).await.expect("against");
        chain.submit(3, vote(0, false)).await.expect("against");
        assert_eq!(
            chain.proposal(0).await.status,
            ProposalStatus::Rejected.tag()
        );
        chain
            .submit(3, admit("ship", OrgKind::Logistics, 50))
            .await
            .expect("proposed again");
        assert_eq!(chain.proposal(2).await.status, ProposalStatus::Open.tag());
    });
}

#[test]
fn add_validator_proposals_are_refused_once_the_registry_and_open_additions_reach_validators_max() {
    use consort_types::{state_key::validators as vkey, validators::ValidatorSet};
    deterministic::Runner::seeded(15).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        // A governed genesis two validators short of the bound.
        let count = u64::try_from(VALIDATORS_MAX).expect("small") - 2;
        chain.genesis.validators = (100..100 + count)
            .map(|i| GenesisValidator {
                public_key: id(i),
                p2p_address: format!("127.0.0.1:{}", 32_000 + i),
            })
            .collect();
        chain.gov = Gov::from_genesis(&chain.genesis).expect("governance");
        chain.gov.config.vote_period_blocks = 50;
        let add = |key: u64| Call::Propose {
            action: Action::AddValidator {
                key: id(key),
                address: format!("127.0.0.1:{}", 33_000 + key)
                    .parse()
                    .expect("address"),
            },
        };
        let full = |result: Result<(), TxError>| {
            matches!(result, Err(TxError::Gov(GovError::AtCapacity(_))))
        };
        chain.submit(1, add(200)).await.expect("proposed");
        chain.submit(2, add(201)).await.expect("proposed");
        assert!(
            full(chain.submit(3, add(202)).await),
            "two open additions fill the last two seats"
        );
        for admin in [2, 3] {
            chain.submit(admin, vote(0, true)).await.expect("for");
        }
        assert!(full(chain.submit(3, add(202)).await));
        for admin in [1, 3] {
            chain.submit(admin, vote(1, true)).await.expect("for");
        }
        let registry: ValidatorSet = chain.read(&vkey::registry()).await.expect("registry");
        assert_eq!(registry.members.0.len(), VALIDATORS_MAX);
        assert!(full(chain.submit(3, add(202)).await));
    });
}

#[test]
fn an_admins_rotation_of_another_key_waits_unless_the_account_cancels_or_a_second_admin_confirms() {
    use consort_types::gov::FreezeTarget;
    deterministic::Runner::seeded(16).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        // The shop (admin 2) has a second admin, 62, and clerks 61, 63, 64, 65 with 100 each.
        chain
            .submit(
                2,
                Call::Register {
                    account: id(62),
                    roles: role::ADMIN | role::SELLER,
                },
            )
            .await
            .expect("second admin");
        for clerk in [61, 63, 64, 65] {
            chain
                .submit(
                    2,
                    Call::Register {
                        account: id(clerk),
                        roles: role::SELLER,
                    },
                )
                .await
                .expect("clerk");
            chain
                .submit(
                    1,
                    Call::Transfer {
                        to: id(clerk),
                        amount: Amount::new(100),
                    },
                )
                .await
                .expect("funded");
        }
        let registered = async |chain: &Chain, who: u64| {
            chain
                .read::<Registration>(&key::registration(&id(who)))
                .await
                .filter(|r| r.active)
        };

        // 61 lost its key: the admin's rotation waits, nothing moves yet.
        let before = chain.account(61).await;
        chain.submit(2, rotate(61, 71)).await.expect("asked");
        let due = chain.height + ROTATION_DELAY;
        assert_eq!(
            chain.read::<PendingRotation>(&key::rotation(&id(61))).await,
            Some(PendingRotation {
                new: id(71),
                admin: id(2),
                due
            })
        );
        // The same admin again is no second admin, and another new key is refused.
        let pending = Err(TxError::Gov(GovError::RotationPending(id(61).to_string())));
        assert_eq!(chain.submit(2, rotate(61, 71)).await, pending);
        assert_eq!(chain.submit(62, rotate(61, 72)).await, pending);
        assert!(chain.height < due);
        assert!(registered(&chain, 71).await.is_none());
        assert_eq!(chain.account(61).await, before);
        while chain.height < due {
            chain.block(Vec::new()).await;
        }
        // Due: registration and coins move; the old key keeps its nonce.
        assert_eq!(
            registered(&chain, 71).await.map(|r| r.roles),
            Some(role::SELLER)
        );
        assert!(registered(&chain, 61).await.is_none());
        assert_eq!(chain.account(71).await.balance, before.balance);
        assert_eq!(
            chain.account(61).await,
            Account {
                balance: Amount::new(0),
                nonce: before.nonce
            }
        );
        assert!(
            chain
                .read::<PendingRotation>(&key::rotation(&id(61)))
                .await
                .is_none()
        );

        // 63 still holds its key and objects: the rotation is dropped.
        chain.submit(2, rotate(63, 73)).await.expect("asked");
        let due = chain.height + ROTATION_DELAY;
        chain
            .submit(63, Call::CancelRotation)
            .await
            .expect("the account objects");
        assert_eq!(
            chain.submit(63, Call::CancelRotation).await,
            Err(TxError::Gov(GovError::NoPendingRotation(
                id(63).to_string()
            )))
        );
        while chain.height <= due {
            chain.block(Vec::new()).await;
        }
        assert!(registered(&chain, 73).await.is_none());
        assert!(registered(&chain, 63).await.is_some());
        assert_eq!(chain.account(63).await.balance, Amount::new(100));

        // A second admin of the organisation confirms: the rotation applies at once.
        chain.submit(2, rotate(64, 74)).await.expect("asked");
        chain.submit(62, rotate(64, 74)).await.expect("confirmed");
        assert!(registered(&chain, 74).await.is_some());
        assert!(registered(&chain, 64).await.is_none());
        assert_eq!(chain.account(74).await.balance, Amount::new(100));
        assert_eq!(chain.account(64).await.balance, Amount::new(0));

        // An account frozen meanwhile does not rotate away from the freeze.
        chain.submit(2, rotate(65, 75)).await.expect("asked");
        let due = chain.height + ROTATION_DELAY;
        chain
            .submit(
                4,
                Call::Freeze {
                    target: FreezeTarget::Account(id(65)),
                },
            )
            .await
            .expect("frozen");
        while chain.height <= due {
            chain.block(Vec::new()).await;
        }
        assert!(registered(&chain, 75).await.is_none());
        assert_eq!(chain.account(65).await.balance, Amount::new(100));
        assert!(
            chain
                .read::<PendingRotation>(&key::rotation(&id(65)))
                .await
                .is_none(),
            "dropped"
        );
    });
}

#[test]
fn payments_to_a_rotated_away_key_are_refused_with_the_new_key_named() {
    deterministic::Runner::seeded(17).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        let cny: consort_types::Asset = "CNY".parse().expect("asset");
        chain
            .submit(
                3,
                Call::Issue {
                    asset: cny,
                    to: id(2),
                    amount: Amount::new(50),
                },
            )
            .await
            .expect("issued");
        chain.submit(1, rotate(1, 70)).await.expect("rotated");
        let refused = Err(TxError::Gov(GovError::RotatedAway {
            old: id(1).to_string(),
            new: id(70).to_string(),
        }));
        let before = chain.account(2).await;
        let calls = [
            (
                2,
                Call::Transfer {
                    to: id(1),
                    amount: Amount::new(5),
                },
            ),
            (
                2,
                Call::TransferAsset {
                    asset: cny,
                    to: id(1),
                    amount: Amount::new(5),
                },
            ),
            (
                3,
                Call::Issue {
                    asset: cny,
                    to: id(1),
                    amount: Amount::new(5),
                },
            ),
        ];
        for (who, call) in calls {
            assert_eq!(chain.submit(who, call).await, refused);
        }
        // The payments failed when they ran: nothing moved, only their nonces were used.
        let after = chain.account(2).await;
        assert_eq!(after.balance, before.balance);
        assert_eq!(after.nonce, before.nonce + 2);
        assert_eq!(chain.account(1).await.balance, Amount::new(0));
        chain
            .submit(
                2,
                Call::Transfer {
                    to: id(70),
                    amount: Amount::new(5),
                },
            )
            .await
            .expect("the new key is paid");
    });
}

#[test]
fn freezes_reach_recipients_organisations_and_rotations_but_never_governance_votes() {
    use consort_types::gov::FreezeTarget;
    deterministic::Runner::default().start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        let cny: consort_types::Asset = "CNY".parse().expect("asset");
        let frozen =
            |result: Result<(), TxError>| matches!(result, Err(TxError::Gov(GovError::Frozen(_))));
        chain
            .submit(60, Call::SelfRegister)
            .await
            .expect("customer");
        chain
            .submit(
                3,
                Call::Issue {
                    asset: cny,
                    to: id(60),
                    amount: Amount::new(100),
                },
            )
            .await
            .expect("issued");

        // A rotation does not carry a frozen asset away from the regulator's hold.
        let asset = FreezeTarget::Asset(cny);
        chain
            .submit(4, Call::Freeze { target: asset })
            .await
            .expect("asset frozen");
        assert!(frozen(chain.submit(60, rotate(60, 70)).await));
        let held: Option<u64> = chain
            .read(&consort_types::state_key::balance(&cny, &id(60)))
            .await;
        assert_eq!(held, Some(100), "the frozen balance stays where it is");
        chain
            .submit(4, Call::Unfreeze { target: asset })
            .await
            .expect("unfrozen");

        // A recipient's frozen organisation stops payments to it.
        let bank = FreezeTarget::Org("bank".parse().expect("org"));
        chain
            .submit(4, Call::Freeze { target: bank })
            .await
            .expect("bank frozen");
        let pay_bank = || Call::Transfer {
            to: id(3),
            amount: Amount::new(1),
        };
        assert!(frozen(chain.submit(1, pay_bank()).await));
        assert!(frozen(chain.submit(3, pay_bank()).await), "nor may it send");

        // But its admin still votes: the regulator cannot silence the organisations whose
        // votes can overrule it.
        chain
            .submit(1, admit("ship", OrgKind::Logistics, 81))
            .await
            .expect("proposed");
        chain
            .submit(3, vote(0, true))
            .await
            .expect("a frozen organisation's admin still votes");
        chain
            .submit(3, admit("rail", OrgKind::Logistics, 82))
            .await
            .expect("and still proposes");
        chain
            .submit(4, Call::Unfreeze { target: bank })
            .await
            .expect("unfrozen");
        chain.submit(1, pay_bank()).await.expect("paid again");
    });
}

#[test]
fn an_admins_rotation_falling_due_does_not_carry_a_frozen_asset_away() {
    use consort_types::gov::FreezeTarget;
    deterministic::Runner::seeded(18).start(|context| async move {
        let mut chain = Chain::new(context, Mode::Consortium).await;
        let cny: consort_types::Asset = "CNY".parse().expect("asset");
        chain
            .submit(60, Call::SelfRegister)
            .await
            .expect("customer");
        chain
            .submit(
                3,
                Call::Issue {
                    asset: cny,
                    to: id(60),
                    amount: Amount::new(100),
                },
            )
            .await
            .expect("issued");
        // The platform's admin rotates its customer's lost key; the regulator then freezes the
        // asset it holds before the rotation falls due.
        chain.submit(1, rotate(60, 70)).await.expect("asked");
        let due = chain.height + ROTATION_DELAY;
        chain
            .submit(
                4,
                Call::Freeze {
                    target: FreezeTarget::Asset(cny),
                },
            )
            .await
            .expect("asset frozen");
        while chain.height <= due {
            assert!(chain.block(Vec::new()).await.is_empty());
        }
        let held = async |chain: &Chain, who: u64| -> Option<u64> {
            chain
                .read(&consort_types::state_key::balance(&cny, &id(who)))
                .await
        };
        assert_eq!(
            held(&chain, 60).await,
            Some(100),
            "the frozen balance stays"
        );
        assert_eq!(held(&chain, 70).await, None);
        assert!(
            chain
                .read::<Registration>(&key::registration(&id(70)))
                .await
                .is_none(),
            "the rotation is dropped"
        );
        assert!(
            chain
                .read::<PendingRotation>(&key::rotation(&id(60)))
                .await
                .is_none()
        );
    });
}
