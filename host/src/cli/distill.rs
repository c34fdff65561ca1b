//! `tinykd distill`: train a student from a trained teacher with a distillation method.

use std::path::PathBuf;

use clap::Args;

use super::{print_report, CliError, ConfigArgs};
use crate::config::RunConfig;

/// Arguments of `tinykd distill`.
#[derive(Debug, Args)]
pub struct DistillArgs {
    /// The teacher's run directory (from `tinykd train`).
    #[arg(short, long, value_name = "DIR", required_unless_present = "resume")]
    pub teacher: Option<PathBuf>,
    /// Run directory to create.
    #[arg(short, long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the distillation run in DIR from its newest checkpoint.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "config", "teacher"])]
    pub resume: Option<PathBuf>,
    /// Configuration (method under `[distill.method]`, e.g. `--set distill.method.temperature=2`).
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl DistillArgs {
    /// Runs `tinykd distill`.
    ///
    /// # Errors
    /// Configuration, data and training errors.
    pub fn run(self) -> Result<(), CliError> {
        let (run_dir, base, resume) = match (&self.resume, &self.out, &self.teacher) {
            (Some(dir), _, _) => (dir.clone(), RunConfig::from_run_dir(dir)?, true),
            (None, Some(out), Some(teacher)) => (out.clone(), RunConfig::distill(teacher), false),
            _ => {
                return Err(CliError::Usage(
                    "give --teacher DIR and --out DIR, or --resume DIR".into(),
                ))
            }
        };
        let mut config = self.config.load(&base)?;
        let Some(spec) = &config.distill else {
            return Err(CliError::Usage(
                "the config has no [distill] section: use `tinykd train`".into(),
            ));
        };
        if !spec.teacher.join("config.toml").is_file() {
            return Err(CliError::Usage(format!(
                "{} is not a run directory (no config.toml): train the teacher first",
                spec.teacher.display()
            )));
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
