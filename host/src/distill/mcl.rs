//! "Mutual Contrastive Learning for Visual Representation Learning", Yang, An, Cai and Xu,
//! AAAI 2022: the supervised contrastive losses a cohort of peer networks trains with — vanilla
//! (within one network) and interactive (across networks), each with its soft (KL-mimicry) twin.
//!
//! Golden vectors: `tests/golden/losses/mcl.json`, winycg/MCL `losses/cifar_sup_mcl_loss.py`
//! (`SupMCL`). The loss is what online training of several peers optimises; it is not a
//! teacher→student [`Distiller`](super::Distiller).

use burn::prelude::*;

use super::functional::{l2_normalize_unguarded, softened_kl};

/// The four MCL terms (unweighted), each `[1]`.
#[derive(Debug, Clone)]
pub struct MclTerms {
    /// Vanilla contrastive loss, summed over networks.
    pub vcl: Tensor<1>,
    /// Soft vanilla contrastive loss (KL between networks' intra-network similarity rows).
    pub soft_vcl: Tensor<1>,
    /// Interactive contrastive loss, both directions of every pair.
    pub icl: Tensor<1>,
    /// Soft interactive contrastive loss.
    pub soft_icl: Tensor<1>,
}

/// SupCon-style loss of one logit matrix: mean over anchors of the mean, over same-class other
/// samples, of `−log softmax` (the diagonal excluded from the denominator).
fn supervised_contrast(
    logits: Tensor<2>,
    positives: Tensor<2>,
    off_diagonal: Tensor<2>,
) -> Tensor<1> {
    let denom = (logits.clone().exp() * off_diagonal).sum_dim(1).log();
    let log_prob = logits - denom;
    let per_anchor = (positives.clone() * log_prob).sum_dim(1) / positives.sum_dim(1);
    per_anchor.mean().neg()
}

/// The MCL terms for the raw projection-head outputs of every network (L2-normalised here, as the
/// reference's `Embed` does) and the batch labels.
///
/// Every sample needs another sample of its class in the batch (MCL's batch sampler guarantees it);
/// otherwise its positive set is empty and the loss is NaN, which the trainer reports.
///
/// # Shapes
/// - `embeddings[i]`: `[batch, dim]`; `labels`: `[batch]`
pub fn mcl_losses(
    embeddings: &[Tensor<2>],
    labels: Tensor<1, Int>,
    tau: f32,
    kd_temperature: f32,
) -> MclTerms {
    let v: Vec<Tensor<2>> = embeddings
        .iter()
        .map(|e| l2_normalize_unguarded(e.clone(), 1))
        .collect();
    let device = v.first().map(|t| t.device()).unwrap_or_default();
    let [b] = labels.dims();
    let labels = labels.to_device(&device);
    let same = labels
        .clone()
        .reshape([b, 1])
        .equal(labels.reshape([1, b]))
        .float();
    let eye = Tensor::<2>::eye(b, &device);
    let positives = same - eye.clone();
    let off_diagonal = eye.neg() + 1.0;
    let zero = || Tensor::<1>::zeros([1], &device);
    let sim = |a: &Tensor<2>, c: &Tensor<2>| a.clone().matmul(c.clone().transpose()) / tau;

    let (mut icl, mut soft_icl) = (zero(), zero());
    for i in 0..v.len() {
        for j in i + 1..v.len() {
            let ij = sim(&v[i], &v[j]);
            let ji = sim(&v[j], &v[i]);
            soft_icl = soft_icl
                + softened_kl(ij.clone(), ji.clone().detach(), kd_temperature)
                + softened_kl(ji.clone(), ij.clone().detach(), kd_temperature);
            icl = icl
                + supervised_contrast(ij, positives.clone(), off_diagonal.clone())
                + supervised_contrast(ji, positives.clone(), off_diagonal.clone());
        }
    }
    let intra: Vec<Tensor<2>> = v.iter().map(|x| sim(x, x)).collect();
    let (mut vcl, mut soft_vcl) = (zero(), zero());
    for (i, li) in intra.iter().enumerate() {
        for (j, lj) in intra.iter().enumerate() {
            if i != j {
                soft_vcl = soft_vcl + softened_kl(li.clone(), lj.clone().detach(), kd_temperature);
            }
        }
        vcl = vcl + supervised_contrast(li.clone(), positives.clone(), off_diagonal.clone());
    }
    MclTerms {
        vcl,
        soft_vcl,
        icl,
        soft_icl,
    }
}
