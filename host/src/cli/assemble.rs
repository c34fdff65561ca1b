//! `tinykd assemble`: any subset of a factorization's factors as one student, without training.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::factorize::assemble_run;

/// Arguments of `tinykd assemble`.
#[derive(Debug, Args)]
pub struct AssembleArgs {
    /// The factorization's run directory (from `tinykd factorize`).
    #[arg(short, long, value_name = "DIR")]
    pub factors: PathBuf,
    /// The tasks to assemble, in the order of their logits, e.g. `--tasks tops,footwear`.
    #[arg(long, value_delimiter = ',', value_name = "TASKS", required = true)]
    pub tasks: Vec<String>,
    /// Student run directory to write (`tinykd quantize --qat-epochs 0` and `tinykd export`
    /// take it).
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
}

impl AssembleArgs {
    /// Runs `tinykd assemble`.
    ///
    /// # Errors
    /// An unknown or repeated task, missing factors, or factors that do not assemble.
    pub fn run(self) -> Result<(), CliError> {
        let tasks: Vec<String> = self
            .tasks
            .iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        let report = assemble_run(&self.factors, &tasks, &self.out)?;
        for t in &report.tasks {
            println!("task {}: test accuracy {:.2}%", t.task, 100.0 * t.accuracy);
        }
        println!(
            "assembled {} tasks, {} parameters → {}",
            report.tasks.len(),
            report.params,
            report.run_dir.display()
        );
        Ok(())
    }
}
