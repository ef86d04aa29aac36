//! Changes to the registry (governance enacts them; `leave_validator` removes the sender).

use crate::query::registry;
use consort_execution::{Fail, Runtime, Store};
use consort_types::{
    AccountId, Genesis,
    codec_util::Blob,
    gov::GovError,
    limits::VALIDATORS_MAX,
    peg::FEDERATION_KEY_SIZE,
    state_key::{peg as peg_key, validators as key},
    validators::ValidatorEntry,
};

/// Check that `entry` may join: not a member yet, and room left in the registry for it and
/// the `pending` additions already proposed (so no enactment can exceed [`VALIDATORS_MAX`]).
pub async fn check_add<E: Runtime>(
    store: &mut Store<'_, E>,
    genesis: &Genesis,
    entry: &ValidatorEntry,
    pending: usize,
) -> Result<(), Fail> {
    let set = registry(store, genesis).await?;
    if set.contains(&entry.key) {
        return Err(GovError::ValidatorExists(entry.key.to_string()).into());
    }
    // With a peg, every validator signs for the federation its committee forms.
    if genesis.peg.is_some()
        && store
            .get::<Blob<FEDERATION_KEY_SIZE>>(&peg_key::federation_key(&entry.key))
            .await?
            .is_none()
    {
        return Err(GovError::NoFederationKey(entry.key.to_string()).into());
    }
    if set.members.0.len().saturating_add(pending) >= VALIDATORS_MAX {
        return Err(GovError::AtCapacity(
            "validators (VALIDATORS_MAX, counting open add_validator proposals); remove one \
             or wait for the open additions to be decided",
        )
        .into());
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
    check_add(store, genesis, &entry, 0).await?;
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
