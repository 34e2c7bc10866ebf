//! The paper's training recipe (§5) fed by the alexpipe engine (§4.1).
//!
//! Each epoch the engine's threads build augmented batches ahead of the loop (bounded channels);
//! the loop queues step k on the device, then fetches and uploads batch k + 1 while step k runs,
//! then reads step k's loss. After the epoch: validation (centre patch, or the paper's 10 patches
//! with averaged softmax), the learning-rate schedule (divide by 10 when the validation error has
//! not improved for `patience` epochs, or after given epochs; at most 3 times), a metrics row, the
//! curves redrawn (`curves.png`) and a checkpoint.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use alexpipe::{Dataset, Epoch, Layout, Loader, LoaderConfig, MeanMode, Stats};
use indicatif::{ProgressBar, ProgressStyle};
use tch::{nn, Device, Kind};

use crate::checkpoint::{self, CheckpointError, TrainState};
use crate::feed::{DeviceBatch, Feeder};
use crate::metrics::{topk_hits, EpochRow, EpochTotals, MetricsLog};
use crate::model::{AlexNet, AlexNetConfig, BiasInit, ModelError, WeightInit};
use crate::pictures::{curves, PictureError};
use crate::sgd::Sgd;

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The engine or a dataset reported an error (it names the file).
    #[error(transparent)]
    Data(#[from] alexpipe::Error),
    /// The network cannot be built as asked.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A checkpoint could not be written or used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A run-directory file could not be written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A picture could not be drawn or written.
    #[error(transparent)]
    Picture(#[from] PictureError),
    /// Inconsistent options or datasets.
    #[error("{0}")]
    Usage(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What is subtracted from (and divides) the input pixels, in u8 levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum InputNorm {
    /// The training set's per-pixel mean image (paper §2); inputs stay in levels.
    MeanImage,
    /// Per-channel mean and standard deviation (torchvision's convention): unit-scale inputs, what
    /// He-initialized networks expect.
    Channel,
}

impl InputNorm {
    pub(crate) fn mean_mode(self) -> MeanMode {
        match self {
            InputNorm::MeanImage => MeanMode::Image,
            InputNorm::Channel => MeanMode::Channel,
        }
    }
}

/// Where the network runs, as the command lines spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceChoice {
    /// CUDA when available, else the CPU.
    Auto,
    /// The CPU.
    Cpu,
    /// The first CUDA device.
    Cuda,
}

impl DeviceChoice {
    /// The libtorch device, or why there is none.
    pub fn device(self) -> Result<Device, TrainError> {
        Ok(match self {
            DeviceChoice::Auto => Device::cuda_if_available(),
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda if tch::Cuda::is_available() => Device::Cuda(0),
            DeviceChoice::Cuda => {
                return Err(TrainError::Usage(
                    "--device cuda: libtorch sees no CUDA device (driver missing, or a CPU-only \
                     libtorch)"
                        .into(),
                ))
            }
        })
    }
}

/// The hyper-parameters of §5 and the engine's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Epochs in all (paper: ≈ 90).
    pub epochs: u64,
    /// Images per step (paper: 128).
    pub batch_size: usize,
    /// Initial learning rate ε (paper: 0.01).
    pub lr: f64,
    /// Momentum (paper: 0.9).
    pub momentum: f64,
    /// Weight decay (paper: 0.0005).
    pub weight_decay: f64,
    /// Epochs without a better validation top-1 error before ε is divided.
    pub patience: u64,
    /// How often ε may be divided (paper: 3).
    pub max_lr_drops: u32,
    /// What ε is divided by (paper: 10).
    pub lr_divisor: f64,
    /// Divide ε after these (1-based) epochs instead of on plateaus: a fixed step schedule, like
    /// Caffe's reference recipe (the limit `max_lr_drops` still applies).
    pub lr_drop_after: Vec<u64>,
    /// Seed of the engine's draws and of dropout.
    pub seed: u64,
    /// Patch side and network input (paper: 224).
    pub crop: u32,
    /// σ of PCA lighting (paper: 0.1).
    pub lighting: f32,
    /// Mirror probability (paper: 0.5).
    pub flip: f64,
    /// Engine threads (0: all cores).
    pub workers: usize,
    /// Batches the engine builds ahead.
    pub prefetch: usize,
    /// Input normalisation (paper: the mean image).
    pub normalize: InputNorm,
    /// Validate with the paper's 10 patches (§4.1) instead of the centre patch.
    pub ten_crop: bool,
    /// Stop (with a checkpoint) after this many steps in this process.
    pub max_steps: Option<u64>,
}

impl Default for Recipe {
    fn default() -> Self {
        Recipe {
            epochs: 90,
            batch_size: 128,
            lr: 0.01,
            momentum: 0.9,
            weight_decay: 0.0005,
            patience: 5,
            max_lr_drops: 3,
            lr_divisor: 10.0,
            lr_drop_after: Vec::new(),
            seed: 0,
            crop: 224,
            lighting: 0.1,
            flip: 0.5,
            workers: 0,
            prefetch: 4,
            normalize: InputNorm::MeanImage,
            ten_crop: false,
            max_steps: None,
        }
    }
}

/// The network options that do not come from the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelOptions {
    /// Width multiplier (paper: 1).
    pub width: f64,
    /// Dropout probability (paper: 0.5).
    pub dropout: f64,
    /// Initial weights.
    pub init: WeightInit,
    /// Constant bias value.
    pub bias_init: BiasInit,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions {
            width: 1.0,
            dropout: 0.5,
            init: WeightInit::Paper,
            bias_init: BiasInit::Paper,
        }
    }
}

/// One training run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    /// Training dataset (alexpipe shards).
    pub train: PathBuf,
    /// Validation dataset; `None`: the training set's centre patches.
    pub val: Option<PathBuf>,
    /// Run directory: checkpoints, metrics.
    pub out: PathBuf,
    /// The network.
    pub model: ModelOptions,
    /// Hyper-parameters.
    pub recipe: Recipe,
    /// Where the network runs.
    pub device: Device,
    /// Continue from this checkpoint.
    pub resume: Option<PathBuf>,
    /// Show progress bars.
    pub progress: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// All epochs done.
    Finished {
        /// Lowest validation top-1 error, % (and its 1-based epoch).
        best: Option<(f64, u64)>,
    },
    /// Stopped early (Ctrl-C or `max_steps`); the checkpoint resumes exactly where it stopped.
    Stopped {
        /// The checkpoint written.
        checkpoint: PathBuf,
    },
}

/// The checkpoint of the last completed epoch (or stop) in a run directory.
pub fn last_checkpoint(out: &Path) -> PathBuf {
    out.join("checkpoint.ot")
}

/// The training curves a run redraws after every epoch (see [`curves`]).
pub fn curves_png(out: &Path) -> PathBuf {
    out.join("curves.png")
}

/// The checkpoint with the lowest validation error in a run directory.
pub fn best_checkpoint(out: &Path) -> PathBuf {
    out.join("best.ot")
}

/// A seed for dropout at one step, so a resumed run draws the same masks.
fn step_seed(seed: u64, epoch: u64, step: u64) -> i64 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (mix(seed ^ mix(epoch ^ mix(step))) >> 1) as i64
}

pub(crate) fn bar(progress: bool, len: usize, prefix: String) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len as u64).with_prefix(prefix);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg} ({elapsed} < {eta})")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// The next batch on the device, or `None` at the end of the epoch; adds the wait for the engine.
fn fetch(
    epoch: &mut Epoch,
    feeder: &mut Feeder,
    wait_s: &mut f64,
) -> Result<Option<(DeviceBatch, usize)>, TrainError> {
    let Some(batch) = epoch.next() else {
        return Ok(None);
    };
    let batch = batch?;
    *wait_s += batch.wait().as_secs_f64();
    let n = batch.labels().len();
    let on_device = feeder.upload(&batch).map_err(TrainError::Usage)?;
    Ok(Some((on_device, n)))
}

/// Loss, top-1 and top-5 hits of one validation batch (10-crop: softmax averaged over the patches).
fn eval_batch(net: &AlexNet, b: &DeviceBatch, n: usize, ten_crop: bool) -> (f64, i64, i64) {
    let logits = net.forward_t(&b.images, false);
    let (scores, loss) = if ten_crop {
        let classes = logits.size()[1];
        let probs = logits
            .softmax(-1, Kind::Float)
            .view([n as i64, 10, classes])
            .mean_dim(1, false, Kind::Float);
        let picked = probs.gather(1, &b.labels.unsqueeze(1), false);
        let loss = -picked.clamp_min(1e-30).log().mean(Kind::Float);
        (probs, loss)
    } else {
        let loss = logits.cross_entropy_for_logits(&b.labels);
        (logits, loss)
    };
    (
        loss.double_value(&[]),
        topk_hits(&scores, &b.labels, 1).int64_value(&[]),
        topk_hits(&scores, &b.labels, 5).int64_value(&[]),
    )
}

/// Validation pass over `loader` (built with `train = false`).
pub fn evaluate(
    net: &AlexNet,
    loader: &Loader,
    device: Device,
    progress: bool,
) -> Result<EpochTotals, TrainError> {
    let ten_crop = loader.config().ten_crop;
    let start = Instant::now();
    let mut totals = EpochTotals::default();
    let mut feeder = Feeder::new(device);
    let mut epoch = loader.iter();
    let pb = bar(progress, epoch.batches(), "val".into());
    let _guard = tch::no_grad_guard();
    while let Some((b, n)) = fetch(&mut epoch, &mut feeder, &mut totals.wait_s)? {
        let (loss, top1, top5) = eval_batch(net, &b, n, ten_crop);
        totals.add(n, loss, top1, top5);
        pb.inc(1);
    }
    pb.finish_and_clear();
    totals.seconds = start.elapsed().as_secs_f64();
    Ok(totals)
}

fn loader_config(recipe: &Recipe, train: bool) -> LoaderConfig {
    let batch_size = if !train && recipe.ten_crop {
        (recipe.batch_size / 10).max(1)
    } else {
        recipe.batch_size
    };
    LoaderConfig {
        batch_size,
        train,
        shuffle: train,
        seed: recipe.seed,
        drop_last: train,
        threads: recipe.workers,
        prefetch: recipe.prefetch,
        layout: Layout::F32Nchw,
        crop: recipe.crop,
        flip: recipe.flip,
        lighting: recipe.lighting,
        mean: recipe.normalize.mean_mode(),
        eigenbasis: None,
        ten_crop: !train && recipe.ten_crop,
        rank: 0,
        world_size: 1,
    }
}

/// A validation loader over `path`, normalised with the training set's statistics.
fn val_loader(
    path: &Path,
    stats: &Stats,
    classes: &[String],
    recipe: &Recipe,
) -> Result<Loader, TrainError> {
    let ds = Dataset::open_without_stats(path)?;
    if ds.classes() != classes {
        return Err(TrainError::Usage(format!(
            "{}: its {} classes are not the training set's {} (same names in the same order are \
             needed; build both from folders with the same class sub-folders)",
            path.display(),
            ds.classes().len(),
            classes.len()
        )));
    }
    Ok(Loader::with_stats(
        Arc::new(ds),
        loader_config(recipe, false),
        stats,
    )?)
}

/// Trains as configured; `stop` (set by Ctrl-C) ends the run after the current step with a
/// checkpoint.
pub fn run(cfg: &RunConfig, stop: &AtomicBool) -> Result<Outcome, TrainError> {
    let recipe = &cfg.recipe;
    if recipe.batch_size == 0 || recipe.epochs == 0 {
        return Err(TrainError::Usage(
            "--batch-size and --epochs must be at least 1".into(),
        ));
    }
    std::fs::create_dir_all(&cfg.out).map_err(io_err(&cfg.out))?;
    let train_ds = Arc::new(Dataset::open(&cfg.train)?);
    let classes = train_ds.classes().to_vec();
    let stats = train_ds
        .stats()
        .ok_or_else(|| TrainError::Usage("training set without statistics".into()))?
        .clone();

    let model_config = AlexNetConfig {
        classes: classes.len() as i64,
        width: cfg.model.width,
        input: i64::from(recipe.crop),
        dropout: cfg.model.dropout,
        init: cfg.model.init,
        bias_init: cfg.model.bias_init,
    };
    let mut vs = nn::VarStore::new(cfg.device);
    tch::manual_seed(step_seed(recipe.seed, u64::MAX, u64::MAX));
    let net = AlexNet::new(&vs.root(), &model_config)?;
    let mut sgd = Sgd::new(&vs, recipe.momentum, recipe.weight_decay);
    let mut state = TrainState {
        model: model_config.clone(),
        classes: classes.clone(),
        normalize: recipe.normalize,
        seed: recipe.seed,
        epoch: 0,
        step: 0,
        lr: recipe.lr,
        best: None,
        epochs_since_best: 0,
        lr_drops: 0,
        partial: EpochTotals::default(),
    };
    if let Some(path) = &cfg.resume {
        let mut restored = checkpoint::load(path)?;
        let saved = &restored.state;
        if saved.model != model_config
            || saved.classes != classes
            || saved.normalize != recipe.normalize
        {
            return Err(TrainError::Usage(format!(
                "{}: the checkpoint's network {:?} with {} classes and {:?} inputs does not match \
                 this run's {:?} with {} classes and {:?} inputs: resume with the same dataset, \
                 --width, --crop, --init, --bias-init, --dropout and --normalize",
                path.display(),
                saved.model,
                saved.classes.len(),
                saved.normalize,
                model_config,
                classes.len(),
                recipe.normalize
            )));
        }
        restored.load_weights(path, &mut vs)?;
        restored.load_velocities(path, &mut sgd)?;
        state = restored.state;
    }
    let train_loader_cfg = LoaderConfig {
        seed: state.seed,
        ..loader_config(recipe, true)
    };
    let mut train_loader = Loader::new(train_ds, train_loader_cfg)?;
    if train_loader.is_empty() {
        return Err(TrainError::Usage(format!(
            "{}: {} images make no full batch of {}: lower --batch-size",
            cfg.train.display(),
            train_loader.dataset().len(),
            recipe.batch_size
        )));
    }
    let val_path = cfg.val.as_deref().unwrap_or(&cfg.train);
    let val = val_loader(val_path, &stats, &classes, recipe)?;
    let log = MetricsLog::open(&cfg.out, cfg.resume.as_ref().map(|_| state.epoch + 1))
        .map_err(io_err(&cfg.out))?;
    let ckpt = last_checkpoint(&cfg.out);
    let save = |state: &TrainState, sgd: &Sgd| checkpoint::save(&ckpt, &vs, sgd, &stats, state);

    let mut steps_here = 0u64;
    while state.epoch < recipe.epochs {
        let epoch = state.epoch;
        train_loader.set_epoch(epoch);
        let mut it = train_loader.iter();
        let batches = it.batches();
        let pb = bar(
            cfg.progress,
            batches,
            format!("epoch {}/{}", epoch + 1, recipe.epochs),
        );
        // A resumed epoch: the engine rebuilds the batches already trained (same draws), unused.
        for _ in 0..state.step {
            it.next().transpose()?;
            pb.inc(1);
        }
        let mut totals = state.partial;
        let (start, before) = (Instant::now(), totals.seconds);
        let mut feeder = Feeder::new(cfg.device);
        let mut next = fetch(&mut it, &mut feeder, &mut totals.wait_s)?;
        while let Some((cur, n)) = next.take() {
            let limit = recipe.max_steps.is_some_and(|m| steps_here >= m);
            if stop.load(Ordering::SeqCst) || limit {
                pb.abandon();
                totals.seconds = before + start.elapsed().as_secs_f64();
                state.partial = totals;
                save(&state, &sgd)?;
                eprintln!(
                    "stopped in epoch {} after step {}: train loss {:.3} top-1 {:.1}% | {:.0} img/s, \
                     data wait {:.1}%",
                    epoch + 1,
                    state.step,
                    totals.loss(),
                    totals.top1_error(),
                    totals.images_per_s(),
                    totals.data_wait_pct()
                );
                return Ok(Outcome::Stopped { checkpoint: ckpt });
            }
            tch::manual_seed(step_seed(state.seed, epoch, state.step));
            let logits = net.forward_t(&cur.images, true);
            let loss = logits.cross_entropy_for_logits(&cur.labels);
            sgd.zero_grad();
            loss.backward();
            sgd.step(state.lr);
            let logits = logits.detach();
            let top1 = topk_hits(&logits, &cur.labels, 1);
            let top5 = topk_hits(&logits, &cur.labels, 5);
            // Batch k + 1 is fetched and uploaded while step k runs on the device.
            next = fetch(&mut it, &mut feeder, &mut totals.wait_s)?;
            let loss = loss.double_value(&[]);
            if !loss.is_finite() {
                return Err(TrainError::Usage(format!(
                    "the loss became {loss} at epoch {} step {}: lower --lr",
                    epoch + 1,
                    state.step
                )));
            }
            totals.add(n, loss, top1.int64_value(&[]), top5.int64_value(&[]));
            state.step += 1;
            steps_here += 1;
            pb.inc(1);
            if state.step.is_multiple_of(10) || state.step as usize == batches {
                totals.seconds = before + start.elapsed().as_secs_f64();
                pb.set_message(format!(
                    "loss {:.3} top-1 err {:.1}% {:.0} img/s wait {:.1}%",
                    totals.loss(),
                    totals.top1_error(),
                    totals.images_per_s(),
                    totals.data_wait_pct()
                ));
            }
        }
        totals.seconds = before + start.elapsed().as_secs_f64();
        pb.finish_and_clear();
        drop(it);

        let v = evaluate(&net, &val, cfg.device, cfg.progress)?;
        let improved = state.best.is_none_or(|(best, _)| v.top1_error() < best);
        if improved {
            state.best = Some((v.top1_error(), epoch + 1));
            state.epochs_since_best = 0;
        } else {
            state.epochs_since_best += 1;
        }
        let lr_used = state.lr;
        let due = if recipe.lr_drop_after.is_empty() {
            state.epochs_since_best >= recipe.patience
        } else {
            recipe.lr_drop_after.contains(&(epoch + 1))
        };
        let dropped = due && state.lr_drops < recipe.max_lr_drops;
        if dropped {
            state.lr /= recipe.lr_divisor;
            state.lr_drops += 1;
            state.epochs_since_best = 0;
        }
        let row = EpochRow {
            epoch: epoch + 1,
            lr: lr_used,
            train_loss: totals.loss(),
            train_top1_err: totals.top1_error(),
            train_top5_err: totals.top5_error(),
            val_loss: v.loss(),
            val_top1_err: v.top1_error(),
            val_top5_err: v.top5_error(),
            images_per_s: totals.images_per_s(),
            data_wait_pct: totals.data_wait_pct(),
            train_s: totals.seconds,
            val_s: v.seconds,
            lr_dropped: dropped,
        };
        log.append(&row).map_err(io_err(&cfg.out))?;
        eprintln!(
            "epoch {}/{} lr {:.0e} | train loss {:.3} top-1 {:.1}% top-5 {:.1}% | val top-1 {:.1}% \
             top-5 {:.1}% | {:.0} img/s, data wait {:.1}%{}",
            row.epoch,
            recipe.epochs,
            row.lr,
            row.train_loss,
            row.train_top1_err,
            row.train_top5_err,
            row.val_top1_err,
            row.val_top5_err,
            row.images_per_s,
            row.data_wait_pct,
            if dropped { " | lr ÷ 10" } else { "" }
        );
        state.epoch += 1;
        state.step = 0;
        state.partial = EpochTotals::default();
        save(&state, &sgd)?;
        if improved {
            let best = best_checkpoint(&cfg.out);
            std::fs::copy(&ckpt, &best).map_err(io_err(&best))?;
        }
        // A picture that cannot be drawn is worth a warning, not the run.
        if let Err(e) = curves::redraw(log.jsonl(), &curves_png(&cfg.out)) {
            eprintln!("warning: curves not redrawn: {e}");
        }
    }
    Ok(Outcome::Finished { best: state.best })
}

/// Evaluates a checkpoint on a dataset (centre patch, or the 10 patches).
pub fn evaluate_checkpoint(
    path: &Path,
    val: &Path,
    recipe: &Recipe,
    device: Device,
    progress: bool,
) -> Result<EpochTotals, TrainError> {
    let (_vs, net, state, stats) = load_network(path, device)?;
    let recipe = Recipe {
        crop: state.model.input as u32,
        normalize: state.normalize,
        ..recipe.clone()
    };
    let loader = val_loader(val, &stats, &state.classes, &recipe)?;
    evaluate(&net, &loader, device, progress)
}

/// The network of a checkpoint, ready for inference, with the checkpoint's state and statistics.
pub fn load_network(
    path: &Path,
    device: Device,
) -> Result<(nn::VarStore, AlexNet, TrainState, Stats), TrainError> {
    let mut restored = checkpoint::load(path)?;
    let mut vs = nn::VarStore::new(device);
    let net = AlexNet::new(&vs.root(), &restored.state.model)?;
    restored.load_weights(path, &mut vs)?;
    Ok((vs, net, restored.state, restored.stats))
}
