//! Warnings when finality is slow, in the node's log at the default level: a finalized block
//! proposed long after its parent (the consortium stalled: views timed out, or no leader
//! proposed), and this node finalizing blocks long after they were proposed (it fell behind,
//! and when it caught up). One line per episode, so a stall of a few seconds under load shows
//! in an operator's log without debug logging, and a node catching up after a restart says so
//! once rather than once per block. Only logs read it: the state machine never does.

use consort_types::Header;
use std::{sync::Mutex, time::Duration};
use tracing::{info, warn};

/// What [`Pace::finalized`] noticed about one finalized block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noticed {
    /// Nothing unusual.
    Nothing,
    /// The block was proposed long after its parent, past the threshold.
    Stall {
        /// From the parent's proposal to this block's (ms).
        gap_ms: u64,
        /// Views between them that ended without a block (0 if that cannot be told: an
        /// epoch's first block).
        views_skipped: u64,
    },
    /// This node finalized the block long after it was proposed, past the threshold, having
    /// kept up until now.
    FellBehind {
        /// From the block's proposal to its finalization here (ms).
        lag_ms: u64,
    },
    /// This node is back within the threshold of the proposals it finalizes.
    CaughtUp,
}

/// Finality's pace as one node sees it.
#[derive(Debug)]
pub struct Pace {
    threshold_ms: u64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// The last finalized block's height and proposal time.
    last: Option<(u64, u64)>,
    /// Whether this node was behind at the last finalized block.
    behind: bool,
}

impl Pace {
    /// Warn past `threshold_ms`: longer than a healthy chain ever takes between blocks (the
    /// leader timeout, which is longer than the empty-block interval).
    pub fn new(threshold_ms: u64) -> Self {
        Self {
            threshold_ms,
            state: Mutex::new(State::default()),
        }
    }

    /// Hear of the finalized block with `header`, at `now_ms` by this node's clock, and log
    /// what is unusual about it.
    pub fn finalized(&self, header: &Header, now_ms: u64) -> Noticed {
        let height = header.height.get();
        let proposed = header.timestamp_ms;
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let parent = state.last.replace((height, proposed));
        let lag_ms = now_ms.saturating_sub(proposed);
        let behind = lag_ms > self.threshold_ms;
        let was_behind = std::mem::replace(&mut state.behind, behind);
        drop(state);
        if behind && !was_behind {
            warn!(
                height,
                lag_ms, "this node finalizes blocks long after they were proposed: it is behind"
            );
            return Noticed::FellBehind { lag_ms };
        }
        if !behind && was_behind {
            info!(height, lag_ms, "this node has caught up with the chain");
            return Noticed::CaughtUp;
        }
        // Blocks finalized while catching up were proposed whenever they were: only a node
        // that keeps up can tell a stall of the chain from its own delay.
        let Some((parent_height, parent_proposed)) = parent else {
            return Noticed::Nothing;
        };
        let gap_ms = proposed.saturating_sub(parent_proposed);
        if behind || parent_height.checked_add(1) != Some(height) || gap_ms <= self.threshold_ms {
            return Noticed::Nothing;
        }
        let views_skipped = header
            .context
            .round
            .view()
            .get()
            .saturating_sub(header.context.parent.0.get())
            .saturating_sub(1);
        warn!(
            height,
            gap_ms,
            views_skipped,
            "the chain stalled: this block was proposed long after its parent"
        );
        Noticed::Stall {
            gap_ms,
            views_skipped,
        }
    }
}

/// Consensus timeouts that fit the chain's empty-block pace: an idle leader waits up to the
/// empty-block interval before proposing, so the others must not give up on it sooner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long to wait for the leader's proposal.
    pub leader: Duration,
    /// How long to wait for a proposal's certification.
    pub certification: Duration,
    /// How long a silent leader is tolerated before its views are skipped at once.
    pub skip: Duration,
}

impl Timeouts {
    /// Timeouts for an empty-block interval of `interval_ms`.
    pub fn for_interval(interval_ms: u64) -> Self {
        let leader =
            Duration::from_millis(interval_ms.saturating_add(1_000)).max(Duration::from_secs(2));
        let certification = leader + Duration::from_secs(1);
        let skip = (certification + Duration::from_secs(3)).max(Duration::from_secs(6));
        Self {
            leader,
            certification,
            skip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_consensus::types::{Epoch, Round, View};

    fn header(height: u64, timestamp_ms: u64, view: u64, parent_view: u64) -> Header {
        let mut block = crate::test_blocks::block(
            height,
            [0u8; 32].into(),
            timestamp_ms,
            Vec::new(),
            Vec::new(),
        );
        block.header.context.round = Round::new(Epoch::zero(), View::new(view));
        block.header.context.parent.0 = View::new(parent_view);
        block.header
    }

    #[test]
    fn a_gap_between_blocks_past_the_threshold_is_a_stall_with_its_skipped_views() {
        let pace = Pace::new(2_000);
        let t = 1_800_000_000_000;
        assert_eq!(
            pace.finalized(&header(1, t, 1, 0), t + 100),
            Noticed::Nothing
        );
        assert_eq!(
            pace.finalized(&header(2, t + 1_500, 2, 1), t + 1_600),
            Noticed::Nothing,
            "an empty-block interval is no stall"
        );
        assert_eq!(
            pace.finalized(&header(3, t + 8_000, 6, 2), t + 8_100),
            Noticed::Stall {
                gap_ms: 6_500,
                views_skipped: 3
            }
        );
        assert_eq!(
            pace.finalized(&header(4, t + 8_100, 7, 6), t + 8_200),
            Noticed::Nothing
        );
    }

    #[test]
    fn falling_behind_and_catching_up_are_told_once_each() {
        let pace = Pace::new(2_000);
        let t = 1_800_000_000_000;
        assert_eq!(
            pace.finalized(&header(1, t, 1, 0), t + 100),
            Noticed::Nothing
        );
        assert_eq!(
            pace.finalized(&header(2, t + 100, 2, 1), t + 5_000),
            Noticed::FellBehind { lag_ms: 4_900 }
        );
        // Still behind, with proposals far apart (replayed history): no stall is claimed.
        assert_eq!(
            pace.finalized(&header(3, t + 9_000, 3, 2), t + 12_000),
            Noticed::Nothing
        );
        assert_eq!(
            pace.finalized(&header(4, t + 12_000, 4, 3), t + 12_050),
            Noticed::CaughtUp
        );
        assert_eq!(
            pace.finalized(&header(5, t + 12_100, 5, 4), t + 12_150),
            Noticed::Nothing
        );
    }
}
