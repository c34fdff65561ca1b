//! The host's simulation of a binary student (float signs, BatchNorm, RSign thresholds, int8
//! fake quantization) against the device's XNOR/popcount kernels on the exported blob. The
//! export folds BatchNorm and the next sign into popcount thresholds (negative slopes included)
//! (and RPReLU) and τ into the producer or into int8 input thresholds, reorders dense weights from CHW to HWC,
//! and lowers a shortcut layer to an int8 binary branch plus an `add`. Every packed output must
//! agree except at float ties, so the logits agree to within about an output LSB.

use burn::module::Param;
use burn::prelude::*;
use burn::tensor::Distribution;
use tinykd::export::{export_student, quantize_inputs, summarize};
use tinykd::models::student::{Student, StudentConfig, StudentLayer};
use tinykd::models::Classifier;
use tinykd::quant::calibrate;

const CONFIG: &str = r#"
in_channels = 1
input_size = [16, 16]
layers = [
    { conv = { out = 16, kernel = 3, padding = 1, activation = "none" } },
    { binary_conv = { out = 16, kernel = 3, padding = 1, threshold = true, shortcut = true } },
    { max_pool = { kernel = 2 } },
    { binary_conv = { out = 40, kernel = 3, padding = 1, threshold = true, rprelu = true } },
    { max_pool = { kernel = 2 } },
    { binary_conv = { out = 33, kernel = 3, stride = 2, padding = 1, scale = false } },
    { binary_dense = { out = 70, threshold = true, rprelu = true } },
    { binary_dense = { out = 48, activation = "relu", threshold = true } },
    { dense = { out = 10 } },
]
"#;

/// Random BatchNorm slopes (about a third negative), shifts, RSign thresholds and RPReLU
/// parameters, so that flips and folded thresholds are exercised; running statistics from a few
/// training-mode batches.
fn randomize(mut student: Student, device: &Device) -> Student {
    let normal = |dims: [usize; 1], s: f64| {
        Param::from_tensor(Tensor::<1>::random(
            dims,
            Distribution::Normal(0.3, s),
            device,
        ))
    };
    for layer in &mut student.layers {
        let (bn, threshold) = match layer {
            StudentLayer::BinaryConv(b) => (&mut b.bn, &mut b.threshold),
            StudentLayer::BinaryDense(b) => (&mut b.bn, &mut b.threshold),
            _ => continue,
        };
        bn.gamma = normal(bn.gamma.dims(), 1.0);
        bn.beta = normal(bn.beta.dims(), 1.0);
        if let Some(t) = threshold {
            *t = normal(t.dims(), 0.2);
        }
        let rprelu = match layer {
            StudentLayer::BinaryConv(b) => b.rprelu.as_mut(),
            StudentLayer::BinaryDense(b) => b.rprelu.as_mut(),
            _ => None,
        };
        if let Some(r) = rprelu {
            r.shift_in = normal(r.shift_in.dims(), 0.5);
            r.slope = normal(r.slope.dims(), 0.3);
            r.shift_out = normal(r.shift_out.dims(), 0.5);
        }
    }
    for _ in 0..4 {
        let x = Tensor::<4>::random([32, 1, 16, 16], Distribution::Normal(0.0, 1.0), device);
        let _ = student.forward(x);
    }
    student.valid()
}

/// Binary convs of 32·m → 32·m channels: exported bit-sliced (format 1.4,
/// `tinykd_format::sliced_pays`), with packed outputs and with an int8 output (the last one).
const SLICED_CONFIG: &str = r#"
in_channels = 1
input_size = [16, 16]
layers = [
    { conv = { out = 32, kernel = 3, padding = 1, activation = "none" } },
    { binary_conv = { out = 32, kernel = 3, padding = 1, threshold = true } },
    { max_pool = { kernel = 2 } },
    { binary_conv = { out = 64, kernel = 3, padding = 1, threshold = true, rprelu = true } },
    { binary_conv = { out = 64, kernel = 3, padding = 1, activation = "relu", threshold = true } },
    "global_avg_pool",
    { dense = { out = 10 } },
]
"#;

#[test]
fn binary_simulation_matches_device_kernels() {
    let sliced = check(
        CONFIG,
        &[false, false, false, true, true, true, true, false, false],
    );
    assert_eq!(sliced, 0, "no conv of 32·m → 32·m channels");
}

#[test]
fn bit_sliced_export_matches_the_simulation() {
    let sliced = check(
        SLICED_CONFIG,
        &[false, true, true, true, false, false, false],
    );
    assert_eq!(
        sliced, 3,
        "the two packed-output convs and the int8-output one are bit-sliced"
    );
}

/// Exports a randomized student of `config` and runs the blob with `tinykd-device` against the
/// host's simulation; returns how many ops are bit-sliced.
fn check(config: &str, packed: &[bool]) -> usize {
    let device = Device::flex().autodiff();
    device.seed(11);
    let config: StudentConfig = toml::from_str(config).expect("config");
    assert_eq!(config.packed_outputs(), packed);
    let student = randomize(config.init(&device).expect("valid student"), &device);
    let plain = device.clone().without_autodiff();
    let x = Tensor::<4>::random([64, 1, 16, 16], Distribution::Normal(0.0, 1.0), &plain);
    let quant = calibrate(&student, [x.clone()]);
    let blob = export_student(&student, &quant, "binary", None).expect("export");
    let desc = tinykd_format::validate(&blob).expect("valid blob");
    let sliced = desc
        .ops()
        .filter(|op| matches!(op, tinykd_format::Op::BinaryConv2dSliced(_)))
        .count();
    // The int8 dense head is paired (format 1.5).
    let paired = desc
        .ops()
        .any(|op| matches!(op, tinykd_format::Op::DensePaired(_)));
    // So is a one-channel 3×3 int8 stem (its scratch grew in 1.5).
    let one_channel = desc.ops().any(|op| {
        matches!(op, tinykd_format::Op::Conv2d(c)
            if c.kernel == [3, 3]
                && c.groups == 1
                && desc
                    .tensor(tinykd_format::TensorId(c.input))
                    .is_some_and(|t| t.shape.c == 1))
    });
    let minor = if paired || one_channel {
        5
    } else if sliced > 0 {
        4
    } else {
        2
    };
    assert_eq!(desc.version().1, minor);
    let summary = summarize(&blob).expect("blob loads");
    println!(
        "blob {} bytes, arena {} bytes",
        summary.blob_bytes, summary.arena_bytes
    );

    let simulated: Vec<f32> = student
        .clone()
        .with_quant(Some(quant.clone()))
        .forward(x.clone())
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32");
    let model = tinykd_device::Model::from_bytes(&blob).expect("valid blob");
    let mut arena = vec![0u8; model.arena_size()];
    let inputs = quantize_inputs(x, quant.input.into());
    let out_q = quant.layers.last().copied().expect("layers");
    let (classes, n) = (10, 64);
    let (mut agree, mut total, mut worst) = (0usize, 0f32, 0f32);
    let mut distinct = std::collections::BTreeSet::new();
    for (i, input) in inputs.chunks(model.input_len()).enumerate() {
        let out = model.run(input, &mut arena).expect("run");
        distinct.extend(out.iter().copied());
        let sim = &simulated[i * classes..(i + 1) * classes];
        for (&q, &s) in out.iter().zip(sim) {
            let lsb = ((q as f32 - out_q.zero_point as f32) * out_q.scale - s).abs() / out_q.scale;
            worst = worst.max(lsb);
            total += lsb;
        }
        let sim_arg = sim
            .iter()
            .enumerate()
            .fold(0, |b, (j, &v)| if v > sim[b] { j } else { b });
        agree += usize::from(tinykd_device::argmax(out) == sim_arg);
    }
    let mean = total / (n * classes) as f32;
    println!(
        "device vs simulation: argmax agreement {agree}/{n}, mean {mean:.3} LSB, worst {worst:.1} \
         LSB, {} distinct outputs",
        distinct.len()
    );
    assert!(distinct.len() >= 24, "outputs barely vary: vacuous");
    assert!(mean <= 0.6, "mean logit difference {mean} LSB");
    assert!(agree >= 60, "argmax agreement {agree}/{n}");
    sliced
}
