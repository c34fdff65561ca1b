//! The host's int8 simulation (fake quantization with folded BatchNorm) against the device's
//! integer kernels on the exported blob: the two must agree to within a few output LSBs, or QAT
//! would optimize a different network from the one that ships.

use burn::prelude::*;
use burn::tensor::Distribution;
use tinykd::export::{export_student, quantize_inputs, summarize};
use tinykd::models::student::StudentConfig;
use tinykd::models::Classifier;
use tinykd::quant::calibrate;

#[test]
fn fake_quant_matches_device_kernels() {
    let device = Device::flex();
    device.seed(7);
    let student = StudentConfig::mcu_small()
        .init(&device)
        .expect("valid preset");
    let x = Tensor::<4>::random([48, 1, 28, 28], Distribution::Normal(0.0, 1.0), &device);
    let quant = calibrate(&student, [x.clone()]);
    let blob = export_student(&student, &quant, "test", None).expect("export");
    // The dense head is written paired (format 1.5); the comparison below runs it.
    let desc = tinykd_format::validate(&blob).expect("valid blob");
    assert_eq!(desc.version(), (1, 5));
    assert!(desc
        .ops()
        .any(|op| matches!(op, tinykd_format::Op::DensePaired(_))));
    let summary = summarize(&blob).expect("blob loads");
    println!(
        "blob {} bytes, arena {} bytes",
        summary.blob_bytes, summary.arena_bytes
    );
    assert!(
        summary.blob_bytes <= 32 * 1024,
        "mcu_small blob must fit 32 KB"
    );

    let simulated = student
        .clone()
        .with_quant(Some(quant.clone()))
        .valid()
        .forward(x.clone());
    let simulated: Vec<f32> = simulated
        .into_data()
        .convert::<f32>()
        .try_to_vec()
        .expect("f32");

    let model = tinykd_device::Model::from_bytes(&blob).expect("valid blob");
    let mut arena = vec![0u8; model.arena_size()];
    let inputs = quantize_inputs(x, quant.input.into());
    let out_q = quant.layers.last().copied().expect("layers");
    let classes = 10;
    let (mut agree, mut worst, mut total_diff) = (0usize, 0f32, 0f32);
    let mut distinct = std::collections::BTreeSet::new();
    for (i, input) in inputs.chunks(model.input_len()).enumerate() {
        let out = model.run(input, &mut arena).expect("run");
        distinct.extend(out.iter().copied());
        let sim = &simulated[i * classes..(i + 1) * classes];
        for (&q, &s) in out.iter().zip(sim) {
            let lsb = ((q as f32 - out_q.zero_point as f32) * out_q.scale - s).abs() / out_q.scale;
            worst = worst.max(lsb);
            total_diff += lsb;
        }
        let sim_arg = sim
            .iter()
            .enumerate()
            .fold(0, |b, (j, &v)| if v > sim[b] { j } else { b });
        agree += usize::from(tinykd_device::argmax(out) == sim_arg);
    }
    let mean = total_diff / (inputs.len() / model.input_len() * classes) as f32;
    println!("device vs simulation: argmax agreement {agree}/48, mean {mean:.3} LSB, worst {worst:.1} LSB");
    println!("distinct output values: {}", distinct.len());
    assert!(
        distinct.len() >= 32,
        "outputs barely vary: the comparison would be vacuous"
    );
    assert!(mean <= 1.0, "mean logit difference {mean} LSB");
    assert!(worst <= 6.0, "worst logit difference {worst} LSB");
    assert!(agree >= 44, "argmax agreement {agree}/48");
}
