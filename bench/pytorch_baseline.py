#!/usr/bin/env python3
"""PyTorch baseline for tinykd's host training throughput (host/examples/throughput.rs).

    bench/.venv/bin/python bench/pytorch_baseline.py <teacher|student|kd|teacher-fwd> \
        [--warmup N] [--steps N] [--batch N] [--teacher-widths 32,64,128] \
        [--teacher-strides 1,2,2] [--teacher-stem-stride 2] [--teacher-blocks 1] [--data DIR] \
        [--threads 2]

The same models as tinykd, layer by layer:

* teacher (host/src/models/teacher.rs): 3x3 stem conv/stem_stride (no bias) + BN + ReLU, then per stage
  `blocks` basic residual blocks (conv3x3/stride + BN + ReLU, conv3x3 + BN, shortcut = identity or
  1x1 conv/stride (no bias) + BN, add, ReLU), global average pooling, linear head. The widths,
  strides, stem stride and block count come from the command line so that bench/run.sh can pass
  exactly what the Rust side reports in its `ARCH` line; run.sh then checks that both sides print
  the same `PARAMS` (trainable parameters) and `SHAPES` (c x h x w of each feature map).
* student (`StudentConfig::mcu_small()`, host/src/models/student.rs): conv3x3 pad 1 (no bias) +
  BN + ReLU to 16, maxpool 2, the same to 32, maxpool 2, the same to 64, global average pooling,
  linear 64 -> 10.

Each step: slice the batch from the pre-normalized training split (a view, no copy), forward,
loss, backward, Adam step (lr 1e-3, eps 1e-8), then `loss.item()`, which also waits for the work.
KD: CE + KL(softmax(t/T) || softmax(s/T)) * T^2 with batchmean reduction and T = 4, the teacher in
eval mode under `torch.no_grad()`. `teacher-fwd`: the eval-mode teacher forward plus the CE of its
logits, under `torch.no_grad()`.

Printed lines parsed by bench/run.sh: `ARCH ...`, `PARAMS teacher=... student=...` (trainable
parameters), `SHAPES teacher=... student=...`, `RESULT mode=... img_per_s=... ms_per_step=...`.
"""

import argparse
import gzip
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

KD_TEMPERATURE = 4.0
LR = 1e-3
# Fashion-MNIST training-split pixel statistics on [0, 1] (tinykd::data::DatasetKind::mean_std).
MEAN, STD = 0.2860, 0.3530


def read_idx(path):
    """Reads an IDX file (gzipped or not) into a numpy uint8 array of the shape its header gives."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank)
    if body.size != int(np.prod(dims)):
        sys.exit(f"{path}: header promises {int(np.prod(dims))} bytes, file has {body.size}")
    return body.reshape(dims)


def find(data_dir, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            return path
    sys.exit(f"no {stem}[.gz] in {data_dir}")


def load_train(data_dir):
    images = read_idx(find(data_dir, "train-images-idx3-ubyte"))
    labels = read_idx(find(data_dir, "train-labels-idx1-ubyte"))
    if images.shape[0] != labels.shape[0]:
        sys.exit(f"{images.shape[0]} images but {labels.shape[0]} labels")
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - MEAN) / STD
    return x.unsqueeze(1).contiguous(), torch.from_numpy(labels.astype(np.int64))


def conv3x3(c_in, c_out, stride):
    return nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), as tinykd's BasicBlock."""

    def __init__(self, c_in, c_out, stride):
        super().__init__()
        self.conv1 = conv3x3(c_in, c_out, stride)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = conv3x3(c_out, c_out, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), nn.BatchNorm2d(c_out)
            )

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + identity)


class Teacher(nn.Module):
    def __init__(self, widths, strides, stem_stride, blocks, in_channels=1, classes=10):
        super().__init__()
        self.stem = conv3x3(in_channels, widths[0], stem_stride)
        self.stem_bn = nn.BatchNorm2d(widths[0])
        stages = []
        c = widths[0]
        for width, stride in zip(widths, strides):
            stage = []
            for b in range(blocks):
                stage.append(BasicBlock(c, width, stride if b == 0 else 1))
                c = width
            stages.append(nn.Sequential(*stage))
        self.stages = nn.ModuleList(stages)
        self.head = nn.Linear(c, classes)

    def feature_maps(self, x):
        """The output of each stage (what tinykd's Teacher returns as feature maps), and the last."""
        x = F.relu(self.stem_bn(self.stem(x)))
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        return maps

    def forward(self, x):
        return self.head(self.feature_maps(x)[-1].mean(dim=(2, 3)))


class Student(nn.Module):
    """StudentConfig::mcu_small(): conv16-pool-conv32-pool-conv64-GAP-dense10."""

    def __init__(self, in_channels=1, classes=10):
        super().__init__()

        def block(c_in, c_out):
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]

        self.features = nn.Sequential(
            *block(in_channels, 16),
            nn.MaxPool2d(2),
            *block(16, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
        )
        self.head = nn.Linear(64, classes)

    def feature_maps(self, x):
        """The output of each conv block (what tinykd's Student returns as feature maps)."""
        maps = []
        for layer in self.features:
            x = layer(x)
            if isinstance(layer, nn.ReLU):
                maps.append(x)
        return maps

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def kd_loss(student_logits, teacher_logits, t):
    return (
        F.kl_div(
            F.log_softmax(student_logits / t, dim=1),
            F.softmax(teacher_logits / t, dim=1),
            reduction="batchmean",
        )
        * t
        * t
    )


def trainable(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def ints(text):
    return [int(v) for v in text.split(",") if v]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("mode", choices=["teacher", "student", "kd", "teacher-fwd"])
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--teacher-widths", type=ints, default=[32, 64, 128])
    ap.add_argument("--teacher-strides", type=ints, default=[1, 2, 2])
    ap.add_argument("--teacher-stem-stride", type=int, default=2)
    ap.add_argument("--teacher-blocks", type=int, default=1)
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--profile",
        action="store_true",
        help="after the timed steps, time up to 20 more under torch.profiler and print the ops",
    )
    args = ap.parse_args()
    if len(args.teacher_widths) != len(args.teacher_strides):
        sys.exit("--teacher-widths and --teacher-strides need one entry per stage")
    if args.batch < 1 or args.steps < 1:
        sys.exit("--batch and --steps must be at least 1")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    t_load = time.perf_counter()
    x_all, y_all = load_train(args.data)
    load_s = time.perf_counter() - t_load
    n = x_all.shape[0]
    per_epoch = n // args.batch
    if per_epoch == 0:
        sys.exit(f"the training split has {n} images, fewer than one batch of {args.batch}")

    teacher = Teacher(
        args.teacher_widths, args.teacher_strides, args.teacher_stem_stride, args.teacher_blocks
    )
    student = Student()
    join = lambda v: ",".join(str(i) for i in v)  # noqa: E731
    print(
        f"ARCH teacher widths={join(args.teacher_widths)} strides={join(args.teacher_strides)} "
        f"stem_stride={args.teacher_stem_stride} blocks={args.teacher_blocks} in=1 classes=10"
    )
    print(f"PARAMS teacher={trainable(teacher)} student={trainable(student)}")
    with torch.no_grad():
        probe = torch.zeros(1, 1, x_all.shape[2], x_all.shape[3])
        shapes = {
            name: ",".join("x".join(str(d) for d in m.shape[1:]) for m in model.eval().feature_maps(probe))
            for name, model in (("teacher", teacher), ("student", student))
        }
    print(f"SHAPES teacher={shapes['teacher']} student={shapes['student']}")
    print(
        f"INFO backend=pytorch-{torch.__version__} threads={torch.get_num_threads()} "
        f"mkldnn={torch.backends.mkldnn.is_available()} batch={args.batch} data={n} images "
        f"({load_s:.2f} s to load and normalize)"
    )

    def batch(step):
        s = (step % per_epoch) * args.batch
        return x_all[s : s + args.batch], y_all[s : s + args.batch]

    def adam(model):
        return torch.optim.Adam(model.parameters(), lr=LR, eps=1e-8)

    if args.mode == "teacher":
        model, opt = teacher.train(), adam(teacher)

        def step(i):
            x, y = batch(i)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

    elif args.mode == "student":
        model, opt = student.train(), adam(student)

        def step(i):
            x, y = batch(i)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

    elif args.mode == "kd":
        frozen = teacher.eval()
        for p in frozen.parameters():
            p.requires_grad_(False)
        model, opt = student.train(), adam(student)

        def step(i):
            x, y = batch(i)
            with torch.no_grad():
                t_logits = frozen(x)
            s_logits = model(x)
            loss = F.cross_entropy(s_logits, y) + kd_loss(s_logits, t_logits, KD_TEMPERATURE)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return loss.item()

    else:
        frozen = teacher.eval()

        def step(i):
            x, y = batch(i)
            with torch.no_grad():
                loss = F.cross_entropy(frozen(x), y)
            return loss.item()

    i = 0
    for _ in range(args.warmup):
        step(i)
        i += 1
    t0 = time.perf_counter()
    first = last = float("nan")
    for k in range(args.steps):
        last = step(i)
        if k == 0:
            first = last
        i += 1
    elapsed = time.perf_counter() - t0
    if not np.isfinite(last):
        sys.exit(f"loss became {last}")
    print(
        f"RESULT mode={args.mode} img_per_s={args.steps * args.batch / elapsed:.1f} "
        f"ms_per_step={1e3 * elapsed / args.steps:.2f} steps={args.steps} warmup={args.warmup} "
        f"batch={args.batch} loss_first={first:.4f} loss_last={last:.4f}"
    )
    if args.profile:
        profile(step, i, min(args.steps, 20))


# Op-name fragments of each kind of layer, to compare with the burn side's "by kind" line.
KINDS = [
    ("conv", ("conv",)),
    ("bn", ("batch_norm",)),
    ("maxpool", ("max_pool",)),
    ("relu", ("relu", "threshold", "clamp_min")),
    ("gap", ("aten::mean",)),
    ("linear", ("addmm", "aten::mm", "linear")),
    ("loss", ("softmax", "nll", "kl_div", "cross_entropy")),
    ("optimizer", ("_foreach", "adam", "lerp", "addcdiv")),
]


def profile(step, first_step, n):
    """Runs `n` steps under the PyTorch profiler and prints the ops by self CPU time per step.

    Self time is wall time on the calling thread (intra-op worker threads are not added on top),
    so it compares with the burn side's per-layer wall times. The profiler adds some overhead.
    """
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        # Timed inside the profiler's scope: its start and stop are not part of a step.
        t0 = time.perf_counter()
        for k in range(n):
            step(first_step + k)
        total = 1e3 * (time.perf_counter() - t0) / n
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    print(f"\nPROFILE torch ops by self CPU time (mean of {n} profiled steps, {total:.2f} ms/step):")
    print("| op | calls/step | ms/step | share |")
    print("|---|---:|---:|---:|")
    for e in events[:15]:
        ms = e.self_cpu_time_total / 1e3 / n
        print(f"| {e.key} | {e.count / n:.0f} | {ms:.2f} | {100 * ms / total:.0f} % |")
    kinds = {}
    for e in events:
        name = e.key.lower()
        kind = next((k for k, frags in KINDS if any(f in name for f in frags)), "other")
        kinds[kind] = kinds.get(kind, 0.0) + e.self_cpu_time_total / 1e3 / n
    summary = ", ".join(
        f"{k} {v:.1f} ms ({100 * v / total:.0f} %)"
        for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])
    )
    print(f"PROFILE by kind (torch, self CPU time per step): {summary}")


if __name__ == "__main__":
    main()
