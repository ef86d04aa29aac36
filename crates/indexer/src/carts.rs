//! Carts: what a customer means to buy, kept per account by the indexer in a SQLite file of
//! its own (`<read model>.carts`), so that rebuilding the read model from genesis keeps them.
//!
//! Every cart request is signed by the account's key (see [`consort_types::signed_read`]);
//! a request that changes the cart signs its body too, and each signature changes a cart at
//! most once (a replayed request is refused with `replayed`). The cart view prices every line
//! at the product's current price, warns of what cannot be bought as it is (sold out, less
//! stock than wanted, off sale, price changed since it was added) and groups the lines into
//! the orders checkout places: one `place_order` per seller, currency and kind of good, each
//! with the lines and prices it carries.

use crate::{
    shop::{ApiError, Shop, parse_id},
    views::signer,
};
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, rejection::BytesRejection},
    extract::{Path, State},
    http::{HeaderMap, Method, StatusCode, Uri},
    routing::{delete, get},
};
use consort_types::commerce::LINE_QUANTITY_MAX;
use rusqlite::{Connection, OptionalExtension as _, params};
use serde::Deserialize;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

/// Most lines a cart holds.
pub const CART_LINES_MAX: usize = 100;

/// Days a cart line stays after it was first added (a line keeps its place in the cart as its
/// quantity changes); older lines are dropped at the next change of any cart, so abandoned
/// carts do not pile up.
pub const CART_LINE_AGE_DAYS_MAX: u64 = 180;

/// Most lines all carts hold together: any key can sign cart requests, so without a bound
/// on the whole, new keys could fill the indexer's disk one cart at a time. When they are
/// full, a new line takes the place of the line added longest ago (of any cart), so no one
/// is ever refused a cart.
pub const CART_LINES_TOTAL_MAX: usize = 1_000_000;

/// Most expired lines one cart request drops (the rest go with the following requests), so
/// no request pays for a large batch expiring at once.
const EXPIRED_PER_REQUEST_MAX: i64 = 1_000;

/// Largest body a cart request may carry.
pub const CART_BODY_MAX: usize = 1024;

/// The routes, merged into [`crate::api::routes`].
pub(crate) fn routes() -> Router<Arc<Shop>> {
    Router::new()
        .route("/v1/shop/cart", get(view).delete(clear))
        .route("/v1/shop/cart/items", axum::routing::post(add))
        .route(
            "/v1/shop/cart/items/{product}/{variant}",
            delete(remove).put(set),
        )
        // Bodies beyond the limit are refused as they arrive, not buffered first.
        .layer(DefaultBodyLimit::max(CART_BODY_MAX))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())
        .unwrap_or(0)
}

/// Body of `POST /v1/shop/cart/items`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddItem {
    product: String,
    #[serde(default)]
    variant: u16,
    quantity: u32,
}

/// Body of `PUT /v1/shop/cart/items/{product}/{variant}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetItem {
    quantity: u32,
}

fn too_large(rejection: BytesRejection) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too_large",
        format!("a cart request carries at most {CART_BODY_MAX} bytes: {rejection}"),
    )
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.len() > CART_BODY_MAX {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("a cart request carries at most {CART_BODY_MAX} bytes"),
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("bad JSON body: {e}")))
}

fn quantity(q: u32) -> Result<i64, ApiError> {
    if q == 0 || q > LINE_QUANTITY_MAX {
        return Err(ApiError::bad(format!(
            "quantity is 1 to {LINE_QUANTITY_MAX}"
        )));
    }
    Ok(i64::from(q))
}

/// Spend a change request's signature: refused if it changed a cart before. Signatures
/// older than twice the signing window are forgotten (their requests are refused as stale).
fn spend(conn: &Connection, headers: &HeaderMap) -> Result<(), ApiError> {
    let signature = headers
        .get("x-consort-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let now = now_ms() / 1000;
    let window = i64::try_from(consort_types::signed_read::READ_WINDOW_SECS).unwrap_or(300);
    conn.execute(
        "DELETE FROM used_signatures WHERE time < ?1",
        [now - 2 * window],
    )?;
    let age_ms = i64::try_from(CART_LINE_AGE_DAYS_MAX * 86_400_000).unwrap_or(i64::MAX);
    conn.execute(
        "DELETE FROM cart_lines WHERE rowid IN \
         (SELECT rowid FROM cart_lines WHERE added_ms < ?1 ORDER BY added_ms LIMIT ?2)",
        params![now_ms().saturating_sub(age_ms), EXPIRED_PER_REQUEST_MAX],
    )?;
    let fresh = conn.execute(
        "INSERT OR IGNORE INTO used_signatures (signature, time) VALUES (?1, ?2)",
        params![signature, now],
    )? == 1;
    if fresh {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::CONFLICT,
            "replayed",
            "this signed request was already carried out; sign a new one",
        ))
    }
}

/// Current price, currency and listing of a variant, from the read model.
fn variant(
    conn: &Connection,
    product: &str,
    variant: i64,
) -> Result<Option<(i64, String, i64, String)>, ApiError> {
    Ok(conn
        .query_row(
            "SELECT v.price, v.currency, v.available, p.status FROM variants v \
             JOIN products p ON p.id = v.product WHERE v.product = ?1 AND v.variant = ?2",
            params![product, variant],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?)
}

async fn add(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let bytes = bytes.map_err(too_large)?;
    let item: AddItem = body(&bytes)?;
    parse_id(&item.product)?;
    let wanted = quantity(item.quantity)?;
    let account = signer(&shop, &method, &uri, &headers, &bytes)
        .await?
        .to_string();
    shop.read(move |shop, read| {
        let Some((price, _, _, status)) = variant(read, &item.product, i64::from(item.variant))?
        else {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_product",
                format!("no variant {} of product {}", item.variant, item.product),
            ));
        };
        if status != "listed" {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_listed",
                format!("product {} is {status}, not on sale", item.product),
            ));
        }
        let mut conn = shop.carts.lock();
        let tx = conn.transaction()?;
        spend(&tx, &headers)?;
        let held: Option<i64> = tx
            .query_row(
                "SELECT quantity FROM cart_lines WHERE account = ?1 AND product = ?2 AND variant = ?3",
                params![account, item.product, item.variant],
                |r| r.get(0),
            )
            .optional()?;
        let lines: i64 = tx.query_row(
            "SELECT COUNT(*) FROM cart_lines WHERE account = ?1",
            [&account],
            |r| r.get(0),
        )?;
        if held.is_none() && usize::try_from(lines).unwrap_or(usize::MAX) >= CART_LINES_MAX {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "cart_full",
                format!("a cart holds {CART_LINES_MAX} lines; check out or remove some"),
            ));
        }
        if held.is_none() {
            let all: i64 =
                tx.query_row("SELECT lines FROM cart_totals WHERE id = 0", [], |r| r.get(0))?;
            let over = all.saturating_add(1).saturating_sub(
                i64::try_from(CART_LINES_TOTAL_MAX).unwrap_or(i64::MAX),
            );
            if over > 0 {
                tx.execute(
                    "DELETE FROM cart_lines WHERE rowid IN \
                     (SELECT rowid FROM cart_lines ORDER BY added_ms LIMIT ?1)",
                    [over],
                )?;
            }
        }
        let total = held.unwrap_or(0) + wanted;
        if total > i64::from(LINE_QUANTITY_MAX) {
            return Err(ApiError::bad(format!(
                "a line holds at most {LINE_QUANTITY_MAX} items"
            )));
        }
        tx.execute(
            "INSERT INTO cart_lines (account, product, variant, quantity, price_seen, added_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (account, product, variant) \
             DO UPDATE SET quantity = ?4, price_seen = ?5",
            params![account, item.product, item.variant, total, price, now_ms()],
        )?;
        tx.commit()?;
        drop(conn);
        cart_view(shop, read, &account).map(Json)
    })
    .await
}

async fn set(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((product, variant_id)): Path<(String, u16)>,
    bytes: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let bytes = bytes.map_err(too_large)?;
    let item: SetItem = body(&bytes)?;
    parse_id(&product)?;
    let account = signer(&shop, &method, &uri, &headers, &bytes)
        .await?
        .to_string();
    shop.read(move |shop, read| {
        let mut conn = shop.carts.lock();
        let tx = conn.transaction()?;
        spend(&tx, &headers)?;
        let changed = if item.quantity == 0 {
            tx.execute(
                "DELETE FROM cart_lines WHERE account = ?1 AND product = ?2 AND variant = ?3",
                params![account, product, variant_id],
            )?
        } else {
            tx.execute(
                "UPDATE cart_lines SET quantity = ?4 \
                 WHERE account = ?1 AND product = ?2 AND variant = ?3",
                params![account, product, variant_id, quantity(item.quantity)?],
            )?
        };
        if changed == 0 {
            return Err(not_in_cart(&product, variant_id));
        }
        tx.commit()?;
        drop(conn);
        cart_view(shop, read, &account).map(Json)
    })
    .await
}

fn not_in_cart(product: &str, variant: u16) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_in_cart",
        format!("variant {variant} of product {product} is not in this cart"),
    )
}

async fn remove(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Path((product, variant_id)): Path<(String, u16)>,
) -> Result<Json<Value>, ApiError> {
    parse_id(&product)?;
    let account = signer(&shop, &method, &uri, &headers, &[])
        .await?
        .to_string();
    shop.read(move |shop, read| {
        let mut conn = shop.carts.lock();
        let tx = conn.transaction()?;
        spend(&tx, &headers)?;
        let removed = tx.execute(
            "DELETE FROM cart_lines WHERE account = ?1 AND product = ?2 AND variant = ?3",
            params![account, product, variant_id],
        )?;
        if removed == 0 {
            return Err(not_in_cart(&product, variant_id));
        }
        tx.commit()?;
        drop(conn);
        cart_view(shop, read, &account).map(Json)
    })
    .await
}

async fn clear(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = signer(&shop, &method, &uri, &headers, &[])
        .await?
        .to_string();
    shop.read(move |shop, read| {
        let mut conn = shop.carts.lock();
        let tx = conn.transaction()?;
        spend(&tx, &headers)?;
        tx.execute("DELETE FROM cart_lines WHERE account = ?1", [&account])?;
        tx.commit()?;
        drop(conn);
        cart_view(shop, read, &account).map(Json)
    })
    .await
}

async fn view(
    State(shop): State<Arc<Shop>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let account = signer(&shop, &method, &uri, &headers, &[])
        .await?
        .to_string();
    shop.read(move |shop, read| cart_view(shop, read, &account).map(Json))
        .await
}

/// The cart of `account`, priced and checked against the read model, with the orders
/// checkout would place.
fn cart_view(shop: &Shop, read: &Connection, account: &str) -> Result<Value, ApiError> {
    let held: Vec<(String, i64, i64, i64)> = {
        let conn = shop.carts.lock();
        let mut statement = conn.prepare_cached(
            "SELECT product, variant, quantity, price_seen FROM cart_lines WHERE account = ?1 \
             ORDER BY added_ms, product, variant",
        )?;
        statement
            .query_map([account], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<Result<_, _>>()?
    };
    let mut lines = Vec::with_capacity(held.len());
    // Checkout groups: (seller, currency, kind) -> lines a `place_order` carries.
    let mut groups: BTreeMap<(String, String, String), Vec<Value>> = BTreeMap::new();
    let mut totals: BTreeMap<String, i64> = BTreeMap::new();
    let mut ready = true;
    for (product, variant_id, quantity, price_seen) in held {
        let found = read
            .query_row(
                "SELECT p.title_zh, p.title_en, p.org, p.kind, p.status, v.name, v.price, \
                 v.currency, v.available FROM products p JOIN variants v ON v.product = p.id \
                 WHERE p.id = ?1 AND v.variant = ?2",
                params![product, variant_id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, i64>(6)?,
                        r.get::<_, String>(7)?,
                        r.get::<_, i64>(8)?,
                    ))
                },
            )
            .optional()?;
        let Some((title_zh, title_en, seller, kind, status, name, price, currency, available)) =
            found
        else {
            ready = false;
            lines.push(json!({
                "product": product, "variant": variant_id, "quantity": quantity,
                "warnings": ["unknown_product"],
            }));
            continue;
        };
        let mut warnings = Vec::new();
        if status != "listed" {
            warnings.push("not_listed");
        }
        if available == 0 {
            warnings.push("out_of_stock");
        } else if available < quantity {
            warnings.push("low_stock");
        }
        if price != price_seen {
            warnings.push("price_changed");
        }
        let subtotal = price.saturating_mul(quantity);
        // A line whose price changed since it was added waits for the customer to add it
        // again at the new price: checkout never pays a price the customer did not see.
        let buyable = status == "listed" && available >= quantity && price == price_seen;
        ready &= buyable;
        if buyable {
            let total = totals.entry(currency.clone()).or_default();
            *total = total.saturating_add(subtotal);
            let group = groups
                .entry((seller.clone(), currency.clone(), kind.clone()))
                .or_default();
            group.push(json!({
                "product": product, "variant": variant_id, "quantity": quantity, "price": price,
            }));
        }
        lines.push(json!({
            "product": product,
            "variant": variant_id,
            "variant_name": name,
            "title_zh": title_zh,
            "title_en": title_en,
            "seller": seller,
            "kind": kind,
            "quantity": quantity,
            "price": price,
            "price_when_added": price_seen,
            "currency": currency,
            "subtotal": subtotal,
            "available": available,
            "warnings": warnings,
        }));
    }
    // An order carries at most ORDER_LINES_MAX lines: a bigger group is placed as several.
    let mut checkout = Vec::new();
    for ((seller, currency, kind), group) in groups {
        for chunk in group.chunks(consort_types::commerce::ORDER_LINES_MAX) {
            let total: i64 = chunk
                .iter()
                .map(|l| {
                    l["price"]
                        .as_i64()
                        .unwrap_or(0)
                        .saturating_mul(l["quantity"].as_i64().unwrap_or(0))
                })
                .fold(0, i64::saturating_add);
            checkout.push(json!({
                "seller": seller, "currency": currency, "kind": kind, "total": total,
                "lines": chunk,
            }));
        }
    }
    Ok(json!({
        "account": account,
        "lines": lines,
        "totals": totals,
        "ready": ready,
        "checkout": checkout,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signed(signature: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-consort-signature",
            signature.parse().expect("a header value"),
        );
        headers
    }

    #[test]
    fn a_change_drops_lines_untouched_for_longer_than_the_age_limit_and_refuses_a_replay() {
        let conn = Connection::open_in_memory().expect("sqlite");
        conn.execute_batch(crate::shop::CARTS_SCHEMA)
            .expect("schema");
        let day_ms = 86_400_000i64;
        let age_ms = i64::try_from(CART_LINE_AGE_DAYS_MAX).expect("small") * day_ms;
        let now = now_ms();
        for (account, added) in [
            ("old", now - age_ms - day_ms),
            ("recent", now - age_ms + day_ms),
        ] {
            conn.execute(
                "INSERT INTO cart_lines (account, product, variant, quantity, price_seen, added_ms) \
                 VALUES (?1, '1-0', 0, 1, 100, ?2)",
                params![account, added],
            )
            .expect("insert");
        }
        spend(&conn, &signed("aa")).expect("a fresh signature");
        let left: Vec<String> = conn
            .prepare("SELECT account FROM cart_lines ORDER BY account")
            .expect("prepare")
            .query_map([], |r| r.get(0))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(left, vec!["recent".to_string()]);
        let counted: i64 = conn
            .query_row("SELECT lines FROM cart_totals", [], |r| r.get(0))
            .expect("total");
        assert_eq!(counted, 1, "the triggers keep the total");
        let replay = spend(&conn, &signed("AA")).expect_err("a replay");
        assert!(format!("{replay:?}").contains("replayed"), "{replay:?}");
    }
}
