//! What the execution tests share: a state database on any runtime, and one block executed
//! (as a proposer builds it) and applied.

use commonware_glue::stateful::db::DatabaseSet as _;
use consort_chain::{
    rules::{BlockInfo, Rules},
    runtime::{Mode, execute_block},
};
use consort_state::{Databases, Runtime, db_config};
use consort_types::{SignedTx, TxError, TxHash};

/// A fresh state database named `name`.
pub async fn open<E: Runtime>(context: E, name: &str) -> Databases<E> {
    let page_cache = commonware_runtime::buffer::paged::CacheRef::new(
        commonware_utils::NZU16!(4096),
        commonware_utils::NZUsize!(1024),
    );
    <Databases<_> as commonware_glue::stateful::db::DatabaseSet<_>>::init(
        context,
        db_config(name, page_cache),
        None,
    )
    .await
}

/// What a block did.
pub struct Ran {
    /// Transactions included (applied or failed).
    pub included: Vec<SignedTx>,
    /// Transactions refused a place, with why.
    pub rejected: Vec<(TxHash, TxError)>,
    /// Included transactions that failed, with why.
    pub failures: Vec<(TxHash, TxError)>,
}

impl Ran {
    /// The errors of refused transactions, then of failed ones.
    pub fn errors(self) -> Vec<TxError> {
        self.rejected
            .into_iter()
            .chain(self.failures)
            .map(|(_, e)| e)
            .collect()
    }
}

/// Build block `height` (time `height` seconds) of `txs` under `rules` on `databases`' state
/// and apply it.
pub async fn block<E: Runtime>(
    databases: &Databases<E>,
    height: u64,
    txs: Vec<SignedTx>,
    rules: Rules<'_>,
) -> Ran {
    let batch = databases.new_batches().await;
    let executed = execute_block(
        batch,
        BlockInfo {
            height,
            // Wall-clock time, as a live chain's blocks carry: relayed main-chain headers may
            // be at most two hours ahead of it.
            timestamp_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
                .max(height * 1_000),
        },
        txs,
        rules,
        Mode::Propose,
    )
    .await
    .expect("block executes (the runtime's invariant checks included)");
    databases.apply(executed.merkleized).await;
    Ran {
        included: executed.included.to_vec(),
        rejected: executed.rejected,
        failures: executed.failures,
    }
}
