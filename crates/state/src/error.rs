//! Why the state could not be read.

use consort_types::Digest;

/// Why a read of the state failed. None of these is a transaction's fault.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// A stored value does not decode: the database is corrupt.
    #[error("stored state under {0} does not decode")]
    CorruptState(Digest),
    /// The database failed.
    #[error("state database: {0}")]
    Database(String),
    /// A record to write encodes larger than [`crate::RECORD_SIZE_MAX`]: a module wrote a list
    /// past its cap (a bug, never a transaction's fault). Nothing was written.
    #[error("record under {key} is {size} bytes, over RECORD_SIZE_MAX")]
    RecordTooLarge {
        /// Where it was to be written.
        key: Digest,
        /// Its encoded size (bytes).
        size: usize,
    },
    /// A read-only snapshot went stale: a block was applied while it was read. Read again
    /// from a fresh snapshot.
    #[error("the state moved on while it was read")]
    StaleRead,
}

impl<F: commonware_storage::merkle::Family> From<commonware_storage::qmdb::Error<F>>
    for StateError
{
    fn from(error: commonware_storage::qmdb::Error<F>) -> Self {
        match error {
            commonware_storage::qmdb::Error::StaleRead => Self::StaleRead,
            error => Self::Database(format!("{error:?}")),
        }
    }
}
