//! The node's log of what each finalized block changed in the shop's records
//! ([`consort_types::changes`]), for the marketplace's read side:
//! `GET /v1/blocks/{height}/changes`.
//!
//! Two append-only files in `data_dir/changes/`: `log` holds each block's encoded change list
//! behind its height, length and checksum; `index` holds the first height recorded, then one
//! fixed-size entry per height (offset and length in `log`; length 0: not recorded). A block's
//! row is written (one `write` to each file, no sync) before its state is applied: the chain
//! calls [`consort_chain::ChainObserver::captured`] then, and again after a crash until the
//! state is applied, so a node killed at any point loses nothing. A background thread syncs
//! both files to disk every [`SYNC_EVERY`]; at open, a torn tail (a machine that lost power)
//! is cut back to the last whole entry. A node that joined by state sync, or ran a build from
//! before this log, has no entries for the blocks it did not execute; [`ChangeLog::first`]
//! says where its log starts.

use commonware_codec::{DecodeExt as _, Encode as _};
use consort_types::changes::Changes;
use std::{
    fs::File,
    os::unix::fs::FileExt as _,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// The log's directory in the data directory.
pub const CHANGELOG_DIR: &str = "changes";

/// How often the log's files are synced to disk (away from the block path).
pub const SYNC_EVERY: Duration = Duration::from_secs(2);

/// Bytes of the index's header (the first height) and of each entry (offset, length).
const INDEX_HEADER: u64 = 8;
const INDEX_ENTRY: u64 = 12;

/// Bytes before each list in `log`: height, length, checksum.
const RECORD_HEADER: u64 = 8 + 4 + 8;

/// Why the change log failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeLogError {
    /// A file operation failed.
    #[error("change log: {0}")]
    Io(#[from] std::io::Error),
    /// A stored list does not match its entry or checksum, or does not decode.
    #[error("change log: the entry of block {0} is damaged")]
    Corrupt(u64),
    /// A block below the first one recorded (the log only grows upward).
    #[error("change log: block {height} is below the first recorded, {first}")]
    Below {
        /// The block.
        height: u64,
        /// The first recorded.
        first: u64,
    },
}

struct Files {
    log: File,
    index: File,
    /// The first height the index covers (set by the first record).
    first: Option<u64>,
    /// Bytes of `log` in use.
    log_len: u64,
    /// Entries in `index`.
    entries: u64,
}

/// The log.
pub struct ChangeLog {
    files: Mutex<Files>,
    stop: Arc<AtomicBool>,
}

impl Drop for ChangeLog {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn checksum(height: u64, bytes: &[u8]) -> [u8; 8] {
    let digest = consort_types::sha256(&[b"consort/changelog", &height.to_be_bytes(), bytes]);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest.as_ref()[..8]);
    out
}

impl ChangeLog {
    /// Open (or create) the log in `data_dir`, cutting a torn tail back to whole entries.
    ///
    /// # Errors
    /// If the files cannot be opened, read or cut.
    pub fn open(data_dir: &Path) -> Result<Self, ChangeLogError> {
        let dir = data_dir.join(CHANGELOG_DIR);
        std::fs::create_dir_all(&dir)?;
        let open = |name: &str| {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(dir.join(name))
        };
        let (log, index) = (open("log")?, open("index")?);
        let index_len = index.metadata()?.len();
        let (first, mut entries) = if index_len < INDEX_HEADER {
            index.set_len(0)?;
            (None, 0)
        } else {
            let mut header = [0u8; 8];
            index.read_exact_at(&mut header, 0)?;
            (
                Some(u64::from_be_bytes(header)),
                (index_len - INDEX_HEADER) / INDEX_ENTRY,
            )
        };
        // The index is the authority: the log ends where its last recorded entry ends, and
        // an entry pointing past the log's end (its list never fully written) is dropped.
        let log_file_len = log.metadata()?.len();
        let mut log_len = 0;
        while entries > 0 {
            let (offset, len) = read_entry(&index, entries - 1)?;
            if len == 0 {
                entries -= 1;
                continue;
            }
            let end = offset + RECORD_HEADER + u64::from(len);
            if end <= log_file_len {
                log_len = end;
                break;
            }
            entries -= 1;
        }
        if first.is_some() {
            index.set_len(INDEX_HEADER + entries * INDEX_ENTRY)?;
        }
        log.set_len(log_len)?;
        let stop = Arc::new(AtomicBool::new(false));
        let files = Files {
            log: log.try_clone()?,
            index: index.try_clone()?,
            first,
            log_len,
            entries,
        };
        {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("changelog-sync".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(SYNC_EVERY);
                        for file in [&log, &index] {
                            if let Err(error) = file.sync_data() {
                                tracing::warn!(%error, "cannot sync the change log");
                            }
                        }
                    }
                })?;
        }
        Ok(Self {
            files: Mutex::new(files),
            stop,
        })
    }

    fn files(&self) -> std::sync::MutexGuard<'_, Files> {
        // Positional writes leave the files as they were if a panic interrupts: the lengths
        // kept here only grow after a write completes.
        self.files
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record block `height`'s changes. Recording a block again (after a crash) keeps the
    /// entry it has; heights skipped (blocks this node did not execute) stay unrecorded.
    ///
    /// # Errors
    /// If a write fails, or `height` is below the first recorded.
    pub fn record(&self, height: u64, changes: &Changes) -> Result<(), ChangeLogError> {
        let mut files = self.files();
        let first = match files.first {
            Some(first) => first,
            None => {
                files.index.write_all_at(&height.to_be_bytes(), 0)?;
                files.first = Some(height);
                height
            }
        };
        let slot = height
            .checked_sub(first)
            .ok_or(ChangeLogError::Below { height, first })?;
        if slot < files.entries {
            // Already here (the same block, captured again after a crash).
            return Ok(());
        }
        let bytes = changes.encode();
        let len = u32::try_from(bytes.len()).map_err(|_| ChangeLogError::Corrupt(height))?;
        let offset = files.log_len;
        let mut record = Vec::with_capacity(RECORD_HEADER as usize + bytes.len());
        record.extend_from_slice(&height.to_be_bytes());
        record.extend_from_slice(&len.to_be_bytes());
        record.extend_from_slice(&checksum(height, &bytes));
        record.extend_from_slice(&bytes);
        files.log.write_all_at(&record, offset)?;
        // Entries for the heights in between (not executed here), then this one.
        let mut entries = Vec::with_capacity(((slot - files.entries + 1) * INDEX_ENTRY) as usize);
        for _ in files.entries..slot {
            entries.extend_from_slice(&[0u8; INDEX_ENTRY as usize]);
        }
        entries.extend_from_slice(&offset.to_be_bytes());
        entries.extend_from_slice(&len.to_be_bytes());
        files
            .index
            .write_all_at(&entries, INDEX_HEADER + files.entries * INDEX_ENTRY)?;
        files.log_len = offset + record.len() as u64;
        files.entries = slot + 1;
        Ok(())
    }

    /// Block `height`'s changes, if this node recorded them.
    ///
    /// # Errors
    /// If a read fails or the entry is damaged.
    pub fn get(&self, height: u64) -> Result<Option<Changes>, ChangeLogError> {
        let (log, offset, len) = {
            let files = self.files();
            let Some(slot) = files.first.and_then(|first| height.checked_sub(first)) else {
                return Ok(None);
            };
            if slot >= files.entries {
                return Ok(None);
            }
            let (offset, len) = read_entry(&files.index, slot)?;
            if len == 0 {
                return Ok(None);
            }
            (files.log.try_clone()?, offset, len)
        };
        let mut record = vec![0u8; RECORD_HEADER as usize + len as usize];
        log.read_exact_at(&mut record, offset)?;
        let corrupt = || ChangeLogError::Corrupt(height);
        let (header, bytes) = record.split_at(RECORD_HEADER as usize);
        if header[..8] != height.to_be_bytes()
            || header[8..12] != len.to_be_bytes()
            || header[12..20] != checksum(height, bytes)
        {
            return Err(corrupt());
        }
        Changes::decode(bytes::Bytes::copy_from_slice(bytes))
            .map(Some)
            .map_err(|_| corrupt())
    }

    /// The lowest height recorded, if any: a node that joined later (state sync) or ran an
    /// older build starts its log there.
    pub fn first(&self) -> Option<u64> {
        self.files().first
    }
}

fn read_entry(index: &File, slot: u64) -> Result<(u64, u32), ChangeLogError> {
    let mut entry = [0u8; INDEX_ENTRY as usize];
    index.read_exact_at(&mut entry, INDEX_HEADER + slot * INDEX_ENTRY)?;
    let mut offset = [0u8; 8];
    offset.copy_from_slice(&entry[..8]);
    let mut len = [0u8; 4];
    len.copy_from_slice(&entry[8..]);
    Ok((u64::from_be_bytes(offset), u32::from_be_bytes(len)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_types::{
        changes::{Change, Record},
        commerce::RecordId,
    };

    fn changes(n: u8) -> Changes {
        Changes(vec![Change {
            record: Record::Order {
                id: RecordId {
                    height: 4,
                    index: u32::from(n),
                },
            },
            value: Some(vec![n; 100]),
        }])
    }

    #[test]
    fn entries_survive_reopening_and_recording_again_keeps_the_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let log = ChangeLog::open(dir.path()).expect("open");
            assert_eq!(log.first(), None);
            assert_eq!(log.get(7).expect("get"), None);
            log.record(7, &changes(1)).expect("record");
            log.record(7, &changes(1)).expect("again");
            log.record(8, &Changes::default()).expect("record");
            // 9 and 10 not executed here.
            log.record(11, &changes(2)).expect("record");
        }
        let log = ChangeLog::open(dir.path()).expect("reopen");
        assert_eq!(log.get(7).expect("get"), Some(changes(1)));
        assert_eq!(log.get(8).expect("get"), Some(Changes::default()));
        assert_eq!(log.get(9).expect("get"), None);
        assert_eq!(log.get(11).expect("get"), Some(changes(2)));
        assert_eq!(log.get(12).expect("get"), None);
        assert_eq!(log.get(3).expect("get"), None);
        assert_eq!(log.first(), Some(7));
        assert!(matches!(
            log.record(6, &changes(3)),
            Err(ChangeLogError::Below { .. })
        ));
        log.record(12, &changes(3)).expect("goes on");
        assert_eq!(log.get(12).expect("get"), Some(changes(3)));
    }

    #[test]
    fn a_torn_tail_is_cut_back_and_damage_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let log = ChangeLog::open(dir.path()).expect("open");
            log.record(1, &changes(1)).expect("record");
            log.record(2, &changes(2)).expect("record");
        }
        let files = dir.path().join(CHANGELOG_DIR);
        // The last list was only half written before the power went.
        let log_len = std::fs::metadata(files.join("log")).expect("log").len();
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(files.join("log"))
            .expect("log");
        file.set_len(log_len - 50).expect("cut");
        // And half an index entry after it.
        let index = std::fs::OpenOptions::new()
            .append(true)
            .open(files.join("index"))
            .expect("index");
        std::io::Write::write_all(&mut &index, &[0u8; 5]).expect("torn entry");
        let log = ChangeLog::open(dir.path()).expect("reopen");
        assert_eq!(log.get(1).expect("get"), Some(changes(1)));
        assert_eq!(log.get(2).expect("get"), None, "the torn list is gone");
        log.record(2, &changes(2)).expect("recorded again");
        assert_eq!(log.get(2).expect("get"), Some(changes(2)));
        // A flipped byte is reported, not served.
        drop(log);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(files.join("log"))
            .expect("log");
        file.write_all_at(&[0xFF], RECORD_HEADER + 10)
            .expect("flip");
        let log = ChangeLog::open(dir.path()).expect("reopen");
        assert!(matches!(log.get(1), Err(ChangeLogError::Corrupt(1))));
    }
}
