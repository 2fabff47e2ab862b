//! Picking a burn device by name, as examples and tests do.

use burn::tensor::Device;

use crate::{Error, Result};

/// The device names this build can open, for help texts.
pub fn device_names() -> Vec<&'static str> {
    let mut names = vec!["flex"];
    if cfg!(feature = "ndarray") {
        names.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        names.push("wgpu");
    }
    if cfg!(feature = "cuda") {
        names.push("cuda");
    }
    names
}

/// A (non-autodiff) device by name: `flex` (burn's pure-Rust CPU backend, always built),
/// `ndarray`, `wgpu` (the default adapter: a GPU, or Mesa's lavapipe on a machine without one)
/// and `cuda` (device 0) when the matching cargo feature is on.
///
/// # Errors
/// [`Error::Device`] for a name this build does not offer.
pub fn device_by_name(name: &str) -> Result<Device> {
    match name {
        "flex" => Ok(Device::flex()),
        // Deprecated by burn 0.22 in favour of flex, still what the test suite asks for.
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(burn::tensor::DeviceIndex::Default)),
        _ => Err(Error::Device {
            name: name.to_string(),
            hint: format!("this build offers {}", device_names().join(", ")),
        }),
    }
}

/// The GPU index a process that is `local_rank` on its node opens: 0 when
/// `CUDA_VISIBLE_DEVICES` lists exactly one device (the launcher gave this rank its own),
/// otherwise `local_rank` modulo the number of listed devices, or `local_rank` when the
/// variable is unset or empty.
pub fn gpu_index(local_rank: usize) -> usize {
    gpu_index_with(
        local_rank,
        std::env::var("CUDA_VISIBLE_DEVICES").ok().as_deref(),
    )
}

fn gpu_index_with(local_rank: usize, visible: Option<&str>) -> usize {
    let listed = visible
        .map(|v| v.split(',').filter(|d| !d.trim().is_empty()).count())
        .unwrap_or(0);
    match listed {
        0 => local_rank,
        n => local_rank % n,
    }
}

/// [`device_by_name`] for the process that is `local_rank` on its node: `cuda` opens
/// [`gpu_index`]`(local_rank)`; the others ignore the rank (wgpu opens its default adapter).
///
/// # Errors
/// [`Error::Device`] for a name this build does not offer.
pub fn device_for_local_rank(name: &str, local_rank: usize) -> Result<Device> {
    let index = gpu_index(local_rank);
    let _ = index; // only GPU backends use it
    match name {
        #[cfg(feature = "cuda")]
        "cuda" => Ok(Device::cuda(index)),
        other => device_by_name(other),
    }
}

/// The name of this build's CPU device: `ndarray` when the `ndarray` feature is on (what the
/// test suite runs on), `flex` otherwise.
pub fn cpu_device_name() -> &'static str {
    if cfg!(feature = "ndarray") {
        "ndarray"
    } else {
        "flex"
    }
}

/// This build's CPU device (see [`cpu_device_name`]).
pub fn cpu_device() -> Device {
    device_by_name(cpu_device_name()).unwrap_or_else(|_| Device::flex())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_visible_gpu_per_rank_is_device_zero() {
        assert_eq!(gpu_index_with(3, Some("5")), 0);
        assert_eq!(gpu_index_with(3, Some("0,1")), 1);
        assert_eq!(gpu_index_with(2, Some("0,1,2,3")), 2);
        assert_eq!(gpu_index_with(2, None), 2);
        assert_eq!(gpu_index_with(2, Some("")), 2);
        assert!(device_for_local_rank("flex", 3).is_ok());
    }

    #[test]
    fn unknown_names_say_what_is_offered() {
        let err = device_by_name("tpu").unwrap_err().to_string();
        assert!(err.contains("`tpu`") && err.contains("flex"), "{err}");
    }

    #[test]
    fn the_cpu_device_follows_the_features() {
        let device = format!("{:?}", cpu_device()).to_lowercase();
        let expected = if cfg!(feature = "ndarray") {
            "ndarray"
        } else {
            "flex"
        };
        assert_eq!(cpu_device_name(), expected);
        assert!(device.contains(expected), "{device}");
    }
}
