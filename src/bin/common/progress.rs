//! The progress bar the command-line tools show while images go through (shared by the binaries
//! with `#[path]`; not a binary of its own).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` images, or a hidden one when `quiet`.
pub fn images_bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} images  {per_sec}  ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}
