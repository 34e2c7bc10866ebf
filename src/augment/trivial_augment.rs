//! TrivialAugmentWide (Müller & Hutter 2021, "TrivialAugment: Tuning-free Yet State-of-the-Art
//! Data Augmentation"), as torchvision.transforms.v2.TrivialAugmentWide defines it: per sample,
//! one op of its 14 drawn uniformly, at one of `bins` magnitudes drawn uniformly (31 by default),
//! negated with probability ½ for the signed ops; geometric ops sample the nearest pixel and fill
//! with 0 ([`super::affine`](super::shear_x)).

use rand::rngs::ChaCha8Rng;
use rand::RngExt;

use super::{adjust_brightness, adjust_contrast, adjust_saturation, adjust_sharpness};
use super::{autocontrast, equalize, posterize, rotate, shear_x, shear_y, solarize, translate};
use super::{PixelOp, SampleParams};
use crate::error::{Error, Result};

/// One op of TrivialAugmentWide's set, in torchvision's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrivialOp {
    /// Unchanged.
    Identity,
    /// Horizontal shear by the magnitude (0 to 0.99), about the top-left corner.
    ShearX,
    /// Vertical shear.
    ShearY,
    /// Horizontal shift by the magnitude (0 to 32 pixels, truncated to whole pixels).
    TranslateX,
    /// Vertical shift.
    TranslateY,
    /// Rotation by the magnitude (0 to 135 degrees) about the centre.
    Rotate,
    /// Brightness factor 1 + magnitude (0 to 0.99).
    Brightness,
    /// Saturation factor 1 + magnitude.
    Color,
    /// Contrast factor 1 + magnitude.
    Contrast,
    /// Sharpness factor 1 + magnitude.
    Sharpness,
    /// Keep the magnitude's bits (8 down to 2).
    Posterize,
    /// Invert values at or above 255 × magnitude (1 down to 0).
    Solarize,
    /// Stretch each channel to the full range.
    AutoContrast,
    /// Histogram equalisation per channel.
    Equalize,
}

impl TrivialOp {
    /// The set, in torchvision's order (the draw picks an index into it).
    pub const ALL: [TrivialOp; 14] = [
        TrivialOp::Identity,
        TrivialOp::ShearX,
        TrivialOp::ShearY,
        TrivialOp::TranslateX,
        TrivialOp::TranslateY,
        TrivialOp::Rotate,
        TrivialOp::Brightness,
        TrivialOp::Color,
        TrivialOp::Contrast,
        TrivialOp::Sharpness,
        TrivialOp::Posterize,
        TrivialOp::Solarize,
        TrivialOp::AutoContrast,
        TrivialOp::Equalize,
    ];

    /// torchvision's name of the op.
    pub fn name(self) -> &'static str {
        match self {
            TrivialOp::Identity => "Identity",
            TrivialOp::ShearX => "ShearX",
            TrivialOp::ShearY => "ShearY",
            TrivialOp::TranslateX => "TranslateX",
            TrivialOp::TranslateY => "TranslateY",
            TrivialOp::Rotate => "Rotate",
            TrivialOp::Brightness => "Brightness",
            TrivialOp::Color => "Color",
            TrivialOp::Contrast => "Contrast",
            TrivialOp::Sharpness => "Sharpness",
            TrivialOp::Posterize => "Posterize",
            TrivialOp::Solarize => "Solarize",
            TrivialOp::AutoContrast => "AutoContrast",
            TrivialOp::Equalize => "Equalize",
        }
    }

    /// The op's magnitude at `bin` of `bins` (`None`: the op has none) and whether it is signed,
    /// as torchvision's `_AUGMENTATION_SPACE`: `linspace` (within an f32 ulp), Posterize
    /// `8 − round(bin / ((bins − 1) / 6))`.
    pub fn magnitude(self, bin: usize, bins: usize) -> (Option<f32>, bool) {
        let space = |start: f32, end: f32| Some(linspace(start, end, bins, bin));
        match self {
            TrivialOp::Identity | TrivialOp::AutoContrast | TrivialOp::Equalize => (None, false),
            TrivialOp::ShearX | TrivialOp::ShearY => (space(0.0, 0.99), true),
            TrivialOp::TranslateX | TrivialOp::TranslateY => (space(0.0, 32.0), true),
            TrivialOp::Rotate => (space(0.0, 135.0), true),
            TrivialOp::Brightness
            | TrivialOp::Color
            | TrivialOp::Contrast
            | TrivialOp::Sharpness => (space(0.0, 0.99), true),
            TrivialOp::Posterize => {
                let per_bit = ((bins - 1) as f64 / 6.0) as f32;
                (Some(8.0 - (bin as f32 / per_bit).round_ties_even()), false)
            }
            TrivialOp::Solarize => (space(1.0, 0.0), false),
        }
    }

    /// Applies the op at `magnitude` to an HWC RGB image `width` pixels wide, in place.
    pub fn apply(self, img: &mut [u8], width: usize, magnitude: f32) {
        let m = magnitude as f64;
        let factor = (1.0 + m) as f32;
        match self {
            TrivialOp::Identity => {}
            TrivialOp::ShearX => shear_x(img, width, m),
            TrivialOp::ShearY => shear_y(img, width, m),
            // Python's int(): toward zero.
            TrivialOp::TranslateX => translate(img, width, m.trunc() as i64, 0),
            TrivialOp::TranslateY => translate(img, width, 0, m.trunc() as i64),
            TrivialOp::Rotate => rotate(img, width, m),
            TrivialOp::Brightness => adjust_brightness(img, factor),
            TrivialOp::Color => adjust_saturation(img, factor),
            TrivialOp::Contrast => adjust_contrast(img, factor),
            TrivialOp::Sharpness => adjust_sharpness(img, width, factor),
            TrivialOp::Posterize => posterize(img, m as u32),
            TrivialOp::Solarize => solarize(img, 255.0 * m),
            TrivialOp::AutoContrast => autocontrast(img),
            TrivialOp::Equalize => equalize(img),
        }
    }
}

/// `torch.linspace(start, end, steps)[i]`: computed in f64 and rounded once to f32 (PyTorch's
/// f32 kernel can differ from it by one unit in the last place).
fn linspace(start: f32, end: f32, steps: usize, i: usize) -> f32 {
    if steps <= 1 {
        return start;
    }
    let (start, end) = (start as f64, end as f64);
    (start + (end - start) * i as f64 / (steps - 1) as f64) as f32
}

/// TrivialAugmentWide with `bins` magnitude bins (torchvision: 31).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrivialAugmentWide {
    /// Number of magnitudes each op's range is split into.
    pub bins: usize,
}

impl Default for TrivialAugmentWide {
    fn default() -> Self {
        TrivialAugmentWide { bins: 31 }
    }
}

/// One sample's TrivialAugmentWide draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrivialDraw {
    /// The op.
    pub op: TrivialOp,
    /// Its magnitude, sign included (0 for the ops without one).
    pub magnitude: f32,
}

impl TrivialAugmentWide {
    /// [`Error::Usage`] unless there are at least 2 bins.
    pub fn validate(&self) -> Result<()> {
        if self.bins < 2 {
            return Err(Error::Usage(format!(
                "trivial augment bins {}: give at least 2 (torchvision: 31)",
                self.bins
            )));
        }
        Ok(())
    }

    /// Draws one sample's op (uniform over [`TrivialOp::ALL`]), its bin (uniform; drawn for every
    /// op, used by those with magnitudes) and, for a signed op, its sign (negative with
    /// probability ½).
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> TrivialDraw {
        let op = TrivialOp::ALL[rng.random_range(0..TrivialOp::ALL.len())];
        let bin = rng.random_range(0..self.bins);
        let magnitude = match op.magnitude(bin, self.bins) {
            (Some(m), true) if rng.random_bool(0.5) => -m,
            (Some(m), _) => m,
            (None, _) => 0.0,
        };
        TrivialDraw { op, magnitude }
    }
}

impl PixelOp for TrivialAugmentWide {
    fn describe(&self) -> String {
        format!("trivial_augment_wide(bins={})", self.bins)
    }

    fn apply(&self, rng: &mut ChaCha8Rng, img: &mut [u8], width: usize, params: &mut SampleParams) {
        let draw = self.draw(rng);
        draw.op.apply(img, width, draw.magnitude);
        params.draws.trivial = Some(draw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn magnitudes_are_torchvisions() {
        let bins = 31;
        assert_eq!(TrivialOp::Rotate.magnitude(0, bins), (Some(0.0), true));
        assert_eq!(TrivialOp::Rotate.magnitude(30, bins), (Some(135.0), true));
        assert_eq!(TrivialOp::Rotate.magnitude(20, bins).0, Some(90.0));
        assert_eq!(TrivialOp::Solarize.magnitude(0, bins), (Some(1.0), false));
        assert_eq!(TrivialOp::Solarize.magnitude(30, bins).0, Some(0.0));
        // Posterize: 8 - round(k / 5): 8 at 0-2, 7 at 3-7, ..., 2 at 28-30.
        let bits: Vec<f32> = (0..bins)
            .map(|k| TrivialOp::Posterize.magnitude(k, bins).0.expect("has bits"))
            .collect();
        assert_eq!(&bits[..4], &[8.0, 8.0, 8.0, 7.0]);
        assert_eq!(bits[30], 2.0);
        assert_eq!(TrivialOp::Equalize.magnitude(7, bins), (None, false));
    }

    #[test]
    fn every_op_is_drawn_and_signed_ones_take_both_signs() {
        let ta = TrivialAugmentWide::default();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut seen = std::collections::HashMap::new();
        for _ in 0..5000 {
            let d = ta.draw(&mut rng);
            let e = seen.entry(d.op.name()).or_insert((false, false));
            e.0 |= d.magnitude < 0.0;
            e.1 |= d.magnitude > 0.0;
        }
        assert_eq!(seen.len(), 14);
        assert_eq!(seen["Rotate"], (true, true));
        assert_eq!(seen["Posterize"], (false, true));
        assert_eq!(seen["Identity"], (false, false));
    }

    #[test]
    fn identity_and_neutral_magnitudes_change_nothing() {
        let src = crate::test_pixels::noise(9 * 6 * 3, 8);
        for op in [
            TrivialOp::Identity,
            TrivialOp::ShearX,
            TrivialOp::TranslateY,
            TrivialOp::Rotate,
            TrivialOp::Brightness,
            TrivialOp::Sharpness,
        ] {
            let mut img = src.clone();
            op.apply(&mut img, 9, 0.0);
            assert_eq!(img, src, "{op:?}");
        }
        let mut img = src.clone();
        TrivialOp::Posterize.apply(&mut img, 9, 8.0);
        assert_eq!(img, src);
    }
}
