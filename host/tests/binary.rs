//! Binary students end to end through the `tinykd` binary: the shipped binary-student config
//! trains with the two-step recipe, KD and CMIM's contrastive term; quantization-aware training
//! and export turn it into a blob of XNOR/popcount ops that runs on the host and, identically, in
//! QEMU; bad binary configs are clear errors.
//!
//! `TINYKD_SKIP_QEMU=1` skips the board run (the host half still runs).

mod common;
use common::*;

const CONFIG: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../configs/binary-student.toml"
);

const SMALL: [&str; 6] = [
    "--limit",
    "256",
    "--test-limit",
    "100",
    "--set",
    "data.batch_size=32",
];

#[test]
fn a_binary_student_trains_exports_and_runs_identically_on_the_board() {
    let d = tempfile::tempdir().unwrap();
    let teacher = d.path().join("teacher");
    let t = teacher.to_str().unwrap();
    train_tiny_teacher(t, &SMALL);

    // Two-step (epoch 0: binary activations, real weights; epoch 1: binary weights), KD and
    // CMIM with banks small enough for 256 images.
    let student = d.path().join("bstudent");
    let s = student.to_str().unwrap();
    let mut args = vec![
        "distill",
        "--teacher",
        t,
        "--config",
        CONFIG,
        "--out",
        s,
        "--epochs",
        "2",
    ];
    args.extend(SMALL);
    args.extend([
        "--set",
        "train.binary_step1_epochs=1",
        "--set",
        "distill.contrast={ nce_k = 64, feat_dim = 16 }",
    ]);
    ok(&args);
    let epochs = lines_of_kind(&student, "epoch");
    assert_eq!(epochs.len(), 2);
    for e in &epochs {
        for term in ["kd", "cmim", "loss"] {
            assert!(e[term].as_f64().is_some_and(f64::is_finite), "{term}: {e}");
        }
    }
    let cfg = std::fs::read_to_string(student.join("config.toml")).unwrap();
    assert!(cfg.contains("binary_step1_epochs = 1"), "{cfg}");
    assert!(cfg.contains("binary_conv"), "{cfg}");

    // Quantization-aware training runs the binary layers' int8 simulation.
    let q = d.path().join("bstudent-int8");
    let qs = q.to_str().unwrap();
    let mut args = vec!["quantize", "--student", s, "--out", qs, "--qat-epochs", "1"];
    args.extend([
        "--set",
        "data.train_limit=256",
        "--set",
        "data.test_limit=100",
    ]);
    ok(&args);

    let out = ok(&["export", qs, "--limit", "200"]);
    let bytes: usize = out
        .split("blob ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no blob size in {out}"));
    // 55 296 binary weights pack into 6 912 bytes; an int8 twin would need 55 296.
    assert!(bytes < 12_000, "binary blob of {bytes} bytes: {out}");

    let blob = q.join("student.tkd");
    let tks = q.join("test.tks");
    let mut args = vec![
        "run-blob",
        blob.to_str().unwrap(),
        "--samples",
        tks.to_str().unwrap(),
    ];
    if std::env::var_os("TINYKD_SKIP_QEMU").is_some_and(|v| v == "1") {
        eprintln!("TINYKD_SKIP_QEMU=1: board run skipped");
    } else {
        args.push("--qemu");
    }
    let out = ok(&args);
    println!("{out}");
    assert!(out.contains("host (tinykd-device on x86): "), "{out}");
    if args.contains(&"--qemu") {
        assert!(
            out.contains("identical: all 200 samples, every output byte"),
            "{out}"
        );
    }
}

#[test]
fn bad_binary_configs_are_named_errors() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x");
    let o = out.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train", "--model", "student", "--config", CONFIG, "--out", o,
        ];
        args.extend(SMALL);
        args.extend(extra);
        fails(&args)
    };

    let e = train(&["--epochs", "2", "--set", "train.binary_step1_epochs=2"]);
    assert!(
        e.contains("train.binary_step1_epochs") && e.contains("smaller than train.epochs (2)"),
        "{e}"
    );

    // The shipped config with one edit, which `train` must refuse.
    let bad = d.path().join("bad.toml");
    let edited = |from: &str, to: &str, count: usize| {
        let cfg = std::fs::read_to_string(CONFIG)
            .unwrap()
            .replacen(from, to, count);
        std::fs::write(&bad, cfg).unwrap();
        fails(&[
            "train",
            "--model",
            "student",
            "--config",
            bad.to_str().unwrap(),
            "--out",
            o,
        ])
    };

    // The first binary layer's output is the second's sign: an activation there is meaningless.
    let e = edited(
        "threshold = true }",
        "threshold = true, activation = \"relu\" }",
        1,
    );
    assert!(
        e.contains("layer 2 (binary_conv)") && e.contains("must be none"),
        "{e}"
    );

    // A shortcut needs the output to have the input's shape.
    let e = edited(
        "threshold = true }",
        "threshold = true, shortcut = true }",
        1,
    );
    assert!(
        e.contains("layer 2 (binary_conv)") && e.contains("needs out = 32"),
        "{e}"
    );

    // RPReLU folds into the next binary layer's threshold; on the int8 output it cannot run.
    let e = edited(
        "activation = \"relu\" }",
        "activation = \"relu\", rprelu = true }",
        1,
    );
    assert!(
        e.contains("layer 4 (binary_conv)") && e.contains("RPReLU needs a packed output"),
        "{e}"
    );

    // The two-step recipe on a student without binary layers.
    let e = fails(&[
        "train",
        "--model",
        "student",
        "--out",
        o,
        "--set",
        "train.binary_step1_epochs=1",
    ]);
    assert!(
        e.contains("train.binary_step1_epochs") && e.contains("binary layers"),
        "{e}"
    );
}
