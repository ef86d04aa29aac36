//! The HTTP/WebSocket API: thin handlers over the mempool, the finalized state and marshal.
//! Every error is JSON `{code, message}` with a stable code.

use crate::node::Observer;
use axum::{
    Json, Router,
    extract::{
        Path, State,
        ws::{Message, WebSocketUpgrade},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use commonware_codec::Encode;
use commonware_consensus::{
    marshal::{Identifier, core::Mailbox as MarshalMailbox, standard::Standard},
    simplex::scheme::ed25519::Scheme,
    types::Height,
};
use commonware_cryptography::Digestible;
use commonware_runtime::tokio::Context;
use consort_chain::{Mempool, mempool::PoolStatus, state};
use consort_types::{
    AccountId, Block, Genesis, SignedTx, TxError, hex_serde, state_key, state_key::TxLocation,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::{Arc, atomic::Ordering::Relaxed};

/// Largest request body (bytes).
pub const REQUEST_BODY_MAX: usize = 64 * 1024;

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
    /// Tip, events, counters.
    pub observer: Arc<Observer>,
    /// Peers in the validator set (besides this node).
    pub peers: usize,
}

type AppState = State<Arc<Shared>>;

/// An API error: an HTTP status and a stable code.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl From<TxError> for ApiError {
    fn from(error: TxError) -> Self {
        let status = match error {
            TxError::MempoolFull => StatusCode::SERVICE_UNAVAILABLE,
            TxError::Duplicate => StatusCode::CONFLICT,
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

/// The API's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/txs", axum::routing::post(submit_tx))
        .route("/v1/txs/{hash}", get(tx_status))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/accounts/{id}", get(account))
        .route("/v1/events", get(events))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such route; see /v1/openapi.json",
            )
        })
        .layer(axum::extract::DefaultBodyLimit::max(REQUEST_BODY_MAX))
        .with_state(shared)
}

async fn status(State(s): AppState) -> Json<Value> {
    let tip = s.observer.tip.lock().expect("tip lock").clone();
    Json(json!({
        "chain_id": s.genesis.chain_id,
        "height": tip.height,
        "finalized_height": tip.height,
        "finalized_hash": tip.hash,
        "validators": s.genesis.validators.iter().map(|v| v.public_key.to_string()).collect::<Vec<_>>(),
        "peers": s.peers,
        "mempool_size": s.mempool.len(),
    }))
}

/// Body of `POST /v1/txs`.
#[derive(Deserialize)]
pub struct SubmitTx {
    /// Hex of the signed transaction's canonical encoding.
    pub tx: String,
}

async fn submit_tx(
    State(s): AppState,
    body: Result<Json<SubmitTx>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{e}; send {{\"tx\": \"<hex>\"}}"),
        )
    })?;
    let bytes = hex_serde::decode(&body.tx)
        .map_err(|e| ApiError::from(TxError::Malformed(format!("not hex: {e}"))))?;
    let tx = SignedTx::decode_untrusted(&bytes)?;
    let hash = tx.hash();
    let result = admit(&s, tx).await;
    if let Err(error) = &result {
        s.mempool.remember_rejection(hash, error.clone());
    }
    result?;
    Ok(Json(json!({"hash": hex_serde::encode(&hash)})))
}

async fn admit(s: &Shared, tx: SignedTx) -> Result<(), TxError> {
    tx.check_stateless(s.genesis.chain_id)?;
    if read_tx_location(s, &tx.hash())
        .await
        .ok()
        .flatten()
        .is_some()
    {
        return Err(TxError::Duplicate);
    }
    let sender = state::read_account(&s.databases, &tx.tx.sender)
        .await
        .map_err(TxError::Malformed)?;
    s.mempool.admit(tx, sender, true).map(|_| ())
}

async fn read_tx_location(
    s: &Shared,
    hash: &consort_types::TxHash,
) -> Result<Option<TxLocation>, String> {
    state::read_record::<_, TxLocation>(&s.databases, &state_key::tx(hash)).await
}

async fn tx_status(State(s): AppState, Path(hash): Path<String>) -> Result<Json<Value>, ApiError> {
    let hash: consort_types::TxHash = hex_serde::parse(&hash).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("hash is not 32 bytes of hex: {e}"),
        )
    })?;
    if let Some(location) = read_tx_location(&s, &hash)
        .await
        .map_err(ApiError::internal)?
    {
        return Ok(Json(
            json!({"status": "finalized", "height": location.height, "index": location.index}),
        ));
    }
    match s.mempool.status(&hash) {
        Some(PoolStatus::Pending) => Ok(Json(json!({"status": "pending"}))),
        Some(PoolStatus::Rejected(error)) => {
            Ok(Json(json!({"status": "rejected", "error": error})))
        }
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_tx",
            "this node has not seen that transaction",
        )),
    }
}

/// JSON form of a block, with hex encodings a light client can check.
pub fn block_json(block: &Block) -> Value {
    let h = &block.header;
    json!({
        "height": block.number(),
        "hash": hex_serde::encode(&block.digest()),
        "parent": hex_serde::encode(&h.parent),
        "timestamp_ms": h.timestamp_ms,
        "proposer": hex_serde::encode(&h.context.leader),
        "view": h.context.round.view().get(),
        "epoch": h.context.round.epoch().get(),
        "tx_count": h.tx_count,
        "tx_root": hex_serde::encode(&h.tx_root),
        "state_root": hex_serde::encode(&h.state_root),
        "header": hex::encode(h.encode()),
        "txs": block.txs.iter().map(|t| json!({
            "hash": hex_serde::encode(&t.hash()),
            "tx": t.tx,
        })).collect::<Vec<_>>(),
    })
}

async fn block(State(s): AppState, Path(height): Path<u64>) -> Result<Json<Value>, ApiError> {
    let Some(block) = s
        .marshal
        .get_block(Identifier::Height(Height::new(height)))
        .await
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_block",
            format!("no finalized block at height {height}"),
        ));
    };
    let mut value = block_json(block.inner());
    if let Some(finalization) = s.marshal.get_finalization(Height::new(height)).await {
        value["finalization"] = Value::String(hex::encode(finalization.encode()));
    }
    Ok(Json(value))
}

async fn account(State(s): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let id: AccountId = id.parse().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("account id is not a hex ed25519 public key: {e}"),
        )
    })?;
    let key = state_key::account(&id);
    let (root, proof, value) = {
        let db = s.databases.read().await;
        let Some(value) = db
            .get(&key)
            .await
            .map_err(|e| ApiError::internal(format!("{e:?}")))?
        else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_account",
                format!("account {id} does not exist"),
            ));
        };
        let proof = db
            .key_value_proof(key)
            .await
            .map_err(|e| ApiError::internal(format!("{e:?}")))?;
        (db.root(), proof, value)
    };
    let account = state::from_value::<consort_types::Account>(&value)
        .ok_or_else(|| ApiError::internal("stored account does not decode"))?;
    // Find the finalized block whose state root this is (the tip, or the block being applied).
    let tip = s.observer.tip.lock().expect("tip lock").height;
    let mut proven_height = None;
    for height in [tip, tip + 1, tip.saturating_sub(1)] {
        if let Some(b) = s
            .marshal
            .get_block(Identifier::Height(Height::new(height)))
            .await
            && b.inner().header.state_root == root
        {
            proven_height = Some(height);
            break;
        }
    }
    Ok(Json(json!({
        "id": id,
        "balance": account.balance,
        "nonce": account.nonce,
        "pending_spend": s.mempool.pending_spend(&id),
        "proof": {
            "height": proven_height,
            "state_root": hex_serde::encode(&root),
            "key": hex_serde::encode(&key),
            "value": hex::encode(value.as_ref()),
            "proof": hex::encode(proof.encode()),
        },
    })))
}

async fn events(State(s): AppState, ws: WebSocketUpgrade) -> Response {
    let mut rx = s.observer.events.subscribe();
    ws.on_upgrade(move |mut socket| async move {
        while let Ok(event) = rx.recv().await {
            if socket
                .send(Message::Text(event.as_str().into()))
                .await
                .is_err()
            {
                break;
            }
        }
    })
}

async fn metrics(State(s): AppState) -> String {
    let c = &s.observer.counters;
    let tip = s.observer.tip.lock().expect("tip lock").height;
    let blocks = c.blocks_finalized.load(Relaxed);
    let latency = c
        .finality_ms_sum
        .load(Relaxed)
        .checked_div(blocks)
        .unwrap_or(0);
    format!(
        "# HELP consort_finalized_height Height of the latest finalized block.\n# TYPE consort_finalized_height gauge\nconsort_finalized_height {tip}\n\
         # HELP consort_finality_latency_ms_avg Mean time from block timestamp to local finalization.\n# TYPE consort_finality_latency_ms_avg gauge\nconsort_finality_latency_ms_avg {latency}\n\
         # HELP consort_txs_finalized_total Transactions finalized since start.\n# TYPE consort_txs_finalized_total counter\nconsort_txs_finalized_total {}\n\
         # HELP consort_mempool_size Pending transactions.\n# TYPE consort_mempool_size gauge\nconsort_mempool_size {}\n\
         # HELP consort_peers Validators in the peer set besides this node.\n# TYPE consort_peers gauge\nconsort_peers {}\n",
        c.txs_finalized.load(Relaxed),
        s.mempool.len(),
        s.peers,
    )
}

async fn openapi() -> Json<Value> {
    Json(serde_json::from_str(include_str!("openapi.json")).expect("openapi.json is valid JSON"))
}
