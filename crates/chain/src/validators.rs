//! The validator registry in state, and the committee each epoch runs with.
//!
//! Governance edits the registry at once; the last block of every epoch copies it as the next
//! epoch's committee. Committees are written once and never change, so a node that replays the
//! chain, restarts, or catches up reads the same committee for an epoch as every other node.

use crate::{execute::BlockError, peg::Fail, state::Runtime, store::Store};
use commonware_consensus::types::{Epoch, Epocher, FixedEpocher, Height};
use commonware_utils::NZU64;
use consort_types::{
    AccountId, Genesis,
    gov::GovError,
    limits::VALIDATORS_MAX,
    state_key::validators as key,
    validators::{ValidatorEntry, ValidatorSet},
};
use std::num::NonZeroU64;

/// The epoch schedule of `genesis`.
pub fn epocher(genesis: &Genesis) -> FixedEpocher {
    FixedEpocher::new(NonZeroU64::new(genesis.epoch_blocks()).unwrap_or(NZU64!(2)))
}

/// The epoch block `height` belongs to.
pub fn epoch_of(genesis: &Genesis, height: u64) -> Epoch {
    epocher(genesis)
        .containing(Height::new(height))
        .map_or(Epoch::zero(), |info| info.epoch())
}

/// Whether `height` is the last block of its epoch.
pub fn is_boundary(genesis: &Genesis, height: u64) -> bool {
    let epocher = epocher(genesis);
    epocher
        .last(epoch_of(genesis, height))
        .is_some_and(|last| last.get() == height)
}

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
    store.get(&key::committee(epoch)).await
}

/// Whether `key` is in the live registry.
pub async fn is_validator<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    key: &AccountId,
) -> Result<bool, BlockError> {
    Ok(registry(store, genesis).await?.contains(key))
}

/// Check that `entry` may join: not a member yet, and room left.
pub async fn check_add<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    entry: &ValidatorEntry,
) -> Result<(), Fail> {
    let set = registry(store, genesis).await?;
    if set.contains(&entry.key) {
        return Err(GovError::ValidatorExists(entry.key.to_string()).into());
    }
    if set.members.0.len() >= VALIDATORS_MAX {
        return Err(GovError::AtCapacity("validators").into());
    }
    Ok(())
}

/// Check that `key` may leave: a member, and not the last.
pub async fn check_remove<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    key: &AccountId,
) -> Result<(), Fail> {
    let set = registry(store, genesis).await?;
    if !set.contains(key) {
        return Err(GovError::UnknownValidator(key.to_string()).into());
    }
    if set.members.0.len() == 1 {
        return Err(GovError::LastValidator.into());
    }
    Ok(())
}

/// Add `entry` to the registry (checked by [`check_add`]).
pub async fn add<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    entry: ValidatorEntry,
) -> Result<(), Fail> {
    check_add(store, genesis, &entry).await?;
    let mut set = registry(store, genesis).await?;
    set.members.0.push(entry);
    store.put(&key::registry(), &set).await?;
    Ok(())
}

/// Remove `key` from the registry (checked by [`check_remove`]).
pub async fn remove<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    key: &AccountId,
) -> Result<(), Fail> {
    check_remove(store, genesis, key).await?;
    let mut set = registry(store, genesis).await?;
    set.members.0.retain(|v| v.key != *key);
    store.put(&key::registry(), &set).await?;
    Ok(())
}

/// End of block: the last block of epoch `e` fixes the committee of epoch `e + 1` (returned,
/// for the block header).
pub async fn end_block<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    height: u64,
) -> Result<Option<ValidatorSet>, BlockError> {
    if !is_boundary(genesis, height) {
        return Ok(None);
    }
    let next = epoch_of(genesis, height).get() + 1;
    let set = registry(store, genesis).await?;
    store.put(&key::committee(next), &set).await?;
    Ok(Some(set))
}
