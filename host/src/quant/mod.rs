//! Int8 quantization on the host: BatchNorm folding, fake quantization with a straight-through
//! estimator, and calibration of activation ranges.
//!
//! The scheme is the one `tinykd-device` runs (DESIGN.md §5, `shared/SPEC.md`): weights symmetric per
//! output channel in `[-127, 127]`, activations per tensor asymmetric int8, BatchNorm folded into the
//! convolution before its weights are quantized. Post-training quantization is [`calibrate`] alone;
//! quantization-aware training is calibration followed by training the student with
//! [`crate::models::student::Student::with_quant`] on, so the loss sees the rounding the device will do.

mod calibrate;
mod fake;
mod fold;
mod qat;
mod run;

pub use calibrate::{calibrate, range_to_quant};
pub use fake::{fake_quant_activation, fake_quant_weight_per_channel, weight_scales};
pub use fold::fold_batch_norm;
pub use qat::{calibrate_on, QatHook};
pub use run::{
    quantize_run, read_quant, QuantizeOptions, QuantizeReport, QUANT_FILE, REGRESSION_NOT_DEPLOYED,
};

use serde::{Deserialize, Serialize};
pub use tinykd_format::Quant;

/// The activation quantization of a student: the input's and each layer's output.
///
/// Pooling layers keep their input's quantization (the device requires it), so their entry equals
/// the previous one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentQuant {
    /// Quantization of the network input.
    pub input: QuantParams,
    /// Quantization of each layer's output, in layer order.
    pub layers: Vec<QuantParams>,
    /// Quantization of the binary branch of each layer with a shortcut (before the add), by
    /// layer; `None` for every other layer. Empty in files written before shortcuts existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub branches: Vec<Option<QuantParams>>,
}

/// Per-tensor affine quantization: `real = scale · (q − zero_point)`, `q ∈ [−128, 127]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct QuantParams {
    /// Step size.
    pub scale: f32,
    /// The int8 value that represents real 0.
    pub zero_point: i8,
}

impl From<QuantParams> for Quant {
    fn from(q: QuantParams) -> Self {
        Quant {
            scale: q.scale,
            zero_point: q.zero_point,
        }
    }
}
