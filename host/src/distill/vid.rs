//! "Variational Information Distillation for Knowledge Transfer", Ahn et al., CVPR 2019: a
//! Gaussian `q(t | s)` with a learned mean (a 1×1-conv regressor of the student map) and a learned
//! per-channel variance; the loss is the negative log-likelihood of the teacher map under it.
//!
//! Golden vectors: `tests/golden/losses/vid.json`, RepDistiller `distiller_zoo/VID.py`
//! (`VIDLoss`, `init_pred_var = 5`, `eps = 1e-5`).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::activation::{relu, softplus};
use serde::{Deserialize, Serialize};

use super::functional::pool_to_common_size;
use super::taps::{MapPairs, TapShapes};
use super::{sum_terms, Distiller, LossTerm, StepContext};
use crate::models::Output;

const EPS: f64 = 1e-5;

/// Hyper-parameters of VID. Defaults: RepDistiller (`-b 1`, every stage output, initial variance
/// 5, middle width = teacher channels).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VidConfig {
    /// Weight of the term (β, default 1).
    pub beta: f64,
    /// Initial predicted variance (default 5).
    pub init_pred_var: f64,
    /// `[student, teacher]` map pairs (default: every positional pair).
    pub pairs: Option<MapPairs>,
}

impl Default for VidConfig {
    fn default() -> Self {
        Self {
            beta: 1.0,
            init_pred_var: 5.0,
            pairs: None,
        }
    }
}

impl VidConfig {
    /// Builds one regressor and variance per pair.
    ///
    /// # Errors
    /// A tap does not exist, or the initial variance is not above `1e-5`.
    pub fn init(
        &self,
        student: &TapShapes,
        teacher: &TapShapes,
        device: &Device,
    ) -> Result<Vid, String> {
        if !(self.init_pred_var.is_finite() && self.init_pred_var > EPS) {
            return Err(format!(
                "vid.init_pred_var must be > {EPS}, got {}",
                self.init_pred_var
            ));
        }
        let pairs = MapPairs::resolve(self.pairs.as_ref(), student, teacher)?;
        let heads = pairs
            .iter()
            .map(|&(s, t)| {
                let (cs, ct) = (student.maps[s][0], teacher.maps[t][0]);
                VidHead::new(cs, ct, ct, self.init_pred_var, device)
            })
            .collect();
        Ok(Vid {
            heads,
            pairs,
            weight: self.beta as f32,
        })
    }
}

/// One layer pair's regressor (`μ(s)`) and log-variance parameter.
#[derive(Module, Debug)]
pub struct VidHead {
    /// `conv1×1 (C_s→mid) → ReLU → conv1×1 (mid→mid) → ReLU → conv1×1 (mid→C_t)`, no bias.
    pub regressor: [Conv2d; 3],
    /// `α_c`, with `σ²_c = softplus(α_c) + 1e-5`.
    pub log_scale: Param<Tensor<1>>,
}

impl VidHead {
    /// A head with fresh regressor weights and the variance initialised to `init_var`.
    pub fn new(cs: usize, mid: usize, ct: usize, init_var: f64, device: &Device) -> Self {
        let conv = |i, o| {
            Conv2dConfig::new([i, o], [1, 1])
                .with_bias(false)
                .init(device)
        };
        // softplus(α) + eps = init_var  ⇒  α = ln(exp(init_var − eps) − 1).
        let alpha = ((init_var - EPS).exp() - 1.0).ln();
        Self {
            regressor: [conv(cs, mid), conv(mid, mid), conv(mid, ct)],
            log_scale: Param::from_tensor(Tensor::full([ct], alpha, device)),
        }
    }

    /// `mean ½ ((t − μ(s))² / σ² + log σ²)`, the larger map pooled first.
    ///
    /// # Shapes
    /// - `student`: `[batch, C_s, h, w]`, `teacher`: `[batch, C_t, h', w']`; output `[1]`
    pub fn loss(&self, student: Tensor<4>, teacher: Tensor<4>) -> Tensor<1> {
        let (s, t) = pool_to_common_size(student, teacher);
        let [r0, r1, r2] = &self.regressor;
        let mean = r2.forward(relu(r1.forward(relu(r0.forward(s)))));
        let [c] = self.log_scale.dims();
        let var = (softplus(self.log_scale.val(), 1.0) + EPS).reshape([1, c, 1, 1]);
        (((mean - t).powi_scalar(2) / var.clone() + var.log()) * 0.5).mean()
    }
}

/// Variational information distillation with its trainable heads.
#[derive(Module, Debug)]
pub struct Vid {
    heads: Vec<VidHead>,
    #[module(skip)]
    pairs: Vec<(usize, usize)>,
    #[module(skip)]
    weight: f32,
}

impl Distiller for Vid {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        sum_terms(
            "vid",
            self.weight,
            self.heads.iter().zip(&self.pairs).map(|(h, &(s, t))| {
                h.loss(
                    student.feature_maps[s].clone(),
                    teacher.feature_maps[t].clone(),
                )
            }),
        )
    }
}
