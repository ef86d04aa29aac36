//! Consortium governance: who may write what, organisations admitted and removed by vote
//! (private mode: the founding organisation alone), accounts registered with roles.
//!
//! Votes count per organisation: a proposal passes when more than 2/3 of the member
//! organisations approve, is rejected as soon as that can no longer happen, and expires at
//! its deadline.
//!
//! * [`genesis`]: the founding organisations (block 1).
//! * [`permissions`]: who may make which call, freezes and the emergency brake — this chain's
//!   [`consort_execution::Permissions`].
//! * [`execute`]: the calls (registration, proposals, votes, supervision, e-money, rotations).
//! * [`query`]: reads other modules and the node make.
//! * [`block`]: end of block (expiries, rotations due).

pub mod block;
pub mod execute;
pub mod genesis;
pub mod permissions;
pub mod query;

use consort_execution::Fail;
use consort_types::{
    Call, Genesis, TxError,
    gov::{GovernanceConfig, OrgId},
};

/// Governance of a chain, from genesis.
#[derive(Clone, Debug)]
pub struct Gov {
    /// The configuration.
    pub config: GovernanceConfig,
    pub(crate) genesis: Genesis,
    /// The pegged coin's code: no bank may issue it.
    pub(crate) pegged: Option<consort_types::Asset>,
}

pub(crate) fn unauthorized(call: &Call, reason: &'static str) -> Fail {
    Fail::Tx(TxError::Unauthorized {
        call: call.kind(),
        reason,
    })
}

impl Gov {
    /// The governance `genesis` configures, if any.
    pub fn from_genesis(genesis: &Genesis) -> Option<Self> {
        genesis.governance.as_ref().map(|config| Self {
            config: config.clone(),
            genesis: genesis.clone(),
            pegged: genesis.peg.as_ref().map(|p| p.asset),
        })
    }

    /// The founding organisation (the first listed; genesis validation requires one, and
    /// without one nobody is the founder).
    pub(crate) fn founder(&self) -> Option<OrgId> {
        self.config.organisations.first().map(|o| o.id)
    }
}
