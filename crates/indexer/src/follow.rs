//! Following a source block by block, from the index's cursor.

use crate::{Index, IndexError, Search, SearchError, Source, SourceError};
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

/// How long the follower waits when it has caught up, or the node did not answer.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// How often, at most, the search index is committed while catching up (at the tip it is
/// committed after every block, so a change is searchable within a block).
pub const SEARCH_COMMIT_EVERY: Duration = Duration::from_millis(500);

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The index refused a block or failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The source failed in a way waiting does not fix.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// The search index failed.
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// Apply blocks from `source` to `index`, from the block after its cursor, until `until` (if
/// given) is applied or `stop` is set; waits at the tip for new blocks, and while the source
/// does not answer. Keeps `search` (if any) up to the read model. `applied` hears each
/// block's height and the tip. Returns the last height applied.
///
/// # Errors
/// If the index refuses a block, the source answers something wrong, or search fails.
pub fn follow(
    index: &mut Index,
    source: &dyn Source,
    search: Option<&Search>,
    until: Option<u64>,
    stop: &AtomicBool,
    mut applied: impl FnMut(u64, u64),
) -> Result<u64, FollowError> {
    let mut at = index.cursor()?.map_or(0, |c| c.height);
    let mut tip = 0;
    let mut synced = Instant::now();
    if let Some(search) = search {
        search.recover(index)?;
        search.sync(index)?;
    }
    let result = follow_blocks(
        index,
        source,
        until,
        stop,
        &mut at,
        &mut tip,
        |index, at, tip| {
            applied(at, tip);
            if let Some(search) = search
                && (at >= tip || synced.elapsed() >= SEARCH_COMMIT_EVERY)
            {
                search.sync(index)?;
                synced = Instant::now();
            }
            Ok(())
        },
    );
    if let Some(search) = search {
        search.sync(index)?;
    }
    result?;
    Ok(at)
}

fn follow_blocks(
    index: &mut Index,
    source: &dyn Source,
    until: Option<u64>,
    stop: &AtomicBool,
    at: &mut u64,
    tip: &mut u64,
    mut applied: impl FnMut(&Index, u64, u64) -> Result<(), FollowError>,
) -> Result<(), FollowError> {
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| *at < u) {
        let next = *at + 1;
        if next > *tip {
            match source.tip() {
                Ok(t) => *tip = t,
                Err(e) if e.transient() => {
                    tracing::warn!(error = %e, "the node does not answer; trying again");
                    std::thread::sleep(FOLLOW_POLL);
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            if next > *tip {
                std::thread::sleep(FOLLOW_POLL);
                continue;
            }
        }
        match source.block(next) {
            Ok(Some((block, changes))) => {
                index.apply(&block, &changes)?;
                *at = next;
                applied(index, *at, *tip)?;
            }
            Ok(None) => std::thread::sleep(FOLLOW_POLL),
            Err(e) if e.transient() => {
                tracing::warn!(error = %e, height = next, "cannot fetch the block; trying again");
                std::thread::sleep(FOLLOW_POLL);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
