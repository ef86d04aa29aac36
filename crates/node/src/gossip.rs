//! Transaction gossip: transactions admitted through this node's API are sent to every peer in
//! batches; transactions from peers are checked (signatures in one batch) and admitted without
//! being forwarded again (validators form a full mesh).

use bytes::Bytes;
use commonware_codec::{Encode, RangeCfg, Read};
use commonware_cryptography::ed25519;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Spawner};
use consort_chain::{Mempool, pipeline::Admission, state};
use consort_types::SignedTx;
use std::time::Duration;
use tracing::{debug, warn};

/// Most transactions in one gossip message.
pub const GOSSIP_BATCH_MAX: usize = 4096;

/// How often the outbox is flushed.
const FLUSH_INTERVAL: Duration = Duration::from_millis(5);

/// Send what the mempool queued for peers, forever.
pub async fn send_loop<E: Clock, S: Sender<PublicKey = ed25519::PublicKey>>(
    context: E,
    mempool: Mempool,
    mut sender: S,
) {
    loop {
        let batch = mempool.drain_outbox(
            GOSSIP_BATCH_MAX,
            consort_types::limits::GOSSIP_SIZE_MAX - 1024,
        );
        if batch.is_empty() {
            context.sleep(FLUSH_INTERVAL).await;
            continue;
        }
        let message = batch.encode();
        let _ = sender.send(Recipients::All, message, false);
    }
}

/// Admit what peers send, forever.
pub async fn receive_loop<E, R>(
    mut context: E,
    mempool: Mempool,
    admission: std::sync::Arc<Admission<E>>,
    chain_id: u64,
    mut receiver: R,
) where
    E: state::Runtime + Spawner,
    R: Receiver<PublicKey = ed25519::PublicKey>,
{
    let cfg = (RangeCfg::new(0..=GOSSIP_BATCH_MAX), ());
    while let Ok((peer, message)) = receiver.recv().await {
        let bytes: Bytes = message.into();
        let Ok(txs) = Vec::<SignedTx>::read_cfg(&mut bytes.clone(), &cfg) else {
            warn!(?peer, "peer sent malformed transactions");
            continue;
        };
        let fresh: Vec<SignedTx> = txs
            .into_iter()
            .filter(|tx| {
                !mempool.contains(&tx.hash()) && tx.check_without_signature(chain_id).is_ok()
            })
            .collect();
        let refs: Vec<&SignedTx> = fresh.iter().collect();
        if !consort_types::tx::verify_batch(&refs, &mut context) {
            // Fall back to one-by-one so one bad transaction does not sink the rest.
            for tx in fresh.iter().filter(|t| t.verify_signature()) {
                admit(&admission, tx.clone()).await;
            }
            continue;
        }
        for tx in fresh {
            admit(&admission, tx).await;
        }
    }
}

/// Gossiped transactions go through the same pipeline as the API's (signature checked in
/// the batch above); they are not forwarded again.
async fn admit<E: state::Runtime>(admission: &Admission<E>, tx: SignedTx) {
    if let Err(error) = admission.admit_verified(tx, false).await {
        debug!(%error, "gossiped transaction not admitted");
    }
}
