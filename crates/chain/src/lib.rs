//! The Consort state machine on commonware: execution over QMDB, mempool, and the
//! simplex/marshal/stateful validator stack.
//!
//! * [`execute`] runs a block's transactions against a QMDB batch, deterministically.
//! * [`mempool`] admits, orders and hands out pending transactions.
//! * [`application`] plugs execution into `commonware_glue::stateful`.
//! * [`validator`] wires p2p channels, marshal, stateful and simplex for one validator, over any
//!   runtime (tokio in production, deterministic in simulation).

pub mod admission;
pub mod application;
pub mod epochs;
pub mod error;
pub mod execute;
pub mod gov;
pub mod ledger;
pub mod light;
pub mod mempool;
pub mod peg;
pub mod pipeline;
pub mod private;
pub mod rules;
pub mod state;
pub mod store;
pub mod validator;
pub mod validators;
pub mod watcher;

pub use application::{App, ChainObserver};
pub use mempool::Mempool;
