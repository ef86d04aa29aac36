//! The one ledger through the runtime, on a chain without governance or peg: native
//! transfers move value and use nonces; a replay, an overdraft or an unknown sender changes
//! nothing else; supply is conserved.

use crate::harness;
use commonware_cryptography::{Signer as _, ed25519};
use commonware_runtime::{Runner as _, deterministic};
use consort_chain::rules::Rules;
use consort_state::{self as state, Databases};
use consort_types::{
    Account, AccountId, Amount, Call, Genesis, GenesisAccount, GenesisValidator, SignedTx, Tx,
    TxError,
};

const CHAIN_ID: u64 = 12;
const USERS: u64 = 4;
const FUNDS: u64 = 1_000;

fn key(seed: u64) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(seed)
}

fn id(seed: u64) -> AccountId {
    AccountId::new(key(seed).public_key())
}

fn genesis() -> Genesis {
    Genesis {
        chain_id: CHAIN_ID,
        genesis_time_ms: 0,
        validators: (100..104)
            .map(|i| GenesisValidator {
                public_key: id(i),
                p2p_address: format!("127.0.0.1:{}", 33_000 + i),
            })
            .collect(),
        accounts: (1..=USERS)
            .map(|i| GenesisAccount {
                id: id(i),
                balance: Amount::new(FUNDS),
            })
            .collect(),
        peg: None,
        governance: None,
        epoch_blocks: None,
        account_limits: None,
        empty_block_interval_ms: None,
        commerce: None,
    }
}

fn transfer(from: u64, to: u64, nonce: u64, amount: u64) -> SignedTx {
    Tx {
        chain_id: CHAIN_ID,
        sender: id(from),
        nonce,
        call: Call::Transfer {
            to: id(to),
            amount: Amount::new(amount),
        },
    }
    .sign(&key(from))
}

/// What one block did: transactions included, and the errors of those refused a place or
/// failed at execution.
struct Outcome {
    included: usize,
    rejected: Vec<TxError>,
    failed: Vec<TxError>,
}

struct Chain {
    databases: Databases<deterministic::Context>,
    genesis: Genesis,
    height: u64,
}

impl Chain {
    async fn new(context: deterministic::Context) -> Self {
        let databases = harness::open(context, "ledger-test").await;
        let mut chain = Self {
            databases,
            genesis: genesis(),
            height: 0,
        };
        assert_eq!(chain.block(Vec::new()).await.included, 0);
        chain
    }

    async fn block(&mut self, txs: Vec<SignedTx>) -> Outcome {
        self.height += 1;
        let rules = Rules {
            genesis: &self.genesis,
            peg: None,
            gov: None,
            commerce: None,
        };
        let ran = harness::block(&self.databases, self.height, txs, rules).await;
        Outcome {
            included: ran.included.len(),
            rejected: ran.rejected.into_iter().map(|(_, e)| e).collect(),
            failed: ran.failures.into_iter().map(|(_, e)| e).collect(),
        }
    }

    async fn account(&self, who: u64) -> Option<Account> {
        state::read_account(&self.databases, &id(who))
            .await
            .expect("read")
    }

    async fn balance(&self, who: u64) -> u64 {
        self.account(who).await.map_or(0, |a| a.balance.units())
    }

    async fn nonce(&self, who: u64) -> u64 {
        self.account(who).await.map_or(0, |a| a.nonce)
    }
}

fn run<F, Fut>(scenario: F)
where
    F: FnOnce(deterministic::Context) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    deterministic::Runner::seeded(7).start(scenario);
}

#[test]
fn a_transfer_moves_value_and_uses_the_nonce_and_a_replay_changes_nothing() {
    run(|context| async move {
        let mut chain = Chain::new(context).await;
        let sent = chain.block(vec![transfer(1, 2, 0, 30)]).await;
        assert_eq!((sent.included, sent.failed.len()), (1, 0));
        assert_eq!(chain.balance(1).await, FUNDS - 30);
        assert_eq!(chain.balance(2).await, FUNDS + 30);
        assert_eq!(chain.nonce(1).await, 1);
        // The same transaction again: it has no place (its nonce is used) and changes nothing.
        let replay = chain.block(vec![transfer(1, 2, 0, 30)]).await;
        assert_eq!(replay.included, 0);
        assert_eq!(chain.balance(1).await, FUNDS - 30);
        assert_eq!(chain.nonce(1).await, 1);
    });
}

#[test]
fn an_overdraft_is_included_as_failed_uses_its_nonce_and_moves_nothing() {
    run(|context| async move {
        let mut chain = Chain::new(context).await;
        let block = chain.block(vec![transfer(1, 2, 0, FUNDS + 1)]).await;
        assert_eq!(block.included, 1);
        assert!(
            matches!(
                block.failed.as_slice(),
                [TxError::InsufficientBalance { .. }]
            ),
            "{:?}",
            block.failed
        );
        assert_eq!(chain.balance(1).await, FUNDS);
        assert_eq!(chain.balance(2).await, FUNDS);
        assert_eq!(
            chain.nonce(1).await,
            1,
            "a failed transaction uses its nonce"
        );
        // The next nonce runs.
        let next = chain.block(vec![transfer(1, 2, 1, 5)]).await;
        assert_eq!((next.included, next.failed.len()), (1, 0));
        assert_eq!(chain.balance(2).await, FUNDS + 5);
    });
}

#[test]
fn an_unknown_sender_is_refused_a_place_and_a_self_transfer_only_uses_the_nonce() {
    run(|context| async move {
        let mut chain = Chain::new(context).await;
        let stranger = chain.block(vec![transfer(9, 2, 0, 1)]).await;
        assert_eq!(stranger.included, 0);
        assert!(
            matches!(stranger.rejected.as_slice(), [TxError::UnknownAccount(_)]),
            "{:?}",
            stranger.rejected
        );
        assert_eq!(chain.account(9).await, None);
        let own = chain.block(vec![transfer(1, 1, 0, 400)]).await;
        assert_eq!((own.included, own.failed.len()), (1, 0));
        assert_eq!(chain.balance(1).await, FUNDS);
        assert_eq!(chain.nonce(1).await, 1);
    });
}

#[test]
fn supply_is_conserved_over_many_transfers_some_failing() {
    run(|context| async move {
        let mut chain = Chain::new(context).await;
        let mut nonces = [0u64; USERS as usize];
        for round in 0..20u64 {
            let mut txs = Vec::new();
            for step in 0..16u64 {
                let from = 1 + (round + step) % USERS;
                let to = 1 + (round * 7 + step * 3) % USERS;
                // Some overdraw: they fail, use their nonce and move nothing.
                let amount = (round * 131 + step * 17) % 700;
                let slot = usize::try_from(from - 1).expect("small");
                txs.push(transfer(from, to, nonces[slot], amount));
                nonces[slot] += 1;
            }
            let block = chain.block(txs).await;
            assert_eq!(block.included, 16, "every transaction has its place");
            let mut total = 0;
            for user in 1..=USERS {
                total += chain.balance(user).await;
            }
            assert_eq!(total, USERS * FUNDS, "supply changed in round {round}");
        }
    });
}
