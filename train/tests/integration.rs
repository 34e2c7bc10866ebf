//! The trainer's integration tests, one module per subject, linked as one test binary (one link of
//! libtorch and the engine instead of one per file). Tests that run the network in this process
//! take turns at libtorch's process-wide state ([`common::serial`]).

mod common;

mod accelerator;
mod pictures;
mod train;
