//! Writing an alexpipe HDF5 file as a [`DatasetSink`]: `images` (N, S, S, 3) u8 in chunks of one
//! image, `labels`, `class_names`, per-image CRC-32C, the statistics and the provenance, into
//! `OUT.partial-PID`, fsync'd and renamed into place on commit.

use std::fs;
use std::path::{Path, PathBuf};

use ::hdf5::types::VarLenUnicode;
use ndarray::{s, ArrayView1, ArrayView2, ArrayView3, ArrayView4};

use super::keys::*;
use super::reader::h5err;
use super::{is_hdf5_file, H5_FORMAT_NAME, H5_FORMAT_VERSION};
use crate::error::{Error, IoContext, Result};
use crate::prep::RejectReason;
use crate::shards::{tsv_path, Manifest, StatsInfo, FORMAT_NAME, FORMAT_VERSION, STATS_UNITS};
use crate::sink::DatasetSink;
use crate::source::{BuildInfo, DatasetInfo, Mode};
use crate::stats::Stats;

pub(super) fn vlu(path: &Path, s: &str) -> Result<VarLenUnicode> {
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
    file: Option<::hdf5::File>,
    images: Option<::hdf5::Dataset>,
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
        let file = ::hdf5::File::create(&partial)
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
    pub(super) fn set_reports(&mut self, index: String, rejects: String, rejected: u64) {
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

    pub(super) fn commit_manifest(mut self, stats: &Stats, manifest: Manifest) -> Result<Manifest> {
        let p = self.partial.clone();
        let e = |what: &str| {
            let p = p.clone();
            let what = what.to_string();
            move |err: ::hdf5::Error| h5err(&p, &format!("writing {what}"), err)
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
        attr_str("format", H5_FORMAT_NAME)?;
        attr_str("pixel_layout", "NHWC RGB uint8")?;
        attr_str("stats_units", STATS_UNITS)?;
        for (name, v) in [
            ("format_version", H5_FORMAT_VERSION as u64),
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

impl DatasetSink for H5Writer {
    fn push(&mut self, label: u32, rel: &Path, bytes: &[u8]) -> Result<u64> {
        H5Writer::push(self, label, rel, bytes)
    }

    fn add_classes(&mut self, names: &[String]) -> Result<()> {
        self.classes.extend_from_slice(names);
        self.class_counts.resize(self.classes.len(), 0);
        Ok(())
    }

    fn reject(&mut self, rel: &Path, reason: &RejectReason) -> Result<()> {
        H5Writer::reject(self, rel, reason)
    }

    fn commit(self: Box<Self>, stats: &Stats, build: BuildInfo) -> Result<DatasetInfo> {
        let mut info = H5Writer::commit(*self, stats, build)?.dataset_info(true);
        info.format = "hdf5".into();
        Ok(info)
    }
}
