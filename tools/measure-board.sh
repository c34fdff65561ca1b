#!/usr/bin/env bash
# Reproduces the emulated board's figures for the end-to-end test CNN:
#   - flash / static RAM of the firmware (llvm-size from the toolchain's llvm-tools);
#   - executed instructions per inference on the Cortex-M4 in QEMU, and per MAC, from the
#     insn-count plugin (exact and identical from run to run; difference of a 200-sample run
#     and a 0-sample run, see tinykd::deploy::count_instructions).
#
#   tools/measure-board.sh
#
# Needs what tools/install-tools.sh installs. Building the tinykd-tests crate in release mode
# compiles burn (minutes, once; shared with `cargo test --workspace --release`).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
board=boards/qemu-mps2-an386
elf=target/boards/thumbv7em-none-eabihf/release/qemu-mps2-an386

plugin=tools/insn-plugin/libinsncount.so
if [[ ! -f $plugin || tools/insn-plugin/insncount.c -nt $plugin ]]; then
    gcc -shared -fPIC -O2 -Wall -Wextra -DPLUGIN_API=2 -o "$plugin" tools/insn-plugin/insncount.c
fi

(cd "$board" && cargo build --release --quiet)

bin=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin
echo "== firmware size ($elf)"
"$bin/llvm-size" "$elf"
"$bin/llvm-size" -A "$elf" | grep -E '^(section|\.vector_table|\.text|\.rodata|\.data|\.bss|\.uninit)'
echo "== largest static buffers (.bss; sized at build time by TINYKD_{BLOB,ARENA,IO}_CAP)"
"$bin/llvm-nm" --size-sort --print-size --radix=d -C "$elf" | tail -n 4

echo "== instructions per inference (QEMU insn-count plugin)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! TINYKD_FIRMWARE=$root/$elf TINYKD_INSN_PLUGIN=$root/$plugin \
    cargo test --release -p tinykd-tests --test qemu_e2e -- --test-threads=1 >"$log" 2>&1; then
    cat "$log"
    exit 1
fi
grep -oE 'e2e: .*' "$log"
