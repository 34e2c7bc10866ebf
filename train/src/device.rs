//! Where the network runs, as the command lines spell it (`--device auto|cpu|cuda`).

use tch::Device;

/// `--device cuda` on a machine (or a libtorch) without CUDA.
#[derive(Debug, thiserror::Error)]
#[error("--device cuda: libtorch sees no CUDA device (driver missing, or a CPU-only libtorch); use --device cpu")]
pub struct NoCuda;

/// Where the network runs.
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
    pub fn device(self) -> Result<Device, NoCuda> {
        Ok(match self {
            DeviceChoice::Auto => Device::cuda_if_available(),
            DeviceChoice::Cpu => Device::Cpu,
            DeviceChoice::Cuda if tch::Cuda::is_available() => Device::Cuda(0),
            DeviceChoice::Cuda => return Err(NoCuda),
        })
    }
}

/// Sets how cuDNN picks its convolution algorithms for a run on `device`: with `benchmark`, by
/// timing the candidates on the first batches of each shape and keeping the fastest (what
/// PyTorch's ImageNet scripts switch on), else by its heuristics. Nothing to set on the CPU.
pub fn configure(device: Device, benchmark: bool) {
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(benchmark);
    }
}
