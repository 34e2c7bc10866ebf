//! RandomResizedCrop, the crop at the heart of torchvision's and timm's ImageNet references (the
//! "Inception" crop, Szegedy et al. 2015): a window of random area (a fraction `scale` of the
//! image) and random aspect ratio (log-uniform in `ratio`), resized to the output size; for
//! evaluation, the short side resized to `size / crop_fraction` and the centre cropped.
//!
//! The window is drawn from the image's dimensions alone (its header), before any decoding, so a
//! JPEG can decode just the window ([`crate::prep::decode_jpeg_window`]). The resize filter is
//! bilinear (torchvision), bicubic, or either at random per sample (timm's
//! `RandomResizedCropAndInterpolation` with `--train-interpolation random`).

use rand::{Rng, RngExt};

use crate::error::{Error, Result};
use crate::prep::{center_box, Filter, Window};

/// How RandomResizedCrop resamples its training window: one filter, or timm's random choice
/// between bilinear and bicubic per sample. Evaluation uses [`Interpolation::eval_filter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Interpolation {
    /// Pillow's antialiased bilinear (torchvision's default).
    #[default]
    Bilinear,
    /// Pillow's antialiased bicubic.
    Bicubic,
    /// Bilinear or bicubic with probability ½ each, drawn per sample after its window (timm's
    /// `random.choice((BILINEAR, BICUBIC))`).
    Random,
}

impl Interpolation {
    /// The training filter of one sample: the fixed filter, or for [`Interpolation::Random`] one
    /// draw from `rng` (the only case that draws, so the other settings keep their streams).
    pub fn draw(self, rng: &mut impl Rng) -> Filter {
        match self {
            Interpolation::Bilinear => Filter::Bilinear,
            Interpolation::Bicubic => Filter::Bicubic,
            Interpolation::Random => {
                if rng.random::<bool>() {
                    Filter::Bicubic
                } else {
                    Filter::Bilinear
                }
            }
        }
    }

    /// Evaluation's filter: the training filter, and bicubic for [`Interpolation::Random`]
    /// (timm evaluates with bicubic, its data config's default, whatever it trained with).
    pub fn eval_filter(self) -> Filter {
        match self {
            Interpolation::Bilinear => Filter::Bilinear,
            Interpolation::Bicubic | Interpolation::Random => Filter::Bicubic,
        }
    }

    /// The name [`Interpolation::from_str`](std::str::FromStr::from_str) reads.
    pub fn name(self) -> &'static str {
        match self {
            Interpolation::Bilinear => "bilinear",
            Interpolation::Bicubic => "bicubic",
            Interpolation::Random => "random",
        }
    }
}

impl std::str::FromStr for Interpolation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Interpolation> {
        match s {
            "bilinear" => Ok(Interpolation::Bilinear),
            "bicubic" => Ok(Interpolation::Bicubic),
            "random" => Ok(Interpolation::Random),
            other => Err(Error::Usage(format!(
                "interpolation {other:?}: use \"bilinear\" (torchvision), \"bicubic\" or \"random\" (either per sample, timm's --train-interpolation random)"
            ))),
        }
    }
}

/// RandomResizedCrop's parameters, torchvision's defaults by [`Default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomResizedCrop {
    /// Range of the window's area as a fraction of the image's (torchvision: 0.08 to 1).
    pub scale: (f64, f64),
    /// Range of the window's aspect ratio w/h, sampled log-uniformly (torchvision: 3/4 to 4/3).
    pub ratio: (f64, f64),
    /// Evaluation: the short side is resized to `size / crop_fraction` (rounded down) before the
    /// centre crop (torchvision and timm: 0.875, i.e. 256 for 224).
    pub crop_fraction: f64,
    /// The resize filter (torchvision: bilinear; timm's training: random).
    pub interpolation: Interpolation,
}

impl Default for RandomResizedCrop {
    fn default() -> Self {
        RandomResizedCrop {
            scale: (0.08, 1.0),
            ratio: (3.0 / 4.0, 4.0 / 3.0),
            crop_fraction: 0.875,
            interpolation: Interpolation::Bilinear,
        }
    }
}

/// Attempts at a window inside the image before the centre fallback (torchvision: 10).
pub const ATTEMPTS: usize = 10;

impl RandomResizedCrop {
    /// [`Error::Usage`] unless 0 < scale.0 ≤ scale.1 ≤ 1, 0 < ratio.0 ≤ ratio.1 (finite) and
    /// 0 < crop_fraction ≤ 1.
    pub fn validate(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        let (r0, r1) = self.ratio;
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0) {
            return Err(Error::Usage(format!(
                "scale ({s0}, {s1}): give 0 < min ≤ max ≤ 1 (torchvision: 0.08, 1)"
            )));
        }
        if !(r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return Err(Error::Usage(format!(
                "ratio ({r0}, {r1}): give 0 < min ≤ max (torchvision: 3/4, 4/3)"
            )));
        }
        if !(self.crop_fraction > 0.0 && self.crop_fraction <= 1.0) {
            return Err(Error::Usage(format!(
                "crop_fraction {}: give a value in (0, 1] (torchvision: 0.875)",
                self.crop_fraction
            )));
        }
        Ok(())
    }

    /// A training window in a `width`×`height` image, as torchvision's
    /// `RandomResizedCrop.get_params`: up to [`ATTEMPTS`] tries of area `scale` × image area and
    /// a log-uniform aspect ratio (sides rounded half to even, as Python's `round`), the first
    /// that fits placed uniformly at random; else the centre fallback ([`Self::fallback`]).
    pub fn sample(&self, rng: &mut impl Rng, width: u32, height: u32) -> Window {
        let area = width as f64 * height as f64;
        let (log_r0, log_r1) = (self.ratio.0.ln(), self.ratio.1.ln());
        let uniform = |rng: &mut dyn FnMut() -> f64, lo: f64, hi: f64| lo + (hi - lo) * rng();
        let mut unit = || rng.random::<f64>();
        let mut found = None;
        for _ in 0..ATTEMPTS {
            let target = area * uniform(&mut unit, self.scale.0, self.scale.1);
            let aspect = uniform(&mut unit, log_r0, log_r1).exp();
            let w = (target * aspect).sqrt().round_ties_even();
            let h = (target / aspect).sqrt().round_ties_even();
            if w >= 1.0 && w <= width as f64 && h >= 1.0 && h <= height as f64 {
                found = Some((w as u32, h as u32));
                break;
            }
        }
        match found {
            Some((w, h)) => {
                let top = rng.random_range(0..=height - h);
                let left = rng.random_range(0..=width - w);
                (left, top, w, h)
            }
            None => self.fallback(width, height),
        }
    }

    /// torchvision's fallback after [`ATTEMPTS`] misses: the whole image, or, when its aspect is
    /// outside `ratio`, the largest centred window at the nearest allowed ratio.
    pub fn fallback(&self, width: u32, height: u32) -> Window {
        let in_ratio = width as f64 / height as f64;
        let (w, h) = if in_ratio < self.ratio.0 {
            let h = (width as f64 / self.ratio.0).round_ties_even() as u32;
            (width, h.clamp(1, height))
        } else if in_ratio > self.ratio.1 {
            let w = (height as f64 * self.ratio.1).round_ties_even() as u32;
            (w.clamp(1, width), height)
        } else {
            (width, height)
        };
        ((width - w) / 2, (height - h) / 2, w, h)
    }

    /// The side the short side is resized to for evaluation at output `size`:
    /// ⌊size / crop_fraction⌋, at least `size`.
    pub fn eval_resize(&self, size: u32) -> u32 {
        ((size as f64 / self.crop_fraction).floor() as u32).max(size)
    }

    /// The part of a `width`×`height` image that evaluation at output `size` shows (resize the
    /// short side to [`Self::eval_resize`], centre-crop `size`), in the image's own pixels
    /// (left, top, width, height; fractional), as
    /// [`ResizeCrop::resize_short_center_crop`](crate::prep::ResizeCrop::resize_short_center_crop)
    /// computes it.
    pub fn eval_box(&self, width: u32, height: u32, size: u32) -> [f64; 4] {
        center_box(width, height, self.eval_resize(size), size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn windows_fit_and_follow_the_ranges() {
        let rrc = RandomResizedCrop::default();
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(1);
        for (w, h) in [(500, 375), (375, 500), (224, 224), (2400, 1600), (31, 17)] {
            for _ in 0..2000 {
                let (x, y, cw, ch) = rrc.sample(&mut rng, w, h);
                assert!(cw >= 1 && ch >= 1 && x + cw <= w && y + ch <= h);
            }
        }
    }

    #[test]
    fn fallback_is_torchvisions_centre() {
        let rrc = RandomResizedCrop::default();
        // Within the ratio range: the whole image.
        assert_eq!(rrc.fallback(500, 400), (0, 0, 500, 400));
        // Too wide: h = height, w = round(h * 4/3), centred.
        assert_eq!(rrc.fallback(1000, 300), (300, 0, 400, 300));
        // Too tall: w = width, h = round(w / (3/4)).
        assert_eq!(rrc.fallback(300, 1000), (0, 300, 300, 400));
        // A window no attempt can fit (the whole area at ratio 2 to 3 in a square): the fallback,
        // at the nearest allowed ratio.
        let tight = RandomResizedCrop {
            scale: (1.0, 1.0),
            ratio: (2.0, 3.0),
            ..RandomResizedCrop::default()
        };
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(0);
        assert_eq!(tight.sample(&mut rng, 100, 100), tight.fallback(100, 100));
        assert_eq!(tight.fallback(100, 100), (0, 25, 100, 50));
    }

    #[test]
    fn only_random_interpolation_draws() {
        let mut fixed = rand::rngs::ChaCha8Rng::seed_from_u64(3);
        let mut untouched = rand::rngs::ChaCha8Rng::seed_from_u64(3);
        assert_eq!(Interpolation::Bilinear.draw(&mut fixed), Filter::Bilinear);
        assert_eq!(Interpolation::Bicubic.draw(&mut fixed), Filter::Bicubic);
        assert_eq!(
            fixed.random::<u64>(),
            untouched.random::<u64>(),
            "a fixed filter leaves the stream as it was"
        );
        let mut rng = rand::rngs::ChaCha8Rng::seed_from_u64(3);
        let bicubic = (0..4000)
            .filter(|_| Interpolation::Random.draw(&mut rng) == Filter::Bicubic)
            .count();
        // Binomial(4000, 1/2): σ ≈ 32; 200 is over 6σ.
        assert!(
            (1800..=2200).contains(&bicubic),
            "{bicubic} bicubic of 4000"
        );
        assert_eq!(Interpolation::Random.eval_filter(), Filter::Bicubic);
        assert_eq!(Interpolation::Bilinear.eval_filter(), Filter::Bilinear);
        for name in ["bilinear", "bicubic", "random"] {
            let parsed: Interpolation = name.parse().expect("a known name");
            assert_eq!(parsed.name(), name);
        }
        assert!(matches!(
            "nearest".parse::<Interpolation>(),
            Err(Error::Usage(_))
        ));
    }

    #[test]
    fn eval_box_is_resize_then_centre_crop() {
        let rrc = RandomResizedCrop::default();
        assert_eq!(rrc.eval_resize(224), 256);
        // 500x375 → 341x256, crop 224 at (58, 16), scale 500/341.
        let [x, y, w, h] = rrc.eval_box(500, 375, 224);
        let s = 500.0 / 341.0;
        assert!((x - 58.0 * s).abs() < 1e-9 && (y - 16.0 * 375.0 / 256.0).abs() < 1e-9);
        assert!((w - 224.0 * s).abs() < 1e-9 && (h - 224.0 * 375.0 / 256.0).abs() < 1e-9);
        assert!(rrc.validate().is_ok());
        let bad = RandomResizedCrop {
            scale: (0.5, 0.2),
            ..rrc
        };
        assert!(matches!(bad.validate(), Err(Error::Usage(_))));
    }
}
