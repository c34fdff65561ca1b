//! Online distillation through the `tinykd` binary: DML and MCL cohorts train in one run, every
//! peer comes out as a plain student run that the other commands accept, a killed-and-resumed
//! cohort continues, and impossible combinations are clear errors.

mod common;
use common::*;

use std::path::Path;

const SMALL: [&str; 10] = [
    "--limit",
    "256",
    "--test-limit",
    "100",
    "--set",
    "data.batch_size=32",
    "--set",
    "model.kind=student",
    "--set",
    "train.progress=never",
];

#[test]
fn dml_and_mcl_cohorts_train_and_every_peer_is_a_run() {
    let d = tempfile::tempdir().unwrap();
    let dml = d.path().join("dml");
    let mut args = vec!["train", "--out", dml.to_str().unwrap(), "--epochs", "1"];
    args.extend(SMALL);
    args.extend(["--set", "online.method=dml"]);
    let out = ok(&args);
    let e = &lines_of_kind(&dml, "epoch")[0];
    assert!(e["dml"].as_f64().is_some_and(f64::is_finite), "{e}");
    assert!(e["peer_ce"].as_f64().is_some_and(|v| v > 0.0), "{e}");
    // The peer's accuracy printed at the end is what `tinykd eval` measures on its run.
    let printed = out
        .lines()
        .find_map(|l| l.strip_prefix("peer 1: test accuracy "))
        .and_then(|l| l.split(' ').next())
        .expect("peer line")
        .to_string();
    let peer = dml.join("peer1");
    let json = ok(&["eval", peer.to_str().unwrap(), "--limit", "100", "--json"]);
    let report: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let acc = 100.0 * report["accuracy"].as_f64().unwrap();
    assert_eq!(format!("{acc:.2}"), printed);
    assert!(!std::fs::read_to_string(peer.join("config.toml"))
        .unwrap()
        .contains("[online]"));

    // A constant learning rate, so a run stopped after one epoch has the same schedule.
    let mcl_args = [
        "--set",
        "online.method=mcl",
        "--set",
        "online.peers=3",
        "--set",
        "schedule.kind=constant",
    ];
    let mcl = d.path().join("mcl");
    let mut args = vec!["train", "--out", mcl.to_str().unwrap(), "--epochs", "2"];
    args.extend(SMALL);
    args.extend(mcl_args);
    ok(&args);
    let e = &lines_of_kind(&mcl, "epoch")[1];
    for term in ["vcl", "soft_vcl", "icl", "soft_icl", "peer_ce"] {
        assert!(e[term].as_f64().is_some_and(f64::is_finite), "{term}: {e}");
    }
    assert!(mcl.join("peer2/model.bpk").is_file());

    // Stop after one epoch, resume to two: the same cohort as the uninterrupted run.
    let part = d.path().join("mcl-resumed");
    let mut args = vec!["train", "--out", part.to_str().unwrap(), "--epochs", "1"];
    args.extend(SMALL);
    args.extend(mcl_args);
    ok(&args);
    ok(&["train", "--resume", part.to_str().unwrap(), "--epochs", "2"]);
    // Same weights ⇒ the same test loss to the last bit (model files hold random parameter ids,
    // so they are compared through what the weights compute).
    let eval = |run: &Path| -> String {
        let json = ok(&["eval", run.to_str().unwrap(), "--limit", "100", "--json"]);
        let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
        format!("{} {}", v["loss"], v["accuracy"])
    };
    for sub in ["", "peer1", "peer2"] {
        assert_eq!(
            eval(&mcl.join(sub)),
            eval(&part.join(sub)),
            "`{sub}` differs after resume"
        );
    }
}

#[test]
fn online_misuse_is_a_clear_error() {
    let e = fails(&["train", "--out", "unused", "--set", "online.method=dml"]);
    assert!(e.contains("online methods train students"), "{e}");
    let e = fails(&[
        "train",
        "--out",
        "unused",
        "--set",
        "model.kind=student",
        "--set",
        "online.method=dml",
        "--set",
        "online.peers=1",
    ]);
    assert!(e.contains("online.peers"), "{e}");
    let e = fails(&[
        "train",
        "--out",
        "unused",
        "--set",
        "model.kind=student",
        "--set",
        "online.method=dmll",
    ]);
    assert!(e.contains("dml") && e.contains("mcl"), "{e}");
}
