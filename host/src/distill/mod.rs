//! Distillation methods: one file per method, all listed in [`MethodConfig`].
//!
//! A method is a loss over the taps ([`Output`]) of a student and a frozen teacher, plus the
//! method's own trainable auxiliary modules and state (memory banks), optimised with the student,
//! saved in its checkpoints and dropped at export. A recipe ([`DistillSpec`]) combines terms as
//! RepDistiller and torchdistill do:
//!
//! ```text
//! loss = γ · CE(student, y) + α · KD(student, teacher) + β · method(student taps, teacher taps)
//! ```
//!
//! `γ` and `α` live in `[distill]`, `β` and the method's own settings in `[distill.method]`:
//!
//! ```toml
//! [distill]
//! teacher = "runs/teacher"
//! alpha = 1.0               # CRD+KD
//! [distill.method]
//! method = "crd"
//! beta = 0.8
//! ```

pub mod at;
pub mod cc;
pub mod cmim;
pub mod crd;
pub mod dkd;
pub mod dml;
pub mod fitnet;
pub mod fsp;
pub mod functional;
pub mod hints;
pub mod hsakd;
pub mod kd;
pub mod kf;
pub mod lmcl;
pub mod mcl;
pub mod nst;
pub mod online;
pub mod pkt;
pub mod rkd;
pub mod sk;
pub mod sp;
pub mod taps;
pub mod vid;

use std::path::PathBuf;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::models::Output;
pub use kd::{kd_loss, Kd};
pub use taps::{MapPairs, TapShapes};

/// Everything a method may need from the training step besides the taps.
#[derive(Debug, Clone)]
pub struct StepContext<'a> {
    /// Class labels of the batch, `[batch]`.
    pub targets: &'a Tensor<1, Int>,
    /// The dataset index of each sample of the batch (what instance-level methods such as CRD
    /// key their memory banks on).
    pub indices: &'a [usize],
    /// Zero-based epoch.
    pub epoch: usize,
    /// Global optimizer step.
    pub step: usize,
    /// The batch's input images (what online methods run their other peers on).
    pub images: &'a Tensor<4>,
}

/// One named, already-weighted term of a distillation loss.
#[derive(Debug, Clone)]
pub struct LossTerm {
    /// Short name, used in logs and metrics (`"kd"`, `"fitnet"`, …).
    pub name: &'static str,
    /// The weighted scalar loss, shape `[1]`.
    pub value: Tensor<1>,
}

/// A distillation method: its auxiliary modules (a burn [`Module`], optimized with the student and
/// dropped at export) and its loss.
pub trait Distiller: Module {
    /// The method's weighted loss terms for one batch.
    ///
    /// `teacher` comes from a frozen teacher (eval-mode BatchNorm, no gradients). Methods that
    /// need no teacher ([`Distiller::needs_teacher`] false: online methods) get the student's own
    /// taps there and must not read them.
    fn loss(&self, student: &Output, teacher: &Output, ctx: &StepContext) -> Vec<LossTerm>;

    /// Whether the method distils from a teacher (every method but the online ones).
    fn needs_teacher(&self) -> bool {
        true
    }

    /// Whether the trainer feeds the networks each batch four times, turned by 0°, 90°, 180° and
    /// 270° ([`hsakd::rotated_views`], `4B` rows, view `k` of image `b` at row `k·B + b`), the
    /// cross-entropy and the training accuracy reading the unrotated first `B` rows. Default
    /// false.
    fn rotated_views(&self) -> bool {
        false
    }

    /// Called after every optimizer step, as [`crate::models::Classifier::after_step`] is on
    /// the model: online methods pass it on to their peers (binary peers clip their latent
    /// weights). Default: nothing.
    fn after_step(self) -> Self
    where
        Self: Sized,
    {
        self
    }

    /// Called after every optimizer step (after [`Distiller::after_step`]) with the updated
    /// run model, the step's batch and learning rate: methods with an optimisation of their own
    /// besides the loss's gradient step run it here (L-MCL's meta step). Default: nothing.
    fn meta_step<M: crate::models::Classifier + burn::module::ModuleDisplay>(
        self,
        _model: &M,
        _ctx: &StepContext,
        _lr: f64,
    ) -> Self
    where
        Self: Sized,
    {
        self
    }
}

/// Sums per-layer losses into one term named `name`, weighted by `weight` (no term when empty).
pub(crate) fn sum_terms(
    name: &'static str,
    weight: f32,
    losses: impl Iterator<Item = Tensor<1>>,
) -> Vec<LossTerm> {
    losses
        .reduce(|a, b| a + b)
        .map(|v| LossTerm {
            name,
            value: v * weight,
        })
        .into_iter()
        .collect()
}

/// `[distill]`: the teacher, the recipe weights and the method.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistillSpec {
    /// The teacher's run directory (its `config.toml` and `model.bpk`).
    pub teacher: PathBuf,
    /// Weight of the student's cross-entropy, γ (default: 0.1 with `method = "kd"`, as
    /// RepDistiller's KD recipe; 1 otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    /// Weight of the KD term, α (default: 0.9 with `method = "kd"`; 0 otherwise — set 1 for
    /// RepDistiller's "+KD" recipes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Temperature of the KD term (default 4).
    #[serde(default = "default_temperature")]
    pub temperature: f64,
    /// More trained networks that, with `teacher`, form an ensemble: KD targets are the members'
    /// averaged softened predictions (at `temperature`), feature methods see the taps
    /// `ensemble_features` names (default empty: `teacher` alone).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ensemble: Vec<PathBuf>,
    /// With an ensemble: `0` (the `teacher`), `1..` (an `ensemble` member) or `"concat"` (all
    /// members' taps concatenated). Default 0.
    #[serde(default)]
    pub ensemble_features: crate::train::ensemble::EnsembleFeatures,
    /// Teacher layers the feature methods distil at, as indices into the teacher's candidate
    /// layers (`tinykd hints` lists them), or `"auto"` to pick `hint_count` of them by layer
    /// clustering before training (the choice is written back into the run's `config.toml`).
    /// When set, the teacher's feature maps the method sees are these layers, shallow to deep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hints: Option<Hints>,
    /// Hints to pick with `hints = "auto"` (default 3).
    #[serde(default = "default_hint_count")]
    pub hint_count: usize,
    /// The method and its hyper-parameters (default: KD alone).
    #[serde(default)]
    pub method: MethodConfig,
    /// An extra contrastive term for binary students, CMIM ([`cmim`]), on top of the recipe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contrast: Option<cmim::CmimConfig>,
}

/// `hints` in `[distill]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Hints {
    /// `"auto"`: layer clustering ([`hints::choose_hints`]).
    Auto(AutoHints),
    /// Explicit candidate-layer indices.
    Layers(Vec<usize>),
}

/// The word `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AutoHints {
    /// Pick the hints by layer clustering.
    Auto,
}

fn default_hint_count() -> usize {
    3
}

fn default_temperature() -> f64 {
    4.0
}

impl DistillSpec {
    /// KD from `teacher` with the reference defaults.
    pub fn kd(teacher: PathBuf) -> Self {
        Self {
            teacher,
            gamma: None,
            alpha: None,
            temperature: default_temperature(),
            ensemble: Vec::new(),
            ensemble_features: Default::default(),
            hints: None,
            hint_count: default_hint_count(),
            method: MethodConfig::default(),
            contrast: None,
        }
    }

    /// The explicit hint layers, once resolved.
    pub fn hint_layers(&self) -> Option<&[usize]> {
        match &self.hints {
            Some(Hints::Layers(l)) => Some(l),
            _ => None,
        }
    }

    /// γ, resolved.
    pub fn ce_weight(&self) -> f64 {
        self.gamma.unwrap_or(match self.method {
            MethodConfig::Kd(_) => 0.1,
            _ => 1.0,
        })
    }

    /// α, resolved.
    pub fn kd_weight(&self) -> f64 {
        self.alpha.unwrap_or(match self.method {
            MethodConfig::Kd(_) => 0.9,
            _ => 0.0,
        })
    }

    /// Checks the weights; `Err((key, reason))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !finite_nonneg(self.ce_weight()) {
            return Err((
                "distill.gamma",
                format!("must be >= 0, got {}", self.ce_weight()),
            ));
        }
        if !finite_nonneg(self.kd_weight()) {
            return Err((
                "distill.alpha",
                format!("must be >= 0, got {}", self.kd_weight()),
            ));
        }
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err((
                "distill.temperature",
                format!("must be > 0, got {}", self.temperature),
            ));
        }
        if self.hint_count == 0 {
            return Err(("distill.hint_count", "must be at least 1".into()));
        }
        if let Some(Hints::Layers(l)) = &self.hints {
            if l.is_empty() {
                return Err((
                    "distill.hints",
                    "must list at least one layer, or be \"auto\"".into(),
                ));
            }
        }
        if let Some(beta) = self.method.beta() {
            if !beta.is_finite() {
                return Err(("distill.method.beta", format!("must be finite, got {beta}")));
            }
        }
        if let MethodConfig::Hsakd(c) = &self.method {
            c.validate()?;
        }
        Ok(())
    }

    /// Builds the recipe's terms (KD if `α > 0`, then the method) for a student and a teacher
    /// with the given taps.
    ///
    /// # Errors
    /// The method does not fit the models (a missing tap, incompatible shapes, too few samples
    /// for the negatives); the message names what exists.
    pub fn init(&self, ctx: &MethodContext, device: &Device) -> Result<Distillation, String> {
        let alpha = self.kd_weight();
        let contrast = match &self.contrast {
            Some(c) => {
                Some(c.init(ctx.student, ctx.teacher, ctx.train_labels, ctx.seed, device)?)
            }
            None => None,
        };
        Ok(Distillation {
            kd: (alpha > 0.0).then(|| Kd::new(self.temperature as f32, alpha as f32)),
            method: self.method.init(ctx, device)?,
            contrast,
            hint_layers: self.hint_layers().map(<[usize]>::to_vec),
        })
    }

    /// The teacher's taps as the method sees them: with hint layers, its feature maps are
    /// those candidate layers.
    ///
    /// # Errors
    /// A hint layer the teacher does not have.
    pub fn teacher_view(&self, out: Output) -> Result<Output, String> {
        teacher_view(self.hint_layers(), out)
    }
}

fn teacher_view(hints: Option<&[usize]>, mut out: Output) -> Result<Output, String> {
    if let Some(layers) = hints {
        let n = out.candidate_maps.len();
        out.feature_maps = layers
            .iter()
            .map(|&i| {
                out.candidate_maps.get(i).cloned().ok_or_else(|| {
                    format!(
                        "the teacher has no candidate layer {i} for a hint; it has {n} (0..{n})"
                    )
                })
            })
            .collect::<Result<_, _>>()?;
    }
    Ok(out)
}

/// What building a method may need to know about the models and the data.
#[derive(Debug, Clone, Copy)]
pub struct MethodContext<'a> {
    /// The student's taps.
    pub student: &'a TapShapes,
    /// The teacher's taps.
    pub teacher: &'a TapShapes,
    /// Training labels in dataset order (CRD's banks and negatives).
    pub train_labels: &'a [u8],
    /// Run seed.
    pub seed: u64,
    /// Whether the teacher's maps are hint layers (FitNets then distils at all of them).
    pub hints: bool,
    /// The network being trained.
    pub student_spec: &'a crate::config::ModelSpec,
    /// HSAKD: the teacher's trained auxiliary classifiers, one per pair
    /// ([`hsakd::prepare_teacher_aux`]); empty for every other method.
    pub teacher_aux: &'a [crate::models::auxiliary::AuxClassifier],
}

/// Every distillation method tinykd knows, as written in a config file (`method = "at"` plus the
/// method's own fields; every field has its reference default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    /// KD alone (the `α · KD` term of [`DistillSpec`]): Hinton et al. 2015.
    Kd(KdOnly),
    /// FitNets, Romero et al., ICLR 2015.
    Fitnet(fitnet::FitnetConfig),
    /// Attention transfer, Zagoruyko and Komodakis, ICLR 2017.
    At(at::AtConfig),
    /// Similarity-preserving KD, Tung and Mori, ICCV 2019.
    Sp(sp::SpConfig),
    /// Correlation congruence, Peng et al., ICCV 2019.
    Cc(cc::CcConfig),
    /// Variational information distillation, Ahn et al., CVPR 2019.
    Vid(vid::VidConfig),
    /// Relational KD, Park et al., CVPR 2019.
    Rkd(rkd::RkdConfig),
    /// Probabilistic knowledge transfer, Passalis and Tefas, ECCV 2018.
    Pkt(pkt::PktConfig),
    /// Neuron selectivity transfer, Huang and Wang, 2017.
    Nst(nst::NstConfig),
    /// Flow of solution procedure, Yim et al., CVPR 2017.
    Fsp(fsp::FspConfig),
    /// Contrastive representation distillation, Tian et al., ICLR 2020.
    Crd(crd::CrdConfig),
    /// Decoupled KD, Zhao et al., CVPR 2022.
    Dkd(dkd::DkdConfig),
    /// Similarity-keeping KD for channel-subset students, Huang et al., IEEE TETCI.
    Sk(sk::SkConfig),
    /// Hierarchical self-supervised augmented KD, Yang et al., IJCAI 2021.
    Hsakd(hsakd::HsakdConfig),
}

/// `method = "kd"`: no term besides the recipe's KD.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KdOnly {}

impl Default for MethodConfig {
    fn default() -> Self {
        Self::Kd(KdOnly {})
    }
}

impl MethodConfig {
    /// Every method name a config may use.
    pub const NAMES: [&'static str; 14] = [
        "kd", "fitnet", "at", "sp", "cc", "vid", "rkd", "pkt", "nst", "fsp", "crd", "dkd", "sk",
        "hsakd",
    ];

    /// The method's config name.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Kd(_) => "kd",
            Self::Fitnet(_) => "fitnet",
            Self::At(_) => "at",
            Self::Sp(_) => "sp",
            Self::Cc(_) => "cc",
            Self::Vid(_) => "vid",
            Self::Rkd(_) => "rkd",
            Self::Pkt(_) => "pkt",
            Self::Nst(_) => "nst",
            Self::Fsp(_) => "fsp",
            Self::Crd(_) => "crd",
            Self::Dkd(_) => "dkd",
            Self::Sk(_) => "sk",
            Self::Hsakd(_) => "hsakd",
        }
    }

    /// The method's β, for methods that have one.
    pub fn beta(&self) -> Option<f64> {
        match self {
            Self::Kd(_) | Self::Dkd(_) => None,
            Self::Fitnet(c) => Some(c.beta),
            Self::At(c) => Some(c.beta),
            Self::Sp(c) => Some(c.beta),
            Self::Cc(c) => Some(c.beta),
            Self::Vid(c) => Some(c.beta),
            Self::Rkd(c) => Some(c.beta),
            Self::Pkt(c) => Some(c.beta),
            Self::Nst(c) => Some(c.beta),
            Self::Fsp(c) => Some(c.beta),
            Self::Crd(c) => Some(c.beta),
            Self::Sk(c) => Some(c.beta),
            Self::Hsakd(c) => Some(c.beta),
        }
    }

    /// Builds the method (and its auxiliary modules) on `device`; `None` for KD alone.
    ///
    /// # Errors
    /// See [`DistillSpec::init`].
    pub fn init(&self, ctx: &MethodContext, device: &Device) -> Result<Option<Method>, String> {
        let (s, t) = (ctx.student, ctx.teacher);
        let method = match self {
            Self::Kd(_) => return Ok(None),
            Self::Fitnet(c) => Method::Fitnet(c.init(s, t, ctx.hints, device)?),
            Self::At(c) => Method::At(c.init(s, t)?),
            Self::Sp(c) => Method::Sp(c.init(s, t)?),
            Self::Cc(c) => Method::Cc(c.init(s, t, device)?),
            Self::Vid(c) => Method::Vid(c.init(s, t, device)?),
            Self::Rkd(c) => Method::Rkd(c.init(s, t)?),
            Self::Pkt(c) => Method::Pkt(c.init(s, t)?),
            Self::Nst(c) => Method::Nst(c.init(s, t)?),
            Self::Fsp(c) => Method::Fsp(c.init(s, t)?),
            Self::Crd(c) => Method::Crd(c.init(s, t, ctx.train_labels, ctx.seed, device)?),
            Self::Dkd(c) => Method::Dkd(c.init(s, t)?),
            Self::Sk(c) => Method::Sk(c.init(s, t)?),
            Self::Hsakd(c) => {
                let pairs = c.pairs(s, t)?;
                if ctx.teacher_aux.len() != pairs.len() {
                    return Err(format!(
                        "HSAKD needs the teacher's {} trained auxiliaries, got {}",
                        pairs.len(),
                        ctx.teacher_aux.len()
                    ));
                }
                Method::Hsakd(c.init(
                    ctx.student_spec,
                    s.classes,
                    &pairs,
                    ctx.teacher_aux.to_vec(),
                    device,
                )?)
            }
        };
        Ok(Some(method))
    }
}

/// A built method, ready to train.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Method {
    /// See [`fitnet::Fitnet`].
    Fitnet(fitnet::Fitnet),
    /// See [`at::At`].
    At(at::At),
    /// See [`sp::Sp`].
    Sp(sp::Sp),
    /// See [`cc::Cc`].
    Cc(cc::Cc),
    /// See [`vid::Vid`].
    Vid(vid::Vid),
    /// See [`rkd::Rkd`].
    Rkd(rkd::Rkd),
    /// See [`pkt::Pkt`].
    Pkt(pkt::Pkt),
    /// See [`nst::Nst`].
    Nst(nst::Nst),
    /// See [`fsp::Fsp`].
    Fsp(fsp::Fsp),
    /// See [`crd::Crd`].
    Crd(crd::Crd),
    /// See [`dkd::Dkd`].
    Dkd(dkd::Dkd),
    /// See [`sk::Sk`].
    Sk(sk::Sk),
    /// See [`hsakd::Hsakd`].
    Hsakd(hsakd::Hsakd),
    /// See [`dml::Dml`] (online).
    Dml(dml::Dml),
    /// See [`mcl::Mcl`] (online).
    Mcl(mcl::Mcl),
    /// See [`lmcl::Lmcl`] (online).
    Lmcl(lmcl::Lmcl),
}

impl Method {
    /// The cohort's other peers, for online methods.
    pub fn peers(&self) -> &[crate::models::student::Student] {
        match self {
            Method::Dml(m) => &m.peers,
            Method::Mcl(m) => &m.peers,
            Method::Lmcl(m) => &m.cohort.peers,
            _ => &[],
        }
    }
}

impl Distiller for Method {
    fn loss(&self, student: &Output, teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        match self {
            Method::Fitnet(m) => m.loss(student, teacher, ctx),
            Method::At(m) => m.loss(student, teacher, ctx),
            Method::Sp(m) => m.loss(student, teacher, ctx),
            Method::Cc(m) => m.loss(student, teacher, ctx),
            Method::Vid(m) => m.loss(student, teacher, ctx),
            Method::Rkd(m) => m.loss(student, teacher, ctx),
            Method::Pkt(m) => m.loss(student, teacher, ctx),
            Method::Nst(m) => m.loss(student, teacher, ctx),
            Method::Fsp(m) => m.loss(student, teacher, ctx),
            Method::Crd(m) => m.loss(student, teacher, ctx),
            Method::Dkd(m) => m.loss(student, teacher, ctx),
            Method::Sk(m) => m.loss(student, teacher, ctx),
            Method::Hsakd(m) => m.loss(student, teacher, ctx),
            Method::Dml(m) => m.loss(student, teacher, ctx),
            Method::Mcl(m) => m.loss(student, teacher, ctx),
            Method::Lmcl(m) => m.loss(student, teacher, ctx),
        }
    }

    fn needs_teacher(&self) -> bool {
        !matches!(self, Method::Dml(_) | Method::Mcl(_) | Method::Lmcl(_))
    }

    fn rotated_views(&self) -> bool {
        matches!(self, Method::Hsakd(_))
    }

    fn after_step(self) -> Self {
        use crate::models::Classifier;
        let step = |peers: Vec<crate::models::student::Student>| {
            peers.into_iter().map(Classifier::after_step).collect()
        };
        match self {
            Method::Dml(mut m) => {
                m.peers = step(m.peers);
                Method::Dml(m)
            }
            Method::Mcl(mut m) => {
                m.peers = step(m.peers);
                Method::Mcl(m)
            }
            Method::Lmcl(mut m) => {
                m.cohort.peers = step(m.cohort.peers);
                Method::Lmcl(m)
            }
            other => other,
        }
    }

    fn meta_step<M: crate::models::Classifier + burn::module::ModuleDisplay>(
        self,
        model: &M,
        ctx: &StepContext,
        lr: f64,
    ) -> Self {
        match self {
            Method::Lmcl(m) => Method::Lmcl(m.meta_step(model, ctx, lr)),
            other => other,
        }
    }
}

/// A built recipe: the optional KD term and the optional method, trained with the student.
#[derive(Module, Debug)]
pub struct Distillation {
    /// `α · KD`, when `α > 0`.
    pub kd: Option<Kd>,
    /// The method, unless it is KD alone.
    pub method: Option<Method>,
    /// CMIM's contrastive term, if asked for.
    pub contrast: Option<cmim::Cmim>,
    /// Candidate layers that replace the teacher's feature maps (hints), if any.
    #[module(skip)]
    pub hint_layers: Option<Vec<usize>>,
}

impl Distiller for Distillation {
    fn loss(&self, student: &Output, teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        let mut terms = Vec::new();
        if let Some(kd) = &self.kd {
            terms.extend(kd.loss(student, teacher, ctx));
        }
        if let Some(m) = &self.method {
            match &self.hint_layers {
                Some(_) => {
                    // Checked against the teacher at init; a failure here cannot happen.
                    if let Ok(view) = teacher_view(self.hint_layers.as_deref(), teacher.clone()) {
                        terms.extend(m.loss(student, &view, ctx));
                    }
                }
                None => terms.extend(m.loss(student, teacher, ctx)),
            }
        }
        if let Some(c) = &self.contrast {
            terms.extend(c.loss(student, teacher, ctx));
        }
        terms
    }

    fn needs_teacher(&self) -> bool {
        self.kd.is_some()
            || self.contrast.is_some()
            || self.method.as_ref().is_some_and(Distiller::needs_teacher)
    }

    fn rotated_views(&self) -> bool {
        self.method.as_ref().is_some_and(Distiller::rotated_views)
    }

    fn after_step(mut self) -> Self {
        self.method = self.method.map(Distiller::after_step);
        self
    }

    fn meta_step<M: crate::models::Classifier + burn::module::ModuleDisplay>(
        mut self,
        model: &M,
        ctx: &StepContext,
        lr: f64,
    ) -> Self {
        self.method = self.method.map(|m| m.meta_step(model, ctx, lr));
        self
    }
}

impl Distillation {
    /// An online method alone (no KD term, no hints).
    pub fn online(method: Method) -> Self {
        Self {
            kd: None,
            method: Some(method),
            contrast: None,
            hint_layers: None,
        }
    }
}
