//! Host → device hand-over (paper §4.1's overlap, carried on to the accelerator).
//!
//! On CUDA each batch is copied once from the engine's buffer into one of two page-locked (pinned)
//! host tensors and sent with a non-blocking copy, so the transfer is queued behind the running step
//! while the host already prepares the next batch. Two buffers suffice because the loop waits for
//! step k (reading its loss) before it refills the buffer that step k − 1's batch came from. On the
//! CPU the batch is copied into a tensor the step owns.

use alexpipe::Batch;
use tch::{Device, Kind, Tensor};

/// A batch the trainer cannot use: the engine was not asked for f32 NCHW (a bug in the caller).
#[derive(Debug, thiserror::Error)]
#[error("the trainer needs f32 NCHW batches (Layout::F32Nchw)")]
pub struct NotF32;

/// Turns engine batches into device tensors.
#[derive(Debug)]
pub struct Feeder {
    device: Device,
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
}

impl Feeder {
    /// A feeder for `device`.
    pub fn new(device: Device) -> Feeder {
        Feeder {
            device,
            pinned: [None, None],
            next_slot: 0,
        }
    }

    /// Starts moving `batch` to the device (asynchronously on CUDA).
    pub fn upload(&mut self, batch: &Batch) -> Result<DeviceBatch, NotF32> {
        let images = batch.images_f32().ok_or(NotF32)?;
        let shape = batch.shape().map(|d| d as i64);
        let labels = Tensor::from_slice(batch.labels());
        if self.device == Device::Cpu {
            return Ok(DeviceBatch {
                images: Tensor::from_slice(images).view(shape),
                labels,
            });
        }
        let slot = &mut self.pinned[self.next_slot];
        self.next_slot = 1 - self.next_slot;
        let pinned = match slot {
            Some(t) if t.size() == shape => t,
            _ => slot
                .insert(Tensor::empty(shape, (Kind::Float, Device::Cpu)).pin_memory(self.device)),
        };
        // SAFETY: `images` is a live, initialised f32 slice of exactly shape.product() elements,
        // contiguous in NCHW order; the view is used only by the copy below and dropped before
        // `batch` can be.
        let strides = [
            shape[1] * shape[2] * shape[3],
            shape[2] * shape[3],
            shape[3],
            1,
        ];
        let view = unsafe {
            Tensor::from_blob(
                images.as_ptr().cast::<u8>(),
                &shape,
                &strides,
                Kind::Float,
                Device::Cpu,
            )
        };
        tch::no_grad(|| pinned.copy_(&view));
        drop(view);
        Ok(DeviceBatch {
            images: pinned.to_device_(self.device, Kind::Float, true, false),
            labels: labels.to_device_(self.device, Kind::Int64, true, false),
        })
    }
}
