//! A node's one admission pipeline, used by the API and by gossip alike: stateless checks
//! (size, chain id, signature), then the stateful ones against the finalized state (the
//! sender's eligibility, cached until the next finalized block; the nonce window, per-sender
//! limits and pending spends in the pool), then the pool.

use crate::{
    admission::{check_size, sender_may},
    mempool::Mempool,
    rules::Rules,
};
use commonware_glue::stateful::db::DatabaseSet as _;
use consort_execution::{BlockError, Fail, Runtime, Store, accounts};
use consort_governance::Gov;
use consort_peg::Peg;
use consort_state::Databases;
use consort_types::{
    Account, Call, Genesis, SignedTx, TxError, TxHash, state_key, state_key::TxLocation,
};
use std::sync::Arc;

/// Reads retried when a block is applied while they run.
pub const STALE_READ_RETRIES_MAX: u32 = 16;

/// Admission of transactions into a node's pool.
pub struct Admission<E: Runtime> {
    genesis: Arc<Genesis>,
    peg: Option<Peg>,
    gov: Option<Gov>,
    mempool: Mempool,
    databases: Databases<E>,
}

impl<E: Runtime> Admission<E> {
    /// The pipeline of `genesis`'s chain into `mempool`, reading the finalized `databases`.
    ///
    /// # Errors
    /// If genesis's peg section is unusable.
    pub fn new(
        genesis: Arc<Genesis>,
        mempool: Mempool,
        databases: Databases<E>,
    ) -> Result<Self, String> {
        Ok(Self {
            peg: Peg::from_genesis(&genesis)?,
            gov: Gov::from_genesis(&genesis),
            genesis,
            mempool,
            databases,
        })
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            genesis: &self.genesis,
            peg: self.peg.as_ref(),
            gov: self.gov.as_ref(),
        }
    }

    /// Admit a transaction whose signature is not checked yet. `gossip` sends it to peers.
    ///
    /// # Errors
    /// Why it is refused.
    pub async fn admit(&self, tx: SignedTx, gossip: bool) -> Result<TxHash, TxError> {
        tx.check_stateless(self.genesis.chain_id)?;
        self.admit_verified(tx, gossip).await
    }

    /// Admit a transaction whose signature was verified (in a batch, by the caller).
    ///
    /// # Errors
    /// Why it is refused.
    pub async fn admit_verified(&self, tx: SignedTx, gossip: bool) -> Result<TxHash, TxError> {
        tx.check_without_signature(self.genesis.chain_id)?;
        check_size(self.rules(), &tx)?;
        let account = self.stateful(&tx).await?;
        let hash = tx.hash();
        match self.mempool.admit(tx, account, gossip) {
            // A used nonce: say so plainly if it is this very transaction, already final (the
            // index is read only on this error path).
            Err(TxError::NonceReused { .. })
                if consort_state::read_record::<_, TxLocation>(
                    &self.databases,
                    &state_key::tx(&hash),
                )
                .await
                .ok()
                .flatten()
                .is_some() =>
            {
                Err(TxError::Duplicate)
            }
            result => result,
        }
    }

    /// The sender's eligibility and finalized account, read from one snapshot (retried if a
    /// block lands while it is read).
    async fn stateful(&self, tx: &SignedTx) -> Result<Option<Account>, TxError> {
        let sender = tx.tx.sender;
        let call = &tx.tx.call;
        let kind = call.kind();
        let cacheable = !matches!(call, Call::Rotate { .. });
        let generation = self.mempool.eligibility_generation();
        let cached = if cacheable {
            self.mempool.cached_eligibility(&sender, kind)
        } else {
            None
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            let batch = self.databases.new_batches().await;
            let eligible = match &cached {
                Some(result) => Ok(result.clone()),
                None => {
                    let mut store = Store::new(&batch);
                    match sender_may(&mut store, self.rules(), &sender, call).await {
                        Ok(()) => Ok(Ok(())),
                        Err(Fail::Tx(error)) => Ok(Err(error)),
                        Err(Fail::Db(error)) => Err(error),
                    }
                }
            };
            let read = match eligible {
                Ok(eligible) => accounts::get(&mut Store::new(&batch), &sender)
                    .await
                    .map(|account| (eligible, account))
                    .map_err(BlockError::from),
                Err(error) => Err(error),
            };
            match read {
                Ok((eligible, account)) => {
                    if cacheable && cached.is_none() {
                        self.mempool
                            .cache_eligibility(generation, sender, kind, eligible.clone());
                    }
                    eligible?;
                    return Ok(account);
                }
                Err(BlockError::StaleRead) if attempt < STALE_READ_RETRIES_MAX => {}
                Err(error) => {
                    tracing::warn!(%error, "admission cannot read the finalized state");
                    return Err(TxError::StateUnavailable);
                }
            }
        }
    }
}
