//! Host → device hand-over (paper §4.1's overlap, carried on to the accelerator).
//!
//! On CUDA each batch is copied once from the engine's buffer into one of two page-locked (pinned)
//! host tensors and sent with a non-blocking copy, so the transfer is queued behind the running step
//! while the host already prepares the next batch. Two buffers suffice because the loop waits for
//! step k (reading its loss) before it refills the buffer that step k − 1's batch came from. On the
//! CPU the batch is copied into a tensor the step owns. With `--upload u8` the batch is the
//! engine's u8 patches, a quarter of the bytes, finished on the device ([`crate::finish`]).

use alexpipe::{Batch, Layout, Loader};
use tch::{Device, Kind, Tensor};

use crate::finish::{FinishError, Finisher};
use crate::model::channels_last;

/// A batch the trainer cannot use: not in the layout its upload asked the engine for (a bug in
/// the caller).
#[derive(Debug, thiserror::Error)]
#[error("the trainer asked the engine for {wanted} batches and got another layout")]
pub struct WrongLayout {
    wanted: &'static str,
}

/// Turns engine batches into device tensors: f32 NCHW batches as they are, or u8 NHWC batches
/// finished on the device ([`Finisher`], `--upload u8`).
#[derive(Debug)]
pub struct Feeder {
    device: Device,
    finisher: Option<Finisher>,
    channels_last: bool,
    pinned: [Option<Tensor>; 2],
    next_slot: usize,
}

/// A batch on the device.
#[derive(Debug)]
pub struct DeviceBatch {
    /// `[N, 3, crop, crop]` f32.
    pub images: Tensor,
    /// `[images]` i64 (one per image; N = 10 × images with 10-crop).
    pub labels: Tensor,
    /// `[N, classes]` f32 soft labels when the engine mixes batches (MixUp/CutMix) or smooths
    /// labels; the loss is then taken against them ([`crate::loss`]).
    pub soft_labels: Option<Tensor>,
}

impl Feeder {
    /// A feeder of `loader`'s batches to `device`: f32 batches as they come, u8 batches
    /// finished there with the loader's own normalisation; inputs channels-last if asked.
    pub fn for_loader(
        loader: &Loader,
        device: Device,
        channels_last: bool,
    ) -> Result<Feeder, FinishError> {
        let config = loader.config();
        let finisher = match config.layout {
            Layout::F32Nchw => None,
            Layout::U8Nhwc => Some(Finisher::new(
                &loader.normalization(),
                &config.recipe,
                device,
                channels_last,
            )?),
        };
        Ok(Feeder {
            device,
            finisher,
            channels_last,
            pinned: [None, None],
            next_slot: 0,
        })
    }

    /// Starts moving `batch` to the device (asynchronously on CUDA).
    pub fn upload(&mut self, batch: &Batch) -> Result<DeviceBatch, WrongLayout> {
        let labels = Tensor::from_slice(batch.labels());
        let soft_labels = batch.soft_labels().map(|soft| {
            let n = batch.labels().len() as i64;
            Tensor::from_slice(soft)
                .view([n, soft.len() as i64 / n.max(1)])
                .to_device_(self.device, Kind::Float, true, false)
        });
        let shape = batch.shape().map(|d| d as i64);
        let images = match &self.finisher {
            None => {
                let images = batch
                    .images_f32()
                    .ok_or(WrongLayout { wanted: "f32 NCHW" })?;
                let images = send(
                    &mut self.pinned,
                    &mut self.next_slot,
                    self.device,
                    images,
                    Kind::Float,
                    shape,
                );
                if self.channels_last {
                    channels_last(&images)
                } else {
                    images
                }
            }
            Some(finisher) => {
                let images = batch.images_u8().ok_or(WrongLayout { wanted: "u8 NHWC" })?;
                let samples = finisher.sample_tensors(batch);
                let on_device = send(
                    &mut self.pinned,
                    &mut self.next_slot,
                    self.device,
                    images,
                    Kind::Uint8,
                    shape,
                );
                // Queued behind the copy on the device's stream.
                finisher.finish(&on_device, &samples)
            }
        };
        Ok(DeviceBatch {
            images,
            labels: labels.to_device_(self.device, Kind::Int64, true, false),
            soft_labels,
        })
    }
}

/// `data` (a contiguous `shape` tensor's elements of `kind`) on `device`: on the CPU a tensor of
/// its own; on CUDA through the next of the two `pinned` buffers, copied asynchronously.
fn send<T: tch::kind::Element>(
    pinned: &mut [Option<Tensor>; 2],
    next_slot: &mut usize,
    device: Device,
    data: &[T],
    kind: Kind,
    shape: [i64; 4],
) -> Tensor {
    if device == Device::Cpu {
        return Tensor::from_slice(data).view(shape);
    }
    let slot = &mut pinned[*next_slot];
    *next_slot = 1 - *next_slot;
    let buffer = match slot {
        Some(t) if t.size() == shape && t.kind() == kind => t,
        _ => slot.insert(Tensor::empty(shape, (kind, Device::Cpu)).pin_memory(device)),
    };
    // SAFETY: `data` is a live, initialised slice of exactly shape.product() elements of `kind`,
    // contiguous in `shape`'s order; the view is used only by the copy below and dropped before
    // `data`'s batch can be.
    let strides = [
        shape[1] * shape[2] * shape[3],
        shape[2] * shape[3],
        shape[3],
        1,
    ];
    let view = unsafe {
        Tensor::from_blob(
            data.as_ptr().cast::<u8>(),
            &shape,
            &strides,
            kind,
            Device::Cpu,
        )
    };
    tch::no_grad(|| buffer.copy_(&view));
    drop(view);
    buffer.to_device_(device, kind, true, false)
}
