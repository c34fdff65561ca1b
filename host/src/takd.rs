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

/// The automatic mode: which chains to try and how long to train them.
#[derive(Debug, Clone)]
pub struct TakdSearch {
    /// Epochs of every stage of a candidate chain (short).
    pub epochs: usize,
    /// Validation images held out of the training file when the config holds out none.
    pub validation: usize,
}

/// One candidate chain of the automatic mode and its student's validation accuracy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChainScore {
    /// Assistant presets, largest first (empty: direct KD).
    pub assistants: Vec<TeacherPreset>,
    /// The student's accuracy on the validation split.
    pub validation_accuracy: f64,
}

/// The candidate chains for a teacher of preset `teacher`: direct KD, each smaller preset as the
/// one assistant, and (with two or more smaller presets) all of them in decreasing size.
pub fn candidate_chains(teacher: TeacherPreset) -> Vec<Vec<TeacherPreset>> {
    let order = [
        TeacherPreset::Large,
        TeacherPreset::Base,
        TeacherPreset::Small,
        TeacherPreset::Tiny,
    ];
    let smaller: Vec<TeacherPreset> = order
        .iter()
        .skip_while(|&&p| p != teacher)
        .skip(1)
        .copied()
        .collect();
    let mut chains = vec![Vec::new()];
    chains.extend(smaller.iter().map(|&p| vec![p]));
    if smaller.len() >= 2 {
        chains.push(smaller);
    }
    chains
}

/// Trains every candidate chain with a short schedule, scores each one's student on the
/// validation split, writes `<out>/search.json`, then runs the best chain with the full schedule.
///
/// # Errors
/// The teacher is not a ResNet teacher run, or a stage fails.
pub fn run_takd_auto(
    o: &TakdOptions,
    search: &TakdSearch,
) -> Result<(Vec<ChainScore>, Vec<StageReport>)> {
    let teacher_config = RunConfig::from_run_dir(&o.teacher)?;
    let ModelSpec::Teacher(spec) = &teacher_config.model else {
        anyhow::bail!(
            "{}: TAKD's automatic mode needs a ResNet teacher run",
            o.teacher.display()
        );
    };
    let mut base = o.clone();
    let probe = RunConfig::load(
        &RunConfig::distill(&o.teacher),
        o.config_text.as_deref(),
        &o.overrides,
    )?;
    if probe.data.validation.is_none() {
        base.overrides
            .push(format!("data.validation={}", search.validation));
    }
    let mut scores = Vec::new();
    for chain in candidate_chains(spec.preset) {
        let name = if chain.is_empty() {
            "direct".to_string()
        } else {
            chain
                .iter()
                .map(|&p| preset_name(p))
                .collect::<Vec<_>>()
                .join("-")
        };
        let mut trial = base.clone();
        trial.out = o.out.join("search").join(&name);
        trial.assistants = chain.clone();
        trial
            .overrides
            .push(format!("train.epochs={}", search.epochs));
        let stages = run_takd(&trial)?;
        let student = stages.last().map(|r| r.dir.clone()).context("no stage")?;
        let accuracy = validation_accuracy(&student)?;
        println!(
            "search: chain {name}: validation accuracy {:.2} %",
            100.0 * accuracy
        );
        scores.push(ChainScore {
            assistants: chain,
            validation_accuracy: accuracy,
        });
    }
    let best = scores
        .iter()
        .max_by(|a, b| a.validation_accuracy.total_cmp(&b.validation_accuracy))
        .context("no candidate chain")?
        .clone();
    let path = o.out.join("search.json");
    std::fs::write(&path, serde_json::to_string_pretty(&scores)?)
        .with_context(|| path.display().to_string())?;
    let mut last = base;
    last.assistants = best.assistants;
    let stages = run_takd(&last)?;
    Ok((scores, stages))
}

/// Accuracy of a finished run's network on its configuration's validation split.
fn validation_accuracy(run: &Path) -> Result<f64> {
    let device = crate::train::run::device_of(&RunConfig::from_run_dir(run)?)?;
    let (model, config) = crate::train::load_model(run, &device)?;
    let val = crate::train::run::load_validation(&config.data)?
        .with_context(|| format!("{}: no validation split", run.display()))?;
    let loader = crate::train::run::eval_loader(&val, &config.data);
    Ok(model.evaluate(&loader, &device).accuracy)
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
    run_stages(o, true)
}

/// Runs (or continues) the assistant stages alone and returns the last one's report (the
/// teacher's own run when there are no assistants): what a student distils from next, as
/// `tinykd bench methods` does for its TAKD row.
///
/// # Errors
/// As [`run_takd`].
pub fn run_assistants(o: &TakdOptions) -> Result<StageReport> {
    let mut reports = run_stages(o, false)?;
    Ok(reports.pop().unwrap_or_else(|| StageReport {
        name: "teacher".into(),
        dir: o.teacher.clone(),
        teacher: o.teacher.clone(),
        test_accuracy: f64::NAN,
        params: 0,
    }))
}

fn run_stages(o: &TakdOptions, with_student: bool) -> Result<Vec<StageReport>> {
    std::fs::create_dir_all(&o.out).with_context(|| o.out.display().to_string())?;
    let mut stages: Vec<(String, Option<TeacherPreset>)> = o
        .assistants
        .iter()
        .map(|&p| (format!("assistant-{}", preset_name(p)), Some(p)))
        .collect();
    if with_student {
        stages.push(("student".into(), None));
    }

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
