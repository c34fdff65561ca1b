//! Calibration: observe the float student on a few batches and choose each activation's range.

use burn::prelude::*;

use super::{QuantParams, StudentQuant};
use crate::models::student::{Student, StudentLayer};

/// Affine int8 parameters covering `[min, max]` (widened to include 0, so that 0 — padding, ReLU's
/// floor — is exactly representable).
pub fn range_to_quant(min: f32, max: f32) -> QuantParams {
    let min = min.min(0.0);
    let max = max.max(0.0);
    let span = (max - min).max(1e-6);
    let scale = span / 255.0;
    let zero_point = (-128.0 - min / scale).round().clamp(-128.0, 127.0) as i8;
    QuantParams { scale, zero_point }
}

/// Observes `student` (in float mode) on `batches` and returns min/max-calibrated activation
/// quantization for its input and every layer. Pooling layers inherit their input's parameters,
/// as the device requires.
///
/// # Shapes
/// - each batch: `[batch, in_channels, h, w]`
pub fn calibrate(student: &Student, batches: impl IntoIterator<Item = Tensor<4>>) -> StudentQuant {
    let float = student.valid().with_quant(None);
    let mut ranges: Vec<(f32, f32)> = Vec::new();
    let mut branch_ranges: Vec<Option<(f32, f32)>> = Vec::new();
    for x in batches {
        let (outs, branches) = float.layer_and_branch_outputs(x.without_autodiff());
        if branch_ranges.is_empty() {
            branch_ranges = vec![None; branches.len()];
        }
        for (r, t) in branch_ranges.iter_mut().zip(branches) {
            if let Some(t) = t {
                let lo = t.clone().min().into_scalar::<f32>();
                let hi = t.max().into_scalar::<f32>();
                let (a, b) = r.unwrap_or((f32::INFINITY, f32::NEG_INFINITY));
                *r = Some((a.min(lo), b.max(hi)));
            }
        }
        if ranges.is_empty() {
            ranges = vec![(f32::INFINITY, f32::NEG_INFINITY); outs.len()];
        }
        for (r, t) in ranges.iter_mut().zip(outs) {
            let lo = t.clone().min().into_scalar::<f32>();
            let hi = t.max().into_scalar::<f32>();
            r.0 = r.0.min(lo);
            r.1 = r.1.max(hi);
        }
    }
    let finite = |(lo, hi): (f32, f32)| {
        if lo.is_finite() && hi.is_finite() {
            (lo, hi)
        } else {
            (0.0, 1.0)
        }
    };
    let input = {
        let (lo, hi) = finite(ranges.first().copied().unwrap_or((0.0, 1.0)));
        range_to_quant(lo, hi)
    };
    let mut layers = Vec::with_capacity(student.layers.len());
    let mut prev = input;
    for (i, layer) in student.layers.iter().enumerate() {
        let q = match layer {
            StudentLayer::MaxPool(_)
            | StudentLayer::AvgPool(_)
            | StudentLayer::GlobalAvgPool(_) => prev,
            StudentLayer::Conv(_)
            | StudentLayer::BinaryConv(_)
            | StudentLayer::BinaryDense(_)
            | StudentLayer::Dense(_) => {
                let (lo, hi) = finite(ranges.get(i + 1).copied().unwrap_or((0.0, 1.0)));
                range_to_quant(lo, hi)
            }
        };
        layers.push(q);
        prev = q;
    }
    let branches = branch_ranges
        .into_iter()
        .map(|r| {
            r.map(|r| {
                let (lo, hi) = finite(r);
                range_to_quant(lo, hi)
            })
        })
        .collect::<Vec<_>>();
    StudentQuant {
        input,
        layers,
        branches: if branches.iter().any(Option::is_some) {
            branches
        } else {
            Vec::new()
        },
    }
}
