//! Links the right `memory.x` for the target and builds the firmware's models on the host with
//! `tinykd-format`'s builder (seeded, so every build embeds the same bytes):
//! - `CHECK`: small random models (conv with odd channel counts, padding, strides and zero
//!   points; depthwise; 1×1; dense) for the fast-vs-reference equivalence check;
//! - `BENCH`: the benchmark layers of `shared/reference/cmsis-nn-baseline.md` (L1–L5b) and the
//!   Fashion-MNIST-size student, each with its MAC count.
use std::{env, fmt::Write as _, fs, path::PathBuf};

use tinykd_format::{
    Activation, Conv2dSpec, DenseSpec, ModelBuilder, PoolSpec, Quant, Shape, TensorId,
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
        &|b, r, x| dense(b, r, x, 10, qo),
        1568 * 10,
    );
    single(
        "L5b",
        "dense 256 -> 64",
        Shape { h: 1, w: 1, c: 256 },
        &|b, r, x| dense(b, r, x, 64, qo),
        256 * 64,
    );
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
    dense(&mut b, &mut rng, x, 10, qo);
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

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target = env::var("TARGET").unwrap_or_default();
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
    let mut rng = Rng(0xC4EC_0001);
    code.push_str("pub static CHECK: &[&[u8]] = &[\n");
    for i in 0..48 {
        let blob = check_model(&mut rng, i);
        let name = format!("check{i}.tkd");
        fs::write(out.join(&name), &blob).unwrap();
        writeln!(
            code,
            "    include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{name}\")),"
        )
        .unwrap();
    }
    code.push_str("];\n");
    code.push_str("pub static BENCH: &[(&str, &str, &[u8], u64, usize)] = &[\n");
    for (name, what, blob, macs, arena_without) in bench_models() {
        let file = format!("bench-{name}.tkd");
        fs::write(out.join(&file), &blob).unwrap();
        writeln!(code, "    ({name:?}, {what:?}, include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{file}\")), {macs}, {arena_without}),").unwrap();
    }
    code.push_str("];\n");
    fs::write(out.join("models.rs"), code).unwrap();
}
