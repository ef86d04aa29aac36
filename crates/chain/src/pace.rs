//! Warnings when finality is slow, in the node's log at the default level: a finalized block
//! proposed long after its parent (the consortium stalled: views timed out, or no leader
//! proposed), and this node finalizing blocks long after they were proposed (it fell behind,
//! and when it caught up). A stall is one line, on the block that ends it; falling behind and
//! catching up are one line each, not one per block. So a stall of a few seconds under load
//! shows in an operator's log without debug logging. Only logs read it: the state machine
//! never does.

use consort_types::{Header, limits::BLOCK_FUTURE_DRIFT_MS};
use std::{sync::Mutex, time::Duration};
use tracing::{info, warn};

/// What [`Pace::finalized`] noticed about one finalized block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Noticed {
    /// Nothing unusual.
    Nothing,
    /// The block was proposed long after its parent: past the threshold and the drift a
    /// proposal's stamp may have.
    Stall {
        /// From the parent's proposal to this block's (ms).
        gap_ms: u64,
        /// Views between them that ended without a block (0 if that cannot be told: the
        /// parent is at view 0, genesis or an epoch's boundary).
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
    /// what is unusual about it. A node counts as behind past the threshold and as caught up
    /// again below half of it, so a delay near the threshold does not flip at every block.
    pub fn finalized(&self, header: &Header, now_ms: u64) -> Vec<Noticed> {
        let mut noticed = Vec::new();
        let height = header.height.get();
        let proposed = header.timestamp_ms;
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let parent = state.last.replace((height, proposed));
        let lag_ms = now_ms.saturating_sub(proposed);
        let was_behind = state.behind;
        let behind = if was_behind {
            lag_ms > self.threshold_ms / 2
        } else {
            lag_ms > self.threshold_ms
        };
        state.behind = behind;
        drop(state);
        if behind && !was_behind {
            warn!(
                height,
                lag_ms, "this node finalizes blocks long after they were proposed: it is behind"
            );
            noticed.push(Noticed::FellBehind { lag_ms });
        }
        if !behind && was_behind {
            info!(height, lag_ms, "this node has caught up with the chain");
            noticed.push(Noticed::CaughtUp);
        }
        // A proposal may be stamped up to the allowed drift ahead of the clocks of the others:
        // only a gap past the threshold and that drift is surely a stall.
        let stall_ms = self.threshold_ms.saturating_add(BLOCK_FUTURE_DRIFT_MS);
        if let Some((parent_height, parent_proposed)) = parent
            && parent_height.checked_add(1) == Some(height)
            && proposed.saturating_sub(parent_proposed) > stall_ms
        {
            let gap_ms = proposed.saturating_sub(parent_proposed);
            // Views count from zero in each epoch: a parent at view 0 (genesis, or the last
            // epoch's boundary) tells nothing of the views between.
            let parent_view = header.context.parent.0.get();
            let views_skipped = if parent_view == 0 {
                0
            } else {
                header
                    .context
                    .round
                    .view()
                    .get()
                    .saturating_sub(parent_view)
                    .saturating_sub(1)
            };
            warn!(
                height,
                gap_ms,
                views_skipped,
                "the chain stalled: this block was proposed long after its parent"
            );
            noticed.push(Noticed::Stall {
                gap_ms,
                views_skipped,
            });
        }
        noticed
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
    fn a_gap_between_blocks_past_the_threshold_and_drift_is_a_stall_with_its_skipped_views() {
        let pace = Pace::new(2_000);
        let t = 1_800_000_000_000;
        assert!(pace.finalized(&header(1, t, 1, 0), t + 100).is_empty());
        assert!(
            pace.finalized(&header(2, t + 1_500, 2, 1), t + 1_600)
                .is_empty(),
            "an empty-block interval is no stall"
        );
        assert!(
            pace.finalized(&header(3, t + 5_000, 3, 2), t + 5_100)
                .is_empty(),
            "a gap within the threshold and the proposer's allowed drift is no stall"
        );
        assert_eq!(
            pace.finalized(&header(4, t + 11_500, 7, 3), t + 11_600),
            vec![Noticed::Stall {
                gap_ms: 6_500,
                views_skipped: 3
            }]
        );
        assert!(
            pace.finalized(&header(5, t + 11_600, 8, 7), t + 11_700)
                .is_empty()
        );
        assert_eq!(
            pace.finalized(&header(6, t + 20_000, 1, 0), t + 20_100),
            vec![Noticed::Stall {
                gap_ms: 8_400,
                views_skipped: 0
            }],
            "an epoch's first block cannot tell its skipped views"
        );
    }

    #[test]
    fn falling_behind_and_catching_up_are_told_once_each_with_a_margin() {
        let pace = Pace::new(2_000);
        let t = 1_800_000_000_000;
        assert!(pace.finalized(&header(1, t, 1, 0), t + 100).is_empty());
        assert_eq!(
            pace.finalized(&header(2, t + 100, 2, 1), t + 5_000),
            vec![Noticed::FellBehind { lag_ms: 4_900 }]
        );
        assert!(
            pace.finalized(&header(3, t + 200, 3, 2), t + 6_000)
                .is_empty(),
            "still behind: told once"
        );
        assert!(
            pace.finalized(&header(4, t + 4_000, 4, 3), t + 5_900)
                .is_empty(),
            "under the threshold but not under half of it: still behind"
        );
        assert_eq!(
            pace.finalized(&header(5, t + 6_000, 5, 4), t + 6_050),
            vec![Noticed::CaughtUp]
        );
        assert!(
            pace.finalized(&header(6, t + 7_900, 6, 5), t + 9_400)
                .is_empty(),
            "a lag just past half the threshold after catching up is not behind"
        );
    }

    #[test]
    fn a_stall_is_told_on_the_block_that_ends_it_even_as_the_node_catches_up() {
        let pace = Pace::new(2_000);
        let t = 1_800_000_000_000;
        assert!(pace.finalized(&header(1, t, 1, 0), t + 100).is_empty());
        assert_eq!(
            pace.finalized(&header(2, t + 100, 2, 1), t + 3_000),
            vec![Noticed::FellBehind { lag_ms: 2_900 }]
        );
        assert_eq!(
            pace.finalized(&header(3, t + 7_000, 5, 2), t + 7_100),
            vec![
                Noticed::CaughtUp,
                Noticed::Stall {
                    gap_ms: 6_900,
                    views_skipped: 2
                }
            ]
        );
    }
}
