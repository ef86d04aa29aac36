//! Reviews: the buyer of a completed order reviews each line once (rating 1–5, text, photos
//! by hash), may revise it (a new version; the old ones stay), the seller replies once.
//! Rating sums per product and per seller organisation are kept on chain.

use crate::{Shop, order, product, require_seller};
use consort_execution::{Fail, Runtime, Store};
use consort_types::{
    changes::Record,
    commerce::{
        CommerceError, OrderStatus, ProductVersion, REVIEW_VERSIONS_MAX, RecordId, ReviewContent,
        ReviewHead, SellerStats,
    },
    state_key::commerce as key,
};

fn check_rating(content: &ReviewContent) -> Result<(), CommerceError> {
    if (1..=5).contains(&content.rating) {
        Ok(())
    } else {
        Err(CommerceError::BadRating(content.rating))
    }
}

/// Move the rating sums of `product` and its seller: `add` in, `remove` out (0: none).
async fn rate<E: Runtime>(
    store: &mut Store<'_, E>,
    product_id: &RecordId,
    add: u8,
    remove: u8,
) -> Result<(), Fail> {
    let mut head = product(store, product_id).await?;
    let mut stats = store
        .get::<SellerStats>(&key::seller(&head.org))
        .await?
        .unwrap_or_default();
    let first = remove == 0;
    head.rating_sum = head.rating_sum.saturating_add(u64::from(add)) - u64::from(remove);
    stats.rating_sum = stats.rating_sum.saturating_add(u64::from(add)) - u64::from(remove);
    if first {
        head.rating_count = head.rating_count.saturating_add(1);
        stats.rating_count = stats.rating_count.saturating_add(1);
    }
    store
        .put_noted(Record::Product { id: *product_id }, &head)
        .await?;
    store
        .put_noted(Record::Seller { org: head.org }, &stats)
        .await?;
    Ok(())
}

/// The review of `line` of order `id` may be written by the sender: its buyer, the order
/// completed, the line bought.
async fn reviewable<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    line: u8,
) -> Result<RecordId, Fail> {
    let order = order(store, id).await?;
    crate::require_buyer(store, shop, id, &order).await?;
    if order.status != OrderStatus::Completed {
        return Err(CommerceError::NotReviewable(*id).into());
    }
    match order.lines.0.get(usize::from(line)) {
        Some(l) if l.quantity > 0 => Ok(l.product),
        _ => Err(CommerceError::BadContent("the order has no such line").into()),
    }
}

/// `review`: the first review of an order line.
///
/// # Errors
/// [`CommerceError::NotYourOrder`], [`CommerceError::NotReviewable`],
/// [`CommerceError::AlreadyReviewed`], [`CommerceError::BadRating`].
pub(crate) async fn review<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    line: u8,
    content: &ReviewContent,
) -> Result<(), Fail> {
    check_rating(content)?;
    let product_id = reviewable(store, shop, id, line).await?;
    if store
        .get::<ReviewHead>(&key::review(id, line))
        .await?
        .is_some()
    {
        return Err(CommerceError::AlreadyReviewed(*id).into());
    }
    store
        .put_noted(
            Record::Review { order: *id, line },
            &ReviewHead {
                product: product_id,
                author: *shop.sender(),
                rating: content.rating,
                version: 1,
                digest: content.digest(),
                content_at: shop.ctx.place(),
                reply_at: None,
            },
        )
        .await?;
    rate(store, &product_id, content.rating, 0).await
}

/// `revise_review`: a new version of one's review; the replaced one is kept.
///
/// # Errors
/// [`CommerceError::NoReview`], [`CommerceError::NotYourOrder`],
/// [`CommerceError::ReviewVersionsMax`], [`CommerceError::BadRating`].
pub(crate) async fn revise<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    line: u8,
    content: &ReviewContent,
) -> Result<(), Fail> {
    check_rating(content)?;
    reviewable(store, shop, id, line).await?;
    let mut head = store
        .get::<ReviewHead>(&key::review(id, line))
        .await?
        .ok_or(CommerceError::NoReview(*id))?;
    if head.version >= REVIEW_VERSIONS_MAX {
        return Err(CommerceError::ReviewVersionsMax.into());
    }
    store
        .put(
            &key::review_version(id, line, head.version),
            &ProductVersion {
                digest: head.digest,
                content_at: head.content_at,
            },
        )
        .await?;
    let old = head.rating;
    head.rating = content.rating;
    head.version += 1;
    head.digest = content.digest();
    head.content_at = shop.ctx.place();
    store
        .put_noted(Record::Review { order: *id, line }, &head)
        .await?;
    rate(store, &head.product, content.rating, old).await
}

/// `reply_review`: the seller's one reply to a review.
///
/// # Errors
/// [`CommerceError::NoReview`], [`CommerceError::NotYourOrder`],
/// [`CommerceError::AlreadyReplied`].
pub(crate) async fn reply<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    line: u8,
    text: &str,
) -> Result<(), Fail> {
    if text.is_empty() {
        return Err(CommerceError::BadContent("a reply needs text").into());
    }
    let order = order(store, id).await?;
    require_seller(store, shop, id, &order).await?;
    let mut head = store
        .get::<ReviewHead>(&key::review(id, line))
        .await?
        .ok_or(CommerceError::NoReview(*id))?;
    if head.reply_at.is_some() {
        return Err(CommerceError::AlreadyReplied.into());
    }
    head.reply_at = Some(shop.ctx.place());
    store
        .put_noted(Record::Review { order: *id, line }, &head)
        .await?;
    Ok(())
}
