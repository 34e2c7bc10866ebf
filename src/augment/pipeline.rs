//! The per-sample ops of a pipeline: after the geometry and the decode, before the normalisation
//! and the layout. Each op is one file implementing [`PixelOp`]; a recipe lists them in order
//! ([`PixelOps`]). An op draws its parameters from the sample's generator — seeded from (seed,
//! epoch, record), after the window's draw and before the lighting's — so a batch stays
//! bit-identical for any thread count, and adding an op is one file and one line in a recipe.
//!
//! The paper's recipe folds its only op, the mirror, into its fused loop instead
//! ([`super::fused_f32_nchw`]).

use rand::rngs::ChaCha8Rng;

use super::SampleParams;

/// A per-sample op on an HWC u8 RGB image, in place.
pub trait PixelOp: Send + Sync + std::fmt::Debug {
    /// The op and its parameters, as stable words for the loader state's recipe digest.
    fn describe(&self) -> String;

    /// Draws this sample's parameters from `rng`, records them in `params`, and applies the op
    /// to `img` (`width` pixels per row, 3 values per pixel).
    fn apply(&self, rng: &mut ChaCha8Rng, img: &mut [u8], width: usize, params: &mut SampleParams);
}

/// A recipe's per-sample ops, in the order they run.
#[derive(Debug, Default)]
pub struct PixelOps(pub Vec<Box<dyn PixelOp>>);

impl PixelOps {
    /// Runs every op in order on one sample.
    pub fn apply(
        &self,
        rng: &mut ChaCha8Rng,
        img: &mut [u8],
        width: usize,
        params: &mut SampleParams,
    ) {
        for op in &self.0 {
            op.apply(rng, img, width, params);
        }
    }

    /// The ops' words, space-separated (empty without ops).
    pub fn describe(&self) -> String {
        self.0
            .iter()
            .map(|op| op.describe())
            .collect::<Vec<_>>()
            .join(" ")
    }
}
