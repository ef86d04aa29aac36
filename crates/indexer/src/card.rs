//! A product's card: what a list of products shows of each (titles, seller, price range,
//! stock, rating, first image). The product page starts from it, and the search index stores
//! it with each document, so that a page of results is read from one place at one height.

use rusqlite::OptionalExtension as _;
use serde_json::{Value, json};

/// Stock above this per variant counts as this much in a product's total (SQLite sums
/// signed 64-bit integers; a seller may declare any stock).
pub const STOCK_SUMMED_MAX: i64 = 1_000_000_000_000_000;

/// The card of product `id` from the read model, or `None` if there is no such product.
///
/// # Errors
/// If SQLite fails.
pub(crate) fn summary(conn: &rusqlite::Connection, id: &str) -> rusqlite::Result<Option<Value>> {
    let row = conn
        .prepare_cached(
            "SELECT p.title_zh, p.title_en, p.category, p.org, p.status, p.rating_sum, \
             p.rating_count, p.sold, p.images, p.kind, \
             (SELECT MIN(price) FROM variants WHERE product = p.id), \
             (SELECT MAX(price) FROM variants WHERE product = p.id), \
             (SELECT currency FROM variants WHERE product = p.id ORDER BY variant LIMIT 1), \
             (SELECT SUM(MIN(available, ?2)) FROM variants WHERE product = p.id) \
             FROM products p WHERE p.id = ?1",
        )?
        .query_row(rusqlite::params![id, STOCK_SUMMED_MAX], |r| {
            let sum: i64 = r.get(5)?;
            let count: i64 = r.get(6)?;
            let images: String = r.get(8)?;
            let image = serde_json::from_str::<Value>(&images)
                .ok()
                .and_then(|v| v.get(0).cloned())
                .unwrap_or(Value::Null);
            Ok(json!({
                "id": id,
                "title_zh": r.get::<_, String>(0)?,
                "title_en": r.get::<_, String>(1)?,
                "category": r.get::<_, String>(2)?,
                "seller": r.get::<_, String>(3)?,
                "status": r.get::<_, String>(4)?,
                "kind": r.get::<_, String>(9)?,
                "rating": rating(sum, count),
                "rating_count": count,
                "sold": r.get::<_, i64>(7)?,
                "image": image,
                "price_min": r.get::<_, Option<i64>>(10)?,
                "price_max": r.get::<_, Option<i64>>(11)?,
                "currency": r.get::<_, Option<String>>(12)?,
                "available": r.get::<_, Option<i64>>(13)?.unwrap_or(0),
                "url": format!("/v1/shop/products/{id}"),
            }))
        })
        .optional()?;
    Ok(row)
}

/// An average rating with two decimals, or null before the first review.
pub(crate) fn rating(sum: i64, count: i64) -> Value {
    if count <= 0 {
        return Value::Null;
    }
    // Hundredths, rounded half up: 4.666… is 4.67. No floats in what is compared.
    let hundredths = (sum * 200 + count) / (2 * count);
    Value::String(format!("{}.{:02}", hundredths / 100, hundredths % 100))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratings_are_shown_without_floats() {
        assert_eq!(rating(14, 3), json!("4.67"));
        assert_eq!(rating(10, 2), json!("5.00"));
        assert_eq!(rating(0, 0), Value::Null);
    }
}
