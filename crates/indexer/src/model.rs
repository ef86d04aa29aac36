//! The shop's read model in SQLite, and how one finalized block changes it.
//!
//! Record values come from the block's change list (exact, whatever changed them: a
//! transaction or the block's own steps); what only transactions carry (a product's text, a
//! review's words, a carrier's location, a cancellation's reason) comes from the block's
//! applied transactions. Everything is written in one SQLite transaction with the cursor.

use commonware_codec::DecodeExt as _;
use consort_types::{
    Block, Call, Outcome, SignedTx,
    changes::{Change, Changes, Record},
    commerce::{
        AfterSale, CommerceCall, Order, OrderStatus, Payout, ProductContent, ProductHead, RecordId,
        ReviewContent, ReviewHead, SellerStats, Shipment, VariantState,
    },
};
use rusqlite::{Connection, OptionalExtension as _, Transaction, params};
use serde_json::{Value, json};
use std::{collections::BTreeMap, path::Path};

/// Why the index could not take a block.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// SQLite failed.
    #[error("index database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The block does not follow the one the index holds.
    #[error(
        "block {height} does not follow the block this index holds at {held}: the index was \
         built from another chain (or another node's genesis); rebuild it with --rebuild"
    )]
    NotNext {
        /// The block offered.
        height: u64,
        /// The index's cursor.
        held: u64,
    },
    /// The file holds an index of another schema (written by another version).
    #[error(
        "{path} holds an index of schema {found}, this build writes {SCHEMA_VERSION}: delete it \
         (or pass --rebuild) to build it again"
    )]
    OtherSchema {
        /// The file.
        path: String,
        /// Its schema.
        found: String,
    },
    /// A change or transaction does not make sense (the node is not a Consort node of this
    /// version, or it is broken).
    #[error("block {height}: {what}")]
    Inconsistent {
        /// The block.
        height: u64,
        /// What was wrong.
        what: String,
    },
}

/// The label of the private record that holds a customer's profile (name, phone, addresses).
pub const PROFILE_LABEL: &[u8] = b"profile";

/// The version of the index's schema; an index of another version is rebuilt.
pub const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS cursor (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    height INTEGER NOT NULL,
    hash TEXT NOT NULL,
    time_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS products (
    id TEXT PRIMARY KEY,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    org TEXT NOT NULL,
    payee TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    title_zh TEXT NOT NULL,
    title_en TEXT NOT NULL,
    description_zh TEXT NOT NULL,
    description_en TEXT NOT NULL,
    category TEXT NOT NULL,
    attributes TEXT NOT NULL,
    images TEXT NOT NULL,
    rating_sum INTEGER NOT NULL,
    rating_count INTEGER NOT NULL,
    sold INTEGER NOT NULL,
    updated_height INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS product_versions (
    product TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest TEXT NOT NULL,
    content_at TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    content TEXT NOT NULL,
    PRIMARY KEY (product, version)
) STRICT;
CREATE TABLE IF NOT EXISTS variants (
    product TEXT NOT NULL,
    variant INTEGER NOT NULL,
    name TEXT NOT NULL,
    price INTEGER NOT NULL,
    currency TEXT NOT NULL,
    available INTEGER NOT NULL,
    reserved INTEGER NOT NULL,
    PRIMARY KEY (product, variant)
) STRICT;
CREATE TABLE IF NOT EXISTS orders (
    id TEXT PRIMARY KEY,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    buyer TEXT NOT NULL,
    seller TEXT NOT NULL,
    payee TEXT NOT NULL,
    kind TEXT NOT NULL,
    status TEXT NOT NULL,
    payment TEXT NOT NULL,
    method TEXT NOT NULL,
    currency TEXT NOT NULL,
    total INTEGER NOT NULL,
    escrow INTEGER NOT NULL,
    paid INTEGER NOT NULL,
    refunded INTEGER NOT NULL,
    settled INTEGER NOT NULL,
    fee INTEGER NOT NULL,
    carrier TEXT,
    shipments INTEGER NOT NULL,
    delivered INTEGER NOT NULL,
    placed_ms INTEGER NOT NULL,
    updated_height INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    changes INTEGER NOT NULL,
    history TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS orders_by_buyer ON orders (buyer, height, idx);
CREATE INDEX IF NOT EXISTS orders_by_seller ON orders (seller, status, height, idx);
CREATE INDEX IF NOT EXISTS orders_by_seller_newest ON orders (seller, height, idx);
CREATE INDEX IF NOT EXISTS orders_by_height ON orders (height, idx);
CREATE INDEX IF NOT EXISTS orders_by_carrier ON orders (carrier, status, height, idx);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    product TEXT NOT NULL,
    variant INTEGER NOT NULL,
    quantity INTEGER NOT NULL,
    price INTEGER NOT NULL,
    shipped INTEGER NOT NULL,
    PRIMARY KEY (order_id, line)
) STRICT;
CREATE TABLE IF NOT EXISTS order_events (
    order_id TEXT NOT NULL,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    event TEXT NOT NULL,
    status TEXT NOT NULL,
    payment TEXT NOT NULL,
    detail TEXT NOT NULL,
    PRIMARY KEY (order_id, height, idx, seq)
) STRICT;
CREATE TABLE IF NOT EXISTS shipments (
    order_id TEXT NOT NULL,
    shipment INTEGER NOT NULL,
    carrier TEXT NOT NULL,
    status TEXT NOT NULL,
    lines TEXT NOT NULL,
    events INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (order_id, shipment)
) STRICT;
CREATE TABLE IF NOT EXISTS shipment_events (
    order_id TEXT NOT NULL,
    shipment INTEGER NOT NULL,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    status TEXT NOT NULL,
    location TEXT NOT NULL,
    PRIMARY KEY (order_id, shipment, height, idx, seq)
) STRICT;
CREATE TABLE IF NOT EXISTS reviews (
    order_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    product TEXT NOT NULL,
    author TEXT NOT NULL,
    rating INTEGER NOT NULL,
    version INTEGER NOT NULL,
    text TEXT NOT NULL,
    photos TEXT NOT NULL,
    reply TEXT,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (order_id, line)
) STRICT;
CREATE INDEX IF NOT EXISTS reviews_by_product ON reviews (product);
CREATE INDEX IF NOT EXISTS order_events_by_height ON order_events (height);
CREATE INDEX IF NOT EXISTS shipment_events_by_height ON shipment_events (height);
CREATE INDEX IF NOT EXISTS shipments_by_carrier ON shipments (carrier, created_ms);
CREATE TABLE IF NOT EXISTS review_versions (
    order_id TEXT NOT NULL,
    line INTEGER NOT NULL,
    version INTEGER NOT NULL,
    rating INTEGER NOT NULL,
    text TEXT NOT NULL,
    photos TEXT NOT NULL,
    content_at TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (order_id, line, version)
) STRICT;
CREATE TABLE IF NOT EXISTS sellers (
    org TEXT PRIMARY KEY,
    rating_sum INTEGER NOT NULL,
    rating_count INTEGER NOT NULL,
    completed INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS search_dirty (product TEXT PRIMARY KEY) STRICT;
CREATE TABLE IF NOT EXISTS profiles (
    account TEXT PRIMARY KEY,
    height INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    envelope TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS after_sales (
    order_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    goods_back INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    refunded INTEGER NOT NULL,
    cases INTEGER NOT NULL,
    carrier TEXT,
    deadline_ms INTEGER NOT NULL,
    opened_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS payouts (
    id TEXT PRIMARY KEY,
    seller TEXT NOT NULL,
    asset TEXT NOT NULL,
    amount INTEGER NOT NULL,
    confirmed INTEGER NOT NULL,
    requested_ms INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS payouts_by_seller ON payouts (seller, requested_ms);
CREATE INDEX IF NOT EXISTS payouts_by_asset ON payouts (asset, confirmed, requested_ms);
CREATE INDEX IF NOT EXISTS payouts_by_time ON payouts (requested_ms);
";

/// The tables [`Index::dump`] shows, each with the columns that order its rows.
const TABLES: [(&str, &str); 15] = [
    ("cursor", "id"),
    ("products", "id"),
    ("product_versions", "product, version"),
    ("variants", "product, variant"),
    ("orders", "id"),
    ("order_lines", "order_id, line"),
    ("order_events", "order_id, height, idx, seq"),
    ("shipments", "order_id, shipment"),
    ("shipment_events", "order_id, shipment, height, idx, seq"),
    ("reviews", "order_id, line"),
    ("review_versions", "order_id, line, version"),
    ("sellers", "org"),
    ("payouts", "id"),
    ("after_sales", "order_id"),
    ("profiles", "account"),
];

/// The read model.
pub struct Index {
    conn: Connection,
}

/// Where the index stands: the last block it applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    /// Its height.
    pub height: u64,
    /// Its hash (hex).
    pub hash: String,
    /// Its time (ms).
    pub time_ms: u64,
}

fn sql(n: u64) -> i64 {
    // Heights, amounts and times of a real chain are far below 2^63; a larger one is kept
    // as the largest SQLite integer rather than wrapping negative.
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn name<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

impl Index {
    /// Open (or create) the index at `path`.
    ///
    /// # Errors
    /// If SQLite fails, or the file holds an index of another schema version (rebuild it).
    pub fn open(path: &Path) -> Result<Self, IndexError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        let version: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match version {
            None => {
                conn.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1)",
                    [SCHEMA_VERSION.to_string()],
                )?;
            }
            Some(v) if v == SCHEMA_VERSION.to_string() => {}
            Some(found) => {
                return Err(IndexError::OtherSchema {
                    path: path.display().to_string(),
                    found,
                });
            }
        }
        Ok(Self { conn })
    }

    /// The SQLite connection, for queries.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The last block applied, if any.
    ///
    /// # Errors
    /// If SQLite fails.
    pub fn cursor(&self) -> Result<Option<Cursor>, IndexError> {
        Ok(self
            .conn
            .query_row(
                "SELECT height, hash, time_ms FROM cursor WHERE id = 0",
                [],
                |r| {
                    Ok(Cursor {
                        height: u64::try_from(r.get::<_, i64>(0)?).unwrap_or_default(),
                        hash: r.get(1)?,
                        time_ms: u64::try_from(r.get::<_, i64>(2)?).unwrap_or_default(),
                    })
                },
            )
            .optional()?)
    }

    /// Apply finalized `block` and the shop records it changed, with the cursor, in one
    /// SQLite transaction: all of it or (on any error) none.
    ///
    /// # Errors
    /// If the block is not the next one, a change or transaction does not decode, or SQLite
    /// fails.
    pub fn apply(&mut self, block: &Block, changes: &Changes) -> Result<(), IndexError> {
        let height = block.number();
        let held = self.cursor()?;
        let next = held.as_ref().map_or(1, |c| c.height + 1);
        let parent = consort_types::hex_serde::encode(&block.header.parent);
        if height != next || held.as_ref().is_some_and(|c| c.hash != parent) {
            return Err(IndexError::NotNext {
                height,
                held: next - 1,
            });
        }
        let tx = self.conn.transaction()?;
        Applying {
            tx: &tx,
            height,
            time_ms: block.header.timestamp_ms,
        }
        .run(block, changes)?;
        tx.execute(
            "INSERT OR REPLACE INTO cursor (id, height, hash, time_ms) VALUES (0, ?1, ?2, ?3)",
            params![
                sql(height),
                consort_types::hex_serde::encode(&commonware_cryptography::Digestible::digest(
                    block
                )),
                sql(block.header.timestamp_ms)
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every row of every table, in key order, one per line: two indexes of the same blocks
    /// dump the same text.
    ///
    /// # Errors
    /// If SQLite fails.
    pub fn dump(&self) -> Result<String, IndexError> {
        let mut out = String::new();
        for (table, order) in TABLES {
            out.push_str(&format!("[{table}]\n"));
            let mut statement = self
                .conn
                .prepare(&format!("SELECT * FROM {table} ORDER BY {order}"))?;
            let columns = statement.column_count();
            let mut rows = statement.query([])?;
            while let Some(row) = rows.next()? {
                let cells: Vec<String> = (0..columns)
                    .map(|i| match row.get_ref(i) {
                        Ok(rusqlite::types::ValueRef::Null) => "NULL".to_string(),
                        Ok(rusqlite::types::ValueRef::Integer(n)) => n.to_string(),
                        Ok(rusqlite::types::ValueRef::Text(t)) => {
                            format!("{:?}", String::from_utf8_lossy(t))
                        }
                        Ok(rusqlite::types::ValueRef::Real(r)) => r.to_string(),
                        Ok(rusqlite::types::ValueRef::Blob(b)) => hex::encode(b),
                        Err(e) => format!("<{e}>"),
                    })
                    .collect();
                out.push_str(&cells.join("\t"));
                out.push('\n');
            }
        }
        Ok(out)
    }
}

/// What the block's applied transactions carry that the records do not.
#[derive(Default)]
struct Carried<'a> {
    /// Product content by product, in transaction order, each with its transaction's place
    /// (a block may publish and update a product, or update it twice).
    products: BTreeMap<RecordId, Vec<(RecordId, &'a ProductContent)>>,
    /// Review content by (order, line), in transaction order, with its place.
    reviews: BTreeMap<(RecordId, u8), Vec<(RecordId, &'a ReviewContent)>>,
    /// Seller replies by place.
    replies: BTreeMap<RecordId, &'a str>,
    /// Timeline entries per order: (tx index, seq, event, detail).
    events: BTreeMap<RecordId, Vec<(u32, u32, &'static str, Value)>>,
    /// Carrier events: (order, shipment, tx index, seq, status, location).
    shipments: Vec<(RecordId, u16, u32, u32, String, &'a str)>,
    /// Next sequence number per (order, tx index) of timeline entries.
    event_seq: BTreeMap<(RecordId, u32), u32>,
    /// Next sequence number per (order, shipment, tx index) of carrier events.
    shipment_seq: BTreeMap<(RecordId, u16, u32), u32>,
}

impl<'a> Carried<'a> {
    fn event(&mut self, order: RecordId, index: u32, event: &'static str, detail: Value) {
        let next = self.event_seq.entry((order, index)).or_default();
        let seq = *next;
        *next += 1;
        self.events
            .entry(order)
            .or_default()
            .push((index, seq, event, detail));
    }

    fn take(&mut self, height: u64, index: u32, tx: &'a SignedTx) {
        let Call::Commerce(call) = &tx.tx.call else {
            return;
        };
        let here = RecordId { height, index };
        let kind = call.kind();
        use CommerceCall as C;
        match call {
            C::PublishProduct { content } => {
                self.products.entry(here).or_default().push((here, content));
            }
            C::UpdateProduct { product, content } => {
                self.products
                    .entry(*product)
                    .or_default()
                    .push((here, content));
            }
            C::Review {
                order,
                line,
                content,
            }
            | C::ReviseReview {
                order,
                line,
                content,
            } => {
                self.reviews
                    .entry((*order, *line))
                    .or_default()
                    .push((here, content));
            }
            C::ReplyReview { text, .. } => {
                self.replies.insert(here, text.as_str());
            }
            _ => {}
        }
        match call {
            C::PlaceOrder { method, pay, .. } => {
                self.event(here, index, kind, json!({"method": method, "paid": pay}));
            }
            C::PayOrder { order } | C::Fulfil { order, .. } | C::ConfirmReceipt { order } => {
                self.event(*order, index, kind, json!({}));
            }
            C::AcceptOrders { orders } => {
                for order in &orders.0 {
                    self.event(*order, index, kind, json!({}));
                }
            }
            C::ModifyOrder {
                order,
                quantities,
                address,
            } => {
                self.event(
                    *order,
                    index,
                    kind,
                    json!({"quantities": quantities.0, "new_address": address.is_some()}),
                );
            }
            C::CancelOrder { order, reason } => {
                self.event(*order, index, kind, json!({"reason": reason.as_str()}));
            }
            C::Ship {
                order,
                lines,
                carrier,
                ..
            } => {
                self.event(
                    *order,
                    index,
                    kind,
                    json!({"carrier": carrier, "lines": lines.0}),
                );
            }
            C::ShipOrders { shipments } => {
                for shipping in &shipments.0 {
                    self.event(
                        shipping.order,
                        index,
                        "ship",
                        json!({"carrier": shipping.carrier, "lines": shipping.lines.0}),
                    );
                }
            }
            C::CarrierEvents { events } => {
                for event in &events.0 {
                    let status = name(&event.status);
                    self.event(
                        event.order,
                        index,
                        kind,
                        json!({
                            "shipment": event.shipment,
                            "status": status,
                            "location": event.location.as_str(),
                        }),
                    );
                    let next = self
                        .shipment_seq
                        .entry((event.order, event.shipment, index))
                        .or_default();
                    let seq = *next;
                    *next += 1;
                    self.shipments.push((
                        event.order,
                        event.shipment,
                        index,
                        seq,
                        status,
                        event.location.as_str(),
                    ));
                }
            }
            C::Refund {
                order,
                amount,
                reason,
            } => {
                self.event(
                    *order,
                    index,
                    kind,
                    json!({"amount": amount, "reason": reason.as_str()}),
                );
            }
            C::ConfirmPayment { order, amount } | C::CollectCash { order, amount } => {
                self.event(*order, index, kind, json!({"amount": amount}));
            }
            C::Review { order, line, .. }
            | C::ReviseReview { order, line, .. }
            | C::ReplyReview { order, line, .. } => {
                self.event(*order, index, kind, json!({"line": line}));
            }
            C::RequestReturn {
                order,
                amount,
                goods_back,
                reason,
            } => {
                self.event(
                    *order,
                    index,
                    kind,
                    json!({"amount": amount, "goods_back": goods_back, "reason": reason.as_str()}),
                );
            }
            C::AnswerReturn {
                order,
                approve,
                reason,
            } => {
                self.event(
                    *order,
                    index,
                    kind,
                    json!({"approve": approve, "reason": reason.as_str()}),
                );
            }
            C::ReturnShipped {
                order,
                carrier,
                tracking,
            } => {
                self.event(
                    *order,
                    index,
                    kind,
                    json!({"carrier": carrier, "tracking": tracking.as_str()}),
                );
            }
            C::OpenDispute { order, reason } => {
                self.event(*order, index, kind, json!({"reason": reason.as_str()}));
            }
            C::RuleDispute {
                order,
                refund,
                reason,
            } => {
                self.event(
                    *order,
                    index,
                    kind,
                    json!({"refund": refund, "reason": reason.as_str()}),
                );
            }
            C::ReceiveReturn { order } | C::WithdrawReturn { order } => {
                self.event(*order, index, kind, json!({}));
            }
            C::PublishProduct { .. }
            | C::UpdateProduct { .. }
            | C::SetListed { .. }
            | C::Suspend { .. }
            | C::SetStock { .. }
            | C::RequestPayout { .. }
            | C::ConfirmPayout { .. }
            | C::CancelPayout { .. } => {}
        }
    }
}

/// One block being applied.
struct Applying<'t, 'c> {
    tx: &'t Transaction<'c>,
    height: u64,
    time_ms: u64,
}

impl Applying<'_, '_> {
    /// Mark `product` for the search index to write again ([`crate::search::Search::sync`]).
    fn dirty(&self, product: &RecordId) -> Result<(), IndexError> {
        self.tx.execute(
            "INSERT OR IGNORE INTO search_dirty (product) VALUES (?1)",
            [product.to_string()],
        )?;
        Ok(())
    }

    fn bad(&self, what: impl Into<String>) -> IndexError {
        IndexError::Inconsistent {
            height: self.height,
            what: what.into(),
        }
    }

    fn decode<T: commonware_codec::Read<Cfg = ()>>(
        &self,
        change: &Change,
        value: &[u8],
    ) -> Result<T, IndexError> {
        T::decode(bytes::Bytes::copy_from_slice(value))
            .map_err(|e| self.bad(format!("{:?} does not decode: {e}", change.record)))
    }

    fn run(&self, block: &Block, changes: &Changes) -> Result<(), IndexError> {
        if block.txs.len() != block.outcomes.len() {
            return Err(self.bad("a block's transactions and outcomes do not pair up"));
        }
        let mut carried = Carried::default();
        for ((index, tx), outcome) in (0u32..).zip(block.txs.iter()).zip(block.outcomes.iter()) {
            if *outcome == Outcome::Applied {
                carried.take(self.height, index, tx);
                self.profile(index, tx)?;
            }
        }
        for change in &changes.0 {
            self.change(change, &mut carried)?;
        }
        for (order, shipment, index, seq, status, location) in &carried.shipments {
            self.tx.execute(
                "INSERT OR REPLACE INTO shipment_events \
                 (order_id, shipment, height, idx, seq, time_ms, status, location) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    order.to_string(),
                    shipment,
                    sql(self.height),
                    index,
                    seq,
                    sql(self.time_ms),
                    status,
                    location
                ],
            )?;
        }
        Ok(())
    }

    /// A customer's profile: a private record labelled `profile` that an account writes about
    /// itself, sealed (to itself and a regulator). The newest is kept, still sealed: only its
    /// recipients can open it.
    fn profile(&self, index: u32, tx: &SignedTx) -> Result<(), IndexError> {
        if let Call::PutPrivate {
            about,
            label,
            envelope,
        } = &tx.tx.call
            && *about == tx.tx.sender
            && label.as_slice() == PROFILE_LABEL
        {
            let envelope = serde_json::to_string(envelope)
                .map_err(|e| self.bad(format!("a profile's envelope: {e}")))?;
            self.tx.execute(
                "INSERT OR REPLACE INTO profiles (account, height, idx, envelope) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![tx.tx.sender.to_string(), sql(self.height), index, envelope],
            )?;
        }
        Ok(())
    }

    fn change(&self, change: &Change, carried: &mut Carried<'_>) -> Result<(), IndexError> {
        let Some(value) = &change.value else {
            return self.removed(change);
        };
        match change.record {
            Record::Product { id } => {
                let head: ProductHead = self.decode(change, value)?;
                self.product(id, &head, carried)
            }
            Record::Variant { product, variant } => {
                let state: VariantState = self.decode(change, value)?;
                self.dirty(&product)?;
                self.tx.execute(
                    "INSERT INTO variants \
                     (product, variant, name, price, currency, available, reserved) \
                     VALUES (?1, ?2, '', ?3, ?4, ?5, ?6) \
                     ON CONFLICT (product, variant) DO UPDATE SET price = ?3, currency = ?4, \
                     available = ?5, reserved = ?6",
                    params![
                        product.to_string(),
                        variant,
                        sql(state.price),
                        state.currency.to_string(),
                        sql(state.available),
                        sql(state.reserved)
                    ],
                )?;
                Ok(())
            }
            Record::Order { id } => {
                let order: Order = self.decode(change, value)?;
                self.order(id, &order, carried)
            }
            Record::Shipment { order, shipment } => {
                let record: Shipment = self.decode(change, value)?;
                self.tx.execute(
                    "INSERT OR REPLACE INTO shipments \
                     (order_id, shipment, carrier, status, lines, events, created_ms, updated_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        order.to_string(),
                        shipment,
                        record.carrier.to_string(),
                        name(&record.status),
                        json!(record.lines.0).to_string(),
                        record.events,
                        sql(record.created.time_ms),
                        sql(record.updated.time_ms)
                    ],
                )?;
                Ok(())
            }
            Record::Review { order, line } => {
                let head: ReviewHead = self.decode(change, value)?;
                self.review(order, line, &head, carried)
            }
            Record::Seller { org } => {
                let stats: SellerStats = self.decode(change, value)?;
                self.tx.execute(
                    "INSERT OR REPLACE INTO sellers (org, rating_sum, rating_count, completed) \
                     VALUES (?1, ?2, ?3, ?4)",
                    params![
                        org.to_string(),
                        sql(stats.rating_sum),
                        sql(stats.rating_count),
                        sql(stats.completed)
                    ],
                )?;
                Ok(())
            }
            Record::AfterSale { order } => {
                let case: AfterSale = self.decode(change, value)?;
                self.tx.execute(
                    "INSERT OR REPLACE INTO after_sales (order_id, status, goods_back, amount, \
                     refunded, cases, carrier, deadline_ms, opened_ms, updated_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                    params![
                        order.to_string(),
                        case.status.name(),
                        case.goods_back,
                        sql(case.amount),
                        sql(case.refunded),
                        case.cases,
                        case.carrier.map(|c| c.to_string()),
                        sql(case.deadline_ms),
                        sql(case.opened.time_ms),
                        sql(case.updated.time_ms)
                    ],
                )?;
                Ok(())
            }
            Record::Payout { id } => {
                let payout: Payout = self.decode(change, value)?;
                self.tx.execute(
                    "INSERT OR REPLACE INTO payouts \
                     (id, seller, asset, amount, confirmed, requested_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        id.to_string(),
                        payout.seller.to_string(),
                        payout.asset.to_string(),
                        sql(payout.amount),
                        payout.confirmed,
                        sql(payout.requested.time_ms)
                    ],
                )?;
                Ok(())
            }
        }
    }

    fn removed(&self, change: &Change) -> Result<(), IndexError> {
        match change.record {
            Record::Payout { id } => {
                self.tx
                    .execute("DELETE FROM payouts WHERE id = ?1", [id.to_string()])?;
                Ok(())
            }
            // Nothing else is ever removed from the shop's state.
            other => Err(self.bad(format!("{other:?} removed"))),
        }
    }

    fn product(
        &self,
        id: RecordId,
        head: &ProductHead,
        carried: &Carried<'_>,
    ) -> Result<(), IndexError> {
        let key = id.to_string();
        self.dirty(&id)?;
        self.tx.execute(
            "INSERT INTO products (id, height, idx, org, payee, kind, status, version, digest, \
             title_zh, title_en, description_zh, description_en, category, attributes, images, \
             rating_sum, rating_count, sold, updated_height, updated_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '', '', '', '', '', '[]', '[]', ?10, ?11, \
             0, ?12, ?13) \
             ON CONFLICT (id) DO UPDATE SET org = ?4, payee = ?5, kind = ?6, status = ?7, \
             version = ?8, digest = ?9, rating_sum = ?10, rating_count = ?11, \
             updated_height = ?12, updated_ms = ?13",
            params![
                key,
                sql(id.height),
                id.index,
                head.org.to_string(),
                head.payee.to_string(),
                name(&head.kind),
                name(&head.status),
                head.version,
                hex::encode(head.digest),
                sql(head.rating_sum),
                sql(head.rating_count),
                sql(head.updated.height),
                sql(head.updated.time_ms)
            ],
        )?;
        // A new version: its content is in the transaction that made it, in this block.
        if head.content_at.height != self.height {
            return Ok(());
        }
        // Every version this block made, in order: the last is the head's.
        let made = carried
            .products
            .get(&id)
            .filter(|made| made.last().is_some_and(|(at, _)| *at == head.content_at))
            .ok_or_else(|| {
                self.bad(format!(
                    "product {id} version {} names content at {} that no applied transaction \
                     of this block carries",
                    head.version, head.content_at
                ))
            })?;
        let (_, content) = made[made.len() - 1];
        if content.digest() != head.digest {
            return Err(self.bad(format!(
                "product {id} version {}: the content's digest is not the head's",
                head.version
            )));
        }
        let first = u32::try_from(made.len() - 1)
            .ok()
            .and_then(|n| head.version.checked_sub(n))
            .filter(|first| *first >= 1)
            .ok_or_else(|| self.bad(format!("product {id}: more versions than its head counts")))?;
        for ((at, version_content), version) in made.iter().zip(first..) {
            self.tx.execute(
                "INSERT OR REPLACE INTO product_versions \
                 (product, version, digest, content_at, time_ms, content) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key,
                    version,
                    hex::encode(version_content.digest()),
                    at.to_string(),
                    sql(self.time_ms),
                    json!(version_content).to_string()
                ],
            )?;
        }
        self.tx.execute(
            "UPDATE products SET title_zh = ?2, title_en = ?3, description_zh = ?4, \
             description_en = ?5, category = ?6, attributes = ?7, images = ?8 WHERE id = ?1",
            params![
                key,
                content.title_zh.as_str(),
                content.title_en.as_str(),
                content.description_zh.as_str(),
                content.description_en.as_str(),
                content.category.as_str(),
                json!(content.attributes.0).to_string(),
                json!(content.images.0).to_string()
            ],
        )?;
        for (variant, spec) in (0u16..).zip(&content.variants.0) {
            // The variant's row was written by its own change (price and stock); this names it.
            self.tx.execute(
                "INSERT INTO variants \
                 (product, variant, name, price, currency, available, reserved) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, 0) \
                 ON CONFLICT (product, variant) DO UPDATE SET name = ?3",
                params![
                    key,
                    variant,
                    spec.name.as_str(),
                    sql(spec.price),
                    spec.currency.to_string()
                ],
            )?;
        }
        Ok(())
    }

    fn order(
        &self,
        id: RecordId,
        order: &Order,
        carried: &mut Carried<'_>,
    ) -> Result<(), IndexError> {
        let key = id.to_string();
        let before: Option<(String, String)> = self
            .tx
            .query_row(
                "SELECT status, payment FROM orders WHERE id = ?1",
                [&key],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let status = name(&order.status);
        let payment = name(&order.payment);
        self.tx.execute(
            "INSERT OR REPLACE INTO orders (id, height, idx, buyer, seller, payee, kind, status, \
             payment, method, currency, total, escrow, paid, refunded, settled, fee, carrier, \
             shipments, delivered, placed_ms, updated_height, updated_ms, deadline_ms, changes, \
             history) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, \
             ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)",
            params![
                key,
                sql(id.height),
                id.index,
                order.buyer.to_string(),
                order.seller.to_string(),
                order.payee.to_string(),
                name(&order.kind),
                status,
                payment,
                name(&order.method),
                order.currency.to_string(),
                sql(order.total),
                sql(order.escrow),
                sql(order.paid),
                sql(order.refunded),
                sql(order.settled),
                sql(order.fee),
                order.carrier.map(|c| c.to_string()),
                order.shipments,
                order.delivered,
                sql(order.placed.time_ms),
                sql(order.updated.height),
                sql(order.updated.time_ms),
                sql(order.deadline_ms),
                order.changes,
                hex::encode(order.history)
            ],
        )?;
        for (line, l) in (0u32..).zip(&order.lines.0) {
            self.tx.execute(
                "INSERT OR REPLACE INTO order_lines \
                 (order_id, line, product, variant, quantity, price, shipped) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    key,
                    line,
                    l.product.to_string(),
                    l.variant,
                    l.quantity,
                    sql(l.price),
                    l.shipped
                ],
            )?;
        }
        // Sales: what an order shipped counts once it completes.
        let completed_now = order.status == OrderStatus::Completed
            && order.payment == consort_types::commerce::PaymentState::Released
            && before
                .as_ref()
                .is_none_or(|(s, _)| s != OrderStatus::Completed.name());
        if completed_now {
            for l in &order.lines.0 {
                self.tx.execute(
                    "UPDATE products SET sold = sold + ?2 WHERE id = ?1",
                    params![l.product.to_string(), l.shipped],
                )?;
                self.dirty(&l.product)?;
            }
        }
        // The timeline: what this block's transactions did to the order, or, if none named
        // it, what the block's own steps did (an unpaid order expired, a delivered one
        // completed when its receipt window passed).
        let mut events = carried.events.remove(&id).unwrap_or_default();
        // What the block's own steps did after its transactions: an order expires only by
        // its payment window; it completes by a transaction only through these calls.
        let step = match order.status {
            OrderStatus::Expired if before.as_ref().is_none_or(|(s, _)| s != "expired") => {
                Some("expired")
            }
            // An after-sales case moved on by itself (a window passed) in a block whose
            // transactions did not touch the order.
            _ if events.is_empty()
                && before
                    .as_ref()
                    .is_some_and(|(s, _)| s == OrderStatus::AfterSale.name()) =>
            {
                Some("after_sale_lapsed")
            }
            OrderStatus::Completed
                if before.as_ref().is_none_or(|(s, _)| s != "completed")
                    && !events.iter().any(|(_, _, e, _)| {
                        matches!(
                            *e,
                            "confirm_receipt"
                                | "confirm_payment"
                                | "refund"
                                | "cancel_order"
                                | "answer_return"
                                | "receive_return"
                                | "rule_dispute"
                        )
                    }) =>
            {
                Some("auto_completed")
            }
            _ => None,
        };
        if let Some(step) = step {
            events.push((u32::MAX, 0, step, json!({})));
        } else if events.is_empty() {
            events.push((u32::MAX, 0, "updated", json!({})));
        }
        for (index, seq, event, detail) in events {
            self.tx.execute(
                "INSERT OR REPLACE INTO order_events \
                 (order_id, height, idx, seq, time_ms, event, status, payment, detail) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![
                    key,
                    sql(self.height),
                    index,
                    seq,
                    sql(self.time_ms),
                    event,
                    status,
                    payment,
                    detail.to_string()
                ],
            )?;
        }
        Ok(())
    }

    fn review(
        &self,
        order: RecordId,
        line: u8,
        head: &ReviewHead,
        carried: &Carried<'_>,
    ) -> Result<(), IndexError> {
        let key = order.to_string();
        let exists: bool = self
            .tx
            .query_row(
                "SELECT 1 FROM reviews WHERE order_id = ?1 AND line = ?2",
                params![key, line],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            self.tx.execute(
                "INSERT INTO reviews (order_id, line, product, author, rating, version, text, \
                 photos, reply, time_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, '', '[]', NULL, ?7)",
                params![
                    key,
                    line,
                    head.product.to_string(),
                    head.author.to_string(),
                    head.rating,
                    head.version,
                    sql(self.time_ms)
                ],
            )?;
        }
        self.tx.execute(
            "UPDATE reviews SET author = ?3, rating = ?4, version = ?5 \
             WHERE order_id = ?1 AND line = ?2",
            params![
                key,
                line,
                head.author.to_string(),
                head.rating,
                head.version
            ],
        )?;
        if head.content_at.height == self.height {
            let made = carried
                .reviews
                .get(&(order, line))
                .filter(|made| made.last().is_some_and(|(at, _)| *at == head.content_at))
                .ok_or_else(|| {
                    self.bad(format!(
                        "review {order}/{line} names content at {} that no applied \
                         transaction of this block carries",
                        head.content_at
                    ))
                })?;
            let first = u32::try_from(made.len() - 1)
                .ok()
                .and_then(|n| head.version.checked_sub(n))
                .filter(|first| *first >= 1)
                .ok_or_else(|| {
                    self.bad(format!(
                        "review {order}/{line}: more versions than it counts"
                    ))
                })?;
            let photos_of = |content: &ReviewContent| {
                json!(content.photos.0.iter().map(hex::encode).collect::<Vec<_>>()).to_string()
            };
            for ((at, content), version) in made.iter().zip(first..) {
                self.tx.execute(
                    "INSERT OR REPLACE INTO review_versions \
                     (order_id, line, version, rating, text, photos, content_at, time_ms) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    params![
                        key,
                        line,
                        version,
                        content.rating,
                        content.text.as_str(),
                        photos_of(content),
                        at.to_string(),
                        sql(self.time_ms)
                    ],
                )?;
            }
            let (_, content) = made[made.len() - 1];
            self.tx.execute(
                "UPDATE reviews SET text = ?3, photos = ?4, time_ms = ?5 \
                 WHERE order_id = ?1 AND line = ?2",
                params![
                    key,
                    line,
                    content.text.as_str(),
                    photos_of(content),
                    sql(self.time_ms)
                ],
            )?;
        }
        if let Some(reply_at) = head.reply_at
            && reply_at.height == self.height
        {
            let text = carried.replies.get(&reply_at).ok_or_else(|| {
                self.bad(format!(
                    "review {order}/{line} names a reply at {reply_at} that no applied \
                     transaction of this block carries"
                ))
            })?;
            self.tx.execute(
                "UPDATE reviews SET reply = ?3 WHERE order_id = ?1 AND line = ?2",
                params![key, line, text],
            )?;
        }
        Ok(())
    }
}
