//! `tinykd eval`: accuracy of a trained run's network: in float, with its int8 simulation
//! (fake quantization, for a quantized student), or as an exported blob run by `tinykd-device`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::CliError;
use crate::data::Split;
use crate::train::run::{device_of, eval_loader};

/// Which split to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitChoice {
    /// The test split.
    Test,
    /// The training split (without augmentation).
    Train,
}

/// How to run the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalMode {
    /// The float network.
    Float,
    /// The int8 simulation of a quantized student (`tinykd quantize`'s `quant.json`).
    FakeQuant,
    /// The exported blob (`--blob`, default `<RUN>/student.tkd`) through `tinykd-device`.
    Blob,
}

/// Arguments of `tinykd eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The run directory (its config.toml and model.bpk).
    #[arg(value_name = "RUN")]
    pub run: PathBuf,
    /// Split to evaluate.
    #[arg(long, value_enum, default_value_t = SplitChoice::Test)]
    pub split: SplitChoice,
    /// Evaluate only the first N images.
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Float network, int8 simulation, or the exported blob.
    #[arg(long, value_enum, default_value_t = EvalMode::Float)]
    pub mode: EvalMode,
    /// The blob for `--mode blob` (default `<RUN>/student.tkd`).
    #[arg(long, value_name = "FILE")]
    pub blob: Option<PathBuf>,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

impl EvalArgs {
    /// Runs `tinykd eval`.
    ///
    /// # Errors
    /// A missing or unreadable run, or dataset errors.
    pub fn run(self) -> Result<(), CliError> {
        let config = crate::config::RunConfig::from_run_dir(&self.run)?;
        let device = device_of(&config)?;
        let (model, config) = crate::train::load_model(&self.run, &device)?;
        let split = match self.split {
            SplitChoice::Test => Split::Test,
            SplitChoice::Train => Split::Train,
        };
        if self.mode == EvalMode::Blob && config.kf.is_some() {
            return Err(CliError::Usage(
                "a factorization network outputs task logits: evaluate its blob's host twin \
                 with `--mode fake-quant` (the device matches it, host/tests/kf.rs)"
                    .into(),
            ));
        }
        if self.mode == EvalMode::Blob {
            return self.eval_blob(&config, split, &device);
        }
        let model = match (self.mode, model) {
            (EvalMode::FakeQuant, crate::train::RunModel::Student(s)) => {
                let quant = crate::quant::read_quant(&self.run)?;
                crate::train::RunModel::Student(s.with_quant(Some(quant)))
            }
            (EvalMode::FakeQuant, _) => {
                return Err(CliError::Usage(
                    "only a quantized student has an int8 simulation".into(),
                ))
            }
            (_, m) => m,
        };
        let mut set = crate::train::run::load_split(&config.data, split)?;
        if let Some(n) = self.limit {
            set.truncate(n);
        }
        if let (Some(kf), crate::train::RunModel::Student(net)) = (&config.kf, &model) {
            // A factor or assembled network outputs task logits: one accuracy per task.
            let layout = kf.layout(config.data.sample_shape());
            let inference = burn::module::Module::valid(net);
            let tasks = crate::factorize::task_accuracies(
                &layout,
                &eval_loader(&set, &config.data),
                &device,
                |x| crate::models::Classifier::forward(&inference, x),
            );
            if self.json {
                println!("{}", serde_json::json!({ "tasks": tasks }));
            } else {
                for t in &tasks {
                    println!("task {}: test accuracy {:.2}%", t.task, 100.0 * t.accuracy);
                }
            }
            return Ok(());
        }
        let report = model.evaluate(&eval_loader(&set, &config.data), &device);
        if self.json {
            let line =
                serde_json::to_string(&report).map_err(|e| CliError::Usage(e.to_string()))?;
            println!("{line}");
        } else if let Some(mae) = report.mae {
            println!(
                "{}: {} samples, MAE {mae:.3}, mse {:.5}",
                self.run.display(),
                report.images,
                report.loss
            );
        } else {
            println!(
                "{}: {}/{} correct, accuracy {:.2}%, loss {:.4}",
                self.run.display(),
                report.correct,
                report.images,
                100.0 * report.accuracy,
                report.loss
            );
        }
        Ok(())
    }
}

impl EvalArgs {
    fn eval_blob(
        &self,
        config: &crate::config::RunConfig,
        split: Split,
        device: &burn::prelude::Device,
    ) -> Result<(), CliError> {
        let path = self
            .blob
            .clone()
            .unwrap_or_else(|| self.run.join("student.tkd"));
        let blob = std::fs::read(&path).map_err(|source| CliError::Io {
            path: path.clone(),
            source,
        })?;
        let input = tinykd_device::Model::from_bytes(&blob)
            .map_err(|e| CliError::Usage(format!("{}: {e}", path.display())))?
            .input_quant();
        let samples = crate::export::quantized_split(config, split, self.limit, input, device)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        let p = crate::deploy::run_blob_host(&blob, &samples)
            .map_err(|e| CliError::Usage(e.to_string()))?;
        if self.json {
            println!(
                "{{\"images\":{},\"correct\":{},\"accuracy\":{}}}",
                p.len(),
                p.correct,
                p.accuracy()
            );
        } else {
            println!(
                "{} on tinykd-device: {}/{} correct, accuracy {:.2}%",
                path.display(),
                p.correct,
                p.len(),
                100.0 * p.accuracy()
            );
        }
        Ok(())
    }
}
