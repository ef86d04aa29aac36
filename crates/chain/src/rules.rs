//! What a block executes under besides its parent state: the chain's rules from genesis and
//! the block's own height and time.

use consort_types::Genesis;

/// The chain's rules, from genesis.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// The chain's genesis (credited in block 1).
    pub genesis: &'a Genesis,
    /// The peg, if genesis configures one.
    pub peg: Option<&'a crate::peg::Peg>,
    /// Governance and permissions, if genesis configures them.
    pub gov: Option<&'a crate::gov::Gov>,
}

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
