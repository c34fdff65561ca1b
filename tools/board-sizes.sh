#!/usr/bin/env bash
# Builds every real-board firmware (boards/*: nRF52840-DK, Raspberry Pi Pico, NUCLEO-L4R5ZI,
# ESP32-C3) for its target, once per student, and prints their flash and static RAM.
#
#   tools/board-sizes.sh [model...]     # default: int8-student binary-student
#
# A model is a built-in test model (TINYKD_MODEL) or a blob's path (TINYKD_BLOB), e.g.
# `tools/board-sizes.sh runs/quickstart/student-kd-qat/student.tkd`.
#
# Each firmware embeds the model with one test sample (TINYKD_SAMPLES_LIMIT=1; with none, LTO
# proves that the kernels are never called and drops them), so the figures are what a
# deployment of that blob costs, plus 794 B for the sample and its outputs: the runtime, the
# HAL's start-up, the defmt/RTT log and the blob in flash; the arena (sized from the blob's
# memory plan) and the log buffer in RAM.
# The stack is the rest of RAM and is not counted (the firmware logs its high-water mark).
#   flash = .vector_table + .boot2 + .text + .rodata + .data (+ ESP32-C3: .trap, .rwtext, app descriptor)
#   RAM   = .data + .bss + .uninit (+ ESP32-C3: .noinit and the IRAM taken by .trap/.rwtext)
#
# Last row: the nRF52840-DK's accelerometer streaming example (examples/accel_stream.rs: LIS3DH
# over I2C at 50 Hz into tinykd_device::Stream), with its streaming model (TINYKD_STREAM_BLOB,
# default the conv1d stream test model); RAM there is the ring buffer, the arena and the log.
set -euo pipefail
cd "$(dirname "$0")/.."

models=("$@")
[[ ${#models[@]} -gt 0 ]] || models=(int8-student binary-student)
llvm_bin=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin

boards=(
    "nrf52840-dk thumbv7em-none-eabihf nRF52840 Cortex-M4F"
    "rp-pico thumbv6m-none-eabi RP2040 Cortex-M0+"
    "nucleo-l4r5zi thumbv7em-none-eabihf STM32L4R5ZI Cortex-M4F"
    "esp32c3 riscv32imc-unknown-none-elf ESP32-C3 RV32IMC"
)

# Fails on warnings in the firmware's own code or in tinykd's crates (crates.io dependencies
# are capped by cargo); the build scripts' `embedded …` notes are not warnings.
check_warnings() {
    local board=$1 log=$2
    if grep -E '^warning' <<<"$log" | grep -vqE "^warning: tinykd-[a-z0-9-]+@[0-9.]+: embedded "; then
        echo "$log" >&2
        echo "error: warnings in the $board firmware" >&2
        exit 1
    fi
}

# Prints "flash ram" of an ELF (the sections in the header).
elf_sizes() {
    "$llvm_bin/llvm-size" -A "$1" | awk '
        $1 ~ /^\.(vector_table|boot2|text|rodata|gnu\.sgstubs|flash\.appdesc|trap|rwtext)$/ { flash += $2 }
        $1 == ".data" { flash += $2; ram += $2 }
        $1 ~ /^\.(bss|uninit|noinit|rwdata_dummy)$/ { ram += $2 }
        END { print flash + 0, ram + 0 }'
}

printf '| board | core | model | blob B | arena B | flash B | static RAM B |\n|---|---|---|---|---|---|---|\n'
for entry in "${boards[@]}"; do
    read -r board target chip core <<<"$entry"
    for model in "${models[@]}"; do
        if [[ $model == *.tkd ]]; then
            source=(TINYKD_BLOB="$(realpath "$model")")
        else
            source=(TINYKD_MODEL="$model")
        fi
        log=$(cd "boards/$board" && env "${source[@]}" TINYKD_SAMPLES_LIMIT=1 \
            cargo build --release 2>&1) || { echo "$log" >&2; exit 1; }
        check_warnings "$board" "$log"
        # The firmware's own note is the last one (the streaming example's comes first).
        blob=$(sed -n 's/.*embedded [^:]*: blob \([0-9]*\) B.*/\1/p' <<<"$log" | tail -n 1)
        arena=$(sed -n 's/.*embedded [^:]*: blob [0-9]* B, arena \([0-9]*\) B.*/\1/p' <<<"$log" | tail -n 1)
        read -r flash ram < <(elf_sizes "target/boards/$target/release/tinykd-$board")
        printf '| %s | %s (%s) | %s | %s | %s | %s | %s |\n' \
            "$board" "$chip" "$core" "$(basename "$model")" "${blob:-?}" "${arena:-?}" "$flash" "$ram"
    done
done

# The accelerometer streaming example (built, never run here: no board).
log=$(cd boards/nrf52840-dk && TINYKD_SAMPLES_LIMIT=1 cargo build --release --example accel_stream 2>&1) ||
    { echo "$log" >&2; exit 1; }
check_warnings "nrf52840-dk accel_stream" "$log"
stream=$(sed -n 's/.*embedded stream model \([^:]*\): blob.*/\1/p' <<<"$log" | tail -n 1)
blob=$(sed -n 's/.*embedded stream model [^:]*: blob \([0-9]*\) B.*/\1/p' <<<"$log" | tail -n 1)
arena=$(sed -n 's/.*embedded stream model [^:]*: blob [0-9]* B, arena \([0-9]*\) B.*/\1/p' <<<"$log" | tail -n 1)
read -r flash ram < <(elf_sizes target/boards/thumbv7em-none-eabihf/release/examples/accel_stream)
printf '| nrf52840-dk accel_stream | nRF52840 (Cortex-M4F) | %s (stream) | %s | %s | %s | %s |\n' \
    "${stream:-?}" "${blob:-?}" "${arena:-?}" "$flash" "$ram"
