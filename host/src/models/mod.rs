//! Teachers and students. Every model returns its feature taps through one typed contract,
//! [`Output`], so a distillation method never reaches into a model's internals.

pub mod auxiliary;
pub mod binary;
pub mod factors;
pub mod student;
pub mod teacher;

use burn::prelude::*;

/// What a model's forward pass hands to the trainer and to distillation methods.
#[derive(Debug, Clone)]
pub struct Output {
    /// Class scores before softmax, `[batch, classes]`.
    pub logits: Tensor<2>,
    /// The penultimate representation (input of the classifier), `[batch, features]`.
    pub embedding: Tensor<2>,
    /// The output of each stage, shallow to deep, `[batch, channels, height, width]` each (a
    /// student's hidden dense layers as `[batch, features, 1, 1]`).
    pub feature_maps: Vec<Tensor<4>>,
    /// Every activation a hint may be taken from, shallow to deep: for teachers the stem and
    /// each residual block's inner activation and output, for students their feature maps. The
    /// candidates of layer-clustering hint selection (`tinykd hints`).
    pub candidate_maps: Vec<Tensor<4>>,
}

/// A classifier that exposes its taps. Teachers and students both implement it, so the trainer and
/// every distillation method are written once.
pub trait Classifier: Module {
    /// Forward pass returning logits, embedding and stage feature maps.
    ///
    /// # Shapes
    /// - input: `[batch, channels, height, width]` (NCHW, normalized floats)
    fn forward_taps(&self, x: Tensor<4>) -> Output;

    /// Called after every optimizer step with the updated model: projections the update rule
    /// cannot express (binary layers clip their latent weights to [−1, 1]). Default: none.
    fn after_step(self) -> Self
    where
        Self: Sized,
    {
        self
    }

    /// Forward pass returning only the logits, `[batch, classes]`.
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_taps(x).logits
    }
}
