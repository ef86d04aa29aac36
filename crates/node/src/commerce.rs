//! Read routes over the shop: products with their variants' prices and stock, earlier
//! versions, reviews, sellers' ratings, escrow held per asset — open to anyone; orders and
//! payouts — only to requests signed by a party (the buyer, an account of the seller
//! organisation, of an assigned carrier or of the issuing bank) or a regulator.

use crate::shared::{ApiError, Shared, read};
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    routing::get,
};
use consort_types::{
    AccountId, Asset,
    commerce::{
        Holdings, Order, Payout, ProductHead, ProductVersion, RecordId, ReviewHead, SellerStats,
        Shipment, VariantState,
    },
    gov::{EMoney, Org, OrgId, Registration, role},
    state_key::{commerce as key, gov as gkey},
};
use serde_json::{Value, json};
use std::sync::Arc;

type AppState = State<Arc<Shared>>;

/// The shop's routes.
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/commerce", get(overview))
        .route("/v1/commerce/products/{id}", get(product))
        .route(
            "/v1/commerce/products/{id}/versions/{version}",
            get(version),
        )
        .route("/v1/commerce/orders/{id}", get(order))
        .route("/v1/commerce/orders/{id}/proof", get(order_proof))
        .route("/v1/commerce/reviews/{order}/{line}", get(review))
        .route(
            "/v1/commerce/reviews/{order}/{line}/proof",
            get(review_proof),
        )
        .route("/v1/commerce/sellers/{org}", get(seller))
        .route("/v1/commerce/holdings/{asset}", get(holdings))
        .route("/v1/commerce/payouts/{id}", get(payout))
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, code, message)
}

fn record_id(text: &str) -> Result<RecordId, ApiError> {
    text.parse().map_err(|e| bad(format!("{e}")))
}

fn shop(s: &Shared) -> Result<&consort_types::commerce::CommerceConfig, ApiError> {
    s.genesis.commerce.as_ref().ok_or_else(|| {
        not_found(
            "commerce_disabled",
            "this chain has no shop: genesis has no commerce section",
        )
    })
}

/// Run `read` over one snapshot of the finalized state, again on a fresh one if a block lands
/// meanwhile.
macro_rules! snapshot {
    ($s:expr, |$store:ident| $body:expr) => {{
        use commonware_glue::stateful::db::DatabaseSet as _;
        let mut attempts = 0;
        loop {
            attempts += 1;
            let batch = $s.databases.new_batches().await;
            let mut $store = consort_state::Store::new(&batch);
            let result: Result<_, consort_state::StateError> = async { $body }.await;
            match result {
                Err(consort_state::StateError::StaleRead) if attempts < 16 => {}
                Err(consort_state::StateError::StaleRead) => {
                    break Err($crate::shared::ApiError::busy(
                        "blocks kept landing during the read; retry in a moment",
                    ));
                }
                Err(e) => break Err($crate::shared::ApiError::internal(e.to_string())),
                Ok(value) => break Ok(value),
            }
        }
    }};
}
pub(crate) use snapshot;

async fn overview(State(s): AppState) -> Result<Json<Value>, ApiError> {
    let config = shop(&s)?;
    Ok(Json(json!({
        "fee_rate_bp": config.fee_rate_bp,
        "fee_account": config.fee_account,
        "payment_window_ms": config.payment_window_ms,
        "receipt_window_ms": config.receipt_window_ms,
        "after_sale_window_ms": config.after_sale_window_ms,
        "calls": consort_types::commerce::CommerceCall::KINDS,
        "errors": consort_types::commerce::CommerceError::CODES,
    })))
}

async fn product(State(s): AppState, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    shop(&s)?;
    let id = record_id(&id)?;
    let found: Option<(ProductHead, Vec<VariantState>)> = snapshot!(s, |store| {
        let Some(head) = store.get::<ProductHead>(&key::product(&id)).await? else {
            return Ok(None);
        };
        let mut variants = Vec::with_capacity(usize::from(head.variants));
        for v in 0..head.variants {
            if let Some(state) = store
                .get_fixed::<VariantState>(&key::variant(&id, v))
                .await?
            {
                variants.push(state);
            }
        }
        Ok(Some((head, variants)))
    })?;
    let (head, variants) =
        found.ok_or_else(|| not_found("unknown_product", format!("no product {id}")))?;
    let rating = (head.rating_count > 0).then(|| {
        // Two decimals, in integers: the API never computes with floats it could round.
        let hundredths = head.rating_sum * 100 / head.rating_count;
        format!("{}.{:02}", hundredths / 100, hundredths % 100)
    });
    Ok(Json(json!({
        "id": id,
        "head": head,
        "rating": rating,
        "variants": variants.iter().enumerate().map(|(i, v)| json!({
            "variant": i,
            "price": v.price,
            "currency": v.currency,
            "available": v.available,
            "reserved": v.reserved,
        })).collect::<Vec<_>>(),
        "content": {
            "height": head.content_at.height,
            "index": head.content_at.index,
            "see": format!("/v1/blocks/{}", head.content_at.height),
        },
    })))
}

async fn version(
    State(s): AppState,
    Path((id, version)): Path<(String, u32)>,
) -> Result<Json<Value>, ApiError> {
    shop(&s)?;
    let id = record_id(&id)?;
    let found: Option<ProductVersion> =
        read(&s.databases, &key::product_version(&id, version)).await?;
    let found = found.ok_or_else(|| {
        not_found(
            "unknown_version",
            format!(
                "product {id} has no replaced version {version} (the current one is on the product)"
            ),
        )
    })?;
    Ok(Json(
        json!({ "id": id, "version": version, "replaced": found }),
    ))
}

async fn review(
    State(s): AppState,
    Path((order, line)): Path<(String, u8)>,
) -> Result<Json<Value>, ApiError> {
    shop(&s)?;
    let order = record_id(&order)?;
    let head: ReviewHead = read(&s.databases, &key::review(&order, line))
        .await?
        .ok_or_else(|| {
            not_found(
                "no_review",
                format!("order {order} line {line} has no review"),
            )
        })?;
    Ok(Json(
        json!({ "order": order, "line": line, "review": head }),
    ))
}

async fn seller(State(s): AppState, Path(org): Path<String>) -> Result<Json<Value>, ApiError> {
    shop(&s)?;
    let org: OrgId = org.parse().map_err(|e| bad(format!("{e}")))?;
    let stats: SellerStats = read(&s.databases, &key::seller(&org))
        .await?
        .unwrap_or_default();
    Ok(Json(json!({ "org": org, "stats": stats })))
}

async fn holdings(State(s): AppState, Path(asset): Path<String>) -> Result<Json<Value>, ApiError> {
    shop(&s)?;
    let asset: Asset = asset.parse().map_err(|e| bad(format!("{e}")))?;
    let held: Holdings = read(&s.databases, &key::holdings(&asset))
        .await?
        .unwrap_or_default();
    Ok(Json(
        json!({ "asset": asset, "escrow": held.escrow, "payouts": held.payouts }),
    ))
}

/// `reader`'s registration, if active in a member organisation (as the chain decides who may
/// act): a removed organisation's accounts read nothing through it.
async fn member<E: consort_state::Runtime>(
    store: &mut consort_state::Store<'_, E>,
    reader: &AccountId,
) -> Result<Option<Registration>, consort_state::StateError> {
    let Some(registration) = store
        .get::<Registration>(&gkey::registration(reader))
        .await?
        .filter(|r| r.active)
    else {
        return Ok(None);
    };
    let org = store.get::<Org>(&gkey::org(&registration.org)).await?;
    Ok(org.is_some_and(|o| o.active).then_some(registration))
}

/// Whether `registration` is a bank account of the bank that issues e-money `asset`.
async fn issues<E: consort_state::Runtime>(
    store: &mut consort_state::Store<'_, E>,
    registration: &Registration,
    asset: &consort_types::Asset,
) -> Result<bool, consort_state::StateError> {
    Ok(registration.roles & role::BANK != 0
        && store
            .get::<EMoney>(&gkey::emoney(asset))
            .await?
            .is_some_and(|m| m.issuer == registration.org))
}

/// A rotated-away key reads nothing; say which key to use.
fn key_rotated(new: &AccountId) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "key_rotated",
        format!(
            "this key was rotated to {new}: sign with that key, which reads this key's orders \
             and payouts too"
        ),
    )
}

fn forbidden(reader: &AccountId, what: String) -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "not_entitled",
        format!("account {reader} is not a party to {what} or a regulator"),
    )
}

async fn order(
    State(s): AppState,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    shop(&s)?;
    let id = record_id(&id)?;
    let reader = s.signed_reader(&method, &uri, &headers)?;
    /// What the route reads, from one snapshot: a rotated-away reader (its new key) stops
    /// the read at once; else the order, if any, and whether the reader may see it.
    enum Found {
        Rotated(AccountId),
        Unknown,
        Order {
            order: Box<Order>,
            shipments: Vec<Shipment>,
            returns: Vec<(u8, Shipment)>,
            after_sale: Option<consort_types::commerce::AfterSale>,
            entitled: bool,
        },
    }
    let found = snapshot!(s, |store| {
        // A rotated-away key (perhaps the stolen one) reads nothing.
        if let Some(new) = store.get::<AccountId>(&gkey::rotated_to(&reader)).await? {
            return Ok(Found::Rotated(new));
        }
        let Some(order) = store.get::<Order>(&key::order(&id)).await? else {
            return Ok(Found::Unknown);
        };
        let mut shipments = Vec::with_capacity(usize::from(order.shipments));
        for n in 0..order.shipments {
            if let Some(shipment) = store.get::<Shipment>(&key::shipment(&id, n)).await? {
                shipments.push(shipment);
            }
        }
        // The buyer's key now: a rotated-away key no longer reads the order, its new one
        // does (as the shop module checks a buyer).
        let buyer = consort_governance::Gov::current_key(&mut store, &order.buyer).await?;
        let after_sale: Option<consort_types::commerce::AfterSale> =
            store.get(&key::after_sale(&id)).await?;
        // Goods sent back under its after-sales cases travel as shipments of their own.
        let mut returns = Vec::new();
        for case in 1..=after_sale.as_ref().map_or(0, |c| c.cases) {
            let n = consort_types::commerce::return_shipment(case);
            if let Some(shipment) = store.get::<Shipment>(&key::shipment(&id, n)).await? {
                returns.push((case, shipment));
            }
        }
        let registration = member(&mut store, &reader).await?;
        let entitled = reader == buyer
            || match registration {
                Some(r) => {
                    (r.org == order.seller && r.roles & role::SELLER != 0)
                        || (r.roles & role::CARRIER != 0
                            && shipments
                                .iter()
                                .chain(returns.iter().map(|(_, x)| x))
                                .any(|x| x.carrier == r.org))
                        || r.roles & role::REGULATOR != 0
                        // The platform's operator rules the order's dispute.
                        || (r.roles & role::OPERATOR != 0
                            && after_sale.as_ref().is_some_and(|c| {
                                c.status == consort_types::commerce::AfterSaleStatus::Disputed
                            }))
                        || issues(&mut store, &r, &order.currency).await?
                }
                None => false,
            };
        Ok(Found::Order {
            order: Box::new(order),
            shipments,
            returns,
            after_sale,
            entitled,
        })
    })?;
    let (order, shipments, returns, after_sale) = match found {
        // Say which key to use.
        Found::Rotated(new) => return Err(key_rotated(&new)),
        Found::Unknown => return Err(not_found("unknown_order", format!("no order {id}"))),
        Found::Order {
            entitled: false, ..
        } => {
            return Err(forbidden(&reader, format!("order {id}")));
        }
        Found::Order {
            order,
            shipments,
            returns,
            after_sale,
            entitled: true,
        } => (order, shipments, returns, after_sale),
    };
    Ok(Json(json!({
        "id": id,
        "order": order,
        "shipments": shipments,
        "returns": returns
            .iter()
            .map(|(case, shipment)| json!({ "case": case, "shipment": shipment }))
            .collect::<Vec<_>>(),
        "after_sale": after_sale,
    })))
}

async fn payout(
    State(s): AppState,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    shop(&s)?;
    let id = record_id(&id)?;
    let reader = s.signed_reader(&method, &uri, &headers)?;
    // One snapshot: the payout and the reader's rights agree with each other.
    let found: Result<Option<(Payout, AccountId, bool)>, AccountId> = snapshot!(s, |store| {
        // A rotated-away key (perhaps the stolen one) reads nothing.
        if let Some(new) = store.get::<AccountId>(&gkey::rotated_to(&reader)).await? {
            return Ok(Err(new));
        }
        let Some(payout) = store.get::<Payout>(&key::payout(&id)).await? else {
            return Ok(Ok(None));
        };
        // The seller's key now, as the chain checks a seller cancelling it.
        let seller = consort_governance::Gov::current_key(&mut store, &payout.seller).await?;
        let registration = member(&mut store, &reader).await?;
        let entitled = reader == seller
            || match registration {
                Some(r) => {
                    r.roles & role::REGULATOR != 0 || issues(&mut store, &r, &payout.asset).await?
                }
                None => false,
            };
        Ok(Ok(Some((payout, seller, entitled))))
    })?;
    let (payout, seller_now, entitled) = found
        .map_err(|new| key_rotated(&new))?
        .ok_or_else(|| not_found("unknown_payout", format!("no payout {id}")))?;
    if !entitled {
        return Err(forbidden(&reader, format!("payout {id}")));
    }
    // `payout.seller` is the key that asked; `seller_now` its key today, after any rotations
    // (the seller key that may read it).
    Ok(Json(
        json!({ "id": id, "payout": payout, "seller_now": seller_now }),
    ))
}

/// State proofs of every chunk of the record under `key` against one state root, and the
/// height of the finalized block with that root (null while it is being applied: ask again).
/// `None` if there is no such record.
async fn record_proof(s: &Shared, key: consort_types::Digest) -> Result<Option<Value>, ApiError> {
    use commonware_codec::Encode as _;
    let internal =
        |what: &str, e: &dyn std::fmt::Debug| ApiError::internal(format!("{what}: {e:?}"));
    let (root, chunks) = {
        let db = s.databases.read().await;
        let Some(first) = db.get(&key).await.map_err(|e| internal("reading", &e))? else {
            return Ok(None);
        };
        let keys = consort_state::record_chunk_keys(&key, &first)
            .ok_or_else(|| ApiError::internal("a stored record has an impossible length"))?;
        let mut chunks = Vec::with_capacity(keys.len());
        for chunk_key in keys {
            let value = db
                .get(&chunk_key)
                .await
                .map_err(|e| internal("reading", &e))?
                .ok_or_else(|| ApiError::internal("a stored record lacks a chunk"))?;
            let proof = db
                .key_value_proof(chunk_key)
                .await
                .map_err(|e| internal("proving", &e))?;
            chunks.push(json!({
                "key": consort_types::hex_serde::encode(&chunk_key),
                "value": hex::encode(value.as_ref()),
                "proof": hex::encode(proof.encode()),
            }));
        }
        (db.root(), chunks)
    };
    Ok(Some(json!({
        "height": crate::shared::proven_height(s, &root).await,
        "state_root": consort_types::hex_serde::encode(&root),
        "chunks": chunks,
    })))
}

async fn order_proof(
    State(s): AppState,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    // Entitled readers only, as the order itself.
    let Json(shown) = order(State(s.clone()), Path(id), method, uri, headers).await?;
    let id: RecordId = serde_json::from_value(shown["id"].clone())
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let proof = record_proof(&s, key::order(&id))
        .await?
        .ok_or_else(|| not_found("unknown_order", format!("no order {id}")))?;
    Ok(Json(json!({ "id": id, "proof": proof })))
}

async fn review_proof(
    State(s): AppState,
    Path((order, line)): Path<(String, u8)>,
) -> Result<Json<Value>, ApiError> {
    shop(&s)?;
    let order = record_id(&order)?;
    let proof = record_proof(&s, key::review(&order, line))
        .await?
        .ok_or_else(|| {
            not_found(
                "no_review",
                format!("order {order} line {line} has no review"),
            )
        })?;
    Ok(Json(
        json!({ "order": order, "line": line, "proof": proof }),
    ))
}
