//! Every distillation method trains a student end to end through the `tinykd` binary (a tiny
//! teacher, a few hundred images, one epoch), from config keys alone; the student of the
//! stateful method (CRD) exports as a normal blob; wrong names and taps are clear errors.

mod common;
use common::*;

const SMALL: [&str; 6] = [
    "--limit",
    "256",
    "--test-limit",
    "100",
    "--set",
    "data.batch_size=32",
];

/// `(method, extra --set overrides)`: small CRD banks and negatives for 256 images; FSP on the
/// maps whose channel counts match between the `tiny` teacher (8/16/32) and the student
/// (16/32/64).
const METHODS: [(&str, &[&str]); 12] = [
    ("kd", &[]),
    ("fitnet", &[]),
    ("at", &[]),
    ("sp", &[]),
    ("cc", &[]),
    ("vid", &[]),
    ("rkd", &[]),
    ("pkt", &[]),
    ("nst", &[]),
    (
        "fsp",
        &[
            "distill.method.student_maps=[0, 1]",
            "distill.method.teacher_maps=[1, 2]",
        ],
    ),
    (
        "crd",
        &[
            "distill.method.nce_k=64",
            "distill.method.feat_dim=16",
            "distill.alpha=1.0",
        ],
    ),
    ("dkd", &["distill.method.warmup_epochs=1"]),
];

#[test]
fn every_method_trains_a_student() {
    let d = tempfile::tempdir().unwrap();
    let teacher = d.path().join("teacher");
    let t = teacher.to_str().unwrap();
    train_tiny_teacher(t, &SMALL);

    for (method, extra) in METHODS {
        let out = d.path().join(method);
        let o = out.to_str().unwrap();
        let set = format!("distill.method.method={method}");
        let mut args = vec!["distill", "--teacher", t, "--out", o, "--epochs", "1"];
        args.extend(SMALL);
        args.extend(["--set", &set]);
        for e in extra {
            args.extend(["--set", e]);
        }
        ok(&args);
        let epoch = lines_of_kind(&out, "epoch")[0].clone();
        let term = epoch[method].as_f64();
        assert!(
            term.is_some_and(f64::is_finite),
            "{method}: no finite `{method}` term in {epoch}"
        );
        assert!(
            epoch["loss"].as_f64().is_some_and(f64::is_finite),
            "{epoch}"
        );
        let cfg = std::fs::read_to_string(out.join("config.toml")).unwrap();
        assert!(cfg.contains(&format!("method = \"{method}\"")), "{cfg}");
        println!("{method}: {epoch}");
    }

    // Hint layers by layer clustering: `tinykd hints` and `hints = "auto"` agree.
    let png = d.path().join("hints.png");
    let out = ok(&[
        "hints",
        t,
        "-k",
        "2",
        "--samples",
        "64",
        "--png",
        png.to_str().unwrap(),
    ]);
    assert!(png.is_file(), "{out}");
    let listed = out
        .lines()
        .find_map(|l| l.strip_prefix("hint layers: "))
        .expect("hint layers line")
        .to_string();
    let auto = d.path().join("fitnet-auto");
    let mut args = vec![
        "distill",
        "--teacher",
        t,
        "--out",
        auto.to_str().unwrap(),
        "--epochs",
        "1",
    ];
    args.extend(SMALL);
    args.extend([
        "--set",
        "distill.method.method=fitnet",
        "--set",
        "distill.hints=\"auto\"",
        "--set",
        "distill.hint_count=2",
        "--set",
        "data.train_limit=64",
    ]);
    ok(&args);
    let cfg = std::fs::read_to_string(auto.join("config.toml")).unwrap();
    let table: toml::Table = toml::from_str(&cfg).unwrap();
    let chosen = format!(
        "{:?}",
        table["distill"]["hints"]
            .as_array()
            .expect("resolved hints")
            .iter()
            .map(|v| v.as_integer().unwrap())
            .collect::<Vec<_>>()
    );
    assert_eq!(chosen, listed, "{cfg}");
    assert!(lines_of_kind(&auto, "epoch")[0]["fitnet"]
        .as_f64()
        .is_some_and(f64::is_finite));

    // Ensemble distillation: two teachers of different seeds, averaged predictions for KD and
    // concatenated embeddings for CRD.
    let teacher2 = d.path().join("teacher2");
    let t2 = teacher2.to_str().unwrap();
    let mut args = vec![
        "train",
        "--out",
        t2,
        "--epochs",
        "1",
        "--set",
        "model.preset=tiny",
        "--set",
        "seed=1",
    ];
    args.extend(SMALL);
    ok(&args);
    let ens = d.path().join("crd-ensemble");
    let ensemble = format!("distill.ensemble=[\"{t2}\"]");
    let mut args = vec![
        "distill",
        "--teacher",
        t,
        "--out",
        ens.to_str().unwrap(),
        "--epochs",
        "1",
    ];
    args.extend(SMALL);
    args.extend([
        "--set",
        "distill.method.method=crd",
        "--set",
        "distill.method.nce_k=64",
        "--set",
        "distill.alpha=1.0",
        "--set",
        &ensemble,
        "--set",
        "distill.ensemble_features=\"concat\"",
    ]);
    ok(&args);
    let epoch = lines_of_kind(&ens, "epoch")[0].clone();
    assert!(
        epoch["crd"].as_f64().is_some_and(f64::is_finite) && epoch["kd"].as_f64().is_some(),
        "{epoch}"
    );
    let cfg = std::fs::read_to_string(ens.join("config.toml")).unwrap();
    assert!(cfg.contains("ensemble_features = \"concat\""), "{cfg}");

    // CRD+KD logs both terms; its student (banks and heads dropped) quantizes and exports.
    let crd = d.path().join("crd");
    let epoch = lines_of_kind(&crd, "epoch")[0].clone();
    assert!(epoch["kd"].as_f64().is_some_and(|v| v > 0.0), "{epoch}");
    let q = d.path().join("crd-q");
    let qs = q.to_str().unwrap();
    ok(&[
        "quantize",
        "--student",
        crd.to_str().unwrap(),
        "--out",
        qs,
        "--qat-epochs",
        "0",
        "--calibration-batches",
        "2",
        "--set",
        "data.train_limit=256",
        "--set",
        "data.test_limit=100",
    ]);
    ok(&["export", qs, "--limit", "50"]);
    let out = ok(&[
        "run-blob",
        q.join("student.tkd").to_str().unwrap(),
        "--samples",
        q.join("test.tks").to_str().unwrap(),
    ]);
    assert!(out.contains("50"), "{out}");
}

#[test]
fn wrong_methods_and_taps_are_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    let teacher = d.path().join("teacher");
    let t = teacher.to_str().unwrap();
    let mut args = vec![
        "train",
        "--out",
        t,
        "--epochs",
        "1",
        "--set",
        "model.preset=tiny",
    ];
    args.extend([
        "--limit",
        "64",
        "--test-limit",
        "32",
        "--set",
        "data.batch_size=16",
    ]);
    ok(&args);
    let o = d.path().join("s");
    let o = o.to_str().unwrap();
    let base = [
        "distill",
        "--teacher",
        t,
        "--out",
        o,
        "--epochs",
        "1",
        "--limit",
        "64",
    ];

    let mut a = base.to_vec();
    a.extend(["--set", "distill.method.method=fitnets"]);
    let e = fails(&a);
    assert!(
        e.contains("fitnets") && e.contains("fitnet") && e.contains("crd"),
        "{e}"
    );

    let mut a = base.to_vec();
    a.extend([
        "--set",
        "distill.method.method=at",
        "--set",
        "distill.method.pairs=[[0, 5]]",
    ]);
    let e = fails(&a);
    assert!(
        e.contains("no feature map 5") && e.contains("8×14×14"),
        "{e}"
    );

    let mut a = base.to_vec();
    a.extend(["--set", "distill.method.method=fsp"]);
    let e = fails(&a);
    assert!(e.contains("equal channel counts"), "{e}");

    let mut a = base.to_vec();
    a.extend([
        "--set",
        "distill.method.method=crd",
        "--set",
        "distill.method.nce_k=100000",
    ]);
    let e = fails(&a);
    assert!(e.contains("nce_k"), "{e}");
}
