//! `alexpipe._alexpipe`: the engine for Python. Batches reach numpy without a copy: each images
//! array views the Rust batch buffer and keeps it alive; when the array is garbage-collected the
//! buffer goes back to the loader's pool. The GIL is released while building shards and while
//! waiting for a batch; Ctrl-C raises `KeyboardInterrupt` within 0.1 s.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use alexpipe::{
    Augmentations, ColorJitter, Eigenbasis, EraseFill, Interpolation, Layout, MeanMode, Mixup,
    Mode, Next, ProgressiveResize, RandomErasing, RandomResizedCrop, Recipe, TrivialAugmentWide,
};
use numpy::ndarray::{ArrayView, Ix4};
use numpy::{PyArray, PyArray1, PyArray2, PyArray3, PyArrayMethods};
use pyo3::exceptions::{
    PyConnectionError, PyFileNotFoundError, PyIndexError, PyOSError, PyPermissionError,
    PyRuntimeError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::PyDict;

pyo3::create_exception!(
    _alexpipe,
    AlexpipeError,
    PyRuntimeError,
    "A dataset or build error; the message names the file (and record) and the fix."
);
pyo3::create_exception!(
    _alexpipe,
    DatasetFormatError,
    AlexpipeError,
    "A dataset file is not what its format says (not a dataset, another version, inconsistent)."
);
pyo3::create_exception!(
    _alexpipe,
    CorruptDataError,
    AlexpipeError,
    "Bytes that fail their checksum, or a file that changed under an open dataset: rebuild it."
);
pyo3::create_exception!(
    _alexpipe,
    RejectedInputError,
    AlexpipeError,
    "strict=True build: an input image could not be used."
);
pyo3::create_exception!(
    _alexpipe,
    UnsupportedError,
    AlexpipeError,
    "A capability this build of alexpipe lacks (e.g. HDF5 without the `hdf5` feature)."
);
pyo3::create_exception!(
    _alexpipe,
    InternalError,
    AlexpipeError,
    "A failure inside alexpipe (a worker thread that panicked or could not start): please report it."
);

/// The Python exception for each kind of library error (the kinds, never the messages, decide).
fn to_py(e: alexpipe::Error) -> PyErr {
    use alexpipe::Error;
    let text = e.to_string();
    match e {
        Error::Usage(m) => PyValueError::new_err(m),
        Error::OutOfRange { .. } => PyIndexError::new_err(text),
        Error::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(text),
            std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(text),
            _ => PyOSError::new_err(text),
        },
        Error::Format { .. } => DatasetFormatError::new_err(text),
        Error::Corrupt { .. } => CorruptDataError::new_err(text),
        Error::Rejected { .. } => RejectedInputError::new_err(text),
        Error::Remote { .. } => PyConnectionError::new_err(text),
        Error::Unsupported(_) => UnsupportedError::new_err(text),
        Error::Internal(_) => InternalError::new_err(text),
    }
}

/// A library enum from its name, as the library parses it (one definition, no mirror here).
fn parse<T: std::str::FromStr<Err = alexpipe::Error>>(name: &str) -> PyResult<T> {
    name.parse().map_err(to_py)
}

/// Builds an alexpipe dataset (paper §2: short side to `size`, centre crop, statistics) from an
/// image folder (one sub-folder per class), a `path label` list file, WebDataset tars (paths,
/// brace ranges, globs, URLs; `label_key`), parquet / Arrow files or a Hugging Face dataset
/// directory (`image_column`, `label_column`). Returns a summary dict.
#[pyfunction]
#[pyo3(signature = (input, out, size=256, mode="raw", threads=None, strict=false, progress=true,
                    quality=90, draft=false, shard_size=1024, root=None, format="shards", max_side=None,
                    class_names=None, label_key=None, image_column=None, label_column=None, part=None))]
#[allow(clippy::too_many_arguments)]
fn build_shards<'py>(
    py: Python<'py>,
    input: PathBuf,
    out: PathBuf,
    size: u32,
    mode: &str,
    threads: Option<usize>,
    strict: bool,
    progress: bool,
    quality: u8,
    draft: bool,
    shard_size: u64,
    root: Option<PathBuf>,
    format: &str,
    max_side: Option<u32>,
    class_names: Option<PathBuf>,
    label_key: Option<String>,
    image_column: Option<String>,
    label_column: Option<String>,
    part: Option<&str>,
) -> PyResult<Bound<'py, PyDict>> {
    let mut cfg = alexpipe::BuildConfig::new(input, out);
    cfg.format = parse(format)?;
    cfg.size = size;
    cfg.mode = parse::<Mode>(mode)?;
    cfg.threads = threads;
    cfg.strict = strict;
    cfg.quality = quality;
    cfg.draft = draft;
    cfg.shard_size = shard_size;
    cfg.root = root;
    cfg.max_side = max_side;
    cfg.class_names = class_names;
    cfg.label_key = label_key;
    cfg.image_column = image_column;
    cfg.label_column = label_column;
    cfg.part = part.map(parse).transpose()?;
    let summary = py
        .detach(|| {
            let start = std::time::Instant::now();
            let discovered = alexpipe::build::discover(&cfg)?;
            let bar = alexpipe::progress::bar_or_spinner(discovered.inputs.len, "images", progress);
            let r = alexpipe::build::build_inputs(&cfg, discovered, start, &|n| bar.inc(n));
            bar.finish_and_clear();
            r
        })
        .map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("out", summary.out.display().to_string())?;
    d.set_item("inputs", summary.inputs)?;
    d.set_item("records", summary.info.num_records)?;
    d.set_item("rejected", summary.info.rejected)?;
    let rejects: Vec<(String, &str, String)> = summary
        .rejects
        .iter()
        .map(|(p, r)| (p.display().to_string(), r.kind(), r.detail()))
        .collect();
    d.set_item("rejects", rejects)?;
    d.set_item("classes", summary.info.classes.clone())?;
    d.set_item("class_counts", summary.info.class_counts.clone())?;
    d.set_item("threads", summary.threads)?;
    d.set_item("elapsed_secs", summary.elapsed_secs)?;
    Ok(d)
}

/// Merges the parts of a build made with `part="K/N"` (every part, any order) into the dataset
/// `out`, byte-identical to building the input in one go. Returns a summary dict.
#[pyfunction]
fn merge_parts<'py>(
    py: Python<'py>,
    parts: Vec<PathBuf>,
    out: PathBuf,
) -> PyResult<Bound<'py, PyDict>> {
    let summary = py
        .detach(|| alexpipe::shards::merge_parts(&parts, &out, &|_| {}))
        .map_err(to_py)?;
    let d = PyDict::new(py);
    d.set_item("out", summary.out.display().to_string())?;
    d.set_item("parts", summary.parts)?;
    d.set_item("records", summary.manifest.num_records)?;
    d.set_item("rejected", summary.manifest.rejected)?;
    d.set_item("shards_linked", summary.linked)?;
    d.set_item("shards_copied", summary.copied)?;
    d.set_item("records_repacked", summary.repacked)?;
    d.set_item("elapsed_secs", summary.elapsed_secs)?;
    Ok(d)
}

/// Converts between alexpipe shards and HDF5, losslessly; the direction follows from `input`: an
/// HDF5 file becomes a raw shard directory `out`, a shard directory becomes the HDF5 file `out`.
/// Returns the number of records. Needs the package built with the `hdf5` feature.
#[pyfunction]
#[pyo3(signature = (input, out, images_key="images", labels_key="labels", shard_size=1024))]
fn convert(
    py: Python<'_>,
    input: PathBuf,
    out: PathBuf,
    images_key: &str,
    labels_key: &str,
    shard_size: u64,
) -> PyResult<u64> {
    let opts = alexpipe::hdf5::ConvertOptions {
        keys: alexpipe::H5Keys {
            images: images_key.into(),
            labels: labels_key.into(),
        },
        shard_size: shard_size.max(1),
    };
    py.detach(|| {
        if alexpipe::hdf5::is_hdf5_file(&input) {
            alexpipe::hdf5::hdf5_to_shards(&input, &out, &opts, &|_| {})
        } else {
            alexpipe::hdf5::shards_to_hdf5(&input, &out, &|_| {})
        }
    })
    .map(|m| m.num_records)
    .map_err(to_py)
}

/// An opened alexpipe dataset: `len(ds)`, `ds[i] -> (uint8 array HWC, label)`, and its statistics.
#[pyclass(frozen, module = "alexpipe._alexpipe")]
struct Dataset {
    inner: Arc<alexpipe::Dataset>,
}

#[pymethods]
impl Dataset {
    /// `path`: a shard directory, an HDF5 file, or a shard dataset at an `http(s)://` or `s3://`
    /// URL (read through a local cache of `cache_bytes` in `cache_dir`; `s3_endpoint` for an
    /// S3-compatible store; `retries` attempts per file, `timeout` seconds per connect and read);
    /// for HDF5, `images_key` / `labels_key` name the N×S×S×3 uint8 image dataset and the label
    /// dataset.
    #[new]
    #[pyo3(signature = (path, images_key=None, labels_key=None, cache_dir=None, cache_bytes=None,
                        s3_endpoint=None, retries=None, timeout=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        path: PathBuf,
        images_key: Option<String>,
        labels_key: Option<String>,
        cache_dir: Option<PathBuf>,
        cache_bytes: Option<u64>,
        s3_endpoint: Option<String>,
        retries: Option<u32>,
        timeout: Option<f64>,
    ) -> PyResult<Self> {
        let mut remote = remote_options(cache_dir, cache_bytes, s3_endpoint);
        if let Some(attempts) = retries {
            remote.retry.attempts = attempts.max(1);
        }
        if let Some(t) = timeout {
            remote.retry.timeout = std::time::Duration::try_from_secs_f64(t).map_err(|_| {
                PyValueError::new_err("timeout must be a positive number of seconds")
            })?;
        }
        let inner = py
            .detach(|| {
                if let Some(url) = alexpipe::dataset::remote_url(&path) {
                    return alexpipe::Dataset::open_remote(url, &remote);
                }
                if images_key.is_none() && labels_key.is_none() {
                    return alexpipe::Dataset::open(&path);
                }
                let d = alexpipe::H5Keys::default();
                let keys = alexpipe::H5Keys {
                    images: images_key.unwrap_or(d.images),
                    labels: labels_key.unwrap_or(d.labels),
                };
                alexpipe::Dataset::open_hdf5(&path, &keys)
            })
            .map_err(to_py)?;
        Ok(Dataset {
            inner: Arc::new(inner),
        })
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// `(pixels, label)`: a `size`×`size`×3 uint8 array (a copy) and the class index.
    fn __getitem__<'py>(
        &self,
        py: Python<'py>,
        index: isize,
    ) -> PyResult<(Bound<'py, PyArray3<u8>>, i64)> {
        let n = self.inner.len() as isize;
        let i = if index < 0 { index + n } else { index };
        if i < 0 || i >= n {
            return Err(PyIndexError::new_err(format!(
                "record {index} out of range for {n} records"
            )));
        }
        let s = self.inner.size() as usize;
        let mut pixels = vec![0u8; s * s * 3];
        let label = py
            .detach(|| {
                self.inner.read_pixels(
                    i as usize,
                    &mut alexpipe::prep::ResizeCrop::new(),
                    &mut pixels,
                )
            })
            .map_err(to_py)?;
        let array = PyArray1::from_vec(py, pixels).reshape([s, s, 3])?;
        Ok((array, label as i64))
    }

    /// Class names; label i is `classes[i]`.
    #[getter]
    fn classes(&self) -> Vec<String> {
        self.inner.classes().to_vec()
    }

    /// `"raw"`, `"jpeg"` or `"original"`.
    #[getter]
    fn mode(&self) -> &'static str {
        self.inner.mode().name()
    }

    /// True when the records come from an HDF5 file.
    #[getter]
    fn is_hdf5(&self) -> bool {
        self.inner.info().format == "hdf5"
    }

    /// Side length of the stored images.
    #[getter]
    fn size(&self) -> u32 {
        self.inner.size()
    }

    /// The dataset directory (or HDF5 file).
    #[getter]
    fn path(&self) -> String {
        self.inner.location().display().to_string()
    }

    /// Per-pixel mean image, float32 (size, size, 3), u8 levels (paper §2).
    #[getter]
    fn mean_image<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray3<f32>>> {
        let stats = self.stats()?;
        let s = stats.size as usize;
        PyArray1::from_slice(py, &stats.mean_image).reshape([s, s, 3])
    }

    /// Per-channel mean (R, G, B), levels.
    #[getter]
    fn channel_mean<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(PyArray1::from_slice(py, &self.stats()?.channel_mean))
    }

    /// Per-channel population standard deviation, levels.
    #[getter]
    fn channel_std<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(PyArray1::from_slice(py, &self.stats()?.channel_std))
    }

    /// RGB covariance (3, 3), levels².
    #[getter]
    fn covariance<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let c = self.stats()?.covariance;
        Ok(PyArray2::from_vec2(py, c.map(|r| r.to_vec()).as_ref())?)
    }

    /// Covariance eigenvalues, descending, levels² (paper §4.1 λ).
    #[getter]
    fn eigvals<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<f64>>> {
        Ok(PyArray1::from_slice(py, &self.stats()?.eigvals))
    }

    /// Unit eigenvectors as columns (3, 3) (paper §4.1 p).
    #[getter]
    fn eigvecs<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let v = self.stats()?.eigvecs;
        Ok(PyArray2::from_vec2(py, v.map(|r| r.to_vec()).as_ref())?)
    }

    /// Checks every checksum of every file; returns the number of records checked.
    fn verify(&self, py: Python<'_>) -> PyResult<u64> {
        py.detach(|| self.inner.verify()).map_err(to_py)
    }

    fn __repr__(&self) -> String {
        format!(
            "alexpipe.Dataset({:?}, {} records, {} classes, mode={}, size={})",
            self.inner.location().display().to_string(),
            self.inner.len(),
            self.inner.classes().len(),
            self.inner.mode().name(),
            self.inner.size()
        )
    }
}

impl Dataset {
    fn stats(&self) -> PyResult<&alexpipe::Stats> {
        self.inner
            .stats()
            .ok_or_else(|| AlexpipeError::new_err("the dataset has no statistics"))
    }
}

/// A `Dataset` object's dataset, or the dataset at a path or URL (`remote`: how a URL is
/// fetched and cached).
fn dataset_of(
    py: Python<'_>,
    source: &Bound<'_, PyAny>,
    remote: &alexpipe::RemoteOptions,
) -> PyResult<Arc<alexpipe::Dataset>> {
    match source.cast::<Dataset>() {
        Ok(ds) => Ok(ds.get().inner.clone()),
        Err(_) => {
            let path: PathBuf = source.extract()?;
            Ok(Arc::new(
                py.detach(|| match alexpipe::dataset::remote_url(&path) {
                    Some(url) => alexpipe::Dataset::open_remote(url, remote),
                    None => alexpipe::Dataset::open(&path),
                })
                .map_err(to_py)?,
            ))
        }
    }
}

/// The cache and endpoint options of a dataset opened from a URL.
fn remote_options(
    cache_dir: Option<PathBuf>,
    cache_bytes: Option<u64>,
    s3_endpoint: Option<String>,
) -> alexpipe::RemoteOptions {
    alexpipe::RemoteOptions {
        cache_dir,
        cache_bytes,
        endpoint: s3_endpoint,
        ..alexpipe::RemoteOptions::default()
    }
}

/// Keeps a batch alive while numpy arrays view its images.
#[pyclass(frozen, module = "alexpipe._alexpipe")]
struct BatchBuffer {
    batch: alexpipe::Batch,
}

/// The engine: an iterable of `(images, labels)` batches (plus a dict of per-image augmentation
/// parameters with `debug=True`). See the package docs for every option.
///
/// Resumable (the `Stateful` protocol of `torch.distributed.checkpoint`): `state_dict()` after
/// any batch, `load_state_dict(d)` to start the next iteration at that point, under any world
/// size; see `alexpipe::state`.
#[pyclass(module = "alexpipe._alexpipe")]
struct Loader {
    inner: alexpipe::Loader,
    debug: bool,
    /// Batches handed out by the latest iteration, when one was started at the current epoch and
    /// position (shared with its `LoaderIter`).
    active: Option<Arc<AtomicUsize>>,
}

#[pymethods]
impl Loader {
    #[new]
    #[pyo3(signature = (source, batch_size=128, train=true, seed=0, shuffle=true, drop_last=true,
                        threads=None, prefetch=4, layout="f32_nchw", crop=224, flip=0.5, lighting=None,
                        mean=None, ten_crop=false, rank=0, world_size=1, eigvecs=None, axis_std=None,
                        indices=None, stats_from=None, debug=false, recipe="paper",
                        scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0), crop_fraction=0.875,
                        interpolation=None, decode="crop", order="global", shard_window=4, cache_dir=None,
                        cache_bytes=None, s3_endpoint=None, color_jitter=None, trivial_augment=false,
                        random_erasing=0.0, erasing_mode="const", erasing_scale=(0.02, 0.33),
                        erasing_ratio=(0.3, 3.3), mixup=0.0, cutmix=0.0, mix_prob=1.0,
                        mix_switch_prob=0.5, label_smoothing=0.1, views=1,
                        size_schedule=None))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        batch_size: usize,
        train: bool,
        seed: u64,
        shuffle: bool,
        drop_last: bool,
        threads: Option<usize>,
        prefetch: usize,
        layout: &str,
        crop: u32,
        flip: f64,
        lighting: Option<f32>,
        mean: Option<&str>,
        ten_crop: bool,
        rank: usize,
        world_size: usize,
        eigvecs: Option<[[f64; 3]; 3]>,
        axis_std: Option<[f64; 3]>,
        indices: Option<Vec<usize>>,
        stats_from: Option<&Bound<'_, PyAny>>,
        debug: bool,
        recipe: &str,
        scale: (f64, f64),
        ratio: (f64, f64),
        crop_fraction: f64,
        interpolation: Option<&str>,
        decode: &str,
        order: &str,
        shard_window: usize,
        cache_dir: Option<PathBuf>,
        cache_bytes: Option<u64>,
        s3_endpoint: Option<String>,
        color_jitter: Option<&Bound<'_, PyAny>>,
        trivial_augment: bool,
        random_erasing: f64,
        erasing_mode: &str,
        erasing_scale: (f64, f64),
        erasing_ratio: (f64, f64),
        mixup: f64,
        cutmix: f64,
        mix_prob: f64,
        mix_switch_prob: f64,
        label_smoothing: f64,
        views: usize,
        size_schedule: Option<(u32, u32, u64, u64, u32)>,
    ) -> PyResult<Self> {
        let remote = remote_options(cache_dir, cache_bytes, s3_endpoint);
        let dataset = dataset_of(py, source, &remote)?;
        let order = match order {
            "global" => alexpipe::Order::Global,
            "shards" => alexpipe::Order::Shards {
                window: shard_window,
            },
            other => {
                return Err(PyValueError::new_err(format!(
                    "order {other:?}: use \"global\" (a permutation of all records) or \"shards\" (shards in a random order, records shuffled within windows of shard_window shards)"
                )))
            }
        };
        let layout: Layout = parse(layout)?;
        // Each recipe's own defaults: the paper's mean image and PCA lighting; torchvision's
        // ImageNet normalisation and no lighting for RandomResizedCrop.
        // "timm": timm's ImageNet training defaults (LoaderConfig::timm), the options below
        // overriding them.
        let timm = recipe == "timm";
        let preset = alexpipe::LoaderConfig::timm(crop);
        let interpolation = match (interpolation, &preset.recipe) {
            (Some(name), _) => parse(name)?,
            (None, Recipe::RandomResizedCrop { crop, .. }) if timm => crop.interpolation,
            (None, _) => Interpolation::default(),
        };
        let recipe = match parse::<Recipe>(if timm { "rrc" } else { recipe })? {
            Recipe::Paper => Recipe::Paper,
            Recipe::RandomResizedCrop { .. } => Recipe::RandomResizedCrop {
                crop: RandomResizedCrop {
                    scale,
                    ratio,
                    crop_fraction,
                    interpolation,
                },
                decode: parse(decode)?,
            },
        };
        let preset = preset.augment;
        let paper = recipe == Recipe::Paper;
        let mean: MeanMode = match mean {
            Some(m) => parse(m)?,
            None if paper => MeanMode::Image,
            None => MeanMode::ImageNet,
        };
        let lighting = lighting.unwrap_or(if paper { 0.1 } else { 0.0 });
        let eigenbasis = match (eigvecs, axis_std) {
            (Some(eigvecs), Some(axis_std)) => Some(Eigenbasis { eigvecs, axis_std }),
            (None, None) => None,
            _ => {
                return Err(PyValueError::new_err(
                    "give both eigvecs and axis_std, or neither",
                ))
            }
        };
        let config = alexpipe::LoaderConfig {
            recipe,
            batch_size,
            train,
            shuffle,
            order,
            seed,
            drop_last,
            threads: threads.unwrap_or(0),
            prefetch,
            layout,
            crop,
            flip,
            lighting,
            mean,
            eigenbasis,
            ten_crop,
            rank,
            world_size,
            augment: Augmentations {
                color_jitter: match color_jitter {
                    Some(value) => Some(jitter_of(value)?),
                    None if timm => preset.color_jitter,
                    None => None,
                },
                trivial_augment: trivial_augment.then(TrivialAugmentWide::default),
                random_erasing: (random_erasing > 0.0)
                    .then(|| {
                        Ok::<_, PyErr>(RandomErasing {
                            p: random_erasing,
                            scale: erasing_scale,
                            ratio: erasing_ratio,
                            fill: erase_fill(erasing_mode)?,
                        })
                    })
                    .transpose()?,
                mixup: (mixup > 0.0 || cutmix > 0.0 || timm).then_some(Mixup {
                    mixup_alpha: mixup,
                    cutmix_alpha: cutmix,
                    prob: mix_prob,
                    switch_prob: mix_switch_prob,
                    label_smoothing,
                }),
                views,
                progressive: size_schedule.map(|(min, max, start_epoch, end_epoch, multiple)| {
                    ProgressiveResize {
                        min,
                        max,
                        start_epoch,
                        end_epoch,
                        multiple,
                    }
                }),
            },
        };
        let inner = match stats_from {
            // Validation images normalised with the training set's statistics (paper §2).
            Some(src) => {
                let train = dataset_of(py, src, &remote)?;
                let stats = train.stats().ok_or_else(|| {
                    AlexpipeError::new_err("stats_from: that dataset has no statistics")
                })?;
                alexpipe::Loader::with_stats(dataset, config, stats)
            }
            None => alexpipe::Loader::new(dataset, config),
        };
        let inner = match indices {
            Some(indices) => inner.and_then(|l| l.with_subset(indices)),
            None => inner,
        }
        .map_err(to_py)?;
        Ok(Loader {
            inner,
            debug,
            active: None,
        })
    }

    /// Batches per epoch.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Sets the epoch of the next iteration (order and augmentation), as `DistributedSampler.set_epoch`.
    /// After `load_state_dict`, setting the state's own epoch keeps the loaded position.
    fn set_epoch(&mut self, epoch: u64) {
        self.leave_iteration();
        self.inner.set_epoch(epoch);
    }

    /// The loader's state after the batches handed out so far (a dict of ints and strings: seed,
    /// epoch, consumed — positions of the epoch's global order all ranks together consumed — and
    /// what identifies the dataset and recipe). Take it at a step every rank has reached; it is
    /// the same on every rank. After an epoch's last batch it is the next epoch at 0.
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let done = self.active.as_ref().map_or(0, |n| n.load(Ordering::SeqCst));
        let state = self.inner.state(done).map_err(to_py)?;
        // Through the state's one serialised form (its fields are ints and strings).
        py.import("json")?.call_method1("loads", (state.to_json(),))
    }

    /// Starts the next iteration where `state` (from `state_dict()`, here or in another process,
    /// with any world size, threads or prefetch) stopped: the rest of its epoch, split among this
    /// loader's ranks, each record with the augmentation it would have had. A state at an
    /// epoch's end starts the next epoch. The position applies to the next iteration only.
    /// `ValueError` naming what differs for a state of another dataset, seed or recipe, or a
    /// corrupt one; the loader is then unchanged.
    fn load_state_dict(&mut self, py: Python<'_>, state: &Bound<'_, PyAny>) -> PyResult<()> {
        if state.cast::<PyDict>().is_err() {
            return Err(PyValueError::new_err(
                "not an alexpipe loader state: expected a dict (from Loader.state_dict())",
            ));
        }
        let json: String = py
            .import("json")?
            .call_method1("dumps", (state,))
            .and_then(|j| j.extract())
            .map_err(|e| PyValueError::new_err(format!("not an alexpipe loader state: {e}")))?;
        let state = alexpipe::LoaderState::from_json(&json).map_err(to_py)?;
        self.inner.resume(&state).map_err(to_py)?;
        self.active = None;
        Ok(())
    }

    /// The epoch the next iteration uses.
    #[getter]
    fn epoch(&self) -> u64 {
        self.inner.epoch()
    }

    /// What the f32 layout applies after the crop and the mirror, so that u8 batches
    /// (`layout="u8_nhwc"`, `debug=True` for each sample's x, y, flip and alpha) can be finished
    /// elsewhere into the same values, as `alexpipe.torch.TorchLoader(upload="u8")` does on the
    /// GPU: a dict with `mean` ("image", "channel" or "imagenet"), `recipe`, `mean_image` (size×size×3
    /// float32, levels), `channel_mean` and `channel_std` (float32[3], levels), `eigvecs`
    /// (float64 3×3, the lighting axes as columns) and `axis_std` (float64[3]).
    fn normalization<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let n = self.inner.normalization();
        let d = PyDict::new(py);
        let mean = match n.mean {
            alexpipe::MeanMode::Image => "image",
            alexpipe::MeanMode::Channel => "channel",
            alexpipe::MeanMode::ImageNet => "imagenet",
        };
        d.set_item("mean", mean)?;
        d.set_item("recipe", self.inner.config().recipe.name())?;
        let side = n.size as usize;
        let mean_image = PyArray1::from_slice(py, n.mean_image).reshape([side, side, 3])?;
        d.set_item("mean_image", mean_image)?;
        d.set_item("channel_mean", PyArray1::from_slice(py, &n.channel_mean))?;
        d.set_item("channel_std", PyArray1::from_slice(py, &n.channel_std))?;
        let rows: Vec<Vec<f64>> = n.eigenbasis.eigvecs.iter().map(|r| r.to_vec()).collect();
        d.set_item("eigvecs", PyArray2::from_vec2(py, &rows)?)?;
        d.set_item("axis_std", PyArray1::from_slice(py, &n.eigenbasis.axis_std))?;
        Ok(d)
    }

    /// The dataset being read.
    #[getter]
    fn dataset(&self) -> Dataset {
        Dataset {
            inner: self.inner.dataset().clone(),
        }
    }

    /// Runs the current epoch inside Rust, dropping each batch (the engine without Python, for
    /// benchmarks). Returns `(images, seconds)`.
    fn drain_epoch(&self, py: Python<'_>) -> PyResult<(usize, f64)> {
        py.detach(|| {
            let t = std::time::Instant::now();
            let mut images = 0;
            for batch in self.inner.iter() {
                images += batch?.shape()[0];
            }
            Ok((images, t.elapsed().as_secs_f64()))
        })
        .map_err(to_py)
    }

    fn __iter__(&mut self) -> LoaderIter {
        // A loaded position serves one iteration; the next one starts the epoch afresh.
        self.leave_iteration();
        let handed = Arc::new(AtomicUsize::new(0));
        self.active = Some(handed.clone());
        LoaderIter {
            epoch: Some(self.inner.iter()),
            debug: self.debug,
            handed,
        }
    }
}

impl Loader {
    /// Forgets the latest iteration; if there was one, the next starts at the epoch's beginning.
    fn leave_iteration(&mut self) {
        if self.active.take().is_some() {
            self.inner.rewind();
        }
    }
}

/// One epoch of a [`Loader`].
#[pyclass(module = "alexpipe._alexpipe")]
struct LoaderIter {
    epoch: Option<alexpipe::Epoch>,
    debug: bool,
    /// Batches handed out (what the loader's `state_dict` counts).
    handed: Arc<AtomicUsize>,
}

#[pymethods]
impl LoaderIter {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(epoch) = self.epoch.as_mut() else {
            return Ok(None);
        };
        let batch = loop {
            match py.detach(|| epoch.next_within(Duration::from_millis(100))) {
                Next::Pending => py.check_signals()?,
                Next::End => {
                    self.epoch = None;
                    return Ok(None);
                }
                Next::Batch(b) => {
                    self.handed.fetch_add(1, Ordering::SeqCst);
                    break b.map_err(to_py)?;
                }
            }
        };
        // With MixUp/CutMix, the [N, classes] soft labels (as timm's `Mixup` returns them).
        let labels = match batch.soft_labels() {
            Some(soft) => {
                let classes = soft.len() / batch.labels().len().max(1);
                let rows: Vec<Vec<f32>> =
                    soft.chunks(classes.max(1)).map(<[f32]>::to_vec).collect();
                PyArray2::from_vec2(py, &rows)
                    .map_err(|e| AlexpipeError::new_err(e.to_string()))?
                    .into_any()
            }
            None => PyArray1::from_slice(py, batch.labels()).into_any(),
        };
        let info = if self.debug {
            Some(params_dict(py, &batch)?)
        } else {
            None
        };
        let shape = batch.shape();
        let holder = Bound::new(py, BatchBuffer { batch })?;
        let b = &holder.get().batch;
        let images = match (b.images_f32(), b.images_u8()) {
            (Some(f), _) => {
                let view = ArrayView::<f32, Ix4>::from_shape(shape, f)
                    .map_err(|e| AlexpipeError::new_err(e.to_string()))?;
                // SAFETY: the view borrows the buffer owned by `holder`, which the array keeps alive
                // as its base object; nothing else writes the buffer while the batch is held.
                unsafe { PyArray::borrow_from_array(&view, holder.clone().into_any()) }.into_any()
            }
            (None, Some(u)) => {
                let view = ArrayView::<u8, Ix4>::from_shape(shape, u)
                    .map_err(|e| AlexpipeError::new_err(e.to_string()))?;
                // SAFETY: as above.
                unsafe { PyArray::borrow_from_array(&view, holder.clone().into_any()) }.into_any()
            }
            (None, None) => return Err(AlexpipeError::new_err("batch has no images")),
        };
        let tuple = match info {
            Some(info) => (images, labels, info).into_pyobject(py)?.into_any(),
            None => (images, labels).into_pyobject(py)?.into_any(),
        };
        Ok(Some(tuple))
    }

    /// Seconds the consumer has waited for batches in this epoch (a data-wait measure).
    #[getter]
    fn waited(&self) -> f64 {
        self.epoch
            .as_ref()
            .map_or(0.0, |e| e.waited().as_secs_f64())
    }
}

/// timm's `color_jitter` argument: one value for brightness, contrast and saturation, or 3 or 4
/// values (brightness, contrast, saturation[, hue]).
fn jitter_of(value: &Bound<'_, PyAny>) -> PyResult<ColorJitter> {
    let values: Vec<f32> = match value.extract::<f32>() {
        Ok(v) => vec![v, v, v],
        Err(_) => value.extract()?,
    };
    let hue = match values.len() {
        3 => 0.0,
        4 => values[3],
        n => {
            return Err(PyValueError::new_err(format!(
                "color_jitter: give one value or 3 or 4 (brightness, contrast, saturation[, hue]), not {n}"
            )))
        }
    };
    ColorJitter::new(values[0], values[1], values[2], hue).map_err(to_py)
}

/// timm's erasing modes: `"const"` (0), `"rand"` (one N(0, 1) value per channel), `"pixel"`
/// (one per value, torchvision's `value="random"`).
fn erase_fill(mode: &str) -> PyResult<EraseFill> {
    match mode {
        "const" => Ok(EraseFill::Constant([0.0; 3])),
        "rand" => Ok(EraseFill::PerChannel),
        "pixel" => Ok(EraseFill::PerPixel),
        other => Err(PyValueError::new_err(format!(
            "erasing_mode {other:?}: use \"const\" (0, torchvision's default), \"rand\" (per channel) or \"pixel\" (per pixel, timm's --remode pixel)"
        ))),
    }
}

fn params_dict<'py>(py: Python<'py>, batch: &alexpipe::Batch) -> PyResult<Bound<'py, PyDict>> {
    let p = batch.params();
    let d = PyDict::new(py);
    d.set_item(
        "indices",
        PyArray1::from_vec(py, batch.indices().iter().map(|&i| i as i64).collect()),
    )?;
    d.set_item(
        "x",
        PyArray1::from_vec(py, p.iter().map(|q| q.x as i64).collect()),
    )?;
    d.set_item(
        "y",
        PyArray1::from_vec(py, p.iter().map(|q| q.y as i64).collect()),
    )?;
    d.set_item(
        "w",
        PyArray1::from_vec(py, p.iter().map(|q| q.w as i64).collect()),
    )?;
    d.set_item(
        "h",
        PyArray1::from_vec(py, p.iter().map(|q| q.h as i64).collect()),
    )?;
    d.set_item(
        "flip",
        PyArray1::from_vec(py, p.iter().map(|q| q.flip).collect()),
    )?;
    let alpha: Vec<Vec<f32>> = p.iter().map(|q| q.alpha.to_vec()).collect();
    d.set_item("alpha", PyArray2::from_vec2(py, &alpha)?)?;
    // The optional ops' draws: NaN / -1 / "" where an op is off or did not act.
    let jitter: Vec<Vec<f32>> = p
        .iter()
        .map(|q| match &q.draws.jitter {
            Some(j) => [j.brightness, j.contrast, j.saturation, j.hue]
                .map(|f| f.unwrap_or(f32::NAN))
                .to_vec(),
            None => vec![f32::NAN; 4],
        })
        .collect();
    d.set_item("jitter", PyArray2::from_vec2(py, &jitter)?)?;
    let order: Vec<Vec<i64>> = p
        .iter()
        .map(|q| match &q.draws.jitter {
            Some(j) => j.order.map(i64::from).to_vec(),
            None => vec![-1; 4],
        })
        .collect();
    d.set_item("jitter_order", PyArray2::from_vec2(py, &order)?)?;
    let trivial: Vec<&str> = p
        .iter()
        .map(|q| q.draws.trivial.map_or("", |t| t.op.name()))
        .collect();
    d.set_item("trivial_op", trivial)?;
    d.set_item(
        "trivial_magnitude",
        PyArray1::from_vec(
            py,
            p.iter()
                .map(|q| q.draws.trivial.map_or(f32::NAN, |t| t.magnitude))
                .collect(),
        ),
    )?;
    let erase: Vec<Vec<i64>> = p
        .iter()
        .map(|q| match &q.draws.erase {
            Some(e) => vec![e.x as i64, e.y as i64, e.w as i64, e.h as i64],
            None => vec![-1; 4],
        })
        .collect();
    d.set_item("erase", PyArray2::from_vec2(py, &erase)?)?;
    let filters: Vec<&str> = p.iter().map(|q| q.draws.filter.name()).collect();
    d.set_item("filter", filters)?;
    d.set_item("labels", PyArray1::from_slice(py, batch.labels()))?;
    if let Some(mix) = batch.mix() {
        d.set_item("mix_lam", mix.lam)?;
        d.set_item("mix_box", mix.cutmix_box.map(|b| b.to_vec()))?;
    }
    d.set_item("wait", batch.wait().as_secs_f64())?;
    Ok(d)
}

/// The RandomResizedCrop windows the loader draws for records `0..count` of a `width`×`height`
/// image in `epoch` (training, the recipe's own draw from (seed, epoch, record)), as an int64
/// array of rows (left, top, width, height): for checking the sampling against torchvision's.
#[pyfunction]
#[pyo3(signature = (width, height, count, seed=0, epoch=0, scale=(0.08, 1.0), ratio=(3.0 / 4.0, 4.0 / 3.0)))]
#[allow(clippy::too_many_arguments)]
fn random_resized_crop_windows<'py>(
    py: Python<'py>,
    width: u32,
    height: u32,
    count: usize,
    seed: u64,
    epoch: u64,
    scale: (f64, f64),
    ratio: (f64, f64),
) -> PyResult<Bound<'py, PyArray2<i64>>> {
    let rrc = RandomResizedCrop {
        scale,
        ratio,
        ..RandomResizedCrop::default()
    };
    rrc.validate().map_err(to_py)?;
    if width == 0 || height == 0 {
        return Err(PyValueError::new_err("width and height must be at least 1"));
    }
    let rows: Vec<Vec<i64>> = (0..count)
        .map(|i| {
            // The loader's first draw of record i (its window), from the same generator.
            let mut rng = alexpipe::sampler::rng_for(seed, epoch, i as u64);
            let (x, y, w, h) = rrc.sample(&mut rng, width, height);
            vec![x as i64, y as i64, w as i64, h as i64]
        })
        .collect();
    if rows.is_empty() {
        return Ok(PyArray2::zeros(py, [0, 4], false));
    }
    PyArray2::from_vec2(py, &rows).map_err(|e| PyValueError::new_err(e.to_string()))
}

#[pymodule]
fn _alexpipe(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(build_shards, m)?)?;
    m.add_function(wrap_pyfunction!(random_resized_crop_windows, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    m.add_function(wrap_pyfunction!(merge_parts, m)?)?;
    m.add_class::<Dataset>()?;
    m.add_class::<Loader>()?;
    m.add_class::<LoaderIter>()?;
    m.add("AlexpipeError", m.py().get_type::<AlexpipeError>())?;
    m.add(
        "DatasetFormatError",
        m.py().get_type::<DatasetFormatError>(),
    )?;
    m.add("CorruptDataError", m.py().get_type::<CorruptDataError>())?;
    m.add(
        "RejectedInputError",
        m.py().get_type::<RejectedInputError>(),
    )?;
    m.add("UnsupportedError", m.py().get_type::<UnsupportedError>())?;
    m.add("InternalError", m.py().get_type::<InternalError>())?;
    Ok(())
}
