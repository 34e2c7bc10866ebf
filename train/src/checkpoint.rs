//! One-file checkpoints: model weights, momentum buffers, the training set's statistics and the
//! training state (epoch, step, learning rate, best error, schedule counters, seed) in a single
//! libtorch archive, written to a temporary file and renamed into place, so a crash never leaves a
//! half-written checkpoint. Randomness needs no saved generator state: the engine draws from
//! (seed, epoch, record) and dropout is reseeded from (seed, epoch, step) before every step.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use alexpipe::Stats;
use tch::{nn::VarStore, Device, Kind, Tensor};

use crate::metrics::EpochTotals;
use crate::model::AlexNetConfig;
use crate::sgd::Sgd;
use crate::train::InputNorm;

/// Version of the archive layout.
const FORMAT: u32 = 1;

/// Why a checkpoint cannot be written or used.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// libtorch could not read or write the file.
    #[error("{path}: {message}")]
    Torch {
        /// The checkpoint.
        path: PathBuf,
        /// libtorch's message, without its C++ backtrace.
        message: String,
    },
    /// Renaming the finished file into place failed.
    #[error("{path}: {source}")]
    Io {
        /// The checkpoint.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not one of ours, or does not match the model.
    #[error("{path}: {reason}")]
    Invalid {
        /// The checkpoint.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
}

/// The training set's statistics without the mean image (stored as a tensor).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct StatsMeta {
    images: u64,
    size: u32,
    channel_mean: [f64; 3],
    channel_std: [f64; 3],
    covariance: [[f64; 3]; 3],
    eigvals: [f64; 3],
    eigvecs: [[f64; 3]; 3],
}

/// The schedule and counters of a run: everything but tensors.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    /// The network.
    pub model: AlexNetConfig,
    /// Class names, index = label (from the training dataset's manifest).
    pub classes: Vec<String>,
    /// Input normalisation the network was trained with.
    pub normalize: InputNorm,
    /// Seed of the engine's draws and of dropout.
    pub seed: u64,
    /// The epoch in progress (0-based); with `step == 0` the next epoch to start.
    pub epoch: u64,
    /// Batches of `epoch` already trained.
    pub step: u64,
    /// Learning rate (ε).
    pub lr: f64,
    /// Lowest validation top-1 error so far, and its epoch.
    pub best: Option<(f64, u64)>,
    /// Epochs since the validation error last improved.
    pub epochs_since_best: u64,
    /// Times the learning rate has been divided.
    pub lr_drops: u32,
    /// The in-progress epoch's sums, so a resumed epoch reports all of its batches.
    pub partial: EpochTotals,
}

/// What a checkpoint restores.
#[derive(Debug)]
pub struct Restored {
    /// Counters and schedule.
    pub state: TrainState,
    /// The training set's statistics (normalisation of every later input).
    pub stats: Stats,
    /// Model weights by variable name.
    weights: HashMap<String, Tensor>,
    /// Momentum buffers by variable name.
    velocities: HashMap<String, Tensor>,
}

fn torch_err(path: &Path) -> impl FnOnce(tch::TchError) -> CheckpointError + '_ {
    move |e| {
        let full = e.to_string();
        let message = full
            .split("\nException raised from")
            .next()
            .unwrap_or(&full)
            .trim()
            .to_string();
        CheckpointError::Torch {
            path: path.to_path_buf(),
            message,
        }
    }
}

/// The first bytes of every libtorch archive (a ZIP file).
const ARCHIVE_MAGIC: &[u8; 4] = b"PK\x03\x04";

/// Writes a checkpoint atomically.
pub fn save(
    path: &Path,
    vs: &VarStore,
    sgd: &Sgd,
    stats: &Stats,
    state: &TrainState,
) -> Result<(), CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    let meta = serde_json::json!({
        "format": FORMAT,
        "state": state,
        "stats": StatsMeta {
            images: stats.images,
            size: stats.size,
            channel_mean: stats.channel_mean,
            channel_std: stats.channel_std,
            covariance: stats.covariance,
            eigvals: stats.eigvals,
            eigvecs: stats.eigvecs,
        },
    });
    let meta = serde_json::to_vec(&meta).map_err(|e| invalid(e.to_string()))?;
    let side = stats.size as i64;
    let mut named: Vec<(String, Tensor)> = vec![
        ("meta".into(), Tensor::from_slice(&meta)),
        (
            "stats/mean_image".into(),
            Tensor::from_slice(&stats.mean_image).view([side, side, 3]),
        ),
    ];
    for (name, w) in vs.variables() {
        named.push((format!("model/{name}"), w.to_device(Device::Cpu)));
    }
    for (name, v) in sgd.velocities() {
        named.push((format!("velocity/{name}"), v.to_device(Device::Cpu)));
    }
    let tmp = path.with_extension(format!("partial-{}", std::process::id()));
    Tensor::save_multi(&named, &tmp).map_err(torch_err(&tmp))?;
    std::fs::rename(&tmp, path).map_err(|source| CheckpointError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads a checkpoint written by [`save`].
pub fn load(path: &Path) -> Result<Restored, CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    // Missing and foreign files get a plain message before libtorch sees them.
    let mut head = Vec::with_capacity(4);
    std::fs::File::open(path)
        .and_then(|f| f.take(4).read_to_end(&mut head))
        .map_err(|source| CheckpointError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if head != ARCHIVE_MAGIC {
        return Err(invalid(
            "not a checkpoint (not a libtorch archive): give the checkpoint.ot or best.ot that \
             `train` wrote in its run directory"
                .into(),
        ));
    }
    let tensors = Tensor::load_multi(path).map_err(torch_err(path))?;
    let mut weights = HashMap::new();
    let mut velocities = HashMap::new();
    let (mut meta, mut mean_image) = (None, None);
    for (name, t) in tensors {
        if let Some(n) = name.strip_prefix("model/") {
            weights.insert(n.to_string(), t);
        } else if let Some(n) = name.strip_prefix("velocity/") {
            velocities.insert(n.to_string(), t);
        } else if name == "meta" {
            meta = Some(t);
        } else if name == "stats/mean_image" {
            mean_image = Some(t);
        }
    }
    let not_ours = || invalid("not an alexpipe training checkpoint (no `meta` entry)".into());
    let meta = meta.ok_or_else(not_ours)?;
    let bytes: Vec<u8> = meta.try_into().map_err(|_| not_ours())?;
    let meta: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| not_ours())?;
    if meta["format"] != FORMAT {
        return Err(invalid(format!(
            "checkpoint format {} is not {FORMAT}: written by another alexpipe version",
            meta["format"]
        )));
    }
    let state: TrainState = serde_json::from_value(meta["state"].clone())
        .map_err(|e| invalid(format!("bad training state: {e}")))?;
    let s: StatsMeta = serde_json::from_value(meta["stats"].clone())
        .map_err(|e| invalid(format!("bad statistics: {e}")))?;
    let mean_image = mean_image.ok_or_else(|| invalid("no mean image".into()))?;
    let side = i64::from(s.size);
    if mean_image.size() != [side, side, 3] || mean_image.kind() != Kind::Float {
        return Err(invalid(format!(
            "mean image of shape {:?}, expected [{side}, {side}, 3]",
            mean_image.size()
        )));
    }
    let mean_image: Vec<f32> = mean_image
        .flatten(0, -1)
        .try_into()
        .map_err(|_| invalid("unreadable mean image".into()))?;
    let stats = Stats {
        images: s.images,
        size: s.size,
        mean_image,
        channel_mean: s.channel_mean,
        channel_std: s.channel_std,
        covariance: s.covariance,
        eigvals: s.eigvals,
        eigvecs: s.eigvecs,
    };
    Ok(Restored {
        state,
        stats,
        weights,
        velocities,
    })
}

impl Restored {
    /// Copies the saved weights into `vs` (built from `state.model`); every variable must match.
    pub fn load_weights(&mut self, path: &Path, vs: &mut VarStore) -> Result<(), CheckpointError> {
        let invalid = |reason: String| CheckpointError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let mut saved = std::mem::take(&mut self.weights);
        for (name, mut w) in vs.variables() {
            let s = saved
                .remove(&name)
                .ok_or_else(|| invalid(format!("no weights for `{name}`")))?;
            if s.size() != w.size() {
                return Err(invalid(format!(
                    "`{name}` has shape {:?} in the checkpoint, {:?} in the model",
                    s.size(),
                    w.size()
                )));
            }
            tch::no_grad(|| w.copy_(&s));
        }
        Ok(())
    }

    /// Restores the momentum buffers into `sgd`.
    pub fn load_velocities(&mut self, path: &Path, sgd: &mut Sgd) -> Result<(), CheckpointError> {
        sgd.load_velocities(std::mem::take(&mut self.velocities))
            .map_err(|reason| CheckpointError::Invalid {
                path: path.to_path_buf(),
                reason,
            })
    }
}
