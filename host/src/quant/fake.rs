//! Fake quantization: round to the int8 grid in the forward pass, pass gradients straight through
//! (clipped to the representable range) in the backward pass.

use burn::prelude::*;

use super::QuantParams;

/// Fake-quantizes an activation tensor with per-tensor affine parameters.
///
/// Forward: `x̂ = s · (clamp(round(x / s) + z, −128, 127) − z)`. Backward: the clipped
/// straight-through estimator, `∂x̂/∂x = 1` inside the representable range and 0 outside.
pub fn fake_quant_activation<const D: usize>(x: Tensor<D>, q: QuantParams) -> Tensor<D> {
    let s = q.scale as f64;
    let z = q.zero_point as f64;
    let lo = (-128.0 - z) * s;
    let hi = (127.0 - z) * s;
    let clipped = x.clamp(lo, hi);
    // Inside [lo, hi], round(x/s) + z already lies in [-128, 127]: the zero point cancels.
    let rounded = (clipped.clone() / s).round() * s;
    clipped.clone() + (rounded - clipped).detach()
}

/// Per-output-channel symmetric scales `max|w_c| / 127` of a weight tensor `[out, …]`.
///
/// An all-zero channel gets scale 1 so that it quantizes to zeros without dividing by zero.
pub fn weight_scales(w: Tensor<4>) -> Tensor<4> {
    let amax = w.abs().max_dim(3).max_dim(2).max_dim(1);
    let zero = amax.clone().equal_elem(0.0);
    amax.mask_fill(zero, 127.0) / 127.0
}

/// Fake-quantizes weights `[out, in, kh, kw]` symmetrically per output channel to `[−127, 127]`,
/// with a straight-through gradient.
pub fn fake_quant_weight_per_channel(w: Tensor<4>) -> Tensor<4> {
    let scales = weight_scales(w.clone().detach());
    let q = (w.clone() / scales.clone()).round().clamp(-127.0, 127.0) * scales;
    w.clone() + (q - w).detach()
}
