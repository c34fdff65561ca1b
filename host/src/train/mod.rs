//! The training loop: one code path for plain cross-entropy training and for distillation.
//!
//! What is optimized is a [`Trainee`]: the model (any [`Classifier`]) plus, when distilling, the
//! method (any [`Distiller`], a burn module holding the method's trainable auxiliaries). Each step
//! computes
//!
//! ```text
//! loss = γ · CE(model(x), y) + Σ terms          terms = method.loss(model taps, teacher taps, ctx)
//! ```
//!
//! where the teacher is a [`FrozenTeacher`] (a [`Module::valid`] copy: plain device, no graph,
//! BatchNorm in eval mode) and the terms come already weighted. Without a teacher the sum is
//! empty and the loop is ordinary supervised training.
//!
//! Around the step, [`fit`] runs the epochs with a stateless [`ScheduleConfig`], evaluates after
//! each epoch, appends to `metrics.jsonl` ([`metrics`]), writes a [`checkpoint`] per epoch and
//! resumes from the newest one. Everything random in an epoch is seeded from `(seed, epoch)`, so a
//! run interrupted after a checkpoint and resumed ends with bit-identical weights to an
//! uninterrupted run (tested in `host/tests/train_resume.rs`). A non-finite loss stops the run with
//! [`TrainError::NonFinite`] before that step is applied, leaving the last good checkpoint as the
//! newest.
//!
//! An [`EpochHook`] runs before every epoch and may replace the model: it is how a student is
//! switched to quantization-aware training for the last epochs.

pub mod checkpoint;
pub mod ensemble;
mod fit;
pub mod metrics;
mod optim;
pub mod run;
mod schedule;

use std::path::PathBuf;

use burn::module::{ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::Loader;
use crate::distill::{Distiller, LossTerm, StepContext};
use crate::eval::EvalReport;
use crate::models::{Classifier, Output};

pub use checkpoint::CheckpointState;
pub use fit::fit;
pub use optim::{OptimConfig, OptimizerKind};
pub use run::{load_model, probe_shape, run, RunError, RunModel, RunReport};
pub use schedule::{Granularity, ScheduleConfig, ScheduleKind};

/// The modules the optimizer updates together: the model being trained and, when distilling, the
/// method's auxiliary modules. Checkpoints save both; export uses only `model`.
#[derive(Module, Debug)]
pub struct Trainee<S, D> {
    /// The network being trained.
    pub model: S,
    /// The distillation method, `None` for plain training.
    pub method: Option<D>,
}

impl<S: Classifier> Trainee<S, NoDistill> {
    /// Plain supervised training of `model`.
    pub fn plain(model: S) -> Self {
        Self {
            model,
            method: None,
        }
    }
}

impl<S: Classifier, D: Distiller> Trainee<S, D> {
    /// Distillation of a teacher into `model` with `method`.
    pub fn distill(model: S, method: D) -> Self {
        Self {
            model,
            method: Some(method),
        }
    }
}

/// The method type of plain training: contributes no loss term and has no parameters.
#[derive(Module, Debug)]
pub struct NoDistill;

impl Distiller for NoDistill {
    fn loss(&self, _student: &Output, _teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        Vec::new()
    }
}

/// A teacher as the training loop uses it: taps from a frozen copy. Object-safe, so the loop is
/// not generic over the teacher's type.
pub trait TeacherTaps {
    /// The teacher's taps for `x` (any device; moved off autodiff first), as constants.
    fn taps(&self, x: Tensor<4>) -> Output;
}

/// A teacher frozen for distillation: a [`Module::valid`] copy, on the plain device, with
/// BatchNorm in eval mode and no parameter ever receiving a gradient.
#[derive(Debug, Clone)]
pub struct FrozenTeacher<T> {
    model: T,
}

impl<T: Classifier> FrozenTeacher<T> {
    /// Freezes a copy of `teacher`.
    pub fn new(teacher: &T) -> Self {
        Self {
            model: teacher.valid(),
        }
    }

    /// The frozen copy.
    pub fn model(&self) -> &T {
        &self.model
    }
}

impl<T: Classifier> TeacherTaps for FrozenTeacher<T> {
    fn taps(&self, x: Tensor<4>) -> Output {
        self.model.forward_taps(x.without_autodiff())
    }
}

/// What an [`EpochHook`] can see besides the model.
#[derive(Debug)]
pub struct HookContext<'a> {
    /// The training data (for calibration, say; `train.epoch(seed, epoch, device)` replays an
    /// epoch's batches).
    pub train: &'a Loader<'a>,
    /// The training (autodiff) device.
    pub device: &'a Device,
    /// Total epochs of the run.
    pub epochs: usize,
}

/// Code run before every epoch, including the first epoch after a resume.
///
/// For exact resume the hook must be a function of `(epoch, model, its own saved state)`: what it
/// decided earlier (for instance the activation ranges it calibrated when it switched a student to
/// quantization-aware training) belongs in [`EpochHook::state`], which every checkpoint stores and
/// [`EpochHook::restore`] gets back.
pub trait EpochHook<S> {
    /// Returns the model to train in epoch `epoch` (zero-based), possibly changed.
    ///
    /// # Errors
    /// A message; the run stops with [`TrainError::Hook`].
    fn before_epoch(&mut self, epoch: usize, model: S, ctx: &HookContext) -> Result<S, String>;

    /// State to store in each checkpoint (default: none).
    fn state(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// Restores the state stored by [`EpochHook::state`] when resuming.
    ///
    /// # Errors
    /// A message; the resume fails with [`TrainError::Hook`].
    fn restore(&mut self, state: serde_json::Value) -> Result<(), String> {
        let _ = state;
        Ok(())
    }
}

/// When to draw progress bars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgressMode {
    /// Only when stderr is a terminal.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ProgressMode {
    /// Whether bars are drawn in this process.
    pub fn visible(self) -> bool {
        use std::io::IsTerminal;
        match self {
            Self::Auto => std::io::stderr().is_terminal(),
            Self::Always => true,
            Self::Never => false,
        }
    }
}

/// The settings of a training run that the loop itself uses.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSettings {
    /// Epochs of the whole run (a resumed run continues up to this count).
    pub epochs: usize,
    /// Seed of everything random in an epoch.
    pub seed: u64,
    /// Optimizer.
    pub optim: OptimConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Weight γ of the model's cross-entropy term.
    pub ce_weight: f32,
    /// Label smoothing of the cross-entropy term (0 = none).
    pub label_smoothing: f32,
    /// Checkpoints to keep (the newest ones; at least 1).
    pub keep_checkpoints: usize,
    /// Write a `"step"` metrics line every this many steps (0 = only per epoch).
    pub log_every: usize,
    /// Draw progress bars (loss, accuracy, images/s) on stderr.
    pub progress: bool,
    /// Print one summary line per epoch on stderr (useful in logs, where bars are not drawn).
    pub report_epochs: bool,
    /// Continue from the newest checkpoint in the run directory instead of starting fresh.
    pub resume: bool,
}

impl TrainSettings {
    /// The loop settings a run configuration gives: its epochs, seed, optimizer, schedule and
    /// `[train]` keys, with cross-entropy weight `ce_weight` (γ), fresh or `resume`d.
    pub fn of(config: &crate::config::RunConfig, ce_weight: f32, resume: bool) -> Self {
        Self {
            epochs: config.train.epochs,
            seed: config.seed,
            optim: config.optim.clone(),
            schedule: config.schedule.clone(),
            ce_weight,
            label_smoothing: config.train.label_smoothing as f32,
            keep_checkpoints: config.train.keep_checkpoints,
            log_every: config.train.log_every,
            progress: config.train.progress.visible(),
            report_epochs: config.train.progress != ProgressMode::Never,
            resume,
        }
    }
}

/// The data, device, directory and collaborators of [`fit`].
pub struct FitContext<'a, S> {
    /// Training batches.
    pub train: &'a Loader<'a>,
    /// Evaluated after each epoch, if given.
    pub test: Option<&'a Loader<'a>>,
    /// The autodiff device to train on.
    pub device: &'a Device,
    /// The run directory (created if missing): checkpoints, `metrics.jsonl`, `model.bpk`.
    pub run_dir: PathBuf,
    /// The frozen teacher when distilling (required exactly when the trainee has a method).
    pub teacher: Option<&'a dyn TeacherTaps>,
    /// Runs before each epoch.
    pub hook: Option<&'a mut dyn EpochHook<S>>,
}

/// Means over one epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpochSummary {
    /// Zero-based epoch index.
    pub epoch: usize,
    /// Global step after the epoch.
    pub step: usize,
    /// Learning rate of the epoch's last step.
    pub lr: f64,
    /// Mean total loss.
    pub loss: f64,
    /// Mean (unweighted) cross-entropy; on a regression set, the mean squared error.
    pub ce: f64,
    /// Mean of each distillation term (already weighted), by name.
    pub terms: Vec<(String, f64)>,
    /// Top-1 accuracy on the (augmented) training batches, in training mode (0 on a regression
    /// set).
    pub train_accuracy: f64,
    /// Regression: mean absolute error on the training batches, in the task's measure.
    pub train_mae: Option<f64>,
    /// Test evaluation, if a test loader was given.
    pub test: Option<EvalReport>,
    /// Training throughput (excludes evaluation and checkpointing).
    pub images_per_sec: f64,
    /// Wall time of the training steps.
    pub seconds: f64,
}

/// What [`fit`] returns.
#[derive(Debug)]
pub struct FitOutcome<S, D> {
    /// The trained model and method.
    pub trainee: Trainee<S, D>,
    /// The epochs run in this call (not those before a resume).
    pub history: Vec<EpochSummary>,
    /// Epochs completed in total.
    pub epochs_done: usize,
}

/// Why training stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrainError {
    /// A file or directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A checkpoint file is unreadable or does not fit the model.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// Resume was asked for but the run has no completed checkpoint.
    #[error("no checkpoint to resume from in {}", dir.display())]
    NoCheckpoint {
        /// The run directory.
        dir: PathBuf,
    },
    /// A fresh run was asked for in a directory that already has checkpoints.
    #[error("{} already holds a run's checkpoints: resume it or choose another directory", dir.display())]
    RunExists {
        /// The run directory.
        dir: PathBuf,
    },
    /// A setting is unusable.
    #[error("invalid training setting `{key}`: {reason}")]
    Setting {
        /// The setting, named as in the config file.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// The loss became NaN or infinite; the step was not applied.
    #[error(
        "loss `{term}` is {value} at epoch {epoch}, step {step}: training stopped; the newest \
         checkpoint is the last good state (lower the learning rate or clip gradients)"
    )]
    NonFinite {
        /// Zero-based epoch.
        epoch: usize,
        /// Global step.
        step: usize,
        /// The offending term (`"ce"`, a method term, or `"total"`).
        term: String,
        /// Its value.
        value: f32,
    },
    /// The epoch hook failed.
    #[error("epoch hook failed before epoch {epoch}: {message}")]
    Hook {
        /// Zero-based epoch.
        epoch: usize,
        /// The hook's message.
        message: String,
    },
}

/// Forces every lazily initialized parameter of `module` to take its value now.
///
/// burn initializes parameters on first use. Materializing right after construction ties the
/// initial weights to the device seed set just before, not to whatever the generator state is at
/// the first forward pass.
pub fn materialize<M: Module>(module: &M) {
    struct Touch;
    impl ModuleVisitor for Touch {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let _ = param.val();
        }
    }
    module.visit(&mut Touch);
}

/// Trainable parameter elements of `module` (weights, biases, BatchNorm γ/β), excluding the
/// BatchNorm running statistics that burn's `num_params()` also counts. The module must live on
/// an autodiff device (as a training model does) for its parameters to report `require_grad`.
pub fn trainable_params<M: Module>(module: &M) -> usize {
    struct Count(usize);
    impl ModuleVisitor for Count {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let v = param.val();
            if v.is_require_grad() {
                self.0 += v.shape().num_elements();
            }
        }
    }
    let mut c = Count(0);
    module.visit(&mut c);
    c.0
}
