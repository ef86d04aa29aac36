//! The peg's records at genesis (block 1).

use crate::Peg;
use consort_execution::{BlockError, Runtime, Store};
use consort_types::{
    peg::{MainTip, PegTotals},
    state_key::peg as key,
};

impl Peg {
    /// Write the light client's starting header and empty totals (block 1).
    pub async fn init<E: Runtime>(&self, store: &mut Store<'_, E>) -> Result<(), BlockError> {
        let entry = self.checkpoint;
        store.put(&key::header(&entry.hash), &entry).await?;
        store.put(&key::height(entry.height), &entry.hash).await?;
        if let Some(start) = self.config.checkpoint.as_ref().and_then(|c| c.period_start) {
            store
                .put(&key::period_start(start.height), &start.time)
                .await?;
        }
        store
            .put(
                &key::tip(),
                &MainTip {
                    hash: entry.hash,
                    height: entry.height,
                },
            )
            .await?;
        store.put(&key::totals(), &PegTotals::default()).await?;
        self.init_federation(store).await
    }
}
