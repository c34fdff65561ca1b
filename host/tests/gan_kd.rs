//! cGAN-KD end to end on tiny data: GAN training with per-epoch grids, exact resume after a
//! kill, bad keys named, sampling (cDR-RS + teacher filter + relabelling) into an IDX pair, and
//! students (plain, KD, CRD) trained on real + synthetic data.

mod common;

use std::path::Path;

use burn::prelude::*;
use common::{fails, lines_of_kind, ok, train_tiny_teacher};
use rand::SeedableRng;
use tinykd::synth::train::{class_condition, load_generator, noise};

/// A GAN small enough for a few seconds per epoch.
const TINY_GAN: [&str; 10] = [
    "--set",
    "data.train_limit=192",
    "--set",
    "gan.batch_size=32",
    "--set",
    "gan.width=4",
    "--set",
    "gan.z_dim=8",
    "--set",
    "gan.progress=never",
];

fn gan_train(out: &Path, epochs: usize) {
    let mut args = vec!["gan", "train", "--out", out.to_str().unwrap()];
    args.extend(TINY_GAN);
    let e = format!("gan.epochs={epochs}");
    args.extend(["--set", &e]);
    ok(&args);
}

/// Samples of the newest checkpoint's generator for fixed noise and labels.
fn samples_of(run: &Path) -> Vec<f32> {
    let device = Device::flex();
    let (g, _) = load_generator(run, &[], &device).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(99);
    let labels: Vec<u8> = (0..10).collect();
    g.forward(
        noise(&mut rng, 10, g.z_dim(), &device),
        class_condition(&labels, &device),
    )
    .into_data()
    .try_into_vec::<f32>()
    .unwrap()
}

#[test]
fn gan_resumes_exactly_after_a_kill_and_names_bad_keys() {
    let d = tempfile::tempdir().unwrap();
    let straight = d.path().join("straight");
    gan_train(&straight, 2);
    for e in 1..=2 {
        assert!(straight.join(format!("samples-epoch-{e:04}.png")).is_file());
    }
    assert_eq!(lines_of_kind(&straight, "epoch").len(), 2);

    // "Killed" during epoch 2: only the epoch-1 checkpoint exists, plus the half-written
    // temporary directory a crash while saving leaves behind.
    let killed = d.path().join("killed");
    gan_train(&killed, 1);
    std::fs::create_dir_all(killed.join("checkpoints/.tmp-epoch-0002")).unwrap();
    ok(&[
        "gan",
        "train",
        "--resume",
        killed.to_str().unwrap(),
        "--set",
        "gan.epochs=2",
    ]);
    assert_eq!(lines_of_kind(&killed, "resume").len(), 1);
    assert_eq!(
        samples_of(&straight),
        samples_of(&killed),
        "a resumed run must end with the uninterrupted run's generator"
    );

    // Starting fresh over a run, resuming nothing, bad keys: errors that say what is wrong.
    let mut again = vec!["gan", "train", "--out", straight.to_str().unwrap()];
    again.extend(TINY_GAN);
    assert!(fails(&again).contains("already holds"));
    let empty = d.path().join("empty");
    assert!(fails(&["gan", "train", "--resume", empty.to_str().unwrap()]).contains("config.toml"));
    let e = fails(&["gan", "train", "--out", "x", "--set", "gan.lr_g=0"]);
    assert!(e.contains("gan.lr_g"), "{e}");
    let e = fails(&["gan", "train", "--out", "x", "--set", "gan.epohcs=2"]);
    assert!(e.contains("gan.epohcs"), "{e}");
}

#[test]
fn synthetic_set_trains_students_with_and_without_kd_and_crd() {
    let d = tempfile::tempdir().unwrap();
    let teacher = d.path().join("teacher");
    let t = teacher.to_str().unwrap();
    train_tiny_teacher(t, &["--limit", "256", "--test-limit", "100"]);
    let gan = d.path().join("gan");
    gan_train(&gan, 1);

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
        "sample.per_class=12",
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
    assert!(out.contains("120 samples"), "{out}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fake.join("report.json")).unwrap()).unwrap();
    let rate = |k: &str| report[k].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&rate("acceptance_rate")), "{report}");
    // The filter drops what reaches the burn-in's 90th percentile: about a tenth.
    assert!(
        rate("filter_pass_rate") > 0.5 && rate("filter_pass_rate") < 1.0,
        "{report}"
    );
    assert!(report["dre_last_loss"].as_f64().unwrap().is_finite());
    for class in report["classes"].as_array().unwrap() {
        assert_eq!(class["written"], 12, "{class}");
        assert!(class["accepted"].as_u64() <= class["generated"].as_u64());
    }
    assert!(fake.join("kept-grid.png").is_file());

    // Students on real + synthetic: alone, with KD, with CRD (whose memory banks must cover
    // the 256 real + 120 synthetic instances, or indexing would fail).
    let synthetic = format!("data.synthetic={f}");
    let small = ["--limit", "256", "--test-limit", "100", "--epochs", "1"];
    let plain = d.path().join("plain");
    let mut args = vec![
        "train",
        "--model",
        "student",
        "--out",
        plain.to_str().unwrap(),
        "--set",
        &synthetic,
    ];
    args.extend(small);
    ok(&args);
    let epoch = lines_of_kind(&plain, "epoch")[0].clone();
    println!("plain: {epoch}");
    for method in ["kd", "crd"] {
        let out = d.path().join(method);
        let m = format!("distill.method.method={method}");
        let mut args = vec![
            "distill",
            "--teacher",
            t,
            "--out",
            out.to_str().unwrap(),
            "--set",
            &synthetic,
            "--set",
            &m,
        ];
        if method == "crd" {
            args.extend(["--set", "distill.method.nce_k=64"]);
        }
        args.extend(small);
        ok(&args);
        let epoch = lines_of_kind(&out, "epoch")[0].clone();
        assert!(
            epoch[method].as_f64().is_some_and(f64::is_finite),
            "{epoch}"
        );
        let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
        assert!(cfg.contains("synthetic = "), "{cfg}");
    }

    // A synthetic directory without the files is an error naming the key.
    let e = fails(&[
        "train",
        "--model",
        "student",
        "--out",
        d.path().join("bad").to_str().unwrap(),
        "--set",
        "data.synthetic=/nonexistent",
        "--limit",
        "64",
    ]);
    assert!(e.contains("data.synthetic"), "{e}");
}
