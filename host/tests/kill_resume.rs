//! A real interruption: the `tinykd` process is killed (SIGKILL) after it has written a
//! checkpoint, resumed with `--resume`, and must end with the same weights, byte for byte, as an
//! uninterrupted run with the same seed.

use std::path::Path;

use burn::module::{Module, ModuleVisitor, Param};
use burn::prelude::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tinykd::train::{load_model, RunModel};

const ARGS: [&str; 12] = [
    "train",
    "--model",
    "student",
    "--epochs",
    "3",
    "--limit",
    "3072",
    "--test-limit",
    "200",
    "--seed",
    "3",
    "--set",
];

fn train(out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tinykd"));
    c.args(ARGS)
        .arg("train.progress=\"never\"")
        .arg("--out")
        .arg(out);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

/// Every float parameter of the student trained in `run`.
fn weights(run: &Path, device: &Device) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().into_data().iter::<f32>().collect());
        }
    }
    let (RunModel::Student(student), _) = load_model(run, device).expect("load run") else {
        panic!("{} is not a student run", run.display());
    };
    let mut c = Collect(Vec::new());
    student.visit(&mut c);
    c.0
}

#[test]
fn killed_after_a_checkpoint_and_resumed_matches_an_uninterrupted_run() {
    let base = std::env::temp_dir().join(format!("tinykd-kill-resume-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (whole, killed) = (base.join("whole"), base.join("killed"));

    assert!(train(&whole).status().expect("run tinykd").success());

    let mut child = train(&killed).spawn().expect("start tinykd");
    let first = killed.join("checkpoints/epoch-0001");
    let last = killed.join("checkpoints/epoch-0003");
    let deadline = Instant::now() + Duration::from_secs(600);
    while !first.is_dir() {
        assert!(
            child.try_wait().expect("poll").is_none(),
            "tinykd exited before its first checkpoint"
        );
        assert!(Instant::now() < deadline, "no checkpoint after 600 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().expect("kill tinykd");
    let status = child.wait().expect("reap tinykd");
    assert!(
        !status.success(),
        "the run finished before it could be killed: the test proved nothing"
    );
    assert!(
        !last.is_dir(),
        "the last epoch was already checkpointed when the process was killed"
    );

    let resumed = Command::new(env!("CARGO_BIN_EXE_tinykd"))
        .args(["train", "--resume"])
        .arg(&killed)
        .stdout(Stdio::null())
        .status()
        .expect("resume");
    assert!(resumed.success(), "resume failed");

    // Compare parameter values (burnpack files also carry per-process parameter ids, so their
    // bytes differ even when every weight is equal).
    let device = Device::flex();
    let (a, b) = (weights(&whole, &device), weights(&killed, &device));
    assert_eq!(a.len(), b.len());
    assert!(
        a.iter().map(Vec::len).sum::<usize>() > 20_000,
        "too few weights compared"
    );
    assert!(
        a == b,
        "resumed weights differ from the uninterrupted run's"
    );
    let _ = std::fs::remove_dir_all(&base);
}
