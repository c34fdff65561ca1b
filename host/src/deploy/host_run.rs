//! The host run: the very `tinykd-device` code the firmware links, compiled for this machine.
//! It is the reference a board run is compared with.

use super::{DeployError, Predictions, Result, SampleSet};

/// Runs `blob` over every sample with `tinykd-device` on this machine.
///
/// The blob is validated by `Model::from_bytes` first; the arena is allocated once with the
/// size the blob states and reused for every sample, as on a board. Fails if the samples do
/// not have the model's input length, or if a sample fails to run (the error names it).
pub fn run_blob_host(blob: &[u8], samples: &SampleSet) -> Result<Predictions> {
    let model = tinykd_device::Model::from_bytes(blob).map_err(DeployError::BlobRejected)?;
    let input_len = model.input_len();
    if samples.sample_len() != input_len {
        return Err(DeployError::InputLenMismatch {
            sample_len: samples.sample_len(),
            input_len,
        });
    }
    let output_len = model.output_len();
    let mut arena = vec![0u8; model.arena_size()];
    let mut predictions = Predictions {
        output_len,
        outputs: Vec::with_capacity(samples.len() * output_len),
        classes: Vec::with_capacity(samples.len()),
        correct: 0,
    };
    for (index, (input, label)) in samples.iter().enumerate() {
        let output = model
            .run(input, &mut arena)
            .map_err(|source| DeployError::RunFailed { index, source })?;
        let class = tinykd_device::argmax(output);
        predictions.outputs.extend_from_slice(output);
        predictions.classes.push(class);
        if class == usize::from(label) {
            predictions.correct += 1;
        }
    }
    Ok(predictions)
}
