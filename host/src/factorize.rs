//! Knowledge Factorization as library calls: `tinykd factorize` (a teacher → factor networks) and
//! `tinykd assemble` (any subset of factors → one student run, without fine-tuning).
//!
//! A factorization run directory holds what any run holds (`config.toml` with its `[kf]` section,
//! `metrics.jsonl`, `checkpoints/`, resume through [`crate::train::fit`]), plus
//! - `model.bpk`: once training is over, the assembled network of every factor, a plain student
//!   (so the directory is itself a student run: `model` is that network's layer list);
//! - `factors/<task>/`: each factor network as a student run (`config.toml` whose `[kf]` lists
//!   that one task, `model.bpk`);
//! - `factors.json`: per-task test accuracy of every factor and of the teacher.
//!
//! An assembled run (`tinykd assemble`) is a student run too: its logits are its tasks' logits
//! concatenated, in the order of `[kf] tasks` in its `config.toml`. `tinykd quantize` (with
//! `--qat-epochs 0`: QAT would fine-tune it on ten-class labels) and `tinykd export` take it like
//! any student.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::prelude::*;
use serde::Serialize;

use crate::config::{ConfigError, KfConfig, ModelSpec, RunConfig};
use crate::data::{derive_seed, Loader};
use crate::distill::kf::teacher_task_logits;
use crate::models::factors::{assemble, split, FactorError, FactorLayout, FactorNet};
use crate::models::student::Student;
use crate::models::Classifier;
use crate::train::run::{device_of, eval_loader, load_datasets, probe_shape, train_loader};
use crate::train::{
    fit, load_model, materialize, EpochSummary, FitContext, RunError, RunModel, TrainSettings,
    Trainee,
};

/// Per-task test accuracies, written to `factors.json`.
pub const REPORT_FILE: &str = "factors.json";

/// One task's test accuracy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskAccuracy {
    /// The task.
    pub task: String,
    /// Fraction of test images whose task label (class or "other") is predicted.
    pub accuracy: f64,
}

/// What [`factorize`] reports.
#[derive(Debug, Clone, Serialize)]
pub struct FactorizeReport {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Each factor network's run directory and its accuracy on its own task.
    pub factors: Vec<(PathBuf, TaskAccuracy)>,
    /// The teacher's accuracy on each task (its class probabilities grouped by task).
    pub teacher: Vec<TaskAccuracy>,
    /// Per-epoch summaries of this invocation (test accuracy: the ten-class accuracy of the
    /// factors decoded together, see [`FactorNet`]).
    pub history: Vec<EpochSummary>,
    /// Wall time of this invocation.
    pub seconds: f64,
}

/// What [`assemble_run`] reports.
#[derive(Debug, Clone, Serialize)]
pub struct AssembleReport {
    /// The assembled run directory.
    pub run_dir: PathBuf,
    /// The assembled network's accuracy on each of its tasks.
    pub tasks: Vec<TaskAccuracy>,
    /// Trainable parameters of the assembled network.
    pub params: usize,
}

/// The defaults of `tinykd factorize`: the student recipe (Adam, lr 1e-3, cosine, 12 epochs) with
/// the default `[kf]` (Fashion-MNIST's four garment tasks, a two-conv CKN and two-conv TSNs).
pub fn factorize_defaults(teacher: &Path) -> RunConfig {
    RunConfig {
        kf: Some(KfConfig {
            teacher: Some(teacher.to_path_buf()),
            ..KfConfig::default()
        }),
        ..crate::cli::train::student_defaults()
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> RunError {
    RunError::Config(ConfigError::Invalid {
        key: key.into(),
        reason: reason.into(),
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn assembly(dir: &Path) -> impl FnOnce(FactorError) -> RunError + '_ {
    move |e| RunError::Run {
        dir: dir.to_path_buf(),
        reason: e.to_string(),
    }
}

/// The `[kf]` section and layout of a config.
fn kf_of(config: &RunConfig) -> Result<(KfConfig, FactorLayout), RunError> {
    let kf = config
        .kf
        .clone()
        .ok_or_else(|| invalid("kf", "the config has no [kf] section"))?;
    let layout = kf.layout(config.data.sample_shape());
    Ok((kf, layout))
}

/// Trains the factor networks `config`'s `[kf]` describes from its teacher into `run_dir` (or, with
/// `resume`, continues from the newest checkpoint), then writes each factor as a student run and
/// reports per-task test accuracies.
///
/// The trainer's own cross-entropy is off (`γ = 0`): the IMB objective carries the task CEs.
///
/// # Errors
/// [`RunError::Config`] for a missing `[kf]` or `kf.teacher`, or a `[distill]`/`[online]` section
/// alongside; anything [`crate::train::run()`] can fail with.
pub fn factorize(
    mut config: RunConfig,
    run_dir: &Path,
    resume: bool,
) -> Result<FactorizeReport, RunError> {
    let started = Instant::now();
    config.validate()?;
    let (kf, layout) = kf_of(&config)?;
    let teacher_dir = kf.teacher.clone().ok_or_else(|| {
        invalid(
            "kf.teacher",
            "must name the teacher's run directory (--teacher)",
        )
    })?;
    if config.distill.is_some() || config.online.is_some() {
        return Err(invalid(
            "kf",
            "a factorization has its own objective: remove [distill] and [online]",
        ));
    }
    config.model = ModelSpec::Student(layout.assembled_config());
    config.resolve()?;
    std::fs::create_dir_all(run_dir).map_err(io(run_dir))?;
    if !resume && !crate::train::checkpoint::list(run_dir)?.is_empty() {
        return Err(crate::train::TrainError::RunExists {
            dir: run_dir.to_path_buf(),
        }
        .into());
    }
    let config_path = run_dir.join("config.toml");
    std::fs::write(&config_path, config.to_toml()).map_err(io(&config_path))?;

    let plain = device_of(&config)?;
    let (train_set, test_set) = load_datasets(&config.data)?;
    let train = train_loader(&train_set, &config.data);
    let test = eval_loader(&test_set, &config.data);
    let (teacher_model, _) = load_model(&teacher_dir, &plain)?;
    let teacher = teacher_model.frozen();
    let classes = config.data.dataset.classes();
    let probe = Tensor::<4>::zeros(probe_shape(&train_set, 2), &plain);
    let teacher_out = teacher.taps(probe);
    if teacher_out.logits.dims()[1] != classes {
        return Err(invalid(
            "kf.teacher",
            format!(
                "the teacher has {} outputs, the dataset {classes} classes",
                teacher_out.logits.dims()[1]
            ),
        ));
    }
    let teacher_channels: Vec<usize> = teacher_out
        .feature_maps
        .iter()
        .map(|m| m.dims()[1])
        .collect();

    let device = plain.clone().autodiff();
    device.seed(derive_seed(config.seed, 0, 0));
    let model_err = |e: crate::models::student::StudentConfigError| RunError::Model(e.to_string());
    let net = FactorNet::init(layout.clone(), classes, &device).map_err(model_err)?;
    let method = kf
        .init(layout.clone(), &teacher_channels, &device)
        .map_err(model_err)?;
    materialize(&net);
    materialize(&method);
    // The task CEs (with their own label smoothing) are terms of the method.
    let settings = TrainSettings {
        label_smoothing: 0.0,
        ..TrainSettings::of(&config, 0.0, resume)
    };
    let ctx = FitContext {
        train: &train,
        test: Some(&test),
        device: &device,
        run_dir: run_dir.to_path_buf(),
        teacher: Some(teacher.as_ref()),
        hook: None,
    };
    let out = fit(Trainee::distill(net, method), &settings, ctx)?;

    // The trained factors, off autodiff: the all-task network, then each factor alone.
    let joint: Student = out.trainee.model.net.valid();
    let model_path = run_dir.join("model.bpk");
    save(&joint, &model_path, run_dir)?;
    let factors = split(&layout, &joint, &plain).map_err(assembly(run_dir))?;
    let mut reports = Vec::with_capacity(factors.len());
    for (t, factor) in factors.iter().enumerate() {
        let task = &layout.tasks[t];
        let dir = run_dir.join("factors").join(&task.name);
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let mut c = config.clone();
        c.model = ModelSpec::Student(layout.factor_config(t));
        c.kf = Some(KfConfig {
            tasks: vec![task.clone()],
            ..kf.clone()
        });
        std::fs::write(dir.join("config.toml"), c.to_toml()).map_err(io(&dir))?;
        save(factor, &dir.join("model.bpk"), &dir)?;
        let one = FactorLayout {
            tasks: vec![task.clone()],
            ..layout.clone()
        };
        let inference = factor.valid();
        let acc = task_accuracies(&one, &test, &plain, |x| inference.forward(x));
        reports.push((
            dir,
            acc.into_iter().next().unwrap_or(TaskAccuracy {
                task: task.name.clone(),
                accuracy: 0.0,
            }),
        ));
    }
    let teacher_acc = task_accuracies(&layout, &test, &plain, |x| {
        teacher_task_logits(&layout, teacher.taps(x).logits, 1.0)
    });
    let json = serde_json::json!({
        "factors": reports.iter().map(|(_, a)| a).collect::<Vec<_>>(),
        "teacher": teacher_acc,
        "test_images": test_set.len(),
    });
    let report_path = run_dir.join(REPORT_FILE);
    std::fs::write(&report_path, format!("{json:#}\n")).map_err(io(&report_path))?;
    Ok(FactorizeReport {
        run_dir: run_dir.to_path_buf(),
        factors: reports,
        teacher: teacher_acc,
        history: out.history,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn save(net: &Student, path: &Path, dir: &Path) -> Result<(), RunError> {
    net.clone().save_file(path).map_err(|e| RunError::Run {
        dir: dir.to_path_buf(),
        reason: format!("cannot save {}: {e}", path.display()),
    })
}

/// Assembles the factors `tasks` (names, in the order their logits will have) of the
/// factorization run `factorization` into one student run at `out`, without any training, and
/// reports its per-task test accuracy.
///
/// # Errors
/// [`RunError::Config`] naming `--tasks` for an empty list or an unknown or repeated task;
/// [`RunError::Run`] for a missing factor or factors that do not assemble.
pub fn assemble_run(
    factorization: &Path,
    tasks: &[String],
    out: &Path,
) -> Result<AssembleReport, RunError> {
    let config = RunConfig::from_run_dir(factorization)?;
    let (_, all) = kf_of(&config)?;
    let subset = all.subset(tasks).map_err(|e| match e {
        FactorError::Tasks { key, reason } => invalid(&key, reason),
        other => invalid("--tasks", other.to_string()),
    })?;
    let device = device_of(&config)?;
    let mut factors = Vec::with_capacity(subset.tasks.len());
    let mut base = None;
    for task in &subset.tasks {
        let dir = factorization.join("factors").join(&task.name);
        let (model, c) = load_model(&dir, &device)?;
        let RunModel::Student(s) = model else {
            return Err(RunError::Run {
                dir,
                reason: "a factor is a student".into(),
            });
        };
        let (_, one) = kf_of(&c)?;
        if one.common != all.common
            || one.task_layers != all.task_layers
            || one.tasks != [task.clone()]
        {
            return Err(RunError::Run {
                dir,
                reason: "this factor's [kf] layers or task differ from the factorization's".into(),
            });
        }
        factors.push(s);
        base.get_or_insert(c);
    }
    let net = assemble(&subset, &factors, &device).map_err(assembly(factorization))?;
    let Some(mut c) = base else {
        return Err(invalid("--tasks", "names no task"));
    };
    c.model = ModelSpec::Student(subset.assembled_config());
    if let Some(kf) = &mut c.kf {
        kf.tasks = subset.tasks.clone();
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    std::fs::write(out.join("config.toml"), c.to_toml()).map_err(io(out))?;
    save(&net, &out.join("model.bpk"), out)?;
    let (_, test_set) = load_datasets(&c.data)?;
    let test = eval_loader(&test_set, &c.data);
    let inference = net.valid();
    let tasks = task_accuracies(&subset, &test, &device, |x| inference.forward(x));
    Ok(AssembleReport {
        run_dir: out.to_path_buf(),
        tasks,
        params: net.num_params(),
    })
}

/// Per-task accuracy on `loader` of a network whose logits are `layout`'s tasks' logits
/// concatenated.
pub fn task_accuracies(
    layout: &FactorLayout,
    loader: &Loader,
    device: &Device,
    logits_of: impl Fn(Tensor<4>) -> Tensor<2>,
) -> Vec<TaskAccuracy> {
    let (offsets, _) = layout.logit_offsets();
    let mut correct = vec![0usize; layout.tasks.len()];
    let mut seen = 0usize;
    for batch in loader.epoch(0, 0, device) {
        let logits = logits_of(batch.images);
        let labels: Vec<usize> = batch
            .targets
            .into_data()
            .iter::<i64>()
            .map(|v| v as usize)
            .collect();
        for (t, task) in layout.tasks.iter().enumerate() {
            let preds = logits
                .clone()
                .narrow(1, offsets[t], task.outputs())
                .argmax(1)
                .into_data();
            correct[t] += preds
                .iter::<i64>()
                .zip(&labels)
                .filter(|&(p, &y)| p as usize == task.label_of(y))
                .count();
        }
        seen += labels.len();
    }
    layout
        .tasks
        .iter()
        .zip(correct)
        .map(|(t, c)| TaskAccuracy {
            task: t.name.clone(),
            accuracy: c as f64 / seen.max(1) as f64,
        })
        .collect()
}

/// For a factor or assembled network's run config (one with `[kf]`): the mean over its tasks of
/// `net`'s test accuracy on `loader`; `None` for any other run.
pub fn mean_task_accuracy(
    config: &RunConfig,
    net: &Student,
    loader: &Loader,
    device: &Device,
) -> Option<f64> {
    let (_, layout) = kf_of(config).ok()?;
    let inference = net.valid();
    let acc = task_accuracies(&layout, loader, device, |x| inference.forward(x));
    Some(acc.iter().map(|a| a.accuracy).sum::<f64>() / acc.len().max(1) as f64)
}
