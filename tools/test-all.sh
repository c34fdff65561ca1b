#!/usr/bin/env bash
# The one test command: every check CI runs, cheapest first, stopping at the first failure.
#
#   tools/test-all.sh
#
# Installs what it needs first (tools/install-tools.sh: QEMU 10, the Rust targets, llvm-tools,
# dataset-fashion-mnist; idempotent, a few seconds when all is there), so it works as is on a
# fresh machine. What each step covers is in docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."

tools/install-tools.sh

board=boards/qemu-mps2-an386
step() {
    printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"
}

step "format"
cargo fmt --all --check
cargo fmt --manifest-path "$board/Cargo.toml" --check
cargo fmt --manifest-path device/kernel-tests/Cargo.toml --check

# --release: clippy's build scripts and proc macros are then the very ones the release test
# build below reuses, instead of a second, debug set.
step "clippy (workspace)"
cargo clippy --workspace --all-targets --release -- -D warnings
step "clippy (firmware, thumbv7em-none-eabihf)"
(cd "$board" && cargo clippy --release -- -D warnings)
step "clippy (kernel-tests firmware, thumbv7em-none-eabihf and thumbv6m-none-eabi)"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
    (cd device/kernel-tests && cargo clippy -q --release --target "$target" -- -D warnings)
done

# Proof that the device-side crates are no_std without an allocator: these targets have no std
# at all (thumbv6m has no atomic CAS either), so any std or alloc in the graph fails to build.
step "no_std builds of tinykd-format and tinykd-device"
for target in thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
    for features in "" "defmt"; do
        echo "  $target ${features:-(no features)}"
        cargo build -q -p tinykd-device --target "$target" --no-default-features \
            ${features:+--features "$features"}
    done
done

# The fast kernels against the portable reference on 48 random models (odd channel counts,
# padding, strides, zero points) and the benchmark layers, on the real instructions: the DSP kernels on the Cortex-M4
# (mps2-an386) and the scalar ones on the Cortex-M0 (microbit). About 20 s with the builds.
step "fast kernels vs reference in QEMU (Cortex-M4 DSP, Cortex-M0 scalar)"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
    (cd device/kernel-tests && cargo run -q --release --target "$target" -- check)
done

step "rustdoc (tinykd-format, tinykd-device), warnings denied"
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps -p tinykd-format -p tinykd-device

# The host crate trains with burn and is only bearable optimised; the workspace's release
# profile is set up for that. Includes the QEMU end-to-end test, which builds the firmware
# itself (into target/boards) and boots it.
step "tests (workspace, release)"
cargo test --workspace --release

step "firmware build and size"
(cd "$board" && cargo build --release)
llvm_bin=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin
"$llvm_bin/llvm-size" -A target/boards/thumbv7em-none-eabihf/release/qemu-mps2-an386 |
    grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss|\.uninit|Total)'

# The GPU path must keep compiling (and building offline from the package registries alone);
# there is no GPU in CI to run it on. `cuda` is never enabled: burn-cuda's build downloads an
# LLVM bundle from outside the registries.
step "GPU backend compiles (tinykd --features vulkan)"
cargo check -q --release -p tinykd --features vulkan

step "all checks passed"
