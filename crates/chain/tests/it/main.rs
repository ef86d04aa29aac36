//! Multi-validator tests on commonware's deterministic runtime and simulated network.

mod commerce;
mod commerce_peg;
mod epochs;
mod equivocator;
mod gov;
mod harness;
mod ledger;
mod light_client;
mod peg;
mod peg_federation;
mod peg_scale;
mod sim;
mod simulation;
mod store;
