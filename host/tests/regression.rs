//! Regression end to end on tiny data (issue 8, cGAN-KD for regression): the rotation-angle task,
//! a regression teacher and student (squared error, MAE in degrees), KD as the squared error to
//! the teacher's prediction, a GAN conditioned on the angle, the teacher's filter and
//! relabelling, and a student on real + synthetic data; plus the configurations that do not
//! apply to regression, refused with the key named.

mod common;

use std::path::Path;

use burn::prelude::*;
use common::{fails, lines_of_kind, ok};
use tinykd::config::DataConfig;
use tinykd::data::{rotation, DatasetKind, Split};
use tinykd::eval::evaluate;
use tinykd::train::run::{eval_loader, load_datasets};
use tinykd::train::{load_model, RunModel};

const STUDENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../configs/rotation-student.toml"
);

fn rotation_data(limit: usize) -> DataConfig {
    DataConfig {
        dataset: DatasetKind::FashionMnistRotation,
        train_limit: Some(limit),
        test_limit: Some(limit),
        ..DataConfig::default()
    }
}

#[test]
fn rotation_task_has_angle_targets() {
    let (train, test) = load_datasets(&rotation_data(50)).unwrap();
    assert_eq!((train.len(), test.len()), (50, 50));
    assert_eq!(train.shape(), [1, 28, 28]);
    assert!(train.labels().iter().all(|&l| l == 0));
    let t = train.targets().expect("a regression set has targets");
    assert_eq!(t.scale, 90.0);
    for (i, &v) in t.values.iter().enumerate() {
        let want = rotation::normalize(rotation::angle_of(Split::Train, i));
        assert_eq!(v, want, "sample {i}");
    }
    // The pixels are the rotated clothing, not the upright one.
    let upright = load_datasets(&DataConfig {
        dataset: DatasetKind::FashionMnist,
        train_limit: Some(1),
        test_limit: Some(1),
        ..DataConfig::default()
    })
    .unwrap()
    .0;
    let angle = rotation::angle_of(Split::Train, 0);
    assert_eq!(
        train.image(0).unwrap(),
        rotation::rotate(upright.image(0).unwrap(), 28, 28, angle).as_slice()
    );
}

fn train_student(out: &Path, epochs: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "train",
        "--model",
        "student",
        "--config",
        STUDENT,
        "--out",
        out.to_str().unwrap(),
        "--limit",
        "256",
        "--test-limit",
        "128",
        "--epochs",
        epochs,
        "--set",
        "train.progress=never",
    ];
    args.extend(extra);
    ok(&args)
}

#[test]
fn regression_teacher_student_kd_and_cgan_kd() {
    let d = tempfile::tempdir().unwrap();
    // The "teacher" is a student-sized network trained longer: any regression network can teach.
    let teacher = d.path().join("teacher");
    let out = train_student(
        &teacher,
        "3",
        &["--set", "data.batch_size=32", "--set", "optim.lr=0.005"],
    );
    assert!(out.contains("test MAE"), "{out}");
    let epochs = lines_of_kind(&teacher, "epoch");
    assert_eq!(epochs.len(), 3);
    let last = &epochs[2];
    assert!(last["mse"].as_f64().is_some_and(f64::is_finite), "{last}");
    assert!(last.get("ce").is_none(), "{last}");
    let reported = last["test_mae"].as_f64().unwrap();

    // The reported MAE is the mean |prediction − angle| in degrees over the test images.
    let device = Device::flex();
    let (model, config) = load_model(&teacher, &device).unwrap();
    let (_, test) = load_datasets(&config.data).unwrap();
    let RunModel::Student(net) = &model else {
        panic!("a student")
    };
    let preds: Vec<f32> = tinykd::models::Classifier::forward(
        &burn::module::Module::valid(net),
        eval_loader(&test, &config.data)
            .epoch(0, 0, &device)
            .next()
            .unwrap()
            .images,
    )
    .into_data()
    .try_into_vec::<f32>()
    .unwrap();
    let t = test.targets().unwrap();
    let mae: f64 = preds
        .iter()
        .zip(&t.values)
        .map(|(p, y)| f64::from((p - y).abs()) * 90.0)
        .sum::<f64>()
        / preds.len() as f64;
    assert_eq!(preds.len(), 128);
    assert!((mae - reported).abs() < 1e-3, "{mae} vs {reported}");
    let again = evaluate(net, &eval_loader(&test, &config.data), &device);
    assert!((again.mae.unwrap() - reported).abs() < 1e-9);

    // KD for a regression head: the squared error to the teacher's prediction.
    let kd = d.path().join("kd");
    let t = teacher.to_str().unwrap();
    ok(&[
        "distill",
        "--teacher",
        t,
        "--config",
        STUDENT,
        "--out",
        kd.to_str().unwrap(),
        "--limit",
        "256",
        "--test-limit",
        "128",
        "--epochs",
        "1",
    ]);
    let e = &lines_of_kind(&kd, "epoch")[0];
    assert!(e["kd"].as_f64().is_some_and(|v| v > 0.0), "{e}");
    assert!(e["test_mae"].as_f64().is_some_and(f64::is_finite), "{e}");
    // CRD on a one-class set: every other sample is a negative.
    let crd = d.path().join("crd");
    ok(&[
        "distill",
        "--teacher",
        t,
        "--config",
        STUDENT,
        "--out",
        crd.to_str().unwrap(),
        "--limit",
        "256",
        "--test-limit",
        "128",
        "--epochs",
        "1",
        "--set",
        "distill.method.method=crd",
        "--set",
        "distill.method.nce_k=64",
    ]);
    let e = &lines_of_kind(&crd, "epoch")[0];
    assert!(e["crd"].as_f64().is_some_and(f64::is_finite), "{e}");

    // A GAN conditioned on the angle, with a grid of rows of increasing angle per epoch.
    let gan = d.path().join("gan");
    ok(&[
        "gan",
        "train",
        "--out",
        gan.to_str().unwrap(),
        "--set",
        "data.dataset=\"fashion-mnist-rotation\"",
        "--set",
        "data.train_limit=128",
        "--set",
        "gan.batch_size=32",
        "--set",
        "gan.width=4",
        "--set",
        "gan.z_dim=8",
        "--set",
        "gan.epochs=1",
        "--set",
        "gan.progress=never",
    ]);
    assert!(gan.join("samples-epoch-0001.png").is_file());

    // Sampling: cDR-RS (a ratio net on the value), then 3 angles × 8 kept, filtered and
    // relabelled by the teacher.
    let fake = d.path().join("fake");
    let f = fake.to_str().unwrap();
    let out = ok(&[
        "gan",
        "sample",
        "--gan",
        gan.to_str().unwrap(),
        "--teacher",
        t,
        "--out",
        f,
        "--set",
        "sample.values=3",
        "--set",
        "sample.per_class=8",
        "--set",
        "sample.burn_in=20",
        "--set",
        "sample.batch_size=20",
        "--set",
        "sample.dre.epochs=1",
        "--set",
        "sample.dre.batch_size=32",
        "--set",
        "sample.dre.hidden=[16, 8]",
    ]);
    assert!(out.contains("24 samples"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fake.join("report.json")).unwrap()).unwrap();
    let pass = report["filter_pass_rate"].as_f64().unwrap();
    assert!(pass > 0.5 && pass < 1.0, "{report}");
    let acceptance = report["acceptance_rate"].as_f64().unwrap();
    assert!(acceptance > 0.0 && acceptance <= 1.0, "{report}");
    assert!(report["dre_last_loss"].as_f64().unwrap().is_finite());
    for row in report["classes"].as_array().unwrap() {
        assert!(
            row["accepted"].as_u64() <= row["generated"].as_u64(),
            "{row}"
        );
    }
    assert!(report["teacher_burn_in_mae"].as_f64().unwrap() > 0.0);
    let targets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fake.join("fake-targets.json")).unwrap())
            .unwrap();
    let values = targets["values"].as_array().unwrap();
    assert_eq!(values.len(), 24);
    assert!(values
        .iter()
        .all(|v| (0.0..=1.0).contains(&v.as_f64().unwrap())));
    // Relabelled: the targets are the teacher's predictions, not the three conditions.
    assert!(values
        .iter()
        .any(|v| ![0.0, 0.5, 1.0].contains(&v.as_f64().unwrap())));

    // A student on real + synthetic data sees 256 + 24 samples.
    let mixed = d.path().join("mixed");
    let synthetic = format!("data.synthetic={f}");
    train_student(&mixed, "1", &["--set", &synthetic]);
    let e = &lines_of_kind(&mixed, "epoch")[0];
    // 280 samples in batches of 128 with drop_last: 2 steps.
    assert_eq!(e["step"], 2, "{e}");
    let (train, _) = load_datasets(
        &tinykd::config::RunConfig::from_run_dir(&mixed)
            .unwrap()
            .data,
    )
    .unwrap();
    assert_eq!(train.len(), 280);
    assert_eq!(train.targets().unwrap().values.len(), 280);

    // What regression does not support is refused with the key named.
    let e = fails(&[
        "distill",
        "--teacher",
        t,
        "--config",
        STUDENT,
        "--out",
        d.path().join("dkd").to_str().unwrap(),
        "--set",
        "distill.method.method=dkd",
    ]);
    assert!(e.contains("distill.method"), "{e}");
    let e = fails(&[
        "quantize",
        "--student",
        t,
        "--out",
        d.path().join("q").to_str().unwrap(),
    ]);
    assert!(e.contains("regression"), "{e}");
    // A classification GAN has no vicinity to set.
    let e = fails(&[
        "gan",
        "train",
        "--out",
        d.path().join("g3").to_str().unwrap(),
        "--set",
        "gan.label_noise=0.1",
    ]);
    assert!(e.contains("gan.label_noise"), "{e}");
    let e = fails(&[
        "gan",
        "sample",
        "--gan",
        gan.to_str().unwrap(),
        "--teacher",
        t,
        "--out",
        d.path().join("f2").to_str().unwrap(),
        "--set",
        "sample.values=1",
    ]);
    assert!(e.contains("sample.values"), "{e}");
}
