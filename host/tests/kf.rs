//! Knowledge Factorization end to end through the `tinykd` binary: a tiny teacher is factorized
//! (checkpoints and an exact resume), a subset of factors is assembled without training and its
//! per-task accuracy is the factors', and the assembled network is quantized, exported and run
//! by the device runtime, whose outputs match the host's int8 simulation. Bad requests are errors
//! naming what is wrong.

mod common;
use common::*;

use std::path::Path;

use burn::prelude::*;
use tinykd::deploy::SampleSet;
use tinykd::models::Classifier;
use tinykd::quant::read_quant;
use tinykd::train::run::{eval_loader, load_datasets};
use tinykd::train::{load_model, RunModel};

const SMALL: [&str; 10] = [
    "--limit",
    "256",
    "--test-limit",
    "100",
    "--set",
    "data.batch_size=32",
    "--set",
    "train.progress=never",
    // A constant learning rate, so a run stopped after one epoch has the same schedule.
    "--set",
    "schedule.kind=constant",
];

fn factorize(teacher: &str, out: &str, epochs: &str) -> String {
    let mut args = vec![
        "factorize",
        "--teacher",
        teacher,
        "--out",
        out,
        "--epochs",
        epochs,
    ];
    args.extend(SMALL);
    ok(&args)
}

/// `task name → accuracy` of the lines `prefix <task>: test accuracy <x>%`.
fn printed(out: &str, prefix: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.strip_prefix(prefix))
        .filter_map(|l| {
            let (task, rest) = l.split_once(": test accuracy ")?;
            Some((task.to_string(), rest.split('%').next()?.to_string()))
        })
        .collect()
}

#[test]
fn factorize_resume_assemble_export_run() {
    let d = tempfile::tempdir().unwrap();
    let path = |n: &str| d.path().join(n).to_str().unwrap().to_string();
    let teacher = path("teacher");
    train_tiny_teacher(&teacher, &SMALL[..8]);

    // Two epochs straight, and one epoch then a resume: the same factors.
    let straight = path("kf");
    let out = factorize(&teacher, &straight, "2");
    let factors = printed(&out, "factor ");
    assert_eq!(
        factors.iter().map(|f| f.0.as_str()).collect::<Vec<_>>(),
        ["tops", "bottoms", "footwear", "bags"]
    );
    let epochs = lines_of_kind(Path::new(&straight), "epoch");
    assert_eq!(epochs.len(), 2);
    for term in ["task_ce", "kd", "infomax", "infomin"] {
        assert!(
            epochs[1][term].as_f64().is_some_and(f64::is_finite),
            "{term} in {}",
            epochs[1]
        );
    }
    let resumed = path("kf-resumed");
    factorize(&teacher, &resumed, "1");
    ok(&["factorize", "--resume", &resumed, "--epochs", "2"]);
    assert_eq!(lines_of_kind(Path::new(&resumed), "resume").len(), 1);
    // (Compared through outputs: burnpack files carry per-process parameter ids.)
    let device = Device::flex();
    let probe = Tensor::<4>::ones([2, 1, 28, 28], &device);
    for task in ["tops", "bags"] {
        let outputs = |run: &str| {
            let (m, _) = load_model(&Path::new(run).join("factors").join(task), &device).unwrap();
            let RunModel::Student(m) = m else {
                panic!("a student")
            };
            m.valid()
                .forward(probe.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap()
        };
        assert_eq!(
            outputs(&straight),
            outputs(&resumed),
            "factor {task} after resume"
        );
    }
    let last = |run: &str| lines_of_kind(Path::new(run), "epoch")[1]["loss"].clone();
    assert_eq!(last(&straight), last(&resumed));

    // Assembly: no training, the factors' accuracies.
    let asm = path("asm");
    let out = ok(&[
        "assemble",
        "--factors",
        &straight,
        "--tasks",
        "footwear,tops",
        "--out",
        &asm,
    ]);
    let tasks = printed(&out, "task ");
    let of = |name: &str| factors.iter().find(|f| f.0 == name).unwrap().1.clone();
    assert_eq!(tasks[0], ("footwear".to_string(), of("footwear")));
    assert_eq!(tasks[1], ("tops".to_string(), of("tops")));
    // `tinykd eval` reports the same per-task accuracies.
    assert_eq!(
        printed(&ok(&["eval", &asm, "--limit", "100"]), "task "),
        tasks
    );

    // Quantize (no fine-tuning), export, and run the blob on the device runtime.
    let q = path("asm-q");
    assert!(fails(&["quantize", "--student", &asm, "--out", &q]).contains("--qat-epochs 0"));
    ok(&[
        "quantize",
        "--student",
        &asm,
        "--out",
        &q,
        "--qat-epochs",
        "0",
    ]);
    ok(&["export", &q, "--limit", "100"]);
    let blob = std::fs::read(Path::new(&q).join("student.tkd")).unwrap();
    ok(&[
        "run-blob",
        Path::new(&q).join("student.tkd").to_str().unwrap(),
        "--samples",
        Path::new(&q).join("test.tks").to_str().unwrap(),
    ]);
    let samples = SampleSet::read_tks(&Path::new(&q).join("test.tks")).unwrap();
    let model = tinykd_device::Model::from_bytes(&blob).expect("valid blob");
    let mut arena = vec![0u8; model.arena_size()];

    // The host's int8 simulation of the same network on the same images.
    let (net, config) = load_model(Path::new(&q), &device).unwrap();
    let RunModel::Student(net) = net else {
        panic!("a student")
    };
    let quant = read_quant(Path::new(&q)).unwrap();
    let out_q = *quant.layers.last().unwrap();
    let simulated = net.with_quant(Some(quant)).valid();
    let (_, test) = load_datasets(&config.data).unwrap();
    let mut sim = Vec::new();
    for batch in eval_loader(&test, &config.data).epoch(0, 0, &device) {
        sim.extend(
            simulated
                .forward(batch.images)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
        );
    }
    // footwear: 3 classes + other; tops: 4 classes + other.
    let outputs = 4 + 5;
    assert_eq!(sim.len(), samples.len() * outputs);
    let (mut worst, mut total, mut agree) = (0f32, 0f32, 0usize);
    let argmax = |v: &[f32]| (0..v.len()).fold(0, |b, j| if v[j] > v[b] { j } else { b });
    for (i, (input, _)) in samples.iter().enumerate() {
        let out = model.run(input, &mut arena).expect("run");
        let dev: Vec<f32> = out
            .iter()
            .map(|&q| (q as f32 - out_q.zero_point as f32) * out_q.scale)
            .collect();
        let s = &sim[i * outputs..(i + 1) * outputs];
        for (a, b) in dev.iter().zip(s) {
            let lsb = (a - b).abs() / out_q.scale;
            worst = worst.max(lsb);
            total += lsb;
        }
        // Per task (footwear: logits 0..4, tops: 4..9), the same prediction.
        for r in [0..4, 4..9] {
            agree += usize::from(argmax(&dev[r.clone()]) == argmax(&s[r]));
        }
    }
    let mean = total / (samples.len() * outputs) as f32;
    assert!(mean <= 1.0, "mean difference {mean} LSB");
    assert!(worst <= 6.0, "worst difference {worst} LSB");
    assert!(
        agree * 100 >= 2 * samples.len() * 95,
        "per-task agreement {agree}/{}",
        2 * samples.len()
    );

    // Bad requests name the key.
    let err = fails(&[
        "assemble",
        "--factors",
        &straight,
        "--tasks",
        "shoes",
        "--out",
        &path("x"),
    ]);
    assert!(
        err.contains("--tasks") && err.contains("unknown task `shoes`"),
        "{err}"
    );
    let (y, z) = (path("y"), path("z"));
    let mut args = vec!["factorize", "--teacher", &teacher, "--out", &y];
    args.extend(SMALL);
    args.extend([
        "--set",
        "kf.tasks=[{name=\"all\",classes=[0,1,2,3,4,5,6,7,8,9]}]",
    ]);
    let err = fails(&args);
    assert!(
        err.contains("kf.tasks.all") && err.contains("covers every class"),
        "{err}"
    );
    let mut args = vec!["factorize", "--teacher", &teacher, "--out", &z];
    args.extend(SMALL);
    args.extend(["--set", "kf.beta=-1"]);
    assert!(fails(&args).contains("kf.beta"));
}
