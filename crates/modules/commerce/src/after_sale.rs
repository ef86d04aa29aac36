//! After-sales service: a buyer asks for a refund of a delivered order, with or without
//! sending the goods back; the seller answers; goods come back; a refused or contested case
//! goes to the platform, whose operator rules how the escrow is split.
//!
//! A case opens only while the order's money is still in escrow (delivered, not completed),
//! as with a marketplace that holds the payment until the buyer is satisfied: the order's
//! status is then [`OrderStatus::AfterSale`] and its receipt window is paused. Every waiting
//! step has a deadline in block time ([`crate::due`]), so no party can hold the money by doing
//! nothing: a seller that does not answer has approved, a buyer that does not send the goods
//! back or escalate has given up, a seller that does not confirm goods sent back has
//! received them, and a dispute the platform does not rule in time is decided for the buyer
//! (the refund asked). A step a freeze refuses is tried again a window later. When a case
//! closes with money still in escrow, the receipt window goes on from where it was paused.

use crate::{
    Shop, money, order, payment_name, refuse_frozen, require_buyer, require_seller, save_order,
};
use consort_execution::{Fail, Runtime, Store};
use consort_types::{
    TxError,
    changes::Record,
    codec_util::List,
    commerce::{
        AFTER_SALES_PER_ORDER_MAX, AfterSale, AfterSaleStatus, CommerceError, Order, OrderStatus,
        PaymentState, RecordId, Shipment, ShipmentStatus, Stamp, return_shipment,
    },
    gov::{FreezeTarget, OrgId, role},
    state_key::commerce as key,
};

/// Order `id`'s latest after-sales case, if it ever had one.
pub(crate) async fn case<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &RecordId,
) -> Result<Option<AfterSale>, Fail> {
    Ok(store.get::<AfterSale>(&key::after_sale(id)).await?)
}

/// Order `id`'s open case, if it is at one of `allowed` for `call`.
///
/// # Errors
/// [`CommerceError::NoAfterSale`] (no open case), [`CommerceError::AfterSaleState`] (the
/// case is at another step).
async fn case_at<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &RecordId,
    order: &Order,
    call: &'static str,
    allowed: &[AfterSaleStatus],
) -> Result<AfterSale, Fail> {
    let case = match case(store, id).await? {
        Some(case) if case.status.is_open() && order.status == OrderStatus::AfterSale => case,
        _ => return Err(CommerceError::NoAfterSale(*id).into()),
    };
    if allowed.contains(&case.status) {
        Ok(case)
    } else {
        Err(CommerceError::AfterSaleState {
            call,
            status: case.status.name(),
        }
        .into())
    }
}

/// Move the case to `status` with a fresh deadline `window_ms` from `at` (0: none), and
/// store it.
async fn step<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &RecordId,
    case: &mut AfterSale,
    status: AfterSaleStatus,
    window_ms: Option<u64>,
    at: Stamp,
) -> Result<(), Fail> {
    case.status = status;
    case.updated = at;
    case.deadline_ms = match window_ms {
        Some(window) => {
            let deadline = at.time_ms.saturating_add(window);
            crate::schedule(store, id, deadline).await?;
            deadline
        }
        None => 0,
    };
    store
        .put_noted(Record::AfterSale { order: *id }, case)
        .await?;
    Ok(())
}

/// Move the case to `status`, whose party has the shop's after-sales window from now to act.
async fn wait_next<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    case: &mut AfterSale,
    status: AfterSaleStatus,
) -> Result<(), Fail> {
    let window = shop.rules.config.after_sale_window_ms;
    step(store, id, case, status, Some(window), shop.now()).await
}

/// Close the case: pay `refund` of the escrow to the buyer (at most what escrow holds now),
/// then, with money left, the order is delivered again and its receipt window goes on; with
/// none, the order is done (completed, its payment refunded). The caller saves the order.
pub(crate) async fn close<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &RecordId,
    order: &mut Order,
    case: &mut AfterSale,
    status: AfterSaleStatus,
    refund: u64,
    at: Stamp,
) -> Result<(), Fail> {
    let refund = refund.min(order.escrow);
    money::refund_to_buyer(store, order, refund).await?;
    case.refunded = case.refunded.saturating_add(refund);
    step(store, id, case, status, None, at).await?;
    if order.escrow == 0 {
        order.status = OrderStatus::Completed;
        order.deadline_ms = 0;
    } else {
        order.status = OrderStatus::Delivered;
        order.deadline_ms = at.time_ms.saturating_add(case.receipt_left_ms);
        crate::schedule(store, id, order.deadline_ms).await?;
    }
    Ok(())
}

/// `request_return`: the buyer of a delivered order still in escrow asks for `amount` back,
/// sending the goods back or not. The order's completion waits for the case; the seller has
/// the after-sales window to answer.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::BadState`] (not delivered, or its money
/// no longer in escrow), [`CommerceError::AfterSalesMax`], [`CommerceError::RefundTooLarge`],
/// [`TxError::InvalidAmount`] (zero), [`CommerceError::Frozen`].
pub(crate) async fn request<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    amount: u64,
    goods_back: bool,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_buyer(store, shop, id, &order).await?;
    if order.status != OrderStatus::Delivered {
        return Err(CommerceError::BadState {
            call: "ask after-sales service for",
            status: order.status.name(),
        }
        .into());
    }
    if order.payment != PaymentState::Escrowed {
        return Err(CommerceError::BadState {
            call: "ask after-sales service for",
            status: payment_name(order.payment),
        }
        .into());
    }
    let now = shop.now();
    if order.deadline_ms <= now.time_ms {
        // Its receipt window has passed: it completes at the end of this block.
        return Err(CommerceError::BadState {
            call: "ask after-sales service for",
            status: "past its receipt window",
        }
        .into());
    }
    if amount == 0 {
        return Err(
            TxError::InvalidAmount("an after-sales request asks for some money back").into(),
        );
    }
    if amount > order.escrow {
        return Err(CommerceError::RefundTooLarge {
            asked: amount,
            escrow: order.escrow,
        }
        .into());
    }
    let cases = case(store, id).await?.map_or(0, |case| case.cases);
    if cases >= AFTER_SALES_PER_ORDER_MAX {
        return Err(CommerceError::AfterSalesMax(*id).into());
    }
    refuse_frozen(store, FreezeTarget::Account(*shop.sender()), "the buyer").await?;
    let mut case = AfterSale {
        status: AfterSaleStatus::Requested,
        goods_back: goods_back && order.kind == consort_types::commerce::ProductKind::Physical,
        amount,
        refunded: 0,
        cases: cases + 1,
        carrier: None,
        receipt_left_ms: order.deadline_ms.saturating_sub(now.time_ms),
        deadline_ms: 0,
        opened: now,
        updated: now,
    };
    wait_next(store, shop, id, &mut case, AfterSaleStatus::Requested).await?;
    order.status = OrderStatus::AfterSale;
    order.deadline_ms = 0;
    save_order(store, id, &mut order, now, b"request_return").await
}

/// Approve the case's request: a refund without return is paid now; a return waits for the
/// goods. Shared by the seller's answer and the answer's deadline passing.
pub(crate) async fn approve<E: Runtime>(
    store: &mut Store<'_, E>,
    window_ms: u64,
    id: &RecordId,
    order: &mut Order,
    case: &mut AfterSale,
    at: Stamp,
) -> Result<(), Fail> {
    if case.goods_back {
        step(
            store,
            id,
            case,
            AfterSaleStatus::Approved,
            Some(window_ms),
            at,
        )
        .await
    } else {
        let amount = case.amount;
        close(
            store,
            id,
            order,
            case,
            AfterSaleStatus::Refunded,
            amount,
            at,
        )
        .await
    }
}

/// `answer_return`: the seller approves or refuses a request.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::NoAfterSale`],
/// [`CommerceError::AfterSaleState`] (already answered).
pub(crate) async fn answer<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    yes: bool,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_seller(store, shop, id, &order).await?;
    let mut case = case_at(store, id, &order, "answer", &[AfterSaleStatus::Requested]).await?;
    let now = shop.now();
    if yes {
        let window = shop.rules.config.after_sale_window_ms;
        approve(store, window, id, &mut order, &mut case, now).await?;
    } else {
        wait_next(store, shop, id, &mut case, AfterSaleStatus::Rejected).await?;
    }
    save_order(store, id, &mut order, now, b"answer_return").await
}

/// `return_shipped`: the buyer sent the goods of an approved return back with `carrier`
/// under `tracking`. The parcel is a shipment of the order ([`return_shipment`] of the
/// case) that `carrier` posts events on, as on goods going out.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::NoAfterSale`],
/// [`CommerceError::AfterSaleState`] (not approved), [`CommerceError::NotACarrier`].
pub(crate) async fn shipped_back<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    carrier: &OrgId,
    tracking: &str,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_buyer(store, shop, id, &order).await?;
    let mut case = case_at(
        store,
        id,
        &order,
        "send back the goods of",
        &[AfterSaleStatus::Approved],
    )
    .await?;
    crate::require_carrier(store, carrier).await?;
    case.carrier = Some(*carrier);
    let now = shop.now();
    let parcel = Shipment {
        carrier: *carrier,
        status: ShipmentStatus::Pending,
        lines: List(Vec::new()),
        label: consort_types::sha256(&[tracking.as_bytes()]).0,
        events: 0,
        created: now,
        updated: now,
    };
    let shipment = return_shipment(case.cases);
    store
        .put_noted(
            Record::Shipment {
                order: *id,
                shipment,
            },
            &parcel,
        )
        .await?;
    wait_next(store, shop, id, &mut case, AfterSaleStatus::ShippedBack).await?;
    save_order(store, id, &mut order, shop.now(), b"return_shipped").await
}

/// The carrier delivered the goods of order `id`'s case `case` back to the seller at `at`: if
/// the case still waits for the seller to confirm them, the seller's time to inspect them
/// starts now (a slow carrier does not use up the window). A case whose window has already
/// passed is left to lapse as it is due (the buyer's refund is not taken back by a late
/// event). Returns whether the case changed.
pub(crate) async fn returned_to_seller<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    order: &Order,
    case_number: u8,
) -> Result<bool, Fail> {
    let Some(mut case) = case(store, id).await? else {
        return Ok(false);
    };
    if order.status != OrderStatus::AfterSale
        || case.cases != case_number
        || case.status != AfterSaleStatus::ShippedBack
        || case.deadline_ms <= shop.now().time_ms
    {
        return Ok(false);
    }
    wait_next(store, shop, id, &mut case, AfterSaleStatus::ShippedBack).await?;
    Ok(true)
}

/// `receive_return`: the seller confirms the goods sent back arrived; the refund is paid.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::NoAfterSale`],
/// [`CommerceError::AfterSaleState`] (nothing sent back), [`CommerceError::Frozen`].
pub(crate) async fn receive<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_seller(store, shop, id, &order).await?;
    let mut case = case_at(
        store,
        id,
        &order,
        "receive the goods of",
        &[AfterSaleStatus::ShippedBack],
    )
    .await?;
    let now = shop.now();
    let amount = case.amount;
    close(
        store,
        id,
        &mut order,
        &mut case,
        AfterSaleStatus::Refunded,
        amount,
        now,
    )
    .await?;
    save_order(store, id, &mut order, now, b"receive_return").await
}

/// `open_dispute`: the buyer whose request the seller refused, or the seller whose goods came
/// back damaged or not at all, takes the case to the platform. It waits for the operator.
///
/// # Errors
/// [`CommerceError::NotYourOrder`] (neither party), [`CommerceError::NoAfterSale`],
/// [`CommerceError::AfterSaleState`] (not refused for the buyer, nothing sent back for the
/// seller).
pub(crate) async fn dispute<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    let seller = match shop.registration(store).await {
        Ok(registration) => {
            registration.org == order.seller && registration.roles & role::SELLER != 0
        }
        Err(Fail::Tx(_)) => false,
        Err(error) => return Err(error),
    };
    let allowed = if crate::is_buyer(store, shop, &order).await? {
        AfterSaleStatus::Rejected
    } else if seller {
        AfterSaleStatus::ShippedBack
    } else {
        return Err(CommerceError::NotYourOrder {
            order: *id,
            party: "buyer or seller",
        }
        .into());
    };
    let mut case = case_at(store, id, &order, "dispute", &[allowed]).await?;
    wait_next(store, shop, id, &mut case, AfterSaleStatus::Disputed).await?;
    save_order(store, id, &mut order, shop.now(), b"open_dispute").await
}

/// `rule_dispute`: an operator of the platform rules a dispute: `refund` of the escrow to the
/// buyer, the rest to the seller less the fee. The order completes.
///
/// # Errors
/// [`TxError::Unauthorized`] (not an operator), [`CommerceError::NoAfterSale`],
/// [`CommerceError::AfterSaleState`] (not disputed), [`CommerceError::RefundTooLarge`],
/// [`CommerceError::Frozen`].
pub(crate) async fn rule<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    refund: u64,
) -> Result<(), Fail> {
    shop.org_with(
        store,
        role::OPERATOR,
        "only the platform's operator rules disputes",
    )
    .await?;
    let mut order = order(store, id).await?;
    if crate::is_buyer(store, shop, &order).await? {
        return Err(TxError::Unauthorized {
            call: "rule_dispute",
            reason: "the order's buyer does not rule its own dispute",
        }
        .into());
    }
    let mut case = case_at(store, id, &order, "rule", &[AfterSaleStatus::Disputed]).await?;
    if refund > order.escrow {
        return Err(CommerceError::RefundTooLarge {
            asked: refund,
            escrow: order.escrow,
        }
        .into());
    }
    let now = shop.now();
    close(
        store,
        id,
        &mut order,
        &mut case,
        AfterSaleStatus::Ruled,
        refund,
        now,
    )
    .await?;
    if order.escrow > 0 {
        // The rest is the seller's: the order completes now, not after a receipt window.
        money::settle(store, shop.rules, &mut order).await?;
    }
    save_order(store, id, &mut order, now, b"rule_dispute").await
}

/// `withdraw_return`: the buyer withdraws a request not yet disputed (nor sent back); the
/// order goes on.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::NoAfterSale`],
/// [`CommerceError::AfterSaleState`] (sent back or disputed).
pub(crate) async fn withdraw<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_buyer(store, shop, id, &order).await?;
    let mut case = case_at(
        store,
        id,
        &order,
        "withdraw",
        &[
            AfterSaleStatus::Requested,
            AfterSaleStatus::Approved,
            AfterSaleStatus::Rejected,
        ],
    )
    .await?;
    let now = shop.now();
    close(
        store,
        id,
        &mut order,
        &mut case,
        AfterSaleStatus::Closed,
        0,
        now,
    )
    .await?;
    save_order(store, id, &mut order, now, b"withdraw_return").await
}

/// A case's deadline passed at `at`: the party it waited for did not act. Returns whether the
/// order changed (the caller saves it).
pub(crate) async fn lapse<E: Runtime>(
    store: &mut Store<'_, E>,
    window_ms: u64,
    id: &RecordId,
    order: &mut Order,
    at: Stamp,
) -> Result<bool, Fail> {
    let Some(mut case) = case(store, id).await? else {
        return Ok(false);
    };
    if !case.status.is_open() || case.deadline_ms == 0 || case.deadline_ms > at.time_ms {
        return Ok(false);
    }
    match case.status {
        // The seller did not answer: approved.
        AfterSaleStatus::Requested => approve(store, window_ms, id, order, &mut case, at).await?,
        // The buyer did not send the goods back, or did not take the refusal further.
        AfterSaleStatus::Approved | AfterSaleStatus::Rejected => {
            close(store, id, order, &mut case, AfterSaleStatus::Closed, 0, at).await?;
        }
        // The seller did not confirm the goods sent back (nor dispute them): received. The
        // platform did not rule a dispute in time: the buyer is protected, the refund asked
        // is paid.
        AfterSaleStatus::ShippedBack | AfterSaleStatus::Disputed => {
            let amount = case.amount;
            close(
                store,
                id,
                order,
                &mut case,
                AfterSaleStatus::Refunded,
                amount,
                at,
            )
            .await?;
        }
        AfterSaleStatus::Refunded | AfterSaleStatus::Closed | AfterSaleStatus::Ruled => {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A case's deadline passed but what it calls for was refused (a freeze stands in the way of
/// a refund): try again `window_ms` after `at`, so the step is not lost once the freeze lifts.
///
/// # Errors
/// A state failure.
pub(crate) async fn postpone<E: Runtime>(
    store: &mut Store<'_, E>,
    window_ms: u64,
    id: &RecordId,
    at: Stamp,
) -> Result<(), consort_execution::BlockError> {
    let Some(mut case) = store.get::<AfterSale>(&key::after_sale(id)).await? else {
        return Ok(());
    };
    if !case.status.is_open() || case.deadline_ms == 0 || case.deadline_ms > at.time_ms {
        return Ok(());
    }
    case.deadline_ms = at.time_ms.saturating_add(window_ms.max(1_000));
    crate::schedule(store, id, case.deadline_ms).await?;
    store
        .put_noted(Record::AfterSale { order: *id }, &case)
        .await?;
    Ok(())
}
