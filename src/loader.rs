//! The engine (paper §4.1: "the transformed images are generated in Python code on the CPU while
//! the GPU is training on the previous batch of images", so augmentation is "computationally free").
//!
//! [`Loader`] owns an opened [`Dataset`] and a pool of batch buffers. Each epoch ([`Loader::iter`])
//! starts `threads` workers; worker w builds whole batches w, w + W, w + 2W, … into buffers taken
//! from the pool and sends them through its own bounded channel, so the consumer receives batch k
//! before k + 1 without any reordering, and a worker blocks when it is `prefetch` batches ahead
//! (backpressure). A dropped [`Batch`] returns its buffers to the pool: no allocation per batch in
//! the steady state. Every random choice comes from (seed, epoch, record index), so batches are
//! bit-identical whatever the thread count. Dropping the epoch iterator, even mid-epoch with
//! workers blocked, stops and joins every worker.
//!
//! Resuming: [`Loader::state`] (or [`Epoch::state`]) reports after any batch a [`LoaderState`],
//! and [`Loader::resume`] starts the epoch's rest from one at once, under any world size (see
//! [`crate::state`]).

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError};

use crate::augment::{
    draw_alpha, five_crop_positions, fused_f32_nchw, fused_u8_nhwc, lighting_delta, Augmentations,
    HorizontalFlip, MixDraw, Mixup, Normalize, PixelOp, PixelOps, Recipe, SampleParams,
};
use crate::dataset::Dataset;
use crate::error::{Error, Result};
use crate::prep::{center_crop_offset, ResizeCrop};
use crate::sampler::{rng_for, shard_aware_order, train_params, Order, Sampler};
use crate::state::{Digest, LoaderState, STATE_VERSION};
use crate::stats::Stats;
use crate::window::{read_window, Geometry, WindowScratch};

/// Memory layout of a batch's images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// f32, `[N, 3, crop, crop]`, lighting and mean subtraction applied (what the trainer eats).
    F32Nchw,
    /// u8, `[N, crop, crop, 3]`, crop and flip only (normalise on the GPU).
    U8Nhwc,
}

/// What is subtracted from the f32 output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeanMode {
    /// The per-pixel mean image, cropped and mirrored with the patch (paper §2).
    Image,
    /// Per-channel mean, then division by the per-channel standard deviation, both the dataset's
    /// own: unit-scale inputs.
    Channel,
    /// torchvision's ImageNet constants (mean 0.485, 0.456, 0.406 and std 0.229, 0.224, 0.225 of
    /// [0, 1] pixels, here in levels): the inputs every torchvision model and reference recipe
    /// expects, whatever the dataset.
    ImageNet,
}

impl MeanMode {
    /// torchvision's ImageNet channel mean, in levels (0.485, 0.456, 0.406 × 255).
    pub const IMAGENET_MEAN: [f32; 3] = [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0];
    /// torchvision's ImageNet channel standard deviation, in levels (0.229, 0.224, 0.225 × 255).
    pub const IMAGENET_STD: [f32; 3] = [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0];
}

impl std::str::FromStr for Layout {
    type Err = Error;

    /// `"f32_nchw"` or `"u8_nhwc"`.
    fn from_str(s: &str) -> Result<Layout> {
        match s {
            "f32_nchw" => Ok(Layout::F32Nchw),
            "u8_nhwc" => Ok(Layout::U8Nhwc),
            other => Err(Error::Usage(format!(
                "layout {other:?}: use \"f32_nchw\" or \"u8_nhwc\""
            ))),
        }
    }
}

impl std::str::FromStr for MeanMode {
    type Err = Error;

    /// `"image"` (the paper's mean image), `"channel"` (the dataset's channel mean and std) or
    /// `"imagenet"` (torchvision's constants).
    fn from_str(s: &str) -> Result<MeanMode> {
        match s {
            "image" => Ok(MeanMode::Image),
            "channel" => Ok(MeanMode::Channel),
            "imagenet" => Ok(MeanMode::ImageNet),
            other => Err(Error::Usage(format!(
                "mean {other:?}: use \"image\" (subtract the mean image, paper §2), \"channel\" (the dataset's channel mean and std) or \"imagenet\" (torchvision's ImageNet mean and std)"
            ))),
        }
    }
}

/// Principal axes of RGB pixel values for PCA lighting, and the standard deviation along each (in
/// u8 levels). Lighting adds `eigvecs · (α ⊙ axis_std)` to every pixel of an image.
///
/// The paper writes αᵢλᵢ with λᵢ the covariance eigenvalues; in level units that would shift pixels
/// by hundreds of levels, so implementations (fb.resnet.torch, timm, the constants in
/// `ImageNet::eigenbasis`) use √λᵢ, the spread along the axis. So do we.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Eigenbasis {
    /// Unit eigenvectors as columns: `eigvecs[row][i]` is component `row` of axis i.
    pub eigvecs: [[f64; 3]; 3],
    /// Standard deviation along each axis, levels (√ of the covariance eigenvalues).
    pub axis_std: [f64; 3],
}

impl Eigenbasis {
    /// From a dataset's statistics (covariance eigenvalues in levels²).
    pub fn from_stats(stats: &crate::stats::Stats) -> Self {
        Eigenbasis {
            eigvecs: stats.eigvecs,
            axis_std: stats.eigvals.map(|v| v.max(0.0).sqrt()),
        }
    }

    /// The widely used ImageNet constants (fb.resnet.torch; given for pixels in [0, 1], scaled here
    /// to levels).
    pub fn imagenet() -> Self {
        Eigenbasis {
            eigvecs: [
                [-0.5675, 0.7192, 0.4009],
                [-0.5808, -0.0045, -0.8140],
                [-0.5836, -0.6948, 0.4203],
            ],
            axis_std: [0.2175 * 255.0, 0.0188 * 255.0, 0.0045 * 255.0],
        }
    }
}

/// What a loader's f32 output applies after the crop and mirror ([`Loader::normalization`]): the
/// f32 value of a pixel `px` (u8, after crop and mirror) of a sample with lighting shift
/// `δ = lighting_delta(eigvecs, axis_std, α)` is `px − m + δ` with `m` the mean image at the
/// pixel's source position (`MeanMode::Image`), or `px · (1/σ) + (δ − μ) · (1/σ)` per channel
/// (`Channel`, `ImageNet`).
#[derive(Debug, Clone, Copy)]
pub struct Normalization<'a> {
    /// Which normalisation.
    pub mean: MeanMode,
    /// The training set's mean image, `size`×`size`×3 HWC, levels.
    pub mean_image: &'a [f32],
    /// Side of the stored images (and of the mean image).
    pub size: u32,
    /// Channel means (levels) for `Channel` and `ImageNet`.
    pub channel_mean: [f32; 3],
    /// Channel standard deviations (levels) for `Channel` and `ImageNet`.
    pub channel_std: [f32; 3],
    /// The lighting axes.
    pub eigenbasis: Eigenbasis,
}

impl Normalization<'_> {
    /// The RGB shift PCA lighting adds to every pixel of a sample drawn with `alpha` (§4.1).
    pub fn lighting_delta(&self, alpha: [f32; 3]) -> [f32; 3] {
        lighting_delta(&self.eigenbasis.eigvecs, &self.eigenbasis.axis_std, alpha)
    }
}

/// Largest output side RandomResizedCrop resizes to.
pub const MAX_OUTPUT_SIDE: u32 = 8192;

/// Loader settings; [`Default`] is the paper's training recipe, [`LoaderConfig::rrc`]
/// torchvision's.
#[derive(Debug, Clone, PartialEq)]
pub struct LoaderConfig {
    /// The augmentation recipe: the paper's (default) or RandomResizedCrop.
    pub recipe: Recipe,
    /// Images per batch (paper §5: 128).
    pub batch_size: usize,
    /// Training augmentation (random crop, flip, lighting); `false`: centre crop (or 10-crop).
    pub train: bool,
    /// A new random order every epoch.
    pub shuffle: bool,
    /// How the random order is drawn: over all records, or shard-aware (for streaming).
    pub order: Order,
    /// Seed of every random choice.
    pub seed: u64,
    /// Drop the final partial batch.
    pub drop_last: bool,
    /// Worker threads; 0 = all cores.
    pub threads: usize,
    /// Batches built ahead of the consumer.
    pub prefetch: usize,
    /// Output layout.
    pub layout: Layout,
    /// Output side: the paper's patch (224, at most the stored size), or RandomResizedCrop's
    /// output size.
    pub crop: u32,
    /// Probability of a horizontal mirror in training (paper: 0.5).
    pub flip: f64,
    /// σ of the lighting coefficients α (paper: 0.1; 0 disables).
    pub lighting: f32,
    /// Mean subtraction for f32 output.
    pub mean: MeanMode,
    /// Lighting axes; `None`: the dataset's own.
    pub eigenbasis: Option<Eigenbasis>,
    /// Evaluation with the paper's 10 patches per image (`train` must be false).
    pub ten_crop: bool,
    /// This process's rank (distributed training).
    pub rank: usize,
    /// Number of ranks.
    pub world_size: usize,
    /// The RandomResizedCrop recipe's optional ops (colour jitter, TrivialAugmentWide, random
    /// erasing, MixUp/CutMix), used in training; all off by default.
    pub augment: Augmentations,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            recipe: Recipe::Paper,
            batch_size: 128,
            train: true,
            shuffle: true,
            order: Order::Global,
            seed: 0,
            drop_last: true,
            threads: 0,
            prefetch: 4,
            layout: Layout::F32Nchw,
            crop: 224,
            flip: 0.5,
            lighting: 0.1,
            mean: MeanMode::Image,
            eigenbasis: None,
            ten_crop: false,
            rank: 0,
            world_size: 1,
            augment: Augmentations::default(),
        }
    }
}

impl LoaderConfig {
    /// torchvision's ImageNet training recipe: RandomResizedCrop to 224 (scale 0.08–1, ratio
    /// 3/4–4/3, crop-aware decoding), mirror with p = 0.5, no PCA lighting, torchvision's
    /// ImageNet normalisation. Evaluation (`train = false`): short side to 256, centre 224.
    pub fn rrc() -> Self {
        LoaderConfig {
            recipe: Recipe::RandomResizedCrop {
                crop: crate::augment::RandomResizedCrop::default(),
                decode: crate::augment::DecodeMode::default(),
            },
            lighting: 0.0,
            mean: MeanMode::ImageNet,
            ..LoaderConfig::default()
        }
    }
}

impl LoaderConfig {
    /// timm's ImageNet training defaults (its `train.py` and `transforms_imagenet_train`) at output
    /// side `crop`: RandomResizedCrop (scale 0.08–1, ratio 3/4–4/3, bilinear or bicubic at random
    /// per sample: `--train-interpolation random`), mirror p = 0.5, ColorJitter(0.4, 0.4, 0.4),
    /// ImageNet mean/std, label smoothing 0.1 as soft labels (no MixUp/CutMix, no erasing, no
    /// auto-augmentation: timm's defaults); evaluation at crop_pct 0.875, bicubic.
    pub fn timm(crop: u32) -> Self {
        let jitter = crate::augment::ColorJitter {
            brightness: Some((0.6, 1.4)),
            contrast: Some((0.6, 1.4)),
            saturation: Some((0.6, 1.4)),
            hue: None,
        };
        LoaderConfig {
            crop,
            recipe: Recipe::RandomResizedCrop {
                crop: crate::augment::RandomResizedCrop {
                    interpolation: crate::augment::Interpolation::Random,
                    ..crate::augment::RandomResizedCrop::default()
                },
                decode: crate::augment::DecodeMode::default(),
            },
            augment: Augmentations {
                color_jitter: Some(jitter),
                mixup: Some(Mixup {
                    mixup_alpha: 0.0,
                    cutmix_alpha: 0.0,
                    ..Mixup::default()
                }),
                ..Augmentations::default()
            },
            ..LoaderConfig::rrc()
        }
    }
}

/// A batch's memory, recycled through the loader's pool.
#[derive(Debug, Default)]
struct Buffers {
    f32: Vec<f32>,
    u8: Vec<u8>,
    labels: Vec<i64>,
    indices: Vec<usize>,
    params: Vec<SampleParams>,
    /// `[N, classes]` soft labels, with MixUp/CutMix.
    soft_labels: Vec<f32>,
    /// The batch's MixUp/CutMix draw (boxed: the batch stays small to move).
    mix: Option<Box<MixDraw>>,
}

/// One batch. Dropping it returns its buffers to the loader.
#[derive(Debug)]
pub struct Batch {
    index: usize,
    layout: Layout,
    shape: [usize; 4],
    wait: Duration,
    bufs: Buffers,
    recycle: Sender<Buffers>,
}

impl Batch {
    /// Position of the batch in its epoch: on a resumed epoch, counted from the epoch's start
    /// when the world and batch size are those the state was saved with (else from
    /// ⌊consumed / (world · batch)⌋).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Layout of [`Batch::images_f32`] / [`Batch::images_u8`].
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// `[N, 3, crop, crop]` (f32) or `[N, crop, crop, 3]` (u8); N = 10 × images with 10-crop.
    pub fn shape(&self) -> [usize; 4] {
        self.shape
    }

    /// The images, when the layout is f32 NCHW.
    pub fn images_f32(&self) -> Option<&[f32]> {
        (self.layout == Layout::F32Nchw).then(|| &self.bufs.f32[..self.shape.iter().product()])
    }

    /// The images, when the layout is u8 NHWC.
    pub fn images_u8(&self) -> Option<&[u8]> {
        (self.layout == Layout::U8Nhwc).then(|| &self.bufs.u8[..self.shape.iter().product()])
    }

    /// One label per record (per view with multi-view; one for all 10 crops of 10-crop).
    pub fn labels(&self) -> &[i64] {
        &self.bufs.labels
    }

    /// With MixUp/CutMix: the `[N, classes]` soft labels (row-major, each row summing to 1),
    /// the labels of [`Batch::labels`] mixed and smoothed as timm's `Mixup` does.
    pub fn soft_labels(&self) -> Option<&[f32]> {
        self.bufs
            .mix
            .is_some()
            .then_some(&self.bufs.soft_labels[..])
    }

    /// With MixUp/CutMix: the batch's λ and CutMix box.
    pub fn mix(&self) -> Option<MixDraw> {
        self.bufs.mix.as_deref().copied()
    }

    /// The dataset record of each image.
    pub fn indices(&self) -> &[usize] {
        &self.bufs.indices
    }

    /// The augmentation of each output image (10 per image with 10-crop), for checking and debugging.
    pub fn params(&self) -> &[SampleParams] {
        &self.bufs.params
    }

    /// How long the consumer waited for this batch.
    pub fn wait(&self) -> Duration {
        self.wait
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        // The loader may be gone, or its pool full: then the buffers are simply freed.
        let _ = self.recycle.try_send(std::mem::take(&mut self.bufs));
    }
}

/// The multi-threaded augmentation engine over one dataset.
pub struct Loader {
    dataset: Arc<Dataset>,
    config: LoaderConfig,
    epoch: u64,
    pool_tx: Sender<Buffers>,
    pool_rx: Receiver<Buffers>,
    mean_image: Arc<Vec<f32>>,
    eigenbasis: Eigenbasis,
    channel: ([f32; 3], [f32; 3]),
    subset: Option<Arc<Vec<usize>>>,
    /// The recipe's per-sample ops (RandomResizedCrop; the paper's recipe fuses its mirror).
    ops: Arc<PixelOps>,
    /// Positions of the current epoch's global order already consumed: where `iter` starts.
    position: usize,
    /// [`LoaderState::dataset`] and [`LoaderState::recipe`] of this loader.
    dataset_digest: String,
    recipe: String,
}

impl Loader {
    /// A loader over `dataset` (its statistics provide the mean and, unless given, the lighting axes).
    pub fn new(dataset: Arc<Dataset>, config: LoaderConfig) -> Result<Loader> {
        let stats = dataset
            .stats()
            .ok_or_else(|| Error::Usage("the dataset was opened without statistics".into()))?
            .clone();
        Loader::with_stats(dataset, config, &stats)
    }

    /// A loader over `dataset` normalised with another dataset's statistics: validation and test
    /// images get the training set's mean (paper §2: "the mean activity over the training set").
    pub fn with_stats(
        dataset: Arc<Dataset>,
        config: LoaderConfig,
        stats: &Stats,
    ) -> Result<Loader> {
        let size = dataset.size();
        let usage = |msg: String| Err(Error::Usage(msg));
        if config.batch_size == 0 {
            return usage("batch_size must be at least 1".into());
        }
        match config.recipe {
            Recipe::Paper if config.crop == 0 || config.crop > size => {
                return usage(format!(
                    "crop {} must be in 1..={size} (the dataset's image size) for the paper's \
                     recipe; recipe \"rrc\" resizes to any size",
                    config.crop
                ));
            }
            Recipe::Paper if !config.augment.is_empty() => {
                return usage(
                    "colour jitter, TrivialAugmentWide, random erasing and MixUp/CutMix belong to the RandomResizedCrop recipe: use recipe \"rrc\"".into(),
                );
            }
            Recipe::Paper => {}
            Recipe::RandomResizedCrop { crop, .. } => {
                crop.validate()?;
                if config.crop == 0 || config.crop > MAX_OUTPUT_SIDE {
                    return usage(format!(
                        "crop {} must be in 1..={}",
                        config.crop, MAX_OUTPUT_SIDE
                    ));
                }
                if config.ten_crop {
                    return usage(
                        "ten_crop is the paper's evaluation: use recipe \"paper\" (RandomResizedCrop evaluates on the centre crop)".into(),
                    );
                }
                config.augment.validate(MAX_OUTPUT_SIDE)?;
                let on_output =
                    config.augment.random_erasing.is_some() || config.augment.mixup.is_some();
                if on_output && config.layout == Layout::U8Nhwc {
                    return usage(
                        "random erasing and MixUp/CutMix work on the normalised f32 output, as torchvision and timm apply them: use layout \"f32_nchw\"".into(),
                    );
                }
                if config.mean == MeanMode::Image && config.layout == Layout::F32Nchw {
                    return usage(
                        "mean \"image\" subtracts the paper's 256×256 mean image, which has no place in a RandomResizedCrop window: use mean \"imagenet\" or \"channel\"".into(),
                    );
                }
            }
        }
        if config.world_size == 0 || config.rank >= config.world_size {
            return usage(format!(
                "rank {} must be below world_size {}",
                config.rank, config.world_size
            ));
        }
        if let Order::Shards { window } = config.order {
            if window == 0 || dataset.units().is_none() {
                return usage(format!(
                    "order \"shards\" needs a shard window of at least 1 and a dataset stored in \
                     shards ({} is {}, window {window}); use order \"global\"",
                    dataset.location().display(),
                    dataset.info().format
                ));
            }
        }
        if config.ten_crop && config.train {
            return usage("ten_crop is for evaluation: set train = false".into());
        }
        if !(0.0..=1.0).contains(&config.flip) || config.lighting.is_nan() || config.lighting < 0.0
        {
            return usage("flip must be a probability and lighting σ ≥ 0".into());
        }
        if stats.size != size {
            return usage(format!(
                "statistics of {}×{} images do not fit this dataset's {size}×{size} images: build it \
                 with the same --size as the dataset the statistics come from",
                stats.size, stats.size
            ));
        }
        let eigenbasis = config
            .eigenbasis
            .unwrap_or_else(|| Eigenbasis::from_stats(stats));
        let channel = match config.mean {
            MeanMode::ImageNet => (MeanMode::IMAGENET_MEAN, MeanMode::IMAGENET_STD),
            MeanMode::Image | MeanMode::Channel => (
                stats.channel_mean.map(|v| v as f32),
                stats.channel_std.map(|v| v.max(1e-6) as f32),
            ),
        };
        let mean_image = Arc::new(stats.mean_image.clone());
        // The pool is a bounded (array) channel, its slots allocated once here, so recycling a
        // batch's buffers never allocates (an unbounded channel allocates a block every 31
        // sends); buffers beyond what can be in flight (workers building, the prefetched
        // batches, batches the consumer holds) are freed instead.
        let in_flight = crate::threads::worker_threads(config.threads) + config.prefetch;
        let (pool_tx, pool_rx) = bounded(2 * in_flight + 8);
        let ops = Arc::new(pixel_ops(&config));
        let recipe = recipe(&config, &ops, &mean_image, &eigenbasis, channel);
        let dataset_digest = dataset_digest(&dataset, None);
        Ok(Loader {
            dataset,
            config,
            epoch: 0,
            pool_tx,
            pool_rx,
            mean_image,
            eigenbasis,
            channel,
            subset: None,
            ops,
            position: 0,
            dataset_digest,
            recipe,
        })
    }

    /// The same loader over records `indices` of its dataset only (in this order unless shuffled;
    /// repeats allowed): a few query images, a fold, one class. Each record keeps its own random
    /// draws, so a subset's batches hold exactly the patches the full loader would make of them.
    pub fn with_subset(mut self, indices: Vec<usize>) -> Result<Loader> {
        let len = self.dataset.len();
        if let Some(&bad) = indices.iter().find(|&&i| i >= len) {
            return Err(Error::Usage(format!(
                "subset index {bad} is past the dataset's {len} images"
            )));
        }
        self.dataset_digest = dataset_digest(&self.dataset, Some(&indices));
        self.subset = Some(Arc::new(indices));
        self.position = 0;
        Ok(self)
    }

    /// The dataset.
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The configuration.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// What this loader's f32 layout applies after the crop and the mirror — the lighting axes,
    /// the mean image or the channel constants — so that u8 batches ([`Layout::U8Nhwc`], whose
    /// [`Batch::params`] hold each sample's drawn position, mirror and α) can be finished
    /// elsewhere (on a GPU) into the same values.
    pub fn normalization(&self) -> Normalization<'_> {
        Normalization {
            mean: self.config.mean,
            mean_image: &self.mean_image,
            size: self.dataset.size(),
            channel_mean: self.channel.0,
            channel_std: self.channel.1,
            eigenbasis: self.eigenbasis,
        }
    }

    /// Sets the epoch of the next [`Loader::iter`] (its order and augmentations), as PyTorch's
    /// `sampler.set_epoch`. Another epoch starts at its beginning; the epoch already set keeps
    /// its position, so `set_epoch(state.epoch)` after [`Loader::resume`] still resumes.
    pub fn set_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.position = 0;
        }
        self.epoch = epoch;
    }

    /// Positions of the current epoch's global order consumed before the next [`Loader::iter`]
    /// (0 unless set by [`Loader::resume`]).
    pub fn position(&self) -> usize {
        self.position
    }

    /// Makes the next [`Loader::iter`] start the current epoch from its beginning.
    pub fn rewind(&mut self) {
        self.position = 0;
    }

    /// The state after `consumed_batches` batches of an iteration started now ([`Loader::iter`]
    /// from the current epoch and position), at a step where every rank has consumed that many:
    /// `consumed_batches == self.len()` completes the epoch and is reported as the next epoch at
    /// its start. [`Error::Usage`] past the iteration's end.
    pub fn state(&self, consumed_batches: usize) -> Result<LoaderState> {
        self.start_state().advanced(
            consumed_batches,
            self.len(),
            self.config.world_size,
            self.config.batch_size,
        )
    }

    /// The state at the current epoch and position.
    fn start_state(&self) -> LoaderState {
        LoaderState {
            version: STATE_VERSION,
            seed: self.config.seed,
            epoch: self.epoch,
            consumed: self.position as u64,
            records: self.sampler().len as u64,
            dataset: self.dataset_digest.clone(),
            recipe: self.recipe.clone(),
            world_size: self.config.world_size as u64,
            batch_size: self.config.batch_size as u64,
        }
    }

    /// Sets the epoch and position from `state`, so the next [`Loader::iter`] yields this rank's
    /// part of the epoch's rest: no skipped batch is built, whatever the position. The world
    /// size, batch size, threads and prefetch may differ from the saving loader's; the rest of the
    /// epoch is then split among this loader's ranks (padded, as a whole epoch is, by repeating
    /// the epoch's first records: [`Sampler::indices_from`]). A state from another dataset, seed
    /// or recipe, or a corrupt one, is refused with [`Error::Usage`] naming what differs; the
    /// loader is then unchanged.
    pub fn resume(&mut self, state: &LoaderState) -> Result<()> {
        state.check_fits(&self.start_state())?;
        if state.consumed >= state.records && state.records > 0 {
            // A whole epoch consumed: the next one, from its start.
            self.epoch = state.epoch.saturating_add(1);
            self.position = 0;
        } else {
            self.epoch = state.epoch;
            self.position = state.consumed as usize;
        }
        Ok(())
    }

    /// The epoch the next iteration uses.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn sampler(&self) -> Sampler {
        Sampler {
            len: self.subset.as_ref().map_or(self.dataset.len(), |s| s.len()),
            shuffle: self.config.shuffle,
            seed: self.config.seed,
            rank: self.config.rank,
            world_size: self.config.world_size,
        }
    }

    /// Batches per epoch on this rank (of the epoch's rest, after [`Loader::resume`]).
    pub fn len(&self) -> usize {
        let n = self.sampler().samples_per_rank_from(self.position);
        if self.config.drop_last {
            n / self.config.batch_size
        } else {
            n.div_ceil(self.config.batch_size)
        }
    }

    /// True when an epoch has no batch.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn threads(&self) -> usize {
        crate::threads::worker_threads(self.config.threads)
    }

    /// Starts the workers for the current epoch and returns its batches in order. The epoch owns
    /// what it needs: it can outlive this borrow and move to another thread (e.g. a Python iterator).
    pub fn iter(&self) -> Epoch {
        let mut indices = self.sampler().split(&self.epoch_order(), self.position);
        if let Some(subset) = &self.subset {
            for i in &mut indices {
                *i = subset[*i];
            }
        }
        self.dataset.plan_reads(&indices);
        let indices = Arc::new(indices);
        let batches = self.len();
        let workers = self.threads().min(batches.max(1));
        let capacity = self.config.prefetch.div_ceil(workers).max(1);
        let (stop_tx, stop_rx) = bounded::<()>(0);
        let job = Arc::new(Job {
            dataset: self.dataset.clone(),
            config: LoaderConfig {
                crop: self.output_side(),
                ..self.config.clone()
            },
            epoch: self.epoch,
            indices,
            mean_image: self.mean_image.clone(),
            eigenbasis: self.eigenbasis,
            channel: self.channel,
            ops: self.ops.clone(),
        });
        let mut receivers = Vec::with_capacity(workers);
        let mut handles = Vec::with_capacity(workers);
        for w in 0..workers {
            let (tx, rx) = bounded::<Result<Batch>>(capacity);
            receivers.push(rx);
            let job = job.clone();
            let stop = stop_rx.clone();
            let pool = (self.pool_tx.clone(), self.pool_rx.clone());
            let first = self.first_batch_index();
            let spawned = std::thread::Builder::new()
                .name(format!("alexpipe-loader-{w}"))
                .spawn(move || worker(&job, w, workers, batches, first, &tx, &stop, &pool));
            match spawned {
                Ok(h) => handles.push(h),
                Err(e) => {
                    let (tx, rx) = bounded(1);
                    let _ = tx.send(Err(Error::Internal(format!(
                        "cannot start a loader thread: {e}"
                    ))));
                    receivers[w] = rx;
                }
            }
        }
        Epoch {
            receivers,
            next: 0,
            batches,
            stop: Some(stop_tx),
            handles,
            waited: Duration::ZERO,
            start: self.start_state(),
        }
    }

    /// The current epoch's global order over the loader's records (positions of the subset, if
    /// it has one).
    fn epoch_order(&self) -> Vec<usize> {
        let sampler = self.sampler();
        match (self.config.order, self.dataset.units()) {
            (Order::Shards { window }, Some(units)) if sampler.shuffle => {
                let record = |p: usize| self.subset.as_ref().map_or(p, |s| s[p]) as u64;
                let unit_of = |p: usize| units.partition_point(|&first| first <= record(p)) - 1;
                shard_aware_order(sampler.seed, self.epoch, sampler.len, window, &unit_of)
            }
            _ => sampler.epoch_order(self.epoch),
        }
    }

    /// The output side of the current epoch: `crop`, or in training the progressive-resizing
    /// schedule's side for the epoch. The batch buffers, recycled through the pool, keep the
    /// capacity of the largest side seen, so changing sizes never grows memory past it.
    pub fn output_side(&self) -> u32 {
        match (&self.config.augment.progressive, self.config.train) {
            (Some(schedule), true) => schedule.size(self.epoch),
            _ => self.config.crop,
        }
    }

    /// The epoch index of the first batch [`Loader::iter`] yields (see [`Batch::index`]).
    fn first_batch_index(&self) -> usize {
        self.position / (self.config.world_size * self.config.batch_size)
    }
}

/// The per-sample ops of the configured recipe, in order: RandomResizedCrop's training mirror,
/// then TrivialAugmentWide and colour jitter when on (none for its evaluation); the paper's
/// recipe has none, its mirror being fused.
fn pixel_ops(config: &LoaderConfig) -> PixelOps {
    match config.recipe {
        Recipe::RandomResizedCrop { .. } if config.train => {
            let mut ops: Vec<Box<dyn PixelOp>> = vec![Box::new(HorizontalFlip { p: config.flip })];
            if let Some(t) = config.augment.trivial_augment {
                ops.push(Box::new(t));
            }
            if let Some(j) = config.augment.color_jitter {
                ops.push(Box::new(j));
            }
            PixelOps(ops)
        }
        _ => PixelOps::default(),
    }
}

/// [`LoaderState::recipe`]: every setting that changes what a record becomes, as `key=value`
/// words, with a digest of the normalisation constants.
fn recipe(
    config: &LoaderConfig,
    ops: &PixelOps,
    mean_image: &[f32],
    eigenbasis: &Eigenbasis,
    channel: ([f32; 3], [f32; 3]),
) -> String {
    let mut norm = Digest::new();
    for v in mean_image.iter().chain(&channel.0).chain(&channel.1) {
        norm = norm.bytes(&v.to_bits().to_le_bytes());
    }
    for v in eigenbasis
        .eigvecs
        .iter()
        .flatten()
        .chain(&eigenbasis.axis_std)
    {
        norm = norm.u64(v.to_bits());
    }
    let layout = match config.layout {
        Layout::F32Nchw => "f32_nchw",
        Layout::U8Nhwc => "u8_nhwc",
    };
    let mean = match config.mean {
        MeanMode::Image => "image",
        MeanMode::Channel => "channel",
        MeanMode::ImageNet => "imagenet",
    };
    // The paper's recipe keeps the words of the states saved before recipes existed.
    let recipe = match config.recipe {
        Recipe::Paper => String::new(),
        Recipe::RandomResizedCrop { crop, decode } => {
            format!(
                " recipe=rrc scale={},{} ratio={},{} crop_fraction={} decode={} ops=[{}]",
                crop.scale.0,
                crop.scale.1,
                crop.ratio.0,
                crop.ratio.1,
                crop.crop_fraction,
                decode.name(),
                ops.describe()
            ) + &interpolation_words(crop.interpolation)
                + &output_ops_words(&config.augment)
        }
    };
    let order = config
        .order
        .word()
        .map_or(String::new(), |w| format!(" {w}"));
    format!(
        "train={} shuffle={} drop_last={} crop={} flip={} lighting={} ten_crop={} layout={layout} \
         mean={mean} norm={}{recipe}{order}",
        config.train,
        config.shuffle,
        config.drop_last,
        config.crop,
        config.flip,
        config.lighting,
        config.ten_crop,
        norm.hex()
    )
}

/// RandomResizedCrop's filter word (none for bilinear, so states saved before it was a choice
/// still fit).
fn interpolation_words(interpolation: crate::augment::Interpolation) -> String {
    match interpolation {
        crate::augment::Interpolation::Bilinear => String::new(),
        other => format!(" interpolation={}", other.name()),
    }
}

/// The recipe words of the ops on the output (none when off, so states saved before they
/// existed still fit).
fn output_ops_words(augment: &Augmentations) -> String {
    let mut words = String::new();
    if let Some(e) = &augment.random_erasing {
        words += &format!(
            " erasing=p={},scale={},{},ratio={},{},fill={:?}",
            e.p, e.scale.0, e.scale.1, e.ratio.0, e.ratio.1, e.fill
        );
    }
    if augment.views > 1 {
        words += &format!(" views={}", augment.views);
    }
    if let Some(p) = &augment.progressive {
        words += &format!(
            " progressive={},{},{},{},{}",
            p.min, p.max, p.start_epoch, p.end_epoch, p.multiple
        );
    }
    if let Some(m) = &augment.mixup {
        words += &format!(
            " mixup=mixup_alpha={},cutmix_alpha={},prob={},switch_prob={},smoothing={}",
            m.mixup_alpha, m.cutmix_alpha, m.prob, m.switch_prob, m.label_smoothing
        );
    }
    words
}

/// [`LoaderState::dataset`]: what the records are (not where or when they were built).
fn dataset_digest(dataset: &Dataset, subset: Option<&[usize]>) -> String {
    let info = dataset.info();
    let mut d = Digest::new()
        .str(info.mode.name())
        .u64(info.size as u64)
        .u64(info.num_records);
    d = d.u64(info.classes.len() as u64);
    for c in &info.classes {
        d = d.str(c);
    }
    for &n in &info.class_counts {
        d = d.u64(n);
    }
    if let Some(s) = subset {
        d = d.u64(s.len() as u64);
        for &i in s {
            d = d.u64(i as u64);
        }
    }
    d.hex()
}

/// Separates the streams of a record's further views (multi-view) from its first.
const VIEW_SALT: u64 = 0x7669_6577_735f_6b00;

/// Separates the batches' MixUp/CutMix streams from the samples' (which are keyed by record).
const MIX_SALT: u64 = 0x6d69_7875_705f_6375;

/// Everything a worker needs for one epoch.
struct Job {
    dataset: Arc<Dataset>,
    config: LoaderConfig,
    epoch: u64,
    indices: Arc<Vec<usize>>,
    mean_image: Arc<Vec<f32>>,
    eigenbasis: Eigenbasis,
    channel: ([f32; 3], [f32; 3]),
    ops: Arc<PixelOps>,
}

#[allow(clippy::too_many_arguments)]
fn worker(
    job: &Job,
    w: usize,
    workers: usize,
    batches: usize,
    first: usize,
    tx: &Sender<Result<Batch>>,
    stop: &Receiver<()>,
    pool: &(Sender<Buffers>, Receiver<Buffers>),
) {
    let mut scratch = Scratch::default();
    for k in (w..batches).step_by(workers) {
        if let Err(TryRecvError::Disconnected) = stop.try_recv() {
            return;
        }
        let bufs = pool.1.try_recv().unwrap_or_default();
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            job.build(k, first + k, bufs, &mut scratch)
        }))
        .unwrap_or_else(|panic| {
            Err(Error::from_panic(
                &format!("the loader worker building batch {k}"),
                panic.as_ref(),
            ))
        });
        let result = built.map(|(shape, bufs)| Batch {
            index: first + k,
            layout: job.config.layout,
            shape,
            wait: Duration::ZERO,
            bufs,
            recycle: pool.0.clone(),
        });
        select! {
            send(tx, result) -> sent => if sent.is_err() { return },
            recv(stop) -> _ => return,
        }
    }
}

/// Per-worker read and decode state.
#[derive(Default)]
struct Scratch {
    resize: ResizeCrop,
    pixels: Vec<u8>,
    window: WindowScratch,
}

impl Job {
    /// Builds batch `k` of this iteration (batch `index` of the epoch) into `bufs`; returns the
    /// images' shape.
    fn build(
        &self,
        k: usize,
        index: usize,
        mut bufs: Buffers,
        scratch: &mut Scratch,
    ) -> Result<([usize; 4], Buffers)> {
        let cfg = &self.config;
        let ds = &self.dataset;
        let size = ds.size();
        let crop = cfg.crop as usize;
        let start = k * cfg.batch_size;
        let end = (start + cfg.batch_size).min(self.indices.len());
        let records = &self.indices[start..end];
        let per_record = match cfg.recipe {
            Recipe::Paper if cfg.ten_crop => 10,
            Recipe::RandomResizedCrop { .. } if cfg.train => cfg.augment.views.max(1),
            _ => 1,
        };
        let n = records.len() * per_record;
        let per_image = crop * crop * 3;
        bufs.labels.clear();
        bufs.indices.clear();
        bufs.params.clear();
        bufs.mix = None;
        match cfg.layout {
            Layout::F32Nchw => bufs.f32.resize(n * per_image, 0.0),
            Layout::U8Nhwc => bufs.u8.resize(n * per_image, 0),
        }
        let norm = match cfg.mean {
            MeanMode::Image => Normalize::MeanImage(&self.mean_image),
            MeanMode::Channel | MeanMode::ImageNet => Normalize::Channel {
                mean: self.channel.0,
                std: self.channel.1,
            },
        };
        for (j, &i) in records.iter().enumerate() {
            bufs.indices.push(i);
            match &cfg.recipe {
                Recipe::Paper => {
                    // Every mode reads (raw) or decodes (jpeg, original) into the worker's
                    // scratch, with the record's checksum verified first.
                    scratch.pixels.resize(size as usize * size as usize * 3, 0);
                    let label = ds.read_pixels(i, &mut scratch.resize, &mut scratch.pixels)?;
                    bufs.labels.push(label as i64);
                    for (v, p) in self.views(i, size).into_iter().enumerate() {
                        // The fused loop reads the patch at (x, y) of the stored image and
                        // mirrors it.
                        let slot = (j * per_record + v) * per_image;
                        self.write(
                            &scratch.pixels,
                            size as usize,
                            &p,
                            &p,
                            &norm,
                            slot,
                            &mut bufs,
                        );
                        bufs.params.push(p);
                    }
                }
                Recipe::RandomResizedCrop { crop: rrc, decode } => {
                    for v in 0..per_record {
                        let (label, p) = self.rrc_view(i, v, rrc, *decode, scratch)?;
                        bufs.labels.push(label as i64);
                        // The window is already the whole of the pixels, its ops applied.
                        let at = SampleParams {
                            x: 0,
                            y: 0,
                            flip: false,
                            ..p
                        };
                        let slot = (j * per_record + v) * per_image;
                        self.write(&scratch.pixels, crop, &at, &p, &norm, slot, &mut bufs);
                        bufs.params.push(p);
                    }
                }
            }
        }
        if let (Some(mixup), true) = (&cfg.augment.mixup, cfg.train) {
            self.mix_batch(mixup, index, n, &mut bufs);
        }
        let shape = match cfg.layout {
            Layout::F32Nchw => [n, 3, crop, crop],
            Layout::U8Nhwc => [n, crop, crop, 3],
        };
        Ok((shape, bufs))
    }

    /// View `v` of record `i` under RandomResizedCrop: the window (drawn from the record's
    /// dimensions before decoding), decoded and resized to the output in `scratch.pixels`; then
    /// the per-sample ops, in order, on the same generator; the lighting and the erasing region.
    /// View 0 draws from (seed, epoch, record), further views from their own streams.
    fn rrc_view(
        &self,
        i: usize,
        v: usize,
        rrc: &crate::augment::RandomResizedCrop,
        decode: crate::augment::DecodeMode,
        scratch: &mut Scratch,
    ) -> Result<(u32, SampleParams)> {
        let cfg = &self.config;
        let crop = cfg.crop as usize;
        scratch.pixels.resize(crop * crop * 3, 0);
        let seed = match v {
            0 => cfg.seed,
            _ => crate::seed::mix64(cfg.seed ^ VIEW_SALT ^ v as u64),
        };
        let mut rng = rng_for(seed, self.epoch, i as u64);
        let mut draw = |(w, h)| {
            let (x, y, w, h) = rrc.sample(&mut rng, w, h);
            SampleParams {
                x,
                y,
                w,
                h,
                flip: false,
                alpha: [0.0; 3],
                draws: crate::augment::OpDraws {
                    filter: rrc.interpolation.draw(&mut rng),
                    ..Default::default()
                },
            }
        };
        let mut geometry = if cfg.train {
            Geometry::Window(&mut draw)
        } else {
            Geometry::Eval(rrc)
        };
        let (label, mut params) = read_window(
            &self.dataset,
            i,
            &mut geometry,
            decode,
            cfg.crop,
            &mut scratch.window,
            &mut scratch.resize,
            &mut scratch.pixels,
        )?;
        if cfg.train {
            self.ops
                .apply(&mut rng, &mut scratch.pixels, crop, &mut params);
            params.alpha = draw_alpha(&mut rng, cfg.lighting);
            params.draws.erase = cfg
                .augment
                .random_erasing
                .and_then(|e| e.draw(&mut rng, cfg.crop, cfg.crop));
        }
        Ok((label, params))
    }

    /// Writes one output image at `slot` of the batch: the fused loop over `src` (`stored`
    /// pixels wide) at `at`, with `p`'s lighting, then `p`'s erasing (f32).
    #[allow(clippy::too_many_arguments)]
    fn write(
        &self,
        src: &[u8],
        stored: usize,
        at: &SampleParams,
        p: &SampleParams,
        norm: &Normalize<'_>,
        slot: usize,
        bufs: &mut Buffers,
    ) {
        let cfg = &self.config;
        let crop = cfg.crop as usize;
        let per_image = crop * crop * 3;
        match cfg.layout {
            Layout::F32Nchw => {
                let delta =
                    lighting_delta(&self.eigenbasis.eigvecs, &self.eigenbasis.axis_std, p.alpha);
                let out = &mut bufs.f32[slot..slot + per_image];
                fused_f32_nchw(src, stored, at, crop, delta, norm, out);
                if let (Some(e), Some(d)) = (&cfg.augment.random_erasing, &p.draws.erase) {
                    e.erase(d, out, crop, crop);
                }
            }
            Layout::U8Nhwc => {
                fused_u8_nhwc(src, stored, at, crop, &mut bufs.u8[slot..slot + per_image])
            }
        }
    }

    /// MixUp/CutMix over the built batch (f32), with its draw from (seed, epoch, batch, rank).
    fn mix_batch(&self, mixup: &Mixup, index: usize, n: usize, bufs: &mut Buffers) {
        let cfg = &self.config;
        let crop = cfg.crop as usize;
        let stream = (index as u64)
            .wrapping_mul(cfg.world_size as u64)
            .wrapping_add(cfg.rank as u64);
        let mut rng = rng_for(cfg.seed ^ MIX_SALT, self.epoch, stream);
        let draw = mixup.draw(&mut rng, cfg.crop, cfg.crop);
        Mixup::mix_images(&draw, &mut bufs.f32[..n * 3 * crop * crop], n, crop, crop);
        let classes = self.dataset.info().classes.len();
        mixup.soft_labels(&draw, &bufs.labels, classes, &mut bufs.soft_labels);
        bufs.mix = Some(Box::new(draw));
    }

    /// The patches of record `i`: one random training patch, the centre patch, or the 10 patches.
    fn views(&self, i: usize, size: u32) -> Vec<SampleParams> {
        let cfg = &self.config;
        if cfg.train {
            return vec![train_params(
                cfg.seed,
                self.epoch,
                i,
                size,
                cfg.crop,
                cfg.flip,
                cfg.lighting,
            )];
        }
        let plain = |(x, y): (u32, u32), flip: bool| SampleParams {
            x,
            y,
            w: cfg.crop,
            h: cfg.crop,
            flip,
            alpha: [0.0; 3],
            draws: Default::default(),
        };
        if !cfg.ten_crop {
            let c = center_crop_offset(size, cfg.crop);
            return vec![plain((c, c), false)];
        }
        let five = five_crop_positions(size, cfg.crop);
        five.iter()
            .map(|&xy| plain(xy, false))
            .chain(five.iter().map(|&xy| plain(xy, true)))
            .collect()
    }
}

/// One epoch's batches, in order. Dropping it stops and joins the workers.
pub struct Epoch {
    receivers: Vec<Receiver<Result<Batch>>>,
    next: usize,
    batches: usize,
    stop: Option<Sender<()>>,
    handles: Vec<JoinHandle<()>>,
    waited: Duration,
    /// The state the epoch started from.
    start: LoaderState,
}

/// What [`Epoch::next_within`] found.
#[derive(Debug)]
// A batch moves once per `next_within`; boxing it would allocate per batch.
#[allow(clippy::large_enum_variant)]
pub enum Next {
    /// The next batch, or the error that replaced it.
    Batch(Result<Batch>),
    /// The epoch is over.
    End,
    /// Not ready within the timeout; ask again.
    Pending,
}

impl Epoch {
    /// Like [`Iterator::next`], but gives up after `timeout` (so a caller can handle signals, e.g.
    /// Ctrl-C in Python, while waiting).
    pub fn next_within(&mut self, timeout: Duration) -> Next {
        if self.next >= self.batches {
            return Next::End;
        }
        let rx = &self.receivers[self.next % self.receivers.len()];
        let t = Instant::now();
        let got = rx.recv_timeout(timeout);
        let wait = t.elapsed();
        self.waited += wait;
        let result = match got {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => return Next::Pending,
            Ok(Ok(mut batch)) => {
                batch.wait = wait;
                Ok(batch)
            }
            Ok(Err(e)) => Err(e),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(Error::Internal(
                format!("loader worker for batch {} stopped unexpectedly", self.next),
            )),
        };
        self.next += 1;
        Next::Batch(result)
    }

    /// Total time the consumer has waited for batches so far (for a data-wait percentage).
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// Batches in this epoch.
    pub fn batches(&self) -> usize {
        self.batches
    }

    /// The state after the batches handed out so far (see [`Loader::state`]; exact when every
    /// rank has been handed as many).
    pub fn state(&self) -> LoaderState {
        let world = self.start.world_size as usize;
        let batch = self.start.batch_size as usize;
        // `next` never passes `batches`, so this cannot fail; the start state is the fallback.
        self.start
            .advanced(self.next, self.batches, world, batch)
            .unwrap_or_else(|_| self.start.clone())
    }
}

impl Iterator for Epoch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Result<Batch>> {
        loop {
            match self.next_within(Duration::from_secs(3600)) {
                Next::Batch(b) => return Some(b),
                Next::End => return None,
                Next::Pending => continue,
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.batches - self.next;
        (left, Some(left))
    }
}

impl Drop for Epoch {
    fn drop(&mut self) {
        // Closing the stop channel wakes every worker blocked in `select!`; dropping the receivers
        // makes any pending send fail.
        self.stop.take();
        self.receivers.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::prep::ResizeCrop;
    use crate::source::{BuildInfo, DatasetInfo, Mode, RecordSource};
    use crate::stats::StatsAccumulator;

    const SIZE: u32 = 16;

    /// Records in memory, through the public seam; reading record `panics_at` panics, as a bug
    /// in a decoder or a source would.
    struct PanickingSource {
        info: DatasetInfo,
        location: PathBuf,
        pixels: Vec<Vec<u8>>,
        panics_at: usize,
    }

    impl PanickingSource {
        fn new(records: usize, panics_at: usize) -> (PanickingSource, Stats) {
            let len = (SIZE * SIZE * 3) as usize;
            let pixels: Vec<Vec<u8>> = (0..records)
                .map(|r| (0..len).map(|i| ((i * 7 + r * 31) % 251) as u8).collect())
                .collect();
            let mut acc = StatsAccumulator::new(SIZE);
            pixels.iter().for_each(|p| acc.add_image(p));
            let stats = acc.finish().expect("images");
            let info = DatasetInfo {
                format: "memory".into(),
                mode: Mode::Raw,
                size: SIZE,
                num_records: records as u64,
                classes: vec!["a".into(), "b".into()],
                class_counts: vec![records.div_ceil(2) as u64, (records / 2) as u64],
                rejected: 0,
                stats: Some(stats.summary()),
                build: BuildInfo {
                    tool: "test".into(),
                    input: "memory".into(),
                    input_kind: "memory".into(),
                    quality: None,
                    draft: false,
                    max_side: None,
                    shard_size: 1,
                    max_pixels: 1,
                    resize: "none".into(),
                    created_unix: 0,
                },
            };
            let source = PanickingSource {
                info,
                location: PathBuf::from("memory"),
                pixels,
                panics_at,
            };
            (source, stats)
        }
    }

    impl RecordSource for PanickingSource {
        fn info(&self) -> &DatasetInfo {
            &self.info
        }
        fn location(&self) -> &Path {
            &self.location
        }
        fn label(&self, index: usize) -> Result<u32> {
            self.check_index(index)?;
            Ok((index % 2) as u32)
        }
        fn read_record(&self, index: usize, buf: &mut Vec<u8>) -> Result<u32> {
            self.check_index(index)?;
            buf.clone_from(&self.pixels[index]);
            self.label(index)
        }
        fn read_pixels(&self, index: usize, _: &mut ResizeCrop, out: &mut [u8]) -> Result<u32> {
            self.check_index(index)?;
            assert_ne!(index, self.panics_at, "a bug while reading record {index}");
            out.copy_from_slice(&self.pixels[index]);
            self.label(index)
        }
        fn verify(&self) -> Result<u64> {
            Ok(self.pixels.len() as u64)
        }
        fn provenance(&self) -> Result<String> {
            Ok(String::new())
        }
    }

    #[test]
    fn a_panicking_worker_becomes_an_internal_error_for_its_batch_only() {
        for threads in [1, 3] {
            let (source, stats) = PanickingSource::new(20, 9);
            let dataset = Arc::new(Dataset::from_source(Box::new(source), Some(stats)));
            let config = LoaderConfig {
                batch_size: 4,
                crop: 12,
                shuffle: false,
                threads,
                ..LoaderConfig::default()
            };
            let loader = Loader::new(dataset, config).expect("loader");
            let results: Vec<Result<Batch>> = loader.iter().collect();
            assert_eq!(results.len(), 5, "every batch comes, none is lost or short");
            for (k, result) in results.iter().enumerate() {
                match (k, result) {
                    // Record 9 is in batch 2 (records 8..12) of the sequential order.
                    (2, Err(Error::Internal(msg))) => {
                        assert!(msg.contains("panicked"), "{msg}");
                        assert!(msg.contains("a bug while reading record 9"), "{msg}");
                        assert!(msg.contains("batch 2"), "{msg}");
                    }
                    (2, other) => panic!("batch 2: expected an internal error, got {other:?}"),
                    (_, Ok(batch)) => assert_eq!(batch.labels().len(), 4),
                    (_, Err(e)) => panic!("batch {k}: {e}"),
                }
            }
        }
    }

    /// Original-mode records in memory: real JPEGs, one of them cut short.
    struct JpegSource {
        info: DatasetInfo,
        location: PathBuf,
        records: Vec<Vec<u8>>,
    }

    impl RecordSource for JpegSource {
        fn info(&self) -> &DatasetInfo {
            &self.info
        }
        fn location(&self) -> &Path {
            &self.location
        }
        fn label(&self, index: usize) -> Result<u32> {
            self.check_index(index)?;
            Ok(0)
        }
        fn read_record(&self, index: usize, buf: &mut Vec<u8>) -> Result<u32> {
            self.check_index(index)?;
            buf.clone_from(&self.records[index]);
            Ok(0)
        }
        fn read_pixels(&self, index: usize, _: &mut ResizeCrop, _: &mut [u8]) -> Result<u32> {
            self.label(index)
        }
        fn verify(&self) -> Result<u64> {
            Ok(self.records.len() as u64)
        }
        fn provenance(&self) -> Result<String> {
            Ok(String::new())
        }
    }

    #[test]
    fn a_record_whose_window_decode_fails_midway_is_an_error_naming_it() {
        let (w, h) = (320usize, 240usize);
        let pixels: Vec<u8> = (0..w * h * 3).map(|i| ((i * 37) % 251) as u8).collect();
        let mut c = turbojpeg::Compressor::new().expect("compressor");
        c.set_quality(90).expect("quality");
        let jpeg = c
            .compress_to_vec(turbojpeg::Image {
                pixels: &pixels[..],
                width: w,
                pitch: w * 3,
                height: h,
                format: turbojpeg::PixelFormat::RGB,
            })
            .expect("encode");
        // The second record loses its last third: every window reaching into it must fail.
        let cut = jpeg[..jpeg.len() * 2 / 3].to_vec();
        let (memory, stats) = PanickingSource::new(2, usize::MAX);
        let mut info = memory.info;
        info.mode = Mode::Original;
        info.build.max_pixels = crate::prep::DEFAULT_MAX_PIXELS;
        let source = JpegSource {
            info,
            location: PathBuf::from("memory-jpegs"),
            records: vec![jpeg, cut],
        };
        let dataset = Arc::new(Dataset::from_source(Box::new(source), Some(stats)));
        for decode in [
            crate::augment::DecodeMode::Exact,
            crate::augment::DecodeMode::CropAware,
        ] {
            let config = LoaderConfig {
                batch_size: 1,
                crop: 64,
                shuffle: false,
                train: false, // the centre crop: it reaches the lost rows
                recipe: Recipe::RandomResizedCrop {
                    crop: crate::augment::RandomResizedCrop::default(),
                    decode,
                },
                ..LoaderConfig::rrc()
            };
            let results: Vec<Result<Batch>> = Loader::new(dataset.clone(), config)
                .expect("loader")
                .iter()
                .collect();
            assert_eq!(results.len(), 2);
            assert!(results[0].is_ok(), "{decode:?}: {:?}", results[0]);
            match &results[1] {
                Err(Error::Format { path, msg }) => {
                    assert_eq!(path, Path::new("memory-jpegs"));
                    assert!(msg.contains("record 1") && msg.contains("corrupt"), "{msg}");
                }
                other => panic!("{decode:?}: expected a format error, got {other:?}"),
            }
        }
    }

    #[test]
    fn an_out_of_range_record_is_its_own_kind() {
        let (source, stats) = PanickingSource::new(3, usize::MAX);
        let dataset = Dataset::from_source(Box::new(source), Some(stats));
        match dataset.label(3) {
            Err(Error::OutOfRange {
                index: 3, len: 3, ..
            }) => {}
            other => panic!("expected OutOfRange, got {other:?}"),
        }
    }
}
