//! "Paying More Attention to Attention", Zagoruyko and Komodakis, ICLR 2017: the student matches
//! the teacher's spatial attention maps `normalize(mean_c A^p)` at every paired stage.
//!
//! Golden vectors: `tests/golden/losses/at.json`, RepDistiller `distiller_zoo/AT.py`
//! (`Attention`).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::functional::{l2_normalize, pool_to_common_size};
use super::taps::{MapPairs, TapShapes};
use super::{sum_terms, Distiller, LossTerm, StepContext};
use crate::models::Output;

/// The attention map of `f`: `normalize(mean_c f^p)` per sample, `[batch, h·w]`.
pub fn attention_map(f: Tensor<4>, p: f32) -> Tensor<2> {
    let [b, _, h, w] = f.dims();
    let a = f.powf_scalar(p).mean_dim(1).reshape([b, h * w]);
    l2_normalize(a, 1)
}

/// `mean((Q_s − Q_t)²)` of the attention maps of one pair, the larger map pooled first.
///
/// # Shapes
/// - `student`, `teacher`: `[batch, c, h, w]` (channels and sizes may differ); output `[1]`
pub fn at_loss(student: Tensor<4>, teacher: Tensor<4>, p: f32) -> Tensor<1> {
    let (s, t) = pool_to_common_size(student, teacher);
    (attention_map(s, p) - attention_map(t, p))
        .powi_scalar(2)
        .mean()
}

/// Hyper-parameters of AT. Defaults: RepDistiller (`-b 1000`, `p = 2`, every stage output).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AtConfig {
    /// Weight of the term (β, default 1000).
    pub beta: f64,
    /// Exponent of the attention map (default 2).
    pub p: f64,
    /// `[student, teacher]` map pairs (default: every positional pair).
    pub pairs: Option<MapPairs>,
}

impl Default for AtConfig {
    fn default() -> Self {
        Self {
            beta: 1000.0,
            p: 2.0,
            pairs: None,
        }
    }
}

impl AtConfig {
    /// Resolves the pairs.
    ///
    /// # Errors
    /// A tap does not exist.
    pub fn init(&self, student: &TapShapes, teacher: &TapShapes) -> Result<At, String> {
        Ok(At {
            pairs: MapPairs::resolve(self.pairs.as_ref(), student, teacher)?,
            weight: self.beta as f32,
            p: self.p as f32,
        })
    }
}

/// Attention transfer (no trainable parameters).
#[derive(Module, Debug)]
pub struct At {
    #[module(skip)]
    pairs: Vec<(usize, usize)>,
    #[module(skip)]
    weight: f32,
    #[module(skip)]
    p: f32,
}

impl Distiller for At {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        sum_terms(
            "at",
            self.weight,
            self.pairs.iter().map(|&(s, t)| {
                at_loss(
                    student.feature_maps[s].clone(),
                    teacher.feature_maps[t].clone(),
                    self.p,
                )
            }),
        )
    }
}
