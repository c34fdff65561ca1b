//! `tinykd bench …`: benchmarks that train many runs and write a Markdown table.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::CliError;
use crate::bench::{run_methods_bench, BenchRow, MethodsBenchOptions};

/// Arguments of `tinykd bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which benchmark.
    #[command(subcommand)]
    pub which: Bench,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
pub enum Bench {
    /// The same student with every distillation method from the same teacher, several seeds:
    /// float and int8-blob accuracy, extra trainable parameters, time per epoch, peak memory.
    Methods(MethodsArgs),
}

/// Arguments of `tinykd bench methods`.
#[derive(Debug, Args)]
pub struct MethodsArgs {
    /// The teacher's run directory (from `tinykd train`).
    #[arg(long, value_name = "DIR")]
    pub teacher: PathBuf,
    /// Output folder (one run per method and seed, `methods.md`, `results.jsonl`); finished runs
    /// in it are reused.
    #[arg(short, long, value_name = "DIR", default_value = "runs/bench-methods")]
    pub out: PathBuf,
    /// Seeds, e.g. `--seeds 0,1,2`.
    #[arg(long, value_delimiter = ',', default_value = "0,1,2")]
    pub seeds: Vec<u64>,
    /// Student epochs.
    #[arg(long, default_value_t = 2)]
    pub epochs: usize,
    /// Rows to run (default: all), e.g. `--methods vanilla,kd,crd+kd`.
    #[arg(long, value_delimiter = ',')]
    pub methods: Option<Vec<String>>,
    /// Override a key of every run's configuration (repeatable), e.g. `--set data.train_limit=20000`;
    /// `ROW:KEY=VALUE` (rows joined by `|`) applies to those rows only, e.g.
    /// `--set "crd|crd+kd:distill.method.nce_k=4096"`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// More teacher runs that, with `--teacher`, form an ensemble: adds the rows `kd-ensemble`,
    /// `crd-ensemble` and `crd+kd-ensemble`.
    #[arg(long, value_delimiter = ',', value_name = "DIRS")]
    pub ensemble: Vec<PathBuf>,
    /// A config file merged over the distillation defaults before each row's settings, e.g.
    /// `configs/binary-student.toml` (another student, schedule or data size).
    #[arg(short, long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Also run every blob in QEMU (emulated Cortex-M4) on the whole test set and fail unless
    /// every output byte equals the host's.
    #[arg(long)]
    pub qemu: bool,
    /// Training batches to calibrate the int8 export.
    #[arg(long, default_value_t = 16)]
    pub calibration_batches: usize,
    /// Quantization-aware training epochs (at a tenth of the learning rate) before the export;
    /// 0 quantizes post-training. Binary students need it: the int8 stem's rounding moves the
    /// signs the next layer sees.
    #[arg(long, default_value_t = 0)]
    pub qat_epochs: usize,
    /// Only tabulate the runs already finished in `--out`; train nothing.
    #[arg(long)]
    pub report_only: bool,
}

impl BenchArgs {
    /// Runs `tinykd bench`.
    ///
    /// # Errors
    /// An unknown row name, or a failed run.
    pub fn run(self) -> Result<(), CliError> {
        match self.which {
            Bench::Methods(a) => {
                let mut all = BenchRow::defaults();
                if !a.ensemble.is_empty() {
                    all.extend(BenchRow::ensemble(&a.ensemble));
                }
                let named: Vec<BenchRow> = all.iter().cloned().chain(BenchRow::binary()).collect();
                let rows = match &a.methods {
                    None => all,
                    Some(names) => names
                        .iter()
                        .map(|n| {
                            named.iter().find(|r| &r.key == n).cloned().ok_or_else(|| {
                                let keys: Vec<&str> =
                                    named.iter().map(|r| r.key.as_str()).collect();
                                CliError::Usage(format!(
                                    "unknown benchmark row `{n}`; rows: {}",
                                    keys.join(", ")
                                ))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                };
                let o = MethodsBenchOptions {
                    teacher: a.teacher,
                    out: a.out,
                    rows,
                    seeds: a.seeds,
                    epochs: a.epochs,
                    config: a.config,
                    qemu: match a.qemu {
                        true => Some(
                            crate::deploy::build_firmware(&crate::quickstart::default_board())
                                .map_err(|e| CliError::Usage(e.to_string()))?,
                        ),
                        false => None,
                    },
                    overrides: a.overrides,
                    calibration_batches: a.calibration_batches,
                    qat_epochs: a.qat_epochs,
                    report_only: a.report_only,
                };
                let table = run_methods_bench(&o)?;
                println!("\n{table}\n(also in {}/methods.md)", o.out.display());
                Ok(())
            }
        }
    }
}
