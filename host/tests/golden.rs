//! Golden tests: every distillation loss against vectors from the methods' official code.
//!
//! The vectors (`tests/golden/losses/*.json`, float64 from the reference implementations; see
//! `tests/golden/README.md`) hold each case's inputs, loss, gradients and extra outputs. A
//! conforming implementation in float32 matches every one of them to a relative error of 1e-4.
//! `TINYKD_GOLDEN_DIR` overrides the folder; a case whose method is unknown fails the test, so a
//! new case can never pass by being skipped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::module::Param;
use burn::nn::Linear;
use burn::prelude::*;
use serde::Deserialize;
use tinykd::distill::crd::{Crd, CrdSettings};
use tinykd::distill::vid::VidHead;
use tinykd::distill::{at, cc, dkd, fitnet, fsp, kd_loss, mcl, nst, pkt, rkd, sp};

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
        let shape = if self.shape.is_empty() {
            vec![1]
        } else {
            self.shape.clone()
        };
        Tensor::from_data(TensorData::new(data, shape), device)
    }

    fn ints<const D: usize>(&self, device: &Device) -> Tensor<D, Int> {
        let data: Vec<i64> = self.data.iter().map(|&v| v as i64).collect();
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

/// One case under evaluation: the tracked inputs and what the implementation produced.
struct Run<'a> {
    case: &'a Case,
    device: Device,
    /// Name → tracked tensor (flattened values are read after backward).
    leaves: Vec<(String, Leaf)>,
    /// Name → produced extra output.
    outputs: Vec<(String, Vec<f32>)>,
}

enum Leaf {
    D1(Tensor<1>),
    D2(Tensor<2>),
    D4(Tensor<4>),
}

impl<'a> Run<'a> {
    fn new(case: &'a Case) -> Self {
        Self {
            case,
            device: Device::flex().autodiff(),
            leaves: Vec::new(),
            outputs: Vec::new(),
        }
    }

    fn input<const D: usize>(&self, name: &str) -> Tensor<D> {
        self.case
            .inputs
            .get(name)
            .unwrap_or_else(|| panic!("{}: no input `{name}`", self.case.method))
            .tensor(&self.device)
    }

    fn param(&self, name: &str) -> f64 {
        self.case.params[name]
            .as_f64()
            .unwrap_or_else(|| panic!("{}: no numeric param `{name}`", self.case.method))
    }

    /// A gradient-tracked input, registered under its golden name.
    fn leaf2(&mut self, name: &str) -> Tensor<2> {
        let t = self.input::<2>(name).require_grad();
        self.leaves.push((name.into(), Leaf::D2(t.clone())));
        t
    }

    fn leaf4(&mut self, name: &str) -> Tensor<4> {
        let t = self.input::<4>(name).require_grad();
        self.leaves.push((name.into(), Leaf::D4(t.clone())));
        t
    }

    fn track1(&mut self, name: &str, t: Tensor<1>) {
        self.leaves.push((name.into(), Leaf::D1(t)));
    }

    fn track2(&mut self, name: &str, t: Tensor<2>) {
        self.leaves.push((name.into(), Leaf::D2(t)));
    }

    fn track4(&mut self, name: &str, t: Tensor<4>) {
        self.leaves.push((name.into(), Leaf::D4(t)));
    }

    /// A `Linear` holding the reference's `[out, in]` weight and bias (PyTorch layout).
    fn linear(&mut self, prefix: &str) -> Linear {
        let w = self.input::<2>(&format!("{prefix}.weight")).transpose();
        let b = self.input::<1>(&format!("{prefix}.bias"));
        let linear = Linear {
            weight: Param::from_tensor(w),
            bias: Some(Param::from_tensor(b)),
        };
        // burn stores [in, out]: compare the gradient transposed back.
        self.track2(&format!("{prefix}.weight"), linear.weight.val());
        self.track1(
            &format!("{prefix}.bias"),
            linear.bias.as_ref().expect("bias").val(),
        );
        linear
    }

    /// Checks `loss`, every gradient and every extra output; returns the worst relative error.
    fn finish(self, loss: Tensor<1>) -> f64 {
        let method = &self.case.method;
        let mut worst = rel_err(&values(loss.clone()), &self.case.outputs["loss"].data);
        println!("  {method} loss: {worst:.2e}");
        let grads = loss.backward();
        for (name, want) in &self.case.grads {
            let (_, leaf) = self
                .leaves
                .iter()
                .find(|(n, _)| n == name)
                .unwrap_or_else(|| panic!("{method}: gradient `{name}` not tracked"));
            let got = match leaf {
                Leaf::D1(t) => values(t.grad(&grads).expect("gradient")),
                Leaf::D2(t) => {
                    let g = t.grad(&grads).expect("gradient");
                    // Linear weights are [in, out] in burn and [out, in] in the reference.
                    if name.ends_with("linear.weight") {
                        values(g.transpose())
                    } else {
                        values(g)
                    }
                }
                Leaf::D4(t) => values(t.grad(&grads).expect("gradient")),
            };
            let e = rel_err(&got, &want.data);
            println!("  {method} grad {name}: {e:.2e}");
            worst = worst.max(e);
        }
        for (name, got) in &self.outputs {
            let want = self
                .case
                .outputs
                .get(name)
                .unwrap_or_else(|| panic!("{method}: no golden output `{name}`"));
            let e = rel_err(got, &want.data);
            println!("  {method} output {name}: {e:.2e}");
            worst = worst.max(e);
        }
        let missing: Vec<_> = self
            .case
            .outputs
            .keys()
            .filter(|k| *k != "loss" && !self.outputs.iter().any(|(n, _)| n == *k))
            .collect();
        assert!(
            missing.is_empty(),
            "{method}: outputs not checked: {missing:?}"
        );
        worst
    }
}

/// Evaluates one case; returns the worst relative error over loss, gradients and outputs.
fn check(case: &Case) -> f64 {
    let mut r = Run::new(case);
    match case.method.as_str() {
        "kd" => {
            let s = r.leaf2("logits_s");
            let t = r.input::<2>("logits_t");
            let loss = kd_loss(s, t, r.param("T") as f32);
            r.finish(loss)
        }
        "dkd" => {
            let s = r.leaf2("logits_s");
            let t = r.input::<2>("logits_t");
            let target = case.inputs["target"].ints::<1>(&r.device);
            let (a, b, temp) = (r.param("alpha"), r.param("beta"), r.param("T"));
            let loss = dkd::dkd_loss(s, t, target, a as f32, b as f32, temp as f32);
            r.finish(loss)
        }
        "fitnet" => {
            let s = r.leaf4("feat_s");
            let t = r.input::<4>("feat_t");
            r.finish(fitnet::hint_loss(s, t))
        }
        "at" => {
            let s = r.leaf4("feat_s");
            let t = r.input::<4>("feat_t");
            let p = r.param("p") as f32;
            r.finish(at::at_loss(s, t, p))
        }
        "sp" => {
            let s = r.leaf4("feat_s").flatten::<2>(1, 3);
            let t = r.input::<4>("feat_t").flatten::<2>(1, 3);
            r.finish(sp::sp_loss(s, t))
        }
        "cc" => {
            let s = r.leaf2("embed_s");
            let t = r.input::<2>("embed_t");
            r.finish(cc::cc_loss(s, t))
        }
        "rkd" => {
            let s = r.leaf2("feat_s");
            let t = r.input::<2>("feat_t");
            let (wd, wa) = (r.param("w_d") as f32, r.param("w_a") as f32);
            r.finish(rkd::rkd_loss(s, t, wd, wa))
        }
        "pkt" => {
            let s = r.leaf2("feat_s");
            let t = r.input::<2>("feat_t");
            r.finish(pkt::pkt_loss(s, t))
        }
        "nst" => {
            let s = r.leaf4("feat_s");
            let t = r.input::<4>("feat_t");
            r.finish(nst::nst_loss(s, t))
        }
        "fsp" => {
            let s: Vec<Tensor<4>> = (0..3).map(|i| r.leaf4(&format!("feat_s{i}"))).collect();
            let t: Vec<Tensor<4>> = (0..3).map(|i| r.input(&format!("feat_t{i}"))).collect();
            let per_pair = fsp::fsp_losses(&s, &t);
            let mut pairs = Vec::new();
            for p in &per_pair {
                pairs.extend(values(p.clone()));
            }
            r.outputs.push(("per_pair".into(), pairs));
            let loss = per_pair.into_iter().reduce(|a, b| a + b).expect("pairs");
            r.finish(loss)
        }
        "vid" => {
            let s = r.leaf4("feat_s");
            let t = r.input::<4>("feat_t");
            let [_, cs, _, _] = s.dims();
            let [_, ct, _, _] = t.dims();
            let mut head = VidHead::new(cs, ct, ct, r.param("init_pred_var"), &r.device);
            for (i, conv) in head.regressor.iter_mut().enumerate() {
                let name = format!("param.regressor.{}.weight", 2 * i);
                let w = r.input::<4>(&name);
                conv.weight = Param::from_tensor(w);
                r.track4(&name, conv.weight.val());
            }
            head.log_scale = Param::from_tensor(r.input::<1>("param.log_scale"));
            r.track1("param.log_scale", head.log_scale.val());
            let loss = head.loss(s, t);
            r.finish(loss)
        }
        "crd" => {
            let s = r.leaf2("feat_s");
            let t = r.input::<2>("feat_t");
            let embed_s = r.linear("param.embed_s.linear");
            let embed_t = r.linear("param.embed_t.linear");
            let settings = CrdSettings {
                weight: 1.0,
                nce_k: r.param("nce_k") as usize,
                nce_t: r.param("nce_t") as f32,
                nce_m: r.param("nce_m") as f32,
                seed: 0,
            };
            let crd = Crd::from_parts(
                embed_s,
                embed_t,
                r.input("memory_v1"),
                r.input("memory_v2"),
                settings,
            );
            let idx = case.inputs["idx"].ints::<1>(&r.device);
            let contrast = case.inputs["contrast_idx"].ints::<2>(&r.device);
            let loss = crd.forward(s, t, idx, contrast);
            let z = values(crd.z.value_sync());
            r.outputs
                .push(("memory_v1_after".into(), values(crd.memory_s.value_sync())));
            r.outputs
                .push(("memory_v2_after".into(), values(crd.memory_t.value_sync())));
            r.outputs.push(("z_v1".into(), vec![z[0]]));
            r.outputs.push(("z_v2".into(), vec![z[1]]));
            r.finish(loss)
        }
        "mcl" => {
            let e1 = r.leaf2("embed_1");
            let e2 = r.leaf2("embed_2");
            let labels = case.inputs["labels"].ints::<1>(&r.device);
            let terms = mcl::mcl_losses(
                &[e1, e2],
                labels,
                r.param("tau") as f32,
                r.param("kd_T") as f32,
            );
            for (name, t) in [
                ("vcl", &terms.vcl),
                ("soft_vcl", &terms.soft_vcl),
                ("icl", &terms.icl),
                ("soft_icl", &terms.soft_icl),
            ] {
                r.outputs.push((name.into(), values(t.clone())));
            }
            let loss = terms.vcl + terms.soft_vcl + terms.icl + terms.soft_icl;
            r.finish(loss)
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
    let mut failures = Vec::new();
    for path in &files {
        let text = std::fs::read_to_string(path).expect("read golden case");
        let case: Case =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let worst = check(&case);
        println!("golden {}: worst rel err {worst:.2e}", case.method);
        if worst.is_nan() || worst > TOLERANCE {
            failures.push(format!("{}: {worst:.3e}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "golden cases over {TOLERANCE}: {failures:#?}"
    );
}

/// The check is not vacuous: a 1 % change to one gradient entry, or to one entry of an extra
/// output, makes a case fail.
#[test]
fn a_perturbed_reference_fails() {
    let dir = golden_dir();
    let load = |name: &str| -> Case {
        let text = std::fs::read_to_string(dir.join(name)).expect("read golden case");
        serde_json::from_str(&text).expect("parse golden case")
    };
    let mut kd = load("kd.json");
    assert!(check(&kd) <= TOLERANCE);
    let g = kd.grads.get_mut("logits_s").expect("kd gradient");
    let i = (0..g.data.len())
        .max_by(|&a, &b| g.data[a].abs().total_cmp(&g.data[b].abs()))
        .expect("non-empty");
    g.data[i] *= 1.01;
    assert!(check(&kd) > TOLERANCE, "a perturbed kd gradient passed");

    let mut crd = load("crd.json");
    let bank = crd.outputs.get_mut("memory_v2_after").expect("crd bank");
    bank.data[0] += 0.05;
    assert!(
        check(&crd) > TOLERANCE,
        "a perturbed crd memory bank passed"
    );
}
