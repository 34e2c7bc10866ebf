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

use super::RandomResizedCrop;
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
