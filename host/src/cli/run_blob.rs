//! `tinykd run-blob`: run a blob over a `.tks` sample set with `tinykd-device` on this machine
//! (the reference), and optionally the same blob in the emulated board.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;

use super::CliError;
use crate::deploy::{
    build_firmware, count_instructions, run_blob_host, run_blob_qemu, Predictions, QemuOptions,
    SampleSet,
};

/// Arguments of `tinykd run-blob`.
#[derive(Debug, Args)]
pub struct RunBlobArgs {
    /// The blob (`.tkd`).
    #[arg(value_name = "BLOB")]
    pub blob: PathBuf,
    /// The sample set (`.tks`, e.g. from `tinykd export`).
    #[arg(short, long, value_name = "FILE")]
    pub samples: PathBuf,
    /// Write one predicted class per line here.
    #[arg(short, long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Also run the blob in QEMU on the emulated Cortex-M4 and compare every output byte.
    #[arg(long)]
    pub qemu: bool,
    /// The board firmware ELF (default: build `boards/qemu-mps2-an386`).
    #[arg(long, value_name = "ELF", requires = "qemu")]
    pub firmware: Option<PathBuf>,
    /// Also count the instructions of one inference on these samples, averaged, with QEMU's
    /// insn-count plugin (`tools/insn-plugin/libinsncount.so`): the binary kernels' counts
    /// depend on the data, so this is the figure for a real input distribution.
    #[arg(long, value_name = "SO", requires = "qemu")]
    pub insn_plugin: Option<PathBuf>,
}

fn read(path: &PathBuf) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Io {
        path: path.clone(),
        source,
    })
}

fn deploy(e: crate::deploy::DeployError) -> CliError {
    CliError::Usage(e.to_string())
}

fn print(label: &str, p: &Predictions) {
    println!(
        "{label}: {}/{} correct ({:.2}%)",
        p.correct,
        p.len(),
        100.0 * p.accuracy()
    );
}

impl RunBlobArgs {
    /// Runs `tinykd run-blob`.
    ///
    /// # Errors
    /// Unreadable files, a rejected blob or sample set, a failed or disagreeing board run.
    pub fn run(self) -> Result<(), CliError> {
        if let Some(plugin) = self.insn_plugin.as_ref().filter(|p| !p.is_file()) {
            return Err(CliError::Usage(format!(
                "--insn-plugin {}: no such file (build it with gcc from \
                 tools/insn-plugin/insncount.c, as tools/bench-device.sh does)",
                plugin.display()
            )));
        }
        let blob = read(&self.blob)?;
        let samples = SampleSet::from_tks_bytes(&read(&self.samples)?).map_err(deploy)?;
        let host = run_blob_host(&blob, &samples).map_err(deploy)?;
        print("host (tinykd-device on x86)", &host);
        if let Some(path) = &self.out {
            let mut f = std::fs::File::create(path).map_err(|source| CliError::Io {
                path: path.clone(),
                source,
            })?;
            for c in &host.classes {
                writeln!(f, "{c}").map_err(|source| CliError::Io {
                    path: path.clone(),
                    source,
                })?;
            }
        }
        if self.qemu {
            let firmware = match self.firmware {
                Some(f) => f,
                None => build_firmware(&crate::quickstart::default_board()).map_err(deploy)?,
            };
            let mut options = QemuOptions::new(firmware);
            options.timeout = std::time::Duration::from_secs(60 + samples.len() as u64 / 5);
            let board = match self.insn_plugin {
                Some(plugin) => {
                    options.insn_plugin = Some(plugin);
                    let (count, board) =
                        count_instructions(&blob, &samples, &options).map_err(deploy)?;
                    println!(
                        "instructions per inference (Cortex-M4, mean of {} samples): {:.0}",
                        count.samples,
                        count.per_inference()
                    );
                    board
                }
                None => run_blob_qemu(&blob, &samples, &options).map_err(deploy)?,
            };
            print("QEMU mps2-an386 (Cortex-M4)", &board.predictions);
            match host.first_difference(&board.predictions) {
                None => println!("identical: all {} samples, every output byte", host.len()),
                Some(i) => {
                    return Err(CliError::Usage(format!(
                        "host and QEMU differ at sample {i}"
                    )))
                }
            }
        }
        Ok(())
    }
}
