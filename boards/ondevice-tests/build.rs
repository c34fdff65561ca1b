//! Links the memory map of the QEMU machine that runs this target (or `TINYKD_MEMORY_X`, a
//! real board's `memory.x`), and embeds the built-in test models with the host's outputs
//! (`tinykd-board-build`).
use std::env;

/// Samples per model: the microbit has 256 KiB of flash for three models and their inputs.
fn samples(target: &str) -> usize {
    if target.starts_with("thumbv6m") {
        16
    } else {
        32
    }
}

fn main() {
    let target = env::var("TARGET").expect("cargo sets TARGET");
    println!("cargo:rerun-if-env-changed=TINYKD_MEMORY_X");
    let memory_x = env::var("TINYKD_MEMORY_X").unwrap_or_else(|_| {
        let machine = match target.as_str() {
            t if t.starts_with("thumbv8m") => "mps2-an505",
            t if t.starts_with("thumbv6m") => "microbit",
            t if t.starts_with("riscv32") => "riscv-virt",
            _ => "mps2-an386",
        };
        format!("memory/{machine}.x")
    });
    let defmt: &[&str] = if env::var_os("CARGO_FEATURE_HW").is_some() {
        &["defmt.x"]
    } else {
        &[]
    };
    tinykd_board_build::link_memory_x(&memory_x, defmt);
    // Only the test targets link the harness (embedded-test is a dev-dependency).
    println!("cargo:rustc-link-arg-tests=-Tembedded-test.x");
    // DWT's cycle counter exists on the v7-M and v8-M mainline cores, not on the M0.
    println!("cargo::rustc-check-cfg=cfg(has_dwt)");
    if target.starts_with("thumbv7em") || target.starts_with("thumbv8m.main") {
        println!("cargo:rustc-cfg=has_dwt");
    }
    println!("cargo::rustc-check-cfg=cfg(rust_analyzer)");
    println!("cargo:rerun-if-changed=build.rs");
    tinykd_board_build::embed_builtins(samples(&target));
}
