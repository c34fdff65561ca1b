//! "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer", Huang and Wang, 2017:
//! the maximum mean discrepancy, under a squared polynomial kernel, between the student's and the
//! teacher's channel activation patterns.
//!
//! Golden vectors: `tests/golden/losses/nst.json`, RepDistiller `distiller_zoo/NST.py`
//! (`NSTLoss`, full loss).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::functional::{l2_normalize, pool_to_common_size};
use super::taps::{MapPairs, TapShapes};
use super::{sum_terms, Distiller, LossTerm, StepContext};
use crate::models::Output;

/// `k(a, b) = (aᵀb)²` between every channel of `a` and of `b`, per sample: `[batch, cb, ca]`.
fn poly_kernel(a: Tensor<3>, b: Tensor<3>) -> Tensor<3> {
    b.matmul(a.swap_dims(1, 2)).powi_scalar(2)
}

/// `mean k(T,T) + mean k(S,S) − 2 mean k(S,T)` over spatially L2-normalised channel maps (the
/// larger map pooled first). The teacher–teacher term is a constant.
///
/// # Shapes
/// - `student`, `teacher`: `[batch, c, h, w]`; output `[1]`
pub fn nst_loss(student: Tensor<4>, teacher: Tensor<4>) -> Tensor<1> {
    let (s, t) = pool_to_common_size(student, teacher);
    let s = l2_normalize(s.flatten::<3>(2, 3), 2);
    let t = l2_normalize(t.flatten::<3>(2, 3), 2);
    poly_kernel(t.clone(), t.clone()).mean().detach() + poly_kernel(s.clone(), s.clone()).mean()
        - poly_kernel(s, t).mean() * 2.0
}

/// Hyper-parameters of NST. Defaults: RepDistiller (`-b 50`, every stage output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NstConfig {
    /// Weight of the term (β, default 50).
    pub beta: f64,
    /// `[student, teacher]` map pairs (default: every positional pair).
    pub pairs: Option<MapPairs>,
}

impl Default for NstConfig {
    fn default() -> Self {
        Self {
            beta: 50.0,
            pairs: None,
        }
    }
}

impl NstConfig {
    /// Resolves the pairs.
    ///
    /// # Errors
    /// A tap does not exist.
    pub fn init(&self, student: &TapShapes, teacher: &TapShapes) -> Result<Nst, String> {
        Ok(Nst {
            pairs: MapPairs::resolve(self.pairs.as_ref(), student, teacher)?,
            weight: self.beta as f32,
        })
    }
}

/// Neuron selectivity transfer (no trainable parameters).
#[derive(Module, Debug)]
pub struct Nst {
    #[module(skip)]
    pairs: Vec<(usize, usize)>,
    #[module(skip)]
    weight: f32,
}

impl Distiller for Nst {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        sum_terms(
            "nst",
            self.weight,
            self.pairs.iter().map(|&(s, t)| {
                nst_loss(
                    student.feature_maps[s].clone(),
                    teacher.feature_maps[t].clone(),
                )
            }),
        )
    }
}
