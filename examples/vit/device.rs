//! `--device`: which burn backend trains, and where.

use burn::prelude::Device;
use serde::Serialize;

/// A burn device by name. Each non-default one needs the cargo feature of the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DeviceName {
    /// burn's pure-Rust CPU backend (always built).
    Flex,
    /// burn's NdArray CPU backend (deprecated in burn 0.22; feature `ndarray`).
    Ndarray,
    /// wgpu: Vulkan, Metal or DX12, or Mesa's lavapipe on a machine without a GPU (feature
    /// `wgpu`).
    Wgpu,
    /// CUDA, one GPU per local rank (feature `cuda`).
    Cuda,
}

impl DeviceName {
    /// The device for a process that is `local_rank` on its node (GPUs are assigned by it).
    ///
    /// # Errors
    /// The backend is not compiled in: the message names the cargo feature to add.
    pub fn device(self, local_rank: usize) -> Result<Device, String> {
        let missing = |feature: &str| {
            Err(format!(
                "--device {feature} is not compiled in: rebuild with `--features {feature}`"
            ))
        };
        let _ = local_rank; // only GPU backends use it
        match self {
            DeviceName::Flex => Ok(Device::flex()),
            #[cfg(feature = "ndarray")]
            #[allow(deprecated)] // still the user's choice; flex replaces it
            DeviceName::Ndarray => Ok(Device::ndarray()),
            #[cfg(not(feature = "ndarray"))]
            DeviceName::Ndarray => missing("ndarray"),
            #[cfg(feature = "wgpu")]
            DeviceName::Wgpu => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
            #[cfg(not(feature = "wgpu"))]
            DeviceName::Wgpu => missing("wgpu"),
            #[cfg(feature = "cuda")]
            DeviceName::Cuda => Ok(Device::cuda(ezpz_burn::gpu_index(local_rank))),
            #[cfg(not(feature = "cuda"))]
            DeviceName::Cuda => missing("cuda"),
        }
    }
}
