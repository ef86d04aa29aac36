//! The HTTP/WebSocket API: thin handlers over the mempool, the finalized state and marshal.
//! Every error is JSON `{code, message}` with a stable code.

use crate::observer::EVENT_KINDS;
pub use crate::shared::{ApiError, INTERNAL_MESSAGE, Shared};
use axum::{
    Json, Router,
    extract::{
        Path, Query, State,
        ws::{Message, WebSocketUpgrade},
    },
    http::StatusCode,
    response::IntoResponse as _,
    response::Response,
    routing::get,
};
use commonware_codec::Encode;
use commonware_consensus::{marshal::Identifier, types::Height};
use commonware_cryptography::Digestible;
use consort_chain::mempool::PoolStatus;
use consort_state as state;
use consort_types::{
    AccountId, Block, SignedTx, TxError, TxHash, hex_serde, state_key, state_key::TxLocation,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{
    sync::{Arc, atomic::Ordering::Relaxed},
    time::Duration,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Largest request body (bytes).
pub const REQUEST_BODY_MAX: usize = 2 * consort_types::limits::TX_SIZE_MAX + 4096;

/// Most transactions in one `POST /v1/txs/batch`.
pub const BATCH_TXS_MAX: usize = 4096;

/// Largest batch request body (bytes).
pub const BATCH_BODY_MAX: usize = 16 * 1024 * 1024;

/// Most CPU-heavy request tasks (batch decoding and signature checks) running at once: the
/// rest of the node (consensus, execution) keeps the other cores.
pub const BLOCKING_TASKS_MAX: usize = 2;

/// How long a request waits for one of the [`BLOCKING_TASKS_MAX`] slots before it is answered
/// 503 `busy` (ms).
pub const BLOCKING_WAIT_MAX_MS: u64 = 250;

/// Most clients following `/v1/events` at once; more are answered 503 `too_many_subscribers`.
pub const EVENT_SUBSCRIBERS_MAX: usize = 128;

/// How long one event may wait for a `/v1/events` reader to take it before the node closes
/// that socket (and frees its slot).
pub const EVENT_SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

type AppState = State<Arc<Shared>>;

/// The answer to a JSON body that could not be taken: 413 `payload_too_large` when it is
/// larger than `body_max` bytes (the route's body limit), else 400 with the expected `shape`.
pub fn body_error(
    rejection: axum::extract::rejection::JsonRejection,
    body_max: usize,
    shape: &str,
) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {body_max} bytes, this route's limit; send less"),
        );
    }
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        format!("{rejection}; send {shape}"),
    )
}

/// Run CPU-heavy `work` on the blocking pool, holding one of `slots` until it ends (even if
/// the client leaves). Without a free slot within [`BLOCKING_WAIT_MAX_MS`]: 503 `busy`.
///
/// # Errors
/// `busy` when no slot frees in time; `internal` when the task panics.
pub async fn run_blocking<T: Send + 'static>(
    slots: &Arc<Semaphore>,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let wait = Duration::from_millis(BLOCKING_WAIT_MAX_MS);
    let permit = tokio::time::timeout(wait, slots.clone().acquire_owned())
        .await
        .map_err(|_| {
            ApiError::busy(format!(
                "the node is checking {BLOCKING_TASKS_MAX} other batches; retry in a moment"
            ))
        })?
        .map_err(|e| ApiError::internal(format!("blocking task slots closed: {e}")))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| ApiError::internal(format!("blocking task failed: {e}")))
}

/// A slot for one more `/v1/events` subscriber, held while its socket is open.
///
/// # Errors
/// 503 `too_many_subscribers` when all [`EVENT_SUBSCRIBERS_MAX`] slots are taken.
pub fn subscriber_slot(slots: &Arc<Semaphore>) -> Result<OwnedSemaphorePermit, ApiError> {
    slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_subscribers",
            format!(
                "{EVENT_SUBSCRIBERS_MAX} clients already follow /v1/events on this node; \
                 retry later or follow another node"
            ),
        )
    })
}

/// The API's routes.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/txs", axum::routing::post(submit_tx))
        .route(
            "/v1/txs/batch",
            axum::routing::post(submit_batch)
                .layer(axum::extract::DefaultBodyLimit::max(BATCH_BODY_MAX)),
        )
        .route("/v1/txs/{hash}", get(tx_status))
        .route("/v1/blocks/{height}", get(block))
        .route("/v1/blocks/{height}/txs/{index}", get(block_tx))
        .route("/v1/blocks/{height}/raw", get(block_raw))
        .route("/v1/blocks/{height}/changes", get(block_changes))
        .route("/v1/accounts/{id}", get(account))
        .route("/v1/events", get(events))
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .merge(crate::peg::routes())
        .merge(crate::gov::routes())
        .merge(crate::private::routes())
        .merge(crate::commerce::routes())
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
        "peers": s.peers.load(std::sync::atomic::Ordering::Relaxed),
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
    let Json(body) = body.map_err(|e| body_error(e, REQUEST_BODY_MAX, r#"{"tx": "<hex>"}"#))?;
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

/// Body of `POST /v1/txs/batch`.
#[derive(Deserialize)]
pub struct SubmitBatch {
    /// Hex of each signed transaction's canonical encoding.
    pub txs: Vec<String>,
}

/// Admit many transactions at once: signatures are verified in one batch (falling back to one
/// by one if the batch fails). The answer lists, in order, each transaction's hash or error.
async fn submit_batch(
    State(s): AppState,
    body: Result<Json<SubmitBatch>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) =
        body.map_err(|e| body_error(e, BATCH_BODY_MAX, r#"{"txs": ["<hex>", ...]}"#))?;
    if body.txs.len() > BATCH_TXS_MAX {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "batch_too_large",
            format!(
                "{} transactions; at most {BATCH_TXS_MAX} per batch",
                body.txs.len()
            ),
        ));
    }
    // Decoding and signature checks are CPU work: keep them off the async workers.
    let chain_id = s.genesis.chain_id;
    let admission = s.admission.clone();
    let (decoded, all_verify) = run_blocking(&s.blocking_tasks, move || {
        let decoded: Vec<Result<SignedTx, TxError>> = body
            .txs
            .iter()
            .map(|hex| {
                let bytes = hex_serde::decode(hex)
                    .map_err(|e| TxError::Malformed(format!("not hex: {e}")))?;
                let tx = SignedTx::decode_untrusted(&bytes)?;
                tx.check_without_signature(chain_id)?;
                Ok(tx)
            })
            .collect();
        let candidates: Vec<&SignedTx> = decoded.iter().filter_map(|r| r.as_ref().ok()).collect();
        let all_verify = admission.verify_signatures(&candidates, &mut rand::rng());
        (decoded, all_verify)
    })
    .await?;
    // Refused before the pool (`Some`), or verified and admitted together below (`None`).
    let mut answers: Vec<Option<Result<TxHash, TxError>>> = Vec::with_capacity(decoded.len());
    let mut verified = Vec::with_capacity(decoded.len());
    let mut rejections = Vec::new();
    for item in decoded {
        answers.push(match item {
            Err(error) => Some(Err(error)),
            Ok(tx) if !all_verify && !tx.verify_signature() => {
                rejections.push((tx.hash(), TxError::BadSignature));
                Some(Err(TxError::BadSignature))
            }
            Ok(tx) => {
                verified.push(tx);
                None
            }
        });
    }
    let hashes: Vec<TxHash> = verified.iter().map(SignedTx::hash).collect();
    let admitted = s.admission.admit_verified_many(verified, true).await;
    let mut admitted = admitted.into_iter().zip(hashes);
    let mut results = Vec::with_capacity(answers.len());
    let mut accepted = 0usize;
    for answer in answers {
        let result = answer.unwrap_or_else(|| {
            let (result, hash) = admitted
                .next()
                .expect("one answer per verified transaction");
            if let Err(error) = &result {
                rejections.push((hash, error.clone()));
            }
            result
        });
        results.push(match result {
            Ok(hash) => {
                accepted += 1;
                json!({"hash": hex_serde::encode(&hash)})
            }
            Err(error) => json!({"error": error}),
        });
    }
    s.mempool.remember_rejections(rejections);
    Ok(Json(json!({"accepted": accepted, "results": results})))
}

async fn admit(s: &Shared, tx: SignedTx) -> Result<(), TxError> {
    s.admission.admit(tx, true).await.map(|_| ())
}

/// Where a finalized transaction sits, from the node's index, and what the pool says of it.
///
/// The index follows finalization a moment behind while the pool forgets a finalized
/// transaction at once. So the pool is asked first, in one step with the finalized height it
/// has seen: a transaction it no longer holds, if it was finalized, sits at or below that
/// height (or the observed tip), and the lookup waits for the index to get there before it
/// says the transaction is unknown.
async fn read_tx_location(
    s: &Shared,
    hash: &consort_types::TxHash,
) -> Result<(Option<TxLocation>, Option<PoolStatus>), ApiError> {
    let (pool, pool_final) = s.mempool.status_at(hash);
    let tip = s
        .observer
        .tip
        .lock()
        .expect("tip lock")
        .height
        .max(pool_final);
    // The indexed height first: read after the lookup, it could include a block the lookup
    // did not see.
    let indexed = s.txindex.indexed();
    let found = s.txindex.get(hash).await.map_err(ApiError::internal)?;
    // A pending transaction is not final yet; a refused one may still have been included by
    // another proposer, so it waits for the index like an unknown one.
    if found.is_some() || matches!(pool, Some(PoolStatus::Pending)) || indexed >= tip {
        return Ok((found, pool));
    }
    for _ in 0..INDEX_WAIT_POLLS {
        tokio::time::sleep(INDEX_WAIT_POLL).await;
        if s.txindex.indexed() >= tip {
            break;
        }
    }
    let found = s.txindex.get(hash).await.map_err(ApiError::internal)?;
    if found.is_some() {
        return Ok((found, pool));
    }
    // The pool's answer is as old as the wait: ask it again.
    Ok((None, s.mempool.status(hash)))
}

/// How long a transaction lookup waits for the index to reach the tip: polls of
/// [`INDEX_WAIT_POLL`].
const INDEX_WAIT_POLLS: u32 = 100;
/// See [`INDEX_WAIT_POLLS`].
const INDEX_WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The failure code of the transaction at `location`, from its block's outcomes.
async fn failure_code(s: &Shared, location: &TxLocation) -> Option<String> {
    let block = s
        .marshal
        .get_block(Identifier::Height(Height::new(location.height)))
        .await?;
    let outcome = block
        .inner()
        .outcomes
        .get(usize::try_from(location.index).ok()?)?;
    outcome.failure().map(|code| code.as_str().to_string())
}

async fn tx_status(State(s): AppState, Path(hash): Path<String>) -> Result<Json<Value>, ApiError> {
    let hash: consort_types::TxHash = hex_serde::parse(&hash).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("hash is not 32 bytes of hex: {e}"),
        )
    })?;
    let (location, pool) = read_tx_location(&s, &hash).await?;
    if let Some(location) = location {
        if location.applied {
            return Ok(Json(json!({
                "status": "finalized",
                "height": location.height,
                "index": location.index,
            })));
        }
        // Included, but its execution failed: it used its nonce and changed nothing else.
        let code = failure_code(&s, &location).await;
        return Ok(Json(json!({
            "status": "failed",
            "height": location.height,
            "index": location.index,
            "error": {"code": code},
        })));
    }
    match pool {
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
        "txs": block.txs.iter().zip(block.outcomes.iter()).map(|(t, outcome)| json!({
            "hash": hex_serde::encode(&t.hash()),
            "tx": t.tx,
            "outcome": outcome,
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

async fn finalized_block(s: &Shared, height: u64) -> Result<Arc<Block>, ApiError> {
    s.marshal
        .get_block(Identifier::Height(Height::new(height)))
        .await
        .map(|block| Arc::new(block.inner().clone()))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_block",
                format!("no finalized block at height {height}"),
            )
        })
}

/// A finalized block in its canonical encoding (`application/octet-stream`): what a follower
/// such as the indexer decodes, transactions and outcomes whole.
async fn block_raw(
    State(s): AppState,
    Path(height): Path<u64>,
) -> Result<axum::response::Response, ApiError> {
    let block = finalized_block(&s, height).await?;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
        block.encode().to_vec(),
    )
        .into_response())
}

/// Query string of `/v1/blocks/{height}/changes`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// `json` (the default) or `binary` (the list's canonical encoding, as followers read it).
    pub format: Option<String>,
}

/// The shop records finalized block `height` changed, each with its value after the block
/// (hex of its canonical encoding; `null`: removed), or with `format=binary` the list's
/// canonical encoding (`application/octet-stream`).
async fn block_changes(
    State(s): AppState,
    Path(height): Path<u64>,
    query: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text()))?;
    let binary = match query.format.as_deref() {
        None | Some("json") => false,
        Some("binary") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!("format {other:?}: use json or binary"),
            ));
        }
    };
    let log = s.observer.changelog.clone();
    let (recorded, first) = tokio::task::spawn_blocking(move || {
        let recorded = log.get(height)?;
        let first = if recorded.is_none() {
            log.first()
        } else {
            None
        };
        Ok::<_, crate::changelog::ChangeLogError>((recorded, first))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let Some(changes) = recorded else {
        // Not final yet (or never): say so rather than that it was not recorded.
        finalized_block(&s, height).await?;
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "changes_not_recorded",
            match first {
                Some(first) => format!(
                    "this node did not record block {height}'s changes (it joined by state \
                     sync, or ran an older build); its change log starts at block {first}: \
                     ask a node that executed the chain from genesis"
                ),
                None => format!(
                    "this node has recorded no block's changes yet; ask a node that executed \
                     block {height}"
                ),
            },
        ));
    };
    if binary {
        return Ok((
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            changes.encode().to_vec(),
        )
            .into_response());
    }
    Ok(Json(json!({
        "height": height,
        "changes": changes.0.iter().map(|c| json!({
            "record": c.record,
            "value": c.value.as_deref().map(hex::encode),
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// One transaction of a finalized block, as signed (hex of its canonical encoding), with its
/// outcome and the proof that both are under the block's `tx_root`.
async fn block_tx(
    State(s): AppState,
    Path((height, index)): Path<(u64, u32)>,
) -> Result<Json<Value>, ApiError> {
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
    let block = block.inner();
    let proof =
        consort_types::block::tx_proof(&block.txs, &block.outcomes, index).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_tx",
                format!(
                    "block {height} has {} transactions, no {index}",
                    block.txs.len()
                ),
            )
        })?;
    let position = index as usize;
    Ok(Json(json!({
        "height": height,
        "index": index,
        "hash": hex_serde::encode(&block.txs[position].hash()),
        "tx": hex::encode(block.txs[position].encode()),
        "outcome": hex::encode(block.outcomes[position].encode()),
        "call": block.txs[position].tx.call,
        "proof": hex::encode(proof.encode()),
    })))
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
            .map_err(|e| ApiError::internal(format!("reading account {id}: {e:?}")))?
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
            .map_err(|e| ApiError::internal(format!("proving account {id}: {e:?}")))?;
        (db.root(), proof, value)
    };
    let account = state::from_value::<consort_types::Account>(&value)
        .ok_or_else(|| ApiError::internal("stored account does not decode"))?;
    let proven_height = crate::shared::proven_height(&s, &root).await;
    Ok(Json(json!({
        "id": id,
        "balance": account.balance,
        "nonce": account.nonce,
        "pending_spend": s.mempool.pending_spend(&id),
        "next_nonce": s.mempool.next_nonce(&id, account.nonce),
        "proof": {
            "height": proven_height,
            "state_root": hex_serde::encode(&root),
            "key": hex_serde::encode(&key),
            "value": hex::encode(value.as_ref()),
            "proof": hex::encode(proof.encode()),
        },
    })))
}

/// `GET /v1/events` query: `types`, a comma-separated list of event types to follow
/// (absent: all).
#[derive(serde::Deserialize)]
struct EventsQuery {
    types: Option<String>,
}

/// Which kinds of event `types` names (absent: all of them).
///
/// # Errors
/// 400 `bad_request` naming the unknown type and the known ones.
fn event_kinds(types: Option<&str>) -> Result<[bool; EVENT_KINDS.len()], ApiError> {
    let Some(types) = types else {
        return Ok([true; EVENT_KINDS.len()]);
    };
    let mut kinds = [false; EVENT_KINDS.len()];
    for name in types.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let Some(k) = EVENT_KINDS.iter().position(|known| *known == name) else {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_request",
                format!(
                    "unknown event type {name:?}; follow any of {}",
                    EVENT_KINDS.join(", ")
                ),
            ));
        };
        kinds[k] = true;
    }
    if !kinds.contains(&true) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!(
                "types names no event type; follow any of {}",
                EVENT_KINDS.join(", ")
            ),
        ));
    }
    Ok(kinds)
}

async fn events(
    State(s): AppState,
    query: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("{rejection}; give ?types= once, a comma-separated list"),
        )
    })?;
    let kinds = event_kinds(query.types.as_deref())?;
    let slot = subscriber_slot(&s.event_subscribers)?;
    let mut rx = s.observer.events.subscribe();
    let wanting = s.observer.want(kinds);
    Ok(ws.on_upgrade(move |mut socket| async move {
        let _slot = slot;
        loop {
            let text = match rx.recv().await {
                Ok(event) if wanting.wants(event.kind) => event.json.clone(),
                Ok(_) => continue,
                // A slow reader is told how many events it missed, then continues.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    json!({"type": "lagged", "missed": missed}).to_string()
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            };
            // A reader that stopped reading (its socket full) gives up its slot rather than
            // hold it forever: a few stalled clients must not shut everyone else out.
            match tokio::time::timeout(EVENT_SEND_TIMEOUT, socket.send(Message::Text(text.into())))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => break,
            }
        }
    }))
}

async fn metrics(State(s): AppState) -> String {
    use std::fmt::Write as _;
    let c = &s.observer.counters;
    let tip = s.observer.tip.lock().expect("tip lock").height;
    let blocks = c.blocks_finalized.load(Relaxed);
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    };
    metric(
        "consort_finalized_height",
        "gauge",
        "Height of the latest finalized block.",
        tip,
    );
    metric(
        "consort_txs_finalized_total",
        "counter",
        "Transactions finalized since start.",
        c.txs_finalized.load(Relaxed),
    );
    metric(
        "consort_mempool_size",
        "gauge",
        "Pending transactions.",
        s.mempool.len() as u64,
    );
    metric(
        "consort_peers",
        "gauge",
        "Validators this node holds a p2p session with.",
        s.peers.load(Relaxed) as u64,
    );
    let _ = write!(
        out,
        "# HELP consort_finality_latency_ms Time from a block's timestamp to its local finalization.\n\
         # TYPE consort_finality_latency_ms histogram\n"
    );
    let mut cumulative = 0;
    for (i, bucket) in c.finality_buckets.iter().enumerate() {
        cumulative += bucket.load(Relaxed);
        let bound = crate::observer::FINALITY_BUCKETS_MS
            .get(i)
            .map_or_else(|| "+Inf".to_string(), u64::to_string);
        let _ = writeln!(
            out,
            "consort_finality_latency_ms_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = write!(
        out,
        "consort_finality_latency_ms_sum {}\nconsort_finality_latency_ms_count {blocks}\n",
        c.finality_ms_sum.load(Relaxed)
    );
    out
}

async fn openapi() -> Json<Value> {
    Json(serde_json::from_str(include_str!("openapi.json")).expect("openapi.json is valid JSON"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::{body::Body, http::Request};
    use tower::ServiceExt as _;

    /// An answer's status and JSON body.
    async fn answer(response: Response) -> (StatusCode, Value) {
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&bytes).expect("JSON body"))
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_answered_413_in_our_error_shape() {
        const LIMIT: usize = 64;
        let handler = |body: Result<Json<SubmitTx>, axum::extract::rejection::JsonRejection>| async move {
            body.map(|_| "taken")
                .map_err(|e| body_error(e, LIMIT, r#"{"tx": "<hex>"}"#))
        };
        let router = Router::new()
            .route("/v1/txs", axum::routing::post(handler))
            .layer(axum::extract::DefaultBodyLimit::max(LIMIT));
        let post = |body: String| {
            Request::post("/v1/txs")
                .header("content-type", "application/json")
                .body(Body::from(body))
                .expect("request")
        };
        let big = format!(r#"{{"tx": "{}"}}"#, "ab".repeat(LIMIT));
        let response = router.clone().oneshot(post(big)).await.expect("answer");
        let (status, body) = answer(response).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(body["error"]["code"], "payload_too_large");
        let message = body["error"]["message"].as_str().expect("message");
        assert!(message.contains(&LIMIT.to_string()), "{message}");
        // A small body that is not the expected shape is still a 400.
        let response = router
            .clone()
            .oneshot(post("[]".into()))
            .await
            .expect("answer");
        let (status, body) = answer(response).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], "bad_request");
        let response = router
            .oneshot(post(r#"{"tx": "ab"}"#.into()))
            .await
            .expect("answer");
        assert_eq!(response.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn blocking_work_beyond_the_bound_is_answered_busy() {
        let slots = Arc::new(Semaphore::new(1));
        let (release, released) = std::sync::mpsc::channel::<()>();
        let running = tokio::spawn({
            let slots = slots.clone();
            async move { run_blocking(&slots, move || released.recv().is_ok()).await }
        });
        while slots.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        let refused = run_blocking(&slots, || ()).await.expect_err("no free slot");
        let (status, body) = answer(refused.into_response()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "busy");
        release.send(()).expect("the first task waits");
        assert!(running.await.expect("join").expect("ran"));
        assert_eq!(run_blocking(&slots, || 7).await.expect("a slot is free"), 7);
    }

    #[tokio::test]
    async fn subscribers_beyond_the_bound_are_answered_too_many_subscribers() {
        let slots = Arc::new(Semaphore::new(2));
        let first = subscriber_slot(&slots).expect("first");
        let _second = subscriber_slot(&slots).expect("second");
        let refused = subscriber_slot(&slots).expect_err("a third is over the bound");
        let (status, body) = answer(refused.into_response()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["error"]["code"], "too_many_subscribers");
        drop(first);
        assert!(
            subscriber_slot(&slots).is_ok(),
            "a closed socket frees its slot"
        );
    }

    #[tokio::test]
    async fn internal_errors_keep_their_detail_out_of_the_answer() {
        let detail = "qmdb journal /var/lib/consort/state/7 is corrupt: Checksum { .. }";
        let (status, body) = answer(ApiError::internal(detail).into_response()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(body["error"]["code"], "internal");
        assert_eq!(body["error"]["message"], INTERNAL_MESSAGE);
        assert!(!body.to_string().contains("journal"));
    }

    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("openapi.json")).expect("valid JSON");
        let sources = [
            include_str!("api.rs"),
            include_str!("peg.rs"),
            include_str!("gov.rs"),
            include_str!("private.rs"),
            include_str!("commerce.rs"),
            // The shop's read API, served by the indexer, is part of the same document.
            include_str!("../../indexer/src/api.rs"),
            include_str!("../../indexer/src/views.rs"),
            include_str!("../../indexer/src/carts.rs"),
        ];
        let mut routes = Vec::new();
        for source in sources {
            for line in source.lines() {
                if let Some(rest) = line.trim().strip_prefix(".route(\"")
                    && let Some(end) = rest.find('"')
                {
                    routes.push(rest[..end].to_string());
                }
            }
        }
        assert!(routes.len() > 10, "found routes: {routes:?}");
        for route in routes {
            assert!(
                doc["paths"].get(&route).is_some(),
                "{route} is served but not documented in openapi.json"
            );
        }
    }

    #[test]
    fn every_shop_call_and_error_code_is_in_the_openapi_document() {
        let doc = include_str!("openapi.json");
        for name in consort_types::commerce::CommerceCall::KINDS
            .iter()
            .chain(consort_types::commerce::CommerceError::CODES)
        {
            assert!(
                doc.contains(name),
                "{name} is not documented in openapi.json"
            );
        }
    }
}
