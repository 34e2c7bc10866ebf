//! `train`: the paper's AlexNet trained with the paper's recipe (§5), fed by the alexpipe engine.
//!
//! With no arguments it does the main job on the bundled fixtures: builds their training and
//! held-out shards if missing, and trains a small AlexNet briefly on the CPU, validating on the
//! held-out images.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use alexpipe_train::train::{evaluate_checkpoint, last_checkpoint, DeviceChoice, InputNorm};
use alexpipe_train::{run, BiasInit, ModelOptions, Outcome, Recipe, RunConfig, WeightInit};
use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InitArg {
    /// N(0, 0.01) (the paper; made for the full width).
    Paper,
    /// N(0, 2/fan-in) (He et al.; trains narrow networks from the first steps).
    Kaiming,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum NormArg {
    /// Subtract the training set's mean image (the paper; inputs in levels).
    Image,
    /// Subtract the channel mean, divide by the channel std (unit-scale inputs, for --init kaiming).
    Channel,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BiasArg {
    /// 1 (the paper).
    Paper,
    /// 0.1 (Caffe's bvlc_alexnet).
    Caffe,
}

/// Train the paper's AlexNet (Krizhevsky et al. 2012) on alexpipe shards, or evaluate a checkpoint.
/// Without --train: the demo on the bundled fixtures (small network, a few CPU epochs).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Training dataset (a directory made by build-shards).
    #[arg(long)]
    train: Option<PathBuf>,
    /// Validation dataset (same classes); default: the training set's centre patches.
    #[arg(long)]
    val: Option<PathBuf>,
    /// Run directory: checkpoint.ot, best.ot, metrics.jsonl, metrics.csv, curves.png.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Evaluate this checkpoint on --val instead of training.
    #[arg(long, value_name = "CHECKPOINT")]
    eval: Option<PathBuf>,
    /// Continue a run: from CHECKPOINT, or from the run directory's checkpoint.ot.
    #[arg(long, value_name = "CHECKPOINT", num_args = 0..=1)]
    resume: Option<Option<PathBuf>>,
    /// Epochs [paper: 90].
    #[arg(long)]
    epochs: Option<u64>,
    /// Images per step [paper: 128].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Initial learning rate [paper: 0.01].
    #[arg(long)]
    lr: Option<f64>,
    /// Momentum [paper: 0.9].
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Weight decay [paper: 0.0005].
    #[arg(long, default_value_t = 0.0005)]
    weight_decay: f64,
    /// Epochs without a better validation top-1 error before the learning rate is divided by 10.
    #[arg(long)]
    patience: Option<u64>,
    /// Divide the learning rate after these epochs (e.g. 30,60) instead of on plateaus.
    #[arg(long, value_delimiter = ',', value_name = "EPOCHS")]
    lr_drop_after: Vec<u64>,
    /// How often the learning rate may be divided [paper: 3].
    #[arg(long, default_value_t = 3)]
    max_lr_drops: u32,
    /// Patch side and network input [paper: 224]; at least 63.
    #[arg(long)]
    crop: Option<u32>,
    /// Width multiplier of every layer [paper: 1].
    #[arg(long)]
    width: Option<f64>,
    /// Dropout on fc6 and fc7 [paper: 0.5].
    #[arg(long, default_value_t = 0.5)]
    dropout: f64,
    /// Initial weights [paper: N(0, 0.01); the demo: kaiming].
    #[arg(long, value_enum)]
    init: Option<InitArg>,
    /// Constant biases of conv2, conv4, conv5, fc6, fc7 [paper: 1; the demo: caffe's 0.1].
    #[arg(long, value_enum)]
    bias_init: Option<BiasArg>,
    /// σ of PCA lighting [paper: 0.1]; 0 disables.
    #[arg(long, default_value_t = 0.1)]
    lighting: f32,
    /// Input normalisation [paper: image; the demo: channel].
    #[arg(long, value_enum)]
    normalize: Option<NormArg>,
    /// Validate with the paper's 10 patches and averaged softmax.
    #[arg(long)]
    ten_crop: bool,
    /// Seed of every random draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Engine threads (default: all cores).
    #[arg(long, default_value_t = 0)]
    workers: usize,
    /// Batches the engine builds ahead of the step.
    #[arg(long, default_value_t = 4)]
    prefetch: usize,
    /// Stop after this many steps, with a checkpoint that --resume continues from.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Where the network runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto)]
    device: DeviceChoice,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

/// The repository (for the fixtures demo), from where this binary was built.
fn repo_root() -> PathBuf {
    let train_crate = Path::new(env!("CARGO_MANIFEST_DIR"));
    train_crate.parent().unwrap_or(train_crate).to_path_buf()
}

/// The fixtures' training shards (`fixtures/images`) and held-out shards (`fixtures/val`), each
/// built when it cannot be opened (first use, or an older alexpipe's dataset).
fn fixtures_datasets(quiet: bool) -> Result<(PathBuf, PathBuf)> {
    let root = repo_root();
    let build = |images: &str, out: &str| -> Result<PathBuf> {
        let out = root.join(out);
        // Missing, or left by an older build that this alexpipe no longer opens: (re)build.
        if alexpipe::Dataset::open(&out).is_err() {
            let cfg = alexpipe::BuildConfig::new(root.join(images), &out);
            let summary = alexpipe::build(&cfg, &|_| {})
                .with_context(|| format!("building the fixtures' shards into {}", out.display()))?;
            if !quiet {
                eprintln!(
                    "built {} ({} of {} images; the others are listed in rejects.tsv)",
                    out.display(),
                    summary.inputs - summary.rejects.len() as u64,
                    summary.inputs
                );
            }
        }
        Ok(out)
    };
    Ok((
        build("fixtures/images", "out/fixtures")?,
        build("fixtures/val", "out/fixtures-val")?,
    ))
}

fn main() -> ExitCode {
    match real_main() {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "train: error: {}",
                alexpipe::error::chain_message(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<ExitCode> {
    let args = Args::parse();
    let device = args.device.device()?;
    let demo = args.train.is_none() && args.eval.is_none();
    // The demo's preset: a quarter-width network that learns from the first steps on a CPU (He
    // initialization on unit-scale inputs, Caffe's biases), 30 short epochs of batches of 4 at a
    // low rate (31 images); flags win.
    let pick = |given: Option<f64>, demo_value: f64, paper: f64| {
        given.unwrap_or(if demo { demo_value } else { paper })
    };
    let recipe = Recipe {
        epochs: args.epochs.unwrap_or(if demo { 30 } else { 90 }),
        batch_size: args.batch_size.unwrap_or(if demo { 4 } else { 128 }),
        lr: pick(args.lr, 0.002, 0.01),
        momentum: args.momentum,
        weight_decay: args.weight_decay,
        patience: args.patience.unwrap_or(if demo { 10 } else { 5 }),
        max_lr_drops: args.max_lr_drops,
        lr_divisor: 10.0,
        lr_drop_after: args.lr_drop_after.clone(),
        seed: args.seed,
        crop: args.crop.unwrap_or(224),
        lighting: args.lighting,
        flip: 0.5,
        workers: args.workers,
        prefetch: args.prefetch,
        normalize: match args.normalize.unwrap_or(if demo {
            NormArg::Channel
        } else {
            NormArg::Image
        }) {
            NormArg::Image => InputNorm::MeanImage,
            NormArg::Channel => InputNorm::Channel,
        },
        ten_crop: args.ten_crop,
        max_steps: args.max_steps,
    };

    if let Some(ckpt) = &args.eval {
        let val = args
            .val
            .as_ref()
            .context("--eval needs --val DATASET, the images to evaluate on")?;
        let t = evaluate_checkpoint(ckpt, val, &recipe, device, !args.quiet)?;
        let patches = if args.ten_crop {
            "10 patches"
        } else {
            "centre patch"
        };
        println!(
            "{}: top-1 error {:.2}%, top-5 error {:.2}%, loss {:.4} on {} images ({patches})",
            val.display(),
            t.top1_error(),
            t.top5_error(),
            t.loss(),
            t.images
        );
        return Ok(ExitCode::SUCCESS);
    }

    let (train, val) = match &args.train {
        Some(t) => (t.clone(), args.val.clone()),
        None => {
            let (train, val) = fixtures_datasets(args.quiet)?;
            (train, Some(args.val.clone().unwrap_or(val)))
        }
    };
    let out = match &args.out {
        Some(o) => o.clone(),
        None if demo => repo_root().join("out/train-fixtures"),
        None => PathBuf::from("runs").join(
            train
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "alexnet".into()),
        ),
    };
    let resume = args
        .resume
        .as_ref()
        .map(|given| given.clone().unwrap_or_else(|| last_checkpoint(&out)));
    let cfg = RunConfig {
        train,
        val,
        out: out.clone(),
        model: ModelOptions {
            width: pick(args.width, 0.25, 1.0),
            dropout: args.dropout,
            init: match args.init.unwrap_or(if demo {
                InitArg::Kaiming
            } else {
                InitArg::Paper
            }) {
                InitArg::Paper => WeightInit::Paper,
                InitArg::Kaiming => WeightInit::Kaiming,
            },
            bias_init: match args.bias_init.unwrap_or(if demo {
                BiasArg::Caffe
            } else {
                BiasArg::Paper
            }) {
                BiasArg::Paper => BiasInit::Paper,
                BiasArg::Caffe => BiasInit::Caffe,
            },
        },
        recipe,
        device,
        resume,
        progress: !args.quiet,
    };

    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            eprintln!("\ntrain: second Ctrl-C, quitting without a checkpoint");
            std::process::exit(130);
        }
        eprintln!("\ntrain: Ctrl-C, saving a checkpoint after this step (again to quit now)");
    })
    .context("installing the Ctrl-C handler")?;

    if !args.quiet {
        eprintln!(
            "training on {} ({device:?}), run directory {}",
            cfg.train.display(),
            out.display()
        );
    }
    match run(&cfg, &stop)? {
        Outcome::Finished { best } => {
            if let Some((err, epoch)) = best {
                println!(
                    "done: best validation top-1 error {err:.2}% (epoch {epoch}); checkpoints and \
                     metrics in {}",
                    out.display()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Outcome::Stopped { checkpoint } => {
            println!(
                "stopped; continue with: train --resume {} (and the same options)",
                checkpoint.display()
            );
            Ok(if stop.load(Ordering::SeqCst) {
                ExitCode::from(130)
            } else {
                ExitCode::SUCCESS
            })
        }
    }
}
