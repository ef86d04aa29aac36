//! Consort's marketplace read side. The indexer follows a node's finalized blocks by height
//! (`/v1/blocks/{h}/raw` for the transactions, `/v1/blocks/{h}/changes` for the shop records
//! each block changed) and keeps a read model of the shop in SQLite: products with every
//! version of their content, variants' price and stock, orders with their lines and
//! timeline, shipments with the carriers' events, reviews with their versions and replies,
//! sellers' ratings, payouts.
//!
//! Each block is applied in one SQLite transaction together with the cursor (its height and
//! hash), so an indexer killed at any point reopens at a block boundary and goes on; the same
//! blocks always give the same content, which [`Index::dump`] shows. The indexer trusts the
//! node it follows (run it beside your own node); it depends on the types and an HTTP client,
//! never on consensus or a node's internals.

pub mod api;
mod card;
pub mod carts;
pub mod follow;
pub mod model;
pub mod search;
pub mod service;
pub mod shop;
pub mod source;
pub mod views;

pub use follow::{FollowError, follow};
pub use model::{Index, IndexError};
pub use search::{Search, SearchError};
pub use service::Service;
pub use source::{Identity, Member, NodeSource, Source, SourceError};
