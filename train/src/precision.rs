//! Mixed precision (`--precision bf16|fp16|f32`): the network's arithmetic type, with the f32
//! master weights, momentum and checkpoints unchanged. The paper trained in f32, the default.
//!
//! fp16's narrow exponent underflows small gradients, so its steps go through a dynamic
//! [`LossScaler`] (PyTorch's `GradScaler` rule); bf16 has f32's exponent and needs none.

use tch::{Kind, Tensor};

/// The network's arithmetic type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Precision {
    /// f32 throughout (the paper's).
    #[default]
    F32,
    /// bfloat16 convolutions and matrix products.
    Bf16,
    /// float16 convolutions and matrix products, with dynamic loss scaling.
    Fp16,
}

impl Precision {
    /// The tensor type the convolutions and matrix products run in.
    pub fn compute_kind(self) -> Kind {
        match self {
            Precision::F32 => Kind::Float,
            Precision::Bf16 => Kind::BFloat16,
            Precision::Fp16 => Kind::Half,
        }
    }

    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// A loss scaler for this precision (fp16 only).
    pub fn scaler(self) -> Option<LossScaler> {
        (self == Precision::Fp16).then(LossScaler::default)
    }
}

/// Dynamic loss scaling (PyTorch's `torch.amp.GradScaler` defaults): the loss is multiplied by
/// `scale` before the backward pass and the gradients divided by it before the update; a step
/// whose gradients overflowed is skipped and the scale halved; after `growth_interval` good
/// steps in a row the scale doubles.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LossScaler {
    /// The current factor.
    pub scale: f64,
    /// Good steps since the last change.
    pub good_steps: u64,
    /// Good steps before the scale doubles.
    pub growth_interval: u64,
}

impl Default for LossScaler {
    fn default() -> Self {
        LossScaler {
            scale: 65536.0,
            good_steps: 0,
            growth_interval: 2000,
        }
    }
}

impl LossScaler {
    /// The loss to differentiate.
    pub fn scale_loss(&self, loss: &Tensor) -> Tensor {
        loss * self.scale
    }

    /// Divides every gradient in `grads` by the scale; returns whether all are finite (the step
    /// may be taken), and updates the scale for the next step.
    pub fn unscale(&mut self, grads: &mut [Tensor]) -> bool {
        let inv = 1.0 / self.scale;
        // One flag for all gradients, read once: one wait for the device per step.
        let finite = tch::no_grad(|| {
            let flags: Vec<Tensor> = grads
                .iter_mut()
                .map(|g| {
                    let _ = g.g_mul_scalar_(inv);
                    g.isfinite().all()
                })
                .collect();
            flags.is_empty() || Tensor::stack(&flags, 0).all().int64_value(&[]) == 1
        });
        if finite {
            self.good_steps += 1;
            if self.good_steps >= self.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        } else {
            self.scale = (self.scale / 2.0).max(1.0);
            self.good_steps = 0;
        }
        finite
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overflow_skips_and_halves_good_steps_grow() {
        let mut s = LossScaler {
            growth_interval: 2,
            ..LossScaler::default()
        };
        let mut grads = [Tensor::from_slice(&[65536.0f32, -131072.0])];
        assert!(s.unscale(&mut grads));
        assert_eq!(Vec::<f32>::try_from(&grads[0]).unwrap(), vec![1.0, -2.0]);
        assert_eq!((s.scale, s.good_steps), (65536.0, 1));
        assert!(s.unscale(&mut [Tensor::from_slice(&[1.0f32])]));
        assert_eq!((s.scale, s.good_steps), (131072.0, 0));
        let mut bad = [Tensor::from_slice(&[1.0f32, f32::INFINITY])];
        assert!(!s.unscale(&mut bad));
        assert_eq!((s.scale, s.good_steps), (65536.0, 0));
        let mut nan = [Tensor::from_slice(&[f32::NAN])];
        assert!(!s.unscale(&mut nan));
        assert_eq!(s.scale, 32768.0);
    }
}
