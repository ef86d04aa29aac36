//! `consort indexer`: follow a node's finalized blocks into the shop's SQLite read model.

use anyhow::Context as _;
use consort_indexer::{Index, NodeSource, follow};
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

/// Remove the index at `db` and the WAL files beside it.
fn remove(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        match std::fs::remove_file(&name) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(e).with_context(|| format!("cannot remove {}", db.display()));
            }
        }
    }
    Ok(())
}

/// Run the indexer (see the command's help).
pub fn run(
    node: &str,
    db: &Path,
    until: Option<u64>,
    rebuild: bool,
    dump: bool,
) -> anyhow::Result<()> {
    if dump {
        let index = Index::open(db)?;
        print!("{}", index.dump()?);
        return Ok(());
    }
    if rebuild {
        remove(db)?;
    }
    if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut index = Index::open(db)?;
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
    let at = follow(&mut index, &source, until, &stop, |height, tip| {
        if last.elapsed() >= PROGRESS_EVERY {
            last = Instant::now();
            let behind = tip.saturating_sub(height);
            eprintln!("indexed block {height} (tip {tip}, {behind} behind)");
        }
    })
    .context("the indexer stopped; run it again to resume from its last block")?;
    eprintln!(
        "indexed up to block {at} ({} blocks in {:.1} s)",
        at - from,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
