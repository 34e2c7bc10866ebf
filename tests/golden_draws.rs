//! Golden augmentation draws: the crop offsets, mirror and lighting α of a few (seed, epoch, record)
//! triples, and the first elements of a few epoch permutations, pinned to the values this code
//! produced when the test was written (2026-12-01: `rand` 0.10.4 and its ChaCha8, `rand_distr` 0.6.0).
//!
//! If this test fails, every user's batches for a given seed have changed: a dependency upgrade
//! (`rand`, `rand_distr`, the ChaCha generator), a changed seed derivation (`seed::mix64`,
//! `sampler::rng_for`) or a changed order of draws. Runs that were reproducible across versions no
//! longer are. Do not just paste the new values: decide whether that break is intended, say so in
//! the changelog, and only then update the goldens.

use std::sync::Arc;

use alexpipe::sampler::{train_params, Sampler};
use alexpipe::{Dataset, Loader, LoaderConfig, Mode};

use crate::common;

/// (seed, epoch, record) → (x, y, flip, α) for size 256, crop 224, flip 0.5, σ 0.1 (the paper's).
#[allow(clippy::type_complexity)]
const GOLDEN_PARAMS: [((u64, u64, usize), (u32, u32, bool, [f32; 3])); 5] = [
    (
        (0, 0, 0),
        (28, 7, false, [-0.110732496, 0.18637587, -0.0605506]),
    ),
    (
        (0, 0, 1),
        (24, 6, false, [-0.040749747, -0.06106914, 0.1265949]),
    ),
    (
        (0, 1, 0),
        (10, 20, true, [-0.07957378, -0.11447551, -0.03171375]),
    ),
    (
        (7, 3, 123),
        (14, 14, false, [0.10117526, -0.021463938, -0.104365684]),
    ),
    (
        (42, 9, 999),
        (0, 3, false, [0.07885867, -0.055831578, -0.13421573]),
    ),
];

/// (seed, epoch) → the first 8 indices of the shuffled order of 1,000 records.
const GOLDEN_ORDER: [((u64, u64), [usize; 8]); 3] = [
    ((0, 0), [767, 457, 512, 606, 329, 612, 891, 748]),
    ((0, 1), [83, 341, 325, 706, 755, 10, 114, 722]),
    ((42, 9), [788, 398, 593, 396, 246, 385, 438, 87]),
];

#[test]
fn sampler_draws_match_the_golden_values() {
    for &((seed, epoch, i), (x, y, flip, alpha)) in &GOLDEN_PARAMS {
        let p = train_params(seed, epoch, i, 256, 224, 0.5, 0.1);
        // Exact, α included: the same generator and the same f32 arithmetic give the same bits.
        assert_eq!(
            (p.x, p.y, p.flip, p.alpha),
            (x, y, flip, alpha),
            "draws of (seed {seed}, epoch {epoch}, record {i}) changed: every user's batches changed"
        );
    }
    for &((seed, epoch), first) in &GOLDEN_ORDER {
        let s = Sampler {
            len: 1000,
            shuffle: true,
            seed,
            rank: 0,
            world_size: 1,
        };
        assert_eq!(
            s.epoch_indices(epoch)[..8],
            first,
            "order of (seed {seed}, epoch {epoch}) changed: every user's epochs changed"
        );
    }
}

/// The loader serves exactly the sampler's draws (its debug parameters), so the goldens above pin
/// what the engine does, not only a helper it might stop calling.
#[test]
fn the_loader_uses_the_sampler_draws() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("ds");
    common::build_fixtures(&out, 64, Mode::Raw, 8, None);
    let ds = Arc::new(Dataset::open(&out).expect("open"));
    let config = LoaderConfig {
        batch_size: 4,
        crop: 48,
        threads: 2,
        seed: 7,
        ..LoaderConfig::default()
    };
    let mut loader = Loader::new(ds.clone(), config).expect("loader");
    loader.set_epoch(3);
    let order = Sampler {
        len: ds.len(),
        shuffle: true,
        seed: 7,
        rank: 0,
        world_size: 1,
    }
    .epoch_indices(3);
    let mut served = Vec::new();
    for batch in loader.iter() {
        let batch = batch.expect("batch");
        for (&i, p) in batch.indices().iter().zip(batch.params()) {
            assert_eq!(*p, train_params(7, 3, i, 64, 48, 0.5, 0.1), "record {i}");
            served.push(i);
        }
    }
    assert_eq!(served, order[..served.len()], "the epoch's order");
    assert_eq!(served.len(), ds.len() / 4 * 4);
}
