//! The stateful checks every path applies before a transaction may take a place in a block:
//! the API and gossip at admission (against the finalized state), block building and block
//! verification (against the block's state so far). One function, so the paths cannot
//! disagree.
//!
//! The phases: stateless (size, decode, chain id, signature: [`consort_types::SignedTx`]) →
//! stateful ([`eligible`], plus the nonce, exact in a block and within a window at
//! admission) → execute (whose failures become receipts).

use crate::rules::Rules;
use consort_execution::{Fail, Open, Permissions as _, Runtime, Store};
use consort_types::{AccountId, Call, SignedTx, TxError, peg::PegError};

/// Whether `tx`'s sender may send it now: its size under the per-account limit, then
/// [`sender_may`]. What depends on other parties (a frozen recipient, a balance) is checked at
/// execution instead, where failing uses the nonce.
///
/// # Errors
/// [`Fail::Tx`] with why, or [`Fail::Db`] if the state cannot be read.
pub async fn eligible<E: Runtime>(
    store: &mut Store<'_, E>,
    rules: Rules<'_>,
    tx: &SignedTx,
) -> Result<(), Fail> {
    check_size(rules, tx)?;
    sender_may(store, rules, &tx.tx.sender, &tx.tx.call).await
}

/// The per-account size limit, and the one nonce no transaction may use (it could not be
/// followed).
///
/// # Errors
/// [`TxError::Oversized`] or [`TxError::InvalidAmount`].
pub fn check_size(rules: Rules<'_>, tx: &SignedTx) -> Result<(), TxError> {
    if let Some(limits) = rules.genesis.account_limits {
        let size = commonware_codec::EncodeSize::encode_size(tx);
        if size > limits.tx_size_max as usize {
            return Err(TxError::Oversized {
                size,
                max: limits.tx_size_max as usize,
            });
        }
    }
    if tx.tx.nonce == u64::MAX {
        return Err(TxError::InvalidAmount("the last nonce can never be used"));
    }
    Ok(())
}

/// Whether `sender` may make `call`: header relays from a validator, batch signatures from a
/// member of a live federation, and on a governed chain the sender's registration, role, freeze and the
/// emergency brake ([`consort_governance::Gov::authorize`]). The answer depends only on the sender and
/// the call's kind, except for `rotate` (which names the account rotated).
///
/// # Errors
/// [`Fail::Tx`] with why, or [`Fail::Db`] if the state cannot be read.
pub async fn sender_may<E: Runtime>(
    store: &mut Store<'_, E>,
    rules: Rules<'_>,
    sender: &AccountId,
    call: &Call,
) -> Result<(), Fail> {
    match (call, rules.peg) {
        (Call::RelayHeaders { .. } | Call::SignBatch { .. }, None) => {
            return Err(TxError::Peg(PegError::Disabled).into());
        }
        (Call::RelayHeaders { .. }, Some(peg)) if !peg.is_validator(store, sender).await? => {
            return Err(TxError::Unauthorized {
                call: call.kind(),
                reason: "only validators relay main-chain headers",
            }
            .into());
        }
        // Which federation must sign depends on the batch (checked when it runs); here, that
        // the sender is in some live federation (a removed validator may still sign its old
        // federation's sweep).
        (Call::SignBatch { .. }, Some(peg)) if !peg.may_sign(store, sender).await? => {
            return Err(TxError::Unauthorized {
                call: call.kind(),
                reason: "only members of a live peg federation sign peg-out batches",
            }
            .into());
        }
        _ => {}
    }
    if matches!(call, Call::Commerce(_)) && (rules.commerce.is_none() || rules.gov.is_none()) {
        return Err(TxError::Commerce(consort_types::commerce::CommerceError::Disabled).into());
    }
    match rules.gov {
        Some(gov) => gov.authorize(store, sender, call).await,
        None => Open.authorize(store, sender, call).await,
    }
}
