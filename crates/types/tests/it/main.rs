//! Property tests of every decoder of untrusted bytes in `consort-types`: transactions, blocks,
//! governance actions, sealed envelopes, peg records, bounded blobs and lists, and the text forms
//! (hex, JSON, genesis) that the API and config files parse.
//!
//! Each decoder is held to three properties: random bytes are refused or decoded without a
//! panic; a valid encoding, mutated, is refused or decodes to a value that re-encodes to exactly
//! the bytes decoded (no two byte strings decode to the same value, so a transaction has one
//! hash); and any valid value encodes and decodes back to itself.

mod block;
mod codec;
mod records;
mod strategies;
mod text;
mod tx;
