//! A ResNet-style teacher for small grayscale images (28×28×1 by default).
//!
//! The layout follows the CIFAR ResNets of He et al. ("Deep Residual Learning for Image
//! Recognition", CVPR 2016): a 3×3 stem, then stages of basic residual blocks (two 3×3 conv + BN,
//! identity shortcut, or a 1×1 conv + BN shortcut where the shape changes), then global average
//! pooling and a linear classifier. Convolutions followed by BatchNorm carry no bias (BN's beta
//! plays that role), as in the reference implementations.
//!
//! The presets use a stride-2 stem, so on 28×28 inputs the three stages run at 14, 7 and 4
//! pixels. Keeping a full stage at 28×28 (the CIFAR layout) costs 3× the multiply-adds and, on
//! burn-flex where BatchNorm training is the slowest op, measured 2–3× the step time, for a
//! dataset whose objects are already well resolved at 14×14.
//!
//! Sizes ([`TeacherPreset`]), counting trainable parameters only (burn's `num_params()` also
//! counts the BatchNorm running statistics):
//!
//! | preset | widths | blocks/stage | params |
//! |---|---|---|---:|
//! | `tiny` (tests) | 8, 16, 32 | 1 | 20 k |
//! | `small` | 16, 32, 64 | 1 | 78 k |
//! | `base` | 32, 64, 128 | 1 | 308 k |
//! | `large` | 32, 64, 128 | 2 | 696 k |
//!
//! Measured: `base` with the default recipe of [`crate::config::RunConfig::teacher`] (SGD 0.1,
//! Nesterov, weight decay 5e-4, per-step cosine, crop+flip, batch 128) reaches 92.79 % on the
//! Fashion-MNIST test set after 12 epochs (seed 0; 40 min 46 s on 2 CPU cores shared with other
//! jobs, 186–474 images/s depending on the load).

use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

use super::{Classifier, Output};

/// Named teacher sizes (see the module docs for the parameter counts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TeacherPreset {
    /// 8-16-32 channels: for fast tests only.
    Tiny,
    /// 16-32-64 channels.
    Small,
    /// 32-64-128 channels, one block per stage: the default Fashion-MNIST teacher.
    Base,
    /// 32-64-128 channels, two blocks per stage.
    Large,
}

/// Configuration of a [`Teacher`].
#[derive(Config, Debug, PartialEq)]
pub struct TeacherConfig {
    /// Input channels. Default 1 (grayscale).
    #[config(default = 1)]
    pub in_channels: usize,
    /// Number of classes. Default 10.
    #[config(default = 10)]
    pub classes: usize,
    /// Channels of each stage, shallow to deep; the stem has the first stage's width. Default
    /// `[32, 64, 128]` (the `base` preset).
    #[config(default = "vec![32, 64, 128]")]
    pub widths: Vec<usize>,
    /// Residual blocks per stage. Default 1.
    #[config(default = 1)]
    pub blocks_per_stage: usize,
    /// Stride of each stage's first block (one entry per stage). Default `[1, 2, 2]`.
    #[config(default = "vec![1, 2, 2]")]
    pub strides: Vec<usize>,
    /// Stride of the stem convolution. Default 2: with the default strides, 28×28 inputs give
    /// stages at 14, 7 and 4 pixels (see the module docs for why not 28).
    #[config(default = 2)]
    pub stem_stride: usize,
}

impl TeacherConfig {
    /// The configuration of a named size, for `in_channels`-channel inputs and `classes` classes.
    pub fn preset(preset: TeacherPreset, in_channels: usize, classes: usize) -> Self {
        let (widths, blocks) = match preset {
            TeacherPreset::Tiny => (vec![8, 16, 32], 1),
            TeacherPreset::Small => (vec![16, 32, 64], 1),
            TeacherPreset::Base => (vec![32, 64, 128], 1),
            TeacherPreset::Large => (vec![32, 64, 128], 2),
        };
        Self::new()
            .with_in_channels(in_channels)
            .with_classes(classes)
            .with_widths(widths)
            .with_blocks_per_stage(blocks)
            .with_stem_stride(2)
            .with_strides(vec![1, 2, 2])
    }

    /// Checks the configuration, so [`TeacherConfig::init`] cannot panic on a bad one.
    ///
    /// # Errors
    /// A message naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.in_channels == 0 {
            return Err("teacher in_channels must be at least 1".into());
        }
        // One output is a regression head (the predicted target).
        if self.classes == 0 {
            return Err("teacher classes must be at least 1 (1: a regression output)".into());
        }
        if self.widths.is_empty() || self.widths.contains(&0) {
            return Err(format!(
                "teacher widths must be a non-empty list of positive channel counts, got {:?}",
                self.widths
            ));
        }
        if self.blocks_per_stage == 0 {
            return Err("teacher blocks_per_stage must be at least 1".into());
        }
        if self.stem_stride == 0 || self.stem_stride > 4 {
            return Err(format!(
                "teacher stem_stride must be in 1..=4, got {}",
                self.stem_stride
            ));
        }
        if self.strides.len() != self.widths.len() || self.strides.iter().any(|&s| s == 0 || s > 4)
        {
            return Err(format!(
                "teacher strides must give one stride in 1..=4 per stage ({} stages), got {:?}",
                self.widths.len(),
                self.strides
            ));
        }
        Ok(())
    }

    /// Builds the teacher on `device`. Panics on a configuration [`TeacherConfig::validate`]
    /// rejects.
    pub fn init(&self, device: &Device) -> Teacher {
        if let Err(e) = self.validate() {
            panic!("{e}");
        }
        let stem_width = self.widths[0];
        let mut stages = Vec::with_capacity(self.widths.len());
        let mut in_ch = stem_width;
        for (s, &out_ch) in self.widths.iter().enumerate() {
            let mut blocks = Vec::with_capacity(self.blocks_per_stage);
            for b in 0..self.blocks_per_stage {
                let stride = if b == 0 { self.strides[s] } else { 1 };
                blocks.push(BasicBlock::new(in_ch, out_ch, stride, device));
                in_ch = out_ch;
            }
            stages.push(Stage { blocks });
        }
        Teacher {
            stem: conv3x3(self.in_channels, stem_width, self.stem_stride, device),
            stem_bn: BatchNormConfig::new(stem_width).init(device),
            stages,
            head: LinearConfig::new(in_ch, self.classes).init(device),
        }
    }
}

impl TeacherConfig {
    /// Fresh stages that continue the network after stage `after`: new copies of stages
    /// `after + 1 ..`, or, after the last stage, one more stage of the last width at stride 1.
    /// The body of an auxiliary classifier on that stage's output
    /// ([`crate::models::auxiliary`]).
    ///
    /// # Panics
    /// `after` is not a stage of this configuration.
    pub fn remaining_stages(&self, after: usize, device: &Device) -> Vec<Stage> {
        assert!(after < self.widths.len(), "no stage {after}");
        let last = self.widths.len() - 1;
        let plan: Vec<(usize, usize)> = if after == last {
            vec![(self.widths[last], 1)]
        } else {
            (after + 1..=last)
                .map(|s| (self.widths[s], self.strides[s]))
                .collect()
        };
        let mut in_ch = self.widths[after];
        plan.into_iter()
            .map(|(out_ch, stride)| {
                let blocks = (0..self.blocks_per_stage)
                    .map(|b| {
                        let block =
                            BasicBlock::new(in_ch, out_ch, if b == 0 { stride } else { 1 }, device);
                        in_ch = out_ch;
                        block
                    })
                    .collect();
                Stage { blocks }
            })
            .collect()
    }
}

fn conv3x3(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .with_bias(false)
        .init(device)
}

/// The projection shortcut of a block that changes shape: 1×1 conv (strided) + BN.
#[derive(Module, Debug)]
pub struct Projection {
    conv: Conv2d,
    bn: BatchNorm,
}

/// A basic residual block: `relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))`.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    shortcut: Option<Projection>,
}

impl BasicBlock {
    fn new(c_in: usize, c_out: usize, stride: usize, device: &Device) -> Self {
        let shortcut = (stride != 1 || c_in != c_out).then(|| Projection {
            conv: Conv2dConfig::new([c_in, c_out], [1, 1])
                .with_stride([stride, stride])
                .with_bias(false)
                .init(device),
            bn: BatchNormConfig::new(c_out).init(device),
        });
        Self {
            conv1: conv3x3(c_in, c_out, stride, device),
            bn1: BatchNormConfig::new(c_out).init(device),
            conv2: conv3x3(c_out, c_out, 1, device),
            bn2: BatchNormConfig::new(c_out).init(device),
            shortcut,
        }
    }

    /// Returns `(inner activation after conv1, block output)`.
    ///
    /// # Shapes
    /// - input: `[batch, c_in, h, w]`
    /// - both outputs: `[batch, c_out, h / stride, w / stride]` (rounded up)
    fn forward(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let identity = match &self.shortcut {
            Some(p) => p.bn.forward(p.conv.forward(x.clone())),
            None => x.clone(),
        };
        let inner = relu(self.bn1.forward(self.conv1.forward(x)));
        let y = self.bn2.forward(self.conv2.forward(inner.clone()));
        (inner, relu(y + identity))
    }
}

/// One resolution level of residual blocks.
#[derive(Module, Debug)]
pub struct Stage {
    blocks: Vec<BasicBlock>,
}

impl Stage {
    /// The stage's output.
    ///
    /// # Shapes
    /// - input `[batch, c_in, h, w]`, output `[batch, c_out, h / stride, w / stride]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(x, |x, b| b.forward(x).1)
    }
}

/// The ResNet-style teacher (see the module docs).
#[derive(Module, Debug)]
pub struct Teacher {
    stem: Conv2d,
    stem_bn: BatchNorm,
    stages: Vec<Stage>,
    head: Linear,
}

impl Classifier for Teacher {
    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - `logits`: `[batch, classes]`; `embedding`: `[batch, widths.last()]` (global average pool);
    ///   `feature_maps[s]`: `[batch, widths[s], h_s, w_s]` after each stage, the input size divided
    ///   by the stem stride and the strides so far, rounded up (14, 7, 4 for the presets on 28×28);
    ///   `candidate_maps`: the stem output, then each residual block's inner activation and output.
    fn forward_taps(&self, x: Tensor<4>) -> Output {
        let mut x = relu(self.stem_bn.forward(self.stem.forward(x)));
        let mut feature_maps = Vec::with_capacity(self.stages.len());
        let mut candidate_maps = vec![x.clone()];
        for stage in &self.stages {
            for block in &stage.blocks {
                let (inner, out) = block.forward(x);
                candidate_maps.push(inner);
                candidate_maps.push(out.clone());
                x = out;
            }
            feature_maps.push(x.clone());
        }
        let [b, c, h, w] = x.dims();
        let embedding = x.reshape([b, c, h * w]).mean_dim(2).reshape([b, c]);
        let logits = self.head.forward(embedding.clone());
        Output {
            logits,
            embedding,
            feature_maps,
            candidate_maps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::{ModuleVisitor, Param};

    /// Counts trainable elements (weights, biases, BN gamma/beta), not BN running statistics,
    /// which burn's `num_params()` includes. Needs the model on an autodiff device.
    struct Trainable(usize);
    impl ModuleVisitor for Trainable {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let value = param.val();
            if value.is_require_grad() {
                self.0 += value.shape().num_elements();
            }
        }
    }

    fn trainable(t: &Teacher) -> usize {
        let mut v = Trainable(0);
        t.visit(&mut v);
        v.0
    }

    #[test]
    fn shapes_of_the_taps() {
        let dev = Device::flex();
        let t = TeacherConfig::preset(TeacherPreset::Tiny, 1, 10).init(&dev);
        let out = t.forward_taps(Tensor::zeros([2, 1, 28, 28], &dev));
        assert_eq!(out.logits.dims(), [2, 10]);
        assert_eq!(out.embedding.dims(), [2, 32]);
        let shapes: Vec<[usize; 4]> = out.feature_maps.iter().map(|f| f.dims()).collect();
        assert_eq!(shapes, vec![[2, 8, 14, 14], [2, 16, 7, 7], [2, 32, 4, 4]]);
    }

    #[test]
    fn preset_parameter_counts_match_the_docs() {
        let dev = Device::flex().autodiff();
        let count = |p| trainable(&TeacherConfig::preset(p, 1, 10).init(&dev));
        // Exact counts; the module docs round them.
        assert_eq!(count(TeacherPreset::Tiny), 19_810);
        assert_eq!(count(TeacherPreset::Small), 77_754);
        assert_eq!(count(TeacherPreset::Base), 308_074);
        assert_eq!(count(TeacherPreset::Large), 696_042);
    }

    #[test]
    fn bad_configs_are_rejected() {
        assert!(TeacherConfig::new().with_widths(vec![]).validate().is_err());
        assert!(TeacherConfig::new()
            .with_widths(vec![8, 0])
            .validate()
            .is_err());
        assert!(TeacherConfig::new()
            .with_blocks_per_stage(0)
            .validate()
            .is_err());
        assert!(TeacherConfig::new().with_classes(0).validate().is_err());
        // One output: a regression head.
        assert!(TeacherConfig::new().with_classes(1).validate().is_ok());
        assert!(TeacherConfig::new().validate().is_ok());
    }
}
