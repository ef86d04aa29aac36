//! An indexer running beside a node: the follower on a thread of its own, and the shop API
//! that reads what it writes. `consort node` starts one when its config names a read model
//! (`shop_db`); `consort indexer` is the same parts run on their own.

use crate::{
    FollowError, Index, NodeSource, Search, follow,
    model::IndexError,
    shop::{Shop, Update},
};
use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
};

pub use crate::shop::ServiceError;

/// The search index's directory beside the read model at `db` (`shop.sqlite.search`).
pub fn search_dir(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".search");
    name.into()
}

/// `result` of a file operation, with a file that is not there taken as done.
fn absent_ok(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Remove the read model at `db`, the WAL files beside it and its search index, so that the
/// next start rebuilds from genesis. Carts and other data customers wrote are elsewhere and
/// stay.
///
/// # Errors
/// If a file exists and cannot be removed.
pub fn remove(db: &Path) -> std::io::Result<()> {
    absent_ok(std::fs::remove_dir_all(search_dir(db)))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut name = db.as_os_str().to_owned();
        name.push(suffix);
        absent_ok(std::fs::remove_file(&name))?;
    }
    Ok(())
}

/// Set the read model at `db`, written with schema `schema`, aside as `{db}.schema-{schema}`
/// (its write-ahead log and shared memory renamed with it, so the copy opens whole), for a
/// rollback to the version that wrote it; an older copy of that schema is replaced. The search
/// index, rebuilt from the read model, is removed. Returns the copy's path.
///
/// # Errors
/// If a file cannot be renamed or removed.
pub fn set_aside(db: &Path, schema: &str) -> std::io::Result<PathBuf> {
    let schema: String = schema
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(16)
        .collect();
    let mut aside = db.as_os_str().to_owned();
    aside.push(format!(".schema-{schema}"));
    let aside = PathBuf::from(aside);
    remove(&aside)?;
    absent_ok(std::fs::remove_dir_all(search_dir(db)))?;
    for suffix in ["", "-wal", "-shm"] {
        let mut from = db.as_os_str().to_owned();
        from.push(suffix);
        let mut to = aside.as_os_str().to_owned();
        to.push(suffix);
        absent_ok(std::fs::rename(&from, &to))?;
    }
    Ok(aside)
}

/// A running indexer: follows `node` into the read model and serves [`Service::shop`].
pub struct Service {
    shop: Arc<Shop>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<u64, FollowError>>>,
}

/// Open (or create) the read model at `db`. The read model is derived from the chain: one
/// written by another version is set aside ([`set_aside`]) and rebuilt from genesis (carts,
/// which customers wrote, are in another file and stay).
///
/// # Errors
/// If it cannot be opened, or one of another schema cannot be set aside.
pub fn open_or_rebuild(db: &Path) -> Result<Index, ServiceError> {
    match Index::open(db) {
        Err(IndexError::OtherSchema { path, found }) => {
            let aside = set_aside(db, &found).map_err(|error| ServiceError::Io {
                what: format!("cannot set {path} aside"),
                error,
            })?;
            tracing::warn!(
                %path,
                %found,
                aside = %aside.display(),
                "the shop's read model is of another schema: set aside, rebuilding it from genesis"
            );
            Ok(Index::open(db)?)
        }
        opened => Ok(opened?),
    }
}

impl Service {
    /// Open (or create) the read model at `db` and its search index, and follow the node
    /// whose API is at `node` from the read model's cursor, on a thread of its own.
    ///
    /// # Errors
    /// If the read model or the search index cannot be opened.
    pub fn start(db: &Path, node: &str) -> Result<Self, ServiceError> {
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|error| ServiceError::Io {
                what: format!("cannot create {}", parent.display()),
                error,
            })?;
        }
        let mut index = open_or_rebuild(db)?;
        let search = Arc::new(Search::open(&search_dir(db))?);
        let shop = Shop::new(db.to_path_buf(), search.clone(), node)?;
        let node = node.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("shop-indexer".into())
            .spawn({
                let shop = shop.clone();
                let stop = stop.clone();
                move || {
                    // Made here: a blocking HTTP client must not live on an async thread.
                    let result = NodeSource::new(&node).map_err(FollowError::from).and_then(
                        |source| {
                            follow(
                        &mut index,
                        &source,
                        Some(&search),
                        None,
                        &stop,
                        |height, _| shop.publish(Update { height }),
                            )
                        },
                    );
                    if let Err(error) = &result {
                        tracing::error!(%error, "the shop indexer stopped; restart the node to resume");
                        shop.set_failed(error.to_string());
                    }
                    result
                }
            })
            .map_err(|error| ServiceError::Io {
                what: "cannot start the indexer's thread".into(),
                error,
            })?;
        Ok(Self {
            shop,
            stop,
            thread: Some(thread),
        })
    }

    /// The shop API's state, for [`crate::api::routes`].
    pub fn shop(&self) -> Arc<Shop> {
        self.shop.clone()
    }

    /// Stop following at the next block boundary and wait for it; returns the last height
    /// applied.
    ///
    /// # Errors
    /// If following had failed.
    pub fn stop(mut self) -> Result<u64, FollowError> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(0),
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_model_of_another_schema_is_rebuilt_at_start() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = dir.path().join("shop.sqlite");
        drop(Index::open(&db).expect("a new index"));
        {
            let conn = rusqlite::Connection::open(&db).expect("open");
            conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'", [])
                .expect("an older schema");
            conn.execute("CREATE TABLE old_only (x INTEGER) STRICT", [])
                .expect("an older table");
        }
        assert!(matches!(
            Index::open(&db),
            Err(IndexError::OtherSchema { ref found, .. }) if found == "1"
        ));
        // No node answers on the discard port: following fails, opening does not.
        let service = Service::start(&db, "http://127.0.0.1:9").expect("started");
        drop(service);
        let conn = rusqlite::Connection::open(&db).expect("open");
        let schema: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .expect("schema");
        assert_eq!(schema, crate::model::SCHEMA_VERSION.to_string());
        // The old one is kept whole beside it, for a rollback.
        let aside = rusqlite::Connection::open(dir.path().join("shop.sqlite.schema-1"))
            .expect("the old read model");
        let (schema, tables): (String, i64) = aside
            .query_row(
                "SELECT (SELECT value FROM meta WHERE key = 'schema'), \
                 (SELECT COUNT(*) FROM sqlite_master WHERE name = 'old_only')",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .expect("its schema");
        assert_eq!((schema.as_str(), tables), ("1", 1));
        let old: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM sqlite_master WHERE name = 'old_only'",
                [],
                |r| r.get(0),
            )
            .expect("tables");
        assert_eq!(old, 0, "the old file was removed, not patched");
    }
}
