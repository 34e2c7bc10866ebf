//! Horizontal reflections (§4.1): a plain mirror, and the in-place mirror the RandomResizedCrop
//! pipeline runs as its [`HorizontalFlip`] op.

use rand::rngs::ChaCha8Rng;
use rand::RngExt;

use super::{PixelOp, SampleParams};

/// Horizontal mirror of a `w`-wide HWC image with `channels` values per pixel.
pub fn flip<T: Copy>(img: &[T], w: usize, channels: usize) -> Vec<T> {
    img.chunks_exact(w * channels)
        .flat_map(|row| row.chunks_exact(channels).rev().flatten().copied())
        .collect()
}

/// Mirrors a `w`-wide HWC image with `channels` values per pixel in place.
pub fn flip_in_place<T>(img: &mut [T], w: usize, channels: usize) {
    for row in img.chunks_exact_mut(w * channels) {
        for x in 0..w / 2 {
            let (left, right) = row.split_at_mut((w - 1 - x) * channels);
            left[x * channels..(x + 1) * channels].swap_with_slice(&mut right[..channels]);
        }
    }
}

/// A horizontal mirror with probability `p` (paper: 0.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HorizontalFlip {
    /// Probability of mirroring a sample.
    pub p: f64,
}

impl PixelOp for HorizontalFlip {
    fn describe(&self) -> String {
        format!("flip(p={})", self.p)
    }

    fn apply(&self, rng: &mut ChaCha8Rng, img: &mut [u8], width: usize, params: &mut SampleParams) {
        params.flip = rng.random_bool(self.p.clamp(0.0, 1.0));
        if params.flip {
            flip_in_place(img, width, 3);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_equals_the_plain_mirror() {
        for (w, h) in [(1, 3), (2, 2), (5, 3), (224, 7)] {
            let img = crate::test_pixels::noise(w * h * 3, w as u32);
            let mut in_place = img.clone();
            flip_in_place(&mut in_place, w, 3);
            assert_eq!(in_place, flip(&img, w, 3), "{w}x{h}");
        }
    }
}
