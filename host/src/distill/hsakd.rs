//! "Hierarchical Self-supervised Augmented Knowledge Distillation", Yang, An, Cai and Xu,
//! IJCAI 2021 (winycg/HSAKD): the teacher's knowledge of a self-supervised task, rotation, is
//! transferred along with its class knowledge, through a joint label space and auxiliary
//! classifiers on every stage.
//!
//! - **Joint labels.** Every image of a batch is also seen rotated by 90°, 180° and 270° (exact
//!   rotations of the pixel grid, [`rotated_views`]); the label of view `k` of an image of class
//!   `y` is `4y + k` ([`joint_labels`]), so `4N` joint classes.
//! - **Auxiliary classifiers.** Each tapped stage of the teacher and of the student gets one: new
//!   copies of the network's remaining stages and a classifier over the `4N` joint classes
//!   ([`AuxClassifier`]). They are training-only: export sees the plain student.
//! - **Teacher first.** The teacher's auxiliaries are trained with its backbone frozen (the
//!   reference's `--freezed` mode): cross-entropy of every auxiliary on the joint labels of all
//!   views ([`AuxTraining`], run by [`prepare_teacher_aux`]). They are trained once per teacher and
//!   reused by every student (`<teacher>/hsakd-aux` by default).
//! - **Student.** `CE(student(x), y)` on the unrotated views only, plus, on all `4B` views,
//!   `τ²·KL` from each teacher auxiliary to the student's auxiliary of the same rank (one to one)
//!   and `τ²·KL` of the final logits, τ = 3, every weight 1 ([`Hsakd`]).
//!
//! The trainer sees [`Distiller::rotated_views`] and feeds the networks the `4B` batch
//! `[x, rot90 x, rot180 x, rot270 x]`; the cross-entropy and the training accuracy read the first
//! `B` rows. Rotations need square inputs: series windows (`[channels, 1, steps]`) are refused,
//! as rotating a sensor recording has no meaning.

use std::path::{Path, PathBuf};

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::functional::softened_kl;
use super::taps::TapShapes;
use super::{Distiller, LossTerm, StepContext};
use crate::config::{ModelSpec, RunConfig};
use crate::models::auxiliary::AuxClassifier;
use crate::models::{Classifier, Output};
use crate::train::run::{eval_loader, load_datasets, load_model, train_loader, RunModel};
use crate::train::{fit, materialize, FitContext, TrainError, TrainSettings, Trainee};

/// Rotations of the joint label space (0°, 90°, 180°, 270°).
pub const ROTATIONS: usize = 4;

/// Generator stream of the teacher auxiliaries' initial weights.
const STREAM_TEACHER_AUX: u64 = 0x48_53_41_54; // "HSAT"

/// The image rotated by 90° counter-clockwise on the pixel grid (`torch.rot90(x, 1, [2, 3])`):
/// `out[i][j] = x[j][W − 1 − i]`. Exact: a permutation of the pixels.
///
/// # Shapes
/// - `x`: `[batch, channels, h, w]`; output `[batch, channels, w, h]`
pub fn rotate90(x: Tensor<4>) -> Tensor<4> {
    x.swap_dims(2, 3).flip([2])
}

/// `[x, rot90 x, rot180 x, rot270 x]` along the batch: view `k` of image `b` is row `k·B + b`.
///
/// # Shapes
/// - `x`: `[batch, channels, n, n]` (square); output `[4·batch, channels, n, n]`
pub fn rotated_views(x: Tensor<4>) -> Tensor<4> {
    let mut views = vec![x];
    for k in 1..ROTATIONS {
        let next = rotate90(views[k - 1].clone());
        views.push(next);
    }
    Tensor::cat(views, 0)
}

/// The joint label of every row of [`rotated_views`]: `4·y + k` for view `k` of an image of
/// class `y`.
///
/// # Shapes
/// - `targets`: `[batch]`; output `[4·batch]`
pub fn joint_labels(targets: &Tensor<1, Int>) -> Tensor<1, Int> {
    let base = targets.clone() * ROTATIONS as i64;
    Tensor::cat((0..ROTATIONS).map(|k| base.clone() + k as i64).collect(), 0)
}

/// `[distill.method] method = "hsakd"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HsakdConfig {
    /// Weight of the auxiliary terms, summed over the pairs (β; default 1, the reference's).
    pub beta: f64,
    /// Weight of the final-layer term on all views (default 1, the reference's).
    pub final_weight: f64,
    /// Temperature of both terms (default 3, the reference's).
    pub temperature: f64,
    /// The student's feature maps that get auxiliaries, shallow to deep (default: all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub student_maps: Option<Vec<usize>>,
    /// The teacher's stages that get auxiliaries, paired in order with `student_maps` (default:
    /// all).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher_maps: Option<Vec<usize>>,
    /// Where the teacher's auxiliaries are trained and kept (default `<teacher>/hsakd-aux`).
    /// A finished directory is reused by every student; one trained with other settings is an
    /// error, so that no student silently distils from auxiliaries it did not ask for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher_aux: Option<PathBuf>,
    /// Epochs of the teacher's auxiliary training, with the run's optimizer, schedule and data
    /// (default 5).
    pub aux_epochs: usize,
}

impl Default for HsakdConfig {
    fn default() -> Self {
        Self {
            beta: 1.0,
            final_weight: 1.0,
            temperature: 3.0,
            student_maps: None,
            teacher_maps: None,
            teacher_aux: None,
            aux_epochs: 5,
        }
    }
}

impl HsakdConfig {
    /// Checks the settings; `Err((key, reason))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.temperature.is_finite() && self.temperature > 0.0) {
            return Err((
                "distill.method.temperature",
                format!("must be > 0, got {}", self.temperature),
            ));
        }
        if !(self.final_weight.is_finite() && self.final_weight >= 0.0) {
            return Err((
                "distill.method.final_weight",
                format!("must be >= 0, got {}", self.final_weight),
            ));
        }
        if self.aux_epochs == 0 {
            return Err(("distill.method.aux_epochs", "must be at least 1".into()));
        }
        Ok(())
    }

    /// The (student map, teacher stage) pairs, checked against both networks' taps.
    ///
    /// # Errors
    /// A map a network does not have, or lists of different lengths.
    pub fn pairs(
        &self,
        student: &TapShapes,
        teacher: &TapShapes,
    ) -> Result<Vec<(usize, usize)>, String> {
        let (ns, nt) = (student.maps.len(), teacher.maps.len());
        let s = self
            .student_maps
            .clone()
            .unwrap_or_else(|| (0..ns).collect());
        let t = self
            .teacher_maps
            .clone()
            .unwrap_or_else(|| (0..nt).collect());
        if s.is_empty() || s.len() != t.len() {
            return Err(format!(
                "HSAKD pairs student maps {s:?} one to one with teacher stages {t:?}: set \
                 distill.method.student_maps and teacher_maps to lists of the same, non-zero \
                 length (the student has {ns} feature maps, the teacher {nt})"
            ));
        }
        if let Some(&bad) = s.iter().find(|&&i| i >= ns) {
            return Err(format!(
                "student_maps: the student has no feature map {bad} (0..{ns})"
            ));
        }
        if let Some(&bad) = t.iter().find(|&&i| i >= nt) {
            return Err(format!(
                "teacher_maps: the teacher has no stage {bad} (0..{nt})"
            ));
        }
        Ok(s.into_iter().zip(t).collect())
    }

    /// Builds the student's side: fresh auxiliaries on `student`'s maps, distilled from the
    /// teacher's trained ones (`teacher_heads`, one per pair, in order).
    ///
    /// # Errors
    /// See [`HsakdConfig::pairs`]; a student whose auxiliaries cannot be built.
    pub fn init(
        &self,
        model: &ModelSpec,
        classes: usize,
        pairs: &[(usize, usize)],
        teacher_heads: Vec<AuxClassifier>,
        device: &Device,
    ) -> Result<Hsakd, String> {
        let maps: Vec<usize> = pairs.iter().map(|p| p.0).collect();
        Ok(Hsakd {
            heads: build_heads(model, &maps, classes, device)?,
            teacher_heads,
            student_maps: maps,
            teacher_maps: pairs.iter().map(|p| p.1).collect(),
            beta: self.beta as f32,
            final_weight: self.final_weight as f32,
            temperature: self.temperature as f32,
        })
    }
}

/// Auxiliary classifiers over the `4·classes` joint labels on feature maps `maps` of a network.
fn build_heads(
    model: &ModelSpec,
    maps: &[usize],
    classes: usize,
    device: &Device,
) -> Result<Vec<AuxClassifier>, String> {
    let outputs = ROTATIONS * classes;
    maps.iter()
        .map(|&m| match model {
            ModelSpec::Student(s) => AuxClassifier::student(s, m, outputs, device),
            ModelSpec::Teacher(t) => {
                AuxClassifier::residual(&t.config(1, classes), m, outputs, device)
            }
        })
        .collect()
}

/// The student's side of HSAKD: its auxiliaries (trained with it) and the teacher's (frozen).
#[derive(Module, Debug)]
pub struct Hsakd {
    /// The student's auxiliary classifiers, one per pair.
    pub heads: Vec<AuxClassifier>,
    /// The teacher's trained auxiliaries, inference-mode copies that never receive a gradient
    /// (rebuilt from the teacher's auxiliary run when a student run resumes).
    #[module(skip)]
    pub teacher_heads: Vec<AuxClassifier>,
    #[module(skip)]
    student_maps: Vec<usize>,
    #[module(skip)]
    teacher_maps: Vec<usize>,
    #[module(skip)]
    beta: f32,
    #[module(skip)]
    final_weight: f32,
    #[module(skip)]
    temperature: f32,
}

impl Distiller for Hsakd {
    fn loss(&self, student: &Output, teacher: &Output, _ctx: &StepContext) -> Vec<LossTerm> {
        let t = self.temperature;
        let aux = self
            .heads
            .iter()
            .zip(&self.teacher_heads)
            .zip(self.student_maps.iter().zip(&self.teacher_maps))
            .map(|((s_head, t_head), (&sm, &tm))| {
                let s = s_head.forward(student.feature_maps[sm].clone());
                let target = t_head.forward(teacher.feature_maps[tm].clone());
                softened_kl(s, target, t)
            });
        let mut terms = super::sum_terms("hsakd_aux", self.beta, aux);
        if self.final_weight > 0.0 {
            terms.push(LossTerm {
                name: "hsakd_final",
                value: softened_kl(student.logits.clone(), teacher.logits.clone(), t)
                    * self.final_weight,
            });
        }
        terms
    }

    fn rotated_views(&self) -> bool {
        true
    }
}

/// The teacher's auxiliary training: cross-entropy of every auxiliary on the joint labels of
/// all views, the backbone frozen ([`FrozenBackbone`]). No teacher of its own.
#[derive(Module, Debug)]
pub struct AuxTraining {
    /// The auxiliaries being trained.
    pub heads: Vec<AuxClassifier>,
    #[module(skip)]
    maps: Vec<usize>,
}

impl Distiller for AuxTraining {
    fn loss(&self, backbone: &Output, _teacher: &Output, ctx: &StepContext) -> Vec<LossTerm> {
        let device = backbone.logits.device();
        let labels = joint_labels(ctx.targets);
        let ce = CrossEntropyLossConfig::new().init(&device);
        let losses = self.heads.iter().zip(&self.maps).map(|(head, &m)| {
            ce.forward(
                head.forward(backbone.feature_maps[m].clone()),
                labels.clone(),
            )
        });
        super::sum_terms("aux_ce", 1.0, losses)
    }

    fn needs_teacher(&self) -> bool {
        false
    }

    fn rotated_views(&self) -> bool {
        true
    }
}

/// A trained network as the "model" of a training run that must not change it: an
/// inference-mode forward pass (BatchNorm on its running statistics), no parameter for the
/// optimizer. Its taps are constants, so only the auxiliaries reading them learn.
#[derive(Module, Debug)]
pub struct FrozenBackbone {
    #[module(skip)]
    net: RunModel,
}

impl Classifier for FrozenBackbone {
    fn forward_taps(&self, x: Tensor<4>) -> Output {
        self.net.taps(x)
    }
}

/// What `<teacher_aux>/aux.json` records: the settings the auxiliaries were trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct AuxRecord {
    teacher: PathBuf,
    stages: Vec<usize>,
    epochs: usize,
    train_limit: Option<usize>,
    optim: crate::train::OptimConfig,
    schedule: crate::train::ScheduleConfig,
}

/// The trained auxiliaries for `stages` of the teacher run in `teacher_dir`, as inference-mode
/// copies: trained now in `dir` with the teacher frozen (resuming an interrupted training there), or loaded when `dir`
/// holds a finished training with the same settings.
///
/// `run` is the student run's configuration: its data, optimizer and schedule are used, for
/// `aux_epochs` epochs, with the teacher run's seed (so students of every seed share them).
///
/// # Errors
/// `dir` holds auxiliaries trained with other settings; training or file errors.
pub fn prepare_teacher_aux(
    teacher_dir: &Path,
    stages: &[usize],
    dir: &Path,
    run: &RunConfig,
    cfg: &HsakdConfig,
    plain: &Device,
) -> Result<Vec<AuxClassifier>, crate::train::RunError> {
    let (teacher, teacher_config) = load_model(teacher_dir, plain)?;
    let teacher_spec = &teacher_config.model;
    let classes = run.data.dataset.classes();
    let record = AuxRecord {
        // Canonical, so that `runs/t` and `./runs/t` are the same teacher.
        teacher: std::fs::canonicalize(teacher_dir).unwrap_or_else(|_| teacher_dir.to_path_buf()),
        stages: stages.to_vec(),
        epochs: cfg.aux_epochs,
        train_limit: run.data.train_limit,
        optim: run.optim.clone(),
        schedule: run.schedule.clone(),
    };
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| crate::train::RunError::Io { path, source }
    };
    let record_path = dir.join("aux.json");
    let heads_path = dir.join("heads.bpk");
    if record_path.is_file() {
        let text = std::fs::read_to_string(&record_path).map_err(io(&record_path))?;
        let found: AuxRecord =
            serde_json::from_str(&text).map_err(|e| crate::train::RunError::Run {
                dir: dir.to_path_buf(),
                reason: format!("aux.json is unreadable: {e}"),
            })?;
        if found != record {
            return Err(crate::train::RunError::Run {
                dir: dir.to_path_buf(),
                reason: format!(
                    "holds HSAKD teacher auxiliaries trained with other settings ({found:?}, \
                     this run wants {record:?}): set distill.method.teacher_aux to another \
                     directory"
                ),
            });
        }
    }
    let heads = build_heads(teacher_spec, stages, classes, plain).map_err(|reason| {
        crate::train::RunError::Run {
            dir: teacher_dir.to_path_buf(),
            reason,
        }
    })?;
    let load_err = |e: burn::store::RecordError| crate::train::RunError::Run {
        dir: dir.to_path_buf(),
        reason: format!("heads.bpk does not load into the teacher's auxiliaries: {e}"),
    };
    if heads_path.is_file() {
        let trained = AuxTraining {
            heads,
            maps: stages.to_vec(),
        }
        .try_load_file(&heads_path)
        .map_err(load_err)?;
        return Ok(trained.heads);
    }

    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let text = serde_json::to_string_pretty(&record).unwrap_or_default();
    std::fs::write(&record_path, text).map_err(io(&record_path))?;
    println!(
        "hsakd: training the teacher's {} auxiliaries ({} epochs, backbone frozen) in {}",
        stages.len(),
        cfg.aux_epochs,
        dir.display()
    );
    let (train_set, test_set) = load_datasets(&run.data)?;
    let train = train_loader(&train_set, &run.data);
    let test = eval_loader(&test_set, &run.data);
    let device = plain.clone().autodiff();
    let seed = teacher_config.seed;
    device.seed(crate::data::derive_seed(seed, 0, STREAM_TEACHER_AUX));
    let heads = build_heads(teacher_spec, stages, classes, &device).map_err(|reason| {
        crate::train::RunError::Run {
            dir: teacher_dir.to_path_buf(),
            reason,
        }
    })?;
    let method = AuxTraining {
        heads,
        maps: stages.to_vec(),
    };
    materialize(&method);
    let trainee = Trainee::distill(FrozenBackbone { net: teacher }, method);
    // The backbone's own CE is a constant here: only the auxiliaries' joint-label CE trains.
    let settings = TrainSettings {
        epochs: cfg.aux_epochs,
        seed,
        label_smoothing: 0.0,
        keep_checkpoints: 1,
        ..TrainSettings::of(run, 0.0, !crate::train::checkpoint::list(dir)?.is_empty())
    };
    let outcome = fit(
        trainee,
        &settings,
        FitContext {
            train: &train,
            test: Some(&test),
            device: &device,
            run_dir: dir.to_path_buf(),
            teacher: None,
            hook: None,
        },
    )
    .map_err(crate::train::RunError::from)?;
    let method = outcome.trainee.method.ok_or_else(|| TrainError::Setting {
        key: "distill.method".into(),
        reason: "the auxiliary training lost its method".into(),
    })?;
    let method = method.valid();
    method
        .clone()
        .save_file(&heads_path)
        .map_err(|e| crate::train::RunError::Run {
            dir: dir.to_path_buf(),
            reason: format!("cannot write heads.bpk: {e}"),
        })?;
    Ok(method.heads)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.to_data().iter::<f32>().collect()
    }

    #[test]
    fn rotations_are_exact_pixel_permutations() {
        let dev = Device::flex();
        // 1×1×2×3 is not square; rotate90 still permutes: [[0,1,2],[3,4,5]] → [[2,5],[1,4],[0,3]].
        let x = Tensor::<4>::from_data(
            TensorData::new((0..6).map(|v| v as f32).collect::<Vec<_>>(), [1, 1, 2, 3]),
            &dev,
        );
        let r = rotate90(x);
        assert_eq!(r.dims(), [1, 1, 3, 2]);
        assert_eq!(values(r), [2.0, 5.0, 1.0, 4.0, 0.0, 3.0]);
        // Four quarter turns give the image back bit for bit.
        let img = Tensor::<4>::random([2, 3, 5, 5], burn::tensor::Distribution::Default, &dev);
        let back = (0..4).fold(img.clone(), |t, _| rotate90(t));
        assert_eq!(values(back), values(img.clone()));
        let views = rotated_views(img.clone());
        assert_eq!(views.dims(), [8, 3, 5, 5]);
        assert_eq!(
            values(views.clone().narrow(0, 0, 2)),
            values(img.clone()),
            "view 0 is the image"
        );
        assert_eq!(
            values(views.narrow(0, 4, 2)),
            values(rotate90(rotate90(img))),
            "view 2 is the 180° turn"
        );
    }

    #[test]
    fn joint_labels_follow_the_views() {
        let dev = Device::flex();
        let y = Tensor::<1, Int>::from_data(TensorData::new(vec![3i64, 0], [2]), &dev);
        let j: Vec<i64> = joint_labels(&y).to_data().iter::<i64>().collect();
        assert_eq!(j, [12, 0, 13, 1, 14, 2, 15, 3]);
    }

    #[test]
    fn pairs_are_checked_against_both_networks() {
        let shapes = |n: usize| TapShapes {
            maps: vec![[4, 2, 2]; n],
            embedding: 4,
            classes: 10,
        };
        let cfg = HsakdConfig::default();
        assert_eq!(
            cfg.pairs(&shapes(3), &shapes(3)).unwrap(),
            [(0, 0), (1, 1), (2, 2)]
        );
        let err = cfg.pairs(&shapes(2), &shapes(3)).unwrap_err();
        assert!(err.contains("teacher_maps"), "{err}");
        let picked = HsakdConfig {
            student_maps: Some(vec![1, 2]),
            teacher_maps: Some(vec![0, 5]),
            ..Default::default()
        };
        let err = picked.pairs(&shapes(3), &shapes(3)).unwrap_err();
        assert!(err.contains("no stage 5"), "{err}");
        assert!(HsakdConfig {
            aux_epochs: 0,
            ..Default::default()
        }
        .validate()
        .is_err());
    }
}
