//! The authenticated state database: one QMDB `current::unordered::fixed` database keyed by
//! [`consort_types::state_key`] digests, valued by canonical encodings in values of
//! [`STATE_VALUE_SIZE`] bytes.
//!
//! Unordered: a key's current value is proven (`key_value_proof`), its absence is not. Keeping
//! keys in order would let a node prove absence, but costs every new or deleted key an update
//! of its neighbour and every lookup an ordered index: about a fifth of a shop order's cost
//! (`consort bench orders`: 1,315 → 1,579 orders/s when dropped). Nothing proves absence today.

use commonware_cryptography::{Sha256, sha256};
use commonware_glue::stateful::db::{DatabaseSet, Shared};
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::CacheRef;
use commonware_storage::{
    journal::contiguous::fixed::Config as FixedLogConfig,
    mmr::{self, full::Config as MmrJournalConfig},
    qmdb::current::{FixedConfig, unordered::fixed},
    translator::EightCap,
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
        + Send
        + Sync
        + 'static
{
}

/// Size of every value stored under a key (bytes). A record of up to 124 bytes (an account, a
/// shipment, an order's changing fields) is one value, so one database operation when it
/// changes; a larger one is split into further values ([`crate::store`]). Values are fixed in
/// size because state sync exchanges fixed-size operations. Each operation carries a whole
/// value, so a larger size costs every write bytes; 128 keeps a transfer's operations small
/// while an order step rewrites one value.
pub const STATE_VALUE_SIZE: usize = 128;

/// Bitmap chunk size of the current database (bytes).
pub const CHUNK_BYTES: usize = 32;

/// The state database.
pub type StateDb<E> = fixed::Db<
    mmr::Family,
    E,
    sha256::Digest,
    StateValue,
    Sha256,
    EightCap,
    CHUNK_BYTES,
    Sequential,
>;

/// A value in the state: the canonical encoding of a small record, zero-padded to
/// [`STATE_VALUE_SIZE`] bytes, or one chunk of a larger record ([`crate::store`]).
pub type StateValue = commonware_utils::sequence::FixedBytes<STATE_VALUE_SIZE>;

/// Pad a record's encoding into a state value.
///
/// # Panics
/// If the encoding is longer than [`STATE_VALUE_SIZE`]: only fixed-size records (an account,
/// a transaction's location) are stored this way, and their sizes are tested below.
pub fn to_value(record: &impl commonware_codec::Encode) -> StateValue {
    let bytes = record.encode();
    assert!(
        bytes.len() <= STATE_VALUE_SIZE,
        "state records fit STATE_VALUE_SIZE"
    );
    let mut value = [0u8; STATE_VALUE_SIZE];
    value[..bytes.len()].copy_from_slice(&bytes);
    StateValue::new(value)
}

/// Decode a record from a padded state value (the padding must be zero).
pub fn from_value<T: commonware_codec::Read<Cfg = ()> + commonware_codec::EncodeSize>(
    value: &StateValue,
) -> Option<T> {
    let bytes: &[u8] = value.as_ref();
    let mut reader = bytes;
    let record = T::read_cfg(&mut commonware_codec::Copying(reader), &()).ok()?;
    // A stored value is outside input: a record claiming more bytes than the value holds is
    // corrupt, not a reason to panic.
    reader = bytes.get(record.encode_size()..)?;
    reader.iter().all(|b| *b == 0).then_some(record)
}

/// The database set managed by `Stateful`.
pub type Databases<E> = Shared<StateDb<E>>;

/// A batch being built on a parent's state.
pub type Unmerkleized<E> = <Databases<E> as DatabaseSet<E>>::Unmerkleized;

/// A batch whose root is computed.
pub type Merkleized<E> = <Databases<E> as DatabaseSet<E>>::Merkleized;

const IO_BUFFER: NonZeroUsize = NZUsize!(1 << 16);
const ITEMS_PER_BLOB: NonZeroU64 = NZU64!(1 << 16);

/// Storage configuration of the state database under partition prefix `prefix`.
pub fn db_config(prefix: &str, page_cache: CacheRef) -> FixedConfig<EightCap, Sequential> {
    FixedConfig {
        merkle_config: MmrJournalConfig {
            journal_partition: format!("{prefix}-state-mmr-journal"),
            metadata_partition: format!("{prefix}-state-mmr-metadata"),
            items_per_blob: ITEMS_PER_BLOB,
            write_buffer: IO_BUFFER,
            replay_buffer: IO_BUFFER,
            strategy: Sequential,
            page_cache: page_cache.clone(),
        },
        journal_config: FixedLogConfig {
            partition: format!("{prefix}-state-log"),
            items_per_blob: ITEMS_PER_BLOB,
            page_cache,
            write_buffer: IO_BUFFER,
            replay_buffer: IO_BUFFER,
        },
        grafted_metadata_partition: format!("{prefix}-state-grafted-metadata"),
        translator: EightCap,
        init_cache: Some(NZUsize!(1 << 16)),
        init_buffer: NZUsize!(1 << 21),
        init_concurrency: (),
    }
}

/// Read a record from the finalized state.
pub async fn read_record<E: Runtime, T>(
    databases: &Databases<E>,
    key: &sha256::Digest,
) -> Result<Option<T>, String>
where
    T: commonware_codec::Read<Cfg = ()> + commonware_codec::EncodeSize,
{
    let db = databases.read().await;
    match db.get(key).await {
        Ok(Some(value)) => from_value::<T>(&value)
            .map(Some)
            .ok_or_else(|| format!("stored value under {key} does not decode")),
        Ok(None) => Ok(None),
        Err(e) => Err(format!("state read failed: {e:?}")),
    }
}

/// Read an account from the finalized state.
pub async fn read_account<E: Runtime>(
    databases: &Databases<E>,
    id: &consort_types::AccountId,
) -> Result<Option<consort_types::Account>, String> {
    read_record(databases, &consort_types::state_key::account(id)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_types::{Account, Amount, state_key::TxLocation};

    #[test]
    fn the_fixed_records_fit_a_state_value() {
        let account = Account {
            balance: Amount::new(u64::MAX),
            nonce: u64::MAX,
        };
        assert_eq!(from_value::<Account>(&to_value(&account)), Some(account));
        let location = TxLocation {
            height: u64::MAX,
            index: u32::MAX,
            applied: true,
        };
        assert_eq!(
            from_value::<TxLocation>(&to_value(&location)),
            Some(location)
        );
    }

    #[test]
    fn a_value_with_trailing_bytes_does_not_decode() {
        let mut value = [0u8; STATE_VALUE_SIZE];
        value[STATE_VALUE_SIZE - 1] = 1;
        assert_eq!(from_value::<u64>(&StateValue::new(value)), None);
    }
}
