//! Which augmentation recipe a loader runs: the paper's (§4.1, the default and the fused fast
//! path) or today's RandomResizedCrop recipe (torchvision's and timm's ImageNet references).
//!
//! A sample goes through the same stages in both: its geometry (where the output's pixels come
//! from — drawn before decoding, from the record's dimensions), its decode, the per-sample ops
//! (mirror, PCA lighting), the normalisation and the layout. The paper's recipe reads a fixed
//! `crop`×`crop` patch of the stored image, so its stages run as one fused loop
//! ([`super::fused_f32_nchw`], [`super::fused_u8_nhwc`]); RandomResizedCrop decodes and resizes
//! a window first (exactly, or crop-aware: [`crate::prep::decode_jpeg_window`]), then runs the
//! same fused loop over the resized window.

use super::{
    ColorJitter, Mixup, ProgressiveResize, RandomErasing, RandomResizedCrop, TrivialAugmentWide,
};
use crate::error::{Error, Result};

/// How RandomResizedCrop decodes JPEG records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DecodeMode {
    /// Decode the whole image at full size, cut the window out and resize it: pixel for pixel
    /// torchvision's `resized_crop` on the PIL image (within 1 level).
    Exact,
    /// Decode only the window's region at the smallest DCT scale that keeps it at least the
    /// output size ([`crate::prep::decode_jpeg_window`]), then resize: several times faster on
    /// large photos, within the tolerance stated in `docs/ENGINE.md`. Non-JPEG records decode
    /// exactly.
    #[default]
    CropAware,
}

impl std::str::FromStr for DecodeMode {
    type Err = Error;

    /// `"exact"` or `"crop"` (crop-aware).
    fn from_str(s: &str) -> Result<DecodeMode> {
        match s {
            "exact" => Ok(DecodeMode::Exact),
            "crop" | "crop-aware" => Ok(DecodeMode::CropAware),
            other => Err(Error::Usage(format!(
                "decode {other:?}: use \"exact\" (full decode, pixel-exact) or \"crop\" (crop-aware: decode only the window, at a reduced DCT scale)"
            ))),
        }
    }
}

impl DecodeMode {
    /// The name [`DecodeMode::from_str`](std::str::FromStr::from_str) reads.
    pub fn name(self) -> &'static str {
        match self {
            DecodeMode::Exact => "exact",
            DecodeMode::CropAware => "crop",
        }
    }
}

/// An augmentation recipe.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Recipe {
    /// The paper's §4.1: a random `crop`×`crop` patch of the stored `size`×`size` image (the
    /// centre patch, or the 10 patches, for evaluation), mirror, PCA lighting, mean subtraction.
    #[default]
    Paper,
    /// torchvision's and timm's: RandomResizedCrop of the whole image to `crop`×`crop` for
    /// training; short side to `crop / crop_fraction` and the centre crop for evaluation. Works
    /// on every mode; datasets that keep whole images (`--mode original`, or `--mode jpeg
    /// --max-side N`) give it the full frame.
    RandomResizedCrop {
        /// The crop's parameters.
        crop: RandomResizedCrop,
        /// How JPEG records are decoded.
        decode: DecodeMode,
    },
}

impl std::str::FromStr for Recipe {
    type Err = Error;

    /// `"paper"`, or `"rrc"` with torchvision's defaults and crop-aware decoding.
    fn from_str(s: &str) -> Result<Recipe> {
        match s {
            "paper" => Ok(Recipe::Paper),
            "rrc" => Ok(Recipe::RandomResizedCrop {
                crop: RandomResizedCrop::default(),
                decode: DecodeMode::default(),
            }),
            other => Err(Error::Usage(format!(
                "recipe {other:?}: use \"paper\" (the paper's crops of the stored 256×256 images) or \"rrc\" (RandomResizedCrop of the whole image, torchvision's ImageNet recipe)"
            ))),
        }
    }
}

impl Recipe {
    /// The name [`Recipe::from_str`](std::str::FromStr::from_str) reads.
    pub fn name(&self) -> &'static str {
        match self {
            Recipe::Paper => "paper",
            Recipe::RandomResizedCrop { .. } => "rrc",
        }
    }
}

/// The optional ops of the RandomResizedCrop recipe (all off by [`Default`]), in the order they
/// run: after the mirror, [`TrivialAugmentWide`] then [`ColorJitter`] on the resized window (u8);
/// [`RandomErasing`] on the normalised f32 output, where torchvision and timm erase; [`Mixup`]
/// on the whole batch; and the batch's shape: `views` per record, the output side per epoch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Augmentations {
    /// Brightness, contrast, saturation and hue jitter.
    pub color_jitter: Option<ColorJitter>,
    /// One op of TrivialAugmentWide's set per sample.
    pub trivial_augment: Option<TrivialAugmentWide>,
    /// Random erasing of the normalised output (f32 layout only).
    pub random_erasing: Option<RandomErasing>,
    /// Batch-level MixUp / CutMix with soft labels (f32 layout only).
    pub mixup: Option<Mixup>,
    /// Augmented views of each record in a training batch (multi-view: timm's repeated
    /// augmentation, the two views of self-supervised methods); each view has its own draws
    /// and label entry, a batch of `batch_size` records holds `views × batch_size` images.
    pub views: usize,
    /// The training output side per epoch instead of `crop` (progressive resizing).
    pub progressive: Option<ProgressiveResize>,
}

impl Default for Augmentations {
    fn default() -> Self {
        Augmentations {
            color_jitter: None,
            trivial_augment: None,
            random_erasing: None,
            mixup: None,
            views: 1,
            progressive: None,
        }
    }
}

impl Augmentations {
    /// True when no optional op is on.
    pub fn is_empty(&self) -> bool {
        *self == Augmentations::default()
    }

    /// [`crate::Error::Usage`] for an op whose parameters are out of range (output sides up to
    /// `max_side`).
    pub fn validate(&self, max_side: u32) -> Result<()> {
        if !(1..=64).contains(&self.views) {
            return Err(Error::Usage(format!(
                "views {}: give 1 to 64 augmented views per record",
                self.views
            )));
        }
        if let Some(p) = &self.progressive {
            p.validate(max_side)?;
        }
        if let Some(t) = &self.trivial_augment {
            t.validate()?;
        }
        if let Some(e) = &self.random_erasing {
            e.validate()?;
        }
        if let Some(m) = &self.mixup {
            m.validate()?;
        }
        Ok(())
    }
}
