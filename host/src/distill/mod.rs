//! Distillation methods: one file per method, all listed in [`MethodConfig`].
//!
//! A method is a loss over the taps ([`Output`]) of a student and a frozen teacher, plus the
//! method's own trainable auxiliary modules (none for KD). The trainer sums the cross-entropy term
//! and the named, already-weighted terms a method returns, and logs each one.

pub mod kd;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::models::Output;
pub use kd::{kd_loss, Kd, KdConfig};

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
    /// `teacher` comes from a frozen teacher (eval-mode BatchNorm, no gradients).
    fn loss(&self, student: &Output, teacher: &Output, ctx: &StepContext) -> Vec<LossTerm>;
}

/// Every distillation method tinykd knows, as written in a config file (`method = "kd"` plus the
/// method's own fields).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodConfig {
    /// Hinton et al., "Distilling the Knowledge in a Neural Network" (2015).
    Kd(KdConfig),
}

/// A built method, ready to train.
#[derive(Module, Debug)]
pub enum Method {
    /// See [`Kd`].
    Kd(Kd),
}

impl MethodConfig {
    /// Builds the method (and its auxiliary modules, if any) on `device`.
    pub fn init(&self, _device: &Device) -> Method {
        match self {
            MethodConfig::Kd(c) => Method::Kd(c.init()),
        }
    }

    /// The weight of the student's cross-entropy term (γ). Config values are f64 so that they
    /// print in `config.toml` as written.
    pub fn ce_weight(&self) -> f32 {
        match self {
            MethodConfig::Kd(c) => c.gamma as f32,
        }
    }
}

impl Distiller for Method {
    fn loss(&self, student: &Output, teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        match self {
            Method::Kd(m) => m.loss(student, teacher, ctx),
        }
    }
}
