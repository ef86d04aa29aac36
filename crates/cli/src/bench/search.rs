//! `consort bench search`: catalogue queries through the shop API (`/v1/shop/search`, HTTP,
//! as a browser asks) on a catalogue of `--products` products, while node 0's indexer follows
//! a chain under the orders benchmark.
//!
//! The run is `consort bench orders` with two additions: after its setup the sellers publish
//! the catalogue (words in Chinese and English across categories, variants, stock), node 0
//! keeps the shop's read model and search index, and during the orders' measured window
//! `--clients` threads query the shop API back to back (or, with `--rate`, each query at its
//! scheduled time, its latency counted from then) with a mix of Chinese and English words,
//! filters, facets, sorts and pages. Queries per second and latency (p50, p99, max)
//! are counted in the same window as the lifecycles, so the two are measured together.

use serde::Serialize;
use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// What the search load is.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Products the catalogue holds (besides the orders benchmark's one per seller).
    pub products: usize,
    /// Query threads.
    pub clients: usize,
    /// Offered queries per second (0: closed loop, each thread as fast as it is answered).
    pub rate: u64,
}

/// What the search load measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Products in the catalogue searched.
    pub products: usize,
    /// Query threads.
    pub clients: usize,
    /// Offered queries per second (0: closed loop).
    pub offered_per_s: u64,
    /// Queries answered in the window.
    pub queries_in_window: u64,
    /// Queries per second.
    pub queries_per_s: f64,
    /// Median latency (ms).
    pub latency_ms_p50: f64,
    /// 99th percentile (ms).
    pub latency_ms_p99: f64,
    /// Largest (ms).
    pub latency_ms_max: f64,
    /// Queries that failed (HTTP error or no answer) in the window (should be 0).
    pub errors: u64,
    /// Queries in the mix.
    pub mix: usize,
    /// Blocks node 0's indexer was behind the chain's tip at the end of the window.
    pub indexer_lag_blocks: u64,
    /// Each second of the window: where a tail comes from (a few bad seconds or all of them),
    /// to set beside the orders' progress in the same seconds.
    pub per_second: Vec<Second>,
}

/// One second of the window.
#[derive(Debug, Serialize)]
pub struct Second {
    /// Seconds since the window opened.
    pub second: u64,
    /// Queries answered in it.
    pub queries: u64,
    /// 99th percentile of their latency (ms).
    pub latency_ms_p99: f64,
    /// Largest (ms).
    pub latency_ms_max: f64,
}

/// The query mix: Chinese and English words, filters, facets, sorts and pages.
pub fn mix() -> Vec<String> {
    let words = [
        "蓝牙耳机",
        "耳机",
        "bluetooth%20headphones",
        "keyboard",
        "龙井茶",
        "green%20tea",
        "跑步鞋",
        "running%20shoes",
        "智能手机",
        "backpack",
        "电饭煲",
        "scarf",
    ];
    let filters = [
        "",
        "&in_stock=true",
        "&sort=price_asc",
        "&category=electronics",
        "&price_max=50000&sort=price_desc",
        "&sort=newest&page=2",
        "&attr=edition:Pro",
        "&sort=sales&per_page=50",
    ];
    let mut queries = Vec::with_capacity(words.len() * filters.len());
    for (i, word) in words.iter().enumerate() {
        for (j, filter) in filters.iter().enumerate() {
            if (i + j) % 2 == 0 {
                queries.push(format!(
                    "/v1/shop/search?q={}{filter}",
                    percent_encoded(word)
                ));
            }
        }
    }
    queries.push("/v1/shop/search?category=food&sort=rating".into());
    queries.push("/v1/shop/search?seller=shop&in_stock=true".into());
    queries
}

/// Query threads running until [`Running::stop`].
pub struct Running {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    /// (second of the window it was answered in, latency in ns) per query.
    latencies: Arc<Mutex<Vec<(u64, u64)>>>,
    errors: Arc<AtomicU64>,
    window: (Instant, Instant),
    products: usize,
    clients: usize,
    rate: u64,
    mix: usize,
}

/// Start `load.clients` threads querying `url` back to back; only answers that arrive within
/// `window` count.
pub fn start(url: &str, load: Load, window: (Instant, Instant)) -> anyhow::Result<Running> {
    let queries = Arc::new(mix());
    let stop = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::with_capacity(load.clients);
    let address = url
        .strip_prefix("http://")
        .ok_or_else(|| anyhow::anyhow!("the search benchmark speaks plain HTTP, not {url}"))?
        .trim_end_matches('/')
        .to_string();
    // Open loop: the k-th query of thread c is due at `start + (k × clients + c) / rate`.
    let start = Instant::now();
    for client in 0..load.clients {
        let (queries, stop, latencies, errors) = (
            queries.clone(),
            stop.clone(),
            latencies.clone(),
            errors.clone(),
        );
        let address = address.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("search-client-{client}"))
                .spawn(move || {
                    let mut mine = Vec::new();
                    let mut failed = 0;
                    let mut next = client * 7;
                    let mut connection: Option<Connection> = None;
                    let mut sent_count: u64 = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let path = &queries[next % queries.len()];
                        next += 1;
                        let sent = if load.rate == 0 {
                            Instant::now()
                        } else {
                            let slot = sent_count * load.clients as u64 + client as u64;
                            sent_count += 1;
                            let due =
                                start + Duration::from_secs_f64(slot as f64 / load.rate as f64);
                            // Asleep in slices, so a stop is seen within one.
                            loop {
                                let now = Instant::now();
                                if due <= now || stop.load(Ordering::Relaxed) {
                                    break;
                                }
                                std::thread::sleep((due - now).min(Duration::from_millis(50)));
                            }
                            if stop.load(Ordering::Relaxed) {
                                break;
                            }
                            due
                        };
                        let ok = match connection.as_mut().map(|open| open.get(path)) {
                            Some(Ok(())) => Ok(()),
                            // A connection the server closed while it sat idle (or never
                            // opened): a GET is safe to send again, on a new one.
                            Some(Err(Failure::Connection(_))) | None => Connection::open(&address)
                                .map_err(Failure::Connection)
                                .and_then(|mut open| {
                                    let answer = open.get(path);
                                    connection = Some(open);
                                    answer
                                }),
                            Some(Err(answer)) => Err(answer),
                        };
                        if let Err(failure) = &ok {
                            tracing::debug!(%failure, path, "a search query failed");
                            // Start afresh on a new connection.
                            connection = None;
                        }
                        let ok = ok.is_ok();
                        let done = Instant::now();
                        if done >= window.0 && done <= window.1 {
                            if ok {
                                mine.push((
                                    (done - window.0).as_secs(),
                                    u64::try_from((done - sent).as_nanos()).unwrap_or(u64::MAX),
                                ));
                            } else {
                                failed += 1;
                            }
                        }
                    }
                    latencies.lock().expect("latencies").extend(mine);
                    errors.fetch_add(failed, Ordering::Relaxed);
                })?,
        );
    }
    Ok(Running {
        stop,
        threads,
        latencies,
        errors,
        window,
        products: load.products,
        clients: load.clients,
        rate: load.rate,
        mix: queries.len(),
    })
}

/// One keep-alive HTTP/1.1 connection to the node, used by one query thread.
///
/// The client is the least that speaks HTTP/1.1 (a request line, a `Host` header, a
/// response read to its `Content-Length`), so a query's measured time is the server's and the
/// network's: a general client (reqwest's blocking one runs each request on a runtime thread
/// of its own) would add a thread hand-over each way to every query, and on a busy machine
/// each hand-over is a wait for the processor.
struct Connection {
    stream: std::io::BufReader<std::net::TcpStream>,
    host: String,
    line: String,
    body: Vec<u8>,
}

impl Connection {
    fn open(address: &str) -> std::io::Result<Self> {
        let stream = std::net::TcpStream::connect(address)?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            stream: std::io::BufReader::new(stream),
            host: address.to_string(),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// `GET path`: Ok when the answer is 200 with its whole body read.
    fn get(&mut self, path: &str) -> Result<(), Failure> {
        use std::io::{BufRead as _, Read as _, Write as _};
        let bad = |why: String| Failure::Answer(why);
        write!(
            self.stream.get_mut(),
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAccept: application/json\r\n\r\n",
            self.host
        )
        .map_err(Failure::Connection)?;
        let mut status = None;
        let mut length = None;
        loop {
            self.line.clear();
            let read = self.stream.read_line(&mut self.line);
            match read {
                // Nothing of an answer yet: the connection is gone, not the answer wrong.
                Ok(0) if status.is_none() => {
                    return Err(Failure::Connection(
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ));
                }
                Err(error) if status.is_none() => return Err(Failure::Connection(error)),
                Ok(0) => return Err(bad("the connection closed mid-answer".into())),
                Err(error) => return Err(bad(error.to_string())),
                Ok(_) => {}
            }
            let line = self.line.trim_end();
            if line.is_empty() {
                break;
            }
            if status.is_none() {
                status = Some(line.split(' ').nth(1).unwrap_or("").to_string());
            } else if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let length = length.ok_or_else(|| bad("an answer without Content-Length".into()))?;
        self.body.resize(length, 0);
        self.stream
            .read_exact(&mut self.body)
            .map_err(|e| bad(e.to_string()))?;
        match status.as_deref() {
            Some("200") => Ok(()),
            other => Err(bad(format!("HTTP status {other:?}"))),
        }
    }
}

/// Why a query failed.
enum Failure {
    /// The connection failed before any of the answer arrived (the server may have closed
    /// it while idle): worth a new connection.
    Connection(std::io::Error),
    /// The answer was wrong or cut short.
    Answer(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connection(error) => write!(f, "connection failed: {error}"),
            Self::Answer(why) => write!(f, "bad answer: {why}"),
        }
    }
}

/// `text` with every byte outside unreserved ASCII percent-encoded, as a URL query value.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~%".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

impl Running {
    /// Stop the threads and count; `lag` is how far the indexer was behind.
    pub fn stop(self, lag: u64) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads {
            let _ = thread.join();
        }
        let answered = std::mem::take(&mut *self.latencies.lock().expect("latencies"));
        let mut seconds = std::collections::BTreeMap::<u64, Vec<u64>>::new();
        for &(second, latency) in &answered {
            seconds.entry(second).or_default().push(latency);
        }
        let per_second = seconds
            .into_iter()
            .map(|(second, latencies)| {
                let queries = latencies.len() as u64;
                let max = latencies.iter().copied().max().unwrap_or(0) as f64 / 1e6;
                Second {
                    second,
                    queries,
                    latency_ms_p99: super::percentiles(latencies)(0.99),
                    latency_ms_max: max,
                }
            })
            .collect();
        let latencies: Vec<u64> = answered.into_iter().map(|(_, latency)| latency).collect();
        let count = latencies.len() as u64;
        let max = latencies.iter().copied().max().unwrap_or(0) as f64 / 1e6;
        let at = super::percentiles(latencies);
        let window_s = (self.window.1 - self.window.0).as_secs_f64();
        Report {
            products: self.products,
            clients: self.clients,
            offered_per_s: self.rate,
            queries_in_window: count,
            queries_per_s: count as f64 / window_s,
            latency_ms_p50: at(0.5),
            latency_ms_p99: at(0.99),
            latency_ms_max: max,
            errors: self.errors.load(Ordering::Relaxed),
            mix: self.mix,
            indexer_lag_blocks: lag,
            per_second,
        }
    }
}

/// Print a search report.
pub fn print(report: &Report) {
    println!(
        "search: {:.0} queries/s from {} clients{} on {} products (p50 {:.1} ms, p99 {:.1} ms, \
         max {:.1} ms; {} errors; indexer {} blocks behind at the end)",
        report.queries_per_s,
        report.clients,
        if report.offered_per_s == 0 {
            String::new()
        } else {
            format!(" offering {}/s", report.offered_per_s)
        },
        report.products,
        report.latency_ms_p50,
        report.latency_ms_p99,
        report.latency_ms_max,
        report.errors,
        report.indexer_lag_blocks
    );
    let seconds: Vec<String> = report
        .per_second
        .iter()
        .map(|s| format!("{}:{:.0}", s.second, s.latency_ms_p99))
        .collect();
    println!("search p99 (ms) per second: {}", seconds.join(" "));
}
