//! `tinykd train`: train a teacher (default) or a student with plain cross-entropy.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::{print_report, CliError, ConfigArgs};
use crate::config::{ModelSpec, RunConfig};
use crate::models::student::StudentConfig;
use crate::train::{OptimConfig, OptimizerKind};

/// Which network family a fresh run trains when the config does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelChoice {
    /// The ResNet-style teacher, SGD recipe.
    Teacher,
    /// The default MCU student (`mcu_small`), Adam recipe, no teacher.
    Student,
}

/// Arguments of `tinykd train`.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Run directory to create (config.toml, metrics.jsonl, model.bpk, checkpoints/).
    #[arg(short, long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its newest checkpoint, with its saved config (plus any --set).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "config", "model"])]
    pub resume: Option<PathBuf>,
    /// Defaults to start from, before the config file (default: teacher).
    #[arg(long, value_enum)]
    pub model: Option<ModelChoice>,
    /// Configuration.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The defaults of `tinykd train --model student`: the MCU student trained alone, with Adam
/// (lr 1e-3, ε 1e-8, no weight decay) as in the distillation recipe, so the two are comparable.
pub fn student_defaults() -> RunConfig {
    RunConfig {
        model: ModelSpec::Student(StudentConfig::mcu_small()),
        optim: OptimConfig {
            kind: OptimizerKind::Adam,
            lr: 1e-3,
            weight_decay: 0.0,
            ..OptimConfig::default()
        },
        ..RunConfig::teacher()
    }
}

impl TrainArgs {
    /// Runs `tinykd train`.
    ///
    /// # Errors
    /// Configuration, data and training errors.
    pub fn run(self) -> Result<(), CliError> {
        let (run_dir, base, resume) = match (&self.resume, &self.out) {
            (Some(dir), _) => (dir.clone(), RunConfig::from_run_dir(dir)?, true),
            (None, Some(out)) => {
                let base = match self.model.unwrap_or(ModelChoice::Teacher) {
                    ModelChoice::Teacher => RunConfig::teacher(),
                    ModelChoice::Student => student_defaults(),
                };
                (out.clone(), base, false)
            }
            (None, None) => return Err(CliError::Usage("give --out DIR or --resume DIR".into())),
        };
        let mut config = self.config.load(&base)?;
        if config.distill.is_some() {
            return Err(CliError::Usage(
                "this config has a [distill] section: use `tinykd distill`".into(),
            ));
        }
        if self.config.print_config {
            config.resolve()?;
            print!("{}", config.to_toml());
            return Ok(());
        }
        let report = crate::train::run(config, &run_dir, resume, None)?;
        print_report(&report);
        Ok(())
    }
}
