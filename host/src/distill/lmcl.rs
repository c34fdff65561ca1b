//! "Online Knowledge Distillation via Mutual Contrastive Learning for Visual Recognition" (L-MCL),
//! Yang, An, Wan, Cai, Xu, Wang, TPAMI 2023 (winycg/L-MCL): MCL ([`super::mcl`]) between every
//! pair of *stages* of every pair of networks, weighted sample by sample by a meta-learned
//! network, plus an ensemble the peers distil towards.
//!
//! Every network of the cohort (the run's model = peer 0) gets auxiliary branches on some of its
//! feature maps ([`crate::models::student::StudentConfig::aux_tail`]: new copies of the layers
//! after the map and a new classifier), so it has one embedding and one set of logits per stage:
//! the branches, shallow to deep, then the network itself. Per step (`main_layer_mcl_cifar_meta.py`):
//!
//! ```text
//! loss = Σ_n Σ_s CE(z_ns)                                   every stage of every network
//!      + Σ_n CE(e_n)                                        e_n = aggregator_n(stages of n)
//!      + Σ_i Σ_j T² KL(σ(e_j/T) ‖ σ(z_i,last/T))            towards the detached ensembles
//!      + Σ_{i≠j} Σ_k Σ_z α·VCL + γ·SoftVCL + β·ICL + λ·SoftICL  of stage k of i and stage z of j,
//!                                                            each anchor weighted by w_ikjz
//! ```
//!
//! (The trainer adds peer 0's final CE; the rest are this method's terms.) The weights
//! `w_ikjz = sigmoid(cos(P_ik f_ik, P_jz f_jz))` come from the [`LossWeightNetwork`] on the
//! detached stage embeddings `f`, without gradient in the main step.
//!
//! # The meta step (`meta = "first_order"`)
//! The reference meta-optimises the weighting network every 50 iterations through a
//! differentiable optimizer: two virtual SGD steps of all networks, branches and heads on the
//! weighted contrastive loss, then the gradient of the stages' CE at the stepped weights is
//! back-propagated through those steps to the weighting network (second order). burn has no
//! higher-order gradients, so [`Lmcl::meta_step`] computes the one-step hyper-gradient with a
//! central finite difference instead (DARTS' approximation, Liu et al. 2019), using first-order
//! gradients only:
//!
//! 1. `θ` = copies of all networks, branches and heads (own BatchNorm statistics, so the real
//!    ones are untouched, as the reference's rollback leaves them); `L_in(θ) = Σ_p Σ_b w_pb ℓ_pb(θ)`
//!    with the weights detached; `θ' = θ − η ∇L_in` (plain SGD, η = the run's learning rate);
//! 2. `v = ∇_θ' Σ_n Σ_s CE(z_ns(θ'))`;
//! 3. `∂CE(θ')/∂w_pb = −η ⟨v, ∇ℓ_pb(θ)⟩ ≈ −η (ℓ_pb(θ + εv) − ℓ_pb(θ − εv)) / 2ε` with
//!    `ε = meta_epsilon / ‖v‖`, the soft terms' targets held at `θ` (they are detached in `L_in`;
//!    on tiny random cohorts within 1–25 % of autodiff's value at `ε‖v‖` = 0.01, 0.03–6 % at
//!    0.001: the ReLU and max-pool kinks, not rounding, make the error);
//! 4. the weighting network takes one SGD step (learning rate η, weight decay `meta_weight_decay`)
//!    on `Σ_p Σ_b w_pb(φ) · c_pb` with those `c_pb`: its gradient is the hyper-gradient.
//!
//! Differences from the reference: one look-ahead step instead of two (plus its extra virtual
//! step on the CE), plain SGD instead of momentum SGD for the virtual step and the weighting
//! network, the weighting network's inputs detached, and meta steps on global steps
//! `0, meta_every, 2·meta_every, …` instead of per-epoch batch indices. `meta = "uniform"` skips
//! the meta network altogether: every weight is 1 (L-MCL without meta weighting).

use burn::module::{ModuleDisplay, ModuleMapper, ModuleVisitor, Param};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{GradientsParams, SgdConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, sigmoid, softmax};
use serde::{Deserialize, Serialize};

use super::functional::{l2_normalize, softened_kl};
use super::mcl::{mcl_pair_rows, MclRows, ProjectionHead};
use super::{Distiller, LossTerm, StepContext};
use crate::models::student::{Student, StudentConfig};
use crate::models::{Classifier, Output};

/// How the per-sample weights of the contrastive pairs are learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LmclMeta {
    /// A meta-learned weighting network, updated by the finite-difference hyper-gradient (see the
    /// [module docs](self)).
    FirstOrder,
    /// No weighting network: every weight is 1.
    Uniform,
}

/// Hyper-parameters of L-MCL (`[online] method = "lmcl"`). Defaults: winycg/L-MCL's CIFAR
/// script (`main_layer_mcl_cifar_meta.py`): two networks, branches after every stage but the
/// last, τ = 0.1, T = 3, 128-d heads, VCL 0.1, soft VCL 1, ICL 0.1, soft ICL 1, a meta step every
/// 50 iterations, weight decay 5e-4 on the weighting network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LmclConfig {
    /// Networks in the cohort, the run's model included (≥ 2).
    pub peers: usize,
    /// The feature maps (indices into the student's taps, shallow to deep) that get an auxiliary
    /// branch. Default: every tap but the deepest (the reference's branches after stages 1 and 2
    /// of 3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_taps: Option<Vec<usize>>,
    /// Contrastive temperature τ.
    pub tau: f64,
    /// Temperature of the soft (KL) terms and of the distillation towards the ensemble.
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
    /// How the pair weights are learned.
    pub meta: LmclMeta,
    /// Optimizer steps between meta steps (the reference's `--meta-freq`).
    pub meta_every: usize,
    /// Finite-difference step of the hyper-gradient, relative to the gradient's norm.
    pub meta_epsilon: f64,
    /// Weight decay of the weighting network's updates.
    pub meta_weight_decay: f64,
}

impl Default for LmclConfig {
    fn default() -> Self {
        Self {
            peers: 2,
            branch_taps: None,
            tau: 0.1,
            kd_temperature: 3.0,
            feat_dim: 128,
            vcl: 0.1,
            soft_vcl: 1.0,
            icl: 0.1,
            soft_icl: 1.0,
            meta: LmclMeta::FirstOrder,
            meta_every: 50,
            meta_epsilon: 0.01,
            meta_weight_decay: 5e-4,
        }
    }
}

impl LmclConfig {
    /// Checks the settings that need no model; `Err((key, reason))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let positive = |v: f64| v.is_finite() && v > 0.0;
        if !positive(self.tau) {
            return Err(("online.tau", format!("must be > 0, got {}", self.tau)));
        }
        if !positive(self.kd_temperature) {
            return Err((
                "online.kd_temperature",
                format!("must be > 0, got {}", self.kd_temperature),
            ));
        }
        if self.feat_dim == 0 {
            return Err(("online.feat_dim", "must be at least 1".into()));
        }
        for (key, w) in [
            ("online.vcl", self.vcl),
            ("online.soft_vcl", self.soft_vcl),
            ("online.icl", self.icl),
            ("online.soft_icl", self.soft_icl),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err((key, format!("must be >= 0, got {w}")));
            }
        }
        if self.meta_every == 0 {
            return Err(("online.meta_every", "must be at least 1".into()));
        }
        if !positive(self.meta_epsilon) {
            return Err((
                "online.meta_epsilon",
                format!("must be > 0, got {}", self.meta_epsilon),
            ));
        }
        if !(self.meta_weight_decay.is_finite() && self.meta_weight_decay >= 0.0) {
            return Err((
                "online.meta_weight_decay",
                format!("must be >= 0, got {}", self.meta_weight_decay),
            ));
        }
        if let Some(taps) = &self.branch_taps {
            if taps.is_empty() {
                return Err((
                    "online.branch_taps",
                    "must name at least one feature map (or be left out for the default)".into(),
                ));
            }
            if taps.windows(2).any(|w| w[0] >= w[1]) {
                return Err((
                    "online.branch_taps",
                    format!("must be strictly increasing, got {taps:?}"),
                ));
            }
        }
        Ok(())
    }

    /// The taps that get branches on a student of this shape.
    ///
    /// # Errors
    /// A tap the student does not have, or a student with a single feature map (no default).
    pub fn resolve_taps(&self, student: &StudentConfig) -> Result<Vec<usize>, String> {
        let n = student.tap_layers().len();
        match &self.branch_taps {
            Some(taps) => match taps.iter().find(|&&t| t >= n) {
                Some(t) => Err(format!(
                    "online.branch_taps: the student has {n} feature maps (0..{n}), not {t}"
                )),
                None => Ok(taps.clone()),
            },
            None if n >= 2 => Ok((0..n - 1).collect()),
            None => Err(format!(
                "online.branch_taps: the student has {n} feature map(s); L-MCL's default branches \
                 every map but the deepest, so name the maps explicitly"
            )),
        }
    }
}

/// L-MCL's `LossWeightNetwork`: per network and stage a `Linear(d → 128)`; the weight of a pair
/// of stages is `sigmoid(cos)` of their projected embeddings, per sample.
#[derive(Module, Debug)]
pub struct LossWeightNetwork {
    /// `proj[n][s]` projects stage `s` of network `n`.
    pub proj: Vec<Vec<Linear>>,
}

/// Width of the weighting network's projections (the reference's 128).
const WEIGHT_PROJECTION: usize = 128;

impl LossWeightNetwork {
    /// A fresh network for stage embeddings of these widths (`widths[n][s]`).
    pub fn new(widths: &[Vec<usize>], device: &Device) -> Self {
        let proj = widths
            .iter()
            .map(|net| {
                net.iter()
                    .map(|&d| LinearConfig::new(d, WEIGHT_PROJECTION).init(device))
                    .collect()
            })
            .collect();
        Self { proj }
    }

    /// One weight per sample for every pair of [`stage_pairs`], `[batch, 1]` each, in `(0, 1)`.
    pub fn forward(&self, embeddings: &[Vec<Tensor<2>>]) -> Vec<Tensor<2>> {
        let projected: Vec<Vec<Tensor<2>>> = embeddings
            .iter()
            .zip(&self.proj)
            .map(|(net, proj)| {
                net.iter()
                    .zip(proj)
                    .map(|(e, p)| l2_normalize(p.forward(e.clone()), 1))
                    .collect()
            })
            .collect();
        let stages: Vec<usize> = projected.iter().map(Vec::len).collect();
        stage_pairs(&stages)
            .into_iter()
            .map(|(i, k, j, z)| {
                sigmoid((projected[i][k].clone() * projected[j][z].clone()).sum_dim(1))
            })
            .collect()
    }
}

/// Every ordered pair of stages of two different networks, as the reference enumerates them:
/// `(i, k, j, z)` for network `i ≠ j`, stage `k` of `i`, stage `z` of `j`, in that loop order.
pub fn stage_pairs(stages: &[usize]) -> Vec<(usize, usize, usize, usize)> {
    let mut pairs = Vec::new();
    for (i, &si) in stages.iter().enumerate() {
        for (j, &sj) in stages.iter().enumerate() {
            if i != j {
                for k in 0..si {
                    for z in 0..sj {
                        pairs.push((i, k, j, z));
                    }
                }
            }
        }
    }
    pairs
}

/// L-MCL's `Aggregator` for one network: `Linear(Σ d_s → d) → ReLU → Linear(d → S)` over the
/// concatenated stage embeddings gives a softmax weight per stage; the ensemble logits are the
/// stages' logits weighted by them.
#[derive(Module, Debug)]
pub struct Aggregator {
    hidden: Linear,
    out: Linear,
}

impl Aggregator {
    /// An aggregator over stages of embedding widths `widths` (hidden width: the last one's).
    pub fn new(widths: &[usize], device: &Device) -> Self {
        let d = widths.last().copied().unwrap_or(1);
        Self {
            hidden: LinearConfig::new(widths.iter().sum(), d).init(device),
            out: LinearConfig::new(d, widths.len()).init(device),
        }
    }

    /// The ensemble logits `[batch, classes]` of one network's stages.
    pub fn forward(&self, stages: &[Stage]) -> Tensor<2> {
        let features = Tensor::cat(stages.iter().map(|s| s.embedding.clone()).collect(), 1);
        let weights = softmax(self.out.forward(relu(self.hidden.forward(features))), 1);
        stages
            .iter()
            .enumerate()
            .map(|(s, st)| st.logits.clone() * weights.clone().narrow(1, s, 1))
            .reduce(|a, b| a + b)
            .expect("at least one stage")
    }
}

/// One stage's embedding and logits.
#[derive(Debug, Clone)]
pub struct Stage {
    /// `[batch, d]`.
    pub embedding: Tensor<2>,
    /// `[batch, classes]`.
    pub logits: Tensor<2>,
}

/// The networks' trainable parts besides peer 0: the other peers, every network's branches and
/// every stage's projection head (what the reference's meta optimizer steps with the networks).
#[derive(Module, Debug)]
pub struct LmclCohort {
    /// Peers 1.. (peer 0 is the run's model).
    pub peers: Vec<Student>,
    /// `branches[n][b]`: network `n`'s branch on tap `branch_taps[b]`.
    pub branches: Vec<Vec<Student>>,
    /// `heads[n][s]`: the projection head of stage `s` of network `n`.
    pub heads: Vec<Vec<ProjectionHead>>,
}

impl LmclCohort {
    /// Every network's stages: the branches on `taps`, then the network itself; `first` is
    /// peer 0's output, the other peers run on `images`.
    fn stages(&self, first: &Output, images: &Tensor<4>, taps: &[usize]) -> Vec<Vec<Stage>> {
        let outs: Vec<Output> = self
            .peers
            .iter()
            .map(|p| p.forward_taps(images.clone()))
            .collect();
        std::iter::once(first)
            .chain(&outs)
            .zip(&self.branches)
            .map(|(out, branches)| {
                let mut stages: Vec<Stage> = branches
                    .iter()
                    .zip(taps)
                    .map(|(b, &t)| {
                        let o = b.forward_taps(out.feature_maps[t].clone());
                        Stage {
                            embedding: o.embedding,
                            logits: o.logits,
                        }
                    })
                    .collect();
                stages.push(Stage {
                    embedding: out.embedding.clone(),
                    logits: out.logits.clone(),
                });
                stages
            })
            .collect()
    }

    /// The projection heads' outputs, `[n][s]`.
    fn project(&self, stages: &[Vec<Stage>]) -> Vec<Vec<Tensor<2>>> {
        stages
            .iter()
            .zip(&self.heads)
            .map(|(net, heads)| {
                net.iter()
                    .zip(heads)
                    .map(|(s, h)| h.forward(s.embedding.clone()))
                    .collect()
            })
            .collect()
    }
}

/// Peer 0 and the cohort: what a meta step's look-ahead copies and steps.
#[derive(Module, Debug)]
struct Lookahead<M> {
    model: M,
    cohort: LmclCohort,
}

impl<M: Classifier> Lookahead<M> {
    fn stages(&self, images: &Tensor<4>, taps: &[usize]) -> Vec<Vec<Stage>> {
        let first = self.model.forward_taps(images.clone());
        self.cohort.stages(&first, images, taps)
    }
}

/// Adds `scale · g` to every parameter that has a gradient `g` (a new leaf, so the result
/// trains like the original).
struct Shift<'a> {
    grads: &'a GradientsParams,
    scale: f32,
}

impl ModuleMapper for Shift<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(g) = self.grads.get::<D>(param.id) else {
            return param;
        };
        let scale = self.scale;
        param.map(|t| {
            let grad = t.is_require_grad();
            let device = t.device();
            let shifted = (t + g.to_device(&device) * scale).detach();
            if grad {
                shifted.require_grad()
            } else {
                shifted
            }
        })
    }
}

/// `Σ ‖g‖²` over a module's parameters.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    total: f64,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            let s: f32 = g.powi_scalar(2).sum().into_scalar();
            self.total += f64::from(s);
        }
    }
}

#[derive(Debug, Clone)]
struct LmclSettings {
    taps: Vec<usize>,
    tau: f32,
    kd_temperature: f32,
    /// α (VCL), γ (soft VCL), β (ICL), λ (soft ICL).
    weights: [f32; 4],
    meta_every: usize,
    meta_epsilon: f64,
    meta_weight_decay: f64,
}

/// L-MCL with the cohort's other peers, their branches and heads, the aggregators and the
/// weighting network.
#[derive(Module, Debug)]
pub struct Lmcl {
    /// Peers, branches and heads.
    pub cohort: LmclCohort,
    /// One per network.
    pub aggregators: Vec<Aggregator>,
    /// The meta-learned pair weights (`None` with `meta = "uniform"`).
    pub weighting: Option<LossWeightNetwork>,
    #[module(skip)]
    settings: LmclSettings,
}

impl Lmcl {
    /// A cohort around the run's model with these other `peers` (students of one config).
    ///
    /// # Errors
    /// A branch tap the students do not have, or a branch that cannot be built.
    pub fn new(peers: Vec<Student>, c: &LmclConfig, device: &Device) -> Result<Self, String> {
        let config = peers
            .first()
            .map(|p| p.config.clone())
            .ok_or("online.peers: L-MCL needs at least 2 networks")?;
        let taps = c.resolve_taps(&config)?;
        let classes = config.num_classes();
        let networks = peers.len() + 1;
        let tails: Vec<StudentConfig> = taps
            .iter()
            .map(|&t| config.aux_tail(t, classes))
            .collect::<Result<_, _>>()
            .map_err(|e| format!("online.branch_taps: {e}"))?;
        let width = |s: &StudentConfig| match s.layers.len().checked_sub(2) {
            Some(i) => s.shapes().map(|sh| sh[i].iter().product::<usize>()),
            None => Ok(s.in_channels * s.input_size[0] * s.input_size[1]),
        };
        let widths = tails
            .iter()
            .chain(std::iter::once(&config))
            .map(width)
            .collect::<Result<Vec<usize>, _>>()
            .map_err(|e| format!("online.branch_taps: {e}"))?;
        let branches = (0..networks)
            .map(|_| {
                tails
                    .iter()
                    .map(|t| {
                        t.init(device)
                            .map_err(|e| format!("online.branch_taps: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .collect::<Result<Vec<_>, _>>()?;
        let heads = (0..networks)
            .map(|_| {
                widths
                    .iter()
                    .map(|&d| ProjectionHead::new(d, c.feat_dim, device))
                    .collect()
            })
            .collect();
        let all_widths = vec![widths.clone(); networks];
        Ok(Self {
            cohort: LmclCohort {
                peers,
                branches,
                heads,
            },
            aggregators: (0..networks)
                .map(|_| Aggregator::new(&widths, device))
                .collect(),
            weighting: (c.meta == LmclMeta::FirstOrder)
                .then(|| LossWeightNetwork::new(&all_widths, device)),
            settings: LmclSettings {
                taps,
                tau: c.tau as f32,
                kd_temperature: c.kd_temperature as f32,
                weights: [c.vcl, c.soft_vcl, c.icl, c.soft_icl].map(|w| w as f32),
                meta_every: c.meta_every,
                meta_epsilon: c.meta_epsilon,
                meta_weight_decay: c.meta_weight_decay,
            },
        })
    }

    /// The pair weights for these stages, detached (all ones without a weighting network).
    fn pair_weights(&self, stages: &[Vec<Stage>]) -> Vec<Tensor<2>> {
        let embeddings = detached_embeddings(stages);
        match &self.weighting {
            Some(w) => w
                .forward(&embeddings)
                .into_iter()
                .map(|t| t.detach())
                .collect(),
            None => {
                let counts: Vec<usize> = stages.iter().map(Vec::len).collect();
                let [b, _] = stages[0][0].embedding.dims();
                let device = stages[0][0].embedding.device();
                stage_pairs(&counts)
                    .iter()
                    .map(|_| Tensor::ones([b, 1], &device))
                    .collect()
            }
        }
    }

    /// [`MclRows`] of every pair of [`stage_pairs`] (soft targets from `targets` if given).
    fn pair_rows(
        &self,
        projected: &[Vec<Tensor<2>>],
        targets: Option<&[Vec<Tensor<2>>]>,
        labels: &Tensor<1, Int>,
    ) -> Vec<MclRows> {
        let s = &self.settings;
        let counts: Vec<usize> = projected.iter().map(Vec::len).collect();
        stage_pairs(&counts)
            .into_iter()
            .map(|(i, k, j, z)| {
                mcl_pair_rows(
                    projected[i][k].clone(),
                    projected[j][z].clone(),
                    targets.map(|t| (t[i][k].clone(), t[j][z].clone())),
                    labels.clone(),
                    s.tau,
                    s.kd_temperature,
                )
            })
            .collect()
    }

    /// `α·vcl + γ·soft_vcl + β·icl + λ·soft_icl` of one pair, per anchor.
    fn combined(&self, r: &MclRows) -> Tensor<2> {
        let [wv, wsv, wi, wsi] = self.settings.weights;
        r.vcl.clone() * wv
            + r.soft_vcl.clone() * wsv
            + r.icl.clone() * wi
            + r.soft_icl.clone() * wsi
    }

    /// One meta step of the weighting network on this batch (see the [module docs](self)), on
    /// global steps that are multiples of `meta_every`; otherwise, or with `meta = "uniform"`,
    /// nothing. `lr` is the run's learning rate at this step.
    pub fn meta_step<M: Classifier + ModuleDisplay>(
        mut self,
        model: &M,
        ctx: &StepContext,
        lr: f64,
    ) -> Self {
        let Some(weighting) = self.weighting.take() else {
            return self;
        };
        if !ctx.step.is_multiple_of(self.settings.meta_every) {
            self.weighting = Some(weighting);
            return self;
        }
        let weighting = self.weighting_step(weighting, model, ctx, lr);
        self.weighting = Some(weighting);
        self
    }

    fn weighting_step<M: Classifier + ModuleDisplay>(
        &self,
        weighting: LossWeightNetwork,
        model: &M,
        ctx: &StepContext,
        lr: f64,
    ) -> LossWeightNetwork {
        let (images, labels, taps) = (ctx.images, ctx.targets, &self.settings.taps);
        // Copies with their own BatchNorm running statistics (`valid` then `train` gives fresh
        // running states), so no look-ahead pass touches the real networks.
        let theta = Lookahead {
            model: Module::valid(model).train(),
            cohort: Module::valid(&self.cohort).train(),
        };
        // 1. The inner (weighted contrastive) loss and its look-ahead step.
        let stages = theta.stages(images, taps);
        let embeddings = detached_embeddings(&stages);
        let weights: Vec<Tensor<2>> = weighting
            .forward(&embeddings)
            .into_iter()
            .map(|w| w.detach())
            .collect();
        let projected = theta.cohort.project(&stages);
        let held: Vec<Vec<Tensor<2>>> = projected
            .iter()
            .map(|net| net.iter().map(|p| p.clone().detach()).collect())
            .collect();
        let inner = self
            .pair_rows(&projected, None, labels)
            .iter()
            .zip(&weights)
            .map(|(r, w)| (self.combined(r) * w.clone()).sum())
            .reduce(|a, b| a + b);
        let Some(inner) = inner else {
            return weighting;
        };
        let g = GradientsParams::from_grads(inner.backward(), &theta);
        let stepped = theta.clone().map(&mut Shift {
            grads: &g,
            scale: -(lr as f32),
        });
        // 2. The outer loss (every stage's CE) at the stepped weights.
        let ce = CrossEntropyLossConfig::new().init(&images.device());
        let outer = stepped
            .stages(images, taps)
            .iter()
            .flatten()
            .map(|s| ce.forward(s.logits.clone(), labels.clone()))
            .reduce(|a, b| a + b);
        let Some(outer) = outer else {
            return weighting;
        };
        let v = GradientsParams::from_grads(outer.backward(), &stepped);
        let mut norm = SquaredNorm {
            grads: &v,
            total: 0.0,
        };
        stepped.visit(&mut norm);
        let norm = norm.total.sqrt();
        if !(norm.is_finite() && norm > 0.0) {
            return weighting;
        }
        // 3. Directional derivatives of every pair's per-anchor loss along v.
        let eps = self.settings.meta_epsilon / norm;
        let at = |scale: f64| {
            let shifted = theta.clone().map(&mut Shift {
                grads: &v,
                scale: scale as f32,
            });
            let stages = shifted.stages(images, taps);
            let projected = shifted.cohort.project(&stages);
            self.pair_rows(&projected, Some(&held), labels)
                .iter()
                .map(|r| self.combined(r).detach())
                .collect::<Vec<_>>()
        };
        let (plus, minus) = (at(eps), at(-eps));
        let factor = (-lr / (2.0 * eps)) as f32;
        // 4. Σ w(φ)·c: its gradient is the hyper-gradient of the outer loss.
        let meta = weighting
            .forward(&embeddings)
            .into_iter()
            .zip(plus.into_iter().zip(minus))
            .map(|(w, (p, m))| (w * ((p - m) * factor)).sum())
            .reduce(|a, b| a + b);
        let Some(meta) = meta else {
            return weighting;
        };
        let grads = GradientsParams::from_grads(meta.backward(), &weighting);
        let decay = (self.settings.meta_weight_decay > 0.0)
            .then(|| WeightDecayConfig::new(self.settings.meta_weight_decay as f32));
        SgdConfig::new()
            .with_weight_decay(decay)
            .init()
            .step(lr, weighting, grads)
    }
}

fn detached_embeddings(stages: &[Vec<Stage>]) -> Vec<Vec<Tensor<2>>> {
    stages
        .iter()
        .map(|net| net.iter().map(|s| s.embedding.clone().detach()).collect())
        .collect()
}

impl Distiller for Lmcl {
    fn needs_teacher(&self) -> bool {
        false
    }

    fn loss(&self, student: &Output, _teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        let s = &self.settings;
        let stages = self.cohort.stages(student, ctx.images, &s.taps);
        let weights = self.pair_weights(&stages);
        let projected = self.cohort.project(&stages);
        let rows = self.pair_rows(&projected, None, ctx.targets);
        let weighted = |pick: fn(&MclRows) -> Tensor<2>, scale: f32| {
            rows.iter()
                .zip(&weights)
                .map(|(r, w)| (pick(r) * w.clone()).sum())
                .reduce(|a, b| a + b)
                .map(|t| t * scale)
        };
        let [wv, wsv, wi, wsi] = s.weights;
        let mut terms = Vec::new();
        for (name, pick, scale) in [
            (
                "vcl",
                (|r: &MclRows| r.vcl.clone()) as fn(&MclRows) -> Tensor<2>,
                wv,
            ),
            ("soft_vcl", |r: &MclRows| r.soft_vcl.clone(), wsv),
            ("icl", |r: &MclRows| r.icl.clone(), wi),
            ("soft_icl", |r: &MclRows| r.soft_icl.clone(), wsi),
        ] {
            terms.extend(weighted(pick, scale).map(|value| LossTerm { name, value }));
        }

        let device = student.logits.device();
        let ce = CrossEntropyLossConfig::new().init(&device);
        let targets = ctx.targets.clone().to_device(&device);
        let branch_ce = stages
            .iter()
            .flat_map(|net| &net[..net.len() - 1])
            .map(|st| ce.forward(st.logits.clone(), targets.clone()))
            .reduce(|a, b| a + b);
        terms.extend(branch_ce.map(|value| LossTerm {
            name: "branch_ce",
            value,
        }));
        // Peer 0's final CE is the trainer's; the other peers' final CE is this method's.
        let peer_ce = stages[1..]
            .iter()
            .map(|net| ce.forward(net[net.len() - 1].logits.clone(), targets.clone()))
            .reduce(|a, b| a + b);
        terms.extend(peer_ce.map(|value| LossTerm {
            name: "peer_ce",
            value,
        }));

        let ensembles: Vec<Tensor<2>> = stages
            .iter()
            .zip(&self.aggregators)
            .map(|(net, a)| a.forward(net))
            .collect();
        let ensemble_ce = ensembles
            .iter()
            .map(|e| ce.forward(e.clone(), targets.clone()))
            .reduce(|a, b| a + b);
        terms.extend(ensemble_ce.map(|value| LossTerm {
            name: "ensemble_ce",
            value,
        }));
        let ensemble_kd = stages
            .iter()
            .flat_map(|net| {
                let last = net[net.len() - 1].logits.clone();
                ensembles
                    .iter()
                    .map(move |e| softened_kl(last.clone(), e.clone().detach(), s.kd_temperature))
            })
            .reduce(|a, b| a + b);
        terms.extend(ensemble_kd.map(|value| LossTerm {
            name: "ensemble_kd",
            value,
        }));
        terms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::functional::softened_kl_rows;
    use crate::distill::mcl::mcl_losses;

    fn tiny_student() -> StudentConfig {
        toml::from_str(
            r#"
            in_channels = 1
            input_size = [8, 8]
            layers = [
                { conv = { out = 4, kernel = 3, padding = 1 } },
                { max_pool = { kernel = 2 } },
                { conv = { out = 6, kernel = 3, padding = 1 } },
                "global_avg_pool",
                { dense = { out = 3 } },
            ]
            "#,
        )
        .unwrap()
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.to_data().iter::<f32>().collect()
    }

    fn tensor(v: &[f32], shape: [usize; 2], dev: &Device) -> Tensor<2> {
        Tensor::from_data(TensorData::new(v.to_vec(), shape), dev)
    }

    #[test]
    fn kl_rows_match_a_hand_computed_case() {
        let dev = Device::flex();
        // p = softmax([ln 3, 0]) = [3/4, 1/4], q = [1/2, 1/2]: KL = 3/4 ln 1.5 + 1/4 ln 0.5.
        let t = tensor(&[3f32.ln(), 0.0, 0.0, 0.0], [2, 2], &dev);
        let s = tensor(&[0.0, 0.0, 0.0, 0.0], [2, 2], &dev);
        let rows = values(softened_kl_rows(s.clone(), t.clone(), 1.0));
        let kl = 0.75 * 1.5f32.ln() + 0.25 * 0.5f32.ln();
        assert!(
            (rows[0] - kl).abs() < 1e-6 && rows[1].abs() < 1e-7,
            "{rows:?}"
        );
        // Their batch mean is `softened_kl`.
        let mean: f32 = softened_kl(s, t, 1.0).into_scalar();
        assert!((mean - kl / 2.0).abs() < 1e-6);
    }

    #[test]
    fn weighted_pair_loss_matches_a_hand_computed_case() {
        let dev = Device::flex();
        // Samples 0 and 1 share a class and an embedding; sample 2 is alone (no positive: left
        // out). With τ = 1, anchor 0's positive has log-probability 1 − ln(e + 1), over the two
        // anchors that have a positive; a = b, so VCL (within a, within b) and ICL (a→b, b→a)
        // are each twice that, and the soft terms vanish.
        let a = tensor(&[1.0, 0.0, 2.0, 0.0, 0.0, 3.0], [3, 2], &dev);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 0, 1], [3]), &dev);
        let rows = mcl_pair_rows(a.clone(), a, None, labels, 1.0, 3.0);
        let w = tensor(&[1.0, 0.5, 1.0], [3, 1], &dev);
        let weighted = |r: Tensor<2>| -> f32 { (r * w.clone()).sum().into_scalar() };
        let per_anchor = ((std::f32::consts::E + 1.0).ln() - 1.0) / 2.0;
        let expected = 2.0 * (1.0 + 0.5) * per_anchor;
        for (name, got) in [("vcl", weighted(rows.vcl)), ("icl", weighted(rows.icl))] {
            assert!((got - expected).abs() < 1e-5, "{name}: {got} vs {expected}");
        }
        assert!(weighted(rows.soft_vcl).abs() < 1e-6);
        assert!(weighted(rows.soft_icl).abs() < 1e-6);
    }

    #[test]
    fn unit_weights_give_mcl_of_two_networks() {
        let dev = Device::flex();
        let a = Tensor::<2>::random([6, 5], burn::tensor::Distribution::Default, &dev);
        let b = Tensor::<2>::random([6, 5], burn::tensor::Distribution::Default, &dev);
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 0, 1, 2], [6]), &dev);
        let rows = mcl_pair_rows(a.clone(), b.clone(), None, labels.clone(), 0.1, 3.0);
        let mcl = mcl_losses(&[a, b], labels, 0.1, 3.0);
        for (name, row, full) in [
            ("vcl", rows.vcl, mcl.vcl),
            ("soft_vcl", rows.soft_vcl, mcl.soft_vcl),
            ("icl", rows.icl, mcl.icl),
            ("soft_icl", rows.soft_icl, mcl.soft_icl),
        ] {
            let (r, f): (f32, f32) = (row.sum().into_scalar(), full.into_scalar());
            assert!(
                (r - f).abs() < 1e-4 * f.abs().max(1.0),
                "{name}: {r} vs {f}"
            );
        }
    }

    #[test]
    fn meta_weights_cover_every_cross_network_stage_pair_in_0_1() {
        let dev = Device::flex();
        let widths = vec![vec![4, 6, 6], vec![4, 6, 6]];
        let net = LossWeightNetwork::new(&widths, &dev);
        let emb: Vec<Vec<Tensor<2>>> = widths
            .iter()
            .map(|n| {
                n.iter()
                    .map(|&d| Tensor::random([5, d], burn::tensor::Distribution::Default, &dev))
                    .collect()
            })
            .collect();
        let w = net.forward(&emb);
        let pairs = stage_pairs(&[3, 3]);
        assert_eq!(w.len(), 18);
        assert_eq!(pairs.len(), 18);
        assert_eq!(pairs[0], (0, 0, 1, 0));
        assert_eq!(pairs[9], (1, 0, 0, 0));
        for t in &w {
            assert_eq!(t.dims(), [5, 1]);
            assert!(values(t.clone()).iter().all(|&v| v > 0.0 && v < 1.0));
        }
        // The weight of (i, k, j, z) is that of (j, z, i, k): the cosine is symmetric.
        let at = |p| pairs.iter().position(|&q| q == p).unwrap();
        assert_eq!(
            values(w[at((0, 2, 1, 1))].clone()),
            values(w[at((1, 1, 0, 2))].clone())
        );
    }

    #[test]
    fn the_ensemble_is_a_convex_mix_of_the_stages() {
        let dev = Device::flex();
        let agg = Aggregator::new(&[4, 6], &dev);
        let stage = |v: f32, d: usize| Stage {
            embedding: Tensor::random([3, d], burn::tensor::Distribution::Default, &dev),
            logits: Tensor::full([3, 2], v, &dev),
        };
        let e = values(agg.forward(&[stage(1.0, 4), stage(3.0, 6)]));
        assert!(e.iter().all(|&v| v > 1.0 && v < 3.0), "{e:?}");
        // Equal stage logits: the ensemble is those logits whatever the weights.
        let e = values(agg.forward(&[stage(2.0, 4), stage(2.0, 6)]));
        assert!(e.iter().all(|&v| (v - 2.0).abs() < 1e-6), "{e:?}");
    }

    fn cohort(meta: LmclMeta, dev: &Device) -> (Student, Lmcl) {
        let cfg = tiny_student();
        let c = LmclConfig {
            meta,
            meta_every: 2,
            ..LmclConfig::default()
        };
        let lmcl = Lmcl::new(vec![cfg.init(dev).unwrap()], &c, dev).unwrap();
        (cfg.init(dev).unwrap(), lmcl)
    }

    fn weighting_values(m: &Lmcl) -> Vec<f32> {
        let w = m.weighting.as_ref().unwrap();
        w.proj
            .iter()
            .flatten()
            .flat_map(|l| l.weight.val().to_data().iter::<f32>().collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn terms_are_finite_and_the_meta_step_moves_only_the_weighting_network() {
        let dev = Device::flex().autodiff();
        let (model, lmcl) = cohort(LmclMeta::FirstOrder, &dev);
        assert_eq!(lmcl.settings.taps, [0]);
        assert_eq!(lmcl.cohort.branches[0].len(), 1);
        assert_eq!(lmcl.cohort.heads[1].len(), 2);
        let images = Tensor::<4>::random([6, 1, 8, 8], burn::tensor::Distribution::Default, &dev);
        let targets =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 0, 1, 2], [6]), &dev);
        let ctx = |step| StepContext {
            targets: &targets,
            indices: &[],
            epoch: 0,
            step,
            images: &images,
        };
        let out = model.forward_taps(images.clone());
        let names: Vec<&str> = lmcl
            .loss(&out, &out, &ctx(0))
            .iter()
            .map(|t| {
                let v: f32 = t.value.clone().into_scalar();
                assert!(v.is_finite(), "{}: {v}", t.name);
                t.name
            })
            .collect();
        assert_eq!(
            names,
            [
                "vcl",
                "soft_vcl",
                "icl",
                "soft_icl",
                "branch_ce",
                "peer_ce",
                "ensemble_ce",
                "ensemble_kd"
            ]
        );
        let before = weighting_values(&lmcl);
        let peer_before = values(lmcl.cohort.peers[0].forward(images.clone()));
        let model_before = values(Module::valid(&model).forward(images.clone()));
        // Step 1 is not a meta step (meta_every = 2); step 2 is.
        let lmcl = lmcl.meta_step(&model, &ctx(1), 0.1);
        assert_eq!(weighting_values(&lmcl), before);
        let lmcl = lmcl.meta_step(&model, &ctx(2), 0.1);
        let after = weighting_values(&lmcl);
        assert!(after.iter().all(|v| v.is_finite()));
        assert_ne!(
            after, before,
            "the meta step must update the weighting network"
        );
        // The networks (and their BatchNorm statistics) are untouched.
        assert_eq!(
            values(lmcl.cohort.peers[0].forward(images.clone())),
            peer_before
        );
        assert_eq!(
            values(Module::valid(&model).forward(images.clone())),
            model_before
        );
    }

    /// `Σ_params ⟨a, b⟩` of two gradients of one module.
    struct Dot<'a> {
        a: &'a GradientsParams,
        b: &'a GradientsParams,
        total: f64,
    }

    impl ModuleVisitor for Dot<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let (Some(x), Some(y)) = (self.a.get::<D>(param.id), self.b.get::<D>(param.id)) {
                let s: f32 = (x * y).sum().into_scalar();
                self.total += f64::from(s);
            }
        }
    }

    #[test]
    fn the_finite_difference_is_the_autodiff_directional_derivative() {
        // What the meta step estimates by central differences, ⟨v, ∇ℓ(θ)⟩ with the soft targets
        // held, against the same product from autodiff (v: the stages' CE gradient), on five
        // random tiny cohorts. At ε‖v‖ = 1e-3 they agree within 0.03–6 % (ReLU and max-pool
        // kinks); at the default 1e-2 within 1–25 %, at 1e-4 float32 rounding dominates.
        for seed in 0..5 {
            let err = finite_difference_error(seed, 1e-3);
            assert!(err < 0.1, "seed {seed}: relative error {err}");
        }
    }

    /// `|FD − autodiff| / |autodiff|` of the directional derivative on a random tiny cohort.
    fn finite_difference_error(seed: u64, relative_eps: f64) -> f64 {
        let dev = Device::flex().autodiff();
        dev.seed(seed);
        let (model, lmcl) = cohort(LmclMeta::FirstOrder, &dev);
        let images = Tensor::<4>::random([6, 1, 8, 8], burn::tensor::Distribution::Default, &dev);
        let labels =
            Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1, 2, 0, 1, 2], [6]), &dev);
        let taps = lmcl.settings.taps.clone();
        let theta = Lookahead {
            model: Module::valid(&model).train(),
            cohort: Module::valid(&lmcl.cohort).train(),
        };
        let total = |rows: Vec<MclRows>| {
            rows.iter()
                .map(|r| lmcl.combined(r).sum())
                .reduce(|a, b| a + b)
                .unwrap()
        };
        let stages = theta.stages(&images, &taps);
        let projected = theta.cohort.project(&stages);
        let held: Vec<Vec<Tensor<2>>> = projected
            .iter()
            .map(|n| n.iter().map(|p| p.clone().detach()).collect())
            .collect();
        let g = GradientsParams::from_grads(
            total(lmcl.pair_rows(&projected, None, &labels)).backward(),
            &theta,
        );
        let ce = CrossEntropyLossConfig::new().init(&dev);
        let outer = theta
            .stages(&images, &taps)
            .iter()
            .flatten()
            .map(|s| ce.forward(s.logits.clone(), labels.clone()))
            .reduce(|a, b| a + b)
            .unwrap();
        let v = GradientsParams::from_grads(outer.backward(), &theta);
        let mut dot = Dot {
            a: &g,
            b: &v,
            total: 0.0,
        };
        theta.visit(&mut dot);
        let mut norm = SquaredNorm {
            grads: &v,
            total: 0.0,
        };
        theta.visit(&mut norm);
        let eps = relative_eps / norm.total.sqrt();
        let at = |scale: f64| -> f64 {
            let shifted = theta.clone().map(&mut Shift {
                grads: &v,
                scale: scale as f32,
            });
            let stages = shifted.stages(&images, &taps);
            let projected = shifted.cohort.project(&stages);
            let t: f32 = total(lmcl.pair_rows(&projected, Some(&held), &labels)).into_scalar();
            f64::from(t)
        };
        let fd = (at(eps) - at(-eps)) / (2.0 * eps);
        (fd - dot.total).abs() / dot.total.abs().max(1e-6)
    }

    #[test]
    fn uniform_has_no_weighting_network_and_bad_settings_name_their_key() {
        let dev = Device::flex();
        let (_, lmcl) = cohort(LmclMeta::Uniform, &dev);
        assert!(lmcl.weighting.is_none());
        let bad = |f: fn(&mut LmclConfig)| {
            let mut c = LmclConfig::default();
            f(&mut c);
            c.validate().unwrap_err().0
        };
        assert_eq!(bad(|c| c.tau = 0.0), "online.tau");
        assert_eq!(bad(|c| c.kd_temperature = -1.0), "online.kd_temperature");
        assert_eq!(bad(|c| c.meta_every = 0), "online.meta_every");
        assert_eq!(bad(|c| c.meta_epsilon = 0.0), "online.meta_epsilon");
        assert_eq!(bad(|c| c.icl = f64::NAN), "online.icl");
        assert_eq!(bad(|c| c.branch_taps = Some(vec![])), "online.branch_taps");
        assert_eq!(
            bad(|c| c.branch_taps = Some(vec![1, 0])),
            "online.branch_taps"
        );
        let c = LmclConfig {
            branch_taps: Some(vec![2]),
            ..LmclConfig::default()
        };
        let e = c.resolve_taps(&tiny_student()).unwrap_err();
        assert!(
            e.contains("online.branch_taps") && e.contains("2 feature maps"),
            "{e}"
        );
        assert_eq!(
            LmclConfig::default().resolve_taps(&StudentConfig::mcu_small()),
            Ok(vec![0, 1])
        );
    }
}
