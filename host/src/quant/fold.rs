//! BatchNorm folding: `conv → BN` becomes one convolution with per-channel scaled weights and a bias.

use burn::nn::conv::Conv2d;
use burn::nn::BatchNorm;
use burn::prelude::*;

/// Folds `bn` (in inference form, with its running statistics) into `conv`.
///
/// Returns `(weight, bias)` with `weight[c] = w[c] · γ_c / √(σ²_c + ε)` and
/// `bias[c] = β_c + (b_c − μ_c) · γ_c / √(σ²_c + ε)`. Gradients flow to `w`, `γ` and `β`, so the
/// same function serves export and quantization-aware training. Without BatchNorm it returns the
/// convolution's own weight and bias (zeros when it has none).
pub fn fold_batch_norm(conv: &Conv2d, bn: Option<&BatchNorm>) -> (Tensor<4>, Tensor<1>) {
    let w = conv.weight.val();
    let [out, ..] = w.dims();
    let device = w.device();
    let b = match &conv.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([out], &device),
    };
    let Some(bn) = bn else {
        return (w, b);
    };
    let factor = bn.gamma.val() / (bn.running_var.value() + bn.epsilon).sqrt();
    let w = w * factor.clone().reshape([out, 1, 1, 1]);
    let bias = bn.beta.val() + (b - bn.running_mean.value()) * factor;
    (w, bias)
}
