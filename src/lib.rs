//! alexpipe — the data pipeline of AlexNet (Krizhevsky, Sutskever & Hinton, 2012) as a fast,
//! deterministic, reusable engine.
//!
//! Modules mirror the paper:
//! - [`prep`] (§2): find inputs, decode to RGB, resize the short side to 256, crop the centre.
//! - [`shards`] (§2): the memory-mappable, checksummed dataset format, its writer and its checking
//!   reader.
//! - [`stats`] (§2, §4.1): the mean image and the RGB covariance eigenbasis for PCA lighting.
//! - [`build`]: the parallel offline build that ties them together (`build-shards`).
//! - [`augment`] (§4.1): crops, reflections, PCA lighting, mean subtraction; fused hot loops.
//! - [`sampler`]: epoch order, distributed ranks, per-sample random draws from (seed, epoch, index).
//! - [`loader`] (§4.1): the multi-threaded engine that streams augmented batches.
//! - [`h5`]: HDF5 datasets in both directions (`--features hdf5`).

pub mod atomic_file;
pub mod augment;
pub mod build;
pub mod error;
pub mod h5;
pub mod loader;
pub mod prep;
pub mod progress;
pub mod sampler;
pub mod seed;
pub mod shards;
pub mod stats;
#[cfg(test)]
mod test_pixels;
pub mod threads;

pub use build::{build, recompute_stats, BuildConfig, BuildSummary, OutputFormat};
pub use error::{Error, Result};
pub use h5::H5Keys;
pub use loader::{Batch, Eigenbasis, Epoch, Layout, Loader, LoaderConfig, MeanMode, Next};
pub use shards::{Dataset, Mode};
pub use stats::Stats;
