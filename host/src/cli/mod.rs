//! The `tinykd` command line: one file per subcommand, each a clap `Args` struct with a `run`
//! method. The subcommands are thin: the work happens in library functions
//! ([`crate::train::run()`], [`crate::train::load_model`], [`crate::eval::evaluate`]) that programs
//! and tests call directly.
//!
//! Adding a subcommand: a new file with `pub struct FooArgs` (clap `Args`) and
//! `impl FooArgs { pub fn run(self) -> Result<(), CliError> }`, a `mod foo;` line, and one variant
//! plus one match arm in [`Command`].

pub mod assemble;
pub mod bench;
pub mod distill;
pub mod eval;
pub mod export;
pub mod factorize;
pub mod gan;
pub mod hints;
pub mod quantize;
pub mod quickstart;
pub mod run_blob;
pub mod takd;
pub mod train;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::ConfigError;
use crate::data::DataError;
use crate::train::{RunError, TrainError};

/// Distill large networks into tiny students for microcontrollers.
#[derive(Debug, Parser)]
#[command(name = "tinykd", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a network (a teacher by default) from a TOML config plus overrides.
    Train(train::TrainArgs),
    /// Train a student from a trained teacher with a distillation method (KD by default).
    Distill(distill::DistillArgs),
    /// Float accuracy of a trained run's network on the test (or training) split.
    Eval(eval::EvalArgs),
    /// Quantize a trained student: calibrate activation ranges, then quantization-aware training.
    Quantize(quantize::QuantizeArgs),
    /// Export a quantized student as a `.tkd` blob (and its quantized test set as `.tks`).
    Export(export::ExportArgs),
    /// Run a blob over a sample set with tinykd-device on this machine (and optionally in QEMU).
    RunBlob(run_blob::RunBlobArgs),
    /// Teacher → KD student → QAT → export → host run → QEMU run, and a final table.
    Quickstart(quickstart::QuickstartArgs),
    /// Teacher → assistant(s) → student, one KD run per stage (TAKD), resumable per stage.
    Takd(takd::TakdArgs),
    /// Pick a teacher's hint layers by layer clustering (linear CKA + k-medoids, PURSUhInT).
    Hints(hints::HintsArgs),
    /// Benchmarks that train many runs and write a Markdown table (`bench methods`).
    Bench(bench::BenchArgs),
    /// Split a trained teacher into factor networks (Knowledge Factorization, ECCV 2022).
    Factorize(factorize::FactorizeArgs),
    /// Assemble any subset of factor networks into one student, without training.
    Assemble(assemble::AssembleArgs),
    /// cGAN-KD: train a class-conditional GAN, then sample a teacher-filtered synthetic set.
    Gan(gan::GanArgs),
}

impl Command {
    /// Runs the subcommand.
    ///
    /// # Errors
    /// The subcommand's [`CliError`].
    pub fn run(self) -> Result<(), CliError> {
        match self {
            Command::Train(a) => a.run(),
            Command::Distill(a) => a.run(),
            Command::Eval(a) => a.run(),
            Command::Quantize(a) => a.run(),
            Command::Export(a) => a.run(),
            Command::RunBlob(a) => a.run(),
            Command::Quickstart(a) => a.run(),
            Command::Takd(a) => a.run(),
            Command::Hints(a) => a.run(),
            Command::Bench(a) => a.run(),
            Command::Factorize(a) => a.run(),
            Command::Assemble(a) => a.run(),
            Command::Gan(a) => a.run(),
        }
    }
}

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A dataset problem.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A training problem.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// A run could not be carried out or loaded.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The arguments contradict each other.
    #[error("{0}")]
    Usage(String),
    /// A multi-stage command (a benchmark) failed; the chain says at which stage.
    #[error(transparent)]
    Failed(#[from] anyhow::Error),
    /// Output could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Options shared by the subcommands that build a configuration.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    /// TOML config file, merged over the subcommand's defaults.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. `--set optim.lr=0.05` (repeatable; applied after the file).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Shorthand for `--set train.epochs=N`.
    #[arg(long, value_name = "N")]
    pub epochs: Option<usize>,
    /// Shorthand for `--set data.train_limit=N` (train on the first N images only).
    #[arg(long, value_name = "N")]
    pub limit: Option<usize>,
    /// Shorthand for `--set data.test_limit=N`.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Shorthand for `--set seed=N`.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Shorthand for `--set device=…`.
    #[arg(long, value_enum)]
    pub device: Option<crate::backend::DeviceKind>,
    /// Print the resolved configuration and exit without training.
    #[arg(long)]
    pub print_config: bool,
}

impl ConfigArgs {
    /// The `--set` list with the shorthand flags appended (so they win over `--set`).
    pub fn all_overrides(&self) -> Vec<String> {
        let mut v = self.overrides.clone();
        if let Some(n) = self.epochs {
            v.push(format!("train.epochs={n}"));
        }
        if let Some(n) = self.limit {
            v.push(format!("data.train_limit={n}"));
        }
        if let Some(n) = self.test_limit {
            v.push(format!("data.test_limit={n}"));
        }
        if let Some(n) = self.seed {
            v.push(format!("seed={n}"));
        }
        if let Some(d) = self.device {
            let name = match d {
                crate::backend::DeviceKind::Cpu => "cpu",
                crate::backend::DeviceKind::Gpu => "gpu",
            };
            v.push(format!("device=\"{name}\""));
        }
        v
    }

    /// Builds the configuration over `base`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, argument or key.
    pub fn load(
        &self,
        base: &crate::config::RunConfig,
    ) -> Result<crate::config::RunConfig, ConfigError> {
        let overrides = self.all_overrides();
        match &self.config {
            Some(path) => crate::config::RunConfig::load_file(base, path, &overrides),
            None => crate::config::RunConfig::load(base, None, &overrides),
        }
    }
}

/// Prints a finished run's summary to stdout.
pub(crate) fn print_report(report: &crate::train::RunReport) {
    let fit = match report.test_mae {
        Some(mae) => format!("test MAE {mae:.3} (mse {:.5})", report.test_loss),
        None => format!(
            "test accuracy {:.2}% (loss {:.4})",
            100.0 * report.test_accuracy,
            report.test_loss
        ),
    };
    println!(
        "run {}: {} epochs, {} trainable parameters, {fit}, {:.0} s",
        report.run_dir.display(),
        report.epochs_done,
        report.params,
        report.seconds
    );
}
