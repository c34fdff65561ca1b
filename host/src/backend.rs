//! The one place that picks a burn [`Device`] from the enabled Cargo features.
//!
//! Library code never names a backend: it takes a `&Device`. Only this cfg ladder does, so one code
//! path serves the CPU (burn-flex, the default) and every GPU feature.

use burn::prelude::Device;

/// Which compute device to train on, as the user names it on the command line.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Default,
    serde::Serialize,
    serde::Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    /// burn-flex on the CPU (always available).
    #[default]
    Cpu,
    /// The first GPU of the compiled-in GPU backend (`cuda`, `vulkan` or `wgpu` feature).
    Gpu,
}

/// The plain (inference) device for `kind`, or an error naming the missing Cargo feature.
pub fn device(kind: DeviceKind) -> Result<Device, String> {
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        DeviceKind::Gpu => gpu_device(),
    }
}

#[cfg(feature = "cuda")]
fn gpu_device() -> Result<Device, String> {
    Ok(Device::cuda(0))
}

#[cfg(all(not(feature = "cuda"), feature = "vulkan"))]
fn gpu_device() -> Result<Device, String> {
    Ok(Device::vulkan(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(all(not(feature = "cuda"), not(feature = "vulkan"), feature = "wgpu"))]
fn gpu_device() -> Result<Device, String> {
    Ok(Device::wgpu(burn::tensor::DeviceKind::DefaultDevice))
}

#[cfg(not(any(feature = "cuda", feature = "vulkan", feature = "wgpu")))]
fn gpu_device() -> Result<Device, String> {
    Err(
        "this tinykd was built without a GPU backend: rebuild with `--features vulkan` \
         (or `wgpu`; `cuda` needs network access beyond the package registries to build)"
            .to_string(),
    )
}
