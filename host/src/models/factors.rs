//! Factor networks of Knowledge Factorization (Yang, Ye, Wang, "Factorizing Knowledge in Neural
//! Networks", ECCV 2022) and their assembly into one exportable student.
//!
//! A **task** is a group of the dataset's classes plus an "other" class for every image outside the
//! group (`tops` = T-shirt, pullover, coat, shirt or other). A **factor network** for a task is a
//! plain [`Student`]: the shared common-knowledge network (CKN, `common`), then the task-specific
//! network (TSN, `task_layers`, reading the CKN's output map), then a dense head with one logit per
//! class of the task plus "other".
//!
//! Every factor shares the CKN, and every TSN has the same layer list, so any subset of factors is
//! exactly one sequential network ([`FactorLayout::assembled_config`]):
//!
//! ```text
//! CKN layers (shared, once)
//! TSN layer 1: conv with out = Σ over tasks of the factors' outputs (their weights stacked)
//! TSN layer k: grouped conv, groups = tasks × the factor's own groups (weights stacked)
//! pools, global average pooling (per channel: unchanged)
//! head: dense, block-diagonal stack of the task heads: logits = the tasks' logits concatenated
//! ```
//!
//! [`assemble`] builds it from factor networks and [`split`] is its inverse, so assembly needs no
//! fine-tuning: the assembled network's logits for task `t` are bit-for-bit factor `t`'s (the only
//! difference is summation order in the first TSN convolution, which reads the same inputs).
//!
//! The paper's factor adds the pooled CKN feature to the TSN feature before the head
//! (`head(F_c + F_t)`, with the TSN reading the image); a sequential layer list cannot express that
//! sum, so here the TSN reads the CKN's map instead and the head sees `F_t` alone: the common
//! knowledge reaches every task through the TSN's input.
//!
//! During training the whole set of factors is one [`FactorNet`]: the all-task assembled student
//! whose dense head is projected back to block-diagonal after every step, which is the same as
//! training the factors side by side with one shared CKN.

use burn::module::{Param, RunningState};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

use super::student::{
    Activation, DenseSpec, LayerSpec, Student, StudentConfig, StudentConfigError, StudentLayer,
};
use super::{Classifier, Output};

/// One task: a named group of the dataset's classes; every other class is the task's "other".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Name used on the command line (`--tasks tops,footwear`) and in reports.
    pub name: String,
    /// The dataset classes the task tells apart; its logit `i` is `classes[i]`, and its last logit
    /// is "other".
    pub classes: Vec<usize>,
}

impl TaskSpec {
    /// Logits of the task's head: its classes plus "other".
    pub fn outputs(&self) -> usize {
        self.classes.len() + 1
    }

    /// The task's label of dataset class `class`: its position in [`TaskSpec::classes`], or the
    /// "other" index.
    pub fn label_of(&self, class: usize) -> usize {
        self.classes
            .iter()
            .position(|&c| c == class)
            .unwrap_or(self.classes.len())
    }
}

/// The Fashion-MNIST tasks used by default: tops, bottoms and dresses, footwear, bags.
pub fn fashion_tasks() -> Vec<TaskSpec> {
    let task = |name: &str, classes: &[usize]| TaskSpec {
        name: name.into(),
        classes: classes.to_vec(),
    };
    vec![
        task("tops", &[0, 2, 4, 6]),
        task("bottoms", &[1, 3]),
        task("footwear", &[5, 7, 9]),
        task("bags", &[8]),
    ]
}

/// An error in a factorization's tasks or layers, or between factor networks being assembled.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum FactorError {
    /// The task list or a task is invalid; `key` names it (`kf.tasks`, `kf.tasks.tops`).
    #[error("{key}: {reason}")]
    Tasks {
        /// The offending key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// A layer list is invalid; `key` names it (`kf.common`, `kf.task_layers`).
    #[error("{key}: {reason}")]
    Layers {
        /// The offending key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// Factor networks cannot be assembled (different layer lists or different CKN weights).
    #[error("assembly: {0}")]
    Assembly(String),
}

fn tasks_err(key: impl Into<String>, reason: impl Into<String>) -> FactorError {
    FactorError::Tasks {
        key: key.into(),
        reason: reason.into(),
    }
}

fn layers_err(key: &str, reason: impl Into<String>) -> FactorError {
    FactorError::Layers {
        key: key.into(),
        reason: reason.into(),
    }
}

/// The shape of a factorization: input, CKN, TSN and the tasks (in logit order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FactorLayout {
    /// Input channels.
    pub in_channels: usize,
    /// Input height and width.
    pub input_size: [usize; 2],
    /// The common-knowledge network's layers.
    pub common: Vec<LayerSpec>,
    /// Each task-specific network's layers (the same list for every task), without the head.
    pub task_layers: Vec<LayerSpec>,
    /// The tasks, in the order of their logits.
    pub tasks: Vec<TaskSpec>,
}

impl FactorLayout {
    /// Checks the tasks against `classes` dataset classes and the layers against each other.
    ///
    /// # Errors
    /// [`FactorError::Tasks`] for no task, an empty or duplicated name, an empty task, a class past
    /// the dataset's, a repeated class or a task with no "other" class left;
    /// [`FactorError::Layers`] for an empty CKN or TSN, a layer kind that cannot be stacked
    /// (binary or dense layers), or layers that do not fit the input.
    pub fn validate(&self, classes: usize) -> Result<(), FactorError> {
        if self.tasks.is_empty() {
            return Err(tasks_err("kf.tasks", "needs at least one task"));
        }
        for (i, t) in self.tasks.iter().enumerate() {
            let key = format!("kf.tasks.{}", t.name);
            if t.name.is_empty() || t.name.contains([',', '/', ' ']) {
                return Err(tasks_err(
                    format!("kf.tasks[{i}].name"),
                    format!(
                        "`{}` is not a usable name (non-empty, no `,`, `/` or space)",
                        t.name
                    ),
                ));
            }
            if self.tasks[..i].iter().any(|o| o.name == t.name) {
                return Err(tasks_err(key, "two tasks have this name"));
            }
            if t.classes.is_empty() {
                return Err(tasks_err(key, "lists no class"));
            }
            if let Some(c) = t.classes.iter().find(|&&c| c >= classes) {
                return Err(tasks_err(
                    key,
                    format!("class {c} does not exist (the dataset has {classes})"),
                ));
            }
            if (1..t.classes.len()).any(|j| t.classes[..j].contains(&t.classes[j])) {
                return Err(tasks_err(key, "lists a class twice"));
            }
            if t.classes.len() >= classes {
                return Err(tasks_err(
                    key,
                    "covers every class, so its \"other\" class would be empty",
                ));
            }
        }
        if self.common.is_empty() {
            return Err(layers_err("kf.common", "needs at least one layer"));
        }
        if self.task_layers.is_empty() {
            return Err(layers_err("kf.task_layers", "needs at least one layer"));
        }
        for (key, list) in [
            ("kf.common", &self.common),
            ("kf.task_layers", &self.task_layers),
        ] {
            if let Some((i, _)) = list.iter().enumerate().find(|(_, l)| {
                !matches!(
                    l,
                    LayerSpec::Conv(_)
                        | LayerSpec::MaxPool(_)
                        | LayerSpec::AvgPool(_)
                        | LayerSpec::GlobalAvgPool
                )
            }) {
                return Err(layers_err(
                    key,
                    format!("layer {i}: only conv, max_pool, avg_pool and global_avg_pool stack"),
                ));
            }
        }
        if !matches!(self.task_layers.first(), Some(LayerSpec::Conv(_))) {
            return Err(layers_err(
                "kf.task_layers",
                "must start with a conv (the layer that reads the common features)",
            ));
        }
        self.assembled_config()
            .shapes()
            .map_err(|e| layers_err("kf.common / kf.task_layers", e.to_string()))?;
        Ok(())
    }

    /// The layout restricted to the tasks named in `names`, in that order.
    ///
    /// # Errors
    /// [`FactorError::Tasks`] for an empty list, an unknown name (listing the known ones) or a name
    /// given twice.
    pub fn subset(&self, names: &[String]) -> Result<Self, FactorError> {
        if names.is_empty() {
            return Err(tasks_err("--tasks", "names no task"));
        }
        let mut tasks = Vec::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(tasks_err("--tasks", format!("task `{n}` is named twice")));
            }
            let t = self.tasks.iter().find(|t| &t.name == n).ok_or_else(|| {
                let known: Vec<&str> = self.tasks.iter().map(|t| t.name.as_str()).collect();
                tasks_err(
                    "--tasks",
                    format!("unknown task `{n}`; the factors are {}", known.join(", ")),
                )
            })?;
            tasks.push(t.clone());
        }
        Ok(Self {
            tasks,
            ..self.clone()
        })
    }

    /// Offsets of each task's logits in the assembled network's output, and the total.
    pub fn logit_offsets(&self) -> (Vec<usize>, usize) {
        let mut offsets = Vec::with_capacity(self.tasks.len());
        let mut total = 0;
        for t in &self.tasks {
            offsets.push(total);
            total += t.outputs();
        }
        (offsets, total)
    }

    /// The factor network of task `task` (index into [`FactorLayout::tasks`]): CKN, TSN, head.
    pub fn factor_config(&self, task: usize) -> StudentConfig {
        let mut layers = self.common.clone();
        layers.extend(self.task_layers.iter().cloned());
        layers.push(head(self.tasks[task].outputs()));
        self.student(layers)
    }

    /// The assembled network of every task in [`FactorLayout::tasks`] (see the module docs).
    pub fn assembled_config(&self) -> StudentConfig {
        let n = self.tasks.len();
        let mut layers = self.common.clone();
        for (i, l) in self.task_layers.iter().enumerate() {
            layers.push(match l {
                LayerSpec::Conv(s) => {
                    let mut s = s.clone();
                    s.out *= n;
                    if i > 0 {
                        s.groups *= n;
                    }
                    LayerSpec::Conv(s)
                }
                other => other.clone(),
            });
        }
        layers.push(head(self.logit_offsets().1));
        self.student(layers)
    }

    fn student(&self, layers: Vec<LayerSpec>) -> StudentConfig {
        StudentConfig {
            in_channels: self.in_channels,
            channels: None,
            input_size: self.input_size,
            layers,
        }
    }

    /// The conv layers of the CKN, as indices into [`Output::feature_maps`] of a factor or
    /// assembled network (the CKN's convolutions are its first feature maps).
    pub fn common_taps(&self) -> usize {
        self.common
            .iter()
            .filter(|l| matches!(l, LayerSpec::Conv(_)))
            .count()
    }

    /// Output channels of each CKN convolution, shallow to deep.
    pub fn common_channels(&self) -> Vec<usize> {
        self.common
            .iter()
            .filter_map(|l| match l {
                LayerSpec::Conv(s) => Some(s.out),
                _ => None,
            })
            .collect()
    }

    /// `[Σ outputs, classes]`: column `c` picks, in every task, the logit of class `c` (its own
    /// class or "other"). Log-probabilities of the tasks times this matrix give each class's
    /// joint log-likelihood under the tasks ([`FactorNet`]'s 10-class scores).
    pub fn decode_matrix(&self, classes: usize, device: &Device) -> Tensor<2> {
        let (offsets, total) = self.logit_offsets();
        let mut m = vec![0f32; total * classes];
        for (t, off) in self.tasks.iter().zip(offsets) {
            for c in 0..classes {
                m[(off + t.label_of(c)) * classes + c] = 1.0;
            }
        }
        Tensor::from_data(TensorData::new(m, [total, classes]), device)
    }

    /// Per-task log-probabilities of assembled logits `[batch, Σ outputs]`, concatenated.
    pub fn task_log_probs(&self, logits: Tensor<2>) -> Tensor<2> {
        let (offsets, _) = self.logit_offsets();
        let parts = self
            .tasks
            .iter()
            .zip(offsets)
            .map(|(t, off)| log_softmax(logits.clone().narrow(1, off, t.outputs()), 1))
            .collect();
        Tensor::cat(parts, 1)
    }
}

fn head(out: usize) -> LayerSpec {
    LayerSpec::Dense(DenseSpec {
        out,
        activation: Activation::None,
    })
}

/// All factors of a layout trained together: the assembled student of every task, its dense head
/// kept block-diagonal (each task's logits read only its own TSN's features).
///
/// Its [`Output`]:
/// - `logits`: `[batch, classes]`, each dataset class's joint log-likelihood under the tasks,
///   `Σ_t log p_t(label_t(c))`: what the trainer's accuracy and the per-epoch test accuracy
///   measure (ten-class accuracy of the factors together);
/// - `embedding`: the tasks' logits concatenated, `[batch, Σ outputs]` (the input of that
///   decoding);
/// - `feature_maps`: the student's convolution outputs (the CKN's first), then the TSNs' features
///   (the dense head's input) as `[batch, features, 1, 1]`.
#[derive(Module, Debug)]
pub struct FactorNet {
    /// The assembled student of every task.
    pub net: Student,
    /// What the factors are.
    #[module(skip)]
    pub layout: FactorLayout,
    /// Dataset classes (width of the decoded logits).
    #[module(skip)]
    pub classes: usize,
}

impl FactorNet {
    /// A fresh set of factors for `layout` on `device` (head initialised block-diagonal).
    ///
    /// # Errors
    /// The layout's layers do not fit its input.
    pub fn init(
        layout: FactorLayout,
        classes: usize,
        device: &Device,
    ) -> Result<Self, StudentConfigError> {
        let net = layout.assembled_config().init(device)?;
        Ok(Self {
            net,
            layout,
            classes,
        }
        .block_diagonal())
    }

    /// `[features, Σ outputs]` mask of the head's block-diagonal entries.
    fn head_mask(&self, features: usize, device: &Device) -> Tensor<2> {
        let n = self.layout.tasks.len();
        let per_task = features / n;
        let (offsets, total) = self.layout.logit_offsets();
        let mut m = vec![0f32; features * total];
        for (t, (task, off)) in self.layout.tasks.iter().zip(offsets).enumerate() {
            for f in t * per_task..(t + 1) * per_task {
                for o in off..off + task.outputs() {
                    m[f * total + o] = 1.0;
                }
            }
        }
        Tensor::from_data(TensorData::new(m, [features, total]), device)
    }

    /// Zeroes the head's off-diagonal blocks.
    fn block_diagonal(mut self) -> Self {
        let Some(StudentLayer::Dense(d)) = self.net.layers.last() else {
            return self;
        };
        let w = d.linear.weight.val();
        let mask = self.head_mask(w.dims()[0], &w.device());
        if let Some(StudentLayer::Dense(d)) = self.net.layers.last_mut() {
            // A projection, not a differentiable step: detached, then a leaf again when it was
            // one (the same id, so the optimizer's state for it carries on).
            d.linear.weight = d.linear.weight.clone().map(|w| {
                let grad = w.is_require_grad();
                let w = (w.detach() * mask).detach();
                if grad {
                    w.require_grad()
                } else {
                    w
                }
            });
        }
        self
    }
}

impl Classifier for FactorNet {
    fn forward_taps(&self, x: Tensor<4>) -> Output {
        let out = self.net.forward_taps(x);
        let device = out.logits.device();
        let decoded = self
            .layout
            .task_log_probs(out.logits.clone())
            .matmul(self.layout.decode_matrix(self.classes, &device));
        let mut feature_maps = out.feature_maps;
        feature_maps.push(out.embedding.unsqueeze_dims(&[2, 3]));
        Output {
            logits: decoded,
            embedding: out.logits,
            feature_maps,
            candidate_maps: out.candidate_maps,
        }
    }

    fn after_step(mut self) -> Self {
        self.net = self.net.after_step();
        self.block_diagonal()
    }
}

fn param<const D: usize>(t: Tensor<D>) -> Param<Tensor<D>> {
    Param::from_tensor(t)
}

/// Builds the assembled network of `layout` (see the module docs) from its factor networks,
/// `factors[t]` being the factor of `layout.tasks[t]`, on `device`.
///
/// # Errors
/// [`FactorError::Assembly`] when the count differs from the tasks', a factor's layer list is not
/// the layout's, or the factors' CKN weights differ (they come from different factorizations).
pub fn assemble(
    layout: &FactorLayout,
    factors: &[Student],
    device: &Device,
) -> Result<Student, FactorError> {
    let asm = |m: String| FactorError::Assembly(m);
    if factors.len() != layout.tasks.len() || factors.is_empty() {
        return Err(asm(format!(
            "{} factor networks for {} tasks",
            factors.len(),
            layout.tasks.len()
        )));
    }
    for (t, f) in factors.iter().enumerate() {
        if f.config.layers != layout.factor_config(t).layers {
            return Err(asm(format!(
                "factor `{}` does not have the layout's layer list",
                layout.tasks[t].name
            )));
        }
    }
    let mut out = layout
        .assembled_config()
        .init(device)
        .map_err(|e| asm(e.to_string()))?;
    let common = layout.common.len();
    let head_at = out.layers.len() - 1;
    for (i, layer) in out.layers.iter_mut().enumerate() {
        let parts: Vec<&StudentLayer> = factors.iter().map(|f| &f.layers[i]).collect();
        if i < common {
            for (t, p) in parts.iter().enumerate().skip(1) {
                if !same_layer(parts[0], p) {
                    return Err(asm(format!(
                        "CKN layer {i} of factor `{}` differs from factor `{}`'s: factors of \
                         different factorizations cannot be assembled",
                        layout.tasks[t].name, layout.tasks[0].name
                    )));
                }
            }
            *layer = copy_layer(parts[0], device);
        } else if i == head_at {
            stack_heads(layer, &parts, device);
        } else {
            stack_conv(layer, &parts, device);
        }
    }
    Ok(out)
}

/// The factor networks of an assembled network of `layout`, in task order: the inverse of
/// [`assemble`].
///
/// # Errors
/// [`FactorError::Assembly`] when `net` does not have the layout's assembled layer list.
pub fn split(
    layout: &FactorLayout,
    net: &Student,
    device: &Device,
) -> Result<Vec<Student>, FactorError> {
    if net.config.layers != layout.assembled_config().layers {
        return Err(FactorError::Assembly(
            "the network is not the layout's assembled network".into(),
        ));
    }
    let n = layout.tasks.len();
    let common = layout.common.len();
    let (offsets, _) = layout.logit_offsets();
    let mut factors = Vec::with_capacity(n);
    for (t, &offset) in offsets.iter().enumerate() {
        let mut f = layout
            .factor_config(t)
            .init(device)
            .map_err(|e| FactorError::Assembly(e.to_string()))?;
        let head_at = f.layers.len() - 1;
        for (i, layer) in f.layers.iter_mut().enumerate() {
            let src = &net.layers[i];
            if i < common {
                *layer = copy_layer(src, device);
            } else if i == head_at {
                if let (StudentLayer::Dense(dst), StudentLayer::Dense(s)) = (&mut *layer, src) {
                    let w = s.linear.weight.val().to_device(device);
                    let [features, _] = w.dims();
                    let per = features / n;
                    let outs = layout.tasks[t].outputs();
                    dst.linear.weight =
                        param(w.slice([t * per..(t + 1) * per, offset..offset + outs]));
                    if let Some(b) = &s.linear.bias {
                        dst.linear.bias =
                            Some(param(b.val().to_device(device).narrow(0, offset, outs)));
                    }
                }
            } else if let (StudentLayer::Conv(dst), StudentLayer::Conv(s)) = (&mut *layer, src) {
                let out = dst.conv.weight.dims()[0];
                let part = |x: Tensor<1>| x.to_device(device).narrow(0, t * out, out);
                dst.conv.weight = param(s.conv.weight.val().to_device(device).narrow(
                    0,
                    t * out,
                    out,
                ));
                dst.conv.bias = s.conv.bias.as_ref().map(|b| param(part(b.val())));
                if let (Some(d), Some(sb)) = (&mut dst.bn, &s.bn) {
                    d.gamma = param(part(sb.gamma.val()));
                    d.beta = param(part(sb.beta.val()));
                    d.running_mean = RunningState::new(part(sb.running_mean.value()));
                    d.running_var = RunningState::new(part(sb.running_var.value()));
                }
            }
        }
        factors.push(f);
    }
    Ok(factors)
}

/// Whether two layers hold the same weights and statistics (exactly).
fn same_layer(a: &StudentLayer, b: &StudentLayer) -> bool {
    let eq = |x: Tensor<1>, y: Tensor<1>| x.dims() == y.dims() && x.to_data() == y.to_data();
    match (a, b) {
        (StudentLayer::Conv(x), StudentLayer::Conv(y)) => {
            let flat = |c: &super::student::ConvBlock| {
                let mut v = vec![c.conv.weight.val().flatten::<1>(0, 3)];
                v.extend(c.conv.bias.as_ref().map(|b| b.val()));
                if let Some(bn) = &c.bn {
                    v.extend([
                        bn.gamma.val(),
                        bn.beta.val(),
                        bn.running_mean.value(),
                        bn.running_var.value(),
                    ]);
                }
                v
            };
            let (fx, fy) = (flat(x), flat(y));
            fx.len() == fy.len() && fx.into_iter().zip(fy).all(|(p, q)| eq(p, q))
        }
        (StudentLayer::MaxPool(_), StudentLayer::MaxPool(_))
        | (StudentLayer::AvgPool(_), StudentLayer::AvgPool(_))
        | (StudentLayer::GlobalAvgPool(_), StudentLayer::GlobalAvgPool(_)) => true,
        _ => false,
    }
}

/// A copy of a (conv or parameter-free) layer on `device`.
fn copy_layer(src: &StudentLayer, device: &Device) -> StudentLayer {
    match src {
        StudentLayer::Conv(c) => {
            let mut c = c.clone();
            c.conv.weight = param(c.conv.weight.val().to_device(device));
            c.conv.bias = c.conv.bias.map(|b| param(b.val().to_device(device)));
            if let Some(bn) = &mut c.bn {
                bn.gamma = param(bn.gamma.val().to_device(device));
                bn.beta = param(bn.beta.val().to_device(device));
                bn.running_mean = RunningState::new(bn.running_mean.value().to_device(device));
                bn.running_var = RunningState::new(bn.running_var.value().to_device(device));
            }
            StudentLayer::Conv(c)
        }
        other => other.clone(),
    }
}

/// Stacks the factors' convolutions (and BatchNorms) along output channels into `dst`.
fn stack_conv(dst: &mut StudentLayer, parts: &[&StudentLayer], device: &Device) {
    let StudentLayer::Conv(dst) = dst else {
        return;
    };
    let convs: Vec<&super::student::ConvBlock> = parts
        .iter()
        .filter_map(|p| match p {
            StudentLayer::Conv(c) => Some(c),
            _ => None,
        })
        .collect();
    let cat1 = |f: &dyn Fn(&super::student::ConvBlock) -> Tensor<1>| {
        Tensor::cat(convs.iter().map(|c| f(c).to_device(device)).collect(), 0)
    };
    dst.conv.weight = param(Tensor::cat(
        convs
            .iter()
            .map(|c| c.conv.weight.val().to_device(device))
            .collect(),
        0,
    ));
    if dst.conv.bias.is_some() {
        dst.conv.bias = Some(param(cat1(&|c| {
            c.conv.bias.as_ref().map_or_else(
                || Tensor::zeros([c.conv.weight.dims()[0]], device),
                |b| b.val(),
            )
        })));
    }
    if let Some(bn) = &mut dst.bn {
        let norms: Vec<&BatchNorm> = convs.iter().filter_map(|c| c.bn.as_ref()).collect();
        let cat = |f: fn(&BatchNorm) -> Tensor<1>| {
            Tensor::cat(norms.iter().map(|b| f(b).to_device(device)).collect(), 0)
        };
        bn.gamma = param(cat(|b| b.gamma.val()));
        bn.beta = param(cat(|b| b.beta.val()));
        bn.running_mean = RunningState::new(cat(|b| b.running_mean.value()));
        bn.running_var = RunningState::new(cat(|b| b.running_var.value()));
    }
}

/// The block-diagonal stack of the factors' dense heads into `dst`.
fn stack_heads(dst: &mut StudentLayer, parts: &[&StudentLayer], device: &Device) {
    let StudentLayer::Dense(dst) = dst else {
        return;
    };
    let mut w = Tensor::<2>::zeros(dst.linear.weight.dims(), device);
    let mut biases = Vec::with_capacity(parts.len());
    let (mut row, mut col) = (0, 0);
    for p in parts {
        if let StudentLayer::Dense(d) = p {
            let block = d.linear.weight.val().to_device(device);
            let [r, c] = block.dims();
            w = w.slice_assign([row..row + r, col..col + c], block);
            biases.push(
                d.linear
                    .bias
                    .as_ref()
                    .map_or_else(|| Tensor::zeros([c], device), |b| b.val().to_device(device)),
            );
            row += r;
            col += c;
        }
    }
    dst.linear.weight = param(w);
    if dst.linear.bias.is_some() {
        dst.linear.bias = Some(param(Tensor::cat(biases, 0)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::distill::kf::KfConfig;
    use burn::tensor::Distribution;

    fn dev() -> Device {
        Device::flex()
    }

    fn layout() -> FactorLayout {
        KfConfig::default().layout([1, 12, 12])
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().expect("f32")
    }

    /// A trained-looking set of factors: random weights, non-trivial BatchNorm statistics.
    fn factors(layout: &FactorLayout, device: &Device) -> Vec<Student> {
        device.seed(3);
        let mut net = FactorNet::init(layout.clone(), 10, device).expect("valid layout");
        // A few training-mode passes move the running statistics off their initial values.
        for _ in 0..3 {
            let x = Tensor::<4>::random([8, 1, 12, 12], Distribution::Normal(0.0, 1.0), device);
            let _ = net.net.forward_taps(x);
        }
        net = net.after_step();
        split(layout, &net.net.valid(), device).expect("split")
    }

    #[test]
    fn assembled_logits_are_each_factors_logits() {
        let d = dev();
        let all = layout();
        let fs = factors(&all, &d);
        let x = Tensor::<4>::random([5, 1, 12, 12], Distribution::Normal(0.0, 1.0), &d);
        // The subset footwear, tops (out of order on purpose).
        let names = ["footwear".to_string(), "tops".to_string()];
        let sub = all.subset(&names).expect("known tasks");
        let picked: Vec<Student> = names
            .iter()
            .map(|n| fs[all.tasks.iter().position(|t| &t.name == n).unwrap()].clone())
            .collect();
        let net = assemble(&sub, &picked, &d).expect("assembles");
        assert_eq!(net.config.layers.len(), sub.assembled_config().layers.len());
        let out = net.valid().forward(x.clone());
        let (offsets, total) = sub.logit_offsets();
        assert_eq!(out.dims(), [5, total]);
        for (t, f) in picked.iter().enumerate() {
            let want = values(f.valid().forward(x.clone()));
            let got = values(out.clone().narrow(1, offsets[t], sub.tasks[t].outputs()));
            let worst = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst < 1e-5, "task {t}: worst difference {worst}");
        }
    }

    #[test]
    fn assembling_every_factor_gives_back_the_trained_network() {
        let d = dev();
        let all = layout();
        d.seed(5);
        let net = FactorNet::init(all.clone(), 10, &d).expect("valid").net;
        let fs = split(&all, &net, &d).expect("split");
        let again = assemble(&all, &fs, &d).expect("assembles");
        let x = Tensor::<4>::random([3, 1, 12, 12], Distribution::Normal(0.0, 1.0), &d);
        let (a, b) = (
            values(net.valid().forward(x.clone())),
            values(again.valid().forward(x)),
        );
        assert_eq!(a, b);
    }

    #[test]
    fn the_head_stays_block_diagonal() {
        let d = dev();
        let all = layout();
        let net = FactorNet::init(all.clone(), 10, &d).expect("valid");
        let Some(StudentLayer::Dense(head)) = net.net.layers.last() else {
            panic!("a dense head");
        };
        let w = head.linear.weight.val();
        // Features of task 0 (the first 16) never reach task 1's logits (5..8).
        let off: f32 = w.clone().slice([0..16, 5..8]).abs().sum().into_scalar();
        let on: f32 = w.slice([0..16, 0..5]).abs().sum().into_scalar();
        assert_eq!(off, 0.0);
        assert!(on > 0.0);
    }

    #[test]
    fn factors_of_different_factorizations_do_not_assemble() {
        let d = dev();
        let all = layout();
        let a = factors(&all, &d);
        d.seed(99);
        let other = FactorNet::init(all.clone(), 10, &d).expect("valid").net;
        let b = split(&all, &other, &d).expect("split");
        let sub = all.subset(&["tops".into(), "bags".into()]).expect("known");
        let err = assemble(&sub, &[a[0].clone(), b[3].clone()], &d).unwrap_err();
        assert!(err.to_string().contains("CKN layer 0"), "{err}");
    }

    #[test]
    fn bad_subsets_and_tasks_are_named_errors() {
        let all = layout();
        let err = all.subset(&[]).unwrap_err().to_string();
        assert!(err.starts_with("--tasks: names no task"), "{err}");
        let err = all.subset(&["shoes".into()]).unwrap_err().to_string();
        assert!(
            err.contains("unknown task `shoes`") && err.contains("tops, bottoms, footwear, bags"),
            "{err}"
        );
        let err = all
            .subset(&["tops".into(), "tops".into()])
            .unwrap_err()
            .to_string();
        assert!(err.contains("named twice"), "{err}");

        let with = |tasks: Vec<TaskSpec>| FactorLayout { tasks, ..layout() };
        let task = |name: &str, classes: &[usize]| TaskSpec {
            name: name.into(),
            classes: classes.to_vec(),
        };
        let cases = [
            (with(vec![]), "kf.tasks: needs at least one task"),
            (with(vec![task("a", &[])]), "kf.tasks.a: lists no class"),
            (
                with(vec![task("a", &[3, 10])]),
                "kf.tasks.a: class 10 does not exist",
            ),
            (
                with(vec![task("a", &[3, 3])]),
                "kf.tasks.a: lists a class twice",
            ),
            (
                with(vec![task("a", &(0..10).collect::<Vec<_>>())]),
                "kf.tasks.a: covers every class",
            ),
            (
                with(vec![task("a", &[1]), task("a", &[2])]),
                "kf.tasks.a: two tasks have this name",
            ),
            (
                with(vec![task("a,b", &[1])]),
                "kf.tasks[0].name: `a,b` is not a usable name",
            ),
        ];
        for (l, want) in cases {
            let err = l.validate(10).unwrap_err().to_string();
            assert!(err.starts_with(want), "{err} (wanted {want})");
        }
        let mut l = layout();
        l.task_layers = vec![LayerSpec::GlobalAvgPool];
        let err = l.validate(10).unwrap_err().to_string();
        assert!(
            err.starts_with("kf.task_layers: must start with a conv"),
            "{err}"
        );
        assert!(layout().validate(10).is_ok());
    }

    #[test]
    fn decoding_scores_each_class_under_every_task() {
        let d = dev();
        let l = layout();
        let (_, total) = l.logit_offsets();
        // Uniform task logits: class 8 (bags: 2 outputs) scores ln ½ + ln ⅕ + ln ⅓ + ln ¼.
        let net_logits = Tensor::<2>::zeros([1, total], &d);
        let s = values(l.task_log_probs(net_logits).matmul(l.decode_matrix(10, &d)));
        let want = (0.5f32 * 0.2 / 3.0 * 0.25).ln();
        assert!((s[8] - want).abs() < 1e-5, "{} vs {want}", s[8]);
    }
}
