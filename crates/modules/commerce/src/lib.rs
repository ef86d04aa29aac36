//! The B2C shop on chain (`DESIGN.md` §8): sellers publish products and manage stock,
//! customers place, modify, cancel and pay orders into escrow (wallet, bank transfer or cash on
//! delivery), sellers accept and ship, carriers post shipment events, receipt (or its window
//! passing) settles escrow to the seller less the platform fee, banks pay sellers out, and
//! buyers review what they bought.
//!
//! Separate state machines, each transition checked (who, from which state) and stamped with
//! block height and time: the order ([`OrderStatus`]), its payment ([`PaymentState`]) and each
//! shipment ([`consort_types::commerce::ShipmentStatus`]). Every change of an order extends its
//! history chain, so the transactions carrying them prove its whole life.
//!
//! * [`catalogue`]: products, versions, listing, stock.
//! * [`orders`]: placing, paying, modifying, cancelling.
//! * [`fulfilment`]: accepting, shipping, carrier events, digital fulfilment, receipt.
//! * [`money`]: escrow, settlement, refunds, bank confirmations, payouts.
//! * [`after_sale`]: returns, refunds without return, disputes and the operator's rulings.
//! * [`reviews`]: reviews, revisions, replies and ratings.
//! * [`stock`]: reserving and releasing stock per variant.
//! * [`due`]: deadlines in block time (unpaid orders expire, delivered ones complete).
//! * [`conservation`]: what every block must balance, per asset.
//!
//! Nothing here reads the clock: deadlines run on block time.

pub mod after_sale;
pub mod catalogue;
pub mod conservation;
pub mod due;
pub mod fulfilment;
pub mod money;
pub mod orders;
pub mod reviews;
pub mod stock;

use consort_execution::{BlockError, BlockInfo, Context, Fail, Runtime, Store};
use consort_governance::Gov;
use consort_types::{
    AccountId, Asset, Genesis, TxError,
    changes::{CHANGE_VALUE_MAX, Change, Changes, Record},
    commerce::{
        CommerceCall, CommerceConfig, CommerceError, Order, OrderStatus, PaymentState, ProductHead,
        RecordId, Stamp, VariantState,
    },
    gov::{FreezeTarget, OrgId, Registration},
    sha256,
    state_key::commerce as key,
};

/// The shop of a chain, from genesis.
#[derive(Clone, Debug)]
pub struct Commerce {
    /// Its rules.
    pub config: CommerceConfig,
    /// The pegged coin, if the chain has a peg.
    pub pegged: Option<Asset>,
}

impl Commerce {
    /// The shop `genesis` configures, if any (it needs governance, which genesis checks).
    pub fn from_genesis(genesis: &Genesis) -> Option<Self> {
        genesis.commerce.as_ref().map(|config| Self {
            config: config.clone(),
            pegged: genesis.peg.as_ref().map(|p| p.asset),
        })
    }

    /// Run one shop call.
    ///
    /// # Errors
    /// The call's [`CommerceError`] (or another [`TxError`]) as its receipt; a state failure.
    pub async fn apply<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        gov: &Gov,
        ctx: Context<'_>,
        call: &CommerceCall,
    ) -> Result<(), Fail> {
        use CommerceCall as C;
        let shop = Shop {
            rules: self,
            gov,
            ctx,
        };
        match call {
            C::PublishProduct { content } => catalogue::publish(store, &shop, content).await,
            C::UpdateProduct { product, content } => {
                catalogue::update(store, &shop, product, content).await
            }
            C::SetListed { product, listed } => {
                catalogue::set_listed(store, &shop, product, *listed).await
            }
            C::Suspend {
                product, suspended, ..
            } => catalogue::suspend(store, &shop, product, *suspended).await,
            C::SetStock { product, changes } => {
                catalogue::set_stock(store, &shop, product, &changes.0).await
            }
            C::PlaceOrder {
                lines,
                method,
                pay,
                address,
            } => orders::place(store, &shop, &lines.0, *method, *pay, address).await,
            C::PayOrder { order } => orders::pay(store, &shop, order).await,
            C::ModifyOrder {
                order,
                quantities,
                address,
            } => orders::modify(store, &shop, order, &quantities.0, address.as_ref()).await,
            C::CancelOrder { order, .. } => orders::cancel(store, &shop, order).await,
            C::AcceptOrders { orders } => fulfilment::accept(store, &shop, &orders.0).await,
            C::Ship {
                order,
                lines,
                carrier,
                label,
            } => fulfilment::ship(store, &shop, order, &lines.0, carrier, label).await,
            C::ShipOrders { shipments } => {
                if shipments.0.is_empty() {
                    return Err(CommerceError::BadContent("ship_orders needs a shipment").into());
                }
                for shipping in &shipments.0 {
                    fulfilment::ship(
                        store,
                        &shop,
                        &shipping.order,
                        &shipping.lines.0,
                        &shipping.carrier,
                        &shipping.label,
                    )
                    .await?;
                }
                Ok(())
            }
            C::CarrierEvents { events } => {
                fulfilment::carrier_events(store, &shop, &events.0).await
            }
            C::Fulfil { order, voucher } => fulfilment::fulfil(store, &shop, order, voucher).await,
            C::ConfirmReceipt { order } => fulfilment::confirm_receipt(store, &shop, order).await,
            C::Refund { order, amount, .. } => money::refund(store, &shop, order, *amount).await,
            C::ConfirmPayment { order, amount } => {
                money::confirm_payment(store, &shop, order, *amount).await
            }
            C::CollectCash { order, amount } => {
                money::collect_cash(store, &shop, order, *amount).await
            }
            C::RequestPayout { asset, amount } => {
                money::request_payout(store, &shop, asset, *amount).await
            }
            C::ConfirmPayout { payout } => money::confirm_payout(store, &shop, payout).await,
            C::CancelPayout { payout } => money::cancel_payout(store, &shop, payout).await,
            C::Review {
                order,
                line,
                content,
            } => reviews::review(store, &shop, order, *line, content).await,
            C::ReviseReview {
                order,
                line,
                content,
            } => reviews::revise(store, &shop, order, *line, content).await,
            C::ReplyReview { order, line, text } => {
                reviews::reply(store, &shop, order, *line, text.as_str()).await
            }
            C::RequestReturn {
                order,
                amount,
                goods_back,
                ..
            } => after_sale::request(store, &shop, order, *amount, *goods_back).await,
            C::AnswerReturn { order, approve, .. } => {
                after_sale::answer(store, &shop, order, *approve).await
            }
            C::ReturnShipped {
                order,
                carrier,
                tracking,
            } => after_sale::shipped_back(store, &shop, order, carrier, tracking.as_str()).await,
            C::ReceiveReturn { order } => after_sale::receive(store, &shop, order).await,
            C::OpenDispute { order, .. } => after_sale::dispute(store, &shop, order).await,
            C::RuleDispute { order, refund, .. } => {
                after_sale::rule(store, &shop, order, *refund).await
            }
            C::WithdrawReturn { order } => after_sale::withdraw(store, &shop, order).await,
        }
    }

    /// End of block: unpaid orders past their payment window expire, delivered orders past
    /// their receipt window complete (bounded per block; the rest follow in later blocks).
    ///
    /// # Errors
    /// A state failure or a broken invariant.
    pub async fn end_block<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        gov: &Gov,
        block: BlockInfo,
    ) -> Result<(), BlockError> {
        due::run(store, self, gov, block).await
    }
}

/// The shop records the block wrote so far ([`Store::notes`]), each with its value now: what
/// the read side follows. Every node lists the same records, since only kept transactions
/// and the block's own steps name them. The list is the node's own record, never a reason
/// to refuse a block: a record larger than [`CHANGE_VALUE_MAX`] (none can be) is left out.
pub fn changes<E: Runtime>(store: &mut Store<'_, E>) -> Changes {
    let mut changes = Vec::with_capacity(store.notes().len());
    for (record, value) in store.take_notes() {
        if value.as_ref().is_some_and(|v| v.len() > CHANGE_VALUE_MAX) {
            tracing::error!(
                ?record,
                "a shop record too large for the change list; left out"
            );
            continue;
        }
        changes.push(Change { record, value });
    }
    Changes(changes)
}

/// Encoded bytes of a one-line order, a one-line shipment and a product head: the records
/// [`keys_read`] loads ahead (a longer order's other chunks are read as it runs).
pub const ORDER_BYTES_ONE_LINE: usize = 312;
/// Encoded bytes of a one-line shipment.
pub const SHIPMENT_BYTES_ONE_LINE: usize = 91;
/// Encoded bytes of a product head.
pub const PRODUCT_HEAD_BYTES: usize = 132;
/// Encoded bytes of an after-sales case with a carrier named.
pub const AFTER_SALE_BYTES: usize = 84;
/// Encoded bytes of a published sealing key.
pub const SEAL_KEY_BYTES: usize = 32;

/// The state keys a shop call will read that its block can load in one database pass before
/// it runs: the orders it names, their shipments, the products and variants it orders, the
/// sealing keys and registrations of its envelopes' recipients. A
/// guess, never a rule: what it misses is read as the call runs, what it loads in vain costs
/// only a lookup.
pub fn keys_read(call: &CommerceCall, out: &mut Vec<consort_types::Digest>) {
    if let CommerceCall::ShipOrders { shipments } = call {
        // A seller's many shipments share most recipients (itself, the carrier, the
        // regulator): guessed once each, the whole call within a few calls' worth.
        let start = out.len();
        for shipping in &shipments.0 {
            guess_ship(&shipping.order, &shipping.label, out);
        }
        let mut guessed = out.split_off(start);
        guessed.sort_unstable();
        guessed.dedup();
        guessed.truncate(KEYS_READ_PER_CALL_MAX);
        out.extend(guessed);
        return;
    }
    let start = out.len();
    guess_keys(call, out);
    // A guess costs the block a lookup even when the call then fails at once (a bogus
    // order id): bounded per call.
    out.truncate(start + KEYS_READ_PER_CALL_MAX);
}

/// What shipping `id` with `label` reads: the order, the label's recipients.
fn guess_ship(
    id: &RecordId,
    label: &consort_types::sealed::Sealed,
    out: &mut Vec<consort_types::Digest>,
) {
    guess_order(id, out);
    guess_sealed_to(label, out);
}

/// An order's record.
fn guess_order(id: &RecordId, out: &mut Vec<consort_types::Digest>) {
    out.extend(consort_execution::record_keys(
        &key::order(id),
        ORDER_BYTES_ONE_LINE,
    ));
}

/// An envelope's recipients: their sealing keys, and their registrations (one must be a
/// regulator's).
fn guess_sealed_to(envelope: &consort_types::sealed::Sealed, out: &mut Vec<consort_types::Digest>) {
    for recipient in envelope.recipients() {
        out.extend(consort_execution::record_keys(
            &consort_types::state_key::private::seal_key(recipient),
            SEAL_KEY_BYTES,
        ));
        out.push(consort_types::state_key::gov::registration(recipient));
    }
}

/// Most keys [`keys_read`] guesses for one call: four for each event of the largest
/// `carrier_events` (a one-line order's three chunks and its shipment), so a call naming many
/// orders (a seller accepting 256, a carrier posting 256 events, a seller shipping 64) has
/// all of them loaded in the block's one pass, where reading each as the call runs costs two
/// passes an order (`consort bench orders`: about 2 in 3 order reads did). A guess costs a
/// lookup even if the call then fails at once (a bogus or foreign order id), so what a
/// block's calls guess together is bounded too ([`KEYS_AHEAD_PER_BLOCK_MAX`]).
pub const KEYS_READ_PER_CALL_MAX: usize = 4 * consort_types::commerce::CARRIER_EVENTS_MAX;

/// Most keys a block loads ahead for all its shop calls together, in transaction order (what
/// the rest would have guessed is read as they run): 32 for each of `BLOCK_TXS_MAX`
/// transactions, so a leader filling a block with calls that fail at once makes every node
/// load no more than before calls were guessed whole, while a block of real shop traffic
/// (about 5,000 keys at 800 transactions) is loaded entirely.
pub const KEYS_AHEAD_PER_BLOCK_MAX: usize = 32 * consort_types::limits::BLOCK_TXS_MAX;

/// What a block's shop calls, in transaction order, have loaded ahead: each call's
/// [`keys_read`], until the block has guessed [`KEYS_AHEAD_PER_BLOCK_MAX`] keys (the rest is
/// read as the calls run). Appended to `out`; never more than the bound, whatever the calls.
pub fn keys_ahead<'a>(
    calls: impl IntoIterator<Item = &'a CommerceCall>,
    out: &mut Vec<consort_types::Digest>,
) {
    let start = out.len();
    for call in calls {
        if out.len() - start >= KEYS_AHEAD_PER_BLOCK_MAX {
            break;
        }
        keys_read(call, out);
    }
    out.truncate(start + KEYS_AHEAD_PER_BLOCK_MAX);
}

fn guess_keys(call: &CommerceCall, out: &mut Vec<consort_types::Digest>) {
    use CommerceCall as C;
    use consort_execution::record_keys;
    let order = guess_order;
    let sealed_to = guess_sealed_to;
    match call {
        C::PlaceOrder { lines, address, .. } => {
            sealed_to(address, out);
            for line in &lines.0 {
                out.extend(record_keys(
                    &key::product(&line.product),
                    PRODUCT_HEAD_BYTES,
                ));
                out.push(key::variant(&line.product, line.variant));
            }
        }
        C::AcceptOrders { orders } => {
            for id in &orders.0 {
                order(id, out);
            }
        }
        C::CarrierEvents { events } => {
            for event in &events.0 {
                order(&event.order, out);
                out.extend(record_keys(
                    &key::shipment(&event.order, event.shipment),
                    SHIPMENT_BYTES_ONE_LINE,
                ));
            }
        }
        C::Ship {
            order: id, label, ..
        }
        | C::Fulfil {
            order: id,
            voucher: label,
        } => {
            order(id, out);
            sealed_to(label, out);
        }
        C::PayOrder { order: id }
        | C::ModifyOrder { order: id, .. }
        | C::CancelOrder { order: id, .. }
        | C::ConfirmReceipt { order: id }
        | C::Refund { order: id, .. }
        | C::ConfirmPayment { order: id, .. }
        | C::CollectCash { order: id, .. }
        | C::Review { order: id, .. }
        | C::ReviseReview { order: id, .. }
        | C::ReplyReview { order: id, .. } => order(id, out),
        C::RequestReturn { order: id, .. }
        | C::AnswerReturn { order: id, .. }
        | C::ReturnShipped { order: id, .. }
        | C::ReceiveReturn { order: id }
        | C::OpenDispute { order: id, .. }
        | C::RuleDispute { order: id, .. }
        | C::WithdrawReturn { order: id } => {
            order(id, out);
            out.extend(record_keys(&key::after_sale(id), AFTER_SALE_BYTES));
        }
        C::PublishProduct { .. }
        | C::UpdateProduct { .. }
        | C::SetListed { .. }
        | C::Suspend { .. }
        | C::SetStock { .. }
        | C::RequestPayout { .. }
        | C::ConfirmPayout { .. }
        | C::CancelPayout { .. } => {}
        // Guessed per shipment by `keys_read`.
        C::ShipOrders { .. } => {}
    }
}

/// What a call runs with: the shop's rules, governance (organisations, roles, freezes,
/// e-money) and the call's context.
pub(crate) struct Shop<'a> {
    pub(crate) rules: &'a Commerce,
    pub(crate) gov: &'a Gov,
    pub(crate) ctx: Context<'a>,
}

impl Shop<'_> {
    pub(crate) fn sender(&self) -> &AccountId {
        self.ctx.sender
    }

    pub(crate) fn now(&self) -> Stamp {
        stamp(self.ctx.block)
    }

    /// The sender's active registration (governance let it send, so it has one unless it is
    /// a validator without an organisation).
    pub(crate) async fn registration<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
    ) -> Result<Registration, Fail> {
        Gov::registration(store, self.sender())
            .await?
            .ok_or_else(|| {
                TxError::Unauthorized {
                    call: "commerce",
                    reason: "the sender is not a registered account of a member organisation",
                }
                .into()
            })
    }

    /// The sender's organisation, which must hold `role`.
    pub(crate) async fn org_with<E: Runtime>(
        &self,
        store: &mut Store<'_, E>,
        role: u16,
        reason: &'static str,
    ) -> Result<OrgId, Fail> {
        let registration = self.registration(store).await?;
        if registration.roles & role == 0 {
            return Err(TxError::Unauthorized {
                call: "commerce",
                reason,
            }
            .into());
        }
        Ok(registration.org)
    }
}

/// Set a deadline of order `id` at `deadline_ms` ([`due`] handles it when it passes).
///
/// # Errors
/// A state failure.
pub async fn schedule<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &RecordId,
    deadline_ms: u64,
) -> Result<(), BlockError> {
    let second = deadline_ms / 1_000;
    let n = store
        .get::<u32>(&key::due_count(second))
        .await?
        .unwrap_or(0);
    let next = n
        .checked_add(1)
        .ok_or_else(|| BlockError::Invariant(format!("deadline second {second} is full")))?;
    store.put(&key::due(second, n), id).await?;
    store.put(&key::due_count(second), &next).await?;
    Ok(())
}

/// The stamp of `block`.
pub(crate) const fn stamp(block: BlockInfo) -> Stamp {
    Stamp {
        height: block.height,
        time_ms: block.timestamp_ms,
    }
}

/// The key `account` holds now ([`Gov::current_key`]), so that what is paid to it reaches a
/// key that can spend it.
pub(crate) async fn current_key<E: Runtime>(
    store: &mut Store<'_, E>,
    account: &AccountId,
) -> Result<AccountId, BlockError> {
    Ok(Gov::current_key(store, account).await?)
}

/// Refuse unless `carrier` is a member logistics organisation that is not frozen.
pub(crate) async fn require_carrier<E: Runtime>(
    store: &mut Store<'_, E>,
    carrier: &OrgId,
) -> Result<(), Fail> {
    match Gov::member(store, carrier).await? {
        Some(org) if org.kind == consort_types::gov::OrgKind::Logistics => {}
        _ => return Err(CommerceError::NotACarrier(*carrier).into()),
    }
    refuse_frozen(store, FreezeTarget::Org(*carrier), "the carrier").await
}

/// Refuse if `target` is frozen, naming `what`.
pub(crate) async fn refuse_frozen<E: Runtime>(
    store: &mut Store<'_, E>,
    target: FreezeTarget,
    what: &'static str,
) -> Result<(), Fail> {
    if Gov::is_frozen(store, target).await? {
        return Err(CommerceError::Frozen(what).into());
    }
    Ok(())
}

/// Product `id`'s head.
pub(crate) async fn product<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &RecordId,
) -> Result<ProductHead, Fail> {
    store
        .get::<ProductHead>(&key::product(id))
        .await?
        .ok_or_else(|| CommerceError::UnknownProduct(*id).into())
}

/// Variant `variant` of product `id`.
pub(crate) async fn variant<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &RecordId,
    variant: u16,
) -> Result<VariantState, Fail> {
    store
        .get_fixed::<VariantState>(&key::variant(id, variant))
        .await?
        .ok_or_else(|| {
            CommerceError::UnknownVariant {
                product: *id,
                variant,
            }
            .into()
        })
}

/// Order `id`.
pub(crate) async fn order<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &RecordId,
) -> Result<Order, Fail> {
    store
        .get::<Order>(&key::order(id))
        .await?
        .ok_or_else(|| CommerceError::UnknownOrder(*id).into())
}

/// Record a change of order `id` made at `at` by the transaction at `place` (or end of block,
/// `place: None`): the change count, the history chain, the last-change stamp; then store it.
pub(crate) async fn save_order<E: Runtime>(
    store: &mut Store<'_, E>,
    id: &RecordId,
    order: &mut Order,
    at: Stamp,
    change: &[u8],
) -> Result<(), Fail> {
    order.changes = order.changes.saturating_add(1);
    order.updated = at;
    order.history = sha256(&[
        &order.history,
        &at.height.to_be_bytes(),
        &order.status.tag().to_be_bytes(),
        &order.payment.tag().to_be_bytes(),
        change,
    ])
    .0;
    store.put_noted(Record::Order { id: *id }, order).await?;
    Ok(())
}

/// Refuse `call` on an order whose status is not one of `allowed`.
pub(crate) fn require_status(
    order: &Order,
    call: &'static str,
    allowed: &[OrderStatus],
) -> Result<(), Fail> {
    if allowed.contains(&order.status) {
        Ok(())
    } else {
        Err(CommerceError::BadState {
            call,
            status: order.status.name(),
        }
        .into())
    }
}

/// The payment state's name.
pub(crate) const fn payment_name(payment: PaymentState) -> &'static str {
    match payment {
        PaymentState::Unpaid => "unpaid",
        PaymentState::CashCollected => "cash_collected",
        PaymentState::Escrowed => "escrowed",
        PaymentState::Released => "released",
        PaymentState::Refunded => "refunded",
    }
}

/// Refuse unless the sender is `order`'s buyer.
pub(crate) async fn require_buyer<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    order: &Order,
) -> Result<(), Fail> {
    if is_buyer(store, shop, order).await? {
        Ok(())
    } else {
        Err(CommerceError::NotYourOrder {
            order: *id,
            party: "buyer",
        }
        .into())
    }
}

/// Whether the sender is `order`'s buyer: the key that placed it, or the key that account
/// was rotated to since (a lost or replaced key does not lose its orders).
pub(crate) async fn is_buyer<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    order: &Order,
) -> Result<bool, BlockError> {
    Ok(order.buyer == *shop.sender() || current_key(store, &order.buyer).await? == *shop.sender())
}

/// Refuse unless the sender is a seller account of `order`'s seller organisation.
pub(crate) async fn require_seller<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    order: &Order,
) -> Result<(), Fail> {
    let registration = shop.registration(store).await?;
    if registration.org == order.seller
        && registration.roles & consort_types::gov::role::SELLER != 0
    {
        Ok(())
    } else {
        Err(CommerceError::NotYourOrder {
            order: *id,
            party: "seller",
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use commonware_codec::EncodeSize as _;
    use consort_types::{
        codec_util::List,
        commerce::{
            OrderLine, PaymentMethod, ProductKind, ProductStatus, ShipLine, Shipment,
            ShipmentStatus,
        },
    };

    /// The largest `carrier_events`: a different order in each event.
    fn carrier_events(first_height: u64) -> CommerceCall {
        let events = (0..consort_types::commerce::CARRIER_EVENTS_MAX as u64)
            .map(|i| consort_types::commerce::CarrierEvent {
                order: RecordId {
                    height: first_height + i,
                    index: 0,
                },
                shipment: 0,
                status: ShipmentStatus::Delivered,
                location: consort_types::codec_util::Text::new("depot").expect("short"),
            })
            .collect();
        CommerceCall::CarrierEvents {
            events: List(events),
        }
    }

    #[test]
    fn a_block_of_the_heaviest_calls_loads_no_more_ahead_than_its_bound() {
        let call = carrier_events(1);
        // One call: every order and shipment it names, within the per-call bound.
        let mut one = Vec::new();
        keys_read(&call, &mut one);
        assert_eq!(one.len(), KEYS_READ_PER_CALL_MAX, "256 events, 4 keys each");
        // A full block of such calls, each naming other orders (a leader's own calls that
        // would all fail at once): the block's guesses stop at the bound, in transaction
        // order: whole calls first, then none of the later ones.
        let per_call = consort_types::commerce::CARRIER_EVENTS_MAX as u64;
        let whole = KEYS_AHEAD_PER_BLOCK_MAX / KEYS_READ_PER_CALL_MAX;
        let calls: Vec<CommerceCall> = (0..whole as u64 + 2)
            .map(|n| carrier_events(1 + n * per_call))
            .collect();
        let mut block = vec![consort_types::Digest::from([9u8; 32])];
        let repeated = calls.iter().chain(std::iter::repeat_n(
            &calls[0],
            consort_types::limits::BLOCK_TXS_MAX,
        ));
        keys_ahead(repeated, &mut block);
        assert_eq!(
            block.len(),
            1 + KEYS_AHEAD_PER_BLOCK_MAX,
            "what was there stays"
        );
        let mut expected = Vec::new();
        for call in &calls[..whole] {
            keys_read(call, &mut expected);
        }
        assert_eq!(
            block[1..],
            expected[..],
            "the first calls' guesses, in order"
        );
        let mut beyond = Vec::new();
        keys_read(&calls[whole], &mut beyond);
        assert!(
            beyond.iter().all(|key| !block.contains(key)),
            "nothing of a call past the bound"
        );
        // A block of real traffic (800 calls of a few keys) is loaded whole.
        let small = CommerceCall::ConfirmReceipt {
            order: RecordId {
                height: 3,
                index: 4,
            },
        };
        let mut few = Vec::new();
        keys_ahead(std::iter::repeat_n(&small, 800), &mut few);
        let order_keys = consort_execution::record_keys(
            &key::order(&RecordId {
                height: 3,
                index: 4,
            }),
            ORDER_BYTES_ONE_LINE,
        );
        assert_eq!(few.len(), 800 * order_keys.len());
    }

    #[test]
    fn the_sizes_keys_read_loads_are_the_records_sizes() {
        let id = RecordId {
            height: 7,
            index: 1,
        };
        let at = Stamp {
            height: 7,
            time_ms: 1,
        };
        use commonware_cryptography::Signer as _;
        let account =
            AccountId::new(commonware_cryptography::ed25519::PrivateKey::from_seed(1).public_key());
        let org: OrgId = "shop".parse().expect("org");
        let order = Order {
            buyer: account,
            seller: org,
            payee: account,
            kind: ProductKind::Physical,
            status: OrderStatus::Shipped,
            payment: PaymentState::Escrowed,
            method: PaymentMethod::Wallet,
            currency: "CNY".parse().expect("asset"),
            total: 1,
            escrow: 1,
            paid: 1,
            refunded: 0,
            settled: 0,
            fee: 0,
            carrier: Some(org),
            shipments: 1,
            delivered: 0,
            placed: at,
            updated: at,
            deadline_ms: 0,
            address: [1; 32],
            address_at: id,
            changes: 3,
            history: [2; 32],
            lines: List(vec![OrderLine {
                product: id,
                variant: 0,
                quantity: 1,
                price: 1,
                shipped: 1,
            }]),
        };
        assert_eq!(order.encode_size(), ORDER_BYTES_ONE_LINE);
        // Every step after shipping changes only fields in the record's first state chunk.
        let moved = Order {
            status: OrderStatus::Completed,
            payment: PaymentState::Released,
            escrow: u64::MAX,
            paid: u64::MAX,
            refunded: u64::MAX,
            settled: u64::MAX,
            fee: u64::MAX,
            shipments: u16::MAX,
            delivered: u16::MAX,
            updated: Stamp {
                height: u64::MAX,
                time_ms: u64::MAX,
            },
            deadline_ms: u64::MAX,
            changes: u32::MAX,
            history: [9; 32],
            ..order.clone()
        };
        use commonware_codec::Encode as _;
        let (before, after) = (order.encode(), moved.encode());
        assert_eq!(before.len(), after.len());
        assert_eq!(
            before[consort_execution::FIRST_CHUNK_DATA..],
            after[consort_execution::FIRST_CHUNK_DATA..]
        );
        // Shipping also changes the lines and the carrier, which share the record's last
        // chunk (a one-line order's, before and after the carrier is set).
        let chunk_of = |offset: usize| {
            offset
                .checked_sub(consort_execution::FIRST_CHUNK_DATA)
                .map_or(0, |rest| 1 + rest / consort_execution::STATE_VALUE_SIZE)
        };
        for carrier in [None, Some(org)] {
            let order = Order {
                carrier,
                ..order.clone()
            };
            let len = order.encode_size();
            let lines_at = len - order.lines.encode_size() - order.carrier.encode_size();
            assert_eq!(chunk_of(lines_at), chunk_of(len - 1));
            assert!(
                chunk_of(lines_at) > 1,
                "the cold fields fill a chunk between"
            );
        }
        let shipment = Shipment {
            carrier: org,
            status: ShipmentStatus::InTransit,
            lines: List(vec![ShipLine {
                line: 0,
                quantity: 1,
            }]),
            label: [3; 32],
            events: 2,
            created: at,
            updated: at,
        };
        assert_eq!(shipment.encode_size(), SHIPMENT_BYTES_ONE_LINE);
        let head = ProductHead {
            org,
            payee: account,
            kind: ProductKind::Physical,
            version: 1,
            digest: [4; 32],
            content_at: id,
            status: ProductStatus::Listed,
            variants: 1,
            rating_sum: 0,
            rating_count: 0,
            updated: at,
        };
        assert_eq!(head.encode_size(), PRODUCT_HEAD_BYTES);
        let case = consort_types::commerce::AfterSale {
            status: consort_types::commerce::AfterSaleStatus::ShippedBack,
            goods_back: true,
            amount: 1,
            refunded: 0,
            cases: 1,
            carrier: Some("carrier-org-16ch".parse().expect("org")),
            receipt_left_ms: 1,
            deadline_ms: 1,
            opened: at,
            updated: at,
        };
        assert_eq!(case.encode_size(), AFTER_SALE_BYTES);
        let seal_key: consort_types::sealed::SealKey = [5; 32];
        assert_eq!(seal_key.encode_size(), SEAL_KEY_BYTES);
    }
}
