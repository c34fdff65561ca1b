//! "Mutual Contrastive Learning for Visual Representation Learning", Yang, An, Cai and Xu,
//! AAAI 2022: the supervised contrastive losses a cohort of peer networks trains with — vanilla
//! (within one network) and interactive (across networks), each with its soft (KL-mimicry) twin.
//!
//! Golden vectors: `tests/golden/losses/mcl.json`, winycg/MCL `losses/cifar_sup_mcl_loss.py`
//! (`SupMCL`). [`Mcl`] trains a cohort with them (`[online] method = "mcl"`): the run's model is
//! peer 0, the other peers and every network's projection head are the method's modules. The
//! layer-wise extension, L-MCL, is [`super::lmcl`]; it weights [`mcl_pair_rows`] per sample.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::dml::peers_ce;
use super::functional::{l2_normalize_unguarded, softened_kl, softened_kl_rows};
use super::{Distiller, LossTerm, StepContext};
use crate::models::student::Student;
use crate::models::{Classifier, Output};

/// The four MCL terms (unweighted), each `[1]`.
#[derive(Debug, Clone)]
pub struct MclTerms {
    /// Vanilla contrastive loss, summed over networks.
    pub vcl: Tensor<1>,
    /// Soft vanilla contrastive loss (KL between networks' intra-network similarity rows).
    pub soft_vcl: Tensor<1>,
    /// Interactive contrastive loss, both directions of every pair.
    pub icl: Tensor<1>,
    /// Soft interactive contrastive loss.
    pub soft_icl: Tensor<1>,
}

/// SupCon-style loss of one logit matrix: mean over anchors of the mean, over same-class other
/// samples, of `−log softmax` (the diagonal excluded from the denominator).
///
/// An anchor with no positive in the batch (the reference divides by zero there) is left out of
/// the mean; with MCL's sampler every anchor has one, and the result is the reference's.
fn supervised_contrast(
    logits: Tensor<2>,
    positives: Tensor<2>,
    off_diagonal: Tensor<2>,
) -> Tensor<1> {
    let (per_anchor, has) = supervised_contrast_anchors(logits, positives, off_diagonal);
    ((per_anchor * has.clone()).sum() / has.sum().clamp_min(1.0)).neg()
}

/// The per-anchor parts of [`supervised_contrast`]: each anchor's mean log-probability of its
/// positives (`[batch, 1]`, 0 without positives) and whether it has any (`[batch, 1]`, 0 or 1).
fn supervised_contrast_anchors(
    logits: Tensor<2>,
    positives: Tensor<2>,
    off_diagonal: Tensor<2>,
) -> (Tensor<2>, Tensor<2>) {
    let denom = (logits.clone().exp() * off_diagonal).sum_dim(1).log();
    let log_prob = logits - denom;
    let count = positives.clone().sum_dim(1);
    let has = count.clone().greater_elem(0.0).float();
    let per_anchor = (positives * log_prob).sum_dim(1) / count.clamp_min(1.0);
    (per_anchor, has)
}

/// The positive mask (same class, diagonal excluded) and the off-diagonal mask of a batch.
fn contrast_masks(labels: Tensor<1, Int>, device: &Device) -> (Tensor<2>, Tensor<2>) {
    let [b] = labels.dims();
    let labels = labels.to_device(device);
    let same = labels
        .clone()
        .reshape([b, 1])
        .equal(labels.reshape([1, b]))
        .float();
    let eye = Tensor::<2>::eye(b, device);
    (same - eye.clone(), eye.neg() + 1.0)
}

/// The four MCL terms of one pair of embeddings `a`, `b` (L-MCL's `SupMCL`), per anchor: each
/// `[batch, 1]`, scaled so that the term is `Σ_b w_b · row_b` for per-anchor weights `w` (all
/// ones: the unweighted loss of the pair). Each term covers both directions (ICL: `a→b` and
/// `b→a`; VCL: within `a` and within `b`; the soft terms: each side towards the other).
#[derive(Debug, Clone)]
pub struct MclRows {
    /// Vanilla contrastive loss.
    pub vcl: Tensor<2>,
    /// Soft vanilla contrastive loss.
    pub soft_vcl: Tensor<2>,
    /// Interactive contrastive loss.
    pub icl: Tensor<2>,
    /// Soft interactive contrastive loss.
    pub soft_icl: Tensor<2>,
}

/// [`MclRows`] of the raw projection-head outputs `a`, `b` (L2-normalised here).
///
/// The soft terms' targets are the other side's similarity rows, detached; `soft_targets`
/// computes them from other embeddings instead (L-MCL's meta step evaluates the loss at perturbed
/// weights against targets held at the unperturbed ones). As in [`mcl_losses`], an anchor without
/// a positive is left out of the contrastive means.
///
/// # Shapes
/// - `a`, `b` (and `soft_targets`): `[batch, dim]`; `labels`: `[batch]`
pub fn mcl_pair_rows(
    a: Tensor<2>,
    b: Tensor<2>,
    soft_targets: Option<(Tensor<2>, Tensor<2>)>,
    labels: Tensor<1, Int>,
    tau: f32,
    kd_temperature: f32,
) -> MclRows {
    let device = a.device();
    let [batch, _] = a.dims();
    let (positives, off_diagonal) = contrast_masks(labels, &device);
    let sim = |x: &Tensor<2>, y: &Tensor<2>| x.clone().matmul(y.clone().transpose()) / tau;
    let (a, b) = (l2_normalize_unguarded(a, 1), l2_normalize_unguarded(b, 1));
    let (ta, tb) = match soft_targets {
        Some((ta, tb)) => (l2_normalize_unguarded(ta, 1), l2_normalize_unguarded(tb, 1)),
        None => (a.clone(), b.clone()),
    };
    let (ta, tb) = (ta.detach(), tb.detach());
    let contrast = |logits: Tensor<2>| {
        let (per_anchor, has) =
            supervised_contrast_anchors(logits, positives.clone(), off_diagonal.clone());
        let anchors = has.clone().sum().clamp_min(1.0).unsqueeze_dim::<2>(1);
        (per_anchor * has).neg() / anchors
    };
    let soft = |s: Tensor<2>, t: Tensor<2>| softened_kl_rows(s, t, kd_temperature) / batch as f32;
    let (ab, ba) = (sim(&a, &b), sim(&b, &a));
    let (aa, bb) = (sim(&a, &a), sim(&b, &b));
    MclRows {
        soft_icl: soft(ab.clone(), sim(&tb, &ta)) + soft(ba.clone(), sim(&ta, &tb)),
        icl: contrast(ab) + contrast(ba),
        soft_vcl: soft(aa.clone(), sim(&tb, &tb)) + soft(bb.clone(), sim(&ta, &ta)),
        vcl: contrast(aa) + contrast(bb),
    }
}

/// The MCL terms for the raw projection-head outputs of every network (L2-normalised here, as the
/// reference's `Embed` does) and the batch labels.
///
/// Every sample needs another sample of its class in the batch (MCL's batch sampler guarantees it);
/// otherwise its positive set is empty and the loss is NaN, which the trainer reports.
///
/// # Shapes
/// - `embeddings[i]`: `[batch, dim]`; `labels`: `[batch]`
pub fn mcl_losses(
    embeddings: &[Tensor<2>],
    labels: Tensor<1, Int>,
    tau: f32,
    kd_temperature: f32,
) -> MclTerms {
    let v: Vec<Tensor<2>> = embeddings
        .iter()
        .map(|e| l2_normalize_unguarded(e.clone(), 1))
        .collect();
    let device = v.first().map(|t| t.device()).unwrap_or_default();
    let (positives, off_diagonal) = contrast_masks(labels, &device);
    let zero = || Tensor::<1>::zeros([1], &device);
    let sim = |a: &Tensor<2>, c: &Tensor<2>| a.clone().matmul(c.clone().transpose()) / tau;

    let (mut icl, mut soft_icl) = (zero(), zero());
    for i in 0..v.len() {
        for j in i + 1..v.len() {
            let ij = sim(&v[i], &v[j]);
            let ji = sim(&v[j], &v[i]);
            soft_icl = soft_icl
                + softened_kl(ij.clone(), ji.clone().detach(), kd_temperature)
                + softened_kl(ji.clone(), ij.clone().detach(), kd_temperature);
            icl = icl
                + supervised_contrast(ij, positives.clone(), off_diagonal.clone())
                + supervised_contrast(ji, positives.clone(), off_diagonal.clone());
        }
    }
    let intra: Vec<Tensor<2>> = v.iter().map(|x| sim(x, x)).collect();
    let (mut vcl, mut soft_vcl) = (zero(), zero());
    for (i, li) in intra.iter().enumerate() {
        for (j, lj) in intra.iter().enumerate() {
            if i != j {
                soft_vcl = soft_vcl + softened_kl(li.clone(), lj.clone().detach(), kd_temperature);
            }
        }
        vcl = vcl + supervised_contrast(li.clone(), positives.clone(), off_diagonal.clone());
    }
    MclTerms {
        vcl,
        soft_vcl,
        icl,
        soft_icl,
    }
}

/// Hyper-parameters of MCL (`[online] method = "mcl"`). Defaults: winycg/MCL's CIFAR scripts
/// (τ = 0.1, T = 3, 128-d heads, VCL 0.1, soft VCL 1, ICL 0.1, soft ICL 1, no logit KD).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MclConfig {
    /// Networks in the cohort, the run's model included (≥ 2).
    pub peers: usize,
    /// Contrastive temperature τ.
    pub tau: f64,
    /// Temperature of the soft (KL) terms.
    pub kd_temperature: f64,
    /// Width of the projection heads.
    pub feat_dim: usize,
    /// Weight of the vanilla contrastive loss (α).
    pub vcl: f64,
    /// Weight of the soft vanilla contrastive loss (γ).
    pub soft_vcl: f64,
    /// Weight of the interactive contrastive loss (β).
    pub icl: f64,
    /// Weight of the soft interactive contrastive loss (λ).
    pub soft_icl: f64,
    /// Also distil every peer towards the cohort's mean logits (MCL's `--logit-distill`, T = 3).
    pub logit_distill: bool,
}

impl Default for MclConfig {
    fn default() -> Self {
        Self {
            peers: 2,
            tau: 0.1,
            kd_temperature: 3.0,
            feat_dim: 128,
            vcl: 0.1,
            soft_vcl: 1.0,
            icl: 0.1,
            soft_icl: 1.0,
            logit_distill: false,
        }
    }
}

/// A projection head `Linear(d → f) → ReLU → Linear(f → f)` (MCL's `Embed`; the L2
/// normalisation is inside [`mcl_losses`]).
#[derive(Module, Debug)]
pub struct ProjectionHead {
    first: Linear,
    second: Linear,
}

impl ProjectionHead {
    /// A fresh head from `d`-wide embeddings to `f` dimensions.
    pub fn new(d: usize, f: usize, device: &Device) -> Self {
        Self {
            first: LinearConfig::new(d, f).init(device),
            second: LinearConfig::new(f, f).init(device),
        }
    }

    /// `[batch, d]` → `[batch, f]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.second.forward(relu(self.first.forward(x)))
    }
}

/// MCL with the cohort's other peers and one head per network.
#[derive(Module, Debug)]
pub struct Mcl {
    /// Peers 1.. (peer 0 is the run's model).
    pub peers: Vec<Student>,
    /// Head `k` projects network `k`'s embedding (0 = the run's model).
    pub heads: Vec<ProjectionHead>,
    #[module(skip)]
    settings: MclSettings,
}

#[derive(Debug, Clone, Copy)]
struct MclSettings {
    tau: f32,
    kd_temperature: f32,
    weights: [f32; 4],
    logit_distill: bool,
}

impl Mcl {
    /// A cohort around the run's model (embedding width `d`) with these other `peers`.
    pub fn new(peers: Vec<Student>, d: usize, c: &MclConfig, device: &Device) -> Self {
        let heads = (0..=peers.len())
            .map(|_| ProjectionHead::new(d, c.feat_dim, device))
            .collect();
        Self {
            peers,
            heads,
            settings: MclSettings {
                tau: c.tau as f32,
                kd_temperature: c.kd_temperature as f32,
                weights: [c.vcl, c.soft_vcl, c.icl, c.soft_icl].map(|w| w as f32),
                logit_distill: c.logit_distill,
            },
        }
    }
}

impl Distiller for Mcl {
    fn needs_teacher(&self) -> bool {
        false
    }

    fn loss(&self, student: &Output, _teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        let outs: Vec<Output> = self
            .peers
            .iter()
            .map(|p| p.forward_taps(ctx.images.clone()))
            .collect();
        let all: Vec<&Output> = std::iter::once(student).chain(&outs).collect();
        let embeddings: Vec<Tensor<2>> = all
            .iter()
            .zip(&self.heads)
            .map(|(o, h)| h.forward(o.embedding.clone()))
            .collect();
        let c = self.settings;
        let t = mcl_losses(&embeddings, ctx.targets.clone(), c.tau, c.kd_temperature);
        let [wv, wsv, wi, wsi] = c.weights;
        let mut terms = vec![
            LossTerm {
                name: "vcl",
                value: t.vcl * wv,
            },
            LossTerm {
                name: "soft_vcl",
                value: t.soft_vcl * wsv,
            },
            LossTerm {
                name: "icl",
                value: t.icl * wi,
            },
            LossTerm {
                name: "soft_icl",
                value: t.soft_icl * wsi,
            },
        ];
        if c.logit_distill {
            let n = all.len() as f32;
            let mean = all
                .iter()
                .map(|o| o.logits.clone())
                .reduce(|a, b| a + b)
                .map(|s| (s / n).detach());
            if let Some(mean) = mean {
                let kd = all
                    .iter()
                    .map(|o| softened_kl(o.logits.clone(), mean.clone(), c.kd_temperature))
                    .reduce(|a, b| a + b);
                terms.extend(kd.map(|value| LossTerm {
                    name: "logit_kd",
                    value,
                }));
            }
        }
        if let Some(ce) = peers_ce(&outs, ctx.targets) {
            terms.push(LossTerm {
                name: "peer_ce",
                value: ce,
            });
        }
        terms
    }
}
