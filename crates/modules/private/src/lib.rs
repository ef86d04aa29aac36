//! Private records: fields sealed on chain to their recipients (see `consort_types::sealed`).
//!
//! The chain never sees plaintext. It checks what it can: every recipient published a sealing
//! key, the author and the party the record concerns hold copies, and on a governed chain an
//! active regulator holds one too. It cannot check that a copy was really sealed to the
//! recipient's key: a recipient who cannot open its copy shows the author misbehaved, and the
//! record, signed by the author, is the evidence.

//!
//! * [`execute`]: one function per call.

pub mod execute;

use consort_execution::{Context, Fail, Permissions, Runtime, Store};
use consort_types::{Call, TxError};

/// Run a private-records call (already authorized). Calls of other modules are refused.
///
/// # Errors
/// The call's failure ([`Fail::Tx`]), or a state failure.
pub async fn apply<E: Runtime>(
    store: &mut Store<'_, E>,
    permissions: &impl Permissions,
    ctx: Context<'_>,
    call: &Call,
) -> Result<(), Fail> {
    match call {
        Call::SetSealKey { key } => execute::set_seal_key(store, ctx, key).await,
        Call::PutPrivate {
            about,
            label,
            envelope,
        } => execute::put_private(store, permissions, ctx, about, label, envelope).await,
        _ => Err(TxError::Unauthorized {
            call: call.kind(),
            reason: "not a private-records call",
        }
        .into()),
    }
}
