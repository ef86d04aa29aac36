//! The shop's public read API, `/v1/shop/...`, answered from the read model and the search
//! index: catalogue search with filters, facets, sorting and pages; a product's page with its
//! versions, variants, rating and reviews; up to four products compared attribute by
//! attribute. `consort indexer --listen` serves it (and a node that runs an indexer merges it
//! into its own API).

pub use crate::shop::{
    API_WORKER_THREADS, ApiError, SEARCHES_RUNNING_MAX, Shop, UPDATE_STREAMS_MAX,
    UPDATE_STREAMS_PER_ACCOUNT_MAX, Update,
};
use crate::{
    card::summary,
    search::{PAGE_SIZE_MAX, Query as SearchQuery, Sort},
    shop::{indexed_height, parse_id, query_error},
};
use axum::{
    Json, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// Most products compared side by side.
pub const COMPARE_MAX: usize = 4;

/// Versions a product page shows (newest first; every version's content stays on chain and
/// in the read model).
pub const PAGE_VERSIONS: usize = 20;

/// Reviews a product page shows (newest first).
pub const PAGE_REVIEWS: usize = 20;

/// The `/v1/shop` routes.
pub fn routes(shop: Arc<Shop>) -> Router {
    Router::new()
        .route("/v1/shop/search", get(search))
        .route("/v1/shop/products/{id}", get(product))
        .route("/v1/shop/compare", get(compare))
        .route("/v1/shop/status", get(status))
        .merge(crate::views::routes())
        .merge(crate::carts::routes())
        .with_state(shop)
}

/// Query string of `/v1/shop/search`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    /// Words, in Chinese or English.
    #[serde(default)]
    pub q: String,
    /// A category path (`electronics` takes `electronics/audio`).
    pub category: Option<String>,
    /// A seller organisation.
    pub seller: Option<String>,
    /// Lowest price, base units.
    pub price_min: Option<u64>,
    /// Highest price, base units.
    pub price_max: Option<u64>,
    /// Only products in stock.
    #[serde(default)]
    pub in_stock: bool,
    /// Attributes that must match, `name:value` separated by commas.
    pub attr: Option<String>,
    /// Lowest average rating, 1 to 5 (e.g. 4.5).
    pub rating_min: Option<String>,
    /// relevance, price_asc, price_desc, rating, sales or newest.
    pub sort: Option<String>,
    /// Page, from 1.
    pub page: Option<usize>,
    /// Results per page, 1 to 100 (default 20).
    pub per_page: Option<usize>,
}

impl SearchParams {
    fn query(&self) -> Result<(SearchQuery, usize, usize), ApiError> {
        let page = self.page.unwrap_or(1);
        let per_page = self.per_page.unwrap_or(20);
        if page == 0 {
            return Err(ApiError::bad("pages count from 1"));
        }
        if per_page == 0 || per_page > PAGE_SIZE_MAX {
            return Err(ApiError::bad(format!("per_page is 1 to {PAGE_SIZE_MAX}")));
        }
        let attributes = match &self.attr {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .filter(|a| !a.trim().is_empty())
                .map(|a| {
                    a.split_once(':')
                        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
                        .ok_or_else(|| {
                            ApiError::bad(format!("attribute {a:?}: write it as name:value"))
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let rating_min_milli = match &self.rating_min {
            None => None,
            Some(text) => Some(rating_milli(text)?),
        };
        let sort: Sort = match &self.sort {
            None => Sort::Relevance,
            Some(s) => s.parse()?,
        };
        Ok((
            SearchQuery {
                text: self.q.clone(),
                category: self.category.clone().filter(|c| !c.is_empty()),
                seller: self.seller.clone().filter(|s| !s.is_empty()),
                price_min: self.price_min,
                price_max: self.price_max,
                in_stock: self.in_stock,
                attributes,
                rating_min_milli,
                sort,
                offset: (page - 1).saturating_mul(per_page),
                limit: per_page,
            },
            page,
            per_page,
        ))
    }
}

/// A rating `1` to `5` with up to three decimals, in thousandths.
fn rating_milli(text: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::bad(format!(
            "rating_min {text:?}: a number from 1 to 5, e.g. 4.5"
        ))
    };
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let whole: u64 = whole.parse().map_err(|_| bad())?;
    let fraction: u64 = format!("{fraction:0<3}").parse().map_err(|_| bad())?;
    let milli = whole.saturating_mul(1000).saturating_add(fraction);
    if !(1000..=5000).contains(&milli) {
        return Err(bad());
    }
    Ok(milli)
}

/// A product as a result lists it.
async fn status(State(shop): State<Arc<Shop>>) -> Result<Json<Value>, ApiError> {
    shop.read(|shop, conn| {
        let count =
            |sql: &str| -> Result<i64, ApiError> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
        Ok(Json(json!({
            "indexed_height": indexed_height(conn)?,
            "search_height": shop.search.committed_height()?,
            "products": count("SELECT COUNT(*) FROM products")?,
            "listed": count("SELECT COUNT(*) FROM products WHERE status = 'listed'")?,
            "orders": count("SELECT COUNT(*) FROM orders")?,
            "reviews": count("SELECT COUNT(*) FROM reviews")?,
            "failed": shop.failed(),
        })))
    })
    .await
}

/// A page of search results as sent: each result is the card stored in the search index,
/// copied as it is.
#[derive(serde::Serialize)]
struct SearchPage {
    total: usize,
    page: usize,
    per_page: usize,
    results: Vec<Box<serde_json::value::RawValue>>,
    facets: Facets,
    search_height: Option<u64>,
}

#[derive(serde::Serialize)]
struct Facets {
    categories: Vec<FacetCount>,
    sellers: Vec<FacetCount>,
}

#[derive(serde::Serialize)]
struct FacetCount {
    name: String,
    count: u64,
}

async fn search(
    State(shop): State<Arc<Shop>>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SearchPage>, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let (query, page, per_page) = params.query()?;
    // Everything a result shows is in the search index, at the height it was committed with:
    // the read model is not asked. The search runs here, on this runtime worker, once one of
    // the `SEARCHES_RUNNING_MAX` turns is free (see there for why).
    let _turn = shop
        .searching
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the search semaphore is closed"))?;
    let run = || {
        let search_height = shop.search.searched_height();
        let hits = shop.search.search(&query)?;
        let results = hits
            .cards
            .into_iter()
            .filter(|card| !card.is_empty())
            .map(serde_json::value::RawValue::from_string)
            .collect::<Result<Vec<_>, _>>()
            .map_err(ApiError::internal)?;
        let counts = |list: Vec<(String, u64)>| -> Vec<FacetCount> {
            list.into_iter()
                .map(|(name, count)| FacetCount { name, count })
                .collect()
        };
        Ok(Json(SearchPage {
            total: hits.total,
            page,
            per_page,
            results,
            facets: Facets {
                categories: counts(hits.categories),
                sellers: counts(hits.sellers),
            },
            search_height,
        }))
    };
    run()
}

fn product_page(conn: &rusqlite::Connection, id: &str) -> Result<Option<Value>, ApiError> {
    let Some(mut page) = summary(conn, id)? else {
        return Ok(None);
    };
    if page["status"] == "suspended" {
        // The operator took it down under its policy: its status, not its content.
        return Ok(Some(json!({
            "id": id,
            "status": "suspended",
            "seller": page["seller"],
            "url": page["url"],
        })));
    }
    let (description_zh, description_en, attributes, images, version, updated_ms): (
        String,
        String,
        String,
        String,
        i64,
        i64,
    ) = conn.query_row(
        "SELECT description_zh, description_en, attributes, images, version, updated_ms \
         FROM products WHERE id = ?1",
        [id],
        |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        },
    )?;
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::Null);
    page["description_zh"] = Value::String(description_zh);
    page["description_en"] = Value::String(description_en);
    page["attributes"] = parse(&attributes);
    page["images"] = parse(&images);
    page["version"] = json!(version);
    page["updated_ms"] = json!(updated_ms);
    let mut statement = conn.prepare_cached(
        "SELECT variant, name, price, currency, available, reserved FROM variants \
         WHERE product = ?1 ORDER BY variant",
    )?;
    let variants: Vec<Value> = statement
        .query_map([id], |r| {
            Ok(json!({
                "variant": r.get::<_, i64>(0)?,
                "name": r.get::<_, String>(1)?,
                "price": r.get::<_, i64>(2)?,
                "currency": r.get::<_, String>(3)?,
                "available": r.get::<_, i64>(4)?,
                "reserved": r.get::<_, i64>(5)?,
            }))
        })?
        .collect::<Result<_, _>>()?;
    page["variants"] = Value::Array(variants);
    let mut statement = conn.prepare_cached(
        "SELECT version, digest, content_at, time_ms, content FROM product_versions \
         WHERE product = ?1 ORDER BY version DESC LIMIT ?2",
    )?;
    let versions: Vec<Value> = statement
        .query_map(rusqlite::params![id, PAGE_VERSIONS as i64], |r| {
            let content: String = r.get(4)?;
            Ok(json!({
                "version": r.get::<_, i64>(0)?,
                "digest": r.get::<_, String>(1)?,
                "content_at": r.get::<_, String>(2)?,
                "time_ms": r.get::<_, i64>(3)?,
                "content": serde_json::from_str::<Value>(&content).unwrap_or(Value::Null),
            }))
        })?
        .collect::<Result<_, _>>()?;
    page["versions"] = Value::Array(versions);
    page["versions_total"] = json!(version);
    let reviews_total: i64 = conn.query_row(
        "SELECT COUNT(*) FROM reviews WHERE product = ?1",
        [id],
        |r| r.get(0),
    )?;
    let mut statement = conn.prepare_cached(
        "SELECT order_id, line, author, rating, version, text, photos, reply, time_ms \
         FROM reviews WHERE product = ?1 ORDER BY time_ms DESC, order_id, line LIMIT ?2",
    )?;
    let reviews: Vec<Value> = statement
        .query_map(rusqlite::params![id, PAGE_REVIEWS as i64], |r| {
            let photos: String = r.get(6)?;
            Ok(json!({
                "order": r.get::<_, String>(0)?,
                "line": r.get::<_, i64>(1)?,
                "author": r.get::<_, String>(2)?,
                "rating": r.get::<_, i64>(3)?,
                "version": r.get::<_, i64>(4)?,
                "text": r.get::<_, String>(5)?,
                "photos": serde_json::from_str::<Value>(&photos).unwrap_or(Value::Null),
                "reply": r.get::<_, Option<String>>(7)?,
                "time_ms": r.get::<_, i64>(8)?,
            }))
        })?
        .collect::<Result<_, _>>()?;
    page["reviews"] = json!({"total": reviews_total, "latest": reviews});
    Ok(Some(page))
}

async fn product(
    State(shop): State<Arc<Shop>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    parse_id(&id)?;
    shop.read(move |_, conn| {
        product_page(conn, &id)?.map(Json).ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_product",
                format!(
                    "no product {id} (yet): the index is at block {}",
                    indexed_height(conn).unwrap_or(0)
                ),
            )
        })
    })
    .await
}

/// Query string of `/v1/shop/compare`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareParams {
    /// Product ids separated by commas, 2 to [`COMPARE_MAX`].
    pub ids: String,
}

async fn compare(
    State(shop): State<Arc<Shop>>,
    params: Result<Query<CompareParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(params) = params.map_err(query_error)?;
    let ids: Vec<String> = params
        .ids
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if ids.len() < 2 || ids.len() > COMPARE_MAX {
        return Err(ApiError::bad(format!(
            "compare 2 to {COMPARE_MAX} products: ids=H-I,H-I"
        )));
    }
    for id in &ids {
        parse_id(id)?;
    }
    let mut seen = std::collections::BTreeSet::new();
    if !ids.iter().all(|id| seen.insert(id.clone())) {
        return Err(ApiError::bad("a product appears twice"));
    }
    shop.read(move |_, conn| {
        let mut products = Vec::with_capacity(ids.len());
        for id in &ids {
            let page = product_page(conn, id)?.ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_product",
                    format!("no product {id}"),
                )
            })?;
            products.push(page);
        }
        Ok(Json(comparison(&products)))
    })
    .await
}

/// Products side by side: each row an attribute (or price, rating, stock, seller,
/// category) with every product's value, `differs` when they are not all the same.
fn comparison(products: &[Value]) -> Value {
    let mut names: Vec<String> = Vec::new();
    for product in products {
        for attribute in product["attributes"].as_array().into_iter().flatten() {
            if let Some(name) = attribute["name"].as_str()
                && !names.iter().any(|n| n == name)
            {
                names.push(name.to_string());
            }
        }
    }
    let row = |label: &str, values: Vec<Value>| {
        let differs = values.windows(2).any(|w| w[0] != w[1]);
        json!({"name": label, "values": values, "differs": differs})
    };
    let field = |key: &str| products.iter().map(|p| p[key].clone()).collect::<Vec<_>>();
    let mut rows = vec![
        row("price_min", field("price_min")),
        row("price_max", field("price_max")),
        row("currency", field("currency")),
        row("rating", field("rating")),
        row("rating_count", field("rating_count")),
        row("available", field("available")),
        row("sold", field("sold")),
        row("seller", field("seller")),
        row("category", field("category")),
    ];
    for name in &names {
        let values = products
            .iter()
            .map(|p| {
                p["attributes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|a| a["name"].as_str() == Some(name))
                    .map_or(Value::Null, |a| a["value"].clone())
            })
            .collect();
        rows.push(row(name, values));
    }
    json!({
        "products": products.iter().map(|p| json!({
            "id": p["id"], "title_zh": p["title_zh"], "title_en": p["title_en"],
            "image": p["image"], "url": p["url"],
        })).collect::<Vec<_>>(),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_are_read_and_shown_without_floats() {
        assert_eq!(rating_milli("4.5").expect("4.5"), 4500);
        assert_eq!(rating_milli("5").expect("5"), 5000);
        assert_eq!(rating_milli("1.25").expect("1.25"), 1250);
        for bad in ["0.9", "5.001", "x", "4.5555", "-1", ""] {
            assert!(rating_milli(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn comparison_marks_differences() {
        let a = json!({"id": "1-0", "price_min": 100, "attributes": [{"name": "colour", "value": "black"}, {"name": "battery", "value": "30h"}]});
        let b = json!({"id": "1-1", "price_min": 100, "attributes": [{"name": "colour", "value": "white"}]});
        let table = comparison(&[a, b]);
        let rows = table["rows"].as_array().expect("rows");
        let find = |name: &str| rows.iter().find(|r| r["name"] == name).expect(name).clone();
        assert_eq!(find("price_min")["differs"], false);
        assert_eq!(find("colour")["differs"], true);
        assert_eq!(find("battery")["values"], json!(["30h", null]));
    }
}
