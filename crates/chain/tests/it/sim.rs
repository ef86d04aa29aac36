//! A Consort validator set for the glue simulation harness: N validators with the real stack
//! (simplex, marshal, stateful QMDB state) on the simulated network, a genesis with funded
//! accounts, and the same transfers queued in every mempool (as gossip would).

use commonware_consensus::marshal::{core::Mailbox as MarshalMailbox, standard::Standard};
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_cryptography::{Signer, ed25519};
use commonware_glue::simulate::{
    engine::{EngineDefinition, InitContext},
    processed::ProcessedHeight,
    reporter::MonitorReporter,
    tracker::FinalizationUpdate,
};
use commonware_p2p::{Receiver, Sender, simulated::Oracle};
use commonware_runtime::{Handle, Quota, Spawner as _, Supervisor as _, deterministic};
use commonware_utils::{NZU32, channel::mpsc};
use consort_chain::{
    Mempool,
    application::NoObserver,
    validator::{self, Channels},
};
use consort_state as state;
use consort_types::{
    Account, AccountId, Amount, Block, Call, Genesis, GenesisAccount, GenesisValidator, SignedTx,
    Tx,
};
use std::sync::Arc;

pub const CHAIN_ID: u64 = 7;
pub const FUNDED: u64 = 8;
pub const FUNDING: u64 = 1_000_000;

pub fn validator_key(i: u64) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(i)
}

pub fn user_key(i: u64) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(10_000 + i)
}

pub fn user(i: u64) -> AccountId {
    AccountId::new(user_key(i).public_key())
}

pub fn genesis(n: u64) -> Genesis {
    Genesis {
        chain_id: CHAIN_ID,
        genesis_time_ms: 0,
        validators: (0..n)
            .map(|i| GenesisValidator {
                public_key: AccountId::new(validator_key(i).public_key()),
                p2p_address: format!("127.0.0.1:{}", 30_000 + i),
            })
            .collect(),
        accounts: (0..FUNDED)
            .map(|i| GenesisAccount {
                id: user(i),
                balance: Amount::new(FUNDING),
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

/// `per_sender` transfers from each funded account to the next one.
pub fn transfers(per_sender: u64) -> Vec<SignedTx> {
    let mut txs = Vec::new();
    for nonce in 0..per_sender {
        for from in 0..FUNDED {
            let to = (from + 1 + nonce) % FUNDED;
            txs.push(
                Tx {
                    chain_id: CHAIN_ID,
                    sender: user(from),
                    nonce,
                    call: Call::Transfer {
                        to: user(to),
                        amount: Amount::new(1 + from + nonce),
                    },
                }
                .sign(&user_key(from)),
            );
        }
    }
    txs
}

/// Balances after `txs` apply to genesis, computed without the chain.
pub fn expected_accounts(genesis: &Genesis, txs: &[SignedTx]) -> Vec<(AccountId, Account)> {
    // A model of the ledger, independent of the chain's code.
    let mut accounts: std::collections::BTreeMap<AccountId, Account> = genesis
        .accounts
        .iter()
        .map(|a| {
            (
                a.id,
                Account {
                    balance: a.balance,
                    nonce: 0,
                },
            )
        })
        .collect();
    for tx in txs {
        let Call::Transfer { to, amount } = tx.tx.call else {
            panic!("scenario transactions are transfers");
        };
        let sender = accounts.entry(tx.tx.sender).or_default();
        assert_eq!(sender.nonce, tx.tx.nonce, "scenario nonces are consecutive");
        sender.balance = sender
            .balance
            .checked_sub(amount)
            .expect("scenario transfers are funded");
        sender.nonce += 1;
        let recipient = accounts.entry(to).or_default();
        recipient.balance = recipient.balance.checked_add(amount).expect("no overflow");
    }
    (0..FUNDED)
        .map(|i| (user(i), accounts.get(&user(i)).copied().expect("funded")))
        .collect()
}

#[derive(Clone)]
pub struct State {
    pub marshal: MarshalMailbox<Scheme, Standard<Block>>,
    pub stateful: consort_chain::validator::StatefulMailbox<deterministic::Context>,
    pub clock: Arc<std::sync::Mutex<deterministic::Context>>,
    /// Where this validator's storage partitions are named from.
    pub prefix: String,
}

impl ProcessedHeight for State {
    async fn processed_height(&self) -> u64 {
        self.marshal
            .get_processed()
            .await
            .map_or(0, |p| p.height().get())
    }
}

impl State {
    /// A record of the finalized state (chunked records included).
    pub async fn record<T: commonware_codec::Read<Cfg = ()>>(
        &self,
        key: &consort_types::Digest,
    ) -> Option<T> {
        use commonware_glue::stateful::db::DatabaseSet as _;
        let databases = self.stateful.subscribe_databases().await;
        let batch = databases.new_batches().await;
        consort_state::Store::new(&batch)
            .get(key)
            .await
            .expect("state reads")
    }

    /// A fixed-size record of the finalized state (one state value).
    pub async fn record_fixed<
        T: commonware_codec::Read<Cfg = ()> + commonware_codec::EncodeSize,
    >(
        &self,
        key: &consort_types::Digest,
    ) -> Option<T> {
        use commonware_glue::stateful::db::DatabaseSet as _;
        let databases = self.stateful.subscribe_databases().await;
        let batch = databases.new_batches().await;
        consort_state::Store::new(&batch)
            .get_fixed(key)
            .await
            .expect("state reads")
    }

    pub async fn account(&self, id: &AccountId) -> Option<Account> {
        let databases = self.stateful.subscribe_databases().await;
        state::read_account(&databases, id)
            .await
            .expect("state reads")
    }
}

#[derive(Clone)]
pub struct Chain {
    pub genesis: Arc<Genesis>,
    pub txs: Vec<SignedTx>,
}

impl Chain {
    pub fn new(validators: u64, txs: Vec<SignedTx>) -> Self {
        Self {
            genesis: Arc::new(genesis(validators)),
            txs,
        }
    }

    /// A chain with its own genesis.
    pub fn with_genesis(genesis: Genesis, txs: Vec<SignedTx>) -> Self {
        Self {
            genesis: Arc::new(genesis),
            txs,
        }
    }
}

impl Chain {
    /// The genesis validator key behind `public_key`.
    pub fn signer(&self, public_key: &ed25519::PublicKey) -> ed25519::PrivateKey {
        (0..self.genesis.validators.len() as u64)
            .map(validator_key)
            .find(|k| &k.public_key() == public_key)
            .expect("a genesis validator")
    }

    /// Start the validator `public_key` over `channels`, its mempool holding the scenario's
    /// transfers. Engine definitions that wrap a validator's channels (a Byzantine one) call this
    /// after wrapping.
    pub async fn start_validator<S, R>(
        &self,
        context: deterministic::Context,
        index: usize,
        public_key: &ed25519::PublicKey,
        oracle: &Oracle<ed25519::PublicKey, deterministic::Context>,
        channels: Channels<S, R>,
        monitor: mpsc::UnboundedSender<FinalizationUpdate<ed25519::PublicKey>>,
    ) -> (Handle<()>, State)
    where
        S: Sender<PublicKey = ed25519::PublicKey>,
        R: Receiver<PublicKey = ed25519::PublicKey>,
    {
        let mempool = Mempool::new();
        for tx in &self.txs {
            let sender = Account {
                balance: Amount::new(FUNDING),
                nonce: 0,
            };
            let _ = mempool.admit(tx.clone(), Some(sender), false);
        }
        let pk = public_key.clone();
        let prefix = format!("validator-{index}");
        let config = validator::Config {
            genesis: self.genesis.clone(),
            signer: self.signer(public_key),
            partition_prefix: prefix.clone(),
            mempool,
            observer: Arc::new(NoObserver),
            tracker: {
                use commonware_p2p::Manager as _;
                let mut manager = oracle.manager();
                Box::new(move |epoch, committee| {
                    let _ = manager.track(epoch, consort_chain::epochs::participants(committee));
                })
            },
            page_cache_mib: validator::PAGE_CACHE_MIB_MIN,
        };
        let peers = oracle.manager();
        let blocker = oracle.control(pk.clone());
        let clock = Arc::new(std::sync::Mutex::new(context.child("clock")));
        // The whole stack runs under one task, so that a crash (aborting it) stops every actor
        // and frees its storage for the restart.
        let (started, state) = futures::channel::oneshot::channel();
        let root = context.child("root").spawn(move |context| async move {
            let running = validator::start(
                context.child("validator"),
                config,
                channels,
                peers,
                blocker,
                move |inner| MonitorReporter::new(pk, monitor, inner),
            )
            .await;
            let _ = started.send(State {
                marshal: running.marshal,
                stateful: running.stateful,
                clock,
                prefix,
            });
            let _ = running.engine.await;
        });
        let state = state.await.expect("the validator starts");
        (root, state)
    }
}

impl EngineDefinition for Chain {
    type PublicKey = ed25519::PublicKey;
    type Engine = Handle<()>;
    type State = State;

    fn participants(&self) -> Vec<ed25519::PublicKey> {
        self.genesis.validator_keys()
    }

    fn channels(&self) -> Vec<(u64, Quota)> {
        validator::channel::CONSENSUS
            .iter()
            .map(|c| (*c, Quota::per_second(NZU32!(100_000))))
            .collect()
    }

    fn max_message_size(&self) -> u32 {
        validator::max_message_size(self.genesis.validators.len() as u32)
    }

    async fn init(&self, ctx: InitContext<'_, ed25519::PublicKey>) -> (Handle<()>, State) {
        let channels = Channels::from_ordered(ctx.channels.into_iter());
        self.start_validator(
            ctx.context,
            ctx.index,
            ctx.public_key,
            ctx.oracle,
            channels,
            ctx.monitor,
        )
        .await
    }

    fn start(engine: Handle<()>) -> Handle<()> {
        engine
    }
}
