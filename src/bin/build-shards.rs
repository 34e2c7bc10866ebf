//! `build-shards INPUT OUT`: decode, resize the short side, centre-crop (paper §2) and write a
//! checksummed alexpipe dataset with its training-set statistics.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use alexpipe::build::{build_inputs, discover};
use alexpipe::shards::{Manifest, REJECTS_FILE};
use alexpipe::{recompute_stats, BuildConfig, BuildSummary, Mode, OutputFormat, Stats};
use anyhow::Context;
use clap::{Parser, ValueEnum};

#[path = "common/progress.rs"]
mod progress;
use progress::images_bar;

#[derive(Copy, Clone, Debug, ValueEnum)]
enum ModeArg {
    /// size×size×3 u8 pixels: fastest to read, largest on disk.
    Raw,
    /// The resized image re-encoded as JPEG (--quality): compact.
    Jpeg,
    /// The source file untouched: the engine decodes, resizes and crops at train time.
    Original,
}

#[derive(Copy, Clone, Debug, ValueEnum)]
enum FormatArg {
    /// A directory of checksummed shards (docs/FORMAT.md).
    Shards,
    /// One HDF5 file: images (N, S, S, 3) u8, labels, class names, statistics (docs/HDF5.md;
    /// needs the `hdf5` cargo feature).
    Hdf5,
}

/// Build an alexpipe dataset: decode every image, resize its short side to --size, crop the central
/// square (AlexNet §2), write checksummed shards plus the mean image and RGB eigenbasis (§4.1).
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Image folder with one sub-folder per class, or a list file of `relative/path label` lines.
    /// With --stats-only: the dataset to recompute statistics for.
    input: PathBuf,
    /// Output dataset directory (created, or replaced if it holds an alexpipe dataset).
    out: Option<PathBuf>,
    /// For a list file: directory its paths are relative to [default: the list file's directory].
    #[arg(long)]
    root: Option<PathBuf>,
    /// For a list file: file with one class name per line (default: the label numbers).
    #[arg(long)]
    class_names: Option<PathBuf>,
    /// Side length of the stored images.
    #[arg(long, default_value_t = 256)]
    size: u32,
    /// Output format: a shard directory, or one HDF5 file (OUT.h5).
    #[arg(long, value_enum, default_value_t = FormatArg::Shards)]
    format: FormatArg,
    /// Record layout.
    #[arg(long, value_enum, default_value_t = ModeArg::Raw)]
    mode: ModeArg,
    /// JPEG quality for --mode jpeg.
    #[arg(long, default_value_t = 90)]
    quality: u8,
    /// Decode large JPEGs at 1/2, 1/4 or 1/8 DCT scale while both sides stay ≥ 2×size (like PIL's
    /// draft): much faster on big photos, pixels differ slightly from a full decode.
    #[arg(long)]
    draft: bool,
    /// Records per shard file.
    #[arg(long, default_value_t = 1024)]
    shard_size: u64,
    /// Worker threads [default: all cores].
    #[arg(long)]
    threads: Option<usize>,
    /// Stop at the first unusable input instead of listing it in rejects.tsv.
    #[arg(long)]
    strict: bool,
    /// Reject images with more pixels than this (decompression-bomb guard; PIL's limit).
    #[arg(long, default_value_t = alexpipe::prep::DEFAULT_MAX_PIXELS)]
    max_pixels: u64,
    /// Recompute the statistics of the existing dataset INPUT (no OUT).
    #[arg(long, conflicts_with_all = ["out", "root", "class_names", "mode", "quality", "draft", "shard_size", "strict", "format"])]
    stats_only: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

fn fmt3(v: [f64; 3]) -> String {
    format!("[{:.3}, {:.3}, {:.3}]", v[0], v[1], v[2])
}

fn print_stats(stats: &Stats) {
    println!(
        "statistics over {} images ({}x{}, u8 levels 0..255):",
        stats.images, stats.size, stats.size
    );
    println!("  channel mean (RGB): {}", fmt3(stats.channel_mean));
    println!("  channel std  (RGB): {}", fmt3(stats.channel_std));
    println!(
        "  covariance eigvals (levels^2, descending): {}",
        fmt3(stats.eigvals)
    );
    for row in 0..3 {
        let label = if row == 0 {
            "  eigvecs (columns):"
        } else {
            "                    "
        };
        println!("{label} {}", fmt3(stats.eigvecs[row]));
    }
}

fn print_summary(s: &BuildSummary) {
    let m = &s.manifest;
    let hdf5 = m.shards.is_empty();
    if hdf5 {
        println!(
            "wrote {} records to {} (HDF5, {}x{})",
            m.num_records,
            s.out.display(),
            m.size,
            m.size
        );
    } else {
        println!(
            "wrote {} records in {} shard(s) to {} (mode {}, {}x{})",
            m.num_records,
            m.shards.len(),
            s.out.display(),
            m.mode.name(),
            m.size,
            m.size
        );
    }
    for (class, count) in m.classes.iter().zip(&m.class_counts) {
        println!("  {count:>8}  {class}");
    }
    if m.rejected > 0 {
        println!(
            "rejected {} of {} inputs (listed in {}):",
            m.rejected,
            s.inputs,
            if hdf5 {
                format!("the rejects_tsv dataset of {}", s.out.display())
            } else {
                s.out.join(REJECTS_FILE).display().to_string()
            }
        );
        for (path, reason) in s.rejects.iter().take(10) {
            println!("  {}: {reason}", path.display());
        }
        if s.rejects.len() > 10 {
            println!("  ... and {} more", s.rejects.len() - 10);
        }
    } else {
        println!("rejected 0 of {} inputs", s.inputs);
    }
    let rate = s.inputs as f64 / s.elapsed_secs.max(1e-9);
    println!(
        "elapsed {:.2} s, {:.0} images/s on {} threads ({:.0} images/s per thread)",
        s.elapsed_secs,
        rate,
        s.threads,
        rate / s.threads as f64
    );
    print_stats(&m.stats.to_stats(m.size, Vec::new()));
}

fn summary_json(s: &BuildSummary) -> serde_json::Value {
    serde_json::json!({
        "out": s.out,
        "inputs": s.inputs,
        "records": s.manifest.num_records,
        "rejected": s.manifest.rejected,
        "rejects": s.rejects.iter().map(|(p, r)| serde_json::json!({
            "path": p, "reason": r.kind(), "detail": r.detail()
        })).collect::<Vec<_>>(),
        "threads": s.threads,
        "elapsed_secs": s.elapsed_secs,
        "manifest": s.manifest,
    })
}

fn run(cli: Cli) -> anyhow::Result<()> {
    if cli.stats_only {
        let dir = &cli.input;
        let manifest = Manifest::read(dir)?;
        let bar = images_bar(manifest.num_records, cli.quiet);
        let stats = recompute_stats(dir, cli.threads, &|n| bar.inc(n))?;
        bar.finish_and_clear();
        if cli.json {
            let m = Manifest::read(dir)?;
            println!("{}", serde_json::to_string_pretty(&m.stats)?);
        } else {
            println!("recomputed statistics of {}", dir.display());
            print_stats(&stats);
        }
        return Ok(());
    }
    let out = cli.out.clone().context(
        "missing OUT: usage `build-shards INPUT OUT` (or `build-shards --stats-only DATASET`)",
    )?;
    let start = Instant::now();
    let cfg = BuildConfig {
        input: cli.input.clone(),
        root: cli.root.clone(),
        class_names: cli.class_names.clone(),
        out,
        size: cli.size,
        mode: match cli.mode {
            ModeArg::Raw => Mode::Raw,
            ModeArg::Jpeg => Mode::Jpeg,
            ModeArg::Original => Mode::Original,
        },
        quality: cli.quality,
        draft: cli.draft,
        shard_size: cli.shard_size,
        threads: cli.threads,
        strict: cli.strict,
        max_pixels: cli.max_pixels,
        format: match cli.format {
            FormatArg::Shards => OutputFormat::Shards,
            FormatArg::Hdf5 => OutputFormat::Hdf5,
        },
    };
    let (inputs, kind) = discover(&cfg)?;
    let bar = images_bar(inputs.sources.len() as u64, cli.quiet);
    let summary = build_inputs(&cfg, inputs, kind, start, &|n| bar.inc(n));
    bar.finish_and_clear();
    let summary = summary?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&summary_json(&summary))?);
    } else {
        print_summary(&summary);
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", alexpipe::error::chain_message(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
