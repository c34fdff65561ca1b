//! Auxiliary classifiers on a network's intermediate feature maps: a fresh copy of the layers that
//! follow the map, then a new classifier. HSAKD (Yang et al., IJCAI 2021) hangs one on every stage
//! of the teacher and of the student; L-MCL (Yang et al., TPAMI 2023) on every peer's
//! intermediate stages. They only exist in training: export sees the network without them.
//!
//! "A copy of the remaining stages" rather than a linear probe, as both papers do: a shallow map
//! needs the depth of the rest of the network to become a classifier, and the branch trains the
//! backbone's early layers through a path as deep as the main one.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use super::student::{Student, StudentConfig};
use super::teacher::{Stage, TeacherConfig};
use super::Classifier;

/// An auxiliary classifier, built for a student (a layer list) or a ResNet teacher.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum AuxClassifier {
    /// New copies of a student's remaining layers and a dense classifier
    /// ([`StudentConfig::aux_tail`]).
    Layers(Student),
    /// New copies of a ResNet's remaining stages ([`TeacherConfig::remaining_stages`]), global
    /// average pooling and a linear classifier.
    Residual(ResidualAux),
}

/// The ResNet form of [`AuxClassifier`].
#[derive(Module, Debug)]
pub struct ResidualAux {
    stages: Vec<Stage>,
    head: Linear,
}

impl AuxClassifier {
    /// An auxiliary classifier with `outputs` logits on feature map `tap` of a student.
    ///
    /// # Errors
    /// `tap` is not one of the student's feature maps.
    pub fn student(
        config: &StudentConfig,
        tap: usize,
        outputs: usize,
        device: &Device,
    ) -> Result<Self, String> {
        let tail = config.aux_tail(tap, outputs).map_err(|e| e.to_string())?;
        Ok(Self::Layers(tail.init(device).map_err(|e| e.to_string())?))
    }

    /// An auxiliary classifier with `outputs` logits on stage `stage` of a ResNet teacher.
    ///
    /// # Errors
    /// The teacher has no stage `stage`.
    pub fn residual(
        config: &TeacherConfig,
        stage: usize,
        outputs: usize,
        device: &Device,
    ) -> Result<Self, String> {
        let n = config.widths.len();
        if stage >= n {
            return Err(format!("the teacher has {n} stages (0..{n}), not {stage}"));
        }
        let stages = config.remaining_stages(stage, device);
        let width = *config.widths.last().unwrap_or(&1);
        Ok(Self::Residual(ResidualAux {
            stages,
            head: LinearConfig::new(width, outputs).init(device),
        }))
    }

    /// The logits for a feature map.
    ///
    /// # Shapes
    /// - `map`: the tapped map, `[batch, c, h, w]`; output `[batch, outputs]`
    pub fn forward(&self, map: Tensor<4>) -> Tensor<2> {
        match self {
            Self::Layers(s) => s.forward(map),
            Self::Residual(r) => {
                let x = r.stages.iter().fold(map, |x, s| s.forward(x));
                let [b, c, h, w] = x.dims();
                let pooled = x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c]);
                r.head.forward(pooled)
            }
        }
    }

    /// The branch's penultimate representation and its logits (L-MCL projects the former).
    ///
    /// # Shapes
    /// - `map`: `[batch, c, h, w]`; outputs `[batch, features]` and `[batch, outputs]`
    pub fn forward_embedding(&self, map: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        match self {
            Self::Layers(s) => {
                let out = s.forward_taps(map);
                (out.embedding, out.logits)
            }
            Self::Residual(r) => {
                let x = r.stages.iter().fold(map, |x, s| s.forward(x));
                let [b, c, h, w] = x.dims();
                let pooled = x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c]);
                (pooled.clone(), r.head.forward(pooled))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::teacher::TeacherPreset;

    #[test]
    fn residual_branches_continue_from_each_stage() {
        let dev = Device::flex();
        let cfg = TeacherConfig::preset(TeacherPreset::Tiny, 1, 10);
        let teacher = cfg.init(&dev);
        let out = teacher.forward_taps(Tensor::zeros([2, 1, 28, 28], &dev));
        for (s, map) in out.feature_maps.iter().enumerate() {
            let aux = AuxClassifier::residual(&cfg, s, 40, &dev).unwrap();
            let (emb, logits) = aux.forward_embedding(map.clone());
            assert_eq!(emb.dims(), [2, 32], "stage {s}");
            assert_eq!(logits.dims(), [2, 40], "stage {s}");
        }
        assert!(AuxClassifier::residual(&cfg, 3, 40, &dev).is_err());
    }

    #[test]
    fn student_branches_read_their_tap() {
        let dev = Device::flex();
        let cfg = StudentConfig::mcu_small();
        let student = cfg.init(&dev).unwrap();
        let out = student.forward_taps(Tensor::zeros([2, 1, 28, 28], &dev));
        for (t, map) in out.feature_maps.iter().enumerate() {
            let aux = AuxClassifier::student(&cfg, t, 40, &dev).unwrap();
            assert_eq!(aux.forward(map.clone()).dims(), [2, 40], "tap {t}");
        }
    }
}
