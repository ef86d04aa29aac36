//! Stock per variant: reserved when an order is placed or grows, released when it shrinks,
//! is cancelled or expires (shipping sells it: [`crate::fulfilment`]).

use crate::variant;
use consort_execution::{Fail, Runtime, Store};
use consort_types::{
    Asset,
    changes::Record,
    commerce::{CommerceError, Order, RecordId},
};

/// Reserve `quantity` more items of a variant at `price` in `currency` (a variant whose
/// seller since changed its currency has changed its price).
pub(crate) async fn reserve<E: Runtime>(
    store: &mut Store<'_, E>,
    product: &RecordId,
    index: u16,
    quantity: u64,
    (price, currency): (u64, &Asset),
) -> Result<(), Fail> {
    let mut state = variant(store, product, index).await?;
    if state.price != price || state.currency != *currency {
        return Err(CommerceError::PriceChanged {
            product: *product,
            variant: index,
            price: state.price,
        }
        .into());
    }
    if state.available < quantity {
        return Err(CommerceError::OutOfStock {
            product: *product,
            variant: index,
            available: state.available,
        }
        .into());
    }
    state.available -= quantity;
    state.reserved = state
        .reserved
        .checked_add(quantity)
        .ok_or(CommerceError::Overflow("reserved"))?;
    store.put_fixed_noted(
        Record::Variant {
            product: *product,
            variant: index,
        },
        &state,
    );
    Ok(())
}

/// Release `quantity` reserved items of a variant back to its stock.
pub(crate) async fn release<E: Runtime>(
    store: &mut Store<'_, E>,
    product: &RecordId,
    index: u16,
    quantity: u64,
) -> Result<(), Fail> {
    if quantity == 0 {
        return Ok(());
    }
    let mut state = variant(store, product, index).await?;
    state.reserved = state.reserved.checked_sub(quantity).ok_or_else(|| {
        consort_execution::BlockError::Invariant(format!(
            "product {product} variant {index}: releasing more than is reserved"
        ))
    })?;
    state.available = state
        .available
        .checked_add(quantity)
        .ok_or(CommerceError::Overflow("stock"))?;
    store.put_fixed_noted(
        Record::Variant {
            product: *product,
            variant: index,
        },
        &state,
    );
    Ok(())
}

/// Release every unshipped item of `order`.
pub(crate) async fn release_all<E: Runtime>(
    store: &mut Store<'_, E>,
    order: &Order,
) -> Result<(), Fail> {
    for line in &order.lines.0 {
        release(
            store,
            &line.product,
            line.variant,
            u64::from(line.quantity - line.shipped),
        )
        .await?;
    }
    Ok(())
}
