//! What a call runs with besides the state.

use consort_types::AccountId;

/// The block being executed: its height and the proposer's timestamp, which consensus checked
/// (never before the parent's, never more than the allowed drift ahead of a verifier's clock).
/// Expiries and deadlines run on this time, never on a node's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// Height of the block.
    pub height: u64,
    /// Block time, ms since the Unix epoch.
    pub timestamp_ms: u64,
}

/// One call's context: who sent it, in which block.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    /// The transaction's sender (its signature was checked).
    pub sender: &'a AccountId,
    /// The block it runs in.
    pub block: BlockInfo,
    /// The transaction's position in the block: with the height, where it sits, which names
    /// the records it creates.
    pub index: u32,
}

impl Context<'_> {
    /// The block's height.
    pub fn height(&self) -> u64 {
        self.block.height
    }

    /// Where the transaction sits: the id of a record it creates.
    pub fn place(&self) -> consort_types::commerce::RecordId {
        consort_types::commerce::RecordId {
            height: self.block.height,
            index: self.index,
        }
    }
}
