//! `train`: the paper's AlexNet trained with the paper's recipe (§5), fed by the alexpipe engine.
//!
//! With no arguments it does the main job on the bundled fixtures: builds their training and
//! held-out shards if missing, and trains a small AlexNet briefly on the CPU (`--preset demo`),
//! validating on the held-out images.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use alexpipe::MeanMode;
use alexpipe::{
    Augmentations, ColorJitter, EraseFill, Interpolation, Mixup, RandomErasing, TrivialAugmentWide,
};
use alexpipe_train::device::DeviceChoice;
use alexpipe_train::finish::Upload;
use alexpipe_train::metrics::top5_is_reported;
use alexpipe_train::precision::Precision;
use alexpipe_train::run_dir::last_checkpoint;
use alexpipe_train::train::{evaluate_checkpoint, step_alone};
use alexpipe_train::{run, BiasInit, ModelOptions, Outcome, Preset, Recipe, RunConfig, WeightInit};
use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum InitArg {
    /// N(0, 0.01) (the paper; made for the full width).
    Paper,
    /// N(0, 2/fan-in) (He et al.; trains narrow networks from the first steps).
    Kaiming,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum BiasArg {
    /// 1 (the paper).
    Paper,
    /// 0.1 (Caffe's bvlc_alexnet).
    Caffe,
}

const PAPER: &str = "The paper's recipe (§4.1, §5; defaults from --preset)";
const NARROW: &str = "Narrow networks (defaults from --preset)";
const ACCEL: &str = "On an accelerator (the paper's f32 path by default)";
const TODAY: &str = "Today's augmentation (--recipe rrc or timm; training only)";

/// `--recipe`: the engine's augmentation, and timm's preset of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RecipeArg {
    /// The paper's random patches of the stored images (§4.1).
    Paper,
    /// RandomResizedCrop of whole images (torchvision).
    Rrc,
    /// RandomResizedCrop with timm's ImageNet training defaults.
    Timm,
}

/// `--erasing-mode`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum EraseArg {
    /// Zeros (torchvision's default).
    Const,
    /// One N(0, 1) value per channel.
    Rand,
    /// One N(0, 1) value per pixel and channel.
    Pixel,
}

/// `--interpolation`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum InterpolationArg {
    /// Pillow's antialiased bilinear (torchvision).
    Bilinear,
    /// Pillow's antialiased bicubic.
    Bicubic,
    /// Bilinear or bicubic per image (timm's --train-interpolation random).
    Random,
}

impl RecipeArg {
    /// The engine's recipe (timm's is RandomResizedCrop with its preset ops).
    fn engine_recipe(self) -> alexpipe::Recipe {
        match self {
            RecipeArg::Paper => alexpipe::Recipe::Paper,
            RecipeArg::Rrc | RecipeArg::Timm => alexpipe::LoaderConfig::rrc().recipe,
        }
    }
}

/// Train the paper's AlexNet (Krizhevsky et al. 2012) on alexpipe shards, or evaluate a checkpoint.
/// Without --train: the demo on the bundled fixtures (--preset demo: a small network, a few CPU
/// epochs).
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
    /// The recipe and network every flag below defaults to [default: paper with --train, demo
    /// without]; flags given override it.
    #[arg(long, value_enum)]
    preset: Option<Preset>,
    /// Epochs [paper: 90; demo: 30; small: 6].
    #[arg(long, help_heading = PAPER)]
    epochs: Option<u64>,
    /// Images per step [paper: 128; demo: 4].
    #[arg(long, help_heading = PAPER)]
    batch_size: Option<usize>,
    /// Initial learning rate [paper: 0.01; demo: 0.002; small: 0.02].
    #[arg(long, help_heading = PAPER)]
    lr: Option<f64>,
    /// Momentum [paper: 0.9].
    #[arg(long, help_heading = PAPER)]
    momentum: Option<f64>,
    /// Weight decay [paper: 0.0005].
    #[arg(long, help_heading = PAPER)]
    weight_decay: Option<f64>,
    /// Epochs without a better validation top-1 error before the learning rate is divided by 10
    /// [paper: 5; demo: 10].
    #[arg(long, help_heading = PAPER)]
    patience: Option<u64>,
    /// Divide the learning rate after these epochs (e.g. 30,60) instead of on plateaus [small: 4].
    #[arg(long, value_delimiter = ',', value_name = "EPOCHS", help_heading = PAPER)]
    lr_drop_after: Option<Vec<u64>>,
    /// How often the learning rate may be divided [paper: 3].
    #[arg(long, help_heading = PAPER)]
    max_lr_drops: Option<u32>,
    /// Augmentation: paper (random patches of the stored 256×256 images, §4.1), rrc
    /// (RandomResizedCrop of whole images, torchvision's recipe; build with --mode original or
    /// --mode jpeg --max-side 512; use --normalize imagenet or channel, and --lighting 0 for
    /// torchvision's exact recipe) or timm (rrc with timm's ImageNet training defaults: colour
    /// jitter 0.4, label smoothing 0.1, ImageNet normalisation, no PCA lighting) [default: paper].
    #[arg(long, value_enum, help_heading = PAPER)]
    recipe: Option<RecipeArg>,
    /// Patch side and network input [paper: 224; small: 64]; at least 63.
    #[arg(long, help_heading = PAPER)]
    crop: Option<u32>,
    /// Dropout on fc6 and fc7 [paper: 0.5].
    #[arg(long, help_heading = PAPER)]
    dropout: Option<f64>,
    /// σ of PCA lighting [paper: 0.1]; 0 disables.
    #[arg(long, help_heading = PAPER)]
    lighting: Option<f32>,
    /// Validate with the paper's 10 patches and averaged softmax.
    #[arg(long, help_heading = PAPER)]
    ten_crop: bool,
    /// RandomResizedCrop's resize filter; evaluation uses bicubic after random (timm's default)
    /// [rrc: bilinear; timm: random].
    #[arg(long, value_enum, help_heading = TODAY)]
    interpolation: Option<InterpolationArg>,
    /// Colour jitter: one value for brightness, contrast and saturation, or B,C,S or B,C,S,H
    /// (torchvision's ColorJitter, random order) [timm: 0.4].
    #[arg(long, value_delimiter = ',', value_name = "V", help_heading = TODAY)]
    color_jitter: Option<Vec<f32>>,
    /// One TrivialAugmentWide op per image (torchvision's 14 ops, 31 magnitudes).
    #[arg(long, help_heading = TODAY)]
    trivial_augment: bool,
    /// Probability of random erasing, on the normalised batch (timm's --reprob) [default: 0].
    #[arg(long, value_name = "P", help_heading = TODAY)]
    random_erasing: Option<f64>,
    /// The erased region's fill: const (0), rand (one N(0, 1) value per channel) or pixel (per
    /// value; timm's --remode pixel) [default: const].
    #[arg(long, value_enum, help_heading = TODAY)]
    erasing_mode: Option<EraseArg>,
    /// MixUp's α, per batch (timm: 0.8); the loss is taken against the soft labels.
    #[arg(long, value_name = "ALPHA", help_heading = TODAY)]
    mixup: Option<f64>,
    /// CutMix's α, per batch (timm: 1.0).
    #[arg(long, value_name = "ALPHA", help_heading = TODAY)]
    cutmix: Option<f64>,
    /// Probability of mixing a batch [default: 1].
    #[arg(long, value_name = "P", help_heading = TODAY)]
    mix_prob: Option<f64>,
    /// Probability of CutMix rather than MixUp when both are on [default: 0.5].
    #[arg(long, value_name = "P", help_heading = TODAY)]
    mix_switch_prob: Option<f64>,
    /// Label smoothing of the soft labels [timm: 0.1; with --mixup/--cutmix default 0.1].
    #[arg(long, value_name = "S", help_heading = TODAY)]
    label_smoothing: Option<f64>,
    /// Augmented views of each image in a batch (timm's repeated augmentation); a step then
    /// holds VIEWS × --batch-size images [default: 1].
    #[arg(long, help_heading = TODAY)]
    views: Option<usize>,
    /// Width multiplier of every layer [paper: 1; demo: 0.25; small: 0.125].
    #[arg(long, help_heading = NARROW)]
    width: Option<f64>,
    /// Initial weights [paper: paper, N(0, 0.01); demo, small: kaiming].
    #[arg(long, value_enum, help_heading = NARROW)]
    init: Option<InitArg>,
    /// conv1's initial weights N(0, σ²) with this σ, whatever --init says (under --init kaiming the
    /// paper's 0.01 lets the learned kernels stand out of a quiet start) [small: 0.01].
    #[arg(long, value_name = "SIGMA", help_heading = NARROW)]
    conv1_std: Option<f64>,
    /// Constant biases of conv2, conv4, conv5, fc6, fc7 [paper: paper, 1; demo, small: caffe, 0.1].
    #[arg(long, value_enum, help_heading = NARROW)]
    bias_init: Option<BiasArg>,
    /// Input normalisation: image (subtract the training set's mean image: the paper, inputs in
    /// levels), channel (the dataset's channel mean and std: unit scale, for --init kaiming) or
    /// imagenet (torchvision's ImageNet mean and std) [paper: image; demo, small: channel].
    #[arg(long, help_heading = NARROW)]
    normalize: Option<MeanMode>,
    /// Seed of every random draw [default: 0].
    #[arg(long)]
    seed: Option<u64>,
    /// Engine threads [default: all cores].
    #[arg(long)]
    workers: Option<usize>,
    /// Batches the engine builds ahead of the step [default: 4].
    #[arg(long)]
    prefetch: Option<usize>,
    /// Stop after this many steps, with a checkpoint that --resume continues from.
    #[arg(long)]
    max_steps: Option<u64>,
    /// Also checkpoint every this many steps within an epoch (resume after kill -9 loses at most
    /// that many steps).
    #[arg(long, value_name = "STEPS")]
    checkpoint_every: Option<u64>,
    /// Where the network runs.
    #[arg(long, value_enum, default_value_t = DeviceChoice::Auto, help_heading = ACCEL)]
    device: DeviceChoice,
    /// What the engine sends the device: f32 (finished batches) or u8 (crop and mirror done, a
    /// quarter of the bytes; lighting, mean subtraction and layout run on the device) [default: f32].
    #[arg(long, value_enum, help_heading = ACCEL)]
    upload: Option<Upload>,
    /// The network's arithmetic: f32 (the paper), bf16, or fp16 with dynamic loss scaling; the
    /// weights, momentum and checkpoints stay f32 [default: f32].
    #[arg(long, value_enum, help_heading = ACCEL)]
    precision: Option<Precision>,
    /// Convolution weights and inputs in channels-last (NHWC) memory.
    #[arg(long, help_heading = ACCEL)]
    channels_last: bool,
    /// On CUDA, let cuDNN pick convolution algorithms by its heuristics instead of timing them on
    /// the first batches and keeping the fastest (the default).
    #[arg(long, help_heading = ACCEL)]
    no_cudnn_benchmark: bool,
    /// Measure the step alone instead of training: STEPS steps on one synthetic batch resident
    /// on the device (no engine, no upload), then print images/s. Needs --train (for the classes).
    #[arg(long, value_name = "STEPS", help_heading = ACCEL)]
    step_alone: Option<u64>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

impl Args {
    /// The preset's recipe with the flags given.
    fn recipe(&self, preset: Preset) -> Result<Recipe> {
        let mut p = preset.recipe();
        let timm = self.recipe == Some(RecipeArg::Timm);
        if timm {
            let preset = alexpipe::LoaderConfig::timm(self.crop.unwrap_or(p.crop));
            (p.augment, p.ops) = (preset.recipe, preset.augment);
            (p.normalize, p.lighting) = (preset.mean, preset.lighting);
        } else if let Some(arg) = self.recipe {
            p.augment = arg.engine_recipe();
        }
        if let Some(arg) = self.interpolation {
            let alexpipe::Recipe::RandomResizedCrop { crop, .. } = &mut p.augment else {
                bail!(
                    "--interpolation is RandomResizedCrop's resize filter (the paper's recipe \
                     crops the stored images without resizing): add --recipe rrc (or timm)"
                );
            };
            crop.interpolation = match arg {
                InterpolationArg::Bilinear => Interpolation::Bilinear,
                InterpolationArg::Bicubic => Interpolation::Bicubic,
                InterpolationArg::Random => Interpolation::Random,
            };
        }
        Ok(Recipe {
            ops: self.ops(p.ops)?,
            epochs: self.epochs.unwrap_or(p.epochs),
            batch_size: self.batch_size.unwrap_or(p.batch_size),
            lr: self.lr.unwrap_or(p.lr),
            momentum: self.momentum.unwrap_or(p.momentum),
            weight_decay: self.weight_decay.unwrap_or(p.weight_decay),
            patience: self.patience.unwrap_or(p.patience),
            max_lr_drops: self.max_lr_drops.unwrap_or(p.max_lr_drops),
            lr_drop_after: self.lr_drop_after.clone().unwrap_or(p.lr_drop_after),
            seed: self.seed.unwrap_or(p.seed),
            crop: self.crop.unwrap_or(p.crop),
            lighting: self.lighting.unwrap_or(p.lighting),
            workers: self.workers.unwrap_or(p.workers),
            prefetch: self.prefetch.unwrap_or(p.prefetch),
            normalize: self.normalize.unwrap_or(p.normalize),
            ten_crop: self.ten_crop || p.ten_crop,
            max_steps: self.max_steps.or(p.max_steps),
            checkpoint_every: self.checkpoint_every.or(p.checkpoint_every),
            upload: self.upload.unwrap_or(p.upload),
            precision: self.precision.unwrap_or(p.precision),
            channels_last: self.channels_last || p.channels_last,
            cudnn_benchmark: p.cudnn_benchmark && !self.no_cudnn_benchmark,
            ..p
        })
    }

    /// The optional training ops: `preset`'s (timm's, or none) with the flags given.
    fn ops(&self, preset: Augmentations) -> Result<Augmentations> {
        let color_jitter = match self.color_jitter.as_deref() {
            None => preset.color_jitter,
            Some(&[v]) => Some(ColorJitter::new(v, v, v, 0.0)?),
            Some(&[b, c, s]) => Some(ColorJitter::new(b, c, s, 0.0)?),
            Some(&[b, c, s, h]) => Some(ColorJitter::new(b, c, s, h)?),
            Some(other) => bail!(
                "--color-jitter takes one value or B,C,S[,H] (brightness, contrast, saturation, \
                 hue), not {} values",
                other.len()
            ),
        };
        let random_erasing = match self.random_erasing {
            None => preset.random_erasing,
            Some(p) => (p > 0.0).then(|| RandomErasing {
                p,
                fill: match self.erasing_mode.unwrap_or(EraseArg::Const) {
                    EraseArg::Const => EraseFill::Constant([0.0; 3]),
                    EraseArg::Rand => EraseFill::PerChannel,
                    EraseArg::Pixel => EraseFill::PerPixel,
                },
                ..RandomErasing::default()
            }),
        };
        if self.erasing_mode.is_some() && random_erasing.is_none() {
            bail!("--erasing-mode needs --random-erasing P (the probability of erasing)");
        }
        let mix_given = self.mixup.is_some()
            || self.cutmix.is_some()
            || self.mix_prob.is_some()
            || self.mix_switch_prob.is_some()
            || self.label_smoothing.is_some();
        let mixup = if mix_given || preset.mixup.is_some() {
            let base = preset.mixup.unwrap_or(Mixup {
                mixup_alpha: 0.0,
                ..Mixup::default()
            });
            Some(Mixup {
                mixup_alpha: self.mixup.unwrap_or(base.mixup_alpha),
                cutmix_alpha: self.cutmix.unwrap_or(base.cutmix_alpha),
                prob: self.mix_prob.unwrap_or(base.prob),
                switch_prob: self.mix_switch_prob.unwrap_or(base.switch_prob),
                label_smoothing: self.label_smoothing.unwrap_or(base.label_smoothing),
            })
        } else {
            None
        };
        Ok(Augmentations {
            color_jitter,
            trivial_augment: if self.trivial_augment {
                Some(TrivialAugmentWide::default())
            } else {
                preset.trivial_augment
            },
            random_erasing,
            mixup,
            views: self.views.unwrap_or(preset.views),
            progressive: preset.progressive,
        })
    }

    /// The preset's network with the flags given.
    fn model(&self, preset: Preset) -> ModelOptions {
        let p = preset.model();
        ModelOptions {
            width: self.width.unwrap_or(p.width),
            dropout: self.dropout.unwrap_or(p.dropout),
            conv1_std: self.conv1_std.or(p.conv1_std),
            init: match self.init {
                None => p.init,
                Some(InitArg::Paper) => WeightInit::Paper,
                Some(InitArg::Kaiming) => WeightInit::Kaiming,
            },
            bias_init: match self.bias_init {
                None => p.bias_init,
                Some(BiasArg::Paper) => BiasInit::Paper,
                Some(BiasArg::Caffe) => BiasInit::Caffe,
            },
        }
    }
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
    let preset = args
        .preset
        .unwrap_or(if demo { Preset::Demo } else { Preset::Paper });
    let recipe = args.recipe(preset)?;

    if let Some(ckpt) = &args.eval {
        let val = args
            .val
            .as_ref()
            .context("--eval needs --val DATASET, the images to evaluate on")?;
        let e = evaluate_checkpoint(ckpt, val, &recipe, device, !args.quiet)?;
        let t = e.totals;
        let patches = if recipe.ten_crop {
            "10 patches"
        } else {
            "centre patch"
        };
        let top5 = if top5_is_reported(e.classes) {
            format!(", top-5 error {:.2}%", t.top5_error())
        } else {
            format!(" (no top-5 with {} classes)", e.classes)
        };
        println!(
            "{}: top-1 error {:.2}%{top5}, loss {:.4} on {} images ({patches})",
            val.display(),
            t.top1_error(),
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
        model: args.model(preset),
        recipe,
        device,
        resume,
        progress: !args.quiet,
    };

    if let Some(steps) = args.step_alone {
        let rate = step_alone(&cfg, steps)?;
        println!(
            "step alone: {rate:.0} images/s ({steps} steps of {}, precision {}{}, {device:?})",
            cfg.recipe.batch_size,
            cfg.recipe.precision.name(),
            if cfg.recipe.channels_last {
                ", channels-last"
            } else {
                ""
            },
        );
        return Ok(ExitCode::SUCCESS);
    }

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
