//! Consort's light client, for wallets, the CLI and anyone who trusts only the genesis
//! document: [`light`] checks an account's value against a finalized header, the
//! finalization certificates of every committee from genesis to that header, and the header's
//! state root. It depends on the types, the state's value layout and the validator schedule,
//! never on consensus or a node.

pub mod light;

pub use light::{AccountEvidence, LightError, Verified, verify_account, verify_header};
