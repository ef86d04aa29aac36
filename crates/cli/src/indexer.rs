//! `consort indexer`: follow a node's finalized blocks into the shop's SQLite read model.

use anyhow::Context as _;
use consort_indexer::{
    Index, NodeSource, Search,
    api::{Shop, Update},
    follow,
    service::{open_or_rebuild, remove, search_dir},
};
use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

/// How often progress is printed while catching up.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Run the indexer (see the command's help).
pub fn run(
    node: &str,
    db: &Path,
    until: Option<u64>,
    rebuild: bool,
    dump: bool,
    (listen, public_hosts): (Option<std::net::SocketAddr>, Vec<String>),
) -> anyhow::Result<()> {
    if dump {
        let index = Index::open(db)?;
        print!("{}", index.dump()?);
        return Ok(());
    }
    if rebuild {
        remove(db).with_context(|| format!("cannot remove the index at {}", db.display()))?;
    }
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut index = open_or_rebuild(db)?;
    let search = Arc::new(Search::open(&search_dir(db))?);
    let shop = Shop::new(db.to_path_buf(), search.clone(), node)?;
    if let Some(listen) = listen {
        serve(listen, &public_hosts, shop.clone())?;
    }
    let source = NodeSource::new(node)?;
    let stop = Arc::new(AtomicBool::new(false));
    {
        let flag = stop.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
            .context("cannot install the Ctrl-C handler")?;
    }
    let from = index.cursor()?.map_or(0, |c| c.height);
    eprintln!(
        "indexing {node}'s shop into {} from block {} ({}); Ctrl-C stops at a block boundary",
        db.display(),
        from + 1,
        until.map_or("following the tip".to_string(), |u| format!(
            "until block {u}"
        ))
    );
    let started = Instant::now();
    let mut last = Instant::now();
    let at = follow(
        &mut index,
        &source,
        Some(&search),
        until,
        &stop,
        |height, tip| {
            shop.publish(Update { height });
            if last.elapsed() >= PROGRESS_EVERY {
                last = Instant::now();
                let behind = tip.saturating_sub(height);
                eprintln!("indexed block {height} (tip {tip}, {behind} behind)");
            }
        },
    )
    .context("the indexer stopped; run it again to resume from its last block")?;
    eprintln!(
        "indexed up to block {at} ({} blocks in {:.1} s)",
        at - from,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Serve the shop API (`/v1/shop/...`) on `listen` from a thread of its own.
fn serve(
    listen: std::net::SocketAddr,
    public_hosts: &[String],
    shop: Arc<Shop>,
) -> anyhow::Result<()> {
    let listener = consort_node::serve::listen(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let _ = shop
        .hosts
        .set(consort_node::node::api_hosts(address, public_hosts).context("--public-host")?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(consort_indexer::api::API_WORKER_THREADS)
        .enable_all()
        .build()
        .context("cannot start the API's runtime")?;
    std::thread::Builder::new()
        .name("shop-api".into())
        .spawn(move || {
            runtime.block_on(async move {
                let app = consort_indexer::api::routes(shop);
                match tokio::net::TcpListener::from_std(listener) {
                    // The node's server: bounded connections, and a client that is slow to
                    // send or stops reading is disconnected.
                    Ok(listener) => {
                        consort_node::serve::serve(listener, app, Default::default()).await;
                    }
                    Err(error) => tracing::error!(%error, "the shop API cannot listen"),
                }
            });
        })?;
    eprintln!("serving the shop API on http://{address}/v1/shop/search?q=...");
    Ok(())
}
