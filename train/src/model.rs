//! The network of paper §3, read next to §3.5 line by line.
//!
//! Five convolutional and three fully-connected layers; the "two GPU" columns are the `groups = 2`
//! convolutions (conv2, conv4, conv5 see only their own half of the previous layer; conv3 and the
//! fully-connected layers see both). Input 224×224 with conv1 padded by 2, the choice torchvision
//! makes: (224 + 4 − 11) / 4 + 1 = 55, so every later shape is the paper's (55 → 27 → 13 → 6) and the
//! parameter count is the paper's 60,965,224 at 1000 classes. (Caffe's alternative, 227 unpadded,
//! gives the same shapes.)
//!
//! `width` scales every layer's channel count and `input` the image side, so the same code trains
//! a small AlexNet on a CPU (tests, the fixtures demo, Fashion-MNIST). The smallest input that
//! leaves a 1×1 map after the last pooling is 63.

use tch::nn::{self, Module};
use tch::{Kind, Tensor};

use crate::precision::Precision;

/// conv1's zero padding (see the module documentation).
const CONV1_PADDING: i64 = 2;

/// The smallest input side for which every pooling layer still has a 3×3 window.
pub const MIN_INPUT: i64 = 63;

/// Initial value of the biases the paper sets to a constant (conv2, conv4, conv5, fc6, fc7).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum BiasInit {
    /// 1, the paper's value: "accelerates the early stages of learning by providing the ReLUs with
    /// positive inputs" (§5).
    Paper,
    /// 0.1, Caffe's bvlc_alexnet ("initialization to 1 gave flat loss").
    Caffe,
}

impl BiasInit {
    fn value(self) -> f64 {
        match self {
            BiasInit::Paper => 1.0,
            BiasInit::Caffe => 0.1,
        }
    }
}

/// Initial weights.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum WeightInit {
    /// N(0, 0.01) everywhere, the paper's (§5). Tuned for the full-width network: a narrow one
    /// passes almost no signal through eight such layers and sits at chance for thousands of steps.
    Paper,
    /// N(0, 2 / fan-in) (He et al., 2015), which keeps the activations' scale through the ReLUs at
    /// any width: what the small networks of the tests and demos use.
    Kaiming,
}

/// What defines a network: checkpoints store it so `--eval` rebuilds the same one.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlexNetConfig {
    /// Outputs of fc8 (paper: 1000).
    pub classes: i64,
    /// Multiplier of every layer's width (paper: 1).
    pub width: f64,
    /// Side of the square input (paper: 224).
    pub input: i64,
    /// Probability of dropping a hidden fully-connected output in training (§4.2: 0.5).
    pub dropout: f64,
    /// Initial weights.
    pub init: WeightInit,
    /// conv1's initial weights N(0, σ²) with this σ instead of `init`'s (`--conv1-std`); `None`:
    /// `init`'s. (Checkpoints written before it existed load as `None`.)
    #[serde(default)]
    pub conv1_std: Option<f64>,
    /// Constant biases (§5).
    pub bias_init: BiasInit,
}

impl AlexNetConfig {
    /// The paper's network for `classes` outputs.
    pub fn paper(classes: i64) -> Self {
        AlexNetConfig {
            classes,
            width: 1.0,
            input: 224,
            dropout: 0.5,
            init: WeightInit::Paper,
            conv1_std: None,
            bias_init: BiasInit::Paper,
        }
    }
}

/// Why a configuration cannot be built.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ModelError {
    /// The input is too small for the three 3×3/2 poolings.
    #[error("input side {0} is too small for AlexNet: use at least {MIN_INPUT} (e.g. --crop 64)")]
    InputTooSmall(i64),
    /// Width ≤ 0 or not finite.
    #[error("width multiplier {0} must be a positive number")]
    BadWidth(f64),
    /// No class to predict.
    #[error("the dataset has {0} classes: need at least 2")]
    TooFewClasses(i64),
    /// Dropout outside [0, 1).
    #[error("dropout {0} must be in [0, 1)")]
    BadDropout(f64),
    /// conv1's σ ≤ 0 or not finite.
    #[error("--conv1-std {0} must be a positive number (the paper's σ: 0.01)")]
    BadConv1Std(f64),
}

/// Channel counts of conv1..conv5 and the width of fc6/fc7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Widths {
    /// Output channels of conv1..conv5 (paper: 96, 256, 384, 384, 256).
    pub conv: [i64; 5],
    /// fc6 and fc7 outputs (paper: 4096).
    pub hidden: i64,
}

impl Widths {
    /// The paper's widths times `width`, conv channels rounded to an even count (two columns).
    pub fn scaled(width: f64) -> Widths {
        let even = |c: f64| ((c * width / 2.0).round() as i64).max(1) * 2;
        Widths {
            conv: [96.0, 256.0, 384.0, 384.0, 256.0].map(even),
            hidden: ((4096.0 * width).round() as i64).max(1),
        }
    }
}

/// Output side of a convolution or pooling window; 0 when the window does not fit.
fn out_side(input: i64, kernel: i64, stride: i64, padding: i64) -> i64 {
    let span = input + 2 * padding - kernel;
    if span < 0 {
        0
    } else {
        span / stride + 1
    }
}

/// Spatial side after each stage: conv1, pool1, pool2, pool5 (paper at 224: 55, 27, 13, 6).
pub fn stage_sides(input: i64) -> [i64; 4] {
    let conv1 = out_side(input, 11, 4, CONV1_PADDING);
    let pool1 = out_side(conv1, 3, 2, 0);
    // conv2..conv5 keep the side (5×5 pad 2, 3×3 pad 1).
    let pool2 = out_side(pool1, 3, 2, 0);
    let pool5 = out_side(pool2, 3, 2, 0);
    [conv1, pool1, pool2, pool5]
}

/// Local response normalization across channels (§3.3):
/// `b[i] = a[i] / (k + α/n · Σ a[j]²)^β`, the sum over the `n` channels centred on i (clipped at
/// the ends; for an even n, one more channel below than above, as PyTorch). α is divided by n as in cuda-convnet, Caffe and PyTorch's `LocalResponseNorm`, so the
/// paper's α = 1e-4 means the same thing in all of them. tch has no LRN: this is built from tensor
/// ops (a channel-wise average pool of the squares) and tested against the formula.
pub fn local_response_norm(a: &Tensor, n: i64, alpha: f64, beta: f64, k: f64) -> Tensor {
    let squares = (a * a).unsqueeze(1);
    let padded = squares.constant_pad_nd([0, 0, 0, 0, n / 2, (n - 1) / 2]);
    let mean = padded
        .avg_pool3d([n, 1, 1], [1, 1, 1], [0, 0, 0], false, true, None::<i64>)
        .squeeze_dim(1);
    a / (mean * alpha + k).pow_tensor_scalar(beta)
}

/// §3.3 with the paper's constants: k = 2, n = 5, α = 1e-4, β = 0.75.
fn lrn(a: &Tensor) -> Tensor {
    local_response_norm(a, 5, 1e-4, 0.75, 2.0)
}

/// Overlapping max pooling (§3.4): z = 3, s = 2.
fn pool(x: &Tensor) -> Tensor {
    x.max_pool2d([3, 3], [2, 2], [0, 0], [1, 1], false)
}

/// The network.
#[derive(Debug)]
pub struct AlexNet {
    config: AlexNetConfig,
    conv1: Conv,
    conv2: Conv,
    conv3: Conv,
    conv4: Conv,
    conv5: Conv,
    fc6: nn::Linear,
    fc7: nn::Linear,
    fc8: nn::Linear,
}

impl AlexNet {
    /// Builds the layers under `vs` with the paper's initialization (§5): weights N(0, 0.01) (or
    /// He's), biases 1 (or Caffe's 0.1) in conv2, conv4, conv5, fc6, fc7 and 0 in conv1, conv3, fc8.
    pub fn new(vs: &nn::Path, config: &AlexNetConfig) -> Result<AlexNet, ModelError> {
        if !(config.width.is_finite() && config.width > 0.0) {
            return Err(ModelError::BadWidth(config.width));
        }
        if config.input < MIN_INPUT {
            return Err(ModelError::InputTooSmall(config.input));
        }
        if config.classes < 2 {
            return Err(ModelError::TooFewClasses(config.classes));
        }
        if !(0.0..1.0).contains(&config.dropout) {
            return Err(ModelError::BadDropout(config.dropout));
        }
        if let Some(std) = config.conv1_std.filter(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(ModelError::BadConv1Std(std));
        }
        let w = Widths::scaled(config.width);
        let weights = match config.init {
            WeightInit::Paper => nn::Init::Randn {
                mean: 0.0,
                stdev: 0.01,
            },
            WeightInit::Kaiming => nn::Init::Kaiming {
                dist: nn::init::NormalOrUniform::Normal,
                fan: nn::init::FanInOut::FanIn,
                non_linearity: nn::init::NonLinearity::ReLU,
            },
        };
        let conv1_weights = match config.conv1_std {
            Some(stdev) => nn::Init::Randn { mean: 0.0, stdev },
            None => weights,
        };
        let one = nn::Init::Const(config.bias_init.value());
        let zero = nn::Init::Const(0.0);
        let conv = |name: &str, i: i64, o: i64, k: i64, stride, padding, groups, bias| {
            let c = nn::ConvConfig {
                stride,
                padding,
                groups,
                ws_init: if name == "conv1" {
                    conv1_weights
                } else {
                    weights
                },
                bs_init: bias,
                ..Default::default()
            };
            Conv {
                layer: nn::conv2d(vs / name, i, o, k, c),
                stride,
                padding,
                groups,
            }
        };
        let linear = |name: &str, i: i64, o: i64, bias| {
            let c = nn::LinearConfig {
                ws_init: weights,
                bs_init: Some(bias),
                bias: true,
            };
            nn::linear(vs / name, i, o, c)
        };
        let pool5 = stage_sides(config.input)[3];
        let [c1, c2, c3, c4, c5] = w.conv;
        Ok(AlexNet {
            config: config.clone(),
            // 96 kernels 11×11×3, stride 4                      224 → 55
            conv1: conv("conv1", 3, c1, 11, 4, CONV1_PADDING, 1, zero),
            // 256 kernels 5×5×48: each column sees its own half  27 → 27
            conv2: conv("conv2", c1, c2, 5, 1, 2, 2, one),
            // 384 kernels 3×3×256: connected to both columns    13 → 13
            conv3: conv("conv3", c2, c3, 3, 1, 1, 1, zero),
            // 384 kernels 3×3×192                               13 → 13
            conv4: conv("conv4", c3, c4, 3, 1, 1, 2, one),
            // 256 kernels 3×3×192                               13 → 13
            conv5: conv("conv5", c4, c5, 3, 1, 1, 2, one),
            // 4096 neurons over the 256×6×6 pooled maps
            fc6: linear("fc6", c5 * pool5 * pool5, w.hidden, one),
            fc7: linear("fc7", w.hidden, w.hidden, one),
            fc8: linear("fc8", w.hidden, config.classes, zero),
        })
    }

    /// Its configuration.
    pub fn config(&self) -> &AlexNetConfig {
        &self.config
    }

    /// The conv1 kernels, `[96, 3, 11, 11]` (paper Figure 3; the first half is the first column).
    pub fn conv1_weight(&self) -> &Tensor {
        &self.conv1.layer.ws
    }

    /// The last hidden layer (fc7 after its ReLU, `[N, 4096]`): the features whose Euclidean
    /// distances the paper's Figure 4 compares. Dropout applies only when `train`.
    pub fn features_t(&self, images: &Tensor, train: bool) -> Tensor {
        self.features_in(images, train, Precision::F32)
    }

    /// Class scores (before the softmax), `[N, classes]`.
    pub fn forward_t(&self, images: &Tensor, train: bool) -> Tensor {
        self.forward_in(images, train, Precision::F32)
    }

    /// Class scores in f32 computed at `precision`: with bf16 or fp16 the convolutions and
    /// matrix products run in that type from the f32 master weights (cast on the way, so their
    /// gradients reach the f32 weights), LRN's sums of squares and the scores in f32 — what
    /// PyTorch's autocast does. [`Precision::F32`] is the paper's f32 network exactly.
    pub fn forward_in(&self, images: &Tensor, train: bool, precision: Precision) -> Tensor {
        let p = self.config.dropout;
        let x = self.features_in(images, train, precision).dropout(p, train);
        linear_in(&self.fc8, &x, precision).to_kind(Kind::Float)
    }

    fn features_in(&self, images: &Tensor, train: bool, precision: Precision) -> Tensor {
        let p = self.config.dropout;
        let lrn = |x: &Tensor| match precision.compute_kind() {
            Kind::Float => lrn(x),
            kind => lrn(&x.to_kind(Kind::Float)).to_kind(kind),
        };
        let x = conv_in(&self.conv1, images, precision).relu();
        let x = pool(&lrn(&x));
        let x = conv_in(&self.conv2, &x, precision).relu();
        let x = pool(&lrn(&x));
        let x = conv_in(&self.conv3, &x, precision).relu();
        let x = conv_in(&self.conv4, &x, precision).relu();
        let x = pool(&conv_in(&self.conv5, &x, precision).relu());
        let x = linear_in(&self.fc6, &x.flatten(1, -1), precision)
            .relu()
            .dropout(p, train);
        linear_in(&self.fc7, &x, precision).relu()
    }

    /// Stores the convolution weights channels-last (`--channels-last`: NHWC memory, what
    /// cuDNN's fastest kernels read); shapes, values and the checkpoint format are unchanged.
    pub fn to_channels_last(&mut self) {
        for conv in [
            &mut self.conv1,
            &mut self.conv2,
            &mut self.conv3,
            &mut self.conv4,
            &mut self.conv5,
        ] {
            let cl = channels_last(&conv.layer.ws);
            tch::no_grad(|| conv.layer.ws.set_data(&cl));
        }
    }
}

/// `t` (`[N, C, H, W]`) with the same shape and values, its memory ordered N, H, W, C.
pub fn channels_last(t: &Tensor) -> Tensor {
    t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// A convolution layer and the geometry it was built with.
#[derive(Debug)]
struct Conv {
    layer: nn::Conv2D,
    stride: i64,
    padding: i64,
    groups: i64,
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Tensor {
        self.layer.forward(x)
    }
}

/// A convolution at `precision` (f32: the layer itself).
fn conv_in(c: &Conv, x: &Tensor, precision: Precision) -> Tensor {
    match precision.compute_kind() {
        Kind::Float => c.layer.forward(x),
        kind => x.to_kind(kind).conv2d(
            &c.layer.ws.to_kind(kind),
            c.layer.bs.as_ref().map(|b| b.to_kind(kind)).as_ref(),
            [c.stride; 2],
            [c.padding; 2],
            [1; 2],
            c.groups,
        ),
    }
}

/// A fully connected layer at `precision` (f32: the layer itself).
fn linear_in(l: &nn::Linear, x: &Tensor, precision: Precision) -> Tensor {
    match precision.compute_kind() {
        Kind::Float => l.forward(x),
        kind => x.to_kind(kind).linear(
            &l.ws.to_kind(kind),
            l.bs.as_ref().map(|b| b.to_kind(kind)).as_ref(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    fn build(config: &AlexNetConfig) -> (nn::VarStore, AlexNet) {
        let vs = nn::VarStore::new(Device::Cpu);
        let net = AlexNet::new(&vs.root(), config).expect("valid configuration");
        (vs, net)
    }

    #[test]
    fn paper_network_has_the_papers_parameter_count() {
        let (vs, _) = build(&AlexNetConfig::paper(1000));
        let count: i64 = vs
            .trainable_variables()
            .iter()
            .map(|t| t.numel() as i64)
            .sum();
        assert_eq!(count, 60_965_224);
    }

    #[test]
    fn stage_shapes_match_the_paper() {
        assert_eq!(stage_sides(224), [55, 27, 13, 6]);
        assert_eq!(stage_sides(MIN_INPUT)[3], 1);
        assert_eq!(stage_sides(MIN_INPUT - 1)[3], 0);
        let config = AlexNetConfig {
            width: 0.25,
            ..AlexNetConfig::paper(10)
        };
        let (_vs, net) = build(&config);
        let x = Tensor::zeros([2, 3, 224, 224], (Kind::Float, Device::Cpu));
        let c1 = net.conv1.forward(&x);
        assert_eq!(c1.size(), [2, 24, 55, 55]);
        let p1 = pool(&lrn(&c1.relu()));
        assert_eq!(p1.size(), [2, 24, 27, 27]);
        let p2 = pool(&net.conv2.forward(&p1));
        assert_eq!(p2.size(), [2, 64, 13, 13]);
        let c5 = net
            .conv5
            .forward(&net.conv4.forward(&net.conv3.forward(&p2)));
        assert_eq!(c5.size(), [2, 64, 13, 13]);
        assert_eq!(pool(&c5).size(), [2, 64, 6, 6]);
        assert_eq!(net.features_t(&x, false).size(), [2, 1024]);
        assert_eq!(net.forward_t(&x, true).size(), [2, 10]);
    }

    #[test]
    fn groups_split_the_columns() {
        let (_vs, net) = build(&AlexNetConfig::paper(1000));
        // 5×5×48 kernels in conv2, 3×3×256 in conv3, 3×3×192 in conv4 and conv5 (§3.5).
        assert_eq!(net.conv2.layer.ws.size(), [256, 48, 5, 5]);
        assert_eq!(net.conv3.layer.ws.size(), [384, 256, 3, 3]);
        assert_eq!(net.conv4.layer.ws.size(), [384, 192, 3, 3]);
        assert_eq!(net.conv5.layer.ws.size(), [256, 192, 3, 3]);
        assert_eq!(net.fc6.ws.size(), [4096, 9216]);
    }

    #[test]
    fn initialization_is_the_papers() {
        tch::manual_seed(1);
        let (_vs, net) = build(&AlexNetConfig::paper(1000));
        let std = f64::try_from(net.fc6.ws.std(true)).expect("scalar");
        assert!((std - 0.01).abs() < 1e-4, "fc6 weight std {std}");
        let bias = |b: &Option<Tensor>| {
            let b = b.as_ref().expect("bias");
            (
                f64::try_from(b.min()).expect("scalar"),
                f64::try_from(b.max()).expect("scalar"),
            )
        };
        assert_eq!(bias(&net.conv1.layer.bs), (0.0, 0.0));
        assert_eq!(bias(&net.conv2.layer.bs), (1.0, 1.0));
        assert_eq!(bias(&net.conv3.layer.bs), (0.0, 0.0));
        assert_eq!(bias(&net.conv4.layer.bs), (1.0, 1.0));
        assert_eq!(bias(&net.conv5.layer.bs), (1.0, 1.0));
        assert_eq!(bias(&net.fc6.bs), (1.0, 1.0));
        assert_eq!(bias(&net.fc7.bs), (1.0, 1.0));
        assert_eq!(bias(&net.fc8.bs), (0.0, 0.0));
        let caffe = AlexNetConfig {
            bias_init: BiasInit::Caffe,
            width: 0.125,
            ..AlexNetConfig::paper(10)
        };
        let (_vs, net) = build(&caffe);
        let (lo, hi) = bias(&net.fc7.bs);
        assert!((lo - 0.1).abs() < 1e-7 && (hi - 0.1).abs() < 1e-7);
    }

    #[test]
    fn kaiming_scales_with_fan_in() {
        tch::manual_seed(2);
        let config = AlexNetConfig {
            init: WeightInit::Kaiming,
            ..AlexNetConfig::paper(1000)
        };
        let (_vs, net) = build(&config);
        // conv2 is grouped: fan-in 48·5·5 = 1200, not 96·5·5.
        for (w, fan_in) in [(&net.conv2.layer.ws, 1200.0), (&net.fc6.ws, 9216.0)] {
            let std = f64::try_from(w.std(true)).expect("scalar");
            let want = (2.0f64 / fan_in).sqrt();
            assert!((std / want - 1.0).abs() < 0.02, "std {std}, want {want}");
        }
    }

    /// The formula of §3.3 as a direct loop, α/n convention.
    fn lrn_reference(
        a: &[f32],
        c: usize,
        hw: usize,
        n: usize,
        alpha: f64,
        beta: f64,
        k: f64,
    ) -> Vec<f32> {
        let mut out = vec![0.0; a.len()];
        for i in 0..c {
            let lo = i.saturating_sub(n / 2);
            let hi = (i + (n - 1) / 2).min(c - 1);
            for p in 0..hw {
                let sum: f64 = (lo..=hi).map(|j| f64::from(a[j * hw + p]).powi(2)).sum();
                let denom = (k + alpha / n as f64 * sum).powf(beta);
                out[i * hw + p] = (f64::from(a[i * hw + p]) / denom) as f32;
            }
        }
        out
    }

    #[test]
    fn lrn_matches_the_formula() {
        tch::manual_seed(7);
        let (c, h, w) = (11, 3, 4);
        // Large activations so the normalisation is far from the identity.
        let a = Tensor::randn([1, c, h, w], (Kind::Float, Device::Cpu)) * 40.0;
        let values: Vec<f32> = a.flatten(0, -1).try_into().expect("f32 values");
        for (n, alpha, beta, k) in [
            (5, 1e-4, 0.75, 2.0),
            (3, 1e-2, 0.5, 1.0),
            (4, 1e-3, 0.75, 2.0),
        ] {
            let got: Vec<f32> = local_response_norm(&a, n, alpha, beta, k)
                .flatten(0, -1)
                .try_into()
                .expect("f32 values");
            let want = lrn_reference(
                &values,
                c as usize,
                (h * w) as usize,
                n as usize,
                alpha,
                beta,
                k,
            );
            let changed = want
                .iter()
                .zip(&values)
                .any(|(x, y)| (x - y).abs() > 1e-2 * y.abs());
            assert!(changed, "n={n}: the test inputs must make LRN do something");
            for (g, r) in got.iter().zip(&want) {
                assert!(
                    (g - r).abs() <= 1e-5 * r.abs().max(1.0),
                    "n={n}: {g} vs {r}"
                );
            }
        }
    }

    #[test]
    fn conv1_std_sets_conv1_alone() {
        tch::manual_seed(4);
        let config = AlexNetConfig {
            init: WeightInit::Kaiming,
            conv1_std: Some(0.01),
            width: 0.25,
            ..AlexNetConfig::paper(10)
        };
        let (_vs, net) = build(&config);
        let std = |w: &Tensor| f64::try_from(w.std(true)).expect("scalar");
        let conv1 = std(&net.conv1.layer.ws);
        assert!((conv1 / 0.01 - 1.0).abs() < 0.03, "conv1 std {conv1}");
        // The rest keep He's σ: conv2 (grouped, ¼ width) has fan-in 12·5·5 = 300.
        let conv2 = std(&net.conv2.layer.ws);
        let he = (2.0f64 / 300.0).sqrt();
        assert!(
            (conv2 / he - 1.0).abs() < 0.03,
            "conv2 std {conv2}, want {he}"
        );
        let vs = nn::VarStore::new(Device::Cpu);
        let bad = AlexNetConfig {
            conv1_std: Some(0.0),
            ..config
        };
        assert_eq!(
            AlexNet::new(&vs.root(), &bad).err(),
            Some(ModelError::BadConv1Std(0.0))
        );
    }

    #[test]
    fn bad_configurations_are_refused() {
        let vs = nn::VarStore::new(Device::Cpu);
        let small = AlexNetConfig {
            input: 62,
            ..AlexNetConfig::paper(10)
        };
        assert_eq!(
            AlexNet::new(&vs.root(), &small).err(),
            Some(ModelError::InputTooSmall(62))
        );
        let one_class = AlexNetConfig::paper(1);
        assert_eq!(
            AlexNet::new(&vs.root(), &one_class).err(),
            Some(ModelError::TooFewClasses(1))
        );
    }
}
