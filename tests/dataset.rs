//! The shard writer and reader against each other on the bundled fixtures: every mode round-trips,
//! `verify` and lazy record checksums catch damage and name the file, and builds are independent of
//! the thread count.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use alexpipe::{build, Dataset, Mode};

use crate::common::{all_pixels, fixtures_config};

fn build_to(out: &Path, mode: Mode, threads: usize) -> alexpipe::BuildSummary {
    let mut cfg = fixtures_config(out, 64, mode, 5);
    cfg.threads = Some(threads);
    let calls = AtomicU64::new(0);
    let summary = build(&cfg, &|n| {
        calls.fetch_add(n, Ordering::Relaxed);
    })
    .expect("fixtures build");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        summary.inputs,
        "progress is reported for every input"
    );
    summary
}

#[test]
fn every_mode_round_trips_and_original_mode_reproduces_raw_pixels() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raw_dir = dir.path().join("raw");
    let summary = build_to(&raw_dir, Mode::Raw, 2);
    assert_eq!(
        summary.info.num_records + summary.info.rejected,
        summary.inputs
    );
    assert_eq!(
        summary.rejects.len(),
        1,
        "the fixtures hold exactly one broken file"
    );
    let raw = Dataset::open(&raw_dir).expect("open raw");
    assert_eq!(raw.verify().expect("verify raw"), raw.len() as u64);
    let manifest = alexpipe::shards::Manifest::read(&raw_dir).expect("manifest");
    assert_eq!(manifest.shards.len(), raw.len().div_ceil(5));
    let raw_pixels = all_pixels(&raw);

    let orig_dir = dir.path().join("original");
    build_to(&orig_dir, Mode::Original, 2);
    let orig = Dataset::open(&orig_dir).expect("open original");
    orig.verify().expect("verify original");
    assert_eq!(
        all_pixels(&orig),
        raw_pixels,
        "read-time preprocessing equals build-time preprocessing"
    );

    let jpeg_dir = dir.path().join("jpeg");
    build_to(&jpeg_dir, Mode::Jpeg, 2);
    let jpeg = Dataset::open(&jpeg_dir).expect("open jpeg");
    jpeg.verify().expect("verify jpeg");
    for (a, b) in all_pixels(&jpeg).iter().zip(&raw_pixels) {
        let mad: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (x as f64 - y as f64).abs())
            .sum::<f64>()
            / a.len() as f64;
        // JPEG is lossy: at 64 px the fixtures' stripes and checkers are mostly edges, which 4:2:0
        // JPEG blurs, so against the raw pixels only a loose bound holds (garbage or swapped
        // channels are ~60 levels off). The decoding itself is checked exactly elsewhere:
        // tests/python/test_pixels_vs_pil.py compares these records bit for bit with Pillow's
        // decode (`test_jpeg_mode_decodes_bit_identically_to_pil_on_the_fixtures`) and byte for
        // byte with Pillow's encoder.
        assert!(
            mad < 25.0,
            "JPEG q90 record too far from the raw pixels: {mad}"
        );
    }
    for i in 0..raw.len() {
        assert_eq!(raw.label(i).ok(), jpeg.label(i).ok());
    }
    assert_eq!(
        raw.stats(),
        jpeg.stats(),
        "statistics come from the resized pixels in every mode"
    );
}

#[test]
fn thread_count_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let one = build_to(&dir.path().join("one"), Mode::Raw, 1);
    let two = build_to(&dir.path().join("two"), Mode::Raw, 2);
    let manifest =
        |name: &str| alexpipe::shards::Manifest::read(&dir.path().join(name)).expect("manifest");
    assert_eq!(
        manifest("one").shards,
        manifest("two").shards,
        "same bytes, same checksums"
    );
    assert_eq!(one.info.stats, two.info.stats);
    assert_eq!(manifest("one").stats, manifest("two").stats);
    let a = Dataset::open(dir.path().join("one")).expect("open");
    let b = Dataset::open(dir.path().join("two")).expect("open");
    assert_eq!(a.stats(), b.stats());
}

fn shard_path(ds_dir: &Path) -> PathBuf {
    ds_dir.join("shard-00000.bin")
}

#[test]
fn damage_is_detected_and_names_the_shard() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    build_to(&out, Mode::Raw, 2);
    let shard = shard_path(&out);
    let pristine = fs::read(&shard).expect("read shard");

    // One flipped bit in record 2's pixels: open succeeds (tables intact), the record and verify fail.
    let ds = Dataset::open(&out).expect("open");
    let offset = {
        let table = &pristine[64 + 2 * 32..64 + 3 * 32];
        u64::from_le_bytes(table[0..8].try_into().expect("8 bytes")) as usize
    };
    drop(ds);
    let mut damaged = pristine.clone();
    damaged[offset + 100] ^= 0x10;
    fs::write(&shard, &damaged).expect("write");
    let ds = Dataset::open(&out).expect("table and header are intact");
    assert!(ds.record(1).is_ok());
    let err = ds
        .record(2)
        .map(|_| ())
        .expect_err("checksum must fail")
        .to_string();
    assert!(
        err.contains("shard-00000.bin") && err.contains("checksum"),
        "{err}"
    );
    let err = ds
        .verify()
        .map(|_| ())
        .expect_err("verify must fail")
        .to_string();
    assert!(err.contains("shard-00000.bin"), "{err}");
    drop(ds);

    // A damaged header or table is caught at open.
    for at in [5usize, 64 + 8] {
        let mut damaged = pristine.clone();
        damaged[at] ^= 0xFF;
        fs::write(&shard, &damaged).expect("write");
        let err = Dataset::open(&out)
            .map(|_| ())
            .expect_err("must not open")
            .to_string();
        assert!(err.contains("shard-00000.bin"), "{err}");
    }

    // A truncated shard is caught at open, before anything is mapped past its end.
    fs::write(&shard, &pristine[..pristine.len() - 1000]).expect("write");
    let err = Dataset::open(&out)
        .map(|_| ())
        .expect_err("must not open")
        .to_string();
    assert!(
        err.contains("shard-00000.bin") && err.contains("truncated"),
        "{err}"
    );

    // No manifest: not a dataset.
    fs::write(&shard, &pristine).expect("write");
    assert!(Dataset::open(&out).is_ok());
    fs::remove_file(out.join("manifest.json")).expect("rm");
    let err = Dataset::open(&out)
        .map(|_| ())
        .expect_err("must not open")
        .to_string();
    assert!(err.contains("manifest.json"), "{err}");
}

#[test]
fn out_of_range_record_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    build_to(&dir.path().join("ds"), Mode::Raw, 1);
    let ds = Dataset::open(dir.path().join("ds")).expect("open");
    assert!(ds.record(ds.len()).is_err());
    assert!(ds.label(usize::MAX).is_err());
}
