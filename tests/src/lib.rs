//! # tinykd-tests
//!
//! End-to-end checks of tinykd across its crates; the tests themselves are in `tests/`
//! (`qemu_e2e.rs`: the same blob on the host and on the emulated Cortex-M4F board, byte for
//! byte). This library holds what they share: a deterministic random-weight int8 CNN built with
//! `tinykd-format`'s builder, random sample sets for it, and a MAC count read back from a blob.
//!
//! Everything is seeded and uses its own tiny generator, so the model and the inputs are the
//! same on every machine and with every version of every dependency: an instruction count
//! measured today can be compared with one measured next month.

use std::path::{Path, PathBuf};

use tinykd::deploy::SampleSet;
use tinykd_format::{
    validate, Activation, Conv2dSpec, DenseSpec, ModelBuilder, Op, PoolSpec, Quant, Shape, TensorId,
};

/// The repository root (the parent of this crate's folder).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository root")
        .to_path_buf()
}

/// Classes of the test CNN.
pub const CLASSES: u16 = 10;
/// Input of the test CNN: 16×16 pixels, 3 channels.
pub const INPUT: Shape = Shape { h: 16, w: 16, c: 3 };

/// SplitMix64: a tiny deterministic generator, so the test model and inputs are the same on
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

/// Random symmetric int8 weights, per-channel scales around a He-uniform range for `fan_in`,
/// and small biases: activations then keep a spread instead of saturating, so the comparison
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

/// The test CNN as a blob, and its multiply-accumulate count per inference.
pub struct TestModel {
    /// The blob (`.tkd` bytes).
    pub blob: Vec<u8>,
    /// Multiply-accumulates per inference.
    pub macs: u64,
}

#[allow(clippy::too_many_arguments)]
fn conv(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    out_channels: u16,
    kernel: u8,
    stride: u8,
    padding: [u8; 4],
    groups: u16,
    output: Quant,
    activation: Activation,
) -> TensorId {
    let in_channels = b.shape(x).c;
    let fan_in = usize::from(kernel) * usize::from(kernel) * usize::from(in_channels / groups);
    let (weights, weight_scales, bias) =
        random_params(rng, usize::from(out_channels), fan_in, b.quant(x).scale);
    b.conv2d(
        x,
        Conv2dSpec {
            out_channels,
            kernel: [kernel, kernel],
            stride: [stride, stride],
            padding,
            groups,
            weights,
            weight_scales,
            bias,
            output,
            activation,
        },
    )
    .expect("the test CNN's convolutions are valid")
}

fn dense(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    out_features: u16,
    output: Quant,
    activation: Activation,
) -> TensorId {
    let fan_in = b.shape(x).elements() as usize;
    let (weights, weight_scales, bias) =
        random_params(rng, usize::from(out_features), fan_in, b.quant(x).scale);
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
    .expect("the test CNN's dense layers are valid")
}

/// The end-to-end test CNN: 16×16×3 input, 10 classes, every op kind the exporter emits
/// (strided convolution with asymmetric padding, depthwise, 1×1, residual add, max pooling,
/// padded average pooling, dense), with seeded random weights.
pub fn test_model() -> TestModel {
    let mut rng = Rng(0x7417_4B44);
    // Input zero point ≠ 0, so padding must use the zero point, not 0.
    let q_in = Quant {
        scale: 1.0 / 32.0,
        zero_point: -3,
    };
    let relu = Quant {
        scale: 1.0 / 24.0,
        zero_point: -128,
    };
    let linear = Quant {
        scale: 1.0 / 24.0,
        zero_point: 5,
    };
    let mut b = ModelBuilder::new("e2e-cnn", INPUT, q_in);
    let x = b.input();
    // 16×16×3 → 8×8×8: stride 2, TF-"same"-style asymmetric padding (bottom/right only).
    let x = conv(
        &mut b,
        &mut rng,
        x,
        8,
        3,
        2,
        [0, 0, 1, 1],
        1,
        relu,
        Activation::Relu,
    );
    // Depthwise 3×3, ReLU6.
    let x = conv(
        &mut b,
        &mut rng,
        x,
        8,
        3,
        1,
        [1, 1, 1, 1],
        8,
        relu,
        Activation::Relu6,
    );
    // 1×1 expansion to 16 channels, then a 3×3 branch added back (residual).
    let skip = conv(
        &mut b,
        &mut rng,
        x,
        16,
        1,
        1,
        [0; 4],
        1,
        linear,
        Activation::None,
    );
    let branch = conv(
        &mut b,
        &mut rng,
        skip,
        16,
        3,
        1,
        [1, 1, 1, 1],
        1,
        linear,
        Activation::None,
    );
    let x = b
        .add(skip, branch, relu, Activation::Relu)
        .expect("equal shapes");
    // 8×8 → 4×4 max pool, then a padded 3×3 average pool (edge cells average fewer values).
    let x = b
        .max_pool2d(
            x,
            PoolSpec {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0; 4],
            },
        )
        .expect("valid pool");
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
    let blob = b.finish().expect("the test CNN builds");
    let macs = count_macs(&blob);
    TestModel { blob, macs }
}

/// Multiply-accumulates per inference: convolutions and dense layers (pooling and adds are
/// not MACs). Read back from the blob, so it counts what the device runs.
pub fn count_macs(blob: &[u8]) -> u64 {
    let desc = validate(blob).expect("a built blob validates");
    let mut macs = 0u64;
    for (i, op) in desc.ops().enumerate() {
        let out = desc
            .tensor(TensorId(i as u16 + 1))
            .expect("op i produces tensor i + 1");
        match op {
            Op::Conv2d(c) => {
                let input = desc.tensor(TensorId(c.input)).expect("valid input");
                let per_output = u64::from(c.kernel[0])
                    * u64::from(c.kernel[1])
                    * u64::from(input.shape.c / c.groups);
                macs += out.shape.elements() * per_output;
            }
            Op::Dense(d) => macs += d.weights.len() as u64,
            _ => {}
        }
    }
    macs
}

/// `n` random int8 inputs for the test CNN, with random labels.
///
/// Each sample has its own random level per channel (think brightness and colour) plus
/// pixel noise, saturating at the int8 range now and then. I.i.d. noise alone would average
/// out in the pooling layers and give nearly the same logits, hence the same class, for every
/// sample; with per-sample levels the predictions spread over the classes.
pub fn random_samples(n: usize, seed: u64) -> SampleSet {
    let mut rng = Rng(seed);
    let len = INPUT.elements() as usize;
    let channels = usize::from(INPUT.c);
    let mut inputs = Vec::with_capacity(n * len);
    for _ in 0..n {
        let levels: Vec<i64> = (0..channels).map(|_| rng.int(-110, 110)).collect();
        for i in 0..len {
            let v = levels[i % channels] + rng.int(-40, 40);
            inputs.push(v.clamp(-128, 127) as i8);
        }
    }
    let labels = (0..n)
        .map(|_| rng.int(0, i64::from(CLASSES) - 1) as u8)
        .collect();
    SampleSet::new(len, inputs, labels).expect("consistent lengths")
}
