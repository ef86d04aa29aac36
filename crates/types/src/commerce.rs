//! The B2C shop on chain: catalogue, stock, orders, escrow payment, fulfilment, settlement,
//! payouts and reviews (see `DESIGN.md` §8).
//!
//! Content (product text, attributes, images by hash, sealed addresses and labels, review
//! text) travels in transaction bodies, certified by the block's transaction root; state holds
//! small heads that name the transaction carrying their content ([`RecordId`]). Stock lives in
//! one fixed-size key (one state value) per variant ([`VariantState`]), so an order never rewrites a product.
//! Ids are where the creating transaction sits (block height and position), never a global
//! counter.

use crate::{
    AccountId, Asset,
    codec_util::{List, Text},
    gov::OrgId,
    sealed::Sealed,
};
use bytes::BufMut;
use commonware_codec::{Buf, EncodeSize, Error as CodecError, Read, ReadExt, Write};
use serde::{Deserialize, Serialize};
use std::{fmt, str::FromStr};

/// Longest product title, per language (bytes).
pub const TITLE_MAX: usize = 200;
/// Longest product description, per language (bytes).
pub const DESCRIPTION_MAX: usize = 4_000;
/// Longest category path (`electronics/audio/headphones`, bytes).
pub const CATEGORY_MAX: usize = 100;
/// Most attributes of a product.
pub const ATTRIBUTES_MAX: usize = 32;
/// Longest attribute name or variant name (bytes).
pub const NAME_MAX: usize = 64;
/// Longest attribute value (bytes).
pub const VALUE_MAX: usize = 200;
/// Most images of a product.
pub const IMAGES_MAX: usize = 12;
/// Longest image URL (bytes).
pub const URL_MAX: usize = 300;
/// Most variants of a product.
pub const VARIANTS_MAX: usize = 64;
/// Most lines of an order.
pub const ORDER_LINES_MAX: usize = 32;
/// Most items of one order line.
pub const LINE_QUANTITY_MAX: u32 = 10_000;
/// Most shipments one `ship_orders` makes.
pub const SHIP_ORDERS_MAX: usize = 64;
/// Most orders one `accept_orders` takes.
pub const ACCEPT_ORDERS_MAX: usize = 256;
/// Most carrier events one `carrier_events` posts.
pub const CARRIER_EVENTS_MAX: usize = 256;
/// Most stock changes in one `set_stock`.
pub const STOCK_CHANGES_MAX: usize = 64;
/// Most shipments of one order.
pub const SHIPMENTS_MAX: u16 = 32;
/// Longest reason (cancellation, refusal, refund, delisting; bytes).
pub const REASON_MAX: usize = 200;
/// Longest carrier event location (bytes).
pub const LOCATION_MAX: usize = 100;
/// Longest review text or seller reply (bytes).
pub const REVIEW_TEXT_MAX: usize = 2_000;
/// Most photos of a review.
pub const REVIEW_PHOTOS_MAX: usize = 9;
/// Most revisions of one review (the first version included).
pub const REVIEW_VERSIONS_MAX: u32 = 4;
/// Most order deadlines (expiry, auto-completion) end of block handles in one block.
pub const DUE_PER_BLOCK_MAX: u64 = 1_024;
/// Most deadline seconds end of block walks in one block (an idle chain catches up over
/// several blocks).
pub const DUE_SECONDS_PER_BLOCK_MAX: u64 = 3_600;
/// Largest platform fee rate, in basis points (50%).
pub const FEE_RATE_BP_MAX: u32 = 5_000;
/// Most after-sales cases (return or refund requests) one order may have, one at a time:
/// each pauses the order's completion, so a buyer cannot hold the seller's money forever.
pub const AFTER_SALES_PER_ORDER_MAX: u8 = 3;
/// Shipment numbers of goods going back start above this: those of an order's after-sales
/// case `n` (counted from 1) are [`return_shipment`]`(n)`. Far above [`SHIPMENTS_MAX`], so a
/// carrier's events name a forward shipment or a return without another field.
pub const RETURN_SHIPMENT_BASE: u16 = 0xFF00;

/// The shipment number of the goods going back under the order's after-sales case `case`.
#[must_use]
pub const fn return_shipment(case: u8) -> u16 {
    RETURN_SHIPMENT_BASE + case as u16
}

/// Whether shipment number `n` is goods going back (an after-sales return).
#[must_use]
pub const fn is_return_shipment(n: u16) -> bool {
    n > RETURN_SHIPMENT_BASE
}

/// Longest tracking number of goods sent back (bytes).
pub const TRACKING_MAX: usize = 64;
/// The after-sales window of a genesis that names none: 7 days of block time.
pub const AFTER_SALE_WINDOW_MS_DEFAULT: u64 = 7 * 24 * 60 * 60 * 1_000;

/// Where a record was created: the height of the block and the position in it of the
/// transaction that created it. Product, order and payout ids are these. Written `H-I`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    /// Block height.
    pub height: u64,
    /// Position of the transaction in the block.
    pub index: u32,
}
crate::codec_record!(RecordId {
    height: u64,
    index: u32,
});

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.height, self.index)
    }
}

/// Why text is not a record id.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a record id: write it as HEIGHT-INDEX, e.g. 1520-3")]
pub struct BadRecordId(pub String);

impl FromStr for RecordId {
    type Err = BadRecordId;
    fn from_str(text: &str) -> Result<Self, BadRecordId> {
        let bad = || BadRecordId(text.to_string());
        let (height, index) = text.split_once('-').ok_or_else(bad)?;
        Ok(Self {
            height: height.parse().map_err(|_| bad())?,
            index: index.parse().map_err(|_| bad())?,
        })
    }
}

impl Serialize for RecordId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RecordId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// When something happened: block height and block time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    /// Block height.
    pub height: u64,
    /// Block time, ms since the Unix epoch.
    pub time_ms: u64,
}
crate::codec_record!(Stamp {
    height: u64,
    time_ms: u64,
});

/// Gives a fieldless enum a one-byte tag on the wire.
macro_rules! tagged_enum {
    ($name:ident { $($variant:ident = $tag:literal),* $(,)? }) => {
        impl $name {
            /// The wire tag.
            pub const fn tag(self) -> u8 {
                match self { $(Self::$variant => $tag,)* }
            }
            /// The variant of a wire tag.
            pub const fn from_tag(tag: u8) -> Option<Self> {
                match tag { $($tag => Some(Self::$variant),)* _ => None }
            }
        }
        impl Write for $name {
            fn write(&self, buf: &mut impl BufMut) {
                self.tag().write(buf);
            }
        }
        impl EncodeSize for $name {
            fn encode_size(&self) -> usize {
                1
            }
        }
        impl Read for $name {
            type Cfg = ();
            fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
                Self::from_tag(u8::read(buf)?)
                    .ok_or(CodecError::Invalid(stringify!($name), "unknown tag"))
            }
        }
    };
}

/// What kind of good a product is: it decides how it is fulfilled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductKind {
    /// Shipped by a carrier.
    Physical,
    /// A code or file, sealed to the buyer.
    Digital,
    /// A service (an exam registration, a local-delivery meal): a voucher sealed to the buyer.
    Service,
}
tagged_enum!(ProductKind {
    Physical = 0,
    Digital = 1,
    Service = 2,
});

/// A product attribute (`brand`: `Sony`, `颜色`: `黑色`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    /// Its name.
    pub name: Text<NAME_MAX>,
    /// Its value.
    pub value: Text<VALUE_MAX>,
}
crate::codec_record!(Attribute {
    name: Text<NAME_MAX>,
    value: Text<VALUE_MAX>,
});

/// A product image: where it is and the SHA-256 of its bytes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    /// SHA-256 of the image file.
    #[serde(with = "crate::hex_serde::bytes32")]
    pub sha256: [u8; 32],
    /// Where to fetch it.
    pub url: Text<URL_MAX>,
}
crate::codec_record!(Image {
    sha256: [u8; 32],
    url: Text<URL_MAX>,
});

/// One variant as published: its name (`M / black`), price and starting stock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantSpec {
    /// Its name.
    pub name: Text<NAME_MAX>,
    /// Price per item, in base units of `currency`.
    pub price: u64,
    /// The asset it is priced in (the pegged coin or a bank's e-money).
    pub currency: Asset,
    /// Items in stock (at publication; on an update, ignored for existing variants: stock
    /// moves through `set_stock` and orders).
    pub stock: u64,
}
crate::codec_record!(VariantSpec {
    name: Text<NAME_MAX>,
    price: u64,
    currency: Asset,
    stock: u64,
});

/// A product's full content, carried by the transaction that publishes or updates it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductContent {
    /// Physical, digital or service.
    pub kind: ProductKind,
    /// Title in Chinese.
    pub title_zh: Text<TITLE_MAX>,
    /// Title in English.
    pub title_en: Text<TITLE_MAX>,
    /// Description in Chinese.
    pub description_zh: Text<DESCRIPTION_MAX>,
    /// Description in English.
    pub description_en: Text<DESCRIPTION_MAX>,
    /// Category path, `/`-separated.
    pub category: Text<CATEGORY_MAX>,
    /// Attributes.
    pub attributes: List<Attribute, ATTRIBUTES_MAX>,
    /// Images.
    pub images: List<Image, IMAGES_MAX>,
    /// Variants (at least one).
    pub variants: List<VariantSpec, VARIANTS_MAX>,
}
crate::codec_record!(ProductContent {
    kind: ProductKind,
    title_zh: Text<TITLE_MAX>,
    title_en: Text<TITLE_MAX>,
    description_zh: Text<DESCRIPTION_MAX>,
    description_en: Text<DESCRIPTION_MAX>,
    category: Text<CATEGORY_MAX>,
    attributes: List<Attribute, ATTRIBUTES_MAX>,
    images: List<Image, IMAGES_MAX>,
    variants: List<VariantSpec, VARIANTS_MAX>,
});

impl ProductContent {
    /// SHA-256 of the content's encoding: what the product head commits to.
    pub fn digest(&self) -> [u8; 32] {
        use commonware_codec::Encode as _;
        crate::sha256(&[&self.encode()]).0
    }
}

/// Whether a product can be ordered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProductStatus {
    /// On sale.
    Listed,
    /// Taken off sale by its seller.
    Delisted,
    /// Taken off sale by the platform operator (only the operator relists it).
    Suspended,
}
tagged_enum!(ProductStatus {
    Listed = 0,
    Delisted = 1,
    Suspended = 2,
});

/// A product's head in state; its content is in the transaction at `content_at`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductHead {
    /// The seller organisation that owns it.
    pub org: OrgId,
    /// The seller account paid for its sales (the publisher).
    pub payee: AccountId,
    /// Physical, digital or service (fixed at publication).
    pub kind: ProductKind,
    /// Current version (1 at publication).
    pub version: u32,
    /// SHA-256 of the current content.
    #[serde(with = "crate::hex_serde::bytes32")]
    pub digest: [u8; 32],
    /// The transaction carrying the current content.
    pub content_at: RecordId,
    /// On sale or not.
    pub status: ProductStatus,
    /// Variants (their state under their own keys).
    pub variants: u16,
    /// Sum of review ratings.
    pub rating_sum: u64,
    /// Reviews counted.
    pub rating_count: u64,
    /// Last change.
    pub updated: Stamp,
}
crate::codec_record!(ProductHead {
    org: OrgId,
    payee: AccountId,
    kind: ProductKind,
    version: u32,
    digest: [u8; 32],
    content_at: RecordId,
    status: ProductStatus,
    variants: u16,
    rating_sum: u64,
    rating_count: u64,
    updated: Stamp,
});

/// An earlier version of a product, kept when it is updated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductVersion {
    /// SHA-256 of its content.
    #[serde(with = "crate::hex_serde::bytes32")]
    pub digest: [u8; 32],
    /// The transaction carrying it.
    pub content_at: RecordId,
}
crate::codec_record!(ProductVersion {
    digest: [u8; 32],
    content_at: RecordId,
});

/// One variant's price and stock: exactly one state value, the only key an order's
/// reservation writes per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VariantState {
    /// Price per item.
    pub price: u64,
    /// Its asset.
    pub currency: Asset,
    /// Items that can be ordered.
    pub available: u64,
    /// Items held by open orders, not yet shipped.
    pub reserved: u64,
}
crate::codec_record!(VariantState {
    price: u64,
    currency: Asset,
    available: u64,
    reserved: u64,
});

/// A change to one variant's stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockChange {
    /// The variant.
    pub variant: u16,
    /// Items added (positive) or taken away (negative, never below zero available).
    pub delta: i64,
}
crate::codec_record!(StockChange {
    variant: u16,
    delta: i64,
});

/// How an order is paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentMethod {
    /// From the buyer's balance of the pegged coin or a bank's e-money.
    Wallet,
    /// A fiat transfer to the bank that issues the order's currency; the bank confirms it.
    BankTransfer,
    /// Cash to the carrier at the door; the carrier records it, its bank remits it.
    CashOnDelivery,
}
tagged_enum!(PaymentMethod {
    Wallet = 0,
    BankTransfer = 1,
    CashOnDelivery = 2,
});

/// One line of an order, as placed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRequest {
    /// The product.
    pub product: RecordId,
    /// Its variant.
    pub variant: u16,
    /// Items.
    pub quantity: u32,
    /// The price per item the customer saw: the order fails `price_changed` if it moved.
    pub price: u64,
}
crate::codec_record!(LineRequest {
    product: RecordId,
    variant: u16,
    quantity: u32,
    price: u64,
});

/// One line of an order in state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub product: RecordId,
    /// Its variant.
    pub variant: u16,
    /// Items ordered.
    pub quantity: u32,
    /// Price per item.
    pub price: u64,
    /// Items shipped (or fulfilled).
    pub shipped: u32,
}
crate::codec_record!(OrderLine {
    product: RecordId,
    variant: u16,
    quantity: u32,
    price: u64,
    shipped: u32,
});

/// The order's own state machine: placed → paid → accepted → shipped (partly) → delivered →
/// completed, or cancelled / expired before shipment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, stock reserved, not paid (cash on delivery orders wait here for acceptance).
    Placed,
    /// Paid into escrow.
    Paid,
    /// Accepted by the seller.
    Accepted,
    /// Some lines shipped.
    PartlyShipped,
    /// Every item shipped.
    Shipped,
    /// Every shipment delivered (or the digital good fulfilled).
    Delivered,
    /// Receipt confirmed (or the receipt window passed): escrow paid to the seller.
    Completed,
    /// Cancelled by the buyer or refused by the seller before shipment; escrow refunded.
    Cancelled,
    /// Not paid in time; stock released.
    Expired,
    /// Delivered, with an after-sales case open (a return or refund request, or a dispute):
    /// completion waits for the case ([`AfterSale`]).
    AfterSale,
}
tagged_enum!(OrderStatus {
    Placed = 0,
    Paid = 1,
    Accepted = 2,
    PartlyShipped = 3,
    Shipped = 4,
    Delivered = 5,
    Completed = 6,
    Cancelled = 7,
    Expired = 8,
    AfterSale = 9,
});

impl OrderStatus {
    /// The status's name, as errors and the API show it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Placed => "placed",
            Self::Paid => "paid",
            Self::Accepted => "accepted",
            Self::PartlyShipped => "partly_shipped",
            Self::Shipped => "shipped",
            Self::Delivered => "delivered",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::AfterSale => "after_sale",
        }
    }

    /// Whether nothing has shipped yet and the order is still open.
    pub const fn before_shipment(self) -> bool {
        matches!(self, Self::Placed | Self::Paid | Self::Accepted)
    }
}

/// The payment's state machine: unpaid → escrowed → released | refunded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// Nothing paid.
    Unpaid,
    /// Cash collected by the carrier, not yet remitted (cash on delivery).
    CashCollected,
    /// Held in escrow.
    Escrowed,
    /// Paid to the seller (less the platform fee).
    Released,
    /// Returned to the buyer in whole.
    Refunded,
}
tagged_enum!(PaymentState {
    Unpaid = 0,
    CashCollected = 1,
    Escrowed = 2,
    Released = 3,
    Refunded = 4,
});

/// An order's head.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The customer.
    pub buyer: AccountId,
    /// The seller organisation.
    pub seller: OrgId,
    /// The seller account paid at settlement.
    pub payee: AccountId,
    /// What is sold (every line the same kind).
    pub kind: ProductKind,
    /// The order's state.
    pub status: OrderStatus,
    /// The payment's state.
    pub payment: PaymentState,
    /// How it is paid.
    pub method: PaymentMethod,
    /// The asset every line is priced in.
    pub currency: Asset,
    /// What the lines cost.
    pub total: u64,
    /// Held in escrow now.
    pub escrow: u64,
    /// Ever paid into escrow.
    pub paid: u64,
    /// Ever refunded to the buyer.
    pub refunded: u64,
    /// Paid to the seller at settlement.
    pub settled: u64,
    /// The platform's fee at settlement.
    pub fee: u64,
    /// The carrier organisation of the first shipment.
    pub carrier: Option<OrgId>,
    /// Shipments made.
    pub shipments: u16,
    /// Shipments delivered.
    pub delivered: u16,
    /// When it was placed.
    pub placed: Stamp,
    /// Its last change.
    pub updated: Stamp,
    /// Block time at which it expires (unpaid) or completes on its own (delivered); 0: none.
    pub deadline_ms: u64,
    /// SHA-256 of the sealed shipping address's encoding (empty for goods not shipped).
    #[serde(with = "crate::hex_serde::bytes32")]
    pub address: [u8; 32],
    /// The transaction carrying the current sealed address.
    pub address_at: RecordId,
    /// Changes recorded (each a transaction of the order's history).
    pub changes: u32,
    /// SHA-256 chain over every change: `sha256(previous ‖ change)`, so the whole history
    /// is proved by the transactions that carry it.
    #[serde(with = "crate::hex_serde::bytes32")]
    pub history: [u8; 32],
    /// The lines.
    pub lines: List<OrderLine, ORDER_LINES_MAX>,
}
// What changes as an order moves (status, money, shipment counts, stamps, history) encodes
// first, within the 124 bytes of its record's first state chunk, so each step of an order's
// life rewrites one chunk. What is fixed at placing follows; the lines (their shipped counts)
// and the carrier, which change at shipping, come last, so shipping rewrites the last chunk
// too and nothing between.
crate::codec_record!(Order {
    status: OrderStatus,
    payment: PaymentState,
    escrow: u64,
    paid: u64,
    refunded: u64,
    settled: u64,
    fee: u64,
    shipments: u16,
    delivered: u16,
    updated: Stamp,
    deadline_ms: u64,
    changes: u32,
    history: [u8; 32],
    buyer: AccountId,
    seller: OrgId,
    payee: AccountId,
    kind: ProductKind,
    method: PaymentMethod,
    currency: Asset,
    total: u64,
    placed: Stamp,
    address: [u8; 32],
    address_at: RecordId,
    lines: List<OrderLine, ORDER_LINES_MAX>,
    carrier: Option<OrgId>,
});

/// A line of a shipment: which order line, how many items.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipLine {
    /// The order line (position).
    pub line: u8,
    /// Items.
    pub quantity: u32,
}
crate::codec_record!(ShipLine {
    line: u8,
    quantity: u32,
});

/// The fulfilment state machine of one shipment: pending → picked up → in transit → out for
/// delivery → delivered | failed attempt (and again) | returned to sender.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShipmentStatus {
    /// Handed to the carrier's queue, not yet picked up.
    Pending,
    /// Picked up from the seller.
    PickedUp,
    /// Moving.
    InTransit,
    /// With the courier.
    OutForDelivery,
    /// Delivered.
    Delivered,
    /// A delivery attempt failed (another may follow).
    FailedAttempt,
    /// Sent back to the seller.
    Returned,
}
tagged_enum!(ShipmentStatus {
    Pending = 0,
    PickedUp = 1,
    InTransit = 2,
    OutForDelivery = 3,
    Delivered = 4,
    FailedAttempt = 5,
    Returned = 6,
});

impl ShipmentStatus {
    /// Whether a carrier event may move a shipment from `self` to `next`.
    pub const fn may_become(self, next: Self) -> bool {
        use ShipmentStatus as S;
        match (self, next) {
            (S::Delivered | S::Returned, _) | (_, S::Pending) => false,
            (S::Pending, S::PickedUp) => true,
            (S::Pending, _) => false,
            (S::PickedUp | S::InTransit | S::FailedAttempt, S::InTransit) => true,
            (S::PickedUp | S::InTransit | S::FailedAttempt, S::OutForDelivery) => true,
            (S::OutForDelivery, S::Delivered | S::FailedAttempt) => true,
            (S::FailedAttempt, S::Returned) | (S::InTransit, S::Returned) => true,
            (S::PickedUp, S::Returned) => true,
            _ => false,
        }
    }

    /// The status's name.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::PickedUp => "picked_up",
            Self::InTransit => "in_transit",
            Self::OutForDelivery => "out_for_delivery",
            Self::Delivered => "delivered",
            Self::FailedAttempt => "failed_attempt",
            Self::Returned => "returned",
        }
    }
}

/// One shipment of an order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipment {
    /// The carrier organisation assigned.
    pub carrier: OrgId,
    /// Where it is.
    pub status: ShipmentStatus,
    /// What it carries.
    pub lines: List<ShipLine, ORDER_LINES_MAX>,
    /// SHA-256 of the delivery label sealed to the carrier (or of the voucher sealed to the
    /// buyer, for a digital good or service; of the tracking number, for goods going back).
    #[serde(with = "crate::hex_serde::bytes32")]
    pub label: [u8; 32],
    /// Carrier events posted.
    pub events: u32,
    /// Made.
    pub created: Stamp,
    /// Last event.
    pub updated: Stamp,
}
crate::codec_record!(Shipment {
    carrier: OrgId,
    status: ShipmentStatus,
    lines: List<ShipLine, ORDER_LINES_MAX>,
    label: [u8; 32],
    events: u32,
    created: Stamp,
    updated: Stamp,
});

/// One shipment of a `ship_orders` call: as `ship` takes it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shipping {
    /// The order.
    pub order: RecordId,
    /// What goes in this shipment.
    pub lines: List<ShipLine, ORDER_LINES_MAX>,
    /// The carrier organisation.
    pub carrier: OrgId,
    /// The sealed delivery label.
    pub label: Sealed,
}
crate::codec_record!(Shipping {
    order: RecordId,
    lines: List<ShipLine, ORDER_LINES_MAX>,
    carrier: OrgId,
    label: Sealed,
});

/// A carrier's event on a shipment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierEvent {
    /// The order.
    pub order: RecordId,
    /// The shipment (position among the order's shipments), or the goods going back under an
    /// after-sales case ([`return_shipment`]).
    pub shipment: u16,
    /// The new status.
    pub status: ShipmentStatus,
    /// Where (free text: a city, a depot).
    pub location: Text<LOCATION_MAX>,
}
crate::codec_record!(CarrierEvent {
    order: RecordId,
    shipment: u16,
    status: ShipmentStatus,
    location: Text<LOCATION_MAX>,
});

/// The after-sales state machine of an order (one case at a time): requested → approved
/// (goods to come back) → shipped back → refunded; requested → refunded (a refund without
/// goods back); requested → rejected → disputed → ruled; any open step but a dispute →
/// closed (withdrawn by the buyer, or its window passed). Each waiting step has a deadline
/// in block time: a seller that does not answer has approved, a buyer that does not send the
/// goods back or escalate has given up, a seller that does not confirm goods sent back has
/// received them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterSaleStatus {
    /// The buyer asked; the seller answers.
    Requested,
    /// The seller agreed to take the goods back; the buyer sends them.
    Approved,
    /// The seller refused; the buyer may take it to the platform.
    Rejected,
    /// The buyer sent the goods back; the seller confirms they arrived.
    ShippedBack,
    /// A party took it to the platform; the operator rules.
    Disputed,
    /// Closed with the refund paid.
    Refunded,
    /// Closed without a refund: withdrawn, or the buyer let a window pass.
    Closed,
    /// Closed by the operator's ruling.
    Ruled,
}
tagged_enum!(AfterSaleStatus {
    Requested = 0,
    Approved = 1,
    Rejected = 2,
    ShippedBack = 3,
    Disputed = 4,
    Refunded = 5,
    Closed = 6,
    Ruled = 7,
});

impl AfterSaleStatus {
    /// Whether the case is still open (the order waits for it).
    pub const fn is_open(self) -> bool {
        !matches!(self, Self::Refunded | Self::Closed | Self::Ruled)
    }

    /// The status's name, as errors and the API show it.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::ShippedBack => "shipped_back",
            Self::Disputed => "disputed",
            Self::Refunded => "refunded",
            Self::Closed => "closed",
            Self::Ruled => "ruled",
        }
    }
}

/// An order's after-sales case (the latest; earlier ones are in its history). The reasons
/// travel in the transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AfterSale {
    /// Where it stands.
    pub status: AfterSaleStatus,
    /// The goods come back (a return), or only money does (a refund without return).
    pub goods_back: bool,
    /// The refund asked, in base units of the order's currency.
    pub amount: u64,
    /// What this case refunded.
    pub refunded: u64,
    /// Cases the order has had, this one included.
    pub cases: u8,
    /// The carrier the goods went back with.
    pub carrier: Option<OrgId>,
    /// What was left of the order's receipt window when the case opened: it goes on from
    /// there when the case closes with money still in escrow.
    pub receipt_left_ms: u64,
    /// Block time by which the party the case waits for must act (0: none, a dispute waits
    /// for the operator).
    pub deadline_ms: u64,
    /// Opened.
    pub opened: Stamp,
    /// Its last change.
    pub updated: Stamp,
}
crate::codec_record!(AfterSale {
    status: AfterSaleStatus,
    goods_back: bool,
    amount: u64,
    refunded: u64,
    cases: u8,
    carrier: Option<OrgId>,
    receipt_left_ms: u64,
    deadline_ms: u64,
    opened: Stamp,
    updated: Stamp,
});

/// A seller's request to be paid out e-money to its bank account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payout {
    /// The seller account.
    pub seller: AccountId,
    /// The e-money asset.
    pub asset: Asset,
    /// Base units.
    pub amount: u64,
    /// Confirmed by the issuing bank (the fiat is paid, the e-money redeemed).
    pub confirmed: bool,
    /// Requested.
    pub requested: Stamp,
}
crate::codec_record!(Payout {
    seller: AccountId,
    asset: Asset,
    amount: u64,
    confirmed: bool,
    requested: Stamp,
});

/// A review's head; its text and photos are in the transaction at `content_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewHead {
    /// The product reviewed.
    pub product: RecordId,
    /// The buyer.
    pub author: AccountId,
    /// Rating of the current version, 1 to 5.
    pub rating: u8,
    /// Current version (1: the first).
    pub version: u32,
    /// SHA-256 of the current version's content.
    #[serde(with = "crate::hex_serde::bytes32")]
    pub digest: [u8; 32],
    /// The transaction carrying the current version.
    pub content_at: RecordId,
    /// The transaction carrying the seller's reply, if any.
    pub reply_at: Option<RecordId>,
}
crate::codec_record!(ReviewHead {
    product: RecordId,
    author: AccountId,
    rating: u8,
    version: u32,
    digest: [u8; 32],
    content_at: RecordId,
    reply_at: Option<RecordId>,
});

/// What a review says (carried in its transaction).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewContent {
    /// 1 to 5.
    pub rating: u8,
    /// The text.
    pub text: Text<REVIEW_TEXT_MAX>,
    /// Photos by SHA-256.
    pub photos: List<[u8; 32], REVIEW_PHOTOS_MAX>,
}
crate::codec_record!(ReviewContent {
    rating: u8,
    text: Text<REVIEW_TEXT_MAX>,
    photos: List<[u8; 32], REVIEW_PHOTOS_MAX>,
});

impl ReviewContent {
    /// SHA-256 of the content's encoding.
    pub fn digest(&self) -> [u8; 32] {
        use commonware_codec::Encode as _;
        crate::sha256(&[&self.encode()]).0
    }
}

/// A seller organisation's ratings and sales, kept on chain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SellerStats {
    /// Sum of review ratings.
    pub rating_sum: u64,
    /// Reviews counted.
    pub rating_count: u64,
    /// Orders completed.
    pub completed: u64,
}
crate::codec_record!(SellerStats {
    rating_sum: u64,
    rating_count: u64,
    completed: u64,
});

/// What commerce holds of one asset outside balances: order escrows and payouts waiting for
/// their bank.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holdings {
    /// In order escrows.
    pub escrow: u64,
    /// Requested payouts not yet confirmed.
    pub payouts: u64,
}
crate::codec_record!(Holdings {
    escrow: u64,
    payouts: u64,
});

/// How far end of block has handled order deadlines: every deadline second before `second`
/// is done, and the first `done` entries of `second`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueCursor {
    /// The deadline second being handled.
    pub second: u64,
    /// Its entries already handled.
    pub done: u32,
}
crate::codec_record!(DueCursor {
    second: u64,
    done: u32,
});

/// The shop's rules, from genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommerceConfig {
    /// Platform fee on each settlement, in basis points of what the seller is paid.
    pub fee_rate_bp: u32,
    /// The account the fee is paid to.
    pub fee_account: AccountId,
    /// How long an unpaid order (wallet or bank transfer) waits before it expires, in ms of
    /// block time.
    pub payment_window_ms: u64,
    /// How long after delivery an order completes on its own, in ms of block time.
    pub receipt_window_ms: u64,
    /// How long each waiting step of an after-sales case lasts (the seller to answer, the
    /// buyer to send goods back or escalate, the seller to confirm them), in ms of block time.
    #[serde(default = "after_sale_window_ms_default")]
    pub after_sale_window_ms: u64,
}

const fn after_sale_window_ms_default() -> u64 {
    AFTER_SALE_WINDOW_MS_DEFAULT
}

/// Gives a call enum with struct variants its canonical encoding (a one-byte tag, then the
/// fields in order) and its kind names.
macro_rules! calls {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident = ($tag:literal, $kind:literal) {
                    $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
                }
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        pub enum $name {
            $(
                $(#[$vmeta])*
                $variant { $( $(#[$fmeta])* $field: $ty ),* },
            )*
        }
        impl $name {
            /// The call's kind, as named in errors, permissions and the API.
            pub const fn kind(&self) -> &'static str {
                match self { $( Self::$variant { .. } => $kind, )* }
            }
            /// Every call's kind, in tag order.
            pub const KINDS: &'static [&'static str] = &[$($kind),*];
        }
        impl Write for $name {
            #[allow(unused_variables)]
            fn write(&self, buf: &mut impl BufMut) {
                match self {
                    $( Self::$variant { $($field),* } => {
                        ($tag as u8).write(buf);
                        $( $field.write(buf); )*
                    } )*
                }
            }
        }
        impl EncodeSize for $name {
            #[allow(unused_variables)]
            fn encode_size(&self) -> usize {
                1 + match self {
                    $( Self::$variant { $($field),* } => 0 $( + $field.encode_size() )*, )*
                }
            }
        }
        impl Read for $name {
            type Cfg = ();
            fn read_cfg(buf: &mut impl Buf, _: &()) -> Result<Self, CodecError> {
                match u8::read(buf)? {
                    $( $tag => Ok(Self::$variant { $( $field: <$ty>::read(buf)?, )* }), )*
                    other => Err(CodecError::InvalidEnum(other)),
                }
            }
        }
    };
}

calls! {
    /// The shop's calls.
    #[derive(Clone, Debug, PartialEq, Eq, Serialize)]
    #[serde(tag = "call", rename_all = "snake_case")]
    pub enum CommerceCall {
        /// Publish a product (a seller account of a seller organisation). Its id is this
        /// transaction's place.
        PublishProduct = (0, "publish_product") {
            /// The content.
            content: ProductContent,
        },
        /// Publish a new version of a product (its seller organisation): prices change,
        /// variants may be added, the old version is kept.
        UpdateProduct = (1, "update_product") {
            /// The product.
            product: RecordId,
            /// The new content (the same kind; at least as many variants).
            content: ProductContent,
        },
        /// Take a product off sale (its seller) or put it back.
        SetListed = (2, "set_listed") {
            /// The product.
            product: RecordId,
            /// On sale or not.
            listed: bool,
        },
        /// Suspend a product under the platform's policy, or lift that (the operator).
        Suspend = (3, "suspend_product") {
            /// The product.
            product: RecordId,
            /// Suspended or not.
            suspended: bool,
            /// Why.
            reason: Text<REASON_MAX>,
        },
        /// Add or remove stock (the product's seller).
        SetStock = (4, "set_stock") {
            /// The product.
            product: RecordId,
            /// The changes.
            changes: List<StockChange, STOCK_CHANGES_MAX>,
        },
        /// Place an order: reserves every line's stock or fails (`out_of_stock`,
        /// `price_changed`). With `pay`, a wallet order is paid in the same transaction.
        PlaceOrder = (5, "place_order") {
            /// The lines (one seller, one currency, one kind of good).
            lines: List<LineRequest, ORDER_LINES_MAX>,
            /// How it is paid.
            method: PaymentMethod,
            /// Pay from the wallet now (wallet orders only).
            pay: bool,
            /// The shipping address sealed to the buyer, the seller and a regulator (no
            /// copies for digital goods and services).
            address: Sealed,
        },
        /// Pay a wallet order into escrow (its buyer).
        PayOrder = (6, "pay_order") {
            /// The order.
            order: RecordId,
        },
        /// Change quantities (0 drops a line) or the address before shipment (the buyer):
        /// stock is released or reserved again, escrow refunded or topped up.
        ModifyOrder = (7, "modify_order") {
            /// The order.
            order: RecordId,
            /// New quantity per line, in line order.
            quantities: List<u32, ORDER_LINES_MAX>,
            /// A new sealed address, or none to keep it.
            address: Option<Sealed>,
        },
        /// Cancel an order before shipment (its buyer, or its seller refusing it): stock
        /// released, escrow refunded. On a partly shipped order, cancel its unshipped items:
        /// their stock released and their price refunded; the order goes on as shipped.
        CancelOrder = (8, "cancel_order") {
            /// The order.
            order: RecordId,
            /// Why.
            reason: Text<REASON_MAX>,
        },
        /// Accept paid (or cash on delivery) orders (their seller).
        AcceptOrders = (9, "accept_orders") {
            /// The orders.
            orders: List<RecordId, ACCEPT_ORDERS_MAX>,
        },
        /// Ship items of an accepted order and assign a carrier (its seller); the delivery
        /// label is sealed to the carrier's account, the buyer and a regulator.
        Ship = (10, "ship") {
            /// The order.
            order: RecordId,
            /// What goes in this shipment.
            lines: List<ShipLine, ORDER_LINES_MAX>,
            /// The carrier organisation.
            carrier: OrgId,
            /// The sealed delivery label.
            label: Sealed,
        },
        /// Post shipment events (a carrier account of the assigned carrier).
        CarrierEvents = (11, "carrier_events") {
            /// The events.
            events: List<CarrierEvent, CARRIER_EVENTS_MAX>,
        },
        /// Fulfil a digital good or service (its seller): the code or voucher sealed to the
        /// buyer and a regulator.
        Fulfil = (12, "fulfil") {
            /// The order.
            order: RecordId,
            /// The sealed code or voucher.
            voucher: Sealed,
        },
        /// Confirm receipt (the buyer): the escrow is paid to the seller less the fee.
        ConfirmReceipt = (13, "confirm_receipt") {
            /// The order.
            order: RecordId,
        },
        /// Refund part or all of what is in escrow to the buyer (the seller).
        Refund = (14, "refund") {
            /// The order.
            order: RecordId,
            /// Base units.
            amount: u64,
            /// Why.
            reason: Text<REASON_MAX>,
        },
        /// A bank confirms it received the fiat for an order (a bank transfer, or cash on
        /// delivery remitted by the carrier): it issues its e-money into the order's escrow.
        ConfirmPayment = (15, "confirm_payment") {
            /// The order.
            order: RecordId,
            /// The fiat received, in base units: it must be the order's total (an order that
            /// changed since the buyer paid is refused, not issued for).
            amount: u64,
        },
        /// The carrier records the cash it collected at the door (cash on delivery).
        CollectCash = (16, "collect_cash") {
            /// The order.
            order: RecordId,
            /// Base units collected (the order's total).
            amount: u64,
        },
        /// Ask the issuing bank to pay out e-money to the seller's bank account (a seller).
        RequestPayout = (17, "request_payout") {
            /// The e-money.
            asset: Asset,
            /// Base units.
            amount: u64,
        },
        /// The issuing bank confirms a payout: the fiat is paid, the e-money redeemed.
        ConfirmPayout = (18, "confirm_payout") {
            /// The payout.
            payout: RecordId,
        },
        /// Review a line of a completed order (its buyer, once per line).
        Review = (19, "review") {
            /// The order.
            order: RecordId,
            /// The line.
            line: u8,
            /// What it says.
            content: ReviewContent,
        },
        /// Revise one's review: a new version; the old one stays visible.
        ReviseReview = (20, "revise_review") {
            /// The order.
            order: RecordId,
            /// The line.
            line: u8,
            /// The new version.
            content: ReviewContent,
        },
        /// The seller replies to a review, once.
        ReplyReview = (21, "reply_review") {
            /// The order.
            order: RecordId,
            /// The line.
            line: u8,
            /// The reply.
            text: Text<REVIEW_TEXT_MAX>,
        },
        /// The seller withdraws a payout its bank has not confirmed: the e-money comes back.
        CancelPayout = (22, "cancel_payout") {
            /// The payout.
            payout: RecordId,
        },
        /// Ship many orders at once (their seller): each shipment as `ship` makes it, in
        /// order, all or none — a day's parcels handed to carriers in one transaction.
        ShipOrders = (23, "ship_orders") {
            /// The shipments.
            shipments: List<Shipping, SHIP_ORDERS_MAX>,
        },
        /// Ask for a refund of a delivered order, with or without sending the goods back (its
        /// buyer): the order's completion waits for the case.
        RequestReturn = (24, "request_return") {
            /// The order.
            order: RecordId,
            /// The refund asked (at most what escrow holds).
            amount: u64,
            /// The goods come back (a return) or not (a refund only).
            goods_back: bool,
            /// Why.
            reason: Text<REASON_MAX>,
        },
        /// Answer an after-sales request (the seller): approved, a refund without return is
        /// paid at once; refused, the buyer may take it to the platform.
        AnswerReturn = (25, "answer_return") {
            /// The order.
            order: RecordId,
            /// Approve or refuse.
            approve: bool,
            /// Why.
            reason: Text<REASON_MAX>,
        },
        /// The buyer sent the goods of an approved return back: the carrier follows them as
        /// shipment [`return_shipment`]`(case)` with its events, and the seller's time to
        /// confirm them starts again when the carrier delivers them.
        ReturnShipped = (26, "return_shipped") {
            /// The order.
            order: RecordId,
            /// The carrier organisation.
            carrier: OrgId,
            /// Its tracking number.
            tracking: Text<TRACKING_MAX>,
        },
        /// The goods sent back arrived (the seller): the refund is paid.
        ReceiveReturn = (27, "receive_return") {
            /// The order.
            order: RecordId,
        },
        /// Take an after-sales case to the platform: the buyer whose request was refused, or
        /// the seller whose goods came back damaged or not at all.
        OpenDispute = (28, "open_dispute") {
            /// The order.
            order: RecordId,
            /// Why.
            reason: Text<REASON_MAX>,
        },
        /// Rule a dispute (the operator): `refund` of the escrow goes to the buyer, the rest
        /// to the seller less the fee; the order completes.
        RuleDispute = (29, "rule_dispute") {
            /// The order.
            order: RecordId,
            /// Base units refunded to the buyer (at most what escrow holds).
            refund: u64,
            /// The ruling's grounds.
            reason: Text<REASON_MAX>,
        },
        /// Withdraw an after-sales request not yet disputed (its buyer): the order goes on.
        WithdrawReturn = (30, "withdraw_return") {
            /// The order.
            order: RecordId,
        },
    }
}

/// Who may make a commerce call: the role its sender must hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Party {
    /// Any registered account (a customer).
    Buyer,
    /// A seller account of a seller organisation.
    Seller,
    /// A carrier account of a logistics organisation.
    Carrier,
    /// A bank account of a bank.
    Bank,
    /// An operator account of the platform.
    Operator,
}

impl CommerceCall {
    /// The party that makes this call.
    pub const fn party(&self) -> Party {
        match self {
            Self::PublishProduct { .. }
            | Self::UpdateProduct { .. }
            | Self::SetListed { .. }
            | Self::SetStock { .. }
            | Self::AcceptOrders { .. }
            | Self::Ship { .. }
            | Self::ShipOrders { .. }
            | Self::Fulfil { .. }
            | Self::Refund { .. }
            | Self::RequestPayout { .. }
            | Self::CancelPayout { .. }
            | Self::ReplyReview { .. }
            | Self::AnswerReturn { .. }
            | Self::ReceiveReturn { .. } => Party::Seller,
            Self::Suspend { .. } | Self::RuleDispute { .. } => Party::Operator,
            Self::PlaceOrder { .. }
            | Self::PayOrder { .. }
            | Self::ModifyOrder { .. }
            | Self::ConfirmReceipt { .. }
            | Self::Review { .. }
            | Self::ReviseReview { .. }
            | Self::RequestReturn { .. }
            | Self::ReturnShipped { .. }
            | Self::WithdrawReturn { .. } => Party::Buyer,
            // The buyer whose request was refused or the seller whose goods came back
            // damaged: the module checks which.
            Self::OpenDispute { .. } => Party::Buyer,
            // A seller refusing an order cancels it too: the module checks which.
            Self::CancelOrder { .. } => Party::Buyer,
            Self::CarrierEvents { .. } | Self::CollectCash { .. } => Party::Carrier,
            Self::ConfirmPayment { .. } | Self::ConfirmPayout { .. } => Party::Bank,
        }
    }
}

/// Why a commerce call was refused. Nothing changes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommerceError {
    /// The chain's genesis has no commerce section (or no governance).
    #[error("this chain has no shop: genesis has no commerce section")]
    Disabled,
    /// Content breaks a rule.
    #[error("bad content: {0}")]
    BadContent(&'static str),
    /// No such product.
    #[error("no product {0}")]
    UnknownProduct(RecordId),
    /// No such variant.
    #[error("product {product} has no variant {variant}")]
    UnknownVariant {
        /// The product.
        product: RecordId,
        /// The variant asked for.
        variant: u16,
    },
    /// No such order.
    #[error("no order {0}")]
    UnknownOrder(RecordId),
    /// No such shipment.
    #[error("order {order} has no shipment {shipment}")]
    UnknownShipment {
        /// The order.
        order: RecordId,
        /// The shipment asked for.
        shipment: u16,
    },
    /// No such payout.
    #[error("no payout {0}")]
    UnknownPayout(RecordId),
    /// The product is not on sale.
    #[error("product {0} is not on sale")]
    NotListed(RecordId),
    /// The product belongs to another seller organisation (or the operator's suspension
    /// stands).
    #[error("product {0} belongs to another seller")]
    NotYourProduct(RecordId),
    /// The sender is not the party of the order this call needs.
    #[error("order {order} is not yours: only its {party} may do this")]
    NotYourOrder {
        /// The order.
        order: RecordId,
        /// Who may.
        party: &'static str,
    },
    /// Not enough stock.
    #[error(
        "product {product} variant {variant} has {available} left; order fewer or wait for stock"
    )]
    OutOfStock {
        /// The product.
        product: RecordId,
        /// The variant.
        variant: u16,
        /// What is left.
        available: u64,
    },
    /// The price moved since the customer saw it.
    #[error(
        "product {product} variant {variant} now costs {price}; review the order and place it again"
    )]
    PriceChanged {
        /// The product.
        product: RecordId,
        /// The variant.
        variant: u16,
        /// The price now.
        price: u64,
    },
    /// The order is in a state that does not allow this call.
    #[error("cannot {call} an order that is {status}")]
    BadState {
        /// The call.
        call: &'static str,
        /// The order's status (or payment state).
        status: &'static str,
    },
    /// The order's lines mix sellers, currencies or kinds of good.
    #[error("an order holds one seller's goods of one kind in one currency: {0}")]
    MixedOrder(&'static str),
    /// The payment method does not fit the call or the currency.
    #[error("payment method: {0}")]
    WrongPaymentMethod(&'static str),
    /// A refund above what escrow holds.
    #[error("refund of {asked} is more than the {escrow} held in escrow")]
    RefundTooLarge {
        /// Asked.
        asked: u64,
        /// Held.
        escrow: u64,
    },
    /// Stock would go below zero.
    #[error("variant {variant} has {available} available; cannot take {taken}")]
    StockBelowZero {
        /// The variant.
        variant: u16,
        /// Available now.
        available: u64,
        /// Asked to remove.
        taken: u64,
    },
    /// The order line was already reviewed (revise it instead).
    #[error("order {0} line was already reviewed; revise the review instead")]
    AlreadyReviewed(RecordId),
    /// Only completed orders are reviewed.
    #[error("order {0} is not completed: only a completed order's lines are reviewed")]
    NotReviewable(RecordId),
    /// No review to revise or reply to.
    #[error("order {0} line has no review")]
    NoReview(RecordId),
    /// The seller already replied.
    #[error("the seller already replied to this review")]
    AlreadyReplied,
    /// The review has its most versions.
    #[error("the review already has {REVIEW_VERSIONS_MAX} versions")]
    ReviewVersionsMax,
    /// A rating outside 1–5.
    #[error("rating {0} is not 1 to 5")]
    BadRating(u8),
    /// A frozen party or asset.
    #[error("{0} is frozen by the regulator")]
    Frozen(&'static str),
    /// The organisation named is not a member carrier.
    #[error("organisation {0} is not a member carrier")]
    NotACarrier(OrgId),
    /// The sender's bank does not issue the order's currency.
    #[error("only the bank that issues {0} confirms payments and payouts in it")]
    NotIssuer(Asset),
    /// The asset cannot be used here (not the pegged coin or an e-money).
    #[error("{0} is neither the pegged coin nor a bank's e-money")]
    UnknownCurrency(Asset),
    /// The payout was already confirmed.
    #[error("payout {0} is already confirmed")]
    PayoutConfirmed(RecordId),
    /// Settlement arithmetic overflowed (amounts too large).
    #[error("amounts overflow: {0}")]
    Overflow(&'static str),
    /// The order has no open after-sales case.
    #[error("order {0} has no open after-sales case; the buyer opens one with request_return")]
    NoAfterSale(RecordId),
    /// The case is not at the step this call takes.
    #[error("cannot {call} an after-sales case that is {status}")]
    AfterSaleState {
        /// The call.
        call: &'static str,
        /// The case's status.
        status: &'static str,
    },
    /// The order has had its most after-sales cases.
    #[error(
        "order {0} has had {AFTER_SALES_PER_ORDER_MAX} after-sales cases, the most one order may"
    )]
    AfterSalesMax(RecordId),
}

impl CommerceError {
    /// A stable machine code.
    pub const fn code(&self) -> &'static str {
        match self {
            Self::Disabled => "commerce_disabled",
            Self::BadContent(_) => "bad_content",
            Self::UnknownProduct(_) => "unknown_product",
            Self::UnknownVariant { .. } => "unknown_variant",
            Self::UnknownOrder(_) => "unknown_order",
            Self::UnknownShipment { .. } => "unknown_shipment",
            Self::UnknownPayout(_) => "unknown_payout",
            Self::NotListed(_) => "product_not_listed",
            Self::NotYourProduct(_) => "not_your_product",
            Self::NotYourOrder { .. } => "not_your_order",
            Self::OutOfStock { .. } => "out_of_stock",
            Self::PriceChanged { .. } => "price_changed",
            Self::BadState { .. } => "bad_order_state",
            Self::MixedOrder(_) => "mixed_order",
            Self::WrongPaymentMethod(_) => "wrong_payment_method",
            Self::RefundTooLarge { .. } => "refund_too_large",
            Self::StockBelowZero { .. } => "stock_below_zero",
            Self::AlreadyReviewed(_) => "already_reviewed",
            Self::NotReviewable(_) => "not_reviewable",
            Self::NoReview(_) => "no_review",
            Self::AlreadyReplied => "already_replied",
            Self::ReviewVersionsMax => "review_versions_max",
            Self::BadRating(_) => "bad_rating",
            Self::Frozen(_) => "commerce_frozen",
            Self::NotACarrier(_) => "not_a_carrier",
            Self::NotIssuer(_) => "not_issuer",
            Self::UnknownCurrency(_) => "unknown_currency",
            Self::PayoutConfirmed(_) => "payout_confirmed",
            Self::Overflow(_) => "commerce_overflow",
            Self::NoAfterSale(_) => "no_after_sale",
            Self::AfterSaleState { .. } => "bad_after_sale_state",
            Self::AfterSalesMax(_) => "after_sales_max",
        }
    }

    /// Every code, for the API's documentation and its tests.
    pub const CODES: &'static [&'static str] = &[
        "commerce_disabled",
        "bad_content",
        "unknown_product",
        "unknown_variant",
        "unknown_order",
        "unknown_shipment",
        "unknown_payout",
        "product_not_listed",
        "not_your_product",
        "not_your_order",
        "out_of_stock",
        "price_changed",
        "bad_order_state",
        "mixed_order",
        "wrong_payment_method",
        "refund_too_large",
        "stock_below_zero",
        "already_reviewed",
        "not_reviewable",
        "no_review",
        "already_replied",
        "review_versions_max",
        "bad_rating",
        "commerce_frozen",
        "not_a_carrier",
        "not_issuer",
        "unknown_currency",
        "payout_confirmed",
        "commerce_overflow",
        "no_after_sale",
        "bad_after_sale_state",
        "after_sales_max",
    ];
}
