//! The block's record store: what a proposer's left-out candidate read must not change which
//! chunks the block writes, or proposer and verifiers would write different operations.

use crate::harness;
use commonware_glue::stateful::db::{DatabaseSet as _, Unmerkleized as _};
use commonware_runtime::{Runner as _, deterministic};
use consort_state::{Databases, Runtime, Store, record_keys};
use consort_types::Digest;

/// A record of two chunks.
type Record = [u8; 200];

/// Write `record` under `key` in a block of its own.
async fn put_block<E: Runtime>(databases: &Databases<E>, key: &Digest, record: &Record) {
    let batch = databases.new_batches().await;
    let mut store = Store::new(&batch);
    store.put(key, record).await.expect("put");
    store.commit();
    let writes = store.into_writes();
    let mut batch = batch;
    for (key, value) in writes {
        batch = batch.write(key, value);
    }
    databases
        .apply(batch.merkleize().await.expect("merkleize"))
        .await;
}

/// The chunks a block writes when it puts `record` back under `key`, after (if `candidate`)
/// a candidate read the record whole and was left out, its reads forgotten if `forget`.
async fn rewrites<E: Runtime>(
    databases: &Databases<E>,
    key: &Digest,
    record: &Record,
    candidate: bool,
    forget: bool,
) -> Vec<Digest> {
    let batch = databases.new_batches().await;
    let mut store = Store::new(&batch);
    if candidate {
        let mark = store.mark();
        let read: Option<Record> = store.get(key).await.expect("read");
        assert_eq!(read.as_ref(), Some(record));
        store.rollback();
        if forget {
            store.forget_since(mark);
        }
    }
    store.put(key, record).await.expect("put");
    store.commit();
    store
        .into_writes()
        .into_iter()
        .map(|(key, _)| key)
        .collect()
}

#[test]
fn a_left_out_candidates_reads_do_not_change_what_the_block_writes() {
    deterministic::Runner::default().start(|context| async move {
        let databases = harness::open(context, "store-forget").await;
        let key = consort_types::sha256(&[b"a record of two chunks"]);
        let record: Record = std::array::from_fn(|i| i as u8);
        put_block(&databases, &key, &record).await;
        let chunks = record_keys(&key, record.len());
        assert_eq!(chunks.len(), 2, "the record spans two chunks");

        // A verifier never ran the candidate: putting the record back reads its first
        // chunk (unchanged: skipped) and rewrites the second, which it never read.
        let verifier = rewrites(&databases, &key, &record, false, false).await;
        assert_eq!(verifier, vec![chunks[1]]);
        // The proposer forgot what its left-out candidate read: it writes the same.
        let proposer = rewrites(&databases, &key, &record, true, true).await;
        assert_eq!(proposer, verifier);
        // Had it kept them, it would skip the second chunk too, and the two would disagree.
        let unforgetting = rewrites(&databases, &key, &record, true, false).await;
        assert_eq!(unforgetting, Vec::<Digest>::new());
    });
}
