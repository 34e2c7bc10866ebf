//! Augmentation (paper §4.1): random 224×224 patches of the 256×256 images and their horizontal
//! reflections, PCA lighting ("add multiples of the found principal components, with magnitudes
//! proportional to the corresponding eigenvalues times a random variable drawn from a Gaussian with
//! mean zero and standard deviation 0.1"), then mean subtraction (§2).
//!
//! Every operation is a pure function over pixel slices (HWC RGB u8 in, as stored in shards), each
//! in its own file: [`crop`](crop()) and the 10-crop positions, [`flip`](flip()), [`lighting_delta`]
//! and [`add_delta`], [`subtract_mean_image`] and [`normalize_channels`], [`hwc_to_chw`] — the
//! plain definitions — and [`fused_f32_nchw`] / [`fused_u8_nhwc`], the hot loops the loader runs,
//! tested against the composition of the plain ones.
//!
//! Today's recipe sits beside them: [`RandomResizedCrop`] (its own file) and the [`Recipe`] a
//! loader runs, with its optional ops, each a file of its own as torchvision and timm define them:
//! [`ColorJitter`] (over the plain adjustments of `color.rs`), [`TrivialAugmentWide`] (over
//! `color.rs`, `tone.rs` and the nearest-neighbour warps of `affine.rs`), [`RandomErasing`] (on
//! the normalised output), the batch-level [`Mixup`] (MixUp and CutMix with soft labels) and
//! [`ProgressiveResize`] (the output side per epoch).

mod affine;
mod color;
mod color_jitter;
mod crop;
mod flip;
mod fused;
mod layout;
mod lighting;
mod mixup;
mod normalize;
mod pipeline;
mod progressive_resize;
mod random_erasing;
mod random_resized_crop;
mod recipe;
mod tone;
mod trivial_augment;

pub use affine::{inverse_affine_matrix, rotate, shear_x, shear_y, translate, warp_nearest};
pub use color::{adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation};
pub use color_jitter::{apply_jitter, ColorJitter, JitterDraw};
pub use crop::{crop, five_crop_positions};
pub use flip::{flip, flip_in_place, HorizontalFlip};
pub use fused::{fused_f32_nchw, fused_u8_nhwc};
pub use layout::hwc_to_chw;
pub use lighting::{add_delta, draw_alpha, lighting_delta};
pub use mixup::{MixDraw, Mixup};
pub use normalize::{normalize_channels, subtract_mean_image, Normalize};
pub use pipeline::{PixelOp, PixelOps};
pub use progressive_resize::ProgressiveResize;
pub use random_erasing::{EraseDraw, EraseFill, RandomErasing};
pub use random_resized_crop::{Interpolation, RandomResizedCrop, ATTEMPTS};
pub use recipe::{Augmentations, DecodeMode, Recipe};
pub use tone::{adjust_sharpness, autocontrast, equalize, posterize, solarize};
pub use trivial_augment::{TrivialAugmentWide, TrivialDraw, TrivialOp};

/// Where a patch comes from and how it is transformed: one sample's random draws.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleParams {
    /// Left edge of the patch in the stored image.
    pub x: u32,
    /// Top edge of the patch.
    pub y: u32,
    /// Width of the window in the source image (the paper's recipe: the patch side; with
    /// RandomResizedCrop, the window resized to the output; for its evaluation, the centre box
    /// rounded to whole pixels).
    pub w: u32,
    /// Height of the window in the source image.
    pub h: u32,
    /// Mirror the patch horizontally.
    pub flip: bool,
    /// PCA lighting coefficients αᵢ (zero: no lighting).
    pub alpha: [f32; 3],
    /// The draws of the optional ops (none for the paper's recipe).
    pub draws: OpDraws,
}

/// One sample's draws of the optional ops of the RandomResizedCrop recipe, for checking and
/// debugging (`None`: the op is off).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OpDraws {
    /// [`ColorJitter`]'s order and factors.
    pub jitter: Option<JitterDraw>,
    /// [`TrivialAugmentWide`]'s op and magnitude.
    pub trivial: Option<TrivialDraw>,
    /// [`RandomErasing`]'s region (`None` also when the sample was not erased).
    pub erase: Option<EraseDraw>,
    /// The filter RandomResizedCrop resampled the window with (drawn per sample under
    /// [`Interpolation::Random`]).
    pub filter: crate::prep::Filter,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(size: usize, seed: u32) -> Vec<u8> {
        crate::test_pixels::noise(size * size * 3, seed)
    }

    #[test]
    fn plain_ops_do_what_they_say() {
        // 3x3 image whose pixel (x, y) is [x, y, 9].
        let img: Vec<u8> = (0..3)
            .flat_map(|y| (0..3).flat_map(move |x| [x, y, 9]))
            .collect();
        assert_eq!(
            crop(&img, 3, 1, 1, 2),
            vec![1, 1, 9, 2, 1, 9, 1, 2, 9, 2, 2, 9]
        );
        assert_eq!(flip(&[1u8, 2, 3, 4, 5, 6], 2, 3), vec![4, 5, 6, 1, 2, 3]);
        assert_eq!(hwc_to_chw(&[1, 2, 3, 4, 5, 6], 2), vec![1, 4, 2, 5, 3, 6]);
        assert_eq!(
            add_delta(&[10, 20, 30], [1.0, -1.0, 0.5]),
            vec![11.0, 19.0, 30.5]
        );
        assert_eq!(
            normalize_channels(&[10.0, 20.0, 30.0], [0.0, 10.0, 20.0], [2.0, 5.0, 10.0]),
            vec![5.0, 2.0, 1.0]
        );
        // Lighting: with the identity basis, the shift is alpha * eigval per channel.
        let id = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        assert_eq!(
            lighting_delta(&id, &[10.0, 20.0, 30.0], [0.1, 0.0, -1.0]),
            [1.0, 0.0, -30.0]
        );
        assert_eq!(
            five_crop_positions(256, 224),
            [(0, 0), (32, 0), (0, 32), (32, 32), (16, 16)]
        );
    }

    /// The composition of the plain ops that `fused_f32_nchw` must equal.
    fn reference_f32(
        src: &[u8],
        size: usize,
        p: &SampleParams,
        c: usize,
        delta: [f32; 3],
        norm: &Normalize,
    ) -> Vec<f32> {
        let (x, y) = (p.x as usize, p.y as usize);
        let patch = crop(src, size, x, y, c);
        let mut v = add_delta(&patch, delta);
        v = match *norm {
            Normalize::MeanImage(mean) => {
                let mean_bytes: Vec<f32> = (y..y + c)
                    .flat_map(|row| {
                        mean[(row * size + x) * 3..(row * size + x + c) * 3]
                            .iter()
                            .copied()
                    })
                    .collect();
                subtract_mean_image(&v, &mean_bytes)
            }
            Normalize::Channel { mean, std } => normalize_channels(&v, mean, std),
        };
        if p.flip {
            v = flip(&v, c, 3);
        }
        hwc_to_chw(&v, c * c)
    }

    #[test]
    fn fused_kernels_equal_the_plain_composition() {
        for (size, c) in [(40, 33), (70, 48), (300, 224)] {
            check_fused(size, c);
        }
    }

    fn check_fused(size: usize, c: usize) {
        let src = image(size, 1);
        let mean: Vec<f32> = image(size, 2)
            .iter()
            .map(|&v| v as f32 * 0.9 + 0.25)
            .collect();
        let norms = [
            Normalize::MeanImage(&mean),
            Normalize::Channel {
                mean: [120.5, 115.25, 100.0],
                std: [58.0, 57.5, 60.25],
            },
        ];
        let far = (size - c) as u32;
        for (x, y, flip) in [
            (0, 0, false),
            (far, 3, true),
            (far, far, false),
            (0, far, true),
        ] {
            let p = SampleParams {
                x,
                y,
                w: c as u32,
                h: c as u32,
                flip,
                alpha: [0.0; 3],
                draws: OpDraws::default(),
            };
            let delta = [3.25, -1.5, 0.75];
            for norm in &norms {
                let mut out = vec![f32::NAN; 3 * c * c];
                fused_f32_nchw(&src, size, &p, c, delta, norm, &mut out);
                let expected = reference_f32(&src, size, &p, c, delta, norm);
                for (a, b) in out.iter().zip(&expected) {
                    assert!(
                        (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                        "{a} vs {b} at {p:?}"
                    );
                }
            }
            let mut out = vec![0u8; c * c * 3];
            fused_u8_nhwc(&src, size, &p, c, &mut out);
            let mut expected = crop(&src, size, x as usize, y as usize, c);
            if flip {
                expected = flip_ref(&expected, c);
            }
            assert_eq!(out, expected, "u8 at {p:?}");
        }
    }

    fn flip_ref(img: &[u8], w: usize) -> Vec<u8> {
        flip(img, w, 3)
    }
}
