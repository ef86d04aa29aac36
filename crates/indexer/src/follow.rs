//! Following a source block by block, from the index's cursor.

use crate::{Index, IndexError, Source, SourceError};
use std::{
    sync::atomic::{AtomicBool, Ordering},
    time::Duration,
};

/// How long the follower waits when it has caught up, or the node did not answer.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Why following stopped.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The index refused a block or failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The source failed in a way waiting does not fix.
    #[error(transparent)]
    Source(#[from] SourceError),
}

/// Apply blocks from `source` to `index`, from the block after its cursor, until `until` (if
/// given) is applied or `stop` is set; waits at the tip for new blocks, and while the source
/// does not answer. `applied` hears each block's height. Returns the last height applied.
///
/// # Errors
/// If the index refuses a block, or the source answers something wrong.
pub fn follow(
    index: &mut Index,
    source: &dyn Source,
    until: Option<u64>,
    stop: &AtomicBool,
    mut applied: impl FnMut(u64, u64),
) -> Result<u64, FollowError> {
    let mut at = index.cursor()?.map_or(0, |c| c.height);
    let mut tip = 0;
    while !stop.load(Ordering::Relaxed) && until.is_none_or(|u| at < u) {
        let next = at + 1;
        if next > tip {
            match source.tip() {
                Ok(t) => tip = t,
                Err(e) if e.transient() => {
                    tracing::warn!(error = %e, "the node does not answer; trying again");
                    std::thread::sleep(FOLLOW_POLL);
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            if next > tip {
                std::thread::sleep(FOLLOW_POLL);
                continue;
            }
        }
        match source.block(next) {
            Ok(Some((block, changes))) => {
                index.apply(&block, &changes)?;
                at = next;
                applied(at, tip);
            }
            Ok(None) => std::thread::sleep(FOLLOW_POLL),
            Err(e) if e.transient() => {
                tracing::warn!(error = %e, height = next, "cannot fetch the block; trying again");
                std::thread::sleep(FOLLOW_POLL);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(at)
}
