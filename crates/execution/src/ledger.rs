//! One ledger for every asset: the native coin (held in the [`Account`] record, next to the
//! nonce) and every other asset (pegged coins, banks' e-money: one state key per asset and
//! account). Transfers, issuance, redemption, peg-ins and key rotations all move value here, so
//! each runs one code path whatever the asset.
//!
//! Every function either succeeds or changes nothing it was given.

use crate::error::Fail;
use consort_state::{Runtime, StateError, Store};
use consort_types::{Account, AccountId, Amount, Asset, TxError, state_key};

/// What is held: the native coin or another asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Denom {
    /// The chain's native coin.
    Native,
    /// A pegged coin or a bank's e-money.
    Asset(Asset),
}

impl From<Asset> for Denom {
    fn from(asset: Asset) -> Self {
        Self::Asset(asset)
    }
}

impl From<&Asset> for Denom {
    fn from(asset: &Asset) -> Self {
        Self::Asset(*asset)
    }
}

/// `account`'s balance of `denom`.
///
/// # Errors
/// If the state cannot be read.
pub async fn balance<E: Runtime>(
    store: &mut Store<'_, E>,
    denom: impl Into<Denom>,
    account: &AccountId,
) -> Result<u64, StateError> {
    match denom.into() {
        Denom::Native => Ok(crate::accounts::get(store, account)
            .await?
            .map_or(0, |a| a.balance.units())),
        Denom::Asset(asset) => Ok(store
            .get::<u64>(&state_key::balance(&asset, account))
            .await?
            .unwrap_or(0)),
    }
}

impl Denom {
    /// The key [`Store::flow`] counts this denomination under: the asset's code, or zeros
    /// for the native coin (never a valid asset code).
    pub fn flow_key(self) -> [u8; 8] {
        match self {
            Self::Native => [0; 8],
            Self::Asset(asset) => asset.padded(),
        }
    }
}

async fn set<E: Runtime>(
    store: &mut Store<'_, E>,
    denom: Denom,
    account: &AccountId,
    units: u64,
) -> Result<(), StateError> {
    match denom {
        Denom::Native => {
            let mut record = crate::accounts::get(store, account)
                .await?
                .unwrap_or_default();
            record.balance = Amount::new(units);
            crate::accounts::put(store, account, &record);
        }
        Denom::Asset(asset) => {
            let key = state_key::balance(&asset, account);
            if units == 0 {
                store.delete(&key).await?;
            } else {
                store.put(&key, &units).await?;
            }
        }
    }
    Ok(())
}

/// Add `amount` of `denom` to `account`.
///
/// # Errors
/// [`TxError::InvalidAmount`] if the balance would overflow (nothing changes), or a state
/// failure.
pub async fn credit<E: Runtime>(
    store: &mut Store<'_, E>,
    denom: impl Into<Denom>,
    account: &AccountId,
    amount: u64,
) -> Result<(), Fail> {
    let denom = denom.into();
    let now = balance(store, denom, account).await?;
    let next = now
        .checked_add(amount)
        .ok_or(TxError::InvalidAmount("balance would overflow"))?;
    set(store, denom, account, next).await?;
    store.flow(denom.flow_key(), i128::from(amount));
    Ok(())
}

/// Take `amount` of `denom` from `account`.
///
/// # Errors
/// [`TxError::InsufficientBalance`] if it holds less (nothing changes), or a state failure.
pub async fn debit<E: Runtime>(
    store: &mut Store<'_, E>,
    denom: impl Into<Denom>,
    account: &AccountId,
    amount: u64,
) -> Result<(), Fail> {
    let denom = denom.into();
    let now = balance(store, denom, account).await?;
    let next = now
        .checked_sub(amount)
        .ok_or(TxError::InsufficientBalance {
            balance: Amount::new(now),
            needed: Amount::new(amount),
        })?;
    set(store, denom, account, next).await?;
    store.flow(denom.flow_key(), -i128::from(amount));
    Ok(())
}

/// Move `amount` of `denom` from `from` to `to`. A transfer to oneself only checks the
/// balance. On error nothing changes.
///
/// # Errors
/// [`TxError::InsufficientBalance`], [`TxError::InvalidAmount`] on overflow, or a state
/// failure.
pub async fn transfer<E: Runtime>(
    store: &mut Store<'_, E>,
    denom: impl Into<Denom>,
    from: &AccountId,
    to: &AccountId,
    amount: u64,
) -> Result<(), Fail> {
    let denom = denom.into();
    let held = balance(store, denom, from).await?;
    if held < amount {
        return Err(Fail::Tx(TxError::InsufficientBalance {
            balance: Amount::new(held),
            needed: Amount::new(amount),
        }));
    }
    if from != to {
        // Check the credit first: a failed credit must not leave the debit behind.
        let received = balance(store, denom, to).await?;
        if received.checked_add(amount).is_none() {
            return Err(TxError::InvalidAmount("recipient balance would overflow").into());
        }
        debit(store, denom, from, amount).await?;
        credit(store, denom, to, amount).await?;
    }
    Ok(())
}

/// Move all of `from`'s `denom` to `to` (a key rotation). Returns what moved.
///
/// # Errors
/// [`TxError::InvalidAmount`] if `to`'s balance would overflow (nothing changes), or a state
/// failure.
pub async fn move_all<E: Runtime>(
    store: &mut Store<'_, E>,
    denom: impl Into<Denom>,
    from: &AccountId,
    to: &AccountId,
) -> Result<u64, Fail> {
    let denom = denom.into();
    if from == to {
        return Ok(0);
    }
    let held = balance(store, denom, from).await?;
    if held > 0 {
        transfer(store, denom, from, to, held).await?;
    }
    Ok(held)
}

/// The account of genesis allocations: set `account`'s native balance (block 1 only).
///
/// # Errors
/// If the state cannot be read.
pub async fn allocate<E: Runtime>(
    store: &mut Store<'_, E>,
    account: &AccountId,
    amount: Amount,
) -> Result<(), StateError> {
    let mut record: Account = crate::accounts::get(store, account)
        .await?
        .unwrap_or_default();
    record.balance = amount;
    crate::accounts::put(store, account, &record);
    Ok(())
}
