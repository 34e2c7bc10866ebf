//! The record source seam: what every stored dataset offers the engine, whatever holds it (shard
//! directories in [`crate::shards`], HDF5 files in [`crate::hdf5`], and the next formats beside
//! them). A [`crate::Dataset`] holds one [`RecordSource`] and never asks which; a build writes
//! through one [`crate::sink::DatasetSink`]. A new storage format is a new module implementing
//! these two traits, not a branch in the dataset, the engine or the build.

use std::path::Path;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::prep::ResizeCrop;
use crate::stats::StatsSummary;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `size × size × 3` u8 pixels, HWC RGB: directly indexable, zero-copy.
    Raw,
    /// The resized and cropped `size × size` image re-encoded as JPEG.
    Jpeg,
    /// The source file's bytes, untouched (they decoded at build time); the reader does §2's
    /// decode, short-side resize and centre crop.
    Original,
}

impl Mode {
    /// Lowercase name, as in the manifest and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Raw => "raw",
            Mode::Jpeg => "jpeg",
            Mode::Original => "original",
        }
    }
}

impl FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Mode> {
        match s {
            "raw" => Ok(Mode::Raw),
            "jpeg" => Ok(Mode::Jpeg),
            "original" => Ok(Mode::Original),
            other => Err(Error::Usage(format!(
                "unknown record mode {other:?}: use raw, jpeg or original"
            ))),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Build parameters, for provenance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// `alexpipe <version>`.
    pub tool: String,
    /// The INPUT argument as given.
    pub input: String,
    /// `"folder"` or `"list"`.
    pub input_kind: String,
    /// JPEG quality in `jpeg` mode.
    pub quality: Option<u8>,
    /// Whether JPEGs were decoded at reduced DCT scale.
    pub draft: bool,
    /// `jpeg` mode with whole images: the long-side cap (`--max-side`); `None`: `size`×`size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_side: Option<u32>,
    /// Records per shard.
    pub shard_size: u64,
    /// The decompression-bomb guard in pixels.
    pub max_pixels: u64,
    /// The resize filter.
    pub resize: String,
    /// Seconds since the Unix epoch when the build finished.
    pub created_unix: u64,
}

/// A record as stored, read from its source and checksum-verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Class index.
    pub label: u32,
    /// Raw pixels (raw mode), JPEG bytes (jpeg mode) or the source file (original mode).
    pub bytes: Vec<u8>,
}

/// A record borrowed in place from its source's memory (an unfiltered HDF5 file's map; see
/// `docs/HDF5.md`), checksum-verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Class index.
    pub label: u32,
    /// The image's `size`×`size`×3 pixels.
    pub bytes: &'a [u8],
}

/// What a dataset holds, in terms that do not depend on how it is stored: what `alexpipe info`
/// prints and what a trainer checks a checkpoint against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// The storage format: `"shards"` or `"hdf5"`.
    pub format: String,
    /// Record layout.
    pub mode: Mode,
    /// Image side length (records decode to `size`×`size`×3).
    pub size: u32,
    /// Number of records.
    pub num_records: u64,
    /// Class names; label `i` is `classes[i]`.
    pub classes: Vec<String>,
    /// Records per class.
    pub class_counts: Vec<u64>,
    /// Inputs of the build that did not become records.
    pub rejected: u64,
    /// The statistics (without the mean image), when the dataset has them.
    pub stats: Option<StatsSummary>,
    /// How the dataset was built.
    pub build: BuildInfo,
}

/// A dataset of records: the one seam between storage and everything above it (paper §2's
/// preprocessed training set, however it is stored). Implementations check every record they hand
/// out against its checksum where the format has one.
pub trait RecordSource: Send + Sync {
    /// What the source holds.
    fn info(&self) -> &DatasetInfo;

    /// The file or directory the records come from (for messages).
    fn location(&self) -> &Path;

    /// Label of record `index`.
    fn label(&self, index: usize) -> Result<u32>;

    /// Reads record `index` as stored into `buf` (resized to the record's length), checked, and
    /// returns its label.
    fn read_record(&self, index: usize, buf: &mut Vec<u8>) -> Result<u32>;

    /// Writes record `index`'s `size`×`size`×3 pixels into `out`, decoding as the mode requires
    /// (§2's decode, short-side resize and centre crop for original records).
    fn read_pixels(&self, index: usize, resize: &mut ResizeCrop, out: &mut [u8]) -> Result<u32>;

    /// Record `index` borrowed in place, for sources that can (a memory-mapped file); `None`
    /// where records must be read.
    fn record_in_place(&self, index: usize) -> Result<Option<RecordRef<'_>>> {
        self.check_index(index)?;
        Ok(None)
    }

    /// Checks every byte the source vouches for; returns the number of records checked.
    fn verify(&self) -> Result<u64>;

    /// The index of the first record of each storage unit (shard), ascending from 0, for an order
    /// that reads a few units at a time ([`crate::sampler::shard_aware_order`]); `None` for a
    /// source without such units.
    fn units(&self) -> Option<&[u64]> {
        None
    }

    /// Told the records an epoch will read, in order, before it starts: a source that fetches
    /// ([`crate::remote`]) prefetches the units they need, in that order. The default ignores it.
    fn plan_reads(&self, _order: &[usize]) {}

    /// Where each record came from: the build's `index.tsv` table (a header line, then `record`,
    /// `label`, `class`, `shard`, `path` per record, tab-separated, paths escaped as in
    /// `docs/FORMAT.md`).
    fn provenance(&self) -> Result<String>;

    /// An [`Error::OutOfRange`] for an index past the end.
    fn check_index(&self, index: usize) -> Result<()> {
        let len = self.info().num_records;
        if index as u64 >= len {
            return Err(Error::OutOfRange {
                index: index as u64,
                len,
                location: self.location().to_path_buf(),
            });
        }
        Ok(())
    }
}
