//! An opened dataset (paper §2's preprocessed training set): one [`RecordSource`] and its
//! statistics. `Dataset` never asks which storage it holds; opening picks the source from what is
//! at the path (an HDF5 signature, else a shard directory).

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::hdf5::{is_hdf5_file, H5Keys};
use crate::prep::ResizeCrop;
use crate::remote::{is_remote, RemoteOptions, RemoteShards};
use crate::shards::ShardSource;
use crate::source::{DatasetInfo, Mode, Record, RecordRef, RecordSource};
use crate::stats::Stats;

/// An opened alexpipe dataset: a shard directory or an HDF5 file.
pub struct Dataset {
    location: PathBuf,
    source: Box<dyn RecordSource>,
    /// `None` only when opened with [`Dataset::open_without_stats`].
    stats: Option<Stats>,
}

impl Dataset {
    /// Opens and validates the dataset at `path`, statistics included. A file with an HDF5
    /// signature opens as [`Dataset::open_hdf5`] with the default keys; an `http(s)://` or
    /// `s3://` URL as [`Dataset::open_remote`] with the default [`RemoteOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<Dataset> {
        let path = path.as_ref();
        if let Some(url) = remote_url(path) {
            return Self::open_remote(url, &RemoteOptions::default());
        }
        if is_hdf5_file(path) {
            return Self::open_hdf5(path, &H5Keys::default());
        }
        let (source, stats) = ShardSource::open(path, true)?;
        Ok(Self::from_source(Box::new(source), stats))
    }

    /// Opens the shard dataset at `url` (`https://host/path/ds/`, `s3://bucket/prefix/ds/`),
    /// statistics included, reading its shards through a local cache (see [`crate::remote`]).
    pub fn open_remote(url: &str, options: &RemoteOptions) -> Result<Dataset> {
        let (source, stats) = RemoteShards::open(url, options, true)?;
        Ok(Self::from_source(Box::new(source), stats))
    }

    /// Opens an HDF5 file holding an N×S×S×3 uint8 image dataset and an N-long integer label
    /// dataset named by `keys` (statistics read from the file, or computed when it has none).
    /// Needs the `hdf5` feature.
    pub fn open_hdf5(path: impl AsRef<Path>, keys: &H5Keys) -> Result<Dataset> {
        let (source, stats) = crate::hdf5::open(path.as_ref(), keys)?;
        Ok(Self::from_source(source, Some(stats)))
    }

    /// Opens the records only, for recomputing statistics that are missing or damaged, or for
    /// reading images without normalising them.
    pub fn open_without_stats(path: impl AsRef<Path>) -> Result<Dataset> {
        let path = path.as_ref();
        if let Some(url) = remote_url(path) {
            let (source, _) = RemoteShards::open(url, &RemoteOptions::default(), false)?;
            return Ok(Self::from_source(Box::new(source), None));
        }
        if is_hdf5_file(path) {
            let mut ds = Self::open_hdf5(path, &H5Keys::default())?;
            ds.stats = None;
            return Ok(ds);
        }
        let (source, _) = ShardSource::open(path, false)?;
        Ok(Self::from_source(Box::new(source), None))
    }

    /// A dataset over any record source (a format of the caller's own, say).
    pub fn from_source(source: Box<dyn RecordSource>, stats: Option<Stats>) -> Dataset {
        Dataset {
            location: source.location().to_path_buf(),
            source,
            stats,
        }
    }

    /// Where the records come from: the dataset directory, or the HDF5 file.
    pub fn location(&self) -> &Path {
        &self.location
    }

    /// What the dataset holds, whatever stores it.
    pub fn info(&self) -> &DatasetInfo {
        self.source.info()
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.info().num_records as usize
    }

    /// True when the dataset has no records.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Record layout.
    pub fn mode(&self) -> Mode {
        self.info().mode
    }

    /// Image side length.
    pub fn size(&self) -> u32 {
        self.info().size
    }

    /// Class names.
    pub fn classes(&self) -> &[String] {
        &self.info().classes
    }

    /// Training-set statistics (`None` only after [`Dataset::open_without_stats`]).
    pub fn stats(&self) -> Option<&Stats> {
        self.stats.as_ref()
    }

    /// Label of record `index`.
    pub fn label(&self, index: usize) -> Result<u32> {
        self.source.label(index)
    }

    /// Record `index` as stored, read and checked against its checksum.
    pub fn record(&self, index: usize) -> Result<Record> {
        let mut bytes = Vec::new();
        let label = self.read_record(index, &mut bytes)?;
        Ok(Record { label, bytes })
    }

    /// Reads record `index` into `buf` (resized to the record's length; reuse it across calls to
    /// avoid allocating), checks it, and returns its label. On error `buf`'s contents are
    /// unspecified.
    pub fn read_record(&self, index: usize, buf: &mut Vec<u8>) -> Result<u32> {
        self.source.read_record(index, buf)
    }

    /// A record borrowed in place, where the source allows it (an unfiltered HDF5 file); `None`
    /// otherwise (read it with [`Dataset::read_record`]).
    pub fn record_in_place(&self, index: usize) -> Result<Option<RecordRef<'_>>> {
        self.source.record_in_place(index)
    }

    /// Writes record `index`'s `size`×`size`×3 pixels into `out`, decoding as the mode requires
    /// (original mode applies §2's decode, short-side resize and centre crop, exactly as the
    /// build did). The record's checksum is verified before it is used.
    pub fn read_pixels(
        &self,
        index: usize,
        resize: &mut ResizeCrop,
        out: &mut [u8],
    ) -> Result<u32> {
        self.source.read_pixels(index, resize, out)
    }

    /// Where each record came from (the build's `index.tsv` table).
    pub fn provenance(&self) -> Result<String> {
        self.source.provenance()
    }

    /// Checks every byte the storage vouches for; returns the number of records checked.
    pub fn verify(&self) -> Result<u64> {
        self.source.verify()
    }

    /// The first record of each storage unit (shard), if the storage has units.
    pub fn units(&self) -> Option<&[u64]> {
        self.source.units()
    }

    /// Tells the storage which records an epoch will read, in order (a remote source prefetches
    /// their shards).
    pub fn plan_reads(&self, order: &[usize]) {
        self.source.plan_reads(order)
    }
}

/// `path` as a URL, when it is one ([`crate::remote::is_remote`]).
pub fn remote_url(path: &Path) -> Option<&str> {
    path.to_str().filter(|s| is_remote(s))
}
