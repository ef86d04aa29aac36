//! The node's side of the peg: read routes over the peg's records and the validator's watcher
//! loop, which submits its duties (header relays, claims, signatures, confirmations) through
//! the node's own mempool.

use crate::shared::{ApiError, PegNode, Shared, read};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::get,
};
use bitcoin::hashes::Hash as _;
use commonware_cryptography::{Signer as _, ed25519};
use commonware_glue::stateful::db::DatabaseSet as _;
use commonware_runtime::{Clock as _, tokio::Context};
use consort_execution::BlockError;
use consort_mainchain::Custody;
use consort_state::{self as state, Store};
use consort_types::{
    AccountId, Asset, Tx,
    peg::{
        Batch, BatchStatus, ClaimRecord, ClaimStatus, MainTip, Outpoint, PegOutRequest,
        PegOutStatus, PegTotals,
    },
    state_key::{self, peg as key},
};
use consort_watcher::{Duty, WatchError, Watcher};
use serde_json::{Value, json};
use std::{collections::BTreeSet, sync::Arc, time::Duration};
use tracing::{debug, warn};

/// How often the watcher looks at the main chain.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

/// Fresh snapshots one watcher duty is tried on before it waits for the next round.
const STALE_RETRIES: u32 = 8;

/// The watch list as older nodes wrote it (read, never written).
const WATCH_FILE: &str = "peg-watch.json";
/// The watch list: one line per account, appended.
const WATCH_LOG: &str = "peg-watch.log";

/// Most accounts added to the watch list per second, node-wide (`GET /v1/peg/address/...`
/// past it answers 429 `rate_limited`; accounts already watched are always answered).
pub const WATCH_ADDS_PER_SECOND_MAX: u32 = 50;

/// Most accounts a node watches for deposits. Past it, `GET /v1/peg/address/{account}` still
/// answers the address but does not watch it (`"watched": false`): such deposits are claimed
/// by submitting a `claim_deposit` transaction.
pub const WATCH_LIST_MAX: usize = 100_000;

/// Main-chain blocks before the light client's tip at the time of the request from which a
/// newly watched account's deposits are looked for (a deposit sent right after asking may land
/// in a block the light client has not heard of yet, never in an older one).
const WATCH_RESCAN_BLOCKS: u32 = 6;

/// The accounts a node watched before it restarted, each with the main-chain height to look
/// for deposits from: the append-only log (one `account height` line per account), after the
/// JSON list older nodes rewrote whole (pairs, or accounts only: from height 0). A torn last
/// line (a crash mid-append, before the address was answered) is skipped.
pub fn load_watch_list(data_dir: &std::path::Path) -> WatchList {
    let mut list = WatchList::new();
    if let Ok(text) = std::fs::read_to_string(data_dir.join(WATCH_FILE)) {
        let legacy = serde_json::from_str::<Vec<(AccountId, u32)>>(&text)
            .map(|entries| entries.into_iter().collect::<WatchList>())
            .or_else(|_| {
                serde_json::from_str::<BTreeSet<AccountId>>(&text)
                    .map(|accounts| accounts.into_iter().map(|a| (a, 0)).collect())
            })
            .unwrap_or_default();
        list.extend(legacy);
    }
    if let Ok(text) = std::fs::read_to_string(data_dir.join(WATCH_LOG)) {
        for line in text.lines() {
            let mut fields = line.split_whitespace();
            if let (Some(account), Some(height), None) =
                (fields.next(), fields.next(), fields.next())
                && let (Ok(account), Ok(height)) = (account.parse(), height.parse())
            {
                list.entry(account).or_insert(height);
            }
        }
    }
    list
}

/// Watched accounts → the main-chain height deposits are looked for from.
pub type WatchList = std::collections::BTreeMap<AccountId, u32>;

/// Append one watched account to the log durably (O(1), whatever the list's length).
fn append_watch(data_dir: &std::path::Path, account: &AccountId, from: u32) -> std::io::Result<()> {
    use std::io::Write as _;
    let path = data_dir.join(WATCH_LOG);
    let created = !path.exists();
    // A crash mid-append leaves a torn last line: start on a fresh one.
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(&path)?;
    let torn = {
        use std::io::{Read as _, Seek as _, SeekFrom};
        let mut last = [0u8; 1];
        file.seek(SeekFrom::End(-1)).is_ok()
            && file.read_exact(&mut last).is_ok()
            && last[0] != b'\n'
    };
    let line = format!("{}{account} {from}\n", if torn { "\n" } else { "" });
    file.write_all(line.as_bytes())?;
    file.sync_data()?;
    if created {
        std::fs::File::open(data_dir)?.sync_all()?;
    }
    Ok(())
}

/// Evaluate `$read` (an async block using `$peg` and `$store`) on one snapshot of the
/// finalized state, again on a fresh one if a block lands during it.
macro_rules! on_snapshot {
    ($s:expr, |$peg:ident, $store:ident| $read:expr) => {{
        let node = peg_of($s)?;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let parent = $s.databases.new_batches().await;
            let mut $store = Store::new(&parent);
            let $peg = &node.peg;
            match $read.await {
                Err(BlockError::StaleRead) if attempts < 16 => {}
                // Blocks kept landing while the read ran: a retry later will do.
                Err(BlockError::StaleRead) => break Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "busy",
                    "blocks kept landing while this was read; retry (or ask for a smaller page)",
                )),
                result => break result.map_err(|e| ApiError::internal(e.to_string())),
            }
        }
    }};
}

type AppState = State<Arc<Shared>>;

/// Peg routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/peg", get(status))
        .route("/v1/peg/coins", get(coins))
        .route("/v1/peg/pending", get(pending))
        .route("/v1/peg/address/{account}", get(address))
        .route("/v1/peg/quote/{address}", get(quote))
        .route("/v1/peg/claims/{txid}/{vout}", get(claim))
        .route("/v1/peg/requests/{id}", get(request))
        .route("/v1/peg/batches/{id}", get(batch))
        .route("/v1/accounts/{id}/balances/{asset}", get(balance))
}

fn peg_of(s: &Shared) -> Result<&PegNode, ApiError> {
    s.peg.as_ref().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "peg_disabled",
            "this chain has no peg; start it with a `peg` section in genesis",
        )
    })
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, message)
}

async fn tip(s: &Shared) -> Result<MainTip, ApiError> {
    read(&s.databases, &key::tip()).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the peg has no main-chain tip yet; retry once block 1 is final",
        )
    })
}

async fn status(State(s): AppState) -> Result<Json<Value>, ApiError> {
    let node = peg_of(&s)?;
    let peg = &node.peg;
    let tip = tip(&s).await?;
    let totals: PegTotals = read(&s.databases, &key::totals())
        .await?
        .unwrap_or_default();
    let (coins, pending, queued, live) = on_snapshot!(&s, |peg, store| async {
        let (_, coins) = peg.coins_after(&mut store, None, 0).await?;
        let (_, pending) = peg.pending_after(&mut store, None, 0).await?;
        let queued = peg.queued(&mut store).await?;
        let live = peg.live(&mut store).await?;
        Ok::<_, consort_execution::BlockError>((coins, pending, queued, live))
    })?;
    let current = live
        .last()
        .ok_or_else(|| ApiError::internal("the peg has no federation"))?;
    let federations: Vec<Value> = live.iter().map(|f| federation_json(peg, f)).collect();
    let in_flight = match totals.in_flight {
        Some(id) => read::<Batch>(&s.databases, &key::batch(id)).await?,
        None => None,
    };
    Ok(Json(json!({
        "network": peg.config.network,
        "asset": peg.asset().to_string(),
        "federation": current.record.generation,
        "federation_address": current.federation.address(&peg.network, &Custody::Base),
        "federation_script": current.federation.script_pubkey(&Custody::Base).to_hex_string(),
        "threshold": current.federation.threshold(),
        "federation_keys": current.record.keys.0.iter().map(|k| hex::encode(k.as_slice())).collect::<Vec<_>>(),
        "federation_members": current.record.members.0,
        "federations": federations,
        "federation_grace_blocks": peg.config.federation_grace_blocks,
        "recovery": {
            "keys": peg.config.recovery_keys,
            "threshold": peg.config.recovery_threshold,
            "delay_blocks": peg.config.recovery_delay_blocks,
        },
        "confirmations": peg.config.confirmations,
        "contest_blocks": peg.config.contest_blocks,
        "fee_rate_sat_per_vb": peg.config.fee_rate_sat_per_vb,
        "main_tip": tip,
        "totals": totals,
        "owed_sat": u128::from(totals.supply) + u128::from(totals.pending_claims)
            + u128::from(totals.fee_pool) + u128::from(totals.pending_peg_outs),
        "coins": {"count": coins.len, "value_sat": coins.sum, "list_url": "/v1/peg/coins"},
        "pending_claims": {
            "count": pending.len, "value_sat": pending.sum, "list_url": "/v1/peg/pending"
        },
        "queued_peg_outs": {"count": queued.len, "value_sat": queued.sum},
        "in_flight_batch": in_flight,
    })))
}

/// A live federation as the API shows it: who signs, its base script, and for a replaced
/// one until when deposits to its addresses are credited.
fn federation_json(peg: &consort_peg::Peg, f: &consort_peg::Federated) -> Value {
    json!({
        "generation": f.record.generation,
        "members": f.record.members.0,
        "keys": f.record.keys.0.iter().map(|k| hex::encode(k.as_slice())).collect::<Vec<_>>(),
        "threshold": f.federation.threshold(),
        "address": f.federation.address(&peg.network, &Custody::Base),
        "script_pubkey": f.federation.script_pubkey(&Custody::Base).to_hex_string(),
        "formed_at": f.record.formed_at,
        "since_main_height": f.record.since_main,
        "replaced_at_main_height": f.record.replaced_main,
        "deposits_credited_if_mined_by": f.record.replaced_main
            .map(|r| r.saturating_add(peg.config.federation_grace_blocks)),
        "claims_close_after_main_height": peg.claims_close(&f.record),
        "pending_claims": f.record.pending_claims,
    })
}

/// Most items one page of `/v1/peg/coins` or `/v1/peg/pending` answers.
const PAGE_ITEMS_MAX: usize = 1_000;

/// A page request: items after `after` (`txid:vout`), at most `limit`.
#[derive(serde::Deserialize)]
struct Page {
    after: Option<String>,
    limit: Option<usize>,
}

impl Page {
    fn parse(&self) -> Result<(Option<Outpoint>, usize), ApiError> {
        let after = match &self.after {
            None => None,
            Some(text) => {
                let outpoint: bitcoin::OutPoint = text
                    .parse()
                    .map_err(|e| bad(format!("after is not txid:vout: {e}")))?;
                Some(Outpoint {
                    txid: outpoint.txid.to_byte_array(),
                    vout: outpoint.vout,
                })
            }
        };
        let limit = self.limit.unwrap_or(PAGE_ITEMS_MAX);
        if limit == 0 || limit > PAGE_ITEMS_MAX {
            return Err(bad(format!("limit is 1..={PAGE_ITEMS_MAX}")));
        }
        Ok((after, limit))
    }
}

/// A page cursor that left its list (spent or settled since the previous page).
fn cursor_gone() -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "cursor_gone",
        "the item to continue after left the list since the previous page; start again without `after`",
    )
}

fn outpoint_text(outpoint: &Outpoint) -> String {
    bitcoin::OutPoint::new(bitcoin::Txid::from_byte_array(outpoint.txid), outpoint.vout).to_string()
}

/// The federation's spendable coins, oldest first, a page at a time (the audit's list).
async fn coins(State(s): AppState, Query(page): Query<Page>) -> Result<Json<Value>, ApiError> {
    let (after, limit) = page.parse()?;
    let (coins, head) = on_snapshot!(&s, |peg, store| async {
        peg.coins_after(&mut store, after, limit).await
    })?;
    let coins = coins.ok_or_else(cursor_gone)?;
    let next = (coins.len() == limit)
        .then(|| coins.last().map(|c| outpoint_text(&c.outpoint)))
        .flatten();
    let items: Vec<Value> = coins
        .iter()
        .map(|c| {
            json!({
                "outpoint": outpoint_text(&c.outpoint),
                "txid": bitcoin::Txid::from_byte_array(c.outpoint.txid).to_string(),
                "vout": c.outpoint.vout,
                "value_sat": c.value,
                "height": c.height,
                "custody": c.custody,
                "mweb": c.mweb,
            })
        })
        .collect();
    Ok(Json(json!({
        "count": head.len,
        "value_sat": head.sum,
        "coins": items,
        "next": next,
    })))
}

/// Claims in their contest period, oldest first, a page at a time.
async fn pending(State(s): AppState, Query(page): Query<Page>) -> Result<Json<Value>, ApiError> {
    let (after, limit) = page.parse()?;
    let (claims, head) = on_snapshot!(&s, |peg, store| async {
        peg.pending_after(&mut store, after, limit).await
    })?;
    let claims = claims.ok_or_else(cursor_gone)?;
    let next = (claims.len() == limit)
        .then(|| claims.last().map(|(o, _)| outpoint_text(o)))
        .flatten();
    let items: Vec<Value> = claims
        .iter()
        .map(|(outpoint, claim)| {
            json!({
                "outpoint": outpoint_text(outpoint),
                "txid": bitcoin::Txid::from_byte_array(outpoint.txid).to_string(),
                "vout": outpoint.vout,
                "claim": claim,
            })
        })
        .collect();
    Ok(Json(json!({
        "count": head.len,
        "value_sat": head.sum,
        "claims": items,
        "next": next,
    })))
}

async fn address(State(s): AppState, Path(account): Path<String>) -> Result<Json<Value>, ApiError> {
    let node = peg_of(&s)?;
    let account: AccountId = account
        .parse()
        .map_err(|e| bad(format!("account is not a hex ed25519 public key: {e}")))?;
    // On a governed chain only registered accounts are watched: anyone may ask for any key's
    // address, and each watched account costs every round of the watcher.
    let registered = match &s.gov {
        None => true,
        Some(_) => read::<consort_types::gov::Registration>(
            &s.databases,
            &state_key::gov::registration(&account),
        )
        .await?
        .is_some_and(|r| r.active),
    };
    let from = read::<MainTip>(&s.databases, &key::tip())
        .await?
        .map_or(0, |tip| tip.height.saturating_sub(WATCH_RESCAN_BLOCKS));
    let watched = registered && {
        let mut list = node.watch.lock().expect("watch list lock");
        if list.contains_key(&account) {
            true
        } else if list.len() >= WATCH_LIST_MAX {
            false
        } else {
            {
                let mut rate = node.watch_adds.lock().expect("watch rate lock");
                let now = std::time::Instant::now();
                if now.duration_since(rate.0) >= Duration::from_secs(1) {
                    *rate = (now, 0);
                }
                if rate.1 >= WATCH_ADDS_PER_SECOND_MAX {
                    return Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "rate_limited",
                        format!(
                            "this node watches at most {WATCH_ADDS_PER_SECOND_MAX} new deposit \
                             addresses per second; retry in a second"
                        ),
                    ));
                }
                rate.1 += 1;
            }
            append_watch(&node.data_dir, &account, from)
                .map_err(|e| ApiError::internal(format!("cannot save the watch list: {e}")))?;
            list.insert(account, from);
            true
        }
    };
    let live = on_snapshot!(&s, |peg, store| async { peg.live(&mut store).await })?;
    let peg = &node.peg;
    let current = live
        .last()
        .ok_or_else(|| ApiError::internal("the peg has no federation"))?;
    // Addresses of replaced federations still credited (deposits sent before the switch).
    let previous: Vec<Value> = live[..live.len() - 1]
        .iter()
        .map(|f| {
            json!({
                "federation": f.record.generation,
                "address": peg.deposit_address(&f.federation, &account),
                "credited_if_mined_by_main_height": f.record.replaced_main
                    .map(|r| r.saturating_add(peg.config.federation_grace_blocks)),
            })
        })
        .collect();
    Ok(Json(json!({
        "account": account,
        "federation": current.record.generation,
        "address": peg.deposit_address(&current.federation, &account),
        "script_pubkey": peg.deposit_script(&current.federation, &account).to_hex_string(),
        "previous_addresses": previous,
        "confirmations": peg.config.confirmations,
        "contest_blocks": peg.config.contest_blocks,
        "deposit_fee_sat": peg.deposit_fee(&current.federation),
        "minimum_deposit_sat": peg.deposit_minimum(&current.federation),
        "watched": watched,
    })))
}

async fn quote(State(s): AppState, Path(address): Path<String>) -> Result<Json<Value>, ApiError> {
    let node = peg_of(&s)?;
    let script = consort_mainchain::script_pubkey_for_address(&node.peg.network, &address)
        .map_err(|e| {
            bad(format!(
                "{address} is not a {} address: {e}",
                node.peg.config.network
            ))
        })?;
    let tip = tip(&s).await?;
    let current = on_snapshot!(&s, |peg, store| async { peg.current(&mut store).await })?;
    let (fee, minimum) = node
        .peg
        .quote(&current.federation, &script, tip.height)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.code(), e.to_string()))?;
    Ok(Json(json!({
        "address": address,
        "script_pubkey": script.to_hex_string(),
        "fee_sat": fee,
        "minimum_sat": minimum,
        "fee_rate_sat_per_vb": node.peg.config.fee_rate_sat_per_vb,
    })))
}

async fn claim(
    State(s): AppState,
    Path((txid, vout)): Path<(String, u32)>,
) -> Result<Json<Value>, ApiError> {
    let node = peg_of(&s)?;
    let txid: bitcoin::Txid = txid
        .parse()
        .map_err(|e| bad(format!("txid is not a 64-digit hex hash: {e}")))?;
    let outpoint = Outpoint {
        txid: txid.to_byte_array(),
        vout,
    };
    let claim: ClaimRecord = read(&s.databases, &key::claim(&outpoint))
        .await?
        .ok_or_else(|| not_found("unknown_claim", format!("{txid}:{vout} is not claimed")))?;
    let tip = tip(&s).await?;
    let confirmations = tip.height.saturating_sub(claim.height) + 1;
    let status = ClaimStatus::from_tag(claim.status);
    Ok(Json(json!({
        "claim": claim,
        "status": status,
        "confirmations": confirmations,
        "spendable_at_main_height": claim.matures_at,
        "blocks_left": claim.matures_at.saturating_sub(tip.height),
        "estimated_seconds_left": u64::from(claim.matures_at.saturating_sub(tip.height))
            * u64::from(node.peg.network.target_spacing_secs()),
    })))
}

async fn request(State(s): AppState, Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    peg_of(&s)?;
    let request: PegOutRequest = read(&s.databases, &key::request(id))
        .await?
        .ok_or_else(|| not_found("unknown_request", format!("no peg-out request {id}")))?;
    let batch = match request.batch {
        Some(b) => read::<Batch>(&s.databases, &key::batch(b)).await?,
        None => None,
    };
    Ok(Json(json!({
        "request": request,
        "status": PegOutStatus::from_tag(request.status),
        "receives_sat": request.amount - request.fee,
        "batch": batch.as_ref().map(|b| json!({
            "id": b.id,
            "status": BatchStatus::from_tag(b.status),
            "txid": bitcoin::Txid::from_byte_array(b.txid).to_string(),
            "signatures": b.signers.0.len(),
        })),
    })))
}

async fn batch(State(s): AppState, Path(id): Path<u64>) -> Result<Json<Value>, ApiError> {
    let node = peg_of(&s)?;
    let batch: Batch = read(&s.databases, &key::batch(id))
        .await?
        .ok_or_else(|| not_found("unknown_batch", format!("no batch {id}")))?;
    let source = on_snapshot!(&s, |peg, store| async {
        peg.federation(&mut store, batch.federation).await
    })?;
    let unsigned = node.peg.unsigned(&batch, &source.federation);
    // Assembled while it waits for the main chain; once confirmed its signatures are pruned
    // (the transaction is on the main chain under `txid`).
    let signed = if batch.status != BatchStatus::Signed.tag() {
        None
    } else {
        let parent = s.databases.new_batches().await;
        let mut store = Store::new(&parent);
        let partials = node
            .peg
            .signatures(&mut store, &batch)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        unsigned
            .assemble(&partials)
            .ok()
            .map(|tx| hex::encode(bitcoin::consensus::serialize(&tx)))
    };
    Ok(Json(json!({
        "batch": batch,
        "status": BatchStatus::from_tag(batch.status),
        "threshold": source.federation.threshold(),
        "signers": batch.signers.0.iter()
            .filter_map(|i| source.record.members.0.get(usize::from(*i)))
            .collect::<Vec<_>>(),
        "unsigned_tx": hex::encode(bitcoin::consensus::serialize(unsigned.transaction())),
        "signed_tx": signed,
    })))
}

async fn balance(
    State(s): AppState,
    Path((id, asset)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let id: AccountId = id
        .parse()
        .map_err(|e| bad(format!("account is not a hex ed25519 public key: {e}")))?;
    let asset: Asset = asset.parse().map_err(|e| bad(format!("{e}")))?;
    let units: u64 = read(&s.databases, &state_key::balance(&asset, &id))
        .await?
        .unwrap_or(0);
    Ok(Json(
        json!({"account": id, "asset": asset, "balance": units}),
    ))
}

/// Run the validator's duties forever: every [`WATCH_INTERVAL`], compute them from the
/// finalized state and the main chain, sign them with the validator key and admit them.
pub async fn watch_loop(
    context: Context,
    shared: Arc<Shared>,
    mut watcher: Watcher,
    signer: ed25519::PrivateKey,
) {
    let sender = AccountId::new(signer.public_key());
    loop {
        context.sleep(WATCH_INTERVAL).await;
        let Some(node) = shared.peg.as_ref() else {
            return;
        };
        let requested: Vec<(AccountId, u32)> = node
            .watch
            .lock()
            .expect("watch list lock")
            .iter()
            .map(|(account, from)| (*account, *from))
            .collect();
        for (account, from) in requested {
            watcher.watch(account, from);
        }
        if let Err(error) = watcher.scan().await {
            warn!(%error, "peg watcher could not scan the main chain; claims wait a round");
        }
        let mut calls = Vec::new();
        // Each duty on its own snapshot: a block landing during one costs a retry of that one
        // only, and a failing duty holds up no other.
        for duty in Duty::ALL {
            let mut attempts = 0;
            loop {
                attempts += 1;
                let parent = shared.databases.new_batches().await;
                let mut store = Store::new(&parent);
                match watcher.duty(duty, &mut store).await {
                    Ok(more) => calls.extend(more),
                    Err(WatchError::State(BlockError::StaleRead)) if attempts < STALE_RETRIES => {
                        continue;
                    }
                    Err(error) => {
                        warn!(?duty, %error, "peg watcher duty failed; retrying next round")
                    }
                }
                break;
            }
        }
        for call in calls {
            let account = state::read_account(&shared.databases, &sender)
                .await
                .ok()
                .flatten()
                .unwrap_or_default();
            let nonce = shared.mempool.next_nonce(&sender, account.nonce);
            let kind = call.kind();
            let tx = Tx {
                chain_id: shared.genesis.chain_id,
                sender,
                nonce,
                call,
            }
            .sign(&signer);
            match crate::shared::admit_own(&shared, tx).await {
                Ok(()) => debug!(kind, nonce, "peg duty submitted"),
                Err(error) => debug!(kind, %error, "peg duty not admitted"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watch_list_survives_a_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(load_watch_list(dir.path()).is_empty());
        let accounts: Vec<AccountId> = (0..3u64)
            .map(|seed| AccountId::new(ed25519::PrivateKey::from_seed(seed).public_key()))
            .collect();
        let list: WatchList = accounts
            .iter()
            .zip([0, 7, 250])
            .map(|(a, h)| (*a, h))
            .collect();
        for (account, from) in &list {
            append_watch(dir.path(), account, *from).expect("appended");
        }
        assert_eq!(load_watch_list(dir.path()), list);
        // A torn last line (a crash mid-append) is skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(dir.path().join(WATCH_LOG))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"abcd"))
            .expect("torn line");
        assert_eq!(load_watch_list(dir.path()), list);
        // The next account after a torn line is kept.
        let next = AccountId::new(ed25519::PrivateKey::from_seed(9).public_key());
        append_watch(dir.path(), &next, 42).expect("appended");
        let mut longer = list.clone();
        longer.insert(next, 42);
        assert_eq!(load_watch_list(dir.path()), longer);
        // A list written by an older node (accounts only) is watched from height 0; the log's
        // heights are kept.
        std::fs::remove_file(dir.path().join(WATCH_LOG)).expect("removed");
        std::fs::write(
            dir.path().join(WATCH_FILE),
            serde_json::to_string(&accounts).expect("json"),
        )
        .expect("written");
        let old: WatchList = accounts.iter().map(|a| (*a, 0)).collect();
        assert_eq!(load_watch_list(dir.path()), old);
    }
}
