//! Whole runs from a [`RunConfig`]: what `tinykd train` and `tinykd distill` do, as library calls.
//!
//! A run directory holds
//! - `config.toml`: the resolved configuration, written before the first step;
//! - `metrics.jsonl`: see [`super::metrics`];
//! - `model.bpk`: the trained network alone (rewritten after every epoch), which [`load_model`]
//!   rebuilds from `config.toml`;
//! - `checkpoints/epoch-NNNN/`: see [`super::checkpoint`].

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::ModuleDisplay;
use burn::prelude::*;
use serde::Serialize;

use super::ensemble::EnsembleTeacher;
use super::{
    fit, materialize, trainable_params, EpochHook, EpochSummary, FitContext, FrozenTeacher,
    TeacherTaps, TrainError, TrainSettings, Trainee,
};
use crate::backend;
use crate::config::{ConfigError, DataConfig, ModelSpec, RunConfig};
use crate::data::sensors::{self, SensorOptions};
use crate::data::{derive_seed, DataError, Dataset, Loader, LoaderConfig, Split};
use crate::distill::hints::choose_hints;
use crate::distill::hsakd::prepare_teacher_aux;
use crate::distill::{Distillation, Hints, MethodConfig, MethodContext, TapShapes};
use crate::eval::{evaluate, EvalReport};
use crate::models::student::Student;
use crate::models::teacher::Teacher;
use crate::models::Classifier;

/// Training images the automatic hint selection describes each teacher layer on.
const HINT_SAMPLES: usize = 2000;

/// Generator stream of the initial weights (epoch slot 0 of [`derive_seed`]).
const STREAM_INIT: u64 = 0;

/// Generator stream of HSAKD's student auxiliaries (after the teacher's were trained or loaded).
const STREAM_HSAKD: u64 = 0x48_53_41; // "HSA"

/// Why a run could not be carried out.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The dataset could not be read.
    #[error(transparent)]
    Data(#[from] DataError),
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The requested device is not available in this build.
    #[error("device: {0}")]
    Device(String),
    /// The model could not be built from its configuration.
    #[error("model: {0}")]
    Model(String),
    /// A run directory's files are missing or unreadable.
    #[error("run {}: {reason}", dir.display())]
    Run {
        /// The run directory.
        dir: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file or directory could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// What a finished (or resumed-and-finished) run reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Epochs completed in total.
    pub epochs_done: usize,
    /// Trainable parameters of the trained network.
    pub params: usize,
    /// Trainable parameters of the distillation method's auxiliary modules (dropped at export).
    pub method_params: usize,
    /// Test accuracy after the last epoch.
    pub test_accuracy: f64,
    /// Test cross-entropy after the last epoch (regression: squared error).
    pub test_loss: f64,
    /// Regression: test mean absolute error after the last epoch, in the task's measure.
    pub test_mae: Option<f64>,
    /// Per-epoch summaries of this invocation (empty if nothing was left to train).
    pub history: Vec<EpochSummary>,
    /// Wall time of this invocation.
    pub seconds: f64,
}

/// A trained network of either family, as [`load_model`] returns it.
#[derive(Debug, Clone)]
pub enum RunModel {
    /// A ResNet-style teacher (boxed: it is much larger than a student's handle).
    Teacher(Box<Teacher>),
    /// A microcontroller student.
    Student(Student),
}

impl RunModel {
    /// The taps of an inference-mode copy of the model for `x` (on the plain device). The model
    /// itself is untouched: a training-mode forward pass would queue a BatchNorm statistics
    /// update that would later overwrite statistics loaded from a checkpoint.
    pub fn taps(&self, x: Tensor<4>) -> crate::models::Output {
        let x = x.without_autodiff();
        match self {
            Self::Teacher(m) => m.valid().forward_taps(x),
            Self::Student(m) => m.valid().forward_taps(x),
        }
    }
}

impl RunModel {
    /// Evaluates the network (see [`evaluate`]).
    pub fn evaluate(&self, loader: &Loader, device: &Device) -> EvalReport {
        match self {
            Self::Teacher(m) => evaluate(m.as_ref(), loader, device),
            Self::Student(m) => evaluate(m, loader, device),
        }
    }

    /// A frozen copy to distill from.
    pub fn frozen(&self) -> Box<dyn TeacherTaps> {
        match self {
            Self::Teacher(m) => Box::new(FrozenTeacher::new(m.as_ref())),
            Self::Student(m) => Box::new(FrozenTeacher::new(m)),
        }
    }
}

/// The training and test splits `data` describes, with their limits applied.
///
/// # Errors
/// [`RunError::Config`] when the directory has no default, [`RunError::Data`] for unreadable or
/// malformed files.
pub fn load_datasets(data: &DataConfig) -> Result<(Dataset, Dataset), RunError> {
    let mut train = load_split(data, Split::Train)?;
    let mut test = load_split(data, Split::Test)?;
    if let Some(v) = data.validation {
        train.split_off(v);
    }
    if let Some(n) = data.train_limit {
        train.truncate(n);
    }
    if let Some(n) = data.test_limit {
        test.truncate(n);
    }
    if let Some(dir) = &data.synthetic {
        let regression = data.dataset.is_regression();
        train.append(
            crate::synth::load_synthetic(dir, train.classes(), regression)?,
            dir,
        )?;
    }
    Ok((train, test))
}

/// The validation split `data.validation` holds out (the last images of the training file), if
/// any.
///
/// # Errors
/// As [`load_datasets`].
pub fn load_validation(data: &DataConfig) -> Result<Option<Dataset>, RunError> {
    let Some(v) = data.validation else {
        return Ok(None);
    };
    let mut train = load_split(data, Split::Train)?;
    Ok(Some(train.split_off(v)))
}

/// One whole split of the dataset `data` names (no limits applied).
///
/// # Errors
/// As [`load_datasets`].
pub fn load_split(data: &DataConfig, split: Split) -> Result<Dataset, RunError> {
    let dir = data.dir()?;
    if data.dataset.is_image() {
        return Ok(Dataset::load(&dir, data.dataset, split)?);
    }
    Ok(sensors::load(
        data.dataset,
        &dir,
        &sensor_options(data),
        split,
    )?)
}

fn sensor_options(data: &DataConfig) -> SensorOptions {
    SensorOptions {
        window: data.window,
        stride: data.window_stride,
        test_subjects: data.test_subjects.clone(),
    }
}

/// The start of a HAPT test recording, raw, for `channels` (see
/// [`sensors::test_recording`]).
///
/// # Errors
/// As [`sensors::test_recording`].
pub fn test_recording(
    data: &DataConfig,
    channels: &[usize],
    steps: usize,
) -> Result<(Vec<f32>, Vec<u8>), RunError> {
    Ok(sensors::test_recording(
        data.dataset,
        &data.dir()?,
        &sensor_options(data),
        channels,
        steps,
    )?)
}

/// The per-channel `(mean, std)` a sensor dataset is normalized with (from its training split),
/// every channel in order; `None` for images.
///
/// # Errors
/// As [`load_datasets`].
pub fn channel_stats(data: &DataConfig) -> Result<Option<Vec<(f32, f32)>>, RunError> {
    if data.dataset.is_image() {
        return Ok(None);
    }
    let stats = sensors::channel_stats(data.dataset, &data.dir()?, &sensor_options(data))?;
    Ok(Some(stats))
}

/// The shape of a zero batch of `n` samples of `set`: the probe that gives a network's tap shapes.
pub fn probe_shape(set: &Dataset, n: usize) -> [usize; 4] {
    let [c, h, w] = set.shape();
    [n, c, h, w]
}

/// The loader of the training split (shuffled, augmented) described by `data`.
pub fn train_loader<'a>(train: &'a Dataset, data: &DataConfig) -> Loader<'a> {
    Loader::new(
        train,
        LoaderConfig {
            batch_size: data.batch_size,
            shuffle: true,
            drop_last: data.drop_last,
            augmentation: data.augmentation(),
            normalization: data.normalization(),
        },
    )
}

/// The loader used for evaluation: file order, no augmentation, every image.
pub fn eval_loader<'a>(set: &'a Dataset, data: &DataConfig) -> Loader<'a> {
    Loader::new(
        set,
        LoaderConfig {
            batch_size: data.eval_batch_size,
            shuffle: false,
            drop_last: false,
            augmentation: Default::default(),
            normalization: data.normalization(),
        },
    )
}

/// The plain device a config names.
///
/// # Errors
/// [`RunError::Device`] when the build lacks the backend.
pub fn device_of(config: &RunConfig) -> Result<Device, RunError> {
    backend::device(config.device).map_err(RunError::Device)
}

fn build(spec: &ModelSpec, classes: usize, device: &Device) -> Result<RunModel, RunError> {
    Ok(match spec {
        ModelSpec::Teacher(t) => {
            let c = t.config(1, classes);
            c.validate().map_err(RunError::Model)?;
            RunModel::Teacher(Box::new(c.init(device)))
        }
        ModelSpec::Student(s) => {
            RunModel::Student(s.init(device).map_err(|e| RunError::Model(e.to_string()))?)
        }
    })
}

/// Rebuilds the network of a finished run from its `config.toml` and `model.bpk`, on `device`.
///
/// # Errors
/// [`RunError::Config`] for a bad `config.toml`, [`RunError::Run`] when `model.bpk` is missing or
/// does not fit the configured network.
pub fn load_model(run_dir: &Path, device: &Device) -> Result<(RunModel, RunConfig), RunError> {
    let config = RunConfig::from_run_dir(run_dir)?;
    let model = build(&config.model, config.data.dataset.classes(), device)?;
    let path = run_dir.join("model.bpk");
    if !path.is_file() {
        return Err(RunError::Run {
            dir: run_dir.to_path_buf(),
            reason: "no model.bpk: the run has not finished an epoch".into(),
        });
    }
    let load_err = |e: burn::store::RecordError| RunError::Run {
        dir: run_dir.to_path_buf(),
        reason: format!("model.bpk does not load into the configured network: {e}"),
    };
    let model = match model {
        RunModel::Teacher(m) => {
            RunModel::Teacher(Box::new((*m).try_load_file(&path).map_err(load_err)?))
        }
        RunModel::Student(m) => RunModel::Student(m.try_load_file(&path).map_err(load_err)?),
    };
    Ok((model, config))
}

/// Carries out the run `config` describes in `run_dir`: resolves and saves the configuration,
/// loads the data, builds the network from the seed (or, with `resume`, continues from the newest
/// checkpoint), loads and freezes the teacher when distilling, and trains.
///
/// `student_hook` runs before every epoch of a student run (for QAT); it is ignored for teachers.
///
/// # Errors
/// Any [`RunError`]; training errors come wrapped in [`RunError::Train`].
pub fn run(
    mut config: RunConfig,
    run_dir: &Path,
    resume: bool,
    student_hook: Option<&mut dyn EpochHook<Student>>,
) -> Result<RunReport, RunError> {
    let started = Instant::now();
    config.validate()?;
    config.resolve()?;
    std::fs::create_dir_all(run_dir).map_err(|source| RunError::Io {
        path: run_dir.to_path_buf(),
        source,
    })?;
    if !resume && !super::checkpoint::list(run_dir)?.is_empty() {
        return Err(TrainError::RunExists {
            dir: run_dir.to_path_buf(),
        }
        .into());
    }
    let config_path = run_dir.join("config.toml");
    std::fs::write(&config_path, config.to_toml()).map_err(|source| RunError::Io {
        path: config_path,
        source,
    })?;

    let plain = device_of(&config)?;
    let (train_set, test_set) = load_datasets(&config.data)?;
    let train = train_loader(&train_set, &config.data);
    let test = eval_loader(&test_set, &config.data);

    let teacher = match &config.distill {
        Some(d) if d.ensemble.is_empty() => Some(load_model(&d.teacher, &plain)?.0.frozen()),
        Some(d) => {
            let mut members = vec![load_model(&d.teacher, &plain)?.0.frozen()];
            for dir in &d.ensemble {
                members.push(load_model(dir, &plain)?.0.frozen());
            }
            let probe = Tensor::<4>::zeros(probe_shape(&train_set, 2), &plain);
            let ensemble =
                EnsembleTeacher::new(members, d.temperature as f32, d.ensemble_features, probe)
                    .map_err(|reason| ConfigError::Invalid {
                        key: "distill.ensemble_features".into(),
                        reason,
                    })?;
            Some(Box::new(ensemble) as Box<dyn TeacherTaps>)
        }
        None => None,
    };
    let ce_weight = config
        .distill
        .as_ref()
        .map_or(1.0, |d| d.ce_weight() as f32);

    // Initial weights (the model's, then the method's auxiliaries) come from the seed alone.
    let device = plain.clone().autodiff();
    device.seed(derive_seed(config.seed, 0, STREAM_INIT));
    let model = build(&config.model, config.data.dataset.classes(), &device)?;
    // `hints = "auto"`: pick the teacher's hint layers now and record them in config.toml.
    if let (Some(spec), Some(t)) = (&mut config.distill, &teacher) {
        if matches!(spec.hints, Some(Hints::Auto(_))) {
            let sample = eval_loader(&train_set, &config.data);
            let choice = choose_hints(t.as_ref(), &sample, HINT_SAMPLES, spec.hint_count, &plain);
            println!(
                "hints: teacher layers {:?} of {} candidates (linear CKA on {} training images)",
                choice.layers, choice.candidates, choice.samples
            );
            spec.hints = Some(Hints::Layers(choice.layers));
        }
    }
    if config
        .distill
        .as_ref()
        .is_some_and(|d| d.hint_layers().is_some())
    {
        std::fs::write(run_dir.join("config.toml"), config.to_toml()).map_err(|source| {
            RunError::Io {
                path: run_dir.join("config.toml"),
                source,
            }
        })?;
    }
    // The taps' shapes come from a two-image forward pass of each network.
    let probe = || Tensor::<4>::zeros(probe_shape(&train_set, 2), &device);
    let method = match (&config.distill, &teacher, &config.online) {
        (None, None, Some(online)) => {
            let embedding = TapShapes::of(&model.taps(probe())).embedding;
            let classes = config.data.dataset.classes();
            let mut build_peer = || match build(&config.model, classes, &device) {
                Ok(RunModel::Student(s)) => Ok(s),
                Ok(RunModel::Teacher(_)) => Err("online methods train students".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let method = online
                .init(embedding, &mut build_peer, &device)
                .map_err(|reason| ConfigError::Invalid {
                    key: format!("online ({})", online.name()),
                    reason,
                })?;
            Some(Distillation::online(method))
        }
        (Some(spec), Some(t), _) => {
            let invalid = |reason| ConfigError::Invalid {
                key: format!("distill.method ({})", spec.method.name()),
                reason,
            };
            let student = TapShapes::of(&model.taps(probe()));
            let teacher = TapShapes::of(&spec.teacher_view(t.taps(probe())).map_err(invalid)?);
            let teacher_aux = match &spec.method {
                MethodConfig::Hsakd(c) => {
                    if spec.hints.is_some() || !spec.ensemble.is_empty() {
                        return Err(invalid(
                            "HSAKD's auxiliaries hang on one teacher's stages: remove \
                             distill.hints and distill.ensemble"
                                .into(),
                        )
                        .into());
                    }
                    let stages: Vec<usize> = c
                        .pairs(&student, &teacher)
                        .map_err(invalid)?
                        .into_iter()
                        .map(|p| p.1)
                        .collect();
                    let dir = c
                        .teacher_aux
                        .clone()
                        .unwrap_or_else(|| spec.teacher.join("hsakd-aux"));
                    let heads =
                        prepare_teacher_aux(&spec.teacher, &stages, &dir, &config, c, &plain)?;
                    // Whether the auxiliaries were trained now or loaded, the student's own
                    // start from the same seed.
                    device.seed(derive_seed(config.seed, 0, STREAM_HSAKD));
                    heads
                }
                _ => Vec::new(),
            };
            let ctx = MethodContext {
                student: &student,
                teacher: &teacher,
                train_labels: train_set.labels(),
                seed: config.seed,
                hints: spec.hint_layers().is_some(),
                student_spec: &config.model,
                teacher_aux: &teacher_aux,
            };
            Some(spec.init(&ctx, &device).map_err(invalid)?)
        }
        _ => None,
    };
    // Each peer of an online run is written out as a plain student run.
    let peer_config = config.online.as_ref().map(|_| {
        let mut c = config.clone();
        c.online = None;
        c.to_toml()
    });

    let method_params = method.as_ref().map_or(0, trainable_params);

    let settings = TrainSettings::of(&config, ce_weight, resume);
    let parts = Parts {
        settings: &settings,
        train: &train,
        test: &test,
        device: &device,
        run_dir,
        teacher: teacher.as_deref(),
        peer_config,
    };
    let (params, history, epochs_done, final_eval) = match model {
        RunModel::Teacher(m) => parts.go(*m, method, None)?,
        RunModel::Student(m) => match student_hook {
            // Re-borrow so the hook's object lifetime may be shorter than its owner's.
            Some(h) => parts.go(m, method, Some(&mut *h))?,
            None if config.train.binary_step1_epochs > 0 => {
                let mut two_step = TwoStep {
                    step1_epochs: config.train.binary_step1_epochs,
                };
                parts.go(m, method, Some(&mut two_step))?
            }
            None => parts.go(m, method, None)?,
        },
    };
    Ok(RunReport {
        run_dir: run_dir.to_path_buf(),
        epochs_done,
        params,
        method_params,
        test_accuracy: final_eval.accuracy,
        test_mae: final_eval.mae,
        test_loss: final_eval.loss,
        history,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The two-step recipe for binary students (ReActNet, Real-to-Binary): binary activations with
/// real weights for `step1_epochs`, then binary weights, initialised from step 1's latent
/// weights. A function of the epoch alone, so a resumed run is in the right step.
struct TwoStep {
    step1_epochs: usize,
}

impl EpochHook<Student> for TwoStep {
    fn before_epoch(
        &mut self,
        epoch: usize,
        model: Student,
        _ctx: &super::HookContext,
    ) -> Result<Student, String> {
        Ok(model.with_binary_weights(epoch >= self.step1_epochs))
    }
}

/// The pieces of a run shared by both model families.
struct Parts<'a> {
    settings: &'a TrainSettings,
    train: &'a Loader<'a>,
    test: &'a Loader<'a>,
    device: &'a Device,
    run_dir: &'a Path,
    teacher: Option<&'a dyn TeacherTaps>,
    /// `config.toml` of the peers of an online run.
    peer_config: Option<String>,
}

impl Parts<'_> {
    /// Trains `model` (with `method` when distilling) and returns
    /// `(params, history, epochs_done, final test evaluation)`.
    fn go<'h, S: Classifier + ModuleDisplay>(
        &'h self,
        model: S,
        method: Option<Distillation>,
        hook: Option<&'h mut dyn EpochHook<S>>,
    ) -> Result<(usize, Vec<EpochSummary>, usize, EvalReport), RunError> {
        materialize(&model);
        let params = trainable_params(&model);
        let ctx = FitContext {
            train: self.train,
            test: Some(self.test),
            device: self.device,
            run_dir: self.run_dir.to_path_buf(),
            teacher: self.teacher,
            hook,
        };
        let (model, history, epochs_done) = match method {
            Some(m) => {
                materialize(&m);
                let out = fit(Trainee::distill(model, m), self.settings, ctx)?;
                if let (Some(method), Some(toml)) = (&out.trainee.method, &self.peer_config) {
                    self.save_peers(method, toml)?;
                }
                (out.trainee.model, out.history, out.epochs_done)
            }
            None => {
                let out = fit(Trainee::plain(model), self.settings, ctx)?;
                (out.trainee.model, out.history, out.epochs_done)
            }
        };
        let final_eval = match history.last().and_then(|s| s.test.clone()) {
            Some(r) => r,
            None => evaluate(&model, self.test, self.device),
        };
        Ok((params, history, epochs_done, final_eval))
    }

    /// Writes peer `k` of an online cohort as the run `<run>/peer<k>` and reports its accuracy.
    fn save_peers(&self, method: &Distillation, toml: &str) -> Result<(), RunError> {
        let peers = method.method.as_ref().map_or(&[][..], |m| m.peers());
        for (i, peer) in peers.iter().enumerate() {
            let dir = self.run_dir.join(format!("peer{}", i + 1));
            let io = |source| RunError::Io {
                path: dir.clone(),
                source,
            };
            std::fs::create_dir_all(&dir).map_err(io)?;
            std::fs::write(dir.join("config.toml"), toml).map_err(io)?;
            peer.clone()
                .save_file(dir.join("model.bpk"))
                .map_err(|e| RunError::Run {
                    dir: dir.clone(),
                    reason: format!("cannot save the peer: {e}"),
                })?;
            let r = evaluate(peer, self.test, self.device);
            println!(
                "peer {}: test accuracy {:.2} % → {}",
                i + 1,
                100.0 * r.accuracy,
                dir.display()
            );
        }
        Ok(())
    }
}
