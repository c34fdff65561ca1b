//! `tinykd gan`: the cGAN-KD stages ([`crate::synth`]): `gan train` trains the class-conditional
//! GAN (resumable), `gan sample` writes a filtered, relabelled synthetic set for
//! `data.synthetic`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::CliError;
use crate::synth::{GanRunConfig, SynthError};

/// Arguments of `tinykd gan`.
#[derive(Debug, Args)]
pub struct GanArgs {
    /// The stage.
    #[command(subcommand)]
    pub command: GanCommand,
}

/// The stages of `tinykd gan`.
#[derive(Debug, Subcommand)]
pub enum GanCommand {
    /// Train the class-conditional GAN (per-epoch checkpoints and PNG grids in the run dir).
    Train(GanTrainArgs),
    /// Generate, subsample (cDR-RS), filter and relabel (teacher) a synthetic training set.
    Sample(GanSampleArgs),
}

/// Arguments of `tinykd gan train`.
#[derive(Debug, Args)]
pub struct GanTrainArgs {
    /// Run directory to create.
    #[arg(short, long, value_name = "DIR", required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// Continue the run in DIR from its newest checkpoint, with its saved config (plus any --set,
    /// e.g. `--set gan.epochs=10` to train longer).
    #[arg(long, value_name = "DIR", conflicts_with_all = ["out", "config"])]
    pub resume: Option<PathBuf>,
    /// TOML config file (`seed`, `[data]`, `[gan]`, `[sample]`), merged over the defaults.
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Override one key, e.g. `--set gan.epochs=3` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Print the resolved configuration and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Arguments of `tinykd gan sample`.
#[derive(Debug, Args)]
pub struct GanSampleArgs {
    /// The GAN run (from `tinykd gan train`).
    #[arg(long, value_name = "DIR")]
    pub gan: PathBuf,
    /// The teacher run that filters and relabels (and gives the density-ratio features).
    #[arg(long, value_name = "DIR")]
    pub teacher: PathBuf,
    /// Directory to write the synthetic set, `report.json` and `kept-grid.png` into.
    #[arg(short, long, value_name = "DIR")]
    pub out: PathBuf,
    /// Override a `[sample]` key of the GAN run's config, e.g. `--set sample.per_class=2000`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

fn synth(e: SynthError) -> CliError {
    match e {
        SynthError::Config(c) => CliError::Config(c),
        SynthError::Data(d) => CliError::Data(d),
        SynthError::Train(t) => CliError::Train(t),
        SynthError::Run(r) => CliError::Run(r),
        other => CliError::Failed(other.into()),
    }
}

impl GanArgs {
    /// Runs `tinykd gan …`.
    ///
    /// # Errors
    /// Configuration, data, checkpoint and sampling errors.
    pub fn run(self) -> Result<(), CliError> {
        match self.command {
            GanCommand::Train(a) => a.run(),
            GanCommand::Sample(a) => a.run(),
        }
    }
}

impl GanTrainArgs {
    fn run(self) -> Result<(), CliError> {
        let (config, dir, resume) = match (&self.resume, &self.out) {
            (Some(dir), _) => (
                GanRunConfig::from_run_dir(dir, &self.overrides)?,
                dir.clone(),
                true,
            ),
            (None, Some(out)) => {
                let text = match &self.config {
                    Some(p) => Some((
                        std::fs::read_to_string(p).map_err(|source| CliError::Io {
                            path: p.clone(),
                            source,
                        })?,
                        p.display().to_string(),
                    )),
                    None => None,
                };
                let config = GanRunConfig::load(
                    text.as_ref().map(|(t, o)| (t.as_str(), o.as_str())),
                    &self.overrides,
                )?;
                (config, out.clone(), false)
            }
            (None, None) => return Err(CliError::Usage("give --out DIR or --resume DIR".into())),
        };
        if self.print_config {
            print!("{}", config.to_toml());
            return Ok(());
        }
        if resume {
            // Keep the saved config in step with overrides such as a longer gan.epochs.
            let path = dir.join("config.toml");
            std::fs::write(&path, config.to_toml())
                .map_err(|source| CliError::Io { path, source })?;
        }
        let report = crate::synth::train::train_gan(&config, &dir, resume).map_err(synth)?;
        println!(
            "gan {}: {} epochs, last epoch D {:.4} G {:.4}, {:.0} s",
            report.run_dir.display(),
            report.epochs_done,
            report.last_losses.0,
            report.last_losses.1,
            report.seconds
        );
        Ok(())
    }
}

impl GanSampleArgs {
    fn run(self) -> Result<(), CliError> {
        let r = crate::synth::sample::sample(&self.gan, &self.teacher, &self.out, &self.overrides)
            .map_err(synth)?;
        if let (Some(mae), Some(shift)) = (r.teacher_burn_in_mae, r.mean_relabel_shift) {
            println!(
                "synthetic set {}: {} samples; the teacher's MAE to the conditioning values \
                 {mae:.2}, rejection sampling accepted {:.1} %, the filter kept {:.1} % of \
                 those, relabelling moved the targets by {shift:.2} on average ({:.0} s)",
                r.out_dir.display(),
                r.written,
                100.0 * r.acceptance_rate,
                100.0 * r.filter_pass_rate,
                r.seconds
            );
            return Ok(());
        }
        println!(
            "synthetic set {}: {} samples; rejection sampling accepted {:.1} %, the teacher \
             filter kept {:.1} % of those, {:.1} % relabelled ({:.0} s)",
            r.out_dir.display(),
            r.written,
            100.0 * r.acceptance_rate,
            100.0 * r.filter_pass_rate,
            100.0 * r.relabel_rate,
            r.seconds
        );
        Ok(())
    }
}
