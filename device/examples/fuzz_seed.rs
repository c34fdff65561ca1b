//! Writes valid blobs for the fuzzer's starting corpus:
//!
//! ```text
//! cargo run -p tinykd-device --example fuzz_seed -- device/fuzz/corpus/from_bytes
//! ```
//!
//! The seeds are the integration tests' all-ops CNN plus one small model per op kind, so that
//! mutations start from every op's encoding. Each is written twice, behind the fuzz target's two
//! mode bytes (see `device/fuzz/fuzz_targets/from_bytes.rs`).

#[path = "../tests/common/mod.rs"]
mod common;

use tinykd_format::{Activation, Conv2dSpec, DenseSpec, ModelBuilder, PoolSpec, Quant, Shape};

fn single_op_models() -> Vec<(&'static str, Vec<u8>)> {
    let q = Quant {
        scale: 0.05,
        zero_point: -3,
    };
    let shape = Shape { h: 5, w: 4, c: 2 };
    let pool = PoolSpec {
        kernel: [3, 2],
        stride: [2, 1],
        padding: [1, 0, 1, 1],
    };
    let mut out = Vec::new();
    let mut one = |name: &'static str, f: &dyn Fn(&mut ModelBuilder)| {
        let mut b = ModelBuilder::new(name, shape, q);
        f(&mut b);
        out.push((name, b.finish().expect("seed model builds")));
    };
    one("conv2d", &|b| {
        let x = b.input();
        b.conv2d(
            x,
            Conv2dSpec {
                out_channels: 4,
                kernel: [3, 3],
                stride: [1, 2],
                padding: [1, 1, 1, 1],
                groups: 2,
                weights: (0..4 * 9).map(|i| (i * 7 % 200 - 100) as i8).collect(),
                weight_scales: vec![0.01, 0.02, 0.03, 0.04],
                bias: vec![5, -5, 50, -50],
                output: q,
                activation: Activation::Relu6,
            },
        )
        .expect("conv");
    });
    one("dense", &|b| {
        let x = b.input();
        b.dense(
            x,
            DenseSpec {
                out_features: 3,
                weights: (0..3 * 40).map(|i| (i % 50 - 25) as i8).collect(),
                weight_scales: vec![0.02],
                bias: vec![1, 2, 3],
                output: q,
                activation: Activation::None,
            },
        )
        .expect("dense");
    });
    one("max_pool2d", &|b| {
        let x = b.input();
        b.max_pool2d(x, pool).expect("max");
    });
    one("avg_pool2d", &|b| {
        let x = b.input();
        b.avg_pool2d(x, pool).expect("avg");
    });
    one("global_avg_pool", &|b| {
        let x = b.input();
        b.global_avg_pool(x).expect("gap");
    });
    one("add", &|b| {
        let x = b.input();
        b.add(
            x,
            x,
            Quant {
                scale: 0.1,
                zero_point: 0,
            },
            Activation::Relu,
        )
        .expect("add");
    });
    one("reshape", &|b| {
        let x = b.input();
        b.reshape(x, Shape { h: 1, w: 1, c: 40 }).expect("reshape");
    });
    out
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "device/fuzz/corpus/from_bytes".into());
    std::fs::create_dir_all(&dir)?;
    let mut seeds = single_op_models();
    seeds.push(("all_ops", common::all_ops_model()));
    seeds.push(("binary", common::binary_model()));
    // The fuzz target's first byte selects its mode (even: re-seal the CRC, odd: as is).
    for (name, blob) in seeds {
        for mode in [0u8, 1] {
            let path = format!("{dir}/seed_{name}_{mode}.bin");
            let mut data = vec![mode];
            data.extend_from_slice(&blob);
            std::fs::write(&path, &data)?;
            println!("{path}: {} bytes", data.len());
        }
    }
    Ok(())
}
