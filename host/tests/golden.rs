//! Golden tests: every distillation loss against vectors from the methods' official code.
//!
//! The vectors (`tests/golden/losses/*.json`, float64 from the reference implementations; see
//! `tests/golden/README.md`) hold each case's inputs, loss and gradients. A conforming
//! implementation in float32 matches the loss and every gradient to a relative error of 1e-4.
//! `TINYKD_GOLDEN_DIR` overrides the folder; a case whose method is unknown fails the test, so a
//! new case can never pass by being skipped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::prelude::*;
use serde::Deserialize;
use tinykd::distill::kd_loss;

const TOLERANCE: f64 = 1e-4;

#[derive(Deserialize)]
struct Case {
    method: String,
    params: serde_json::Value,
    inputs: BTreeMap<String, Array>,
    outputs: BTreeMap<String, Array>,
    grads: BTreeMap<String, Array>,
}

#[derive(Deserialize, Clone)]
struct Array {
    shape: Vec<usize>,
    data: Vec<f64>,
}

impl Array {
    fn tensor<const D: usize>(&self, device: &Device) -> Tensor<D> {
        let data: Vec<f32> = self.data.iter().map(|&v| v as f32).collect();
        Tensor::from_data(TensorData::new(data, self.shape.clone()), device)
    }
}

fn rel_err(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let diff: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (g as f64 - w).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = want.iter().map(|w| w * w).sum::<f64>().sqrt();
    diff / norm.max(1e-12)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("f32 data")
}

fn golden_dir() -> PathBuf {
    match std::env::var_os("TINYKD_GOLDEN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden/losses"),
    }
}

/// Checks one case; returns (loss rel err, worst grad rel err).
fn check(case: &Case) -> (f64, f64) {
    let device = Device::flex().autodiff();
    match case.method.as_str() {
        "kd" => {
            let t = case.params["T"].as_f64().expect("params.T") as f32;
            let s = case.inputs["logits_s"].tensor::<2>(&device).require_grad();
            let teacher = case.inputs["logits_t"].tensor::<2>(&device);
            let loss = kd_loss(s.clone(), teacher, t);
            let l = rel_err(&values(loss.clone()), &case.outputs["loss"].data);
            let grads = loss.backward();
            let g = s.grad(&grads).expect("gradient of logits_s");
            (l, rel_err(&values(g), &case.grads["logits_s"].data))
        }
        other => {
            panic!("golden case for unknown method `{other}`: implement it or remove the case")
        }
    }
}

#[test]
fn losses_match_golden_vectors() {
    let dir = golden_dir();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read golden dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden cases in {}", dir.display());
    for path in files {
        let text = std::fs::read_to_string(&path).expect("read golden case");
        let case: Case =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let (loss_err, grad_err) = check(&case);
        println!(
            "golden {}: loss rel err {loss_err:.2e}, grad rel err {grad_err:.2e}",
            case.method
        );
        assert!(
            loss_err <= TOLERANCE,
            "{}: loss rel err {loss_err:.3e}",
            path.display()
        );
        assert!(
            grad_err <= TOLERANCE,
            "{}: gradient rel err {grad_err:.3e}",
            path.display()
        );
    }
}
