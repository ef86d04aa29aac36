//! Fulfilment: the seller accepts and ships (partial shipments, a carrier assigned per
//! shipment), the assigned carrier posts events, digital goods and services are fulfilled
//! with a sealed voucher, the buyer confirms receipt.

use crate::{
    Shop, due, money, order, orders::sealed_digest, payment_name, require_buyer, require_seller,
    require_status, save_order, variant,
};
use consort_execution::{BlockError, Fail, Runtime, Store};
use consort_governance::Gov;
use consort_types::{
    changes::Record,
    codec_util::List,
    commerce::{
        CarrierEvent, CommerceError, Order, OrderStatus, PaymentMethod, PaymentState, ProductKind,
        RETURN_SHIPMENT_BASE, RecordId, SHIPMENTS_MAX, ShipLine, Shipment, ShipmentStatus,
        is_return_shipment,
    },
    gov::{OrgId, role},
    sealed::{PrivateError, Sealed},
    state_key::commerce as key,
};

/// `accept_orders`: the seller accepts paid orders (and cash on delivery ones), all or none.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::BadState`] (unpaid, already accepted,
/// closed) — naming the first order that fails.
pub(crate) async fn accept<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    ids: &[RecordId],
) -> Result<(), Fail> {
    for id in ids {
        let mut order = order(store, id).await?;
        require_seller(store, shop, id, &order).await?;
        let ready = order.status == OrderStatus::Paid
            || (order.status == OrderStatus::Placed
                && order.method == PaymentMethod::CashOnDelivery);
        if !ready {
            return Err(CommerceError::BadState {
                call: "accept",
                status: order.status.name(),
            }
            .into());
        }
        order.status = OrderStatus::Accepted;
        order.deadline_ms = 0;
        save_order(store, id, &mut order, shop.now(), b"accept").await?;
    }
    Ok(())
}

/// Whether some recipient of `label` is an active carrier account of `carrier`.
async fn sealed_to_carrier<E: Runtime>(
    store: &mut Store<'_, E>,
    label: &Sealed,
    carrier: &OrgId,
) -> Result<bool, BlockError> {
    for recipient in label.recipients() {
        if let Some(registration) = Gov::registration(store, recipient).await?
            && registration.org == *carrier
            && registration.roles & role::CARRIER != 0
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Mark `lines` of `order` shipped (their reserved stock is sold).
async fn ship_lines<E: Runtime>(
    store: &mut Store<'_, E>,
    order: &mut Order,
    lines: &[ShipLine],
) -> Result<(), Fail> {
    for ship in lines {
        let line =
            order
                .lines
                .0
                .get_mut(usize::from(ship.line))
                .ok_or(CommerceError::BadContent(
                    "a shipment names a line the order lacks",
                ))?;
        let left = line.quantity - line.shipped;
        if ship.quantity == 0 || ship.quantity > left {
            return Err(CommerceError::BadContent(
                "a shipment carries 1 to the line's unshipped items",
            )
            .into());
        }
        line.shipped += ship.quantity;
        let mut state = variant(store, &line.product, line.variant).await?;
        state.reserved = state
            .reserved
            .checked_sub(u64::from(ship.quantity))
            .ok_or_else(|| {
                BlockError::Invariant(format!(
                    "product {} variant {}: shipping more than is reserved",
                    line.product, line.variant
                ))
            })?;
        store.put_fixed_noted(
            Record::Variant {
                product: line.product,
                variant: line.variant,
            },
            &state,
        );
    }
    Ok(())
}

fn all_shipped(order: &Order) -> bool {
    order.lines.0.iter().all(|l| l.shipped == l.quantity)
}

/// `ship`: the seller ships items of an accepted order with a carrier organisation; the
/// label is sealed to the seller, the buyer, a carrier account of that carrier and a
/// regulator.
///
/// # Errors
/// [`CommerceError::BadState`] (not accepted: unpaid, already shipped whole, closed),
/// [`CommerceError::NotACarrier`], [`CommerceError::BadContent`] (lines),
/// a label not sealed to its parties.
pub(crate) async fn ship<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    lines: &[ShipLine],
    carrier: &OrgId,
    label: &Sealed,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_seller(store, shop, id, &order).await?;
    require_status(
        &order,
        "ship",
        &[OrderStatus::Accepted, OrderStatus::PartlyShipped],
    )?;
    if order.kind != ProductKind::Physical {
        return Err(CommerceError::BadContent(
            "digital goods and services are fulfilled, not shipped",
        )
        .into());
    }
    if lines.is_empty() {
        return Err(CommerceError::BadContent("a shipment carries at least one line").into());
    }
    if order.shipments >= SHIPMENTS_MAX {
        return Err(CommerceError::BadContent("the order has its most shipments").into());
    }
    crate::require_carrier(store, carrier).await?;
    let buyer = crate::current_key(store, &order.buyer).await?;
    consort_private::execute::check_envelope(
        store,
        shop.gov,
        label,
        &[(shop.sender(), "seller"), (&buyer, "buyer")],
    )
    .await?;
    if !sealed_to_carrier(store, label, carrier).await? {
        return Err(PrivateError::RecipientMissing("carrier").into());
    }
    ship_lines(store, &mut order, lines).await?;
    let n = order.shipments;
    store
        .put_noted(
            Record::Shipment {
                order: *id,
                shipment: n,
            },
            &Shipment {
                carrier: *carrier,
                status: ShipmentStatus::Pending,
                lines: List(lines.to_vec()),
                label: sealed_digest(label),
                events: 0,
                created: shop.now(),
                updated: shop.now(),
            },
        )
        .await?;
    order.shipments = n + 1;
    order.carrier.get_or_insert(*carrier);
    order.status = if all_shipped(&order) {
        OrderStatus::Shipped
    } else {
        OrderStatus::PartlyShipped
    };
    save_order(store, id, &mut order, shop.now(), b"ship").await
}

/// `carrier_events`: the assigned carrier moves shipments along their state machine. When
/// every item has shipped and every shipment is delivered, the order is delivered and its
/// receipt window starts.
///
/// # Errors
/// [`CommerceError::NotYourOrder`] (another carrier's shipment),
/// [`CommerceError::UnknownShipment`], [`CommerceError::BadState`] (a move the shipment's
/// state does not allow) — naming the first event that fails.
pub(crate) async fn carrier_events<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    events: &[CarrierEvent],
) -> Result<(), Fail> {
    let carrier = shop
        .org_with(store, role::CARRIER, "only a carrier posts shipment events")
        .await?;
    for event in events {
        let id = &event.order;
        let mut order = order(store, id).await?;
        let mut shipment = store
            .get::<Shipment>(&key::shipment(id, event.shipment))
            .await?
            .ok_or(CommerceError::UnknownShipment {
                order: *id,
                shipment: event.shipment,
            })?;
        if shipment.carrier != carrier {
            return Err(CommerceError::NotYourOrder {
                order: *id,
                party: "assigned carrier",
            }
            .into());
        }
        if !shipment.status.may_become(event.status) {
            return Err(CommerceError::BadState {
                call: "move a shipment",
                status: shipment.status.name(),
            }
            .into());
        }
        shipment.status = event.status;
        shipment.events = shipment.events.saturating_add(1);
        shipment.updated = shop.now();
        store
            .put_noted(
                Record::Shipment {
                    order: *id,
                    shipment: event.shipment,
                },
                &shipment,
            )
            .await?;
        if is_return_shipment(event.shipment) {
            // Goods going back: the order's deliveries do not change; their arrival gives
            // the seller its time to inspect them.
            if event.status == ShipmentStatus::Delivered {
                let case = u8::try_from(event.shipment - RETURN_SHIPMENT_BASE).unwrap_or(0);
                crate::after_sale::returned_to_seller(store, shop, id, &order, case).await?;
            }
        } else if event.status == ShipmentStatus::Delivered {
            order.delivered = order.delivered.saturating_add(1);
            if order.status == OrderStatus::Shipped && order.delivered == order.shipments {
                order.status = OrderStatus::Delivered;
                due::start_receipt_window(store, shop, id, &mut order).await?;
            }
        }
        save_order(store, id, &mut order, shop.now(), b"carrier_event").await?;
    }
    Ok(())
}

/// `fulfil`: the seller fulfils an accepted digital good or service with a code or voucher
/// sealed to the seller, the buyer and a regulator; the order is delivered.
///
/// # Errors
/// [`CommerceError::BadState`] (not accepted), [`CommerceError::BadContent`] (a physical
/// good), a voucher not sealed to its parties.
pub(crate) async fn fulfil<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    voucher: &Sealed,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_seller(store, shop, id, &order).await?;
    require_status(&order, "fulfil", &[OrderStatus::Accepted])?;
    if order.kind == ProductKind::Physical {
        return Err(CommerceError::BadContent("physical goods are shipped").into());
    }
    let buyer = crate::current_key(store, &order.buyer).await?;
    consort_private::execute::check_envelope(
        store,
        shop.gov,
        voucher,
        &[(shop.sender(), "seller"), (&buyer, "buyer")],
    )
    .await?;
    let lines: Vec<ShipLine> = (0u8..)
        .zip(&order.lines.0)
        .filter(|(_, l)| l.quantity > 0)
        .map(|(line, l)| ShipLine {
            line,
            quantity: l.quantity,
        })
        .collect();
    ship_lines(store, &mut order, &lines).await?;
    store
        .put_noted(
            Record::Shipment {
                order: *id,
                shipment: 0,
            },
            &Shipment {
                carrier: order.seller,
                status: ShipmentStatus::Delivered,
                lines: List(lines),
                label: sealed_digest(voucher),
                events: 0,
                created: shop.now(),
                updated: shop.now(),
            },
        )
        .await?;
    order.shipments = 1;
    order.delivered = 1;
    order.status = OrderStatus::Delivered;
    due::start_receipt_window(store, shop, id, &mut order).await?;
    save_order(store, id, &mut order, shop.now(), b"fulfil").await
}

/// `confirm_receipt`: the buyer confirms it received a shipped or delivered order; escrow is
/// settled to the seller less the platform fee.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::BadState`] (not shipped, or not paid:
/// cash on delivery not yet remitted), a frozen seller.
pub(crate) async fn confirm_receipt<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_buyer(store, shop, id, &order).await?;
    require_status(
        &order,
        "confirm receipt of",
        &[OrderStatus::Shipped, OrderStatus::Delivered],
    )?;
    if order.payment != PaymentState::Escrowed {
        return Err(CommerceError::BadState {
            call: "confirm receipt of",
            status: payment_name(order.payment),
        }
        .into());
    }
    money::settle(store, shop.rules, &mut order).await?;
    save_order(store, id, &mut order, shop.now(), b"confirm_receipt").await
}
