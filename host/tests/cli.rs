//! The `tinykd` binary end to end on a few hundred images: train, resume, eval, distill, and the
//! errors a user sees for bad configs and misused run directories.

mod common;
use common::*;

const SMALL: [&str; 6] = [
    "--limit",
    "256",
    "--test-limit",
    "200",
    "--set",
    "data.batch_size=64",
];

#[test]
fn bad_configs_are_reported_by_key() {
    let e = fails(&[
        "train",
        "--out",
        "unused",
        "--print-config",
        "--set",
        "optim.lrr=1",
    ]);
    assert!(e.contains("optim.lrr"), "{e}");
    let e = fails(&[
        "train",
        "--out",
        "unused",
        "--print-config",
        "--set",
        "optim.lr=-1",
    ]);
    assert!(e.contains("optim.lr") && e.contains("positive"), "{e}");
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("bad.toml");
    std::fs::write(&cfg, "[data]\nbatch_size = \"big\"\n").unwrap();
    let e = fails(&[
        "train",
        "--out",
        "unused",
        "--print-config",
        "--config",
        cfg.to_str().unwrap(),
    ]);
    assert!(e.contains("data.batch_size"), "{e}");
    // The resolved defaults print as TOML that parses back.
    let text = ok(&[
        "train",
        "--out",
        "unused",
        "--print-config",
        "--model",
        "student",
    ]);
    let back: tinykd::config::RunConfig = toml::from_str(&text).unwrap();
    assert!(matches!(back.model, tinykd::config::ModelSpec::Student(_)));
}

#[test]
fn train_resume_eval_and_distill() {
    let d = tempfile::tempdir().unwrap();
    let teacher = d.path().join("teacher");
    let t = teacher.to_str().unwrap();
    let mut args = vec!["train", "--out", t, "--set", "model.preset=tiny"];
    args.extend(SMALL);
    // Train one epoch, then resume the run and extend it to two (`--epochs` wins over `--set`).
    let mut first = args.clone();
    first.extend(["--set", "train.epochs=3", "--epochs", "1"]);
    let out = ok(&first);
    assert!(
        out.contains("1 epochs") && out.contains("test accuracy"),
        "{out}"
    );
    assert!(teacher.join("config.toml").is_file() && teacher.join("model.bpk").is_file());
    let e = fails(&args);
    assert!(e.contains("already holds"), "{e}");
    let out = ok(&["train", "--resume", t, "--epochs", "2"]);
    assert!(out.contains("2 epochs"), "{out}");
    assert_eq!(lines_of_kind(&teacher, "epoch").len(), 2);
    assert_eq!(lines_of_kind(&teacher, "resume").len(), 1);

    let json = ok(&["eval", t, "--limit", "200", "--json"]);
    let report: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    assert_eq!(report["images"], 200);
    let acc = report["accuracy"].as_f64().unwrap();
    let last = &lines_of_kind(&teacher, "epoch")[1];
    assert_eq!(
        acc,
        last["test_accuracy"].as_f64().unwrap(),
        "eval reproduces the run's figure"
    );

    let student = d.path().join("student");
    let mut args = vec![
        "distill",
        "--teacher",
        t,
        "--out",
        student.to_str().unwrap(),
        "--epochs",
        "1",
    ];
    args.extend(SMALL);
    let out = ok(&args);
    assert!(out.contains("test accuracy"), "{out}");
    let epoch = &lines_of_kind(&student, "epoch")[0];
    assert!(epoch["kd"].as_f64().unwrap() > 0.0, "{epoch}");
    let cfg = std::fs::read_to_string(student.join("config.toml")).unwrap();
    assert!(
        cfg.contains("[distill.method]") && cfg.contains("kind = \"student\""),
        "{cfg}"
    );

    let e = fails(&[
        "distill",
        "--teacher",
        d.path().to_str().unwrap(),
        "--out",
        "unused",
    ]);
    assert!(e.contains("not a run directory"), "{e}");
    let e = fails(&["eval", d.path().join("nothing").to_str().unwrap()]);
    assert!(e.contains("config.toml"), "{e}");
}
