//! Training-set statistics (paper §2 mean subtraction, §4.1 PCA lighting).
//!
//! Everything is accumulated as exact integer sums (`u64` / `u128`) of u8 pixel values, so the result
//! is bit-identical whatever the number of threads or the order images arrive in, and nothing is lost
//! to floating-point cancellation even at 10⁶ images. Floating point enters only in [`StatsAccumulator::finish`].
//!
//! Units: pixel values are u8 levels in `[0, 255]`. Means and standard deviations are in levels,
//! the covariance and its eigenvalues in levels². Variances are population variances (divided by the
//! number of pixels N, numpy's `ddof=0` / `np.cov(..., bias=True)`).

use nalgebra::{Matrix3, SymmetricEigen};

/// Exact running sums over whole `size`×`size`×3 images.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsAccumulator {
    size: u32,
    images: u64,
    /// Per pixel position and channel: Σ value over images (the mean image's numerator) …
    pixel_sum: Vec<u64>,
    /// … plus this: the sum over the last `pending_images` (< 257) images, kept in u16 so that the
    /// per-image add is cheap; 257 × 255 still fits.
    pending: Vec<u16>,
    pending_images: u32,
    /// Σ R, Σ G, Σ B over all pixels of all images.
    channel_sum: [u64; 3],
    /// Σ RR, Σ RG, Σ RB, Σ GG, Σ GB, Σ BB over all pixels.
    cross_sum: [u128; 6],
}

/// Index pairs of the six distinct entries of a symmetric 3×3 matrix, in `cross_sum` order.
const PAIRS: [(usize, usize); 6] = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)];

impl StatsAccumulator {
    /// Empty sums for images of `size`×`size`×3.
    pub fn new(size: u32) -> Self {
        StatsAccumulator {
            size,
            images: 0,
            pixel_sum: vec![0; size as usize * size as usize * 3],
            pending: vec![0; size as usize * size as usize * 3],
            pending_images: 0,
            channel_sum: [0; 3],
            cross_sum: [0; 6],
        }
    }

    /// Number of images added.
    pub fn images(&self) -> u64 {
        self.images
    }

    /// Adds one image (`size * size * 3` bytes, HWC RGB).
    pub fn add_image(&mut self, pixels: &[u8]) {
        assert_eq!(
            pixels.len(),
            self.pixel_sum.len(),
            "image size does not match the accumulator"
        );
        if self.pending_images == MAX_PENDING {
            self.flush();
        }
        for (sum, &v) in self.pending.iter_mut().zip(pixels) {
            *sum += v as u16;
        }
        self.pending_images += 1;
        // The image as one flat run of pixels (rows end on whole pixels), in the longest pieces
        // row_sums' 32-bit lanes hold: one reduction of its lanes per piece rather than per row.
        for run in pixels.chunks(MAX_RUN_PIXELS * 3) {
            let sums = row_sums(run);
            for (total, part) in self.channel_sum.iter_mut().zip(sums.channel) {
                *total += part;
            }
            for (total, part) in self.cross_sum.iter_mut().zip(sums.cross) {
                *total += part as u128;
            }
        }
        self.images += 1;
    }

    /// Moves the u16 pending sums into the u64 totals.
    fn flush(&mut self) {
        for (total, pending) in self.pixel_sum.iter_mut().zip(self.pending.iter_mut()) {
            *total += *pending as u64;
            *pending = 0;
        }
        self.pending_images = 0;
    }

    /// Adds another accumulator's sums (for parallel reduction; exact, so order does not matter).
    pub fn merge(&mut self, other: &StatsAccumulator) {
        assert_eq!(
            self.size, other.size,
            "cannot merge statistics of different image sizes"
        );
        for ((a, b), p) in self
            .pixel_sum
            .iter_mut()
            .zip(&other.pixel_sum)
            .zip(&other.pending)
        {
            *a += b + *p as u64;
        }
        for (a, b) in self.channel_sum.iter_mut().zip(other.channel_sum) {
            *a += b;
        }
        for (a, b) in self.cross_sum.iter_mut().zip(other.cross_sum) {
            *a += b;
        }
        self.images += other.images;
    }

    /// The statistics, or `None` when no image was added.
    pub fn finish(&self) -> Option<Stats> {
        if self.images == 0 {
            return None;
        }
        let n_img = self.images as f64;
        let mean_image = self
            .pixel_sum
            .iter()
            .zip(&self.pending)
            .map(|(&s, &p)| ((s + p as u64) as f64 / n_img) as f32)
            .collect();
        let n = self.images as u128 * self.size as u128 * self.size as u128;
        let channel_mean = self.channel_sum.map(|s| s as f64 / n as f64);
        // cov = (N Σxy − Σx Σy) / N², with the numerator exact in integers.
        let mut covariance = [[0.0; 3]; 3];
        for (k, &(i, j)) in PAIRS.iter().enumerate() {
            let num = n as i128 * self.cross_sum[k] as i128
                - self.channel_sum[i] as i128 * self.channel_sum[j] as i128;
            let c = num as f64 / (n as f64 * n as f64);
            covariance[i][j] = c;
            covariance[j][i] = c;
        }
        let channel_std = [0, 1, 2].map(|i| covariance[i][i].max(0.0).sqrt());
        let (eigvals, eigvecs) = eigen_descending(&covariance);
        Some(Stats {
            images: self.images,
            size: self.size,
            mean_image,
            channel_mean,
            channel_std,
            covariance,
            eigvals,
            eigvecs,
        })
    }
}

/// The exact integer sums behind [`Stats`]: what a part of a build (`build-shards --part`) keeps
/// so that merged parts give statistics bit-identical to a build in one go (sums add exactly;
/// floating point enters only in [`StatsAccumulator::finish`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExactSums {
    /// Side length of the images.
    pub size: u32,
    /// Number of images summed.
    pub images: u64,
    /// Per pixel position and channel (HWC), Σ value over the images.
    pub pixel_sum: Vec<u64>,
    /// Σ R, Σ G, Σ B over all pixels.
    pub channel_sum: [u64; 3],
    /// Σ RR, Σ RG, Σ RB, Σ GG, Σ GB, Σ BB over all pixels.
    pub cross_sum: [u128; 6],
}

impl StatsAccumulator {
    /// The sums added so far.
    pub fn sums(&self) -> ExactSums {
        ExactSums {
            size: self.size,
            images: self.images,
            pixel_sum: self
                .pixel_sum
                .iter()
                .zip(&self.pending)
                .map(|(&s, &p)| s + p as u64)
                .collect(),
            channel_sum: self.channel_sum,
            cross_sum: self.cross_sum,
        }
    }

    /// An accumulator holding `sums` (`pixel_sum` must have `size`×`size`×3 values).
    pub fn from_sums(sums: ExactSums) -> Self {
        let n = sums.pixel_sum.len();
        debug_assert_eq!(n, sums.size as usize * sums.size as usize * 3);
        StatsAccumulator {
            size: sums.size,
            images: sums.images,
            pixel_sum: sums.pixel_sum,
            pending: vec![0; n],
            pending_images: 0,
            channel_sum: sums.channel_sum,
            cross_sum: sums.cross_sum,
        }
    }
}

/// Images a u16 pending sum can take: 257 × 255 = 65535.
const MAX_PENDING: u32 = 257;

/// Pixels [`row_sums`] takes at once: what its 32-bit lanes of sums of byte products hold.
const MAX_RUN_PIXELS: usize = 65536;

/// Σ R, Σ G, Σ B and the six Σ products of one row of pixels.
#[derive(Debug, Default, PartialEq, Eq)]
struct RowSums {
    channel: [u64; 3],
    cross: [u64; 6],
}

/// Bytes per block of the vectorised loop: 16 pixels, a multiple of 3 so lane `j` always holds
/// channel `j % 3`.
const BLOCK: usize = 48;

/// [`RowSums`] of an interleaved RGB run of pixels, the hot loop of the statistics, with SSE2 (in
/// every x86-64). Treating the run as a flat array `x`, byte `x[k]` holds channel `k % 3`, and so
/// does `x[k + 48]`: interleaving two 48-byte blocks byte by byte and widening to i16 puts two
/// values of one channel side by side, which `pmaddwd` multiplies (by 1, by themselves, by `x`
/// shifted by one and by two) and sums into one i32 lane of that channel. A lane's channel
/// depends only on its position modulo 3, so four kinds × three phases = twelve accumulators,
/// which stay in registers. Σ x·x₊₁ holds RG, GB and B·(next R); Σ x·x₊₂ RB, G·(next R) and
/// B·(next G): the products across pixels are dropped. i32 lanes hold a run of 65536 pixels:
/// 2048 double blocks adding 4 · 2 · 255² each.
#[cfg(target_arch = "x86_64")]
fn row_sums(run: &[u8]) -> RowSums {
    use std::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_loadu_si128, _mm_madd_epi16, _mm_set1_epi16, _mm_setzero_si128,
        _mm_storeu_si128, _mm_unpackhi_epi8, _mm_unpacklo_epi8,
    };
    debug_assert!(run.len() <= MAX_RUN_PIXELS * 3);
    const DOUBLE: usize = 2 * BLOCK;
    // lanes[kind][phase]: kinds x·1, x·x, x·x₊₁, x·x₊₂; lane i of phase φ holds channel (φ + i) % 3.
    let mut lanes = [[[0i32; 4]; 3]; 4];
    let mut k = 0;
    // SAFETY: SSE2 is in the x86-64 baseline. Every load reads the 16 bytes at
    // k + BLOCK·b + 16·c + shift (b ≤ 1, c ≤ 2, shift ≤ 2), which end at most at
    // k + DOUBLE + 2 ≤ run.len(); each store writes one [i32; 4] of `lanes`.
    unsafe {
        let zero = _mm_setzero_si128();
        let ones = _mm_set1_epi16(1);
        let mut acc = [[zero; 3]; 4];
        let load = |at: usize| _mm_loadu_si128(run.as_ptr().add(at).cast::<__m128i>());
        // The 16 bytes at `at` and at `at + BLOCK`, interleaved and widened: four i16 vectors
        // holding bytes j = 0..4, 4..8, 8..12, 12..16 of both.
        let pairs = |at: usize| {
            let (a, b) = (load(at), load(at + BLOCK));
            let (lo, hi) = (_mm_unpacklo_epi8(a, b), _mm_unpackhi_epi8(a, b));
            [
                _mm_unpacklo_epi8(lo, zero),
                _mm_unpackhi_epi8(lo, zero),
                _mm_unpacklo_epi8(hi, zero),
                _mm_unpackhi_epi8(hi, zero),
            ]
        };
        while k + DOUBLE + 2 <= run.len() {
            for c in 0..3 {
                let at = k + 16 * c;
                let (x, x1, x2) = (pairs(at), pairs(at + 1), pairs(at + 2));
                for q in 0..4 {
                    let phase = (c + q) % 3;
                    let products = [ones, x[q], x1[q], x2[q]];
                    for (kind, other) in products.into_iter().enumerate() {
                        let sum = _mm_madd_epi16(x[q], other);
                        acc[kind][phase] = _mm_add_epi32(acc[kind][phase], sum);
                    }
                }
            }
            k += DOUBLE;
        }
        for (kind, phases) in acc.iter().enumerate() {
            for (phase, v) in phases.iter().enumerate() {
                _mm_storeu_si128(lanes[kind][phase].as_mut_ptr().cast::<__m128i>(), *v);
            }
        }
    }
    let mut out = RowSums::default();
    for (phase, i) in (0..3).flat_map(|phase| (0..4).map(move |i| (phase, i))) {
        let channel = (phase + i) % 3;
        let value = |kind: usize| lanes[kind][phase][i] as u64;
        out.channel[channel] += value(0);
        // RR, GG, BB are cross[0], cross[3], cross[5]; R·G cross[1], G·B cross[4], R·B cross[2].
        out.cross[[0, 3, 5][channel]] += value(1);
        match channel {
            0 => {
                out.cross[1] += value(2);
                out.cross[2] += value(3);
            }
            1 => out.cross[4] += value(2),
            _ => {}
        }
    }
    add_pixels(&mut out, &run[k..]);
    out
}

/// The sums of whole pixels, one by one (a run's tail after the vector blocks).
fn add_pixels(out: &mut RowSums, pixels: &[u8]) {
    for px in pixels.chunks_exact(3) {
        let (r, g, b) = (px[0] as u64, px[1] as u64, px[2] as u64);
        out.channel[0] += r;
        out.channel[1] += g;
        out.channel[2] += b;
        out.cross[0] += r * r;
        out.cross[1] += r * g;
        out.cross[2] += r * b;
        out.cross[3] += g * g;
        out.cross[4] += g * b;
        out.cross[5] += b * b;
    }
}

/// Elsewhere the portable loop is the statistics' hot loop.
#[cfg(not(target_arch = "x86_64"))]
fn row_sums(run: &[u8]) -> RowSums {
    row_sums_portable(run)
}

/// [`RowSums`] of an interleaved RGB run in plain Rust the compiler vectorises (the hot loop
/// where there is no SSE2). Treating the run as a flat array `x`, Σ RR/GG/BB are the lanes of
/// Σ x[k]², Σ RG and Σ GB those of Σ x[k]·x[k+1], Σ RB those of Σ x[k]·x[k+2]; accumulating them
/// lane-wise over fixed 48-byte blocks makes a loop without shuffles. Per-lane u32 sums hold a
/// run of up to 65536 pixels.
#[cfg(any(not(target_arch = "x86_64"), test))]
fn row_sums_portable(row: &[u8]) -> RowSums {
    let mut s = [0u32; BLOCK];
    let mut sq = [0u32; BLOCK];
    let mut next1 = [0u32; BLOCK];
    let mut next2 = [0u32; BLOCK];
    let mut k = 0;
    // Blocks whose x[k+1], x[k+2] neighbours stay inside the row.
    while k + BLOCK + 2 <= row.len() {
        let lane = |shift: usize| -> &[u8; BLOCK] {
            match row[k + shift..k + shift + BLOCK].try_into() {
                Ok(block) => block,
                Err(_) => unreachable!("the slice is BLOCK bytes long"),
            }
        };
        let (x0, x1, x2) = (lane(0), lane(1), lane(2));
        for j in 0..BLOCK {
            // A product of two bytes fits in u16 (255² = 65025): multiplied as u16 (SSE2's
            // `pmullw`; u32 lanes would need SSE4.1's `pmulld`), then widened to sum.
            let v = x0[j] as u16;
            s[j] += v as u32;
            sq[j] += (v * v) as u32;
            next1[j] += (v * x1[j] as u16) as u32;
            next2[j] += (v * x2[j] as u16) as u32;
        }
        k += BLOCK;
    }
    let mut out = RowSums::default();
    for j in 0..BLOCK {
        let c = j % 3;
        out.channel[c] += s[j] as u64;
        // RR, GG, BB are cross[0], cross[3], cross[5].
        out.cross[[0, 3, 5][c]] += sq[j] as u64;
        match c {
            0 => {
                out.cross[1] += next1[j] as u64; // R·G
                out.cross[2] += next2[j] as u64; // R·B
            }
            1 => out.cross[4] += next1[j] as u64, // G·B
            _ => {}
        }
    }
    add_pixels(&mut out, &row[k..]);
    out
}

/// Eigen-decomposition of a symmetric 3×3 matrix: eigenvalues in descending order and the matching
/// unit eigenvectors as the *columns* of the returned matrix (`eigvecs[row][col]`), each signed so
/// that its largest-magnitude component is positive (eigenvectors are only defined up to sign).
pub fn eigen_descending(m: &[[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mat = Matrix3::from_fn(|i, j| m[i][j]);
    let eig = SymmetricEigen::new(mat);
    let mut order = [0usize, 1, 2];
    order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
    let mut vals = [0.0; 3];
    let mut vecs = [[0.0; 3]; 3];
    for (col, &k) in order.iter().enumerate() {
        vals[col] = eig.eigenvalues[k];
        let v = eig.eigenvectors.column(k);
        let norm = v.norm();
        let big = (0..3)
            .max_by(|&a, &b| v[a].abs().total_cmp(&v[b].abs()))
            .unwrap_or(0);
        let sign = if v[big] < 0.0 { -1.0 } else { 1.0 };
        for row in 0..3 {
            vecs[row][col] = sign * v[row] / norm;
        }
    }
    (vals, vecs)
}

/// The statistics without the mean image: the one serialisable form, stored in `manifest.json`, in
/// checkpoints and beside HDF5 images (the mean image, `size`×`size`×3 values, is stored apart).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StatsSummary {
    /// Number of images the statistics cover.
    pub images: u64,
    /// Per-channel mean (R, G, B), in levels.
    pub channel_mean: [f64; 3],
    /// Per-channel population standard deviation, in levels.
    pub channel_std: [f64; 3],
    /// 3×3 population covariance of RGB values, in levels².
    pub covariance: [[f64; 3]; 3],
    /// Covariance eigenvalues, descending, in levels².
    pub eigvals: [f64; 3],
    /// Unit eigenvectors as columns: `eigvecs[row][i]` is component `row` of eigenvector `i`.
    pub eigvecs: [[f64; 3]; 3],
}

impl Stats {
    /// Everything but the mean image.
    pub fn summary(&self) -> StatsSummary {
        StatsSummary {
            images: self.images,
            channel_mean: self.channel_mean,
            channel_std: self.channel_std,
            covariance: self.covariance,
            eigvals: self.eigvals,
            eigvecs: self.eigvecs,
        }
    }

    /// Joins a summary with its `size`×`size`×3 mean image.
    pub fn from_summary(summary: &StatsSummary, size: u32, mean_image: Vec<f32>) -> Stats {
        Stats {
            images: summary.images,
            size,
            mean_image,
            channel_mean: summary.channel_mean,
            channel_std: summary.channel_std,
            covariance: summary.covariance,
            eigvals: summary.eigvals,
            eigvecs: summary.eigvecs,
        }
    }
}

/// The statistics of a set of `size`×`size` RGB images.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Number of images.
    pub images: u64,
    /// Side length of the images.
    pub size: u32,
    /// Per-pixel mean, `size * size * 3` values, HWC RGB, in levels (paper §2).
    pub mean_image: Vec<f32>,
    /// Mean of each channel over all pixels, in levels.
    pub channel_mean: [f64; 3],
    /// Population standard deviation of each channel over all pixels, in levels.
    pub channel_std: [f64; 3],
    /// 3×3 population covariance of RGB pixel values, in levels².
    pub covariance: [[f64; 3]; 3],
    /// Eigenvalues of the covariance, descending, in levels² (paper §4.1's λᵢ).
    pub eigvals: [f64; 3],
    /// Unit eigenvectors as columns (`eigvecs[row][i]` is component `row` of pᵢ) (paper §4.1's pᵢ).
    pub eigvecs: [[f64; 3]; 3],
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(size: u32, seed: u32) -> Vec<u8> {
        crate::test_pixels::noise((size * size * 3) as usize, seed)
    }

    /// A plain f64 two-pass reference.
    fn reference(images: &[Vec<u8>], size: u32) -> ([f64; 3], [[f64; 3]; 3]) {
        let px: Vec<[f64; 3]> = images
            .iter()
            .flat_map(|im| {
                im.chunks_exact(3)
                    .map(|p| [p[0] as f64, p[1] as f64, p[2] as f64])
            })
            .collect();
        let n = px.len() as f64;
        assert_eq!(px.len() as u32, images.len() as u32 * size * size);
        let mut mean = [0.0; 3];
        for p in &px {
            for (m, v) in mean.iter_mut().zip(p) {
                *m += v / n;
            }
        }
        let mut cov = [[0.0; 3]; 3];
        for p in &px {
            for (i, row) in cov.iter_mut().enumerate() {
                for (j, c) in row.iter_mut().enumerate() {
                    *c += (p[i] - mean[i]) * (p[j] - mean[j]) / n;
                }
            }
        }
        (mean, cov)
    }

    #[test]
    fn matches_two_pass_reference_and_merge_is_exact() {
        let size = 8;
        let images: Vec<Vec<u8>> = (0..7).map(|s| image(size, s)).collect();
        let mut all = StatsAccumulator::new(size);
        let (mut a, mut b) = (StatsAccumulator::new(size), StatsAccumulator::new(size));
        for (i, im) in images.iter().enumerate() {
            all.add_image(im);
            if i % 2 == 0 { &mut a } else { &mut b }.add_image(im);
        }
        b.merge(&a);
        b.flush();
        all.flush();
        assert_eq!(b, all, "split + merge must equal one pass exactly");
        let stats = all.finish().expect("images were added");
        let (mean, cov) = reference(&images, size);
        for (i, (ours, theirs)) in stats.covariance.iter().zip(&cov).enumerate() {
            assert!((stats.channel_mean[i] - mean[i]).abs() < 1e-9);
            for (a, b) in ours.iter().zip(theirs) {
                assert!((a - b).abs() < 1e-7, "row {i}: {a} vs {b}");
            }
        }
        // Mean image at position 5, channel 1.
        let m: f64 = images.iter().map(|im| im[5 * 3 + 1] as f64).sum::<f64>() / 7.0;
        assert!((stats.mean_image[16] as f64 - m).abs() < 1e-4);
    }

    #[test]
    fn eigenpairs_reconstruct_the_matrix() {
        let m = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 1.0]];
        let (vals, vecs) = eigen_descending(&m);
        assert!(vals[0] >= vals[1] && vals[1] >= vals[2]);
        for i in 0..3 {
            for j in 0..3 {
                let r: f64 = (0..3).map(|k| vecs[i][k] * vals[k] * vecs[j][k]).sum();
                assert!((r - m[i][j]).abs() < 1e-12);
            }
            // Unit columns, largest component positive.
            let col = [vecs[0][i], vecs[1][i], vecs[2][i]];
            assert!((col.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-12);
            let big = col
                .iter()
                .cloned()
                .fold(0.0f64, |a, x| if x.abs() > a.abs() { x } else { a });
            assert!(big > 0.0);
        }
    }

    /// The plain per-pixel loop the vectorised [`row_sums`] must equal.
    fn row_sums_reference(row: &[u8]) -> RowSums {
        let mut out = RowSums::default();
        for px in row.chunks_exact(3) {
            let p = [px[0] as u64, px[1] as u64, px[2] as u64];
            for (total, v) in out.channel.iter_mut().zip(p) {
                *total += v;
            }
            for (k, &(i, j)) in PAIRS.iter().enumerate() {
                out.cross[k] += p[i] * p[j];
            }
        }
        out
    }

    #[test]
    fn row_sums_equal_the_plain_loop_at_every_width() {
        for width in [1usize, 2, 15, 16, 17, 33, 256, 257, 1000] {
            let row = image(width as u32, width as u32);
            let row = &row[..width * 3];
            assert_eq!(row_sums(row), row_sums_reference(row), "width {width}");
            assert_eq!(
                row_sums_portable(row),
                row_sums_reference(row),
                "width {width}"
            );
        }
        // Every byte value at every position of the blocks, over the longest run.
        let ramp: Vec<u8> = (0..65536 * 3).map(|i| (i * 7 % 256) as u8).collect();
        assert_eq!(row_sums(&ramp), row_sums_reference(&ramp));
        let white = vec![255u8; 65536 * 3];
        for sums in [row_sums, row_sums_portable] {
            assert_eq!(
                sums(&white),
                row_sums_reference(&white),
                "widest row must not overflow"
            );
        }
    }

    #[test]
    fn pending_sums_flush_exactly() {
        let size = 2;
        let mut acc = StatsAccumulator::new(size);
        let white = vec![255u8; 12];
        for _ in 0..1000 {
            acc.add_image(&white);
        }
        let stats = acc.finish().expect("images");
        assert!(
            stats.mean_image.iter().all(|&m| m == 255.0),
            "{:?}",
            stats.mean_image
        );
        assert_eq!(stats.channel_std, [0.0; 3]);
    }

    #[test]
    fn sums_round_trip_and_add_up_to_one_pass() {
        let size = 4;
        let (mut all, mut a, mut b) = (
            StatsAccumulator::new(size),
            StatsAccumulator::new(size),
            StatsAccumulator::new(size),
        );
        for s in 0..600 {
            let im = image(size, s);
            all.add_image(&im);
            if s < 300 { &mut a } else { &mut b }.add_image(&im);
        }
        let mut merged = StatsAccumulator::from_sums(a.sums());
        merged.merge(&StatsAccumulator::from_sums(b.sums()));
        assert_eq!(merged.sums(), all.sums());
        assert_eq!(merged.finish(), all.finish());
    }

    #[test]
    fn empty_has_no_stats() {
        assert!(StatsAccumulator::new(4).finish().is_none());
    }
}
