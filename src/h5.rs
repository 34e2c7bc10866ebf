//! HDF5 datasets, as h5py users have them (`--features hdf5`; `docs/HDF5.md` gives the layout).
//!
//! - Reading: any file with an N×S×S×3 uint8 image dataset and an N-long integer label dataset
//!   (names chosen by [`H5Keys`]) opens as a [`crate::Dataset`]; the statistics are read from the
//!   file when it holds ours, computed otherwise. When the images are stored unfiltered (contiguous,
//!   or in chunks of whole images, as ours are) every record's byte offset is looked up once at
//!   open and the file is memory-mapped: the loader's workers then read records in place, exactly
//!   as from raw shards, and never take HDF5's global lock. Compressed or otherwise filtered images
//!   go through `H5Dread` (serialized by that lock).
//! - Writing: [`H5Writer`] writes `images` (N, S, S, 3) u8 in chunks of one image, `labels` (N,)
//!   i64, `class_names`, the statistics and the provenance, into `OUT.partial-PID` then renames it.
//! - [`shards_to_hdf5`] / [`hdf5_to_shards`]: lossless conversion both ways.
//!
//! Without the `hdf5` feature the types exist but every entry point returns an error naming the fix.

use std::path::Path;

use crate::error::{Error, Result};

/// Names of the image and label datasets inside an HDF5 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct H5Keys {
    /// The N×S×S×3 uint8 image dataset (default `images`).
    pub images: String,
    /// The N-long integer label dataset (default `labels`).
    pub labels: String,
}

impl Default for H5Keys {
    fn default() -> Self {
        H5Keys {
            images: "images".into(),
            labels: "labels".into(),
        }
    }
}

/// Value of the root attribute `format` in files alexpipe writes.
pub const H5_FORMAT_NAME: &str = "alexpipe-hdf5";
/// Value of the root attribute `format_version`.
pub const H5_FORMAT_VERSION: u32 = 1;

/// The 8-byte signature that starts an HDF5 superblock.
const SIGNATURE: &[u8; 8] = b"\x89HDF\r\n\x1a\n";

/// True when `path` is a regular file holding an HDF5 signature (at offset 0 or after a user block
/// of 512, 1024, … bytes, as the HDF5 specification allows).
pub fn is_hdf5_file(path: &Path) -> bool {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let mut offset = 0u64;
    while offset + 8 <= len && offset <= 1 << 20 {
        let mut buf = [0u8; 8];
        if f.seek(SeekFrom::Start(offset)).is_err() || f.read_exact(&mut buf).is_err() {
            return false;
        }
        if &buf == SIGNATURE {
            return true;
        }
        offset = if offset == 0 { 512 } else { offset * 2 };
    }
    false
}

#[cfg(not(feature = "hdf5"))]
fn no_feature() -> Error {
    Error::Usage(
        "this alexpipe was built without HDF5 support; rebuild it with `--features hdf5` \
         (needs libhdf5-dev and pkg-config: scripts/setup.sh installs them)"
            .into(),
    )
}

#[cfg(feature = "hdf5")]
pub(crate) use imp::H5Records;
#[cfg(feature = "hdf5")]
pub use imp::{hdf5_to_shards, shards_to_hdf5, H5Writer};

#[cfg(not(feature = "hdf5"))]
pub(crate) use stub::H5Records;
#[cfg(not(feature = "hdf5"))]
pub use stub::{hdf5_to_shards, shards_to_hdf5, H5Writer};

/// Conversion options for [`hdf5_to_shards`] and [`shards_to_hdf5`].
#[derive(Debug, Clone)]
pub struct ConvertOptions {
    /// Dataset names in an HDF5 input.
    pub keys: H5Keys,
    /// Records per shard for HDF5 → shards when the file does not say (ours record it).
    pub shard_size: u64,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        ConvertOptions {
            keys: H5Keys::default(),
            shard_size: 1024,
        }
    }
}

#[cfg(not(feature = "hdf5"))]
mod stub {
    use super::*;
    use crate::shards::{BuildInfo, Manifest, RecordRef};
    use crate::stats::Stats;

    /// Records of an HDF5 file (uninhabited: built without the `hdf5` feature).
    pub(crate) enum H5Records {}

    impl H5Records {
        pub(crate) fn open(_: &Path, _: &H5Keys) -> Result<(H5Records, Manifest, Stats)> {
            Err(no_feature())
        }
        pub(crate) fn label(&self, _: usize) -> Result<u32> {
            match *self {}
        }
        pub(crate) fn record_in_place(&self, _: usize) -> Result<Option<RecordRef<'_>>> {
            match *self {}
        }
        pub(crate) fn read_pixels(&self, _: usize, _: &mut [u8]) -> Result<u32> {
            match *self {}
        }
        pub(crate) fn verify(&self) -> Result<u64> {
            match *self {}
        }
    }

    /// Writes an HDF5 dataset (uninhabited: built without the `hdf5` feature).
    pub enum H5Writer {}

    impl H5Writer {
        /// Always an error naming the fix.
        pub fn create(_: &Path, _: u32, _: Vec<String>) -> Result<H5Writer> {
            Err(no_feature())
        }
        /// Unreachable.
        pub fn push(&mut self, _: u32, _: &Path, _: &[u8]) -> Result<u64> {
            match *self {}
        }
        /// Unreachable.
        pub fn reject(&mut self, _: &Path, _: &crate::prep::RejectReason) -> Result<()> {
            match *self {}
        }
        /// Unreachable.
        pub fn commit(self, _: &Stats, _: BuildInfo) -> Result<Manifest> {
            match self {}
        }
    }

    /// Always an error naming the fix.
    pub fn hdf5_to_shards(
        _: &Path,
        _: &Path,
        _: &ConvertOptions,
        _: &(dyn Fn(u64) + Sync),
    ) -> Result<Manifest> {
        Err(no_feature())
    }

    /// Always an error naming the fix.
    pub fn shards_to_hdf5(_: &Path, _: &Path, _: &(dyn Fn(u64) + Sync)) -> Result<Manifest> {
        Err(no_feature())
    }
}

#[cfg(feature = "hdf5")]
mod imp {
    use std::fs;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU64, Ordering};

    use hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenUnicode};
    use memmap2::Mmap;
    use ndarray::{s, ArrayView1, ArrayView2, ArrayView3, ArrayView4};

    use super::*;
    use crate::error::IoContext;
    use crate::prep::RejectReason;
    use crate::shards::{
        tsv_path, BuildInfo, Dataset, DatasetWriter, Manifest, Mode, RecordRef, StatsInfo,
        FORMAT_NAME, FORMAT_VERSION, INDEX_FILE, REJECTS_FILE,
    };
    use crate::stats::{Stats, StatsAccumulator};

    const MANIFEST_KEY: &str = "alexpipe_manifest";
    const INDEX_KEY: &str = "index_tsv";
    const REJECTS_KEY: &str = "rejects_tsv";
    const CLASSES_KEY: &str = "class_names";
    const CRC_KEY: &str = "crc32c";
    const STAT_KEYS: [&str; 6] = [
        "mean_image",
        "channel_mean",
        "channel_std",
        "covariance",
        "eigvals",
        "eigvecs",
    ];

    fn h5err(path: &Path, what: &str, e: hdf5::Error) -> Error {
        Error::format(path, format!("{what}: {e}"))
    }

    /// Records mapped in place: the file's bytes and each record's offset in it.
    struct Direct {
        map: Mmap,
        offsets: Vec<u64>,
    }

    /// The records of an opened HDF5 file.
    pub(crate) struct H5Records {
        path: PathBuf,
        _file: hdf5::File,
        images: hdf5::Dataset,
        labels: Vec<u32>,
        record_len: usize,
        direct: Option<Direct>,
        crcs: Option<Vec<u32>>,
        /// One bit per record: its checksum has been verified.
        verified: Vec<AtomicU64>,
    }

    impl H5Records {
        /// Opens `path`, checks shapes and types, and returns the records, a manifest describing
        /// them (mode raw, no shards) and the statistics (read from the file, or computed).
        pub(crate) fn open(path: &Path, keys: &H5Keys) -> Result<(H5Records, Manifest, Stats)> {
            let file_len = fs::metadata(path).at(path)?.len();
            let file = hdf5::File::open(path).map_err(|e| {
                Error::format(
                    path,
                    format!("cannot open as HDF5 ({e}): the file is truncated, damaged or not HDF5 — re-create it"),
                )
            })?;
            let names = || file.member_names().unwrap_or_default().join(", ");
            let images = file.dataset(&keys.images).map_err(|_| {
                Error::format(
                    path,
                    format!(
                        "no dataset {:?} (top-level members: [{}]); name the N×S×S×3 uint8 image dataset with --images-key / images_key=",
                        keys.images,
                        names()
                    ),
                )
            })?;
            let labels_ds = file.dataset(&keys.labels).map_err(|_| {
                Error::format(
                    path,
                    format!(
                        "no dataset {:?} (top-level members: [{}]); name the label dataset with --labels-key / labels_key=",
                        keys.labels,
                        names()
                    ),
                )
            })?;
            let dtype = images
                .dtype()
                .and_then(|t| t.to_descriptor())
                .map_err(|e| h5err(path, &format!("dataset {:?}", keys.images), e))?;
            let shape = images.shape();
            let bad_images = |why: String| {
                Error::format(
                    path,
                    format!(
                        "dataset {:?} is {why}; alexpipe needs N×S×S×3 uint8 (square RGB images, HWC) — \
                         resize/crop the images to S×S or name another dataset with --images-key",
                        keys.images
                    ),
                )
            };
            if dtype != TypeDescriptor::Unsigned(IntSize::U1) {
                return Err(bad_images(format!("{dtype} {shape:?}")));
            }
            if shape.len() != 4 || shape[3] != 3 || shape[1] != shape[2] || shape[1] == 0 {
                return Err(bad_images(format!("uint8 {shape:?}")));
            }
            let (n, size) = (shape[0], shape[1]);
            if n == 0 {
                return Err(bad_images("empty (0 images)".into()));
            }
            if size > 8192 {
                return Err(bad_images(format!("uint8 {shape:?}, larger than 8192 px")));
            }
            let record_len = size * size * 3;
            // Labels: any integer type, N of them, non-negative.
            let ldesc = labels_ds
                .dtype()
                .and_then(|t| t.to_descriptor())
                .map_err(|e| h5err(path, &format!("dataset {:?}", keys.labels), e))?;
            let lshape = labels_ds.shape();
            if !matches!(
                ldesc,
                TypeDescriptor::Integer(_) | TypeDescriptor::Unsigned(_)
            ) || lshape != [n]
            {
                return Err(Error::format(
                    path,
                    format!(
                        "dataset {:?} is {ldesc} {lshape:?}; labels must be integers of shape ({n},), one per image of {:?}",
                        keys.labels, keys.images
                    ),
                ));
            }
            let raw: Vec<i64> = labels_ds
                .read_raw()
                .map_err(|e| h5err(path, &format!("reading {:?}", keys.labels), e))?;
            let mut labels = Vec::with_capacity(n);
            for (i, &l) in raw.iter().enumerate() {
                let l = u32::try_from(l).map_err(|_| {
                    Error::format(
                        path,
                        format!(
                            "{:?}[{i}] is {l}: labels must be class indices in 0..2^32",
                            keys.labels
                        ),
                    )
                })?;
                labels.push(l);
            }
            let max_label = labels.iter().copied().max().unwrap_or(0) as usize;
            let classes = match file.dataset(CLASSES_KEY) {
                Ok(ds) => read_strings(path, &ds)?,
                Err(_) => (0..=max_label).map(|l| l.to_string()).collect(),
            };
            if max_label >= classes.len() {
                return Err(Error::format(
                    path,
                    format!(
                        "label {max_label} but {CLASSES_KEY:?} names only {} classes; fix the labels or the class names",
                        classes.len()
                    ),
                ));
            }
            let crcs = match file.dataset(CRC_KEY) {
                Ok(ds) if ds.shape() == [n] => Some(
                    ds.read_raw::<u32>()
                        .map_err(|e| h5err(path, "reading crc32c", e))?,
                ),
                _ => None,
            };
            let direct = direct_offsets(path, &images, n, record_len, file_len)?
                .map(|offsets| -> Result<Direct> {
                    let f = fs::File::open(path).at(path)?;
                    // SAFETY: read-only map; every offset + record_len was checked against the
                    // file length. A file truncated by another process while mapped would fault
                    // (SIGBUS), as with shards: datasets are immutable once written.
                    let map = unsafe { Mmap::map(&f) }.at(path)?;
                    Ok(Direct { map, offsets })
                })
                .transpose()?;
            let records = H5Records {
                path: path.to_path_buf(),
                _file: file.clone(),
                images,
                labels,
                record_len,
                direct,
                crcs,
                verified: (0..n.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(),
            };
            let stats = match read_stats(path, &file, size as u32)? {
                Some(s) => s,
                None => records.compute_stats(size as u32)?,
            };
            let stored: Option<Manifest> = match file.dataset(MANIFEST_KEY) {
                Ok(ds) => {
                    let text = read_scalar_string(path, &ds)?;
                    serde_json::from_str(&text).ok()
                }
                Err(_) => None,
            };
            let mut class_counts = vec![0u64; classes.len()];
            for &l in &records.labels {
                class_counts[l as usize] += 1;
            }
            let build = stored
                .as_ref()
                .map(|m| m.build.clone())
                .unwrap_or_else(|| foreign_build_info(path, 1024));
            let manifest = Manifest {
                format: FORMAT_NAME.into(),
                format_version: FORMAT_VERSION,
                mode: Mode::Raw,
                size: size as u32,
                pixel_layout: "HWC RGB u8".into(),
                num_records: n as u64,
                classes,
                class_counts,
                rejected: stored.as_ref().map_or(0, |m| m.rejected),
                shards: Vec::new(),
                files: Vec::new(),
                stats: StatsInfo::from_stats(&stats),
                build,
            };
            Ok((records, manifest, stats))
        }

        fn check(&self, index: usize) -> Result<()> {
            if index >= self.labels.len() {
                return Err(Error::Usage(format!(
                    "record {index} is out of range: {} has {} records",
                    self.path.display(),
                    self.labels.len()
                )));
            }
            Ok(())
        }

        pub(crate) fn label(&self, index: usize) -> Result<u32> {
            self.check(index)?;
            Ok(self.labels[index])
        }

        /// The record's bytes in the memory map, when the images are stored unfiltered.
        /// Its CRC-32C, when the file has a `crc32c` dataset, is checked the first time it is read.
        pub(crate) fn record_in_place(&self, index: usize) -> Result<Option<RecordRef<'_>>> {
            self.check(index)?;
            let Some(d) = &self.direct else {
                return Ok(None);
            };
            let o = d.offsets[index] as usize;
            let bytes = &d.map[o..o + self.record_len];
            if let Some(crcs) = &self.crcs {
                let (word, bit) = (&self.verified[index / 64], 1u64 << (index % 64));
                if word.load(Ordering::Relaxed) & bit == 0 {
                    if crc32c::crc32c(bytes) != crcs[index] {
                        return Err(self.corrupt(index));
                    }
                    word.fetch_or(bit, Ordering::Relaxed);
                }
            }
            Ok(Some(RecordRef {
                label: self.labels[index],
                bytes,
            }))
        }

        fn corrupt(&self, index: usize) -> Error {
            Error::format(
                &self.path,
                format!("image {index} fails its checksum: the file is corrupt — re-create it"),
            )
        }

        pub(crate) fn read_pixels(&self, index: usize, out: &mut [u8]) -> Result<u32> {
            if let Some(rec) = self.record_in_place(index)? {
                out.copy_from_slice(rec.bytes);
                return Ok(rec.label);
            }
            let arr = self
                .images
                .read_slice::<u8, _, ndarray::Ix4>(s![index..index + 1, .., .., ..])
                .map_err(|e| {
                    Error::format(
                        &self.path,
                        format!("reading image {index}: {e} — the file is damaged; re-create it"),
                    )
                })?;
            match arr.as_slice() {
                Some(px) if px.len() == out.len() => out.copy_from_slice(px),
                _ => {
                    return Err(Error::format(
                        &self.path,
                        format!("image {index} has an unexpected layout"),
                    ))
                }
            }
            Ok(self.labels[index])
        }

        /// Reads every record; checks each against the file's `crc32c` dataset when it has one.
        pub(crate) fn verify(&self) -> Result<u64> {
            let mut buf = vec![0u8; self.record_len];
            for i in 0..self.labels.len() {
                self.read_pixels(i, &mut buf)?;
                if let Some(crcs) = &self.crcs {
                    if crc32c::crc32c(&buf) != crcs[i] {
                        return Err(self.corrupt(i));
                    }
                }
            }
            Ok(self.labels.len() as u64)
        }

        /// One pass over the images, in parallel (rayon) when they are read in place; exact sums,
        /// so the result does not depend on the split.
        fn compute_stats(&self, size: u32) -> Result<Stats> {
            use rayon::prelude::*;
            let acc = if self.direct.is_some() {
                (0..self.labels.len())
                    .into_par_iter()
                    .try_fold(
                        || StatsAccumulator::new(size),
                        |mut acc, i| -> Result<StatsAccumulator> {
                            if let Some(rec) = self.record_in_place(i)? {
                                acc.add_image(rec.bytes);
                            }
                            Ok(acc)
                        },
                    )
                    .try_reduce(
                        || StatsAccumulator::new(size),
                        |mut a, b| {
                            a.merge(&b);
                            Ok(a)
                        },
                    )?
            } else {
                // Through H5Dread: HDF5's lock serializes it anyway.
                let mut acc = StatsAccumulator::new(size);
                let mut buf = vec![0u8; self.record_len];
                for i in 0..self.labels.len() {
                    self.read_pixels(i, &mut buf)?;
                    acc.add_image(&buf);
                }
                acc
            };
            acc.finish()
                .ok_or_else(|| Error::format(&self.path, "no images to compute statistics from"))
        }
    }

    fn foreign_build_info(path: &Path, shard_size: u64) -> BuildInfo {
        BuildInfo {
            tool: format!("alexpipe {}", env!("CARGO_PKG_VERSION")),
            input: path.display().to_string(),
            input_kind: "hdf5".into(),
            quality: None,
            draft: false,
            shard_size,
            max_pixels: crate::prep::DEFAULT_MAX_PIXELS,
            resize: "none: images copied from an HDF5 file".into(),
            created_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// Byte offsets of every image when they can be read straight from the file: no filter, and a
    /// contiguous layout or chunks of whole images. `None` otherwise (read through HDF5 instead).
    fn direct_offsets(
        path: &Path,
        images: &hdf5::Dataset,
        n: usize,
        record_len: usize,
        file_len: u64,
    ) -> Result<Option<Vec<u64>>> {
        if !images.filters().is_empty() {
            return Ok(None);
        }
        let truncated = |end: u64| {
            Error::format(
                path,
                format!("image data ends at byte {end} but the file has {file_len}: truncated — re-create or re-copy it"),
            )
        };
        let rl = record_len as u64;
        match images.layout() {
            hdf5::dataset::Layout::Contiguous => {
                let Some(base) = images.offset() else {
                    return Ok(None); // never written: fill values, read through HDF5
                };
                let end = base + n as u64 * rl;
                if end > file_len {
                    return Err(truncated(end));
                }
                Ok(Some((0..n as u64).map(|i| base + i * rl).collect()))
            }
            hdf5::dataset::Layout::Chunked => {
                let Some(chunk) = images.chunk() else {
                    return Ok(None);
                };
                let shape = images.shape();
                if chunk.len() != 4 || chunk[1..] != shape[1..] || chunk[0] == 0 {
                    return Ok(None);
                }
                let per = chunk[0];
                let mut offsets = Vec::with_capacity(n);
                for c in 0..n.div_ceil(per) {
                    let coord: [u64; 4] = [(c * per) as u64, 0, 0, 0];
                    let (mut mask, mut addr, mut bytes) = (0u32, 0u64, 0u64);
                    let rc = hdf5::sync::sync(|| unsafe {
                        // SAFETY: valid dataset id, a 4-element coordinate, out-pointers to locals.
                        hdf5_sys::h5d::H5Dget_chunk_info_by_coord(
                            images.id(),
                            coord.as_ptr(),
                            &mut mask,
                            &mut addr,
                            &mut bytes,
                        )
                    });
                    if rc < 0 || addr == hdf5_sys::h5::HADDR_UNDEF || bytes != per as u64 * rl {
                        return Ok(None);
                    }
                    let end = addr + bytes;
                    if end > file_len {
                        return Err(truncated(end));
                    }
                    for j in 0..per.min(n - c * per) {
                        offsets.push(addr + j as u64 * rl);
                    }
                }
                Ok(Some(offsets))
            }
            _ => Ok(None),
        }
    }

    fn read_strings(path: &Path, ds: &hdf5::Dataset) -> Result<Vec<String>> {
        if let Ok(v) = ds.read_raw::<VarLenUnicode>() {
            return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
        }
        if let Ok(v) = ds.read_raw::<hdf5::types::VarLenAscii>() {
            return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
        }
        Err(Error::format(
            path,
            format!(
                "{:?} must hold variable-length strings (h5py: h5py.string_dtype())",
                ds.name()
            ),
        ))
    }

    fn read_scalar_string(path: &Path, ds: &hdf5::Dataset) -> Result<String> {
        ds.read_scalar::<VarLenUnicode>()
            .map(|s| s.as_str().to_string())
            .map_err(|e| h5err(path, &format!("reading {:?}", ds.name()), e))
    }

    fn read_f64<const N: usize>(path: &Path, file: &hdf5::File, key: &str) -> Result<[f64; N]> {
        let v: Vec<f64> = file
            .dataset(key)
            .and_then(|d| d.read_raw())
            .map_err(|e| h5err(path, &format!("reading {key:?}"), e))?;
        v.try_into().map_err(|v: Vec<f64>| {
            Error::format(
                path,
                format!("{key:?} has {} values, expected {N}", v.len()),
            )
        })
    }

    /// The statistics stored in the file, or `None` when any of them is missing.
    fn read_stats(path: &Path, file: &hdf5::File, size: u32) -> Result<Option<Stats>> {
        if STAT_KEYS.iter().any(|k| !file.link_exists(k)) {
            return Ok(None);
        }
        let s = size as usize;
        let mean = file
            .dataset("mean_image")
            .map_err(|e| h5err(path, "mean_image", e))?;
        let desc = mean.dtype().and_then(|t| t.to_descriptor());
        if mean.shape() != [s, s, 3] || !matches!(desc, Ok(TypeDescriptor::Float(FloatSize::U4))) {
            return Err(Error::format(
                path,
                format!("mean_image must be float32 ({s}, {s}, 3); delete the statistics datasets to have them recomputed"),
            ));
        }
        let mean_image: Vec<f32> = mean
            .read_raw()
            .map_err(|e| h5err(path, "reading mean_image", e))?;
        let images = file
            .attr("stats_images")
            .and_then(|a| a.read_scalar::<u64>())
            .unwrap_or(0);
        let cov: [f64; 9] = read_f64(path, file, "covariance")?;
        let vecs: [f64; 9] = read_f64(path, file, "eigvecs")?;
        let rows = |v: [f64; 9]| [[v[0], v[1], v[2]], [v[3], v[4], v[5]], [v[6], v[7], v[8]]];
        Ok(Some(Stats {
            images,
            size,
            mean_image,
            channel_mean: read_f64(path, file, "channel_mean")?,
            channel_std: read_f64(path, file, "channel_std")?,
            covariance: rows(cov),
            eigvals: read_f64(path, file, "eigvals")?,
            eigvecs: rows(vecs),
        }))
    }

    fn vlu(path: &Path, s: &str) -> Result<VarLenUnicode> {
        s.parse::<VarLenUnicode>()
            .map_err(|e| Error::format(path, format!("cannot store {s:?} as an HDF5 string: {e}")))
    }

    fn sibling(out: &Path, suffix: &str) -> PathBuf {
        let mut name = out
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_else(|| "dataset.h5".into());
        name.push(suffix);
        out.with_file_name(name)
    }

    /// Writes an alexpipe HDF5 file atomically: into `OUT.partial-PID`, renamed to `OUT` by
    /// [`H5Writer::commit`] (a file replaced at `OUT` must itself be HDF5). Dropped uncommitted, it
    /// removes the partial file.
    pub struct H5Writer {
        out: PathBuf,
        partial: PathBuf,
        file: Option<hdf5::File>,
        images: Option<hdf5::Dataset>,
        size: u32,
        capacity: usize,
        classes: Vec<String>,
        labels: Vec<i64>,
        crcs: Vec<u32>,
        class_counts: Vec<u64>,
        index: String,
        rejects: String,
        rejected: u64,
        committed: bool,
    }

    impl H5Writer {
        /// Starts `out` for `size`×`size` images of `classes`.
        pub fn create(out: &Path, size: u32, classes: Vec<String>) -> Result<H5Writer> {
            match fs::symlink_metadata(out) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(out, e)),
                Ok(m) if m.is_file() && is_hdf5_file(out) => {}
                Ok(_) => {
                    return Err(Error::Usage(format!(
                        "{}: exists and is not an HDF5 file; choose a new output path or remove it",
                        out.display()
                    )))
                }
            }
            let partial = sibling(out, &format!(".partial-{}", std::process::id()));
            let _ = fs::remove_file(&partial);
            let file = hdf5::File::create(&partial)
                .map_err(|e| h5err(&partial, "cannot create the HDF5 file", e))?;
            let s = size as usize;
            let images = file
                .new_dataset::<u8>()
                .chunk((1, s, s, 3))
                .shape((0.., s, s, 3))
                .create("images")
                .map_err(|e| h5err(&partial, "creating images", e))?;
            Ok(H5Writer {
                out: out.to_path_buf(),
                partial,
                file: Some(file),
                images: Some(images),
                size,
                capacity: 0,
                class_counts: vec![0; classes.len()],
                classes,
                labels: Vec::new(),
                crcs: Vec::new(),
                index: "record\tlabel\tclass\tshard\tpath\n".into(),
                rejects: "path\treason\tdetail\n".into(),
                rejected: 0,
                committed: false,
            })
        }

        /// Appends one `size`×`size`×3 image for the input `rel`; returns its index.
        pub fn push(&mut self, label: u32, rel: &Path, pixels: &[u8]) -> Result<u64> {
            let s = self.size as usize;
            let n = self.labels.len();
            let images = self
                .images
                .as_ref()
                .ok_or_else(|| Error::format(&self.partial, "already committed"))?;
            if n == self.capacity {
                self.capacity = (self.capacity * 2).clamp(1024, n + (1 << 16));
                images
                    .resize((self.capacity, s, s, 3))
                    .map_err(|e| h5err(&self.partial, "growing images", e))?;
            }
            let view = ArrayView4::from_shape((1, s, s, 3), pixels)
                .map_err(|e| Error::Usage(format!("image {n}: {e} (expected {s}x{s}x3 bytes)")))?;
            images
                .write_slice(view, s![n..n + 1, .., .., ..])
                .map_err(|e| h5err(&self.partial, &format!("writing image {n}"), e))?;
            self.labels.push(label as i64);
            self.crcs.push(crc32c::crc32c(pixels));
            if let Some(c) = self.class_counts.get_mut(label as usize) {
                *c += 1;
            }
            let class = self
                .classes
                .get(label as usize)
                .map(|c| tsv_path(Path::new(c)))
                .unwrap_or_default();
            self.index.push_str(&format!(
                "{n}\t{label}\t{class}\timages\t{}\n",
                tsv_path(rel)
            ));
            Ok(n as u64)
        }

        /// Lists `rel` as rejected (stored as `rejects_tsv`).
        pub fn reject(&mut self, rel: &Path, reason: &RejectReason) -> Result<()> {
            self.rejects.push_str(&format!(
                "{}\t{}\t{}\n",
                tsv_path(rel),
                reason.kind(),
                tsv_path(Path::new(&reason.detail()))
            ));
            self.rejected += 1;
            Ok(())
        }

        /// Replaces the provenance reports with `index` and `rejects` (the texts of a dataset's
        /// `index.tsv` and `rejects.tsv`), for a lossless conversion.
        fn set_reports(&mut self, index: String, rejects: String, rejected: u64) {
            self.index = index;
            self.rejects = rejects;
            self.rejected = rejected;
        }

        /// Writes labels, class names, statistics and provenance, closes and moves the file into place.
        pub fn commit(self, stats: &Stats, build: BuildInfo) -> Result<Manifest> {
            let manifest = Manifest {
                format: FORMAT_NAME.into(),
                format_version: FORMAT_VERSION,
                mode: Mode::Raw,
                size: self.size,
                pixel_layout: "HWC RGB u8".into(),
                num_records: self.labels.len() as u64,
                classes: self.classes.clone(),
                class_counts: self.class_counts.clone(),
                rejected: self.rejected,
                shards: Vec::new(),
                files: Vec::new(),
                stats: StatsInfo::from_stats(stats),
                build,
            };
            self.commit_manifest(stats, manifest)
        }

        fn commit_manifest(mut self, stats: &Stats, manifest: Manifest) -> Result<Manifest> {
            let p = self.partial.clone();
            let e = |what: &str| {
                let p = p.clone();
                let what = what.to_string();
                move |err: hdf5::Error| h5err(&p, &format!("writing {what}"), err)
            };
            let n = self.labels.len();
            let s = self.size as usize;
            let images = self
                .images
                .take()
                .ok_or_else(|| Error::format(&p, "already committed"))?;
            images.resize((n, s, s, 3)).map_err(e("images"))?;
            // The file closes for real only once no object in it is open.
            drop(images);
            let file = self
                .file
                .take()
                .ok_or_else(|| Error::format(&p, "already committed"))?;
            let data1 = |name: &str, v: &[f64]| -> Result<()> {
                file.new_dataset_builder()
                    .with_data(ArrayView1::from(v))
                    .create(name)
                    .map(|_| ())
                    .map_err(e(name))
            };
            let data2 = |name: &str, v: &[[f64; 3]; 3]| -> Result<()> {
                let flat: Vec<f64> = v.iter().flatten().copied().collect();
                let view = ArrayView2::from_shape((3, 3), &flat[..])
                    .map_err(|err| Error::format(&p, err.to_string()))?;
                file.new_dataset_builder()
                    .with_data(view)
                    .create(name)
                    .map(|_| ())
                    .map_err(e(name))
            };
            file.new_dataset_builder()
                .with_data(ArrayView1::from(&self.labels[..]))
                .create("labels")
                .map_err(e("labels"))?;
            file.new_dataset_builder()
                .with_data(ArrayView1::from(&self.crcs[..]))
                .create(CRC_KEY)
                .map_err(e(CRC_KEY))?;
            let names = self
                .classes
                .iter()
                .map(|c| vlu(&p, c))
                .collect::<Result<Vec<_>>>()?;
            file.new_dataset_builder()
                .with_data(ArrayView1::from(&names[..]))
                .create(CLASSES_KEY)
                .map_err(e(CLASSES_KEY))?;
            let mean = ArrayView3::from_shape((s, s, 3), &stats.mean_image[..])
                .map_err(|err| Error::format(&p, format!("mean image: {err}")))?;
            file.new_dataset_builder()
                .with_data(mean)
                .create("mean_image")
                .map_err(e("mean_image"))?;
            data1("channel_mean", &stats.channel_mean)?;
            data1("channel_std", &stats.channel_std)?;
            data2("covariance", &stats.covariance)?;
            data1("eigvals", &stats.eigvals)?;
            data2("eigvecs", &stats.eigvecs)?;
            let json = serde_json::to_string_pretty(&manifest)
                .map_err(|err| Error::format(&p, err.to_string()))?;
            for (key, text) in [
                (MANIFEST_KEY, json.as_str()),
                (INDEX_KEY, self.index.as_str()),
                (REJECTS_KEY, self.rejects.as_str()),
            ] {
                let v = vlu(&p, text)?;
                file.new_dataset::<VarLenUnicode>()
                    .create(key)
                    .and_then(|d| d.write_scalar(&v))
                    .map_err(e(key))?;
            }
            let attr_str = |name: &str, v: &str| -> Result<()> {
                let v = vlu(&p, v)?;
                file.new_attr::<VarLenUnicode>()
                    .create(name)
                    .and_then(|a| a.write_scalar(&v))
                    .map_err(e(name))
            };
            attr_str("format", super::H5_FORMAT_NAME)?;
            attr_str("pixel_layout", "NHWC RGB uint8")?;
            attr_str("stats_units", crate::shards::STATS_UNITS)?;
            for (name, v) in [
                ("format_version", super::H5_FORMAT_VERSION as u64),
                ("size", self.size as u64),
                ("stats_images", stats.images),
            ] {
                file.new_attr::<u64>()
                    .create(name)
                    .and_then(|a| a.write_scalar(&v))
                    .map_err(e(name))?;
            }
            file.close().map_err(e("the file (close)"))?;
            fs::File::open(&p).and_then(|f| f.sync_all()).at(&p)?;
            fs::rename(&p, &self.out).at(&self.out)?;
            self.committed = true;
            if let Some(parent) = self.out.parent().filter(|d| !d.as_os_str().is_empty()) {
                crate::atomic_file::sync_dir(parent)?;
            }
            Ok(manifest)
        }
    }

    impl Drop for H5Writer {
        fn drop(&mut self) {
            if !self.committed {
                self.images.take();
                self.file.take();
                let _ = fs::remove_file(&self.partial);
            }
        }
    }

    /// Converts the raw-mode shard dataset `dir` into the HDF5 file `out`, losslessly: images,
    /// labels, class names, statistics, `index.tsv`, `rejects.tsv` and the manifest (provenance)
    /// are all kept, so [`hdf5_to_shards`] gives back the same files byte for byte.
    pub fn shards_to_hdf5(
        dir: &Path,
        out: &Path,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Manifest> {
        let ds = Dataset::open(dir)?;
        if ds.mode() != Mode::Raw {
            return Err(Error::Usage(format!(
                "{}: {} shards; converting to HDF5 needs raw shards (rebuild with --mode raw, or build straight to HDF5 with --format hdf5)",
                dir.display(),
                ds.mode().name()
            )));
        }
        let stats = ds
            .stats()
            .ok_or_else(|| Error::format(dir, "no statistics"))?
            .clone();
        let mut w = H5Writer::create(out, ds.size(), ds.classes().to_vec())?;
        let mut bytes = Vec::new();
        for i in 0..ds.len() {
            let label = ds.read_record(i, &mut bytes)?;
            w.push(label, Path::new(""), &bytes)?;
            progress(1);
        }
        let text = |name: &str| -> Result<String> {
            let p = dir.join(name);
            fs::read_to_string(&p).at(&p)
        };
        w.set_reports(
            text(INDEX_FILE)?,
            text(REJECTS_FILE)?,
            ds.manifest().rejected,
        );
        w.commit_manifest(&stats, ds.manifest().clone())
    }

    /// Converts the HDF5 file `path` (ours, or any with an image and a label dataset named by
    /// `opts.keys`) into a raw-mode shard dataset at `out`. A file written by alexpipe gives back
    /// the dataset it came from, byte for byte.
    pub fn hdf5_to_shards(
        path: &Path,
        out: &Path,
        opts: &ConvertOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<Manifest> {
        let ds = Dataset::open_hdf5(path, &opts.keys)?;
        let file = hdf5::File::open(path).map_err(|e| h5err(path, "cannot open", e))?;
        let text = |key: &str| -> Result<Option<String>> {
            match file.dataset(key) {
                Ok(d) => read_scalar_string(path, &d).map(Some),
                Err(_) => Ok(None),
            }
        };
        let ours = file.link_exists(MANIFEST_KEY);
        let mut build = ds.manifest().build.clone();
        if !ours {
            build = foreign_build_info(path, opts.shard_size);
        }
        let shard_size = build.shard_size.max(1);
        let size = ds.size();
        let mut w = DatasetWriter::create(out, Mode::Raw, size, shard_size, ds.classes().to_vec())?;
        let mut buf = vec![0u8; size as usize * size as usize * 3];
        let mut resize = crate::prep::ResizeCrop::new();
        // Source paths: from the file's index_tsv when it has one, else `images[i]`.
        let index = text(INDEX_KEY)?;
        let paths: Vec<PathBuf> = index
            .as_deref()
            .map(|t| {
                t.lines()
                    .skip(1)
                    .filter_map(|l| l.split('\t').nth(4))
                    .map(untsv)
                    .collect()
            })
            .unwrap_or_default();
        let key = &opts.keys.images;
        for i in 0..ds.len() {
            let label = ds.read_pixels(i, &mut resize, &mut buf)?;
            let rel = paths
                .get(i)
                .cloned()
                .unwrap_or_else(|| PathBuf::from(format!("{key}[{i}]")));
            w.push(label, &rel, &buf)?;
            progress(1);
        }
        // index.tsv is regenerated (same sources, same shards); rejects.tsv comes back verbatim.
        if let Some(rejects) = text(REJECTS_KEY)? {
            w.restore_rejects(rejects.as_bytes(), ds.manifest().rejected)?;
        }
        let stats = ds
            .stats()
            .ok_or_else(|| Error::format(path, "no statistics"))?
            .clone();
        drop(file);
        w.commit(&stats, build)
    }

    /// Inverse of [`tsv_path`].
    fn untsv(cell: &str) -> PathBuf {
        let b = cell.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'\\' && i + 1 < b.len() {
                match b[i + 1] {
                    b'\\' => out.push(b'\\'),
                    b't' => out.push(b'\t'),
                    b'n' => out.push(b'\n'),
                    b'r' => out.push(b'\r'),
                    b'x' if i + 3 < b.len() && cell.is_char_boundary(i + 4) => {
                        match u8::from_str_radix(&cell[i + 2..i + 4], 16) {
                            Ok(v) => {
                                out.push(v);
                                i += 4;
                                continue;
                            }
                            Err(_) => out.extend_from_slice(&b[i..i + 2]),
                        }
                    }
                    _ => out.extend_from_slice(&b[i..i + 2]),
                }
                i += 2;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStringExt;
            PathBuf::from(std::ffi::OsString::from_vec(out))
        }
        #[cfg(not(unix))]
        {
            PathBuf::from(String::from_utf8_lossy(&out).into_owned())
        }
    }

    #[allow(dead_code)]
    fn _assert_send_sync() {
        fn is<T: Send + Sync>() {}
        is::<H5Records>();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_at_the_start_or_after_a_user_block() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let write = |name: &str, at: usize| -> std::io::Result<std::path::PathBuf> {
            let mut bytes = vec![0u8; at + 64];
            bytes[at..at + 8].copy_from_slice(SIGNATURE);
            let p = dir.path().join(name);
            std::fs::write(&p, bytes)?;
            Ok(p)
        };
        assert!(is_hdf5_file(&write("a.h5", 0)?));
        assert!(is_hdf5_file(&write("b.h5", 512)?));
        assert!(is_hdf5_file(&write("c.h5", 2048)?));
        assert!(
            !is_hdf5_file(&write("d.h5", 100)?),
            "only at 0, 512, 1024, …"
        );
        assert!(!is_hdf5_file(dir.path()), "a directory");
        assert!(!is_hdf5_file(&dir.path().join("missing.h5")));
        Ok(())
    }

    #[cfg(not(feature = "hdf5"))]
    #[test]
    fn without_the_feature_an_hdf5_file_names_the_fix() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("x.h5");
        let mut bytes = SIGNATURE.to_vec();
        bytes.resize(64, 0);
        std::fs::write(&p, bytes)?;
        match crate::Dataset::open(&p) {
            Ok(_) => panic!("opened without HDF5 support"),
            Err(e) => assert!(e.to_string().contains("--features hdf5"), "{e}"),
        }
        Ok(())
    }
}
