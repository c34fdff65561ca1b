//! Helpers the binary-level tests share: run `tinykd`, expect success or failure, read a run's
//! `metrics.jsonl`.

// Each test file uses its own subset.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `tinykd` binary with `args`.
pub fn tinykd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tinykd"))
        .args(args)
        .output()
        .expect("run tinykd")
}

/// Runs `tinykd`, asserts success and returns its stdout.
pub fn ok(args: &[&str]) -> String {
    let out = tinykd(args);
    assert!(
        out.status.success(),
        "tinykd {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs `tinykd`, asserts failure and returns its stderr.
pub fn fails(args: &[&str]) -> String {
    let out = tinykd(args);
    assert!(!out.status.success(), "tinykd {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// The records of `kind` in `<run>/metrics.jsonl`, in order.
pub fn lines_of_kind(run: &Path, kind: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|v| v["kind"] == kind)
        .collect()
}

/// Trains the `tiny` teacher preset for one epoch into `out`, with `extra` arguments (data
/// limits): the teacher the distillation tests start from.
pub fn train_tiny_teacher(out: &str, extra: &[&str]) {
    let mut args = vec![
        "train",
        "--out",
        out,
        "--epochs",
        "1",
        "--set",
        "model.preset=tiny",
    ];
    args.extend(extra);
    ok(&args);
}
