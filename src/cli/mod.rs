//! The command line, defined once: `alexpipe build | stats | convert | verify | info | merge`, and
//! `build-shards` as the `build` command under the name users already type. Parsing has no side
//! effects ([`Cli`], [`BuildArgs`], …: one definition of each shared option, the library's own
//! enums parse themselves); [`run`] turns a parsed command into library calls and prints the
//! result (see [`report`]). The binaries in `src/bin/` are a few lines over this module.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::build::{build_inputs, discover, recompute_stats, BuildConfig, OutputFormat};
use crate::dataset::Dataset;
use crate::hdf5::{hdf5_to_shards, is_hdf5_file, shards_to_hdf5, ConvertOptions, H5Keys};
use crate::progress;
use crate::shards::{Manifest, MANIFEST_FILE};
use crate::source::Mode;

pub mod remote;
pub mod report;

/// alexpipe: build AlexNet-style datasets (paper §2) and inspect, check and convert them.
#[derive(Parser, Debug)]
#[command(name = "alexpipe", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build a dataset: decode every image, resize its short side to --size, crop the central
    /// square (§2), write checksummed records plus the mean image and RGB eigenbasis (§4.1).
    Build(BuildArgs),
    /// Recompute the statistics of an existing shard dataset from its records.
    Stats(StatsArgs),
    /// Convert between shards and HDF5; the direction follows from IN: an HDF5 file becomes a raw
    /// shard directory OUT, a shard directory becomes the HDF5 file OUT.
    Convert(ConvertArgs),
    /// Check every byte of a dataset against its checksums.
    Verify(DatasetArgs),
    /// Show what a dataset holds: format, classes, statistics, provenance, and with --records
    /// where each record came from.
    Info(InfoArgs),
    /// Join the parts of a build made with `build --part K/N` (on many machines) into the dataset
    /// a build in one go makes, byte for byte: records, index, rejects, statistics.
    Merge(MergeArgs),
}

/// `merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Every part directory of the build (any order), then the output dataset directory.
    #[arg(required = true, num_args = 2..)]
    pub dirs: Vec<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `--json` and `--quiet`, shared by every command.
#[derive(Args, Debug, Clone, Copy)]
pub struct OutputArgs {
    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The names of the image and label datasets in an HDF5 input.
#[derive(Args, Debug, Clone)]
pub struct H5KeyArgs {
    /// HDF5 input: the N×S×S×3 uint8 image dataset.
    #[arg(long, default_value = "images")]
    pub images_key: String,
    /// HDF5 input: the N-long integer label dataset.
    #[arg(long, default_value = "labels")]
    pub labels_key: String,
}

impl H5KeyArgs {
    fn keys(&self) -> H5Keys {
        H5Keys {
            images: self.images_key.clone(),
            labels: self.labels_key.clone(),
        }
    }
}

/// `build` (and `build-shards`).
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Image folder with one sub-folder per class, a list file of `relative/path label` lines,
    /// WebDataset tars ('shard-{000000..000099}.tar', globs, http(s):// URLs), parquet / Arrow
    /// files ('data/train-*.parquet') or a Hugging Face dataset directory (save_to_disk, or a Hub
    /// snapshot). With --stats-only: the dataset to recompute statistics for.
    pub input: PathBuf,
    /// Output dataset directory (created, or replaced if it holds an alexpipe dataset).
    pub out: Option<PathBuf>,
    /// For a list file: directory its paths are relative to [default: the list file's directory].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// For a list file, WebDataset tars or parquet: file with one class name per line (default:
    /// parquet's ClassLabel names, else the label numbers).
    #[arg(long)]
    pub class_names: Option<PathBuf>,
    /// WebDataset: where the label is: EXT (a member holding the integer label as text) or
    /// EXT:FIELD[.FIELD...] (an integer field of a JSON member, e.g. json:label) [default: cls].
    #[arg(long)]
    pub label_key: Option<String>,
    /// Parquet / Hugging Face: the image column (datasets Image struct or binary) [default:
    /// image, else img].
    #[arg(long)]
    pub image_column: Option<String>,
    /// Parquet / Hugging Face: the integer label column [default: label, else labels].
    #[arg(long)]
    pub label_column: Option<String>,
    /// Side length of the stored images.
    #[arg(long, default_value_t = 256)]
    pub size: u32,
    /// Output format: `shards` (a directory of checksummed shards, docs/FORMAT.md) or `hdf5`
    /// (one HDF5 file, docs/HDF5.md; needs the `hdf5` cargo feature).
    #[arg(long, default_value = "shards")]
    pub format: OutputFormat,
    /// Record layout: `raw` (size×size×3 u8: fastest to read, largest), `jpeg` (re-encoded at
    /// --quality: compact) or `original` (the source file untouched; decoded at train time).
    #[arg(long, default_value = "raw")]
    pub mode: Mode,
    /// JPEG quality for --mode jpeg.
    #[arg(long, default_value_t = 90)]
    pub quality: u8,
    /// With --mode jpeg: store each image whole at its own aspect, the long side capped at this
    /// (e.g. 512, FFCV's max_resolution), for `--recipe rrc`; --size still sets the paper
    /// recipe's view and the statistics.
    #[arg(long)]
    pub max_side: Option<u32>,
    /// Decode large JPEGs at 1/2, 1/4 or 1/8 DCT scale while both sides stay ≥ 2×size (like PIL's
    /// draft): much faster on big photos, pixels differ slightly from a full decode.
    #[arg(long)]
    pub draft: bool,
    /// Records per shard file.
    #[arg(long, default_value_t = 1024)]
    pub shard_size: u64,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Stop at the first unusable input instead of listing it in rejects.tsv.
    #[arg(long)]
    pub strict: bool,
    /// Reject images with more pixels than this (decompression-bomb guard; PIL's limit).
    #[arg(long, default_value_t = crate::prep::DEFAULT_MAX_PIXELS)]
    pub max_pixels: u64,
    /// Build only part K of N (e.g. 3/8) of INPUT, to join with `alexpipe merge`: each machine of
    /// a cluster builds one part of the same INPUT (WebDataset tars and parquet are cut by whole
    /// files).
    #[arg(long)]
    pub part: Option<crate::part::PartSpec>,
    /// Recompute the statistics of the existing dataset INPUT (no OUT); the same as `alexpipe stats`.
    #[arg(long, conflicts_with_all = ["out", "root", "class_names", "label_key", "image_column", "label_column", "mode", "quality", "max_side", "draft", "shard_size", "strict", "format", "part"])]
    pub stats_only: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// The shard dataset directory.
    pub dataset: PathBuf,
    /// Worker threads [default: all cores].
    #[arg(long)]
    pub threads: Option<usize>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    /// A shard dataset directory, or an HDF5 file.
    pub input: PathBuf,
    /// The HDF5 file or the shard directory to write (replaced if it is one already).
    pub out: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: H5KeyArgs,
    /// HDF5 input not written by alexpipe: records per shard.
    #[arg(long, default_value_t = 1024)]
    pub shard_size: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `verify`.
#[derive(Args, Debug)]
pub struct DatasetArgs {
    /// A shard dataset directory, an HDF5 file, or a shard dataset at an http(s):// or s3:// URL.
    pub dataset: PathBuf,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub keys: H5KeyArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub remote: remote::RemoteArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// `info`.
#[derive(Args, Debug)]
pub struct InfoArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub dataset: DatasetArgs,
    /// Also list every record: index, label, class, storage unit and source file.
    #[arg(long)]
    pub records: bool,
}

/// Runs one parsed command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Build(args) => build(args),
        Command::Stats(args) => stats(&args.dataset, args.threads, args.output),
        Command::Convert(args) => convert(args),
        Command::Verify(args) => verify(args),
        Command::Info(args) => info(args),
        Command::Merge(args) => merge(args),
    }
}

/// What a binary's `main` returns: the error, if any, on one line naming its causes once.
pub fn exit(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::error::chain_message(e.as_ref()));
            std::process::ExitCode::FAILURE
        }
    }
}

fn build(args: BuildArgs) -> anyhow::Result<()> {
    if args.stats_only {
        return stats(&args.input, args.threads, args.output);
    }
    let out = args
        .out
        .clone()
        .context("missing OUT: usage `alexpipe build INPUT OUT` (or `alexpipe stats DATASET`)")?;
    let start = Instant::now();
    let cfg = BuildConfig {
        input: args.input,
        root: args.root,
        class_names: args.class_names,
        label_key: args.label_key,
        image_column: args.image_column,
        label_column: args.label_column,
        out,
        size: args.size,
        mode: args.mode,
        quality: args.quality,
        max_side: args.max_side,
        draft: args.draft,
        shard_size: args.shard_size,
        threads: args.threads,
        strict: args.strict,
        max_pixels: args.max_pixels,
        format: args.format,
        part: args.part,
    };
    let discovered = discover(&cfg)?;
    let bar = progress::bar_or_spinner(discovered.inputs.len, "images", !args.output.quiet);
    let summary = build_inputs(&cfg, discovered, start, &|n| bar.inc(n));
    bar.finish_and_clear();
    let summary = summary?;
    if args.output.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report::summary_json(&summary))?
        );
    } else {
        report::print_summary(&summary);
    }
    Ok(())
}

fn stats(dir: &std::path::Path, threads: Option<usize>, output: OutputArgs) -> anyhow::Result<()> {
    let manifest = Manifest::read(dir)?;
    let bar = progress::bar(manifest.num_records, "images", !output.quiet);
    let stats = recompute_stats(dir, threads, &|n| bar.inc(n));
    bar.finish_and_clear();
    let stats = stats?;
    if output.json {
        let m = Manifest::read(dir)?;
        println!("{}", serde_json::to_string_pretty(&m.stats)?);
    } else {
        println!("recomputed statistics of {}", dir.display());
        report::print_stats(&stats.summary(), stats.size);
    }
    Ok(())
}

fn convert(args: ConvertArgs) -> anyhow::Result<()> {
    let ConvertArgs {
        input,
        out,
        keys,
        shard_size,
        output,
    } = args;
    if shard_size == 0 {
        bail!("--shard-size must be at least 1");
    }
    let info = if is_hdf5_file(&input) {
        let opts = ConvertOptions {
            keys: keys.keys(),
            shard_size,
        };
        // The record count is known only once the file is open: a counter, not a bar.
        let bar = progress::spinner("images", !output.quiet);
        let info = hdf5_to_shards(&input, &out, &opts, &|n| bar.inc(n));
        bar.finish_and_clear();
        info?
    } else if input.join(MANIFEST_FILE).is_file() {
        let manifest = Manifest::read(&input)?;
        let bar = progress::bar(manifest.num_records, "images", !output.quiet);
        let info = shards_to_hdf5(&input, &out, &|n| bar.inc(n));
        bar.finish_and_clear();
        info?
    } else {
        bail!(
            "{}: neither an HDF5 file nor an alexpipe dataset directory (no {MANIFEST_FILE}); give one of them",
            input.display()
        );
    };
    if output.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!(
            "wrote {} records to {} ({}, {}x{}, {} classes)",
            info.num_records,
            out.display(),
            info.format,
            info.size,
            info.size,
            info.classes.len()
        );
    }
    Ok(())
}

fn open(args: &DatasetArgs) -> anyhow::Result<Dataset> {
    if let Some(remote) = args.remote.open(&args.dataset) {
        return Ok(remote?);
    }
    Ok(if is_hdf5_file(&args.dataset) {
        Dataset::open_hdf5(&args.dataset, &args.keys.keys())?
    } else {
        Dataset::open(&args.dataset)?
    })
}

fn verify(args: DatasetArgs) -> anyhow::Result<()> {
    let dataset = open(&args)?;
    let checked = dataset.verify()?;
    if args.output.json {
        let json =
            serde_json::json!({ "dataset": args.dataset, "records_checked": checked, "ok": true });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "{}: ok, every byte of {checked} records matches its checksum",
            args.dataset.display()
        );
    }
    Ok(())
}

fn info(args: InfoArgs) -> anyhow::Result<()> {
    let dataset = open(&args.dataset)?;
    let provenance = if args.records {
        Some(dataset.provenance()?)
    } else {
        None
    };
    if args.dataset.output.json {
        let mut json = serde_json::to_value(dataset.info())?;
        if let (Some(text), Some(obj)) = (&provenance, json.as_object_mut()) {
            obj.insert("records".into(), report::provenance_json(text));
        }
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        report::print_info(dataset.location(), dataset.info());
        if let Some(text) = provenance {
            print!("{text}");
        }
    }
    Ok(())
}

fn merge(args: MergeArgs) -> anyhow::Result<()> {
    let Some((out, parts)) = args.dirs.split_last() else {
        bail!("usage: alexpipe merge PART... OUT");
    };
    let bar = progress::spinner("records", !args.output.quiet);
    let summary = crate::shards::merge_parts(parts, out, &|n| bar.inc(n));
    bar.finish_and_clear();
    let summary = summary?;
    if args.output.json {
        let json = serde_json::json!({
            "out": summary.out,
            "parts": summary.parts,
            "records": summary.manifest.num_records,
            "rejected": summary.manifest.rejected,
            "shards_linked": summary.linked,
            "shards_copied": summary.copied,
            "records_repacked": summary.repacked,
            "elapsed_secs": summary.elapsed_secs,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    } else {
        println!(
            "merged {} parts into {}: {} records, {} rejected; {} shards hard-linked, {} copied, {} records re-packed, in {:.2} s",
            summary.parts,
            summary.out.display(),
            summary.manifest.num_records,
            summary.manifest.rejected,
            summary.linked,
            summary.copied,
            summary.repacked,
            summary.elapsed_secs
        );
    }
    Ok(())
}
