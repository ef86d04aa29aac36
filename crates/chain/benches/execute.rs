//! One validator's work on a block of shop orders, without the network: executing the block
//! (every call, the conservation check, merkleizing the state) and applying it to the
//! database, in commonware's deterministic runtime on a real QMDB.
//!
//! Blocks run as a pipeline in steady state, the mix `consort bench orders` sends: each block
//! places and pays [`ORDERS_PER_BLOCK`] new orders (one transaction each) and moves every
//! earlier cohort one step on, accepted, shipped (sealed labels), picked up and in transit,
//! out for delivery and delivered (many per transaction), confirmed (one transaction each,
//! which settles escrow to the seller less the fee). So a block settles as many orders as it
//! places, and the time per block over [`ORDERS_PER_BLOCK`] is the execution time of one
//! whole order life. Four validators do this work four times over in `consort bench orders`;
//! this measures it alone (two runs of one build agree within about 3%).
//!
//! `cargo bench -p consort-chain --bench execute`

use commonware_codec::Encode as _;
use commonware_cryptography::{Signer as _, ed25519};
use commonware_glue::stateful::db::DatabaseSet as _;
use commonware_runtime::{Runner as _, deterministic};
use consort_chain::{
    rules::{BlockInfo, Rules},
    runtime::{Mode, execute_block},
};
use consort_commerce::Commerce;
use consort_governance::Gov;
use consort_state::{Databases, db_config};
use consort_types::{
    AccountId, Amount, Asset, Call, Genesis, GenesisValidator, Outcome, SignedTx, Tx,
    codec_util::{List, Text},
    commerce::{
        CarrierEvent, CommerceCall, CommerceConfig, LineRequest, PaymentMethod, ProductContent,
        ProductKind, RecordId, SHIP_ORDERS_MAX, ShipLine, ShipmentStatus, Shipping, VariantSpec,
    },
    gov::{GenesisOrg, GovernanceConfig, Mode as GovMode, OrgKind},
    sealed::{self, Sealed},
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::{
    sync::mpsc,
    time::{Duration, Instant},
};

const CHAIN_ID: u64 = 9;
/// New orders per block, and orders settled per block once the pipeline is full.
const ORDERS_PER_BLOCK: usize = 128;
/// Blocks from placing to confirming: place, accept, ship, pick up, deliver, confirm.
const STEPS: usize = 6;
const PRICE: u64 = 1_000;

const OPERATOR: u64 = 1;
const SHOP: u64 = 2;
const BANK: u64 = 3;
const REGULATOR: u64 = 4;
const CARRIER: u64 = 5;
const FEE: u64 = 6;
/// Customers: one order open each, so a cohort per step of the pipeline.
const FIRST_CUSTOMER: u64 = 1_000;
const CUSTOMERS: usize = ORDERS_PER_BLOCK * STEPS;

fn key(seed: u64) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(seed)
}

fn id(seed: u64) -> AccountId {
    AccountId::new(key(seed).public_key())
}

fn cny() -> Asset {
    "CNY".parse().expect("asset")
}

fn text<const N: usize>(s: &str) -> Text<N> {
    Text::new(s).expect("fits")
}

fn customer(i: usize) -> u64 {
    FIRST_CUSTOMER + i as u64
}

fn genesis() -> Genesis {
    let founder = |name: &str, kind, admin| GenesisOrg {
        id: name.parse().expect("org id"),
        kind,
        admins: vec![id(admin)],
    };
    Genesis {
        chain_id: CHAIN_ID,
        genesis_time_ms: 0,
        validators: (200..204)
            .map(|i| GenesisValidator {
                public_key: id(i),
                p2p_address: format!("127.0.0.1:{}", 33_000 + i),
            })
            .collect(),
        accounts: Vec::new(),
        peg: None,
        governance: Some(GovernanceConfig {
            mode: GovMode::Consortium,
            organisations: vec![
                founder("platform", OrgKind::Operator, OPERATOR),
                founder("shop", OrgKind::Seller, SHOP),
                founder("bank", OrgKind::Bank, BANK),
                founder("reg", OrgKind::Regulator, REGULATOR),
                founder("express", OrgKind::Logistics, CARRIER),
            ],
            registrar: "platform".parse().expect("org id"),
            vote_period_blocks: 10,
            alert_threshold: None,
            customers: (0..CUSTOMERS).map(|i| id(customer(i))).collect(),
            rotation_delay_blocks: None,
        }),
        epoch_blocks: None,
        account_limits: None,
        empty_block_interval_ms: None,
        commerce: Some(CommerceConfig {
            fee_rate_bp: 250,
            fee_account: id(FEE),
            payment_window_ms: 60_000,
            receipt_window_ms: 600_000,
            after_sale_window_ms: 300_000,
        }),
    }
}

fn seal(payload: &[u8], to: &[u64]) -> Sealed {
    let recipients: Vec<_> = to
        .iter()
        .map(|w| (id(*w), sealed::keypair(&key(*w).encode()).1))
        .collect();
    sealed::seal(payload, &recipients, b"consort/bench/execute").expect("seals")
}

/// The chain, its signers' next nonces and the orders in flight by cohort.
struct Shop {
    databases: Databases<deterministic::Context>,
    genesis: Genesis,
    gov: Gov,
    commerce: Commerce,
    height: u64,
    time_ms: u64,
    nonces: std::collections::BTreeMap<u64, u64>,
    /// Signers' keys, derived once: deriving one costs more than signing with it.
    keys: std::collections::BTreeMap<u64, ed25519::PrivateKey>,
    product: RecordId,
    addresses: Vec<Sealed>,
    labels: Vec<Sealed>,
    /// Cohort placed `k` blocks ago (front: newest): its customers' indices and order ids.
    cohorts: std::collections::VecDeque<Vec<(usize, RecordId)>>,
    /// The cohort of customers placing next.
    next_cohort: usize,
}

impl Shop {
    fn tx(&mut self, who: u64, call: Call) -> SignedTx {
        let nonce = self.nonces.entry(who).or_default();
        let signer = self.keys.entry(who).or_insert_with(|| key(who));
        let tx = Tx {
            chain_id: CHAIN_ID,
            sender: AccountId::new(signer.public_key()),
            nonce: *nonce,
            call,
        }
        .sign(signer);
        *nonce += 1;
        tx
    }

    /// Execute and apply one block of `txs`; every one must apply.
    async fn run(&mut self, txs: Vec<SignedTx>) -> Vec<SignedTx> {
        self.height += 1;
        self.time_ms += 1_000;
        let batch = self.databases.new_batches().await;
        let executed = execute_block(
            batch,
            BlockInfo {
                height: self.height,
                timestamp_ms: self.time_ms,
            },
            txs,
            Rules {
                genesis: &self.genesis,
                peg: None,
                gov: Some(&self.gov),
                commerce: Some(&self.commerce),
            },
            Mode::Verify,
        )
        .await
        .expect("the block executes");
        assert!(
            executed.outcomes.iter().all(Outcome::is_applied),
            "every transaction applies: {:?}",
            executed.failures.first()
        );
        let included = executed.included.to_vec();
        self.databases.apply(executed.merkleized).await;
        included
    }

    /// The next block of the pipeline: a new cohort placed, every earlier one a step on.
    fn next_block(&mut self) -> Vec<SignedTx> {
        let mut txs = Vec::new();
        let cohort = self.next_cohort;
        self.next_cohort = (cohort + 1) % STEPS;
        let mut placed = Vec::with_capacity(ORDERS_PER_BLOCK);
        for slot in 0..ORDERS_PER_BLOCK {
            let c = cohort * ORDERS_PER_BLOCK + slot;
            let call = Call::Commerce(CommerceCall::PlaceOrder {
                lines: List(vec![LineRequest {
                    product: self.product,
                    variant: 0,
                    quantity: 1,
                    price: PRICE,
                }]),
                method: PaymentMethod::Wallet,
                pay: true,
                address: self.addresses[c].clone(),
            });
            txs.push(self.tx(customer(c), call));
            // The place transactions come first, so each takes the index of its slot.
            placed.push((
                c,
                RecordId {
                    height: self.height + 1,
                    index: u32::try_from(slot).expect("fits"),
                },
            ));
        }
        let orders = |k: usize, cohorts: &std::collections::VecDeque<Vec<(usize, RecordId)>>| {
            cohorts.get(k).cloned().unwrap_or_default()
        };
        let accept = orders(0, &self.cohorts);
        if !accept.is_empty() {
            let call = CommerceCall::AcceptOrders {
                orders: List(accept.iter().map(|(_, o)| *o).collect()),
            };
            txs.push(self.tx(SHOP, Call::Commerce(call)));
        }
        let ship = orders(1, &self.cohorts);
        for part in ship.chunks(SHIP_ORDERS_MAX) {
            let shipments = part
                .iter()
                .map(|(c, order)| Shipping {
                    order: *order,
                    lines: List(vec![ShipLine {
                        line: 0,
                        quantity: 1,
                    }]),
                    carrier: "express".parse().expect("org id"),
                    label: self.labels[*c].clone(),
                })
                .collect();
            let call = CommerceCall::ShipOrders {
                shipments: List(shipments),
            };
            txs.push(self.tx(SHOP, Call::Commerce(call)));
        }
        for (k, [first, second]) in [
            (2, [ShipmentStatus::PickedUp, ShipmentStatus::InTransit]),
            (
                3,
                [ShipmentStatus::OutForDelivery, ShipmentStatus::Delivered],
            ),
        ] {
            let moved = orders(k, &self.cohorts);
            if moved.is_empty() {
                continue;
            }
            let events = moved
                .iter()
                .flat_map(|(_, order)| {
                    [first, second].map(|status| CarrierEvent {
                        order: *order,
                        shipment: 0,
                        status,
                        location: text("Shanghai hub"),
                    })
                })
                .collect();
            let call = CommerceCall::CarrierEvents {
                events: List(events),
            };
            txs.push(self.tx(CARRIER, Call::Commerce(call)));
        }
        for (c, order) in orders(4, &self.cohorts) {
            let call = Call::Commerce(CommerceCall::ConfirmReceipt { order });
            txs.push(self.tx(customer(c), call));
        }
        self.cohorts.push_front(placed);
        self.cohorts.truncate(STEPS - 1);
        txs
    }
}

/// A shop with its customers funded, its product published and the pipeline full.
async fn open(context: deterministic::Context) -> Shop {
    let page_cache = commonware_runtime::buffer::paged::CacheRef::new(
        commonware_utils::NZU16!(4096),
        commonware_utils::NZUsize!(8192),
    );
    let databases = Databases::init(context, db_config("bench", page_cache), None).await;
    let genesis = genesis();
    let mut shop = Shop {
        databases,
        gov: Gov::from_genesis(&genesis).expect("governance"),
        commerce: Commerce::from_genesis(&genesis).expect("commerce"),
        genesis,
        height: 0,
        time_ms: 1_000_000,
        nonces: Default::default(),
        keys: Default::default(),
        product: RecordId::default(),
        addresses: (0..CUSTOMERS)
            .map(|c| seal(b"Room 1, 100 Nanjing Road", &[customer(c), SHOP, REGULATOR]))
            .collect(),
        labels: (0..CUSTOMERS)
            .map(|c| {
                seal(
                    b"deliver to: Room 1",
                    &[SHOP, customer(c), CARRIER, REGULATOR],
                )
            })
            .collect(),
        cohorts: Default::default(),
        next_cohort: 0,
    };
    shop.run(Vec::new()).await;
    let mut everyone = vec![OPERATOR, SHOP, BANK, REGULATOR, CARRIER];
    everyone.extend((0..CUSTOMERS).map(customer));
    let mut txs: Vec<SignedTx> = everyone
        .iter()
        .map(|who| {
            let call = Call::SetSealKey {
                key: sealed::keypair(&key(*who).encode()).1,
            };
            shop.tx(*who, call)
        })
        .collect();
    for c in 0..CUSTOMERS {
        let call = Call::Issue {
            asset: cny(),
            to: id(customer(c)),
            amount: Amount::new(u64::MAX / 4 / CUSTOMERS as u64),
        };
        txs.push(shop.tx(BANK, call));
    }
    shop.run(txs).await;
    let content = ProductContent {
        kind: ProductKind::Physical,
        title_zh: text("蓝牙耳机"),
        title_en: text("Bluetooth headphones"),
        description_zh: text("降噪，续航三十小时"),
        description_en: text("Noise cancelling, 30 hours of battery"),
        category: text("electronics/audio/headphones"),
        attributes: List(Vec::new()),
        images: List(Vec::new()),
        variants: List(vec![VariantSpec {
            name: text("black"),
            price: PRICE,
            currency: cny(),
            stock: u64::MAX / 4,
        }]),
    };
    let publish = shop.tx(
        SHOP,
        Call::Commerce(CommerceCall::PublishProduct { content }),
    );
    shop.run(vec![publish]).await;
    shop.product = RecordId {
        height: shop.height,
        index: 0,
    };
    for _ in 0..STEPS {
        let txs = shop.next_block();
        shop.run(txs).await;
    }
    shop
}

fn execute(c: &mut Criterion) {
    // The shop lives in one deterministic runtime on its own thread; each measurement asks it
    // to run some blocks and answers with the time they took (transactions are signed, and the
    // next block made, outside the timed part).
    let (ask, asked) = mpsc::channel::<u64>();
    let (answer, answers) = mpsc::channel::<Duration>();
    let runner = std::thread::spawn(move || {
        deterministic::Runner::default().start(|context| async move {
            let mut shop = open(context).await;
            while let Ok(blocks) = asked.recv() {
                let mut spent = Duration::ZERO;
                for _ in 0..blocks {
                    let txs = shop.next_block();
                    let started = Instant::now();
                    shop.run(txs).await;
                    spent += started.elapsed();
                }
                if answer.send(spent).is_err() {
                    break;
                }
            }
        });
    });
    let mut group = c.benchmark_group("execute");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Elements(ORDERS_PER_BLOCK as u64));
    group.bench_function(format!("order_lives_block_of_{ORDERS_PER_BLOCK}"), |b| {
        b.iter_custom(|blocks| {
            ask.send(blocks).expect("the shop runs");
            answers.recv().expect("the shop answers")
        });
    });
    group.finish();
    drop(ask);
    runner.join().expect("the shop's thread ends");
}

criterion_group!(benches, execute);
criterion_main!(benches);
