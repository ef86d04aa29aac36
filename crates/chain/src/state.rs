//! The authenticated state: one QMDB `current::ordered::variable` database keyed by
//! [`consort_types::state_key`] digests, valued by canonical encodings.

use commonware_codec::RangeCfg;
use commonware_cryptography::{Sha256, sha256};
use commonware_glue::stateful::db::{DatabaseSet, Shared};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_storage::{
    journal::contiguous::variable::Config as VariableLogConfig,
    mmr::{self, full::Config as MmrJournalConfig},
    qmdb::current::{VariableConfig, ordered::variable},
    translator::TwoCap,
};
use commonware_utils::{NZU64, NZUsize};
use std::num::{NonZeroU64, NonZeroUsize};

/// What the chain needs of a runtime: storage, tasks, time, metrics and randomness. The tokio
/// runtime in production and the deterministic one in simulation both provide it.
pub trait Runtime:
    commonware_storage::Context
    + commonware_runtime::Spawner
    + commonware_runtime::Clock
    + commonware_runtime::Metrics
    + rand_core::CryptoRng
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<T> Runtime for T where
    T: commonware_storage::Context
        + commonware_runtime::Spawner
        + commonware_runtime::Clock
        + commonware_runtime::Metrics
        + rand_core::CryptoRng
        + Clone
        + Send
        + Sync
        + 'static
{
}

/// Largest value stored under one key (bytes).
pub const STATE_VALUE_SIZE_MAX: usize = 64 * 1024;

/// Bitmap chunk size of the current database (bytes).
pub const CHUNK_BYTES: usize = 32;

/// The state database.
pub type StateDb<E> =
    variable::Db<mmr::Family, E, sha256::Digest, Vec<u8>, Sha256, TwoCap, CHUNK_BYTES, Sequential>;

/// The database set managed by `Stateful`.
pub type Databases<E> = Shared<StateDb<E>>;

/// A batch being built on a parent's state.
pub type Unmerkleized<E> = <Databases<E> as DatabaseSet<E>>::Unmerkleized;

/// A batch whose root is computed.
pub type Merkleized<E> = <Databases<E> as DatabaseSet<E>>::Merkleized;

const IO_BUFFER: NonZeroUsize = NZUsize!(1 << 16);
const ITEMS_PER_BLOB: NonZeroU64 = NZU64!(1 << 16);

/// Storage configuration of the state database under partition prefix `prefix`.
pub fn db_config(
    prefix: &str,
    page_cache: CacheRef,
) -> VariableConfig<TwoCap, ((), (RangeCfg<usize>, ())), Sequential> {
    VariableConfig {
        merkle_config: MmrJournalConfig {
            journal_partition: format!("{prefix}-state-mmr-journal"),
            metadata_partition: format!("{prefix}-state-mmr-metadata"),
            items_per_blob: ITEMS_PER_BLOB,
            write_buffer: IO_BUFFER,
            replay_buffer: IO_BUFFER,
            strategy: Sequential,
            page_cache: page_cache.clone(),
        },
        journal_config: VariableLogConfig {
            partition: format!("{prefix}-state-log"),
            items_per_section: ITEMS_PER_BLOB,
            compression: None,
            codec_config: ((), (RangeCfg::new(0..=STATE_VALUE_SIZE_MAX), ())),
            page_cache,
            write_buffer: IO_BUFFER,
            replay_buffer: IO_BUFFER,
        },
        grafted_metadata_partition: format!("{prefix}-state-grafted-metadata"),
        translator: TwoCap,
        init_cache: Some(NZUsize!(1 << 16)),
        init_buffer: NZUsize!(1 << 21),
        init_concurrency: (),
    }
}
