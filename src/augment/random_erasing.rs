//! Random erasing (Zhong et al. 2017, "Random Erasing Data Augmentation"), as
//! torchvision.transforms.v2.RandomErasing and timm's `RandomErasing` (one region, `max_count=1`)
//! define it: with probability `p`, a rectangle of random area (a fraction `scale` of the image)
//! and random aspect ratio (log-uniform in `ratio`), up to 10 attempts at one that fits, filled
//! with a constant (torchvision's `value`, timm's `mode="const"`: 0), one normal value per
//! channel (timm's `"rand"`) or one per value (`value="random"`, timm's `"pixel"`).
//!
//! Both libraries erase the normalised tensor, so the loader erases its f32 output after the
//! normalisation (a fill of 0 is then the mean colour, and random fills are N(0, 1) in
//! normalised units); u8 output has no normalised values to erase.

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

use crate::error::{Error, Result};

/// What an erased region is filled with, in normalised units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum EraseFill {
    /// One value per channel (torchvision's default and timm's `"const"`: 0).
    Constant([f32; 3]),
    /// One N(0, 1) value per channel (timm's `"rand"`).
    PerChannel,
    /// One N(0, 1) value per pixel and channel (torchvision's `value="random"`, timm's
    /// `"pixel"`).
    PerPixel,
}

/// Random erasing's parameters; [`Default`] is torchvision's (p 0.5, scale 0.02–0.33, ratio
/// 0.3–3.3, fill 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RandomErasing {
    /// Probability of erasing a sample.
    pub p: f64,
    /// Range of the region's area as a fraction of the image's.
    pub scale: (f64, f64),
    /// Range of the region's aspect ratio h/w (log-uniform).
    pub ratio: (f64, f64),
    /// The fill.
    pub fill: EraseFill,
}

impl Default for RandomErasing {
    fn default() -> Self {
        RandomErasing {
            p: 0.5,
            scale: (0.02, 0.33),
            ratio: (0.3, 3.3),
            fill: EraseFill::Constant([0.0; 3]),
        }
    }
}

/// One sample's erased region, in output pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EraseDraw {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
    /// Seed of the random fill's values (unused by a constant fill).
    pub fill_seed: u64,
}

impl RandomErasing {
    /// timm's `RandomErasing(probability=p, mode="pixel")` as its ImageNet training uses it
    /// (`--reprob p --remode pixel`): area 0.02–1/3, aspect 0.3–1/0.3, per-pixel N(0, 1).
    pub fn timm(p: f64) -> RandomErasing {
        RandomErasing {
            p,
            scale: (0.02, 1.0 / 3.0),
            ratio: (0.3, 1.0 / 0.3),
            fill: EraseFill::PerPixel,
        }
    }

    /// [`Error::Usage`] unless p is a probability, 0 < scale.0 ≤ scale.1 ≤ 1 and
    /// 0 < ratio.0 ≤ ratio.1 (finite).
    pub fn validate(&self) -> Result<()> {
        let (s0, s1) = self.scale;
        let (r0, r1) = self.ratio;
        if !(0.0..=1.0).contains(&self.p) {
            return Err(Error::Usage(format!(
                "random erasing p {}: give a probability (torchvision: 0.5, timm: 0.25)",
                self.p
            )));
        }
        if !(s0 > 0.0 && s0 <= s1 && s1 <= 1.0 && r0 > 0.0 && r0 <= r1 && r1.is_finite()) {
            return Err(Error::Usage(format!(
                "random erasing scale ({s0}, {s1}), ratio ({r0}, {r1}): give 0 < min ≤ max ≤ 1 and 0 < min ≤ max (torchvision: (0.02, 0.33), (0.3, 3.3))"
            )));
        }
        Ok(())
    }

    /// Draws one sample's region in a `width`×`height` image: `None` when the sample is not
    /// erased (probability 1 − p) or no attempt fits (torchvision then leaves it unchanged).
    /// Sides are rounded half to even (Python's `round`): h = √(area·ratio), w = √(area/ratio).
    pub fn draw(&self, rng: &mut ChaCha8Rng, width: u32, height: u32) -> Option<EraseDraw> {
        if !rng.random_bool(self.p) {
            return None;
        }
        let area = width as f64 * height as f64;
        let (log_r0, log_r1) = (self.ratio.0.ln(), self.ratio.1.ln());
        for _ in 0..10 {
            let target =
                area * (self.scale.0 + (self.scale.1 - self.scale.0) * rng.random::<f64>());
            let aspect = (log_r0 + (log_r1 - log_r0) * rng.random::<f64>()).exp();
            let h = (target * aspect).sqrt().round_ties_even();
            let w = (target / aspect).sqrt().round_ties_even();
            if h < height as f64 && w < width as f64 {
                let (w, h) = (w as u32, h as u32);
                let y = rng.random_range(0..=height - h);
                let x = rng.random_range(0..=width - w);
                return Some(EraseDraw {
                    x,
                    y,
                    w,
                    h,
                    fill_seed: rng.random(),
                });
            }
        }
        None
    }

    /// Fills `draw`'s region of a CHW f32 image (`width`×`height` planes) with the fill.
    pub fn erase(&self, draw: &EraseDraw, chw: &mut [f32], width: usize, height: usize) {
        let mut values = ChaCha8Rng::seed_from_u64(draw.fill_seed);
        let mut normal = || -> f32 { StandardNormal.sample(&mut values) };
        let per_channel = match self.fill {
            EraseFill::Constant(v) => Some(v),
            EraseFill::PerChannel => Some([normal(), normal(), normal()]),
            EraseFill::PerPixel => None,
        };
        let (x, y, w, h) = (
            draw.x as usize,
            draw.y as usize,
            draw.w as usize,
            draw.h as usize,
        );
        for (c, plane) in chw.chunks_exact_mut(width * height).take(3).enumerate() {
            for row in plane.chunks_exact_mut(width).skip(y).take(h) {
                for v in &mut row[x..x + w] {
                    *v = per_channel.map_or_else(&mut normal, |fill| fill[c]);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_fit_follow_p_and_fill_only_themselves() {
        let erasing = RandomErasing::default();
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (w, h) = (40usize, 30usize);
        let mut erased = 0;
        for _ in 0..2000 {
            if let Some(d) = erasing.draw(&mut rng, w as u32, h as u32) {
                erased += 1;
                assert!(d.x + d.w <= w as u32 && d.y + d.h <= h as u32);
                assert!(d.w < w as u32 && d.h < h as u32);
            }
        }
        // p = 0.5 (and some misses): 2000 draws give about 1000.
        assert!((800..=1100).contains(&erased), "{erased}");

        let d = EraseDraw {
            x: 3,
            y: 2,
            w: 4,
            h: 5,
            fill_seed: 9,
        };
        let mut img = vec![7.0f32; 3 * w * h];
        let constant = RandomErasing {
            fill: EraseFill::Constant([1.0, 2.0, 3.0]),
            ..erasing
        };
        constant.erase(&d, &mut img, w, h);
        for (k, &v) in img.iter().enumerate() {
            let (c, y, x) = (k / (w * h), (k / w) % h, k % w);
            let inside = (3..7).contains(&x) && (2..7).contains(&y);
            assert_eq!(v, if inside { [1.0, 2.0, 3.0][c] } else { 7.0 });
        }
        let mut img = vec![7.0f32; 3 * w * h];
        RandomErasing::timm(1.0).erase(&d, &mut img, w, h);
        let changed = img.iter().filter(|&&v| v != 7.0).count();
        assert_eq!(changed, 3 * 4 * 5);
    }
}
