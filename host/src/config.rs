//! Run configuration: TOML files, command-line overrides, validation.
//!
//! A run is described by one [`RunConfig`]. It is assembled in layers, later ones winning:
//!
//! 1. a base (the defaults of the subcommand: [`RunConfig::teacher`] or [`RunConfig::distill`]);
//! 2. a TOML file, merged key by key over the base (a table whose tag — `kind` for `[model]`,
//!    `method` for `[distill.method]` — differs from the base's replaces it whole instead);
//! 3. `--set dotted.key=value` overrides, the value read as a TOML value (`0.05`, `true`,
//!    `[8, 16]`) or else taken as a string (`runs/teacher`).
//!
//! The result is deserialized strictly: an unknown key anywhere is an error naming it, as is a
//! value of the wrong type. Then [`RunConfig::validate`] checks ranges and cross-field rules, and
//! [`RunConfig::resolve`] writes every implicit default out, so the `config.toml` saved in a run
//! directory says everything about the run.
//!
//! ```
//! use tinykd::config::RunConfig;
//! let cfg = RunConfig::load(
//!     &RunConfig::teacher(),
//!     Some("[optim]\nlr = 0.05\n"),
//!     &["train.epochs=3".to_string()],
//! )
//! .unwrap();
//! assert_eq!((cfg.optim.lr, cfg.train.epochs), (0.05, 3));
//! let err = RunConfig::load(&RunConfig::teacher(), Some("[optim]\nlrr = 0.05\n"), &[]).unwrap_err();
//! assert!(err.to_string().contains("optim.lrr"), "{err}");
//! ```

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::DeviceKind;
use crate::data::{Augmentation, DatasetKind, Normalization};
pub use crate::distill::kf::KfConfig;
pub use crate::distill::online::OnlineConfig;
pub use crate::distill::DistillSpec;
use crate::models::student::StudentConfig;
use crate::models::teacher::{TeacherConfig, TeacherPreset};
use crate::train::{OptimConfig, OptimizerKind, ProgressMode, ScheduleConfig};

/// A whole run, as saved in `<run>/config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RunConfig {
    /// Seed of the initial weights and of every epoch's shuffling and augmentation (default 0).
    pub seed: u64,
    /// Where to train (default `cpu`).
    pub device: DeviceKind,
    /// Dataset and batching.
    pub data: DataConfig,
    /// The network to train.
    pub model: ModelSpec,
    /// Optimizer.
    pub optim: OptimConfig,
    /// Learning-rate schedule.
    pub schedule: ScheduleConfig,
    /// Loop settings.
    pub train: TrainConfig,
    /// Present for distillation runs: the teacher and the method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distill: Option<DistillSpec>,
    /// Present for online runs (a cohort of students trained together, no teacher).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<OnlineConfig>,
    /// Present for knowledge-factorization runs (`tinykd factorize`) and the factor and assembled
    /// networks they write: the tasks, the factors' layers and the IMB objective.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kf: Option<KfConfig>,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self::teacher()
    }
}

/// `[data]`: which dataset, how much of it, and how batches are made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// Dataset (default `fashion-mnist`).
    pub dataset: DatasetKind,
    /// Directory with the dataset's files (default: [`DatasetKind::default_dir`]: for
    /// Fashion-MNIST `/usr/share/datasets/fashion-mnist` from Debian's `dataset-fashion-mnist`,
    /// for the sensor sets `data/sensors/…` from `tools/setup-sensor-data.sh`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// Use only the first N training images (default: all). For quick tests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_limit: Option<usize>,
    /// Use only the first N test images (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_limit: Option<usize>,
    /// Hold out the last N images of the training file as a validation split, never trained on
    /// (default: none). Model selection (`tinykd takd --auto`) uses it, never the test split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<usize>,
    /// Training batch size (default 128).
    pub batch_size: usize,
    /// Evaluation batch size (default 500; only speed depends on it).
    pub eval_batch_size: usize,
    /// Drop the last incomplete training batch (default true).
    pub drop_last: bool,
    /// Random-crop padding in pixels, 0 to disable (default 2; images only, time series are
    /// not cropped).
    pub crop_padding: usize,
    /// Random horizontal flips (default: on where they keep the label, i.e. Fashion-MNIST only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hflip: Option<bool>,
    /// Normalization mean (default: the dataset's, see [`DatasetKind::mean_std`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Normalization standard deviation (default: the dataset's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub std: Option<f64>,
    /// Sensor sets: window length in time steps (default: [`DatasetKind::default_window`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
    /// Sensor streams (HAPT): steps between window starts (default: half a window).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_stride: Option<usize>,
    /// HAPT: the subjects held out as the test split (default: the 9 test subjects of the UCI
    /// HAR split, [`crate::data::sensors::HAPT_TEST_SUBJECTS`]); every other subject trains.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_subjects: Option<Vec<u32>>,
    /// A synthetic training set to add to the real one (cGAN-KD): the directory `tinykd gan
    /// sample` writes, holding `fake-{images-idx3,labels-idx1}-ubyte` (default: none). It is
    /// appended after `train_limit` and `validation` are applied, so instance-indexed methods
    /// (CRD's memory banks) size themselves on the enlarged set. Images only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synthetic: Option<PathBuf>,
}

impl Default for DataConfig {
    fn default() -> Self {
        Self {
            dataset: DatasetKind::FashionMnist,
            dir: None,
            train_limit: None,
            test_limit: None,
            validation: None,
            batch_size: 128,
            eval_batch_size: 500,
            drop_last: true,
            crop_padding: 2,
            hflip: None,
            mean: None,
            std: None,
            window: None,
            window_stride: None,
            test_subjects: None,
            synthetic: None,
        }
    }
}

impl DataConfig {
    /// The directory to read, explicit or the dataset's default.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for a dataset without a default location and no `dir`.
    pub fn dir(&self) -> Result<PathBuf, ConfigError> {
        self.dir
            .clone()
            .or_else(|| self.dataset.default_dir())
            .ok_or_else(|| {
                invalid(
                    "data.dir",
                    "this dataset has no default location: set data.dir",
                )
            })
    }

    /// The shape `[channels, rows, cols]` of one sample: `[1, 28, 28]` for the image sets,
    /// `[channels, 1, window]` for the sensor sets.
    pub fn sample_shape(&self) -> [usize; 3] {
        match self.dataset.default_window() {
            Some(w) => [self.dataset.channels(), 1, self.window.unwrap_or(w)],
            None => [1, 28, 28],
        }
    }

    /// The normalization in effect.
    pub fn normalization(&self) -> Normalization {
        let (m, s) = self.dataset.mean_std();
        Normalization {
            mean: self.mean.map_or(m, |v| v as f32),
            std: self.std.map_or(s, |v| v as f32),
        }
    }

    /// The training augmentation in effect (none for time series: crops and flips are image
    /// transforms).
    pub fn augmentation(&self) -> Augmentation {
        if !self.dataset.is_image() {
            return Augmentation::default();
        }
        Augmentation {
            crop_padding: self.crop_padding,
            hflip: self
                .hflip
                .unwrap_or_else(|| self.dataset.hflip_preserves_label()),
        }
    }
}

/// `[model]`: the network to train, tagged by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelSpec {
    /// The ResNet-style teacher ([`crate::models::teacher`]).
    Teacher(TeacherSpec),
    /// A microcontroller student ([`crate::models::student`]), its layers listed in full.
    Student(StudentConfig),
}

/// A teacher by preset, optionally with its widths or depth overridden.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeacherSpec {
    /// Size preset (default `base`).
    #[serde(default = "default_preset")]
    pub preset: TeacherPreset,
    /// Channels per stage, overriding the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub widths: Option<Vec<usize>>,
    /// Residual blocks per stage, overriding the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocks_per_stage: Option<usize>,
    /// Stride of each stage's first block (default `[1, 2, 2, …]`, one per stage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strides: Option<Vec<usize>>,
    /// Stride of the stem convolution (default 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stem_stride: Option<usize>,
}

fn default_preset() -> TeacherPreset {
    TeacherPreset::Base
}

impl TeacherSpec {
    /// The teacher's configuration for `in_channels`-channel inputs and `classes` classes.
    pub fn config(&self, in_channels: usize, classes: usize) -> TeacherConfig {
        let mut c = TeacherConfig::preset(self.preset, in_channels, classes);
        if let Some(w) = &self.widths {
            c.widths = w.clone();
            // The preset's strides fit its own stage count; follow the new one.
            c.strides = (0..w.len()).map(|s| if s == 0 { 1 } else { 2 }).collect();
        }
        if let Some(b) = self.blocks_per_stage {
            c.blocks_per_stage = b;
        }
        if let Some(s) = &self.strides {
            c.strides = s.clone();
        }
        if let Some(s) = self.stem_stride {
            c.stem_stride = s;
        }
        c
    }
}

/// `[train]`: loop settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Epochs (default 12: the teacher recipe, measured at 92.79 % Fashion-MNIST test accuracy).
    pub epochs: usize,
    /// Label smoothing of the cross-entropy term (default 0).
    pub label_smoothing: f64,
    /// Newest checkpoints kept in the run directory (default 2).
    pub keep_checkpoints: usize,
    /// A `"step"` line in `metrics.jsonl` every this many steps, 0 for none (default 50).
    pub log_every: usize,
    /// Progress bars: `auto` (when stderr is a terminal), `always` or `never` (default `auto`).
    /// Unless `never`, a summary line per epoch is printed on stderr too.
    pub progress: ProgressMode,
    /// Binary students: epochs trained with binary activations and real weights before the
    /// weights are binarized too, the two-step recipe of ReActNet and Real-to-Binary (default 0:
    /// binary weights from the start). Must be smaller than `epochs`.
    pub binary_step1_epochs: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 12,
            label_smoothing: 0.0,
            keep_checkpoints: 2,
            log_every: 50,
            progress: ProgressMode::Auto,
            binary_step1_epochs: 0,
        }
    }
}

/// Why a configuration was rejected. Every variant names the file, argument or key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("{origin} is not valid TOML: {message}")]
    Syntax {
        /// The file (or `"config"` for text given directly).
        origin: String,
        /// The parser's message, with the line.
        message: String,
    },
    /// A `--set` argument is malformed or cannot be applied.
    #[error("bad override `{arg}`: {reason}")]
    Override {
        /// The argument as given.
        arg: String,
        /// What is wrong.
        reason: String,
    },
    /// A key is unknown or its value has the wrong type.
    #[error("config key `{key}`: {message}")]
    Field {
        /// The dotted key (or the innermost table that could be identified).
        key: String,
        /// The deserializer's message.
        message: String,
    },
    /// A value is out of range or inconsistent with another.
    #[error("invalid config value `{key}`: {reason}")]
    Invalid {
        /// The dotted key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Tag keys of the config's tagged tables: a table whose tag changes is replaced, not merged.
const TAG_KEYS: [&str; 2] = ["kind", "method"];

impl RunConfig {
    /// Defaults for training a teacher: the `base` ResNet, SGD (lr 0.1, Nesterov momentum 0.9,
    /// weight decay 5e-4), per-step cosine decay, batch 128, crop+flip augmentation, 12 epochs.
    ///
    /// Measured (seed 0, full Fashion-MNIST, burn-flex on 2 shared CPU cores): 92.79 % test
    /// accuracy, 40 min 46 s wall for the 12 epochs.
    pub fn teacher() -> Self {
        Self {
            seed: 0,
            device: DeviceKind::Cpu,
            data: DataConfig::default(),
            model: ModelSpec::Teacher(TeacherSpec {
                preset: TeacherPreset::Base,
                widths: None,
                blocks_per_stage: None,
                strides: None,
                stem_stride: None,
            }),
            optim: OptimConfig::default(),
            schedule: ScheduleConfig::default(),
            train: TrainConfig::default(),
            distill: None,
            online: None,
            kf: None,
        }
    }

    /// Defaults for distilling `teacher_run` into the default MCU student
    /// ([`StudentConfig::mcu_small`]) with KD: Adam (lr 1e-3, ε 1e-8, no weight decay), per-step
    /// cosine decay, 12 epochs, same data pipeline as the teacher.
    pub fn distill(teacher_run: &Path) -> Self {
        Self {
            model: ModelSpec::Student(StudentConfig::mcu_small()),
            optim: OptimConfig {
                kind: OptimizerKind::Adam,
                lr: 1e-3,
                weight_decay: 0.0,
                ..OptimConfig::default()
            },
            distill: Some(DistillSpec::kd(teacher_run.to_path_buf())),
            ..Self::teacher()
        }
    }

    /// Builds a configuration from `base`, the TOML text of a config file (if any) and `--set`
    /// overrides, then validates it. See the module docs for the layering.
    ///
    /// # Errors
    /// [`ConfigError::Syntax`], [`ConfigError::Override`], [`ConfigError::Field`] (unknown key or
    /// wrong type, naming the dotted key) or [`ConfigError::Invalid`].
    pub fn load(
        base: &RunConfig,
        text: Option<&str>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        Self::load_from(base, text.map(|t| (t, "config")), overrides)
    }

    /// [`RunConfig::load`] reading the file at `path`.
    ///
    /// # Errors
    /// As [`RunConfig::load`], plus [`ConfigError::Read`].
    pub fn load_file(
        base: &RunConfig,
        path: &Path,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let origin = path.display().to_string();
        Self::load_from(base, Some((&text, &origin)), overrides)
    }

    fn load_from(
        base: &RunConfig,
        text: Option<(&str, &str)>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let config: RunConfig = load_layered(base, text, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and cross-field rules.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.data;
        if d.batch_size == 0 {
            return Err(invalid("data.batch_size", "must be at least 1"));
        }
        if d.eval_batch_size == 0 {
            return Err(invalid("data.eval_batch_size", "must be at least 1"));
        }
        for (key, limit) in [
            ("data.train_limit", d.train_limit),
            ("data.test_limit", d.test_limit),
        ] {
            if limit == Some(0) {
                return Err(invalid(
                    key,
                    "must be at least 1 (omit it to use the whole split)",
                ));
            }
        }
        if d.crop_padding >= 14 {
            return Err(invalid(
                "data.crop_padding",
                format!("{} pixels is most of a 28-pixel image", d.crop_padding),
            ));
        }
        if d.hflip == Some(true) && !d.dataset.hflip_preserves_label() {
            return Err(invalid(
                "data.hflip",
                "mirroring changes the label of digits; flips are only for Fashion-MNIST",
            ));
        }
        let n = d.normalization();
        if !(n.mean.is_finite() && n.std.is_finite() && n.std > 0.0) {
            return Err(invalid(
                "data.std",
                format!("mean {} / std {} must be finite, std > 0", n.mean, n.std),
            ));
        }
        let classes = d.dataset.classes();
        if let Some(w) = d.window {
            if d.dataset.is_image() || w == 0 {
                return Err(invalid(
                    "data.window",
                    "a window of at least 1 step, for sensor datasets only",
                ));
            }
        }
        if d.window_stride == Some(0) {
            return Err(invalid("data.window_stride", "must be at least 1"));
        }
        if d.synthetic.is_some() && !d.dataset.is_image() {
            return Err(invalid(
                "data.synthetic",
                "synthetic samples (cGAN-KD) are images: this dataset is a sensor set",
            ));
        }
        for (key, set) in [
            ("data.window_stride", d.window_stride.is_some()),
            ("data.test_subjects", d.test_subjects.is_some()),
        ] {
            if set && d.dataset != DatasetKind::Hapt {
                return Err(invalid(
                    key,
                    "applies to continuous recordings (hapt); the UEA sets come as cases with \
                     their own train/test files",
                ));
            }
        }
        if d.test_subjects.as_ref().is_some_and(Vec::is_empty) {
            return Err(invalid(
                "data.test_subjects",
                "must name at least one subject (omit it for the UCI HAR split)",
            ));
        }
        let [channels, rows, cols] = d.sample_shape();
        match &self.model {
            ModelSpec::Teacher(t) => {
                if !d.dataset.is_image() {
                    return Err(invalid(
                        "model.kind",
                        "the ResNet teacher is for images; for a sensor dataset write the \
                         teacher as a layer list (kind = \"student\", e.g. \
                         configs/sensors/hapt-teacher.toml)",
                    ));
                }
                t.config(1, classes)
                    .validate()
                    .map_err(|r| invalid("model", r))?
            }
            ModelSpec::Student(s) => {
                s.shapes()
                    .map_err(|e| invalid("model.layers", e.to_string()))?;
                s.clone()
                    .resolve_channels(&d.dataset.channel_names())
                    .map_err(|e| invalid("model.channels", e.to_string()))?;
                let seen = match &s.channels {
                    Some(_) => s.in_channels,
                    None => channels,
                };
                if s.in_channels != seen || s.input_size != [rows, cols] {
                    return Err(invalid(
                        "model.input_size",
                        format!(
                            "the dataset gives {seen}x{rows}x{cols} samples, the network \
                             expects {}x{}x{}",
                            s.in_channels, s.input_size[0], s.input_size[1]
                        ),
                    ));
                }
                // A factorization derives its network from `[kf]` (`tinykd factorize` writes
                // `model` itself), and its factor and assembled networks output task logits.
                if self.kf.is_none() && s.num_classes() != classes {
                    return Err(invalid(
                        "model.layers",
                        format!(
                            "the last dense layer has {} outputs for {classes} classes",
                            s.num_classes()
                        ),
                    ));
                }
            }
        }
        self.optim
            .validate()
            .map_err(|(k, r)| invalid(&format!("optim.{k}"), r))?;
        self.schedule
            .validate(self.optim.lr)
            .map_err(|(k, r)| invalid(&format!("schedule.{k}"), r))?;
        let t = &self.train;
        if t.epochs == 0 {
            return Err(invalid("train.epochs", "must be at least 1"));
        }
        if !(0.0..1.0).contains(&t.label_smoothing) {
            return Err(invalid("train.label_smoothing", "must be in [0, 1)"));
        }
        if t.keep_checkpoints == 0 {
            return Err(invalid("train.keep_checkpoints", "must be at least 1"));
        }
        if t.binary_step1_epochs > 0 {
            if t.binary_step1_epochs >= t.epochs {
                return Err(invalid(
                    "train.binary_step1_epochs",
                    format!(
                        "must be smaller than train.epochs ({}): step 2 binarizes the weights",
                        t.epochs
                    ),
                ));
            }
            if !matches!(&self.model, ModelSpec::Student(s) if s.is_binary()) {
                return Err(invalid(
                    "train.binary_step1_epochs",
                    "the two-step recipe needs a student with binary layers",
                ));
            }
        }
        if let Some(ds) = &self.distill {
            if ds.teacher.as_os_str().is_empty() {
                return Err(invalid(
                    "distill.teacher",
                    "must name the teacher's run directory",
                ));
            }
            ds.validate()
                .map_err(|(key, reason)| invalid(key, &reason))?;
        }
        if self.data.validation == Some(0) {
            return Err(invalid(
                "data.validation",
                "must be at least 1 image, or absent",
            ));
        }
        if self.data.dataset.is_regression() {
            // Regression has one output: methods that read class distributions do not apply.
            if let Some(ds) = &self.distill {
                if matches!(
                    ds.method,
                    crate::distill::MethodConfig::Dkd(_)
                        | crate::distill::MethodConfig::Hsakd(_)
                        | crate::distill::MethodConfig::Sk(_)
                ) {
                    return Err(invalid(
                        "distill.method",
                        format!(
                            "{} needs class predictions; a regression student distils with \
                             kd (squared error to the teacher's prediction) or a feature \
                             method (fitnet, at, sp, cc, vid, rkd, pkt, nst, fsp, crd)",
                            ds.method.name()
                        ),
                    ));
                }
            }
            for (key, set) in [("online", self.online.is_some()), ("kf", self.kf.is_some())] {
                if set {
                    return Err(invalid(
                        key,
                        "is for classification; this dataset is a regression task",
                    ));
                }
            }
        }
        if let Some(on) = &self.online {
            if self.distill.is_some() {
                return Err(invalid(
                    "online",
                    "an online run trains its cohort without a teacher: remove [distill]",
                ));
            }
            if !matches!(self.model, ModelSpec::Student(_)) {
                return Err(invalid(
                    "online",
                    "online methods train students (model.kind = \"student\")",
                ));
            }
            on.validate()
                .map_err(|(key, reason)| invalid(key, &reason))?;
        }
        if let Some(kf) = &self.kf {
            kf.validate()
                .map_err(|(key, reason)| invalid(&key, reason))?;
            kf.layout(self.data.sample_shape())
                .validate(self.data.dataset.classes())
                .map_err(|e| match e {
                    crate::models::factors::FactorError::Tasks { key, reason }
                    | crate::models::factors::FactorError::Layers { key, reason } => {
                        invalid(&key, reason)
                    }
                    other => invalid("kf", other.to_string()),
                })?;
        }
        Ok(())
    }

    /// Writes every implicit default out (data directory, normalization, flips, teacher widths),
    /// so the saved config describes the run without reference to the defaults of this version.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] when the data directory has no default.
    pub fn resolve(&mut self) -> Result<(), ConfigError> {
        let dir = self.data.dir()?;
        let n = self.data.normalization();
        let aug = self.data.augmentation();
        self.data.dir = Some(dir);
        // Through the shortest decimal of the f32, so the file shows 0.286, not 0.28600001….
        self.data.mean = Some(f32_to_f64_decimal(n.mean));
        self.data.std = Some(f32_to_f64_decimal(n.std));
        self.data.hflip = Some(aug.hflip);
        if let ModelSpec::Student(s) = &mut self.model {
            s.resolve_channels(&self.data.dataset.channel_names())
                .map_err(|e| invalid("model.channels", e.to_string()))?;
        }
        if !self.data.dataset.is_image() {
            self.data.crop_padding = 0;
            self.data.window = Some(self.data.sample_shape()[2]);
        }
        if let Some(d) = &mut self.distill {
            d.gamma = Some(d.ce_weight());
            d.alpha = Some(d.kd_weight());
        }
        if let ModelSpec::Teacher(t) = &mut self.model {
            let c = t.config(1, self.data.dataset.classes());
            t.widths = Some(c.widths);
            t.blocks_per_stage = Some(c.blocks_per_stage);
            t.strides = Some(c.strides);
            t.stem_stride = Some(c.stem_stride);
        }
        Ok(())
    }

    /// The configuration as TOML text (what `config.toml` holds).
    pub fn to_toml(&self) -> String {
        // Serializing these plain structs cannot fail; a failure would be a bug in a type here.
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# unserializable config: {e}\n"))
    }

    /// Reads the `config.toml` of a run directory (strictly, with no base layer to fill gaps).
    ///
    /// # Errors
    /// As [`RunConfig::load_file`].
    pub fn from_run_dir(run_dir: &Path) -> Result<Self, ConfigError> {
        let path = run_dir.join("config.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let config: RunConfig = toml::from_str(&text).map_err(|e| ConfigError::Field {
            key: format!("{} {}", path.display(), key_at(&text, e.span())),
            message: e.message().to_string(),
        })?;
        config.validate()?;
        Ok(config)
    }
}

/// The f64 with the same shortest decimal representation as `v`.
fn f32_to_f64_decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// The layering of the module docs for any config type: `base`, then the TOML `text` (with its
/// origin for errors), then `--set` overrides, deserialized strictly (an unknown key or a wrong
/// type is a [`ConfigError::Field`] naming the dotted key). Validation is the caller's. Used by
/// [`RunConfig`] and by configs of other stages (`tinykd gan`, [`crate::synth`]).
///
/// # Errors
/// [`ConfigError::Syntax`], [`ConfigError::Override`] or [`ConfigError::Field`].
pub fn load_layered<T: Serialize + serde::de::DeserializeOwned>(
    base: &T,
    text: Option<(&str, &str)>,
    overrides: &[String],
) -> Result<T, ConfigError> {
    let mut table = toml::Table::try_from(base).map_err(|e| ConfigError::Syntax {
        origin: "base config".into(),
        message: e.to_string(),
    })?;
    if let Some((text, origin)) = text {
        let user: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Syntax {
            origin: origin.to_string(),
            message: e.to_string(),
        })?;
        merge(&mut table, user);
    }
    for arg in overrides {
        apply_override(&mut table, arg)?;
    }
    let merged = toml::to_string(&table).map_err(|e| ConfigError::Syntax {
        origin: "merged config".into(),
        message: e.to_string(),
    })?;
    toml::from_str(&merged).map_err(|e| ConfigError::Field {
        key: key_at(&merged, e.span()),
        message: e.message().to_string(),
    })
}

/// Deep-merges `over` into `base` (see [`TAG_KEYS`] for tagged tables).
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => {
                let retagged = TAG_KEYS
                    .iter()
                    .any(|t| o.get(*t).is_some_and(|ov| b.get(*t) != Some(ov)));
                if retagged {
                    *b = o;
                } else {
                    merge(b, o);
                }
            }
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// Applies one `dotted.key=value` override.
fn apply_override(table: &mut toml::Table, arg: &str) -> Result<(), ConfigError> {
    let err = |reason: &str| ConfigError::Override {
        arg: arg.to_string(),
        reason: reason.to_string(),
    };
    let (key, raw) = arg
        .split_once('=')
        .ok_or_else(|| err("expected key=value, e.g. optim.lr=0.05"))?;
    let path: Vec<&str> = key.trim().split('.').collect();
    if path.iter().any(|p| p.is_empty()) {
        return Err(err("empty key segment"));
    }
    let value = parse_value(raw.trim());
    let (last, parents) = path.split_last().ok_or_else(|| err("empty key"))?;
    let mut cur = table;
    for p in parents {
        let entry = cur
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(err(&format!("`{p}` is a value, not a table"))),
        };
    }
    // Setting a table's tag to a new value (`model.kind=student`, `distill.method.method=crd`)
    // starts that table afresh, as a file's retagged table does.
    if TAG_KEYS.contains(last) && cur.get(*last).is_some_and(|old| *old != value) {
        cur.clear();
    }
    cur.insert(last.to_string(), value);
    Ok(())
}

/// Reads `raw` as a TOML value, or as a bare string when it is not one.
fn parse_value(raw: &str) -> toml::Value {
    toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

/// The dotted key at byte `span` of TOML `text`: the nearest preceding `[table]` header plus the
/// key on that line. Used to name the key in deserialization errors.
fn key_at(text: &str, span: Option<std::ops::Range<usize>>) -> String {
    let Some(span) = span else {
        return "(top level)".into();
    };
    let before = &text[..span.start.min(text.len())];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line_end = text[line_start..]
        .find('\n')
        .map_or(text.len(), |i| line_start + i);
    let line = text[line_start..line_end].trim();
    // A span that starts on a `[table]` header (an error about the table as a whole, such as
    // an unknown field in it) belongs to that table, not to the one before.
    let header_end = if line.starts_with('[') {
        line_end
    } else {
        line_start
    };
    let table = text[..header_end]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let key = if line.starts_with('[') {
        None
    } else {
        line.split('=')
            .next()
            .map(|k| k.trim().trim_matches('"').to_string())
    };
    match (table, key) {
        (Some(t), Some(k)) if !k.is_empty() => format!("{t}.{k}"),
        (None, Some(k)) if !k.is_empty() => k,
        (Some(t), _) => t,
        _ => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str, sets: &[&str]) -> Result<RunConfig, ConfigError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        RunConfig::load(&RunConfig::teacher(), Some(text), &sets)
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        for mut c in [
            RunConfig::teacher(),
            RunConfig::distill(Path::new("runs/t")),
        ] {
            c.resolve().unwrap();
            let text = c.to_toml();
            let back: RunConfig = toml::from_str(&text).unwrap();
            assert_eq!(back, c, "{text}");
        }
    }

    #[test]
    fn file_and_overrides_layer_in_order() {
        let c = load(
            "seed = 3\n[optim]\nlr = 0.05\n",
            &["optim.lr=0.02", "data.train_limit=300"],
        )
        .unwrap();
        assert_eq!(c.seed, 3);
        assert_eq!(c.optim.lr, 0.02);
        assert_eq!(c.data.train_limit, Some(300));
        assert_eq!(c.optim.momentum, 0.9, "untouched keys keep the base value");
        let c = load("", &["data.dir=/tmp/some where", "model.preset=small"]).unwrap();
        assert_eq!(c.data.dir, Some(PathBuf::from("/tmp/some where")));
        assert!(matches!(
            c.model,
            ModelSpec::Teacher(TeacherSpec {
                preset: TeacherPreset::Small,
                ..
            })
        ));
    }

    #[test]
    fn a_new_model_kind_replaces_the_base_model_table() {
        let student = toml::to_string(&RunConfig::distill(Path::new("t")).model).unwrap();
        let c = load(&format!("[model]\n{student}"), &[]).unwrap();
        assert!(matches!(c.model, ModelSpec::Student(_)));
    }

    #[test]
    fn unknown_keys_are_named() {
        let e = load("[optim]\nlrr = 0.1\n", &[]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Field { key, .. } if key == "optim.lrr"),
            "{e}"
        );
        let e = load("", &["train.epochz=3"]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Field { key, .. } if key == "train.epochz"),
            "{e}"
        );
        let e = load("colour = 1\n", &[]).unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
        let e = load("[model]\nkind = \"teacher\"\ndepth = 3\n", &[]).unwrap_err();
        assert!(e.to_string().contains("depth"), "{e}");
    }

    #[test]
    fn wrong_types_and_bad_syntax_are_reported() {
        let e = load("[optim]\nlr = \"fast\"\n", &[]).unwrap_err();
        assert!(
            matches!(&e, ConfigError::Field { key, .. } if key == "optim.lr"),
            "{e}"
        );
        assert!(matches!(
            load("[optim\n", &[]),
            Err(ConfigError::Syntax { .. })
        ));
        assert!(matches!(
            load("", &["optim.lr"]),
            Err(ConfigError::Override { .. })
        ));
        assert!(matches!(
            load("", &["seed.x=1"]),
            Err(ConfigError::Override { .. })
        ));
        let e = load("", &["optim.kind=rmsprop"]).unwrap_err();
        assert!(e.to_string().contains("optim.kind"), "{e}");
    }

    #[test]
    fn out_of_range_values_are_rejected_by_key() {
        let key = |text: &str, sets: &[&str]| match load(text, sets) {
            Err(ConfigError::Invalid { key, .. }) => key,
            other => panic!("expected Invalid, got {other:?}"),
        };
        assert_eq!(key("", &["optim.lr=0"]), "optim.lr");
        assert_eq!(key("", &["optim.lr=-1"]), "optim.lr");
        assert_eq!(key("", &["data.batch_size=0"]), "data.batch_size");
        assert_eq!(key("", &["data.train_limit=0"]), "data.train_limit");
        assert_eq!(key("", &["train.epochs=0"]), "train.epochs");
        assert_eq!(key("", &["schedule.min_lr=1.0"]), "schedule.min_lr");
        assert_eq!(
            key(
                "[data]\ndataset = \"mnist\"\nhflip = true\ndir = \"/x\"\n",
                &[]
            ),
            "data.hflip"
        );
        assert_eq!(key("", &["model.widths=[]"]), "model");
        assert_eq!(key("", &["data.std=0.0"]), "data.std");
    }

    #[test]
    fn resolve_writes_defaults_out() {
        let mut c = RunConfig::teacher();
        c.resolve().unwrap();
        assert_eq!(
            c.data.dir,
            Some(PathBuf::from("/usr/share/datasets/fashion-mnist"))
        );
        assert_eq!(c.data.hflip, Some(true));
        assert!(matches!(&c.model, ModelSpec::Teacher(t) if t.widths == Some(vec![32, 64, 128])));
        let mut m = RunConfig::teacher();
        m.data.dataset = DatasetKind::Mnist;
        assert!(matches!(m.resolve(), Err(ConfigError::Invalid { .. })));
        m.data.dir = Some("/data/mnist".into());
        m.resolve().unwrap();
        assert_eq!(m.data.hflip, Some(false));
    }
}
