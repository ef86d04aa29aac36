//! Integration tests of `consort-node`'s pure parts and the repository's files.

mod api_bodies;
mod limits;
