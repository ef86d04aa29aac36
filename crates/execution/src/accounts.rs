//! Accounts: the native balance ([`crate::ledger`] moves it) and the nonce every included
//! transaction uses, applied or failed. Stored as one fixed-size record per account.

use consort_state::{Runtime, StateError, Store};
use consort_types::{Account, AccountId, Call, SignedTx, TxError, state_key};

/// The account record, if the account exists.
///
/// # Errors
/// If the state cannot be read.
pub async fn get<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &AccountId,
) -> Result<Option<Account>, StateError> {
    store.get_fixed(&state_key::account(id)).await
}

/// Write the account record (in the current transaction).
pub fn put<E: Runtime>(store: &mut Store<'_, E>, id: &AccountId, account: &Account) {
    store.put_fixed(&state_key::account(id), account);
}

/// Make sure `id` exists, with nothing in it if new (validators, at genesis).
///
/// # Errors
/// If the state cannot be read.
pub async fn create<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &AccountId,
) -> Result<(), StateError> {
    if get(store, id).await?.is_none() {
        put(store, id, &Account::default());
    }
    Ok(())
}

/// Whether `tx` carries its sender's next nonce. A sender never seen before may make any call
/// but a native transfer (which needs a funded account).
///
/// # Errors
/// [`TxError::NonceReused`], [`TxError::NonceTooHigh`] or [`TxError::UnknownAccount`] (an
/// outer state failure otherwise).
pub async fn check_nonce<E: Runtime>(
    store: &mut Store<'_, E>,
    tx: &SignedTx,
) -> Result<Result<Account, TxError>, StateError> {
    let sender_id = &tx.tx.sender;
    let sender = match get(store, sender_id).await? {
        Some(account) => account,
        None if matches!(tx.tx.call, Call::Transfer { .. }) => {
            return Ok(Err(TxError::UnknownAccount(*sender_id)));
        }
        None => Account::default(),
    };
    Ok(if tx.tx.nonce < sender.nonce {
        Err(TxError::NonceReused {
            expected: sender.nonce,
            got: tx.tx.nonce,
        })
    } else if tx.tx.nonce > sender.nonce {
        Err(TxError::NonceTooHigh {
            expected: sender.nonce,
            got: tx.tx.nonce,
        })
    } else {
        Ok(sender)
    })
}

/// Use `id`'s nonce (in the current transaction).
///
/// # Errors
/// [`TxError::InvalidAmount`] at the last nonce (an outer state failure otherwise).
pub async fn bump_nonce<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &AccountId,
) -> Result<Result<(), TxError>, StateError> {
    let mut account = get(store, id).await?.unwrap_or_default();
    let Some(next) = account.nonce.checked_add(1) else {
        return Ok(Err(TxError::InvalidAmount("nonce overflow")));
    };
    account.nonce = next;
    put(store, id, &account);
    Ok(Ok(()))
}
