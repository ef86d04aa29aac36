//! Every bound of the wire format in one place (listed in docs/limits.md).

/// Largest encoded transaction accepted anywhere (bytes): a deposit claim carries a main-chain
/// transaction and its merkle proof. Most calls are far smaller.
pub const TX_SIZE_MAX: usize = 96 * 1024;

/// Largest encoded block (bytes): proposers stop adding transactions before it.
pub const BLOCK_SIZE_MAX: usize = 8 * 1024 * 1024;

/// Largest gossip message of transactions (bytes).
pub const GOSSIP_SIZE_MAX: usize = 4 * 1024 * 1024;

/// Most transactions one block may carry.
pub const BLOCK_TXS_MAX: usize = 8192;

/// Most accounts funded in genesis.
pub const GENESIS_ACCOUNTS_MAX: usize = 100_000;

/// Most validators in a set. Every node keeps a p2p mailbox slot per possible peer and message
/// burst, so this bounds memory as well as BFT message cost.
pub const VALIDATORS_MAX: usize = 32;

/// How far ahead of an account's nonce the mempool keeps transactions.
pub const NONCE_WINDOW_MAX: u64 = 1024;

/// How far a block's timestamp may run ahead of a verifier's clock before it waits (ms).
pub const BLOCK_FUTURE_DRIFT_MS: u64 = 2_000;
