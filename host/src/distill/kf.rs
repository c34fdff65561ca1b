//! Knowledge Factorization's InfoMax-Bottleneck objective: "Factorizing Knowledge in Neural
//! Networks", Xingyi Yang, Jingwen Ye, Xinchao Wang, ECCV 2022.
//!
//! Reference: Adamdad/KnowledgeFactor, `cls/mmcls/models/classifiers/kf.py`
//! (`KFImageClassifier.forward_train`), `cls/mmcls/models/losses/kd_loss.py` (`InfoMax_loss`,
//! `InfoMin_loss`), `cls/mmcls/models/backbones/tsn.py` (the batch Gaussian of the task features),
//! defaults from `cls/configs/cifar10-kf/wideresnet28-2_resnet18_b128x1_cifar10_softtar_kf.py`.
//!
//! ```text
//! L = Σ_t CE_ls(head_t(F_t), y_t)                       task CEs, label smoothing 0.1
//!   + λ_kd · Σ_t KD_T(task logits_t, teacher's task probabilities_t)
//!   + λ_feat · mean_l InfoMax(MLP_l(teacher feature_l), CKN feature_l)
//!   + β · Σ_t InfoMin(F_t)
//! ```
//!
//! It is a recipe over [`crate::models::factors::FactorNet`] (whose taps carry the tasks' logits
//! and features), not an entry of [`super::MethodConfig`]: it needs factor networks and a
//! multi-task reading of the teacher, which no plain student has. `tinykd factorize` runs it.
//!
//! Differences from the reference, and why: one head per task instead of two (`head(F_c + F_t)`
//! and `head_task(F_t)`), because the sequential factor feeds the CKN into the TSN (see
//! [`crate::models::factors`]); so `task_weight` has nothing to weigh. The batch variance in
//! InfoMin is clamped at 1e-6 before its log, because our task features are ReLU outputs pooled
//! (the reference's go through a linear layer) and a dead channel has variance 0.

use std::path::PathBuf;

use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu, softmax};
use serde::{Deserialize, Serialize};

use super::functional::{l2_normalize, softened_kl};
use super::{Distiller, LossTerm, StepContext};
use crate::models::factors::{fashion_tasks, FactorLayout};
use crate::models::student::{LayerSpec, StudentConfigError};
use crate::models::Output;

/// Smallest batch variance InfoMin takes the log of.
const MIN_VARIANCE: f32 = 1e-6;

/// InfoMax term: the negated Donsker–Varadhan-style bound of `InfoMax_loss` between projected
/// teacher features `u` and CKN features `w` (rows L2-normalised, `s = u wᵀ`):
/// `−( Σ_i s_ii / B² − log( (Σ_{i≠j} exp s_ij + B) / B² ) )`. As in the reference, both means run
/// over all `B²` entries, the masked-out ones counting as 0 (so `exp 0 = 1` on the diagonal).
///
/// # Shapes
/// - `u`, `w`: `[batch, features]` (same width); output `[1]`.
pub fn infomax_loss(u: Tensor<2>, w: Tensor<2>) -> Tensor<1> {
    let [b, _] = u.dims();
    let device = u.device();
    let s = l2_normalize(u, 1).matmul(l2_normalize(w, 1).transpose());
    let joint = Tensor::<2>::eye(b, &device);
    let marginal = joint.clone().neg() + 1.0;
    let n = (b * b) as f32;
    let e_joint = (s.clone() * joint).sum() / n;
    let e_marginal = (s * marginal).exp().sum() / n;
    (e_joint - e_marginal.log()).neg()
}

/// InfoMin term (`InfoMin_loss` of the batch Gaussian `TSN_backbone` returns): with `μ`, `σ²` the
/// batch mean and unbiased batch variance of each feature, `KL(N(μ, σ²) ‖ N(0, 1))` averaged over
/// features, `−½ · mean(1 + log σ² − μ² − σ²)`.
///
/// # Shapes
/// - `f`: `[batch ≥ 2, features]`; output `[1]`.
pub fn infomin_loss(f: Tensor<2>) -> Tensor<1> {
    let mu = f.clone().mean_dim(0);
    let var = f.var(0).clamp_min(MIN_VARIANCE);
    let inner = var.clone().log() + 1.0 - mu.powi_scalar(2) - var;
    inner.mean() * -0.5
}

/// Cross-entropy with label smoothing `eps` (targets `(1 − eps)·onehot + eps / K`), batch mean.
///
/// # Shapes
/// - `logits`: `[batch, K]`, `labels`: `[batch]` in `0..K`; output `[1]`.
pub fn smoothed_ce(logits: Tensor<2>, labels: &[usize], eps: f32) -> Tensor<1> {
    let [b, k] = logits.dims();
    let mut q = vec![eps / k as f32; b * k];
    for (i, &y) in labels.iter().enumerate() {
        q[i * k + y] += 1.0 - eps;
    }
    let q = Tensor::<2>::from_data(TensorData::new(q, [b, k]), &logits.device());
    (q * log_softmax(logits, 1)).sum().neg() / b as f32
}

/// The teacher read as a multi-task teacher: each task's probabilities are the teacher's class
/// probabilities at temperature `t`, those of the task's classes as they are and the rest summed
/// into "other" (exact marginals). Returned as logits at temperature `t` (`t · log p`), so that
/// `softmax(· / t)` gives back `p`.
///
/// # Shapes
/// - `teacher_logits`: `[batch, classes]`; output `[batch, Σ outputs]`, the tasks in order.
pub fn teacher_task_logits(layout: &FactorLayout, teacher_logits: Tensor<2>, t: f32) -> Tensor<2> {
    let [_, classes] = teacher_logits.dims();
    let device = teacher_logits.device();
    let p = softmax(teacher_logits / t, 1);
    // `decode_matrix` maps task logits to classes; its transpose maps class probabilities to task
    // probabilities, summing each task's "other" classes.
    let group = layout.decode_matrix(classes, &device).transpose();
    (p.matmul(group).clamp_min(1e-12)).log() * t
}

/// `[kf]`: what to factorize and the IMB objective's weights.
///
/// ```toml
/// [kf]
/// teacher = "runs/teacher"
/// tasks = [ { name = "tops", classes = [0, 2, 4, 6] }, { name = "footwear", classes = [5, 7, 9] } ]
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KfConfig {
    /// The teacher's run directory (a plain classifier over the dataset's classes, read as a
    /// multi-task teacher by [`teacher_task_logits`]). `tinykd factorize --teacher` sets it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher: Option<PathBuf>,
    /// The tasks (default: Fashion-MNIST's tops, bottoms, footwear, bags; see
    /// [`fashion_tasks`]).
    pub tasks: Vec<TaskSpecToml>,
    /// The common-knowledge network (default: conv 16, max pool, conv 32, max pool).
    pub common: Vec<LayerSpec>,
    /// Each task-specific network, before its head (default: conv 16, conv 16, global average
    /// pool).
    pub task_layers: Vec<LayerSpec>,
    /// Weight of the KD term, `lambda_kd` (reference default 0.1).
    pub lambda_kd: f64,
    /// KD temperature (reference `SoftTarget` temperature 10).
    pub temperature: f64,
    /// Weight of the InfoMax term, `lambda_feat` (reference default 1.0).
    pub lambda_feat: f64,
    /// Weight of the InfoMin term, `beta` (reference default 1e-3).
    pub beta: f64,
    /// Label smoothing of the task CEs (reference `LabelSmoothLoss` 0.1).
    pub label_smoothing: f64,
}

/// A task as written in TOML (the same fields as [`crate::models::factors::TaskSpec`]).
pub type TaskSpecToml = crate::models::factors::TaskSpec;

impl Default for KfConfig {
    fn default() -> Self {
        let conv = LayerSpec::conv3x3;
        let pool = LayerSpec::max_pool2;
        Self {
            teacher: None,
            tasks: fashion_tasks(),
            common: vec![conv(16), pool(), conv(32), pool()],
            task_layers: vec![conv(16), conv(16), LayerSpec::GlobalAvgPool],
            lambda_kd: 0.1,
            temperature: 10.0,
            lambda_feat: 1.0,
            beta: 1e-3,
            label_smoothing: 0.1,
        }
    }
}

impl KfConfig {
    /// The factor layout for inputs `[in_channels, h, w]`.
    pub fn layout(&self, input: [usize; 3]) -> FactorLayout {
        FactorLayout {
            in_channels: input[0],
            input_size: [input[1], input[2]],
            common: self.common.clone(),
            task_layers: self.task_layers.clone(),
            tasks: self.tasks.clone(),
        }
    }

    /// Checks the weights (each named by its key).
    ///
    /// # Errors
    /// `(key, reason)` for the first bad value.
    pub fn validate(&self) -> Result<(), (String, String)> {
        for (key, v) in [
            ("kf.lambda_kd", self.lambda_kd),
            ("kf.lambda_feat", self.lambda_feat),
            ("kf.beta", self.beta),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((key.into(), format!("must be >= 0, got {v}")));
            }
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err((
                "kf.temperature".into(),
                format!("must be > 0, got {}", self.temperature),
            ));
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err((
                "kf.label_smoothing".into(),
                format!("must be in [0, 1), got {}", self.label_smoothing),
            ));
        }
        Ok(())
    }

    /// Builds the objective: one projection MLP per CKN convolution paired with a teacher stage,
    /// deepest with deepest (`teacher_channels` are the teacher's stage widths, shallow to deep).
    ///
    /// # Errors
    /// The teacher has no feature map to pair with the CKN.
    pub fn init(
        &self,
        layout: FactorLayout,
        teacher_channels: &[usize],
        device: &Device,
    ) -> Result<Kf, StudentConfigError> {
        let ckn = layout.common_channels();
        let pairs = ckn.len().min(teacher_channels.len());
        if pairs == 0 {
            return Err(StudentConfigError::Layer {
                index: 0,
                kind: "kf.common",
                reason: "the CKN has no convolution, or the teacher no feature map".into(),
            });
        }
        let (ckn_first, teacher_first) = (ckn.len() - pairs, teacher_channels.len() - pairs);
        let projections = (0..pairs)
            .map(|i| {
                Projection::new(
                    teacher_channels[teacher_first + i],
                    ckn[ckn_first + i],
                    device,
                )
            })
            .collect();
        Ok(Kf {
            projections,
            ckn_first,
            teacher_first,
            layout,
            lambda_kd: self.lambda_kd as f32,
            temperature: self.temperature as f32,
            lambda_feat: self.lambda_feat as f32,
            beta: self.beta as f32,
            label_smoothing: self.label_smoothing as f32,
        })
    }
}

/// `MLP_l` of the reference: Linear(C_T → C_S) → BatchNorm1d → ReLU → Linear(C_S → C_S).
#[derive(Module, Debug)]
pub struct Projection {
    first: Linear,
    bn: BatchNorm,
    second: Linear,
}

impl Projection {
    fn new(from: usize, to: usize, device: &Device) -> Self {
        Self {
            first: LinearConfig::new(from, to).init(device),
            bn: BatchNormConfig::new(to).init(device),
            second: LinearConfig::new(to, to).init(device),
        }
    }

    /// # Shapes
    /// - `x`: `[batch, from]`; output `[batch, to]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self.first.forward(x);
        let h = self.bn.forward(h.unsqueeze_dim::<3>(2)).squeeze_dim::<2>(2);
        self.second.forward(relu(h))
    }
}

/// The IMB objective over a [`crate::models::factors::FactorNet`]: the projections (trained with
/// the factors, dropped with the method) and the weights.
#[derive(Module, Debug)]
pub struct Kf {
    /// One per (teacher stage, CKN convolution) pair, shallow to deep.
    pub projections: Vec<Projection>,
    /// Index of the first paired CKN feature map.
    #[module(skip)]
    pub ckn_first: usize,
    /// Index of the first paired teacher feature map.
    #[module(skip)]
    pub teacher_first: usize,
    /// The factors' layout.
    #[module(skip)]
    pub layout: FactorLayout,
    /// `lambda_kd`.
    #[module(skip)]
    pub lambda_kd: f32,
    /// KD temperature.
    #[module(skip)]
    pub temperature: f32,
    /// `lambda_feat`.
    #[module(skip)]
    pub lambda_feat: f32,
    /// `beta`.
    #[module(skip)]
    pub beta: f32,
    /// Label smoothing of the task CEs.
    #[module(skip)]
    pub label_smoothing: f32,
}

/// Global average pooling of a map to `[batch, channels]`.
fn pooled(x: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.flatten::<3>(2, 3).mean_dim(2).reshape([b, c])
}

impl Distiller for Kf {
    /// Terms `task_ce`, `kd`, `infomax`, `infomin` (the last three only with a non-zero weight).
    /// `student` is a `FactorNet`'s output (tasks' logits in `embedding`, TSN features as the
    /// last feature map).
    fn loss(&self, student: &Output, teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        let (offsets, _) = self.layout.logit_offsets();
        let labels: Vec<usize> = ctx
            .targets
            .clone()
            .into_data()
            .iter::<i64>()
            .map(|v| v as usize)
            .collect();
        let task_logits = |t: usize| {
            student
                .embedding
                .clone()
                .narrow(1, offsets[t], self.layout.tasks[t].outputs())
        };
        let mut terms = Vec::new();
        let ce = (0..self.layout.tasks.len())
            .map(|t| {
                let task = &self.layout.tasks[t];
                let y: Vec<usize> = labels.iter().map(|&c| task.label_of(c)).collect();
                smoothed_ce(task_logits(t), &y, self.label_smoothing)
            })
            .reduce(|a, b| a + b);
        terms.extend(ce.map(|value| LossTerm {
            name: "task_ce",
            value,
        }));
        if self.lambda_kd > 0.0 {
            let device = student.embedding.device();
            let soft = teacher_task_logits(
                &self.layout,
                teacher.logits.clone().to_device(&device),
                self.temperature,
            );
            let kd = (0..self.layout.tasks.len())
                .map(|t| {
                    let n = self.layout.tasks[t].outputs();
                    softened_kl(
                        task_logits(t),
                        soft.clone().narrow(1, offsets[t], n),
                        self.temperature,
                    )
                })
                .reduce(|a, b| a + b);
            terms.extend(kd.map(|v| LossTerm {
                name: "kd",
                value: v * self.lambda_kd,
            }));
        }
        if self.lambda_feat > 0.0 {
            let device = student.embedding.device();
            let n = self.projections.len();
            let infomax = self
                .projections
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let t = pooled(teacher.feature_maps[self.teacher_first + i].clone())
                        .to_device(&device);
                    let s = pooled(student.feature_maps[self.ckn_first + i].clone());
                    infomax_loss(p.forward(t), s)
                })
                .reduce(|a, b| a + b);
            terms.extend(infomax.map(|v| LossTerm {
                name: "infomax",
                value: v * (self.lambda_feat / n as f32),
            }));
        }
        if self.beta > 0.0 {
            if let Some(features) = student.feature_maps.last() {
                let f = features.clone().flatten::<2>(1, 3);
                let [_, width] = f.dims();
                let per = width / self.layout.tasks.len();
                let infomin = (0..self.layout.tasks.len())
                    .map(|t| infomin_loss(f.clone().narrow(1, t * per, per)))
                    .reduce(|a, b| a + b);
                terms.extend(infomin.map(|v| LossTerm {
                    name: "infomin",
                    value: v * self.beta,
                }));
            }
        }
        terms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::factors::TaskSpec;

    fn dev() -> Device {
        Device::flex()
    }

    fn t2(rows: &[&[f32]], device: &Device) -> Tensor<2> {
        let (r, c) = (rows.len(), rows[0].len());
        let data: Vec<f32> = rows.iter().flat_map(|x| x.iter().copied()).collect();
        Tensor::from_data(TensorData::new(data, [r, c]), device)
    }

    fn scalar(t: Tensor<1>) -> f32 {
        t.into_scalar()
    }

    #[test]
    fn infomax_matches_hand_values() {
        let d = dev();
        // Same directions: s = I, E_joint = 2/4, E_marginal = (1 + 1 + e⁰ + e⁰)/4 = 1.
        let eye = t2(&[&[1.0, 0.0], &[0.0, 1.0]], &d);
        assert!((scalar(infomax_loss(eye.clone(), eye)) + 0.5).abs() < 1e-6);
        // u ∝ [[1, 0], [1, 0]], w ∝ I (scaled rows: the bound sees directions only):
        // s = [[1, 0], [1, 0]], E_joint = 1/4, E_marginal = (2 + e⁰ + e¹)/4,
        // loss = ln((3 + e)/4) − 1/4 = 0.107374.
        let u = t2(&[&[3.0, 0.0], &[2.0, 0.0]], &d);
        let w = t2(&[&[0.5, 0.0], &[0.0, 4.0]], &d);
        let want = ((3.0 + std::f32::consts::E) / 4.0).ln() - 0.25;
        let got = scalar(infomax_loss(u, w));
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn infomin_matches_hand_values() {
        // Feature 0: μ = 1, σ² = 2 (unbiased); feature 1: μ = 2, σ² = 2.
        // −½ · mean(1 + ln 2 − 1 − 2, 1 + ln 2 − 4 − 2) = 1.75 − ln 2 / 2.
        let f = t2(&[&[0.0, 1.0], &[2.0, 3.0]], &dev());
        let want = 1.75 - std::f32::consts::LN_2 / 2.0;
        let got = scalar(infomin_loss(f));
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        // A standard-normal-like batch (μ = 0, σ² = 1) costs nothing.
        let g = t2(&[&[1.0], &[-1.0]], &dev());
        let v = scalar(infomin_loss(g.clone() / 2f32.sqrt()));
        assert!(v.abs() < 1e-6, "{v}");
    }

    /// Central finite differences of `f` at `x` against its autodiff gradient.
    fn check_gradient(f: impl Fn(Tensor<2>) -> Tensor<1>, x: &[&[f32]]) {
        let d = dev().autodiff();
        let xt = t2(x, &d).require_grad();
        let grads = f(xt.clone()).backward();
        let got: Vec<f32> = xt
            .grad(&grads)
            .expect("gradient")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let flat: Vec<f32> = x.iter().flat_map(|r| r.iter().copied()).collect();
        let h = 1e-2f32;
        for i in 0..flat.len() {
            let at = |delta: f32| {
                let mut v = flat.clone();
                v[i] += delta;
                let rows: Vec<&[f32]> = v.chunks(x[0].len()).collect();
                scalar(f(t2(&rows, &d)))
            };
            let numeric = (at(h) - at(-h)) / (2.0 * h);
            assert!(
                (numeric - got[i]).abs() < 2e-3 * (1.0 + numeric.abs()),
                "entry {i}: autodiff {} vs finite difference {numeric}",
                got[i]
            );
        }
    }

    #[test]
    fn infomax_and_infomin_gradients_match_finite_differences() {
        let w = [[0.3f32, -1.2, 0.5], [1.0, 0.4, -0.7], [-0.2, 0.9, 1.1]];
        check_gradient(
            |u| {
                let wt = t2(&[&w[0], &w[1], &w[2]], &u.device());
                infomax_loss(u, wt)
            },
            &[&[0.5, -0.3, 0.8], &[1.2, 0.7, -0.4], &[-0.6, 0.2, 0.9]],
        );
        check_gradient(
            infomin_loss,
            &[&[0.5, -0.3], &[1.2, 0.7], &[-0.6, 0.2], &[0.1, 1.5]],
        );
    }

    #[test]
    fn smoothed_ce_matches_hand_values() {
        // Logits 0, ln 3 → p = (1/4, 3/4); label 1, eps 0.2: q = (0.1, 0.9);
        // CE = −(0.1 ln ¼ + 0.9 ln ¾).
        let l = t2(&[&[0.0, 3f32.ln()]], &dev());
        let want = -(0.1 * 0.25f32.ln() + 0.9 * 0.75f32.ln());
        let got = scalar(smoothed_ce(l, &[1], 0.2));
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    #[test]
    fn teacher_tasks_are_the_teachers_marginals() {
        let d = dev();
        let layout = FactorLayout {
            in_channels: 1,
            input_size: [4, 4],
            common: vec![],
            task_layers: vec![],
            tasks: vec![
                TaskSpec {
                    name: "a".into(),
                    classes: vec![2],
                },
                TaskSpec {
                    name: "b".into(),
                    classes: vec![0, 1],
                },
            ],
        };
        // Class probabilities (0.5, 0.3, 0.2) at T = 2: task a = (p2, p0 + p1) = (0.2, 0.8),
        // task b = (p0, p1, p2) = (0.5, 0.3, 0.2).
        let p = [0.5f32, 0.3, 0.2];
        let logits = t2(&[&p.map(|v| 2.0 * v.ln())], &d);
        let got: Vec<f32> = softmax_tasks(&layout, teacher_task_logits(&layout, logits, 2.0), 2.0);
        let want = [0.2, 0.8, 0.5, 0.3, 0.2];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
    }

    fn softmax_tasks(layout: &FactorLayout, logits: Tensor<2>, t: f32) -> Vec<f32> {
        layout
            .task_log_probs(logits / t)
            .exp()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32")
    }

    #[test]
    fn bad_weights_name_their_key() {
        let bad = KfConfig {
            beta: -1.0,
            ..KfConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "kf.beta");
        let bad = KfConfig {
            label_smoothing: 1.0,
            ..KfConfig::default()
        };
        assert_eq!(bad.validate().unwrap_err().0, "kf.label_smoothing");
    }
}
