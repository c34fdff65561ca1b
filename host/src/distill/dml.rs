//! "Deep Mutual Learning", Zhang, Xiang, Hospedales and Lu, CVPR 2018: a cohort of peers trained
//! together from scratch, each learning from the labels and from the others' softened predictions.
//!
//! The run's model is peer 0; the other peers are this method's trainable modules (optimised with
//! it, saved in its checkpoints, written out as runs of their own at the end). Peer k's loss is
//! `CE_k + T²/(N−1) · Σ_{l≠k} KL(p_l ‖ p_k)` with the targets `p_l` detached, so every peer learns
//! only from its own terms, as with one optimizer per peer (the optimizer keeps per-parameter
//! state, so one optimizer over disjoint peers is the same thing).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::functional::softened_kl;
use super::{Distiller, LossTerm, StepContext};
use crate::models::student::Student;
use crate::models::{Classifier, Output};

/// `Σ_k 1/(N−1) · Σ_{l≠k} T² KL(softmax(z_l/T) ‖ softmax(z_k/T))`, targets detached.
///
/// # Shapes
/// - `logits[k]`: `[batch, classes]`, `N ≥ 2` of them; output `[1]`
pub fn dml_loss(logits: &[Tensor<2>], temperature: f32) -> Tensor<1> {
    let n = logits.len();
    let mut total: Option<Tensor<1>> = None;
    for (k, zk) in logits.iter().enumerate() {
        for (l, zl) in logits.iter().enumerate() {
            if k != l {
                let term =
                    softened_kl(zk.clone(), zl.clone().detach(), temperature) / (n - 1) as f32;
                total = Some(match total {
                    Some(t) => t + term,
                    None => term,
                });
            }
        }
    }
    total.unwrap_or_else(|| {
        Tensor::zeros([1], &logits.first().map(|t| t.device()).unwrap_or_default())
    })
}

/// Hyper-parameters of DML (`[online] method = "dml"`). Defaults: the paper's (T = 1, weight 1,
/// two networks).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DmlConfig {
    /// Networks in the cohort, the run's model included (≥ 2).
    pub peers: usize,
    /// Softmax temperature (the paper uses 1; MCL-OKD's DML baseline 2).
    pub temperature: f64,
    /// Weight of the mutual term.
    pub weight: f64,
}

impl Default for DmlConfig {
    fn default() -> Self {
        Self {
            peers: 2,
            temperature: 1.0,
            weight: 1.0,
        }
    }
}

/// DML with the cohort's other peers.
#[derive(Module, Debug)]
pub struct Dml {
    /// Peers 1.. (peer 0 is the run's model).
    pub peers: Vec<Student>,
    #[module(skip)]
    temperature: f32,
    #[module(skip)]
    weight: f32,
}

impl Dml {
    /// A cohort around the run's model with these other `peers`.
    pub fn new(peers: Vec<Student>, c: &DmlConfig) -> Self {
        Self {
            peers,
            temperature: c.temperature as f32,
            weight: c.weight as f32,
        }
    }
}

/// The summed cross-entropy of the other peers.
pub(crate) fn peers_ce(outs: &[Output], targets: &Tensor<1, Int>) -> Option<Tensor<1>> {
    let device = outs.first()?.logits.device();
    let ce = CrossEntropyLossConfig::new().init(&device);
    outs.iter()
        .map(|o| ce.forward(o.logits.clone(), targets.clone().to_device(&device)))
        .reduce(|a, b| a + b)
}

impl Distiller for Dml {
    fn needs_teacher(&self) -> bool {
        false
    }

    fn loss(&self, student: &Output, _teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        let outs: Vec<Output> = self
            .peers
            .iter()
            .map(|p| p.forward_taps(ctx.images.clone()))
            .collect();
        let mut logits = vec![student.logits.clone()];
        logits.extend(outs.iter().map(|o| o.logits.clone()));
        let mut terms = vec![LossTerm {
            name: "dml",
            value: dml_loss(&logits, self.temperature) * self.weight,
        }];
        if let Some(ce) = peers_ce(&outs, ctx.targets) {
            terms.push(LossTerm {
                name: "peer_ce",
                value: ce,
            });
        }
        terms
    }
}
