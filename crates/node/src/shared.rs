//! What the API's handlers share: the node's state handles ([`Shared`]), the one error type
//! they answer with ([`ApiError`]) and the reads and admissions every route group uses.

use crate::observer::Observer;
use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use commonware_consensus::{
    marshal::{core::Mailbox as MarshalMailbox, standard::Standard},
    simplex::scheme::ed25519::Scheme,
};
use commonware_glue::stateful::db::DatabaseSet as _;
use commonware_runtime::tokio::Context;
use consort_chain::Mempool;
use consort_peg::Peg;
use consort_state::{self as state, StateError, Store};
use consort_types::{AccountId, Block, Genesis, SignedTx, TxError};
use serde_json::json;
use std::sync::Arc;
use tokio::sync::Semaphore;

/// What an internal failure answers: its detail goes to the node's log, not to the client.
pub const INTERNAL_MESSAGE: &str = "internal error; see the node's log";

/// What handlers share.
pub struct Shared {
    /// The chain's genesis.
    pub genesis: Arc<Genesis>,
    /// The node's mempool.
    pub mempool: Mempool,
    /// The finalized state.
    pub databases: state::Databases<Context>,
    /// Finalized blocks and certificates.
    pub marshal: MarshalMailbox<Scheme, Standard<Block>>,
    /// Finalized transactions by hash.
    pub txindex: Arc<consort_chain::txindex::TxIndex<Context>>,
    /// Tip, events, counters.
    pub observer: Arc<Observer>,
    /// Validators this node is connected to right now (p2p sessions), refreshed every
    /// second from the p2p layer's metrics.
    pub peers: std::sync::atomic::AtomicUsize,
    /// The peg, if genesis configures one.
    pub peg: Option<PegNode>,
    /// Governance, if genesis configures it.
    pub gov: Option<consort_governance::Gov>,
    /// The admission pipeline (shared with gossip).
    pub admission: Arc<consort_chain::pipeline::Admission<Context>>,
    /// Slots for CPU-heavy request tasks ([`BLOCKING_TASKS_MAX`]).
    pub blocking_tasks: Arc<Semaphore>,
    /// Slots for `/v1/events` subscribers ([`EVENT_SUBSCRIBERS_MAX`]).
    pub event_subscribers: Arc<Semaphore>,
    /// The hosts the API answers signed reads for, set once it listens (unset: any).
    pub api_hosts: std::sync::OnceLock<Vec<String>>,
}

impl Shared {
    /// The hosts the API answers signed reads for ([`consort_types::signed_read::serves`]).
    pub fn api_hosts(&self) -> &[String] {
        self.api_hosts.get().map_or(&[], Vec::as_slice)
    }
}

/// An API error: an HTTP status and a stable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error answer.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A failure of the node itself. `detail` (a database error, a path) is logged, never
    /// sent: the client learns only that the node failed.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(%detail, "API request failed inside the node");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            INTERNAL_MESSAGE,
        )
    }

    /// The node is too busy for this request now; the client retries later.
    pub fn busy(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
    }
}

impl From<TxError> for ApiError {
    fn from(error: TxError) -> Self {
        let status = match error {
            TxError::MempoolFull | TxError::StateUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            TxError::Duplicate => StatusCode::CONFLICT,
            TxError::Gov(consort_types::gov::GovError::Halted) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, error.code(), error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

/// The peg's part of the node.
pub struct PegNode {
    /// The peg, from genesis.
    pub peg: Peg,
    /// Accounts whose deposit address someone asked for, each with the main-chain height the
    /// light client had reached then (deposits are looked for from there): the watcher claims
    /// for them. Kept in `data_dir/peg-watch.log`, appended before the address is answered.
    pub watch: std::sync::Mutex<std::collections::BTreeMap<AccountId, u32>>,
    /// The current one-second window of watch-list additions: its start and count.
    pub watch_adds: std::sync::Mutex<(std::time::Instant, u32)>,
    /// Where the watch list is kept.
    pub data_dir: std::path::PathBuf,
}

/// Read a record from the finalized state.
pub async fn read<T: commonware_codec::Read<Cfg = ()>>(
    databases: &state::Databases<Context>,
    key: &consort_types::Digest,
) -> Result<Option<T>, ApiError> {
    // A block applied during the read makes the snapshot stale: read again from a fresh one.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let batch = databases.new_batches().await;
        match Store::new(&batch).get(key).await {
            Err(StateError::StaleRead) if attempts < 16 => {}
            result => return result.map_err(|e| ApiError::internal(e.to_string())),
        }
    }
}

/// Admit a transaction the node made itself (e.g. a validator's peg duty).
///
/// # Errors
/// Why the pool refused it.
pub async fn admit_own(s: &Shared, tx: SignedTx) -> Result<(), TxError> {
    s.admission.admit(tx, true).await.map(|_| ())
}

/// The finalized block whose state root is `root` (the tip, or the block being applied), if
/// any: what a state proof read now is tied to.
pub(crate) async fn proven_height(s: &Shared, root: &consort_types::Digest) -> Option<u64> {
    let tip = s.observer.tip.lock().expect("tip lock").height;
    for height in [tip, tip + 1, tip.saturating_sub(1)] {
        if let Some(b) = s
            .marshal
            .get_block(commonware_consensus::marshal::Identifier::Height(
                commonware_consensus::types::Height::new(height),
            ))
            .await
            && b.inner().header.state_root == *root
        {
            return Some(height);
        }
    }
    None
}
