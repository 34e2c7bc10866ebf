//! The end of §4.1's augmentation run on the device (`--upload u8`): the engine sends u8 NHWC
//! patches (crop and mirror done on the CPU, a quarter of f32's bytes) with each sample's drawn
//! parameters, and PCA lighting, mean subtraction and the NHWC → NCHW change run here as a few
//! whole-batch tensor ops — what FFCV and timm do on the GPU.
//!
//! The ops are the engine's own f32 formulas in the same order ([`alexpipe::Normalization`]):
//! `px − m + δ` with the mean image `m` cropped and mirrored with each patch (gathered in one
//! indexing op), or `px · (1/σ) + (δ − μ) · (1/σ)` per channel, with `δ` each sample's lighting
//! shift computed on the host exactly as the engine does. On the CPU the result equals the
//! engine's f32 batch (tested).

use alexpipe::{Batch, Layout, MeanMode, Normalization, Recipe};
use tch::{Device, Kind, Tensor};

/// Finishes u8 batches into network inputs on one device.
#[derive(Debug)]
pub struct Finisher {
    device: Device,
    /// The paper's recipe reads patches of the stored image, so the mean image is cropped and
    /// mirrored with them; RandomResizedCrop's u8 output is already its window (its mirror done
    /// as a pixel op), with no mean image.
    mean_image: Option<Tensor>,
    /// `[1, 1, 1, 3]` channel scale 1/σ and mean μ (levels).
    inv_std: Tensor,
    channel_mean: Tensor,
    eigen: alexpipe::Eigenbasis,
    /// NCHW shape with channels-last strides (the permuted NHWC tensor as is) instead of a
    /// contiguous NCHW copy.
    channels_last: bool,
}

/// Options a device cannot finish.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    /// RandomResizedCrop windows have no place in the paper's mean image.
    #[error(
        "--upload u8 with --recipe rrc normalises by channel: use --normalize channel or imagenet"
    )]
    MeanImageWithWindows,
}

impl Finisher {
    /// A finisher applying `norm` (the engine's [`alexpipe::Loader::normalization`]) for
    /// `recipe` on `device`.
    pub fn new(
        norm: &Normalization<'_>,
        recipe: &Recipe,
        device: Device,
        channels_last: bool,
    ) -> Result<Finisher, FinishError> {
        let mean_image = match (norm.mean, recipe) {
            (MeanMode::Image, Recipe::Paper) => {
                let s = norm.size as i64;
                Some(
                    Tensor::from_slice(norm.mean_image)
                        .view([s, s, 3])
                        .to(device),
                )
            }
            (MeanMode::Image, _) => return Err(FinishError::MeanImageWithWindows),
            _ => None,
        };
        let per_channel = |v: [f32; 3]| Tensor::from_slice(&v).view([1, 1, 1, 3]).to(device);
        Ok(Finisher {
            device,
            mean_image,
            inv_std: per_channel(norm.channel_std.map(|s| 1.0 / s)),
            channel_mean: per_channel(norm.channel_mean),
            eigen: norm.eigenbasis,
            channels_last,
        })
    }

    /// Each sample's lighting shift `[N, 1, 1, 3]` and, for the mean image, the patch
    /// positions and mirrors, as small host tensors sent with the batch.
    pub fn sample_tensors(&self, batch: &Batch) -> SampleTensors {
        let params = batch.params();
        let delta: Vec<f32> = params
            .iter()
            .flat_map(|p| {
                alexpipe::augment::lighting_delta(
                    &self.eigen.eigvecs,
                    &self.eigen.axis_std,
                    p.alpha,
                )
            })
            .collect();
        let n = params.len() as i64;
        let delta = Tensor::from_slice(&delta).view([n, 1, 1, 3]);
        let positions = self.mean_image.as_ref().map(|_| {
            let xyf: Vec<i64> = params
                .iter()
                .flat_map(|p| [p.x as i64, p.y as i64, p.flip as i64])
                .collect();
            Tensor::from_slice(&xyf).view([n, 3])
        });
        SampleTensors { delta, positions }
    }

    /// The f32 `[N, 3, crop, crop]` network input from the u8 `[N, crop, crop, 3]` `images`
    /// on the device and their [`SampleTensors`] (moved there with a non-blocking copy).
    pub fn finish(&self, images: &Tensor, samples: &SampleTensors) -> Tensor {
        let x = images.to_kind(Kind::Float);
        let delta = samples
            .delta
            .to_device_(self.device, Kind::Float, true, false);
        let nhwc = match (&self.mean_image, &samples.positions) {
            (Some(mean), Some(pos)) => {
                let pos = pos.to_device_(self.device, Kind::Int64, true, false);
                let patch = mean_patches(mean, &pos, images.size()[1]);
                // The engine's order: (px − m) + δ.
                (x - patch) + delta
            }
            _ => {
                // px · (1/σ) + (δ − μ) · (1/σ), the engine's constants in its order.
                let offset = (delta - &self.channel_mean) * &self.inv_std;
                x * &self.inv_std + offset
            }
        };
        let nchw = nhwc.permute([0, 3, 1, 2]);
        if self.channels_last {
            nchw
        } else {
            nchw.contiguous()
        }
    }
}

/// The per-sample parameters a batch's finish needs.
#[derive(Debug)]
pub struct SampleTensors {
    /// `[N, 1, 1, 3]` f32 lighting shifts.
    pub delta: Tensor,
    /// `[N, 3]` i64 (x, y, mirror) of each patch in the stored image (mean-image mode only).
    pub positions: Option<Tensor>,
}

/// The mean image's `crop`×`crop` patch at each sample's (x, y), mirrored where the sample is:
/// `[N, crop, crop, 3]`, one gather. `pos` is `[N, 3]` (x, y, mirror).
fn mean_patches(mean: &Tensor, pos: &Tensor, crop: i64) -> Tensor {
    let device = mean.device();
    let steps = Tensor::arange(crop, (Kind::Int64, device)).view([1, crop]);
    let x = pos.select(1, 0).view([-1, 1]);
    let y = pos.select(1, 1).view([-1, 1]);
    let flip = pos.select(1, 2).view([-1, 1]);
    // Mirrored: output column c reads source column x + crop − 1 − c.
    let columns = &x + &steps + &flip * (-&steps * 2 + (crop - 1));
    let rows = y + &steps;
    mean.index(&[Some(rows.unsqueeze(2)), Some(columns.unsqueeze(1))])
}

/// Which layout the engine hands the trainer for an upload choice.
pub fn layout_for(upload: Upload) -> Layout {
    match upload {
        Upload::F32 => Layout::F32Nchw,
        Upload::U8 => Layout::U8Nhwc,
    }
}

/// What travels from the host to the device (`--upload`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Upload {
    /// The engine's finished f32 NCHW batches (the paper's path, the default).
    #[default]
    F32,
    /// u8 NHWC patches (crop and mirror done), finished on the device: 4× fewer bytes.
    U8,
}

impl Upload {
    /// The flag's spelling.
    pub fn name(self) -> &'static str {
        match self {
            Upload::F32 => "f32",
            Upload::U8 => "u8",
        }
    }
}
