//! "Similarity-Preserving Knowledge Distillation", Tung and Mori, ICCV 2019: the student's
//! batch Gram matrix (row-normalised) matches the teacher's.
//!
//! Golden vectors: `tests/golden/losses/sp.json`, RepDistiller `distiller_zoo/SP.py`
//! (`Similarity`).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::functional::{flatten_batch, l2_normalize};
use super::taps::{MapPairs, TapShapes};
use super::{sum_terms, Distiller, LossTerm, StepContext};
use crate::models::Output;

/// The row-normalised batch Gram matrix `normalize(Q Qᵀ)` of flattened activations, `[B, B]`.
pub fn batch_similarity(f: Tensor<2>) -> Tensor<2> {
    let g = f.clone().matmul(f.transpose());
    l2_normalize(g, 1)
}

/// `‖G̃_t − G̃_s‖²_F / B²` for one pair of maps (any channels and sizes).
///
/// # Shapes
/// - `student`, `teacher`: `[batch, …]` flattened per sample; output `[1]`
pub fn sp_loss(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<1> {
    let [b, _] = student.dims();
    let diff = batch_similarity(teacher) - batch_similarity(student);
    diff.powi_scalar(2).sum() / (b * b) as f32
}

/// Hyper-parameters of SP. Defaults: RepDistiller (`-b 3000`, the last feature map).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpConfig {
    /// Weight of the term (β, default 3000).
    pub beta: f64,
    /// `[student, teacher]` map pairs (default: the last map of each, `[[-1, -1]]`).
    pub pairs: Option<MapPairs>,
}

impl Default for SpConfig {
    fn default() -> Self {
        Self {
            beta: 3000.0,
            pairs: None,
        }
    }
}

impl SpConfig {
    /// Resolves the pairs.
    ///
    /// # Errors
    /// A tap does not exist.
    pub fn init(&self, student: &TapShapes, teacher: &TapShapes) -> Result<Sp, String> {
        let last = MapPairs::single(-1, -1);
        Ok(Sp {
            pairs: MapPairs::resolve(Some(self.pairs.as_ref().unwrap_or(&last)), student, teacher)?,
            weight: self.beta as f32,
        })
    }
}

/// Similarity-preserving KD (no trainable parameters).
#[derive(Module, Debug)]
pub struct Sp {
    #[module(skip)]
    pairs: Vec<(usize, usize)>,
    #[module(skip)]
    weight: f32,
}

impl Distiller for Sp {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        sum_terms(
            "sp",
            self.weight,
            self.pairs.iter().map(|&(s, t)| {
                sp_loss(
                    flatten_batch(student.feature_maps[s].clone()),
                    flatten_batch(teacher.feature_maps[t].clone()),
                )
            }),
        )
    }
}
