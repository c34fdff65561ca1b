//! The quickstart: teacher → student alone → KD student → QAT → export → host run → QEMU run,
//! and a final table. Every stage is an ordinary library call (the same ones the subcommands
//! make) writing into its own run directory under one output folder, so any stage can be
//! inspected or re-run by hand.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::config::{ModelSpec, RunConfig};
use crate::data::DatasetKind;
use crate::deploy::{build_firmware, run_blob_host, run_blob_qemu, QemuOptions, SampleSet};
use crate::export::{export_run, ExportRunError};
use crate::models::student::StudentConfig;
use crate::quant::{quantize_run, QuantizeOptions};
use crate::train::{ProgressMode, RunError};

/// How much to train.
#[derive(Debug, Clone)]
pub struct QuickstartOptions {
    /// Output folder (one run directory per stage inside).
    pub out: PathBuf,
    /// Teacher epochs.
    pub teacher_epochs: usize,
    /// Epochs of the student alone and of the KD student.
    pub student_epochs: usize,
    /// Quantization-aware training epochs.
    pub qat_epochs: usize,
    /// Use only the first N training images (all when `None`).
    pub train_limit: Option<usize>,
    /// Evaluate on the first N test images (all when `None`).
    pub test_limit: Option<usize>,
    /// Test images run in QEMU (the host run always covers the whole test split).
    pub qemu_samples: Option<usize>,
    /// Seeds of the student comparison (student alone vs KD, int8); the teacher uses the first.
    pub seeds: Vec<u64>,
    /// The board crate to build and run in QEMU.
    pub board: PathBuf,
    /// Distill from this already trained teacher run instead of training one.
    pub teacher: Option<PathBuf>,
    /// Draw progress bars.
    pub progress: ProgressMode,
}

impl QuickstartOptions {
    /// The default quickstart, sized to finish well within 15 minutes on 2 CPU cores: half the
    /// training set, a 2-epoch teacher and students, one QAT epoch, the whole test set on the
    /// host and 1 000 test images in QEMU.
    pub fn quick(out: PathBuf) -> Self {
        Self {
            out,
            teacher_epochs: 2,
            student_epochs: 2,
            qat_epochs: 1,
            train_limit: Some(30_000),
            test_limit: None,
            qemu_samples: Some(1000),
            seeds: vec![0],
            board: default_board(),
            teacher: None,
            progress: ProgressMode::Auto,
        }
    }

    /// The full recipe: a 12-epoch teacher (92.8 % measured), 5-epoch students and one QAT
    /// epoch over 3 seeds, every test image in QEMU. (Sized for a 2-core machine: students train
    /// at about 1 000 images/s on burn-flex there.)
    pub fn full(out: PathBuf) -> Self {
        Self {
            teacher_epochs: 12,
            student_epochs: 5,
            qat_epochs: 1,
            train_limit: None,
            qemu_samples: None,
            seeds: vec![0, 1, 2],
            ..Self::quick(out)
        }
    }
}

/// The board crate of this source tree.
pub fn default_board() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../boards/qemu-mps2-an386")
}

/// Why the quickstart stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QuickstartError {
    /// Something the quickstart needs is not installed; the message has the command.
    #[error("{what} is missing. {fix}")]
    Missing {
        /// What is missing.
        what: String,
        /// The exact command that installs it.
        fix: String,
    },
    /// A training stage failed.
    #[error("{stage}: {source}")]
    Stage {
        /// The stage.
        stage: &'static str,
        /// Why.
        source: RunError,
    },
    /// Export failed.
    #[error(transparent)]
    Export(#[from] ExportRunError),
    /// Running the blob failed.
    #[error(transparent)]
    Deploy(#[from] crate::deploy::DeployError),
    /// The host and the board disagree: the promise of tinykd is broken.
    #[error("host and QEMU predictions differ (first difference at sample {0})")]
    Mismatch(usize),
    /// A file could not be written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// One line of the final table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// Correct predictions.
    pub correct: usize,
    /// Images evaluated.
    pub images: usize,
    /// Wall time of the stage that produced it, in seconds.
    pub seconds: f64,
}

/// Per-seed int8 accuracies of the student alone and with KD.
#[derive(Debug, Clone, Serialize)]
pub struct SeedResult {
    /// The seed.
    pub seed: u64,
    /// Student alone, float test accuracy.
    pub alone_float: f64,
    /// Student alone after QAT, int8 blob on the host.
    pub alone_int8: f64,
    /// KD student, float test accuracy.
    pub kd_float: f64,
    /// KD student after QAT, int8 blob on the host.
    pub kd_int8: f64,
}

/// Everything the quickstart measured (also written to `summary.json`).
#[derive(Debug, Clone, Serialize)]
pub struct QuickstartReport {
    /// The table rows, in stage order.
    pub rows: Vec<Row>,
    /// The student comparison per seed.
    pub seeds: Vec<SeedResult>,
    /// Blob size in bytes.
    pub blob_bytes: usize,
    /// Arena size in bytes.
    pub arena_bytes: usize,
    /// Host and QEMU agreed on every output byte of this many samples.
    pub identical_samples: usize,
    /// Total wall time in seconds.
    pub seconds: f64,
}

/// Checks that the dataset and QEMU are installed, with the exact install command if not.
///
/// # Errors
/// [`QuickstartError::Missing`].
pub fn check_prerequisites(options: &QuickstartOptions) -> Result<(), QuickstartError> {
    let dataset = DatasetKind::FashionMnist.default_dir().unwrap_or_default();
    if !dataset.join("t10k-labels-idx1-ubyte.gz").is_file() {
        return Err(QuickstartError::Missing {
            what: format!("Fashion-MNIST ({})", dataset.display()),
            fix: "Install it with: apt-get install -y dataset-fashion-mnist".into(),
        });
    }
    let qemu_ok = Command::new("qemu-system-arm")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !qemu_ok {
        return Err(QuickstartError::Missing {
            what: "qemu-system-arm".into(),
            fix: "Install QEMU 10 for Arm (and the Rust targets) with: bash tools/install-tools.sh"
                .into(),
        });
    }
    if !options.board.join("Cargo.toml").is_file() {
        return Err(QuickstartError::Missing {
            what: format!("the board crate {}", options.board.display()),
            fix: "Run the quickstart from a checkout of the tinykd repository.".into(),
        });
    }
    Ok(())
}

fn stage(name: &'static str) -> impl FnOnce(RunError) -> QuickstartError {
    move |source| QuickstartError::Stage {
        stage: name,
        source,
    }
}

fn apply(config: &mut RunConfig, o: &QuickstartOptions, epochs: usize, seed: u64) {
    config.seed = seed;
    config.train.epochs = epochs;
    config.train.progress = o.progress;
    config.data.train_limit = o.train_limit;
    config.data.test_limit = o.test_limit;
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Trains a student (with `teacher` for KD, alone otherwise), quantizes it with QAT and exports it.
/// Returns (float report, quantized run, blob report, seconds).
fn student_pipeline(
    o: &QuickstartOptions,
    name: &str,
    seed: u64,
    teacher: Option<&Path>,
) -> Result<
    (
        crate::train::RunReport,
        PathBuf,
        crate::export::ExportReport,
        f64,
        f64,
    ),
    QuickstartError,
> {
    let t0 = Instant::now();
    let mut config = RunConfig::distill(teacher.unwrap_or(Path::new("")));
    if teacher.is_none() {
        config.distill = None;
    }
    config.model = ModelSpec::Student(StudentConfig::mcu_small());
    apply(&mut config, o, o.student_epochs, seed);
    let dir = o.out.join(format!("{name}-seed{seed}"));
    println!(
        "== {name} (seed {seed}): {} epochs → {}",
        o.student_epochs,
        dir.display()
    );
    let float = crate::train::run(config, &dir, false, None).map_err(stage("student"))?;
    let train_s = secs(t0.elapsed());

    let t1 = Instant::now();
    let qdir = o.out.join(format!("{name}-qat-seed{seed}"));
    println!(
        "== QAT of {name} (seed {seed}): {} epochs → {}",
        o.qat_epochs,
        qdir.display()
    );
    let options = QuantizeOptions {
        qat_epochs: o.qat_epochs,
        ..QuantizeOptions::default()
    };
    quantize_run(&dir, &qdir, &options, false).map_err(stage("quantize"))?;
    let blob = qdir.join("student.tkd");
    let tks = qdir.join("test.tks");
    let export = export_run(&qdir, &blob, Some((&tks, o.test_limit)))?;
    Ok((float, qdir, export, train_s, secs(t1.elapsed())))
}

/// Runs the whole quickstart.
///
/// # Errors
/// [`QuickstartError`]: a missing prerequisite, a failed stage, or host/QEMU disagreement.
pub fn run(o: &QuickstartOptions) -> Result<QuickstartReport, QuickstartError> {
    check_prerequisites(o)?;
    let started = Instant::now();
    std::fs::create_dir_all(&o.out).map_err(|source| QuickstartError::Io {
        path: o.out.clone(),
        source,
    })?;
    let seed0 = o.seeds.first().copied().unwrap_or(0);
    let mut rows = Vec::new();

    // Teacher: trained here, or an existing run evaluated on this test split.
    let t = Instant::now();
    let teacher_dir = match &o.teacher {
        Some(dir) => {
            let config = RunConfig::from_run_dir(dir).map_err(|e| stage("teacher")(e.into()))?;
            let device = crate::train::run::device_of(&config).map_err(stage("teacher"))?;
            let (model, mut config) =
                crate::train::load_model(dir, &device).map_err(stage("teacher"))?;
            config.data.test_limit = o.test_limit;
            let (_, test) =
                crate::train::run::load_datasets(&config.data).map_err(stage("teacher"))?;
            let r = model.evaluate(
                &crate::train::run::eval_loader(&test, &config.data),
                &device,
            );
            println!("== teacher: {} (trained earlier)", dir.display());
            rows.push(Row {
                what: format!("teacher (float, {})", dir.display()),
                correct: r.correct,
                images: r.images,
                seconds: secs(t.elapsed()),
            });
            dir.clone()
        }
        None => {
            let teacher_dir = o.out.join("teacher");
            let mut config = RunConfig::teacher();
            apply(&mut config, o, o.teacher_epochs, seed0);
            println!(
                "== teacher: {} epochs → {}",
                o.teacher_epochs,
                teacher_dir.display()
            );
            let teacher =
                crate::train::run(config, &teacher_dir, false, None).map_err(stage("teacher"))?;
            let (correct, n) = test_counts(&teacher);
            rows.push(Row {
                what: "teacher (float)".into(),
                correct,
                images: n,
                seconds: secs(t.elapsed()),
            });
            teacher_dir
        }
    };

    let mut seeds = Vec::new();
    let mut first = None;
    for &seed in &o.seeds {
        let (alone, alone_q, alone_blob, alone_s, alone_qs) =
            student_pipeline(o, "student-alone", seed, None)?;
        let (kd, kd_q, kd_blob, kd_s, kd_qs) =
            student_pipeline(o, "student-kd", seed, Some(&teacher_dir))?;
        let host_acc = |q: &Path, e: &crate::export::ExportReport| -> Result<_, QuickstartError> {
            let blob = read(&e.blob_path)?;
            let samples = SampleSet::from_tks_bytes(&read(&q.join("test.tks"))?)?;
            let t = Instant::now();
            let p = run_blob_host(&blob, &samples)?;
            Ok((p, samples, blob, secs(t.elapsed())))
        };
        let (alone_p, _, _, _) = host_acc(&alone_q, &alone_blob)?;
        let (kd_p, kd_samples, kd_bytes, kd_host_s) = host_acc(&kd_q, &kd_blob)?;
        seeds.push(SeedResult {
            seed,
            alone_float: alone.test_accuracy,
            alone_int8: alone_p.accuracy(),
            kd_float: kd.test_accuracy,
            kd_int8: kd_p.accuracy(),
        });
        if first.is_none() {
            let (correct, n) = test_counts(&alone);
            rows.push(Row {
                what: "student alone (float)".into(),
                correct,
                images: n,
                seconds: alone_s,
            });
            rows.push(Row {
                what: "student alone, QAT int8 blob, host".into(),
                correct: alone_p.correct,
                images: alone_p.len(),
                seconds: alone_qs,
            });
            let (correct, n) = test_counts(&kd);
            rows.push(Row {
                what: "student KD (float)".into(),
                correct,
                images: n,
                seconds: kd_s,
            });
            rows.push(Row {
                what: "student KD, QAT int8 blob, host".into(),
                correct: kd_p.correct,
                images: kd_p.len(),
                seconds: kd_qs + kd_host_s,
            });
            first = Some((kd_samples, kd_bytes, kd_blob));
        }
    }
    let Some((kd_samples, kd_bytes, kd_blob)) = first else {
        return Err(QuickstartError::Missing {
            what: "a seed".into(),
            fix: "Give at least one seed.".into(),
        });
    };

    // The same blob in QEMU.
    let t = Instant::now();
    println!("== building the {} firmware", o.board.display());
    let firmware = build_firmware(&o.board)?;
    let n_qemu = o
        .qemu_samples
        .unwrap_or(kd_samples.len())
        .min(kd_samples.len());
    let subset = subset(&kd_samples, n_qemu)?;
    println!("== QEMU: {n_qemu} test images on the emulated Cortex-M4");
    let mut qemu = QemuOptions::new(firmware);
    qemu.timeout = Duration::from_secs(60 + n_qemu as u64 / 5);
    let board = run_blob_qemu(&kd_bytes, &subset, &qemu)?;
    let host_subset = run_blob_host(&kd_bytes, &subset)?;
    if let Some(i) = host_subset.first_difference(&board.predictions) {
        return Err(QuickstartError::Mismatch(i));
    }
    rows.push(Row {
        what: format!("student KD, same blob, host, first {n_qemu}"),
        correct: host_subset.correct,
        images: host_subset.len(),
        seconds: 0.0,
    });
    rows.push(Row {
        what: format!("student KD, same blob, QEMU Cortex-M4, first {n_qemu}"),
        correct: board.predictions.correct,
        images: board.predictions.len(),
        seconds: secs(t.elapsed()),
    });

    let report = QuickstartReport {
        rows,
        seeds,
        blob_bytes: kd_blob.summary.blob_bytes,
        arena_bytes: kd_blob.summary.arena_bytes,
        identical_samples: n_qemu,
        seconds: secs(started.elapsed()),
    };
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    let path = o.out.join("summary.json");
    std::fs::write(&path, json).map_err(|source| QuickstartError::Io { path, source })?;
    let table = render(&report);
    let path = o.out.join("report.md");
    std::fs::write(&path, &table).map_err(|source| QuickstartError::Io { path, source })?;
    Ok(report)
}

/// (correct, images) of a run's last test evaluation.
fn test_counts(r: &crate::train::RunReport) -> (usize, usize) {
    r.history
        .last()
        .and_then(|h| h.test.as_ref())
        .map_or((0, 0), |t| (t.correct, t.images))
}

fn read(path: &Path) -> Result<Vec<u8>, QuickstartError> {
    std::fs::read(path).map_err(|source| QuickstartError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn subset(samples: &SampleSet, n: usize) -> Result<SampleSet, QuickstartError> {
    let len = samples.sample_len();
    let mut inputs = Vec::with_capacity(n * len);
    let mut labels = Vec::with_capacity(n);
    for (input, label) in samples.iter().take(n) {
        inputs.extend_from_slice(input);
        labels.push(label);
    }
    Ok(SampleSet::new(len, inputs, labels)?)
}

fn mean_std(v: &[f64]) -> (f64, f64) {
    let n = v.len().max(1) as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, var.sqrt())
}

/// The final table as Markdown.
pub fn render(r: &QuickstartReport) -> String {
    let mut s = String::from(
        "| stage | correct | images | accuracy | wall time |\n|---|---:|---:|---:|---:|\n",
    );
    for row in &r.rows {
        let acc = 100.0 * row.correct as f64 / row.images.max(1) as f64;
        s += &format!(
            "| {} | {} | {} | {acc:.2} % | {:.0} s |\n",
            row.what, row.correct, row.images, row.seconds
        );
    }
    s += &format!(
        "\nBlob {} bytes, arena {} bytes; host and QEMU identical on all {} samples compared (every output byte).\n",
        r.blob_bytes, r.arena_bytes, r.identical_samples
    );
    if r.seeds.len() > 1 {
        let pick = |f: fn(&SeedResult) -> f64| {
            mean_std(&r.seeds.iter().map(|s| 100.0 * f(s)).collect::<Vec<_>>())
        };
        let (a, sa) = pick(|s| s.alone_int8);
        let (k, sk) = pick(|s| s.kd_int8);
        let (af, saf) = pick(|s| s.alone_float);
        let (kf, skf) = pick(|s| s.kd_float);
        s += &format!(
            "\nOver seeds {:?}: student alone {af:.2} ± {saf:.2} % float, {a:.2} ± {sa:.2} % int8; \
             KD {kf:.2} ± {skf:.2} % float, {k:.2} ± {sk:.2} % int8.\n",
            r.seeds.iter().map(|s| s.seed).collect::<Vec<_>>()
        );
    }
    s += &format!("\nTotal wall time {:.0} s.\n", r.seconds);
    s
}
