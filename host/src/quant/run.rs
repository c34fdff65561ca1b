//! `tinykd quantize` as a library function: a trained student run → a quantized student run.

use std::path::{Path, PathBuf};

use super::{calibrate_on, QatHook, StudentQuant};
use crate::config::{ModelSpec, RunConfig};
use crate::train::run::{device_of, eval_loader, load_datasets, train_loader};
use crate::train::{load_model, RunError, RunModel, RunReport};

/// File of a quantized run that holds its activation quantization (JSON).
pub const QUANT_FILE: &str = "quant.json";

/// How to quantize a student.
#[derive(Debug, Clone)]
pub struct QuantizeOptions {
    /// Epochs of quantization-aware training; 0 for post-training quantization only.
    pub qat_epochs: usize,
    /// Training batches used to calibrate the activation ranges.
    pub calibration_batches: usize,
    /// The QAT learning rate as a fraction of the student run's (fine-tuning wants a small one).
    pub lr_scale: f64,
    /// `--set` overrides applied to the QAT run's configuration.
    pub overrides: Vec<String>,
}

impl Default for QuantizeOptions {
    fn default() -> Self {
        Self {
            qat_epochs: 2,
            calibration_batches: 16,
            lr_scale: 0.1,
            overrides: Vec::new(),
        }
    }
}

/// What [`quantize_run`] did.
#[derive(Debug, Clone)]
pub struct QuantizeReport {
    /// The quantized run's directory.
    pub run_dir: PathBuf,
    /// The activation quantization written to `quant.json`.
    pub quant: StudentQuant,
    /// The QAT training report (`None` for post-training quantization).
    pub training: Option<RunReport>,
    /// Test accuracy of the int8 simulation (fake quantization) at the end.
    pub simulated_accuracy: f64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunError + '_ {
    move |source| RunError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Why a regression student stops at the host (quantization and export): the blob's consumers
/// (`run-blob`, the boards) read the output as class scores and take the argmax.
pub const REGRESSION_NOT_DEPLOYED: &str =
    "a regression student (data.dataset = \"fashion-mnist-rotation\") is trained and \
     evaluated on the host; quantization and export read the output as class scores and are \
     not built for a regression head";

/// Quantizes the student trained in `student_run` into the new run `out`.
///
/// With `qat_epochs > 0` the student is fine-tuned with its int8 simulation on (keeping the
/// student run's loss: a distilled student keeps learning from its teacher); with 0 it is only
/// calibrated. Either way `out` ends with `config.toml`, `model.bpk` and `quant.json`, which
/// [`crate::export::export_run`] turns into a blob. `resume` continues an interrupted QAT run.
///
/// # Errors
/// [`RunError`] for a missing or non-student run, data and training failures.
pub fn quantize_run(
    student_run: &Path,
    out: &Path,
    options: &QuantizeOptions,
    resume: bool,
) -> Result<QuantizeReport, RunError> {
    let mut config = if resume {
        RunConfig::from_run_dir(out)?
    } else {
        RunConfig::from_run_dir(student_run)?
    };
    if config.data.dataset.is_regression() {
        return Err(RunError::Run {
            dir: student_run.to_path_buf(),
            reason: REGRESSION_NOT_DEPLOYED.into(),
        });
    }
    if !matches!(config.model, ModelSpec::Student(_)) {
        return Err(RunError::Run {
            dir: student_run.to_path_buf(),
            reason: "only students are quantized (this run trained a teacher)".into(),
        });
    }
    if config.kf.is_some() && options.qat_epochs > 0 {
        return Err(RunError::Run {
            dir: student_run.to_path_buf(),
            reason: "a factor or assembled network is quantized without fine-tuning: use \
                     --qat-epochs 0 (QAT would retrain it on the dataset's classes)"
                .into(),
        });
    }
    let weights = student_run.join("model.bpk");
    if !resume && !weights.is_file() {
        return Err(RunError::Run {
            dir: student_run.to_path_buf(),
            reason: "no model.bpk: train it first".into(),
        });
    }
    std::fs::create_dir_all(out).map_err(io(out))?;
    let quant_path = out.join(QUANT_FILE);

    if options.qat_epochs == 0 {
        let device = device_of(&config)?;
        let (model, config) = load_model(student_run, &device)?;
        let RunModel::Student(student) = model else {
            return Err(RunError::Model(
                "the run's model.bpk holds a teacher, not a student".into(),
            ));
        };
        let (train_set, test_set) = load_datasets(&config.data)?;
        let train = train_loader(&train_set, &config.data);
        let quant = calibrate_on(&student, &train, options.calibration_batches, &device);
        let simulated = student.clone().with_quant(Some(quant.clone()));
        let test = eval_loader(&test_set, &config.data);
        // A factorization's networks output task logits: their accuracy is the tasks' mean.
        let accuracy =
            match crate::factorize::mean_task_accuracy(&config, &simulated, &test, &device) {
                Some(a) => a,
                None => {
                    RunModel::Student(simulated)
                        .evaluate(&test, &device)
                        .accuracy
                }
            };
        std::fs::write(out.join("config.toml"), config.to_toml()).map_err(io(out))?;
        std::fs::copy(&weights, out.join("model.bpk")).map_err(io(&weights))?;
        write_quant(&quant_path, &quant)?;
        return Ok(QuantizeReport {
            run_dir: out.to_path_buf(),
            quant,
            training: None,
            simulated_accuracy: accuracy,
        });
    }

    if !resume {
        config.train.epochs = options.qat_epochs;
        // A binary student comes out of training with binary weights; QAT keeps them.
        config.train.binary_step1_epochs = 0;
        config.optim.lr *= options.lr_scale;
        config = RunConfig::load(&config, None, &options.overrides)?;
    }
    let mut hook = QatHook::new((!resume).then_some(weights), options.calibration_batches);
    let report = crate::train::run(config, out, resume, Some(&mut hook))?;
    let quant = hook.quant.clone().ok_or_else(|| RunError::Run {
        dir: out.to_path_buf(),
        reason: "QAT finished without calibrating (no epoch ran)".into(),
    })?;
    write_quant(&quant_path, &quant)?;
    Ok(QuantizeReport {
        run_dir: out.to_path_buf(),
        quant,
        simulated_accuracy: report.test_accuracy,
        training: Some(report),
    })
}

fn write_quant(path: &Path, quant: &StudentQuant) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(quant).map_err(|e| RunError::Model(e.to_string()))?;
    std::fs::write(path, text).map_err(io(path))
}

/// Reads the `quant.json` of a quantized run.
///
/// # Errors
/// [`RunError::Run`] when it is missing (the run was not quantized) or malformed.
pub fn read_quant(run_dir: &Path) -> Result<StudentQuant, RunError> {
    let path = run_dir.join(QUANT_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| RunError::Run {
        dir: run_dir.to_path_buf(),
        reason: format!(
            "cannot read {QUANT_FILE} ({e}): quantize the student first (`tinykd quantize`)"
        ),
    })?;
    serde_json::from_str(&text).map_err(|e| RunError::Run {
        dir: run_dir.to_path_buf(),
        reason: format!("malformed {QUANT_FILE}: {e}"),
    })
}
