//! Reads other modules and the node make of governance state.

use crate::Gov;
use consort_execution::{BlockError, Runtime, Store};
use consort_types::{AccountId, state_key::gov as key};

impl Gov {
    /// The key `old` was rotated to, if it was.
    pub async fn rotated_to<E: Runtime>(
        store: &mut Store<'_, E>,
        old: &AccountId,
    ) -> Result<Option<AccountId>, BlockError> {
        Ok(store.get(&key::rotated_to(old)).await?)
    }

    /// The height at which governance halted the chain, while the brake holds.
    pub async fn halted<E: Runtime>(store: &mut Store<'_, E>) -> Result<Option<u64>, BlockError> {
        Ok(store.get::<u64>(&key::halted()).await?)
    }

    /// The role bits of `account` if its registration is active and its organisation a member.
    pub async fn active_roles<E: Runtime>(
        store: &mut Store<'_, E>,
        account: &AccountId,
    ) -> Result<Option<u16>, BlockError> {
        Ok(Self::active(store, account).await?.map(|r| r.roles))
    }
}
