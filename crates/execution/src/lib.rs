//! The execution core every module runs on, between the state ([`consort_state`]) and the
//! modules (governance, peg, private records, validators) and the runtime that dispatches to them.
//!
//! * [`context`]: [`Context`], what a call runs with besides the state: its sender and the
//!   block's height and time ([`BlockInfo`]).
//! * [`error`]: the two kinds of failure — a transaction's ([`Fail::Tx`], which becomes its
//!   receipt) and the node's ([`BlockError`]).
//! * [`ledger`]: one ledger for every asset, the native coin included ([`Denom`]).
//! * [`accounts`]: accounts and their nonces.
//! * [`permissions`]: the [`Permissions`] checks a call passes before and while it runs
//!   (registration, roles, freezes, the emergency brake); [`Open`] on a chain without
//!   governance.
//!
//! Nothing here reads the clock, touches the network or iterates an unordered collection.

pub mod accounts;
pub mod context;
pub mod error;
pub mod ledger;
pub mod permissions;

pub use consort_state::{
    FIRST_CHUNK_DATA, Runtime, STATE_VALUE_SIZE, StateError, Store, record_keys,
};
pub use context::{BlockInfo, Context};
pub use error::{BlockError, Fail};
pub use ledger::Denom;
pub use permissions::{Open, Permissions};
