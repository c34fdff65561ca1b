//! "A Gift from Knowledge Distillation: Fast Optimization, Network Minimization and Transfer
//! Learning", Yim et al., CVPR 2017: the student matches the teacher's "flow of solution
//! procedure", the Gram matrices between consecutive feature maps.
//!
//! Golden vectors: `tests/golden/losses/fsp.json`, RepDistiller `distiller_zoo/FSP.py` (`FSP`;
//! the loss is the sum of the per-pair losses). Like the reference, FSP needs the student's and
//! the teacher's maps to have the same channel counts. RepDistiller trains FSP in two stages (an
//! FSP-only initialisation, then cross-entropy only); tinykd trains it in one, `CE + β·FSP`.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::functional::pool_to_common_size;
use super::taps::TapShapes;
use super::{Distiller, LossTerm, StepContext};
use crate::models::Output;

/// `G = (1/HW) Σ_hw top_{:,hw} bot_{:,hw}ᵀ` per sample, `[batch, c_top, c_bot]` (the larger map
/// pooled first).
pub fn fsp_matrix(bottom: Tensor<4>, top: Tensor<4>) -> Tensor<3> {
    let (bottom, top) = pool_to_common_size(bottom, top);
    let [_, _, h, w] = bottom.dims();
    let bottom = bottom.flatten::<3>(2, 3);
    let top = top.flatten::<3>(2, 3);
    top.matmul(bottom.swap_dims(1, 2)) / (h * w) as f32
}

/// The per-pair losses `mean((G_s − G_t)²)` over consecutive maps.
///
/// # Shapes
/// - `student[i]`, `teacher[i]`: `[batch, c_i, h_i, w_i]`, equal channels pairwise; output: one
///   `[1]` loss per consecutive pair
pub fn fsp_losses(student: &[Tensor<4>], teacher: &[Tensor<4>]) -> Vec<Tensor<1>> {
    let gs = student
        .windows(2)
        .map(|p| fsp_matrix(p[0].clone(), p[1].clone()));
    let gt = teacher
        .windows(2)
        .map(|p| fsp_matrix(p[0].clone(), p[1].clone()));
    gs.zip(gt)
        .map(|(s, t)| (s - t).powi_scalar(2).mean())
        .collect()
}

/// Hyper-parameters of FSP. Default: RepDistiller (`-b 50`, every map).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FspConfig {
    /// Weight of the term (β, default 50).
    pub beta: f64,
    /// The student maps whose consecutive pairs form the flow (default: all).
    pub student_maps: Option<Vec<i64>>,
    /// The teacher maps, as many as the student's (default: all).
    pub teacher_maps: Option<Vec<i64>>,
}

impl Default for FspConfig {
    fn default() -> Self {
        Self {
            beta: 50.0,
            student_maps: None,
            teacher_maps: None,
        }
    }
}

fn resolve(list: Option<&Vec<i64>>, shapes: &TapShapes, side: &str) -> Result<Vec<usize>, String> {
    match list {
        Some(l) => l.iter().map(|&i| shapes.map(i, side)).collect(),
        None => Ok((0..shapes.maps.len()).collect()),
    }
}

impl FspConfig {
    /// Resolves and checks the maps.
    ///
    /// # Errors
    /// A tap does not exist, fewer than two maps, unequal counts, or a channel mismatch.
    pub fn init(&self, student: &TapShapes, teacher: &TapShapes) -> Result<Fsp, String> {
        let s = resolve(self.student_maps.as_ref(), student, "student")?;
        let t = resolve(self.teacher_maps.as_ref(), teacher, "teacher")?;
        if s.len() != t.len() || s.len() < 2 {
            return Err(format!(
                "fsp needs the same number (at least 2) of student and teacher maps, got {} and {}",
                s.len(),
                t.len()
            ));
        }
        for (&i, &j) in s.iter().zip(&t) {
            if student.maps[i][0] != teacher.maps[j][0] {
                return Err(format!(
                    "fsp needs equal channel counts: student map {i} has {} channels, teacher map {j} \
                     has {} (student maps: {}; teacher maps: {})",
                    student.maps[i][0],
                    teacher.maps[j][0],
                    student.describe(),
                    teacher.describe()
                ));
            }
        }
        Ok(Fsp {
            student_maps: s,
            teacher_maps: t,
            weight: self.beta as f32,
        })
    }
}

/// Flow of solution procedure (no trainable parameters).
#[derive(Module, Debug)]
pub struct Fsp {
    #[module(skip)]
    student_maps: Vec<usize>,
    #[module(skip)]
    teacher_maps: Vec<usize>,
    #[module(skip)]
    weight: f32,
}

impl Distiller for Fsp {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        let pick = |out: &Output, idx: &[usize]| -> Vec<Tensor<4>> {
            idx.iter().map(|&i| out.feature_maps[i].clone()).collect()
        };
        let losses = fsp_losses(
            &pick(student, &self.student_maps),
            &pick(teacher, &self.teacher_maps),
        );
        super::sum_terms("fsp", self.weight, losses.into_iter())
    }
}
