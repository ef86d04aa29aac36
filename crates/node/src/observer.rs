//! What a node does with each finalized block outside consensus: the tip, the mempool's
//! pruning, the events stream (blocks, failures, alerts, governance and peg events) and the
//! metrics.

use consort_chain::{ChainObserver, Mempool};
use consort_types::{Block, hex_serde};
use std::{
    sync::{Arc, Mutex},
    time::{SystemTime, UNIX_EPOCH},
};

/// Events buffered for slow WebSocket readers (who are told what they missed). A block may
/// carry an event per transaction, and the buffer holds every kind someone follows: while
/// nobody follows per-transaction kinds, a reader of `block_finalized` alone gets one event
/// per block. Kept small because each buffered event stays in memory until the slowest
/// reader has it.
pub const EVENTS_BUFFERED: usize = 4096;

/// The kinds of event on `/v1/events`, by the `type` each carries.
pub const EVENT_KINDS: [&str; 6] = [
    "block_finalized",
    "tx_failed",
    "alert",
    "gov",
    "commerce",
    "peg",
];

/// Index in [`EVENT_KINDS`] of each kind.
pub mod kind {
    /// A finalized block.
    pub const BLOCK: usize = 0;
    /// A transaction that failed.
    pub const TX_FAILED: usize = 1;
    /// An amount at or above the regulator's threshold.
    pub const ALERT: usize = 2;
    /// A governance, supervision or validator call.
    pub const GOV: usize = 3;
    /// A shop call.
    pub const COMMERCE: usize = 4;
    /// A peg step.
    pub const PEG: usize = 5;
}

/// One event on the stream: its kind (an index in [`EVENT_KINDS`]) and its JSON.
#[derive(Debug)]
pub struct Event {
    /// Index in [`EVENT_KINDS`].
    pub kind: usize,
    /// The message.
    pub json: String,
}

/// How many subscribers want each kind of event: the observer builds only wanted events.
#[derive(Default)]
pub struct Interest([std::sync::atomic::AtomicUsize; EVENT_KINDS.len()]);

/// A subscriber's interest, withdrawn when dropped (it holds the counts, not the observer,
/// so the stream still closes when the node stops).
pub struct Wanting {
    interest: Arc<Interest>,
    kinds: [bool; EVENT_KINDS.len()],
}

impl Wanting {
    /// Whether this subscriber wants events of `kind`.
    pub fn wants(&self, kind: usize) -> bool {
        self.kinds[kind]
    }
}

impl Drop for Wanting {
    fn drop(&mut self) {
        for (count, wanted) in self.interest.0.iter().zip(self.kinds) {
            if wanted {
                count.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }
}

/// The latest finalized block as the node knows it.
#[derive(Clone, Debug, Default)]
pub struct Tip {
    /// Height of the latest finalized block.
    pub height: u64,
    /// Its digest (hex).
    pub hash: String,
    /// Its timestamp (ms).
    pub timestamp_ms: u64,
}

/// Upper bounds (ms) of the finality latency histogram's buckets; the last bucket is +Inf.
pub const FINALITY_BUCKETS_MS: [u64; 11] = [10, 25, 50, 100, 200, 300, 500, 750, 1000, 2000, 5000];

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Counters {
    /// Blocks per finality latency bucket (see [`FINALITY_BUCKETS_MS`]; the last is +Inf).
    pub finality_buckets: [std::sync::atomic::AtomicU64; FINALITY_BUCKETS_MS.len() + 1],
    /// Finalized transactions since start.
    pub txs_finalized: std::sync::atomic::AtomicU64,
    /// Sum of finality latencies of blocks this node finalized (ms), and their count.
    pub finality_ms_sum: std::sync::atomic::AtomicU64,
    /// Blocks finalized since start.
    pub blocks_finalized: std::sync::atomic::AtomicU64,
}

/// Hears finalized blocks: updates the tip, prunes the mempool, feeds events and metrics.
pub struct Observer {
    /// The node's mempool.
    pub mempool: Mempool,
    /// The tip.
    pub tip: Mutex<Tip>,
    /// Events for WebSocket subscribers.
    pub events: tokio::sync::broadcast::Sender<Arc<Event>>,
    /// Which kinds of event someone follows.
    pub interest: Arc<Interest>,
    /// Metrics.
    pub counters: Counters,
    /// Amounts from which the regulator gets an alert.
    pub alert_threshold: Option<u64>,
    /// Hands each finalized block to the transaction index's follower (which reads from
    /// marshal whatever a full queue dropped).
    pub indexer: Mutex<futures::channel::mpsc::Sender<Arc<Block>>>,
    /// What each finalized block changed in the shop's records.
    pub changelog: Arc<crate::changelog::ChangeLog>,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

impl Observer {
    /// Register a subscriber following `kinds` (indices in [`EVENT_KINDS`]).
    pub fn want(&self, kinds: [bool; EVENT_KINDS.len()]) -> Wanting {
        for (count, wanted) in self.interest.0.iter().zip(kinds) {
            if wanted {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Wanting {
            interest: self.interest.clone(),
            kinds,
        }
    }

    /// Whether anyone follows events of `kind`.
    fn wanted(&self, kind: usize) -> bool {
        self.interest.0[kind].load(std::sync::atomic::Ordering::Relaxed) > 0
    }

    /// Send an event of `kind` built by `build`, if anyone follows that kind.
    fn emit(&self, kind: usize, build: impl FnOnce() -> Option<serde_json::Value>) {
        if self.wanted(kind)
            && let Some(event) = build()
        {
            let _ = self.events.send(Arc::new(Event {
                kind,
                json: event.to_string(),
            }));
        }
    }
}

impl ChainObserver for Observer {
    fn captured(&self, block: &Block, changes: Option<&consort_types::changes::Changes>) {
        let Some(changes) = changes else {
            return;
        };
        // The block's state is applied next: a change log that cannot keep its row would lose
        // it for good. Stopping the node instead keeps it; after a restart the block is
        // finalized, executed and captured again.
        if let Err(error) = self.changelog.record(block.number(), changes) {
            panic!(
                "cannot record the shop changes of block {}: {error}; the node stops so that \
                 none is lost (free disk space or fix {}, then start it again)",
                block.number(),
                crate::changelog::CHANGELOG_DIR
            );
        }
    }

    fn finalized(&self, block: &Arc<Block>) {
        use std::sync::atomic::Ordering::Relaxed;
        self.mempool.on_finalized(block);
        let hash = hex_serde::encode(&commonware_cryptography::Digestible::digest(block.as_ref()));
        {
            let mut tip = self.tip.lock().expect("tip lock");
            if block.number() <= tip.height && !tip.hash.is_empty() {
                return;
            }
            *tip = Tip {
                height: block.number(),
                hash: hash.clone(),
                timestamp_ms: block.header.timestamp_ms,
            };
        }
        // Full: the follower is behind and reads the block from marshal.
        let _ = self
            .indexer
            .lock()
            .expect("indexer lock")
            .try_send(block.clone());
        let latency = wall_ms().saturating_sub(block.header.timestamp_ms);
        self.counters
            .txs_finalized
            .fetch_add(block.txs.len() as u64, Relaxed);
        self.counters.blocks_finalized.fetch_add(1, Relaxed);
        self.counters.finality_ms_sum.fetch_add(latency, Relaxed);
        let bucket = FINALITY_BUCKETS_MS
            .iter()
            .position(|&bound| latency <= bound)
            .unwrap_or(FINALITY_BUCKETS_MS.len());
        self.counters.finality_buckets[bucket].fetch_add(1, Relaxed);
        // Events are JSON with a hash per transaction: each kind is built only if followed.
        let height = block.number();
        self.emit(kind::BLOCK, || {
            Some(serde_json::json!({
                "type": "block_finalized",
                "height": height,
                "hash": hash,
                "timestamp_ms": block.header.timestamp_ms,
                "txs": block.txs.iter().map(|t| hex_serde::encode(&t.hash())).collect::<Vec<_>>(),
                "failed": block
                    .txs
                    .iter()
                    .zip(block.outcomes.iter())
                    .filter_map(|(t, outcome)| {
                        outcome.failure().map(|code| {
                            serde_json::json!({"tx": hex_serde::encode(&t.hash()), "code": code})
                        })
                    })
                    .collect::<Vec<_>>(),
            }))
        });
        if !(kind::TX_FAILED..EVENT_KINDS.len()).any(|k| self.wanted(k)) {
            return;
        }
        for (index, (tx, outcome)) in (0u32..).zip(block.txs.iter().zip(block.outcomes.iter())) {
            if let Some(code) = outcome.failure() {
                // A failed transaction moved nothing: no alert, no gov or peg event.
                self.emit(kind::TX_FAILED, || {
                    Some(serde_json::json!({
                        "type": "tx_failed",
                        "height": height,
                        "tx": hex_serde::encode(&tx.hash()),
                        "sender": tx.tx.sender,
                        "call": tx.tx.call.kind(),
                        "code": code,
                    }))
                });
                continue;
            }
            if let Some(threshold) = self.alert_threshold {
                self.emit(kind::ALERT, || alert_event(tx, threshold, height));
            }
            self.emit(kind::GOV, || {
                is_governance(&tx.tx.call).then(|| {
                    serde_json::json!({
                        "type": "gov",
                        "height": height,
                        "tx": hex_serde::encode(&tx.hash()),
                        "sender": tx.tx.sender,
                        "call": tx.tx.call,
                    })
                })
            });
            self.emit(kind::COMMERCE, || commerce_event(tx, height, index));
            self.emit(kind::PEG, || {
                peg_event(tx).map(|detail| {
                    serde_json::json!({
                        "type": "peg",
                        "height": height,
                        "tx": hex_serde::encode(&tx.hash()),
                        "sender": tx.tx.sender,
                        "call": tx.tx.call.kind(),
                        "detail": detail,
                    })
                })
            });
        }
    }
}

/// Governance, supervision and validator calls, which the events stream reports as `gov`
/// events (a passed proposal's effect, e.g. a halt, shows in `GET /v1/gov` and the proposal).
fn is_governance(call: &consort_types::Call) -> bool {
    use consort_types::tx::Module;
    matches!(
        call.module(),
        Module::Governance | Module::Supervision | Module::Validators
    )
}

/// An alert for the regulator if `tx` moves at least `threshold` base units.
pub(crate) fn alert_event(
    tx: &consort_types::SignedTx,
    threshold: u64,
    height: u64,
) -> Option<serde_json::Value> {
    use consort_types::Call;
    let (amount, asset, to) = match &tx.tx.call {
        Call::Transfer { to, amount } => (*amount, None, Some(*to)),
        Call::TransferAsset { asset, to, amount } | Call::Issue { asset, to, amount } => {
            (*amount, Some(*asset), Some(*to))
        }
        Call::Redeem { asset, amount } => (*amount, Some(*asset), None),
        Call::PegOut { amount, .. } => (*amount, None, None),
        _ => return None,
    };
    (amount.units() >= threshold).then(|| {
        serde_json::json!({
            "type": "alert",
            "reason": "large_transfer",
            "threshold": threshold,
            "height": height,
            "tx": hex_serde::encode(&tx.hash()),
            "call": tx.tx.call.kind(),
            "sender": tx.tx.sender,
            "to": to,
            "asset": asset.map(|a| a.to_string()),
            "amount": amount,
        })
    })
}

/// What the events stream says about an applied shop call: its kind, the records it names
/// (`orders`, a `product`, a `payout`) and `created`, the id of any record it created (its place,
/// `HEIGHT-INDEX`). Content and sealed fields stay in the block.
pub(crate) fn commerce_event(
    tx: &consort_types::SignedTx,
    height: u64,
    index: u32,
) -> Option<serde_json::Value> {
    use consort_types::{Call, commerce::CommerceCall as C};
    let Call::Commerce(call) = &tx.tx.call else {
        return None;
    };
    let created = consort_types::commerce::RecordId { height, index };
    let (orders, product): (Vec<consort_types::commerce::RecordId>, _) = match call {
        C::PublishProduct { .. } => (Vec::new(), Some(created)),
        C::UpdateProduct { product, .. }
        | C::SetListed { product, .. }
        | C::Suspend { product, .. }
        | C::SetStock { product, .. } => (Vec::new(), Some(*product)),
        C::PlaceOrder { .. } => (vec![created], None),
        C::RequestPayout { .. } | C::ConfirmPayout { .. } | C::CancelPayout { .. } => {
            (Vec::new(), None)
        }
        C::AcceptOrders { orders } => (orders.0.clone(), None),
        C::ShipOrders { shipments } => {
            let mut orders: Vec<_> = shipments.0.iter().map(|s| s.order).collect();
            orders.sort_unstable();
            orders.dedup();
            (orders, None)
        }
        C::CarrierEvents { events } => {
            let mut orders: Vec<_> = events.0.iter().map(|e| e.order).collect();
            orders.sort_unstable();
            orders.dedup();
            (orders, None)
        }
        C::PayOrder { order }
        | C::ModifyOrder { order, .. }
        | C::CancelOrder { order, .. }
        | C::Ship { order, .. }
        | C::Fulfil { order, .. }
        | C::ConfirmReceipt { order }
        | C::Refund { order, .. }
        | C::ConfirmPayment { order, .. }
        | C::CollectCash { order, .. }
        | C::Review { order, .. }
        | C::ReviseReview { order, .. }
        | C::ReplyReview { order, .. }
        | C::RequestReturn { order, .. }
        | C::AnswerReturn { order, .. }
        | C::ReturnShipped { order, .. }
        | C::ReceiveReturn { order }
        | C::OpenDispute { order, .. }
        | C::RuleDispute { order, .. }
        | C::WithdrawReturn { order } => (vec![*order], None),
    };
    let payout = match call {
        C::RequestPayout { .. } => Some(created),
        C::ConfirmPayout { payout } | C::CancelPayout { payout } => Some(*payout),
        _ => None,
    };
    Some(serde_json::json!({
        "type": "commerce",
        "height": height,
        "tx": hex_serde::encode(&tx.hash()),
        "sender": tx.tx.sender,
        "call": call.kind(),
        "created": created,
        "orders": orders,
        "product": product,
        "payout": payout,
    }))
}

/// What the events stream says about a finalized peg transaction (none for other calls).
fn peg_event(tx: &consort_types::SignedTx) -> Option<serde_json::Value> {
    use consort_types::{Call, tx::Module};
    if tx.tx.call.module() != Module::Peg {
        return None;
    }
    Some(match &tx.tx.call {
        Call::RelayHeaders { headers } => serde_json::json!({"headers": headers.0.len()}),
        Call::ClaimDeposit {
            transaction,
            outputs,
            ..
        } => {
            let txid =
                bitcoin::consensus::deserialize::<bitcoin::Transaction>(transaction.as_slice())
                    .map(|t| t.compute_txid().to_string())
                    .unwrap_or_default();
            let deposits: Vec<serde_json::Value> = outputs
                .0
                .iter()
                .map(|o| {
                    serde_json::json!({
                        "account": o.account,
                        "deposit": format!("{txid}:{}", o.vout),
                        "status_url": format!("/v1/peg/claims/{txid}/{}", o.vout),
                    })
                })
                .collect();
            serde_json::json!({"txid": txid, "deposits": deposits})
        }
        Call::PegOut { amount, script } => serde_json::json!({
            "amount": amount,
            "script_pubkey": hex::encode(script.as_slice()),
        }),
        Call::SignBatch { batch, .. } => serde_json::json!({
            "batch": batch,
            "status_url": format!("/v1/peg/batches/{batch}"),
        }),
        Call::ConfirmBatch { batch, .. } => serde_json::json!({
            "batch": batch,
            "status_url": format!("/v1/peg/batches/{batch}"),
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::commerce_event;
    use commonware_cryptography::{Signer as _, ed25519};
    use consort_types::{
        AccountId, Call, Tx,
        codec_util::List,
        commerce::{CommerceCall, RecordId},
    };

    fn signed(call: CommerceCall) -> consort_types::SignedTx {
        let key = ed25519::PrivateKey::from_seed(1);
        Tx {
            chain_id: 1,
            sender: AccountId::new(key.public_key()),
            nonce: 0,
            call: Call::Commerce(call),
        }
        .sign(&key)
    }

    #[test]
    fn a_shop_event_names_the_record_a_call_creates_and_the_orders_it_touches() {
        let placed = commerce_event(
            &signed(CommerceCall::PlaceOrder {
                lines: List(Vec::new()),
                method: consort_types::commerce::PaymentMethod::Wallet,
                pay: true,
                address: consort_types::sealed::Sealed::default(),
            }),
            5,
            3,
        )
        .expect("a shop call");
        assert_eq!(placed["call"], "place_order");
        assert_eq!(placed["created"], "5-3");
        assert_eq!(placed["orders"], serde_json::json!(["5-3"]));
        let order = RecordId {
            height: 5,
            index: 3,
        };
        let accepted = commerce_event(
            &signed(CommerceCall::AcceptOrders {
                orders: List(vec![order, order]),
            }),
            9,
            0,
        )
        .expect("a shop call");
        assert_eq!(accepted["orders"], serde_json::json!(["5-3", "5-3"]));
        assert_eq!(accepted["product"], serde_json::Value::Null);
    }
}
