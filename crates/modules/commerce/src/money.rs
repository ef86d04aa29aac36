//! Money: escrow held per order and per asset ([`Holdings`]), settlement less the platform
//! fee, refunds, banks' confirmations of fiat payments and cash remitted, payouts.
//!
//! Every movement between a balance and escrow goes through the ledger (which reports it to
//! the conservation check) and the asset's holdings together, so per asset
//! `Σ balances + escrow + payouts` changes only when a bank issues or redeems, or the peg
//! mints or burns.

use crate::{
    Commerce, Shop, current_key, order, payment_name, refuse_frozen, require_seller, save_order,
};
use consort_execution::{BlockError, Fail, Runtime, Store, ledger};
use consort_governance::Gov;
use consort_types::{
    AccountId, Asset, TxError,
    changes::Record,
    commerce::{
        CommerceError, Holdings, Order, OrderStatus, PaymentMethod, PaymentState, Payout, RecordId,
        SellerStats,
    },
    gov::{FreezeTarget, role},
    state_key::commerce as key,
};

/// What commerce holds of `asset`.
pub async fn holdings<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &Asset,
) -> Result<Holdings, BlockError> {
    Ok(store
        .get::<Holdings>(&key::holdings(asset))
        .await?
        .unwrap_or_default())
}

/// Change what commerce holds of `asset` (and mark the asset for the block's conservation
/// check).
async fn set_holdings<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &Asset,
    holdings: Holdings,
) -> Result<(), BlockError> {
    store.flow(asset.padded(), 0);
    if holdings == Holdings::default() {
        store.delete(&key::holdings(asset)).await?;
    } else {
        store.put(&key::holdings(asset), &holdings).await?;
    }
    Ok(())
}

/// Escrow of `asset` grows by `amount` (already taken from a balance or issued by a bank).
async fn escrow_in<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &Asset,
    amount: u64,
) -> Result<(), Fail> {
    let mut held = holdings(store, asset).await?;
    held.escrow = held
        .escrow
        .checked_add(amount)
        .ok_or(CommerceError::Overflow("escrow"))?;
    set_holdings(store, asset, held).await?;
    Ok(())
}

/// Escrow of `asset` shrinks by `amount` (paid to a balance).
async fn escrow_out<E: Runtime>(
    store: &mut Store<'_, E>,
    asset: &Asset,
    amount: u64,
) -> Result<(), Fail> {
    let mut held = holdings(store, asset).await?;
    held.escrow = held
        .escrow
        .checked_sub(amount)
        .ok_or_else(|| BlockError::Invariant(format!("{asset}: escrow below an order's escrow")))?;
    set_holdings(store, asset, held).await?;
    Ok(())
}

/// Pay `amount` from `from`'s wallet into `order`'s escrow.
pub(crate) async fn hold_from_wallet<E: Runtime>(
    store: &mut Store<'_, E>,
    order: &mut Order,
    from: &AccountId,
    amount: u64,
) -> Result<(), Fail> {
    refuse_frozen(
        store,
        FreezeTarget::Asset(order.currency),
        "the order's currency",
    )
    .await?;
    ledger::debit(store, order.currency, from, amount).await?;
    escrow_in(store, &order.currency, amount).await?;
    order.escrow = order
        .escrow
        .checked_add(amount)
        .ok_or(CommerceError::Overflow("escrow"))?;
    order.paid = order
        .paid
        .checked_add(amount)
        .ok_or(CommerceError::Overflow("paid"))?;
    order.payment = PaymentState::Escrowed;
    Ok(())
}

/// Return `amount` of `order`'s escrow to its buyer.
pub(crate) async fn refund_to_buyer<E: Runtime>(
    store: &mut Store<'_, E>,
    order: &mut Order,
    amount: u64,
) -> Result<(), Fail> {
    if amount == 0 {
        return Ok(());
    }
    if amount > order.escrow {
        return Err(CommerceError::RefundTooLarge {
            asked: amount,
            escrow: order.escrow,
        }
        .into());
    }
    let buyer = current_key(store, &order.buyer).await?;
    refuse_frozen_party(store, &buyer, "the buyer", "the buyer's organisation").await?;
    refuse_frozen(
        store,
        FreezeTarget::Asset(order.currency),
        "the order's currency",
    )
    .await?;
    escrow_out(store, &order.currency, amount).await?;
    ledger::credit(store, order.currency, &buyer, amount).await?;
    order.escrow -= amount;
    order.refunded = order
        .refunded
        .checked_add(amount)
        .ok_or(CommerceError::Overflow("refunded"))?;
    if order.escrow == 0 {
        order.payment = PaymentState::Refunded;
    }
    Ok(())
}

/// Refuse if `account` is frozen, or the organisation it is registered with (as a transfer
/// to it would be), naming `account_is` or `org_is`.
async fn refuse_frozen_party<E: Runtime>(
    store: &mut Store<'_, E>,
    account: &AccountId,
    account_is: &'static str,
    org_is: &'static str,
) -> Result<(), Fail> {
    refuse_frozen(store, FreezeTarget::Account(*account), account_is).await?;
    if let Some(registration) = Gov::registration(store, account).await? {
        refuse_frozen(store, FreezeTarget::Org(registration.org), org_is).await?;
    }
    Ok(())
}

/// Complete `order`: its escrow goes to the payee less the platform fee (to the fee
/// account), the seller's completed count grows. The caller saves the order.
pub(crate) async fn settle<E: Runtime>(
    store: &mut Store<'_, E>,
    rules: &Commerce,
    order: &mut Order,
) -> Result<(), Fail> {
    let payee = current_key(store, &order.payee).await?;
    refuse_frozen(store, FreezeTarget::Account(payee), "the seller").await?;
    refuse_frozen(
        store,
        FreezeTarget::Org(order.seller),
        "the seller organisation",
    )
    .await?;
    refuse_frozen(
        store,
        FreezeTarget::Asset(order.currency),
        "the order's currency",
    )
    .await?;
    let escrow = order.escrow;
    // At most half of a u64: fits.
    let fee = u64::try_from(u128::from(escrow) * u128::from(rules.config.fee_rate_bp) / 10_000)
        .map_err(|_| CommerceError::Overflow("fee"))?;
    escrow_out(store, &order.currency, escrow).await?;
    ledger::credit(store, order.currency, &payee, escrow - fee).await?;
    if fee > 0 {
        ledger::credit(store, order.currency, &rules.config.fee_account, fee).await?;
    }
    order.escrow = 0;
    order.settled = escrow - fee;
    order.fee = fee;
    order.payment = PaymentState::Released;
    order.status = OrderStatus::Completed;
    order.deadline_ms = 0;
    let mut stats = store
        .get::<SellerStats>(&key::seller(&order.seller))
        .await?
        .unwrap_or_default();
    stats.completed = stats.completed.saturating_add(1);
    store
        .put_noted(Record::Seller { org: order.seller }, &stats)
        .await?;
    Ok(())
}

/// Refuse `call` on `order`, naming where it stands: its status while unpaid, its payment
/// state otherwise.
fn where_it_stands(call: &'static str, order: &Order) -> Fail {
    CommerceError::BadState {
        call,
        status: if order.payment == PaymentState::Unpaid {
            order.status.name()
        } else {
            payment_name(order.payment)
        },
    }
    .into()
}

/// `refund`: the seller returns part or all of what escrow holds to the buyer.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::BadState`] (nothing in escrow),
/// [`CommerceError::RefundTooLarge`].
pub(crate) async fn refund<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    amount: u64,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    require_seller(store, shop, id, &order).await?;
    if order.status == OrderStatus::AfterSale {
        // The case decides what goes back: the seller answers it instead.
        return Err(CommerceError::BadState {
            call: "refund",
            status: order.status.name(),
        }
        .into());
    }
    if order.payment != PaymentState::Escrowed {
        return Err(CommerceError::BadState {
            call: "refund",
            status: payment_name(order.payment),
        }
        .into());
    }
    if amount == 0 {
        return Err(TxError::InvalidAmount("a refund must be more than zero").into());
    }
    refund_to_buyer(store, &mut order, amount).await?;
    if order.escrow == 0 {
        // Refunded in whole: the order closes. Before shipment that is a cancellation (its
        // stock comes back); after, it is done with nothing to settle.
        if order.status.before_shipment() {
            crate::stock::release_all(store, &order).await?;
            order.status = OrderStatus::Cancelled;
        } else {
            // Items not yet shipped never will be: their stock comes back.
            crate::stock::release_all(store, &order).await?;
            for line in &mut order.lines.0 {
                line.quantity = line.shipped;
            }
            order.status = OrderStatus::Completed;
        }
        order.deadline_ms = 0;
    }
    save_order(store, id, &mut order, shop.now(), b"refund").await
}

/// The sender's bank organisation, which must issue `asset`.
async fn issuing_bank<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    asset: &Asset,
) -> Result<consort_types::gov::OrgId, Fail> {
    let bank = shop
        .org_with(store, role::BANK, "only a bank account confirms payments")
        .await?;
    match Gov::emoney(store, asset).await? {
        Some(money) if money.issuer == bank => Ok(bank),
        _ => Err(CommerceError::NotIssuer(*asset).into()),
    }
}

/// `confirm_payment`: the bank issuing the order's currency received its fiat (a bank
/// transfer, or cash on delivery the carrier remitted) and issues that much e-money into the
/// order's escrow. A cash on delivery order already delivered completes at once.
///
/// # Errors
/// [`CommerceError::NotIssuer`], [`CommerceError::WrongPaymentMethod`],
/// [`CommerceError::BadState`] (already paid, cash not collected, closed).
pub(crate) async fn confirm_payment<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    amount: u64,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    let bank = issuing_bank(store, shop, &order.currency).await?;
    let ready = match order.method {
        PaymentMethod::Wallet => {
            return Err(CommerceError::WrongPaymentMethod(
                "a wallet order is paid by its buyer, not confirmed by a bank",
            )
            .into());
        }
        PaymentMethod::BankTransfer => {
            order.status == OrderStatus::Placed && order.payment == PaymentState::Unpaid
        }
        PaymentMethod::CashOnDelivery => order.payment == PaymentState::CashCollected,
    };
    if !ready {
        return Err(where_it_stands("confirm_payment", &order));
    }
    if amount != order.total {
        return Err(TxError::InvalidAmount(
            "the fiat received must be the order's total; the order changed since it was paid",
        )
        .into());
    }
    let buyer = current_key(store, &order.buyer).await?;
    refuse_frozen_party(store, &buyer, "the buyer", "the buyer's organisation").await?;
    refuse_frozen(
        store,
        FreezeTarget::Asset(order.currency),
        "the order's currency",
    )
    .await?;
    if !Gov::issue_held(store, &bank, &order.currency, order.total).await? {
        return Err(CommerceError::Overflow("e-money issued").into());
    }
    escrow_in(store, &order.currency, order.total).await?;
    order.escrow = order.total;
    order.paid = order.total;
    order.payment = PaymentState::Escrowed;
    match order.method {
        PaymentMethod::BankTransfer => {
            order.status = OrderStatus::Paid;
            order.deadline_ms = 0;
        }
        _ if order.status == OrderStatus::Delivered => {
            settle(store, shop.rules, &mut order).await?;
        }
        _ => {}
    }
    save_order(store, id, &mut order, shop.now(), b"confirm_payment").await
}

/// `collect_cash`: the assigned carrier records the cash it collected for a cash on delivery
/// order (the whole total, on a shipped order).
///
/// # Errors
/// [`CommerceError::NotYourOrder`] (another carrier), [`CommerceError::WrongPaymentMethod`],
/// [`CommerceError::BadState`], [`TxError::InvalidAmount`] (not the total).
pub(crate) async fn collect_cash<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    amount: u64,
) -> Result<(), Fail> {
    let mut order = order(store, id).await?;
    let carrier = shop
        .org_with(store, role::CARRIER, "only a carrier collects cash")
        .await?;
    if order.carrier != Some(carrier) {
        return Err(CommerceError::NotYourOrder {
            order: *id,
            party: "assigned carrier",
        }
        .into());
    }
    if order.method != PaymentMethod::CashOnDelivery {
        return Err(
            CommerceError::WrongPaymentMethod("only cash on delivery orders take cash").into(),
        );
    }
    if order.payment != PaymentState::Unpaid
        || !matches!(order.status, OrderStatus::Shipped | OrderStatus::Delivered)
    {
        return Err(where_it_stands("collect_cash", &order));
    }
    if amount != order.total {
        return Err(TxError::InvalidAmount("cash collected must be the order's total").into());
    }
    order.payment = PaymentState::CashCollected;
    save_order(store, id, &mut order, shop.now(), b"collect_cash").await
}

/// `request_payout`: a seller asks the issuing bank to pay `amount` of its e-money out to its
/// bank account; the e-money leaves its balance for the payout until the bank confirms.
///
/// # Errors
/// [`CommerceError::UnknownCurrency`] (not an e-money), insufficient balance.
pub(crate) async fn request_payout<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    asset: &Asset,
    amount: u64,
) -> Result<(), Fail> {
    shop.org_with(store, role::SELLER, "only a seller asks for payouts")
        .await?;
    if amount == 0 {
        return Err(TxError::InvalidAmount("a payout must be more than zero").into());
    }
    if Gov::emoney(store, asset).await?.is_none() {
        return Err(CommerceError::UnknownCurrency(*asset).into());
    }
    refuse_frozen(store, FreezeTarget::Asset(*asset), "the asset").await?;
    ledger::debit(store, asset, shop.sender(), amount).await?;
    let mut held = holdings(store, asset).await?;
    held.payouts = held
        .payouts
        .checked_add(amount)
        .ok_or(CommerceError::Overflow("payouts"))?;
    set_holdings(store, asset, held).await?;
    store
        .put_noted(
            Record::Payout {
                id: shop.ctx.place(),
            },
            &Payout {
                seller: *shop.sender(),
                asset: *asset,
                amount,
                confirmed: false,
                requested: shop.now(),
            },
        )
        .await?;
    Ok(())
}

/// `confirm_payout`: the issuing bank paid the fiat; the e-money is redeemed.
///
/// # Errors
/// [`CommerceError::UnknownPayout`], [`CommerceError::PayoutConfirmed`],
/// [`CommerceError::NotIssuer`], [`CommerceError::Frozen`] (the asset, the seller or its
/// organisation).
pub(crate) async fn confirm_payout<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
) -> Result<(), Fail> {
    let mut payout = store
        .get::<Payout>(&key::payout(id))
        .await?
        .ok_or(CommerceError::UnknownPayout(*id))?;
    if payout.confirmed {
        return Err(CommerceError::PayoutConfirmed(*id).into());
    }
    let bank = issuing_bank(store, shop, &payout.asset).await?;
    // A freeze of the asset, the seller or its organisation holds the payout (withdrawing it
    // is held too) until it is lifted: frozen value does not leave the chain as fiat.
    refuse_frozen(store, FreezeTarget::Asset(payout.asset), "the asset").await?;
    let seller = current_key(store, &payout.seller).await?;
    refuse_frozen_party(store, &seller, "the seller", "the seller organisation").await?;
    if !Gov::redeem_held(store, &bank, &payout.asset, payout.amount).await? {
        return Err(BlockError::Invariant(format!(
            "payout {id}: more {} redeemed than issued",
            payout.asset
        ))
        .into());
    }
    let mut held = holdings(store, &payout.asset).await?;
    held.payouts = held.payouts.checked_sub(payout.amount).ok_or_else(|| {
        BlockError::Invariant(format!("{}: payouts below a payout", payout.asset))
    })?;
    set_holdings(store, &payout.asset, held).await?;
    payout.confirmed = true;
    store.put_noted(Record::Payout { id: *id }, &payout).await?;
    Ok(())
}

/// `cancel_payout`: the seller that asked for a payout withdraws it before its bank confirms;
/// the e-money returns to its balance and the request is gone (its transactions stay).
///
/// # Errors
/// [`CommerceError::UnknownPayout`], [`CommerceError::PayoutConfirmed`],
/// [`CommerceError::NotYourOrder`] (another seller's payout).
pub(crate) async fn cancel_payout<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
) -> Result<(), Fail> {
    let payout = store
        .get::<Payout>(&key::payout(id))
        .await?
        .ok_or(CommerceError::UnknownPayout(*id))?;
    if payout.confirmed {
        return Err(CommerceError::PayoutConfirmed(*id).into());
    }
    if current_key(store, &payout.seller).await? != *shop.sender() {
        return Err(CommerceError::NotYourOrder {
            order: *id,
            party: "seller that asked for the payout",
        }
        .into());
    }
    refuse_frozen(store, FreezeTarget::Asset(payout.asset), "the asset").await?;
    let mut held = holdings(store, &payout.asset).await?;
    held.payouts = held.payouts.checked_sub(payout.amount).ok_or_else(|| {
        BlockError::Invariant(format!("{}: payouts below a payout", payout.asset))
    })?;
    set_holdings(store, &payout.asset, held).await?;
    ledger::credit(store, payout.asset, shop.sender(), payout.amount).await?;
    store.delete_noted(Record::Payout { id: *id }).await?;
    Ok(())
}
