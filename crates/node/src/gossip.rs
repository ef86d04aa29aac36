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
use futures::FutureExt as _;
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

/// Most gossip messages admitted together: whatever peers sent while the last round ran, up
/// to this many, is checked as one signature batch and admitted from one state snapshot.
pub const GOSSIP_MESSAGES_PER_ROUND_MAX: usize = 32;

/// Admit what peers send, forever. Each round takes every message already waiting (up to
/// [`GOSSIP_MESSAGES_PER_ROUND_MAX`]): a batch of signatures costs less per signature the
/// larger it is, and admission reads the state once for all of them.
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
    while let Ok(first) = receiver.recv().await {
        let mut messages = vec![first];
        while messages.len() < GOSSIP_MESSAGES_PER_ROUND_MAX {
            // Only what is already there: a message not yet arrived waits for the next round.
            match receiver.recv().now_or_never() {
                Some(Ok(message)) => messages.push(message),
                _ => break,
            }
        }
        // Each message's new transactions, apart: a batch that fails is checked again message
        // by message, so one peer's forgery costs the others' transactions no single checks.
        let mut groups: Vec<Vec<SignedTx>> = Vec::with_capacity(messages.len());
        for (peer, message) in messages {
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
            if !fresh.is_empty() {
                groups.push(fresh);
            }
        }
        let verified = verify_groups(&admission, groups, &mut context);
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

/// The transactions of `groups` whose signatures verify, in order: all in one batch; if that
/// fails, each group in a batch of its own, and only a failing group one by one (so one bad
/// transaction does not sink the rest).
fn verify_groups<E: state::Runtime>(
    admission: &Admission<E>,
    groups: Vec<Vec<SignedTx>>,
    rng: &mut E,
) -> Vec<SignedTx> {
    let all: Vec<&SignedTx> = groups.iter().flatten().collect();
    if admission.verify_signatures(&all, rng) {
        return groups.into_iter().flatten().collect();
    }
    let several = groups.len() > 1;
    let mut verified = Vec::with_capacity(all.len());
    for group in groups {
        let refs: Vec<&SignedTx> = group.iter().collect();
        // A lone group's batch is the one that just failed.
        if several && admission.verify_signatures(&refs, rng) {
            verified.extend(group);
        } else {
            verified.extend(group.into_iter().filter(SignedTx::verify_signature));
        }
    }
    verified
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

    /// `tx` with another transaction's signature: a forgery.
    fn forged(tx: SignedTx) -> SignedTx {
        SignedTx::new(tx.tx, transfer(99, 0, 1).signature)
    }

    #[test]
    fn a_forgery_in_one_of_several_messages_drops_only_itself() {
        use commonware_runtime::{Runner as _, Supervisor as _, deterministic};
        deterministic::Runner::default().start(|mut context| async move {
            let page_cache = commonware_runtime::buffer::paged::CacheRef::new(
                commonware_utils::NZU16!(4096),
                commonware_utils::NZUsize!(64),
            );
            let databases =
                <state::Databases<_> as commonware_glue::stateful::db::DatabaseSet<_>>::init(
                    context.child("db"),
                    state::db_config("gossip-verify", page_cache),
                    None,
                )
                .await;
            let genesis = consort_types::Genesis {
                chain_id: 1,
                genesis_time_ms: 0,
                validators: Vec::new(),
                accounts: Vec::new(),
                peg: None,
                governance: None,
                epoch_blocks: None,
                account_limits: None,
                empty_block_interval_ms: None,
                commerce: None,
            };
            let admission = Admission::new(std::sync::Arc::new(genesis), Mempool::new(), databases)
                .expect("admission");
            let hashes = |txs: &[SignedTx]| txs.iter().map(SignedTx::hash).collect::<Vec<_>>();
            let one = vec![transfer(1, 0, 5), transfer(2, 0, 5)];
            let two = vec![transfer(3, 0, 5), transfer(4, 0, 5), transfer(5, 0, 5)];
            let three = vec![transfer(6, 0, 5)];
            // Honest messages pass whole, in order.
            let groups = vec![one.clone(), two.clone(), three.clone()];
            let all: Vec<SignedTx> = groups.concat();
            assert_eq!(
                hashes(&verify_groups(&admission, groups, &mut context)),
                hashes(&all)
            );
            // A forgery in the second message: only it is dropped.
            let mut bad = two.clone();
            bad[1] = forged(bad[1].clone());
            let kept = verify_groups(
                &admission,
                vec![one.clone(), bad.clone(), three.clone()],
                &mut context,
            );
            let expected: Vec<SignedTx> = one
                .iter()
                .chain([&two[0], &two[2]])
                .chain(&three)
                .cloned()
                .collect();
            assert_eq!(hashes(&kept), hashes(&expected));
            // A lone message with a forgery keeps its honest transactions too.
            let kept = verify_groups(&admission, vec![bad], &mut context);
            assert_eq!(hashes(&kept), hashes(&[two[0].clone(), two[2].clone()]));
            // Nothing to check: nothing kept.
            assert!(verify_groups(&admission, Vec::new(), &mut context).is_empty());
        });
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
