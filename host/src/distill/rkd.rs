//! "Relational Knowledge Distillation", Park, Kim, Lu and Cho, CVPR 2019: the student keeps the
//! teacher's normalised pairwise distances and triplet angles between the batch's embeddings.
//!
//! Golden vectors: `tests/golden/losses/rkd.json`, RepDistiller `distiller_zoo/RKD.py`
//! (`RKDLoss`). The angle term builds a `B×B×B` tensor: keep batches of at most ~128.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::functional::{l2_normalize, pairwise_distances, smooth_l1};
use super::taps::TapShapes;
use super::{Distiller, LossTerm, StepContext};
use crate::models::Output;

/// Pairwise distances divided by their mean over the non-zero entries.
fn normalized_distances(e: Tensor<2>) -> Tensor<2> {
    let d = pairwise_distances(e);
    let nonzero = d.clone().greater_elem(0.0).float().sum().detach();
    let mean = d.clone().sum() / nonzero;
    d / mean.unsqueeze::<2>()
}

/// `ψ_A(i, j, k) = ⟨e_ij, e_ik⟩` with `e_ij` the unit vector from `f_i` to `f_j`, flattened.
fn angles(e: Tensor<2>) -> Tensor<2> {
    let [n, _] = e.dims();
    let diff = e.clone().unsqueeze_dim::<3>(0) - e.unsqueeze_dim::<3>(1); // [n, n, d]: f_j − f_i
    let unit = l2_normalize(diff, 2);
    unit.clone()
        .matmul(unit.swap_dims(1, 2))
        .reshape([n, n * n])
}

/// `w_d · L_distance + w_a · L_angle` (the teacher side carries no gradient).
///
/// # Shapes
/// - `student`: `[batch, ds]`, `teacher`: `[batch, dt]` (widths may differ); output `[1]`
pub fn rkd_loss(student: Tensor<2>, teacher: Tensor<2>, w_d: f32, w_a: f32) -> Tensor<1> {
    let teacher = teacher.detach();
    let distance = smooth_l1(
        normalized_distances(student.clone()),
        normalized_distances(teacher.clone()),
    );
    let angle = smooth_l1(angles(student), angles(teacher));
    distance * w_d + angle * w_a
}

/// Hyper-parameters of RKD. Defaults: RepDistiller (`-b 1`, `w_d = 25`, `w_a = 50`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RkdConfig {
    /// Weight of the term (β, default 1).
    pub beta: f64,
    /// Weight of the distance part (default 25).
    pub distance_weight: f64,
    /// Weight of the angle part (default 50).
    pub angle_weight: f64,
}

impl Default for RkdConfig {
    fn default() -> Self {
        Self {
            beta: 1.0,
            distance_weight: 25.0,
            angle_weight: 50.0,
        }
    }
}

impl RkdConfig {
    /// Builds the (parameter-free) method.
    pub fn init(&self, _student: &TapShapes, _teacher: &TapShapes) -> Result<Rkd, String> {
        Ok(Rkd {
            weight: self.beta as f32,
            w_d: self.distance_weight as f32,
            w_a: self.angle_weight as f32,
        })
    }
}

/// Relational KD on the penultimate embeddings (no trainable parameters).
#[derive(Module, Debug)]
pub struct Rkd {
    #[module(skip)]
    weight: f32,
    #[module(skip)]
    w_d: f32,
    #[module(skip)]
    w_a: f32,
}

impl Distiller for Rkd {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        let value = rkd_loss(
            student.embedding.clone(),
            teacher.embedding.clone(),
            self.w_d,
            self.w_a,
        ) * self.weight;
        vec![LossTerm { name: "rkd", value }]
    }
}
