//! `tinykd factorize`: split a trained teacher into factor networks (Knowledge Factorization).

use std::path::PathBuf;

use clap::Args;

use super::{CliError, ConfigArgs};
use crate::config::RunConfig;
use crate::factorize::{factorize, factorize_defaults};

/// Arguments of `tinykd factorize`.
#[derive(Debug, Args)]
pub struct FactorizeArgs {
    /// The teacher's run directory (a classifier over the dataset's classes).
    #[arg(short, long, value_name = "DIR", required_unless_present = "resume")]
    pub teacher: Option<PathBuf>,
    /// Run directory to create; the factors go to `DIR/factors/<task>/`.
    #[arg(short, long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the factorization in DIR from its newest checkpoint.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "config", "teacher"])]
    pub resume: Option<PathBuf>,
    /// Configuration (tasks and objective under `[kf]`, e.g. `--set kf.beta=0`).
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl FactorizeArgs {
    /// Runs `tinykd factorize`.
    ///
    /// # Errors
    /// Configuration, data and training errors.
    pub fn run(self) -> Result<(), CliError> {
        let (run_dir, base, resume) = match (&self.resume, &self.out, &self.teacher) {
            (Some(dir), _, _) => (dir.clone(), RunConfig::from_run_dir(dir)?, true),
            (None, Some(out), Some(teacher)) => (out.clone(), factorize_defaults(teacher), false),
            _ => {
                return Err(CliError::Usage(
                    "give --teacher DIR and --out DIR, or --resume DIR".into(),
                ))
            }
        };
        let mut config = self.config.load(&base)?;
        if self.config.print_config {
            config.resolve()?;
            print!("{}", config.to_toml());
            return Ok(());
        }
        let report = factorize(config, &run_dir, resume)?;
        for (dir, acc) in &report.factors {
            let teacher = report
                .teacher
                .iter()
                .find(|t| t.task == acc.task)
                .map_or(f64::NAN, |t| t.accuracy);
            println!(
                "factor {}: test accuracy {:.2}% (teacher {:.2}%) → {}",
                acc.task,
                100.0 * acc.accuracy,
                100.0 * teacher,
                dir.display()
            );
        }
        println!(
            "run {}: {} factors, {:.0} s",
            report.run_dir.display(),
            report.factors.len(),
            report.seconds
        );
        Ok(())
    }
}
