//! "Contrastive Representation Distillation", Tian, Krishnan and Isola, ICLR 2020: embedding heads
//! on both penultimate representations, two momentum memory banks over the whole training set, and
//! an NCE loss that tells each student embedding's teacher counterpart (same sample) from K teacher
//! embeddings of other samples, and the other way round.
//!
//! Golden vectors: `tests/golden/losses/crd.json`, RepDistiller `crd/criterion.py` (`CRDLoss`)
//! and `crd/memory.py` (`ContrastMemory`): loss, gradients of the student features and of both
//! heads, both banks after the momentum update, and the normalisation constants.
//!
//! Negatives are drawn as RepDistiller's `CIFAR100InstanceSample` does in `exact` mode: K dataset
//! indices from other classes only, without replacement. On a set with a single class (a
//! regression set, where every label is 0), any other sample is a negative: the instance
//! discrimination CRD's objective states (`N` other data points). The draw is a function of the run seed and
//! the optimizer step, so a resumed run draws what the uninterrupted run would have.

use std::sync::Arc;

use burn::module::RunningState;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::IndexingUpdateOp;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use super::functional::l2_normalize_unguarded;
use super::taps::TapShapes;
use super::{Distiller, LossTerm, StepContext};
use crate::data::derive_seed;
use crate::models::Output;

/// RepDistiller's ε inside the NCE denominators.
const NCE_EPS: f32 = 1e-7;
/// Generator stream of the negatives (see [`derive_seed`]).
const STREAM_NEGATIVES: u64 = 0x43_52_44; // "CRD"

/// Hyper-parameters of CRD. Defaults: RepDistiller (`-b 0.8`, `--feat_dim 128`, `--nce_k 16384`,
/// `--nce_t 0.07`, `--nce_m 0.5`, `--mode exact`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CrdConfig {
    /// Weight of the term (β, default 0.8).
    pub beta: f64,
    /// Width of the embeddings and of the memory banks (default 128).
    pub feat_dim: usize,
    /// Negatives per sample, K (default 16384).
    pub nce_k: usize,
    /// Temperature τ (default 0.07).
    pub nce_t: f64,
    /// Momentum of the memory-bank update (default 0.5).
    pub nce_m: f64,
}

impl Default for CrdConfig {
    fn default() -> Self {
        Self {
            beta: 0.8,
            feat_dim: 128,
            nce_k: 16384,
            nce_t: 0.07,
            nce_m: 0.5,
        }
    }
}

impl CrdConfig {
    /// Builds the heads, the two banks (one row per training sample, uniform in `±√(3/d)`) and the
    /// negative sampler over `labels`, the training set's labels in dataset order.
    ///
    /// # Errors
    /// A zero width, a non-positive temperature, a momentum outside `[0, 1)`, or more negatives
    /// than some class has samples of other classes.
    pub fn init(
        &self,
        student: &TapShapes,
        teacher: &TapShapes,
        labels: &[u8],
        seed: u64,
        device: &Device,
    ) -> Result<Crd, String> {
        if self.feat_dim == 0 || self.nce_k == 0 {
            return Err("crd.feat_dim and crd.nce_k must be at least 1".into());
        }
        if !(self.nce_t.is_finite() && self.nce_t > 0.0) {
            return Err(format!("crd.nce_t must be > 0, got {}", self.nce_t));
        }
        if !(0.0..1.0).contains(&self.nce_m) {
            return Err(format!("crd.nce_m must be in [0, 1), got {}", self.nce_m));
        }
        let negatives = NegativeSampler::new(labels);
        if let Some(pool) = negatives.smallest_pool() {
            if pool < self.nce_k {
                return Err(format!(
                    "crd.nce_k = {} negatives, but some sample has only {pool} negatives (samples \
                     of other classes, or of any other sample in a one-class set) in the \
                     {}-sample training set",
                    self.nce_k,
                    labels.len()
                ));
            }
        }
        let n = labels.len();
        let stdv = 1.0 / (self.feat_dim as f64 / 3.0).sqrt();
        let bank = || {
            Tensor::<2>::random(
                [n, self.feat_dim],
                burn::tensor::Distribution::Uniform(-stdv, stdv),
                device,
            )
        };
        Ok(Crd {
            embed_s: LinearConfig::new(student.embedding, self.feat_dim).init(device),
            embed_t: LinearConfig::new(teacher.embedding, self.feat_dim).init(device),
            memory_s: RunningState::new(bank()),
            memory_t: RunningState::new(bank()),
            z: RunningState::new(Tensor::full([2], -1.0, device)),
            negatives: Arc::new(negatives),
            settings: CrdSettings {
                weight: self.beta as f32,
                nce_k: self.nce_k,
                nce_t: self.nce_t as f32,
                nce_m: self.nce_m as f32,
                seed,
            },
        })
    }
}

/// What a [`Crd`] needs besides its tensors.
#[derive(Debug, Clone, Copy)]
pub struct CrdSettings {
    /// Weight of the term (β).
    pub weight: f32,
    /// Negatives per sample.
    pub nce_k: usize,
    /// Temperature.
    pub nce_t: f32,
    /// Memory momentum.
    pub nce_m: f32,
    /// Run seed (for the negatives).
    pub seed: u64,
}

/// Class-disjoint negative sampling over dataset indices.
#[derive(Debug, Default)]
pub struct NegativeSampler {
    labels: Vec<u8>,
    /// For each class, the dataset indices of every sample of another class (empty with a
    /// single class: then every other sample is a negative).
    others: Vec<Vec<u32>>,
}

impl NegativeSampler {
    /// Indexes `labels`.
    pub fn new(labels: &[u8]) -> Self {
        let classes = labels
            .iter()
            .map(|&l| usize::from(l) + 1)
            .max()
            .unwrap_or(0);
        if classes <= 1 {
            return Self {
                labels: labels.to_vec(),
                others: Vec::new(),
            };
        }
        let others = (0..classes)
            .map(|c| {
                (0..labels.len() as u32)
                    .filter(|&i| usize::from(labels[i as usize]) != c)
                    .collect()
            })
            .collect();
        Self {
            labels: labels.to_vec(),
            others,
        }
    }

    /// The smallest pool of negatives of any class present.
    fn smallest_pool(&self) -> Option<usize> {
        if self.others.is_empty() {
            return self.labels.len().checked_sub(1);
        }
        self.labels
            .iter()
            .map(|&l| self.others[usize::from(l)].len())
            .min()
    }

    /// `[positive, K negatives]` for every sample of the batch, row-major `[batch, K + 1]`.
    pub fn draw(&self, indices: &[usize], k: usize, rng: &mut StdRng) -> Vec<i64> {
        let mut out = Vec::with_capacity(indices.len() * (k + 1));
        for &i in indices {
            out.push(i as i64);
            if self.others.is_empty() {
                // Every sample but `i`: draw from n − 1 and step over `i`.
                for p in rand::seq::index::sample(rng, self.labels.len() - 1, k) {
                    out.push((p + usize::from(p >= i)) as i64);
                }
                continue;
            }
            let pool = &self.others[usize::from(self.labels[i])];
            for p in rand::seq::index::sample(rng, pool.len(), k) {
                out.push(i64::from(pool[p]));
            }
        }
        out
    }
}

/// CRD: embedding heads, memory banks, normalisation constants and the negative sampler.
#[derive(Module, Debug)]
pub struct Crd {
    /// Student head: `Linear(d_s → feat_dim)`, then L2 normalisation.
    pub embed_s: Linear,
    /// Teacher head: `Linear(d_t → feat_dim)`, then L2 normalisation (trained too).
    pub embed_t: Linear,
    /// Bank of student embeddings, one row per training sample (RepDistiller `memory_v1`).
    pub memory_s: RunningState<Tensor<2>>,
    /// Bank of teacher embeddings (RepDistiller `memory_v2`).
    pub memory_t: RunningState<Tensor<2>>,
    /// `[Z_s, Z_t]`, negative until set from the first batch.
    pub z: RunningState<Tensor<1>>,
    #[module(skip)]
    negatives: Arc<NegativeSampler>,
    #[module(skip)]
    settings: CrdSettings,
}

/// RepDistiller's `ContrastLoss` on the normalised scores `[batch, K + 1]` (column 0 positive).
fn contrast_loss(x: Tensor<2>, n_data: usize) -> Tensor<1> {
    let [b, k1] = x.dims();
    let m_pn = (k1 - 1) as f32 / n_data as f32;
    let pos = x.clone().slice([0..b, 0..1]);
    let neg = x.slice([0..b, 1..k1]);
    let log_d1 = (pos.clone() / (pos + (m_pn + NCE_EPS))).log();
    let log_d0 = ((neg + (m_pn + NCE_EPS)).recip() * m_pn).log();
    (log_d1.sum() + log_d0.sum()).neg() / b as f32
}

impl Crd {
    /// Builds a CRD from explicit parts (the golden test sets the reference's weights and banks).
    pub fn from_parts(
        embed_s: Linear,
        embed_t: Linear,
        memory_s: Tensor<2>,
        memory_t: Tensor<2>,
        settings: CrdSettings,
    ) -> Self {
        let device = memory_s.device();
        Self {
            embed_s,
            embed_t,
            memory_s: RunningState::new(memory_s),
            memory_t: RunningState::new(memory_t),
            z: RunningState::new(Tensor::full([2], -1.0, &device)),
            negatives: Arc::new(NegativeSampler::default()),
            settings,
        }
    }

    /// The CRD loss (unweighted) for raw features, their dataset indices and the `[batch, K + 1]`
    /// contrast indices (column 0 = the sample itself); updates both banks and, on the first
    /// call, the constants.
    ///
    /// # Shapes
    /// - `f_s`: `[batch, d_s]`, `f_t`: `[batch, d_t]`, `idx`: `[batch]`, `contrast`:
    ///   `[batch, K + 1]`; output `[1]`
    pub fn forward(
        &self,
        f_s: Tensor<2>,
        f_t: Tensor<2>,
        idx: Tensor<1, Int>,
        contrast: Tensor<2, Int>,
    ) -> Tensor<1> {
        let v_s = l2_normalize_unguarded(self.embed_s.forward(f_s), 1);
        let v_t = l2_normalize_unguarded(self.embed_t.forward(f_t), 1);
        let [b, k1] = contrast.dims();
        let [n, d] = self.memory_s.value_sync().dims();
        let flat = contrast.reshape([b * k1]);
        let t = self.settings.nce_t;
        // Scores of each anchor against the other side's bank rows (no gradient into the banks).
        let score = |bank: Tensor<2>, anchor: Tensor<2>| -> Tensor<2> {
            let rows = bank.select(0, flat.clone()).reshape([b, k1, d]);
            (rows.matmul(anchor.reshape([b, d, 1])) / t)
                .exp()
                .reshape([b, k1])
        };
        let out_s = score(self.memory_t.value_sync(), v_s.clone());
        let out_t = score(self.memory_s.value_sync(), v_t.clone());

        let mut z = self
            .z
            .value_sync()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap_or_default();
        if z.len() == 2 && (z[0] < 0.0 || z[1] < 0.0) {
            if z[0] < 0.0 {
                z[0] = out_s.clone().detach().mean().into_scalar::<f32>() * n as f32;
            }
            if z[1] < 0.0 {
                z[1] = out_t.clone().detach().mean().into_scalar::<f32>() * n as f32;
            }
            self.z.update(Tensor::from_data(
                TensorData::new(z.clone(), [2]),
                &v_s.device(),
            ));
        }
        let (z_s, z_t) = (
            z.first().copied().unwrap_or(1.0),
            z.get(1).copied().unwrap_or(1.0),
        );
        let loss = contrast_loss(out_s / z_s, n) + contrast_loss(out_t / z_t, n);

        // Momentum update of the rows of this batch, after scoring (RepDistiller order).
        let m = self.settings.nce_m;
        let update = |bank: &RunningState<Tensor<2>>, v: Tensor<2>| {
            let old = bank.value_sync();
            let rows = old.clone().select(0, idx.clone());
            let new = l2_normalize_unguarded(rows.clone() * m + v.detach() * (1.0 - m), 1);
            bank.update(old.select_assign(0, idx.clone(), new - rows, IndexingUpdateOp::Add));
        };
        update(&self.memory_s, v_s);
        update(&self.memory_t, v_t);
        loss
    }

    /// Memory the two banks hold, in bytes.
    pub fn bank_bytes(&self) -> usize {
        let [n, d] = self.memory_s.value_sync().dims();
        2 * n * d * std::mem::size_of::<f32>()
    }
}

impl Distiller for Crd {
    fn loss(&self, student: &Output, teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        let device = student.embedding.device();
        let mut rng = StdRng::seed_from_u64(derive_seed(
            self.settings.seed,
            ctx.step as u64,
            STREAM_NEGATIVES,
        ));
        let b = ctx.indices.len();
        let k1 = self.settings.nce_k + 1;
        let contrast = self
            .negatives
            .draw(ctx.indices, self.settings.nce_k, &mut rng);
        let contrast = Tensor::<2, Int>::from_data(TensorData::new(contrast, [b, k1]), &device);
        let idx: Vec<i64> = ctx.indices.iter().map(|&i| i as i64).collect();
        let idx = Tensor::<1, Int>::from_data(TensorData::new(idx, [b]), &device);
        let value = self.forward(
            student.embedding.clone(),
            teacher.embedding.clone(),
            idx,
            contrast,
        ) * self.settings.weight;
        vec![LossTerm { name: "crd", value }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_class_negatives_are_every_other_sample() {
        let sampler = NegativeSampler::new(&[0; 6]);
        assert_eq!(sampler.smallest_pool(), Some(5));
        let mut rng = StdRng::seed_from_u64(3);
        let rows = sampler.draw(&[0, 3, 5], 5, &mut rng);
        for (r, &i) in rows.chunks(6).zip(&[0i64, 3, 5]) {
            assert_eq!(r[0], i, "the positive first");
            let mut neg = r[1..].to_vec();
            neg.sort_unstable();
            let want: Vec<i64> = (0..6).filter(|&j| j != i).collect();
            assert_eq!(neg, want, "all five others, each once");
        }
    }

    #[test]
    fn negatives_come_from_other_classes() {
        let sampler = NegativeSampler::new(&[0, 1, 0, 1, 2]);
        assert_eq!(sampler.smallest_pool(), Some(3));
        let mut rng = StdRng::seed_from_u64(3);
        let rows = sampler.draw(&[0, 4], 2, &mut rng);
        assert!(rows[1..3].iter().all(|&j| j == 1 || j == 3 || j == 4));
        assert!(rows[4..6].iter().all(|&j| j < 4));
    }
}
