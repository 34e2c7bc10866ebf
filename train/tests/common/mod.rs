//! What the trainer's test modules share: the bundled fixtures as small shards, and turns at
//! libtorch's process-wide state.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

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

/// libtorch's random generator (dropout, initialisation) and thread pool are process-wide: tests
/// that run the network in this process take turns, or one test's draws would land in another's.
static SERIAL: Mutex<()> = Mutex::new(());

/// The calling test's turn at libtorch, until the guard drops (a failed test's turn passes on).
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
