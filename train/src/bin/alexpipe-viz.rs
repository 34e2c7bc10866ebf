//! `alexpipe-viz`: pictures of a training run (§6.1), one command each, as PNG files.
//!
//! - `filters CHECKPOINT`: the conv1 kernels (Figure 3), the two columns' halves apart;
//! - `curves RUN_DIR`: loss and top-1/top-5 error per epoch, learning-rate drops marked;
//! - `neighbours CHECKPOINT --query DATA --gallery DATA`: query images and the gallery images
//!   nearest in fc7 (Figure 4).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use alexpipe_train::checkpoint::load_network;
use alexpipe_train::device::DeviceChoice;
use alexpipe_train::pictures::filters::{conv1_grid, KernelView};
use alexpipe_train::pictures::neighbours::{neighbours_picture, NeighboursConfig, Queries};
use alexpipe_train::pictures::{curves, save_png};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use tch::Device;

/// Pictures of an alexpipe training run: learned kernels, training curves, nearest neighbours.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The conv1 kernels of a checkpoint as a grid (paper Figure 3): 96 kernels make 8 rows of 12,
    /// the first column's 48 above the second's.
    Filters {
        /// A checkpoint written by `train` (checkpoint.ot, best.ot).
        checkpoint: PathBuf,
        /// The PNG to write.
        #[arg(short, long, default_value = "conv1.png")]
        output: PathBuf,
        /// Kernels per row.
        #[arg(long, default_value_t = 12)]
        columns: usize,
        /// Screen pixels per kernel pixel.
        #[arg(long, default_value_t = 6)]
        scale: u32,
        /// rgb: each kernel's planes as colour; sum: the sum of its planes in grey, the filter a
        /// greyscale image meets [default: sum for a greyscale training set, else rgb].
        #[arg(long, value_enum)]
        view: Option<KernelView>,
    },
    /// Loss and top-1/top-5 error per epoch from a run's metrics.jsonl, learning-rate drops marked.
    Curves {
        /// A run directory (or its metrics.jsonl).
        run: PathBuf,
        /// The PNG to write [default: RUN/curves.png].
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Query images next to the gallery images nearest in the last hidden layer (paper Figure 4).
    Neighbours {
        /// A checkpoint written by `train`.
        checkpoint: PathBuf,
        /// Dataset of the query images (e.g. the validation set).
        #[arg(long)]
        query: PathBuf,
        /// Dataset searched for neighbours (e.g. the training set).
        #[arg(long)]
        gallery: PathBuf,
        /// Neighbours per query.
        #[arg(short, default_value_t = 6)]
        k: usize,
        /// Number of query images, spread evenly over the query dataset.
        #[arg(long, default_value_t = 5, conflicts_with = "query_index")]
        queries: usize,
        /// These query records instead (indices, e.g. 0,17,42).
        #[arg(long, value_delimiter = ',', value_name = "INDICES")]
        query_index: Vec<usize>,
        /// The PNG to write.
        #[arg(short, long, default_value = "neighbours.png")]
        output: PathBuf,
        /// Side of each picture in the sheet, px.
        #[arg(long, default_value_t = 112)]
        thumb: u32,
        /// Images per forward pass.
        #[arg(long, default_value_t = 64)]
        batch_size: usize,
        /// Engine threads (default: all cores).
        #[arg(long, default_value_t = 0)]
        workers: usize,
        /// Where the network runs.
        #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
        device: DeviceChoice,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
    },
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "alexpipe-viz: error: {}",
                alexpipe::error::chain_message(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn written(path: &Path, what: &str) {
    println!("{}: {what}", path.display());
}

fn real_main() -> Result<()> {
    match Args::parse().command {
        Command::Filters {
            checkpoint,
            output,
            columns,
            scale,
            view,
        } => {
            let (_vs, net, _, stats) = load_network(&checkpoint, Device::Cpu)?;
            let view = view.unwrap_or_else(|| KernelView::for_training_set(&stats));
            let (image, grid) = conv1_grid(&net, columns, scale, view)?;
            save_png(&image, &output)?;
            written(
                &output,
                &format!(
                    "{} conv1 kernels {}×{}×3, {} per row, drawn as {}",
                    grid.kernels,
                    grid.side,
                    grid.side,
                    grid.row_len(),
                    view.describe()
                ),
            );
        }
        Command::Curves { run, output } => {
            let (jsonl, dir) = if run.is_dir() {
                (run.join("metrics.jsonl"), run.clone())
            } else {
                let dir = run.parent().unwrap_or(Path::new(".")).to_path_buf();
                (run.clone(), dir)
            };
            if !jsonl.exists() {
                bail!(
                    "{}: no metrics.jsonl there; give a run directory written by `train --out`",
                    jsonl.display()
                );
            }
            let output = output.unwrap_or_else(|| dir.join("curves.png"));
            let rows = curves::redraw(&jsonl, &output)
                .with_context(|| format!("plotting {}", jsonl.display()))?;
            let drops = rows.iter().filter(|r| r.lr_dropped).count();
            written(
                &output,
                &format!("{} epochs, {drops} learning-rate drops", rows.len()),
            );
        }
        Command::Neighbours {
            checkpoint,
            query,
            gallery,
            k,
            queries,
            query_index,
            output,
            thumb,
            batch_size,
            workers,
            device,
            quiet,
        } => {
            let cfg = NeighboursConfig {
                k,
                queries: if query_index.is_empty() {
                    Queries::Spread(queries)
                } else {
                    Queries::Indices(query_index)
                },
                batch_size,
                workers,
                thumb,
                device: device.device()?,
                progress: !quiet,
            };
            let found = neighbours_picture(&checkpoint, &query, &gallery, &cfg)?;
            save_png(&found.image, &output)?;
            written(
                &output,
                &format!(
                    "{} queries × {k} nearest by fc7 distance",
                    found.queries.len()
                ),
            );
            for (q, list) in found.queries.iter().zip(&found.neighbours) {
                let near: Vec<String> = list
                    .iter()
                    .map(|n| format!("{} ({:.3})", n.index, n.distance))
                    .collect();
                println!("query {q}: {}", near.join(", "));
            }
        }
    }
    Ok(())
}
