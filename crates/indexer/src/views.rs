//! Order views: a customer's orders with their whole timeline, a seller organisation's order
//! queue, a carrier's assigned shipments, and a stream of updates as blocks change them.
//!
//! A customer's purchases are nobody else's business: every route here answers only requests
//! signed by an account's key (see [`consort_types::signed_read`]), and an order only to its
//! parties (the buyer, a seller account of the seller organisation, a carrier account of a
//! carrier assigned to one of its shipments) and to regulators, as the node's own order route
//! decides. A buyer that rotated its key reads the orders of its earlier keys with the new one,
//! and a key rotated away reads nothing (it may be the lost or stolen one). Who belongs to
//! which organisation, and which keys an account held, is asked of the node, which reads it
//! from the chain's state, and remembered for [`MEMBER_TTL`].

use crate::{
    Identity, Member,
    search::{PAGE_SIZE_MAX, RESULT_DEPTH_MAX},
    shop::{
        ApiError, Shop, StreamSlot, UPDATE_STREAMS_MAX, UPDATE_STREAMS_PER_ACCOUNT_MAX, Update,
        parse_id, query_error,
    },
};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    response::sse::{Event, KeepAlive, Sse},
    routing::get,
};
use consort_types::{AccountId, gov::role, signed_read};
use futures::Stream;
use rusqlite::{OptionalExtension as _, params};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

/// How long who-is-who answers from the node are reused. A revoked account keeps its view
/// for at most this long.
pub const MEMBER_TTL: Duration = Duration::from_secs(5);

/// Most accounts remembered; the cache starts again when full.
const MEMBER_CACHE: usize = 10_000;

/// Most currencies whose issuer the views remember (the chain holds at most its
/// `ASSETS_MAX` assets, and the pegged coin).
const ISSUERS_CACHED_MAX: usize = 1_024;

/// Timeline entries an order view shows (the newest; `timeline_truncated` says when older
/// ones were left out).
pub const TIMELINE_MAX: usize = 500;

/// Orders one update event lists for one block (a regulator watching a busy chain gets a
/// `truncated` event beyond it and reads the queue instead).
pub const STREAM_BLOCK_ORDERS_MAX: usize = 1_000;

/// How long one update stream lasts: a client opens a new one (signed again) after it.
pub const STREAM_LIFETIME: Duration =
    Duration::from_secs(consort_types::signed_read::READ_WINDOW_SECS);

/// The routes, merged into [`crate::api::routes`].
pub(crate) fn routes() -> Router<Arc<Shop>> {
    Router::new()
        .route("/v1/shop/orders", get(list))
        .route("/v1/shop/payouts", get(payouts))
        .route("/v1/shop/orders/{id}", get(order))
        .route("/v1/shop/updates", get(updates))
        .route("/v1/shop/profile", get(profile))
}

/// The signer's profile as it last wrote it: still sealed (to itself and a regulator), with
/// what opening it needs (author, about, label).
async fn profile(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = signer(&shop, &method, &uri, &headers, &[]).await?;
    let me = account.to_string();
    shop.read(move |_, conn| {
        let found: Option<(i64, i64, String)> = conn
            .query_row(
                "SELECT height, idx, envelope FROM profiles WHERE account = ?1",
                [&me],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((height, index, envelope)) = found else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "no_profile",
                format!(
                    "{me} has no profile yet: `consort shop profile --name ... --address ...` \
                     writes one"
                ),
            ));
        };
        let envelope: Value = serde_json::from_str(&envelope).map_err(ApiError::internal)?;
        Ok(Json(json!({
            "account": me,
            "author": me,
            "about": me,
            "label": "profile",
            "at": format!("{height}-{index}"),
            "envelope": envelope,
        })))
    })
    .await
}

/// Who signed a request.
pub(crate) struct Reader {
    /// The signing account.
    pub account: AccountId,
    /// Its organisation and roles, if it is an active member's active account.
    pub member: Option<Member>,
    /// The keys its account held before (newest first, at most
    /// [`ROTATION_HOPS_MAX`](consort_types::gov::ROTATION_HOPS_MAX)): orders placed with
    /// them are its own.
    pub previous: Vec<AccountId>,
}

impl Reader {
    /// Who signed, from what the node says of its key.
    fn new(account: AccountId, identity: Identity) -> Self {
        Self {
            account,
            member: identity.member,
            previous: identity.previous,
        }
    }

    /// The buyer keys whose orders are the reader's own (its key and its earlier ones), as
    /// a JSON array for SQL's `json_each`.
    fn buyer_keys(&self) -> String {
        let keys: Vec<String> = std::iter::once(&self.account)
            .chain(&self.previous)
            .map(AccountId::to_string)
            .collect();
        Value::from(keys).to_string()
    }

    /// Whether orders placed by `buyer` are the reader's own.
    fn bought_as(&self, buyer: &str) -> bool {
        std::iter::once(&self.account)
            .chain(&self.previous)
            .any(|key| key.to_string() == buyer)
    }

    fn regulator(&self) -> bool {
        self.member
            .as_ref()
            .is_some_and(|m| m.roles & role::REGULATOR != 0)
    }

    /// The reader's organisation, if it holds one of `roles` there.
    fn org_as(&self, roles: u16) -> Option<&str> {
        self.member
            .as_ref()
            .filter(|m| m.roles & roles != 0)
            .map(|m| m.org.as_str())
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn unreachable_node(error: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "node_unreachable",
        format!("cannot ask the node who signed this request: {error}; try again shortly"),
    )
}

/// The account that signed this request (with `body`), refused if its key was rotated away:
/// that key may be the lost or stolen one, and what its account keeps in the shop (orders,
/// profile, cart) is for its new key now.
pub(crate) async fn signer(
    shop: &Arc<Shop>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<AccountId, ApiError> {
    Ok(signed_by(shop, method, uri, headers, body).await?.0)
}

/// The account that signed this request (with `body`) and who it is on the chain, refused if
/// its key was rotated away.
async fn signed_by(
    shop: &Arc<Shop>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(AccountId, Identity), ApiError> {
    let chain_id = match shop.chain_id.get() {
        Some(id) => *id,
        None => {
            let id = shop.node.chain_id().await.map_err(unreachable_node)?;
            *shop.chain_id.get_or_init(|| id)
        }
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let path = uri.path_and_query().map_or(uri.path(), |p| p.as_str());
    let host = uri.authority().map(|a| a.as_str()).or_else(|| {
        headers
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
    });
    let account = signed_read::verify(
        chain_id,
        shop.hosts.get().map_or(&[], Vec::as_slice),
        signed_read::Request {
            host,
            method: method.as_str(),
            path_and_query: path,
            body,
        },
        signed_read::ReadHeaders {
            account: header("x-consort-account"),
            time: header("x-consort-time"),
            signature: header("x-consort-signature"),
        },
        now_secs(),
    )
    .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "unsigned_read", e.to_string()))?;
    let identity = identity_of(shop, account).await?;
    if let Some(new) = identity.rotated_to {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "key_rotated",
            format!(
                "this key was rotated to {new}: sign with that key, which reads this key's \
                 orders too"
            ),
        ));
    }
    Ok((account, identity))
}

/// The account that signed this request (with `body`), and who it is on the chain.
pub(crate) async fn reader(
    shop: &Arc<Shop>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Reader, ApiError> {
    let (account, identity) = signed_by(shop, method, uri, headers, body).await?;
    Ok(Reader::new(account, identity))
}

/// The rows of a bank's view, given the currencies it issues (a JSON array) as `?1`.
const BANK_FILTER: &str = "o.currency IN (SELECT value FROM json_each(?1))";

/// The bank organisation that issues `currency` (`None`: not e-money), as the node said: an
/// issuer never changes, so it is remembered; that an asset is not e-money is remembered for
/// [`MEMBER_TTL`] (governance may make it one).
async fn issuer_of(shop: &Arc<Shop>, currency: &str) -> Result<Option<String>, ApiError> {
    let cached = shop
        .issuers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(currency)
        .filter(|(at, issuer)| issuer.is_some() || at.elapsed() < MEMBER_TTL)
        .map(|(_, issuer)| issuer.clone());
    if let Some(issuer) = cached {
        return Ok(issuer);
    }
    let issuer = shop.node.issuer(currency).await.map_err(|error| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_unreachable",
            format!("cannot ask the node who issues {currency}: {error}; try again shortly"),
        )
    })?;
    let mut issuers = shop
        .issuers
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // The orders' currencies are assets of the chain (at most its ASSETS_MAX): a bound
    // reached only by a bug, so starting over is enough.
    if issuers.len() >= ISSUERS_CACHED_MAX {
        issuers.clear();
    }
    issuers.insert(currency.to_string(), (Instant::now(), issuer.clone()));
    Ok(issuer)
}

/// The currencies bank organisation `org` issues among those orders or payouts are in, as a
/// JSON array (a bank's views pick its orders and payouts with it). Those currencies are read
/// from the read model at most once every [`MEMBER_TTL`].
async fn bank_currencies(shop: &Arc<Shop>, org: &str) -> Result<String, ApiError> {
    let cached = shop
        .currencies
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .filter(|(at, _)| at.elapsed() < MEMBER_TTL)
        .map(|(_, currencies)| currencies.clone());
    let currencies = match cached {
        Some(currencies) => currencies,
        None => {
            let currencies: Vec<String> = shop
                .read(|_, conn| {
                    let mut statement = conn.prepare_cached(
                        "SELECT currency FROM orders UNION SELECT asset FROM payouts ORDER BY 1",
                    )?;
                    let rows = statement
                        .query_map([], |r| r.get(0))?
                        .collect::<Result<Vec<String>, _>>()?;
                    Ok(rows)
                })
                .await?;
            *shop
                .currencies
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some((Instant::now(), currencies.clone()));
            currencies
        }
    };
    let mut issued = Vec::new();
    for currency in currencies {
        if issuer_of(shop, &currency).await?.as_deref() == Some(org) {
            issued.push(currency);
        }
    }
    Ok(Value::from(issued).to_string())
}

/// Who `account` is on the chain, as the node said at most [`MEMBER_TTL`] ago.
async fn identity_of(shop: &Arc<Shop>, account: AccountId) -> Result<Identity, ApiError> {
    let cached = shop
        .members
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&account)
        .filter(|(at, _)| at.elapsed() < MEMBER_TTL)
        .map(|(_, member)| member.clone());
    let member = match cached {
        Some(member) => member,
        None => {
            let member = shop
                .node
                .identity(&account)
                .await
                .map_err(unreachable_node)?;
            let mut cache = shop
                .members
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if cache.len() >= MEMBER_CACHE {
                cache.clear();
            }
            cache.insert(account, (Instant::now(), member.clone()));
            member
        }
    };
    Ok(member)
}

/// Query string of `/v1/shop/orders`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListParams {
    /// Whose view: `buyer` (the signer's purchases, the default), `seller` (its
    /// organisation's queue), `carrier` (its organisation's shipments), `regulator` (every
    /// order), `operator` (the disputes waiting for the platform's ruling) or `bank` (the
    /// orders in its bank's e-money).
    pub role: Option<String>,
    /// Only orders (or, for a carrier, shipments) in this status.
    pub status: Option<String>,
    /// Only orders whose payment is in this state (`unpaid`, `escrowed`, `released`…).
    pub payment: Option<String>,
    /// Only orders paid this way (`wallet`, `bank_transfer`, `cash_on_delivery`).
    pub method: Option<String>,
    /// Page, from 1.
    pub page: Option<usize>,
    /// Results per page, 1 to 100 (default 20).
    pub per_page: Option<usize>,
}

fn pages(page: Option<usize>, per_page: Option<usize>) -> Result<(usize, usize), ApiError> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(20);
    if page == 0 {
        return Err(ApiError::bad("pages count from 1"));
    }
    if per_page == 0 || per_page > PAGE_SIZE_MAX {
        return Err(ApiError::bad(format!("per_page is 1 to {PAGE_SIZE_MAX}")));
    }
    let offset = (page - 1).saturating_mul(per_page);
    if offset.saturating_add(per_page) > RESULT_DEPTH_MAX {
        return Err(ApiError::bad(format!(
            "lists go {RESULT_DEPTH_MAX} deep; filter by status"
        )));
    }
    Ok((offset, per_page))
}

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "not_a_party", message)
}

/// An order as lists show it.
const ORDER_COLUMNS: &str = "o.id, o.buyer, o.seller, o.kind, o.status, o.payment, o.method, \
     o.currency, o.total, o.escrow, o.paid, o.refunded, o.settled, o.fee, o.carrier, \
     o.shipments, o.delivered, o.placed_ms, o.updated_height, o.updated_ms, o.deadline_ms, \
     (SELECT COUNT(*) FROM order_lines l WHERE l.order_id = o.id), \
     (SELECT p.title_en FROM order_lines l JOIN products p ON p.id = l.product \
      WHERE l.order_id = o.id ORDER BY l.line LIMIT 1), \
     (SELECT p.title_zh FROM order_lines l JOIN products p ON p.id = l.product \
      WHERE l.order_id = o.id ORDER BY l.line LIMIT 1)";

fn order_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Value> {
    let id: String = r.get(0)?;
    Ok(json!({
        "id": id,
        "buyer": r.get::<_, String>(1)?,
        "seller": r.get::<_, String>(2)?,
        "kind": r.get::<_, String>(3)?,
        "status": r.get::<_, String>(4)?,
        "payment": r.get::<_, String>(5)?,
        "method": r.get::<_, String>(6)?,
        "currency": r.get::<_, String>(7)?,
        "total": r.get::<_, i64>(8)?,
        "escrow": r.get::<_, i64>(9)?,
        "paid": r.get::<_, i64>(10)?,
        "refunded": r.get::<_, i64>(11)?,
        "settled": r.get::<_, i64>(12)?,
        "fee": r.get::<_, i64>(13)?,
        "carrier": r.get::<_, Option<String>>(14)?,
        "shipments": r.get::<_, i64>(15)?,
        "delivered": r.get::<_, i64>(16)?,
        "placed_ms": r.get::<_, i64>(17)?,
        "updated_height": r.get::<_, i64>(18)?,
        "updated_ms": r.get::<_, i64>(19)?,
        "deadline_ms": r.get::<_, i64>(20)?,
        "lines": r.get::<_, i64>(21)?,
        "first_item_en": r.get::<_, Option<String>>(22)?,
        "first_item_zh": r.get::<_, Option<String>>(23)?,
        "url": format!("/v1/shop/orders/{id}"),
    }))
}

async fn list(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let (offset, limit) = pages(params.page, params.per_page)?;
    let reader = reader(&shop, &method, &uri, &headers, &[]).await?;
    let role = params.role.clone().unwrap_or_else(|| "buyer".into());
    match params.method.as_deref() {
        None | Some("wallet" | "bank_transfer" | "cash_on_delivery") => {}
        Some(other) => {
            return Err(ApiError::bad(format!(
                "method {other:?}: use wallet, bank_transfer or cash_on_delivery"
            )));
        }
    }
    if params.method.is_some() && role == "carrier" {
        return Err(ApiError::bad(
            "method filters orders, not a carrier's shipments",
        ));
    }
    // Whose rows: (the SQL that picks them, its one parameter).
    let (filter, party) = match role.as_str() {
        "buyer" => (
            "o.buyer IN (SELECT value FROM json_each(?1))",
            reader.buyer_keys(),
        ),
        "seller" => {
            let org = reader.org_as(role::SELLER).ok_or_else(|| {
                forbidden("only a seller account of a seller organisation sees its order queue")
            })?;
            ("o.seller = ?1", org.to_string())
        }
        "carrier" => {
            let org = reader
                .org_as(role::CARRIER)
                .map(str::to_string)
                .ok_or_else(|| {
                    forbidden("only a carrier account sees its organisation's shipments")
                })?;
            return shop
                .read(move |_, conn| shipments(conn, &org, params.status.as_deref(), offset, limit))
                .await
                .map(Json);
        }
        "regulator" if reader.regulator() => ("?1 = ?1", String::new()),
        "regulator" => return Err(forbidden("only a regulator sees every order")),
        // The platform's disputes queue: orders whose after-sales case waits for a ruling.
        "operator" if reader.org_as(role::OPERATOR).is_some() => (
            "o.id IN (SELECT order_id FROM after_sales WHERE status = 'disputed') AND ?1 = ?1",
            String::new(),
        ),
        "operator" => {
            return Err(forbidden(
                "only an operator account of the platform sees the disputes queue",
            ));
        }
        // A bank's queue: the orders in the e-money it issues (`method=bank_transfer`: the
        // transfers it confirms; `cash_on_delivery`: the cash it remits).
        "bank" => {
            let org = reader.org_as(role::BANK).ok_or_else(|| {
                forbidden("only a bank account sees the orders in its bank's e-money")
            })?;
            (BANK_FILTER, bank_currencies(&shop, org).await?)
        }
        other => {
            return Err(ApiError::bad(format!(
                "role {other:?}: use buyer, seller, carrier, regulator, operator or bank"
            )));
        }
    };
    shop.read(move |_, conn| {
        let sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders o WHERE {filter} \
             AND (?2 IS NULL OR o.status = ?2) AND (?3 IS NULL OR o.payment = ?3) \
             AND (?6 IS NULL OR o.method = ?6) \
             ORDER BY o.height DESC, o.idx DESC LIMIT ?4 OFFSET ?5"
        );
        let mut statement = conn.prepare_cached(&sql)?;
        let rows = statement
            .query_map(
                params![
                    party,
                    params.status,
                    params.payment,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    i64::try_from(offset).unwrap_or(i64::MAX),
                    params.method
                ],
                order_row,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM orders o WHERE {filter} \
                 AND (?2 IS NULL OR o.status = ?2) AND (?3 IS NULL OR o.payment = ?3) \
                 AND (?4 IS NULL OR o.method = ?4)"
            ),
            params![party, params.status, params.payment, params.method],
            |r| r.get(0),
        )?;
        Ok(Json(json!({
            "role": role,
            "total": total,
            "orders": rows,
        })))
    })
    .await
}

/// Query of `GET /v1/shop/payouts`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutParams {
    /// Whose view: `seller` (the signer's own payouts, under its earlier keys too; the
    /// default), `bank` (the payouts of the e-money its bank issues: its queue to pay out)
    /// or `regulator` (every payout).
    pub role: Option<String>,
    /// Only confirmed (`true`) or only waiting (`false`) payouts.
    pub confirmed: Option<bool>,
    /// Page, from 1.
    pub page: Option<usize>,
    /// Results per page, 1 to 100 (default 20).
    pub per_page: Option<usize>,
}

/// Payouts a signer may see, newest first: a seller's own, a bank's queue (the payouts in
/// the e-money it issues, `confirmed=false`: what it still has to pay), or every one for a
/// regulator. A withdrawn payout is gone from the chain's state and from here.
async fn payouts(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    params: Result<Query<PayoutParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let (offset, limit) = pages(params.page, params.per_page)?;
    let reader = reader(&shop, &method, &uri, &headers, &[]).await?;
    let role = params.role.clone().unwrap_or_else(|| "seller".into());
    let (filter, party) = match role.as_str() {
        "seller" => (
            "seller IN (SELECT value FROM json_each(?1))",
            reader.buyer_keys(),
        ),
        "bank" => {
            let org = reader.org_as(role::BANK).ok_or_else(|| {
                forbidden("only a bank account sees the payouts of its bank's e-money")
            })?;
            (
                "asset IN (SELECT value FROM json_each(?1))",
                bank_currencies(&shop, org).await?,
            )
        }
        "regulator" if reader.regulator() => ("?1 = ?1", String::new()),
        "regulator" => return Err(forbidden("only a regulator sees every payout")),
        other => {
            return Err(ApiError::bad(format!(
                "role {other:?}: use seller, bank or regulator"
            )));
        }
    };
    let confirmed = params.confirmed;
    shop.read(move |_, conn| {
        let mut statement = conn.prepare_cached(&format!(
            "SELECT id, seller, asset, amount, confirmed, requested_ms FROM payouts \
             WHERE {filter} AND (?2 IS NULL OR confirmed = ?2) \
             ORDER BY requested_ms DESC, \
             CAST(substr(id, 1, instr(id, '-') - 1) AS INTEGER) DESC, \
             CAST(substr(id, instr(id, '-') + 1) AS INTEGER) DESC LIMIT ?3 OFFSET ?4"
        ))?;
        let rows = statement
            .query_map(
                params![
                    party,
                    confirmed,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    i64::try_from(offset).unwrap_or(i64::MAX)
                ],
                |r| {
                    let id: String = r.get(0)?;
                    Ok(json!({
                        "id": id,
                        "seller": r.get::<_, String>(1)?,
                        "asset": r.get::<_, String>(2)?,
                        "amount": r.get::<_, i64>(3)?,
                        "confirmed": r.get::<_, bool>(4)?,
                        "requested_ms": r.get::<_, i64>(5)?,
                        "url": format!("/v1/commerce/payouts/{id}"),
                    }))
                },
            )?
            .collect::<Result<Vec<_>, _>>()?;
        let total: i64 = conn.query_row(
            &format!(
                "SELECT COUNT(*) FROM payouts WHERE {filter} \
                 AND (?2 IS NULL OR confirmed = ?2)"
            ),
            params![party, confirmed],
            |r| r.get(0),
        )?;
        Ok(Json(json!({
            "role": role,
            "total": total,
            "payouts": rows,
        })))
    })
    .await
}

/// The after-sales case whose goods go back as shipment `n` (`null`: goods going out).
fn return_case(n: i64) -> Value {
    match u16::try_from(n) {
        Ok(n) if consort_types::commerce::is_return_shipment(n) => {
            json!(n - consort_types::commerce::RETURN_SHIPMENT_BASE)
        }
        _ => Value::Null,
    }
}

/// A carrier organisation's shipments, newest first.
fn shipments(
    conn: &rusqlite::Connection,
    org: &str,
    status: Option<&str>,
    offset: usize,
    limit: usize,
) -> Result<Value, ApiError> {
    let mut statement = conn.prepare_cached(
        "SELECT s.order_id, s.shipment, s.status, s.lines, s.events, s.created_ms, \
         s.updated_ms, o.status, o.method, o.seller, o.currency, o.total, o.escrow \
         FROM shipments s JOIN orders o ON o.id = s.order_id \
         WHERE s.carrier = ?1 AND (?2 IS NULL OR s.status = ?2) \
         ORDER BY s.created_ms DESC, s.order_id, s.shipment LIMIT ?3 OFFSET ?4",
    )?;
    let rows = statement
        .query_map(
            params![
                org,
                status,
                i64::try_from(limit).unwrap_or(i64::MAX),
                i64::try_from(offset).unwrap_or(i64::MAX)
            ],
            |r| {
                let order: String = r.get(0)?;
                let lines: String = r.get(3)?;
                Ok(json!({
                    "order": order,
                    "shipment": r.get::<_, i64>(1)?,
                    "return_case": return_case(r.get(1)?),
                    "status": r.get::<_, String>(2)?,
                    "lines": serde_json::from_str::<Value>(&lines).unwrap_or(Value::String(lines)),
                    "events": r.get::<_, i64>(4)?,
                    "created_ms": r.get::<_, i64>(5)?,
                    "updated_ms": r.get::<_, i64>(6)?,
                    "order_status": r.get::<_, String>(7)?,
                    "method": r.get::<_, String>(8)?,
                    "seller": r.get::<_, String>(9)?,
                    "currency": r.get::<_, String>(10)?,
                    "total": r.get::<_, i64>(11)?,
                    "escrow": r.get::<_, i64>(12)?,
                    "url": format!("/v1/shop/orders/{order}"),
                }))
            },
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let total: i64 = conn.query_row(
        "SELECT COUNT(*) FROM shipments WHERE carrier = ?1 AND (?2 IS NULL OR status = ?2)",
        params![org, status],
        |r| r.get(0),
    )?;
    Ok(json!({"role": "carrier", "total": total, "shipments": rows}))
}

/// How `reader` stands to the order `id` (buyer, seller, carrier, regulator, operator, bank),
/// if at all; `issuing_bank` says the reader is a bank account of the bank that issues the
/// order's currency.
fn standing(
    conn: &rusqlite::Connection,
    id: &str,
    reader: &Reader,
    issuing_bank: bool,
) -> Result<Option<&'static str>, ApiError> {
    let Some((buyer, seller)): Option<(String, String)> = conn
        .query_row(
            "SELECT buyer, seller FROM orders WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
    else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_order",
            format!("no order {id} (yet: the indexer may be a block behind)"),
        ));
    };
    if reader.bought_as(&buyer) {
        return Ok(Some("buyer"));
    }
    if reader.org_as(role::SELLER) == Some(seller.as_str()) {
        return Ok(Some("seller"));
    }
    if let Some(org) = reader.org_as(role::CARRIER) {
        let carries: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM shipments WHERE order_id = ?1 AND carrier = ?2) \
             OR EXISTS (SELECT 1 FROM orders WHERE id = ?1 AND carrier = ?2)",
            params![id, org],
            |r| r.get(0),
        )?;
        if carries {
            return Ok(Some("carrier"));
        }
    }
    if reader.regulator() {
        return Ok(Some("regulator"));
    }
    // The bank that issues the order's currency: it confirms transfers and remits cash.
    if issuing_bank {
        return Ok(Some("bank"));
    }
    // The platform's operator rules disputes: it reads the orders disputed before it.
    if reader.org_as(role::OPERATOR).is_some() {
        let disputed: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM after_sales WHERE order_id = ?1 AND status = 'disputed')",
            [id],
            |r| r.get(0),
        )?;
        if disputed {
            return Ok(Some("operator"));
        }
    }
    Ok(None)
}

async fn order(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    parse_id(&id)?;
    let reader = reader(&shop, &method, &uri, &headers, &[]).await?;
    let issuing_bank = match reader.org_as(role::BANK) {
        Some(org) => {
            let order = id.clone();
            let currency: Option<String> = shop
                .read(move |_, conn| {
                    Ok(conn
                        .query_row("SELECT currency FROM orders WHERE id = ?1", [order], |r| {
                            r.get(0)
                        })
                        .optional()?)
                })
                .await?;
            match currency {
                Some(currency) => issuer_of(&shop, &currency).await?.as_deref() == Some(org),
                None => false,
            }
        }
        None => false,
    };
    shop.read(move |_, conn| {
        let Some(standing) = standing(conn, &id, &reader, issuing_bank)? else {
            return Err(forbidden(format!(
                "order {id} is seen only by its buyer, its seller's and carriers' accounts, \
                 the bank that issues its currency and regulators"
            )));
        };
        order_view(conn, &id, standing).map(Json)
    })
    .await
}

/// An order with its lines, shipments and timeline.
fn order_view(conn: &rusqlite::Connection, id: &str, standing: &str) -> Result<Value, ApiError> {
    let order = conn.query_row(
        &format!("SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id = ?1"),
        [id],
        order_row,
    )?;
    let mut statement = conn.prepare_cached(
        "SELECT l.line, l.product, l.variant, l.quantity, l.price, l.shipped, p.title_zh, \
         p.title_en, v.name FROM order_lines l LEFT JOIN products p ON p.id = l.product \
         LEFT JOIN variants v ON v.product = l.product AND v.variant = l.variant \
         WHERE l.order_id = ?1 ORDER BY l.line",
    )?;
    let lines = statement
        .query_map([id], |r| {
            Ok(json!({
                "line": r.get::<_, i64>(0)?,
                "product": r.get::<_, String>(1)?,
                "variant": r.get::<_, i64>(2)?,
                "quantity": r.get::<_, i64>(3)?,
                "price": r.get::<_, i64>(4)?,
                "shipped": r.get::<_, i64>(5)?,
                "title_zh": r.get::<_, Option<String>>(6)?,
                "title_en": r.get::<_, Option<String>>(7)?,
                "variant_name": r.get::<_, Option<String>>(8)?,
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut statement = conn.prepare_cached(
        "SELECT shipment, carrier, status, lines, events, created_ms, updated_ms \
         FROM shipments WHERE order_id = ?1 ORDER BY shipment",
    )?;
    let shipments = statement
        .query_map([id], |r| {
            let lines: String = r.get(3)?;
            Ok(json!({
                "shipment": r.get::<_, i64>(0)?,
                "return_case": return_case(r.get(0)?),
                "carrier": r.get::<_, String>(1)?,
                "status": r.get::<_, String>(2)?,
                "lines": serde_json::from_str::<Value>(&lines).unwrap_or(Value::String(lines)),
                "events": r.get::<_, i64>(4)?,
                "created_ms": r.get::<_, i64>(5)?,
                "updated_ms": r.get::<_, i64>(6)?,
            }))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    // The timeline: the order's own steps and its shipments' carrier events, in chain order
    // (block, transaction, then the order's step before the carriers' within a transaction).
    let limit = i64::try_from(TIMELINE_MAX + 1).unwrap_or(i64::MAX);
    let mut statement = conn.prepare_cached(
        "SELECT * FROM ( \
           SELECT height, idx, 0 AS part, seq, time_ms, event, status, payment, detail, \
                  NULL AS shipment, NULL AS location FROM order_events WHERE order_id = ?1 \
           UNION ALL \
           SELECT height, idx, 1, seq, time_ms, 'shipment', status, NULL, NULL, shipment, \
                  location FROM shipment_events WHERE order_id = ?1 \
         ) ORDER BY height DESC, idx DESC, part DESC, seq DESC LIMIT ?2",
    )?;
    let mut timeline = statement
        .query_map(params![id, limit], |r| {
            let detail: Option<String> = r.get(8)?;
            let mut entry = json!({
                "height": r.get::<_, i64>(0)?,
                "time_ms": r.get::<_, i64>(4)?,
                "event": r.get::<_, String>(5)?,
                "status": r.get::<_, String>(6)?,
            });
            if let Some(payment) = r.get::<_, Option<String>>(7)? {
                entry["payment"] = json!(payment);
            }
            if let Some(detail) = detail {
                entry["detail"] = serde_json::from_str(&detail).unwrap_or(Value::String(detail));
            }
            if let Some(shipment) = r.get::<_, Option<i64>>(9)? {
                entry["shipment"] = json!(shipment);
                entry["return_case"] = return_case(shipment);
                entry["location"] = json!(r.get::<_, Option<String>>(10)?);
            }
            Ok(entry)
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let truncated = timeline.len() > TIMELINE_MAX;
    timeline.truncate(TIMELINE_MAX);
    timeline.reverse();
    let after_sale = conn
        .query_row(
            "SELECT status, goods_back, amount, refunded, cases, carrier, deadline_ms, \
             opened_ms, updated_ms FROM after_sales WHERE order_id = ?1",
            [id],
            |r| {
                Ok(json!({
                    "status": r.get::<_, String>(0)?,
                    "goods_back": r.get::<_, bool>(1)?,
                    "amount": r.get::<_, i64>(2)?,
                    "refunded": r.get::<_, i64>(3)?,
                    "cases": r.get::<_, i64>(4)?,
                    "carrier": r.get::<_, Option<String>>(5)?,
                    "deadline_ms": r.get::<_, i64>(6)?,
                    "opened_ms": r.get::<_, i64>(7)?,
                    "updated_ms": r.get::<_, i64>(8)?,
                }))
            },
        )
        .optional()?;
    Ok(json!({
        "as": standing,
        "order": order,
        "lines": lines,
        "shipments": shipments,
        "after_sale": after_sale,
        "timeline": timeline,
        "timeline_truncated": truncated,
    }))
}

/// Orders a block changed that `reader` may see, at most [`STREAM_BLOCK_ORDERS_MAX`] + 1.
fn changed_orders(
    conn: &rusqlite::Connection,
    height: u64,
    reader: &Reader,
    issued: &str,
) -> Result<Vec<Value>, ApiError> {
    let everyone = reader.regulator();
    let seller = reader.org_as(role::SELLER).unwrap_or("").to_string();
    let carrier = reader.org_as(role::CARRIER).unwrap_or("").to_string();
    let sql = format!(
        "SELECT {ORDER_COLUMNS} FROM orders o WHERE o.id IN ( \
           SELECT order_id FROM order_events WHERE height = ?1 \
           UNION SELECT order_id FROM shipment_events WHERE height = ?1) \
         AND (?2 OR o.buyer IN (SELECT value FROM json_each(?3)) \
              OR (?4 != '' AND o.seller = ?4) OR (?5 != '' AND \
              (o.carrier = ?5 OR \
               EXISTS (SELECT 1 FROM shipments s WHERE s.order_id = o.id AND s.carrier = ?5))) \
              OR o.currency IN (SELECT value FROM json_each(?7))) \
         ORDER BY o.height, o.idx LIMIT ?6"
    );
    let mut statement = conn.prepare_cached(&sql)?;
    let rows = statement
        .query_map(
            params![
                i64::try_from(height).unwrap_or(i64::MAX),
                everyone,
                reader.buyer_keys(),
                seller,
                carrier,
                i64::try_from(STREAM_BLOCK_ORDERS_MAX + 1).unwrap_or(i64::MAX),
                issued
            ],
            order_row,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// `GET /v1/shop/updates`: server-sent events. `order` carries an order (as lists show it)
/// each time a block changes one the signer may see; `block` carries each indexed height (a
/// heartbeat a client can show); `lagged` says updates were missed (read the lists again);
/// `truncated` says a block changed more orders than one event lists.
async fn updates(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let reader = Arc::new(reader(&shop, &method, &uri, &headers, &[]).await?);
    // Only a registered account has orders to follow: a key made up for the purpose gets no
    // stream (nor takes one of those everyone shares).
    if reader.member.is_none() {
        return Err(forbidden(
            "update streams are for the active accounts of member organisations: register first",
        ));
    }
    let slot = StreamSlot::take(&shop.streams_of, reader.account).ok_or_else(|| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "this account has {UPDATE_STREAMS_PER_ACCOUNT_MAX} update streams open; close one \
                 or poll /v1/shop/orders"
            ),
        )
    })?;
    let permit = shop.streams.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_streams",
            format!(
                "{} update streams are open; try again later or poll /v1/shop/orders",
                UPDATE_STREAMS_MAX
            ),
        )
    })?;
    let receiver = shop.updates.subscribe();
    let deadline = tokio::time::Instant::now() + STREAM_LIFETIME;
    let state = (shop, reader, receiver, (permit, slot));
    let stream = futures::stream::unfold(
        state,
        move |(shop, mut reader, mut receiver, permit)| async move {
            // A stream ends after its lifetime (the client signs again), so a revoked
            // account's rights do not live on in an open connection.
            let received = tokio::time::timeout_at(deadline, receiver.recv())
                .await
                .ok()?;
            let events = match received {
                Ok(Update { height }) => {
                    // Who the reader is may have changed since it connected.
                    match identity_of(&shop, reader.account).await {
                        // Rotated away since it connected: the stream ends.
                        Ok(identity) if identity.rotated_to.is_some() => return None,
                        Ok(identity) => reader = Arc::new(Reader::new(reader.account, identity)),
                        Err(_) => {}
                    }
                    // A bank follows the orders in the e-money it issues (as `role=bank` lists
                    // them): the transfers it confirms, the cash it remits.
                    let issued = match reader.org_as(role::BANK) {
                        Some(org) => bank_currencies(&shop, org).await,
                        None => Ok("[]".to_string()),
                    };
                    let who = reader.clone();
                    let found = match issued {
                        Ok(issued) => {
                            shop.read(move |_, conn| changed_orders(conn, height, &who, &issued))
                                .await
                        }
                        Err(error) => Err(error),
                    };
                    let mut events = vec![Event::default().event("block").data(height.to_string())];
                    match found {
                        Ok(mut orders) => {
                            if orders.len() > STREAM_BLOCK_ORDERS_MAX {
                                orders.truncate(STREAM_BLOCK_ORDERS_MAX);
                                events.push(
                                    Event::default()
                                        .event("truncated")
                                        .data(json!({"height": height}).to_string()),
                                );
                            }
                            events.extend(orders.into_iter().map(|o| {
                                Event::default()
                                    .event("order")
                                    .data(json!({"height": height, "order": o}).to_string())
                            }));
                        }
                        Err(error) => {
                            tracing::warn!(
                                ?error,
                                height,
                                "an update stream cannot read the block"
                            );
                            events.push(
                                Event::default()
                                    .event("lagged")
                                    .data(json!({"height": height}).to_string()),
                            );
                        }
                    }
                    events
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(missed)) => {
                    vec![
                        Event::default()
                            .event("lagged")
                            .data(json!({"missed_blocks": missed}).to_string()),
                    ]
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            };
            let events: Vec<Result<Event, Infallible>> = events.into_iter().map(Ok).collect();
            Some((
                futures::stream::iter(events),
                (shop, reader, receiver, permit),
            ))
        },
    );
    use futures::StreamExt as _;
    Ok(Sse::new(stream.flatten()).keep_alive(KeepAlive::default()))
}
