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
    /// Per pixel position and channel: Σ value over images (the mean image's numerator).
    pixel_sum: Vec<u64>,
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
        for (sum, &v) in self.pixel_sum.iter_mut().zip(pixels) {
            *sum += v as u64;
        }
        // One row at a time in u32 (a row of up to 2^16 pixels of 255² fits), so the loop vectorises;
        // rows are summed into u64 / u128, which hold any realistic dataset exactly.
        let row_len = self.size as usize * 3;
        for row in pixels.chunks_exact(row_len.max(3)) {
            let mut s = [0u32; 3];
            let mut c = [0u32; 6];
            for px in row.chunks_exact(3) {
                let (r, g, b) = (px[0] as u32, px[1] as u32, px[2] as u32);
                s[0] += r;
                s[1] += g;
                s[2] += b;
                c[0] += r * r;
                c[1] += r * g;
                c[2] += r * b;
                c[3] += g * g;
                c[4] += g * b;
                c[5] += b * b;
            }
            for (total, part) in self.channel_sum.iter_mut().zip(s) {
                *total += part as u64;
            }
            for (total, part) in self.cross_sum.iter_mut().zip(c) {
                *total += part as u128;
            }
        }
        self.images += 1;
    }

    /// Adds another accumulator's sums (for parallel reduction; exact, so order does not matter).
    pub fn merge(&mut self, other: &StatsAccumulator) {
        assert_eq!(
            self.size, other.size,
            "cannot merge statistics of different image sizes"
        );
        for (a, b) in self.pixel_sum.iter_mut().zip(&other.pixel_sum) {
            *a += b;
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
            .map(|&s| (s as f64 / n_img) as f32)
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
        let mut x = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..size * size * 3)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect()
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

    #[test]
    fn empty_has_no_stats() {
        assert!(StatsAccumulator::new(4).finish().is_none());
    }
}
