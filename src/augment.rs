//! Augmentation (paper §4.1): random 224×224 patches of the 256×256 images and their horizontal
//! reflections, PCA lighting ("add multiples of the found principal components, with magnitudes
//! proportional to the corresponding eigenvalues times a random variable drawn from a Gaussian with
//! mean zero and standard deviation 0.1"), then mean subtraction (§2).
//!
//! Every operation is a pure function over pixel slices (HWC RGB u8 in, as stored in shards). The
//! small functions ([`crop`], [`flip`], [`lighting_delta`], [`add_delta`], [`subtract_mean_image`],
//! [`normalize_channels`], [`hwc_to_chw`]) are the plain definitions; [`fused_f32_nchw`] and
//! [`fused_u8_nhwc`] are the hot loops the loader runs, tested against the composition of the
//! plain ones. The fused loops allocate nothing and branch per row, never per pixel.
//!
//! Today's recipe sits beside them: [`RandomResizedCrop`] (its own file) and the [`Recipe`] a
//! loader runs.

mod random_resized_crop;
mod recipe;

pub use random_resized_crop::{RandomResizedCrop, ATTEMPTS};
pub use recipe::{DecodeMode, Recipe};

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
}

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

/// The `crop`×`crop` patch at (`x`, `y`) of a `size`×`size`×3 image (HWC).
pub fn crop(src: &[u8], size: usize, x: usize, y: usize, crop: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(crop * crop * 3);
    for row in y..y + crop {
        let start = (row * size + x) * 3;
        out.extend_from_slice(&src[start..start + crop * 3]);
    }
    out
}

/// Horizontal mirror of a `w`-wide HWC image with `channels` values per pixel.
pub fn flip<T: Copy>(img: &[T], w: usize, channels: usize) -> Vec<T> {
    img.chunks_exact(w * channels)
        .flat_map(|row| row.chunks_exact(channels).rev().flatten().copied())
        .collect()
}

/// Pixel values as f32 plus a per-channel shift (HWC).
pub fn add_delta(img: &[u8], delta: [f32; 3]) -> Vec<f32> {
    img.iter()
        .enumerate()
        .map(|(k, &v)| v as f32 + delta[k % 3])
        .collect()
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

/// HWC → CHW.
pub fn hwc_to_chw<T: Copy>(img: &[T], pixels: usize) -> Vec<T> {
    (0..3)
        .flat_map(|c| (0..pixels).map(move |p| img[p * 3 + c]))
        .collect()
}

/// One output pixel's three destinations, in the R, G and B planes.
type Planes<'a> = (&'a mut f32, &'a mut f32, &'a mut f32);

/// The hot loop for f32 NCHW: crop at (`p.x`, `p.y`), mirror if `p.flip`, add the lighting `delta`,
/// normalise, and write `3 × crop × crop` floats (planes R, G, B) to `out`. `src` is one stored
/// `size`×`size`×3 image.
pub fn fused_f32_nchw(
    src: &[u8],
    size: usize,
    p: &SampleParams,
    crop: usize,
    delta: [f32; 3],
    norm: &Normalize<'_>,
    out: &mut [f32],
) {
    let plane = crop * crop;
    let (r_out, rest) = out[..3 * plane].split_at_mut(plane);
    let (g_out, b_out) = rest.split_at_mut(plane);
    let (x0, y0) = (p.x as usize, p.y as usize);
    for y in 0..crop {
        let start = ((y0 + y) * size + x0) * 3;
        let src_row = &src[start..start + crop * 3];
        let outs = r_out[y * crop..(y + 1) * crop]
            .iter_mut()
            .zip(&mut g_out[y * crop..(y + 1) * crop])
            .zip(&mut b_out[y * crop..(y + 1) * crop])
            .map(|((r, g), b)| (r, g, b));
        match *norm {
            Normalize::MeanImage(mean) => {
                let mean_row = &mean[start..start + crop * 3];
                // Pixel minus mean, plus the lighting shift; the mean is read at the source position.
                let pixels = src_row.chunks_exact(3).zip(mean_row.chunks_exact(3));
                let kernel = |((r, g, b), (px, m)): (Planes, (&[u8], &[f32]))| {
                    *r = px[0] as f32 - m[0] + delta[0];
                    *g = px[1] as f32 - m[1] + delta[1];
                    *b = px[2] as f32 - m[2] + delta[2];
                };
                if p.flip {
                    outs.zip(pixels.rev()).for_each(kernel);
                } else {
                    outs.zip(pixels).for_each(kernel);
                }
            }
            Normalize::Channel { mean, std } => {
                let scale = [1.0 / std[0], 1.0 / std[1], 1.0 / std[2]];
                let offset = [0, 1, 2].map(|c| (delta[c] - mean[c]) * scale[c]);
                let pixels = src_row.chunks_exact(3);
                let kernel = |((r, g, b), px): (Planes, &[u8])| {
                    *r = px[0] as f32 * scale[0] + offset[0];
                    *g = px[1] as f32 * scale[1] + offset[1];
                    *b = px[2] as f32 * scale[2] + offset[2];
                };
                if p.flip {
                    outs.zip(pixels.rev()).for_each(kernel);
                } else {
                    outs.zip(pixels).for_each(kernel);
                }
            }
        }
    }
}

/// The hot loop for u8 NHWC (for normalisation on the GPU): crop at (`p.x`, `p.y`) and mirror if
/// `p.flip`, writing `crop × crop × 3` bytes to `out`.
pub fn fused_u8_nhwc(src: &[u8], size: usize, p: &SampleParams, crop: usize, out: &mut [u8]) {
    let (x0, y0) = (p.x as usize, p.y as usize);
    let row_len = crop * 3;
    for (y, out_row) in out[..crop * row_len].chunks_exact_mut(row_len).enumerate() {
        let start = ((y0 + y) * size + x0) * 3;
        let src_row = &src[start..start + row_len];
        if p.flip {
            for (o, s) in out_row
                .chunks_exact_mut(3)
                .zip(src_row.chunks_exact(3).rev())
            {
                o.copy_from_slice(s);
            }
        } else {
            out_row.copy_from_slice(src_row);
        }
    }
}

/// Patch positions of the paper's 10-crop evaluation (§4.1): the four corners and the centre, as
/// (x, y), in torchvision `TenCrop` order (top-left, top-right, bottom-left, bottom-right, centre);
/// the loader emits these five, then the same five mirrored.
pub fn five_crop_positions(size: u32, crop: u32) -> [(u32, u32); 5] {
    let far = size - crop;
    let c = crate::prep::center_crop_offset(size, crop);
    [(0, 0), (far, 0), (0, far), (far, far), (c, c)]
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
