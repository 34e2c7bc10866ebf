//! Tests that measure or change the whole process, in a test binary of their own: a counting
//! global allocator (`zero_alloc`), the loader's threads (`loader_shutdown`), the resident memory
//! of changing batch shapes (`augment`) and the open-file limit (`open_files`). They take turns
//! ([`alone`]), so no other test's threads, allocations or memory land in what one measures.

use std::sync::{Mutex, MutexGuard};

mod common;

mod augment;
mod loader_shutdown;
mod open_files;
mod zero_alloc;

static TURN: Mutex<()> = Mutex::new(());

/// This process to the calling test alone until the guard drops (a failed test's turn passes on).
fn alone() -> MutexGuard<'static, ()> {
    TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
