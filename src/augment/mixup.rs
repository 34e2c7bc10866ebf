//! Batch-level MixUp (Zhang et al. 2018) and CutMix (Yun et al. 2019) with soft labels, as timm's
//! `Mixup` defines them in its default `mode="batch"`: per batch, with probability `prob`, one λ
//! from Beta(α, α) — CutMix's α with probability `switch_prob` when both are enabled — then every
//! image i is mixed with image N − 1 − i (`x.flip(0)`): MixUp blends the pixels,
//! `λ·xᵢ + (1 − λ)·x_{N−1−i}`; CutMix pastes a box of area ≈ (1 − λ) of the image from its
//! partner and recomputes λ from the box's exact area (`correct_lam`). timm requires an even N;
//! an odd final batch here mixes its middle image with itself. The soft labels are
//! `λ·onehot(yᵢ) + (1 − λ)·onehot(y_{N−1−i})`, each one-hot smoothed (`label_smoothing`:
//! off-values smoothing / classes, on-value 1 − smoothing + off).
//!
//! The loader draws each batch's λ and box from (seed, epoch, batch, rank), so batches stay
//! bit-identical for any thread count and a resumed epoch mixes its batches as the first run did.

use rand::rngs::ChaCha8Rng;
use rand::RngExt;
use rand_distr::{Beta, Distribution};

use crate::error::{Error, Result};

/// timm's `Mixup` settings (`mode="batch"`, `correct_lam=True`, no `cutmix_minmax`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mixup {
    /// MixUp's α (0: off; timm's ImageNet recipes: 0.8 or 0.1–0.2).
    pub mixup_alpha: f64,
    /// CutMix's α (0: off; timm's recipes: 1.0).
    pub cutmix_alpha: f64,
    /// Probability of mixing a batch at all.
    pub prob: f64,
    /// Probability of CutMix rather than MixUp when both are on.
    pub switch_prob: f64,
    /// Label smoothing of the one-hot targets (timm's default 0.1).
    pub label_smoothing: f64,
}

impl Default for Mixup {
    /// timm's `Mixup()` defaults: MixUp α 1, CutMix α 0, prob 1, switch 0.5, smoothing 0.1.
    fn default() -> Self {
        Mixup {
            mixup_alpha: 1.0,
            cutmix_alpha: 0.0,
            prob: 1.0,
            switch_prob: 0.5,
            label_smoothing: 0.1,
        }
    }
}

/// One batch's draw: the λ that weighs each image's own label, and CutMix's box.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MixDraw {
    /// The weight of each image's own content and label (1: not mixed); for CutMix, 1 − the
    /// box's area fraction.
    pub lam: f64,
    /// CutMix's box (`y0, y1, x0, x1`: rows y0..y1, columns x0..x1), `None` for MixUp.
    pub cutmix_box: Option<[u32; 4]>,
}

impl Mixup {
    /// [`Error::Usage`] unless the α are ≥ 0 (finite) and prob, switch_prob and smoothing lie in
    /// [0, 1].
    pub fn validate(&self) -> Result<()> {
        let alpha_ok = |a: f64| a >= 0.0 && a.is_finite();
        let unit = |v: f64| (0.0..=1.0).contains(&v);
        if !alpha_ok(self.mixup_alpha) || !alpha_ok(self.cutmix_alpha) {
            return Err(Error::Usage(format!(
                "mixup alpha {} / cutmix alpha {}: give values ≥ 0 (timm's ImageNet recipe: 0.8 and 1.0)",
                self.mixup_alpha, self.cutmix_alpha
            )));
        }
        if !unit(self.prob) || !unit(self.switch_prob) || !unit(self.label_smoothing) {
            return Err(Error::Usage(format!(
                "mixup prob {}, switch_prob {}, label_smoothing {}: give values in [0, 1]",
                self.prob, self.switch_prob, self.label_smoothing
            )));
        }
        Ok(())
    }

    /// Draws one batch's λ and box for `width`×`height` images, as timm's `_params_per_batch`
    /// and `cutmix_bbox_and_lam` (`rand_bbox`: cut sides ⌊side·√(1 − λ)⌋, centre uniform over
    /// the image, the box from centre − ⌊cut/2⌋ to centre + ⌊(cut + 1)/2⌋ clipped to it).
    pub fn draw(&self, rng: &mut ChaCha8Rng, width: u32, height: u32) -> MixDraw {
        let unmixed = MixDraw {
            lam: 1.0,
            cutmix_box: None,
        };
        let enabled = self.mixup_alpha > 0.0 || self.cutmix_alpha > 0.0;
        if !enabled || !rng.random_bool(self.prob) {
            return unmixed;
        }
        let cutmix = match (self.mixup_alpha > 0.0, self.cutmix_alpha > 0.0) {
            (true, true) => rng.random_bool(self.switch_prob),
            (false, true) => true,
            _ => false,
        };
        let alpha = if cutmix {
            self.cutmix_alpha
        } else {
            self.mixup_alpha
        };
        let lam = match Beta::new(alpha, alpha) {
            Ok(beta) => beta.sample(rng),
            Err(_) => return unmixed,
        };
        if !cutmix {
            return MixDraw {
                lam,
                cutmix_box: None,
            };
        }
        let ratio = (1.0 - lam).sqrt();
        let (h, w) = (height as i64, width as i64);
        let (cut_h, cut_w) = ((h as f64 * ratio) as i64, (w as f64 * ratio) as i64);
        let cy = rng.random_range(0..h);
        let cx = rng.random_range(0..w);
        let y0 = (cy - cut_h / 2).clamp(0, h);
        let y1 = (cy + (cut_h + 1) / 2).clamp(0, h);
        let x0 = (cx - cut_w / 2).clamp(0, w);
        let x1 = (cx + (cut_w + 1) / 2).clamp(0, w);
        let area = ((y1 - y0) * (x1 - x0)) as f64;
        MixDraw {
            lam: 1.0 - area / (h * w) as f64,
            cutmix_box: Some([y0, y1, x0, x1].map(|v| v as u32)),
        }
    }

    /// Mixes a batch of `n` CHW f32 images (`width`×`height` planes, 3 channels) in place with
    /// their partners N − 1 − i, as `draw` says.
    pub fn mix_images(draw: &MixDraw, images: &mut [f32], n: usize, width: usize, height: usize) {
        let per_image = 3 * width * height;
        if draw.lam == 1.0 || n == 0 {
            return;
        }
        let lam = draw.lam as f32;
        let rest = (1.0 - draw.lam) as f32;
        for i in 0..n / 2 {
            let j = n - 1 - i;
            let (head, tail) = images.split_at_mut(j * per_image);
            let a = &mut head[i * per_image..(i + 1) * per_image];
            let b = &mut tail[..per_image];
            match draw.cutmix_box {
                None => {
                    for (va, vb) in a.iter_mut().zip(b.iter_mut()) {
                        let (xa, xb) = (*va, *vb);
                        *va = xa * lam + xb * rest;
                        *vb = xb * lam + xa * rest;
                    }
                }
                Some([y0, y1, x0, x1]) => {
                    for c in 0..3 {
                        for y in y0 as usize..y1 as usize {
                            let row = c * width * height + y * width;
                            let span = row + x0 as usize..row + x1 as usize;
                            a[span.clone()].swap_with_slice(&mut b[span]);
                        }
                    }
                }
            }
        }
        if n % 2 == 1 && draw.cutmix_box.is_none() {
            // The middle image is its own partner: λ·x + (1 − λ)·x, as timm computes it.
            let mid = &mut images[(n / 2) * per_image..(n / 2 + 1) * per_image];
            for v in mid {
                *v = *v * lam + *v * rest;
            }
        }
    }

    /// The batch's soft labels, `[n, classes]` row-major, into `out` (timm's `mixup_target`).
    pub fn soft_labels(&self, draw: &MixDraw, labels: &[i64], classes: usize, out: &mut Vec<f32>) {
        let n = labels.len();
        let off = (self.label_smoothing / classes as f64) as f32;
        let on = (1.0 - self.label_smoothing + self.label_smoothing / classes as f64) as f32;
        let (lam, rest) = (draw.lam as f32, (1.0 - draw.lam) as f32);
        out.clear();
        out.resize(n * classes, 0.0);
        for (i, row) in out.chunks_exact_mut(classes).enumerate() {
            let (own, partner) = (labels[i] as usize, labels[n - 1 - i] as usize);
            for (k, v) in row.iter_mut().enumerate() {
                let y1 = if k == own { on } else { off };
                let y2 = if k == partner { on } else { off };
                *v = y1 * lam + y2 * rest;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn both() -> Mixup {
        Mixup {
            mixup_alpha: 0.8,
            cutmix_alpha: 1.0,
            ..Mixup::default()
        }
    }

    #[test]
    fn cutmix_lambda_is_the_box_area_and_labels_sum_to_one() {
        let mix = both();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (w, h) = (24usize, 16usize);
        let (mut cut, mut blend) = (0, 0);
        for _ in 0..400 {
            let d = mix.draw(&mut rng, w as u32, h as u32);
            assert!((0.0..=1.0).contains(&d.lam));
            let n = 5;
            let images: Vec<f32> = (0..n * 3 * w * h)
                .map(|k| (k / (3 * w * h)) as f32)
                .collect();
            let mut mixed = images.clone();
            Mixup::mix_images(&d, &mut mixed, n, w, h);
            match d.cutmix_box {
                Some([y0, y1, x0, x1]) => {
                    cut += 1;
                    let area = ((y1 - y0) * (x1 - x0)) as f64;
                    assert!((d.lam - (1.0 - area / (w * h) as f64)).abs() < 1e-12);
                    // Image 0's pixels from image 4: exactly the box's area, per channel.
                    let from_partner = mixed[..3 * w * h].iter().filter(|&&v| v == 4.0).count();
                    assert_eq!(from_partner as f64, 3.0 * area);
                }
                None => {
                    blend += 1;
                    let expect = 0.0 * d.lam as f32 + 4.0 * (1.0 - d.lam) as f32;
                    assert_eq!(mixed[0], expect);
                }
            }
            let labels = [0i64, 1, 2, 1, 3];
            let mut soft = Vec::new();
            mix.soft_labels(&d, &labels, 4, &mut soft);
            for row in soft.chunks_exact(4) {
                let sum: f32 = row.iter().sum();
                assert!((sum - 1.0).abs() < 1e-6, "{sum}");
            }
        }
        assert!(cut > 150 && blend > 150, "switch_prob 0.5: {cut} / {blend}");
        // Off: λ = 1, nothing drawn beyond the probability.
        let off = Mixup {
            mixup_alpha: 0.0,
            ..Mixup::default()
        };
        assert_eq!(off.draw(&mut rng, 8, 8).lam, 1.0);
    }
}
