//! PCA lighting (§4.1): "add multiples of the found principal components, with magnitudes
//! proportional to the corresponding eigenvalues times a random variable drawn from a Gaussian with
//! mean zero and standard deviation 0.1".

use rand::rngs::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

/// One sample's lighting coefficients α ~ N(0, σ), three draws from `rng` (σ = 0: none drawn,
/// all zero).
pub fn draw_alpha(rng: &mut ChaCha8Rng, sigma: f32) -> [f32; 3] {
    let mut alpha = [0f32; 3];
    if sigma > 0.0 {
        if let Ok(normal) = Normal::new(0.0f32, sigma) {
            for a in &mut alpha {
                *a = normal.sample(rng);
            }
        }
    }
    alpha
}

/// The RGB shift PCA lighting adds to every pixel of one image: `eigvecs · (α ⊙ eigvals)`, where
/// `eigvecs[row][i]` is component `row` of eigenvector i.
pub fn lighting_delta(eigvecs: &[[f64; 3]; 3], eigvals: &[f64; 3], alpha: [f32; 3]) -> [f32; 3] {
    let mut delta = [0f32; 3];
    for (row, d) in eigvecs.iter().zip(delta.iter_mut()) {
        *d = (0..3)
            .map(|i| row[i] * alpha[i] as f64 * eigvals[i])
            .sum::<f64>() as f32;
    }
    delta
}

/// Pixel values as f32 plus a per-channel shift (HWC).
pub fn add_delta(img: &[u8], delta: [f32; 3]) -> Vec<f32> {
    img.iter()
        .enumerate()
        .map(|(k, &v)| v as f32 + delta[k % 3])
        .collect()
}
