//! Progressive resizing (FFCV's ImageNet recipe, after Fast.ai's progressive resizing and
//! Touvron et al. 2019, "Fixing the train-test resolution discrepancy"): the training output side
//! grows with the epochs — `min` until `start_epoch`, then linearly to `max` at `end_epoch`,
//! rounded to a multiple of `multiple` (FFCV: 160 → 192, multiples of 32), evaluated at a larger
//! side (FFCV: 224, the loader's `crop` for `train = false`).

use crate::error::{Error, Result};

/// A schedule of the output side per epoch, as FFCV's `get_resolution`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressiveResize {
    /// The side up to `start_epoch`.
    pub min: u32,
    /// The side from `end_epoch` on.
    pub max: u32,
    /// The last epoch at `min`.
    pub start_epoch: u64,
    /// The first epoch at `max`.
    pub end_epoch: u64,
    /// Sides in between are rounded to a multiple of this (FFCV: 32).
    pub multiple: u32,
}

impl ProgressiveResize {
    /// The output side in `epoch`: `min` up to `start_epoch`, `max` from `end_epoch`, in between
    /// the linear interpolation rounded (half to even, as numpy) to a multiple of `multiple`.
    pub fn size(&self, epoch: u64) -> u32 {
        if epoch <= self.start_epoch {
            return self.min;
        }
        if epoch >= self.end_epoch {
            return self.max;
        }
        let t = (epoch - self.start_epoch) as f64 / (self.end_epoch - self.start_epoch) as f64;
        let side = self.min as f64 + t * (self.max as f64 - self.min as f64);
        let m = self.multiple.max(1) as f64;
        ((side / m).round_ties_even() * m) as u32
    }

    /// [`Error::Usage`] unless 1 ≤ min ≤ max ≤ `limit`, start_epoch ≤ end_epoch and multiple ≥ 1.
    pub fn validate(&self, limit: u32) -> Result<()> {
        if !(1 <= self.min && self.min <= self.max && self.max <= limit)
            || self.start_epoch > self.end_epoch
            || self.multiple == 0
        {
            return Err(Error::Usage(format!(
                "progressive resize {self:?}: give 1 ≤ min ≤ max ≤ {limit}, start_epoch ≤ end_epoch and multiple ≥ 1 (FFCV: 160, 192, epochs 11 to 13 of 16, 32)"
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_follow_ffcvs_schedule() {
        // FFCV's rn50 16-epoch config: 160 → 192 from epoch 11 to 13, multiples of 32.
        let s = ProgressiveResize {
            min: 160,
            max: 192,
            start_epoch: 11,
            end_epoch: 13,
            multiple: 32,
        };
        let sizes: Vec<u32> = (0..16).map(|e| s.size(e)).collect();
        // Epoch 12: 176 / 32 = 5.5, rounded half to even: 6 → 192.
        assert_eq!(sizes[..12], [160; 12]);
        assert_eq!(sizes[12..], [192; 4]);
        let wide = ProgressiveResize {
            min: 128,
            max: 256,
            start_epoch: 0,
            end_epoch: 4,
            multiple: 32,
        };
        assert_eq!(
            (0..6).map(|e| wide.size(e)).collect::<Vec<_>>(),
            [128, 160, 192, 224, 256, 256]
        );
        assert!(wide.validate(8192).is_ok());
        assert!(ProgressiveResize { min: 300, ..wide }
            .validate(8192)
            .is_err());
    }
}
