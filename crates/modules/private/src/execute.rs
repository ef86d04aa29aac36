//! One function per call of the private-records module.

use consort_execution::{Context, Fail, Permissions, Runtime, Store};
use consort_types::{
    AccountId,
    codec_util::Blob,
    gov::role,
    sealed::{LABEL_MAX, PrivateError, PrivateRecord, SealKey, Sealed, valid_key},
    state_key::private as key,
};

/// `set_seal_key`: publish the sender's sealing key.
///
/// # Errors
/// [`PrivateError::BadSealKey`], or a state failure.
pub async fn set_seal_key<E: Runtime>(
    store: &mut Store<'_, E>,
    ctx: Context<'_>,
    seal: &[u8; 32],
) -> Result<(), Fail> {
    if !valid_key(seal) {
        return Err(PrivateError::BadSealKey.into());
    }
    store.put(&key::seal_key(ctx.sender), seal).await?;
    Ok(())
}

/// Check a sealed field: at least one copy, one per recipient, a copy for each of
/// `parties` (named in the error when missing), a published sealing key for every recipient
/// and, on a governed chain, an active regulator among them.
///
/// # Errors
/// A [`PrivateError`] naming what is wrong, or a state failure.
pub async fn check_envelope<E: Runtime>(
    store: &mut Store<'_, E>,
    permissions: &impl Permissions,
    envelope: &Sealed,
    parties: &[(&AccountId, &'static str)],
) -> Result<(), Fail> {
    let governed = permissions.governed();
    let recipients: Vec<&AccountId> = envelope.recipients().collect();
    if recipients.is_empty() {
        return Err(PrivateError::BadEnvelope("no recipients").into());
    }
    let mut seen = std::collections::BTreeSet::new();
    if !recipients.iter().all(|r| seen.insert(*r)) {
        return Err(PrivateError::BadEnvelope("a recipient holds two copies").into());
    }
    for (party, name) in parties {
        if !recipients.contains(party) {
            return Err(PrivateError::RecipientMissing(name).into());
        }
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
        if governed && !regulator {
            regulator = permissions
                .holds_role(store, recipient, role::REGULATOR)
                .await?;
        }
    }
    if governed && !regulator {
        return Err(PrivateError::RegulatorMissing.into());
    }
    Ok(())
}

/// `put_private`: store a record sealed to its recipients: the author, the party it concerns
/// and, on a governed chain, an active regulator, each with a published sealing key.
///
/// # Errors
/// A [`PrivateError`] naming what is missing, or a state failure.
pub async fn put_private<E: Runtime>(
    store: &mut Store<'_, E>,
    permissions: &impl Permissions,
    ctx: Context<'_>,
    about: &AccountId,
    label: &Blob<LABEL_MAX>,
    envelope: &Sealed,
) -> Result<(), Fail> {
    let sender = ctx.sender;
    check_envelope(
        store,
        permissions,
        envelope,
        &[(sender, "author"), (about, "party the record concerns")],
    )
    .await?;
    let id = store.get::<u64>(&key::next()).await?.unwrap_or(0);
    let next = id
        .checked_add(1)
        .ok_or(consort_types::TxError::InvalidAmount(
            "private record ids exhausted",
        ))?;
    store
        .put(
            &key::record(id),
            &PrivateRecord {
                id,
                author: *sender,
                about: *about,
                label: label.clone(),
                envelope: envelope.clone(),
                height: ctx.height(),
            },
        )
        .await?;
    store.put(&key::next(), &next).await?;
    Ok(())
}
