//! What a run trains with: the hyper-parameters of §5 and the engine's settings ([`Recipe`]), the
//! network's options ([`ModelOptions`]), and three named presets ([`Preset`]) of both:
//!
//! - **paper**: the paper's values (§3, §4, §5), for the full network on ImageNet-sized data;
//! - **demo**: the no-argument fixtures demo: a ¼-width network that learns on a CPU from 31
//!   images (He initialization on unit-scale inputs, Caffe's biases), 30 short epochs of 4;
//! - **small**: a ⅛-width network on 64×64 patches that reaches 85 % on Fashion-MNIST in 6 CPU
//!   epochs (the Python test's recipe).

use alexpipe::MeanMode;

use crate::finish::Upload;
use crate::model::{AlexNetConfig, BiasInit, WeightInit};
use crate::precision::Precision;
use crate::schedule::LrSchedule;

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
    /// The engine's augmentation: the paper's crops of the stored images (§4.1) or
    /// RandomResizedCrop of whole images (`--recipe rrc`).
    pub augment: alexpipe::Recipe,
    /// The RandomResizedCrop recipe's optional training ops: colour jitter, TrivialAugmentWide,
    /// random erasing, MixUp/CutMix with soft labels (trained with a soft-target loss), views
    /// (all off: the paper's and torchvision's recipes). Validation never uses them.
    pub ops: alexpipe::Augmentations,
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
    /// Input normalisation (paper: the mean image, §2).
    pub normalize: MeanMode,
    /// Validate with the paper's 10 patches (§4.1) instead of the centre patch.
    pub ten_crop: bool,
    /// Stop (with a checkpoint) after this many steps in this process.
    pub max_steps: Option<u64>,
    /// Also write `checkpoint.ot` every this many steps within an epoch, so a run killed
    /// mid-epoch (`kill -9`, a lost node) resumes from its last such step.
    pub checkpoint_every: Option<u64>,
    /// What the engine sends the device: finished f32 batches, or u8 patches finished there.
    pub upload: Upload,
    /// The network's arithmetic type (paper: f32).
    pub precision: Precision,
    /// Convolution weights and inputs in channels-last memory (NHWC; same values).
    pub channels_last: bool,
    /// On CUDA, cuDNN times its candidate algorithms on the first batches and keeps the fastest
    /// (else it picks by heuristics; either way GPU arithmetic is not bit-reproducible).
    pub cudnn_benchmark: bool,
}

impl Recipe {
    /// The paper's recipe (§5): batches of 128, ε = 0.01 divided by 10 on plateaus at most 3
    /// times, momentum 0.9, weight decay 0.0005, ≈ 90 epochs; 224×224 patches with mirrors and PCA
    /// lighting σ = 0.1 (§4.1); the mean image subtracted (§2).
    pub fn paper() -> Recipe {
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
            augment: alexpipe::Recipe::Paper,
            ops: alexpipe::Augmentations::default(),
            crop: 224,
            lighting: 0.1,
            flip: 0.5,
            workers: 0,
            prefetch: 4,
            normalize: MeanMode::Image,
            ten_crop: false,
            max_steps: None,
            checkpoint_every: None,
            upload: Upload::F32,
            precision: Precision::F32,
            channels_last: false,
            cudnn_benchmark: true,
        }
    }

    /// The fixtures demo: 30 epochs of batches of 4 (31 images) at ε = 0.002, patience 10, on
    /// channel-normalised inputs.
    pub fn demo() -> Recipe {
        Recipe {
            epochs: 30,
            batch_size: 4,
            lr: 0.002,
            patience: 10,
            normalize: MeanMode::Channel,
            ..Recipe::paper()
        }
    }

    /// A narrow network on small images: 64×64 patches, batches of 128, ε = 0.02 divided by 10
    /// after epoch 4, 6 epochs, channel-normalised inputs.
    pub fn small() -> Recipe {
        Recipe {
            epochs: 6,
            batch_size: 128,
            lr: 0.02,
            lr_drop_after: vec![4],
            crop: 64,
            normalize: MeanMode::Channel,
            ..Recipe::paper()
        }
    }

    /// The learning-rate rule of this recipe.
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            patience: self.patience,
            max_drops: self.max_lr_drops,
            divisor: self.lr_divisor,
            drop_after: self.lr_drop_after.clone(),
        }
    }
}

impl Default for Recipe {
    /// [`Recipe::paper`].
    fn default() -> Self {
        Recipe::paper()
    }
}

/// The network options that do not come from the data.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelOptions {
    /// Width multiplier (paper: 1).
    pub width: f64,
    /// Dropout probability (paper: 0.5, §4.2).
    pub dropout: f64,
    /// Initial weights.
    pub init: WeightInit,
    /// conv1's weights N(0, σ²) instead of `init`'s.
    pub conv1_std: Option<f64>,
    /// Constant bias value.
    pub bias_init: BiasInit,
}

impl ModelOptions {
    /// The paper's network (§3, §5): full width, dropout 0.5, weights N(0, 0.01), biases 1.
    pub fn paper() -> ModelOptions {
        ModelOptions {
            width: 1.0,
            dropout: 0.5,
            init: WeightInit::Paper,
            conv1_std: None,
            bias_init: BiasInit::Paper,
        }
    }

    /// The demo's ¼-width network: He initialization, Caffe's biases.
    pub fn demo() -> ModelOptions {
        ModelOptions {
            width: 0.25,
            init: WeightInit::Kaiming,
            bias_init: BiasInit::Caffe,
            ..ModelOptions::paper()
        }
    }

    /// A ⅛-width network: He initialization (the paper's N(0, 0.01) sits at chance so narrow)
    /// except conv1, which keeps the paper's N(0, 0.01): its learned kernels then stand out of a
    /// quiet start as edge and blob detectors, where He's σ (0.074 for 11×11×3) leaves pixel noise
    /// in the detail small images never train; Caffe's biases.
    pub fn small() -> ModelOptions {
        ModelOptions {
            width: 0.125,
            conv1_std: Some(0.01),
            ..ModelOptions::demo()
        }
    }

    /// The network for `classes` outputs and `input`×`input` patches.
    pub fn network(&self, classes: usize, input: u32) -> AlexNetConfig {
        AlexNetConfig {
            classes: classes as i64,
            width: self.width,
            input: i64::from(input),
            dropout: self.dropout,
            init: self.init,
            conv1_std: self.conv1_std,
            bias_init: self.bias_init,
        }
    }
}

impl Default for ModelOptions {
    /// [`ModelOptions::paper`].
    fn default() -> Self {
        ModelOptions::paper()
    }
}

/// A named recipe and network (`train --preset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Preset {
    /// The paper's recipe and network (§5).
    Paper,
    /// The fixtures demo: ¼ width, 30 epochs of 4 images, CPU-sized.
    Demo,
    /// A ⅛-width network on 64×64 patches, 6 epochs (the Fashion-MNIST test).
    Small,
}

impl Preset {
    /// The preset's hyper-parameters.
    pub fn recipe(self) -> Recipe {
        match self {
            Preset::Paper => Recipe::paper(),
            Preset::Demo => Recipe::demo(),
            Preset::Small => Recipe::small(),
        }
    }

    /// The preset's network options.
    pub fn model(self) -> ModelOptions {
        match self {
            Preset::Paper => ModelOptions::paper(),
            Preset::Demo => ModelOptions::demo(),
            Preset::Small => ModelOptions::small(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_preset_is_the_demo_of_before() {
        // The values the binary's `if demo` branches picked, one by one.
        let r = Recipe::demo();
        assert_eq!(
            (r.epochs, r.batch_size, r.lr, r.patience),
            (30, 4, 0.002, 10)
        );
        assert_eq!((r.crop, r.normalize), (224, MeanMode::Channel));
        assert_eq!(
            Recipe {
                epochs: 90,
                batch_size: 128,
                lr: 0.01,
                patience: 5,
                normalize: MeanMode::Image,
                ..r
            },
            Recipe::paper()
        );
        let m = ModelOptions::demo();
        assert_eq!(
            (m.width, m.dropout, m.init, m.bias_init),
            (0.25, 0.5, WeightInit::Kaiming, BiasInit::Caffe)
        );
    }

    #[test]
    fn small_preset_is_the_fashion_mnist_recipe() {
        let (r, m) = (Preset::Small.recipe(), Preset::Small.model());
        assert_eq!((r.crop, m.width, m.conv1_std), (64, 0.125, Some(0.01)));
        assert_eq!((r.epochs, r.lr_drop_after.as_slice()), (6, &[4][..]));
        assert_eq!((r.batch_size, r.lr), (128, 0.02));
        assert_eq!(
            (m.init, m.bias_init, r.normalize),
            (WeightInit::Kaiming, BiasInit::Caffe, MeanMode::Channel)
        );
        // The rest is the paper's.
        assert_eq!((r.momentum, r.weight_decay, r.lighting), (0.9, 0.0005, 0.1));
    }
}
