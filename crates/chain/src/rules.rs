//! What a block executes under besides its parent state: the chain's rules from genesis (the
//! modules it configures). The block's own height and time are
//! [`consort_execution::BlockInfo`].

use consort_commerce::Commerce;
use consort_governance::Gov;
use consort_peg::Peg;
use consort_types::Genesis;

pub use consort_execution::BlockInfo;

/// The chain's rules, from genesis.
#[derive(Clone, Copy)]
pub struct Rules<'a> {
    /// The chain's genesis (credited in block 1).
    pub genesis: &'a Genesis,
    /// The peg, if genesis configures one.
    pub peg: Option<&'a Peg>,
    /// Governance and permissions, if genesis configures them.
    pub gov: Option<&'a Gov>,
    /// The shop, if genesis configures one (it needs governance).
    pub commerce: Option<&'a Commerce>,
}
