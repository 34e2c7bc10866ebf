//! The offline half of the paper's pipeline (§2), in parallel: discover → read → decode → resize the
//! short side → centre crop → (encode) → shard, with the statistics (§2 mean image, §4.1 RGB
//! eigenbasis) accumulated in the same pass. Record order is the input order, whatever the thread
//! count, and the statistics are exact integer sums, so a build is reproducible bit for bit.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::part::{
    files_digest, inputs_digest, ContainerFile, CutBy, PartInfo, PartSlice, PartSpec,
};
use crate::prep::{
    capped_dims, center_crop_span, decode_jpeg_span, decode_rgb, discover_folder, discover_list,
    is_jpeg, looks_like_image, max_file_bytes, DecodeOptions, Inputs, RejectReason, ResizeCrop,
    RgbImage, Source, TableFile, MAX_NUMBERED_CLASSES,
};
use crate::shards::{DatasetWriter, ShardSource, StatsInfo, MEAN_IMAGE_FILE};
use crate::sink::DatasetSink;
use crate::source::{BuildInfo, DatasetInfo, Mode, RecordSource};
use crate::stats::{Stats, StatsAccumulator};

/// What `build` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFormat {
    /// An alexpipe dataset directory of shards (`docs/FORMAT.md`).
    #[default]
    Shards,
    /// One HDF5 file (`docs/HDF5.md`; needs the `hdf5` feature and `Mode::Raw`).
    Hdf5,
}

/// The sink a build writes into: the one place the output format is chosen.
fn create_sink(cfg: &BuildConfig, classes: Vec<String>) -> Result<Box<dyn DatasetSink>> {
    Ok(match cfg.format {
        OutputFormat::Shards => Box::new(DatasetWriter::create(
            &cfg.out,
            cfg.mode,
            cfg.size,
            cfg.shard_size,
            classes,
        )?),
        OutputFormat::Hdf5 => crate::hdf5::create_sink(&cfg.out, cfg.size, classes)?,
    })
}

impl std::str::FromStr for OutputFormat {
    type Err = Error;

    /// `"shards"` or `"hdf5"`.
    fn from_str(s: &str) -> Result<OutputFormat> {
        match s {
            "shards" => Ok(OutputFormat::Shards),
            "hdf5" => Ok(OutputFormat::Hdf5),
            other => Err(Error::Usage(format!(
                "unknown output format {other:?}: use shards or hdf5"
            ))),
        }
    }
}

/// What to build.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    /// An ImageFolder directory, a list file of `path label` lines, WebDataset tars (a path, a
    /// brace range or glob, an `http(s)://` URL), parquet files (a path or glob) or a Hugging Face
    /// dataset directory (`save_to_disk`, or a Hub snapshot with `data/*.parquet`).
    pub input: PathBuf,
    /// For a list file: the directory its paths are relative to (default: the list file's directory).
    pub root: Option<PathBuf>,
    /// For a list file, WebDataset tars or parquet: a file with one class name per line.
    pub class_names: Option<PathBuf>,
    /// WebDataset: where a sample's label is, `EXT` (the integer text of the member with that
    /// extension) or `EXT:FIELD[.FIELD…]` (an integer field of a JSON member); `None`: `cls`.
    pub label_key: Option<String>,
    /// Parquet / Hugging Face: the image column (`None`: `image`, else `img`).
    pub image_column: Option<String>,
    /// Parquet / Hugging Face: the label column (`None`: `label`, else `labels`).
    pub label_column: Option<String>,
    /// The dataset directory to create or replace.
    pub out: PathBuf,
    /// Side length of the records (paper: 256).
    pub size: u32,
    /// Record layout.
    pub mode: Mode,
    /// JPEG quality for `Mode::Jpeg`.
    pub quality: u8,
    /// `Mode::Jpeg` only: keep each image whole at its own aspect, the long side capped at this
    /// (FFCV's `max_resolution`), instead of the `size`×`size` centre: what RandomResizedCrop
    /// needs. `size` still sets the paper recipe's view and the statistics.
    pub max_side: Option<u32>,
    /// Decode big JPEGs at reduced DCT scale (faster, not bit-identical to Pillow without draft).
    pub draft: bool,
    /// Records per shard file.
    pub shard_size: u64,
    /// Worker threads (`None`: all cores).
    pub threads: Option<usize>,
    /// Fail on the first input that cannot be used instead of listing it in `rejects.tsv`.
    pub strict: bool,
    /// Decompression-bomb guard.
    pub max_pixels: u64,
    /// Shard directory or HDF5 file.
    pub format: OutputFormat,
    /// Build only part K of N of the inputs, keeping the exact statistic sums, for
    /// [`crate::shards::merge_parts`] (`--part K/N`; see [`crate::part`]). `None`: the whole input.
    pub part: Option<PartSpec>,
}

impl BuildConfig {
    /// The paper's defaults for `input` → `out`.
    pub fn new(input: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        BuildConfig {
            input: input.into(),
            root: None,
            class_names: None,
            label_key: None,
            image_column: None,
            label_column: None,
            out: out.into(),
            size: 256,
            mode: Mode::Raw,
            quality: 90,
            max_side: None,
            draft: false,
            shard_size: 1024,
            threads: None,
            strict: false,
            max_pixels: crate::prep::DEFAULT_MAX_PIXELS,
            format: OutputFormat::Shards,
            part: None,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.size == 0 || self.size > 8192 {
            return Err(Error::Usage(format!(
                "--size {} is out of range; use 1..=8192 (the paper uses 256)",
                self.size
            )));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(Error::Usage(format!(
                "--quality {} is out of range; use 1..=100",
                self.quality
            )));
        }
        match self.max_side {
            Some(side) if self.mode != Mode::Jpeg => {
                return Err(Error::Usage(format!(
                    "--max-side {side} keeps whole images as re-encoded JPEGs: use it with --mode jpeg (--mode original keeps the source files whole)"
                )))
            }
            Some(0) => return Err(Error::Usage("--max-side must be at least 1".into())),
            _ => {}
        }
        if self.shard_size == 0 {
            return Err(Error::Usage("--shard-size must be at least 1".into()));
        }
        if self.threads == Some(0) {
            return Err(Error::Usage("--threads must be at least 1".into()));
        }
        if self.max_pixels == 0 {
            return Err(Error::Usage("--max-pixels must be at least 1".into()));
        }
        if let (Some(part), OutputFormat::Hdf5) = (self.part, self.format) {
            return Err(Error::Usage(format!(
                "--part {part} writes a shard directory to merge: drop --format hdf5 (convert the merged dataset instead)"
            )));
        }
        if self.format == OutputFormat::Hdf5 && self.mode != Mode::Raw {
            return Err(Error::Usage(format!(
                "--format hdf5 stores raw pixels; drop --mode {} (or build shards)",
                self.mode.name()
            )));
        }
        Ok(())
    }
}

/// What a build did.
#[derive(Debug, Clone)]
pub struct BuildSummary {
    /// The dataset directory.
    pub out: PathBuf,
    /// What the dataset written holds.
    pub info: DatasetInfo,
    /// Input files considered.
    pub inputs: u64,
    /// Inputs that did not become records, with the reason, in input order.
    pub rejects: Vec<(PathBuf, RejectReason)>,
    /// Worker threads used.
    pub threads: usize,
    /// Wall-clock seconds.
    pub elapsed_secs: f64,
}

/// One input after §2's preprocessing.
struct Prepared {
    /// `size`×`size`×3 pixels (for statistics; the record itself in raw mode).
    pixels: Vec<u8>,
    /// The record in jpeg / original mode.
    payload: Option<Vec<u8>>,
}

/// One worker's reusable state: resize buffers, the full-size frame JPEGs are decoded into,
/// JPEG encoder, and its share of the statistics.
struct Worker {
    resize: ResizeCrop,
    frame: RgbImage,
    compressor: Option<turbojpeg::Compressor>,
    stats: StatsAccumulator,
}

impl Worker {
    fn new(size: u32) -> Self {
        Worker {
            resize: ResizeCrop::new(),
            frame: RgbImage::default(),
            compressor: None,
            stats: StatsAccumulator::new(size),
        }
    }
}

/// The container inputs: WebDataset tars, or parquet / Arrow tables.
enum Container {
    /// Tar paths or URLs, in order.
    Tars(Vec<String>),
    /// Table files, and a `dataset_info.json` when the input is a Hugging Face directory.
    Tables(Vec<TableFile>, Option<serde_json::Value>),
}

/// Which container `input` names, if any: a URL (tars, brace-expanded), a Hugging Face dataset
/// directory, or paths (a pattern expanded) that are all `.tar` or all `.parquet` / `.arrow`.
fn container_input(input: &Path) -> Result<Option<Container>> {
    let text = input.to_string_lossy();
    if crate::prep::is_url(&text) {
        return Ok(Some(Container::Tars(crate::prep::expand_braces(&text)?)));
    }
    // A path that exists is taken as written, even with brackets or braces in its name.
    let pattern = !input.exists() && crate::prep::is_pattern(&text);
    if !pattern && input.is_dir() {
        return Ok(crate::prep::hf_dataset_files(input)?
            .map(|(files, info)| Container::Tables(files, info)));
    }
    let paths = if pattern {
        crate::prep::expand_local(&text)?
    } else {
        vec![input.to_path_buf()]
    };
    let is_tar = |p: &PathBuf| crate::prep::is_tar_name(&p.to_string_lossy());
    if paths.iter().all(is_tar) {
        let tars = paths.iter().map(|p| p.display().to_string()).collect();
        return Ok(Some(Container::Tars(tars)));
    }
    if let Some(tables) = paths.iter().map(|p| TableFile::from_path(p)).collect() {
        return Ok(Some(Container::Tables(tables, None)));
    }
    if pattern {
        let odd = paths
            .iter()
            .find(|p| !is_tar(p) && TableFile::from_path(p).is_none())
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "{text}: the pattern must name only WebDataset tars (.tar, .tar.gz, .tgz) or only parquet / Arrow files (.parquet, .arrow); it matches {odd}"
        )));
    }
    Ok(None)
}

/// The first of the container options `names` that `cfg` sets, by its command-line name.
fn given_option(cfg: &BuildConfig, names: &[&'static str]) -> Option<&'static str> {
    names.iter().copied().find(|name| match *name {
        "--root" => cfg.root.is_some(),
        "--label-key" => cfg.label_key.is_some(),
        "--image-column" => cfg.image_column.is_some(),
        "--label-column" => cfg.label_column.is_some(),
        _ => false,
    })
}

/// What discovery found: the inputs a build reads, in record order (with `--part`, only that
/// part's), their kind, and where the part lies in the whole input.
pub struct Discovered {
    /// The inputs to read.
    pub inputs: Inputs,
    /// `folder`, `list`, `webdataset`, `parquet` or `arrow` (the manifest's `build.input_kind`).
    pub kind: &'static str,
    /// With `--part`: which slice of the whole input the inputs are.
    pub part: Option<PartSlice>,
}

/// Finds the inputs of a build, the one place the input kind is chosen: WebDataset tars (`.tar`
/// paths, brace ranges, globs, `http(s)://` URLs), parquet / Arrow files or a Hugging Face dataset
/// directory; else a directory is an ImageFolder and a file is a list. With `--part`, only the
/// part's inputs: a slice of the listed inputs, or of the container files, so that a part opens
/// none of the other parts' files.
pub fn discover(cfg: &BuildConfig) -> Result<Discovered> {
    match container_input(&cfg.input)? {
        Some(Container::Tars(shards)) => {
            if let Some(opt) = given_option(cfg, &["--root", "--image-column", "--label-column"]) {
                return Err(Error::Usage(format!(
                    "{opt} does not apply to WebDataset tars; the label is chosen with --label-key"
                )));
            }
            let opts = crate::prep::WebDatasetOptions::new(
                cfg.label_key.as_deref(),
                cfg.class_names.as_deref(),
                max_file_bytes(cfg.max_pixels),
            )?;
            let options = format!("webdataset {:?}", opts.label_key);
            let files: Vec<(String, Option<PathBuf>)> = shards
                .iter()
                .map(|s| {
                    (
                        s.clone(),
                        (!crate::prep::is_url(s)).then(|| PathBuf::from(s)),
                    )
                })
                .collect();
            let read = files_read(cfg, files.len());
            let inputs = crate::prep::discover_webdataset(shards, read.clone(), opts)?;
            return container_part(cfg, inputs, "webdataset", &files, read, &options);
        }
        Some(Container::Tables(tables, info)) => {
            if let Some(opt) = given_option(cfg, &["--root", "--label-key"]) {
                return Err(Error::Usage(format!(
                    "{opt} does not apply to parquet; the columns are chosen with --image-column and --label-column"
                )));
            }
            let opts = crate::prep::ParquetOptions {
                image_column: cfg.image_column.clone(),
                label_column: cfg.label_column.clone(),
                class_names: cfg.class_names.clone(),
                max_bytes: max_file_bytes(cfg.max_pixels),
            };
            let kind = if tables
                .iter()
                .all(|f| f.kind == crate::prep::TableKind::Parquet)
            {
                "parquet"
            } else {
                "arrow"
            };
            let options = format!("{kind} {:?} {:?}", opts.image_column, opts.label_column);
            let files: Vec<(String, Option<PathBuf>)> = tables
                .iter()
                .map(|t| (t.rel.clone(), Some(t.path.clone())))
                .collect();
            let read = files_read(cfg, files.len());
            let inputs = crate::prep::discover_parquet(tables, read.clone(), info, opts)?;
            return container_part(cfg, inputs, kind, &files, read, &options);
        }
        None => {}
    }
    if let Some(opt) = given_option(cfg, &["--label-key", "--image-column", "--label-column"]) {
        return Err(Error::Usage(format!(
            "{opt} applies to WebDataset tars and parquet; INPUT {} is a folder or a list file",
            cfg.input.display()
        )));
    }
    let meta = fs::metadata(&cfg.input).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::Usage(format!(
                "{}: input does not exist; give an image folder or a list file",
                cfg.input.display()
            ))
        } else {
            Error::io(&cfg.input, e)
        }
    })?;
    let (inputs, kind) = if meta.is_dir() {
        if cfg.root.is_some() || cfg.class_names.is_some() {
            return Err(Error::Usage(
                "--root and --class-names apply to list files; INPUT is a folder".into(),
            ));
        }
        (discover_folder(&cfg.input)?, "folder")
    } else {
        let root = cfg.root.clone().unwrap_or_else(|| {
            cfg.input
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default()
        });
        (
            discover_list(&cfg.input, &root, cfg.class_names.as_deref())?,
            "list",
        )
    };
    Ok(match cfg.part {
        Some(spec) => part_of(cfg, spec, inputs, kind),
        None => Discovered {
            inputs,
            kind,
            part: None,
        },
    })
}

/// The container files a build reads of `files`: all of them, or with `--part` its whole files
/// ([`CutBy::Files`]).
fn files_read(cfg: &BuildConfig, files: usize) -> std::ops::Range<usize> {
    match cfg.part {
        Some(part) => {
            let r = CutBy::Files.range(part, files as u64, cfg.shard_size);
            r.start as usize..r.end as usize
        }
        None => 0..files,
    }
}

/// The discovery of container input whose `files` (the name, and the path of a local one) are
/// read from `read` on by `inputs`, and with `--part` where that slice lies: its digest names
/// every file of the whole input with its size, `options` (what picks the image and the label)
/// and the class names.
fn container_part(
    cfg: &BuildConfig,
    inputs: Inputs,
    kind: &'static str,
    files: &[(String, Option<PathBuf>)],
    read: std::ops::Range<usize>,
    options: &str,
) -> Result<Discovered> {
    let part = match cfg.part {
        Some(part) => {
            let whole = files
                .iter()
                .map(|(name, path)| ContainerFile::stat(name, path.as_deref()))
                .collect::<Result<Vec<_>>>()?;
            Some(PartSlice {
                part,
                cut_by: CutBy::Files,
                total: whole.len() as u64,
                range: read.start as u64..read.end as u64,
                inputs_digest: files_digest(
                    &inputs.classes,
                    inputs.classes_from_labels,
                    options,
                    &whole,
                ),
                classes_from_labels: inputs.classes_from_labels,
            })
        }
        None => None,
    };
    Ok(Discovered { inputs, kind, part })
}

/// Why a container sample's `label` cannot be used with `known` class names, if it cannot.
fn check_label(label: Option<u32>, known: usize, from_labels: bool) -> Option<RejectReason> {
    let label = label?; // None: the reader has refused it already
    if from_labels {
        (label as usize >= MAX_NUMBERED_CLASSES).then(|| {
            RejectReason::NoLabel(format!(
                "label {label} is too large to name classes by number (at most {MAX_NUMBERED_CLASSES}); give --class-names"
            ))
        })
    } else {
        (label as usize >= known).then(|| {
            RejectReason::NoLabel(format!(
                "label {label} has no class name: there are {known} class names; add the missing names (--class-names)"
            ))
        })
    }
}

fn encode_jpeg(
    compressor: &mut Option<turbojpeg::Compressor>,
    pixels: &[u8],
    (width, height): (u32, u32),
    quality: u8,
) -> std::result::Result<Vec<u8>, RejectReason> {
    let unsupported = |e: turbojpeg::Error| RejectReason::Unsupported(format!("JPEG encode: {e}"));
    let c = match compressor {
        Some(c) => c,
        None => {
            let mut c = turbojpeg::Compressor::new().map_err(unsupported)?;
            c.set_quality(quality as i32).map_err(unsupported)?;
            c.set_subsamp(turbojpeg::Subsamp::Sub2x2)
                .map_err(unsupported)?;
            compressor.insert(c)
        }
    };
    let image = turbojpeg::Image {
        pixels,
        width: width as usize,
        pitch: width as usize * 3,
        height: height as usize,
        format: turbojpeg::PixelFormat::RGB,
    };
    c.compress_to_vec(image).map_err(unsupported)
}

fn prepare(
    src: Source,
    cfg: &BuildConfig,
    worker: &mut Worker,
) -> std::result::Result<Prepared, RejectReason> {
    if let Some(reason) = src.refused {
        return Err(reason);
    }
    let limit = max_file_bytes(cfg.max_pixels);
    let bytes = match src.bytes {
        // Read by a container reader (a tar member, a parquet cell): the same checks as a file's.
        Some(bytes) => check_image_bytes(bytes, limit)?,
        None => {
            let meta =
                fs::metadata(&src.path).map_err(|e| RejectReason::Unreadable(e.to_string()))?;
            if !meta.is_file() {
                // A FIFO or device would block or never end: never read one.
                return Err(RejectReason::Unreadable("not a regular file".into()));
            }
            read_image_file(&src.path, meta.len(), limit)?
        }
    };
    prepare_bytes(bytes, cfg, worker)
}

/// [`read_image_file`]'s checks on bytes already in memory.
fn check_image_bytes(bytes: Vec<u8>, limit: u64) -> std::result::Result<Vec<u8>, RejectReason> {
    if bytes.is_empty() {
        return Err(RejectReason::Empty);
    }
    if !looks_like_image(&bytes[..bytes.len().min(64)]) {
        return Err(RejectReason::NotAnImage);
    }
    if bytes.len() as u64 > limit {
        return Err(RejectReason::FileTooLarge {
            bytes: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// §2 on one file's bytes, after [`read_image_file`]: decode, resize, crop, (re-encode), and add
/// the pixels to the worker's statistics.
fn prepare_bytes(
    bytes: Vec<u8>,
    cfg: &BuildConfig,
    worker: &mut Worker,
) -> std::result::Result<Prepared, RejectReason> {
    let opts = DecodeOptions {
        max_pixels: cfg.max_pixels,
        draft_for: cfg.draft.then_some(cfg.size),
    };
    // Only the centre is kept: a JPEG decodes just the part the resize reads (the same pixels
    // there), unless the whole image is kept too (max_side) or drafted.
    let centre_only = cfg.max_side.is_none() && !cfg.draft && is_jpeg(&bytes);
    let size = cfg.size;
    let span = |w, h| center_crop_span(w, h, size);
    if !(centre_only && decode_jpeg_span(&bytes, &opts, span, &mut worker.frame)?) {
        worker.frame = decode_rgb(&bytes, &opts)?;
    }
    let img = &mut worker.frame;
    if let Some(side) = cfg.max_side {
        // The whole image at its own aspect, capped; the paper's view below is taken from it,
        // as the reader will take it from the stored JPEG.
        let (w, h) = capped_dims(img.width, img.height, side);
        if (w, h) != (img.width, img.height) {
            *img = worker.resize.resize_whole(img, w, h);
        }
    }
    let mut pixels = vec![0u8; cfg.size as usize * cfg.size as usize * 3];
    worker.resize.resize_center_crop(img, cfg.size, &mut pixels);
    let payload = match cfg.mode {
        Mode::Raw => None,
        Mode::Jpeg if cfg.max_side.is_some() => Some(encode_jpeg(
            &mut worker.compressor,
            &img.pixels,
            (img.width, img.height),
            cfg.quality,
        )?),
        Mode::Jpeg => Some(encode_jpeg(
            &mut worker.compressor,
            &pixels,
            (cfg.size, cfg.size),
            cfg.quality,
        )?),
        Mode::Original => Some(bytes),
    };
    worker.stats.add_image(&pixels);
    Ok(Prepared { pixels, payload })
}

fn prepare_contained(
    src: Source,
    cfg: &BuildConfig,
    worker: &mut Worker,
) -> std::result::Result<Prepared, RejectReason> {
    catch_unwind(AssertUnwindSafe(|| prepare(src, cfg, worker)))
        .unwrap_or_else(|panic| Err(RejectReason::DecoderPanic(panic_message(&*panic))))
}

/// What `build-shards` makes of one input file's bytes, exactly as a build does it: the format
/// sniff, decode (with the `cfg.max_pixels` guard), short-side resize, centre crop and, in jpeg
/// mode, the re-encode. Returns the record's bytes (the S×S×3 pixels in raw mode). Panics inside
/// the decoders are contained as [`RejectReason::DecoderPanic`]. For tests and the fuzz targets.
pub fn prepare_file_bytes(
    bytes: &[u8],
    cfg: &BuildConfig,
) -> std::result::Result<Vec<u8>, RejectReason> {
    if bytes.is_empty() {
        return Err(RejectReason::Empty);
    }
    if !looks_like_image(&bytes[..bytes.len().min(64)]) {
        return Err(RejectReason::NotAnImage);
    }
    let mut worker = Worker::new(cfg.size);
    catch_unwind(AssertUnwindSafe(|| {
        prepare_bytes(bytes.to_vec(), cfg, &mut worker)
    }))
    .unwrap_or_else(|panic| Err(RejectReason::DecoderPanic(panic_message(&*panic))))
    .map(|p| p.payload.unwrap_or(p.pixels))
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Reads a file whose first bytes look like an image and whose size is within `limit`; anything
/// else is refused after reading 64 bytes, so a huge file costs no memory.
fn read_image_file(
    path: &Path,
    len: u64,
    limit: u64,
) -> std::result::Result<Vec<u8>, RejectReason> {
    use std::io::Read;
    let unreadable = |e: std::io::Error| RejectReason::Unreadable(e.to_string());
    let mut file = fs::File::open(path).map_err(unreadable)?;
    let mut bytes = Vec::with_capacity(len.min(64) as usize);
    (&mut file)
        .take(64)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.is_empty() {
        return Err(RejectReason::Empty);
    }
    if !looks_like_image(&bytes) {
        return Err(RejectReason::NotAnImage);
    }
    if len > limit {
        return Err(RejectReason::FileTooLarge { bytes: len, limit });
    }
    bytes.reserve(len as usize);
    // `take`: a file that grows after the size check (a log, a file being written) still cannot
    // make this read more than the limit.
    (&mut file)
        .take(limit.saturating_sub(bytes.len() as u64).saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(RejectReason::FileTooLarge {
            bytes: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}

/// Lets the feeder hand input `j` to the workers only while it is at most `window` ahead of the
/// writer, so that results can be written in input order while every core stays busy and memory
/// stays bounded.
struct Dispatch {
    window: usize,
    /// Inputs written (or rejected) so far, and whether the writer has stopped.
    written: Mutex<(usize, bool)>,
    advanced: Condvar,
}

impl Dispatch {
    /// Waits until input `j` may be handed out; false when the writer has stopped.
    fn wait_for_room(&self, j: usize) -> bool {
        let mut state = self.written.lock().unwrap_or_else(|p| p.into_inner());
        while !state.1 && j >= state.0 + self.window {
            state = self.advanced.wait(state).unwrap_or_else(|p| p.into_inner());
        }
        !state.1
    }

    fn set(&self, written: usize, stopped: bool) {
        let mut state = self.written.lock().unwrap_or_else(|p| p.into_inner());
        *state = (written, stopped);
        self.advanced.notify_all();
    }
}

fn worker_threads(threads: Option<usize>) -> usize {
    crate::threads::worker_threads(threads.unwrap_or(0))
}

fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut b = rayon::ThreadPoolBuilder::new().thread_name(|i| format!("alexpipe-build-{i}"));
    if let Some(n) = threads {
        b = b.num_threads(n);
    }
    b.build()
        .map_err(|e| Error::Internal(format!("cannot start worker threads: {e}")))
}

/// Builds the dataset described by `cfg`. `progress` is called once per input processed, from the
/// worker threads.
pub fn build(cfg: &BuildConfig, progress: &(dyn Fn(u64) + Sync)) -> Result<BuildSummary> {
    let start = Instant::now();
    cfg.validate()?;
    build_inputs(cfg, discover(cfg)?, start, progress)
}

/// Builds from already discovered inputs (see [`build`]).
pub fn build_inputs(
    cfg: &BuildConfig,
    discovered: Discovered,
    start: Instant,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<BuildSummary> {
    cfg.validate()?;
    let threads = worker_threads(cfg.threads);
    let Discovered {
        inputs,
        kind: input_kind,
        part,
    } = discovered;
    let Inputs {
        classes,
        classes_from_labels,
        len: _,
        sources,
    } = inputs;
    let mut num_classes = classes.len();
    let mut writer = create_sink(cfg, classes)?;
    let dispatch = Dispatch {
        window: threads * 32,
        written: Mutex::new((0, false)),
        advanced: Condvar::new(),
    };
    let mut rejects = Vec::new();
    let mut count = 0usize;
    /// An input's name (`rel`), where it was read (`path`), its label and what became of it.
    type Item = (
        usize,
        PathBuf,
        PathBuf,
        Option<u32>,
        std::result::Result<Prepared, RejectReason>,
    );
    let (job_tx, job_rx) = crossbeam_channel::bounded::<(usize, Source)>(threads * 2);
    let (tx, rx) = crossbeam_channel::bounded::<Item>(threads * 4);
    let (written, fed, parts) = std::thread::scope(|scope| {
        let dispatch = &dispatch;
        // The feeder walks the inputs in order (a container reader reads its files here, one
        // sample at a time) and hands them to the workers, never more than the window ahead.
        let known = num_classes;
        let feeder = std::thread::Builder::new()
            .name("alexpipe-build-feed".into())
            .spawn_scoped(scope, move || {
                for (j, mut src) in sources.enumerate() {
                    if !dispatch.wait_for_room(j) {
                        break;
                    }
                    if src.refused.is_none() {
                        src.refused = check_label(src.label, known, classes_from_labels);
                    }
                    if job_tx.send((j, src)).is_err() {
                        break; // the workers stopped: the writer failed, reported below
                    }
                }
            });
        let workers: Vec<_> = (0..threads)
            .map(|i| {
                let tx = tx.clone();
                let job_rx = job_rx.clone();
                std::thread::Builder::new()
                    .name(format!("alexpipe-build-{i}"))
                    .spawn_scoped(scope, move || {
                        let mut worker = Worker::new(cfg.size);
                        for (j, src) in job_rx {
                            let (rel, path, label) = (src.rel.clone(), src.path.clone(), src.label);
                            let result = prepare_contained(src, cfg, &mut worker);
                            progress(1);
                            if tx.send((j, rel, path, label, result)).is_err() {
                                break; // the writer stopped on an error, reported below
                            }
                        }
                        worker.stats
                    })
            })
            .collect();
        drop(tx);
        drop(job_rx);
        // This thread writes, in input order, holding early results until their turn.
        let written = (|| -> Result<()> {
            let mut early = std::collections::BTreeMap::new();
            for (j, rel, path, label, result) in &rx {
                early.insert(j, (rel, path, label, result));
                while let Some((rel, path, label, result)) = early.remove(&count) {
                    match result {
                        Ok(p) => {
                            let label = label.unwrap_or_default(); // refused when None
                            if label as usize >= num_classes {
                                // Only when classes come from the labels (checked by the feeder).
                                let names: Vec<String> = (num_classes..=label as usize)
                                    .map(|l| l.to_string())
                                    .collect();
                                writer.add_classes(&names)?;
                                num_classes = label as usize + 1;
                            }
                            writer.push(label, &rel, p.payload.as_deref().unwrap_or(&p.pixels))?;
                        }
                        Err(reason) if cfg.strict => {
                            return Err(Error::Rejected {
                                path,
                                kind: reason.kind(),
                                reason: reason.to_string(),
                            })
                        }
                        Err(reason) => {
                            writer.reject(&rel, &reason)?;
                            rejects.push((rel, reason));
                        }
                    }
                    count += 1;
                    dispatch.set(count, false);
                }
            }
            Ok(())
        })();
        dispatch.set(0, true);
        drop(rx);
        let fed = feeder.map(|h| h.join());
        let parts: Vec<_> = workers.into_iter().map(|w| w.map(|h| h.join())).collect();
        (written, fed, parts)
    });
    written?;
    match fed {
        Ok(Ok(())) => {}
        Ok(Err(panic)) => return Err(Error::from_panic("the input reader", panic.as_ref())),
        Err(e) => {
            return Err(Error::Internal(format!(
                "cannot start the input reader thread: {e}"
            )))
        }
    }
    let mut acc = StatsAccumulator::new(cfg.size);
    for part in parts {
        match part {
            Ok(Ok(stats)) => acc.merge(&stats),
            Ok(Err(panic)) => return Err(Error::from_panic("a build worker", panic.as_ref())),
            Err(e) => {
                return Err(Error::Internal(format!(
                    "cannot start a build worker thread: {e}"
                )))
            }
        }
    }
    let stats = match (acc.finish(), &part) {
        (Some(stats), _) => Some(stats),
        // A part may hold no records (all its inputs rejected, or no inputs at all).
        (None, Some(_)) => Some(no_images(cfg.size)),
        (None, None) => None,
    };
    let Some(stats) = stats else {
        let examples: Vec<String> = rejects
            .iter()
            .take(5)
            .map(|(p, r)| format!("  {}: {r}", p.display()))
            .collect();
        return Err(Error::Usage(format!(
            "none of the {} inputs in {} could be used:\n{}",
            count,
            cfg.input.display(),
            examples.join("\n")
        )));
    };
    let build = BuildInfo {
        tool: format!("alexpipe {}", env!("CARGO_PKG_VERSION")),
        input: cfg.input.display().to_string(),
        input_kind: input_kind.into(),
        quality: (cfg.mode == Mode::Jpeg).then_some(cfg.quality),
        draft: cfg.draft,
        max_side: cfg.max_side,
        shard_size: cfg.shard_size,
        max_pixels: cfg.max_pixels,
        resize:
            "short side to size, antialiased bilinear (Pillow BILINEAR), centre crop (torchvision)"
                .into(),
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let info = match part {
        Some(slice) => {
            let sums = acc.sums();
            let part = PartInfo::new(slice, cfg.mode, build.clone(), &sums);
            writer.commit_part(&stats, build, &part, &sums.pixel_sum)?
        }
        None => writer.commit(&stats, build)?,
    };
    Ok(BuildSummary {
        out: cfg.out.clone(),
        info,
        inputs: count as u64,
        rejects,
        threads,
        elapsed_secs: start.elapsed().as_secs_f64(),
    })
}

/// Part `spec` of the listed `inputs` of an image folder or a list file ([`CutBy::Inputs`]), and
/// where it lies in them.
fn part_of(cfg: &BuildConfig, spec: PartSpec, inputs: Inputs, kind: &'static str) -> Discovered {
    let sources: Vec<Source> = inputs.sources.collect();
    let digest = inputs_digest(&inputs.classes, &sources);
    let range = CutBy::Inputs.range(spec, sources.len() as u64, cfg.shard_size);
    let part = PartSlice {
        part: spec,
        cut_by: CutBy::Inputs,
        total: sources.len() as u64,
        range: range.clone(),
        inputs_digest: digest,
        classes_from_labels: false,
    };
    let slice: Vec<Source> = sources
        .into_iter()
        .skip(range.start as usize)
        .take((range.end - range.start) as usize)
        .collect();
    Discovered {
        inputs: Inputs::listed(inputs.classes, slice),
        kind,
        part: Some(part),
    }
}

/// The statistics of a part with no records: zeros, covering no image.
fn no_images(size: u32) -> Stats {
    Stats {
        images: 0,
        size,
        mean_image: vec![0.0; size as usize * size as usize * 3],
        channel_mean: [0.0; 3],
        channel_std: [0.0; 3],
        covariance: [[0.0; 3]; 3],
        eigvals: [0.0; 3],
        eigvecs: [[0.0; 3]; 3],
    }
}

/// Recomputes the statistics of an existing dataset from its records (decoding them in jpeg and
/// original modes) and rewrites `mean_image.npy` and the manifest. Returns the new statistics.
pub fn recompute_stats(
    dir: &Path,
    threads: Option<usize>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Stats> {
    let (dataset, _) = ShardSource::open(dir, false)?;
    let pool = thread_pool(threads)?;
    let size = dataset.info().size;
    let n = size as usize * size as usize * 3;
    let acc = pool.install(|| {
        (0..dataset.info().num_records as usize)
            .into_par_iter()
            .try_fold(
                || (StatsAccumulator::new(size), ResizeCrop::new(), vec![0u8; n]),
                |(mut acc, mut resize, mut buf), i| {
                    dataset.read_pixels(i, &mut resize, &mut buf)?;
                    acc.add_image(&buf);
                    progress(1);
                    Ok::<_, Error>((acc, resize, buf))
                },
            )
            .map(|r| r.map(|(acc, _, _)| acc))
            .try_reduce(
                || StatsAccumulator::new(size),
                |mut a, b| {
                    a.merge(&b);
                    Ok(a)
                },
            )
    })?;
    let stats = acc
        .finish()
        .ok_or_else(|| Error::format(dir, "the dataset has no records; nothing to compute"))?;
    let mut manifest = dataset.manifest().clone();
    drop(dataset);
    let s = size as usize;
    crate::atomic_file::write(
        &dir.join(MEAN_IMAGE_FILE),
        &crate::shards::encode_npy_f32(&[s, s, 3], &stats.mean_image),
    )?;
    let info = crate::shards::file_info(dir, MEAN_IMAGE_FILE)?;
    manifest.files.retain(|f| f.file != MEAN_IMAGE_FILE);
    manifest.files.push(info);
    manifest.stats = StatsInfo::from_stats(&stats);
    manifest.write_atomic(dir)?;
    Ok(stats)
}
