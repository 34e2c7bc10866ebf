//! The paper's AlexNet and its training recipe (Krizhevsky, Sutskever & Hinton, 2012), fed by the
//! alexpipe engine. Modules mirror the paper:
//! - [`model`] (§3): the network, LRN, the two-column grouped convolutions.
//! - [`sgd`] (§5): the paper's momentum and weight-decay update.
//! - [`train`] (§5, §6): the epoch loop, validation (centre or 10 patches), the learning-rate
//!   schedule, checkpoints and resume.
//! - [`feed`]: batches from the engine to the device, overlapped with the running step.
//! - [`metrics`], [`checkpoint`]: what a run writes.
//! - [`pictures`] (§6.1): the conv1 kernels (Figure 3), fc7 nearest neighbours (Figure 4) and the
//!   training curves, as PNG files.

pub mod checkpoint;
pub mod feed;
pub mod metrics;
pub mod model;
pub mod pictures;
pub mod sgd;
pub mod train;

pub use model::{AlexNet, AlexNetConfig, BiasInit, WeightInit};
pub use train::{run, ModelOptions, Outcome, Recipe, RunConfig, TrainError};
