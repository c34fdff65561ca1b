//! "FitNets: Hints for Thin Deep Nets", Romero et al., ICLR 2015, in RepDistiller's single-stage
//! form: `β · MSE(r(student hint), teacher hint)` with a trainable connector `r`.
//!
//! Golden vectors: `tests/golden/losses/fitnet.json`, RepDistiller `distiller_zoo/FitNet.py`
//! (`HintLoss`). The connector follows RepDistiller's `ConvReg` (`models/util.py`): a 3×3 stride-2
//! conv when the student map is twice the teacher's size, a 4×4 stride-2 transposed conv when it
//! is half, otherwise a valid conv of kernel `1 + H_s − H_t`; then BatchNorm and ReLU.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::taps::{MapPairs, TapShapes};
use super::{sum_terms, Distiller, LossTerm, StepContext};
use crate::models::Output;

/// `mean((student − teacher)²)`: the hint loss (RepDistiller `HintLoss`, `nn.MSELoss()`).
///
/// # Shapes
/// - `student`, `teacher`: the same shape; output `[1]`
pub fn hint_loss(student: Tensor<4>, teacher: Tensor<4>) -> Tensor<1> {
    (student - teacher).powi_scalar(2).mean()
}

/// Hyper-parameters of FitNets. Defaults: RepDistiller (`-b 100`, `--hint_layer 2`, i.e. the
/// second of three stage outputs; here the middle map of both models).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitnetConfig {
    /// Weight of the hint term (β, default 100).
    pub beta: f64,
    /// The `[student, teacher]` feature maps to match (default: the middle map of each; with
    /// `hints` set in `[distill]`, every hint layer, paired with the deepest student maps).
    pub pairs: Option<MapPairs>,
}

impl Default for FitnetConfig {
    fn default() -> Self {
        Self {
            beta: 100.0,
            pairs: None,
        }
    }
}

impl FitnetConfig {
    /// Builds one connector per pair.
    ///
    /// # Errors
    /// A tap does not exist, or the student map is smaller than the teacher's (other than
    /// exactly half), which `ConvReg` cannot map.
    pub fn init(
        &self,
        student: &TapShapes,
        teacher: &TapShapes,
        hints: bool,
        device: &Device,
    ) -> Result<Fitnet, String> {
        let default_pair = MapPairs::single(
            (student.maps.len() / 2) as i64,
            (teacher.maps.len() / 2) as i64,
        );
        // With hint layers, every hint is a pair (deepest student maps to deepest hints).
        let pairs = match (&self.pairs, hints) {
            (Some(p), _) => MapPairs::resolve(Some(p), student, teacher)?,
            (None, true) => MapPairs::resolve(None, student, teacher)?,
            (None, false) => MapPairs::resolve(Some(&default_pair), student, teacher)?,
        };
        let connectors = pairs
            .iter()
            .map(|&(s, t)| ConvReg::new(student.maps[s], teacher.maps[t], device))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Fitnet {
            connectors,
            pairs,
            weight: self.beta as f32,
        })
    }
}

/// The connector from a student map to a teacher map's shape (RepDistiller `ConvReg`).
#[derive(Module, Debug)]
pub struct ConvReg {
    conv: Connector,
    bn: BatchNorm,
}

/// The spatial mapping of a [`ConvReg`].
#[derive(Module, Debug)]
pub enum Connector {
    /// Same size, twice the size (stride 2) or a valid conv that shrinks the map.
    Conv(Conv2d),
    /// Half the size: 4×4 transposed conv, stride 2.
    Up(ConvTranspose2d),
}

impl ConvReg {
    /// A connector from `[c, h, w]` maps to `[c_t, h_t, w_t]` maps.
    ///
    /// # Errors
    /// No `ConvReg` rule maps these sizes.
    pub fn new(s: [usize; 3], t: [usize; 3], device: &Device) -> Result<Self, String> {
        let ([cs, hs, ws], [ct, ht, wt]) = (s, t);
        let conv = if hs == 2 * ht && ws == 2 * wt {
            Connector::Conv(
                Conv2dConfig::new([cs, ct], [3, 3])
                    .with_stride([2, 2])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
            )
        } else if 2 * hs == ht && 2 * ws == wt {
            Connector::Up(
                ConvTranspose2dConfig::new([cs, ct], [4, 4])
                    .with_stride([2, 2])
                    .with_padding([1, 1])
                    .init(device),
            )
        } else if hs >= ht && ws >= wt {
            Connector::Conv(Conv2dConfig::new([cs, ct], [1 + hs - ht, 1 + ws - wt]).init(device))
        } else {
            return Err(format!(
                "FitNets cannot connect a {cs}×{hs}×{ws} student map to a {ct}×{ht}×{wt} teacher map \
                 (the student map must be at least as large, or exactly half)"
            ));
        };
        Ok(Self {
            conv,
            bn: BatchNormConfig::new(ct).init(device),
        })
    }

    /// `relu(bn(conv(x)))`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let y = match &self.conv {
            Connector::Conv(c) => c.forward(x),
            Connector::Up(c) => c.forward(x),
        };
        relu(self.bn.forward(y))
    }
}

/// FitNets with its trainable connectors.
#[derive(Module, Debug)]
pub struct Fitnet {
    connectors: Vec<ConvReg>,
    #[module(skip)]
    pairs: Vec<(usize, usize)>,
    #[module(skip)]
    weight: f32,
}

impl Distiller for Fitnet {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        sum_terms(
            "fitnet",
            self.weight,
            self.connectors
                .iter()
                .zip(&self.pairs)
                .map(|(reg, &(s, t))| {
                    hint_loss(
                        reg.forward(student.feature_maps[s].clone()),
                        teacher.feature_maps[t].clone(),
                    )
                }),
        )
    }
}
