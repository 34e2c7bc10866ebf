//! The library's integration tests, one module per subject, linked as one test binary (one link of
//! the library and its format crates instead of one per file). Tests that measure or change the
//! whole process (its allocator, threads, memory or limits) are in `process.rs`.

mod common;

mod dataset;
mod fuzz_regressions;
mod golden_draws;
mod hdf5;
mod loader;
mod merge;
mod reliability;
mod resume;
