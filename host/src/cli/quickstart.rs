//! `tinykd quickstart`: the whole flow in one command, ending with a table.

use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::quickstart::{render, run, QuickstartOptions};

/// Arguments of `tinykd quickstart`.
#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Output folder (one run directory per stage).
    #[arg(short, long, value_name = "DIR", default_value = "runs/quickstart")]
    pub out: PathBuf,
    /// The full recipe: 12-epoch teacher, 5-epoch students + 1 QAT epoch, 3 seeds, every test image in QEMU.
    #[arg(long)]
    pub full: bool,
    /// Override the teacher's epochs.
    #[arg(long, value_name = "N")]
    pub teacher_epochs: Option<usize>,
    /// Override the students' epochs.
    #[arg(long, value_name = "N")]
    pub student_epochs: Option<usize>,
    /// Override the QAT epochs.
    #[arg(long, value_name = "N")]
    pub qat_epochs: Option<usize>,
    /// Train on the first N training images only.
    #[arg(long, value_name = "N")]
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images only.
    #[arg(long, value_name = "N")]
    pub test_limit: Option<usize>,
    /// Test images to run in QEMU (default 1000, all with --full).
    #[arg(long, value_name = "N")]
    pub qemu_samples: Option<usize>,
    /// Distill from this already trained teacher run (from `tinykd train`) instead of training one.
    #[arg(long, value_name = "DIR")]
    pub teacher: Option<PathBuf>,
    /// Seeds of the student comparison, e.g. `--seeds 0,1,2`.
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    pub seeds: Option<Vec<u64>>,
}

impl QuickstartArgs {
    /// Runs `tinykd quickstart`.
    ///
    /// # Errors
    /// A missing prerequisite (with the command that installs it), or a failed stage.
    pub fn run(self) -> Result<(), CliError> {
        let mut o = if self.full {
            QuickstartOptions::full(self.out)
        } else {
            QuickstartOptions::quick(self.out)
        };
        if let Some(n) = self.teacher_epochs {
            o.teacher_epochs = n;
        }
        if let Some(n) = self.student_epochs {
            o.student_epochs = n;
        }
        if let Some(n) = self.qat_epochs {
            o.qat_epochs = n;
        }
        o.train_limit = self.train_limit.or(o.train_limit);
        o.test_limit = self.test_limit.or(o.test_limit);
        if self.qemu_samples.is_some() {
            o.qemu_samples = self.qemu_samples;
        }
        o.teacher = self.teacher;
        if let Some(s) = self.seeds {
            o.seeds = s;
        }
        let report = run(&o).map_err(|e| CliError::Usage(e.to_string()))?;
        println!("\n{}", render(&report));
        println!("(also in {}/report.md and summary.json)", o.out.display());
        Ok(())
    }
}
