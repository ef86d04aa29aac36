//! Private records: fields sealed on chain to their recipients (see `consort_types::sealed`).
//!
//! The chain never sees plaintext. It checks what it can: every recipient published a sealing
//! key, the author and the party the record concerns hold copies, and on a governed chain an
//! active regulator holds one too. It cannot check that a copy was really sealed to the
//! recipient's key: a recipient who cannot open its copy shows the author misbehaved, and the
//! record, signed by the author, is the evidence.

use crate::{error::Fail, state::Runtime, store::Store};
use consort_types::{
    AccountId, Call,
    gov::role,
    sealed::{PrivateError, PrivateRecord, SealKey, valid_key},
    state_key::private as key,
};

/// Apply `set_seal_key` or `put_private` (already authorized).
pub async fn apply<E: Runtime>(
    store: &mut Store<'_, E>,
    governed: bool,
    sender: &AccountId,
    call: &Call,
    height: u64,
) -> Result<(), Fail> {
    match call {
        Call::SetSealKey { key: seal } => {
            if !valid_key(seal) {
                return Err(PrivateError::BadSealKey.into());
            }
            store.put(&key::seal_key(sender), seal).await?;
            Ok(())
        }
        Call::PutPrivate {
            about,
            label,
            envelope,
        } => {
            let recipients: Vec<&AccountId> = envelope.recipients().collect();
            if recipients.is_empty() {
                return Err(PrivateError::BadEnvelope("no recipients").into());
            }
            if recipients
                .iter()
                .enumerate()
                .any(|(i, r)| recipients[..i].contains(r))
            {
                return Err(PrivateError::BadEnvelope("a recipient holds two copies").into());
            }
            if !recipients.contains(&sender) {
                return Err(PrivateError::RecipientMissing("author").into());
            }
            if !recipients.contains(&about) {
                return Err(PrivateError::RecipientMissing("party the record concerns").into());
            }
            let mut regulator = false;
            for recipient in &recipients {
                if store
                    .get::<SealKey>(&key::seal_key(recipient))
                    .await?
                    .is_none()
                {
                    return Err(PrivateError::NoSealKey(recipient.to_string()).into());
                }
                if governed {
                    regulator |= crate::gov::Gov::active_roles(store, recipient)
                        .await?
                        .is_some_and(|roles| roles & role::REGULATOR != 0);
                }
            }
            if governed && !regulator {
                return Err(PrivateError::RegulatorMissing.into());
            }
            let id = store.get::<u64>(&key::next()).await?.unwrap_or(0);
            store
                .put(
                    &key::record(id),
                    &PrivateRecord {
                        id,
                        author: *sender,
                        about: *about,
                        label: label.clone(),
                        envelope: envelope.clone(),
                        height,
                    },
                )
                .await?;
            store.put(&key::next(), &(id + 1)).await?;
            Ok(())
        }
        _ => unreachable!("not a private call"),
    }
}
