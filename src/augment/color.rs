//! Colour adjustments of an HWC u8 RGB image, in place, as torchvision.transforms.v2's functional
//! ops define them on uint8 tensors: the arithmetic in f32 in torchvision's order, the result
//! clamped to [0, 255] and truncated to u8 (`Tensor.to(torch.uint8)`), the grey levels
//! (`0.2989 R + 0.587 G + 0.114 B`) floored. They serve [`super::ColorJitter`] and
//! [`super::TrivialAugmentWide`].
//!
//! Brightness and contrast map each value through the same function of that value alone, so they
//! compute it once per level into a 256-entry table ([`levels`]) and look every value up: the
//! same f32 arithmetic per level, the same bytes (tested against the per-value formulas).

/// torchvision's `_blend` of one value with `other` at `ratio`: `v·ratio + other·(1 − ratio)`,
/// clamped and truncated.
fn blend(v: u8, other: f32, ratio: f32) -> u8 {
    (v as f32 * ratio + other * (1.0 - ratio)).clamp(0.0, 255.0) as u8
}

/// The floored grey level of one pixel (torchvision's `rgb_to_grayscale`, then `floor_`). The
/// weighted sum is never negative, so truncating it to an integer floors it (without a call to
/// libm's `floorf`, which the baseline x86-64 target needs for `f32::floor`).
fn grey(px: &[u8]) -> f32 {
    (px[0] as f32 * 0.2989 + px[1] as f32 * 0.587 + px[2] as f32 * 0.114) as u32 as f32
}

/// The table of `map` over the 256 levels.
fn levels(map: impl Fn(u8) -> u8) -> [u8; 256] {
    std::array::from_fn(|v| map(v as u8))
}

/// `adjust_brightness`: every value times `factor`.
pub fn adjust_brightness(img: &mut [u8], factor: f32) {
    let table = levels(|v| (v as f32 * factor).clamp(0.0, 255.0) as u8);
    for v in img {
        *v = table[*v as usize];
    }
}

/// `adjust_contrast`: every value blended with the image's mean grey level at `factor`.
pub fn adjust_contrast(img: &mut [u8], factor: f32) {
    let pixels = img.len() / 3;
    if pixels == 0 {
        return;
    }
    let sum: f64 = img.chunks_exact(3).map(|px| grey(px) as f64).sum();
    let mean = (sum / pixels as f64) as f32;
    let table = levels(|v| blend(v, mean, factor));
    for v in img {
        *v = table[*v as usize];
    }
}

/// `adjust_saturation`: every pixel blended with its own grey level at `factor`.
pub fn adjust_saturation(img: &mut [u8], factor: f32) {
    for px in img.chunks_exact_mut(3) {
        let g = grey(px);
        for v in px {
            *v = blend(*v, g, factor);
        }
    }
}

/// `adjust_hue`: the hue of every pixel shifted by `shift` turns (−0.5 to 0.5) in HSV space.
pub fn adjust_hue(img: &mut [u8], shift: f32) {
    let to_unit = 1.0f32 / 255.0;
    for px in img.chunks_exact_mut(3) {
        let [r, g, b] = [px[0], px[1], px[2]].map(|v| v as f32 * to_unit);
        let (h, s, v) = rgb_to_hsv(r, g, b);
        let rgb = hsv_to_rgb((h + shift).rem_euclid(1.0), s, v);
        for (out, c) in px.iter_mut().zip(rgb) {
            // torchvision's float → uint8 conversion: × (255 + 1 − 1e-3), truncated.
            *out = (c * 255.999) as u8;
        }
    }
}

/// torchvision's `_rgb_to_hsv` for one pixel in [0, 1].
fn rgb_to_hsv(r: f32, g: f32, b: f32) -> (f32, f32, f32) {
    let maxc = r.max(g).max(b);
    let minc = r.min(g).min(b);
    let equal = maxc == minc;
    let range = maxc - minc;
    let s = range / if equal { 1.0 } else { maxc };
    let divisor = if equal { 1.0 } else { range };
    let (rc, gc, bc) = (
        (maxc - r) / divisor,
        (maxc - g) / divisor,
        (maxc - b) / divisor,
    );
    let h = if maxc == r {
        bc - gc
    } else if maxc == g {
        rc + 2.0 - bc
    } else {
        gc + 4.0 - rc
    };
    let h = (h * (1.0 / 6.0) + 1.0) % 1.0;
    (h, s, maxc)
}

/// torchvision's `_hsv_to_rgb` for one pixel.
fn hsv_to_rgb(h: f32, s: f32, v: f32) -> [f32; 3] {
    let h6 = h * 6.0;
    // h is in [0, 1): truncation floors it.
    let i = h6 as u32 as f32;
    let f = h6 - i;
    let sxf = s * f;
    let q = ((1.0 - sxf) * v).clamp(0.0, 1.0);
    let t = ((sxf + (1.0 - s)) * v).clamp(0.0, 1.0);
    let p = ((1.0 - s) * v).clamp(0.0, 1.0);
    match (i as i32).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-value formulas, as torchvision writes them, with f32's own floor.
    fn plain_brightness(img: &mut [u8], factor: f32) {
        for v in img {
            *v = (*v as f32 * factor).clamp(0.0, 255.0) as u8;
        }
    }

    fn plain_contrast(img: &mut [u8], factor: f32) {
        let grey = |px: &[u8]| {
            (px[0] as f32 * 0.2989 + px[1] as f32 * 0.587 + px[2] as f32 * 0.114).floor()
        };
        let sum: f64 = img.chunks_exact(3).map(|px| grey(px) as f64).sum();
        let mean = (sum / (img.len() / 3) as f64) as f32;
        for v in img {
            *v = (*v as f32 * factor + mean * (1.0 - factor)).clamp(0.0, 255.0) as u8;
        }
    }

    fn plain_saturation(img: &mut [u8], factor: f32) {
        for px in img.chunks_exact_mut(3) {
            let g = (px[0] as f32 * 0.2989 + px[1] as f32 * 0.587 + px[2] as f32 * 0.114).floor();
            for v in px {
                *v = (*v as f32 * factor + g * (1.0 - factor)).clamp(0.0, 255.0) as u8;
            }
        }
    }

    #[test]
    fn tables_and_truncated_greys_give_the_formulas_bytes() {
        // Every level, in every channel, and noise; factors across timm's and TrivialAugment's
        // ranges, below 0 and above 2 included.
        let mut src: Vec<u8> = (0..=255u8).flat_map(|v| [v, 255 - v, v / 2]).collect();
        src.extend(crate::test_pixels::noise(2001, 7));
        for factor in [0.0, 0.05, 0.6, 0.93, 1.0, 1.37, 1.4, 1.99, 2.5, -0.3] {
            type Op = fn(&mut [u8], f32);
            let pairs: [(Op, Op); 3] = [
                (adjust_brightness, plain_brightness),
                (adjust_contrast, plain_contrast),
                (adjust_saturation, plain_saturation),
            ];
            for (i, (ours, plain)) in pairs.into_iter().enumerate() {
                let (mut a, mut b) = (src.clone(), src.clone());
                ours(&mut a, factor);
                plain(&mut b, factor);
                assert!(a == b, "op {i} at factor {factor} differs from its formula");
            }
        }
    }

    #[test]
    fn adjustments_follow_their_definitions() {
        let mut img = vec![100, 200, 50, 10, 20, 30];
        adjust_brightness(&mut img, 1.5);
        assert_eq!(img, vec![150, 255, 75, 15, 30, 45]);

        // Saturation 0: every channel becomes the pixel's floored grey level.
        let mut img = vec![100, 200, 50];
        adjust_saturation(&mut img, 0.0);
        let g = (100.0 * 0.2989f32 + 200.0 * 0.587 + 50.0 * 0.114).floor() as u8;
        assert_eq!(img, vec![g, g, g]);

        // Contrast 0: every value becomes the mean grey level; 1 changes nothing.
        let src = vec![0, 0, 0, 255, 255, 255];
        let mut img = src.clone();
        adjust_contrast(&mut img, 1.0);
        assert_eq!(img, src);
        adjust_contrast(&mut img, 0.0);
        assert_eq!(img, vec![127; 6]);

        // Hue: a half turn maps pure red to cyan; no shift keeps every colour (within the
        // conversion's truncation, one level).
        let mut img = vec![255, 0, 0];
        adjust_hue(&mut img, 0.5);
        assert_eq!(img, vec![0, 255, 255]);
        let src = crate::test_pixels::noise(300, 3);
        let mut img = src.clone();
        adjust_hue(&mut img, 0.0);
        assert!(img.iter().zip(&src).all(|(a, b)| a.abs_diff(*b) <= 1));
    }
}
