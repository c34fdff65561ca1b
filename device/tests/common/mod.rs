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
