//! Records of any size over the fixed-size values of the state database, with a per-
//! transaction journal so a refused transaction changes nothing.
//!
//! A record is stored as chunks: the first under its own key holds a 4-byte length and the first
//! [`FIRST_CHUNK_DATA`] bytes; chunk `i > 0` lives under `sha256("chunk/" ‖ key ‖ i)`. Reads go through the
//! transaction's journal, then the block's writes, then the parent state. Everything written is
//! handed back in key order, so every node writes the same operations.

use crate::{
    db::{Runtime, STATE_VALUE_SIZE, StateValue, Unmerkleized, from_value, to_value},
    error::StateError,
};
use commonware_codec::{Decode as _, Encode, EncodeSize, Read};
use consort_types::changes::Record;
use consort_types::{Digest, sha256};
use std::collections::BTreeMap;

const HEAD_BYTES: usize = 4;
/// Bytes of a record its first chunk holds (after the length): fields a record changes often
/// belong here, so a change rewrites one chunk.
pub const FIRST_CHUNK_DATA: usize = STATE_VALUE_SIZE - HEAD_BYTES;

/// Largest record (bytes).
pub const RECORD_SIZE_MAX: usize = 1 << 20;

/// Raw chunks by key. Only looked up, never walked, so a hash map serves. Every state key is
/// a SHA-256 output, so no sender can choose keys that share a bucket; foldhash (seeded per
/// process besides) costs a tenth of SipHash on a 32-byte key, which a block of shop orders
/// hashes a few hundred thousand times.
type ChunkMap = std::collections::HashMap<Digest, Slot, foldhash::fast::RandomState>;

/// A transaction's written chunks by key (`None`: deleted), hashed as [`ChunkMap`] is.
type JournalMap =
    std::collections::HashMap<Digest, Option<StateValue>, foldhash::fast::RandomState>;

/// A chunk the block holds: its value (`None`: absent) and whether the block's transactions
/// have read or written it, or it was only loaded ahead ([`Store::prefetch`]) on a guess.
/// One map for both, so a first read marks its chunk where it lies instead of moving 128
/// bytes between two maps of a block's size (each lookup in them a cache miss).
#[derive(Clone)]
struct Slot {
    value: Option<StateValue>,
    read: bool,
}

/// Most emptied chunk maps kept for later blocks ([`SPARE_MAPS`]).
pub const SPARE_MAPS_MAX: usize = 4;

/// Chunks a map must have room for to be kept, or taken, as a spare: a block's size, not an
/// admission read's.
const SPARE_MAP_MIN_CHUNKS: usize = 4096;

/// Most chunks a kept map may have room for (about 40 MiB): what one unusually large block
/// needed is not held on to for good.
pub const SPARE_MAP_CHUNKS_MAX: usize = 1 << 18;

/// Chunk maps of finished stores, emptied, for the next blocks' stores. A block of shop orders
/// loads a hundred thousand chunks (about 20 MiB a map); a fresh map of that size costs the
/// kernel a page fault and a zeroed page for every 4 KiB it fills, about a twentieth of a
/// validator's time under load, where an emptied one is already in memory.
static SPARE_MAPS: std::sync::Mutex<Vec<ChunkMap>> = std::sync::Mutex::new(Vec::new());

/// An emptied spare map with room for `chunks`, if one is kept and `chunks` is a block's worth.
fn spare_map(chunks: usize) -> Option<ChunkMap> {
    if chunks < SPARE_MAP_MIN_CHUNKS {
        return None;
    }
    let mut spares = SPARE_MAPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let best = (0..spares.len()).max_by_key(|&i| spares[i].capacity())?;
    Some(spares.swap_remove(best))
}

/// Keep `map`, emptied, for a later store, if it is a block's size and there is room.
fn keep_spare(mut map: ChunkMap) {
    let capacity = map.capacity();
    if !(SPARE_MAP_MIN_CHUNKS..=SPARE_MAP_CHUNKS_MAX).contains(&capacity) {
        return;
    }
    map.clear();
    let mut spares = SPARE_MAPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if spares.len() < SPARE_MAPS_MAX {
        spares.push(map);
    }
}

fn chunk_key(key: &Digest, index: u32) -> Digest {
    if index == 0 {
        return *key;
    }
    sha256(&[b"chunk/", key.as_ref(), &index.to_be_bytes()])
}

/// Chunks of a record of `len` bytes (callers check `len <= RECORD_SIZE_MAX`, whose chunk count
/// fits a `u32` with room to spare).
fn chunk_count(len: usize) -> u32 {
    let rest = len.saturating_sub(FIRST_CHUNK_DATA);
    u32::try_from(1 + rest.div_ceil(STATE_VALUE_SIZE)).unwrap_or(u32::MAX)
}

/// The record length in a first chunk's head.
fn head_len(first: &StateValue) -> usize {
    let first: &[u8] = first.as_ref();
    let head = first
        .first_chunk::<HEAD_BYTES>()
        .copied()
        .unwrap_or_default();
    u32::from_be_bytes(head) as usize
}

/// The state keys that hold a record of `len` encoded bytes under `key`: `key`, then one per
/// further chunk. Loading them ahead ([`Store::prefetch`]) with a good guess of `len` saves a
/// database pass per record; a wrong guess costs only lookups.
pub fn record_keys(key: &Digest, len: usize) -> Vec<Digest> {
    (0..chunk_count(len.min(RECORD_SIZE_MAX)))
        .map(|index| chunk_key(key, index))
        .collect()
}

/// The state keys holding the record under `key`, whose first chunk is `first`: `key` itself,
/// then one per further chunk. `None` if the first chunk's length is impossible.
pub fn record_chunk_keys(key: &Digest, first: &StateValue) -> Option<Vec<Digest>> {
    let len = head_len(first);
    if len > RECORD_SIZE_MAX {
        return None;
    }
    Some((0..chunk_count(len)).map(|i| chunk_key(key, i)).collect())
}

/// The record's bytes from its chunks' values, in key order as [`record_chunk_keys`] names
/// them. `None` if they do not make a record.
pub fn assemble_record(chunks: &[StateValue]) -> Option<Vec<u8>> {
    let first = chunks.first()?;
    let len = head_len(first);
    if len > RECORD_SIZE_MAX || chunks.len() != chunk_count(len) as usize {
        return None;
    }
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(
        first
            .as_ref()
            .get(HEAD_BYTES..HEAD_BYTES + len.min(FIRST_CHUNK_DATA))?,
    );
    for chunk in &chunks[1..] {
        let take = len.saturating_sub(bytes.len()).min(STATE_VALUE_SIZE);
        bytes.extend_from_slice(chunk.as_ref().get(..take)?);
    }
    Some(bytes)
}

/// The records a block reads and writes.
pub struct Store<'a, E: Runtime> {
    parent: &'a Unmerkleized<E>,
    /// Raw chunks as this block has them. A block of shop orders holds a hundred thousand
    /// chunks, where a tree's lookups cost a tenth of the block's time. Those marked read are
    /// the block's own (read or written by its transactions); the others were loaded ahead
    /// ([`Store::prefetch`]) and no transaction has read them yet. Only the block's own
    /// decide which unchanged chunks [`Store::put`] skips, so what a block loads on a guess
    /// (a proposer guesses for candidates it may skip) never does: the same on every node.
    chunks: ChunkMap,
    /// Keys first read since the last commit, in order: what a proposer's candidate read
    /// before it was left out is forgotten again ([`Store::forget_since`]).
    loaded: Vec<Digest>,
    /// Raw chunks written by the current transaction. A hash map: a tree's inserts shift
    /// 160-byte entries along its nodes, and nothing walks the journal in order.
    journal: JournalMap,
    /// Chunks the block's committed transactions wrote (repeats possible; sorted at the end).
    written: Vec<Digest>,
    /// Commits that kept at least one write.
    commits: u64,
    /// Every chunk key read since [`Store::record_reads`], if recording.
    reads: Option<Vec<Digest>>,
    /// Net value the block's committed transactions credited (positive) or debited
    /// (negative) per ledger denomination ([`Store::flow`]).
    flows: BTreeMap<[u8; 8], i128>,
    /// The current transaction's flows.
    flow_journal: BTreeMap<[u8; 8], i128>,
    /// Shop records the block's kept transactions and steps wrote, each with its encoding
    /// as last written (`None`: removed).
    notes: BTreeMap<Record, Option<Vec<u8>>>,
    /// Shop records the current transaction wrote.
    note_journal: Vec<(Record, Option<Vec<u8>>)>,
}

impl<'a, E: Runtime> Store<'a, E> {
    /// A store reading through to `parent`.
    pub fn new(parent: &'a Unmerkleized<E>) -> Self {
        Self {
            parent,
            chunks: ChunkMap::default(),
            loaded: Vec::new(),
            journal: JournalMap::default(),
            written: Vec::new(),
            commits: 0,
            reads: None,
            flows: BTreeMap::new(),
            flow_journal: BTreeMap::new(),
            notes: BTreeMap::new(),
            note_journal: Vec::new(),
        }
    }

    /// Start recording the keys read (anew): what a result computed from them depends on.
    pub fn record_reads(&mut self) {
        self.reads = Some(Vec::new());
    }

    /// Stop recording and hand back the keys read since [`Store::record_reads`] (raw chunk
    /// keys, as [`Store::into_writes`] names them; repeats possible).
    pub fn take_reads(&mut self) -> Vec<Digest> {
        self.reads.take().unwrap_or_default()
    }

    async fn raw(&mut self, key: &Digest) -> Result<Option<StateValue>, StateError> {
        if let Some(reads) = &mut self.reads {
            reads.push(*key);
        }
        if let Some(value) = self.journal.get(key) {
            return Ok(value.clone());
        }
        if let Some(slot) = self.chunks.get_mut(key) {
            if !slot.read {
                slot.read = true;
                self.loaded.push(*key);
            }
            return Ok(slot.value.clone());
        }
        let value = self.parent.get(key).await?;
        self.chunks.insert(
            *key,
            Slot {
                value: value.clone(),
                read: true,
            },
        );
        self.loaded.push(*key);
        Ok(value)
    }

    /// A mark of what the block has read so far, for [`Store::forget_since`].
    pub fn mark(&self) -> usize {
        self.loaded.len()
    }

    /// Forget what was read since `mark` (and not committed since): a proposer's candidate
    /// that read state and was then left out of the block. Which unchanged chunks
    /// [`Store::put`] skips depends on what the block has read, so it must count only what
    /// the included transactions read, as every verifier's block does; the values stay as
    /// loaded ahead, so nothing is read twice.
    pub fn forget_since(&mut self, mark: usize) {
        let from = mark.min(self.loaded.len());
        for key in self.loaded.drain(from..) {
            if let Some(slot) = self.chunks.get_mut(&key) {
                slot.read = false;
            }
        }
    }

    /// Read `keys` from the parent state in one pass, so later reads of them are served from
    /// memory (a block's accounts, loaded before its transactions run).
    ///
    /// # Errors
    /// If the database fails.
    pub async fn prefetch(&mut self, keys: &[Digest]) -> Result<(), StateError> {
        let missing: Vec<&Digest> = keys
            .iter()
            .filter(|key| !self.journal.contains_key(*key) && !self.chunks.contains_key(*key))
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let values = self.parent.get_many(&missing).await?;
        // Sized once for what is loaded: growing it a doubling at a time rehashes every
        // chunk again and faults in fresh pages for each larger table. An empty map too
        // small takes an earlier block's instead, already in memory.
        if self.chunks.is_empty()
            && self.chunks.capacity() < missing.len()
            && let Some(spare) = spare_map(missing.len())
        {
            self.chunks = spare;
        }
        self.chunks.reserve(missing.len());
        for (key, value) in missing.into_iter().zip(values) {
            self.chunks.insert(*key, Slot { value, read: false });
        }
        Ok(())
    }

    /// A fixed-size record (one [`StateValue`], as [`to_value`] pads it) under `key`, if any.
    ///
    /// # Errors
    /// If the database fails or the value does not decode.
    pub async fn get_fixed<T: Read<Cfg = ()> + EncodeSize>(
        &mut self,
        key: &Digest,
    ) -> Result<Option<T>, StateError> {
        match self.raw(key).await? {
            Some(value) => from_value(&value)
                .map(Some)
                .ok_or(StateError::CorruptState(*key)),
            None => Ok(None),
        }
    }

    /// Write a fixed-size record under `key` (in the current transaction).
    pub fn put_fixed<T: Encode>(&mut self, key: &Digest, record: &T) {
        self.journal.insert(*key, Some(to_value(record)));
    }

    /// Remove a fixed-size record (in the current transaction).
    pub fn delete_fixed(&mut self, key: &Digest) {
        self.journal.insert(*key, None);
    }

    /// The record under `key`, if any.
    pub async fn get<T: Read<Cfg = ()>>(&mut self, key: &Digest) -> Result<Option<T>, StateError> {
        let Some(bytes) = self.get_bytes(key).await? else {
            return Ok(None);
        };
        T::decode_cfg(commonware_codec::Copying(bytes.as_slice()), &())
            .map(Some)
            .map_err(|_| StateError::CorruptState(*key))
    }

    /// The encoded record under `key`, if any.
    ///
    /// # Errors
    /// If the database fails or the chunks do not make a record.
    pub async fn get_bytes(&mut self, key: &Digest) -> Result<Option<Vec<u8>>, StateError> {
        let Some(first) = self.raw(key).await? else {
            return Ok(None);
        };
        let len = head_len(&first);
        if len > RECORD_SIZE_MAX {
            return Err(StateError::CorruptState(*key));
        }
        let corrupt = || StateError::CorruptState(*key);
        // The rest of the record in one database pass: a lookup per chunk costs the
        // database far more than one batched lookup of them all.
        let rest: Vec<Digest> = (1..chunk_count(len))
            .map(|index| chunk_key(key, index))
            .collect();
        if !rest.is_empty() {
            self.prefetch(&rest).await?;
        }
        let first: &[u8] = first.as_ref();
        let mut bytes = Vec::with_capacity(len);
        bytes.extend_from_slice(
            first
                .get(HEAD_BYTES..HEAD_BYTES + len.min(FIRST_CHUNK_DATA))
                .ok_or_else(corrupt)?,
        );
        for chunk_key in &rest {
            let chunk = self.raw(chunk_key).await?.ok_or_else(corrupt)?;
            let take = len.saturating_sub(bytes.len()).min(STATE_VALUE_SIZE);
            bytes.extend_from_slice(chunk.as_ref().get(..take).ok_or_else(corrupt)?);
        }
        Ok(Some(bytes))
    }

    /// Write `record` under `key` (in the current transaction).
    ///
    /// # Errors
    /// [`StateError::RecordTooLarge`] (nothing written) if it encodes larger than
    /// [`RECORD_SIZE_MAX`], or a database failure.
    pub async fn put<T: Encode + EncodeSize>(
        &mut self,
        key: &Digest,
        record: &T,
    ) -> Result<(), StateError> {
        self.put_encoded(key, &record.encode()).await
    }

    /// Write a record's encoding `bytes` under `key` (in the current transaction).
    async fn put_encoded(&mut self, key: &Digest, bytes: &[u8]) -> Result<(), StateError> {
        let too_large = || StateError::RecordTooLarge {
            key: *key,
            size: bytes.len(),
        };
        if bytes.len() > RECORD_SIZE_MAX {
            return Err(too_large());
        }
        let len = u32::try_from(bytes.len()).map_err(|_| too_large())?;
        let old = self.chunks_of(key).await?;
        let new = chunk_count(bytes.len());
        let (head, rest) = bytes.split_at(bytes.len().min(FIRST_CHUNK_DATA));
        let mut first = [0u8; STATE_VALUE_SIZE];
        let (first_len, first_data) = first.split_at_mut(HEAD_BYTES);
        first_len.copy_from_slice(&len.to_be_bytes());
        first_data
            .iter_mut()
            .zip(head)
            .for_each(|(slot, byte)| *slot = *byte);
        self.write_chunk(*key, StateValue::new(first));
        for (index, chunk) in (1u32..).zip(rest.chunks(STATE_VALUE_SIZE)) {
            let mut value = [0u8; STATE_VALUE_SIZE];
            value
                .iter_mut()
                .zip(chunk)
                .for_each(|(slot, byte)| *slot = *byte);
            self.write_chunk(chunk_key(key, index), StateValue::new(value));
        }
        for index in new..old {
            self.journal.insert(chunk_key(key, index), None);
        }
        Ok(())
    }

    /// Write one chunk, unless this block already holds exactly that value for it (read or
    /// written before): a record rewritten with a few fields changed (an order's status)
    /// then costs the database only the chunks that changed. Every node skips the same ones.
    fn write_chunk(&mut self, key: Digest, value: StateValue) {
        let known = self.journal.get(&key).or_else(|| {
            self.chunks
                .get(&key)
                .filter(|slot| slot.read)
                .map(|slot| &slot.value)
        });
        if known.is_some_and(|current| current.as_ref() == Some(&value)) {
            return;
        }
        self.journal.insert(key, Some(value));
    }

    /// Remove the record under `key` (in the current transaction).
    pub async fn delete(&mut self, key: &Digest) -> Result<(), StateError> {
        for index in 0..self.chunks_of(key).await? {
            self.journal.insert(chunk_key(key, index), None);
        }
        Ok(())
    }

    async fn chunks_of(&mut self, key: &Digest) -> Result<u32, StateError> {
        Ok(match self.raw(key).await? {
            Some(first) => {
                // A corrupt head must not send a delete through four billion chunks.
                let len = head_len(&first);
                if len > RECORD_SIZE_MAX {
                    return Err(StateError::CorruptState(*key));
                }
                chunk_count(len)
            }
            None => 0,
        })
    }

    /// Note that `delta` of the ledger denomination `denom` was credited (positive) or
    /// debited (negative), in the current transaction: the ledger reports every balance
    /// change here, so a conservation check can compare what balances gained with what the
    /// modules say they created, destroyed or hold.
    pub fn flow(&mut self, denom: [u8; 8], delta: i128) {
        let net = self.flow_journal.entry(denom).or_default();
        *net = net.saturating_add(delta);
    }

    /// The block's net flows so far (committed transactions), per denomination; entries may
    /// be zero.
    pub fn flows(&self) -> &BTreeMap<[u8; 8], i128> {
        &self.flows
    }

    /// Write shop record `record` (under [`Record::key`]), naming it in the block's list of
    /// changed records ([`Store::notes`]) with its encoding, if the transaction is kept.
    ///
    /// # Errors
    /// As [`Store::put`].
    pub async fn put_noted<T: Encode + EncodeSize>(
        &mut self,
        record: Record,
        value: &T,
    ) -> Result<(), StateError> {
        let bytes: Vec<u8> = value.encode().into();
        self.put_encoded(&record.key(), &bytes).await?;
        self.note_journal.push((record, Some(bytes)));
        Ok(())
    }

    /// Write fixed-size shop record `record` ([`Store::put_fixed`]), naming it as
    /// [`Store::put_noted`] does.
    pub fn put_fixed_noted<T: Encode>(&mut self, record: Record, value: &T) {
        self.put_fixed(&record.key(), value);
        self.note_journal
            .push((record, Some(value.encode().to_vec())));
    }

    /// Remove shop record `record`, naming it as removed in the block's list of changes.
    ///
    /// # Errors
    /// As [`Store::delete`].
    pub async fn delete_noted(&mut self, record: Record) -> Result<(), StateError> {
        self.delete(&record.key()).await?;
        self.note_journal.push((record, None));
        Ok(())
    }

    /// The shop records the block's kept transactions and steps wrote, in record order, each
    /// with its encoding after the block (`None`: removed).
    pub fn notes(&self) -> &BTreeMap<Record, Option<Vec<u8>>> {
        &self.notes
    }

    /// Take [`Store::notes`], leaving none.
    pub fn take_notes(&mut self) -> BTreeMap<Record, Option<Vec<u8>>> {
        std::mem::take(&mut self.notes)
    }

    /// Keep the current transaction's writes.
    pub fn commit(&mut self) {
        self.notes.extend(self.note_journal.drain(..));
        for (denom, delta) in std::mem::take(&mut self.flow_journal) {
            let net = self.flows.entry(denom).or_default();
            *net = net.saturating_add(delta);
        }
        if !self.journal.is_empty() {
            self.commits += 1;
        }
        // Drained, not taken: the journal keeps its room for the next transaction.
        for (key, value) in self.journal.drain() {
            self.written.push(key);
            self.chunks.insert(key, Slot { value, read: true });
        }
        // What was read up to here stays: an included transaction, or the block's own steps.
        self.loaded.clear();
    }

    /// Drop the current transaction's writes.
    pub fn rollback(&mut self) {
        self.journal.clear();
        self.note_journal.clear();
        self.flow_journal.clear();
    }

    /// Whether any transaction of the block wrote a record.
    pub fn touched(&self) -> bool {
        !self.written.is_empty()
    }

    /// How many commits kept a write so far: compare two readings to learn whether a step
    /// wrote anything.
    pub fn commits(&self) -> u64 {
        self.commits
    }

    /// Every chunk the block wrote or deleted, in key order.
    pub fn into_writes(mut self) -> Vec<(Digest, Option<StateValue>)> {
        self.rollback();
        let mut written = std::mem::take(&mut self.written);
        written.sort_unstable();
        written.dedup();
        written
            .into_iter()
            .map(|key| {
                let value = self.chunks.get(&key).and_then(|slot| slot.value.clone());
                (key, value)
            })
            .collect()
    }
}

impl<E: Runtime> Drop for Store<'_, E> {
    /// The block's map goes back to the spares for the next block.
    fn drop(&mut self) {
        keep_spare(std::mem::take(&mut self.chunks));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A map of `chunks` room holding one chunk.
    fn filled(chunks: usize) -> ChunkMap {
        let mut map = ChunkMap::default();
        map.reserve(chunks);
        map.insert(
            sha256(&[b"spare"]),
            Slot {
                value: None,
                read: false,
            },
        );
        map
    }

    #[test]
    fn a_block_sized_map_is_kept_emptied_and_small_or_huge_ones_are_not() {
        // The only test here that touches the spares: nothing else takes them meanwhile.
        let kept = filled(SPARE_MAP_MIN_CHUNKS);
        let room = kept.capacity();
        keep_spare(kept);
        keep_spare(filled(16));
        keep_spare(filled(SPARE_MAP_CHUNKS_MAX * 2));
        // An admission-sized need takes no spare; a block-sized one takes the kept map, empty
        // and with its room.
        assert!(spare_map(SPARE_MAP_MIN_CHUNKS - 1).is_none());
        let taken = spare_map(SPARE_MAP_MIN_CHUNKS).expect("the block-sized map was kept");
        assert!(taken.is_empty());
        assert_eq!(taken.capacity(), room);
        // Neither the small nor the huge map was kept.
        assert!(spare_map(SPARE_MAP_MIN_CHUNKS).is_none());
        // At most SPARE_MAPS_MAX are kept.
        for _ in 0..SPARE_MAPS_MAX + 2 {
            keep_spare(filled(SPARE_MAP_MIN_CHUNKS));
        }
        let mut count = 0;
        while spare_map(SPARE_MAP_MIN_CHUNKS).is_some() {
            count += 1;
        }
        assert_eq!(count, SPARE_MAPS_MAX);
    }

    #[test]
    fn the_largest_record_has_a_u32_chunk_count() {
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(FIRST_CHUNK_DATA), 1);
        assert_eq!(chunk_count(FIRST_CHUNK_DATA + 1), 2);
        let largest = RECORD_SIZE_MAX - FIRST_CHUNK_DATA;
        assert_eq!(
            chunk_count(RECORD_SIZE_MAX) as usize,
            1 + largest.div_ceil(STATE_VALUE_SIZE)
        );
    }

    #[test]
    fn a_head_reads_its_length_big_endian() {
        let mut value = [0u8; STATE_VALUE_SIZE];
        value[..HEAD_BYTES].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        assert_eq!(head_len(&StateValue::new(value)), 0x0102_0304);
    }
}
