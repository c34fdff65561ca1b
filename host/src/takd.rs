//! "Improved Knowledge Distillation via Teacher Assistant", Mirzadeh et al., AAAI 2020: when the
//! teacher–student gap is large, distil in steps, teacher → assistant(s) → student, each step a
//! plain KD run from the previous step's network.
//!
//! `tinykd takd` runs the chain as one command from one configuration: every stage is a
//! `tinykd distill` run in `<out>/stage<k>-<name>` whose teacher is the previous stage, with the
//! configuration's recipe and schedule; assistants are ResNet teachers of the given presets, the
//! last stage is the configuration's model (the MCU student by default). A finished stage
//! (`stage.json` present) is never retrained; an interrupted one resumes from its last checkpoint;
//! so a killed chain continues at the unfinished stage.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::config::{ModelSpec, RunConfig, TeacherSpec};
use crate::models::teacher::TeacherPreset;

/// What `tinykd takd` runs.
#[derive(Debug, Clone)]
pub struct TakdOptions {
    /// The trained teacher's run directory.
    pub teacher: PathBuf,
    /// Output directory (one run per stage).
    pub out: PathBuf,
    /// Assistant sizes, largest first.
    pub assistants: Vec<TeacherPreset>,
    /// TOML text merged over the distillation defaults (the student and the recipe).
    pub config_text: Option<String>,
    /// `--set` overrides for every stage.
    pub overrides: Vec<String>,
}

/// One finished stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageReport {
    /// Stage name (`assistant-small`, `student`).
    pub name: String,
    /// Run directory.
    pub dir: PathBuf,
    /// Its teacher's run directory.
    pub teacher: PathBuf,
    /// Test accuracy after the last epoch.
    pub test_accuracy: f64,
    /// Trainable parameters.
    pub params: usize,
}

fn preset_name(p: TeacherPreset) -> &'static str {
    match p {
        TeacherPreset::Tiny => "tiny",
        TeacherPreset::Small => "small",
        TeacherPreset::Base => "base",
        TeacherPreset::Large => "large",
    }
}

/// Runs (or continues) the chain and returns every stage's report, teacher side first.
///
/// # Errors
/// A bad configuration, or a failed stage; finished stages stay on disk.
pub fn run_takd(o: &TakdOptions) -> Result<Vec<StageReport>> {
    std::fs::create_dir_all(&o.out).with_context(|| o.out.display().to_string())?;
    let mut stages: Vec<(String, Option<TeacherPreset>)> = o
        .assistants
        .iter()
        .map(|&p| (format!("assistant-{}", preset_name(p)), Some(p)))
        .collect();
    stages.push(("student".into(), None));

    let mut teacher = o.teacher.clone();
    let mut reports = Vec::new();
    for (k, (name, preset)) in stages.iter().enumerate() {
        let dir = o.out.join(format!("stage{}-{name}", k + 1));
        let report = run_stage(o, &dir, name, *preset, &teacher)
            .with_context(|| format!("stage {} ({name})", k + 1))?;
        println!(
            "stage {} {name}: {:.2} % test accuracy, {} parameters → {}",
            k + 1,
            100.0 * report.test_accuracy,
            report.params,
            dir.display()
        );
        teacher = dir;
        reports.push(report);
    }
    Ok(reports)
}

fn run_stage(
    o: &TakdOptions,
    dir: &Path,
    name: &str,
    preset: Option<TeacherPreset>,
    teacher: &Path,
) -> Result<StageReport> {
    let done = dir.join("stage.json");
    if let Ok(text) = std::fs::read_to_string(&done) {
        if let Ok(r) = serde_json::from_str::<StageReport>(&text) {
            println!("{name}: finished before, not retrained");
            return Ok(r);
        }
    }
    let resume = dir.join("config.toml").is_file();
    let config = if resume {
        RunConfig::from_run_dir(dir)?
    } else {
        let mut c = RunConfig::load(
            &RunConfig::distill(teacher),
            o.config_text.as_deref(),
            &o.overrides,
        )?;
        if let Some(d) = &mut c.distill {
            d.teacher = teacher.to_path_buf();
        }
        if let Some(p) = preset {
            c.model = ModelSpec::Teacher(TeacherSpec {
                preset: p,
                widths: None,
                blocks_per_stage: None,
                strides: None,
                stem_stride: None,
            });
        }
        c
    };
    let r = crate::train::run(config, dir, resume, None)?;
    let report = StageReport {
        name: name.into(),
        dir: dir.to_path_buf(),
        teacher: teacher.to_path_buf(),
        test_accuracy: r.test_accuracy,
        params: r.params,
    };
    std::fs::write(&done, serde_json::to_string_pretty(&report)?)
        .with_context(|| done.display().to_string())?;
    Ok(report)
}
