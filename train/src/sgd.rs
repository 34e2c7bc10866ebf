//! The paper's update rule (§5), with the momentum buffers kept explicitly so that a checkpoint
//! holds them and `--resume` continues exactly:
//!
//! v ← 0.9·v − 0.0005·ε·w − ε·∂L/∂w,  w ← w + v
//!
//! This differs from PyTorch's `SGD` (v ← μ·v + g, w ← w − ε·v) only when ε changes: the paper's
//! velocity carries the old rate's steps, PyTorch's rescales them to the new rate.

use tch::{nn::VarStore, Tensor};

/// Stochastic gradient descent with momentum and weight decay over every trainable variable.
#[derive(Debug)]
pub struct Sgd {
    /// (name, weight, velocity), sorted by name.
    params: Vec<(String, Tensor, Tensor)>,
    /// μ (paper: 0.9).
    pub momentum: f64,
    /// Weight decay (paper: 0.0005).
    pub weight_decay: f64,
}

impl Sgd {
    /// Zero velocities for the trainable variables of `vs`.
    pub fn new(vs: &VarStore, momentum: f64, weight_decay: f64) -> Sgd {
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let params = named
            .into_iter()
            .map(|(name, w)| {
                let v = w.zeros_like();
                (name, w, v)
            })
            .collect();
        Sgd {
            params,
            momentum,
            weight_decay,
        }
    }

    /// Clears the gradients before a backward pass.
    pub fn zero_grad(&mut self) {
        for (_, w, _) in &mut self.params {
            w.zero_grad();
        }
    }

    /// One update with learning rate `lr` (ε) from the gradients of the last backward pass.
    pub fn step(&mut self, lr: f64) {
        let (momentum, decay) = (self.momentum, self.weight_decay);
        tch::no_grad(|| {
            for (_, w, v) in &mut self.params {
                let grad = w.grad();
                if !grad.defined() {
                    continue;
                }
                let _ = v.g_mul_scalar_(momentum);
                let _ = v.g_sub_(&((&*w * decay + grad) * lr));
                let _ = w.g_add_(v);
            }
        });
    }

    /// The gradients of the parameters that have one (they share the parameters' gradient
    /// storage: changing them in place changes what [`Sgd::step`] reads).
    pub fn grads(&self) -> Vec<Tensor> {
        self.params
            .iter()
            .map(|(_, w, _)| w.grad())
            .filter(|g| g.defined())
            .collect()
    }

    /// The velocities by variable name (for checkpoints).
    pub fn velocities(&self) -> impl Iterator<Item = (&str, &Tensor)> {
        self.params.iter().map(|(n, _, v)| (n.as_str(), v))
    }

    /// Restores velocities saved by [`Sgd::velocities`]; every variable must be present with its
    /// shape.
    pub fn load_velocities(
        &mut self,
        mut saved: std::collections::HashMap<String, Tensor>,
    ) -> Result<(), String> {
        for (name, w, v) in &mut self.params {
            let s = saved
                .remove(name.as_str())
                .ok_or_else(|| format!("no momentum buffer for `{name}`"))?;
            if s.size() != w.size() {
                return Err(format!(
                    "momentum buffer for `{name}` has shape {:?}, the model {:?}",
                    s.size(),
                    w.size()
                ));
            }
            tch::no_grad(|| v.copy_(&s));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    /// Three steps on a tiny quadratic, against the formula written out with plain numbers.
    #[test]
    fn step_follows_the_papers_formula() {
        let vs = VarStore::new(Device::Cpu);
        let mut w = vs.root().var("w", &[2], nn::Init::Const(0.0));
        tch::no_grad(|| w.copy_(&Tensor::from_slice(&[1.5f32, -2.0])));
        let mut sgd = Sgd::new(&vs, 0.9, 0.0005);
        let (mut rw, mut rv) = ([1.5f64, -2.0], [0.0f64; 2]);
        for (step, lr) in [0.01, 0.01, 0.001].into_iter().enumerate() {
            sgd.zero_grad();
            // L = Σ 3·w²  →  ∂L/∂w = 6·w
            (&w * &w * 3.0).sum(Kind::Float).backward();
            sgd.step(lr);
            for i in 0..2 {
                let g = 6.0 * rw[i];
                rv[i] = 0.9 * rv[i] - 0.0005 * lr * rw[i] - lr * g;
                rw[i] += rv[i];
            }
            let got: Vec<f32> = w.detach().try_into().expect("f32 values");
            for i in 0..2 {
                assert!(
                    (f64::from(got[i]) - rw[i]).abs() < 1e-5,
                    "step {step}: {got:?} vs {rw:?}"
                );
            }
        }
        let v: Vec<f32> = sgd
            .velocities()
            .next()
            .expect("one variable")
            .1
            .try_into()
            .expect("f32");
        assert!((f64::from(v[0]) - rv[0]).abs() < 1e-5);
    }
}
