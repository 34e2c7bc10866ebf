//! The paper's training recipe (§5) fed by the alexpipe engine (§4.1), as a [`Trainer`] whose
//! epoch reads as its steps: resume (once) → train the epoch → validate → end the epoch (the
//! learning-rate schedule, a metrics row, a checkpoint, the curves).
//!
//! Each epoch the engine's threads build augmented batches ahead of the loop (bounded channels);
//! the loop queues step k on the device, then fetches and uploads batch k + 1 while step k runs,
//! then reads step k's loss. Validation takes the centre patch, or the paper's 10 patches with
//! averaged softmax (§4.1). The schedule is [`crate::schedule`]'s pure function.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use alexpipe::seed::splitmix64;
use alexpipe::{Dataset, Epoch, Loader, LoaderConfig, Stats};
use indicatif::ProgressBar;
use tch::{nn, Device, Kind, Tensor};

use crate::checkpoint::{self, CheckpointError, TrainState};
use crate::feed::{DeviceBatch, Feeder, WrongLayout};
use crate::finish::{layout_for, FinishError, Upload};
use crate::loss;
use crate::metrics::{top5_is_reported, topk_hits, EpochRow, EpochTotals, MetricsLog};
use crate::model::{AlexNet, AlexNetConfig, ModelError};
use crate::pictures::{curves, PictureError};
use crate::precision::{LossScaler, Precision};
use crate::recipe::{ModelOptions, Recipe};
use crate::run_dir::{best_checkpoint, curves_png, last_checkpoint};
use crate::schedule::LrState;
use crate::sgd::Sgd;

/// Why training stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// Options that cannot work together (the message says which and what to do).
    #[error("{0}")]
    Usage(String),
    /// The loss stopped being a number: the learning rate is too high for this network and data.
    #[error(
        "the training loss became {loss} at epoch {epoch}, step {step}: the run diverged; lower \
         --lr (e.g. by 10×) or resume from an earlier checkpoint with a lower rate"
    )]
    Diverged {
        /// 1-based epoch.
        epoch: u64,
        /// 0-based step within the epoch.
        step: u64,
        /// The loss read (NaN or ±∞).
        loss: f64,
    },
    /// The engine or a dataset reported an error (it names the file).
    #[error(transparent)]
    Data(#[from] alexpipe::Error),
    /// The training set has no statistics to normalise with.
    #[error(
        "{}: the dataset has no statistics (mean image, channel mean and std); recompute them \
         with build-shards --stats-only {}",
        path.display(),
        path.display()
    )]
    NoStatistics {
        /// The training dataset.
        path: PathBuf,
    },
    /// The validation set's classes are not the training set's.
    #[error(
        "{}: its {val} classes are not the training set's {train} (same names in the same order \
         are needed; build both from folders with the same class sub-folders)",
        path.display()
    )]
    ClassMismatch {
        /// The validation dataset.
        path: PathBuf,
        /// Its number of classes.
        val: usize,
        /// The training set's.
        train: usize,
    },
    /// The network cannot be built as asked.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// A checkpoint could not be written or used.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The checkpoint given to `--resume` was trained with another network or dataset.
    #[error(
        "{}: the checkpoint's network {saved} does not match this run's {wanted}: resume with the \
         same dataset, --width, --crop, --init, --bias-init, --dropout and --normalize",
        path.display()
    )]
    ResumeMismatch {
        /// The checkpoint.
        path: PathBuf,
        /// What it holds.
        saved: String,
        /// What this run builds.
        wanted: String,
    },
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
    /// The engine handed over batches the trainer cannot use (a bug).
    #[error(transparent)]
    Feed(#[from] WrongLayout),
    /// The device cannot finish the engine's u8 batches with these options.
    #[error(transparent)]
    Finish(#[from] FinishError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
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

/// A seed for dropout at one step, so a resumed run draws the same masks: SplitMix64 over the
/// step, then the epoch, then the run's seed.
fn step_seed(seed: u64, epoch: u64, step: u64) -> i64 {
    (splitmix64(seed ^ splitmix64(epoch ^ splitmix64(step))) >> 1) as i64
}

/// Trains as configured; `stop` (set by Ctrl-C) ends the run after the current step with a
/// checkpoint.
pub fn run(cfg: &RunConfig, stop: &AtomicBool) -> Result<Outcome, TrainError> {
    Trainer::new(cfg)?.run(stop)
}

/// The network being trained and its optimiser.
struct Model {
    vs: nn::VarStore,
    net: AlexNet,
    sgd: Sgd,
}

/// One step queued on the device; reading it waits for the device.
struct Step {
    loss: Tensor,
    top1: Tensor,
    top5: Tensor,
}

impl Model {
    /// A freshly initialised network (its draws seeded from the recipe's seed).
    fn new(network: &AlexNetConfig, recipe: &Recipe, device: Device) -> Result<Model, TrainError> {
        let vs = nn::VarStore::new(device);
        tch::manual_seed(step_seed(recipe.seed, u64::MAX, u64::MAX));
        let net = AlexNet::new(&vs.root(), network)?;
        let sgd = Sgd::new(&vs, recipe.momentum, recipe.weight_decay);
        Ok(Model { vs, net, sgd })
    }

    /// Loads weights and momentum from `path`, which must hold this run's network; returns its
    /// training state.
    fn resume(&mut self, path: &Path, fresh: &TrainState) -> Result<TrainState, TrainError> {
        let mut restored = checkpoint::load(path)?;
        let saved = &restored.state;
        // conv1's initial σ only shaped where the saved weights started: a run started with
        // another --conv1-std (or before the small preset set one) resumes.
        let network = AlexNetConfig {
            conv1_std: saved.model.conv1_std,
            ..fresh.model.clone()
        };
        if saved.model != network
            || saved.classes != fresh.classes
            || saved.normalize != fresh.normalize
        {
            let describe = |s: &TrainState| {
                format!(
                    "{:?} with {} classes and {:?} inputs",
                    s.model,
                    s.classes.len(),
                    s.normalize
                )
            };
            return Err(TrainError::ResumeMismatch {
                path: path.to_path_buf(),
                saved: describe(saved),
                wanted: describe(fresh),
            });
        }
        restored.load_weights(path, &mut self.vs)?;
        restored.load_velocities(path, &mut self.sgd)?;
        Ok(restored.state)
    }

    /// Queues one SGD step on `batch` at rate `lr` with dropout seeded by `seed` (§5's update),
    /// the network computing at `precision`; with fp16's `scaler` the loss is scaled and a step
    /// whose gradients overflowed is skipped.
    fn step(
        &mut self,
        batch: &DeviceBatch,
        lr: f64,
        seed: i64,
        precision: Precision,
        scaler: Option<&mut LossScaler>,
    ) -> Step {
        tch::manual_seed(seed);
        let logits = self.net.forward_in(&batch.images, true, precision);
        let soft = batch.soft_labels.as_ref();
        let loss = loss::cross_entropy(&logits, &batch.labels, soft);
        self.sgd.zero_grad();
        match scaler {
            None => {
                loss.backward();
                self.sgd.step(lr);
            }
            Some(scaler) => {
                scaler.scale_loss(&loss).backward();
                if scaler.unscale(&mut self.sgd.grads()) {
                    self.sgd.step(lr);
                }
            }
        }
        let logits = logits.detach();
        let scored = loss::scored_classes(&batch.labels, soft);
        Step {
            top1: topk_hits(&logits, &scored, 1),
            top5: topk_hits(&logits, &scored, 5),
            loss,
        }
    }
}

impl Step {
    /// Mean loss, top-1 and top-5 hits.
    fn read(&self) -> (f64, i64, i64) {
        (
            self.loss.double_value(&[]),
            self.top1.int64_value(&[]),
            self.top5.int64_value(&[]),
        )
    }
}

/// Seconds of an epoch, counting those of its part before a resume.
struct Clock {
    start: Instant,
    before: f64,
}

impl Clock {
    fn after(before: f64) -> Clock {
        Clock {
            start: Instant::now(),
            before,
        }
    }

    fn seconds(&self) -> f64 {
        self.before + self.start.elapsed().as_secs_f64()
    }
}

/// A run in progress: network, data, schedule state and run directory.
pub struct Trainer<'a> {
    cfg: &'a RunConfig,
    model: Model,
    stats: Stats,
    state: TrainState,
    train: Loader,
    val: Loader,
    log: MetricsLog,
    /// Steps taken in this process (for `max_steps`).
    steps_here: u64,
}

impl<'a> Trainer<'a> {
    /// Opens the data, builds the network and, with `cfg.resume`, restores the checkpoint.
    pub fn new(cfg: &'a RunConfig) -> Result<Trainer<'a>, TrainError> {
        let recipe = &cfg.recipe;
        check(recipe)?;
        std::fs::create_dir_all(&cfg.out).map_err(io_err(&cfg.out))?;
        let train_ds = Arc::new(Dataset::open(&cfg.train)?);
        let classes = train_ds.classes().to_vec();
        let stats = train_ds
            .stats()
            .ok_or_else(|| TrainError::NoStatistics {
                path: cfg.train.clone(),
            })?
            .clone();
        let network = cfg.model.network(classes.len(), recipe.crop);
        crate::device::configure(cfg.device, recipe.cudnn_benchmark);
        let mut model = Model::new(&network, recipe, cfg.device)?;
        let mut state = TrainState {
            model: network,
            classes,
            normalize: recipe.normalize,
            seed: recipe.seed,
            epoch: 0,
            step: 0,
            schedule: LrState::new(recipe.lr),
            partial: EpochTotals::default(),
            loader: None,
            loss_scale: recipe.precision.scaler(),
        };
        if let Some(path) = &cfg.resume {
            state = model.resume(path, &state)?;
            if state.loss_scale.is_none() {
                state.loss_scale = recipe.precision.scaler();
            }
        }
        if recipe.channels_last {
            model.net.to_channels_last();
        }
        let train = train_loader(train_ds, recipe, state.seed, &cfg.train)?;
        let val_path = cfg.val.as_deref().unwrap_or(&cfg.train);
        let val = val_loader(val_path, &stats, &state.classes, recipe)?;
        let keep_before = cfg.resume.as_ref().map(|_| state.epoch + 1);
        let log = MetricsLog::open(&cfg.out, keep_before).map_err(io_err(&cfg.out))?;
        Ok(Trainer {
            cfg,
            model,
            stats,
            state,
            train,
            val,
            log,
            steps_here: 0,
        })
    }

    /// Trains the remaining epochs.
    pub fn run(mut self, stop: &AtomicBool) -> Result<Outcome, TrainError> {
        let classes = self.state.classes.len();
        if !top5_is_reported(classes) {
            eprintln!(
                "note: top-5 error is not reported: with {classes} classes every label is among \
                 the 5 highest scores"
            );
        }
        while self.state.epoch < self.cfg.recipe.epochs {
            let Some(train) = self.train_epoch(stop)? else {
                return Ok(Outcome::Stopped {
                    checkpoint: last_checkpoint(&self.cfg.out),
                });
            };
            let val = self.validate()?;
            self.end_epoch(&train, &val)?;
        }
        Ok(Outcome::Finished {
            best: self.state.schedule.best,
        })
    }

    /// The steps of the current epoch from `state.step` on; `None` when stopped (Ctrl-C or
    /// `max_steps`) with a checkpoint of the epoch so far.
    fn train_epoch(&mut self, stop: &AtomicBool) -> Result<Option<EpochTotals>, TrainError> {
        let epoch = self.state.epoch;
        self.train.set_epoch(epoch);
        // A resumed epoch starts at its saved position at once: no trained batch is rebuilt.
        let resumed = self.state.step;
        if resumed > 0 {
            let at = match &self.state.loader {
                Some(at) => at.clone(),
                None => self.train.state(resumed as usize)?,
            };
            self.train.resume(&at)?;
        }
        let mut it = self.train.iter();
        let batches = resumed as usize + it.batches();
        let pb = alexpipe::progress::bar(batches as u64, "steps", self.cfg.progress);
        pb.set_prefix(format!("epoch {}/{} ", epoch + 1, self.cfg.recipe.epochs));
        pb.set_position(resumed);
        let mut totals = self.state.partial;
        let clock = Clock::after(totals.seconds);
        let recipe = &self.cfg.recipe;
        let mut feeder = Feeder::for_loader(&self.train, self.cfg.device, recipe.channels_last)?;
        let mut next = fetch(&mut it, &mut feeder, &mut totals.wait_s)?;
        while let Some((batch, n)) = next.take() {
            if self.should_stop(stop) {
                pb.abandon();
                totals.seconds = clock.seconds();
                self.save_mid_epoch(totals, self.state.step - resumed)?;
                self.report_stop(&totals);
                return Ok(None);
            }
            let seed = step_seed(self.state.seed, epoch, self.state.step);
            let step = self.model.step(
                &batch,
                self.state.schedule.lr,
                seed,
                recipe.precision,
                self.state.loss_scale.as_mut(),
            );
            // Batch k + 1 is fetched and uploaded while step k runs on the device.
            next = fetch(&mut it, &mut feeder, &mut totals.wait_s)?;
            let (loss, top1, top5) = step.read();
            if !loss.is_finite() {
                return Err(TrainError::Diverged {
                    epoch: epoch + 1,
                    step: self.state.step,
                    loss,
                });
            }
            totals.add(n, loss, top1, top5);
            self.state.step += 1;
            self.steps_here += 1;
            pb.inc(1);
            if self.state.step.is_multiple_of(10) || self.state.step as usize == batches {
                totals.seconds = clock.seconds();
                show_running(&pb, &totals);
            }
            let every = recipe.checkpoint_every;
            if every.is_some_and(|n| n > 0 && self.state.step.is_multiple_of(n))
                && (self.state.step as usize) < batches
            {
                totals.seconds = clock.seconds();
                self.save_mid_epoch(totals, self.state.step - resumed)?;
            }
        }
        totals.seconds = clock.seconds();
        pb.finish_and_clear();
        Ok(Some(totals))
    }

    fn should_stop(&self, stop: &AtomicBool) -> bool {
        let limit = self.cfg.recipe.max_steps;
        stop.load(Ordering::SeqCst) || limit.is_some_and(|m| self.steps_here >= m)
    }

    /// Saves the epoch so far, with the engine's position after the `trained_here` batches this
    /// iteration served and trained, so that `--resume` continues at the next step.
    fn save_mid_epoch(&mut self, totals: EpochTotals, trained_here: u64) -> Result<(), TrainError> {
        self.state.partial = totals;
        self.state.loader = Some(self.train.state(trained_here as usize)?);
        self.save()
    }

    /// The line a stopped run prints.
    fn report_stop(&self, totals: &EpochTotals) {
        eprintln!(
            "stopped in epoch {} after step {}: train loss {:.3} top-1 {:.1}% | {:.0} img/s, data \
             wait {:.1}%",
            self.state.epoch + 1,
            self.state.step,
            totals.loss(),
            totals.top1_error(),
            totals.images_per_s(),
            totals.data_wait_pct()
        );
    }

    /// The validation pass after an epoch.
    fn validate(&self) -> Result<EpochTotals, TrainError> {
        evaluate(
            &self.model.net,
            &self.val,
            &Execution::of(&self.cfg.recipe, self.cfg.device),
            self.cfg.progress,
        )
    }

    /// The schedule's decision, the metrics row and its line, the checkpoints and the curves.
    fn end_epoch(&mut self, train: &EpochTotals, val: &EpochTotals) -> Result<(), TrainError> {
        let recipe = &self.cfg.recipe;
        let epoch = self.state.epoch + 1;
        let lr = self.state.schedule.lr;
        let (schedule, decision) =
            recipe
                .schedule()
                .after_epoch(self.state.schedule, epoch, val.top1_error());
        let top5 = top5_is_reported(self.state.classes.len());
        let row = EpochRow::new(epoch, lr, train, val, decision.dropped, top5);
        self.log.append(&row).map_err(io_err(&self.cfg.out))?;
        eprintln!("{}", row.line(recipe.epochs, recipe.lr_divisor));
        self.state.schedule = schedule;
        self.state.epoch = epoch;
        self.state.step = 0;
        self.state.partial = EpochTotals::default();
        self.state.loader = None;
        self.save()?;
        if decision.improved {
            checkpoint::copy(
                &last_checkpoint(&self.cfg.out),
                &best_checkpoint(&self.cfg.out),
            )?;
        }
        // A picture that cannot be drawn is worth a warning, not the run.
        if let Err(e) = curves::redraw(self.log.jsonl(), &curves_png(&self.cfg.out)) {
            eprintln!("warning: curves not redrawn: {e}");
        }
        Ok(())
    }

    fn save(&self) -> Result<(), TrainError> {
        let path = last_checkpoint(&self.cfg.out);
        let m = &self.model;
        Ok(checkpoint::save(
            &path,
            &m.vs,
            &m.sgd,
            &self.stats,
            &self.state,
        )?)
    }
}

/// Options no run can use.
fn check(recipe: &Recipe) -> Result<(), TrainError> {
    if recipe.batch_size == 0 || recipe.epochs == 0 {
        return Err(TrainError::Usage(
            "--batch-size and --epochs must be at least 1".into(),
        ));
    }
    if !(recipe.lr.is_finite() && recipe.lr > 0.0) {
        return Err(TrainError::Usage(format!(
            "--lr {} must be a positive number",
            recipe.lr
        )));
    }
    let ops = &recipe.ops;
    ops.validate(alexpipe::loader::MAX_OUTPUT_SIDE)?;
    if !ops.is_empty() && recipe.augment == alexpipe::Recipe::Paper {
        return Err(TrainError::Usage(
            "colour jitter, TrivialAugmentWide, random erasing, MixUp/CutMix, label smoothing and \
             views belong to the RandomResizedCrop recipe: add --recipe rrc (or --recipe timm)"
                .into(),
        ));
    }
    if (ops.mixup.is_some() || ops.random_erasing.is_some()) && recipe.upload == Upload::U8 {
        return Err(TrainError::Usage(
            "random erasing, MixUp/CutMix and label smoothing work on the engine's finished f32 \
             batches (where torchvision and timm apply them): use --upload f32"
                .into(),
        ));
    }
    if ops.progressive.is_some() {
        return Err(TrainError::Usage(
            "progressive resizing changes the input side per epoch, but AlexNet's fc6 is sized for \
             one side (--crop): train at one size"
                .into(),
        ));
    }
    Ok(())
}

/// The running numbers beside an epoch's progress bar.
fn show_running(pb: &ProgressBar, t: &EpochTotals) {
    pb.set_message(format!(
        "loss {:.3} top-1 err {:.1}% {:.0} img/s wait {:.1}%",
        t.loss(),
        t.top1_error(),
        t.images_per_s(),
        t.data_wait_pct()
    ));
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
    let on_device = feeder.upload(&batch)?;
    Ok(Some((on_device, n)))
}

/// Loss, top-1 and top-5 hits of one validation batch (10-crop: softmax averaged over the patches).
fn eval_batch(
    net: &AlexNet,
    b: &DeviceBatch,
    n: usize,
    ten_crop: bool,
    precision: Precision,
) -> (f64, i64, i64) {
    let logits = net.forward_in(&b.images, false, precision);
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

/// Where and how the network computes: the device, the arithmetic type, the memory layout.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Execution {
    /// The device.
    pub device: Device,
    /// The arithmetic type.
    pub precision: Precision,
    /// Channels-last inputs.
    pub channels_last: bool,
}

impl Execution {
    /// A recipe's on `device`.
    pub fn of(recipe: &Recipe, device: Device) -> Execution {
        Execution {
            device,
            precision: recipe.precision,
            channels_last: recipe.channels_last,
        }
    }
}

/// Validation pass over `loader` (built with `train = false`).
pub fn evaluate(
    net: &AlexNet,
    loader: &Loader,
    exec: &Execution,
    progress: bool,
) -> Result<EpochTotals, TrainError> {
    let ten_crop = loader.config().ten_crop;
    let start = Instant::now();
    let mut totals = EpochTotals::default();
    let mut feeder = Feeder::for_loader(loader, exec.device, exec.channels_last)?;
    let mut epoch = loader.iter();
    let pb = alexpipe::progress::bar(epoch.batches() as u64, "batches", progress);
    pb.set_prefix("val ");
    let _guard = tch::no_grad_guard();
    while let Some((b, n)) = fetch(&mut epoch, &mut feeder, &mut totals.wait_s)? {
        let (loss, top1, top5) = eval_batch(net, &b, n, ten_crop, exec.precision);
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
        recipe: recipe.augment,
        batch_size,
        train,
        shuffle: train,
        order: alexpipe::Order::Global,
        seed: recipe.seed,
        drop_last: train,
        threads: recipe.workers,
        prefetch: recipe.prefetch,
        layout: layout_for(recipe.upload),
        crop: recipe.crop,
        flip: recipe.flip,
        lighting: recipe.lighting,
        mean: recipe.normalize,
        eigenbasis: None,
        ten_crop: !train && recipe.ten_crop,
        rank: 0,
        world_size: 1,
        augment: if train {
            recipe.ops
        } else {
            alexpipe::Augmentations::default()
        },
    }
}

/// The training loader (augmented, shuffled, full batches) with the run's `seed`.
fn train_loader(
    ds: Arc<Dataset>,
    recipe: &Recipe,
    seed: u64,
    path: &Path,
) -> Result<Loader, TrainError> {
    let config = LoaderConfig {
        seed,
        ..loader_config(recipe, true)
    };
    let loader = Loader::new(ds, config)?;
    if loader.is_empty() {
        return Err(TrainError::Usage(format!(
            "{}: {} images make no full batch of {}: lower --batch-size",
            path.display(),
            loader.dataset().len(),
            recipe.batch_size
        )));
    }
    Ok(loader)
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
        return Err(TrainError::ClassMismatch {
            path: path.to_path_buf(),
            val: ds.classes().len(),
            train: classes.len(),
        });
    }
    Ok(Loader::with_stats(
        Arc::new(ds),
        loader_config(recipe, false),
        stats,
    )?)
}

/// The step alone: `steps` SGD steps of `cfg`'s network on one synthetic batch resident on the
/// device (random images and labels; no engine, no upload), after 5 warm-up steps, each step's
/// loss read as the training loop reads it. Returns images per second: the rate the end-to-end
/// loop is measured against (`scripts/gpu-check.sh`).
pub fn step_alone(cfg: &RunConfig, steps: u64) -> Result<f64, TrainError> {
    const WARMUP: u64 = 5;
    let recipe = &cfg.recipe;
    check(recipe)?;
    let classes = Dataset::open_without_stats(&cfg.train)?.classes().len();
    let network = cfg.model.network(classes, recipe.crop);
    crate::device::configure(cfg.device, recipe.cudnn_benchmark);
    let mut model = Model::new(&network, recipe, cfg.device)?;
    if recipe.channels_last {
        model.net.to_channels_last();
    }
    let (n, side) = (recipe.batch_size as i64, recipe.crop as i64);
    let images = Tensor::randn([n, 3, side, side], (Kind::Float, cfg.device));
    let batch = DeviceBatch {
        images: if recipe.channels_last {
            crate::model::channels_last(&images)
        } else {
            images
        },
        labels: Tensor::randint(classes as i64, [n], (Kind::Int64, cfg.device)),
        soft_labels: None,
    };
    let mut scaler = recipe.precision.scaler();
    let mut start = Instant::now();
    for i in 0..WARMUP + steps {
        if i == WARMUP {
            start = Instant::now();
        }
        let seed = step_seed(recipe.seed, 0, i);
        let step = model.step(&batch, recipe.lr, seed, recipe.precision, scaler.as_mut());
        step.read();
    }
    Ok((steps * n as u64) as f64 / start.elapsed().as_secs_f64())
}

/// What [`evaluate_checkpoint`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Loss and hits over the dataset.
    pub totals: EpochTotals,
    /// The network's number of classes (top-5 means something only above 5).
    pub classes: usize,
}

/// Evaluates a checkpoint on a dataset (centre patch, or the 10 patches).
pub fn evaluate_checkpoint(
    path: &Path,
    val: &Path,
    recipe: &Recipe,
    device: Device,
    progress: bool,
) -> Result<Evaluation, TrainError> {
    crate::device::configure(device, recipe.cudnn_benchmark);
    let (_vs, mut net, state, stats) = checkpoint::load_network(path, device)?;
    if recipe.channels_last {
        net.to_channels_last();
    }
    let recipe = Recipe {
        crop: state.model.input as u32,
        normalize: state.normalize,
        ..recipe.clone()
    };
    let loader = val_loader(val, &stats, &state.classes, &recipe)?;
    Ok(Evaluation {
        totals: evaluate(&net, &loader, &Execution::of(&recipe, device), progress)?,
        classes: state.classes.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_seeds_are_those_of_earlier_versions() {
        // Checkpoints resume with these dropout seeds: they must never change.
        assert_eq!(step_seed(0, 0, 0), 1_279_368_494_785_126_216);
        assert_eq!(step_seed(5, 1, 2), 4_869_643_610_715_447_154);
        assert_eq!(step_seed(0, u64::MAX, u64::MAX), 8_693_381_611_334_999_813);
        assert_eq!(step_seed(5, u64::MAX, u64::MAX), 9_182_951_666_843_301_684);
    }
}
