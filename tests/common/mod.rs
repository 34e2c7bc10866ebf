//! Helpers shared by the integration-test binaries (`mod common;` in each root): the bundled fixtures,
//! building them, and reading a dataset's pixels back. Tests keep their own assertions; nothing here
//! checks anything beyond "this step worked". Not every binary uses every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use alexpipe::prep::ResizeCrop;
use alexpipe::{build, BuildConfig, BuildSummary, Dataset, Mode};

/// `fixtures/images`: 32 generated images in class folders, one of them a broken JPEG.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/images")
}

/// A build configuration of the fixtures into `out`: records of `size` pixels, `mode`, and
/// `shard_size` records per shard (threads: the default).
pub fn fixtures_config(out: &Path, size: u32, mode: Mode, shard_size: u64) -> BuildConfig {
    let mut cfg = BuildConfig::new(fixtures(), out);
    cfg.size = size;
    cfg.mode = mode;
    cfg.shard_size = shard_size;
    cfg
}

/// Builds the fixtures into `out` (see [`fixtures_config`]) with `threads` build threads.
pub fn build_fixtures(
    out: &Path,
    size: u32,
    mode: Mode,
    shard_size: u64,
    threads: Option<usize>,
) -> BuildSummary {
    let mut cfg = fixtures_config(out, size, mode, shard_size);
    cfg.threads = threads;
    build(&cfg, &|_| {}).expect("build fixtures")
}

/// Every record's resized pixels (`size`×`size`×3 HWC), or the error reading it.
pub fn read_all_pixels(ds: &Dataset) -> Vec<alexpipe::Result<Vec<u8>>> {
    let side = ds.size() as usize;
    let mut resize = ResizeCrop::new();
    (0..ds.len())
        .map(|i| {
            let mut buf = vec![0u8; side * side * 3];
            ds.read_pixels(i, &mut resize, &mut buf).map(|_| buf)
        })
        .collect()
}

/// Every record's pixels; panics if one does not read.
pub fn all_pixels(ds: &Dataset) -> Vec<Vec<u8>> {
    read_all_pixels(ds)
        .into_iter()
        .map(|r| r.expect("intact record"))
        .collect()
}

/// The pixels of record `i`.
pub fn pixels(ds: &Dataset, i: usize) -> Vec<u8> {
    let side = ds.size() as usize;
    let mut buf = vec![0u8; side * side * 3];
    ds.read_pixels(i, &mut ResizeCrop::new(), &mut buf)
        .expect("pixels");
    buf
}

/// Whether tests run in CI (`CI` set to anything but empty, `0` or `false`): there a test whose
/// precondition is missing must fail rather than skip, or a broken environment shows as green.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false")
}
