//! Orders: placing (every line's stock reserved at once, or nothing), paying, modifying and
//! cancelling before shipment.

use crate::{
    Shop, due, money, order, payment_name, product, refuse_frozen, require_buyer, require_status,
    save_order,
    stock::{release, release_all, reserve},
    variant,
};
use consort_execution::{BlockError, Fail, Runtime, Store};
use consort_governance::Gov;
use consort_types::{
    codec_util::List,
    commerce::{
        CommerceError, LINE_QUANTITY_MAX, LineRequest, Order, OrderLine, OrderStatus,
        PaymentMethod, PaymentState, ProductKind, ProductStatus, RecordId,
    },
    gov::{FreezeTarget, role},
    sealed::Sealed,
};

/// Check the sealed shipping address of an order of `kind`: physical goods need one sealed to
/// the buyer, the seller paid and a regulator; others carry none.
async fn check_address<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    order: &Order,
    address: &Sealed,
) -> Result<(), Fail> {
    if order.kind == ProductKind::Physical {
        consort_private::execute::check_envelope(
            store,
            shop.gov,
            address,
            // Placing or modifying, the sender is the buyer (by the key it holds now).
            &[(shop.sender(), "buyer"), (&order.payee, "seller")],
        )
        .await
    } else if address.copies.0.is_empty() {
        Ok(())
    } else {
        Err(
            CommerceError::BadContent("digital goods and services carry no shipping address")
                .into(),
        )
    }
}

/// The digest of a sealed field.
pub(crate) fn sealed_digest(sealed: &Sealed) -> [u8; 32] {
    use commonware_codec::Encode as _;
    if sealed.copies.0.is_empty() {
        return [0; 32];
    }
    consort_types::sha256(&[&sealed.encode()]).0
}

/// `place_order`: check every line against its product (listed, same seller, kind and
/// currency, the price the customer saw) and reserve its stock; pay now if asked.
///
/// # Errors
/// [`CommerceError::OutOfStock`], [`CommerceError::PriceChanged`],
/// [`CommerceError::NotListed`], [`CommerceError::MixedOrder`],
/// [`CommerceError::WrongPaymentMethod`], [`CommerceError::Frozen`], an address not sealed
/// to its parties, insufficient balance (paying now).
pub(crate) async fn place<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    lines: &[LineRequest],
    method: PaymentMethod,
    pay: bool,
    address: &Sealed,
) -> Result<(), Fail> {
    let Some(first) = lines.first() else {
        return Err(CommerceError::BadContent("an order needs at least one line").into());
    };
    if pay && method != PaymentMethod::Wallet {
        return Err(CommerceError::WrongPaymentMethod(
            "only wallet orders are paid as they are placed",
        )
        .into());
    }
    let head = product(store, &first.product).await?;
    let mut order = Order {
        buyer: *shop.sender(),
        seller: head.org,
        payee: head.payee,
        kind: head.kind,
        status: OrderStatus::Placed,
        payment: PaymentState::Unpaid,
        method,
        currency: variant(store, &first.product, first.variant)
            .await?
            .currency,
        total: 0,
        escrow: 0,
        paid: 0,
        refunded: 0,
        settled: 0,
        fee: 0,
        carrier: None,
        shipments: 0,
        delivered: 0,
        placed: shop.now(),
        updated: shop.now(),
        deadline_ms: 0,
        address: sealed_digest(address),
        address_at: shop.ctx.place(),
        changes: 0,
        history: [0; 32],
        lines: List(Vec::with_capacity(lines.len())),
    };
    refuse_frozen(
        store,
        FreezeTarget::Org(order.seller),
        "the seller organisation",
    )
    .await?;
    refuse_frozen(store, FreezeTarget::Account(order.payee), "the seller").await?;
    refuse_frozen(
        store,
        FreezeTarget::Asset(order.currency),
        "the order's currency",
    )
    .await?;
    match method {
        PaymentMethod::Wallet => {}
        PaymentMethod::BankTransfer | PaymentMethod::CashOnDelivery => {
            if Gov::emoney(store, &order.currency).await?.is_none() {
                return Err(CommerceError::WrongPaymentMethod(
                    "bank transfers and cash on delivery are paid in a bank's e-money",
                )
                .into());
            }
        }
    }
    if method == PaymentMethod::CashOnDelivery && order.kind != ProductKind::Physical {
        return Err(CommerceError::WrongPaymentMethod("cash on delivery needs a delivery").into());
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut total = 0u64;
    for line in lines {
        if !seen.insert((line.product, line.variant)) {
            return Err(CommerceError::BadContent("a variant appears on two lines").into());
        }
        if line.quantity == 0 || line.quantity > LINE_QUANTITY_MAX {
            return Err(
                CommerceError::BadContent("a line's quantity is 1 to LINE_QUANTITY_MAX").into(),
            );
        }
        let head = product(store, &line.product).await?;
        if head.status != ProductStatus::Listed {
            return Err(CommerceError::NotListed(line.product).into());
        }
        if head.org != order.seller {
            return Err(CommerceError::MixedOrder("lines of two sellers").into());
        }
        if head.kind != order.kind {
            return Err(CommerceError::MixedOrder("lines of two kinds of good").into());
        }
        if variant(store, &line.product, line.variant).await?.currency != order.currency {
            return Err(CommerceError::MixedOrder("lines in two currencies").into());
        }
        reserve(
            store,
            &line.product,
            line.variant,
            u64::from(line.quantity),
            (line.price, &order.currency),
        )
        .await?;
        let cost = line
            .price
            .checked_mul(u64::from(line.quantity))
            .ok_or(CommerceError::Overflow("line total"))?;
        total = total
            .checked_add(cost)
            .ok_or(CommerceError::Overflow("order total"))?;
        order.lines.0.push(OrderLine {
            product: line.product,
            variant: line.variant,
            quantity: line.quantity,
            price: line.price,
            shipped: 0,
        });
    }
    order.total = total;
    check_address(store, shop, &order, address).await?;
    let id = shop.ctx.place();
    if pay {
        money::hold_from_wallet(store, &mut order, shop.sender(), total).await?;
        order.status = OrderStatus::Paid;
    } else {
        // Unpaid (or, cash on delivery, not yet accepted by the seller): it expires when the
        // payment window passes, and its stock comes back.
        order.deadline_ms = shop
            .now()
            .time_ms
            .saturating_add(shop.rules.config.payment_window_ms);
        due::schedule(store, &id, order.deadline_ms).await?;
    }
    save_order(store, &id, &mut order, shop.now(), b"place_order").await
}

/// `pay_order`: the buyer pays a placed wallet order into escrow.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::BadState`] (paid, closed),
/// [`CommerceError::WrongPaymentMethod`], insufficient balance.
pub(crate) async fn pay<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_buyer(store, shop, id, &order).await?;
    if order.payment != PaymentState::Unpaid {
        return Err(CommerceError::BadState {
            call: "pay",
            status: payment_name(order.payment),
        }
        .into());
    }
    require_status(&order, "pay", &[OrderStatus::Placed])?;
    if order.method != PaymentMethod::Wallet {
        return Err(CommerceError::WrongPaymentMethod(
            "this order is paid through its bank or on delivery",
        )
        .into());
    }
    refuse_frozen(
        store,
        FreezeTarget::Org(order.seller),
        "the seller organisation",
    )
    .await?;
    let total = order.total;
    money::hold_from_wallet(store, &mut order, shop.sender(), total).await?;
    order.status = OrderStatus::Paid;
    order.deadline_ms = 0;
    save_order(store, id, &mut order, shop.now(), b"pay_order").await
}

/// `modify_order`: the buyer changes quantities (0 drops a line; at least one stays) or the
/// address before shipment. Stock is released or reserved (at the current price, which
/// must still be the order's), escrow refunded or topped up from the wallet.
///
/// # Errors
/// [`CommerceError::BadState`] once shipped, [`CommerceError::OutOfStock`],
/// [`CommerceError::PriceChanged`], [`CommerceError::WrongPaymentMethod`] (a bank-paid order
/// cannot grow), insufficient balance.
pub(crate) async fn modify<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    quantities: &[u32],
    address: Option<&Sealed>,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_buyer(store, shop, id, &order).await?;
    require_status(
        &order,
        "modify",
        &[
            OrderStatus::Placed,
            OrderStatus::Paid,
            OrderStatus::Accepted,
        ],
    )?;
    if !quantities.is_empty() {
        if order.refunded > 0 {
            return Err(CommerceError::BadState {
                call: "change the quantities of",
                status: "partly refunded",
            }
            .into());
        }
        if quantities.len() != order.lines.0.len() {
            return Err(CommerceError::BadContent("give one quantity per order line").into());
        }
        if quantities.iter().all(|q| *q == 0) {
            return Err(CommerceError::BadContent(
                "an order keeps at least one item; cancel it instead",
            )
            .into());
        }
        let mut total = 0u64;
        let currency = order.currency;
        for (line, quantity) in order.lines.0.iter_mut().zip(quantities) {
            if *quantity > LINE_QUANTITY_MAX {
                return Err(CommerceError::BadContent(
                    "a line's quantity is at most LINE_QUANTITY_MAX",
                )
                .into());
            }
            if *quantity > line.quantity {
                if product(store, &line.product).await?.status != ProductStatus::Listed {
                    return Err(CommerceError::NotListed(line.product).into());
                }
                reserve(
                    store,
                    &line.product,
                    line.variant,
                    u64::from(quantity - line.quantity),
                    (line.price, &currency),
                )
                .await?;
            } else {
                release(
                    store,
                    &line.product,
                    line.variant,
                    u64::from(line.quantity - quantity),
                )
                .await?;
            }
            line.quantity = *quantity;
            total = total
                .checked_add(
                    line.price
                        .checked_mul(u64::from(*quantity))
                        .ok_or(CommerceError::Overflow("line total"))?,
                )
                .ok_or(CommerceError::Overflow("order total"))?;
        }
        if order.payment == PaymentState::Escrowed {
            if total > order.escrow {
                if order.method != PaymentMethod::Wallet {
                    return Err(CommerceError::WrongPaymentMethod(
                        "a bank-paid order cannot grow; place another order",
                    )
                    .into());
                }
                let more = total - order.escrow;
                money::hold_from_wallet(store, &mut order, shop.sender(), more).await?;
            } else {
                let back = order.escrow - total;
                money::refund_to_buyer(store, &mut order, back).await?;
                order.payment = PaymentState::Escrowed;
            }
        }
        order.total = total;
    }
    if let Some(address) = address {
        check_address(store, shop, &order, address).await?;
        order.address = sealed_digest(address);
        order.address_at = shop.ctx.place();
    }
    save_order(store, id, &mut order, shop.now(), b"modify_order").await
}

/// `cancel_order`: the buyer cancels, or a seller account of its seller refuses, an order
/// before shipment: stock released, escrow refunded in whole. Once some of it is shipped,
/// the same call cancels what is not: see [`cancel_rest`].
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::BadState`] once shipped whole or
/// closed.
pub(crate) async fn cancel<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    if !crate::is_buyer(store, shop, &order).await? {
        let registration = shop.registration(store).await?;
        if registration.org != order.seller || registration.roles & role::SELLER == 0 {
            return Err(CommerceError::NotYourOrder {
                order: *id,
                party: "buyer or seller",
            }
            .into());
        }
    }
    if order.status == OrderStatus::PartlyShipped {
        return cancel_rest(store, shop, id, order).await;
    }
    require_status(
        &order,
        "cancel",
        &[
            OrderStatus::Placed,
            OrderStatus::Paid,
            OrderStatus::Accepted,
        ],
    )?;
    release_all(store, &order).await?;
    let escrow = order.escrow;
    money::refund_to_buyer(store, &mut order, escrow).await?;
    order.status = OrderStatus::Cancelled;
    order.deadline_ms = 0;
    if order.paid == 0 {
        order.payment = PaymentState::Unpaid;
    }
    save_order(store, id, &mut order, shop.now(), b"cancel_order").await
}

/// A partly shipped order's unshipped items are cancelled (its buyer gives up waiting, or
/// its seller cannot send them): their stock is released, each line keeps what was shipped,
/// the order's total drops by their price and escrow returns to the buyer what it holds
/// beyond the new total (earlier refunds count). The order is then shipped whole, or
/// delivered if every shipment already is, and completes as any other.
async fn cancel_rest<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    mut order: Order,
) -> Result<(), Fail> {
    release_all(store, &order).await?;
    let mut unshipped = 0u64;
    for line in &mut order.lines.0 {
        let value = line
            .price
            .checked_mul(u64::from(line.quantity - line.shipped))
            .ok_or(CommerceError::Overflow("line total"))?;
        unshipped = unshipped
            .checked_add(value)
            .ok_or(CommerceError::Overflow("order total"))?;
        line.quantity = line.shipped;
    }
    order.total = order.total.checked_sub(unshipped).ok_or_else(|| {
        BlockError::Invariant(format!(
            "order {id}: its unshipped items cost more than its total"
        ))
    })?;
    if order.payment == PaymentState::Escrowed {
        // Escrow keeps the price of what was shipped; what the seller refunded already
        // counts (a buyer is never refunded more than it paid for what it never got).
        let back = order.escrow.saturating_sub(order.total);
        money::refund_to_buyer(store, &mut order, back).await?;
    }
    order.status = OrderStatus::Shipped;
    if order.payment == PaymentState::Refunded {
        // Escrow was refunded in whole (earlier refunds and this one): nothing is left to
        // settle, as when a seller refunds a shipped order in whole.
        order.status = OrderStatus::Completed;
        order.deadline_ms = 0;
    } else if order.delivered == order.shipments {
        order.status = OrderStatus::Delivered;
        due::start_receipt_window(store, shop, id, &mut order).await?;
    }
    save_order(store, id, &mut order, shop.now(), b"cancel_rest").await
}
