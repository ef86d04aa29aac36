//! Conservation per asset, checked after every block that moved value: what balances
//! gained, net (the ledger's flows), plus what commerce's holdings grew must equal what was
//! created — e-money issued less redeemed, the pegged coin's supply — and, for the native
//! coin, nothing.
//!
//! ```text
//! Σflows(a) + Δescrow(a) + Δpayouts(a) = Δ(issued(a) − redeemed(a))   (a bank's e-money)
//!                                      = Δsupply(a)                    (the pegged coin)
//! Σflows(native)                       = 0
//! ```
//!
//! Both sides come from different modules (the ledger counts every credit and debit; banks
//! and the peg count what they create), so a call that pays out of escrow without taking it
//! from escrow, or credits without debiting, makes its block invalid.

use crate::money::holdings;
use consort_execution::{BlockError, Runtime, Store};
use consort_governance::Gov;
use consort_types::Asset;

/// What was created of `asset` in a state, as the caller knows it: e-money issued less
/// redeemed, or the pegged coin's supply.
pub trait Created<E: Runtime> {
    /// The amount created of `asset` as `store` sees it.
    fn created(
        &self,
        store: &mut Store<'_, E>,
        asset: &Asset,
    ) -> impl std::future::Future<Output = Result<i128, BlockError>> + Send;
}

/// E-money created: issued less redeemed (0 for an asset no bank issues).
pub async fn emoney_created<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &Asset,
) -> Result<i128, BlockError> {
    Ok(Gov::emoney(store, asset)
        .await?
        .map_or(0, |m| i128::from(m.issued) - i128::from(m.redeemed)))
}

/// Check the block's flows (`store`, after the block) against the parent state (`parent`, a
/// store over the same parent batch), asset by asset; `created` reads what was created.
///
/// # Errors
/// [`BlockError::Invariant`] naming the asset and both sides.
pub async fn check<E: Runtime, C: Created<E>>(
    store: &mut Store<'_, E>,
    parent: &mut Store<'_, E>,
    created: &C,
) -> Result<(), BlockError> {
    let flows: Vec<([u8; 8], i128)> = store.flows().iter().map(|(k, v)| (*k, *v)).collect();
    for (denom, flow) in flows {
        if denom == [0; 8] {
            if flow != 0 {
                return Err(BlockError::Invariant(format!(
                    "native coin not conserved: balances moved by {flow} net"
                )));
            }
            continue;
        }
        let asset = Asset::from_padded_bytes(denom).ok_or_else(|| {
            BlockError::Invariant(format!("a flow under a key that is no asset: {denom:?}"))
        })?;
        let before = holdings(parent, &asset).await?;
        let after = holdings(store, &asset).await?;
        let held = i128::from(after.escrow) - i128::from(before.escrow) + i128::from(after.payouts)
            - i128::from(before.payouts);
        let made = created.created(store, &asset).await? - created.created(parent, &asset).await?;
        if flow + held != made {
            return Err(BlockError::Invariant(format!(
                "{asset} not conserved: balances moved by {flow} and commerce holdings by \
                 {held}, but {made} was created"
            )));
        }
    }
    Ok(())
}
