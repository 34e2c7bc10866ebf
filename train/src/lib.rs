//! The paper's AlexNet and its training recipe (Krizhevsky, Sutskever & Hinton, 2012), fed by the
//! alexpipe engine. Modules mirror the paper:
//! - [`model`] (§3): the network, LRN, the two-column grouped convolutions.
//! - [`sgd`] (§5): the paper's momentum and weight-decay update; [`loss`] (§5): cross-entropy
//!   against labels, or against MixUp/CutMix's soft labels.
//! - [`recipe`] (§5): the hyper-parameters and the `paper`, `demo` and `small` presets.
//! - [`schedule`] (§5): the learning-rate schedule, a pure function of the validation error.
//! - [`train`] (§5, §6): the [`Trainer`]'s epoch (train, validate — centre or 10 patches — and
//!   end of epoch), checkpoints and resume.
//! - [`feed`]: batches from the engine to the device, overlapped with the running step;
//!   [`finish`]: with `--upload u8`, lighting, mean subtraction and layout on the device.
//! - [`precision`]: `--precision bf16|fp16|f32` (mixed precision, fp16's loss scaling).
//! - [`metrics`], [`checkpoint`], [`run_dir`]: what a run writes, and where.
//! - [`device`]: `--device auto|cpu|cuda`.
//! - [`pictures`] (§6.1): the conv1 kernels (Figure 3), fc7 nearest neighbours (Figure 4) and the
//!   training curves, as PNG files.
//!
//! Dependencies go one way: `train` → `pictures` → `checkpoint` → `model`, `sgd`, `schedule`,
//! `metrics`; no module imports one that imports it back.

#![deny(missing_docs)]

pub mod checkpoint;
pub mod device;
pub mod feed;
pub mod finish;
pub mod loss;
pub mod metrics;
pub mod model;
pub mod pictures;
pub mod precision;
pub mod recipe;
pub mod run_dir;
pub mod schedule;
pub mod sgd;
pub mod train;

pub use model::{AlexNet, AlexNetConfig, BiasInit, WeightInit};
pub use recipe::{ModelOptions, Preset, Recipe};
pub use train::{run, Outcome, RunConfig, TrainError, Trainer};
