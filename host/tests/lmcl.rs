//! L-MCL through the `tinykd` binary: a cohort with auxiliary branches and a meta-learned pair
//! weighting trains, every peer comes out as a plain student run whose blob runs on the host, and
//! a run stopped after one epoch resumes to the same weights (branches, heads, aggregators and
//! the weighting network are checkpointed with it).

mod common;
use common::*;

use std::path::Path;

const LMCL: [&str; 16] = [
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
    "--set",
    "online.method=lmcl",
    // Meta steps at steps 0, 3, 6, … (8 steps an epoch), so both epochs have some.
    "--set",
    "online.meta_every=3",
    // A constant learning rate, so a run stopped after one epoch has the same schedule.
    "--set",
    "schedule.kind=constant",
];

fn eval(run: &Path) -> String {
    let json = ok(&["eval", run.to_str().unwrap(), "--limit", "100", "--json"]);
    let v: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    format!("{} {}", v["loss"], v["accuracy"])
}

#[test]
fn lmcl_cohort_trains_exports_and_resumes_exactly() {
    let d = tempfile::tempdir().unwrap();
    let full = d.path().join("lmcl");
    let mut args = vec!["train", "--out", full.to_str().unwrap(), "--epochs", "2"];
    args.extend(LMCL);
    ok(&args);
    let e = &lines_of_kind(&full, "epoch")[1];
    for term in [
        "vcl",
        "soft_vcl",
        "icl",
        "soft_icl",
        "branch_ce",
        "peer_ce",
        "ensemble_ce",
        "ensemble_kd",
    ] {
        assert!(e[term].as_f64().is_some_and(f64::is_finite), "{term}: {e}");
    }
    let peer = full.join("peer1");
    assert!(!std::fs::read_to_string(peer.join("config.toml"))
        .unwrap()
        .contains("[online]"));

    // The peer is a plain student: it quantizes, exports and its blob runs on the host.
    let q = d.path().join("peer1-q");
    let qs = q.to_str().unwrap();
    ok(&[
        "quantize",
        "--student",
        peer.to_str().unwrap(),
        "--out",
        qs,
        "--qat-epochs",
        "0",
        "--calibration-batches",
        "2",
        "--set",
        "data.train_limit=256",
        "--set",
        "data.test_limit=50",
    ]);
    ok(&["export", qs, "--limit", "50"]);
    let out = ok(&[
        "run-blob",
        q.join("student.tkd").to_str().unwrap(),
        "--samples",
        q.join("test.tks").to_str().unwrap(),
    ]);
    assert!(out.contains("50"), "{out}");

    // Stop after one epoch, resume to two: the same cohort as the uninterrupted run.
    let part = d.path().join("lmcl-resumed");
    let mut args = vec!["train", "--out", part.to_str().unwrap(), "--epochs", "1"];
    args.extend(LMCL);
    ok(&args);
    ok(&["train", "--resume", part.to_str().unwrap(), "--epochs", "2"]);
    for sub in ["", "peer1"] {
        assert_eq!(
            eval(&full.join(sub)),
            eval(&part.join(sub)),
            "`{sub}` differs after resume"
        );
    }
}

#[test]
fn lmcl_settings_that_cannot_work_name_their_key() {
    let e = fails(&[
        "train",
        "--out",
        "unused",
        "--set",
        "model.kind=student",
        "--set",
        "online.method=lmcl",
        "--set",
        "online.branch_taps=[5]",
    ]);
    assert!(e.contains("online.branch_taps"), "{e}");
    let e = fails(&[
        "train",
        "--out",
        "unused",
        "--set",
        "model.kind=student",
        "--set",
        "online.method=lmcl",
        "--set",
        "online.meta=\"second_order\"",
    ]);
    assert!(e.contains("first_order") && e.contains("uniform"), "{e}");
}
