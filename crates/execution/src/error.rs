//! The execution layer's two kinds of failure: a transaction's ([`Fail::Tx`], which becomes
//! its receipt) and the node's ([`BlockError`]: storage, corruption, broken invariants).

use consort_state::StateError;
use consort_types::{Digest, TxError};

/// Why a block cannot be executed.
#[derive(Debug, thiserror::Error)]
pub enum BlockError {
    /// A transaction in a peer's block fails.
    #[error("transaction {index} is invalid: {error}")]
    InvalidTx {
        /// Position in the block.
        index: usize,
        /// Why.
        error: TxError,
    },
    /// A stored value does not decode: the database is corrupt.
    #[error("stored state under {0} does not decode")]
    CorruptState(Digest),
    /// The database failed.
    #[error("state database: {0}")]
    Database(String),
    /// A read-only snapshot went stale: a block was applied while it was read. Read again
    /// from a fresh snapshot.
    #[error("the state moved on while it was read")]
    StaleRead,
    /// A ledger invariant does not hold after the block: a bug, never a user's fault.
    #[error("invariant broken: {0}")]
    Invariant(String),
}

impl From<StateError> for BlockError {
    fn from(error: StateError) -> Self {
        match error {
            StateError::CorruptState(key) => Self::CorruptState(key),
            StateError::Database(error) => Self::Database(error),
            StateError::StaleRead => Self::StaleRead,
            error @ StateError::RecordTooLarge { .. } => Self::Invariant(error.to_string()),
        }
    }
}

/// Why a call failed: refused (changes nothing), or the database failed.
#[derive(Debug)]
pub enum Fail {
    /// The transaction is refused.
    Tx(TxError),
    /// The state could not be read.
    Db(BlockError),
}

impl From<TxError> for Fail {
    fn from(error: TxError) -> Self {
        Self::Tx(error)
    }
}

impl From<StateError> for Fail {
    fn from(error: StateError) -> Self {
        Self::Db(error.into())
    }
}

impl From<BlockError> for Fail {
    fn from(error: BlockError) -> Self {
        Self::Db(error)
    }
}

impl From<consort_types::peg::PegError> for Fail {
    fn from(error: consort_types::peg::PegError) -> Self {
        Self::Tx(TxError::Peg(error))
    }
}

impl From<consort_types::gov::GovError> for Fail {
    fn from(error: consort_types::gov::GovError) -> Self {
        Self::Tx(TxError::Gov(error))
    }
}

impl From<consort_types::sealed::PrivateError> for Fail {
    fn from(error: consort_types::sealed::PrivateError) -> Self {
        Self::Tx(TxError::Private(error))
    }
}

impl From<consort_types::commerce::CommerceError> for Fail {
    fn from(error: consort_types::commerce::CommerceError) -> Self {
        Self::Tx(TxError::Commerce(error))
    }
}
