//! Sets `cfg(tinykd_dsp)` when the target has the Cortex-M DSP extension, which selects the
//! `SMLAD`/`SXTB16` kernels. Stable Rust does not expose Arm target features to `cfg`, so this
//! goes by the target: ARMv7E-M (`thumbv7em-*`: Cortex-M4/M7) always has DSP; any target that
//! reports the `dsp` feature (e.g. `thumbv8m.main` with `-C target-feature=+dsp` on a toolchain
//! that exposes it) counts too.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(tinykd_dsp)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let features = std::env::var("CARGO_CFG_TARGET_FEATURE").unwrap_or_default();
    let arch = std::env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    if arch == "arm" && (target.starts_with("thumbv7em") || features.split(',').any(|f| f == "dsp"))
    {
        println!("cargo::rustc-cfg=tinykd_dsp");
    }
}
