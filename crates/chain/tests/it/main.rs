//! Multi-validator tests on commonware's deterministic runtime and simulated network.

mod epochs;
mod equivocator;
mod gov;
mod harness;
mod ledger;
mod peg;
mod sim;
mod simulation;
