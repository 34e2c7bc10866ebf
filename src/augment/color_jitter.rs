//! ColorJitter (torchvision.transforms.v2.ColorJitter, timm's `color_jitter`): brightness,
//! contrast, saturation and hue factors drawn uniformly per sample and applied in a random order
//! per sample, each as torchvision defines it ([`adjust_brightness`], [`adjust_contrast`],
//! [`adjust_saturation`], [`adjust_hue`]).

use rand::rngs::ChaCha8Rng;
use rand::RngExt;

use super::{adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation};
use super::{PixelOp, SampleParams};
use crate::error::{Error, Result};

/// ColorJitter's ranges; `None` leaves that adjustment out (and draws nothing for it).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ColorJitter {
    /// Range of the brightness factor.
    pub brightness: Option<(f32, f32)>,
    /// Range of the contrast factor.
    pub contrast: Option<(f32, f32)>,
    /// Range of the saturation factor.
    pub saturation: Option<(f32, f32)>,
    /// Range of the hue shift, in turns (within −0.5 to 0.5).
    pub hue: Option<(f32, f32)>,
}

/// One sample's ColorJitter draw.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JitterDraw {
    /// The order the four adjustments ran in: 0 brightness, 1 contrast, 2 saturation, 3 hue
    /// (torchvision's `fn_idx`).
    pub order: [u8; 4],
    /// The brightness factor (`None`: not jittered).
    pub brightness: Option<f32>,
    /// The contrast factor.
    pub contrast: Option<f32>,
    /// The saturation factor.
    pub saturation: Option<f32>,
    /// The hue shift.
    pub hue: Option<f32>,
}

impl ColorJitter {
    /// torchvision's scalar form `ColorJitter(brightness, contrast, saturation, hue)`: factors in
    /// [max(0, 1 − v), 1 + v] and the hue shift in [−hue, hue]; 0 leaves an adjustment out.
    /// [`Error::Usage`] for a negative value or a hue above 0.5.
    pub fn new(brightness: f32, contrast: f32, saturation: f32, hue: f32) -> Result<ColorJitter> {
        let factor = |name: &str, v: f32| {
            if !(v >= 0.0 && v.is_finite()) {
                return Err(Error::Usage(format!(
                    "color jitter {name} {v}: give a value ≥ 0 (timm: 0.4)"
                )));
            }
            Ok((v > 0.0).then(|| ((1.0 - v).max(0.0), 1.0 + v)))
        };
        if !(0.0..=0.5).contains(&hue) {
            return Err(Error::Usage(format!(
                "color jitter hue {hue}: give a value in [0, 0.5]"
            )));
        }
        Ok(ColorJitter {
            brightness: factor("brightness", brightness)?,
            contrast: factor("contrast", contrast)?,
            saturation: factor("saturation", saturation)?,
            hue: (hue > 0.0).then_some((-hue, hue)),
        })
    }

    /// Draws one sample's order and factors: a uniform permutation of the four (drawn even when
    /// some are off, as torchvision's `randperm(4)`), then each enabled factor uniformly in its
    /// range, in the order brightness, contrast, saturation, hue.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> JitterDraw {
        let mut order = [0u8, 1, 2, 3];
        for i in (1..4).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        let mut uniform =
            |range: Option<(f32, f32)>| range.map(|(lo, hi)| lo + (hi - lo) * rng.random::<f32>());
        JitterDraw {
            order,
            brightness: uniform(self.brightness),
            contrast: uniform(self.contrast),
            saturation: uniform(self.saturation),
            hue: uniform(self.hue),
        }
    }
}

/// Applies a drawn jitter to an HWC RGB image, in its order.
pub fn apply_jitter(img: &mut [u8], draw: &JitterDraw) {
    for step in draw.order {
        match (
            step,
            draw.brightness,
            draw.contrast,
            draw.saturation,
            draw.hue,
        ) {
            (0, Some(f), ..) => adjust_brightness(img, f),
            (1, _, Some(f), ..) => adjust_contrast(img, f),
            (2, _, _, Some(f), _) => adjust_saturation(img, f),
            (3, .., Some(f)) => adjust_hue(img, f),
            _ => {}
        }
    }
}

impl PixelOp for ColorJitter {
    fn describe(&self) -> String {
        let range = |r: Option<(f32, f32)>| r.map_or("-".to_string(), |(a, b)| format!("{a},{b}"));
        format!(
            "color_jitter(b={} c={} s={} h={})",
            range(self.brightness),
            range(self.contrast),
            range(self.saturation),
            range(self.hue)
        )
    }

    fn apply(&self, rng: &mut ChaCha8Rng, img: &mut [u8], _: usize, params: &mut SampleParams) {
        let draw = self.draw(rng);
        apply_jitter(img, &draw);
        params.draws.jitter = Some(draw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn draws_cover_every_order_and_stay_in_range() {
        let jitter = ColorJitter::new(0.4, 0.4, 0.4, 0.1).expect("valid");
        assert_eq!(jitter.brightness, Some((0.6, 1.4)));
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut orders = std::collections::HashSet::new();
        for _ in 0..2000 {
            let d = jitter.draw(&mut rng);
            let mut sorted = d.order;
            sorted.sort();
            assert_eq!(sorted, [0, 1, 2, 3]);
            orders.insert(d.order);
            let b = d.brightness.expect("on");
            assert!((0.6..=1.4).contains(&b));
            assert!(d.hue.is_some_and(|h| (-0.1..=0.1).contains(&h)));
        }
        assert_eq!(orders.len(), 24, "all 4! orders occur");
        assert!(ColorJitter::new(0.0, 0.0, 0.0, 0.6).is_err());
        assert_eq!(
            ColorJitter::new(0.0, 0.2, 0.0, 0.0)
                .expect("valid")
                .brightness,
            None
        );
    }

    #[test]
    fn the_order_matters_and_is_followed() {
        let img = crate::test_pixels::noise(8 * 8 * 3, 4);
        let draw = |order| JitterDraw {
            order,
            brightness: Some(1.3),
            contrast: None,
            saturation: Some(0.2),
            hue: None,
        };
        let mut a = img.clone();
        apply_jitter(&mut a, &draw([0, 1, 2, 3]));
        let mut expected = img.clone();
        adjust_brightness(&mut expected, 1.3);
        adjust_saturation(&mut expected, 0.2);
        assert_eq!(a, expected);
        let mut b = img.clone();
        apply_jitter(&mut b, &draw([2, 3, 1, 0]));
        let mut expected = img;
        adjust_saturation(&mut expected, 0.2);
        adjust_brightness(&mut expected, 1.3);
        assert_eq!(b, expected);
        assert_ne!(a, b);
    }
}
