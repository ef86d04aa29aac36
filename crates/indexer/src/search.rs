//! Catalogue search: a tantivy index of the listed products, Chinese text cut into words by
//! jieba and English text stemmed, so 蓝牙耳机, 耳机 and "bluetooth headphones" find the same
//! headphones. Filters (category and its subcategories, seller, price range, in stock,
//! attributes, rating), facet counts (categories, sellers), sorting (relevance, price, rating,
//! sales, newest) and pages.
//!
//! The search index is derived from the SQLite read model: a block's apply marks the products
//! whose searchable fields it changed (`search_dirty`, in the block's SQLite transaction);
//! [`Search::sync`] re-reads those products, writes their documents, commits the search index
//! with the cursor's height as its payload, and only then clears the marks. Killed anywhere,
//! the marks are still there and the next sync writes the same documents again.

use crate::{Index, IndexError};
use rusqlite::OptionalExtension as _;
use std::{ops::Bound, path::Path};
use tantivy::{
    DocAddress, Order, TantivyDocument, Term,
    collector::{Count, FacetCollector, TopDocs},
    query::{AllQuery, BooleanQuery, BoostQuery, Occur, RangeQuery, TermQuery},
    schema::{
        FAST, Facet, FacetOptions, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema,
        TextFieldIndexing, TextOptions, Value as _,
    },
    tokenizer::{
        Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, TextAnalyzer,
        TokenStream as _,
    },
};

pub use crate::card::STOCK_SUMMED_MAX;

/// Most results one page holds.
pub const PAGE_SIZE_MAX: usize = 100;

/// Deepest result a query may page to (offset plus page size).
pub const RESULT_DEPTH_MAX: usize = 10_000;

/// Longest query text (bytes).
pub const QUERY_TEXT_MAX: usize = 256;

/// Memory the search index's writer buffers before it writes a segment (bytes).
const WRITER_MEMORY: usize = 50_000_000;

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// tantivy failed.
    #[error("search index: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    /// The read model failed.
    #[error(transparent)]
    Index(#[from] IndexError),
    /// SQLite failed.
    #[error("index database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The query is not one this search answers.
    #[error("{0}")]
    BadQuery(String),
}

/// How results are ordered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Best match first (newest first without query text).
    #[default]
    Relevance,
    /// Cheapest first.
    PriceAsc,
    /// Dearest first.
    PriceDesc,
    /// Best rated first.
    Rating,
    /// Most sold first.
    Sales,
    /// Newest first.
    Newest,
}

impl std::str::FromStr for Sort {
    type Err = SearchError;
    fn from_str(s: &str) -> Result<Self, SearchError> {
        Ok(match s {
            "relevance" => Self::Relevance,
            "price_asc" => Self::PriceAsc,
            "price_desc" => Self::PriceDesc,
            "rating" => Self::Rating,
            "sales" => Self::Sales,
            "newest" => Self::Newest,
            other => {
                return Err(SearchError::BadQuery(format!(
                    "sort {other:?}: use relevance, price_asc, price_desc, rating, sales or newest"
                )));
            }
        })
    }
}

/// A catalogue query.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Words, in Chinese or English (empty: every listed product).
    pub text: String,
    /// Only this category or its subcategories (`electronics` takes `electronics/audio`).
    pub category: Option<String>,
    /// Only this seller organisation.
    pub seller: Option<String>,
    /// Only products with a variant at or above this price (base units).
    pub price_min: Option<u64>,
    /// Only products with a variant at or below this price (base units).
    pub price_max: Option<u64>,
    /// Only products with stock available.
    pub in_stock: bool,
    /// Only products whose every attribute `name=value` here matches.
    pub attributes: Vec<(String, String)>,
    /// Only products rated at least this (1 to 5, in thousandths: 4500 is 4.5).
    pub rating_min_milli: Option<u64>,
    /// The order.
    pub sort: Sort,
    /// Results skipped.
    pub offset: usize,
    /// Results returned.
    pub limit: usize,
}

/// One product as search sees it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProductDoc {
    /// The product's id (`H-I`).
    pub id: String,
    /// Where it was created: newer is larger.
    pub created: u64,
    /// Its seller organisation.
    pub seller: String,
    /// Its category path (`electronics/audio`).
    pub category: String,
    /// Chinese title.
    pub title_zh: String,
    /// English title.
    pub title_en: String,
    /// Chinese description.
    pub description_zh: String,
    /// English description.
    pub description_en: String,
    /// Attributes (name, value).
    pub attributes: Vec<(String, String)>,
    /// Its cheapest variant's price.
    pub price_min: u64,
    /// Its dearest variant's price.
    pub price_max: u64,
    /// Units available over its variants.
    pub available: u64,
    /// Average rating in thousandths (0: none yet).
    pub rating_milli: u64,
    /// Units sold.
    pub sales: u64,
    /// Its card as JSON (see the `card` module): stored with the document, so that a page of
    /// results is read from the index at the height it was committed with.
    pub card: String,
}

/// A page of results.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hits {
    /// Products matching, over all pages.
    pub total: usize,
    /// This page's product ids, in order.
    pub ids: Vec<String>,
    /// Their cards as JSON, in the same order.
    pub cards: Vec<String>,
    /// Matching products per top-level and second-level category.
    pub categories: Vec<(String, u64)>,
    /// Matching products per seller.
    pub sellers: Vec<(String, u64)>,
}

struct Fields {
    id: Field,
    created: Field,
    seller: Field,
    categories: Field,
    facets: Field,
    title_zh: Field,
    title_en: Field,
    description_zh: Field,
    description_en: Field,
    attributes: Field,
    price_min: Field,
    price_max: Field,
    in_stock: Field,
    rating: Field,
    sales: Field,
    card: Field,
}

/// The search index.
pub struct Search {
    index: tantivy::Index,
    reader: tantivy::IndexReader,
    writer: std::sync::Mutex<tantivy::IndexWriter>,
    fields: Fields,
    /// The height searches see, kept in memory so that a query does not read the index's
    /// metadata file; [`NOT_COMMITTED`] before the first commit.
    searched: std::sync::atomic::AtomicU64,
}

/// Decompressed blocks of stored documents (the cards, 16 KiB each) a segment reader keeps:
/// enough for a whole catalogue of tens of thousands of products, so that a page of results
/// does not decompress the same blocks again for every query.
const DOC_STORE_CACHE_BLOCKS: usize = 1024;

/// [`Search::searched_height`] before anything was committed.
const NOT_COMMITTED: u64 = u64::MAX;

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text = |tokenizer: &str| {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(tokenizer)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
    };
    let fields = Fields {
        id: builder.add_text_field("id", STRING | STORED),
        created: builder.add_u64_field("created", FAST),
        seller: builder.add_text_field("seller", STRING),
        categories: builder.add_text_field("categories", STRING),
        facets: builder.add_facet_field("facets", FacetOptions::default()),
        title_zh: builder.add_text_field("title_zh", text("zh")),
        title_en: builder.add_text_field("title_en", text("en")),
        description_zh: builder.add_text_field("description_zh", text("zh")),
        description_en: builder.add_text_field("description_en", text("en")),
        attributes: builder.add_text_field("attributes", STRING),
        price_min: builder.add_u64_field("price_min", FAST | INDEXED),
        price_max: builder.add_u64_field("price_max", FAST | INDEXED),
        in_stock: builder.add_u64_field("in_stock", INDEXED),
        rating: builder.add_u64_field("rating", FAST | INDEXED),
        sales: builder.add_u64_field("sales", FAST),
        card: builder.add_text_field("card", STORED),
    };
    (builder.build(), fields)
}

fn register_tokenizers(index: &tantivy::Index) {
    index.tokenizers().register(
        "zh",
        TextAnalyzer::builder(tantivy_jieba::JiebaTokenizer::with_search_mode(true))
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(Stemmer::new(Language::English))
            .build(),
    );
    index.tokenizers().register(
        "en",
        TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(40))
            .filter(LowerCaser)
            .filter(Stemmer::new(Language::English))
            .build(),
    );
}

/// Every prefix of a category path: `a/b/c` gives `a`, `a/b`, `a/b/c`.
fn category_prefixes(category: &str) -> Vec<String> {
    let parts: Vec<&str> = category
        .split('/')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    (1..=parts.len()).map(|n| parts[..n].join("/")).collect()
}

impl Search {
    /// Open (or create) the search index in directory `dir`.
    ///
    /// # Errors
    /// If tantivy cannot open or create it.
    pub fn open(dir: &Path) -> Result<Self, SearchError> {
        std::fs::create_dir_all(dir).map_err(|e| {
            SearchError::Tantivy(tantivy::TantivyError::SystemError(format!(
                "cannot create {}: {e}",
                dir.display()
            )))
        })?;
        let (schema, fields) = schema();
        let directory = tantivy::directory::MmapDirectory::open(dir)
            .map_err(|e| SearchError::Tantivy(e.into()))?;
        let index = match tantivy::Index::open_or_create(directory.clone(), schema.clone()) {
            Err(tantivy::TantivyError::SchemaError(why)) => {
                // The index is derived data: one of an older layout is started afresh and
                // `recover` writes every product into it again.
                tracing::info!(dir = %dir.display(), %why, "starting the search index afresh");
                tantivy::Index::create(directory, schema, tantivy::IndexSettings::default())?
            }
            opened => opened?,
        };
        Self::with(index, fields)
    }

    /// A search index in memory (tests).
    ///
    /// # Errors
    /// If tantivy fails.
    pub fn in_memory() -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        Self::with(tantivy::Index::create_in_ram(schema), fields)
    }

    fn with(index: tantivy::Index, fields: Fields) -> Result<Self, SearchError> {
        register_tokenizers(&index);
        let writer = index.writer(WRITER_MEMORY)?;
        let reader = index
            .reader_builder()
            .reload_policy(tantivy::ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(DOC_STORE_CACHE_BLOCKS)
            .try_into()?;
        let search = Self {
            index,
            reader,
            writer: std::sync::Mutex::new(writer),
            fields,
            searched: std::sync::atomic::AtomicU64::new(NOT_COMMITTED),
        };
        let committed = search.committed_height()?.unwrap_or(NOT_COMMITTED);
        search
            .searched
            .store(committed, std::sync::atomic::Ordering::Release);
        Ok(search)
    }

    /// The height of the last commit searches see (at least that: a search that started after
    /// this was read may see a later one), without reading the index's metadata.
    pub fn searched_height(&self) -> Option<u64> {
        match self.searched.load(std::sync::atomic::Ordering::Acquire) {
            NOT_COMMITTED => None,
            height => Some(height),
        }
    }

    fn writer(&self) -> std::sync::MutexGuard<'_, tantivy::IndexWriter> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The height the search index was last committed at.
    ///
    /// # Errors
    /// If tantivy cannot read its metadata.
    pub fn committed_height(&self) -> Result<Option<u64>, SearchError> {
        Ok(self
            .index
            .load_metas()?
            .payload
            .and_then(|p| p.parse().ok()))
    }

    /// Write (or replace) a product's document; a product not listed is removed instead.
    ///
    /// # Errors
    /// If tantivy fails.
    pub fn upsert(&self, doc: &ProductDoc) -> Result<(), SearchError> {
        let f = &self.fields;
        let writer = self.writer();
        writer.delete_term(Term::from_field_text(f.id, &doc.id));
        let mut d = TantivyDocument::default();
        d.add_text(f.id, &doc.id);
        d.add_u64(f.created, doc.created);
        d.add_text(f.seller, &doc.seller);
        for prefix in category_prefixes(&doc.category) {
            d.add_text(f.categories, &prefix);
            d.add_facet(
                f.facets,
                Facet::from_path(std::iter::once("category").chain(prefix.split('/'))),
            );
        }
        d.add_facet(f.facets, Facet::from_path(["seller", doc.seller.as_str()]));
        d.add_text(f.title_zh, &doc.title_zh);
        d.add_text(f.title_en, &doc.title_en);
        d.add_text(f.description_zh, &doc.description_zh);
        d.add_text(f.description_en, &doc.description_en);
        for (name, value) in &doc.attributes {
            d.add_text(f.attributes, format!("{name}={value}"));
        }
        d.add_u64(f.price_min, doc.price_min);
        d.add_u64(f.price_max, doc.price_max);
        d.add_u64(f.in_stock, u64::from(doc.available > 0));
        d.add_u64(f.rating, doc.rating_milli);
        d.add_u64(f.sales, doc.sales);
        d.add_text(f.card, &doc.card);
        writer.add_document(d)?;
        Ok(())
    }

    /// Remove a product's document.
    pub fn remove(&self, id: &str) {
        self.writer()
            .delete_term(Term::from_field_text(self.fields.id, id));
    }

    /// Make what was written searchable and durable, recording `height`.
    ///
    /// # Errors
    /// If tantivy fails.
    pub fn commit(&self, height: u64) -> Result<(), SearchError> {
        let mut writer = self.writer();
        let mut prepared = writer.prepare_commit()?;
        prepared.set_payload(&height.to_string());
        prepared.commit()?;
        drop(writer);
        self.reader.reload()?;
        self.searched
            .store(height, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Make the search index match the read model when it may not: when it is new, or holds
    /// a later height than the read model (the read model was built again). Every document
    /// is dropped and every product marked to be written again by [`Search::sync`].
    ///
    /// # Errors
    /// If SQLite or tantivy fails.
    pub fn recover(&self, index: &Index) -> Result<(), SearchError> {
        let at = index.cursor()?.map(|c| c.height);
        let committed = self.committed_height()?;
        let consistent = match (committed, at) {
            (Some(c), Some(a)) => c <= a,
            (None, None) => true,
            _ => false,
        };
        if consistent {
            return Ok(());
        }
        tracing::info!(
            ?committed,
            ?at,
            "writing the search index again from the read model"
        );
        // What searches see until the rewrite commits is of the read model that was
        // discarded: it is at no height of this one.
        self.searched
            .store(NOT_COMMITTED, std::sync::atomic::Ordering::Release);
        self.writer().delete_all_documents()?;
        index.connection().execute(
            "INSERT OR IGNORE INTO search_dirty (product) SELECT id FROM products",
            [],
        )?;
        // With a cursor, the next `sync` writes every product and commits the deletion with
        // them, so searches never see an empty index in between; without one there is
        // nothing to write, and the empty index is the truth.
        if at.is_none() {
            self.commit(0)?;
        }
        Ok(())
    }

    /// Bring the search index up to the read model: write the products the applied blocks
    /// marked, commit at the cursor's height, then clear the marks. Returns how many
    /// products it wrote.
    ///
    /// # Errors
    /// If SQLite or tantivy fails.
    pub fn sync(&self, index: &Index) -> Result<usize, SearchError> {
        let conn = index.connection();
        let Some(cursor) = index.cursor()? else {
            return Ok(0);
        };
        let dirty: Vec<String> = {
            let mut statement =
                conn.prepare("SELECT product FROM search_dirty ORDER BY product")?;
            statement
                .query_map([], |r| r.get(0))?
                .collect::<Result<_, _>>()?
        };
        if dirty.is_empty() && self.committed_height()? == Some(cursor.height) {
            return Ok(0);
        }
        for id in &dirty {
            match product_doc(conn, id)? {
                Some(doc) => self.upsert(&doc)?,
                None => self.remove(id),
            }
        }
        self.commit(cursor.height)?;
        let mut statement = conn.prepare_cached("DELETE FROM search_dirty WHERE product = ?1")?;
        for id in &dirty {
            statement.execute([id])?;
        }
        Ok(dirty.len())
    }

    /// Answer `query`.
    ///
    /// # Errors
    /// [`SearchError::BadQuery`] for a query out of bounds; a tantivy failure.
    pub fn search(&self, query: &Query) -> Result<Hits, SearchError> {
        if query.text.len() > QUERY_TEXT_MAX {
            return Err(SearchError::BadQuery(format!(
                "the query text is {} bytes; at most {QUERY_TEXT_MAX}",
                query.text.len()
            )));
        }
        if query.limit == 0 || query.limit > PAGE_SIZE_MAX {
            return Err(SearchError::BadQuery(format!(
                "a page holds 1 to {PAGE_SIZE_MAX} results"
            )));
        }
        if query.offset.saturating_add(query.limit) > RESULT_DEPTH_MAX {
            return Err(SearchError::BadQuery(format!(
                "results go {RESULT_DEPTH_MAX} deep; narrow the query"
            )));
        }
        let f = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn tantivy::query::Query>)> = Vec::new();
        let text = query.text.trim();
        if text.is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        } else {
            // Each field's own analyzer cuts the words (jieba for Chinese, stemming for
            // English); any of them may match, titles weigh three times, a product matching
            // more of them ranks higher. What a shopper types is words, not query syntax.
            let mut words: Vec<(Occur, Box<dyn tantivy::query::Query>)> = Vec::new();
            for (field, boost) in [
                (f.title_zh, 3.0),
                (f.title_en, 3.0),
                (f.description_zh, 1.0),
                (f.description_en, 1.0),
            ] {
                let mut analyzer = self.index.tokenizer_for_field(field)?;
                let mut stream = analyzer.token_stream(text);
                let mut seen = std::collections::BTreeSet::new();
                while let Some(token) = stream.next() {
                    if token.text.trim().is_empty() || !seen.insert(token.text.clone()) {
                        continue;
                    }
                    let term = TermQuery::new(
                        Term::from_field_text(field, &token.text),
                        IndexRecordOption::WithFreqs,
                    );
                    words.push((
                        Occur::Should,
                        Box::new(BoostQuery::new(Box::new(term), boost)),
                    ));
                }
            }
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(words))));
        }
        let term = |field: Field, value: &str| -> Box<dyn tantivy::query::Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            ))
        };
        if let Some(category) = &query.category {
            let path = category_prefixes(category).pop().unwrap_or_default();
            clauses.push((Occur::Must, term(f.categories, &path)));
        }
        if let Some(seller) = &query.seller {
            clauses.push((Occur::Must, term(f.seller, seller)));
        }
        for (name, value) in &query.attributes {
            clauses.push((Occur::Must, term(f.attributes, &format!("{name}={value}"))));
        }
        let at_least = |field: Field, n: u64| -> Box<dyn tantivy::query::Query> {
            Box::new(RangeQuery::new(
                Bound::Included(Term::from_field_u64(field, n)),
                Bound::Unbounded,
            ))
        };
        if let Some(min) = query.price_min {
            clauses.push((Occur::Must, at_least(f.price_max, min)));
        }
        if let Some(max) = query.price_max {
            clauses.push((
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Unbounded,
                    Bound::Included(Term::from_field_u64(f.price_min, max)),
                )),
            ));
        }
        if query.in_stock {
            clauses.push((
                Occur::Must,
                Box::new(TermQuery::new(
                    Term::from_field_u64(f.in_stock, 1),
                    IndexRecordOption::Basic,
                )),
            ));
        }
        if let Some(min) = query.rating_min_milli {
            clauses.push((Occur::Must, at_least(f.rating, min)));
        }
        let combined = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let mut facets = FacetCollector::for_field("facets");
        facets.add_facet("/category");
        facets.add_facet("/seller");
        let page = TopDocs::with_limit(query.limit).and_offset(query.offset);
        let by_score = text.is_empty() && query.sort == Sort::Relevance;
        let (addresses, total, counts): (Vec<DocAddress>, usize, _) = match (query.sort, by_score) {
            (Sort::Relevance, false) => {
                let (top, total, counts) =
                    searcher.search(&combined, &(page.order_by_score(), Count, facets))?;
                (top.into_iter().map(|(_, a)| a).collect(), total, counts)
            }
            (sort, _) => {
                let (field, order) = match sort {
                    Sort::PriceAsc => ("price_min", Order::Asc),
                    Sort::PriceDesc => ("price_max", Order::Desc),
                    Sort::Rating => ("rating", Order::Desc),
                    Sort::Sales => ("sales", Order::Desc),
                    Sort::Newest | Sort::Relevance => ("created", Order::Desc),
                };
                let ordered = page.order_by_fast_field::<u64>(field, order);
                let (top, total, counts) = searcher.search(&combined, &(ordered, Count, facets))?;
                (top.into_iter().map(|(_, a)| a).collect(), total, counts)
            }
        };
        let mut ids = Vec::with_capacity(addresses.len());
        let mut cards = Vec::with_capacity(addresses.len());
        for address in addresses {
            let doc: TantivyDocument = searcher.doc(address)?;
            if let Some(id) = doc.get_first(f.id).and_then(|v| v.as_str()) {
                ids.push(id.to_string());
                let card = doc.get_first(f.card).and_then(|v| v.as_str());
                cards.push(card.unwrap_or_default().to_string());
            }
        }
        let categories = counts
            .get("/category")
            .map(|(facet, n)| (facet.to_path().join("/"), n))
            .map(|(path, n)| (path.trim_start_matches("category/").to_string(), n))
            .collect();
        let sellers = counts
            .get("/seller")
            .map(|(facet, n)| (facet.to_path().last().map(|s| s.to_string()), n))
            .filter_map(|(s, n)| s.map(|s| (s, n)))
            .collect();
        Ok(Hits {
            total,
            ids,
            cards,
            categories,
            sellers,
        })
    }
}

/// A product's search document from the read model, or `None` if it is not on sale.
///
/// # Errors
/// If SQLite fails.
pub fn product_doc(
    conn: &rusqlite::Connection,
    id: &str,
) -> Result<Option<ProductDoc>, rusqlite::Error> {
    let row = conn
        .query_row(
            "SELECT height, idx, org, category, title_zh, title_en, description_zh, \
             description_en, attributes, rating_sum, rating_count, sold, status \
             FROM products WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                    r.get::<_, String>(7)?,
                    r.get::<_, String>(8)?,
                    r.get::<_, i64>(9)?,
                    r.get::<_, i64>(10)?,
                    r.get::<_, i64>(11)?,
                    r.get::<_, String>(12)?,
                ))
            },
        )
        .optional()?;
    let Some((height, idx, seller, category, tz, te, dz, de, attrs, sum, count, sold, status)) =
        row
    else {
        return Ok(None);
    };
    if status != "listed" {
        return Ok(None);
    }
    let (price_min, price_max, available): (Option<i64>, Option<i64>, Option<i64>) = conn
        .query_row(
            "SELECT MIN(price), MAX(price), SUM(MIN(available, ?2)) FROM variants WHERE product = ?1",
            rusqlite::params![id, STOCK_SUMMED_MAX],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
    let attributes = serde_json::from_str::<Vec<serde_json::Value>>(&attrs)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|a| {
            Some((
                a.get("name")?.as_str()?.to_string(),
                a.get("value")?.as_str()?.to_string(),
            ))
        })
        .collect();
    let unsigned = |n: Option<i64>| n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
    let created = unsigned(Some(height)) << 32 | unsigned(Some(idx));
    let card = crate::card::summary(conn, id)?
        .map(|card| card.to_string())
        .unwrap_or_default();
    Ok(Some(ProductDoc {
        id: id.to_string(),
        created,
        seller,
        category,
        title_zh: tz,
        title_en: te,
        description_zh: dz,
        description_en: de,
        attributes,
        price_min: unsigned(price_min),
        price_max: unsigned(price_max),
        available: unsigned(available),
        rating_milli: if count > 0 {
            unsigned(Some(sum)) * 1000 / unsigned(Some(count))
        } else {
            0
        },
        sales: unsigned(Some(sold)),
        card,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(id: &str, category: &str, zh: &str, en: &str, price: u64, available: u64) -> ProductDoc {
        let (height, idx) = id.split_once('-').expect("id");
        ProductDoc {
            id: id.to_string(),
            created: height.parse::<u64>().expect("height") << 32
                | idx.parse::<u64>().expect("idx"),
            seller: if category == "books" { "shop2" } else { "shop" }.to_string(),
            category: category.to_string(),
            title_zh: zh.to_string(),
            title_en: en.to_string(),
            price_min: price,
            price_max: price,
            available,
            ..ProductDoc::default()
        }
    }

    fn catalogue() -> Search {
        let search = Search::in_memory().expect("search");
        for d in [
            doc(
                "1-0",
                "electronics/audio",
                "无线蓝牙耳机 降噪",
                "Wireless bluetooth headphones, noise cancelling",
                59_900,
                10,
            ),
            doc(
                "1-1",
                "electronics/audio",
                "有线耳机",
                "Wired earphones",
                9_900,
                0,
            ),
            doc(
                "2-0",
                "electronics/audio",
                "蓝牙音箱",
                "Bluetooth speaker",
                19_900,
                5,
            ),
            doc(
                "2-1",
                "electronics/phones",
                "智能手机",
                "Smartphone with a big screen",
                299_900,
                3,
            ),
            doc(
                "3-0",
                "books",
                "三体",
                "The Three-Body Problem, a novel",
                4_500,
                100,
            ),
            doc(
                "3-1",
                "food/tea",
                "西湖龙井茶叶",
                "West Lake Longjing green tea",
                12_800,
                7,
            ),
        ] {
            search.upsert(&d).expect("upsert");
        }
        search.commit(3).expect("commit");
        search
    }

    fn ids(search: &Search, query: Query) -> Vec<String> {
        search
            .search(&Query { limit: 10, ..query })
            .expect("search")
            .ids
    }

    fn text(text: &str) -> Query {
        Query {
            text: text.to_string(),
            ..Query::default()
        }
    }

    #[test]
    fn chinese_and_english_words_find_the_headphones() {
        let search = catalogue();
        let both = ids(&search, text("蓝牙耳机"));
        assert_eq!(
            both[0], "1-0",
            "蓝牙耳机: the bluetooth headphones first: {both:?}"
        );
        assert!(both.contains(&"1-1".to_string()) && both.contains(&"2-0".to_string()));
        let earphones = ids(&search, text("耳机"));
        assert_eq!(
            earphones.iter().collect::<std::collections::BTreeSet<_>>(),
            ["1-0".to_string(), "1-1".to_string()].iter().collect(),
            "耳机: the two headphones: {earphones:?}"
        );
        let english = ids(&search, text("bluetooth headphones"));
        assert_eq!(english[0], "1-0", "{english:?}");
        // Stemming: "headphone" and "speakers" find their plural and singular.
        assert_eq!(ids(&search, text("headphone")), ["1-0"]);
        assert_eq!(ids(&search, text("speakers")), ["2-0"]);
        assert_eq!(ids(&search, text("龙井")), ["3-1"]);
        assert!(ids(&search, text("冰箱 refrigerator")).is_empty());
        // Query syntax is text: it neither fails nor escapes the fields.
        assert_eq!(ids(&search, text("title_en:(tea")), ["3-1"]);
    }

    #[test]
    fn filters_facets_sorting_and_pages() {
        let search = catalogue();
        let audio = Query {
            category: Some("electronics/audio".into()),
            ..Query::default()
        };
        let mut found = ids(&search, audio.clone());
        found.sort();
        assert_eq!(found, ["1-0", "1-1", "2-0"]);
        let electronics = search
            .search(&Query {
                category: Some("electronics".into()),
                limit: 10,
                ..Query::default()
            })
            .expect("search");
        assert_eq!(electronics.total, 4, "a category takes its subcategories");
        let in_stock = ids(
            &search,
            Query {
                in_stock: true,
                sort: Sort::PriceAsc,
                ..audio.clone()
            },
        );
        assert_eq!(in_stock, ["2-0", "1-0"], "the wired ones are sold out");
        let cheap = ids(
            &search,
            Query {
                price_min: Some(5_000),
                price_max: Some(20_000),
                sort: Sort::PriceDesc,
                ..Query::default()
            },
        );
        assert_eq!(cheap, ["2-0", "3-1", "1-1"]);
        let newest = ids(
            &search,
            Query {
                sort: Sort::Newest,
                ..Query::default()
            },
        );
        assert_eq!(newest, ["3-1", "3-0", "2-1", "2-0", "1-1", "1-0"]);
        let page = search
            .search(&Query {
                sort: Sort::Newest,
                offset: 2,
                limit: 2,
                ..Query::default()
            })
            .expect("page");
        assert_eq!(
            (page.total, page.ids),
            (6, vec!["2-1".into(), "2-0".into()])
        );
        let all = search
            .search(&Query {
                limit: 1,
                ..Query::default()
            })
            .expect("facets");
        assert!(
            all.categories.contains(&("electronics".into(), 4)),
            "{:?}",
            all.categories
        );
        assert!(
            all.categories.contains(&("books".into(), 1)),
            "{:?}",
            all.categories
        );
        let sellers: u64 = all.sellers.iter().map(|(_, n)| n).sum();
        assert_eq!(sellers, 6);
        let shop = ids(
            &search,
            Query {
                seller: Some("shop2".into()),
                ..Query::default()
            },
        );
        assert_eq!(shop, ["3-0"], "only the book is shop2's");
    }

    #[test]
    fn an_update_or_a_removal_is_found_after_the_next_commit() {
        let search = catalogue();
        let mut tea = doc(
            "3-1",
            "food/tea",
            "西湖龙井茶叶",
            "Organic Longjing tea",
            12_800,
            7,
        );
        tea.title_en = "Organic Longjing tea".into();
        search.upsert(&tea).expect("upsert");
        search.remove("3-0");
        assert_eq!(
            ids(&search, text("organic")),
            Vec::<String>::new(),
            "not before the commit"
        );
        search.commit(4).expect("commit");
        assert_eq!(ids(&search, text("organic")), ["3-1"]);
        assert!(
            ids(&search, text("三体")).is_empty(),
            "a removed product is not found"
        );
        assert_eq!(
            search
                .search(&Query {
                    limit: 10,
                    ..Query::default()
                })
                .expect("all")
                .total,
            5
        );
        assert_eq!(search.committed_height().expect("height"), Some(4));
        assert_eq!(search.searched_height(), Some(4));
    }

    #[test]
    fn queries_out_of_bounds_are_refused() {
        let search = catalogue();
        for bad in [
            Query {
                limit: 0,
                ..Query::default()
            },
            Query {
                limit: PAGE_SIZE_MAX + 1,
                ..Query::default()
            },
            Query {
                limit: 10,
                offset: RESULT_DEPTH_MAX,
                ..Query::default()
            },
            Query {
                limit: 10,
                text: "耳".repeat(100),
                ..Query::default()
            },
        ] {
            assert!(
                matches!(search.search(&bad), Err(SearchError::BadQuery(_))),
                "{bad:?}"
            );
        }
        assert!("cheapest".parse::<Sort>().is_err());
    }
}
