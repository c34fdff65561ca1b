//! Tensor functions several methods share, each written once so every method reduces, normalises
//! and pools exactly as the reference implementations do (PyTorch's conventions).

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::module::adaptive_avg_pool2d;

/// `x / max(‖x‖₂, 1e-12)` along `dim`, PyTorch's `F.normalize`.
///
/// The norm is taken as `sqrt(max(Σx², 1e-24))`, the same value, so that an all-zero row (RKD's
/// self-differences) gets a zero gradient instead of `0 · ∞`.
pub fn l2_normalize<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let norm = x
        .clone()
        .powi_scalar(2)
        .sum_dim(dim)
        .clamp_min(1e-24)
        .sqrt();
    x / norm
}

/// `x / ‖x‖₂` along `dim` with no guard, RepDistiller's and MCL's `Normalize` layer (embedding heads;
/// a zero row is as undefined there as here).
pub fn l2_normalize_unguarded<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let norm = x.clone().powi_scalar(2).sum_dim(dim).sqrt();
    x / norm
}

/// Pools the spatially larger of two maps to the smaller one's height and width with adaptive
/// average pooling, as RepDistiller's AT, NST, VID and FSP do before comparing maps.
///
/// # Shapes
/// - `a`, `b`: `[batch, channels, h, w]` (channels may differ)
pub fn pool_to_common_size(a: Tensor<4>, b: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
    let [_, _, ha, wa] = a.dims();
    let [_, _, hb, wb] = b.dims();
    // Per axis, so that 1-D maps ([c, 1, steps]) pool along time only.
    let common = [ha.min(hb), wa.min(wb)];
    let fit = |t: Tensor<4>, h, w| {
        if [h, w] == common {
            t
        } else {
            adaptive_avg_pool2d(t, common)
        }
    };
    (fit(a, ha, wa), fit(b, hb, wb))
}

/// `Σ_b Σ_c p (log p − log q) / B`: KL divergence with PyTorch's `batchmean` reduction, from
/// log-probabilities (so that a probability that underflows to zero contributes exactly zero).
///
/// # Shapes
/// - `log_p` (target), `log_q` (prediction): `[batch, classes]`
/// - output: `[1]`
pub fn kl_batchmean(log_p: Tensor<2>, log_q: Tensor<2>) -> Tensor<1> {
    let [batch, _] = log_p.dims();
    let p = log_p.clone().exp();
    (p * (log_p - log_q)).sum() / batch as f32
}

/// `T² · KL(softmax(t/T) ‖ softmax(s/T))` with `batchmean` reduction: Hinton's softened-logit
/// term, shared by KD, DML and MCL's soft contrastive losses.
///
/// # Shapes
/// - `student`, `teacher`: `[batch, classes]`
/// - output: `[1]`
pub fn softened_kl(student: Tensor<2>, teacher: Tensor<2>, temperature: f32) -> Tensor<1> {
    let log_q = log_softmax(student / temperature, 1);
    let log_p = log_softmax(teacher / temperature, 1);
    kl_batchmean(log_p, log_q) * (temperature * temperature)
}

/// The per-sample terms of [`softened_kl`] before its batch mean:
/// `T² · Σ_c softmax(t/T) (log softmax(t/T) − log softmax(s/T))`, one per row (what L-MCL weights
/// sample by sample).
///
/// # Shapes
/// - `student`, `teacher`: `[batch, classes]`
/// - output: `[batch, 1]`
pub fn softened_kl_rows(student: Tensor<2>, teacher: Tensor<2>, temperature: f32) -> Tensor<2> {
    let log_q = log_softmax(student / temperature, 1);
    let log_p = log_softmax(teacher / temperature, 1);
    (log_p.clone().exp() * (log_p - log_q)).sum_dim(1) * (temperature * temperature)
}

/// Pairwise Euclidean distances with a zero diagonal, RKD's `pdist`:
/// `sqrt(max(‖a‖² + ‖b‖² − 2ab, 1e-12))` off the diagonal.
///
/// # Shapes
/// - `e`: `[batch, features]`; output: `[batch, batch]`
pub fn pairwise_distances(e: Tensor<2>) -> Tensor<2> {
    let [n, _] = e.dims();
    let device = e.device();
    let sq = e.clone().powi_scalar(2).sum_dim(1); // [n, 1]
    let prod = e.clone().matmul(e.transpose());
    let d = (sq.clone() + sq.transpose() - prod * 2.0)
        .clamp_min(1e-12)
        .sqrt();
    let off_diagonal = Tensor::<2>::ones([n, n], &device) - Tensor::<2>::eye(n, &device);
    d * off_diagonal
}

/// Flattens everything after the batch dimension.
pub fn flatten_batch(x: Tensor<4>) -> Tensor<2> {
    x.flatten::<2>(1, 3)
}

/// PyTorch's `smooth_l1_loss` with `beta = 1` and mean reduction.
pub fn smooth_l1(a: Tensor<2>, b: Tensor<2>) -> Tensor<1> {
    let d = (a - b).abs();
    let quadratic = d.clone().clamp_max(1.0);
    // |d| < 1: d²/2; else |d| − 1/2. Written branch-free: q(|d| − q/2) with q = min(|d|, 1).
    (quadratic.clone() * (d - quadratic * 0.5)).mean()
}
