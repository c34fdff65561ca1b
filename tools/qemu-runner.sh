#!/usr/bin/env bash
# Cargo runner for boards/qemu-mps2-an386: boots a firmware ELF under QEMU with semihosting.
#
#   tools/qemu-runner.sh <elf> [arg...]
#
# Each trailing argument becomes one semihosting argv item (`arg=` in -semihosting-config), so
# `cargo run --release -- model.tkd samples.tks out.tko` hands those paths to the firmware.
# Relative paths are resolved against QEMU's working directory (where cargo was started).
# QEMU exits with the firmware's semihosting exit status; a run longer than QEMU_TIMEOUT
# seconds (default 120) is killed and gives 124, so a fault loop can never hang CI.
#
# Environment:
#   QEMU_BIN       qemu-system-arm binary      (default: qemu-system-arm on PATH)
#   QEMU_TIMEOUT   seconds before the run is killed (default: 120)
#   INSN_PLUGIN    path to libinsncount.so: count executed instructions; the count is
#                  printed on stderr as "insns: N" (see tools/insn-plugin/insncount.c)
#   QEMU_MACHINE   mps2-an386 (default, Cortex-M4) or microbit (Cortex-M0; its SRAM is
#                  enlarged from 16 KiB to 64 KiB so that benchmark models fit)
set -euo pipefail

if [[ $# -lt 1 ]]; then
    echo "usage: $0 <elf> [semihosting arg...]" >&2
    exit 2
fi
elf=$1
shift

qemu=${QEMU_BIN:-qemu-system-arm}
if ! command -v "$qemu" >/dev/null 2>&1; then
    echo "error: $qemu not found; install QEMU 10 (see docs/testing.md or .ci/run)" >&2
    exit 127
fi

# QEMU's option parser ends an item at ',' and reads ',,' as a literal comma.
semihosting="enable=on,target=native"
for arg in "$@"; do
    if [[ $arg =~ [[:space:]] ]]; then
        echo "error: semihosting arguments cannot contain blanks: '$arg'" >&2
        exit 2
    fi
    semihosting+=",arg=${arg//,/,,}"
done

plugin=()
if [[ -n ${INSN_PLUGIN:-} ]]; then
    plugin=(-plugin "$INSN_PLUGIN" -d plugin)
fi

case ${QEMU_MACHINE:-mps2-an386} in
mps2-an386) machine=(-machine mps2-an386 -cpu cortex-m4) ;;
microbit) machine=(-machine microbit -global nrf51-soc.sram-size=0x10000) ;;
*)
    echo "error: unknown QEMU_MACHINE '$QEMU_MACHINE'" >&2
    exit 2
    ;;
esac

exec timeout --kill-after=5 "${QEMU_TIMEOUT:-120}" "$qemu" \
    "${machine[@]}" \
    -nographic -monitor none -serial none \
    -semihosting-config "$semihosting" \
    "${plugin[@]}" \
    -kernel "$elf"
