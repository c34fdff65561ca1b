//! Links the right `memory.x` for the target and builds the firmware's models on the host with
//! `tinykd-format`'s builder (seeded, so every build embeds the same bytes):
//! - `CHECK`: small random models (conv with odd channel counts, padding, strides and zero
//!   points; depthwise, and 3×3 stride-1 depthwise of even output widths; 1×1; dense) for the
//!   fast-vs-reference equivalence check;
//! - `BENCH`: the benchmark layers of `shared/reference/cmsis-nn-baseline.md` (L1–L5b) and the
//!   Fashion-MNIST-size student, each with its MAC count.
use std::{
    env,
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
};

use tinykd_format::{
    fold_sign, Activation, BinaryConv2dSpec, BinaryDenseSpec, BinaryOutputSpec, Conv2dSpec,
    DenseSpec, ModelBuilder, PoolSpec, Quant, Shape, TensorId,
};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn float(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
}

fn q(scale: f32, zero_point: i8) -> Quant {
    Quant { scale, zero_point }
}

/// Random symmetric weights with He-uniform-like scales and small biases (outputs stay spread).
fn params(rng: &mut Rng, out: usize, fan_in: usize, s_in: f32) -> (Vec<i8>, Vec<f32>, Vec<i32>) {
    let w = (0..out * fan_in)
        .map(|_| rng.int(-127, 127) as i8)
        .collect();
    let range = (6.0 / fan_in as f32).sqrt();
    let scales: Vec<f32> = (0..out)
        .map(|_| range * rng.float(0.6, 1.4) / 127.0)
        .collect();
    let bias = scales
        .iter()
        .map(|&s| (rng.float(-0.3, 0.3) / (s_in * s)).round() as i32)
        .collect();
    (w, scales, bias)
}

#[allow(clippy::too_many_arguments)]
fn conv(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    out: u16,
    k: [u8; 2],
    stride: [u8; 2],
    padding: [u8; 4],
    groups: u16,
    output: Quant,
    activation: Activation,
) -> Option<TensorId> {
    let cin = b.shape(x).c;
    let fan_in = k[0] as usize * k[1] as usize * (cin / groups) as usize;
    let (weights, weight_scales, bias) = params(rng, out as usize, fan_in, b.quant(x).scale);
    b.conv2d(
        x,
        Conv2dSpec {
            out_channels: out,
            kernel: k,
            stride,
            padding,
            groups,
            weights,
            weight_scales,
            bias,
            output,
            activation,
        },
    )
    .ok()
}

fn dense(b: &mut ModelBuilder, rng: &mut Rng, x: TensorId, out: u16, output: Quant) -> TensorId {
    let fan_in = b.shape(x).elements() as usize;
    let (weights, weight_scales, bias) = params(rng, out as usize, fan_in, b.quant(x).scale);
    b.dense(
        x,
        DenseSpec {
            out_features: out,
            weights,
            weight_scales,
            bias,
            output,
            activation: Activation::Relu,
        },
    )
    .expect("valid dense")
}

/// [`dense`] with the weights in the paired layout (format 1.5), as the exporter writes it.
fn dense_paired(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    out: u16,
    output: Quant,
) -> TensorId {
    let fan_in = b.shape(x).elements() as usize;
    let (weights, weight_scales, bias) = params(rng, out as usize, fan_in, b.quant(x).scale);
    b.dense_paired(
        x,
        DenseSpec {
            out_features: out,
            weights,
            weight_scales,
            bias,
            output,
            activation: Activation::Relu,
        },
    )
    .expect("valid paired dense")
}

/// A random model around paired dense layers (format 1.5): an optional conv first, then one or
/// two paired dense layers of 1–9 rows over inputs of any length (up to ~1100 on the Cortex-M4:
/// more than two chunks of 512; `small` for the Cortex-M0's flash), input zero points at the
/// extremes.
fn paired_check_model(rng: &mut Rng, i: usize, small: bool) -> Vec<u8> {
    let zp_in = [-128, 127, 0, rng.int(-128, 127) as i8][i % 4];
    let c = if small {
        rng.int(1, 60) as u16
    } else {
        rng.int(1, 1100) as u16
    };
    let shape = Shape { h: 1, w: 1, c };
    let mut b = ModelBuilder::new("pcheck", shape, q(rng.float(0.01, 0.05), zp_in));
    let mut x = b.input();
    if i % 3 == 2 {
        let side = if small { 4 } else { 6 };
        let s = Shape {
            h: rng.int(2, side) as u16,
            w: rng.int(2, side) as u16,
            c: rng.int(1, 7) as u16,
        };
        b = ModelBuilder::new("pcheck", s, q(rng.float(0.01, 0.05), zp_in));
        x = b.input();
        let oc = rng.int(1, if small { 4 } else { 9 }) as u16;
        let out_q = q(rng.float(0.02, 0.08), rng.int(-128, 127) as i8);
        x = conv(
            &mut b,
            rng,
            x,
            oc,
            [3, 3],
            [1, 1],
            [1; 4],
            1,
            out_q,
            Activation::Relu,
        )
        .expect("valid conv");
    }
    for _ in 0..rng.int(1, 2) {
        let out_q = q(rng.float(0.02, 0.08), rng.int(-128, 127) as i8);
        let rows = rng.int(1, 9) as u16;
        x = dense_paired(&mut b, rng, x, rows, out_q);
    }
    b.finish().expect("valid paired check model")
}

/// A random model of one to three conv / depthwise / dense ops on a small input.
fn check_model(rng: &mut Rng, i: usize) -> Vec<u8> {
    loop {
        let zp_in = rng.int(-128, 127) as i8;
        let c = match i % 4 {
            0 => 4 * rng.int(1, 4) as u16,
            _ => rng.int(1, 11) as u16,
        };
        let shape = Shape {
            h: rng.int(1, 9) as u16,
            w: rng.int(1, 9) as u16,
            c,
        };
        let mut b = ModelBuilder::new("check", shape, q(rng.float(0.01, 0.05), zp_in));
        let mut x = b.input();
        let mut ok = true;
        for _ in 0..rng.int(1, 3) {
            let s = b.shape(x);
            let out_q = q(rng.float(0.02, 0.08), rng.int(-128, 127) as i8);
            let act =
                [Activation::None, Activation::Relu, Activation::Relu6][rng.int(0, 2) as usize];
            let k = [rng.int(1, 3) as u8, rng.int(1, 3) as u8];
            let stride = [rng.int(1, 2) as u8, rng.int(1, 2) as u8];
            let pad = [0; 4].map(|_| rng.int(0, 2) as u8);
            let (kind, oc, features) =
                (rng.int(0, 3), rng.int(1, 13) as u16, rng.int(1, 24) as u16);
            let y = match kind {
                0 | 1 => conv(&mut b, rng, x, oc, k, stride, pad, 1, out_q, act),
                2 => conv(&mut b, rng, x, s.c, k, stride, pad, s.c, out_q, act),
                _ => Some(dense(&mut b, rng, x, features, out_q)),
            };
            match y {
                Some(y) => x = y,
                None => ok = false,
            }
        }
        if ok && x.0 > 0 {
            if let Ok(blob) = b.finish() {
                return blob;
            }
        }
    }
}

/// ±1 weights.
fn pm1(rng: &mut Rng, n: usize) -> Vec<i8> {
    (0..n)
        .map(|_| if rng.next() & 1 == 1 { -1 } else { 1 })
        .collect()
}

/// Thresholds of a BatchNorm-like random affine map, folded (some negative slopes).
fn folded(rng: &mut Rng, k: u32, n: u16) -> BinaryOutputSpec {
    let (thresholds, flip) = (0..n)
        .map(|_| {
            let a = if rng.int(0, 3) == 0 { -1.0 } else { 1.0 } * f64::from(rng.float(0.5, 2.0));
            fold_sign(k, a, f64::from(rng.float(-0.3, 0.3)) * f64::from(k))
        })
        .unzip();
    BinaryOutputSpec::Packed { thresholds, flip }
}

/// An int8 output stage for a binary layer of `k` products per output.
fn int8_out(rng: &mut Rng, k: u32, n: u16, output: Quant) -> BinaryOutputSpec {
    BinaryOutputSpec::Int8 {
        flip: (0..n).map(|_| rng.int(0, 3) == 0).collect(),
        bias: (0..n)
            .map(|_| rng.int(-(k as i64) / 4, k as i64 / 4) as i32)
            .collect(),
        // Spread the ±√k-sized dot products over the int8 range.
        scales: (0..n)
            .map(|_| output.scale * 40.0 / (k as f32).sqrt() * rng.float(0.7, 1.3))
            .collect(),
        output,
        activation: Activation::None,
    }
}

#[allow(clippy::too_many_arguments)]
fn bconv(
    b: &mut ModelBuilder,
    rng: &mut Rng,
    x: TensorId,
    out: u16,
    k: [u8; 2],
    stride: [u8; 2],
    padding: [u8; 4],
    int8_output: Option<Quant>,
    sliced: bool,
) -> Option<TensorId> {
    let cin = b.shape(x).c;
    let kk = u32::from(k[0]) * u32::from(k[1]) * u32::from(cin);
    let input_thresholds = match b.layout(x) {
        tinykd_format::Layout::Int8 if rng.int(0, 1) == 0 => vec![i32::from(b.quant(x).zero_point)],
        tinykd_format::Layout::Int8 => (0..cin)
            .map(|_| i32::from(b.quant(x).zero_point) + rng.int(-10, 10) as i32)
            .collect(),
        tinykd_format::Layout::Packed => vec![],
    };
    let output = match int8_output {
        Some(q) => int8_out(rng, kk, out, q),
        None => folded(rng, kk, out),
    };
    let spec = BinaryConv2dSpec {
        out_channels: out,
        kernel: k,
        stride,
        padding,
        weights: pm1(rng, out as usize * kk as usize),
        input_thresholds,
        output,
    };
    if sliced {
        b.binary_conv2d_sliced(x, spec).ok()
    } else {
        b.binary_conv2d(x, spec).ok()
    }
}

/// A random binary model: int8 conv → binary conv (int8 input) → binary convs / max pools
/// (odd channel counts, padding, strides) → binary conv or dense with int8 output → dense.
/// A depthwise 3×3 stride-1 model with an even output width ≥ 4 (the DSP kernels' plane path):
/// widths 4k and 4k + 2, padding 0..=2 per side, every activation (clamped or not), channel
/// counts of any remainder mod 4.
fn plane_check_model(rng: &mut Rng, i: usize) -> Vec<u8> {
    loop {
        let zp_in = rng.int(-128, 127) as i8;
        let pad = [0; 4].map(|_| rng.int(0, 2) as u8);
        let h = rng.int(1, 10) as u16;
        let w = rng.int(2, 12) as u16;
        let ow = i64::from(w) + i64::from(pad[1]) + i64::from(pad[3]) - 2;
        if ow < 4 || ow % 2 != 0 || i64::from(h) + i64::from(pad[0]) + i64::from(pad[2]) < 3 {
            continue;
        }
        // Enough channels that the plane (the padded input, int16) fits the scratch plan
        // (9 taps × align4(c) int16 weights).
        let plane = (i64::from(h) + i64::from(pad[0]) + i64::from(pad[2])) * (ow + 2) * 2;
        let c_min = ((plane + 17) / 18 + 3) / 4 * 4 - 3;
        let c = rng.int(c_min.max(1), c_min.max(1) + 6) as u16;
        let mut b = ModelBuilder::new("plane", Shape { h, w, c }, q(rng.float(0.01, 0.05), zp_in));
        let x = b.input();
        let out_q = q(rng.float(0.02, 0.08), rng.int(-128, 127) as i8);
        let act = [Activation::None, Activation::Relu, Activation::Relu6][i % 3];
        if conv(&mut b, rng, x, c, [3, 3], [1, 1], pad, c, out_q, act).is_some() {
            if let Ok(blob) = b.finish() {
                return blob;
            }
        }
    }
}

/// A pointwise model (the DSP kernels' 4×1 path for 1×1 convolutions): one or two 1×1 convs,
/// `ic` of 16·k (eight groups per pass when a multiple of 32, else four), `oc` of 4·k, every
/// activation (clamped or not), any zero points.
fn pointwise_check_model(rng: &mut Rng, i: usize) -> Vec<u8> {
    loop {
        let (h, w) = (rng.int(1, 8) as u16, rng.int(1, 8) as u16);
        let c = [16u16, 32, 48, 64][i % 4];
        let zp_in = rng.int(-128, 127) as i8;
        let mut b = ModelBuilder::new(
            "pointwise",
            Shape { h, w, c },
            q(rng.float(0.01, 0.05), zp_in),
        );
        let mut x = b.input();
        let mut ok = true;
        for layer in 0..1 + i % 2 {
            let oc = if layer == 0 {
                16 * rng.int(1, 3) as u16
            } else {
                4 * rng.int(1, 9) as u16
            };
            let out_q = q(rng.float(0.02, 0.08), rng.int(-128, 127) as i8);
            let act = [Activation::None, Activation::Relu, Activation::Relu6][(i + layer) % 3];
            match conv(&mut b, rng, x, oc, [1, 1], [1, 1], [0; 4], 1, out_q, act) {
                Some(y) => x = y,
                None => ok = false,
            }
        }
        if ok {
            if let Ok(blob) = b.finish() {
                return blob;
            }
        }
    }
}

/// A one-channel 3×3 model (the DSP kernels' path for first layers): stride 1 or 2, padding 0 or
/// 1 per side,
/// widths up to the band's limit, an even channel count (odd ones take the general path), the
/// full int8 output range (no activation, or ReLU at output zero point −128), then a second
/// conv so that the outputs feed on.
fn one_channel_check_model(rng: &mut Rng, i: usize) -> Vec<u8> {
    loop {
        let pad = [0; 4].map(|_| rng.int(0, 1) as u8);
        let h = rng.int(3, 12) as u16;
        let w = [3, 9, 28, 40, 124][i % 5];
        let zp_in = rng.int(-128, 127) as i8;
        let mut b = ModelBuilder::new(
            "onech",
            Shape { h, w, c: 1 },
            q(rng.float(0.01, 0.05), zp_in),
        );
        let x = b.input();
        let oc = [2u16, 16, 18, 32, 6][(i + 1) % 5] + u16::from(i % 7 == 6);
        let (act, zp) = if i.is_multiple_of(2) {
            (Activation::None, rng.int(-128, 127) as i8)
        } else {
            (Activation::Relu, -128)
        };
        let out_q = q(rng.float(0.02, 0.08), zp);
        let stride = [1u8, 2][i % 2];
        let Some(y) = conv(&mut b, rng, x, oc, [3, 3], [stride; 2], pad, 1, out_q, act) else {
            continue;
        };
        let out_q = q(rng.float(0.02, 0.08), rng.int(-128, 127) as i8);
        if conv(
            &mut b,
            rng,
            y,
            4,
            [1, 1],
            [1, 1],
            [0; 4],
            1,
            out_q,
            Activation::None,
        )
        .is_none()
        {
            continue;
        }
        if let Ok(blob) = b.finish() {
            return blob;
        }
    }
}

/// A random 1-D CNN (issue 7): a `[1, T, C]` window, one to three conv1d layers (kernel
/// `[1, k]`, k = 3, 5, 7, 9; stride 1–2; same or random padding; odd channel counts; every
/// third one depthwise), a `[1, 2]` max pool, and global average pooling + dense at the end.
/// `small`: at most 8 channels and 40 samples (the microbit's flash).
fn conv1d_check_model(rng: &mut Rng, i: usize, small: bool) -> Vec<u8> {
    let max_c = if small { 8 } else { 33 };
    loop {
        let c = [1, 3, 6, rng.int(1, max_c.min(17)) as u16][i % 4];
        let t = rng.int(8, if small { 40 } else { 80 }) as u16;
        let zp_in = rng.int(-128, 127) as i8;
        let mut b = ModelBuilder::new(
            "conv1d",
            Shape { h: 1, w: t, c },
            q(rng.float(0.01, 0.05), zp_in),
        );
        let mut x = b.input();
        let mut ok = true;
        for layer in 0..rng.int(1, 3) {
            let s = b.shape(x);
            let k = [3u8, 5, 7, 9][rng.int(0, 3) as usize];
            let stride = rng.int(1, 2) as u8;
            let (p, pr) = if layer % 2 == 0 {
                (k / 2, k / 2)
            } else {
                (
                    rng.int(0, i64::from(k) - 1) as u8,
                    rng.int(0, i64::from(k) - 1) as u8,
                )
            };
            let out_q = q(rng.float(0.02, 0.08), rng.int(-128, 127) as i8);
            let act =
                [Activation::None, Activation::Relu, Activation::Relu6][rng.int(0, 2) as usize];
            let depthwise = (i + layer as usize) % 3 == 2;
            let (oc, groups) = if depthwise {
                (s.c, s.c)
            } else {
                (rng.int(1, max_c) as u16, 1)
            };
            match conv(
                &mut b,
                rng,
                x,
                oc,
                [1, k],
                [1, stride],
                [0, p, 0, pr],
                groups,
                out_q,
                act,
            ) {
                Some(y) => x = y,
                None => ok = false,
            }
            if ok && rng.int(0, 1) == 1 && b.shape(x).w >= 2 {
                let spec = PoolSpec {
                    kernel: [1, 2],
                    stride: [1, 2],
                    padding: [0; 4],
                };
                match b.max_pool2d(x, spec) {
                    Ok(y) => x = y,
                    Err(_) => ok = false,
                }
            }
        }
        if ok && i % 2 == 1 {
            let g = b.global_avg_pool(x).expect("global average pool");
            let out_q = q(rng.float(0.02, 0.08), rng.int(-128, 127) as i8);
            x = dense(&mut b, rng, g, 6, out_q);
        }
        if ok {
            if let Ok(blob) = b.finish() {
                return blob;
            }
        }
    }
}

/// An int8 max pool of 4k channels (the DSP kernel's case): kernels 1..=3, strides 1..=2,
/// padding smaller than the kernel, after a conv so the values are spread.
fn pool_check_model(rng: &mut Rng) -> Vec<u8> {
    loop {
        let c = 4 * rng.int(1, 5) as u16;
        let shape = Shape {
            h: rng.int(1, 9) as u16,
            w: rng.int(1, 9) as u16,
            c,
        };
        let mut b = ModelBuilder::new("pool", shape, q(0.03, rng.int(-128, 127) as i8));
        let x = b.input();
        let k = [rng.int(1, 3) as u8, rng.int(1, 3) as u8];
        let spec = PoolSpec {
            kernel: k,
            stride: [rng.int(1, 2) as u8, rng.int(1, 2) as u8],
            padding: [0, 1, 2, 3].map(|i| rng.int(0, i64::from(k[i % 2]) - 1) as u8),
        };
        if b.max_pool2d(x, spec).is_ok() {
            if let Ok(blob) = b.finish() {
                return blob;
            }
        }
    }
}

fn binary_check_model(rng: &mut Rng, sliced: bool) -> Vec<u8> {
    loop {
        let shape = Shape {
            h: rng.int(3, 10) as u16,
            w: rng.int(3, 10) as u16,
            c: rng.int(1, 3) as u16,
        };
        let mut b = ModelBuilder::new(
            "bcheck",
            shape,
            q(rng.float(0.01, 0.05), rng.int(-128, 127) as i8),
        );
        let x = b.input();
        let qo = q(rng.float(0.02, 0.08), rng.int(-20, 20) as i8);
        let c1 = rng.int(1, 40) as u16;
        let Some(mut x) = conv(
            &mut b,
            rng,
            x,
            c1,
            [3, 3],
            [1, 1],
            [1; 4],
            1,
            qo,
            Activation::None,
        ) else {
            continue;
        };
        let mut ok = true;
        for layer in 0..rng.int(1, 3) {
            let y = if layer > 0 && rng.int(0, 2) == 0 {
                let k = rng.int(1, 3) as u8;
                b.binary_max_pool2d(
                    x,
                    PoolSpec {
                        kernel: [k, k],
                        stride: [rng.int(1, 2) as u8; 2],
                        padding: [0, 0, rng.int(0, k as i64 - 1) as u8, 0],
                    },
                )
                .ok()
            } else {
                let k = [rng.int(1, 3) as u8, rng.int(1, 3) as u8];
                let pad = [0; 4].map(|_| rng.int(0, 1) as u8);
                let oc = rng.int(1, 50) as u16;
                let stride = [rng.int(1, 2) as u8, rng.int(1, 2) as u8];
                bconv(&mut b, rng, x, oc, k, stride, pad, None, sliced)
            };
            match y {
                Some(y) => x = y,
                None => ok = false,
            }
        }
        if !ok {
            continue;
        }
        let qo = q(rng.float(0.05, 0.2), rng.int(-10, 10) as i8);
        let oc = rng.int(1, 20) as u16;
        let y = if rng.int(0, 1) == 0 {
            bconv(
                &mut b,
                rng,
                x,
                oc,
                [2, 2],
                [1, 1],
                [0, 0, 1, 1],
                Some(qo),
                sliced,
            )
        } else {
            let s = b.shape(x);
            let kk = s.elements() as u32;
            let output = int8_out(rng, kk, oc, qo);
            b.binary_dense(
                x,
                BinaryDenseSpec {
                    out_features: oc,
                    weights: pm1(rng, oc as usize * kk as usize),
                    input_thresholds: vec![],
                    output,
                },
            )
            .ok()
        };
        let Some(y) = y else { continue };
        // A dense head over the global average (a dense over every pixel would fill the M0's
        // flash).
        let y = if b.shape(y).elements() > 64 {
            b.global_avg_pool(y).unwrap()
        } else {
            y
        };
        dense(&mut b, rng, y, 10, q(0.1, 0));
        if let Ok(blob) = b.finish() {
            return blob;
        }
    }
}

/// Packed-output thresholds skewed by `center · k` (mostly set or mostly clear bits out), a few
/// constant lanes (thresholds past either end) and some negative slopes.
fn folded_skewed(rng: &mut Rng, k: u32, n: u16, center: f64) -> BinaryOutputSpec {
    let (thresholds, flip) = (0..n)
        .map(|_| {
            let a = match rng.int(0, 7) {
                0 => 0.0,
                1 | 2 => -f64::from(rng.float(0.5, 2.0)),
                _ => f64::from(rng.float(0.5, 2.0)),
            };
            let b = (center + f64::from(rng.float(-0.2, 0.2))) * f64::from(k);
            fold_sign(k, a, if a == 0.0 { center } else { b })
        })
        .unzip();
    BinaryOutputSpec::Packed { thresholds, flip }
}

/// The selection kernel of bit-sliced convs with packed outputs (Cortex-M4): inputs binarized
/// with skewed thresholds and layers with skewed outputs (columns of mostly set or mostly clear
/// bits: the set or the clear ones selected, empty lists, whole blocks), columns of 1 to 27
/// words, filters of constant sign, padding lanes (`out` not a multiple of 32).
fn select_check_model(rng: &mut Rng, i: usize) -> Vec<u8> {
    let skews = [-0.7, -0.25, 0.0, 0.25, 0.7];
    loop {
        let c = [32u16, 64, 96, 17, 40][i % 5];
        let shape = Shape {
            h: rng.int(2, 6) as u16,
            w: rng.int(2, 6) as u16,
            c,
        };
        let zp = rng.int(-100, 100) as i32;
        let mut b = ModelBuilder::new("selcheck", shape, q(rng.float(0.01, 0.05), zp as i8));
        let x = b.input();
        let skew_in = [-120, -40, 0, 40, 120][rng.int(0, 4) as usize];
        let k = [rng.int(1, 3) as u8, rng.int(1, 3) as u8];
        let kk = u32::from(k[0]) * u32::from(k[1]) * u32::from(c);
        let oc1 = rng.int(20, 70) as u16;
        let mut weights = pm1(rng, oc1 as usize * kk as usize);
        for f in weights.chunks_mut(kk as usize) {
            match rng.int(0, 9) {
                0 => f.fill(1),
                1 => f.fill(-1),
                _ => {}
            }
        }
        let spec = BinaryConv2dSpec {
            out_channels: oc1,
            kernel: k,
            stride: [rng.int(1, 2) as u8; 2],
            padding: [0; 4].map(|_| rng.int(0, 1) as u8),
            weights,
            input_thresholds: (0..c)
                .map(|_| (zp + skew_in + rng.int(-10, 10) as i32).clamp(-128, 127))
                .collect(),
            output: {
                let skew = skews[rng.int(0, 4) as usize];
                folded_skewed(rng, kk, oc1, skew)
            },
        };
        let Ok(x) = b.binary_conv2d_sliced(x, spec) else {
            continue;
        };
        let kk = 9 * u32::from(oc1);
        let oc2 = rng.int(1, 70) as u16;
        let spec = BinaryConv2dSpec {
            out_channels: oc2,
            kernel: [3, 3],
            stride: [1, 1],
            padding: [1; 4],
            weights: pm1(rng, oc2 as usize * kk as usize),
            input_thresholds: vec![],
            output: {
                let skew = skews[rng.int(0, 4) as usize];
                folded_skewed(rng, kk, oc2, skew)
            },
        };
        let Ok(x) = b.binary_conv2d_sliced(x, spec) else {
            continue;
        };
        // An int8 output, bit-sliced: multipliers above ½ (t ≤ 31: `SMMULR`), below ½ (t ≥ 32:
        // the high word) or both (the 64-bit form), by model.
        let qo = q(rng.float(0.05, 0.2), rng.int(-10, 10) as i8);
        let kk = u32::from(oc2);
        let mut output = int8_out(rng, kk, 10, qo);
        if let BinaryOutputSpec::Int8 { scales, .. } = &mut output {
            for (c, s) in scales.iter_mut().enumerate() {
                if i % 3 == 1 || (i % 3 == 2 && c % 2 == 0) {
                    *s *= 0.02;
                }
            }
        }
        let spec = BinaryConv2dSpec {
            out_channels: 10,
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0; 4],
            weights: pm1(rng, 10 * kk as usize),
            input_thresholds: vec![],
            output,
        };
        let Ok(y) = b.binary_conv2d_sliced(x, spec) else {
            continue;
        };
        let y = if b.shape(y).elements() > 64 {
            b.global_avg_pool(y).unwrap()
        } else {
            y
        };
        dense(&mut b, rng, y, 10, q(0.1, 0));
        if let Ok(blob) = b.finish() {
            return blob;
        }
    }
}

/// Which student [`student`] builds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Student {
    /// Binary inner layers, weights in rows (`BinaryConv2d`).
    Binary,
    /// The same layers and weights, bit-sliced (`BinaryConv2dSliced`, format 1.4).
    Sliced,
    /// The int8 twin.
    Int8,
}

/// The binary student of `configs/binary-student.toml` (issue 6) and its int8 twin, built up to
/// `depth` ops (1..=7; prefixes give the per-layer split of the benchmark): 28×28×1 → int8 conv
/// 3×3 1→32 pad 1 (no activation) → int8 max pool 2 → binary conv 3×3 32→64 pad 1 (+1),
/// binarizing its int8 input with per-channel thresholds, packed output → binary max pool 2 →
/// binary conv 3×3 64→64 pad 1, int8 output (ReLU) → global average pool → int8 dense 10. The
/// twin has int8 convs (ReLU) and int8 max pools in place of the binary ones. Returns the blob
/// and its (int8, binary) MACs.
fn student(kind: Student, depth: usize) -> (Vec<u8>, u64, u64) {
    let binary = kind != Student::Int8;
    let rng = &mut Rng(if binary { 0x57D7 } else { 0x57D8 });
    // The same convolution, with its weights in rows or bit-sliced (format 1.4) where the
    // exporter writes them so (`tinykd_format::sliced_pays`).
    let add = |b: &mut ModelBuilder, x, spec: BinaryConv2dSpec| {
        if kind == Student::Sliced && tinykd_format::sliced_pays(b.shape(x).c, spec.out_channels) {
            b.binary_conv2d_sliced(x, spec)
        } else {
            b.binary_conv2d(x, spec)
        }
    };
    let qi = q(1.0 / 32.0, -128);
    let qs = q(1.0 / 16.0, 0);
    let qo = q(1.0 / 24.0, -128);
    let pool = PoolSpec {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0; 4],
    };
    let name = match kind {
        Student::Binary => "bstudent",
        Student::Sliced => "bsliced",
        Student::Int8 => "istudent",
    };
    let mut b = ModelBuilder::new(name, Shape { h: 28, w: 28, c: 1 }, qi);
    let mut x = b.input();
    let (mut int8_macs, mut binary_macs) = (0u64, 0u64);
    let (k1, k2) = (9 * 32u32, 9 * 64u32);
    for op in 0..depth.min(7) {
        x = match (op, binary) {
            (0, _) => {
                int8_macs += 28 * 28 * 32 * 9;
                let none = Activation::None;
                conv(&mut b, rng, x, 32, [3, 3], [1, 1], [1; 4], 1, qs, none).unwrap()
            }
            (1, _) => b.max_pool2d(x, pool).unwrap(),
            (2, true) => {
                binary_macs += 14 * 14 * 64 * u64::from(k1);
                let zp = i32::from(b.quant(x).zero_point);
                // Around the zero point, and at and past the int8 range's ends (the SIMD
                // binarization clamps them).
                let input_thresholds = (0..32)
                    .map(|c| match c {
                        3 => 200,
                        7 => -300,
                        11 => 127,
                        15 => -128,
                        19 => 128,
                        _ => zp + rng.int(-10, 10) as i32,
                    })
                    .collect();
                let spec = BinaryConv2dSpec {
                    out_channels: 64,
                    kernel: [3, 3],
                    stride: [1, 1],
                    padding: [1; 4],
                    weights: pm1(rng, 64 * k1 as usize),
                    input_thresholds,
                    output: folded(rng, k1, 64),
                };
                add(&mut b, x, spec).unwrap()
            }
            (3, true) => b.binary_max_pool2d(x, pool).unwrap(),
            (4, true) => {
                binary_macs += 7 * 7 * 64 * u64::from(k2);
                let output = match int8_out(rng, k2, 64, qo) {
                    BinaryOutputSpec::Int8 {
                        flip,
                        bias,
                        scales,
                        output,
                        ..
                    } => BinaryOutputSpec::Int8 {
                        flip,
                        bias,
                        scales,
                        output,
                        activation: Activation::Relu,
                    },
                    packed => packed,
                };
                let spec = BinaryConv2dSpec {
                    out_channels: 64,
                    kernel: [3, 3],
                    stride: [1, 1],
                    padding: [1; 4],
                    weights: pm1(rng, 64 * k2 as usize),
                    input_thresholds: vec![],
                    output,
                };
                add(&mut b, x, spec).unwrap()
            }
            (2, false) => {
                int8_macs += 14 * 14 * 64 * u64::from(k1);
                conv(
                    &mut b,
                    rng,
                    x,
                    64,
                    [3, 3],
                    [1, 1],
                    [1; 4],
                    1,
                    qo,
                    Activation::Relu,
                )
                .unwrap()
            }
            (3, false) => b.max_pool2d(x, pool).unwrap(),
            (4, false) => {
                int8_macs += 7 * 7 * 64 * u64::from(k2);
                conv(
                    &mut b,
                    rng,
                    x,
                    64,
                    [3, 3],
                    [1, 1],
                    [1; 4],
                    1,
                    qo,
                    Activation::Relu,
                )
                .unwrap()
            }
            (5, _) => b.global_avg_pool(x).unwrap(),
            _ => {
                int8_macs += 64 * 10;
                dense(&mut b, rng, x, 10, qo)
            }
        };
    }
    (b.finish().expect("valid"), int8_macs, binary_macs)
}

/// A binary-heavier student (`configs/binary-student-wide.toml`), built up to `depth` ops
/// (1..=8): 28×28×1 → int8 conv 3×3 stride 2 1→32 pad 1 (no activation, no pool) → binary conv
/// 3×3 32→64 pad 1 (binarizing its int8 input), packed → binary conv 3×3 64→64 pad 1, packed →
/// binary max pool 2 → binary conv 3×3 64→64 pad 1 (7×7), packed → binary conv 1×1 64→32, int8
/// output (ReLU) → global average pool → int8 dense 10. The twin has int8 convs (ReLU) and an
/// int8 max pool. Binary convs with packed outputs are bit-sliced for [`Student::Sliced`].
/// Returns the blob, its int8 MACs and its binary MACs.
fn wide_student(kind: Student, depth: usize) -> (Vec<u8>, u64, u64) {
    let binary = kind != Student::Int8;
    let rng = &mut Rng(if binary { 0x57E7 } else { 0x57E8 });
    let qi = q(1.0 / 32.0, -128);
    let qs = q(1.0 / 16.0, 0);
    let qo = q(1.0 / 24.0, -128);
    let name = match kind {
        Student::Binary => "wstudent",
        Student::Sliced => "wsliced",
        Student::Int8 => "wistudent",
    };
    let mut b = ModelBuilder::new(name, Shape { h: 28, w: 28, c: 1 }, qi);
    let mut x = b.input();
    let (mut int8_macs, mut binary_macs) = (0u64, 0u64);
    let pool = PoolSpec {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0; 4],
    };
    let relu = Activation::Relu;
    // (out, kernel, pixels) of the four inner convs.
    let inner = [
        (64u16, 3u8, 14 * 14),
        (64, 3, 14 * 14),
        (0, 0, 0),
        (64, 3, 7 * 7),
        (32, 1, 7 * 7),
    ];
    for op in 0..depth.min(8) {
        x = match op {
            0 => {
                int8_macs += 14 * 14 * 32 * 9;
                let none = Activation::None;
                conv(&mut b, rng, x, 32, [3, 3], [2, 2], [1; 4], 1, qs, none).unwrap()
            }
            3 if binary => b.binary_max_pool2d(x, pool).unwrap(),
            3 => b.max_pool2d(x, pool).unwrap(),
            1..=5 => {
                let (out, k, pixels) = inner[op - 1];
                let cin = b.shape(x).c;
                let kk = u32::from(k) * u32::from(k) * u32::from(cin);
                let macs = pixels * u64::from(out) * u64::from(kk);
                let pad = [k / 2; 4];
                if !binary {
                    int8_macs += macs;
                    conv(&mut b, rng, x, out, [k, k], [1, 1], pad, 1, qo, relu).unwrap()
                } else {
                    binary_macs += macs;
                    let int8 = op == 5;
                    let output = if int8 {
                        match int8_out(rng, kk, out, qo) {
                            BinaryOutputSpec::Int8 {
                                flip,
                                bias,
                                scales,
                                output,
                                ..
                            } => BinaryOutputSpec::Int8 {
                                flip,
                                bias,
                                scales,
                                output,
                                activation: relu,
                            },
                            packed => packed,
                        }
                    } else {
                        folded(rng, kk, out)
                    };
                    let zp = i32::from(b.quant(x).zero_point);
                    let input_thresholds = match b.layout(x) {
                        tinykd_format::Layout::Int8 => {
                            (0..cin).map(|_| zp + rng.int(-10, 10) as i32).collect()
                        }
                        tinykd_format::Layout::Packed => vec![],
                    };
                    let spec = BinaryConv2dSpec {
                        out_channels: out,
                        kernel: [k, k],
                        stride: [1, 1],
                        padding: pad,
                        weights: pm1(rng, out as usize * kk as usize),
                        input_thresholds,
                        output,
                    };
                    if kind == Student::Sliced && tinykd_format::sliced_pays(cin, out) {
                        b.binary_conv2d_sliced(x, spec).unwrap()
                    } else {
                        b.binary_conv2d(x, spec).unwrap()
                    }
                }
            }
            6 => b.global_avg_pool(x).unwrap(),
            _ => {
                int8_macs += 32 * 10;
                dense(&mut b, rng, x, 10, qo)
            }
        };
    }
    (b.finish().expect("valid"), int8_macs, binary_macs)
}

/// The trained binary student (`configs/binary-student.toml`, Fashion-MNIST: the KD seed-0 row
/// of docs/binary-students.md), exported by the host crate (re-exported 2026-11-29: both binary
/// convs bit-sliced, `SMMLAR`-ready multipliers, a paired dense head).
const TRAINED: &str = "test-data/bstudent-trained.tkd";

/// Benchmark layers: (name, description, blob, MACs).
fn bench_models() -> Vec<(&'static str, &'static str, Vec<u8>, u64, usize)> {
    let mut rng = Rng(0xBE4C_0010);
    let qi = q(1.0 / 32.0, -128);
    let qo = q(1.0 / 24.0, -128);
    let relu = Activation::Relu;
    let mut v = Vec::new();
    let mut single = |name,
                      what,
                      shape: Shape,
                      f: &dyn Fn(&mut ModelBuilder, &mut Rng, TensorId) -> TensorId,
                      macs| {
        let mut b = ModelBuilder::new(name, shape, qi);
        let x = b.input();
        f(&mut b, &mut rng, x);
        let without = b.clone().finish_without_scratch().expect("valid");
        let arena_without = tinykd_format::validate(&without).unwrap().arena_size();
        v.push((name, what, b.finish().expect("valid"), macs, arena_without));
    };
    single(
        "L1",
        "conv 3x3 s1 p1, 14x14x16 -> 14x14x32",
        Shape {
            h: 14,
            w: 14,
            c: 16,
        },
        &|b, r, x| conv(b, r, x, 32, [3, 3], [1, 1], [1; 4], 1, qo, relu).unwrap(),
        14 * 14 * 32 * 9 * 16,
    );
    single(
        "L2",
        "conv 3x3 s1 p1, 28x28x1 -> 28x28x16",
        Shape { h: 28, w: 28, c: 1 },
        &|b, r, x| conv(b, r, x, 16, [3, 3], [1, 1], [1; 4], 1, qo, relu).unwrap(),
        28 * 28 * 16 * 9,
    );
    single(
        "L3",
        "conv 1x1, 7x7x32 -> 7x7x64",
        Shape { h: 7, w: 7, c: 32 },
        &|b, r, x| conv(b, r, x, 64, [1, 1], [1, 1], [0; 4], 1, qo, relu).unwrap(),
        7 * 7 * 64 * 32,
    );
    single(
        "L4",
        "depthwise 3x3 s1 p1, 14x14x32",
        Shape {
            h: 14,
            w: 14,
            c: 32,
        },
        &|b, r, x| conv(b, r, x, 32, [3, 3], [1, 1], [1; 4], 32, qo, relu).unwrap(),
        14 * 14 * 32 * 9,
    );
    single(
        "L5a",
        "dense 1568 -> 10",
        Shape {
            h: 1,
            w: 1,
            c: 1568,
        },
        &|b, r, x| dense_paired(b, r, x, 10, qo),
        1568 * 10,
    );
    single(
        "L5b",
        "dense 256 -> 64",
        Shape { h: 1, w: 1, c: 256 },
        &|b, r, x| dense_paired(b, r, x, 64, qo),
        256 * 64,
    );
    // The same two layers as plain `Dense` ops (format 1.1), for comparison.
    single(
        "L5a-plain",
        "dense 1568 -> 10 (plain int8 weights)",
        Shape {
            h: 1,
            w: 1,
            c: 1568,
        },
        &|b, r, x| dense(b, r, x, 10, qo),
        1568 * 10,
    );
    single(
        "L5b-plain",
        "dense 256 -> 64 (plain int8 weights)",
        Shape { h: 1, w: 1, c: 256 },
        &|b, r, x| dense(b, r, x, 64, qo),
        256 * 64,
    );
    // Conv1d layers of a HAPT-size 1-D CNN (issue 7): windows of 128 samples × 3 channels.
    single(
        "C1",
        "conv1d k5 s1 p2, 128x3 -> 128x16",
        Shape { h: 1, w: 128, c: 3 },
        &|b, r, x| conv(b, r, x, 16, [1, 5], [1, 1], [0, 2, 0, 2], 1, qo, relu).unwrap(),
        128 * 16 * 5 * 3,
    );
    single(
        "C2",
        "conv1d k5 s1 p2, 64x16 -> 64x32",
        Shape { h: 1, w: 64, c: 16 },
        &|b, r, x| conv(b, r, x, 32, [1, 5], [1, 1], [0, 2, 0, 2], 1, qo, relu).unwrap(),
        64 * 32 * 5 * 16,
    );
    single(
        "C3",
        "depthwise conv1d k5 s1 p2, 64x32",
        Shape { h: 1, w: 64, c: 32 },
        &|b, r, x| conv(b, r, x, 32, [1, 5], [1, 1], [0, 2, 0, 2], 32, qo, relu).unwrap(),
        64 * 32 * 5,
    );
    {
        // The binarizing 1×1 conv alone (B1 − B0 = the 3×3 binary conv).
        let mut b = ModelBuilder::new(
            "B0",
            Shape {
                h: 14,
                w: 14,
                c: 16,
            },
            qi,
        );
        let x = b.input();
        bconv(&mut b, &mut rng, x, 32, [1, 1], [1, 1], [0; 4], None, false).unwrap();
        let without = b.clone().finish_without_scratch().expect("valid");
        let arena_without = tinykd_format::validate(&without).unwrap().arena_size();
        v.push((
            "B0",
            "binary conv 1x1, int8 14x14x16 binarized -> 14x14x32 packed",
            b.finish().expect("valid"),
            14 * 14 * 32 * 16,
            arena_without,
        ));
    }
    {
        // One binary conv layer (packed → packed), the shape of L1.
        let mut b = ModelBuilder::new(
            "B1",
            Shape {
                h: 14,
                w: 14,
                c: 16,
            },
            qi,
        );
        let x = b.input();
        let x = bconv(&mut b, &mut rng, x, 32, [1, 1], [1, 1], [0; 4], None, false).unwrap();
        bconv(&mut b, &mut rng, x, 32, [3, 3], [1, 1], [1; 4], None, false).unwrap();
        let without = b.clone().finish_without_scratch().expect("valid");
        let arena_without = tinykd_format::validate(&without).unwrap().arena_size();
        // MACs: the 3×3 binary conv (the 1×1 binarizing conv in front adds 14·14·32·16).
        let macs = 14 * 14 * 32 * 288 + 14 * 14 * 32 * 16;
        v.push((
            "B1",
            "binary conv 3x3 s1 p1, 14x14x32 -> 14x14x32 (+1x1 binarizing conv in front)",
            b.finish().expect("valid"),
            macs,
            arena_without,
        ));
    }
    // The students; the prefixes `bs1`..`bs5` / `is1`..`is5` (the first n ops) give the
    // per-layer split. MACs: binary MACs for the binary ones (the int8 stem and head add
    // 225 792 + 640 int8 MACs), int8 MACs for the twin.
    for (kind, prefix, full) in [
        (Student::Binary, "bs", "bstudent"),
        (Student::Sliced, "ss", "bsliced"),
        (Student::Int8, "is", "istudent"),
    ] {
        let binary = kind != Student::Int8;
        for depth in [1, 2, 3, 4, 5, 7] {
            let (blob, int8_macs, binary_macs) = student(kind, depth);
            let name: &'static str = match depth {
                7 => full,
                _ => Box::leak(format!("{prefix}{depth}").into_boxed_str()),
            };
            let what = match (kind, depth) {
                (Student::Binary, 7) => {
                    "binary student (configs/binary-student.toml), random weights"
                }
                (Student::Sliced, 7) => "bstudent with its binary convs bit-sliced (format 1.4)",
                (Student::Int8, 7) => "int8 twin of bstudent (same shapes)",
                _ => "prefix of the student (first ops)",
            };
            let macs = if binary { binary_macs } else { int8_macs };
            let arena = tinykd_format::validate(&blob).unwrap().arena_size();
            v.push((name, what, blob, macs, arena));
        }
    }
    // The binary-heavier student; prefixes `ws1`..`ws7` / `wi1`..`wi7` for the per-layer split.
    for (kind, prefix, full) in [
        (Student::Binary, "", "wstudent"),
        (Student::Sliced, "ws", "wsliced"),
        (Student::Int8, "wi", "wistudent"),
    ] {
        for depth in [1, 2, 3, 4, 5, 6, 7, 8] {
            if prefix.is_empty() && depth < 8 {
                continue;
            }
            let (blob, int8_macs, binary_macs) = wide_student(kind, depth);
            let name: &'static str = match depth {
                8 => full,
                _ => Box::leak(format!("{prefix}{depth}").into_boxed_str()),
            };
            let what = match (kind, depth) {
                (Student::Binary, _) => "binary-heavier student (binary-student-wide.toml), rows",
                (Student::Sliced, 8) => "binary-heavier student, packed-output convs bit-sliced",
                (Student::Int8, 8) => "int8 twin of wstudent (same shapes)",
                _ => "prefix of the binary-heavier student (first ops)",
            };
            let macs = if kind == Student::Int8 {
                int8_macs
            } else {
                binary_macs
            };
            let arena = tinykd_format::validate(&blob).unwrap().arena_size();
            v.push((name, what, blob, macs, arena));
        }
    }
    let trained = fs::read(TRAINED).expect("test-data/bstudent-trained.tkd");
    let arena = tinykd_format::validate(&trained).unwrap().arena_size();
    v.push((
        "btrained",
        "the trained binary student (Fashion-MNIST, test-data/bstudent-trained.tkd)",
        trained,
        14 * 14 * 64 * 288 + 7 * 7 * 64 * 576,
        arena,
    ));
    // The Fashion-MNIST-size student.
    let mut b = ModelBuilder::new("student", Shape { h: 28, w: 28, c: 1 }, qi);
    let x = b.input();
    let pool = PoolSpec {
        kernel: [2, 2],
        stride: [2, 2],
        padding: [0; 4],
    };
    let x = conv(&mut b, &mut rng, x, 16, [3, 3], [1, 1], [1; 4], 1, qo, relu).unwrap();
    let x = b.max_pool2d(x, pool).unwrap();
    let x = conv(&mut b, &mut rng, x, 32, [3, 3], [1, 1], [1; 4], 1, qo, relu).unwrap();
    let x = b.max_pool2d(x, pool).unwrap();
    let x = conv(&mut b, &mut rng, x, 64, [3, 3], [1, 1], [1; 4], 1, qo, relu).unwrap();
    let x = b.global_avg_pool(x).unwrap();
    // The dense head as the exporter writes it (format 1.5).
    dense_paired(&mut b, &mut rng, x, 10, qo);
    let macs = 28 * 28 * 16 * 9 + 14 * 14 * 32 * 144 + 7 * 7 * 64 * 288 + 64 * 10;
    let without = b.clone().finish_without_scratch().expect("valid");
    let arena_without = tinykd_format::validate(&without).unwrap().arena_size();
    let blob = b.finish().expect("valid");
    v.push((
        "student",
        "F-MNIST student (3 conv, 2 maxpool, GAP, dense)",
        blob,
        macs,
        arena_without,
    ));
    v
}

/// Binary models for the unrolled 9- and 18-word kernels of the DSP path with the outputs the
/// students do not cover: 3×3 over 32 channels with int8 output, 3×3 over 40 channels (two words
/// per pixel) with packed output, odd channel counts (a last single filter).
fn unrolled_check_models(rng: &mut Rng) -> [Vec<u8>; 2] {
    let build = |rng: &mut Rng, cin: u16, packed_out: u16| {
        let shape = Shape { h: 5, w: 6, c: 3 };
        let mut b = ModelBuilder::new("bunroll", shape, q(0.03, -5));
        let x = b.input();
        let qs = q(0.05, 0);
        let x = conv(
            &mut b,
            rng,
            x,
            cin,
            [1, 1],
            [1, 1],
            [0; 4],
            1,
            qs,
            Activation::None,
        )
        .unwrap();
        let x = if packed_out > 0 {
            let x = bconv(
                &mut b,
                rng,
                x,
                packed_out,
                [3, 3],
                [1, 1],
                [1; 4],
                None,
                false,
            )
            .unwrap();
            bconv(
                &mut b,
                rng,
                x,
                5,
                [1, 1],
                [1, 1],
                [0; 4],
                Some(q(0.1, 3)),
                false,
            )
            .unwrap()
        } else {
            bconv(
                &mut b,
                rng,
                x,
                7,
                [3, 3],
                [1, 1],
                [1; 4],
                Some(q(0.1, 3)),
                false,
            )
            .unwrap()
        };
        let x = b.global_avg_pool(x).unwrap();
        dense(&mut b, rng, x, 10, q(0.1, 0));
        b.finish().expect("valid")
    };
    [build(rng, 32, 0), build(rng, 40, 3)]
}

/// Random binary models in the check (flash-bound on the microbit).
const BINARY_CHECKS: usize = 7;
/// Bit-sliced models aimed at the selection kernel ([`select_check_model`]; Cortex-M4 only).
const SELECT_CHECKS: usize = 20;

/// Random binary models with bit-sliced convs (format 1.4) in the check.
const SLICED_CHECKS: usize = 5;

/// Writes `blob` to `OUT_DIR/name` and adds its `include_bytes!` entry to the table in `code`.
fn embed(out: &Path, code: &mut String, name: &str, blob: &[u8]) {
    fs::write(out.join(name), blob).unwrap();
    writeln!(
        code,
        "    include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}\")),"
    )
    .unwrap();
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target = env::var("TARGET").unwrap_or_default();
    // TINYKD_BENCH_ONLY="a b …": a benchmark-only firmware with just these benchmark models (no
    // check models), for models that do not fit the microbit's flash next to everything else
    // (tools/bench-device.sh measures the int8 twin on the Cortex-M0 this way).
    println!("cargo:rerun-if-env-changed=TINYKD_BENCH_ONLY");
    let only: Option<Vec<String>> = env::var("TINYKD_BENCH_ONLY")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .map(|s| s.split_whitespace().map(str::to_string).collect());
    // Cortex-M0 on QEMU's microbit (nRF51: 256 KiB flash); its SRAM is enlarged to 64 KiB at
    // run time (`-global nrf51-soc.sram-size=0x10000`, see tools/qemu-runner.sh) so the student
    // fits. mps2-an386: 4 MiB + 4 MiB.
    let (memory, arena_cap) = if target.starts_with("thumbv6m") {
        ("MEMORY { FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n RAM : ORIGIN = 0x20000000, LENGTH = 64K }\n", 40 * 1024)
    } else {
        ("MEMORY { FLASH : ORIGIN = 0x00000000, LENGTH = 4M\n RAM : ORIGIN = 0x20000000, LENGTH = 4M }\n", 256 * 1024)
    };
    fs::write(out.join("memory.x"), memory).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rustc-link-arg-bins=-Tlink.x");
    println!("cargo:rerun-if-changed=build.rs");

    let mut code = String::new();
    writeln!(code, "pub const ARENA_CAP: usize = {arena_cap};").unwrap();
    // Blobs 4-aligned in flash (the paired dense reads its weights with `LDRD`).
    code.push_str("#[repr(C, align(4))]\npub struct AlignedBlob<B: ?Sized>(pub B);\n");
    // (Unused where no check model is skewed: the microbit's three.)
    code.push_str(
        "#[allow(dead_code)]\n#[repr(C, align(4))]\npub struct SkewedBlob<B: ?Sized>(pub u8, pub B);\n",
    );
    let mut rng = Rng(0xC4EC_0001);
    code.push_str("pub static CHECK: &[&[u8]] = &[\n");
    // (25 on the microbit: its 256 KiB of flash also hold the bit-sliced kernel and check and
    // the paired dense with its checks.)
    let int8_checks = if target.starts_with("thumbv6m") {
        25
    } else {
        48
    };
    for i in 0..int8_checks {
        let blob = check_model(&mut rng, i);
        let name = format!("check{i}.tkd");
        embed(&out, &mut code, &name, &blob);
    }
    let mut prng = Rng(0x91A4_E001);
    for i in 0..12 {
        let blob = plane_check_model(&mut prng, i);
        let name = format!("pcheck{i}.tkd");
        embed(&out, &mut code, &name, &blob);
    }
    let mut mrng = Rng(0x9001_0001);
    for i in 0..8 {
        let blob = pool_check_model(&mut mrng);
        let name = format!("mcheck{i}.tkd");
        embed(&out, &mut code, &name, &blob);
    }
    // Pointwise (1×1) models for the 4×1 path (DSP only: not on the microbit, for its flash).
    let mut wrng = Rng(0x1_1C4E_C001);
    for i in 0..if target.starts_with("thumbv6m") { 0 } else { 8 } {
        let blob = pointwise_check_model(&mut wrng, i);
        let name = format!("wcheck{i}.tkd");
        embed(&out, &mut code, &name, &blob);
    }
    // One-channel 3×3 models (DSP only, as above).
    let mut orng = Rng(0x0C1_C4EC);
    for i in 0..if target.starts_with("thumbv6m") { 0 } else { 8 } {
        let blob = one_channel_check_model(&mut orng, i);
        let name = format!("ocheck{i}.tkd");
        embed(&out, &mut code, &name, &blob);
    }
    // 1-D CNNs (issue 7).
    let mut crng = Rng(0xC0_1D01);
    let small = target.starts_with("thumbv6m");
    for i in 0..if small { 3 } else { 12 } {
        let blob = conv1d_check_model(&mut crng, i, small);
        let name = format!("ccheck{i}.tkd");
        embed(&out, &mut code, &name, &blob);
    }
    // Paired dense layers (format 1.5), 4-aligned in flash as the kernels want them.
    let mut drng = Rng(0xDE45_1501);
    // (Three small ones on the microbit: flash.)
    for i in 0..if small { 3 } else { 10 } {
        let blob = paired_check_model(&mut drng, i, small);
        let name = format!("dcheck{i}.tkd");
        fs::write(out.join(&name), &blob).unwrap();
        // Every fourth one one byte off 4-alignment: the kernels' word-by-word fallback.
        let wrap = if i % 4 == 3 {
            ("SkewedBlob(0, *", ").1")
        } else {
            ("AlignedBlob(*", ").0")
        };
        writeln!(
            code,
            "    &{}include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}\")){},",
            wrap.0, wrap.1
        )
        .unwrap();
    }
    // Binary models (format 1.2) join the fast-vs-reference check.
    let mut brng = Rng(0xB1C4_EC01);
    let mut binary = Vec::new();
    for i in 0..BINARY_CHECKS {
        let blob = binary_check_model(&mut brng, false);
        let name = format!("bcheck{i}.tkd");
        embed(&out, &mut code, &name, &blob);
        binary.push(blob);
    }
    // Bit-sliced binary convs (format 1.4), the same kinds of models.
    let mut srng = Rng(0x51C4_EC01);
    // (One on the microbit: flash.)
    let sliced_checks = if target.starts_with("thumbv6m") {
        1
    } else {
        SLICED_CHECKS
    };
    for i in 0..sliced_checks {
        let blob = binary_check_model(&mut srng, true);
        let name = format!("scheck{i}.tkd");
        embed(&out, &mut code, &name, &blob);
        binary.push(blob);
    }
    // (DSP-only code paths: not in the microbit's full flash.)
    let unrolled = if target.starts_with("thumbv6m") {
        Vec::new()
    } else {
        let mut models = unrolled_check_models(&mut Rng(0xB1C4_EC09)).to_vec();
        let mut rng = Rng(0x5E1E_C7ED);
        models.extend((0..SELECT_CHECKS).map(|i| select_check_model(&mut rng, i)));
        models
    };
    for (i, blob) in unrolled.iter().enumerate() {
        let name = format!("ucheck{i}.tkd");
        embed(&out, &mut code, &name, blob);
    }
    code.push_str("];\n");
    // Host runs: the binary models and the binary student, each on a few inputs, run here on the
    // host with tinykd-device (reference kernels); the firmware must produce the same bytes.
    let checks = binary.len();
    binary.push(student(Student::Binary, 7).0);
    binary.push(fs::read(TRAINED).expect("test-data/bstudent-trained.tkd"));
    binary.push(student(Student::Sliced, 7).0);
    println!("cargo:rerun-if-changed={TRAINED}");
    let inc = |f: &str| format!("include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{f}\"))");
    let inc_aligned =
        |f: &str| format!("&AlignedBlob(*include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{f}\"))).0");
    code.push_str(&format!(
        "#[allow(dead_code)]\npub static BSTUDENT: &[u8] = {};\n#[allow(dead_code)]\npub static BTRAINED: &[u8] = {};\n#[allow(dead_code)]\npub static BSLICED: &[u8] = {};\n",
        inc("bench-bstudent.tkd"),
        inc("bench-btrained.tkd"),
        inc("bench-bsliced.tkd")
    ));
    code.push_str("/// (blob, inputs, the host's outputs, runs)\n");
    code.push_str("pub type HostRuns = (&'static [u8], &'static [u8], &'static [u8], usize);\n");
    code.push_str("pub static HOST: &[HostRuns] = &[\n");
    let mut irng = Rng(0x4057_0001);
    for (i, blob) in binary.iter().enumerate() {
        if target.starts_with("thumbv6m") && (i == checks || i == checks + 2) {
            // The random-weight students (rows and bit-sliced): not in the microbit's flash
            // (below); the trained one and the bit-sliced check models are.
            continue;
        }
        let model = tinykd_device::Model::from_bytes(blob).expect("host: blob loads");
        let runs = 3;
        let mut inputs = Vec::new();
        let mut outputs = Vec::new();
        for _ in 0..runs {
            let input: Vec<i8> = (0..model.input_len()).map(|_| irng.next() as i8).collect();
            let mut arena = vec![0u8; model.arena_size()];
            let y = model.run(&input, &mut arena).expect("host: model runs");
            inputs.extend(input.iter().map(|&v| v as u8));
            outputs.extend(y.iter().map(|&v| v as u8));
        }
        // The same files as the check models and the benchmark's binary student.
        // (The students are the statics the benchmark table uses too: one copy in flash.)
        let blob_expr = match (i.checked_sub(checks), i.checked_sub(BINARY_CHECKS)) {
            (None, None) => inc(&format!("bcheck{i}.tkd")),
            (None, Some(j)) => inc(&format!("scheck{j}.tkd")),
            (Some(0), _) => "BSTUDENT".to_string(),
            (Some(1), _) => "BTRAINED".to_string(),
            (Some(_), _) => "BSLICED".to_string(),
        };
        let (xn, yn) = (format!("host{i}.x"), format!("host{i}.y"));
        fs::write(out.join(&xn), &inputs).unwrap();
        fs::write(out.join(&yn), &outputs).unwrap();
        writeln!(
            code,
            "    ({}, {}, {}, {runs}),",
            blob_expr,
            inc(&xn),
            inc(&yn)
        )
        .unwrap();
    }
    code.push_str("];\n");
    code.push_str("pub static BENCH: &[(&str, &str, &[u8], u64, usize)] = &[\n");
    for (name, what, blob, macs, arena_without) in bench_models() {
        // Every file is written (BSTUDENT includes bench-bstudent.tkd on every target).
        let file = format!("bench-{name}.tkd");
        fs::write(out.join(&file), &blob).unwrap();
        // The int8 twin of the binary student (and its prefixes) does not fit the microbit's
        // 256 KiB of flash next to everything else.
        if let Some(only) = &only {
            if !only.iter().any(|o| o == name) {
                continue;
            }
        } else if target.starts_with("thumbv6m")
            && (name.starts_with("is")
                || name.starts_with('C')
                || name.starts_with('w')
                || name.ends_with("-plain"))
        {
            // (The conv1d layers C1–C3 too: tools/bench-device.sh measures them in a
            // benchmark-only firmware on the Cortex-M0.)
            continue;
        }
        // On the microbit, the trained student only (the random-weight one of the same shape
        // runs the same instructions), no prefixes, no bit-sliced student (tools/bench-device.sh
        // measures it in a benchmark-only firmware): flash.
        if only.is_none()
            && target.starts_with("thumbv6m")
            && (name.starts_with("bs") || name.starts_with("ss"))
        {
            continue;
        }
        let blob_expr = match name {
            "bstudent" => "BSTUDENT".to_string(),
            "bsliced" => "BSLICED".to_string(),
            "btrained" => "BTRAINED".to_string(),
            _ => inc_aligned(&file),
        };
        writeln!(
            code,
            "    ({name:?}, {what:?}, {blob_expr}, {macs}, {arena_without}),"
        )
        .unwrap();
    }
    code.push_str("];\n");
    if only.is_some() {
        // Benchmark only: the check and host-run lists empty (their models out of flash).
        for head in [
            "pub static CHECK: &[&[u8]] = &[\n",
            "pub static HOST: &[HostRuns] = &[\n",
        ] {
            if let Some(a) = code.find(head).map(|a| a + head.len()) {
                if let Some(b) = code[a..].find("];\n").map(|b| a + b) {
                    code.replace_range(a..b, "");
                }
            }
        }
    }
    fs::write(out.join("models.rs"), code).unwrap();
}
