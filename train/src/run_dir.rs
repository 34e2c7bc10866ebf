//! The files of a run directory (`train --out`), named in one place for the trainer, the picture
//! commands and the tests.

use std::path::{Path, PathBuf};

/// The checkpoint of the last completed epoch (or stop) in a run directory.
pub fn last_checkpoint(out: &Path) -> PathBuf {
    out.join("checkpoint.ot")
}

/// The checkpoint with the lowest validation error in a run directory.
pub fn best_checkpoint(out: &Path) -> PathBuf {
    out.join("best.ot")
}

/// The training curves a run redraws after every epoch (see [`crate::pictures::curves`]).
pub fn curves_png(out: &Path) -> PathBuf {
    out.join("curves.png")
}
