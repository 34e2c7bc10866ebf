//! Normalisation of the f32 output: the paper's mean-image subtraction (§2) or per-channel
//! `(v - mean) / std`.

/// How the f32 output is normalised after lighting.
#[derive(Debug, Clone, Copy)]
pub enum Normalize<'a> {
    /// Subtract the per-pixel mean image (`size*size*3`, HWC), taken at the patch's position and
    /// mirrored with it (paper §2).
    MeanImage(&'a [f32]),
    /// `(v - mean[c]) / std[c]` per channel.
    Channel {
        /// Per-channel mean, levels.
        mean: [f32; 3],
        /// Per-channel standard deviation, levels.
        std: [f32; 3],
    },
}

/// `img - mean` elementwise (both HWC, same shape).
pub fn subtract_mean_image(img: &[f32], mean: &[f32]) -> Vec<f32> {
    img.iter().zip(mean).map(|(v, m)| v - m).collect()
}

/// `(v - mean[c]) / std[c]` (HWC).
pub fn normalize_channels(img: &[f32], mean: [f32; 3], std: [f32; 3]) -> Vec<f32> {
    img.iter()
        .enumerate()
        .map(|(k, &v)| (v - mean[k % 3]) / std[k % 3])
        .collect()
}
