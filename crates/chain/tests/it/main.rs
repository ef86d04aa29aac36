//! Multi-validator tests on commonware's deterministic runtime and simulated network.

mod sim;
mod simulation;
