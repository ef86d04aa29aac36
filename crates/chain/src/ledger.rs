//! Balances of every asset but the native coin: one state key per (asset, account).

use crate::{
    error::{BlockError, Fail},
    state::Runtime,
    store::Store,
};
use consort_types::{AccountId, Asset, TxError, peg::PegError, state_key};

/// The balance of a non-native asset.
pub async fn balance<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &Asset,
    account: &AccountId,
) -> Result<u64, BlockError> {
    Ok(store
        .get::<u64>(&state_key::balance(asset, account))
        .await?
        .unwrap_or(0))
}

/// Add to a non-native balance.
pub async fn credit<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &Asset,
    account: &AccountId,
    amount: u64,
) -> Result<(), Fail> {
    let now = balance(store, asset, account).await?;
    let next = now
        .checked_add(amount)
        .ok_or(TxError::InvalidAmount("balance would overflow"))?;
    store
        .put(&state_key::balance(asset, account), &next)
        .await?;
    Ok(())
}

/// Take from a non-native balance.
pub async fn debit<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &Asset,
    account: &AccountId,
    amount: u64,
) -> Result<(), Fail> {
    let now = balance(store, asset, account).await?;
    let next = now
        .checked_sub(amount)
        .ok_or(PegError::InsufficientPegged {
            balance: now,
            needed: amount,
        })?;
    if next == 0 {
        store.delete(&state_key::balance(asset, account)).await?;
    } else {
        store
            .put(&state_key::balance(asset, account), &next)
            .await?;
    }
    Ok(())
}

/// Move `amount` of a non-native `asset` from `from` to `to`. On error nothing changes.
pub async fn transfer<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &Asset,
    from: &AccountId,
    to: &AccountId,
    amount: u64,
) -> Result<(), Fail> {
    let held = balance(store, asset, from).await?;
    if held < amount {
        return Err(Fail::Tx(TxError::InsufficientBalance {
            balance: consort_types::Amount::new(held),
            needed: consort_types::Amount::new(amount),
        }));
    }
    // A transfer to oneself only checks the balance.
    if from != to {
        debit(store, asset, from, amount).await?;
        credit(store, asset, to, amount).await?;
    }
    Ok(())
}
