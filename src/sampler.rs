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
/// Stream id of the shard-aware order ([`shard_aware_order`]).
const SHARD_ORDER_STREAM: u64 = u64::MAX - 1;

/// How an epoch's global order is drawn when shuffling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// A permutation of every record ([`Sampler::epoch_order`]): each batch touches records all
    /// over the dataset.
    #[default]
    Global,
    /// The shards in a random order, then the records of each `window` consecutive shards of it
    /// shuffled together ([`shard_aware_order`]): a streaming cache then holds about `window`
    /// shards at a time instead of the whole dataset.
    Shards {
        /// Shards whose records are shuffled together (at least 1).
        window: usize,
    },
}

impl Order {
    /// The order's word in a loader state's recipe (`None` for the global order, so that states
    /// saved before shard-aware orders existed keep their words).
    pub fn word(self) -> Option<String> {
        match self {
            Order::Global => None,
            Order::Shards { window } => Some(format!("order=shards:{window}")),
        }
    }
}

/// The shard-aware order of an epoch over positions `0..len` of a loader's records, position `p`
/// being stored in unit (shard) `unit_of(p)`: the units are put in a random order, then cut into
/// runs of `window` units, and the positions of each run are shuffled together (Fisher–Yates), run
/// after run — all from (seed, epoch) alone, like [`Sampler::epoch_order`]. Every position comes
/// exactly once. A reader of this order needs about `window` shards at a time (two runs at a run's
/// boundary); within a run, records of different shards are mixed, as WebDataset's shuffle
/// buffer and MosaicML Streaming's shuffle blocks mix theirs.
pub fn shard_aware_order(
    seed: u64,
    epoch: u64,
    len: usize,
    window: usize,
    unit_of: &dyn Fn(usize) -> usize,
) -> Vec<usize> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    let mut slot: std::collections::HashMap<usize, usize> = std::collections::HashMap::new();
    for p in 0..len {
        let g = *slot.entry(unit_of(p)).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[g].push(p);
    }
    // The groups in the order their units first appear, so the draw does not depend on hashing.
    let mut rng = rng_for(seed, epoch, SHARD_ORDER_STREAM);
    let mut shuffled: Vec<usize> = (0..groups.len()).collect();
    fisher_yates(&mut shuffled, &mut rng);
    let mut order = Vec::with_capacity(len);
    for run in shuffled.chunks(window.max(1)) {
        let from = order.len();
        for &g in run {
            order.extend_from_slice(&groups[g]);
        }
        fisher_yates(&mut order[from..], &mut rng);
    }
    order
}

fn fisher_yates(items: &mut [usize], rng: &mut ChaCha8Rng) {
    for i in (1..items.len()).rev() {
        let j = rng.random_range(0..=i);
        items.swap(i, j);
    }
}

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
            fisher_yates(&mut order, &mut rng);
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
        self.split(&self.epoch_order(epoch), start)
    }

    /// This rank's part of `order` (an epoch's global order of `len` positions, such as
    /// [`shard_aware_order`]'s) from position `start` on, split and padded exactly as
    /// [`Sampler::indices_from`] splits [`Sampler::epoch_order`].
    pub fn split(&self, order: &[usize], start: usize) -> Vec<usize> {
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

    /// 103 records in shards of 10 (the last one short).
    fn unit_of(p: usize) -> usize {
        p / 10
    }

    #[test]
    fn shard_aware_order_is_a_deterministic_permutation_that_reads_few_shards_at_a_time() {
        let order = shard_aware_order(7, 3, 103, 2, &unit_of);
        assert_eq!(order, shard_aware_order(7, 3, 103, 2, &unit_of));
        assert_ne!(order, shard_aware_order(7, 4, 103, 2, &unit_of));
        assert_ne!(order, shard_aware_order(8, 3, 103, 2, &unit_of));
        let mut sorted = order.clone();
        sorted.sort();
        assert_eq!(sorted, (0..103).collect::<Vec<_>>(), "every record once");
        // Runs of two shards: at any point of the epoch, at most two shards are between their
        // first and last record (a cache of two shards serves it), and every shard's records
        // come together in one stretch.
        let mut span = [(usize::MAX, 0usize); 11];
        for (at, &p) in order.iter().enumerate() {
            let s = &mut span[unit_of(p)];
            *s = (s.0.min(at), s.1.max(at));
        }
        for at in 0..order.len() {
            let open = span.iter().filter(|(a, b)| (*a..=*b).contains(&at)).count();
            assert!(open <= 2, "{open} shards open at position {at}");
        }
        for (u, (a, b)) in span.iter().enumerate() {
            assert!(b - a < 20, "shard {u} spread over positions {a}..={b}");
        }
        // Records are mixed within a run, not read shard after shard.
        let first: std::collections::HashSet<usize> =
            order[..10].iter().map(|&p| unit_of(p)).collect();
        assert_eq!(first.len(), 2, "{:?}", &order[..10]);
        // Without shuffling, the loader never asks (the order is sequential); a window of one
        // shard reads shards one at a time, their records shuffled.
        let one = shard_aware_order(7, 3, 103, 1, &unit_of);
        for w in one.chunks(10).take(10) {
            let units: std::collections::HashSet<usize> = w.iter().map(|&p| unit_of(p)).collect();
            assert!(units.len() <= 2);
        }
    }

    #[test]
    fn shard_aware_order_splits_and_resumes_like_the_global_order() {
        let order = shard_aware_order(1, 2, 103, 3, &unit_of);
        for world in [1, 2, 3, 4] {
            let ranks: Vec<Sampler> = (0..world)
                .map(|rank| Sampler {
                    len: 103,
                    shuffle: true,
                    seed: 1,
                    rank,
                    world_size: world,
                })
                .collect();
            let parts: Vec<Vec<usize>> = ranks.iter().map(|s| s.split(&order, 0)).collect();
            let mut all = parts.concat();
            all.sort();
            all.dedup();
            assert_eq!(
                all,
                (0..103).collect::<Vec<_>>(),
                "world {world} covers the epoch"
            );
            // Rank r takes positions r, r + world, ... of the shard-aware order.
            for (r, part) in parts.iter().enumerate() {
                assert_eq!(part[0], order[r]);
            }
            // Resuming at a multiple of world gives each rank the tail of its part.
            for (s, part) in ranks.iter().zip(&parts) {
                let consumed = 4 * world;
                assert_eq!(s.split(&order, consumed), part[4..].to_vec());
            }
        }
        // Under a new world size the rest is split among the new ranks: each record of it once
        // (plus padding).
        let rest: Vec<usize> = (0..3)
            .flat_map(|rank| {
                Sampler {
                    len: 103,
                    shuffle: true,
                    seed: 1,
                    rank,
                    world_size: 3,
                }
                .split(&order, 40)
            })
            .collect();
        let mut rest_sorted = rest.clone();
        rest_sorted.sort();
        rest_sorted.dedup();
        let mut want = order[40..].to_vec();
        want.sort();
        assert_eq!(rest_sorted, want);
        assert!(rest.len() - want.len() < 3);
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
