//! A teacher made of several trained networks, as in CRD's ensemble distillation: the members'
//! softened predictions are averaged, and feature methods see one member's taps or all members'
//! taps concatenated along the feature/channel axis.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use super::TeacherTaps;
use crate::models::Output;

/// Which taps of an ensemble feature methods see (`[distill] ensemble_features`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnsembleFeatures {
    /// One member's taps, by index (0 = `teacher`, 1.. = `ensemble` in order).
    Member(usize),
    /// Every member's taps concatenated (`"concat"`; the members' maps must share their sizes).
    Concat(ConcatKeyword),
}

/// The word `concat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConcatKeyword {
    /// Concatenate.
    Concat,
}

impl Default for EnsembleFeatures {
    fn default() -> Self {
        Self::Member(0)
    }
}

/// Frozen members plus the averaging temperature.
pub struct EnsembleTeacher {
    members: Vec<Box<dyn TeacherTaps>>,
    temperature: f32,
    features: EnsembleFeatures,
}

impl std::fmt::Debug for EnsembleTeacher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnsembleTeacher")
            .field("members", &self.members.len())
            .field("temperature", &self.temperature)
            .field("features", &self.features)
            .finish()
    }
}

impl EnsembleTeacher {
    /// An ensemble of `members` (at least one) averaged at `temperature`; `probe` (a small input
    /// batch) checks that the members' taps can be combined.
    ///
    /// # Errors
    /// No members, a member index out of range, members with different class counts, or (with
    /// `concat`) feature maps of different sizes.
    pub fn new(
        members: Vec<Box<dyn TeacherTaps>>,
        temperature: f32,
        features: EnsembleFeatures,
        probe: Tensor<4>,
    ) -> Result<Self, String> {
        if members.is_empty() {
            return Err("an ensemble needs at least one member".into());
        }
        if let EnsembleFeatures::Member(i) = features {
            if i >= members.len() {
                return Err(format!(
                    "ensemble_features = {i}, but the ensemble has {} members (0..{})",
                    members.len(),
                    members.len()
                ));
            }
        }
        let outs: Vec<Output> = members.iter().map(|m| m.taps(probe.clone())).collect();
        let sizes = |o: &Output| -> Vec<[usize; 2]> {
            o.feature_maps
                .iter()
                .chain(&o.candidate_maps)
                .map(|m| {
                    let [_, _, h, w] = m.dims();
                    [h, w]
                })
                .collect()
        };
        for (i, o) in outs.iter().enumerate().skip(1) {
            if o.logits.dims() != outs[0].logits.dims() {
                return Err(format!(
                    "ensemble member {i} has {} classes, the teacher {}",
                    o.logits.dims()[1],
                    outs[0].logits.dims()[1]
                ));
            }
            if matches!(features, EnsembleFeatures::Concat(_)) && sizes(o) != sizes(&outs[0]) {
                return Err(format!(
                    "ensemble_features = \"concat\" needs members with feature maps of the same \
                     sizes; member {i} differs from the teacher (pick one member instead)"
                ));
            }
        }
        Ok(Self {
            members,
            temperature,
            features,
        })
    }
}

/// `T · log(mean_i softmax(z_i / T))`: logits whose softmax at `T` is the members' average
/// softened prediction, so KD against them is KD against the averaged distribution.
pub fn average_softened(logits: &[Tensor<2>], temperature: f32) -> Tensor<2> {
    let n = logits.len() as f32;
    let probs = logits
        .iter()
        .map(|z| log_softmax(z.clone() / temperature, 1).exp())
        .reduce(|a, b| a + b)
        .expect("at least one member");
    (probs / n).log() * temperature
}

fn concat_maps(outs: &[Output], pick: impl Fn(&Output) -> &Vec<Tensor<4>>) -> Vec<Tensor<4>> {
    let n = outs.first().map_or(0, |o| pick(o).len());
    (0..n)
        .map(|i| Tensor::cat(outs.iter().map(|o| pick(o)[i].clone()).collect(), 1))
        .collect()
}

impl TeacherTaps for EnsembleTeacher {
    fn taps(&self, x: Tensor<4>) -> Output {
        let outs: Vec<Output> = self.members.iter().map(|m| m.taps(x.clone())).collect();
        let logits = average_softened(
            &outs.iter().map(|o| o.logits.clone()).collect::<Vec<_>>(),
            self.temperature,
        );
        match self.features {
            EnsembleFeatures::Member(i) => Output {
                logits,
                ..outs[i].clone()
            },
            EnsembleFeatures::Concat(_) => Output {
                logits,
                embedding: Tensor::cat(outs.iter().map(|o| o.embedding.clone()).collect(), 1),
                feature_maps: concat_maps(&outs, |o| &o.feature_maps),
                candidate_maps: concat_maps(&outs, |o| &o.candidate_maps),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::activation::softmax;

    #[test]
    fn averaged_logits_soften_to_the_mean_distribution() {
        let device = Device::flex();
        let a = Tensor::<2>::from_data([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]], &device);
        let b = Tensor::<2>::from_data([[3.0, 0.0, -2.0], [1.0, 1.0, 1.0]], &device);
        let t = 4.0;
        let avg = average_softened(&[a.clone(), b.clone()], t);
        let want = (softmax(a / t, 1) + softmax(b / t, 1)) / 2.0;
        let got = softmax(avg / t, 1);
        let diff: f32 = (got - want).abs().max().into_scalar();
        assert!(diff < 1e-6, "{diff}");
    }
}
