//! The on-chain light client of the main chain: relayed headers, the best chain, reorganisations.

use crate::Peg;
use bitcoin::{
    BlockHash,
    hashes::Hash as _,
    pow::{CompactTarget, Work},
};
use consort_execution::{BlockError, Fail, Runtime, Store};
use consort_mainchain::{self as mc, HeaderRecord};
use consort_types::{
    peg::{HEADER_FUTURE_DRIFT_S, HeaderEntry, MEDIAN_TIME_SPAN, MainTip, PegError},
    state_key::peg as key,
};
use std::collections::BTreeMap;

impl Peg {
    pub(crate) async fn tip<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<MainTip, BlockError> {
        store
            .get(&key::tip())
            .await?
            .ok_or(BlockError::CorruptState(key::tip()))
    }

    pub(crate) async fn best_at<E: Runtime>(
        store: &mut Store<'_, E>,
        height: u32,
    ) -> Result<Option<[u8; 32]>, BlockError> {
        Ok(store.get(&key::height(height)).await?)
    }

    /// Extend the light client with `headers`, carried by a block of time `now` (seconds).
    pub(crate) async fn relay<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        headers: &[[u8; 80]],
        now: u64,
    ) -> Result<(), Fail> {
        let tip = self.tip(store).await?;
        let mut best: HeaderEntry = store
            .get(&key::header(&tip.hash))
            .await?
            .ok_or(BlockError::CorruptState(key::header(&tip.hash)))?;
        let mut last: Option<HeaderEntry> = None;
        let mut added = 0usize;
        for (index, raw) in headers.iter().enumerate() {
            let bad = |reason: String| PegError::BadHeader { index, reason };
            let header = mc::decode_header(raw).map_err(|e| bad(e.to_string()))?;
            let hash = header.block_hash().to_byte_array();
            if let Some(known) = store.get::<HeaderEntry>(&key::header(&hash)).await? {
                last = Some(known);
                continue;
            }
            let prev = header.prev_blockhash.to_byte_array();
            let parent = match last {
                Some(entry) if entry.hash == prev => entry,
                _ => store
                    .get::<HeaderEntry>(&key::header(&prev))
                    .await?
                    .ok_or(PegError::UnknownParent { index })?,
            };
            // The retarget reads the period's first timestamp on the best chain: forks deeper
            // than a retarget period do not happen on the networks we peg to.
            // Cheap checks first (a scrypt hash is not): the timestamp against the median
            // time past and the carrying block's time.
            // Only with all 11 timestamps known: a median of fewer could refuse a genuine
            // header (a checkpoint configured with fewer, the first headers after it).
            let median = parent.median_time_past();
            if usize::from(parent.recent_times.len) == MEDIAN_TIME_SPAN && header.time <= median {
                return Err(PegError::TimeTooOld {
                    index,
                    time: header.time,
                    median,
                }
                .into());
            }
            if u64::from(header.time) > now.saturating_add(HEADER_FUTURE_DRIFT_S) {
                return Err(PegError::TimeTooNew {
                    index,
                    time: header.time,
                    now,
                }
                .into());
            }
            let mut times = BTreeMap::new();
            let interval = self.network.retarget_interval_blocks();
            for back in [interval.saturating_sub(1), interval] {
                let Some(at) = parent.height.checked_sub(back) else {
                    continue;
                };
                if let Some(hash) = Self::best_at(store, at).await?
                    && let Some(entry) = store.get::<HeaderEntry>(&key::header(&hash)).await?
                {
                    times.insert(at, entry.time);
                } else if let Some(time) = store.get::<u32>(&key::period_start(at)).await? {
                    // Before the checkpoint: from its configuration.
                    times.insert(at, time);
                }
            }
            let record = mc::verify_header(&self.network, &to_record(&parent), &header, &times)
                .map_err(|e| bad(e.to_string()))?;
            let entry = HeaderEntry {
                hash,
                prev,
                height: record.height,
                bits: record.bits.to_consensus(),
                time: record.time,
                chainwork: record.chainwork.to_be_bytes(),
                last_regular_bits: record.last_regular_bits.to_consensus(),
                recent_times: parent.recent_times_after(record.time),
            };
            store.put(&key::header(&hash), &entry).await?;
            added += 1;
            if entry.chainwork > best.chainwork {
                best = entry;
            }
            last = Some(entry);
        }
        if added == 0 {
            return Err(PegError::NothingNew.into());
        }
        if best.hash == tip.hash {
            return Ok(());
        }
        let fork = self.reorganize(store, &tip, &best).await?;
        let new = MainTip {
            hash: best.hash,
            height: best.height,
        };
        self.settle_claims(store, &tip, &new, fork).await
    }

    /// Point the height index at `best`'s chain; the lowest height at or below the old tip
    /// whose block changed (a reorganisation), if any.
    pub(crate) async fn reorganize<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        old: &MainTip,
        best: &HeaderEntry,
    ) -> Result<Option<u32>, BlockError> {
        let mut cursor = *best;
        let mut fork = None;
        loop {
            let was = Self::best_at(store, cursor.height).await?;
            if was == Some(cursor.hash) {
                break;
            }
            if was.is_some() || cursor.height <= old.height {
                fork = Some(cursor.height);
            }
            store.put(&key::height(cursor.height), &cursor.hash).await?;
            if cursor.height == self.checkpoint.height {
                break;
            }
            cursor = store
                .get(&key::header(&cursor.prev))
                .await?
                .ok_or(BlockError::CorruptState(key::header(&cursor.prev)))?;
        }
        for stale in best.height.saturating_add(1)..=old.height {
            store.delete(&key::height(stale)).await?;
            fork = Some(fork.map_or(stale, |f: u32| f.min(stale)));
        }
        store
            .put(
                &key::tip(),
                &MainTip {
                    hash: best.hash,
                    height: best.height,
                },
            )
            .await?;
        Ok(fork)
    }
}

pub(crate) fn to_record(entry: &HeaderEntry) -> HeaderRecord {
    HeaderRecord {
        hash: BlockHash::from_byte_array(entry.hash),
        height: entry.height,
        bits: CompactTarget::from_consensus(entry.bits),
        time: entry.time,
        chainwork: Work::from_be_bytes(entry.chainwork),
        last_regular_bits: CompactTarget::from_consensus(entry.last_regular_bits),
    }
}
