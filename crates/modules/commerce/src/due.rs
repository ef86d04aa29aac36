//! Deadlines in block time: an unpaid order expires when its payment window passes, a
//! delivered one completes when its receipt window passes, an after-sales case moves on when
//! the party it waits for lets its window pass.
//!
//! A deadline is an entry under its second of block time (`due/{second}/{n}` and a count),
//! written when it is set. End of block walks the seconds that have wholly passed by the
//! block's time (a deadline fires in the first block of a later second) from a cursor, at most [`DUE_PER_BLOCK_MAX`] entries and [`DUE_SECONDS_PER_BLOCK_MAX`] seconds per
//! block, deleting each entry it handles. An entry whose order moved on meanwhile (paid,
//! cancelled, confirmed) is skipped: the order's own deadline decides.

pub use crate::schedule;
use crate::{Commerce, Shop, after_sale, money, save_order, stamp, stock};
use consort_execution::{BlockError, BlockInfo, Fail, Runtime, Store};
use consort_governance::Gov;
use consort_types::{
    commerce::{
        DUE_PER_BLOCK_MAX, DUE_SECONDS_PER_BLOCK_MAX, DueCursor, Order, OrderStatus, PaymentState,
        RecordId,
    },
    state_key::commerce as key,
};

/// The order is delivered: it completes on its own when the receipt window passes.
pub(crate) async fn start_receipt_window<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    order: &mut Order,
) -> Result<(), Fail> {
    order.deadline_ms = shop
        .now()
        .time_ms
        .saturating_add(shop.rules.config.receipt_window_ms);
    schedule(store, id, order.deadline_ms).await?;
    Ok(())
}

/// Handle the deadlines due by `block`'s time.
///
/// # Errors
/// A state failure or a broken invariant.
pub async fn run<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Commerce,
    _gov: &Gov,
    block: BlockInfo,
) -> Result<(), BlockError> {
    let now = block.timestamp_ms;
    let now_second = now / 1_000;
    let Some(start) = store.get::<DueCursor>(&key::due_cursor()).await? else {
        // Nothing was ever scheduled before this block's time.
        store
            .put(
                &key::due_cursor(),
                &DueCursor {
                    second: now_second,
                    done: 0,
                },
            )
            .await?;
        return Ok(());
    };
    let mut cursor = start;
    let mut handled = 0u64;
    let mut walked = 0u64;
    while cursor.second < now_second
        && handled < DUE_PER_BLOCK_MAX
        && walked < DUE_SECONDS_PER_BLOCK_MAX
    {
        let count = store
            .get::<u32>(&key::due_count(cursor.second))
            .await?
            .unwrap_or(0);
        while cursor.done < count && handled < DUE_PER_BLOCK_MAX {
            let entry = key::due(cursor.second, cursor.done);
            if let Some(id) = store.get::<RecordId>(&entry).await? {
                handle(store, shop, block, &id).await?;
                store.delete(&entry).await?;
            }
            cursor.done += 1;
            handled += 1;
        }
        if cursor.done < count {
            break;
        }
        if count > 0 {
            store.delete(&key::due_count(cursor.second)).await?;
        }
        cursor.second += 1;
        cursor.done = 0;
        walked += 1;
    }
    if cursor != start {
        store.put(&key::due_cursor(), &cursor).await?;
    }
    Ok(())
}

/// Expire or complete order `id` if its own deadline has passed and its state still calls
/// for it. A completion the freezes refuse is left for the buyer to confirm later.
async fn handle<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Commerce,
    block: BlockInfo,
    id: &RecordId,
) -> Result<(), BlockError> {
    let Some(mut order) = store
        .get::<consort_types::commerce::Order>(&key::order(id))
        .await?
    else {
        return Ok(());
    };
    // An order in after-sales waits on its case's deadline, not its own.
    let after_sale = order.status == OrderStatus::AfterSale;
    if !after_sale && (order.deadline_ms == 0 || order.deadline_ms > block.timestamp_ms) {
        return Ok(());
    }
    // Keep what end of block did so far: a refusal below drops only its own writes.
    store.commit();
    let at = stamp(block);
    let step: Result<(), Fail> = async {
        match (order.status, order.payment) {
            (OrderStatus::Placed, PaymentState::Unpaid) => {
                stock::release_all(store, &order).await?;
                order.status = OrderStatus::Expired;
                order.deadline_ms = 0;
                save_order(store, id, &mut order, at, b"expire").await
            }
            (OrderStatus::Delivered, PaymentState::Escrowed) => {
                money::settle(store, shop, &mut order).await?;
                save_order(store, id, &mut order, at, b"auto_complete").await
            }
            (OrderStatus::AfterSale, _) => {
                let window = shop.config.after_sale_window_ms;
                if after_sale::lapse(store, window, id, &mut order, at).await? {
                    save_order(store, id, &mut order, at, b"after_sale_lapsed").await?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    .await;
    match step {
        Ok(()) => {
            store.commit();
            Ok(())
        }
        // A refusal (a frozen seller): nothing of it is kept. An after-sales step is tried
        // again later: the party it protects has no call of its own to take it.
        Err(Fail::Tx(_)) => {
            store.rollback();
            if after_sale {
                after_sale::postpone(store, shop.config.after_sale_window_ms, id, at).await?;
                store.commit();
            }
            Ok(())
        }
        Err(Fail::Db(error)) => Err(error),
    }
}
