//! Helpers shared by the benchmarks.

use std::path::PathBuf;

/// The value after `--name` on the command line, or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `--smoke`: the same work on a tiny corpus, once, in separate directories (`*-smoke`): a check
/// that the benchmark runs (CI, `scripts/test.sh`), not a measurement.
pub fn smoke() -> bool {
    std::env::args().any(|a| a == "--smoke")
}
