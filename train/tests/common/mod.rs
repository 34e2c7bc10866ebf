//! What the trainer's test files share: the bundled fixtures as small shards.

use std::path::{Path, PathBuf};

use alexpipe::BuildConfig;

/// The fixtures as 72×72 shards in `dir` (31 images, 4 classes).
pub fn small_dataset(dir: &Path) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/images");
    let out = dir.join("fixtures-72");
    let mut cfg = BuildConfig::new(fixtures, &out);
    cfg.size = 72;
    alexpipe::build(&cfg, &|_| {}).expect("fixtures build");
    out
}
