#!/usr/bin/env bash
# Host training throughput, burn-flex vs PyTorch, on this machine's CPU.
#
#   bench/setup.sh            # once: bench/.venv with torch + numpy (minutes, ~5 GB)
#   bench/run.sh              # builds the Rust example, then runs bench/run_bench.py
#   bench/run.sh --reps 5 --max-load 0.5 --profile --perf
#
# Every option after the script name goes to bench/run_bench.py (see `--help` there): repetitions,
# step counts, the quiet-machine gate, and whether to add the burn-side profile and a perf profile.
# The script rewrites only the generated part of bench/results.md (between its BEGIN/END
# markers), so the written analysis around it survives a re-run. Not part of CI.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

if [[ ! -x "$here/.venv/bin/python" ]]; then
    echo "bench/.venv is missing: run bench/setup.sh first" >&2
    exit 1
fi

cd "$root"
# The shared target/ is also used by other builds; cargo waits for its lock if needed.
cargo build --release -p tinykd --example throughput

exec python3 "$here/run_bench.py" \
    --burn "$root/target/release/examples/throughput" \
    --python "$here/.venv/bin/python" \
    "$@"
