//! CMIM, "Network Binarization via Contrastive Learning" (Shang et al., ECCV 2022): maximise the
//! mutual information between a binary network's activations and a float network's activations
//! of the same input, with an NCE objective over projection heads and memory banks of negatives.
//!
//! The reference code (`42Shawn/CMIM`, `contrastive_alignment/criterion.py`) adapts CRD's loss: a
//! linear embedding to 128-d and L2 normalisation on each side, one momentum memory bank per side
//! over the training set, N negatives per anchor, symmetric NCE. Its "float activations" are the
//! pooled features of a separately trained float twin, so here they are the penultimate features
//! (embeddings) of the run's teacher, and the term is CRD's forward ([`super::crd::Crd`], checked
//! against RepDistiller's golden vectors) with CMIM's defaults. It is an extra term,
//! `[distill.contrast]`, that stacks on any recipe: CE, KD, any zoo method.
//!
//! ```toml
//! [distill]
//! teacher = "runs/teacher"
//! [distill.contrast]     # CMIM with its defaults: β = 3.2, 4096 negatives, τ = 0.1
//! ```

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::crd::{Crd, CrdConfig};
use super::taps::TapShapes;
use super::{Distiller, LossTerm, StepContext};
use crate::data::derive_seed;
use crate::models::Output;

/// Generator stream of CMIM's negatives, apart from a CRD method's in the same run.
const STREAM_CMIM: u64 = 0x43_4d_49_4d; // "CMIM"

/// `[distill.contrast]`. Defaults: CMIM's CIFAR-100 code (`--alpha 3.2`, `feat_dim 128`,
/// `nce_k 4096`, `nce_t 0.1`, `nce_m 0.5`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CmimConfig {
    /// Weight of the term (default 3.2).
    pub beta: f64,
    /// Width of the embeddings and banks (default 128).
    pub feat_dim: usize,
    /// Negatives per anchor (default 4096).
    pub nce_k: usize,
    /// Temperature (default 0.1).
    pub nce_t: f64,
    /// Momentum of the bank update (default 0.5).
    pub nce_m: f64,
}

impl Default for CmimConfig {
    fn default() -> Self {
        Self {
            beta: 3.2,
            feat_dim: 128,
            nce_k: 4096,
            nce_t: 0.1,
            nce_m: 0.5,
        }
    }
}

impl CmimConfig {
    /// Builds the heads and banks (see [`CrdConfig::init`]).
    ///
    /// # Errors
    /// As [`CrdConfig::init`], with `contrast` in place of `crd` in the message.
    pub fn init(
        &self,
        student: &TapShapes,
        teacher: &TapShapes,
        labels: &[u8],
        seed: u64,
        device: &Device,
    ) -> Result<Cmim, String> {
        if !self.beta.is_finite() {
            return Err(format!("contrast.beta must be finite, got {}", self.beta));
        }
        let crd = CrdConfig {
            beta: self.beta,
            feat_dim: self.feat_dim,
            nce_k: self.nce_k,
            nce_t: self.nce_t,
            nce_m: self.nce_m,
        };
        crd.init(
            student,
            teacher,
            labels,
            derive_seed(seed, 0, STREAM_CMIM),
            device,
        )
        .map(|crd| Cmim { crd })
        .map_err(|e| e.replace("crd.", "contrast."))
    }
}

/// The CMIM term: CRD's contrastive objective between the binary student's and the float
/// network's embeddings.
#[derive(Module, Debug)]
pub struct Cmim {
    /// Heads, banks and negatives.
    pub crd: Crd,
}

impl Distiller for Cmim {
    fn loss(&self, student: &Output, teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        self.crd
            .loss(student, teacher, ctx)
            .into_iter()
            .map(|t| LossTerm {
                name: "cmim",
                value: t.value,
            })
            .collect()
    }
}
