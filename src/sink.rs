//! The writing half of the storage seam: a build (paper §2's preprocessing, done once) pushes its
//! records and rejects into one [`DatasetSink`] and commits it, whatever the output format (shard
//! directories in [`crate::shards`], HDF5 files in [`crate::hdf5`]). A new output format is a new
//! implementation of this trait beside those.

use std::path::Path;

use crate::error::{Error, Result};
use crate::part::PartInfo;
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

    /// Like [`DatasetSink::commit`], for one part of a build spread over machines
    /// (`--part K/N`): the dataset also keeps `part` and the per-pixel sums `pixel_sum`
    /// (`size`×`size`×3, HWC), which [`crate::shards::merge_parts`] adds up. Only shard directories
    /// can be parts.
    fn commit_part(
        self: Box<Self>,
        stats: &Stats,
        build: BuildInfo,
        part: &PartInfo,
        pixel_sum: &[u64],
    ) -> Result<DatasetInfo> {
        let _ = (stats, build, part, pixel_sum);
        Err(Error::Unsupported(
            "only shard datasets can be parts of a build: drop --format hdf5 (convert the merged dataset instead)".into(),
        ))
    }
}
