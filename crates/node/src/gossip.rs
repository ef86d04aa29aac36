//! Transaction gossip: transactions admitted through this node's API are sent to every peer in
//! batches; transactions from peers are checked (signatures in one batch) and admitted without
//! being forwarded again (validators form a full mesh).

use bytes::Bytes;
use commonware_codec::{Copying, Decode, Encode, Error as CodecError, RangeCfg};
use commonware_cryptography::ed25519;
use commonware_p2p::{Receiver, Recipients, Sender};
use commonware_runtime::{Clock, Spawner};
use consort_chain::{Mempool, pipeline::Admission};
use consort_state as state;
use consort_types::SignedTx;
use std::time::Duration;
use tracing::{debug, warn};

/// Most transactions in one gossip message.
pub const GOSSIP_BATCH_MAX: usize = 4096;

/// How often the outbox is flushed.
const FLUSH_INTERVAL: Duration = Duration::from_millis(5);

/// Decode a peer's gossip message: at most [`GOSSIP_BATCH_MAX`] transactions in at most
/// [`GOSSIP_SIZE_MAX`](consort_types::limits::GOSSIP_SIZE_MAX) bytes, nothing after them.
/// Signatures and chain ids are not checked here.
///
/// # Errors
/// Why the message is malformed.
pub fn decode_gossip(bytes: &[u8]) -> Result<Vec<SignedTx>, CodecError> {
    if bytes.len() > consort_types::limits::GOSSIP_SIZE_MAX {
        return Err(CodecError::Invalid(
            "gossip",
            "message is larger than GOSSIP_SIZE_MAX",
        ));
    }
    let cfg = (RangeCfg::new(0..=GOSSIP_BATCH_MAX), ());
    Vec::<SignedTx>::decode_cfg(Copying(bytes), &cfg)
}

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
    while let Ok((peer, message)) = receiver.recv().await {
        let bytes: Bytes = message.into();
        let Ok(txs) = decode_gossip(&bytes) else {
            warn!(?peer, "peer sent malformed transactions");
            continue;
        };
        let fresh: Vec<SignedTx> = mempool
            .unknown(txs)
            .into_iter()
            .filter(|tx| tx.check_without_signature(chain_id).is_ok())
            .collect();
        let refs: Vec<&SignedTx> = fresh.iter().collect();
        let verified = if admission.verify_signatures(&refs, &mut context) {
            fresh
        } else {
            // Fall back to one-by-one so one bad transaction does not sink the rest.
            fresh
                .into_iter()
                .filter(SignedTx::verify_signature)
                .collect()
        };
        // The same pipeline as the API's (signatures checked above); not forwarded again.
        for error in admission
            .admit_verified_many(verified, false)
            .await
            .into_iter()
            .filter_map(Result::err)
        {
            debug!(%error, "gossiped transaction not admitted");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_cryptography::{Signer as _, ed25519};
    use consort_types::{AccountId, Amount, Call, Tx};
    use proptest::prelude::*;

    fn transfer(seed: u64, nonce: u64, amount: u64) -> SignedTx {
        let key = ed25519::PrivateKey::from_seed(seed);
        Tx {
            chain_id: 1,
            sender: AccountId::new(key.public_key()),
            nonce,
            call: Call::Transfer {
                to: AccountId::new(ed25519::PrivateKey::from_seed(seed + 1).public_key()),
                amount: Amount::new(amount),
            },
        }
        .sign(&key)
    }

    fn batch() -> impl Strategy<Value = Vec<SignedTx>> {
        prop::collection::vec(
            (0..4u64, any::<u64>(), any::<u64>()).prop_map(|(s, n, a)| transfer(s, n, a)),
            0..6,
        )
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn random_gossip_bytes_are_refused_or_decode_canonically(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            if let Ok(txs) = decode_gossip(&bytes) {
                prop_assert_eq!(txs.encode().to_vec(), bytes);
            }
        }

        #[test]
        fn mutated_gossip_is_refused_or_decodes_canonically(
            txs in batch(),
            flips in prop::collection::vec((any::<prop::sample::Index>(), 0..8u8), 1..4),
            cut in any::<prop::sample::Index>(),
            tail in prop::collection::vec(any::<u8>(), 0..4),
        ) {
            let mut bytes = txs.encode().to_vec();
            for (index, bit) in flips {
                let at = index.index(bytes.len());
                bytes[at] ^= 1 << bit;
            }
            bytes.truncate(cut.index(bytes.len() + 1).max(bytes.len().saturating_sub(8)));
            bytes.extend_from_slice(&tail);
            if let Ok(decoded) = decode_gossip(&bytes) {
                prop_assert_eq!(decoded.encode().to_vec(), bytes);
            }
        }

        #[test]
        fn a_gossip_batch_round_trips(txs in batch()) {
            prop_assert_eq!(decode_gossip(&txs.encode()).ok(), Some(txs));
        }
    }

    #[test]
    fn gossip_with_trailing_bytes_or_too_many_transactions_is_refused() {
        let mut bytes = vec![transfer(1, 0, 5)].encode().to_vec();
        bytes.push(0);
        assert!(decode_gossip(&bytes).is_err());
        // A length prefix one past the bound is refused before any transaction is read.
        let count = u32::try_from(GOSSIP_BATCH_MAX + 1).expect("small");
        let prefix = commonware_codec::varint::UInt(count).encode();
        assert!(decode_gossip(&prefix).is_err());
        assert!(decode_gossip(&vec![0; consort_types::limits::GOSSIP_SIZE_MAX + 1]).is_err());
    }
}
