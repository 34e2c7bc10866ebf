//! The RandomResizedCrop recipe's batch shapes: multi-view batches and progressive resizing, whose
//! pooled buffers change size from epoch to epoch without growing the process's memory.

use std::sync::Arc;

use alexpipe::{Augmentations, Dataset, Loader, LoaderConfig, Mode, ProgressiveResize};

use crate::common;

fn dataset() -> (tempfile::TempDir, Arc<Dataset>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("raw");
    common::build_fixtures(&out, 64, Mode::Raw, 8, None);
    let ds = Arc::new(Dataset::open(&out).expect("open"));
    (dir, ds)
}

/// Resident set size of this process, bytes (Linux `/proc/self/statm`, pages of 4 KiB).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("resident pages");
    pages * 4096
}

#[test]
fn progressive_resizing_follows_the_schedule_and_memory_stays_bounded() {
    let _alone = crate::alone();
    let (_dir, ds) = dataset();
    let schedule = ProgressiveResize {
        min: 96,
        max: 320,
        start_epoch: 0,
        end_epoch: 9,
        multiple: 32,
    };
    let config = LoaderConfig {
        batch_size: 8,
        crop: 224,
        threads: 2,
        prefetch: 4,
        augment: Augmentations {
            progressive: Some(schedule),
            ..Augmentations::default()
        },
        ..LoaderConfig::rrc()
    };
    let mut loader = Loader::new(ds, config).expect("loader");
    let mut after_round = Vec::new();
    // Two rounds of the 10 epochs: the sides grow 96 → 320, drop back, grow again.
    for _round in 0..2 {
        for epoch in 0..10 {
            loader.set_epoch(epoch);
            let side = schedule.size(epoch) as usize;
            assert_eq!(loader.output_side() as usize, side);
            for batch in loader.iter() {
                let batch = batch.expect("batch");
                assert_eq!(batch.shape(), [8, 3, side, side], "epoch {epoch}");
                assert_eq!(batch.images_f32().expect("f32").len(), 8 * 3 * side * side);
            }
        }
        after_round.push(rss());
    }
    let sides: Vec<u32> = (0..10).map(|e| schedule.size(e)).collect();
    assert_eq!(sides.first(), Some(&96));
    assert_eq!(sides.last(), Some(&320));
    // A 320 px f32 batch of 8 is 9.8 MB; a loader that leaked a buffer per batch, or kept one
    // per size, would grow by over 100 MB over the second round (30 batches). The pool's buffers
    // keep the largest capacity; the bound leaves room for the pool to gain a buffer or two when
    // timing lets more batches be in flight.
    let grown = after_round[1].saturating_sub(after_round[0]);
    eprintln!(
        "RSS after round 1: {} MB, round 2: {} MB",
        after_round[0] >> 20,
        after_round[1] >> 20
    );
    assert!(
        grown < 32 << 20,
        "RSS grew by {} MB over the second round",
        grown >> 20
    );
    // Evaluation uses `crop`, whatever the epoch.
    let eval = Loader::new(
        loader.dataset().clone(),
        LoaderConfig {
            train: false,
            ..loader.config().clone()
        },
    )
    .expect("eval loader");
    assert_eq!(eval.output_side(), 224);
}

#[test]
fn multi_view_batches_hold_independent_views_of_each_record() {
    let _alone = crate::alone();
    let (_dir, ds) = dataset();
    let config = |views, threads| LoaderConfig {
        batch_size: 4,
        crop: 48,
        threads,
        shuffle: true,
        seed: 3,
        augment: Augmentations {
            views,
            ..Augmentations::default()
        },
        ..LoaderConfig::rrc()
    };
    let single: Vec<_> = Loader::new(ds.clone(), config(1, 2))
        .expect("loader")
        .iter()
        .map(|b| b.expect("batch"))
        .collect();
    let two: Vec<_> = Loader::new(ds.clone(), config(2, 2))
        .expect("loader")
        .iter()
        .map(|b| b.expect("batch"))
        .collect();
    let two_again: Vec<_> = Loader::new(ds, config(2, 1))
        .expect("loader")
        .iter()
        .map(|b| b.expect("batch"))
        .collect();
    assert_eq!(single.len(), two.len());
    let per_image = 3 * 48 * 48;
    for ((one, both), again) in single.iter().zip(&two).zip(&two_again) {
        assert_eq!(both.shape(), [8, 3, 48, 48]);
        assert_eq!(both.indices(), one.indices());
        assert_eq!(both.images_f32(), again.images_f32(), "any thread count");
        let (a, b) = (
            one.images_f32().expect("f32"),
            both.images_f32().expect("f32"),
        );
        for r in 0..4 {
            // One label per view; view 0 is the single-view loader's image, view 1 its own.
            assert_eq!(both.labels()[2 * r], one.labels()[r]);
            assert_eq!(both.labels()[2 * r + 1], one.labels()[r]);
            let view = |v: usize| &b[(2 * r + v) * per_image..(2 * r + v + 1) * per_image];
            assert_eq!(view(0), &a[r * per_image..(r + 1) * per_image]);
            assert_ne!(view(1), view(0));
            assert_ne!(both.params()[2 * r], both.params()[2 * r + 1]);
        }
    }
}
