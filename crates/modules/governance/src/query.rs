//! Reads other modules and the node make of governance state.

use crate::Gov;
use consort_execution::{BlockError, Runtime, StateError, Store};
use consort_types::{
    AccountId, Asset,
    gov::{EMoney, FreezeTarget, Org, OrgId, Registration},
    state_key::gov as key,
};

impl Gov {
    /// The key `old` was rotated to, if it was.
    pub async fn rotated_to<E: Runtime>(
        store: &mut Store<'_, E>,
        old: &AccountId,
    ) -> Result<Option<AccountId>, BlockError> {
        Ok(store.get(&key::rotated_to(old)).await?)
    }

    /// The key `account` holds now: the last key it was rotated to (an admin may rotate a
    /// lost key), or itself, following at most
    /// [`ROTATION_HOPS_MAX`](consort_types::gov::ROTATION_HOPS_MAX) rotations.
    ///
    /// # Errors
    /// A state failure.
    pub async fn current_key<E: Runtime>(
        store: &mut Store<'_, E>,
        account: &AccountId,
    ) -> Result<AccountId, StateError> {
        let mut key = *account;
        for _ in 0..consort_types::gov::ROTATION_HOPS_MAX {
            match store.get::<AccountId>(&key::rotated_to(&key)).await? {
                Some(next) => key = next,
                None => break,
            }
        }
        Ok(key)
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

    /// `account`'s registration if it is active and its organisation a member.
    pub async fn registration<E: Runtime>(
        store: &mut Store<'_, E>,
        account: &AccountId,
    ) -> Result<Option<Registration>, BlockError> {
        Self::active(store, account).await
    }

    /// Organisation `id` if it is a member.
    pub async fn member<E: Runtime>(
        store: &mut Store<'_, E>,
        id: &OrgId,
    ) -> Result<Option<Org>, BlockError> {
        Ok(store.get::<Org>(&key::org(id)).await?.filter(|o| o.active))
    }

    /// Whether the regulator froze `target` (one read while nothing is frozen at all).
    pub async fn is_frozen<E: Runtime>(
        store: &mut Store<'_, E>,
        target: FreezeTarget,
    ) -> Result<bool, BlockError> {
        Self::frozen(store, target).await
    }

    /// The e-money record of `asset`, if a bank issues it.
    pub async fn emoney<E: Runtime>(
        store: &mut Store<'_, E>,
        asset: &Asset,
    ) -> Result<Option<EMoney>, BlockError> {
        Ok(store.get::<EMoney>(&key::emoney(asset)).await?)
    }

    /// The pegged coin's code, if the chain has a peg.
    pub const fn pegged(&self) -> Option<Asset> {
        self.pegged
    }

    /// Count `amount` of `asset` as issued by `bank` without crediting a balance: the
    /// issuing bank paying a fiat amount it received into an order's escrow (commerce holds
    /// it). `false` (nothing changed) if `bank` does not issue `asset` or it would overflow.
    pub async fn issue_held<E: Runtime>(
        store: &mut Store<'_, E>,
        bank: &OrgId,
        asset: &Asset,
        amount: u64,
    ) -> Result<bool, BlockError> {
        let Some(mut money) = Self::emoney(store, asset).await? else {
            return Ok(false);
        };
        let Some(issued) = money.issued.checked_add(amount) else {
            return Ok(false);
        };
        if money.issuer != *bank {
            return Ok(false);
        }
        money.issued = issued;
        store.put(&key::emoney(asset), &money).await?;
        Ok(true)
    }

    /// Count `amount` of `asset` as redeemed, taken from what commerce holds (a confirmed
    /// payout), not from a balance. `false` (nothing changed) if `bank` does not issue it or
    /// more would be redeemed than was issued.
    pub async fn redeem_held<E: Runtime>(
        store: &mut Store<'_, E>,
        bank: &OrgId,
        asset: &Asset,
        amount: u64,
    ) -> Result<bool, BlockError> {
        let Some(mut money) = Self::emoney(store, asset).await? else {
            return Ok(false);
        };
        let redeemed = money.redeemed.saturating_add(amount);
        if money.issuer != *bank || redeemed > money.issued {
            return Ok(false);
        }
        money.redeemed = redeemed;
        store.put(&key::emoney(asset), &money).await?;
        Ok(true)
    }
}
