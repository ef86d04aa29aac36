//! `consort bench orders`: whole shop orders on a fresh devnet, from placing to settlement.
//!
//! Buyers (the bench accounts, registered customers holding a bank's e-money) order from
//! sellers (accounts of the devnet's seller organisation, one product each), and every order
//! goes the whole way through the chain, each step sent only once the previous one is final:
//!
//! 1. the buyer places and pays it in one transaction (its saved address sealed to itself,
//!    the seller and the regulator);
//! 2. the seller accepts its new orders, up to `ACCEPT_ORDERS_MAX` per transaction;
//! 3. the seller ships its accepted orders, each with a label sealed to a carrier account, up
//!    to `SHIP_ORDERS_MAX` per transaction;
//! 4. the carrier posts "picked up" and "in transit", many orders per transaction;
//! 5. the carrier posts "out for delivery" and "delivered", many orders per transaction;
//! 6. the buyer confirms receipt, which settles: escrow pays the seller less the platform fee.
//!
//! The same run first measures plain transfers on the same devnet, and reads from the
//! finalized headers how many QMDB operations the window's blocks appended.

use super::{
    BENCH_BALANCE, Socket, bench_accounts, bench_dir, connect_events, next_block_event,
    percentiles, run_transfers, wait_for_block_one,
};
use crate::devnet;
use anyhow::{Context as _, bail};
use commonware_codec::{DecodeExt as _, Encode as _};
use commonware_cryptography::{Signer as _, ed25519};
use consort_types::{
    AccountId, Amount, Asset, Call, GenesisAccount, SignedTx, Tx,
    codec_util::{List, Text},
    commerce::{
        ACCEPT_ORDERS_MAX, CARRIER_EVENTS_MAX, CarrierEvent, CommerceCall, LineRequest,
        PaymentMethod, ProductContent, ProductKind, RecordId, SHIP_ORDERS_MAX, ShipLine,
        ShipmentStatus, Shipping, VariantSpec,
    },
    gov::{GenesisOrg, OrgKind},
    hex_serde,
    sealed::{self, Sealed},
};
use serde::Serialize;
use serde_json::{Value, json};
use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    time::{Duration, Instant},
};

/// Seed offset of the sellers', carriers' and issuers' keys.
const ROLE_SEED_BASE: u64 = 0xB4_0000_0000;

/// Bank accounts that issue the buyers' e-money at the start (each within its nonce window).
const ISSUERS: usize = 8;

/// The e-money the shop sells in.
const CURRENCY: &str = "CNY";

/// Price of every product (base units).
const PRICE: u64 = 1_000;

/// E-money each buyer starts with.
const BUYER_FUNDS: u64 = 1_000_000_000;

/// Stock of each seller's product.
const STOCK: u64 = 1_000_000_000;

/// The carrier organisation the benchmark admits at genesis.
const CARRIER_ORG: &str = "express";

/// Orders per carrier transaction: two events each.
const CARRIER_ORDERS_PER_TX: usize = CARRIER_EVENTS_MAX / 2;

/// New orders enter at most `inflight / L` per finalized block, where `L` is how many blocks
/// an order's life has been taking (a running mean, starting from this guess: six steps, each
/// final about two blocks after the last). Started all at once, orders would march through
/// the six steps in lockstep, every block carrying one step of one crowd. Spread over fewer
/// blocks than a life takes, the crowds still bunch: the chain works through a run of full
/// blocks, then idles through a run of near-empty ones while the next crowd waits for room.
/// Spread over a whole life, each block carries every step of about the same number of
/// orders.
const LIFE_BLOCKS_GUESS: f64 = 12.0;

/// Weight of the newest settled order in the running mean of a life's blocks.
const LIFE_BLOCKS_WEIGHT: f64 = 1.0 / 256.0;

/// How long the driver waits for open orders to finish after the window.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Options of `consort bench orders`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Validator processes.
    pub validators: usize,
    /// Measured seconds (after warm-up), for transfers and then for orders.
    pub duration: u64,
    /// Warm-up seconds, not measured.
    pub warmup: u64,
    /// Buyer accounts.
    pub buyers: usize,
    /// Seller accounts (one product each).
    pub sellers: usize,
    /// Carrier accounts.
    pub carriers: usize,
    /// Most orders open (placed, not yet settled) at once.
    pub inflight: usize,
    /// Transactions per POST.
    pub batch: usize,
    /// Skip the transfers phase.
    pub skip_transfers: bool,
    /// Keep the devnet here instead of a temporary directory.
    pub dir: Option<PathBuf>,
    /// Also publish a catalogue and query it through node 0's shop API during the window
    /// (`consort bench search`).
    pub search: Option<super::search::Load>,
}

/// Median and 99th percentile of one step (ms), from the previous step's finalization (for
/// placing: from creating the transaction) to this step's.
#[derive(Debug, Serialize)]
pub struct Step {
    /// The step.
    pub step: &'static str,
    /// Median (ms).
    pub p50_ms: f64,
    /// 99th percentile (ms).
    pub p99_ms: f64,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Validators in the devnet.
    pub validators: usize,
    /// Cores the machine reports.
    pub cores: usize,
    /// Buyers, sellers and carriers.
    pub buyers: usize,
    /// Seller accounts.
    pub sellers: usize,
    /// Carrier accounts.
    pub carriers: usize,
    /// Measured window (s).
    pub window_s: f64,
    /// Orders settled (confirmed and paid out) in the window.
    pub lifecycles_in_window: u64,
    /// Sustained settled orders per second.
    pub lifecycles_per_s: f64,
    /// From creating the place-order transaction to the finalized confirmation (ms).
    pub latency_ms_p50: f64,
    /// 99th percentile (ms).
    pub latency_ms_p99: f64,
    /// Largest (ms).
    pub latency_ms_max: f64,
    /// Each step's share of the latency.
    pub steps: Vec<Step>,
    /// Shop transactions finalized in the window, per second.
    pub shop_txs_per_s: f64,
    /// Shop transactions per settled order.
    pub txs_per_lifecycle: f64,
    /// Blocks finalized in the window.
    pub blocks_in_window: u64,
    /// Longest wait between two finalized blocks in the window (or between an edge of the
    /// window and its nearest block), as node 0's event stream delivered them (ms): a few
    /// hundred on a healthy chain under load; a stall (no block for seconds) shows here.
    pub block_gap_ms_max: f64,
    /// QMDB operations the window's blocks appended (from their headers' operation ranges).
    pub qmdb_ops_in_window: u64,
    /// QMDB operations per settled order.
    pub qmdb_ops_per_lifecycle: f64,
    /// Orders placed in the whole run, and settled (after the window, open orders finish).
    pub orders_placed: u64,
    /// Orders settled in the whole run.
    pub orders_settled: u64,
    /// Shop transactions that failed on chain, by code (should be empty).
    pub failed: BTreeMap<String, u64>,
    /// Transactions the nodes refused at admission (should be 0).
    pub refused: u64,
    /// The sellers' e-money after the run: every settled order paid the price less the fee.
    pub sellers_received: u64,
    /// What the settled orders owe the sellers.
    pub sellers_expected: u64,
    /// Plain transfers on the same devnet, measured just before the orders.
    pub transfers: Option<super::Report>,
    /// Settled orders per second over finalized transfers per second.
    pub ratio_lifecycles_to_transfers: Option<f64>,
    /// Catalogue queries measured in the same window (`consort bench search`).
    pub search: Option<super::search::Report>,
    /// Processor time per settled order in the window (ms): the validators' and this
    /// driver's, user and system, read from `/proc` at the window's ends (`None` without
    /// procfs). Steadier than orders per second on a shared machine, and what a change to
    /// the work per order moves. With `--search` it holds the queries' work too.
    pub cpu_ms_per_lifecycle: Option<f64>,
    /// Cores the validators kept busy in the window, all together.
    pub validators_cores: Option<f64>,
    /// Cores this driver (signing, posting, following blocks) kept busy in the window.
    pub driver_cores: Option<f64>,
}

/// Processor time the validators and the driver had used at one moment.
#[derive(Clone, Copy, Debug)]
struct CpuSample {
    at: Instant,
    validators: Duration,
    driver: Duration,
}

impl CpuSample {
    /// Read now; `None` if a process's time cannot be read.
    fn take(validators: &[u32]) -> Option<Self> {
        let mut total = Duration::ZERO;
        for pid in validators {
            total += cpu_time(*pid)?;
        }
        Some(Self {
            at: Instant::now(),
            validators: total,
            driver: cpu_time(std::process::id())?,
        })
    }
}

/// User and system time process `pid` (all its threads) has used, from `/proc/<pid>/stat`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from its last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    // utime and stime, fields 14 and 15 of the line: 11 and 12 after the name.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK).ok()??;
    let per_second = u64::try_from(per_second).ok().filter(|t| *t > 0)?;
    Some(Duration::from_nanos(
        ticks.saturating_mul(1_000_000_000) / per_second,
    ))
}

/// An account the driver signs for, with its next nonce and the node it posts to.
struct Actor {
    key: ed25519::PrivateKey,
    id: AccountId,
    nonce: u64,
    node: usize,
}

impl Actor {
    fn new(key: ed25519::PrivateKey, node: usize) -> Self {
        let id = AccountId::new(key.public_key());
        Self {
            key,
            id,
            nonce: 0,
            node,
        }
    }

    fn sign(&mut self, call: Call) -> SignedTx {
        let tx = Tx {
            chain_id: 1,
            sender: self.id,
            nonce: self.nonce,
            call,
        }
        .sign(&self.key);
        self.nonce += 1;
        tx
    }

    fn seal_key(&self) -> sealed::SealKey {
        sealed::keypair(&self.key.encode()).1
    }
}

fn role_key(i: usize) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(ROLE_SEED_BASE + i as u64)
}

fn text<const N: usize>(s: &str) -> anyhow::Result<Text<N>> {
    Text::new(s).ok_or_else(|| anyhow::anyhow!("{s:?} is longer than {N} bytes"))
}

/// Run the benchmark, printing progress to stderr.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    if options.buyers < 2 || options.sellers == 0 || options.carriers == 0 {
        bail!("--buyers must be ≥ 2, --sellers and --carriers ≥ 1");
    }
    if options.batch == 0 || options.duration == 0 || options.inflight == 0 {
        bail!("--batch, --duration and --inflight must be > 0");
    }
    // Every open order may have a step pending from its seller: each seller's share must fit
    // its nonce window, with room for the accepts.
    let window = consort_types::limits::NONCE_WINDOW_MAX as usize;
    if options.inflight.div_ceil(options.sellers) > window / 2 {
        bail!(
            "--inflight {} over --sellers {} leaves a seller more pending transactions than \
             half its nonce window ({window}); add sellers or lower --inflight",
            options.inflight,
            options.sellers
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (buyer_keys, buyer_ids) = bench_accounts(options.buyers);
    let sellers: Vec<ed25519::PrivateKey> = (0..options.sellers).map(role_key).collect();
    let carriers: Vec<ed25519::PrivateKey> = (0..options.carriers)
        .map(|i| role_key(options.sellers + i))
        .collect();
    let issuers: Vec<ed25519::PrivateKey> = (0..ISSUERS)
        .map(|i| role_key(options.sellers + options.carriers + i))
        .collect();
    let (dir, _temp) = bench_dir(options.dir.as_ref())?;
    eprintln!(
        "[1/6] starting {} validators in {} ({} buyers, {} sellers, {} carriers)",
        options.validators,
        dir.display(),
        options.buyers,
        options.sellers,
        options.carriers
    );
    let extra = buyer_ids
        .iter()
        .map(|id| GenesisAccount {
            id: *id,
            balance: Amount::new(BENCH_BALANCE),
        })
        .collect();
    let staff = |keys: &[ed25519::PrivateKey]| -> Vec<AccountId> {
        keys.iter()
            .map(|k| AccountId::new(k.public_key()))
            .collect()
    };
    let (seller_ids, carrier_ids, issuer_ids) =
        (staff(&sellers), staff(&carriers), staff(&issuers));
    let configs = devnet::prepare_with(options.validators, &dir, extra, None, None, |genesis| {
        let Some(gov) = genesis.governance.as_mut() else {
            return;
        };
        for org in &mut gov.organisations {
            match org.kind {
                OrgKind::Seller => org.admins.extend(&seller_ids),
                OrgKind::Bank => org.admins.extend(&issuer_ids),
                _ => {}
            }
        }
        gov.organisations.push(GenesisOrg {
            id: CARRIER_ORG.parse().expect("valid organisation id"),
            kind: OrgKind::Logistics,
            admins: carrier_ids.clone(),
        });
        for id in seller_ids.iter().chain(&carrier_ids).chain(&issuer_ids) {
            genesis.accounts.push(GenesisAccount {
                id: *id,
                balance: Amount::new(0),
            });
        }
    })?;
    if options.search.is_none() {
        devnet::without_shop(&configs)?;
    }
    let mut children = devnet::spawn(&dir, &configs)?;
    let result = (|| {
        let urls = devnet::wait_until_up(&configs, &mut children, &dir)?;
        wait_for_block_one(&urls)?;
        let regulator = consort_node::node::load_key(&dir.join("accounts/dave.key"))
            .context("the devnet's regulator key")?;
        let nodes = urls.len();
        let mut shop = Shop {
            buyers: buyer_keys
                .iter()
                .enumerate()
                .map(|(i, k)| Actor::new(k.clone(), i % nodes))
                .collect(),
            sellers: sellers
                .iter()
                .enumerate()
                .map(|(i, k)| Actor::new(k.clone(), i % nodes))
                .collect(),
            carriers: carriers
                .iter()
                .enumerate()
                .map(|(i, k)| Actor::new(k.clone(), i % nodes))
                .collect(),
            products: Vec::new(),
            addresses: Vec::new(),
            labels: Vec::new(),
        };
        let mut issuers: Vec<Actor> = issuers
            .iter()
            .enumerate()
            .map(|(i, k)| Actor::new(k.clone(), i % nodes))
            .collect();
        let mut regulator = Actor::new(regulator, 0);
        regulator.nonce = account_nonce(&urls[0], &regulator.id)?;
        setup(&urls, &mut shop, &mut issuers, &regulator)?;
        if let Some(load) = options.search {
            publish_catalogue(&urls, &mut shop, load.products)?;
        }
        let transfers = if options.skip_transfers {
            None
        } else {
            eprintln!("[4/6] transfers between the buyers on the same devnet");
            let nonces: Vec<u64> = shop.buyers.iter().map(|b| b.nonce).collect();
            let report = run_transfers(
                &super::Options {
                    validators: options.validators,
                    duration: options.duration,
                    warmup: options.warmup,
                    accounts: options.buyers,
                    batch: 512,
                    inflight: consort_types::limits::BLOCK_TXS_MAX,
                    dir: None,
                },
                &urls,
                &buyer_keys,
                &buyer_ids,
                &nonces,
            )?;
            eprintln!(
                "      {:.0} transfers/s, p99 {:.0} ms; letting the chain drain",
                report.finalized_tps, report.latency_ms_p99
            );
            for buyer in &mut shop.buyers {
                buyer.nonce = wait_settled_nonce(&urls[buyer.node], &buyer.id)?;
            }
            Some(report)
        };
        eprintln!(
            "[5/6] driving orders: {}s warm-up, {}s measured, at most {} open",
            options.warmup, options.duration, options.inflight
        );
        let started = Instant::now();
        let window = (
            started + Duration::from_secs(options.warmup),
            started + Duration::from_secs(options.warmup + options.duration),
        );
        let queries = match options.search {
            Some(load) => Some(super::search::start(&urls[0], load, window)?),
            None => None,
        };
        let pids: Vec<u32> = children.iter().map(std::process::Child::id).collect();
        let measured = drive(options, &urls, shop, &pids);
        let searched = queries.map(|q| q.stop(indexer_lag(&urls[0])));
        let measured = measured?;
        eprintln!("[6/6] reading the window's headers and the sellers' balances");
        let mut report = report(options, cores, &urls, &seller_ids, measured, transfers)?;
        report.search = searched;
        Ok(report)
    })();
    crate::process::stop(&mut children);
    result
}

/// The shop's parties and what the driver reuses for every order: each buyer buys from seller
/// `buyer % sellers` and is served by carrier `buyer % carriers`, with a saved address sealed
/// to the buyer, that seller and the regulator, and a delivery label sealed to them and the
/// carrier.
struct Shop {
    buyers: Vec<Actor>,
    sellers: Vec<Actor>,
    carriers: Vec<Actor>,
    products: Vec<RecordId>,
    addresses: Vec<Sealed>,
    labels: Vec<Sealed>,
}

impl Shop {
    fn seller_of(&self, buyer: usize) -> usize {
        buyer % self.sellers.len()
    }

    fn carrier_of(&self, buyer: usize) -> usize {
        buyer % self.carriers.len()
    }
}

fn blocking_client() -> anyhow::Result<reqwest::blocking::Client> {
    Ok(reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?)
}

fn account_nonce(url: &str, id: &AccountId) -> anyhow::Result<u64> {
    let answer: Value = blocking_client()?
        .get(format!("{url}/v1/accounts/{id}"))
        .send()?
        .json()?;
    Ok(answer["nonce"].as_u64().unwrap_or(0))
}

/// The account's nonce once nothing of it is pending on `url`.
fn wait_settled_nonce(url: &str, id: &AccountId) -> anyhow::Result<u64> {
    let http = blocking_client()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer: Value = http.get(format!("{url}/v1/accounts/{id}")).send()?.json()?;
        let (nonce, next) = (answer["nonce"].as_u64(), answer["next_nonce"].as_u64());
        if let (Some(nonce), Some(next)) = (nonce, next)
            && nonce == next
        {
            return Ok(nonce);
        }
        if Instant::now() > deadline {
            bail!("account {id} still has pending transactions after 60 s: {answer}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Post `txs`, each to its node, and wait until all are final; their places. Any refusal or
/// failure stops the benchmark: the setup must hold.
fn post_and_wait(urls: &[String], txs: Vec<(usize, SignedTx)>) -> anyhow::Result<Vec<RecordId>> {
    let http = blocking_client()?;
    let hashes: Vec<(usize, String)> = txs
        .iter()
        .map(|(node, tx)| (*node, hex_serde::encode(&tx.hash())))
        .collect();
    let mut per_node: Vec<Vec<String>> = vec![Vec::new(); urls.len()];
    for (node, tx) in &txs {
        per_node[*node].push(hex::encode(tx.encode()));
    }
    for (url, hexes) in urls.iter().zip(&per_node) {
        for chunk in hexes.chunks(512) {
            let answer: Value = http
                .post(format!("{url}/v1/txs/batch"))
                .json(&json!({ "txs": chunk }))
                .send()?
                .json()?;
            if answer["accepted"].as_u64() != Some(chunk.len() as u64) {
                bail!("{url} refused part of the setup: {answer}");
            }
        }
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut places = Vec::with_capacity(hashes.len());
    for (node, hash) in &hashes {
        loop {
            let answer: Value = http
                .get(format!("{}/v1/txs/{hash}", urls[*node]))
                .send()?
                .json()?;
            match answer["status"].as_str() {
                Some("finalized") => {
                    places.push(RecordId {
                        height: answer["height"].as_u64().unwrap_or_default(),
                        index: answer["index"]
                            .as_u64()
                            .and_then(|i| u32::try_from(i).ok())
                            .unwrap_or_default(),
                    });
                    break;
                }
                Some("failed") => bail!("a setup transaction failed: {answer}"),
                _ if Instant::now() > deadline => {
                    bail!("a setup transaction is not final after 120 s: {answer}")
                }
                _ => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
    Ok(places)
}

/// How many blocks node 0's indexer is behind its finalized tip.
fn indexer_lag(url: &str) -> u64 {
    let read = |path: &str, field: &str| -> Option<u64> {
        blocking_client()
            .ok()?
            .get(format!("{url}{path}"))
            .send()
            .ok()?
            .json::<Value>()
            .ok()?[field]
            .as_u64()
    };
    match (
        read("/v1/status", "finalized_height"),
        read("/v1/shop/status", "indexed_height"),
    ) {
        (Some(tip), Some(indexed)) => tip.saturating_sub(indexed),
        _ => u64::MAX,
    }
}

/// The sellers publish a catalogue of `products` products (`consort bench search`), and node
/// 0's indexer takes it in before anything is measured.
fn publish_catalogue(urls: &[String], shop: &mut Shop, products: usize) -> anyhow::Result<()> {
    eprintln!("      and a catalogue of {products} products for the search load");
    let contents = crate::demo::catalogue_of(products)?;
    // Each round leaves every seller well inside its nonce window.
    let per_round = shop.sellers.len() * 200;
    let mut published = 0;
    let sellers = shop.sellers.len();
    for round in contents.chunks(per_round) {
        let txs: Vec<(usize, SignedTx)> = round
            .iter()
            .enumerate()
            .map(|(n, content)| {
                let seller = &mut shop.sellers[n % sellers];
                let node = seller.node;
                (
                    node,
                    seller.sign(Call::Commerce(CommerceCall::PublishProduct {
                        content: content.clone(),
                    })),
                )
            })
            .collect();
        post_and_wait(urls, txs)?;
        published += round.len();
        eprintln!("      {published} of {products} published");
    }
    let http = blocking_client()?;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let status: Value = http
            .get(format!("{}/v1/shop/status", urls[0]))
            .send()?
            .json()?;
        let tip: Value = http.get(format!("{}/v1/status", urls[0])).send()?.json()?;
        let indexed = status["products"].as_u64().unwrap_or(0);
        if indexed >= products as u64
            && status["search_height"].as_u64() >= status["indexed_height"].as_u64()
            && status["indexed_height"].as_u64()
                >= tip["finalized_height"]
                    .as_u64()
                    .map(|t| t.saturating_sub(2))
        {
            eprintln!("      node 0's indexer holds {indexed} products");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("node 0's indexer did not take in the catalogue in 10 minutes: {status}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Publish sealing keys, issue the buyers' e-money, publish one product per seller and seal
/// every buyer's address and label.
fn setup(
    urls: &[String],
    shop: &mut Shop,
    issuers: &mut [Actor],
    regulator: &Actor,
) -> anyhow::Result<()> {
    eprintln!("[2/6] sealing keys and e-money for every buyer");
    let currency: Asset = CURRENCY.parse().expect("valid asset");
    let mut txs = Vec::new();
    let mut regulator_key = Actor::new(regulator.key.clone(), regulator.node);
    regulator_key.nonce = regulator.nonce;
    let key_of = regulator_key.seal_key();
    txs.push((0, regulator_key.sign(Call::SetSealKey { key: key_of })));
    for actor in shop
        .buyers
        .iter_mut()
        .chain(&mut shop.sellers)
        .chain(&mut shop.carriers)
    {
        let key = actor.seal_key();
        txs.push((actor.node, actor.sign(Call::SetSealKey { key })));
    }
    let issuer_count = issuers.len();
    for (i, buyer) in shop.buyers.iter().enumerate() {
        let issuer = &mut issuers[i % issuer_count];
        txs.push((
            issuer.node,
            issuer.sign(Call::Issue {
                asset: currency,
                to: buyer.id,
                amount: Amount::new(BUYER_FUNDS),
            }),
        ));
    }
    post_and_wait(urls, txs)?;

    eprintln!("[3/6] publishing products and sealing addresses and labels");
    let mut txs = Vec::new();
    for (i, seller) in shop.sellers.iter_mut().enumerate() {
        let content = ProductContent {
            kind: ProductKind::Physical,
            title_zh: text(&format!("降噪蓝牙耳机 {i} 号"))?,
            title_en: text(&format!("Noise-cancelling bluetooth headphones no. {i}"))?,
            description_zh: text("主动降噪，续航三十小时")?,
            description_en: text("Active noise cancelling, thirty hours of battery")?,
            category: text("electronics/audio")?,
            attributes: List(Vec::new()),
            images: List(Vec::new()),
            variants: List(vec![VariantSpec {
                name: text("black")?,
                price: PRICE,
                currency,
                stock: STOCK,
            }]),
        };
        txs.push((
            seller.node,
            seller.sign(Call::Commerce(CommerceCall::PublishProduct { content })),
        ));
    }
    let sealed_info = b"consort/bench-orders";
    let regulator_seal = (regulator.id, key_of);
    let (addresses, labels) = {
        let shop = &*shop;
        let buyers = shop.buyers.len();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = buyers.div_ceil(threads).max(1);
        let mut addresses = Vec::with_capacity(buyers);
        let mut labels = Vec::with_capacity(buyers);
        std::thread::scope(|scope| -> anyhow::Result<()> {
            let handles: Vec<_> = (0..buyers)
                .step_by(chunk)
                .map(|start| {
                    scope.spawn(move || -> anyhow::Result<Vec<(Sealed, Sealed)>> {
                        (start..(start + chunk).min(buyers))
                            .map(|b| {
                                let buyer = &shop.buyers[b];
                                let seller = &shop.sellers[shop.seller_of(b)];
                                let carrier = &shop.carriers[shop.carrier_of(b)];
                                let to_buyer = (buyer.id, buyer.seal_key());
                                let to_seller = (seller.id, seller.seal_key());
                                let to_carrier = (carrier.id, carrier.seal_key());
                                let address = format!("Room {b}, 100 Nanjing Road, Shanghai");
                                let address = sealed::seal(
                                    address.as_bytes(),
                                    &[to_buyer, to_seller, regulator_seal],
                                    sealed_info,
                                )?;
                                let label = format!("Bench buyer {b}, 100 Nanjing Road");
                                let label = sealed::seal(
                                    label.as_bytes(),
                                    &[to_seller, to_buyer, to_carrier, regulator_seal],
                                    sealed_info,
                                )?;
                                Ok((address, label))
                            })
                            .collect()
                    })
                })
                .collect();
            for handle in handles {
                for (address, label) in handle.join().expect("sealing thread")? {
                    addresses.push(address);
                    labels.push(label);
                }
            }
            Ok(())
        })?;
        (addresses, labels)
    };
    shop.addresses = addresses;
    shop.labels = labels;
    shop.products = post_and_wait(urls, txs)?;
    Ok(())
}

/// One step of an order's life, as the driver waits for its transaction.
enum Waiting {
    Place { buyer: usize, created_ns: u64 },
    Accept { orders: Vec<RecordId> },
    Ship { orders: Vec<RecordId> },
    Pickup { orders: Vec<RecordId> },
    Deliver { orders: Vec<RecordId> },
    Confirm { order: RecordId },
}

/// The names of the steps, in order.
const STEPS: [&str; 6] = ["place", "accept", "ship", "pickup", "deliver", "confirm"];

/// An open order: who, and when each step became final (ns since the epoch; `[0]` is when
/// its place-order transaction was created).
struct Open {
    buyer: usize,
    times: [u64; STEPS.len() + 1],
}

/// A finalized block as the driver needs it.
struct Seen {
    height: u64,
    at_ns: u64,
    txs: Vec<String>,
    failed: HashMap<String, String>,
}

/// What the drive measured.
struct Measured {
    window_s: f64,
    /// (completion ns, latency ns) of every settled order.
    settled: Vec<(u64, u64)>,
    /// Per step, its duration (ns) in every settled order that completed in the window.
    steps: Vec<Vec<u64>>,
    /// Shop transactions finalized, by finalization time.
    finalized_at: Vec<u64>,
    /// (height, ns) of every finalized block.
    blocks: Vec<(u64, u64)>,
    placed: u64,
    failed: BTreeMap<String, u64>,
    refused: u64,
    first_refusal: Option<String>,
    warmup_ns: u64,
    end_ns: u64,
    /// Processor time read where the window starts and where it ends.
    cpu: [Option<CpuSample>; 2],
}

/// Transactions waiting to be posted, per node.
struct Outbox {
    queues: Vec<Mutex<VecDeque<String>>>,
    refused: AtomicU64,
    first_refusal: Mutex<Option<String>>,
    stop: AtomicBool,
}

impl Outbox {
    fn push(&self, node: usize, tx: &SignedTx) {
        self.queues[node]
            .lock()
            .expect("outbox lock")
            .push_back(hex::encode(tx.encode()));
    }
}

fn post_loop(
    http: &reqwest::blocking::Client,
    url: &str,
    queue: usize,
    batch: usize,
    out: &Outbox,
) {
    while !out.stop.load(Ordering::Relaxed) {
        let hexes: Vec<String> = {
            let mut q = out.queues[queue].lock().expect("outbox lock");
            let n = q.len().min(batch);
            q.drain(..n).collect()
        };
        if hexes.is_empty() {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        let answer = http
            .post(format!("{url}/v1/txs/batch"))
            .json(&json!({ "txs": hexes }))
            .send()
            .and_then(|r| r.json::<Value>());
        let refusal = match answer {
            Ok(value) => {
                let accepted = value["accepted"].as_u64().unwrap_or(0);
                let refused = hexes.len() as u64 - accepted.min(hexes.len() as u64);
                (refused > 0).then(|| {
                    let first = value["results"]
                        .as_array()
                        .and_then(|r| r.iter().find(|x| x.get("error").is_some()))
                        .map_or_else(|| value.to_string(), |x| x["error"].to_string());
                    (refused, first)
                })
            }
            Err(error) => Some((
                hexes.len() as u64,
                format!("POST {url}/v1/txs/batch: {error}"),
            )),
        };
        if let Some((count, first)) = refusal {
            out.refused.fetch_add(count, Ordering::Relaxed);
            out.first_refusal.lock().expect("lock").get_or_insert(first);
        }
    }
}

/// Read finalized blocks from node 0's event stream into `blocks` until `stop`.
fn follow(
    socket: &mut Socket,
    epoch: Instant,
    blocks: &mpsc::Sender<Seen>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let Some(event) = next_block_event(socket)? else {
            continue;
        };
        let at_ns = epoch.elapsed().as_nanos() as u64;
        let failed = event["failed"]
            .as_array()
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .filter_map(|f| Some((f["tx"].as_str()?.to_owned(), f["code"].as_str()?.to_owned())))
            .collect();
        let seen = Seen {
            height: event["height"].as_u64().unwrap_or_default(),
            at_ns,
            txs: event["txs"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect(),
            failed,
        };
        if blocks.send(seen).is_err() {
            break;
        }
    }
    Ok(())
}

/// The driver: places orders while fewer than `inflight` are open, and sends each order's
/// next step once its last one is final.
struct Driver {
    shop: Shop,
    outbox: Arc<Outbox>,
    epoch: Instant,
    waiting: HashMap<String, Waiting>,
    open: HashMap<RecordId, Open>,
    /// Orders placed but not yet accepted, per seller.
    to_accept: Vec<Vec<RecordId>>,
    /// Accepted orders to ship, per seller.
    to_ship: Vec<Vec<RecordId>>,
    /// Shipped orders to pick up, per carrier.
    to_pick_up: Vec<Vec<RecordId>>,
    /// Picked-up orders to deliver, per carrier.
    to_deliver: Vec<Vec<RecordId>>,
    /// Place-order transactions not yet final: they count as open.
    placing: usize,
    next_buyer: usize,
    /// Blocks an order's life has been taking, a running mean ([`LIFE_BLOCKS_GUESS`]).
    life_blocks: f64,
    measured: Measured,
}

impl Driver {
    fn now(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn in_flight(&self) -> usize {
        self.placing + self.open.len()
    }

    fn send(&mut self, node: usize, tx: &SignedTx, waiting: Waiting) {
        self.outbox.push(node, tx);
        self.waiting.insert(hex_serde::encode(&tx.hash()), waiting);
    }

    fn place(&mut self) {
        let b = self.next_buyer;
        self.next_buyer = (b + 1) % self.shop.buyers.len();
        let product = self.shop.products[self.shop.seller_of(b)];
        let call = Call::Commerce(CommerceCall::PlaceOrder {
            lines: List(vec![LineRequest {
                product,
                variant: 0,
                quantity: 1,
                price: PRICE,
            }]),
            method: PaymentMethod::Wallet,
            pay: true,
            address: self.shop.addresses[b].clone(),
        });
        let buyer = &mut self.shop.buyers[b];
        let node = buyer.node;
        let tx = buyer.sign(call);
        self.placing += 1;
        self.measured.placed += 1;
        let created_ns = self.now();
        self.send(
            node,
            &tx,
            Waiting::Place {
                buyer: b,
                created_ns,
            },
        );
    }

    /// Mark `order`'s step `step` final at `at`.
    fn stamp(&mut self, order: &RecordId, step: usize, at: u64) {
        if let Some(open) = self.open.get_mut(order) {
            open.times[step] = at;
        }
    }

    /// Apply one finalized block: each of our transactions in it moves its orders on.
    fn seen(&mut self, block: &Seen) {
        self.measured.blocks.push((block.height, block.at_ns));
        for (index, hash) in block.txs.iter().enumerate() {
            let Some(waiting) = self.waiting.remove(hash) else {
                continue;
            };
            self.measured.finalized_at.push(block.at_ns);
            if let Some(code) = block.failed.get(hash) {
                *self.measured.failed.entry(code.clone()).or_default() += 1;
                self.abandon(waiting);
                continue;
            }
            let at = block.at_ns;
            match waiting {
                Waiting::Place { buyer, created_ns } => {
                    self.placing -= 1;
                    let id = RecordId {
                        height: block.height,
                        index: u32::try_from(index).unwrap_or(u32::MAX),
                    };
                    let mut times = [0; STEPS.len() + 1];
                    times[0] = created_ns;
                    times[1] = at;
                    self.open.insert(id, Open { buyer, times });
                    self.to_accept[self.shop.seller_of(buyer)].push(id);
                }
                Waiting::Accept { orders } => {
                    for order in orders {
                        self.stamp(&order, 2, at);
                        self.ship(order);
                    }
                }
                Waiting::Ship { orders } => {
                    for order in orders {
                        self.stamp(&order, 3, at);
                        if let Some(open) = self.open.get(&order) {
                            let carrier = self.shop.carrier_of(open.buyer);
                            self.to_pick_up[carrier].push(order);
                        }
                    }
                }
                Waiting::Pickup { orders } => {
                    for order in orders {
                        self.stamp(&order, 4, at);
                        if let Some(open) = self.open.get(&order) {
                            let carrier = self.shop.carrier_of(open.buyer);
                            self.to_deliver[carrier].push(order);
                        }
                    }
                }
                Waiting::Deliver { orders } => {
                    for order in orders {
                        self.stamp(&order, 5, at);
                        self.confirm(order);
                    }
                }
                Waiting::Confirm { order } => {
                    if let Some(open) = self.open.remove(&order) {
                        let life = block.height.saturating_sub(order.height) as f64;
                        self.life_blocks += (life - self.life_blocks) * LIFE_BLOCKS_WEIGHT;
                        let mut times = open.times;
                        times[6] = at;
                        self.measured.settled.push((at, at - times[0]));
                        if at >= self.measured.warmup_ns && at < self.measured.end_ns {
                            for (step, spent) in self.measured.steps.iter_mut().enumerate() {
                                spent.push(times[step + 1].saturating_sub(times[step]));
                            }
                        }
                    }
                }
            }
        }
    }

    /// A step failed: its orders leave the run (the failure is counted).
    fn abandon(&mut self, waiting: Waiting) {
        match waiting {
            Waiting::Place { .. } => self.placing -= 1,
            Waiting::Accept { orders }
            | Waiting::Ship { orders }
            | Waiting::Pickup { orders }
            | Waiting::Deliver { orders } => {
                for order in orders {
                    self.open.remove(&order);
                }
            }
            Waiting::Confirm { order } => {
                self.open.remove(&order);
            }
        }
    }

    /// Queue an accepted order for its seller's next shipping transaction.
    fn ship(&mut self, order: RecordId) {
        if let Some(open) = self.open.get(&order) {
            let s = self.shop.seller_of(open.buyer);
            self.to_ship[s].push(order);
        }
    }

    /// What shipping `order` takes: its one line, the carrier, its buyer's sealed label.
    fn shipping(&self, order: RecordId) -> Option<Shipping> {
        let open = self.open.get(&order)?;
        Some(Shipping {
            order,
            lines: List(vec![ShipLine {
                line: 0,
                quantity: 1,
            }]),
            carrier: CARRIER_ORG.parse().expect("valid organisation id"),
            label: self.shop.labels[open.buyer].clone(),
        })
    }

    fn confirm(&mut self, order: RecordId) {
        let Some(open) = self.open.get(&order) else {
            return;
        };
        let buyer = &mut self.shop.buyers[open.buyer];
        let node = buyer.node;
        let tx = buyer.sign(Call::Commerce(CommerceCall::ConfirmReceipt { order }));
        self.send(node, &tx, Waiting::Confirm { order });
    }

    /// Send what the queues hold: acceptances per seller, carrier events per carrier.
    fn flush(&mut self) {
        for s in 0..self.to_accept.len() {
            let queued = std::mem::take(&mut self.to_accept[s]);
            for orders in queued.chunks(ACCEPT_ORDERS_MAX) {
                let seller = &mut self.shop.sellers[s];
                let node = seller.node;
                let tx = seller.sign(Call::Commerce(CommerceCall::AcceptOrders {
                    orders: List(orders.to_vec()),
                }));
                self.send(
                    node,
                    &tx,
                    Waiting::Accept {
                        orders: orders.to_vec(),
                    },
                );
            }
        }
        for s in 0..self.to_ship.len() {
            let queued = std::mem::take(&mut self.to_ship[s]);
            for orders in queued.chunks(SHIP_ORDERS_MAX) {
                let shipments: Vec<Shipping> =
                    orders.iter().filter_map(|o| self.shipping(*o)).collect();
                if shipments.is_empty() {
                    continue;
                }
                let orders: Vec<RecordId> = shipments.iter().map(|s| s.order).collect();
                let seller = &mut self.shop.sellers[s];
                let node = seller.node;
                let tx = seller.sign(Call::Commerce(CommerceCall::ShipOrders {
                    shipments: List(shipments),
                }));
                self.send(node, &tx, Waiting::Ship { orders });
            }
        }
        let moves = [
            (ShipmentStatus::PickedUp, ShipmentStatus::InTransit),
            (ShipmentStatus::OutForDelivery, ShipmentStatus::Delivered),
        ];
        for (stage, (first, second)) in moves.into_iter().enumerate() {
            for c in 0..self.shop.carriers.len() {
                let queue = if stage == 0 {
                    &mut self.to_pick_up[c]
                } else {
                    &mut self.to_deliver[c]
                };
                let queued = std::mem::take(queue);
                for orders in queued.chunks(CARRIER_ORDERS_PER_TX) {
                    let event = |order: &RecordId, status| CarrierEvent {
                        order: *order,
                        shipment: 0,
                        status,
                        location: Text::new("Shanghai hub").expect("fits"),
                    };
                    let events = orders
                        .iter()
                        .flat_map(|o| [event(o, first), event(o, second)])
                        .collect();
                    let carrier = &mut self.shop.carriers[c];
                    let node = carrier.node;
                    let tx = carrier.sign(Call::Commerce(CommerceCall::CarrierEvents {
                        events: List(events),
                    }));
                    let orders = orders.to_vec();
                    let waiting = if stage == 0 {
                        Waiting::Pickup { orders }
                    } else {
                        Waiting::Deliver { orders }
                    };
                    self.send(node, &tx, waiting);
                }
            }
        }
    }
}

fn drive(
    options: &Options,
    urls: &[String],
    shop: Shop,
    validators: &[u32],
) -> anyhow::Result<Measured> {
    let epoch = Instant::now();
    let warmup_ns = options.warmup * 1_000_000_000;
    let end_ns = warmup_ns + options.duration * 1_000_000_000;
    let outbox = Arc::new(Outbox {
        queues: (0..urls.len())
            .map(|_| Mutex::new(VecDeque::new()))
            .collect(),
        refused: AtomicU64::new(0),
        first_refusal: Mutex::new(None),
        stop: AtomicBool::new(false),
    });
    let (sellers, carriers) = (shop.sellers.len(), shop.carriers.len());
    let mut driver = Driver {
        shop,
        outbox: outbox.clone(),
        epoch,
        waiting: HashMap::new(),
        open: HashMap::new(),
        to_accept: vec![Vec::new(); sellers],
        to_ship: vec![Vec::new(); sellers],
        to_pick_up: vec![Vec::new(); carriers],
        to_deliver: vec![Vec::new(); carriers],
        placing: 0,
        next_buyer: 0,
        life_blocks: LIFE_BLOCKS_GUESS,
        measured: Measured {
            window_s: options.duration as f64,
            settled: Vec::new(),
            steps: vec![Vec::new(); STEPS.len()],
            finalized_at: Vec::new(),
            blocks: Vec::new(),
            placed: 0,
            failed: BTreeMap::new(),
            refused: 0,
            first_refusal: None,
            warmup_ns,
            end_ns,
            cpu: [None, None],
        },
    };
    let mut socket = connect_events(
        &(urls[0].replace("http://", "ws://") + "/v1/events?types=block_finalized"),
    )?;
    let stop = AtomicBool::new(false);
    let http = blocking_client()?;
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let (blocks_tx, blocks) = mpsc::channel();
        let follower = scope.spawn({
            let stop = &stop;
            move || follow(&mut socket, epoch, &blocks_tx, stop)
        });
        for (queue, url) in urls.iter().enumerate() {
            let (http, outbox, batch) = (http.clone(), outbox.clone(), options.batch);
            scope.spawn(move || post_loop(&http, url, queue, batch, &outbox));
        }
        let result = (|| -> anyhow::Result<()> {
            let mut last_report = 0u64;
            let mut reported_settled = 0usize;
            let mut drain_started: Option<Instant> = None;
            let per_block =
                |life_blocks: f64| (options.inflight as f64 / life_blocks.max(1.0)).ceil() as usize;
            let mut allowance = per_block(LIFE_BLOCKS_GUESS);
            let mut cpu_read = [false; 2];
            loop {
                let now = driver.now();
                for (i, bound) in [warmup_ns, end_ns].into_iter().enumerate() {
                    if now >= bound && !cpu_read[i] {
                        cpu_read[i] = true;
                        driver.measured.cpu[i] = CpuSample::take(validators);
                    }
                }
                if now < end_ns {
                    while driver.in_flight() < options.inflight && allowance > 0 {
                        driver.place();
                        allowance -= 1;
                    }
                } else if driver.in_flight() == 0 {
                    break;
                } else {
                    let started = *drain_started.get_or_insert_with(Instant::now);
                    if started.elapsed() > DRAIN_TIMEOUT {
                        eprintln!(
                            "      {} orders still open {}s after the window; stopping",
                            driver.in_flight(),
                            DRAIN_TIMEOUT.as_secs()
                        );
                        break;
                    }
                }
                driver.flush();
                // A refused transaction leaves its account a nonce gap that nothing fills:
                // what it sends later would wait forever, so the run stops.
                if outbox.refused.load(Ordering::Relaxed) > 0 {
                    let first = outbox.first_refusal.lock().expect("lock").clone();
                    bail!(
                        "a node refused a transaction, so the run cannot go on: {}",
                        first.unwrap_or_default()
                    );
                }
                match blocks.recv_timeout(Duration::from_millis(5)) {
                    Ok(block) => {
                        // Each finalized block lets in its share, also when several arrive
                        // at once.
                        driver.seen(&block);
                        let mut arrived = 1;
                        while let Ok(block) = blocks.try_recv() {
                            driver.seen(&block);
                            arrived += 1;
                        }
                        allowance = per_block(driver.life_blocks).saturating_mul(arrived);
                    }
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    Err(mpsc::RecvTimeoutError::Disconnected) => {
                        bail!("node 0's event stream closed");
                    }
                }
                if now / 1_000_000_000 > last_report {
                    last_report = now / 1_000_000_000;
                    let settled = driver.measured.settled.len();
                    eprintln!(
                        "      {:>3}s  placed {:>8}  open {:>6}  settled {:>8}  last second {:>6}/s{}",
                        last_report,
                        driver.measured.placed,
                        driver.in_flight(),
                        settled,
                        settled - reported_settled,
                        if now < warmup_ns {
                            "  (warm-up)"
                        } else if now >= end_ns {
                            "  (finishing open orders)"
                        } else {
                            ""
                        }
                    );
                    reported_settled = settled;
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::SeqCst);
        outbox.stop.store(true, Ordering::SeqCst);
        follower.join().expect("follower thread")?;
        result
    })?;
    let mut measured = driver.measured;
    measured.refused = outbox.refused.load(Ordering::Relaxed);
    measured.first_refusal = outbox.first_refusal.lock().expect("lock").clone();
    Ok(measured)
}

/// The finalized header of block `height` from `url`.
fn header(url: &str, height: u64) -> anyhow::Result<consort_types::block::Header> {
    let answer: Value = blocking_client()?
        .get(format!("{url}/v1/blocks/{height}"))
        .send()?
        .json()?;
    let bytes = hex::decode(answer["header"].as_str().unwrap_or_default())
        .with_context(|| format!("block {height}'s header is not hex"))?;
    consort_types::block::Header::decode(commonware_codec::Copying(bytes.as_slice()))
        .map_err(|e| anyhow::anyhow!("block {height}'s header does not decode: {e}"))
}

fn report(
    options: &Options,
    cores: usize,
    urls: &[String],
    sellers: &[AccountId],
    measured: Measured,
    transfers: Option<super::Report>,
) -> anyhow::Result<Report> {
    if let Some(refusal) = &measured.first_refusal {
        eprintln!("      first refusal: {refusal}");
    }
    let (start, end) = (measured.warmup_ns, measured.end_ns);
    let in_window = |t: u64| t >= start && t < end;
    let window_s = measured.window_s;
    let settled: Vec<u64> = measured
        .settled
        .iter()
        .filter(|(t, _)| in_window(*t))
        .map(|(_, latency)| *latency)
        .collect();
    let lifecycles = settled.len() as u64;
    let pick = percentiles(settled);
    let shop_txs = measured
        .finalized_at
        .iter()
        .filter(|t| in_window(**t))
        .count() as u64;
    let blocks: Vec<u64> = measured
        .blocks
        .iter()
        .filter(|(_, t)| in_window(*t))
        .map(|(h, _)| *h)
        .collect();
    // From the window's start to its end through every block in it: a stall across either
    // edge, or the whole window, counts too.
    let block_gap_ms_max = std::iter::once(start)
        .chain(
            measured
                .blocks
                .iter()
                .map(|(_, t)| *t)
                .filter(|t| in_window(*t)),
        )
        .chain(std::iter::once(end))
        .collect::<Vec<u64>>()
        .windows(2)
        .map(|pair| pair[1].saturating_sub(pair[0]))
        .max()
        .unwrap_or(0) as f64
        / 1e6;
    let qmdb_ops = match (blocks.first(), blocks.last()) {
        (Some(&first), Some(&last)) if first > 0 => {
            let before = header(&urls[0], first - 1)?.ops_range.end().as_u64();
            let after = header(&urls[0], last)?.ops_range.end().as_u64();
            after.saturating_sub(before)
        }
        _ => 0,
    };
    let http = blocking_client()?;
    let mut received = 0u64;
    for id in sellers {
        let answer: Value = http
            .get(format!("{}/v1/accounts/{id}/balances/{CURRENCY}", urls[0]))
            .send()?
            .json()?;
        received += answer["balance"].as_u64().unwrap_or(0);
    }
    let fee = PRICE * u64::from(devnet::DEVNET_FEE_RATE_BP) / 10_000;
    let orders_settled = measured.settled.len() as u64;
    let steps = measured
        .steps
        .into_iter()
        .zip(STEPS)
        .map(|(spent, step)| {
            let pick = percentiles(spent);
            Step {
                step,
                p50_ms: pick(0.5),
                p99_ms: pick(0.99),
            }
        })
        .collect();
    let lifecycles_per_s = lifecycles as f64 / window_s;
    let cpu = match measured.cpu {
        [Some(start), Some(end)] => Some((start, end)),
        _ => None,
    };
    let busy = |used: fn(&CpuSample) -> Duration| {
        cpu.map(|(start, end)| {
            (used(&end).saturating_sub(used(&start))).as_secs_f64()
                / end.at.duration_since(start.at).as_secs_f64().max(1e-9)
        })
    };
    let cpu_ms_per_lifecycle = cpu.filter(|_| lifecycles > 0).map(|(start, end)| {
        let used = (end.validators + end.driver).saturating_sub(start.validators + start.driver);
        used.as_secs_f64() * 1e3 / lifecycles as f64
    });
    Ok(Report {
        validators: options.validators,
        cores,
        buyers: options.buyers,
        sellers: options.sellers,
        carriers: options.carriers,
        window_s,
        lifecycles_in_window: lifecycles,
        lifecycles_per_s,
        latency_ms_p50: pick(0.5),
        latency_ms_p99: pick(0.99),
        latency_ms_max: pick(1.0),
        steps,
        shop_txs_per_s: shop_txs as f64 / window_s,
        txs_per_lifecycle: shop_txs as f64 / lifecycles.max(1) as f64,
        blocks_in_window: blocks.len() as u64,
        block_gap_ms_max,
        qmdb_ops_in_window: qmdb_ops,
        qmdb_ops_per_lifecycle: qmdb_ops as f64 / lifecycles.max(1) as f64,
        orders_placed: measured.placed,
        orders_settled,
        failed: measured.failed,
        refused: measured.refused,
        sellers_received: received,
        sellers_expected: orders_settled * (PRICE - fee),
        ratio_lifecycles_to_transfers: transfers
            .as_ref()
            .map(|t| lifecycles_per_s / t.finalized_tps),
        transfers,
        search: None,
        cpu_ms_per_lifecycle,
        validators_cores: busy(|s| s.validators),
        driver_cores: busy(|s| s.driver),
    })
}

/// Print a report for people.
pub fn print(report: &Report) {
    print_orders(report);
    if let Some(search) = &report.search {
        super::search::print(search);
    }
}

fn print_orders(report: &Report) {
    println!(
        "consort bench orders — {} validators, {} cores, {} buyers, {} sellers, {} carriers",
        report.validators, report.cores, report.buyers, report.sellers, report.carriers
    );
    println!(
        "  settled orders         {:>10.0} /s  ({} in {:.1}s, {:.2} shop tx each, {:.0} shop tx/s, {} blocks)",
        report.lifecycles_per_s,
        report.lifecycles_in_window,
        report.window_s,
        report.txs_per_lifecycle,
        report.shop_txs_per_s,
        report.blocks_in_window
    );
    println!(
        "  place → settled        p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms",
        report.latency_ms_p50, report.latency_ms_p99, report.latency_ms_max
    );
    println!(
        "  longest between blocks {:>10.0} ms",
        report.block_gap_ms_max
    );
    let steps: Vec<String> = report
        .steps
        .iter()
        .map(|s| format!("{} {:.0}/{:.0}", s.step, s.p50_ms, s.p99_ms))
        .collect();
    println!("  per step p50/p99 (ms)  {}", steps.join(", "));
    println!(
        "  QMDB operations        {:>10.1} per order  ({} in the window)",
        report.qmdb_ops_per_lifecycle, report.qmdb_ops_in_window
    );
    if let (Some(ms), Some(validators), Some(driver)) = (
        report.cpu_ms_per_lifecycle,
        report.validators_cores,
        report.driver_cores,
    ) {
        println!(
            "  processor time         {ms:>10.3} ms per order  (validators {validators:.2} cores, driver {driver:.2}, of {})",
            report.cores
        );
    }
    println!(
        "  settlement             {} of {} orders settled; sellers received {} of {} owed",
        report.orders_settled,
        report.orders_placed,
        report.sellers_received,
        report.sellers_expected
    );
    if let Some(t) = &report.transfers {
        println!(
            "  transfers, same devnet {:>10.0} tx/s  p50 {:.0} ms  p99 {:.0} ms  (orders/transfers {:.3})",
            t.finalized_tps,
            t.latency_ms_p50,
            t.latency_ms_p99,
            report.ratio_lifecycles_to_transfers.unwrap_or(f64::NAN)
        );
    }
    if !report.failed.is_empty() {
        println!("  failed on chain        {:?}", report.failed);
    }
    if report.refused > 0 {
        println!("  refused by nodes       {}", report.refused);
    }
}
