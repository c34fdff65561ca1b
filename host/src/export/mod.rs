//! Export: a trained, calibrated student → a `tinykd-format` blob (`.tkd`).
//!
//! Lowering mirrors the student's forward pass in quantized form, layer by layer: BatchNorm is
//! folded with [`fold_batch_norm`] (the function quantization-aware training uses), weights are
//! quantized with the same per-channel scales as [`weight_scales`], activation quantization comes
//! from the [`StudentQuant`] the student was calibrated (and fine-tuned) with, and
//! requantization constants are derived by `tinykd-format`'s builder, the single implementation of
//! the rounding rule. Anything the device cannot run is refused with an error naming the layer.

mod run;

pub use run::{export_run, quantized_split, ExportReport, ExportRunError};

use burn::nn::PaddingConfig2d;
use burn::prelude::*;
use tinykd_format::sliced_pays;
use tinykd_format::{
    binarize_threshold, fold_batchnorm_sign, Activation as BlobActivation, BinaryConv2dSpec,
    BinaryDenseSpec, BinaryOutputSpec, Conv2dSpec, DenseSpec, Layout, ModelBuilder, PoolSpec,
    Quant, Shape, TensorId,
};

use crate::models::binary::{weight_scale, BinaryConvBlock, BinaryConvSpec, BinaryDenseBlock};
use crate::models::student::{Activation, LayerSpec, Student, StudentLayer};
use crate::quant::{fold_batch_norm, weight_scales, StudentQuant};

/// Why a student could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A layer uses something the device runtime cannot run.
    #[error("layer {index} ({kind}): {reason}")]
    Unsupported {
        /// Position in the student's layer list.
        index: usize,
        /// Layer kind.
        kind: &'static str,
        /// What the device lacks.
        reason: String,
    },
    /// The quantization parameters do not match the student.
    #[error("quantization parameters cover {got} layers, the student has {want}")]
    QuantMismatch {
        /// Entries in the `StudentQuant`.
        got: usize,
        /// Layers in the student.
        want: usize,
    },
    /// The blob builder rejected the lowered graph.
    #[error("blob builder: {0}")]
    Build(String),
}

/// Summary of an exported blob, as printed after `tinykd export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobSummary {
    /// Total blob bytes (header, descriptor, weights, CRC).
    pub blob_bytes: usize,
    /// Activation arena the device must provide, in bytes.
    pub arena_bytes: usize,
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

fn blob_activation(a: Activation) -> BlobActivation {
    match a {
        Activation::None => BlobActivation::None,
        Activation::Relu => BlobActivation::Relu,
        Activation::Relu6 => BlobActivation::Relu6,
    }
}

fn narrow<T: TryFrom<usize>>(
    v: usize,
    index: usize,
    kind: &'static str,
    what: &str,
) -> Result<T, ExportError> {
    T::try_from(v).map_err(|_| ExportError::Unsupported {
        index,
        kind,
        reason: format!("{what} = {v} is out of the blob's range"),
    })
}

/// Quantizes per-output-channel weights (`rows` of `per_row` values) with the scales QAT used, and
/// the float bias to int32 at scale `s_in · s_w[c]`.
fn quantize_rows(
    w: &[f32],
    scales: &[f32],
    bias: &[f32],
    s_in: f32,
    index: usize,
    kind: &'static str,
) -> Result<(Vec<i8>, Vec<i32>), ExportError> {
    let per_row = w.len() / scales.len().max(1);
    let mut q = Vec::with_capacity(w.len());
    for (row, &s) in w.chunks(per_row.max(1)).zip(scales) {
        q.extend(
            row.iter()
                .map(|&v| (v / s).round_ties_even().clamp(-127.0, 127.0) as i8),
        );
    }
    let mut b = Vec::with_capacity(bias.len());
    for (&v, &s) in bias.iter().zip(scales) {
        let r = (v as f64 / (s_in as f64 * s as f64)).round();
        if !r.is_finite() || r.abs() > i32::MAX as f64 {
            return Err(ExportError::Unsupported {
                index,
                kind,
                reason: format!("bias {v} does not fit int32 at scale {}", s_in * s),
            });
        }
        b.push(r as i32);
    }
    Ok((q, b))
}

/// Lowers `student` with activation quantization `quant` to a blob; `input_norm`, one
/// `(mean, std)` per input channel, is written into it (format 1.3) for sensor students, whose
/// nodes normalize raw readings on the device.
pub fn export_student(
    student: &Student,
    quant: &StudentQuant,
    name: &str,
    input_norm: Option<&[(f32, f32)]>,
) -> Result<Vec<u8>, ExportError> {
    let student = student.valid();
    if quant.layers.len() != student.layers.len() {
        return Err(ExportError::QuantMismatch {
            got: quant.layers.len(),
            want: student.layers.len(),
        });
    }
    let cfg = &student.config;
    let [h, w] = cfg.input_size;
    let shape = Shape {
        h: narrow(h, 0, "input", "height")?,
        w: narrow(w, 0, "input", "width")?,
        c: narrow(cfg.in_channels, 0, "input", "channels")?,
    };
    let input_quant: Quant = quant.input.into();
    let mut b = ModelBuilder::new(name, shape, input_quant);
    if let Some(norm) = input_norm {
        b.input_normalization(norm)
            .map_err(|e| ExportError::Build(e.to_string()))?;
    }
    let mut x: TensorId = b.input();
    let mut s_in = quant.input.scale;
    // Host layout of the current activation: [channels, height, width].
    let mut chw = [cfg.in_channels, h, w];
    let build = |e: tinykd_format::BuildError| ExportError::Build(e.to_string());

    for (index, (layer, spec)) in student.layers.iter().zip(&cfg.layers).enumerate() {
        let out_q = quant.layers[index];
        x = match (layer, spec) {
            (StudentLayer::Conv(block), LayerSpec::Conv(s)) => {
                let kind = "conv";
                let conv = &block.conv;
                if conv.dilation != [1, 1] {
                    return Err(ExportError::Unsupported {
                        index,
                        kind,
                        reason: "dilation must be 1".into(),
                    });
                }
                let (t, l, bo, r) = match conv.padding {
                    PaddingConfig2d::Explicit(t, l, bo, r) => (t, l, bo, r),
                    PaddingConfig2d::Valid => (0, 0, 0, 0),
                    PaddingConfig2d::Same => {
                        return Err(ExportError::Unsupported {
                            index,
                            kind,
                            reason: "`same` padding".into(),
                        })
                    }
                };
                let (wf, bf) = fold_batch_norm(conv, block.bn.as_ref());
                let [out, _, kh, kw] = wf.dims();
                let scales = to_vec(weight_scales(wf.clone()).reshape([out]));
                // burn: [out, in/g, kh, kw] → blob: OHWI [out, kh, kw, in/g]
                let ohwi = to_vec(wf.permute([0, 2, 3, 1]));
                let (weights, bias) =
                    quantize_rows(&ohwi, &scales, &to_vec(bf), s_in, index, kind)?;
                let spec = Conv2dSpec {
                    out_channels: narrow(out, index, kind, "out channels")?,
                    kernel: [
                        narrow(kh, index, kind, "kernel")?,
                        narrow(kw, index, kind, "kernel")?,
                    ],
                    stride: [
                        narrow(conv.stride[0], index, kind, "stride")?,
                        narrow(conv.stride[1], index, kind, "stride")?,
                    ],
                    padding: [
                        narrow(t, index, kind, "padding")?,
                        narrow(l, index, kind, "padding")?,
                        narrow(bo, index, kind, "padding")?,
                        narrow(r, index, kind, "padding")?,
                    ],
                    groups: narrow(conv.groups, index, kind, "groups")?,
                    weights,
                    weight_scales: scales,
                    bias,
                    output: out_q.into(),
                    activation: blob_activation(s.activation),
                };
                let y = b.conv2d(x, spec).map_err(build)?;
                let o = b.shape(y);
                chw = [o.c as usize, o.h as usize, o.w as usize];
                y
            }
            (StudentLayer::BinaryConv(block), LayerSpec::BinaryConv(s)) => {
                // With a shortcut the binary branch has its own quantization, then `add`.
                let branch_q = match s.shortcut {
                    true => Some(
                        quant.branches.get(index).copied().flatten().ok_or(
                            ExportError::Unsupported {
                                index,
                                kind: "binary_conv",
                                reason:
                                    "the quantization parameters have no range for its shortcut \
                                     branch: calibrate the student again"
                                        .into(),
                            },
                        )?,
                    ),
                    false => None,
                };
                let stage = |alpha, products| {
                    binary_output(
                        BinaryStage {
                            bn: &block.bn,
                            alpha,
                            products,
                            packed: student.packed.get(index).copied().unwrap_or(false),
                            next_tau: next_binary_threshold(&student, index),
                            out_q: branch_q.unwrap_or(out_q).into(),
                            activation: s.activation,
                            rprelu: block.rprelu.as_ref(),
                        },
                        |reason| ExportError::Unsupported {
                            index,
                            kind: "binary_conv",
                            reason,
                        },
                    )
                };
                let spec = lower_binary_conv(block, &b, x, stage, index)?;
                // Bit-sliced weights (format 1.4) where those kernels win.
                let mut y = if sliced_pays(b.shape(x).c, spec.out_channels) {
                    b.binary_conv2d_sliced(x, spec)
                } else {
                    b.binary_conv2d(x, spec)
                }
                .map_err(build)?;
                if branch_q.is_some() {
                    y = b
                        .add(y, x, out_q.into(), BlobActivation::None)
                        .map_err(build)?;
                }
                let o = b.shape(y);
                chw = [o.c as usize, o.h as usize, o.w as usize];
                y
            }
            (StudentLayer::BinaryDense(block), LayerSpec::BinaryDense(d)) => {
                let stage = |alpha, products| {
                    binary_output(
                        BinaryStage {
                            bn: &block.bn,
                            alpha,
                            products,
                            packed: student.packed.get(index).copied().unwrap_or(false),
                            next_tau: next_binary_threshold(&student, index),
                            out_q: out_q.into(),
                            activation: d.activation,
                            rprelu: block.rprelu.as_ref(),
                        },
                        |reason| ExportError::Unsupported {
                            index,
                            kind: "binary_dense",
                            reason,
                        },
                    )
                };
                let spec = lower_binary_dense(block, &b, x, chw, stage, index)?;
                let y = b.binary_dense(x, spec).map_err(build)?;
                chw = [d.out, 1, 1];
                y
            }
            (StudentLayer::MaxPool(_), LayerSpec::MaxPool(p))
            | (StudentLayer::AvgPool(_), LayerSpec::AvgPool(p)) => {
                let kind = "pool";
                let [kh, kw] = p.kernel.0;
                let [sh, sw] = p.stride().0;
                let ps = PoolSpec {
                    kernel: [
                        narrow(kh, index, kind, "kernel")?,
                        narrow(kw, index, kind, "kernel")?,
                    ],
                    stride: [
                        narrow(sh, index, kind, "stride")?,
                        narrow(sw, index, kind, "stride")?,
                    ],
                    padding: [0; 4],
                };
                let y = if matches!(spec, LayerSpec::MaxPool(_)) {
                    if b.layout(x) == Layout::Packed {
                        b.binary_max_pool2d(x, ps).map_err(build)?
                    } else {
                        b.max_pool2d(x, ps).map_err(build)?
                    }
                } else {
                    b.avg_pool2d(x, ps).map_err(build)?
                };
                let o = b.shape(y);
                chw = [o.c as usize, o.h as usize, o.w as usize];
                y
            }
            (StudentLayer::GlobalAvgPool(_), LayerSpec::GlobalAvgPool) => {
                let y = b.global_avg_pool(x).map_err(build)?;
                chw = [chw[0], 1, 1];
                y
            }
            (StudentLayer::Dense(block), LayerSpec::Dense(d)) => {
                let kind = "dense";
                let lin = &block.linear;
                let [inp, out] = lin.weight.dims();
                let [c, hh, ww] = chw;
                if inp != c * hh * ww {
                    return Err(ExportError::Unsupported {
                        index,
                        kind,
                        reason: format!(
                            "expects {inp} inputs, the previous layer gives {}",
                            c * hh * ww
                        ),
                    });
                }
                // Rows per output; columns reordered from burn's CHW flattening to the device's HWC.
                let wt = to_vec(lin.weight.val().transpose()); // [out, in_chw]
                let w_hwc = chw_to_hwc_rows(&wt, out, chw);
                let w4 = lin.weight.val().transpose().reshape([out, inp, 1, 1]);
                let scales = to_vec(weight_scales(w4).reshape([out]));
                let bias_f = match &lin.bias {
                    Some(bias) => to_vec(bias.val()),
                    None => vec![0.0; out],
                };
                let (weights, bias) = quantize_rows(&w_hwc, &scales, &bias_f, s_in, index, kind)?;
                let spec = DenseSpec {
                    out_features: narrow(out, index, kind, "out features")?,
                    weights,
                    weight_scales: scales,
                    bias,
                    output: out_q.into(),
                    activation: blob_activation(d.activation),
                };
                // Every int8 dense layer is written paired (format 1.5, SPEC §3.4): the same
                // results, 1.0 instead of 1.25 instructions per MAC in the Cortex-M4 kernel.
                let y = b.dense_paired(x, spec).map_err(build)?;
                chw = [out, 1, 1];
                y
            }
            _ => {
                return Err(ExportError::Unsupported {
                    index,
                    kind: "layer",
                    reason: "the module does not match its config".into(),
                })
            }
        };
        s_in = out_q.scale;
    }
    b.finish().map_err(build)
}

/// The RSign threshold τ of the binary layer that consumes layer `index`'s packed output
/// (through max pools), if it learns one: the producer folds it into its own thresholds.
fn next_binary_threshold(student: &Student, index: usize) -> Option<Vec<f32>> {
    let layer = student.layers[index + 1..]
        .iter()
        .find(|l| !matches!(l, StudentLayer::MaxPool(_)))?;
    let threshold = match layer {
        StudentLayer::BinaryConv(next) => next.threshold.as_ref(),
        StudentLayer::BinaryDense(next) => next.threshold.as_ref(),
        _ => None,
    };
    threshold.map(|t| to_vec(t.val()))
}

/// How a binary layer reads its input: thresholds on an int8 input (τ per channel, or the sign
/// at the zero point), nothing on a packed one (its producer folded this layer's τ).
fn binary_input_thresholds(
    b: &ModelBuilder,
    x: TensorId,
    threshold: Option<&burn::module::Param<Tensor<1>>>,
) -> Vec<i32> {
    if b.layout(x) == Layout::Packed {
        return Vec::new();
    }
    let q = b.quant(x);
    match threshold {
        Some(t) => to_vec(t.val())
            .into_iter()
            .map(|tau| binarize_threshold(q, tau))
            .collect(),
        None => vec![binarize_threshold(q, 0.0)],
    }
}

/// What a binary layer's output stage needs to know.
struct BinaryStage<'a> {
    bn: &'a burn::nn::BatchNorm,
    /// Per-output-channel weight scale (1 without scaling).
    alpha: Vec<f32>,
    /// Products per output (`K`).
    products: usize,
    /// Whether the output is packed (a binary layer consumes it).
    packed: bool,
    /// The consumer's τ, for a packed output.
    next_tau: Option<Vec<f32>>,
    /// The layer's RPReLU (packed outputs only), folded with τ.
    rprelu: Option<&'a crate::models::binary::Rprelu>,
    /// Quantization of an int8 output.
    out_q: Quant,
    /// Activation of an int8 output.
    activation: Activation,
}

/// BatchNorm + the consumer's sign folded into popcount thresholds (packed output), or
/// BatchNorm as a per-channel affine map of the ±1 dot product requantized to `out_q`.
fn binary_output(
    st: BinaryStage,
    unsupported: impl Fn(String) -> ExportError,
) -> Result<BinaryOutputSpec, ExportError> {
    let bn = st.bn;
    let gamma = to_vec(bn.gamma.val());
    let beta = to_vec(bn.beta.val());
    let mean = to_vec(bn.running_mean.value());
    let var = to_vec(bn.running_var.value());
    let eps = bn.epsilon;
    let out = gamma.len();
    let k = u32::try_from(st.products).map_err(|_| unsupported("too many products".into()))?;
    let f = |v: &[f32], c: usize| f64::from(v.get(c).copied().unwrap_or(0.0));
    if st.packed {
        let (mut thresholds, mut flip) = (Vec::with_capacity(out), Vec::with_capacity(out));
        for c in 0..out {
            let tau = st.next_tau.as_deref().map_or(0.0, |t| f(t, c));
            // sign(f(z) − τ) = sign(z − f⁻¹(τ)) for the increasing RPReLU f.
            let tau = st.rprelu.map_or(tau, |r| r.inverse(c, tau));
            let (t, fl) = fold_batchnorm_sign(
                k,
                f(&st.alpha, c),
                f(&gamma, c),
                f(&beta, c),
                f(&mean, c),
                f(&var, c),
                eps,
                tau,
            );
            thresholds.push(t);
            flip.push(fl);
        }
        return Ok(BinaryOutputSpec::Packed { thresholds, flip });
    }
    let (mut flip, mut bias, mut scales) = (Vec::new(), Vec::new(), Vec::new());
    for c in 0..out {
        let sd = (f(&var, c) + eps).sqrt();
        let a = f(&gamma, c) * f(&st.alpha, c) / sd;
        let offset = f(&beta, c) - f(&gamma, c) * f(&mean, c) / sd;
        if !(a.is_finite() && offset.is_finite()) || a == 0.0 {
            return Err(unsupported(format!(
                "channel {c}: BatchNorm slope {a} cannot be requantized"
            )));
        }
        let units = (offset / a.abs()).round();
        if units.abs() > f64::from(i32::MAX / 2) {
            return Err(unsupported(format!(
                "channel {c}: bias {offset} is out of range at scale {}",
                a.abs()
            )));
        }
        flip.push(a < 0.0);
        bias.push(units as i32);
        scales.push(a.abs() as f32);
    }
    Ok(BinaryOutputSpec::Int8 {
        flip,
        bias,
        scales,
        output: st.out_q,
        activation: blob_activation(st.activation),
    })
}

/// Lowers a binary convolution: weight signs OHWI, input binarization, output stage.
fn lower_binary_conv(
    block: &BinaryConvBlock,
    b: &ModelBuilder,
    x: TensorId,
    stage: impl FnOnce(Vec<f32>, usize) -> Result<BinaryOutputSpec, ExportError>,
    index: usize,
) -> Result<BinaryConv2dSpec, ExportError> {
    let kind = "binary_conv";
    let s: &BinaryConvSpec = &block.spec;
    let w = block.weight.val();
    let [out, cin, kh, kw] = w.dims();
    let weights = signs(to_vec(w.clone().permute([0, 2, 3, 1])));
    let alpha = if s.scale {
        to_vec(weight_scale(w).reshape([out]))
    } else {
        vec![1.0; out]
    };
    let n = |v: usize, what: &str| narrow::<u8>(v, index, kind, what);
    Ok(BinaryConv2dSpec {
        out_channels: narrow(out, index, kind, "out channels")?,
        kernel: [n(kh, "kernel")?, n(kw, "kernel")?],
        stride: [n(s.stride, "stride")?, n(s.stride, "stride")?],
        padding: [n(s.padding, "padding")?; 4],
        weights,
        input_thresholds: binary_input_thresholds(b, x, block.threshold.as_ref()),
        output: stage(alpha, kh * kw * cin)?,
    })
}

/// Lowers a binary dense layer: weight signs reordered from burn's CHW flattening to the
/// device's HWC, input binarization, output stage.
fn lower_binary_dense(
    block: &BinaryDenseBlock,
    b: &ModelBuilder,
    x: TensorId,
    chw: [usize; 3],
    stage: impl FnOnce(Vec<f32>, usize) -> Result<BinaryOutputSpec, ExportError>,
    index: usize,
) -> Result<BinaryDenseSpec, ExportError> {
    let kind = "binary_dense";
    let w = block.weight.val();
    let [out, inp] = w.dims();
    if inp != chw.iter().product::<usize>() {
        return Err(ExportError::Unsupported {
            index,
            kind,
            reason: format!("expects {inp} inputs, the previous layer gives {chw:?}"),
        });
    }
    let alpha = if block.spec.scale {
        to_vec(weight_scale(w.clone().reshape([out, inp, 1, 1])).reshape([out]))
    } else {
        vec![1.0; out]
    };
    let weights = signs(chw_to_hwc_rows(&to_vec(w), out, chw));
    Ok(BinaryDenseSpec {
        out_features: narrow(out, index, kind, "out features")?,
        weights,
        input_thresholds: binary_input_thresholds(b, x, block.threshold.as_ref()),
        output: stage(alpha, inp)?,
    })
}

/// ±1 as i8, sign(0) = +1.
fn signs(v: Vec<f32>) -> Vec<i8> {
    v.into_iter()
        .map(|v| if v >= 0.0 { 1 } else { -1 })
        .collect()
}

/// Reorders `out` rows of weights over a CHW-flattened input (burn's `flatten`) to the device's
/// HWC flattening.
fn chw_to_hwc_rows(w: &[f32], out: usize, [c, h, w_]: [usize; 3]) -> Vec<f32> {
    let inp = c * h * w_;
    let mut hwc = vec![0f32; w.len()];
    for o in 0..out {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w_ {
                    let host = ch * h * w_ + y * w_ + x;
                    let dev = (y * w_ + x) * c + ch;
                    hwc[o * inp + dev] = w[o * inp + host];
                }
            }
        }
    }
    hwc
}

/// Blob and arena sizes of a blob, read back through the device runtime (which validates it).
pub fn summarize(blob: &[u8]) -> Result<BlobSummary, tinykd_device::Error> {
    let model = tinykd_device::Model::from_bytes(blob)?;
    Ok(BlobSummary {
        blob_bytes: blob.len(),
        arena_bytes: model.arena_size(),
    })
}

/// Quantizes a batch of normalized images `[batch, c, h, w]` into the blob's int8 input layout
/// (HWC per sample, concatenated), with the blob's input quantization (round half to even).
pub fn quantize_inputs(images: Tensor<4>, quant: Quant) -> Vec<i8> {
    let [_, c, h, w] = images.dims();
    let hwc = to_vec(images.permute([0, 2, 3, 1]));
    debug_assert_eq!(hwc.len() % (c * h * w).max(1), 0);
    hwc.into_iter().map(|v| quant.quantize(v)).collect()
}
