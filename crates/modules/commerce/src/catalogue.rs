//! Products: publication, versions, listing and the operator's suspension, stock.

use crate::{Shop, product, refuse_frozen, variant};
use consort_execution::{Fail, Runtime, Store};
use consort_governance::Gov;
use consort_types::{
    Asset,
    changes::Record,
    commerce::{
        CommerceError, ProductContent, ProductHead, ProductStatus, ProductVersion, RecordId,
        StockChange, VariantState,
    },
    gov::{FreezeTarget, OrgId, role},
    state_key::commerce as key,
};

/// Check what content must be, whatever the state: at least one title, at least one
/// variant, names and prices present.
fn check_content(content: &ProductContent) -> Result<(), CommerceError> {
    if content.title_zh.is_empty() && content.title_en.is_empty() {
        return Err(CommerceError::BadContent("a product needs a title"));
    }
    if content.variants.0.is_empty() {
        return Err(CommerceError::BadContent(
            "a product needs at least one variant",
        ));
    }
    if content.variants.0.iter().any(|v| v.price == 0) {
        return Err(CommerceError::BadContent(
            "every variant needs a price above zero",
        ));
    }
    if content.category.is_empty() {
        return Err(CommerceError::BadContent("a product needs a category"));
    }
    Ok(())
}

/// Refuse a currency that is neither the pegged coin nor an e-money some bank issues.
pub(crate) async fn check_currency<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    asset: &Asset,
) -> Result<(), Fail> {
    if shop.rules.pegged == Some(*asset) || Gov::emoney(store, asset).await?.is_some() {
        Ok(())
    } else {
        Err(CommerceError::UnknownCurrency(*asset).into())
    }
}

/// The sender's seller organisation.
async fn seller_org<E: Runtime>(store: &mut Store<'_, E>, shop: &Shop<'_>) -> Result<OrgId, Fail> {
    shop.org_with(
        store,
        role::SELLER,
        "only a seller account of a seller organisation manages products",
    )
    .await
}

/// The head of `id` if the sender's organisation owns it.
async fn own_product<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
) -> Result<ProductHead, Fail> {
    let org = seller_org(store, shop).await?;
    let head = product(store, id).await?;
    if head.org != org {
        return Err(CommerceError::NotYourProduct(*id).into());
    }
    Ok(head)
}

/// `publish_product`: a new product with its variants' prices and stock; its id is this
/// transaction's place.
///
/// # Errors
/// [`CommerceError::BadContent`], [`CommerceError::UnknownCurrency`], a sender without the
/// seller role, or a state failure.
pub(crate) async fn publish<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    content: &ProductContent,
) -> Result<(), Fail> {
    check_content(content)?;
    let org = seller_org(store, shop).await?;
    for spec in &content.variants.0 {
        check_currency(store, shop, &spec.currency).await?;
    }
    let id = shop.ctx.place();
    let count = u16::try_from(content.variants.0.len())
        .map_err(|_| CommerceError::BadContent("too many variants"))?;
    for (index, spec) in (0u16..).zip(&content.variants.0) {
        store.put_fixed_noted(
            Record::Variant {
                product: id,
                variant: index,
            },
            &VariantState {
                price: spec.price,
                currency: spec.currency,
                available: spec.stock,
                reserved: 0,
            },
        );
    }
    let head = ProductHead {
        org,
        payee: *shop.sender(),
        kind: content.kind,
        version: 1,
        digest: content.digest(),
        content_at: id,
        status: ProductStatus::Listed,
        variants: count,
        rating_sum: 0,
        rating_count: 0,
        updated: shop.now(),
    };
    store.put_noted(Record::Product { id }, &head).await?;
    Ok(())
}

/// `update_product`: a new version (the old one kept under its version number); prices and
/// currencies of existing variants change, new variants arrive with their stock.
///
/// # Errors
/// [`CommerceError::NotYourProduct`], [`CommerceError::BadContent`] (another kind, fewer
/// variants), or as [`publish`].
pub(crate) async fn update<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    content: &ProductContent,
) -> Result<(), Fail> {
    check_content(content)?;
    let mut head = own_product(store, shop, id).await?;
    if content.kind != head.kind {
        return Err(CommerceError::BadContent("a product keeps its kind").into());
    }
    if content.variants.0.len() < usize::from(head.variants) {
        return Err(CommerceError::BadContent(
            "an update keeps every variant (set its stock to zero instead)",
        )
        .into());
    }
    for spec in &content.variants.0 {
        check_currency(store, shop, &spec.currency).await?;
    }
    store
        .put(
            &key::product_version(id, head.version),
            &ProductVersion {
                digest: head.digest,
                content_at: head.content_at,
            },
        )
        .await?;
    for (index, spec) in (0u16..).zip(&content.variants.0) {
        let state = if index < head.variants {
            let mut state = variant(store, id, index).await?;
            state.price = spec.price;
            state.currency = spec.currency;
            state
        } else {
            VariantState {
                price: spec.price,
                currency: spec.currency,
                available: spec.stock,
                reserved: 0,
            }
        };
        store.put_fixed_noted(
            Record::Variant {
                product: *id,
                variant: index,
            },
            &state,
        );
    }
    head.variants = u16::try_from(content.variants.0.len())
        .map_err(|_| CommerceError::BadContent("too many variants"))?;
    head.version = head
        .version
        .checked_add(1)
        .ok_or(CommerceError::Overflow("versions"))?;
    head.digest = content.digest();
    head.content_at = shop.ctx.place();
    head.updated = shop.now();
    store.put_noted(Record::Product { id: *id }, &head).await?;
    Ok(())
}

/// `set_listed`: the seller takes its product off sale or puts it back (not while the
/// operator suspends it).
///
/// # Errors
/// [`CommerceError::NotYourProduct`], [`CommerceError::BadState`] while suspended.
pub(crate) async fn set_listed<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    listed: bool,
) -> Result<(), Fail> {
    let mut head = own_product(store, shop, id).await?;
    if head.status == ProductStatus::Suspended {
        return Err(CommerceError::BadState {
            call: "set_listed",
            status: "suspended by the operator",
        }
        .into());
    }
    head.status = if listed {
        ProductStatus::Listed
    } else {
        ProductStatus::Delisted
    };
    head.updated = shop.now();
    store.put_noted(Record::Product { id: *id }, &head).await?;
    Ok(())
}

/// `suspend_product`: the operator takes a product off sale under its policy, or lifts that
/// (the product comes back delisted: its seller relists it).
///
/// # Errors
/// A sender without the operator role, [`CommerceError::UnknownProduct`].
pub(crate) async fn suspend<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    suspended: bool,
) -> Result<(), Fail> {
    shop.org_with(
        store,
        role::OPERATOR,
        "only the platform operator suspends products",
    )
    .await?;
    let mut head = product(store, id).await?;
    head.status = if suspended {
        ProductStatus::Suspended
    } else {
        ProductStatus::Delisted
    };
    head.updated = shop.now();
    store.put_noted(Record::Product { id: *id }, &head).await?;
    Ok(())
}

/// `set_stock`: add or take away available items, variant by variant.
///
/// # Errors
/// [`CommerceError::NotYourProduct`], [`CommerceError::UnknownVariant`],
/// [`CommerceError::StockBelowZero`].
pub(crate) async fn set_stock<E: Runtime>(
    store: &mut Store<'_, E>,
    shop: &Shop<'_>,
    id: &RecordId,
    changes: &[StockChange],
) -> Result<(), Fail> {
    let head = own_product(store, shop, id).await?;
    refuse_frozen(
        store,
        FreezeTarget::Org(head.org),
        "the seller organisation",
    )
    .await?;
    for change in changes {
        let mut state = variant(store, id, change.variant).await?;
        let amount = change.delta.unsigned_abs();
        state.available = if change.delta >= 0 {
            state
                .available
                .checked_add(amount)
                .ok_or(CommerceError::Overflow("stock"))?
        } else {
            state
                .available
                .checked_sub(amount)
                .ok_or(CommerceError::StockBelowZero {
                    variant: change.variant,
                    available: state.available,
                    taken: amount,
                })?
        };
        store.put_fixed_noted(
            Record::Variant {
                product: *id,
                variant: change.variant,
            },
            &state,
        );
    }
    Ok(())
}
