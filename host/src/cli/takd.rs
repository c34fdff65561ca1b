//! `tinykd takd`: teacher → assistant(s) → student, one KD run per stage, resumable per stage.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::models::teacher::TeacherPreset;
use crate::takd::{run_takd, run_takd_auto, TakdOptions, TakdSearch};

/// Arguments of `tinykd takd`.
#[derive(Debug, Args)]
pub struct TakdArgs {
    /// The trained teacher's run directory.
    #[arg(long, value_name = "DIR")]
    pub teacher: PathBuf,
    /// Output folder, one run per stage; rerunning continues an unfinished chain.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Assistant sizes (teacher presets), largest first, e.g. `--assistants small,tiny`.
    #[arg(
        long,
        value_delimiter = ',',
        value_name = "PRESETS",
        required_unless_present = "auto"
    )]
    pub assistants: Vec<String>,
    /// Pick the chain automatically: train every candidate chain (direct, each smaller preset,
    /// all smaller presets) for `--search-epochs`, keep the one whose student scores best on a
    /// validation split held out of the training set, then train it fully.
    #[arg(long, conflicts_with = "assistants")]
    pub auto: bool,
    /// Epochs per stage of the candidate chains in `--auto`.
    #[arg(long, default_value_t = 1)]
    pub search_epochs: usize,
    /// Validation images held out of the training file in `--auto`, unless the config sets
    /// `data.validation`.
    #[arg(long, default_value_t = 5000)]
    pub validation: usize,
    /// TOML config merged over the distillation defaults (student model, recipe, schedule).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override a key of every stage's configuration (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Shorthand for `--set train.epochs=N`.
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
}

impl TakdArgs {
    /// Runs `tinykd takd`.
    ///
    /// # Errors
    /// An unknown preset, an unreadable config, or a failed stage.
    pub fn run(self) -> Result<(), CliError> {
        let assistants = self
            .assistants
            .iter()
            .map(|a| {
                serde_json::from_value::<TeacherPreset>(serde_json::Value::String(a.clone()))
                    .map_err(|_| {
                        CliError::Usage(format!(
                            "unknown assistant preset `{a}`; presets: tiny, small, base, large"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let config_text = match &self.config {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|source| CliError::Io {
                path: p.clone(),
                source,
            })?),
            None => None,
        };
        let mut overrides = self.overrides;
        if let Some(n) = self.epochs {
            overrides.push(format!("train.epochs={n}"));
        }
        let o = TakdOptions {
            teacher: self.teacher,
            out: self.out,
            assistants,
            config_text,
            overrides,
        };
        if self.auto {
            let search = TakdSearch {
                epochs: self.search_epochs,
                validation: self.validation,
            };
            let (scores, _) = run_takd_auto(&o, &search)?;
            let best = scores
                .iter()
                .map(|s| s.validation_accuracy)
                .fold(f64::NEG_INFINITY, f64::max);
            println!("chosen by validation accuracy ({:.2} %)", 100.0 * best);
        } else {
            run_takd(&o)?;
        }
        Ok(())
    }
}
