//! # tinykd-test-models
//!
//! The seeded test models of tinykd, built with `tinykd-format`'s [`ModelBuilder`], and random
//! inputs for them. One source for every place that needs them:
//!
//! - the host tests (`tinykd-tests`, which re-exports this crate): the end-to-end CNN that runs
//!   on the host and in QEMU;
//! - the firmware build scripts (`boards/build`): the same models embedded in the on-device
//!   tests and in the board firmware, with the host's outputs as the oracle.
//!
//! Everything is seeded and uses its own tiny generator, so a model and its inputs are the same
//! bytes on every machine and with every version of every dependency.
//!
//! | model | what it covers |
//! |---|---|
//! | [`e2e_cnn`] | every int8 op kind the exporter emits (strided conv with asymmetric padding, depthwise, 1×1, residual add, max and padded average pooling, dense) |
//! | [`int8_student`] | the shape of the Fashion-MNIST student `mcu_small` (28×28×1 → 3 convs, 2 max pools, GAP, dense 10) |
//! | [`binary_student`] | the binary student: int8 first conv, three binary convs, binary max pool, GAP, int8 dense head |

use tinykd_format::{
    fold_sign, validate, Activation, BinaryConv2dSpec, BinaryOutputSpec, Conv2dSpec, DenseSpec,
    Layout, ModelBuilder, Op, PoolSpec, Quant, Shape, TensorId,
};

/// Classes of every test model.
pub const CLASSES: u16 = 10;
/// Input of the end-to-end CNN: 16×16 pixels, 3 channels.
pub const INPUT: Shape = Shape { h: 16, w: 16, c: 3 };
/// Input of the students: a Fashion-MNIST image, 28×28, one channel.
pub const STUDENT_INPUT: Shape = Shape { h: 28, w: 28, c: 1 };

/// SplitMix64: a tiny deterministic generator, so the test models and inputs are the same on
/// every machine and with every version of every crate.
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as i64
    }

    /// Uniform in `[lo, hi)`.
    pub fn float(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A test model as a blob, and its multiply-accumulate count per inference.
pub struct TestModel {
    /// The blob (`.tkd` bytes).
    pub blob: Vec<u8>,
    /// Multiply-accumulates per inference (binary MACs included).
    pub macs: u64,
}

/// Random symmetric int8 weights, per-channel scales around a He-uniform range for `fan_in`,
/// and small biases: activations then keep a spread instead of saturating, so a comparison
/// covers the whole int8 range of the kernels rather than a wall of clamped values.
fn random_params(
    rng: &mut Rng,
    out: usize,
    fan_in: usize,
    s_in: f32,
) -> (Vec<i8>, Vec<f32>, Vec<i32>) {
    let weights = (0..out * fan_in)
        .map(|_| rng.int(-127, 127) as i8)
        .collect();
    let range = (6.0 / fan_in as f32).sqrt();
    let scales: Vec<f32> = (0..out)
        .map(|_| range * rng.float(0.6, 1.4) / 127.0)
        .collect();
    let bias = scales
        .iter()
        .map(|&s_w| (rng.float(-0.3, 0.3) / (s_in * s_w)).round() as i32)
        .collect();
    (weights, scales, bias)
}

/// One convolution's geometry: square kernel and stride, padding `[top, left, bottom, right]`.
#[derive(Clone, Copy)]
struct ConvGeometry {
    out_channels: u16,
    kernel: u8,
    stride: u8,
    padding: [u8; 4],
    groups: u16,
}

const fn same3x3(out_channels: u16) -> ConvGeometry {
    ConvGeometry {
        out_channels,
        kernel: 3,
        stride: 1,
        padding: [1; 4],
        groups: 1,
    }
}

fn conv(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    g: ConvGeometry,
    output: Quant,
    activation: Activation,
) -> TensorId {
    let in_channels = b.shape(x).c;
    let fan_in =
        usize::from(g.kernel) * usize::from(g.kernel) * usize::from(in_channels / g.groups);
    let (weights, weight_scales, bias) =
        random_params(rng, usize::from(g.out_channels), fan_in, b.quant(x).scale);
    b.conv2d(
        x,
        Conv2dSpec {
            out_channels: g.out_channels,
            kernel: [g.kernel, g.kernel],
            stride: [g.stride, g.stride],
            padding: g.padding,
            groups: g.groups,
            weights,
            weight_scales,
            bias,
            output,
            activation,
        },
    )
    .expect("the test models' convolutions are valid")
}

fn dense(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    out_features: u16,
    output: Quant,
    activation: Activation,
) -> TensorId {
    dense_with_bias(b, rng, x, out_features, output, activation, 1)
}

/// A dense layer whose random biases are `bias_gain` times the usual ones. A students' head
/// needs large ones: after global average pooling, a ReLU network with small biases gives logits
/// nearly proportional to the input's level, hence one class for every input.
fn dense_with_bias(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    out_features: u16,
    output: Quant,
    activation: Activation,
    bias_gain: i32,
) -> TensorId {
    let fan_in = b.shape(x).elements() as usize;
    let (weights, weight_scales, bias) =
        random_params(rng, usize::from(out_features), fan_in, b.quant(x).scale);
    let bias = bias.into_iter().map(|v| v * bias_gain).collect();
    b.dense(
        x,
        DenseSpec {
            out_features,
            weights,
            weight_scales,
            bias,
            output,
            activation,
        },
    )
    .expect("the test models' dense layers are valid")
}

const fn quant(scale: f32, zero_point: i8) -> Quant {
    Quant { scale, zero_point }
}

const POOL2: PoolSpec = PoolSpec {
    kernel: [2, 2],
    stride: [2, 2],
    padding: [0; 4],
};

/// The end-to-end test CNN: 16×16×3 input, 10 classes, every op kind the exporter emits
/// (strided convolution with asymmetric padding, depthwise, 1×1, residual add, max pooling,
/// padded average pooling, dense), with seeded random weights.
pub fn e2e_cnn() -> TestModel {
    let mut rng = Rng(0x7417_4B44);
    // Input zero point ≠ 0, so padding must use the zero point, not 0.
    let q_in = quant(1.0 / 32.0, -3);
    let relu = quant(1.0 / 24.0, -128);
    let linear = quant(1.0 / 24.0, 5);
    let mut b = ModelBuilder::new("e2e-cnn", INPUT, q_in);
    let x = b.input();
    // 16×16×3 → 8×8×8: stride 2, TF-"same"-style asymmetric padding (bottom/right only).
    let strided = ConvGeometry {
        out_channels: 8,
        kernel: 3,
        stride: 2,
        padding: [0, 0, 1, 1],
        groups: 1,
    };
    let x = conv(&mut b, &mut rng, x, strided, relu, Activation::Relu);
    // Depthwise 3×3, ReLU6.
    let depthwise = ConvGeometry {
        groups: 8,
        ..same3x3(8)
    };
    let x = conv(&mut b, &mut rng, x, depthwise, relu, Activation::Relu6);
    // 1×1 expansion to 16 channels, then a 3×3 branch added back (residual).
    let pointwise = ConvGeometry {
        out_channels: 16,
        kernel: 1,
        stride: 1,
        padding: [0; 4],
        groups: 1,
    };
    let skip = conv(&mut b, &mut rng, x, pointwise, linear, Activation::None);
    let branch = conv(
        &mut b,
        &mut rng,
        skip,
        same3x3(16),
        linear,
        Activation::None,
    );
    let x = b
        .add(skip, branch, relu, Activation::Relu)
        .expect("equal shapes");
    // 8×8 → 4×4 max pool, then a padded 3×3 average pool (edge cells average fewer values).
    let x = b.max_pool2d(x, POOL2).expect("valid pool");
    let x = b
        .avg_pool2d(
            x,
            PoolSpec {
                kernel: [3, 3],
                stride: [1, 1],
                padding: [1, 1, 1, 1],
            },
        )
        .expect("valid pool");
    // Dense over the HWC-flattened 4×4×16, then the classifier.
    let x = dense(&mut b, &mut rng, x, 32, relu, Activation::Relu);
    dense(&mut b, &mut rng, x, CLASSES, linear, Activation::None);
    finish(b)
}

/// An int8 student of the shape of the Fashion-MNIST student `mcu_small` (the default
/// `tinykd` student: 28×28×1 → conv 16 → max pool → conv 32 → max pool → conv 64 → global
/// average pool → dense 10, ReLU after each conv), with seeded random weights. Its blob has the
/// size of an exported `mcu_small` blob, give or take the descriptor's name.
pub fn int8_student() -> TestModel {
    let mut rng = Rng(0x1A78_5700);
    let (q_in, q_act) = (quant(1.0 / 32.0, -128), quant(1.0 / 24.0, -128));
    let relu = Activation::Relu;
    let mut b = ModelBuilder::new("int8-student", STUDENT_INPUT, q_in);
    let x = b.input();
    let x = conv(&mut b, &mut rng, x, same3x3(16), q_act, relu);
    let x = b.max_pool2d(x, POOL2).expect("valid pool");
    let x = conv(&mut b, &mut rng, x, same3x3(32), q_act, relu);
    let x = b.max_pool2d(x, POOL2).expect("valid pool");
    let x = conv(&mut b, &mut rng, x, same3x3(64), q_act, relu);
    let x = b.global_avg_pool(x).expect("valid pool");
    let head = quant(1.0 / 8.0, 0);
    dense_with_bias(&mut b, &mut rng, x, CLASSES, head, Activation::None, 10);
    finish(b)
}

/// ±1 weights.
fn plus_minus_one(rng: &mut Rng, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| if rng.next_u64() & 1 == 1 { -1 } else { 1 })
        .collect()
}

/// A binary convolution 3×3, stride 1, padding 1. Its output is packed bits through folded
/// BatchNorm + sign thresholds (a quarter of them with negative slopes), or int8 when `int8`
/// names the output quantization. Its weights are bit-sliced where the exporter would write them
/// so (`tinykd_format::sliced_pays`).
fn binary_conv(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    out_channels: u16,
    int8: Option<Quant>,
) -> TensorId {
    let in_channels = b.shape(x).c;
    let k = 9 * u32::from(in_channels);
    // Binarizing an int8 input: a threshold per channel a little above the zero point (a ReLU
    // output is never below it, so the zero point itself would give all +1 bits).
    let input_thresholds = match b.layout(x) {
        Layout::Int8 => (0..in_channels)
            .map(|_| i32::from(b.quant(x).zero_point) + rng.int(2, 16) as i32)
            .collect(),
        Layout::Packed => vec![],
    };
    let output = match int8 {
        None => {
            let (thresholds, flip) = (0..out_channels)
                .map(|_| {
                    let sign = if rng.int(0, 3) == 0 { -1.0 } else { 1.0 };
                    let slope = sign * f64::from(rng.float(0.5, 2.0));
                    fold_sign(k, slope, f64::from(rng.float(-0.3, 0.3)) * f64::from(k))
                })
                .unzip();
            BinaryOutputSpec::Packed { thresholds, flip }
        }
        Some(output) => BinaryOutputSpec::Int8 {
            flip: (0..out_channels).map(|_| rng.int(0, 3) == 0).collect(),
            bias: (0..out_channels)
                .map(|_| rng.int(-(i64::from(k) / 4), i64::from(k) / 4) as i32)
                .collect(),
            // Spread the ±√k-sized dot products over the int8 range.
            scales: (0..out_channels)
                .map(|_| output.scale * 40.0 / (k as f32).sqrt() * rng.float(0.7, 1.3))
                .collect(),
            output,
            activation: Activation::None,
        },
    };
    let spec = BinaryConv2dSpec {
        out_channels,
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1; 4],
        weights: plus_minus_one(rng, usize::from(out_channels) * k as usize),
        input_thresholds,
        output,
    };
    // Bit-sliced (format 1.4) where the host export writes it so.
    if tinykd_format::sliced_pays(in_channels, out_channels) {
        b.binary_conv2d_sliced(x, spec)
    } else {
        b.binary_conv2d(x, spec)
    }
    .expect("the binary student's convolutions are valid")
}

/// The binary student of the same outline as [`int8_student`] (Larq conventions, int8 first
/// and last layers): 28×28×1 → int8 conv 16 → max pool → binary conv 32 (binarizes its int8
/// input) → binary max pool → binary conv 64 → binary conv 64 (int8 output) → global average
/// pool → dense 10, with seeded random weights and thresholds.
pub fn binary_student() -> TestModel {
    let mut rng = Rng(0xB1A7_5700);
    let (q_in, q_act) = (quant(1.0 / 32.0, -128), quant(1.0 / 24.0, -128));
    let mut b = ModelBuilder::new("binary-student", STUDENT_INPUT, q_in);
    let x = b.input();
    let x = conv(&mut b, &mut rng, x, same3x3(16), q_act, Activation::Relu);
    let x = b.max_pool2d(x, POOL2).expect("valid pool");
    let x = binary_conv(&mut b, &mut rng, x, 32, None);
    let x = b.binary_max_pool2d(x, POOL2).expect("valid pool");
    let x = binary_conv(&mut b, &mut rng, x, 64, None);
    let x = binary_conv(&mut b, &mut rng, x, 64, Some(quant(1.0 / 24.0, -20)));
    let x = b.global_avg_pool(x).expect("valid pool");
    let head = quant(1.0 / 8.0, 0);
    dense_with_bias(&mut b, &mut rng, x, CLASSES, head, Activation::None, 10);
    finish(b)
}

fn finish(b: ModelBuilder) -> TestModel {
    let blob = b.finish().expect("the test model builds");
    let macs = count_macs(&blob);
    TestModel { blob, macs }
}

/// The built-in models by name: `e2e-cnn`, `int8-student`, `binary-student`.
pub const MODEL_NAMES: [&str; 3] = ["e2e-cnn", "int8-student", "binary-student"];

/// The built-in model called `name` (one of [`MODEL_NAMES`]).
pub fn by_name(name: &str) -> Option<TestModel> {
    match name {
        "e2e-cnn" => Some(e2e_cnn()),
        "int8-student" => Some(int8_student()),
        "binary-student" => Some(binary_student()),
        _ => None,
    }
}

/// Multiply-accumulates per inference: convolutions and dense layers, int8 and binary (pooling
/// and adds are not MACs). Read back from the blob, so it counts what the device runs.
pub fn count_macs(blob: &[u8]) -> u64 {
    let desc = validate(blob).expect("a built blob validates");
    let mut macs = 0u64;
    for (i, op) in desc.ops().enumerate() {
        let out = desc
            .tensor(TensorId(i as u16 + 1))
            .expect("op i produces tensor i + 1");
        let input_channels =
            |input: u16| u64::from(desc.tensor(TensorId(input)).expect("valid input").shape.c);
        macs += match op {
            Op::Conv2d(c) => {
                out.shape.elements()
                    * u64::from(c.kernel[0])
                    * u64::from(c.kernel[1])
                    * (input_channels(c.input) / u64::from(c.groups))
            }
            Op::BinaryConv2d(c) | Op::BinaryConv2dSliced(c) => {
                out.shape.elements()
                    * u64::from(c.kernel[0])
                    * u64::from(c.kernel[1])
                    * input_channels(c.input)
            }
            Op::Dense(d) => d.weights.len() as u64,
            // Padded groups hold zero weights: count the real ones, `out · in`.
            Op::DensePaired(d) => {
                out.shape.elements()
                    * desc
                        .tensor(TensorId(d.input))
                        .expect("valid input")
                        .shape
                        .elements()
            }
            _ => 0,
        };
    }
    macs
}

/// `n` random int8 inputs of `shape`, laid end to end, and `n` random labels below `classes`.
///
/// Each sample has its own random level per channel (think brightness and colour) plus pixel
/// noise, saturating at the int8 range now and then. I.i.d. noise alone would average out in
/// the pooling layers and give nearly the same logits, hence the same class, for every sample;
/// with per-sample levels the predictions spread over the classes.
pub fn random_inputs(shape: Shape, classes: u16, n: usize, seed: u64) -> (Vec<i8>, Vec<u8>) {
    let mut rng = Rng(seed);
    let len = shape.elements() as usize;
    let channels = usize::from(shape.c);
    let mut inputs = Vec::with_capacity(n * len);
    for _ in 0..n {
        let levels: Vec<i64> = (0..channels).map(|_| rng.int(-110, 110)).collect();
        for i in 0..len {
            let v = levels[i % channels] + rng.int(-40, 40);
            inputs.push(v.clamp(-128, 127) as i8);
        }
    }
    let labels = (0..n)
        .map(|_| rng.int(0, i64::from(classes) - 1) as u8)
        .collect();
    (inputs, labels)
}

/// `n` random int8 images of `shape` with spatial structure, laid end to end, and `n` random
/// labels below `classes`: each sample is a random plane (a brightness gradient in a random
/// direction) with a few random bright or dark squares and pixel noise. A ReLU network with
/// small biases answers nearly the same class for inputs that differ only in level (its logits
/// scale with the input), so [`random_inputs`]' per-channel levels would not spread a
/// one-channel model's predictions; shapes and gradients do.
pub fn random_images(shape: Shape, classes: u16, n: usize, seed: u64) -> (Vec<i8>, Vec<u8>) {
    let mut rng = Rng(seed);
    let (h, w, c) = (i64::from(shape.h), i64::from(shape.w), usize::from(shape.c));
    let mut inputs = Vec::with_capacity(n * shape.elements() as usize);
    for _ in 0..n {
        let (gy, gx, base) = (rng.int(-12, 12), rng.int(-12, 12), rng.int(-100, 60));
        let squares: Vec<[i64; 4]> = (0..rng.int(1, 4))
            .map(|_| {
                let size = rng.int(2, (h.min(w) / 2).max(2));
                [
                    rng.int(0, h - 1),
                    rng.int(0, w - 1),
                    size,
                    rng.int(-150, 150),
                ]
            })
            .collect();
        for y in 0..h {
            for x in 0..w {
                let mut v =
                    base + gy * (y - h / 2) * 16 / h.max(1) + gx * (x - w / 2) * 16 / w.max(1);
                for &[sy, sx, size, level] in &squares {
                    if (sy..sy + size).contains(&y) && (sx..sx + size).contains(&x) {
                        v += level;
                    }
                }
                for _ in 0..c {
                    inputs.push((v + rng.int(-20, 20)).clamp(-128, 127) as i8);
                }
            }
        }
    }
    let labels = (0..n)
        .map(|_| rng.int(0, i64::from(classes) - 1) as u8)
        .collect();
    (inputs, labels)
}

/// Window of the streaming test model: 128 samples × 3 accelerometer channels (HAPT: 2.56 s at
/// 50 Hz, in g).
pub const STREAM_INPUT: Shape = Shape { h: 1, w: 128, c: 3 };
/// Classes of the streaming test model (HAPT's six activities).
pub const STREAM_CLASSES: u16 = 6;

/// A conv1d of kernel `[1, k]`, "same" padding, stride 1, ReLU.
fn conv1d(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    out_channels: u16,
    k: u8,
    groups: u16,
    output: Quant,
) -> TensorId {
    let fan_in = usize::from(k) * usize::from(b.shape(x).c / groups);
    let (weights, weight_scales, bias) =
        random_params(rng, usize::from(out_channels), fan_in, b.quant(x).scale);
    b.conv2d(
        x,
        Conv2dSpec {
            out_channels,
            kernel: [1, k],
            stride: [1, 1],
            padding: [0, k / 2, 0, k / 2],
            groups,
            weights,
            weight_scales,
            bias,
            output,
            activation: Activation::Relu,
        },
    )
    .expect("the streaming model's conv1d layers are valid")
}

/// The streaming test model (issue 7): a 1-D CNN of the HAPT student's shape with seeded random
/// weights and an input normalisation (format 1.3), so the board normalises raw values in g:
/// `[1, 128, 3]` → conv1d 16 (k 5) → max pool `[1, 2]` → conv1d 32 (k 5) → max pool → depthwise
/// conv1d (k 5) → global average pool → dense 6.
pub fn conv1d_stream_model() -> TestModel {
    let mut rng = Rng(0x5742_EA01);
    let relu = quant(1.0 / 24.0, -128);
    let mut b = ModelBuilder::new("stream-cnn", STREAM_INPUT, quant(1.0 / 32.0, 0));
    let pool = PoolSpec {
        kernel: [1, 2],
        stride: [1, 2],
        padding: [0; 4],
    };
    let x = b.input();
    let x = conv1d(&mut b, &mut rng, x, 16, 5, 1, relu);
    let x = b.max_pool2d(x, pool).expect("valid pool");
    let x = conv1d(&mut b, &mut rng, x, 32, 5, 1, relu);
    let x = b.max_pool2d(x, pool).expect("valid pool");
    let x = conv1d(&mut b, &mut rng, x, 32, 5, 32, relu);
    let x = b.global_avg_pool(x).expect("valid pool");
    dense_with_bias(
        &mut b,
        &mut rng,
        x,
        STREAM_CLASSES,
        quant(1.0 / 16.0, 0),
        Activation::None,
        8,
    );
    // Body-frame acceleration in g: gravity mostly along x (a phone at the waist, as in HAPT).
    b.input_normalization(&[(0.8, 0.4), (0.0, 0.35), (0.1, 0.3)])
        .expect("one (mean, std) per channel");
    finish(b)
}

/// A synthetic accelerometer recording (`.tkr` values and labels) of `steps` samples × 3
/// channels in g: segments of 150 steps, each a random activity (label 0..6) with its own
/// gravity direction, oscillation frequency and amplitude, plus noise.
pub fn synthetic_stream(steps: usize, seed: u64) -> (Vec<f32>, Vec<u8>) {
    let mut rng = Rng(seed);
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    let mut segment = (0u8, [1.0f32, 0.0, 0.0], 0.0f32, 0.0f32);
    for t in 0..steps {
        if t % 150 == 0 {
            let label = rng.int(0, i64::from(STREAM_CLASSES) - 1) as u8;
            let g = [
                rng.float(0.5, 1.0),
                rng.float(-0.5, 0.5),
                rng.float(-0.5, 0.5),
            ];
            segment = (label, g, rng.float(0.5, 3.0), rng.float(0.0, 0.8));
        }
        let (label, g, hz, amp) = segment;
        let phase = 2.0 * core::f32::consts::PI * hz * t as f32 / 50.0;
        for (c, &gc) in g.iter().enumerate() {
            let wave = amp * (phase + c as f32).sin();
            values.push(gc + wave + rng.float(-0.05, 0.05));
        }
        labels.push(label);
    }
    (values, labels)
}

/// Steps of the default synthetic stream: 16 windows of 128 at a hop of 64.
pub const DEFAULT_STREAM_STEPS: usize = 128 + 15 * 64;
/// Seed of the default synthetic stream.
pub const DEFAULT_STREAM_SEED: u64 = 0x5742_EA02;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_builds_and_validates() {
        for name in MODEL_NAMES {
            let model = by_name(name).expect("a built-in model");
            let desc = validate(&model.blob).expect("valid");
            assert!(model.macs > 0, "{name}");
            assert!(desc.arena_size() > 0, "{name}");
        }
        assert!(by_name("nope").is_none());
    }

    #[test]
    fn the_models_are_deterministic() {
        assert_eq!(int8_student().blob, int8_student().blob);
        assert_eq!(binary_student().blob, binary_student().blob);
        assert_eq!(
            random_inputs(INPUT, CLASSES, 3, 7),
            random_inputs(INPUT, CLASSES, 3, 7)
        );
    }

    #[test]
    fn the_student_blobs_fit_a_small_flash() {
        // mcu_small's exported blob is about 25 KB; the binary student packs its inner
        // convolutions 8× tighter.
        let int8 = int8_student().blob.len();
        let binary = binary_student().blob.len();
        assert!(int8 < 32 * 1024, "{int8}");
        assert!(binary < int8 / 2, "{binary} vs {int8}");
    }
}
