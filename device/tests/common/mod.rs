//! Models shared by the integration tests and the fuzz-seed example.
#![allow(dead_code)]

use tinykd_format::{Activation, Conv2dSpec, DenseSpec, ModelBuilder, PoolSpec, Quant, Shape};

/// Deterministic pseudo-random bytes (xorshift64*), for weights and inputs.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn i8s(&mut self, n: usize) -> Vec<i8> {
        (0..n).map(|_| self.next() as i8).collect()
    }
    pub fn weights(&mut self, n: usize) -> Vec<i8> {
        (0..n)
            .map(|_| (self.below(255) as i16 - 127) as i8)
            .collect()
    }
}

fn q(scale: f32, zero_point: i8) -> Quant {
    Quant { scale, zero_point }
}

/// A small CNN using every op kind: 8×8×3 → conv 3×3 (8) → depthwise 3×3 s2 → 1×1 conv (8) →
/// add (residual) → max pool → avg pool → global average pool → reshape → dense (10).
pub fn all_ops_model() -> Vec<u8> {
    let mut rng = Rng(0x5EED);
    let mut b = ModelBuilder::new("all-ops", Shape { h: 8, w: 8, c: 3 }, q(1.0 / 255.0, -128));
    let x = b.input();
    let conv = |rng: &mut Rng, out: u16, k: u8, s: u8, p: u8, groups: u16, cin: u16, oq: Quant| {
        let per = out as usize * k as usize * k as usize * (cin / groups) as usize;
        Conv2dSpec {
            out_channels: out,
            kernel: [k, k],
            stride: [s, s],
            padding: [p; 4],
            groups,
            weights: rng.weights(per),
            weight_scales: (0..out).map(|i| 0.002 + 0.0005 * i as f32).collect(),
            bias: (0..out).map(|_| rng.below(2001) as i32 - 1000).collect(),
            output: oq,
            activation: Activation::Relu,
        }
    };
    let t1 = b
        .conv2d(x, conv(&mut rng, 8, 3, 1, 1, 1, 3, q(0.02, -128)))
        .unwrap();
    let t2 = b
        .conv2d(t1, conv(&mut rng, 8, 3, 2, 1, 8, 8, q(0.02, -128)))
        .unwrap();
    let t3 = b
        .conv2d(t2, conv(&mut rng, 8, 1, 1, 0, 1, 8, q(0.03, -100)))
        .unwrap();
    let t4 = b.add(t2, t3, q(0.04, -128), Activation::Relu).unwrap();
    let pool = PoolSpec {
        kernel: [2, 2],
        stride: [1, 1],
        padding: [0, 0, 1, 1],
    };
    let t5 = b.max_pool2d(t4, pool).unwrap();
    let t6 = b.avg_pool2d(t5, pool).unwrap();
    let t7 = b.global_avg_pool(t6).unwrap();
    let t8 = b.reshape(t7, Shape { h: 1, w: 1, c: 8 }).unwrap();
    b.dense(
        t8,
        DenseSpec {
            out_features: 10,
            weights: rng.weights(80),
            weight_scales: vec![0.01; 10],
            bias: (0..10).map(|i| i * 50 - 250).collect(),
            output: q(0.1, 0),
            activation: Activation::None,
        },
    )
    .unwrap();
    b.finish().unwrap()
}

/// A small binary model (format 1.2): 8×8×3 → int8 conv 3×3 (8) → binary conv 3×3 (int8 input
/// binarized per channel, 37 packed channels) → binary max pool 2×2 → binary conv 3×3 s2 (int8
/// output, 5 channels) → dense (10).
pub fn binary_model() -> Vec<u8> {
    use tinykd_format::{fold_sign, BinaryConv2dSpec, BinaryOutputSpec};
    let mut rng = Rng(0xB1B1);
    let mut b = ModelBuilder::new("binary", Shape { h: 8, w: 8, c: 3 }, q(1.0 / 255.0, -128));
    let x = b.input();
    let t1 = b
        .conv2d(
            x,
            Conv2dSpec {
                out_channels: 8,
                kernel: [3, 3],
                stride: [1, 1],
                padding: [1; 4],
                groups: 1,
                weights: rng.weights(8 * 9 * 3),
                weight_scales: vec![0.004],
                bias: (0..8).map(|_| rng.below(2001) as i32 - 1000).collect(),
                output: q(0.02, -3),
                activation: Activation::None,
            },
        )
        .unwrap();
    let mut pm1 = |n: usize| -> Vec<i8> {
        (0..n)
            .map(|_| if rng.next() & 1 == 1 { -1 } else { 1 })
            .collect()
    };
    let (thresholds, flip) = (0..37)
        .map(|c| fold_sign(72, 1.0 - (c % 3) as f64, c as f64 - 18.0))
        .unzip();
    let t2 = b
        .binary_conv2d(
            t1,
            BinaryConv2dSpec {
                out_channels: 37,
                kernel: [3, 3],
                stride: [1, 1],
                padding: [1; 4],
                weights: pm1(37 * 9 * 8),
                input_thresholds: vec![-3, -2, -1, 0, 1, 2, 3, -3],
                output: BinaryOutputSpec::Packed { thresholds, flip },
            },
        )
        .unwrap();
    let t3 = b
        .binary_max_pool2d(
            t2,
            PoolSpec {
                kernel: [2, 2],
                stride: [2, 2],
                padding: [0; 4],
            },
        )
        .unwrap();
    let t4 = b
        .binary_conv2d(
            t3,
            BinaryConv2dSpec {
                out_channels: 5,
                kernel: [3, 3],
                stride: [2, 2],
                padding: [1; 4],
                weights: pm1(5 * 9 * 37),
                input_thresholds: vec![],
                output: BinaryOutputSpec::Int8 {
                    flip: vec![false, true, false, true, false],
                    bias: vec![10, -10, 0, 5, -5],
                    scales: vec![0.1, 0.2, 0.15, 0.05, 0.1],
                    output: q(0.25, 0),
                    activation: Activation::None,
                },
            },
        )
        .unwrap();
    let n = b.shape(t4).elements() as usize;
    b.dense(
        t4,
        DenseSpec {
            out_features: 10,
            weights: rng.weights(10 * n),
            weight_scales: vec![0.01],
            bias: vec![0; 10],
            output: q(0.1, 0),
            activation: Activation::None,
        },
    )
    .unwrap();
    b.finish().unwrap()
}
