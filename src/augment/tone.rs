//! Tone and detail adjustments of an HWC u8 RGB image, in place, as torchvision.transforms.v2's
//! functional ops define them on uint8 tensors: sharpness, posterize, solarize, autocontrast and
//! equalize (the photometric half of [`super::TrivialAugmentWide`]'s set).

/// `adjust_sharpness`: the interior pixels blended at `factor` with the image smoothed by
/// torchvision's kernel (`[[1, 1, 1], [1, 5, 1], [1, 1, 1]] / 13`, rounded); the border row and
/// column keep their values. Images of 2 pixels or fewer across are left alone.
pub fn adjust_sharpness(img: &mut [u8], width: usize, factor: f32) {
    let height = img.len() / (3 * width.max(1));
    if width <= 2 || height <= 2 {
        return;
    }
    let (a, b) = (1.0f32 / 13.0, 5.0f32 / 13.0);
    let src = img.to_vec();
    let at = |x: usize, y: usize, c: usize| src[(y * width + x) * 3 + c] as f32;
    for y in 1..height - 1 {
        for x in 1..width - 1 {
            for c in 0..3 {
                let mut ring = 0.0f32;
                for (dx, dy) in [
                    (0, 0),
                    (1, 0),
                    (2, 0),
                    (0, 1),
                    (2, 1),
                    (0, 2),
                    (1, 2),
                    (2, 2),
                ] {
                    ring += at(x + dx - 1, y + dy - 1, c) * a;
                }
                let blurred = (ring + at(x, y, c) * b).round_ties_even();
                let v = at(x, y, c);
                let out = v + (blurred - v) * (1.0 - factor);
                img[(y * width + x) * 3 + c] = out.clamp(0.0, 255.0) as u8;
            }
        }
    }
}

/// `posterize`: keep the `bits` high bits of every value (8 or more: unchanged).
pub fn posterize(img: &mut [u8], bits: u32) {
    if bits >= 8 {
        return;
    }
    let mask = (((1u32 << bits) - 1) << (8 - bits)) as u8;
    for v in img {
        *v &= mask;
    }
}

/// `solarize`: every value at or above `threshold` inverted (compared in f32, as PyTorch
/// compares a uint8 tensor with a float: 255 × 0.6 is 153.0000018 in f64 but 153 in f32).
pub fn solarize(img: &mut [u8], threshold: f64) {
    let threshold = threshold as f32;
    for v in img {
        if *v as f32 >= threshold {
            *v = !*v;
        }
    }
}

/// `autocontrast`: each channel stretched from its own [min, max] to [0, 255] (a flat channel
/// unchanged).
pub fn autocontrast(img: &mut [u8]) {
    for c in 0..3 {
        let channel = img.iter().skip(c).step_by(3);
        let (lo, hi) = channel.fold((255u8, 0u8), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        if lo == hi {
            continue;
        }
        let (lo, inv_scale) = (lo as f32, (hi as f32 - lo as f32) * (1.0 / 255.0));
        for v in img.iter_mut().skip(c).step_by(3) {
            *v = ((*v as f32 - lo) / inv_scale).clamp(0.0, 255.0) as u8;
        }
    }
}

/// `equalize`: each channel through PIL's histogram-equalisation table (as torchvision's tensor
/// version computes it): with `step` = ⌊(pixels − count of the brightest level present) / 255⌋,
/// level k maps to ⌊(cumulative count below k + step/2) / step⌋; a channel with step 0 is
/// unchanged.
pub fn equalize(img: &mut [u8]) {
    let pixels = img.len() / 3;
    for c in 0..3 {
        let mut hist = [0usize; 256];
        for &v in img.iter().skip(c).step_by(3) {
            hist[v as usize] += 1;
        }
        let brightest = hist.iter().rposition(|&n| n > 0).unwrap_or(0);
        let step = (pixels - hist[brightest]) / 255;
        if step == 0 {
            continue;
        }
        let mut lut = [0u8; 256];
        let mut below = 0usize;
        for (k, entry) in lut.iter_mut().enumerate() {
            *entry = ((below + step / 2) / step).min(255) as u8;
            below += hist[k];
        }
        for v in img.iter_mut().skip(c).step_by(3) {
            *v = lut[*v as usize];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_ops_follow_their_definitions() {
        let mut img = vec![0b1011_0111, 255, 3];
        posterize(&mut img, 2);
        assert_eq!(img, vec![0b1000_0000, 0b1100_0000, 0]);

        let mut img = vec![10, 128, 200];
        solarize(&mut img, 128.0);
        assert_eq!(img, vec![10, 127, 55]);

        // Autocontrast: a channel from 50..150 stretches to 0..255 (torchvision's f32 division
        // by (150 − 50)/255 puts 150 at 254.99998, truncated to 254: torchvision gives the
        // same); a flat channel stays.
        let mut img = vec![50, 7, 0, 150, 7, 255, 100, 7, 0];
        autocontrast(&mut img);
        assert_eq!(img, vec![0, 7, 0, 254, 7, 255, 127, 7, 0]);

        // Sharpness 1 changes nothing; a flat image stays flat whatever the factor.
        let src = crate::test_pixels::noise(5 * 4 * 3, 9);
        let mut img = src.clone();
        adjust_sharpness(&mut img, 5, 1.0);
        assert_eq!(img, src);
        let mut flat = vec![77u8; 5 * 4 * 3];
        adjust_sharpness(&mut flat, 5, 0.2);
        assert_eq!(flat, vec![77u8; 5 * 4 * 3]);

        // Equalize: 257 pixels, one at each level and a second at 0.
        let levels: Vec<u8> = (0..=255u8).chain([0]).flat_map(|v| [v, v, v]).collect();
        let mut img = levels.clone();
        equalize(&mut img);
        // step = (257 − 1) / 255 = 1: level k maps to the count below it.
        assert_eq!(&img[..6], &[0, 0, 0, 2, 2, 2]);
        assert_eq!(&img[255 * 3..256 * 3], &[255, 255, 255]);
    }
}
