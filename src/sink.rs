//! The writing half of the storage seam: a build (paper §2's preprocessing, done once) pushes its
//! records and rejects into one [`DatasetSink`] and commits it, whatever the output format (shard
//! directories in [`crate::shards`], HDF5 files in [`crate::hdf5`]). A new output format is a new
//! implementation of this trait beside those.

use std::path::Path;

use crate::error::Result;
use crate::prep::RejectReason;
use crate::source::{BuildInfo, DatasetInfo};
use crate::stats::Stats;

/// Where a build writes. Nothing is visible at the output path until [`DatasetSink::commit`];
/// a sink dropped uncommitted leaves nothing that opens as a dataset.
pub trait DatasetSink: Send {
    /// Appends one record (the bytes as the dataset stores them) for the input `rel`; returns its
    /// index.
    fn push(&mut self, label: u32, rel: &Path, bytes: &[u8]) -> Result<u64>;

    /// Appends classes named `names` after the existing ones: a build whose class names come from
    /// the labels it reads (a WebDataset without `--class-names`) names class `i` "i" when it first
    /// meets label `i`.
    fn add_classes(&mut self, names: &[String]) -> Result<()>;

    /// Lists the input `rel` as not used, with the reason (`rejects.tsv`).
    fn reject(&mut self, rel: &Path, reason: &RejectReason) -> Result<()>;

    /// Writes the statistics and the provenance and makes the dataset appear at the output path,
    /// atomically.
    fn commit(self: Box<Self>, stats: &Stats, build: BuildInfo) -> Result<DatasetInfo>;
}
