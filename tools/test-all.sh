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
# The real boards' firmware (each its own workspace, all built into target/boards).
real_boards=(nrf52840-dk rp-pico nucleo-l4r5zi esp32c3)
step() {
    printf '\n==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"
}

step "format"
cargo fmt --all --check
cargo fmt --manifest-path "$board/Cargo.toml" --check
cargo fmt --manifest-path device/kernel-tests/Cargo.toml --check
for crate in common build ondevice-tests "${real_boards[@]}"; do
    cargo fmt --manifest-path "boards/$crate/Cargo.toml" --check
done

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

# The board crates' shared code (host lints and unit tests) and the on-device tests. The real
# boards' firmware is not linted here: checking four HALs a second time (clippy cannot reuse the
# release build's artefacts) would double their build time; tools/board-sizes.sh fails on any
# compiler warning in their own code instead.
step "clippy (boards: common, build, on-device tests)"
for crate in common build; do
    (cd "boards/$crate" && cargo clippy -q --all-targets --target-dir ../../target/boards-host -- -D warnings)
done
for crate in common build; do
    (cd "boards/$crate" && cargo test -q --target-dir ../../target/boards-host)
done
(cd boards/ondevice-tests && cargo clippy -q --release --tests -- -D warnings)

# Proof that the device-side crates are no_std without an allocator: these targets have no std
# at all (thumbv6m has no atomic CAS either), so any std or alloc in the graph fails to build.
step "no_std builds of tinykd-format, tinykd-device and tinykd-lis3dh"
for target in thumbv6m-none-eabi thumbv7em-none-eabihf riscv32imc-unknown-none-elf; do
    for features in "" "defmt"; do
        echo "  $target ${features:-(no features)}"
        cargo build -q -p tinykd-device --target "$target" --no-default-features \
            ${features:+--features "$features"}
        cargo build -q -p tinykd-lis3dh --target "$target" --no-default-features \
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
RUSTDOCFLAGS="-D warnings" cargo doc -q --no-deps -p tinykd-format -p tinykd-device -p tinykd-lis3dh

# The host crate trains with burn and is only bearable optimised; the workspace's release
# profile is set up for that. Includes the QEMU end-to-end test, which builds the firmware
# itself (into target/boards) and boots it, and the stream replay test (tests/stream_replay.rs:
# a recorded stream through tinykd_device::Stream, host vs the `replay` firmware, every window).
step "tests (workspace, release)"
cargo test --workspace --release

# Issue 7 end to end: a HAPT student that reads only the accelerometer, distilled with SK-KD
# from a teacher on all six channels (one short epoch each), exported with its input
# normalization and the start of a real test-subject recording, replayed sample by sample
# through tinykd_device::Stream on the host and in the `replay` firmware: every window equal.
step "sensor node: trained HAPT student, real recorded stream, host = QEMU"
sensor_dir=target/tmp/sensor-e2e
rm -rf "$sensor_dir"
tinykd=target/release/tinykd
small=(--limit 512 --test-limit 128 --set data.batch_size=32 --epochs 1)
"$tinykd" train --config configs/sensors/hapt-teacher.toml --out "$sensor_dir/teacher" "${small[@]}" >/dev/null
"$tinykd" distill --teacher "$sensor_dir/teacher" --config configs/sensors/hapt-student.toml \
    --set 'distill.method.method="sk"' --out "$sensor_dir/student" "${small[@]}" >/dev/null
"$tinykd" quantize --student "$sensor_dir/student" --out "$sensor_dir/int8" --qat-epochs 0 \
    --set data.train_limit=512 >/dev/null
"$tinykd" export "$sensor_dir/int8" --no-test-set --recording "$sensor_dir/stream.tkr" \
    --recording-steps 1600
TINYKD_STREAM_BLOB=$PWD/$sensor_dir/int8/student.tkd TINYKD_STREAM=$PWD/$sensor_dir/stream.tkr \
    cargo test -q --release -p tinykd-tests --test stream_replay -- --nocapture

step "firmware build and size"
(cd "$board" && cargo build --release)
llvm_bin=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin
"$llvm_bin/llvm-size" -A target/boards/thumbv7em-none-eabihf/release/qemu-mps2-an386 |
    grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss|\.uninit|Total)'

# The built-in test models (int8 CNN, int8 and binary students) on every emulated core, each
# output byte against tinykd-device's on the host (computed by the build script): one QEMU boot
# per test (tools/qemu-test-runner.py; on a board, probe-rs does the same, see docs/boards.md).
step "on-device accuracy tests in QEMU: Cortex-M4, M7, M33, M0, RISC-V"
for run in "mps2-an386 thumbv7em-none-eabihf" "mps2-an500 thumbv7em-none-eabihf" \
    "mps2-an505 thumbv8m.main-none-eabihf" "microbit thumbv6m-none-eabi" \
    "virt riscv32imc-unknown-none-elf"; do
    read -r machine target <<<"$run"
    (cd boards/ondevice-tests && QEMU_MACHINE=$machine cargo test -q --release --target "$target")
done

# Every real board's firmware builds for its target (for both students); flash and RAM.
step "board firmware builds and sizes (nRF52840-DK, Pico, NUCLEO-L4R5ZI, ESP32-C3)"
tools/board-sizes.sh

# The GPU path must keep compiling (and building offline from the package registries alone);
# there is no GPU in CI to run it on. `cuda` is never enabled: burn-cuda's build downloads an
# LLVM bundle from outside the registries.
step "GPU backend compiles (tinykd --features vulkan)"
cargo check -q --release -p tinykd --features vulkan

step "all checks passed"
