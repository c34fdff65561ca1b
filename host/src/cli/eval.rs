//! `tinykd eval`: float accuracy of a trained run's network.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::CliError;
use crate::data::{Dataset, Split};
use crate::train::run::{device_of, eval_loader};

/// Which split to evaluate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SplitChoice {
    /// The test split.
    Test,
    /// The training split (without augmentation).
    Train,
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
        let mut set = Dataset::load(&config.data.dir()?, config.data.dataset, split)?;
        if let Some(n) = self.limit {
            set.truncate(n);
        }
        let report = model.evaluate(&eval_loader(&set, &config.data), &device);
        if self.json {
            let line =
                serde_json::to_string(&report).map_err(|e| CliError::Usage(e.to_string()))?;
            println!("{line}");
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
