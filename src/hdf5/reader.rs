//! Reading an HDF5 file as a [`RecordSource`]: shapes and types checked at open, every image's byte
//! offset looked up once when they are stored unfiltered (then read in place from a memory map,
//! without HDF5's global lock), `H5Dread` otherwise; checksums from the file's `crc32c` dataset.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use ::hdf5::types::{FloatSize, IntSize, TypeDescriptor, VarLenUnicode};
use memmap2::Mmap;
use ndarray::s;

use super::keys::*;
use super::H5Keys;
use crate::error::{Error, IoContext, Result};
use crate::prep::ResizeCrop;
use crate::shards::Manifest;
use crate::source::{BuildInfo, DatasetInfo, Mode, RecordRef, RecordSource};
use crate::stats::{Stats, StatsAccumulator};

pub(super) fn h5err(path: &Path, what: &str, e: ::hdf5::Error) -> Error {
    Error::format(path, format!("{what}: {e}"))
}

/// Records mapped in place: the file's bytes and each record's offset in it.
struct Direct {
    map: Mmap,
    offsets: Vec<u64>,
}

/// The records of an opened HDF5 file: the HDF5 implementation of [`RecordSource`].
pub(super) struct H5Source {
    path: PathBuf,
    info: DatasetInfo,
    _file: ::hdf5::File,
    images: ::hdf5::Dataset,
    labels: Vec<u32>,
    record_len: usize,
    direct: Option<Direct>,
    crcs: Option<Vec<u32>>,
    /// One bit per record: its checksum has been verified.
    verified: Vec<AtomicU64>,
}

impl H5Source {
    /// Opens `path`, checks shapes and types, and returns the records and the statistics (read
    /// from the file, or computed).
    pub(super) fn open(path: &Path, keys: &H5Keys) -> Result<(H5Source, Stats)> {
        let file_len = fs::metadata(path).at(path)?.len();
        let file = ::hdf5::File::open(path).map_err(|e| {
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
        let mut records = H5Source {
            path: path.to_path_buf(),
            info: DatasetInfo {
                format: "hdf5".into(),
                mode: Mode::Raw,
                size: size as u32,
                num_records: n as u64,
                classes: Vec::new(),
                class_counts: Vec::new(),
                rejected: 0,
                stats: None,
                build: foreign_build_info(path, 1024),
            },
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
        records.info.classes = classes;
        records.info.class_counts = class_counts;
        records.info.rejected = stored.as_ref().map_or(0, |m| m.rejected);
        records.info.stats = Some(stats.summary());
        if let Some(m) = stored {
            records.info.build = m.build;
        }
        Ok((records, stats))
    }

    fn corrupt(&self, index: usize) -> Error {
        Error::corrupt(
            &self.path,
            format!("image {index} fails its checksum: the file is corrupt — re-create it"),
        )
    }

    fn read_into(&self, index: usize, out: &mut [u8]) -> Result<u32> {
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
                self.read_into(i, &mut buf)?;
                acc.add_image(&buf);
            }
            acc
        };
        acc.finish()
            .ok_or_else(|| Error::format(&self.path, "no images to compute statistics from"))
    }
}

impl RecordSource for H5Source {
    fn info(&self) -> &DatasetInfo {
        &self.info
    }

    /// The `index_tsv` dataset of files alexpipe wrote; for others, `images[i]` per record.
    fn provenance(&self) -> Result<String> {
        let file =
            ::hdf5::File::open(&self.path).map_err(|e| h5err(&self.path, "cannot open", e))?;
        if let Ok(ds) = file.dataset(INDEX_KEY) {
            return read_scalar_string(&self.path, &ds);
        }
        let mut text = String::from("record\tlabel\tclass\tshard\tpath\n");
        for (i, &label) in self.labels.iter().enumerate() {
            let class = self
                .info
                .classes
                .get(label as usize)
                .map_or("", |c| c.as_str());
            text.push_str(&format!("{i}\t{label}\t{class}\timages\timages[{i}]\n"));
        }
        Ok(text)
    }

    fn location(&self) -> &Path {
        &self.path
    }

    fn label(&self, index: usize) -> Result<u32> {
        self.check_index(index)?;
        Ok(self.labels[index])
    }

    /// The image's pixels (an HDF5 record is always raw).
    fn read_record(&self, index: usize, buf: &mut Vec<u8>) -> Result<u32> {
        buf.resize(self.record_len, 0);
        self.read_into(index, buf)
    }

    fn read_pixels(&self, index: usize, _resize: &mut ResizeCrop, out: &mut [u8]) -> Result<u32> {
        self.read_into(index, out)
    }

    /// The record's bytes in the memory map, when the images are stored unfiltered.
    /// Its CRC-32C, when the file has a `crc32c` dataset, is checked the first time it is read.
    fn record_in_place(&self, index: usize) -> Result<Option<RecordRef<'_>>> {
        self.check_index(index)?;
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

    /// Reads every record; checks each against the file's `crc32c` dataset when it has one.
    fn verify(&self) -> Result<u64> {
        let mut buf = vec![0u8; self.record_len];
        for i in 0..self.labels.len() {
            self.read_into(i, &mut buf)?;
            if let Some(crcs) = &self.crcs {
                if crc32c::crc32c(&buf) != crcs[i] {
                    return Err(self.corrupt(i));
                }
            }
        }
        Ok(self.labels.len() as u64)
    }
}

pub(super) fn foreign_build_info(path: &Path, shard_size: u64) -> BuildInfo {
    BuildInfo {
        tool: format!("alexpipe {}", env!("CARGO_PKG_VERSION")),
        input: path.display().to_string(),
        input_kind: "hdf5".into(),
        quality: None,
        draft: false,
        max_side: None,
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
    images: &::hdf5::Dataset,
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
        ::hdf5::dataset::Layout::Contiguous => {
            let Some(base) = images.offset() else {
                return Ok(None); // never written: fill values, read through HDF5
            };
            let end = base + n as u64 * rl;
            if end > file_len {
                return Err(truncated(end));
            }
            Ok(Some((0..n as u64).map(|i| base + i * rl).collect()))
        }
        ::hdf5::dataset::Layout::Chunked => {
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
                let rc = ::hdf5::sync::sync(|| unsafe {
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

fn read_strings(path: &Path, ds: &::hdf5::Dataset) -> Result<Vec<String>> {
    if let Ok(v) = ds.read_raw::<VarLenUnicode>() {
        return Ok(v.iter().map(|s| s.as_str().to_string()).collect());
    }
    if let Ok(v) = ds.read_raw::<::hdf5::types::VarLenAscii>() {
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

pub(super) fn read_scalar_string(path: &Path, ds: &::hdf5::Dataset) -> Result<String> {
    ds.read_scalar::<VarLenUnicode>()
        .map(|s| s.as_str().to_string())
        .map_err(|e| h5err(path, &format!("reading {:?}", ds.name()), e))
}

fn read_f64<const N: usize>(path: &Path, file: &::hdf5::File, key: &str) -> Result<[f64; N]> {
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
fn read_stats(path: &Path, file: &::hdf5::File, size: u32) -> Result<Option<Stats>> {
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

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<H5Source>();
}
