//! Reads of the registry and of committees.

use consort_execution::{BlockError, Runtime, Store};
use consort_types::{AccountId, Genesis, state_key::validators as key, validators::ValidatorSet};

/// The live registry (the genesis set until governance first changes it).
pub async fn registry<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
) -> Result<ValidatorSet, BlockError> {
    Ok(store
        .get::<ValidatorSet>(&key::registry())
        .await?
        .unwrap_or_else(|| genesis.validator_set()))
}

/// The committee of `epoch`, if its boundary block has been executed.
pub async fn committee<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    epoch: u64,
) -> Result<Option<ValidatorSet>, BlockError> {
    if epoch == 0 {
        return Ok(Some(genesis.validator_set()));
    }
    Ok(store.get(&key::committee(epoch)).await?)
}

/// Whether `key` is in the live registry.
pub async fn is_validator<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    key: &AccountId,
) -> Result<bool, BlockError> {
    Ok(registry(store, genesis).await?.contains(key))
}
