#!/usr/bin/env bash
# Creates bench/.venv with PyTorch and NumPy for bench/pytorch_baseline.py.
#
# PyPI's default `torch` wheel bundles CUDA libraries (about 5 GB installed); it runs fine on a
# CPU-only machine. The CPU-only index (download.pytorch.org) would be far smaller but is not
# reachable from our build machines, and `pip install --no-deps torch` does not import (it needs
# libcudart at import time). See /work/shared/reference/burn-notes.md §5.
#
# Not part of CI. Re-running it is cheap once the venv exists.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${PYTHON:-python3}"
if [[ ! -x "$here/.venv/bin/python" ]]; then
    "$python" -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --upgrade pip
"$here/.venv/bin/pip" install --quiet torch numpy
"$here/.venv/bin/python" - <<'PY'
import torch, numpy
print(f"torch {torch.__version__} (cuda available: {torch.cuda.is_available()}, "
      f"mkldnn: {torch.backends.mkldnn.is_available()}), numpy {numpy.__version__}")
PY
