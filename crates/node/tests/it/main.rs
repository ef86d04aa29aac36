//! Tests of the node crate that need only its public items and the repository's files.

mod limits;
