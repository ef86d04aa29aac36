//! Consort's authenticated state, below execution: nothing here knows a transaction.
//!
//! * [`db`]: the one QMDB `current::unordered::fixed` database keyed by
//!   [`consort_types::state_key`] digests, its 128-byte values ([`StateValue`]) and its storage
//!   configuration; reads of the finalized state ([`read_record`]).
//! * [`store`]: what a block reads and writes — fixed records and records of any size (as
//!   chunks), through a per-transaction journal so a refused transaction changes nothing, handed
//!   back in key order so every node writes the same operations.
//! * [`error`]: [`StateError`], why a read failed (never a transaction's fault).
//!
//! Nothing here reads the clock or iterates an unordered collection.

pub mod db;
pub mod error;
pub mod store;

pub use db::{
    CHUNK_BYTES, Databases, Merkleized, Runtime, STATE_VALUE_SIZE, StateDb, StateValue,
    Unmerkleized, db_config, from_value, read_account, read_record, to_value,
};
pub use error::StateError;
pub use store::{
    FIRST_CHUNK_DATA, RECORD_SIZE_MAX, Store, assemble_record, record_chunk_keys, record_keys,
};
