//! Float evaluation: accuracy and mean cross-entropy of any [`Classifier`] over a dataset; on a
//! regression set ([`Dataset::targets`](crate::data::Dataset::targets)), the mean squared error
//! of the single output and the mean absolute error in the task's measure.
//!
//! The model is evaluated as [`Module::valid`] returns it: on the plain (non-autodiff) device, with
//! BatchNorm using its running statistics. Predictions are returned too, so callers can compare
//! them image by image with another run of the same model (a blob on the device, say).

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use serde::Serialize;

use crate::data::Loader;
use crate::models::Classifier;

/// The result of [`evaluate`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    /// Images evaluated.
    pub images: usize,
    /// Images whose top-1 prediction equals the label.
    pub correct: usize,
    /// `correct / images` (0 when there is no image).
    pub accuracy: f64,
    /// Mean cross-entropy over the images (regression: mean squared error of the normalized
    /// target).
    pub loss: f64,
    /// Regression: mean absolute error in the task's measure (degrees for the rotation task);
    /// `accuracy` is then 0 and `predictions` empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mae: Option<f64>,
    /// Top-1 class of each image, in the loader's order.
    #[serde(skip)]
    pub predictions: Vec<usize>,
}

/// Evaluates `model` on every batch of `loader` (use a loader without shuffling or augmentation),
/// creating the batches on `device` stripped of autodiff.
pub fn evaluate<M: Classifier>(model: &M, loader: &Loader, device: &Device) -> EvalReport {
    let model = model.valid();
    let device = device.clone().without_autodiff();
    let ce = CrossEntropyLossConfig::new().init(&device);
    let mut report = EvalReport {
        images: 0,
        correct: 0,
        accuracy: 0.0,
        loss: 0.0,
        mae: None,
        predictions: Vec::with_capacity(loader.num_images()),
    };
    if let Some(targets) = loader.dataset().targets() {
        let (mut se, mut ae) = (0f64, 0f64);
        for batch in loader.epoch(0, 0, &device) {
            // `iter` converts from whatever float type the backend computes in.
            let out = model.forward(batch.images).into_data();
            for (p, &i) in out.iter::<f32>().zip(&batch.indices) {
                let d = f64::from(p) - f64::from(targets.values[i]);
                se += d * d;
                ae += d.abs();
            }
            report.images += batch.indices.len();
        }
        if report.images > 0 {
            report.loss = se / report.images as f64;
            report.mae = Some(ae / report.images as f64 * f64::from(targets.scale));
        }
        return report;
    }
    let mut loss_sum = 0f64;
    // The epoch number is irrelevant without shuffling or augmentation; 0 keeps it fixed anyway.
    for batch in loader.epoch(0, 0, &device) {
        let b = batch.indices.len();
        let logits = model.forward(batch.images);
        let loss: f32 = ce.forward(logits.clone(), batch.targets).into_scalar();
        loss_sum += f64::from(loss) * b as f64;
        let preds = logits.argmax(1).into_data();
        for (p, &i) in preds.iter::<i64>().zip(&batch.indices) {
            let p = p as usize;
            report.correct += usize::from(p == usize::from(loader.dataset().label(i)));
            report.predictions.push(p);
        }
        report.images += b;
    }
    if report.images > 0 {
        report.accuracy = report.correct as f64 / report.images as f64;
        report.loss = loss_sum / report.images as f64;
    }
    report
}
