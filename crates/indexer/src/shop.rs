//! What the shop API's routes share: the [`Shop`] state (the read model's file, the search
//! index, carts, who-is-who from the node, the update broadcast), its JSON errors and small
//! helpers. The routes live in `api` (catalogue), `views` (orders) and `carts`.

use crate::{Identity, IndexError, Search, SearchError, SourceError, source::Directory};
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use consort_types::AccountId;
use rusqlite::{Connection, OptionalExtension as _};
use serde_json::json;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

/// Why an indexer could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The read model cannot be opened.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// The search index cannot be opened.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The node's URL is not usable.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// A directory or thread could not be made.
    #[error("{what}: {error}")]
    Io {
        /// What was being done.
        what: String,
        /// What failed.
        error: std::io::Error,
    },
}

/// Most idle read connections to the read model kept open.
const POOL_MAX: usize = 16;
/// How much of the read model a reading connection maps into memory.
const READ_MMAP_BYTES: i64 = 1 << 30;

/// A JSON error: `{"error": {"code", "message"}}` with an HTTP status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(crate) fn bad(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub(crate) fn internal(message: impl std::fmt::Display) -> Self {
        tracing::error!(%message, "shop API failure");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the read model failed: {message}"),
        )
    }
}

impl From<rusqlite::Error> for ApiError {
    fn from(error: rusqlite::Error) -> Self {
        Self::internal(error)
    }
}

impl From<SearchError> for ApiError {
    fn from(error: SearchError) -> Self {
        match error {
            SearchError::BadQuery(message) => Self::bad(message),
            other => Self::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// What the routes read: the read model's file and the search index; the node, for who is
/// who (order views answer only an order's parties and the regulator).
pub struct Shop {
    db: PathBuf,
    pub(crate) search: Arc<Search>,
    pool: std::sync::Mutex<Vec<rusqlite::Connection>>,
    pub(crate) node: Directory,
    pub(crate) chain_id: std::sync::OnceLock<u64>,
    /// The hosts the shop API answers signed requests for, set once it listens (unset:
    /// any; see [`consort_types::signed_read::serves`]).
    pub hosts: std::sync::OnceLock<Vec<String>>,
    pub(crate) members: std::sync::Mutex<MemberCache>,
    /// Who issues each e-money asset the orders are in: asset to (when asked, issuer org).
    pub(crate) issuers: std::sync::Mutex<BTreeMap<String, (std::time::Instant, Option<String>)>>,
    /// The currencies the orders are in, and when they were read.
    pub(crate) currencies: std::sync::Mutex<Option<(std::time::Instant, Vec<String>)>>,
    pub(crate) updates: tokio::sync::broadcast::Sender<Update>,
    pub(crate) streams: Arc<tokio::sync::Semaphore>,
    /// Update streams open now per signing account (see [`UPDATE_STREAMS_PER_ACCOUNT_MAX`]).
    pub(crate) streams_of: Arc<Mutex<BTreeMap<AccountId, usize>>>,
    /// Searches running now (see [`SEARCHES_RUNNING_MAX`]).
    pub(crate) searching: tokio::sync::Semaphore,
    pub(crate) carts: Carts,
    failed: std::sync::Mutex<Option<String>>,
}

/// Who was who, as the node said a moment ago: account to (when asked, answer).
pub(crate) type MemberCache =
    std::collections::HashMap<consort_types::AccountId, (std::time::Instant, Identity)>;

/// A block the indexer has applied (order views' update streams wake on it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Update {
    /// Its height.
    pub height: u64,
}

/// Blocks an update stream may fall behind before it is told to read again.
const UPDATES_BUFFERED: usize = 1024;

/// Most update streams open at once.
pub const UPDATE_STREAMS_MAX: usize = 256;

/// Most update streams one account has open at once (a customer with the shop open in a few
/// tabs and devices), so no account takes the streams everyone shares.
pub const UPDATE_STREAMS_PER_ACCOUNT_MAX: usize = 4;

/// One of an account's open update streams; the place is given back when it is dropped.
pub(crate) struct StreamSlot {
    open: Arc<Mutex<BTreeMap<AccountId, usize>>>,
    account: AccountId,
}

impl StreamSlot {
    /// A place for one more of `account`'s streams, if it has fewer than
    /// [`UPDATE_STREAMS_PER_ACCOUNT_MAX`] open.
    pub(crate) fn take(
        open: &Arc<Mutex<BTreeMap<AccountId, usize>>>,
        account: AccountId,
    ) -> Option<Self> {
        let mut counts = open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = counts.entry(account).or_default();
        if *count >= UPDATE_STREAMS_PER_ACCOUNT_MAX {
            return None;
        }
        *count += 1;
        Some(Self {
            open: open.clone(),
            account,
        })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut counts = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.account) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.account);
            }
        }
    }
}

/// Most searches running at once; the others wait their turn without holding a thread.
///
/// A search runs on the request's own runtime worker: a hand-over to another thread and back
/// puts two thread wake-ups on every query's path, each a wait for the processor when it is
/// busy, which doubled the tail latency measured under load. A search that holds a worker
/// holds up the requests queued on it, so the API's runtime has one worker more than this
/// ([`API_WORKER_THREADS`]): one is always free for everything that is not a search.
pub const SEARCHES_RUNNING_MAX: usize = 2;

/// Worker threads of a runtime serving the shop API: one more than [`SEARCHES_RUNNING_MAX`].
pub const API_WORKER_THREADS: usize = SEARCHES_RUNNING_MAX + 1;

impl Shop {
    /// The API over the read model at `db` and `search`, kept from the node whose API is at
    /// `node`.
    ///
    /// # Errors
    /// If the carts file beside `db` cannot be opened, or the HTTP client cannot be built.
    pub fn new(db: PathBuf, search: Arc<Search>, node: &str) -> Result<Arc<Self>, ServiceError> {
        let carts = Carts::open(&carts_path(&db)).map_err(IndexError::from)?;
        let node = Directory::new(node)?;
        Ok(Arc::new(Self {
            carts,
            db,
            search,
            pool: std::sync::Mutex::new(Vec::new()),
            node,
            chain_id: std::sync::OnceLock::new(),
            hosts: std::sync::OnceLock::new(),
            members: std::sync::Mutex::new(MemberCache::new()),
            issuers: std::sync::Mutex::default(),
            currencies: std::sync::Mutex::default(),
            updates: tokio::sync::broadcast::channel(UPDATES_BUFFERED).0,
            streams: Arc::new(tokio::sync::Semaphore::new(UPDATE_STREAMS_MAX)),
            streams_of: Arc::default(),
            searching: tokio::sync::Semaphore::new(SEARCHES_RUNNING_MAX),
            failed: std::sync::Mutex::new(None),
        }))
    }

    /// Tell update streams that block `update` is in the read model.
    pub fn publish(&self, update: Update) {
        // No receiver is not an error: nobody is watching.
        let _ = self.updates.send(update);
    }

    /// Record that following stopped with `error` (the status route shows it).
    pub fn set_failed(&self, error: String) {
        *self
            .failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(error);
    }

    pub(crate) fn failed(&self) -> Option<String> {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn pool(&self) -> std::sync::MutexGuard<'_, Vec<rusqlite::Connection>> {
        self.pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Run `f` with a read connection, on a blocking thread.
    pub(crate) async fn read<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Self, &rusqlite::Connection) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let shop = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = match shop.pool().pop() {
                Some(conn) => conn,
                None => {
                    let conn = rusqlite::Connection::open_with_flags(
                        &shop.db,
                        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                            | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
                    )?;
                    // Pages are read through a memory map rather than a read call each.
                    conn.pragma_update(None, "mmap_size", READ_MMAP_BYTES)?;
                    conn
                }
            };
            // One read transaction for the whole answer: every query in it sees the same
            // height, and the file is locked once rather than once per query.
            let read = conn.unchecked_transaction()?;
            let result = f(&shop, &read);
            drop(read);
            let mut pool = shop.pool();
            if pool.len() < POOL_MAX {
                pool.push(conn);
            }
            result
        })
        .await
        .map_err(ApiError::internal)?
    }
}

pub(crate) fn query_error(rejection: axum::extract::rejection::QueryRejection) -> ApiError {
    ApiError::bad(format!("bad query string: {}", rejection.body_text()))
}

pub(crate) fn indexed_height(conn: &rusqlite::Connection) -> Result<i64, ApiError> {
    Ok(conn
        .query_row("SELECT height FROM cursor WHERE id = 0", [], |r| r.get(0))
        .optional()?
        .unwrap_or(0))
}

pub(crate) fn parse_id(id: &str) -> Result<consort_types::commerce::RecordId, ApiError> {
    id.parse()
        .map_err(|e: consort_types::commerce::BadRecordId| ApiError::bad(e.to_string()))
}

pub(crate) const CARTS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cart_lines (
    account TEXT NOT NULL,
    product TEXT NOT NULL,
    variant INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    price_seen INTEGER NOT NULL,
    -- When the line was first added (wall clock, ms): lines are shown in this order, and
    -- dropped CART_LINE_AGE_DAYS_MAX days after it.
    added_ms INTEGER NOT NULL,
    PRIMARY KEY (account, product, variant)
) STRICT;
CREATE TABLE IF NOT EXISTS used_signatures (
    signature TEXT PRIMARY KEY,
    time INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS used_signatures_by_time ON used_signatures (time);
CREATE INDEX IF NOT EXISTS cart_lines_by_age ON cart_lines (added_ms);
-- How many lines all carts hold, kept by the triggers below (counted once when a file made
-- before them is opened).
CREATE TABLE IF NOT EXISTS cart_totals (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    lines INTEGER NOT NULL
) STRICT;
INSERT OR IGNORE INTO cart_totals (id, lines) SELECT 0, COUNT(*) FROM cart_lines;
CREATE TRIGGER IF NOT EXISTS cart_lines_counted_in AFTER INSERT ON cart_lines
BEGIN UPDATE cart_totals SET lines = lines + 1 WHERE id = 0; END;
CREATE TRIGGER IF NOT EXISTS cart_lines_counted_out AFTER DELETE ON cart_lines
BEGIN UPDATE cart_totals SET lines = lines - 1 WHERE id = 0; END;
";

/// The carts file beside the read model at `db` (`shop.sqlite.carts`).
pub fn carts_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".carts");
    name.into()
}

/// The carts database.
pub struct Carts {
    conn: Mutex<Connection>,
}

impl Carts {
    /// Open (or create) the carts file at `path`.
    ///
    /// # Errors
    /// If SQLite cannot open or set it up.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(CARTS_SCHEMA)?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
