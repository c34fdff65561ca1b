//! TAKD through the `tinykd` binary: teacher → assistant → student as one command, and a chain
//! whose last stage did not finish continues there without retraining the finished stage.

mod common;
use common::*;

#[test]
fn chain_runs_and_resumes_at_the_unfinished_stage() {
    let d = tempfile::tempdir().unwrap();
    let teacher = d.path().join("teacher");
    let t = teacher.to_str().unwrap();
    let small = [
        "--set",
        "data.train_limit=256",
        "--set",
        "data.test_limit=100",
        "--set",
        "data.batch_size=32",
        "--set",
        "train.progress=never",
    ];
    let mut args = vec![
        "train",
        "--out",
        t,
        "--epochs",
        "1",
        "--set",
        "model.preset=small",
    ];
    args.extend(small);
    ok(&args);

    let out = d.path().join("chain");
    let o = out.to_str().unwrap();
    let mut args = vec![
        "takd",
        "--teacher",
        t,
        "--out",
        o,
        "--assistants",
        "tiny",
        "--epochs",
        "2",
    ];
    args.extend(small);
    let first = ok(&args);
    assert!(
        first.contains("stage 1 assistant-tiny") && first.contains("stage 2 student"),
        "{first}"
    );
    let assistant = out.join("stage1-assistant-tiny");
    let student = out.join("stage2-student");
    let cfg = std::fs::read_to_string(student.join("config.toml")).unwrap();
    assert!(
        cfg.contains(&format!("teacher = \"{}\"", assistant.display())),
        "{cfg}"
    );
    assert!(cfg.contains("kind = \"student\""), "{cfg}");

    // Interrupt the last stage after its first epoch: drop its completion mark and its second
    // epoch, as a kill during epoch 2 would leave it.
    std::fs::remove_file(student.join("stage.json")).unwrap();
    std::fs::remove_dir_all(student.join("checkpoints/epoch-0002")).unwrap();
    let assistant_log = std::fs::read_to_string(assistant.join("metrics.jsonl")).unwrap();
    let second = ok(&args);
    assert!(
        second.contains("assistant-tiny: finished before"),
        "{second}"
    );
    assert_eq!(
        std::fs::read_to_string(assistant.join("metrics.jsonl")).unwrap(),
        assistant_log,
        "the finished stage was retrained"
    );
    let log = std::fs::read_to_string(student.join("metrics.jsonl")).unwrap();
    assert!(log.contains("\"kind\":\"resume\""), "{log}");
    assert!(student.join("stage.json").is_file());
}

#[test]
fn auto_mode_scores_every_chain_on_validation_and_trains_the_best() {
    let d = tempfile::tempdir().unwrap();
    let teacher = d.path().join("teacher");
    let t = teacher.to_str().unwrap();
    let small = [
        "--set",
        "data.train_limit=256",
        "--set",
        "data.test_limit=100",
        "--set",
        "data.batch_size=32",
        "--set",
        "train.progress=never",
    ];
    let mut args = vec![
        "train",
        "--out",
        t,
        "--epochs",
        "1",
        "--set",
        "model.preset=small",
    ];
    args.extend(small);
    ok(&args);
    let out = d.path().join("auto");
    let mut args = vec![
        "takd",
        "--teacher",
        t,
        "--out",
        out.to_str().unwrap(),
        "--auto",
        "--validation",
        "200",
        "--epochs",
        "1",
    ];
    args.extend(small);
    let log = ok(&args);
    let scores: Vec<serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(out.join("search.json")).unwrap()).unwrap();
    // A `small` teacher: direct KD, or `tiny` as the assistant.
    assert_eq!(scores.len(), 2, "{scores:?}");
    assert!(
        log.contains("search: chain direct") && log.contains("search: chain tiny"),
        "{log}"
    );
    let best = scores
        .iter()
        .max_by(|a, b| {
            a["validation_accuracy"]
                .as_f64()
                .unwrap()
                .total_cmp(&b["validation_accuracy"].as_f64().unwrap())
        })
        .unwrap();
    let stages = if best["assistants"].as_array().unwrap().is_empty() {
        vec!["stage1-student"]
    } else {
        vec!["stage1-assistant-tiny", "stage2-student"]
    };
    for s in &stages {
        assert!(
            out.join(s).join("stage.json").is_file(),
            "{s} missing: {log}"
        );
    }
    let cfg =
        std::fs::read_to_string(out.join(stages.last().unwrap()).join("config.toml")).unwrap();
    assert!(cfg.contains("validation = 200"), "{cfg}");
}
