//! Host training throughput on burn-flex (CPU), for comparison with `bench/pytorch_baseline.py`.
//!
//! ```text
//! cargo run --release -p tinykd --example throughput -- <teacher|student|kd|teacher-fwd> \
//!     [--warmup N] [--steps N] [--batch N] [--teacher-preset base] [--data DIR] [--profile]
//! ```
//!
//! Each timed step does what a training loop does, in the order `bench/pytorch_baseline.py` does it:
//! build the batch tensors from pre-normalized pixels held in memory, forward, loss, backward,
//! optimizer step (Adam, lr 1e-3, eps 1e-8 as in PyTorch), then read the loss as an `f32` (which
//! also waits for any pending work). `images/s = steps · batch / wall time of the timed steps`.
//!
//! Modes:
//! - `teacher`: the ResNet teacher (`TeacherPreset::Base` by default) trained with cross-entropy;
//! - `student`: `StudentConfig::mcu_small()` trained with cross-entropy;
//! - `kd`: the student trained with `CE + kd_loss(T = 4)` against a frozen teacher
//!   (`teacher.valid()`: plain device, BatchNorm in eval mode, no graph);
//! - `teacher-fwd`: the frozen teacher's forward pass alone, plus the CE of its logits.
//!
//! The script parses these lines of the output (keep them stable):
//! `ARCH teacher widths=… strides=… stem_stride=… blocks=… in=… classes=…`,
//! `PARAMS teacher=… student=…` (trainable parameters only: burn's `num_params()` also counts
//! BatchNorm running statistics, which PyTorch keeps as buffers), `SHAPES teacher=… student=…`
//! (`c×h×w` of each feature map the models return, for one 28×28 image) and
//! `RESULT mode=… img_per_s=… ms_per_step=… …`.
//!
//! `--profile` adds, after the timed steps, (1) the wall time of each phase of a step and (2) the
//! forward and backward time of every layer of the trained model, run one layer at a time on
//! inputs of the shapes the real model sees. burn-flex executes eagerly, so the time between
//! two calls is the time of the work in between; the device is still synced at each boundary in
//! case a future backend queues work. The per-layer table of the teacher is built from its
//! `TeacherConfig` (its fields are private) and checked against the real teacher's parameter
//! count; the student's is built from its own (public) layers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use burn::module::{ModuleVisitor, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::nn::pool::{AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::relu;
use burn::tensor::Distribution;
use clap::{Parser, ValueEnum};

use tinykd::data::{Dataset, DatasetKind, Split};
use tinykd::distill::kd_loss;
use tinykd::models::student::{Activation, Student, StudentConfig, StudentLayer};
use tinykd::models::teacher::{Teacher, TeacherConfig, TeacherPreset};
use tinykd::models::Classifier;

/// Softmax temperature of the KD term (Hinton et al.; RepDistiller's default).
const KD_TEMPERATURE: f32 = 4.0;
/// Adam learning rate.
const LR: f64 = 1e-3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Train the teacher with cross-entropy.
    Teacher,
    /// Train the student with cross-entropy.
    Student,
    /// Train the student with CE + KD against the frozen teacher.
    Kd,
    /// Frozen teacher forward pass only (inference).
    TeacherFwd,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Teacher => "teacher",
            Mode::Student => "student",
            Mode::Kd => "kd",
            Mode::TeacherFwd => "teacher-fwd",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum PresetArg {
    Tiny,
    Small,
    Base,
    Large,
}

impl From<PresetArg> for TeacherPreset {
    fn from(p: PresetArg) -> Self {
        match p {
            PresetArg::Tiny => TeacherPreset::Tiny,
            PresetArg::Small => TeacherPreset::Small,
            PresetArg::Base => TeacherPreset::Base,
            PresetArg::Large => TeacherPreset::Large,
        }
    }
}

/// Training throughput of tinykd's models on burn-flex.
#[derive(Debug, Parser)]
struct Args {
    /// What to time.
    #[arg(value_enum)]
    mode: Mode,
    /// Untimed steps first (allocator and thread-pool warm-up).
    #[arg(long, default_value_t = 5)]
    warmup: usize,
    /// Timed steps.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// Teacher size.
    #[arg(long, value_enum, default_value_t = PresetArg::Base)]
    teacher_preset: PresetArg,
    /// Fashion-MNIST directory (IDX files, gzipped or not).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Seed of the parameter initialization.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// After the timed steps, print where a step's time goes (see the module docs).
    #[arg(long)]
    profile: bool,
}

/// The training split, normalized once, so a step only copies its slice.
struct Images {
    pixels: Vec<f32>,
    labels: Vec<i64>,
    pixels_per_image: usize,
    rows: usize,
    cols: usize,
}

impl Images {
    fn load(dir: Option<PathBuf>) -> Result<Self> {
        let kind = DatasetKind::FashionMnist;
        let dir = match dir.or_else(|| kind.default_dir()) {
            Some(d) => d,
            None => bail!("no dataset directory: pass --data"),
        };
        let ds = Dataset::load(&dir, kind, Split::Train)
            .with_context(|| format!("loading Fashion-MNIST from {}", dir.display()))?;
        let (mean, std) = kind.mean_std();
        let (rows, cols) = (ds.rows(), ds.cols());
        let mut pixels = Vec::with_capacity(ds.len() * rows * cols);
        for i in 0..ds.len() {
            pixels.extend(
                ds.image(i)
                    .into_iter()
                    .flatten()
                    .map(|&p| (f32::from(p) / 255.0 - mean) / std),
            );
        }
        let labels = ds.labels().iter().map(|&l| i64::from(l)).collect();
        Ok(Self {
            pixels,
            labels,
            pixels_per_image: rows * cols,
            rows,
            cols,
        })
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    /// Batch `step` of consecutive images in file order (Fashion-MNIST's file order is already
    /// mixed across classes), wrapping around at the end of the split.
    fn batch(&self, step: usize, batch: usize, device: &Device) -> (Tensor<4>, Tensor<1, Int>) {
        let per_epoch = self.len() / batch;
        let start = (step % per_epoch) * batch;
        let px =
            &self.pixels[start * self.pixels_per_image..(start + batch) * self.pixels_per_image];
        let x = Tensor::from_data(
            TensorData::new(px.to_vec(), [batch, 1, self.rows, self.cols]),
            device,
        );
        let y = Tensor::from_data(
            TensorData::new(self.labels[start..start + batch].to_vec(), [batch]),
            device,
        );
        (x, y)
    }
}

/// Counts trainable elements (those that require a gradient on an autodiff device).
struct Trainable(usize);

impl ModuleVisitor for Trainable {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        if value.is_require_grad() {
            self.0 += value.shape().num_elements();
        }
    }
}

fn trainable<M: Module>(m: &M) -> usize {
    let mut v = Trainable(0);
    m.visit(&mut v);
    v.0
}

/// What one step trains, holding the models and optimizer across steps. One exists per run, so
/// the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
enum Workload {
    Teacher {
        model: Teacher,
        opt: ModuleOptimizer,
    },
    Student {
        model: Student,
        opt: ModuleOptimizer,
    },
    Kd {
        student: Student,
        teacher: Teacher,
        opt: ModuleOptimizer,
    },
    TeacherFwd {
        teacher: Teacher,
    },
}

/// Wall time of the phases of one step (see `--profile`).
#[derive(Debug, Default, Clone, Copy)]
struct Phases {
    batch: Duration,
    teacher_fwd: Duration,
    forward_loss: Duration,
    backward: Duration,
    optim: Duration,
    read: Duration,
}

impl Phases {
    const NAMES: [&'static str; 6] = [
        "build batch",
        "teacher forward (frozen)",
        "forward + loss",
        "backward",
        "optimizer step",
        "read loss",
    ];

    fn as_array(&self) -> [Duration; 6] {
        [
            self.batch,
            self.teacher_fwd,
            self.forward_loss,
            self.backward,
            self.optim,
            self.read,
        ]
    }
}

/// A clock that syncs the device before reading the time, so each phase is charged for its own work.
struct Clock<'a> {
    device: &'a Device,
    last: Instant,
}

impl<'a> Clock<'a> {
    fn start(device: &'a Device) -> Result<Self> {
        device
            .sync()
            .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
        Ok(Self {
            device,
            last: Instant::now(),
        })
    }

    fn lap(&mut self) -> Result<Duration> {
        self.device
            .sync()
            .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))?;
        let now = Instant::now();
        let d = now - self.last;
        self.last = now;
        Ok(d)
    }
}

/// What every step reads: the data, the loss and the two devices.
struct StepEnv<'a> {
    images: &'a Images,
    batch: usize,
    ce: CrossEntropyLoss,
    /// Autodiff device (training).
    train_dev: Device,
    /// The same flex device without autodiff (frozen teacher).
    plain_dev: Device,
}

impl Workload {
    /// One step on batch `step`; returns the loss. With `phases`, syncs and times each phase.
    fn step(&mut self, env: &StepEnv, step: usize, mut phases: Option<&mut Phases>) -> Result<f32> {
        let StepEnv {
            images,
            batch,
            ce,
            train_dev,
            plain_dev,
        } = env;
        let batch = *batch;
        let mut clock = match phases {
            Some(_) => Some(Clock::start(train_dev)?),
            None => None,
        };
        let mut lap = |slot: fn(&mut Phases) -> &mut Duration,
                       phases: &mut Option<&mut Phases>|
         -> Result<()> {
            if let (Some(c), Some(p)) = (clock.as_mut(), phases.as_deref_mut()) {
                *slot(p) += c.lap()?;
            }
            Ok(())
        };
        let loss = match self {
            Workload::Teacher { model, opt } => {
                let (x, y) = images.batch(step, batch, train_dev);
                lap(|p| &mut p.batch, &mut phases)?;
                let loss = ce.forward(model.forward(x), y);
                lap(|p| &mut p.forward_loss, &mut phases)?;
                let grads = GradientsParams::from_grads(loss.backward(), &*model);
                lap(|p| &mut p.backward, &mut phases)?;
                *model = opt.step(LR, model.clone(), grads);
                lap(|p| &mut p.optim, &mut phases)?;
                loss
            }
            Workload::Student { model, opt } => {
                let (x, y) = images.batch(step, batch, train_dev);
                lap(|p| &mut p.batch, &mut phases)?;
                let loss = ce.forward(model.forward(x), y);
                lap(|p| &mut p.forward_loss, &mut phases)?;
                let grads = GradientsParams::from_grads(loss.backward(), &*model);
                lap(|p| &mut p.backward, &mut phases)?;
                *model = opt.step(LR, model.clone(), grads);
                lap(|p| &mut p.optim, &mut phases)?;
                loss
            }
            Workload::Kd {
                student,
                teacher,
                opt,
            } => {
                let (x, y) = images.batch(step, batch, train_dev);
                lap(|p| &mut p.batch, &mut phases)?;
                // A plain tensor is a constant for the student's graph: no teacher graph is built.
                let t_logits = teacher.forward(x.clone().without_autodiff());
                lap(|p| &mut p.teacher_fwd, &mut phases)?;
                let s_logits = student.forward(x);
                let loss =
                    ce.forward(s_logits.clone(), y) + kd_loss(s_logits, t_logits, KD_TEMPERATURE);
                lap(|p| &mut p.forward_loss, &mut phases)?;
                let grads = GradientsParams::from_grads(loss.backward(), &*student);
                lap(|p| &mut p.backward, &mut phases)?;
                *student = opt.step(LR, student.clone(), grads);
                lap(|p| &mut p.optim, &mut phases)?;
                loss
            }
            Workload::TeacherFwd { teacher } => {
                let (x, y) = images.batch(step, batch, plain_dev);
                lap(|p| &mut p.batch, &mut phases)?;
                let loss = ce.forward(teacher.forward(x), y);
                lap(|p| &mut p.forward_loss, &mut phases)?;
                loss
            }
        };
        let value: f32 = loss.into_scalar();
        lap(|p| &mut p.read, &mut phases)?;
        ensure!(value.is_finite(), "loss became {value} at step {step}");
        Ok(value)
    }
}

fn main() -> Result<()> {
    let args = Args::parse();
    ensure!(
        args.batch > 0 && args.steps > 0,
        "--batch and --steps must be at least 1"
    );

    let plain = Device::flex();
    plain.seed(args.seed);
    let train_dev = plain.clone().autodiff();

    let t_load = Instant::now();
    let images = Images::load(args.data.clone())?;
    ensure!(
        images.len() >= args.batch,
        "the training split has {} images, fewer than one batch of {}",
        images.len(),
        args.batch
    );
    let load_s = t_load.elapsed().as_secs_f64();

    let teacher_cfg = TeacherConfig::preset(args.teacher_preset.into(), 1, 10);
    teacher_cfg.validate().map_err(anyhow::Error::msg)?;
    let student_cfg = StudentConfig::mcu_small();
    let teacher = teacher_cfg.init(&train_dev);
    let student = student_cfg
        .init(&train_dev)
        .context("building the mcu_small student")?;

    let join = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    println!(
        "ARCH teacher widths={} strides={} stem_stride={} blocks={} in={} classes={}",
        join(&teacher_cfg.widths),
        join(&teacher_cfg.strides),
        teacher_cfg.stem_stride,
        teacher_cfg.blocks_per_stage,
        teacher_cfg.in_channels,
        teacher_cfg.classes
    );
    // The shapes of the real models' feature maps (one image, so it costs nothing): together
    // with the parameter counts, what the PyTorch side must reproduce.
    let probe = Tensor::<4>::zeros([1, 1, images.rows, images.cols], &plain);
    println!(
        "SHAPES teacher={} student={}",
        map_shapes(&teacher.valid().forward_taps(probe.clone()).feature_maps),
        map_shapes(&student.valid().forward_taps(probe).feature_maps)
    );
    println!(
        "PARAMS teacher={} student={}",
        trainable(&teacher),
        trainable(&student)
    );
    println!(
        "INFO backend=burn-flex threads={} batch={} data={} images ({load_s:.2} s to load and normalize)",
        rayon_threads(),
        args.batch,
        images.len()
    );

    let adam = || AdamConfig::new().with_epsilon(1e-8).init();
    let mut work = match args.mode {
        Mode::Teacher => Workload::Teacher {
            model: teacher.clone(),
            opt: adam(),
        },
        Mode::Student => Workload::Student {
            model: student.clone(),
            opt: adam(),
        },
        Mode::Kd => Workload::Kd {
            student: student.clone(),
            teacher: teacher.valid(),
            opt: adam(),
        },
        Mode::TeacherFwd => Workload::TeacherFwd {
            teacher: teacher.valid(),
        },
    };
    let env = StepEnv {
        images: &images,
        batch: args.batch,
        ce: CrossEntropyLossConfig::new().init(&train_dev),
        train_dev: train_dev.clone(),
        plain_dev: plain.clone(),
    };

    let mut step = 0;
    for _ in 0..args.warmup {
        work.step(&env, step, None)?;
        step += 1;
    }
    let t0 = Instant::now();
    let mut first = f32::NAN;
    let mut last = f32::NAN;
    for i in 0..args.steps {
        last = work.step(&env, step, None)?;
        if i == 0 {
            first = last;
        }
        step += 1;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let img_s = (args.steps * args.batch) as f64 / elapsed;
    println!(
        "RESULT mode={} img_per_s={img_s:.1} ms_per_step={:.2} steps={} warmup={} batch={} loss_first={first:.4} loss_last={last:.4}",
        args.mode.name(),
        1e3 * elapsed / args.steps as f64,
        args.steps,
        args.warmup,
        args.batch,
    );

    if args.profile {
        profile_phases(&mut work, &env, step, args.steps)?;
        profile_layers(
            args.mode,
            &teacher_cfg,
            &teacher,
            &student,
            args.batch,
            &train_dev,
            &plain,
        )?;
    }
    Ok(())
}

/// `c×h×w` of each map, comma-separated (the batch dimension left out).
fn map_shapes(maps: &[Tensor<4>]) -> String {
    maps.iter()
        .map(|m| {
            let [_, c, h, w] = m.dims();
            format!("{c}x{h}x{w}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The number of threads burn-flex's rayon pool uses (rayon's own rule: `RAYON_NUM_THREADS`, else
/// the number of logical CPUs).
fn rayon_threads() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Times each phase of a step, summed over up to 20 more steps, and prints their means.
fn profile_phases(
    work: &mut Workload,
    env: &StepEnv,
    first_step: usize,
    steps: usize,
) -> Result<()> {
    let n = steps.clamp(1, 20);
    let mut phases = Phases::default();
    let t0 = Instant::now();
    for i in 0..n {
        work.step(env, first_step + i, Some(&mut phases))?;
    }
    let total = t0.elapsed().as_secs_f64() * 1e3 / n as f64;
    println!(
        "\nPROFILE phases of one step (mean of {n} synced steps, {total:.2} ms/step with syncs):"
    );
    println!("| phase | ms | share |");
    println!("|---|---:|---:|");
    for (name, d) in Phases::NAMES.iter().zip(phases.as_array()) {
        if d.is_zero() {
            continue;
        }
        let ms = d.as_secs_f64() * 1e3 / n as f64;
        println!("| {name} | {ms:.2} | {:.0} % |", 100.0 * ms / total);
    }
    Ok(())
}

/// One layer to time in isolation.
enum Op {
    Conv(Conv2d),
    Bn(BatchNorm),
    Relu,
    Relu6,
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
    /// Global average pooling `[b, c, h, w] → [b, c, 1, 1]`, as both models compute it.
    Gap,
    /// Dense layer on the flattened input; output `[b, out, 1, 1]`.
    Linear(Linear),
    /// Residual sum of two tensors of the input's shape.
    Add,
}

struct LayerOp {
    name: String,
    op: Op,
    input: [usize; 4],
    /// Whether backpropagation needs the gradient of this layer's input (false for the first layer:
    /// the images need none).
    input_grad: bool,
}

impl Op {
    fn forward(&self, x: Tensor<4>, other: Option<Tensor<4>>) -> Tensor<4> {
        match self {
            Op::Conv(c) => c.forward(x),
            Op::Bn(b) => b.forward(x),
            Op::Relu => relu(x),
            Op::Relu6 => x.clamp(0.0, 6.0),
            Op::MaxPool(p) => p.forward(x),
            Op::AvgPool(p) => p.forward(x),
            Op::Gap => {
                let [b, c, h, w] = x.dims();
                x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c, 1, 1])
            }
            Op::Linear(l) => {
                let [b, c, h, w] = x.dims();
                let y = l.forward(x.reshape([b, c * h * w]));
                let out = y.dims()[1];
                y.reshape([b, out, 1, 1])
            }
            Op::Add => x + other.unwrap_or_else(|| panic!("Add needs a second input")),
        }
    }

    /// A copy of the layer for one timed run: for training, on `device` with parameters that are
    /// fresh autodiff leaves (`fork`: a backward pass consumes the graph of the leaves it reaches,
    /// so a module whose parameters took part in an earlier backward cannot be differentiated
    /// again); for a frozen model, a `valid()` copy (eval-mode BatchNorm, plain device).
    fn instance(&self, device: &Device, train: bool) -> Self {
        fn place<M: Module>(m: &M, device: &Device, train: bool) -> M {
            if train {
                m.clone().fork(device)
            } else {
                m.valid().to_device(device)
            }
        }
        match self {
            Op::Conv(c) => Op::Conv(place(c, device, train)),
            Op::Bn(b) => Op::Bn(place(b, device, train)),
            Op::Linear(l) => Op::Linear(place(l, device, train)),
            Op::Relu => Op::Relu,
            Op::Relu6 => Op::Relu6,
            Op::MaxPool(p) => Op::MaxPool(p.clone()),
            Op::AvgPool(p) => Op::AvgPool(p.clone()),
            Op::Gap => Op::Gap,
            Op::Add => Op::Add,
        }
    }

    fn trainable(&self) -> usize {
        match self {
            Op::Conv(c) => trainable(c),
            Op::Bn(b) => trainable(b),
            Op::Linear(l) => trainable(l),
            _ => 0,
        }
    }
}

/// The teacher's layers, one op each, built from its configuration with the same shapes and
/// options as `TeacherConfig::init` (checked by comparing trainable parameter counts).
/// Also returns the `[c, h, w]` after each stage, to compare with the real teacher's feature maps.
fn teacher_ops(
    cfg: &TeacherConfig,
    batch: usize,
    input: [usize; 2],
    device: &Device,
) -> (Vec<LayerOp>, Vec<[usize; 3]>) {
    let conv3 = |cin, cout, s| {
        Conv2dConfig::new([cin, cout], [3, 3])
            .with_stride([s, s])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(device)
    };
    let mut ops = Vec::new();
    let (mut c, mut h, mut w) = (cfg.in_channels, input[0], input[1]);
    let mut stage_shapes = Vec::with_capacity(cfg.widths.len());
    let w0 = cfg.widths[0];
    let mut push = |name: String, op, input, input_grad| {
        ops.push(LayerOp {
            name,
            op,
            input,
            input_grad,
        })
    };
    let ss = cfg.stem_stride;
    push(
        format!("stem conv3x3/{ss} {c}->{w0} @{h}x{w}"),
        Op::Conv(conv3(c, w0, ss)),
        [batch, c, h, w],
        false,
    );
    (c, h, w) = (w0, (h + 2 - 3) / ss + 1, (w + 2 - 3) / ss + 1);
    push(
        format!("stem bn {c} @{h}x{w}"),
        Op::Bn(BatchNormConfig::new(c).init(device)),
        [batch, c, h, w],
        true,
    );
    push(
        format!("stem relu {c} @{h}x{w}"),
        Op::Relu,
        [batch, c, h, w],
        true,
    );
    for (s, &cout) in cfg.widths.iter().enumerate() {
        for b in 0..cfg.blocks_per_stage {
            let stride = if b == 0 { cfg.strides[s] } else { 1 };
            let (oh, ow) = ((h + 2 - 3) / stride + 1, (w + 2 - 3) / stride + 1);
            let tag = format!("s{s}b{b}");
            if stride != 1 || c != cout {
                let proj = Conv2dConfig::new([c, cout], [1, 1])
                    .with_stride([stride, stride])
                    .with_bias(false)
                    .init(device);
                push(
                    format!("{tag} proj conv1x1/{stride} {c}->{cout} @{h}x{w}"),
                    Op::Conv(proj),
                    [batch, c, h, w],
                    true,
                );
                push(
                    format!("{tag} proj bn {cout} @{oh}x{ow}"),
                    Op::Bn(BatchNormConfig::new(cout).init(device)),
                    [batch, cout, oh, ow],
                    true,
                );
            }
            push(
                format!("{tag} conv1 3x3/{stride} {c}->{cout} @{h}x{w}"),
                Op::Conv(conv3(c, cout, stride)),
                [batch, c, h, w],
                true,
            );
            push(
                format!("{tag} bn1 {cout} @{oh}x{ow}"),
                Op::Bn(BatchNormConfig::new(cout).init(device)),
                [batch, cout, oh, ow],
                true,
            );
            push(
                format!("{tag} relu1 {cout} @{oh}x{ow}"),
                Op::Relu,
                [batch, cout, oh, ow],
                true,
            );
            push(
                format!("{tag} conv2 3x3 {cout}->{cout} @{oh}x{ow}"),
                Op::Conv(conv3(cout, cout, 1)),
                [batch, cout, oh, ow],
                true,
            );
            push(
                format!("{tag} bn2 {cout} @{oh}x{ow}"),
                Op::Bn(BatchNormConfig::new(cout).init(device)),
                [batch, cout, oh, ow],
                true,
            );
            push(
                format!("{tag} add {cout} @{oh}x{ow}"),
                Op::Add,
                [batch, cout, oh, ow],
                true,
            );
            push(
                format!("{tag} relu2 {cout} @{oh}x{ow}"),
                Op::Relu,
                [batch, cout, oh, ow],
                true,
            );
            (c, h, w) = (cout, oh, ow);
        }
        stage_shapes.push([c, h, w]);
    }
    push(format!("gap {c} @{h}x{w}"), Op::Gap, [batch, c, h, w], true);
    push(
        format!("head linear {c}->{}", cfg.classes),
        Op::Linear(LinearConfig::new(c, cfg.classes).init(device)),
        [batch, c, 1, 1],
        true,
    );
    (ops, stage_shapes)
}

/// The student's own layers (cloned), split into conv / BN / activation.
fn student_ops(student: &Student, batch: usize) -> Result<Vec<LayerOp>> {
    let cfg = &student.config;
    let shapes = cfg
        .shapes()
        .map_err(|e| anyhow::anyhow!("student config: {e}"))?;
    let mut ops = Vec::new();
    let mut inp = [cfg.in_channels, cfg.input_size[0], cfg.input_size[1]];
    for (i, (layer, out)) in student.layers.iter().zip(&shapes).enumerate() {
        let [c, h, w] = inp;
        let shape = [batch, c, h, w];
        let first = i == 0;
        let out4 = [batch, out[0], out[1], out[2]];
        let act = |a: Activation| match a {
            Activation::None => None,
            Activation::Relu => Some(Op::Relu),
            Activation::Relu6 => Some(Op::Relu6),
        };
        match layer {
            StudentLayer::Conv(b) => {
                let k = b.conv.kernel_size[0];
                ops.push(LayerOp {
                    name: format!("L{i} conv{k}x{k} {c}->{} @{h}x{w}", out[0]),
                    op: Op::Conv(b.conv.clone()),
                    input: shape,
                    input_grad: !first,
                });
                if let Some(bn) = &b.bn {
                    ops.push(LayerOp {
                        name: format!("L{i} bn {} @{}x{}", out[0], out[1], out[2]),
                        op: Op::Bn(bn.clone()),
                        input: out4,
                        input_grad: true,
                    });
                }
                if let Some(op) = act(b.activation) {
                    ops.push(LayerOp {
                        name: format!("L{i} relu {} @{}x{}", out[0], out[1], out[2]),
                        op,
                        input: out4,
                        input_grad: true,
                    });
                }
            }
            StudentLayer::BinaryConv(_) | StudentLayer::BinaryDense(_) => {
                anyhow::bail!("layer {i}: this example does not profile binary layers")
            }
            StudentLayer::MaxPool(p) => ops.push(LayerOp {
                name: format!("L{i} maxpool {c} @{h}x{w}"),
                op: Op::MaxPool(p.clone()),
                input: shape,
                input_grad: !first,
            }),
            StudentLayer::AvgPool(p) => ops.push(LayerOp {
                name: format!("L{i} avgpool {c} @{h}x{w}"),
                op: Op::AvgPool(p.clone()),
                input: shape,
                input_grad: !first,
            }),
            StudentLayer::GlobalAvgPool(_) => ops.push(LayerOp {
                name: format!("L{i} gap {c} @{h}x{w}"),
                op: Op::Gap,
                input: shape,
                input_grad: !first,
            }),
            StudentLayer::Dense(d) => {
                ops.push(LayerOp {
                    name: format!("L{i} dense {}->{}", c * h * w, out[0]),
                    op: Op::Linear(d.linear.clone()),
                    input: shape,
                    input_grad: !first,
                });
                if let Some(op) = act(d.activation) {
                    ops.push(LayerOp {
                        name: format!("L{i} act {}", out[0]),
                        op,
                        input: out4,
                        input_grad: true,
                    });
                }
            }
        }
        inp = *out;
    }
    Ok(ops)
}

/// Median of the samples, in milliseconds.
fn median_ms(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2)
        .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
}

fn sync(device: &Device) -> Result<()> {
    device
        .sync()
        .map_err(|e| anyhow::anyhow!("device sync: {e:?}"))
}

/// Forward and backward time of each op, medians of `reps` runs. Backward is timed on
/// `(y · g).sum()` for a fixed random `g`, so it also contains the backward of that product and
/// sum; that tail is timed alone on a leaf of `y`'s shape and subtracted.
fn time_ops(
    ops: Vec<LayerOp>,
    device: &Device,
    train: bool,
    reps: usize,
) -> Result<Vec<(String, f64, f64)>> {
    let mut rows = Vec::with_capacity(ops.len());
    for lo in ops {
        let make = |grad: bool| {
            let t = Tensor::<4>::random(lo.input, Distribution::Normal(0.0, 1.0), device);
            if grad {
                t.require_grad()
            } else {
                t
            }
        };
        let needs_grad = train && lo.input_grad;
        let (mut fwd, mut bwd, mut tail) = (Vec::new(), Vec::new(), Vec::new());
        // One untimed run first: first-touch allocation and kernel selection.
        for rep in 0..=reps {
            let op = lo.op.instance(device, train);
            let x = make(needs_grad);
            let other = matches!(op, Op::Add).then(|| make(needs_grad));
            sync(device)?;
            let t = Instant::now();
            let y = op.forward(x, other);
            sync(device)?;
            let f = t.elapsed();
            if train {
                let g = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), device)
                    .without_autodiff();
                let leaf = Tensor::<4>::random(y.dims(), Distribution::Normal(0.0, 1.0), device)
                    .require_grad();
                let probe = (leaf * g.clone()).sum();
                sync(device)?;
                let t = Instant::now();
                let _grads = probe.backward();
                sync(device)?;
                let tl = t.elapsed();
                let obj = (y * g).sum();
                sync(device)?;
                let t = Instant::now();
                let _grads = obj.backward();
                sync(device)?;
                let b = t.elapsed();
                if rep > 0 {
                    bwd.push(b);
                    tail.push(tl);
                }
            }
            if rep > 0 {
                fwd.push(f);
            }
        }
        let b = if train {
            (median_ms(bwd) - median_ms(tail)).max(0.0)
        } else {
            0.0
        };
        rows.push((lo.name, median_ms(fwd), b));
    }
    Ok(rows)
}

fn print_rows(title: &str, rows: &[(String, f64, f64)], train: bool) {
    let total: f64 = rows.iter().map(|r| r.1 + r.2).sum();
    println!("\nPROFILE {title}:");
    if train {
        println!("| layer | fwd ms | bwd ms | share |");
        println!("|---|---:|---:|---:|");
    } else {
        println!("| layer | fwd ms | share |");
        println!("|---|---:|---:|");
    }
    for (name, f, b) in rows {
        let share = 100.0 * (f + b) / total;
        if train {
            println!("| {name} | {f:.3} | {b:.3} | {share:.1} % |");
        } else {
            println!("| {name} | {f:.3} | {share:.1} % |");
        }
    }
    let (sf, sb): (f64, f64) = rows.iter().fold((0.0, 0.0), |a, r| (a.0 + r.1, a.1 + r.2));
    if train {
        println!("| **sum** | {sf:.2} | {sb:.2} | |");
    } else {
        println!("| **sum** | {sf:.2} | |");
    }
    // Totals per kind of layer: the first word of the name that names a kind ("bn1" and "bn"
    // are both BatchNorm, "conv1x1" and "conv3x3" both convolutions).
    const KINDS: [&str; 10] = [
        "conv", "bn", "relu", "add", "gap", "linear", "dense", "maxpool", "avgpool", "act",
    ];
    let mut kinds: Vec<(String, f64, f64)> = Vec::new();
    for (name, f, b) in rows {
        let kind = name
            .split_whitespace()
            .find_map(|w| KINDS.iter().find(|k| w.starts_with(*k)))
            .copied()
            .unwrap_or("other")
            .to_string();
        match kinds.iter_mut().find(|k| k.0 == kind) {
            Some(k) => {
                k.1 += f;
                k.2 += b;
            }
            None => kinds.push((kind, *f, *b)),
        }
    }
    kinds.sort_by(|a, b| (b.1 + b.2).total_cmp(&(a.1 + a.2)));
    let summary: Vec<String> = kinds
        .iter()
        .map(|(k, f, b)| format!("{k} {:.1} ms ({:.0} %)", f + b, 100.0 * (f + b) / total))
        .collect();
    println!("PROFILE by kind ({title}): {}", summary.join(", "));
}

/// Per-layer forward/backward times of the models the mode runs.
fn profile_layers(
    mode: Mode,
    teacher_cfg: &TeacherConfig,
    teacher: &Teacher,
    student: &Student,
    batch: usize,
    train_dev: &Device,
    plain: &Device,
) -> Result<()> {
    let t_ops = || {
        let input = [28, 28];
        let (ops, stages) = teacher_ops(teacher_cfg, batch, input, train_dev);
        let sum: usize = ops.iter().map(|o| o.op.trainable()).sum();
        let real = trainable(teacher);
        ensure!(
            sum == real,
            "profile's teacher layer list has {sum} trainable parameters, the real teacher {real}"
        );
        let probe = Tensor::<4>::zeros([1, teacher_cfg.in_channels, input[0], input[1]], plain);
        let maps = teacher.valid().forward_taps(probe).feature_maps;
        let real: Vec<[usize; 3]> = maps
            .iter()
            .map(|m| {
                let [_, c, h, w] = m.dims();
                [c, h, w]
            })
            .collect();
        ensure!(
            stages == real,
            "profile's teacher layer list gives stage shapes {stages:?}, the real teacher {real:?}"
        );
        Ok(ops)
    };
    let s_ops = || -> Result<Vec<LayerOp>> {
        let ops = student_ops(student, batch)?;
        let sum: usize = ops.iter().map(|o| o.op.trainable()).sum();
        let real = trainable(student);
        ensure!(
            sum == real,
            "profile's student layer list has {sum} trainable parameters, the real student {real}"
        );
        Ok(ops)
    };
    match mode {
        Mode::Teacher => print_rows(
            "teacher layers, training",
            &time_ops(t_ops()?, train_dev, true, 5)?,
            true,
        ),
        Mode::Student => print_rows(
            "student layers, training",
            &time_ops(s_ops()?, train_dev, true, 20)?,
            true,
        ),
        Mode::Kd => {
            print_rows(
                "frozen teacher layers, inference",
                &time_ops(t_ops()?, plain, false, 5)?,
                false,
            );
            print_rows(
                "student layers, training",
                &time_ops(s_ops()?, train_dev, true, 20)?,
                true,
            );
        }
        Mode::TeacherFwd => print_rows(
            "frozen teacher layers, inference",
            &time_ops(t_ops()?, plain, false, 5)?,
            false,
        ),
    }
    Ok(())
}
