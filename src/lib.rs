//! alexpipe — the data pipeline of AlexNet (Krizhevsky, Sutskever & Hinton, 2012) as a fast,
//! deterministic, reusable engine.
//!
//! Modules follow the data's path and the paper:
//! - [`prep`] (§2): find inputs, decode to RGB, resize the short side to 256, crop the centre.
//! - [`stats`] (§2, §4.1): the mean image and the RGB covariance eigenbasis for PCA lighting.
//! - Storage, behind one seam: [`source`] (the [`RecordSource`](source::RecordSource) trait every
//!   stored dataset implements) and [`sink`] (the [`DatasetSink`](sink::DatasetSink) every build
//!   output implements); the formats beside each other: [`shards`] (the checksummed shard
//!   format) and [`hdf5`] (HDF5 files, `--features hdf5`). A new input or output format is a new
//!   module here implementing those traits.
//! - [`remote`]: shard datasets over HTTP(S) and S3, through a bounded local cache.
//! - [`dataset`]: an opened dataset, one source and its statistics.
//! - [`build`](mod@build) (§2): the parallel offline build, inputs → one sink (`alexpipe build`).
//! - [`part`]: one part of a build spread over machines (`--part K/N`), joined exactly by
//!   [`shards::merge_parts`] (`alexpipe merge`).
//! - [`augment`] (§4.1): crops, reflections, PCA lighting, mean subtraction; fused hot loops.
//! - [`window`]: RandomResizedCrop's read → dimensions → window → decode → resize stages.
//! - [`sampler`]: epoch order, distributed ranks, per-sample random draws from (seed, epoch, index).
//! - [`loader`] (§4.1): the multi-threaded engine that streams augmented batches.
//! - [`state`]: the loader's position in an epoch, for exact, instant, elastic resume.
//! - [`cli`]: the command line (`alexpipe`, `build-shards`), defined once.
//! - Shared helpers: [`error`] (errors by kind), [`atomic_file`], [`seed`], [`threads`],
//!   [`progress`].

#![deny(missing_docs)]

pub mod atomic_file;
pub mod augment;
pub mod build;
pub mod cli;
pub mod dataset;
pub mod error;
pub mod hdf5;
pub mod loader;
pub mod part;
pub mod prep;
pub mod progress;
pub mod remote;
pub mod sampler;
pub mod seed;
pub mod shards;
pub mod sink;
pub mod source;
pub mod state;
pub mod stats;
#[cfg(test)]
mod test_pixels;
pub mod threads;
pub mod window;

pub use augment::{
    Augmentations, ColorJitter, DecodeMode, EraseFill, Interpolation, Mixup, ProgressiveResize,
    RandomErasing, RandomResizedCrop, Recipe, TrivialAugmentWide,
};
pub use build::{build, recompute_stats, BuildConfig, BuildSummary, OutputFormat};
pub use dataset::Dataset;
pub use error::{Error, Result};
pub use hdf5::H5Keys;
pub use loader::{
    Batch, Eigenbasis, Epoch, Layout, Loader, LoaderConfig, MeanMode, Next, Normalization,
};
pub use remote::RemoteOptions;
pub use sampler::Order;
pub use source::{DatasetInfo, Mode};
pub use state::LoaderState;
pub use stats::Stats;
