#!/usr/bin/env bash
# Instruction counts of the fast int8 kernels vs the portable reference kernels, in QEMU with the
# insn-count plugin (issue 10), printed as Markdown:
#
#   tools/bench-device.sh            # Cortex-M4 (mps2-an386) and Cortex-M0 (microbit)
#   tools/bench-device.sh bstudent istudent   # only these rows (no flash table);
#   BENCH_CORES=m4 tools/bench-device.sh ...  # only the Cortex-M4 (m0: only the Cortex-M0)
# Rows marked † ran in a benchmark-only firmware (build.rs TINYKD_BENCH_ONLY): models that do not
# fit the microbit's flash next to the check models.
#
# Per layer: MACs, executed instructions of one inference with the fast kernels and with the
# portable ones, instructions per MAC, speed-up, and the arena with and without the scratch plan.
# Each count is `insns(run) − insns(load)`: the same firmware (device/kernel-tests), the same
# model in flash, once loading it and running it, once only loading it (validation cancels).
# Then the flash the fast kernels add: llvm-size of device/size-probe built with and without the
# `portable` feature. Needs what tools/install-tools.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

plugin=tools/insn-plugin/libinsncount.so
if [[ ! -f $plugin || tools/insn-plugin/insncount.c -nt $plugin ]]; then
    gcc -shared -fPIC -O2 -Wall -Wextra -DPLUGIN_API=2 -o "$plugin" tools/insn-plugin/insncount.c
fi
llvm_bin=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin

# B0, B1, bstudent, istudent, btrained: the binary layers and students of docs/binary-kernels.md
# (MACs of the binary ones are binary MACs; istudent is not in the microbit firmware: flash);
# bs1..bs5 / is1..is5: the students' first 1..5 ops (differences: the per-layer split).
layers=(L1 L2 L3 L4 L5a L5b student C1 C2 C3 B0 B1 bs1 bs2 bs3 bs4 bs5 bstudent btrained is1 is2 is3 is4 is5 istudent)
only_rows=0
if [[ $# -gt 0 ]]; then
    layers=("$@")
    only_rows=1
fi
cores=${BENCH_CORES:-m4,m0}

count() { # elf machine layer mode -> "insns line" / "bench line" (a layer this firmware lacks
    # exits non-zero with "unknown layer", one too large for its RAM with "does not fit")
    INSN_PLUGIN=$root/$plugin QEMU_MACHINE=$2 tools/qemu-runner.sh "$1" bench "$3" "$4" 2>&1 || true
}

row() { # elf machine layer [mark] -> one table row; returns 3 if the firmware lacks the layer
    local elf=$1 machine=$2 layer=$3 mark=${4:-}
    local out load fast port macs arena arena0
    out=$(count "$elf" "$machine" "$layer" load)
    if grep -q 'does not fit' <<<"$out"; then
        echo "| $layer | | (arena does not fit this machine's RAM) | | | | | | |"
        return 0
    fi
    if grep -q 'unknown layer' <<<"$out"; then
        return 3
    fi
    load=$(sed -n 's/^insns: //p' <<<"$out")
    macs=$(sed -n 's/.* macs \([0-9]*\) .*/\1/p' <<<"$out")
    arena=$(sed -n 's/.* arena \([0-9]*\) .*/\1/p' <<<"$out")
    arena0=$(sed -n 's/.* arena_without_scratch \([0-9]*\) .*/\1/p' <<<"$out")
    fast=$(( $(count "$elf" "$machine" "$layer" fast | sed -n 's/^insns: //p') - load ))
    port=$(( $(count "$elf" "$machine" "$layer" port | sed -n 's/^insns: //p') - load ))
    awk -v l="$layer$mark" -v m="$macs" -v f="$fast" -v p="$port" -v a="$arena" -v a0="$arena0" \
        'BEGIN { printf "| %s | %d | %d | **%.2f** | %d | %.2f | %.1f× | %d B | %d B |\n", l, m, f, f / m, p, p / m, p / f, a, a0 }'
}

table() { # target machine core
    local target=$1 machine=$2 core=$3
    (cd device/kernel-tests && cargo build -q --release --target "$target")
    local elf=target/kernel-tests/$target/release/tinykd-kernel-tests
    echo
    echo "### $core (\`$machine\`, $target, kernels: $(count "$elf" "$machine" L5b load | sed -n 's/.* kernels \([a-z]*\) .*/\1/p'))"
    echo
    echo "| layer | MACs | fast: insns | insns/MAC | portable: insns | insns/MAC | speed-up | arena (scratch plan) | arena (no scratch) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    local missing=()
    for layer in "${layers[@]}"; do
        row "$elf" "$machine" "$layer" || missing+=("$layer")
    done
    if [[ ${#missing[@]} -gt 0 ]]; then
        # Models that do not fit this target's flash next to everything else: benchmark-only
        # firmware with just them (build.rs, TINYKD_BENCH_ONLY), four models per image (all of
        # them at once overflow the microbit's flash), marked †.
        local i
        for ((i = 0; i < ${#missing[@]}; i += 4)); do
            local batch=("${missing[@]:i:4}")
            (cd device/kernel-tests &&
                TINYKD_BENCH_ONLY="${batch[*]}" cargo build -q --release --target "$target")
            for layer in "${batch[@]}"; do
                row "$elf" "$machine" "$layer" " †" ||
                    echo "| $layer | | (not in this target's firmware) | | | | | | |"
            done
        done
        (cd device/kernel-tests && cargo build -q --release --target "$target")
    fi
}

echo "## Instructions per inference (QEMU 10 TCG insn-count plugin), $(date -u +%Y-%m-%d)"
echo
echo "Command: \`tools/bench-device.sh\` (rustc $(rustc -vV | sed -n 's/^release: //p'), $(qemu-system-arm --version | head -n 1))."
[[ $cores == *m4* ]] && table thumbv7em-none-eabihf mps2-an386 "Cortex-M4"
[[ $cores == *m0* ]] && table thumbv6m-none-eabi microbit "Cortex-M0"
[[ $only_rows == 1 ]] && exit 0

echo
echo "## Flash: device/size-probe (load + validate + run + argmax), llvm-size"
echo
echo "| target | kernels | .text | .rodata |"
echo "|---|---|---:|---:|"
for target in thumbv7em-none-eabihf thumbv6m-none-eabi; do
    for variant in fast portable; do
        features=()
        [[ $variant == portable ]] && features=(--features tinykd-device/portable)
        (cd device/size-probe && cargo build -q --release --target "$target" "${features[@]}")
        elf=target/$target/release/tinykd-size-probe
        text=$("$llvm_bin/llvm-size" -A "$elf" | awk '$1 == ".text" { print $2 }')
        rodata=$("$llvm_bin/llvm-size" -A "$elf" | awk '$1 == ".rodata" { print $2 }')
        echo "| $target | $variant | $text B | $rodata B |"
    done
done
