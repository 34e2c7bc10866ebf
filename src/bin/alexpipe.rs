//! `alexpipe convert IN OUT`: an alexpipe shard dataset to an HDF5 file, or an HDF5 file (ours, or
//! any with an N×S×S×3 uint8 image dataset and a label dataset) to raw shards. Lossless: a dataset
//! converted to HDF5 and back is the same, file for file, byte for byte. Needs `--features hdf5`.

use std::path::PathBuf;
use std::process::ExitCode;

use alexpipe::h5::{hdf5_to_shards, is_hdf5_file, shards_to_hdf5, ConvertOptions};
use alexpipe::shards::{Manifest, MANIFEST_FILE};
use alexpipe::H5Keys;
use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

#[path = "common/progress.rs"]
mod progress;
use progress::images_bar;

/// alexpipe tools beyond build-shards.
#[derive(Parser, Debug)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Convert between alexpipe shards and HDF5; the direction follows from IN: an HDF5 file
    /// becomes a raw shard directory OUT, a shard directory becomes the HDF5 file OUT.
    Convert {
        /// A shard dataset directory, or an HDF5 file.
        input: PathBuf,
        /// The HDF5 file or the shard directory to write (replaced if it is one already).
        out: PathBuf,
        /// HDF5 input: the N×S×S×3 uint8 image dataset.
        #[arg(long, default_value = "images")]
        images_key: String,
        /// HDF5 input: the N-long integer label dataset.
        #[arg(long, default_value = "labels")]
        labels_key: String,
        /// HDF5 input not written by alexpipe: records per shard.
        #[arg(long, default_value_t = 1024)]
        shard_size: u64,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
    },
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let Command::Convert {
        input,
        out,
        images_key,
        labels_key,
        shard_size,
        quiet,
    } = cli.command;
    if shard_size == 0 {
        bail!("--shard-size must be at least 1");
    }
    if is_hdf5_file(&input) {
        let opts = ConvertOptions {
            keys: H5Keys {
                images: images_key,
                labels: labels_key,
            },
            shard_size,
        };
        // The record count is known only once the file is open: a counter, not a bar.
        let bar = if quiet {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {pos} images  {per_sec}") {
                bar.set_style(style);
            }
            bar
        };
        let m = hdf5_to_shards(&input, &out, &opts, &|n| bar.inc(n));
        bar.finish_and_clear();
        let m = m?;
        println!(
            "wrote {} records in {} shard(s) to {} ({}x{}, {} classes)",
            m.num_records,
            m.shards.len(),
            out.display(),
            m.size,
            m.size,
            m.classes.len()
        );
    } else if input.join(MANIFEST_FILE).is_file() {
        let manifest = Manifest::read(&input)?;
        let bar = images_bar(manifest.num_records, quiet);
        let m = shards_to_hdf5(&input, &out, &|n| bar.inc(n));
        bar.finish_and_clear();
        let m = m?;
        println!(
            "wrote {} records to {} (HDF5, {}x{}, {} classes)",
            m.num_records,
            out.display(),
            m.size,
            m.size,
            m.classes.len()
        );
    } else {
        bail!(
            "{}: neither an HDF5 file nor an alexpipe dataset directory (no {MANIFEST_FILE}); give one of them",
            input.display()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()).context("alexpipe convert") {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", alexpipe::error::chain_message(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}
