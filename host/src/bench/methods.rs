//! `tinykd bench methods`: the same student trained with every distillation method from the same
//! teacher, over several seeds, then quantized (post-training, calibrated) and exported, the blob
//! run on this machine with `tinykd-device` for the int8 accuracy.
//!
//! Every run lives in `<out>/<row>/seed<N>/` with a `result.json`; a rerun skips finished runs, so
//! an interrupted benchmark resumes where it stopped. The table goes to `<out>/methods.md`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::RunConfig;
use crate::deploy::{run_blob_host, run_blob_qemu, QemuOptions, SampleSet};
use crate::export::export_run;
use crate::models::teacher::TeacherPreset;
use crate::quant::{quantize_run, QuantizeOptions};
use crate::takd::{run_assistants, TakdOptions};

/// One row of the table: a label and the `--set` overrides that select its recipe.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchRow {
    /// Short key (`crd+kd`) used in directory names and `--methods`.
    pub key: String,
    /// Overrides applied on top of the distillation defaults; `None` trains the student alone.
    pub overrides: Option<Vec<String>>,
    /// TAKD: assistants distilled in turn from the teacher (largest first), the student
    /// distilled from the last one with the row's recipe (empty: from the teacher).
    pub assistants: Vec<TeacherPreset>,
}

impl BenchRow {
    fn distill(key: &str, method: &str, extra: &[&str]) -> Self {
        let mut sets = vec![format!("distill.method.method={method}")];
        sets.extend(extra.iter().map(|s| s.to_string()));
        Self {
            key: key.into(),
            overrides: Some(sets),
            assistants: Vec::new(),
        }
    }

    /// The rows of the zoo table, in its order. `fsp` uses the two student maps whose channel
    /// counts (32, 64) match teacher maps (the `base` teacher's first two stages); `fitnet-auto`
    /// lets `tinykd hints` pick the teacher layers.
    pub fn defaults() -> Vec<Self> {
        let mut rows = vec![Self {
            key: "vanilla".into(),
            overrides: None,
            assistants: Vec::new(),
        }];
        rows.push(Self::distill("kd", "kd", &[]));
        rows.push(Self::distill("fitnet", "fitnet", &[]));
        rows.push(Self::distill(
            "fitnet-auto",
            "fitnet",
            &["distill.hints=\"auto\""],
        ));
        for name in ["at", "sp", "cc", "vid", "rkd", "pkt", "nst"] {
            rows.push(Self::distill(name, name, &[]));
        }
        rows.push(Self::distill(
            "fsp",
            "fsp",
            &[
                "distill.method.student_maps=[1, 2]",
                "distill.method.teacher_maps=[0, 1]",
            ],
        ));
        rows.push(Self::distill("crd", "crd", &[]));
        rows.push(Self::distill("crd+kd", "crd", &["distill.alpha=1.0"]));
        rows.push(Self::distill("dkd", "dkd", &[]));
        rows.push(Self::distill("sk", "sk", &[]));
        rows.push(Self::online("dml"));
        rows.push(Self::online("mcl"));
        rows.push(Self::online("lmcl"));
        // The teacher's auxiliaries are trained once per teacher, for 2 epochs at this budget.
        rows.push(Self::distill(
            "hsakd",
            "hsakd",
            &["distill.method.aux_epochs=2"],
        ));
        rows.push(Self::takd(TeacherPreset::Small));
        rows
    }

    /// TAKD with one assistant of `preset`: KD teacher → assistant → student, each stage with
    /// the run's recipe and schedule.
    pub fn takd(preset: TeacherPreset) -> Self {
        Self {
            assistants: vec![preset],
            ..Self::distill("takd", "kd", &[])
        }
    }

    /// An online cohort of two (no teacher); the row reports peer 0, the run's own model.
    fn online(method: &str) -> Self {
        Self {
            key: method.into(),
            overrides: Some(vec![format!("online.method={method}")]),
            assistants: Vec::new(),
        }
    }

    /// Rows for binary students, run only when named: CMIM's contrastive term alone (`cmim`,
    /// with cross-entropy) and on top of KD (`kd+cmim`).
    pub fn binary() -> Vec<Self> {
        vec![
            Self::distill(
                "cmim",
                "kd",
                &[
                    "distill.alpha=0.0",
                    "distill.gamma=1.0",
                    "distill.contrast={}",
                ],
            ),
            Self::distill("kd+cmim", "kd", &["distill.contrast={}"]),
        ]
    }

    /// KD, CRD and CRD+KD from an ensemble of `teacher` and `members` (averaged predictions for
    /// KD, concatenated embeddings for CRD): rows `kd-ensemble`, `crd-ensemble`, `crd+kd-ensemble`.
    pub fn ensemble(members: &[PathBuf]) -> Vec<Self> {
        let list = members
            .iter()
            .map(|m| format!("\"{}\"", m.display()))
            .collect::<Vec<_>>()
            .join(", ");
        let ensemble = format!("distill.ensemble=[{list}]");
        vec![
            Self::distill("kd-ensemble", "kd", &[&ensemble]),
            Self::distill(
                "crd-ensemble",
                "crd",
                &[&ensemble, "distill.ensemble_features=\"concat\""],
            ),
            Self::distill(
                "crd+kd-ensemble",
                "crd",
                &[
                    "distill.alpha=1.0",
                    &ensemble,
                    "distill.ensemble_features=\"concat\"",
                ],
            ),
        ]
    }
}

/// What `tinykd bench methods` runs.
#[derive(Debug, Clone)]
pub struct MethodsBenchOptions {
    /// The teacher's run directory.
    pub teacher: PathBuf,
    /// Output directory (runs, `methods.md`, `results.jsonl`).
    pub out: PathBuf,
    /// The rows to run.
    pub rows: Vec<BenchRow>,
    /// Seeds per row.
    pub seeds: Vec<u64>,
    /// Epochs per student.
    pub epochs: usize,
    /// A config file merged over the distillation defaults before the rows' settings (another
    /// student, a binary one, another schedule).
    pub config: Option<PathBuf>,
    /// Also run every blob in QEMU with this firmware and check it byte for byte against the host.
    pub qemu: Option<PathBuf>,
    /// `--set` overrides applied to every run (schedule, data limits, …); one written
    /// `ROW:KEY=VALUE` applies to that row only (`crd:distill.method.nce_k=4096`).
    pub overrides: Vec<String>,
    /// Training batches to calibrate the int8 export.
    pub calibration_batches: usize,
    /// Quantization-aware training epochs before the export (0: post-training quantization).
    pub qat_epochs: usize,
    /// Only tabulate the runs already finished in `out`; train nothing.
    pub report_only: bool,
}

/// One finished run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// Row key.
    pub row: String,
    /// Seed.
    pub seed: u64,
    /// Float test accuracy after the last epoch.
    pub float_accuracy: f64,
    /// Accuracy of the exported int8 blob run by `tinykd-device` on the same test images.
    pub int8_accuracy: f64,
    /// Trainable parameters of the method's auxiliary modules.
    pub method_params: usize,
    /// Mean wall time of a training epoch (steps only), seconds.
    pub epoch_seconds: f64,
    /// Peak resident memory of the process during the run (Linux `VmHWM`), bytes.
    pub peak_rss: Option<u64>,
    /// Blob size, bytes.
    pub blob_bytes: usize,
    /// With `--qemu`: whether the emulated board's outputs were identical to the host's on every
    /// test image (a difference fails the run instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_identical: Option<bool>,
}

/// Resets the kernel's peak-RSS mark of this process (Linux only; a no-op elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The peak RSS since the last reset, from `/proc/self/status` (Linux only).
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn result_path(o: &MethodsBenchOptions, row: &BenchRow, seed: u64) -> PathBuf {
    o.out
        .join(row.key.replace('+', "-"))
        .join(format!("seed{seed}"))
        .join("result.json")
}

fn finished(o: &MethodsBenchOptions, row: &BenchRow, seed: u64) -> Option<RunResult> {
    let text = std::fs::read_to_string(result_path(o, row, seed)).ok()?;
    serde_json::from_str::<RunResult>(&text).ok()
}

fn one_run(o: &MethodsBenchOptions, row: &BenchRow, seed: u64) -> Result<RunResult> {
    let result_path = result_path(o, row, seed);
    let dir = result_path.parent().context("run directory")?.to_path_buf();
    if let Some(r) = finished(o, row, seed) {
        println!(
            "== {} seed {seed}: done before ({})",
            row.key,
            result_path.display()
        );
        return Ok(r);
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    let mut sets: Vec<String> = o
        .overrides
        .iter()
        .filter_map(|s| match s.split_once(':') {
            Some((rows, set)) if !rows.contains('=') => rows
                .split('|')
                .any(|r| r == row.key)
                .then(|| set.to_string()),
            _ => Some(s.clone()),
        })
        .collect();
    sets.push(format!("seed={seed}"));
    sets.push(format!("train.epochs={}", o.epochs));
    let base = match &o.config {
        Some(path) => RunConfig::load_file(&RunConfig::distill(&o.teacher), path, &[])?,
        None => RunConfig::distill(&o.teacher),
    };
    let online = row
        .overrides
        .as_ref()
        .is_some_and(|o| o.iter().any(|s| s.starts_with("online.")));
    let config = match &row.overrides {
        Some(extra) if online => {
            let mut all = extra.clone();
            all.extend(sets);
            let mut base = base;
            base.distill = None;
            RunConfig::load(&base, None, &all)?
        }
        Some(extra) => {
            // The row's recipe first, so that row-scoped overrides refine it.
            let mut all = extra.clone();
            all.extend(sets);
            RunConfig::load(&base, None, &all)?
        }
        None => {
            let mut c = RunConfig::load(&base, None, &sets)?;
            c.distill = None;
            c
        }
    };
    println!("== {} seed {seed} → {}", row.key, dir.display());
    let mut config = config;
    if !row.assistants.is_empty() {
        // The assistants first, each its own stage; the row then distils from the last one.
        let chain = TakdOptions {
            teacher: o.teacher.clone(),
            out: dir.join("chain"),
            assistants: row.assistants.clone(),
            config_text: Some(config.to_toml()),
            overrides: Vec::new(),
        };
        let last = run_assistants(&chain)?;
        if let Some(d) = &mut config.distill {
            d.teacher = last.dir;
        }
    }
    reset_peak_rss();
    let float_dir = dir.join("float");
    let report = crate::train::run(config, &float_dir, false, None)?;
    let peak = peak_rss();
    let epoch_seconds =
        report.history.iter().map(|h| h.seconds).sum::<f64>() / report.history.len().max(1) as f64;

    let qdir = dir.join("int8");
    let options = QuantizeOptions {
        qat_epochs: o.qat_epochs,
        calibration_batches: o.calibration_batches,
        ..QuantizeOptions::default()
    };
    quantize_run(&float_dir, &qdir, &options, false)?;
    let blob_path = qdir.join("student.tkd");
    let tks = qdir.join("test.tks");
    export_run(&qdir, &blob_path, Some((&tks, None)))?;
    let blob = std::fs::read(&blob_path).with_context(|| blob_path.display().to_string())?;
    let samples = SampleSet::from_tks_bytes(
        &std::fs::read(&tks).with_context(|| tks.display().to_string())?,
    )?;
    let predictions = run_blob_host(&blob, &samples)?;
    let qemu_identical = match &o.qemu {
        Some(firmware) => {
            let mut options = QemuOptions::new(firmware.clone());
            options.timeout = std::time::Duration::from_secs(60 + samples.len() as u64 / 5);
            let board = run_blob_qemu(&blob, &samples, &options)?;
            if let Some(i) = predictions.first_difference(&board.predictions) {
                anyhow::bail!("host and QEMU differ at test sample {i}");
            }
            Some(true)
        }
        None => None,
    };
    let result = RunResult {
        row: row.key.clone(),
        seed,
        float_accuracy: report.test_accuracy,
        int8_accuracy: predictions.accuracy(),
        method_params: report.method_params,
        epoch_seconds,
        peak_rss: peak,
        blob_bytes: blob.len(),
        qemu_identical,
    };
    std::fs::write(&result_path, serde_json::to_string_pretty(&result)?)
        .with_context(|| result_path.display().to_string())?;
    println!(
        "   float {:.2} %  int8 {:.2} %  {:.0} s/epoch",
        100.0 * result.float_accuracy,
        100.0 * result.int8_accuracy,
        result.epoch_seconds
    );
    Ok(result)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// Renders the table: one line per row, mean ± sample standard deviation over seeds.
pub fn render(results: &[RunResult], rows: &[BenchRow]) -> String {
    let mut s = String::from(
        "| method | float acc. % (mean ± std) | int8 blob acc. % | extra trainable params | s / epoch | peak RSS MiB | seeds | blob bytes | QEMU = host |\n|---|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for row in rows {
        let rs: Vec<&RunResult> = results.iter().filter(|r| r.row == row.key).collect();
        if rs.is_empty() {
            continue;
        }
        let pct =
            |f: fn(&RunResult) -> f64| -> Vec<f64> { rs.iter().map(|r| 100.0 * f(r)).collect() };
        let (fm, fs) = mean_std(&pct(|r| r.float_accuracy));
        let (im, is) = mean_std(&pct(|r| r.int8_accuracy));
        let (em, _) = mean_std(&rs.iter().map(|r| r.epoch_seconds).collect::<Vec<_>>());
        let peak = rs.iter().filter_map(|r| r.peak_rss).max();
        s.push_str(&format!(
            "| {} | {fm:.2} ± {fs:.2} | {im:.2} ± {is:.2} | {} | {em:.0} | {} | {} | {} | {} |\n",
            row.key,
            rs[0].method_params,
            peak.map_or("n/a".into(), |p| format!(
                "{:.0}",
                p as f64 / (1 << 20) as f64
            )),
            rs.len(),
            rs[0].blob_bytes,
            match rs.iter().filter(|r| r.qemu_identical == Some(true)).count() {
                0 => "not run".to_string(),
                n if n == rs.len() => "identical (all seeds, all test images)".to_string(),
                n => format!("identical ({n} of {} seeds run)", rs.len()),
            }
        ));
    }
    s
}

/// Runs every (row, seed) not finished yet, then writes `<out>/methods.md` and
/// `<out>/results.jsonl`.
///
/// # Errors
/// A run, export or file operation failed; finished runs stay on disk.
pub fn run_methods_bench(o: &MethodsBenchOptions) -> Result<String> {
    std::fs::create_dir_all(&o.out).with_context(|| o.out.display().to_string())?;
    let started = Instant::now();
    let mut results = Vec::new();
    for row in &o.rows {
        for &seed in &o.seeds {
            if o.report_only {
                results.extend(finished(o, row, seed));
                continue;
            }
            let r = one_run(o, row, seed).with_context(|| format!("{} seed {seed}", row.key))?;
            results.push(r);
            let table = render(&results, &o.rows);
            write(&o.out.join("methods.md"), &table)?;
        }
    }
    let jsonl: String = results
        .iter()
        .map(|r| serde_json::to_string(r).map(|l| l + "\n"))
        .collect::<Result<_, _>>()?;
    write(&o.out.join("results.jsonl"), &jsonl)?;
    println!("bench finished in {:.0} s", started.elapsed().as_secs_f64());
    Ok(render(&results, &o.rows))
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).with_context(|| path.display().to_string())
}
