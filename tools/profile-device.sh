#!/usr/bin/env bash
# Flat instruction profile of one benchmark layer in QEMU: where the executed instructions of one
# inference go, per function, as `insns(run) − insns(load)` like tools/bench-device.sh counts.
#
#   tools/profile-device.sh L5a            # Cortex-M4, fast kernels, top 25 functions
#   tools/profile-device.sh L2 port 40     # portable kernels, top 40
#   QEMU_MACHINE=microbit TARGET=thumbv6m-none-eabi tools/profile-device.sh L1
#
# Uses tools/insn-plugin/insnprof.c (per-block counts) and llvm-nm from the Rust toolchain
# (llvm-tools) for the symbols. Needs the kernel-tests firmware that tools/bench-device.sh builds.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
layer=${1:?usage: $0 LAYER [fast|port] [top]}
mode=${2:-fast}
top=${3:-25}
target=${TARGET:-thumbv7em-none-eabihf}
export QEMU_MACHINE=${QEMU_MACHINE:-mps2-an386}

plugin=tools/insn-plugin/libinsnprof.so
if [[ ! -f $plugin || tools/insn-plugin/insnprof.c -nt $plugin ]]; then
    gcc -shared -fPIC -O2 -Wall -Wextra -DPLUGIN_API=2 -o "$plugin" tools/insn-plugin/insnprof.c
fi
(cd device/kernel-tests && cargo build -q --release --target "$target")
elf=target/kernel-tests/$target/release/tinykd-kernel-tests
llvm_bin=$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin

prof() { INSN_PLUGIN=$root/$plugin tools/qemu-runner.sh "$elf" bench "$layer" "$1" 2>&1 | sed -n 's/^prof: //p'; }
syms=$(mktemp)
"$llvm_bin/llvm-nm" -C --defined-only -n "$elf" | awk '$2 ~ /^[tTwW]$/ { $2 = ""; print }' >"$syms"
{ prof "$mode" | sed 's/$/ 1/'; prof load | sed 's/$/ -1/'; } | python3 -c '
import bisect, sys
syms = []
for line in open(sys.argv[1]):
    addr, _, name = line.rstrip("\n").partition(" ")
    syms.append((int(addr, 16), name.strip()))
syms.sort()
keys = [a for a, _ in syms]
total, alln = {}, 0
for line in sys.stdin:
    addr, n, sign = line.split()
    i = bisect.bisect_right(keys, int(addr, 16) & ~1) - 1
    f = syms[i][1] if i >= 0 else "?"
    total[f] = total.get(f, 0) + int(n) * int(sign)
    alln += int(n) * int(sign)
print(f"{alln:10d}  all (run - load)")
for f, n in sorted(total.items(), key=lambda t: -t[1])[: int(sys.argv[2])]:
    if n:
        print(f"{n:10d}  {f}")
' "$syms" "$top"
rm -f "$syms"
