//! The Consort chain on commonware: the runtime that runs blocks over the modules, the
//! transaction pipeline and the simplex/marshal/stateful validator stack.
//!
//! Below it: [`consort_state`] (the authenticated state), [`consort_execution`] (context,
//! failures, the ledger, permissions) and the modules ([`consort_governance`], [`consort_peg`],
//! [`consort_private`], [`consort_validators`]).
//!
//! * [`runtime`] runs a block's transactions against a QMDB batch, deterministically; its
//!   `dispatch` is the one exhaustive `match` on calls.
//! * [`admission`] and [`pipeline`]: the checks every path applies before a transaction may
//!   take a place, and a node's one admission pipeline (API and gossip).
//! * [`mempool`] admits, orders and hands out pending transactions.
//! * [`application`] plugs execution into `commonware_glue::stateful`.
//! * [`epochs`] and [`validator`] wire p2p channels, marshal, stateful and simplex for one
//!   validator across epochs, over any runtime (tokio in production, deterministic in
//!   simulation).

pub mod admission;
pub mod application;
pub mod epochs;
pub mod mempool;
pub mod pace;
pub mod pipeline;
pub mod rules;
pub mod runtime;
#[cfg(test)]
mod test_blocks;
pub mod txindex;
pub mod validator;

pub use application::{App, ChainObserver};
pub use mempool::Mempool;
