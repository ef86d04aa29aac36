//! A Consort full node: authenticated p2p, the validator stack, transaction gossip and the
//! HTTP/WebSocket API.

pub mod api;
pub mod changelog;
pub mod commerce;
pub mod config;
pub mod format;
pub mod gossip;
pub mod gov;
pub mod node;
pub mod observer;
pub mod peg;
pub mod private;
pub mod serve;
pub mod shared;

pub use config::NodeConfig;
pub use node::run;
