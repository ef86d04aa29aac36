//! `consort bench transfers`: start a devnet, drive signed transfers from many accounts through
//! every node, and measure sustained finalized throughput and finality latency, next to the
//! machine's own ed25519 verification rate measured in the same run.
//!
//! Latency is measured end to end: from the moment a batch is posted to a node until node 0
//! announces, on its event stream, the finalized block that holds the transaction.

pub mod orders;
pub mod search;

use crate::devnet;
use anyhow::{Context as _, bail};
use commonware_codec::Encode as _;
use commonware_cryptography::{Signer as _, ed25519};
use consort_types::{AccountId, Amount, Call, GenesisAccount, SignedTx, Tx};
use serde::Serialize;
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

/// Seed offset of bench account keys (deterministic: bench accounts hold nothing of value).
const BENCH_SEED_BASE: u64 = 0xB3_0000_0000;

/// Starting balance of each bench account.
pub(crate) const BENCH_BALANCE: u64 = 1_000_000_000_000;

/// Offered-load ceiling used to size the pre-signed workload (transactions per second).
const WORKLOAD_RATE_CEILING: u64 = 25_000;

/// Options of `consort bench transfers`.
#[derive(Clone, Debug)]
pub struct Options {
    /// Validator processes.
    pub validators: usize,
    /// Measured seconds (after warm-up).
    pub duration: u64,
    /// Warm-up seconds, not measured.
    pub warmup: u64,
    /// Funded sender accounts.
    pub accounts: usize,
    /// Transactions per POST.
    pub batch: usize,
    /// Most submitted-but-not-finalized transactions at any time.
    pub inflight: usize,
    /// Keep the devnet here instead of a temporary directory.
    pub dir: Option<PathBuf>,
}

/// What a run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Validators in the devnet.
    pub validators: usize,
    /// Measured window (s).
    pub window_s: f64,
    /// Transactions finalized in the window.
    pub finalized_in_window: u64,
    /// Sustained finalized transactions per second.
    pub finalized_tps: f64,
    /// Finality latency percentiles over transactions submitted in the window (ms).
    pub latency_ms_p50: f64,
    /// 99th percentile (ms).
    pub latency_ms_p99: f64,
    /// Largest seen (ms).
    pub latency_ms_max: f64,
    /// Transactions the nodes refused (should be 0).
    pub rejected: u64,
    /// Blocks finalized in the window and mean transactions per block.
    pub blocks_in_window: u64,
    /// Mean transactions per block in the window.
    pub txs_per_block: f64,
    /// Single-core ed25519 verifications per second, one at a time.
    pub ed25519_verify_per_s_single: f64,
    /// Single-core ed25519 verifications per second, in batches of 1024.
    pub ed25519_verify_per_s_batched: f64,
    /// `finalized_tps / ed25519_verify_per_s_single`.
    pub ratio_to_single_verify: f64,
    /// `finalized_tps / ed25519_verify_per_s_batched`.
    pub ratio_to_batched_verify: f64,
    /// Cores the machine reports.
    pub cores: usize,
    /// What signature checks alone would allow: every validator verifies every transaction
    /// once (block verification skips those its pool admitted), so
    /// `ed25519_verify_per_s_batched * cores / validators`.
    pub ceiling_tps: f64,
    /// `finalized_tps / ceiling_tps`.
    pub ratio_to_ceiling: f64,
}

fn bench_key(i: usize) -> ed25519::PrivateKey {
    ed25519::PrivateKey::from_seed(BENCH_SEED_BASE + i as u64)
}

/// Sign `count` transfers round-robin over `keys`: transaction `k` is sent by account
/// `a = k % keys.len()` with nonce `nonces[a] + k / keys.len()` to the next account.
fn sign_workload(
    keys: &[ed25519::PrivateKey],
    ids: &[AccountId],
    nonces: &[u64],
    count: usize,
) -> Vec<SignedTx> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads).max(1);
    let mut out = Vec::with_capacity(count);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| {
                let end = (start + chunk).min(count);
                scope.spawn(move || {
                    (start..end)
                        .map(|k| {
                            let from = k % keys.len();
                            let to = (from + 1) % keys.len();
                            Tx {
                                chain_id: 1,
                                sender: ids[from],
                                nonce: nonces[from] + (k / keys.len()) as u64,
                                call: Call::Transfer {
                                    to: ids[to],
                                    amount: Amount::new(1),
                                },
                            }
                            .sign(&keys[from])
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            out.extend(handle.join().expect("signing thread"));
        }
    });
    out
}

/// Single-core ed25519 verifications per second: one at a time, and in batches of 1024.
pub fn measure_ed25519(sample: &[SignedTx]) -> (f64, f64) {
    let budget = Duration::from_millis(1500);
    let start = Instant::now();
    let mut verified = 0u64;
    while start.elapsed() < budget {
        for tx in sample.iter().take(256) {
            assert!(
                tx.verify_signature(),
                "bench transactions are validly signed"
            );
            verified += 1;
        }
    }
    let single = verified as f64 / start.elapsed().as_secs_f64();
    let mut rng = rand::rng();
    let refs: Vec<&SignedTx> = sample.iter().take(1024).collect();
    let start = Instant::now();
    let mut verified = 0u64;
    while start.elapsed() < budget {
        assert!(consort_types::tx::verify_batch(&refs, &mut rng));
        verified += refs.len() as u64;
    }
    let batched = verified as f64 / start.elapsed().as_secs_f64();
    (single, batched)
}

/// Shared between the submitters and the watcher.
struct Progress {
    submitted: AtomicUsize,
    finalized: AtomicU64,
    rejected: AtomicU64,
    /// First rejection, to show the user.
    first_error: Mutex<Option<String>>,
    /// Submit time of each transaction (by workload index), as ns since `epoch`.
    submit_ns: Vec<AtomicU64>,
    epoch: Instant,
    stop: AtomicBool,
}

/// Finalization of one transaction: when (ns since epoch) and its workload index.
type Finalized = (u64, usize);

/// Run the benchmark, printing progress to stderr.
pub fn transfers(options: &Options) -> anyhow::Result<Report> {
    if options.accounts < 2 || options.batch == 0 || options.duration == 0 {
        bail!("--accounts must be ≥ 2, --batch and --duration > 0");
    }
    eprintln!("generating {} bench accounts", options.accounts);
    let (keys, ids) = bench_accounts(options.accounts);
    let (dir, _temp) = bench_dir(options.dir.as_ref())?;
    eprintln!(
        "starting {} validators in {}",
        options.validators,
        dir.display()
    );
    let extra = ids
        .iter()
        .map(|id| GenesisAccount {
            id: *id,
            balance: Amount::new(BENCH_BALANCE),
        })
        .collect();
    let configs = devnet::prepare_with(options.validators, &dir, extra, None, None, |_| {})?;
    devnet::without_shop(&configs)?;
    let mut children = devnet::spawn(&dir, &configs)?;
    let result = (|| {
        let urls = devnet::wait_until_up(&configs, &mut children, &dir)?;
        wait_for_block_one(&urls)?;
        run_transfers(options, &urls, &keys, &ids, &vec![0; ids.len()])
    })();
    crate::process::stop(&mut children);
    result
}

/// The bench accounts' keys and ids.
pub(crate) fn bench_accounts(count: usize) -> (Vec<ed25519::PrivateKey>, Vec<AccountId>) {
    let keys: Vec<_> = (0..count).map(bench_key).collect();
    let ids = keys
        .iter()
        .map(|k| AccountId::new(k.public_key()))
        .collect();
    (keys, ids)
}

/// Where a benchmark keeps its devnet: `dir` if given (it must not hold a chain), else a
/// temporary directory removed when the guard drops.
pub(crate) fn bench_dir(
    dir: Option<&PathBuf>,
) -> anyhow::Result<(PathBuf, Option<tempfile::TempDir>)> {
    let (dir, temp) = match dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temp = tempfile::Builder::new()
                .prefix("consort-bench-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    if dir.join("genesis.json").exists() {
        bail!(
            "{} already holds a chain; the benchmark needs a fresh one (omit --dir)",
            dir.display()
        );
    }
    Ok((dir, temp))
}

/// Sign and drive transfers between `keys` (whose next nonces are `nonces`) through the
/// nodes at `urls` for the warm-up and the measured window, and report.
pub(crate) fn run_transfers(
    options: &Options,
    urls: &[String],
    keys: &[ed25519::PrivateKey],
    ids: &[AccountId],
    nonces: &[u64],
) -> anyhow::Result<Report> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let total = (WORKLOAD_RATE_CEILING * (options.duration + options.warmup + 5)) as usize;
    let per_account = total.div_ceil(keys.len());
    if per_account > consort_types::limits::NONCE_WINDOW_MAX as usize * 64 {
        bail!("too few --accounts for this --duration; use more accounts");
    }
    eprintln!("signing {total} transfers ({per_account} per account)");
    let started = Instant::now();
    let workload = sign_workload(keys, ids, nonces, total);
    eprintln!("      signed in {:.1}s", started.elapsed().as_secs_f64());

    eprintln!("measuring single-core ed25519 verification on this machine");
    let (verify_single, verify_batched) = measure_ed25519(&workload[..1024.min(workload.len())]);
    eprintln!(
        "      {verify_single:.0} verifications/s one at a time, {verify_batched:.0}/s in batches"
    );
    let (finalized_in_window, window_s, latencies, rejected, blocks_in_window) =
        drive(options, urls, workload)?;
    let finalized_tps = finalized_in_window as f64 / window_s;
    let ceiling_tps = verify_batched * cores as f64 / options.validators as f64;
    let pick = percentiles(latencies);
    Ok(Report {
        validators: options.validators,
        window_s,
        finalized_in_window,
        finalized_tps,
        latency_ms_p50: pick(0.50),
        latency_ms_p99: pick(0.99),
        latency_ms_max: pick(1.0),
        rejected,
        blocks_in_window,
        txs_per_block: finalized_in_window as f64 / blocks_in_window.max(1) as f64,
        ed25519_verify_per_s_single: verify_single,
        ed25519_verify_per_s_batched: verify_batched,
        ratio_to_single_verify: finalized_tps / verify_single,
        ratio_to_batched_verify: finalized_tps / verify_batched,
        cores,
        ceiling_tps,
        ratio_to_ceiling: finalized_tps / ceiling_tps,
    })
}

/// Quantiles (in ms) of latencies given in ns: `pick(0.99)` is the 99th percentile, NaN when
/// there are none.
pub(crate) fn percentiles(mut latencies: Vec<u64>) -> impl Fn(f64) -> f64 {
    latencies.sort_unstable();
    move |q: f64| -> f64 {
        if latencies.is_empty() {
            return f64::NAN;
        }
        let i = ((latencies.len() - 1) as f64 * q).round() as usize;
        latencies[i] as f64 / 1e6
    }
}

/// Genesis allocations land in block 1: wait for it on every node.
pub(crate) fn wait_for_block_one(urls: &[String]) -> anyhow::Result<()> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(60);
    for url in urls {
        loop {
            let height = http
                .get(format!("{url}/v1/status"))
                .send()
                .ok()
                .and_then(|r| r.json::<Value>().ok())
                .and_then(|v| v["finalized_height"].as_u64())
                .unwrap_or(0);
            if height >= 1 {
                break;
            }
            if Instant::now() > deadline {
                bail!("{url} did not finalize block 1 within 60 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(())
}

type Measured = (u64, f64, Vec<u64>, u64, u64);

fn drive(options: &Options, urls: &[String], workload: Vec<SignedTx>) -> anyhow::Result<Measured> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let index: HashMap<String, usize> = workload
        .iter()
        .enumerate()
        .map(|(i, tx)| (consort_types::hex_serde::encode(&tx.hash()), i))
        .collect();
    let hexes: Vec<String> = workload.iter().map(|tx| hex::encode(tx.encode())).collect();
    drop(workload);
    let progress = Arc::new(Progress {
        submitted: AtomicUsize::new(0),
        finalized: AtomicU64::new(0),
        rejected: AtomicU64::new(0),
        first_error: Mutex::new(None),
        submit_ns: (0..hexes.len()).map(|_| AtomicU64::new(0)).collect(),
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
    });
    let blocks: Arc<Mutex<Vec<(u64, usize)>>> = Arc::new(Mutex::new(Vec::new()));
    let finalized: Arc<Mutex<Vec<Finalized>>> = Arc::new(Mutex::new(Vec::new()));

    eprintln!(
        "driving transfers: {}s warm-up, {}s measured",
        options.warmup, options.duration
    );
    let watch_url = urls[0].replace("http://", "ws://") + "/v1/events?types=block_finalized";
    let mut socket = connect_events(&watch_url)?;
    let hexes = Arc::new(hexes);
    let next = Arc::new(AtomicUsize::new(0));
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let watcher = scope.spawn({
            let progress = progress.clone();
            let blocks = blocks.clone();
            let finalized = finalized.clone();
            move || watch(&mut socket, &index, &progress, &blocks, &finalized)
        });
        for url in urls {
            let progress = progress.clone();
            let hexes = hexes.clone();
            let next = next.clone();
            let http = http.clone();
            let (batch, inflight) = (options.batch, options.inflight);
            scope.spawn(move || submit(&http, url, &hexes, &next, batch, inflight, &progress));
        }
        let start = Instant::now();
        let run = Duration::from_secs(options.warmup + options.duration);
        let mut last = 0;
        while start.elapsed() < run {
            std::thread::sleep(Duration::from_secs(1));
            let done = progress.finalized.load(Ordering::Relaxed);
            eprintln!(
                "      {:>3}s  submitted {:>8}  finalized {:>8}  last second {:>6} tx/s{}",
                start.elapsed().as_secs(),
                progress.submitted.load(Ordering::Relaxed),
                done,
                done - last,
                if start.elapsed() < Duration::from_secs(options.warmup) {
                    "  (warm-up)"
                } else {
                    ""
                }
            );
            last = done;
            if next.load(Ordering::Relaxed) >= hexes.len() {
                eprintln!("      the pre-signed workload ran out; measuring what was sent");
                break;
            }
        }
        progress.stop.store(true, Ordering::SeqCst);
        watcher.join().expect("watcher thread")?;
        Ok(())
    })?;
    if let Some(error) = progress.first_error.lock().expect("lock").clone() {
        eprintln!("      first refusal: {error}");
    }

    let end_ns = {
        let f = finalized.lock().expect("lock");
        f.last().map_or(0, |(t, _)| *t)
    };
    let warmup_ns = options.warmup * 1_000_000_000;
    let finalized = finalized.lock().expect("lock");
    let blocks = blocks.lock().expect("lock");
    let window_end_ns = warmup_ns + options.duration * 1_000_000_000;
    let window_end_ns = window_end_ns.min(end_ns.max(warmup_ns + 1));
    let in_window: Vec<&Finalized> = finalized
        .iter()
        .filter(|(t, _)| *t >= warmup_ns && *t < window_end_ns)
        .collect();
    let latencies: Vec<u64> = in_window
        .iter()
        .map(|(t, i)| t.saturating_sub(progress.submit_ns[*i].load(Ordering::Relaxed)))
        .collect();
    let blocks_in_window = blocks
        .iter()
        .filter(|(t, _)| *t >= warmup_ns && *t < window_end_ns)
        .count() as u64;
    let window_s = (window_end_ns - warmup_ns) as f64 / 1e9;
    Ok((
        in_window.len() as u64,
        window_s,
        latencies,
        progress.rejected.load(Ordering::Relaxed),
        blocks_in_window,
    ))
}

fn submit(
    http: &reqwest::blocking::Client,
    url: &str,
    hexes: &[String],
    next: &AtomicUsize,
    batch: usize,
    inflight: usize,
    progress: &Progress,
) {
    while !progress.stop.load(Ordering::Relaxed) {
        let outstanding = progress
            .submitted
            .load(Ordering::Relaxed)
            .saturating_sub(progress.finalized.load(Ordering::Relaxed) as usize);
        if outstanding + batch > inflight {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let start = next.fetch_add(batch, Ordering::Relaxed);
        if start >= hexes.len() {
            return;
        }
        let end = (start + batch).min(hexes.len());
        let now = progress.epoch.elapsed().as_nanos() as u64;
        for slot in &progress.submit_ns[start..end] {
            slot.store(now, Ordering::Relaxed);
        }
        progress.submitted.fetch_add(end - start, Ordering::Relaxed);
        let answer = http
            .post(format!("{url}/v1/txs/batch"))
            .json(&json!({"txs": &hexes[start..end]}))
            .send()
            .and_then(|r| r.json::<Value>());
        match answer {
            Ok(value) => {
                let accepted = value["accepted"].as_u64().unwrap_or(0);
                let refused = (end - start) as u64 - accepted;
                if refused > 0 {
                    progress.rejected.fetch_add(refused, Ordering::Relaxed);
                    let mut first = progress.first_error.lock().expect("lock");
                    if first.is_none() {
                        *first = value["results"]
                            .as_array()
                            .and_then(|r| r.iter().find(|x| x.get("error").is_some()))
                            .map(|x| x["error"].to_string())
                            .or_else(|| Some(value.to_string()));
                    }
                }
            }
            Err(error) => {
                progress
                    .rejected
                    .fetch_add((end - start) as u64, Ordering::Relaxed);
                let mut first = progress.first_error.lock().expect("lock");
                first.get_or_insert_with(|| format!("POST {url}/v1/txs/batch: {error}"));
            }
        }
    }
}

pub(crate) type Socket =
    tungstenite::WebSocket<tungstenite::stream::MaybeTlsStream<std::net::TcpStream>>;

pub(crate) fn connect_events(url: &str) -> anyhow::Result<Socket> {
    let (socket, _) =
        tungstenite::connect(url).with_context(|| format!("cannot open the event stream {url}"))?;
    if let tungstenite::stream::MaybeTlsStream::Plain(stream) = socket.get_ref() {
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    }
    Ok(socket)
}

/// The next finalized-block event on `socket` (opened by [`connect_events`]), or `None` when
/// the read timed out or the message was of another kind. A `lagged` notice is an error:
/// the measurement would miss blocks.
pub(crate) fn next_block_event(socket: &mut Socket) -> anyhow::Result<Option<Value>> {
    let message = match socket.read() {
        Ok(message) => message,
        Err(tungstenite::Error::Io(e))
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            return Ok(None);
        }
        Err(error) => bail!("event stream failed: {error}"),
    };
    let tungstenite::Message::Text(text) = message else {
        return Ok(None);
    };
    let text = text.as_str();
    if text.contains("\"type\":\"lagged\"") {
        bail!("the benchmark fell behind node 0's event stream: {text}");
    }
    if !text.contains("\"type\":\"block_finalized\"") {
        return Ok(None);
    }
    Ok(Some(serde_json::from_str(text)?))
}

fn watch(
    socket: &mut Socket,
    index: &HashMap<String, usize>,
    progress: &Progress,
    blocks: &Mutex<Vec<(u64, usize)>>,
    finalized: &Mutex<Vec<Finalized>>,
) -> anyhow::Result<()> {
    while !progress.stop.load(Ordering::Relaxed) {
        let Some(event) = next_block_event(socket)? else {
            continue;
        };
        let now = progress.epoch.elapsed().as_nanos() as u64;
        let txs = event["txs"].as_array().map_or(&[][..], Vec::as_slice);
        let mut f = finalized.lock().expect("lock");
        let mut counted = 0;
        for hash in txs {
            if let Some(&i) = hash.as_str().and_then(|h| index.get(h)) {
                f.push((now, i));
                counted += 1;
            }
        }
        blocks.lock().expect("lock").push((now, txs.len()));
        progress.finalized.fetch_add(counted, Ordering::Relaxed);
    }
    Ok(())
}

/// Print a report for people.
pub fn print(report: &Report) {
    println!(
        "consort bench transfers — {} validators, {} cores",
        report.validators, report.cores
    );
    println!(
        "  finalized throughput   {:>10.0} tx/s  ({} txs in {:.1}s, {} blocks, {:.0} tx/block)",
        report.finalized_tps,
        report.finalized_in_window,
        report.window_s,
        report.blocks_in_window,
        report.txs_per_block
    );
    println!(
        "  finality latency       p50 {:.0} ms   p99 {:.0} ms   max {:.0} ms",
        report.latency_ms_p50, report.latency_ms_p99, report.latency_ms_max
    );
    println!(
        "  ed25519 on one core    {:>10.0} verify/s single, {:.0}/s batched",
        report.ed25519_verify_per_s_single, report.ed25519_verify_per_s_batched
    );
    println!(
        "  throughput / verify    {:.2}× single-core, {:.2}× batched single-core",
        report.ratio_to_single_verify, report.ratio_to_batched_verify
    );
    println!(
        "  signature ceiling      {:>10.0} tx/s  (batched × {} cores / {} validators): {:.0}% of it",
        report.ceiling_tps,
        report.cores,
        report.validators,
        report.ratio_to_ceiling * 100.0
    );
    if report.rejected > 0 {
        println!("  refused by nodes       {}", report.rejected);
    }
}
