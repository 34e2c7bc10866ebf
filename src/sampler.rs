//! The order of an epoch: sequential, or a random permutation derived from (seed, epoch) alone;
//! split across distributed ranks like PyTorch's `DistributedSampler`; and the per-sample random
//! draws of §4.1, derived from (seed, epoch, index) alone — never from a shared or thread-local
//! stream — so a batch is bit-identical whatever the thread count or timing.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::augment::{draw_alpha, SampleParams};

use crate::seed::mix64 as mix;

/// A generator for one purpose, keyed by (seed, epoch, stream).
pub fn rng_for(seed: u64, epoch: u64, stream: u64) -> ChaCha8Rng {
    let key = mix(mix(mix(seed ^ 0x616c_6578_7069_7065) ^ epoch) ^ stream);
    ChaCha8Rng::seed_from_u64(key)
}

/// Stream id of the epoch permutation (sample streams are the dataset indices).
const PERMUTATION_STREAM: u64 = u64::MAX;

/// Which records an epoch visits, in which order, on this rank.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampler {
    /// Records in the dataset.
    pub len: usize,
    /// Random permutation per epoch (else sequential).
    pub shuffle: bool,
    /// Seed of every random choice.
    pub seed: u64,
    /// This process's rank in `0..world_size`.
    pub rank: usize,
    /// Number of ranks.
    pub world_size: usize,
}

impl Sampler {
    /// Number of indices [`Sampler::epoch_indices`] returns.
    pub fn samples_per_rank(&self) -> usize {
        self.samples_per_rank_from(0)
    }

    /// Number of indices [`Sampler::indices_from`] returns for `start`: this rank's share of the
    /// epoch's global order from position `start` on (padded as [`Sampler::indices_from`] says).
    pub fn samples_per_rank_from(&self, start: usize) -> usize {
        let rest = self.len - start.min(self.len);
        match self.world_size.max(1) {
            1 => rest,
            world => rest.div_ceil(world),
        }
    }

    /// The epoch's global order: every record once, in a random permutation derived from
    /// (seed, epoch) alone (Fisher–Yates), or sequential.
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len).collect();
        if self.shuffle {
            let mut rng = rng_for(self.seed, epoch, PERMUTATION_STREAM);
            // Fisher–Yates.
            for i in (1..order.len()).rev() {
                let j = rng.random_range(0..=i);
                order.swap(i, j);
            }
        }
        order
    }

    /// The record indices of `epoch` for this rank. With several ranks, the epoch's order is padded
    /// by repeating its first indices until it divides evenly (as PyTorch's `DistributedSampler`
    /// with `drop_last=False`), then rank r takes positions r, r + world, r + 2·world, …: the ranks'
    /// parts are equal, disjoint up to the padding, and together cover the epoch.
    pub fn epoch_indices(&self, epoch: u64) -> Vec<usize> {
        self.indices_from(epoch, 0)
    }

    /// This rank's part of the rest of `epoch` once the first `start` positions of its global order
    /// ([`Sampler::epoch_order`]) are consumed: the positions `start..len` are split as
    /// [`Sampler::epoch_indices`] splits a whole epoch — rank r takes `start + r`, `start + r +
    /// world`, … — after padding them to a multiple of `world` with the epoch's first indices
    /// (position `len + k` is position `k`, exactly the padding of an uninterrupted epoch). So
    /// `start = 0` is [`Sampler::epoch_indices`]; a `start` that is a multiple of `world` (a resume
    /// under the same world size) gives each rank exactly the tail of its uninterrupted part; any
    /// other world size splits the rest among its ranks, each record of it once, plus at most
    /// `world - 1` padding repeats. `start ≥ len`: nothing is left.
    pub fn indices_from(&self, epoch: u64, start: usize) -> Vec<usize> {
        let order = self.epoch_order(epoch);
        let start = start.min(self.len);
        let world = self.world_size.max(1);
        if world == 1 {
            return order[start..].to_vec();
        }
        let end = start + self.samples_per_rank_from(start) * world;
        (start + self.rank..end)
            .step_by(world)
            .map(|p| {
                order[if p < self.len {
                    p
                } else {
                    (p - self.len) % self.len
                }]
            })
            .collect()
    }
}

/// The augmentation parameters of one training sample: crop offsets uniform over all
/// `(size - crop + 1)²` positions, a mirror with probability `flip_p`, and lighting coefficients
/// α ~ N(0, σ) (σ = 0 disables lighting), all from (seed, epoch, index).
pub fn train_params(
    seed: u64,
    epoch: u64,
    index: usize,
    size: u32,
    crop: u32,
    flip_p: f64,
    sigma: f32,
) -> SampleParams {
    let mut rng = rng_for(seed, epoch, index as u64);
    let span = size - crop;
    let x = rng.random_range(0..=span);
    let y = rng.random_range(0..=span);
    let flip = rng.random_bool(flip_p.clamp(0.0, 1.0));
    let alpha = draw_alpha(&mut rng, sigma);
    SampleParams {
        x,
        y,
        w: crop,
        h: crop,
        flip,
        alpha,
        draws: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permutation_depends_on_seed_and_epoch_only() {
        let s = Sampler {
            len: 1000,
            shuffle: true,
            seed: 7,
            rank: 0,
            world_size: 1,
        };
        let e0 = s.epoch_indices(0);
        assert_eq!(e0, s.epoch_indices(0));
        assert_ne!(e0, s.epoch_indices(1));
        assert_ne!(e0, Sampler { seed: 8, ..s }.epoch_indices(0));
        let mut sorted = e0.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<_>>());
        let seq = Sampler {
            shuffle: false,
            ..s
        };
        assert_eq!(seq.epoch_indices(3), (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn ranks_are_equal_disjoint_and_cover_the_epoch() {
        for (len, world) in [(10, 2), (10, 3), (7, 4), (1000, 8)] {
            let parts: Vec<Vec<usize>> = (0..world)
                .map(|rank| {
                    Sampler {
                        len,
                        shuffle: true,
                        seed: 1,
                        rank,
                        world_size: world,
                    }
                    .epoch_indices(5)
                })
                .collect();
            let per = len.div_ceil(world);
            assert!(parts.iter().all(|p| p.len() == per));
            let s = Sampler {
                len,
                shuffle: true,
                seed: 1,
                rank: 0,
                world_size: world,
            };
            assert_eq!(s.samples_per_rank(), per);
            let mut all: Vec<usize> = parts.concat();
            all.sort();
            let padding = per * world - len;
            all.dedup();
            assert_eq!(all, (0..len).collect::<Vec<_>>(), "cover");
            // Disjoint up to the padding: exactly `padding` indices appear twice.
            assert_eq!(parts.concat().len() - len, padding);
        }
    }

    #[test]
    fn train_params_are_deterministic_and_in_range() {
        let a = train_params(3, 1, 42, 256, 224, 0.5, 0.1);
        assert_eq!(a, train_params(3, 1, 42, 256, 224, 0.5, 0.1));
        assert_ne!(a, train_params(3, 2, 42, 256, 224, 0.5, 0.1));
        let mut xs = std::collections::HashSet::new();
        let mut flips = 0;
        let mut alphas = Vec::new();
        for i in 0..20_000 {
            let p = train_params(3, 1, i, 256, 224, 0.5, 0.1);
            assert!(p.x <= 32 && p.y <= 32);
            xs.insert((p.x, p.y));
            flips += p.flip as usize;
            alphas.push(p.alpha[0] as f64);
        }
        assert_eq!(xs.len(), 33 * 33, "every position is reachable");
        assert!((9_500..10_500).contains(&flips), "{flips}");
        let n = alphas.len() as f64;
        let mean = alphas.iter().sum::<f64>() / n;
        let sd = (alphas.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / n).sqrt();
        assert!(
            mean.abs() < 0.005 && (sd - 0.1).abs() < 0.005,
            "{mean} {sd}"
        );
        assert!(!train_params(3, 1, 0, 256, 224, 0.0, 0.0).flip);
        assert_eq!(train_params(3, 1, 0, 256, 224, 1.0, 0.0).alpha, [0.0; 3]);
        assert!(train_params(3, 1, 0, 256, 224, 1.0, 0.0).flip);
    }
}
