//! The node's log of what each finalized block changed in the shop's records
//! ([`consort_types::changes`]), kept in SQLite beside the storage, for the marketplace's
//! read side: `GET /v1/blocks/{height}/changes`.
//!
//! A block's changes are written before its state is applied (the chain calls
//! [`consort_chain::ChainObserver::captured`] then, and again after a crash until the state is
//! applied), in WAL mode: a committed row survives the process being killed. A node that joined
//! by state sync, or ran a build from before this log, has no rows for the blocks it did not
//! execute; [`ChangeLog::first`] says where its log starts.

use commonware_codec::{DecodeExt as _, Encode as _};
use consort_types::changes::Changes;
use std::{path::Path, sync::Mutex};

/// The log's file in the data directory.
pub const CHANGELOG_FILE: &str = "changes.sqlite";

/// Why the change log failed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeLogError {
    /// SQLite failed.
    #[error("change log: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The checkpointing thread could not start.
    #[error("change log: cannot start its checkpoint thread: {0}")]
    Thread(std::io::Error),
    /// A stored row does not decode (the file was damaged or written by another format).
    #[error("change log: the row of block {0} does not decode")]
    Corrupt(u64),
}

/// How often the log's write-ahead file is folded into the database, away from the block
/// path: a block's row is appended to the write-ahead file, never waiting for that.
const CHECKPOINT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The log.
pub struct ChangeLog {
    conn: Mutex<rusqlite::Connection>,
    /// Tells the checkpointing thread to stop.
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for ChangeLog {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Fold the write-ahead file into the database every [`CHECKPOINT_EVERY`] until `stop`.
fn checkpoint(path: std::path::PathBuf, stop: std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let conn = match rusqlite::Connection::open(&path) {
        Ok(conn) => conn,
        Err(error) => {
            tracing::error!(%error, "cannot open the change log to checkpoint it");
            return;
        }
    };
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(CHECKPOINT_EVERY);
        if let Err(error) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(%error, "change log checkpoint failed; trying again");
        }
    }
}

impl ChangeLog {
    /// Open (or create) the log in `data_dir`.
    ///
    /// # Errors
    /// If SQLite cannot open or set up the file.
    pub fn open(data_dir: &Path) -> Result<Self, ChangeLogError> {
        let path = data_dir.join(CHANGELOG_FILE);
        let conn = rusqlite::Connection::open(&path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoints (which sync the disk) run on their own thread, not in a block's write.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS blocks (
                height INTEGER PRIMARY KEY,
                changes BLOB NOT NULL
            ) STRICT;",
        )?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("changelog-checkpoint".into())
                .spawn(move || checkpoint(path, stop))
                .map_err(ChangeLogError::Thread)?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
            stop,
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, rusqlite::Connection> {
        // A panic while holding it leaves SQLite consistent (each statement is atomic).
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Record block `height`'s changes (again, after a crash: the same rows).
    ///
    /// # Errors
    /// If SQLite fails.
    pub fn record(&self, height: u64, changes: &Changes) -> Result<(), ChangeLogError> {
        self.conn().execute(
            "INSERT OR REPLACE INTO blocks (height, changes) VALUES (?1, ?2)",
            rusqlite::params![sql_height(height), changes.encode().as_ref()],
        )?;
        Ok(())
    }

    /// Block `height`'s changes, if this node recorded them.
    ///
    /// # Errors
    /// If SQLite fails or the row does not decode.
    pub fn get(&self, height: u64) -> Result<Option<Changes>, ChangeLogError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached("SELECT changes FROM blocks WHERE height = ?1")?;
        let mut rows = statement.query([sql_height(height)])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        let bytes: Vec<u8> = row.get(0)?;
        Changes::decode(bytes::Bytes::from(bytes))
            .map(Some)
            .map_err(|_| ChangeLogError::Corrupt(height))
    }

    /// The lowest height recorded, if any: a node that joined later (state sync) or ran an
    /// older build starts its log there.
    ///
    /// # Errors
    /// If SQLite fails.
    pub fn first(&self) -> Result<Option<u64>, ChangeLogError> {
        let first: Option<i64> =
            self.conn()
                .query_row("SELECT MIN(height) FROM blocks", [], |row| row.get(0))?;
        Ok(first.and_then(|h| u64::try_from(h).ok()))
    }
}

/// Heights are far below 2^63; SQLite integers are signed.
fn sql_height(height: u64) -> i64 {
    i64::try_from(height).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use consort_types::{
        changes::{Change, Record},
        commerce::RecordId,
    };

    #[test]
    fn rows_survive_reopening_and_record_again_is_the_same_row() {
        let dir = tempfile::tempdir().expect("tempdir");
        let changes = Changes(vec![Change {
            record: Record::Order {
                id: RecordId {
                    height: 4,
                    index: 2,
                },
            },
            value: Some(vec![1, 2, 3]),
        }]);
        {
            let log = ChangeLog::open(dir.path()).expect("open");
            assert_eq!(log.first().expect("first"), None);
            log.record(7, &changes).expect("record");
            log.record(7, &changes).expect("again");
            log.record(8, &Changes::default()).expect("record");
        }
        let log = ChangeLog::open(dir.path()).expect("reopen");
        assert_eq!(log.get(7).expect("get"), Some(changes));
        assert_eq!(log.get(8).expect("get"), Some(Changes::default()));
        assert_eq!(log.get(9).expect("get"), None);
        assert_eq!(log.first().expect("first"), Some(7));
    }
}
