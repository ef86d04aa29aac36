//! Integration tests of `consort-node`'s pure parts.

mod api_bodies;
