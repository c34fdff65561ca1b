//! The training loop on a few hundred real Fashion-MNIST images: exact resume (plain and
//! distillation), the frozen teacher, non-finite losses, and the guards around run directories.

use std::path::Path;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use tinykd::data::{Augmentation, Dataset, DatasetKind, Loader, LoaderConfig, Split};
use tinykd::distill::Kd;
use tinykd::models::student::{Student, StudentConfig};
use tinykd::models::teacher::{Teacher, TeacherConfig, TeacherPreset};
use tinykd::models::Classifier;
use tinykd::train::{
    checkpoint, fit, materialize, EpochHook, FitContext, FrozenTeacher, Granularity, HookContext,
    NoDistill, OptimConfig, OptimizerKind, ScheduleConfig, ScheduleKind, TrainError, TrainSettings,
    Trainee,
};

const FMNIST: &str = "/usr/share/datasets/fashion-mnist";

fn data(n: usize) -> Dataset {
    let mut d = Dataset::load(Path::new(FMNIST), DatasetKind::FashionMnist, Split::Train).unwrap();
    d.truncate(n);
    d
}

fn loader(d: &Dataset, train: bool) -> Loader<'_> {
    let (mean, std) = DatasetKind::FashionMnist.mean_std();
    Loader::new(
        d,
        LoaderConfig {
            batch_size: 64,
            shuffle: train,
            drop_last: train,
            augmentation: if train {
                Augmentation {
                    crop_padding: 2,
                    hflip: true,
                }
            } else {
                Augmentation::default()
            },
            normalization: tinykd::data::Normalization { mean, std },
        },
    )
}

fn settings(optim: OptimConfig, resume: bool) -> TrainSettings {
    TrainSettings {
        epochs: 3,
        seed: 11,
        optim,
        schedule: ScheduleConfig {
            kind: ScheduleKind::Cosine,
            per: Granularity::Step,
            ..Default::default()
        },
        ce_weight: 1.0,
        label_smoothing: 0.1,
        keep_checkpoints: 2,
        log_every: 2,
        progress: false,
        report_epochs: false,
        resume,
    }
}

fn sgd() -> OptimConfig {
    OptimConfig {
        lr: 0.05,
        ..OptimConfig::default()
    }
}

fn adam() -> OptimConfig {
    OptimConfig {
        kind: OptimizerKind::Adam,
        lr: 2e-3,
        weight_decay: 1e-4,
        ..OptimConfig::default()
    }
}

fn teacher(device: &Device, seed: u64) -> Teacher {
    device.seed(seed);
    let t = TeacherConfig::preset(TeacherPreset::Tiny, 1, 10).init(device);
    materialize(&t);
    t
}

fn student(device: &Device, seed: u64) -> Student {
    device.seed(seed);
    let s = StudentConfig::mcu_small().init(device).unwrap();
    materialize(&s);
    s
}

/// Every float parameter and running statistic, in visiting order.
fn values<M: Module>(m: &M) -> Vec<Vec<f32>> {
    struct Collect(Vec<Vec<f32>>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.val().into_data().iter::<f32>().collect());
        }
    }
    let mut c = Collect(Vec::new());
    m.visit(&mut c);
    c.0
}

/// Fails before epoch `stop`, like a process killed after writing checkpoint `stop`. Counts the
/// epochs it saw and stores the count, so restoring it is checked too.
struct Interrupt {
    stop: Option<usize>,
    seen: u64,
    restored: Option<u64>,
}

impl<S> EpochHook<S> for Interrupt {
    fn before_epoch(&mut self, epoch: usize, model: S, _ctx: &HookContext) -> Result<S, String> {
        if Some(epoch) == self.stop {
            return Err("simulated crash".into());
        }
        self.seen += 1;
        Ok(model)
    }
    fn state(&self) -> serde_json::Value {
        serde_json::json!(self.seen)
    }
    fn restore(&mut self, state: serde_json::Value) -> Result<(), String> {
        let n = state.as_u64().ok_or("expected a count")?;
        self.restored = Some(n);
        self.seen = n;
        Ok(())
    }
}

fn hook(stop: Option<usize>) -> Interrupt {
    Interrupt {
        stop,
        seen: 0,
        restored: None,
    }
}

#[test]
fn plain_training_resumed_after_a_crash_matches_an_uninterrupted_run() {
    let dev = Device::flex().autodiff();
    let (train_set, test_set) = (data(320), data(128));
    let (train, test) = (loader(&train_set, true), loader(&test_set, false));
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];

    // Uninterrupted.
    let mut h_full = hook(None);
    let full = fit(
        Trainee::plain(teacher(&dev, 1)),
        &settings(sgd(), false),
        FitContext {
            train: &train,
            test: Some(&test),
            device: &dev,
            run_dir: dirs[0].path().to_path_buf(),
            teacher: None,
            hook: Some(&mut h_full),
        },
    )
    .unwrap();
    assert_eq!(full.history.len(), 3);
    assert_eq!(h_full.seen, 3);

    // Crash before epoch 2 (checkpoints for epochs 1 and 2 are on disk)...
    let mut h_crash = hook(Some(2));
    let err = fit(
        Trainee::plain(teacher(&dev, 1)),
        &settings(sgd(), false),
        FitContext {
            train: &train,
            test: Some(&test),
            device: &dev,
            run_dir: dirs[1].path().to_path_buf(),
            teacher: None,
            hook: Some(&mut h_crash),
        },
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Hook { epoch: 2, .. }), "{err}");
    let saved: Vec<usize> = checkpoint::list(dirs[1].path())
        .unwrap()
        .into_iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(saved, vec![1, 2]);

    // ...then resume into a differently initialized model: the checkpoint must replace it all.
    let mut h_resume = hook(None);
    let resumed = fit(
        Trainee::plain(teacher(&dev, 99)),
        &settings(sgd(), true),
        FitContext {
            train: &train,
            test: Some(&test),
            device: &dev,
            run_dir: dirs[1].path().to_path_buf(),
            teacher: None,
            hook: Some(&mut h_resume),
        },
    )
    .unwrap();
    assert_eq!(resumed.history.len(), 1, "only the last epoch is left");
    assert_eq!(resumed.epochs_done, 3);
    assert_eq!(h_resume.restored, Some(2));

    let (a, b) = (values(&full.trainee.model), values(&resumed.trainee.model));
    assert_eq!(a.len(), b.len());
    assert!(
        a == b,
        "resumed weights differ from the uninterrupted run's"
    );
    let (ra, rb) = (
        full.history[2].test.as_ref().unwrap(),
        resumed.history[0].test.as_ref().unwrap(),
    );
    assert_eq!(ra.predictions, rb.predictions);
    // Training moved the weights away from the initialization.
    assert!(values(&teacher(&dev, 1)) != a);

    // The resumed run logged where it picked up, then its epoch.
    let log = std::fs::read_to_string(dirs[1].path().join("metrics.jsonl")).unwrap();
    let kinds: Vec<String> = log
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .filter(|k| k != "step")
        .collect();
    assert_eq!(kinds, ["epoch", "epoch", "resume", "epoch"]);
}

#[test]
fn distillation_resumes_exactly_and_leaves_the_teacher_untouched() {
    let dev = Device::flex().autodiff();
    let (train_set, test_set) = (data(256), data(128));
    let (train, test) = (loader(&train_set, true), loader(&test_set, false));
    let t = teacher(&dev, 5);
    let frozen = FrozenTeacher::new(&t);
    let before = values(frozen.model());
    let kd = || -> Kd { Kd::new(4.0, 0.9) };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];

    let full = fit(
        Trainee::distill(student(&dev, 3), kd()),
        &settings(adam(), false),
        FitContext {
            train: &train,
            test: Some(&test),
            device: &dev,
            run_dir: dirs[0].path().to_path_buf(),
            teacher: Some(&frozen),
            hook: None,
        },
    )
    .unwrap();
    assert!(full
        .history
        .iter()
        .all(|e| e.terms.iter().any(|(n, v)| n == "kd" && *v > 0.0)));

    let mut crash = hook(Some(1));
    assert!(fit(
        Trainee::distill(student(&dev, 3), kd()),
        &settings(adam(), false),
        FitContext {
            train: &train,
            test: Some(&test),
            device: &dev,
            run_dir: dirs[1].path().to_path_buf(),
            teacher: Some(&frozen),
            hook: Some(&mut crash),
        },
    )
    .is_err());
    let resumed = fit(
        Trainee::distill(student(&dev, 4), kd()),
        &settings(adam(), true),
        FitContext {
            train: &train,
            test: Some(&test),
            device: &dev,
            run_dir: dirs[1].path().to_path_buf(),
            teacher: Some(&frozen),
            hook: None,
        },
    )
    .unwrap();
    assert_eq!(resumed.history.len(), 2);
    assert!(values(&full.trainee.model) == values(&resumed.trainee.model));

    // The teacher's weights and BatchNorm statistics did not move.
    assert!(before == values(frozen.model()));
    assert!(before == values(&t.valid()));
}

/// Turns every parameter into NaN.
struct Poison;
impl ModuleMapper for Poison {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        param.map(|t| t.mul_scalar(f32::NAN))
    }
}

struct PoisonAt(usize);
impl EpochHook<Teacher> for PoisonAt {
    fn before_epoch(
        &mut self,
        epoch: usize,
        model: Teacher,
        _: &HookContext,
    ) -> Result<Teacher, String> {
        Ok(if epoch == self.0 {
            model.map(&mut Poison)
        } else {
            model
        })
    }
}

#[test]
fn a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint() {
    let dev = Device::flex().autodiff();
    let train_set = data(128);
    let train = loader(&train_set, true);
    let dir = tempfile::tempdir().unwrap();
    let mut poison = PoisonAt(1);
    let err = fit(
        Trainee::plain(teacher(&dev, 1)),
        &settings(sgd(), false),
        FitContext {
            train: &train,
            test: None,
            device: &dev,
            run_dir: dir.path().to_path_buf(),
            teacher: None,
            hook: Some(&mut poison),
        },
    )
    .unwrap_err();
    assert!(
        matches!(&err, TrainError::NonFinite { epoch: 1, step: 2, term, value } if term == "ce" && value.is_nan()),
        "{err}"
    );
    let saved = checkpoint::list(dir.path()).unwrap();
    assert_eq!(saved.iter().map(|c| c.0).collect::<Vec<_>>(), vec![1]);
    // The surviving checkpoint is the finite state after epoch 1, and resuming from it works.
    let (m, _, state) =
        checkpoint::load_latest(dir.path(), Trainee::plain(teacher(&dev, 2)), sgd().init())
            .unwrap();
    assert_eq!((state.epochs_done, state.global_step), (1, 2));
    assert!(values(&m.model).iter().flatten().all(|v| v.is_finite()));
}

#[test]
fn run_directories_and_teacher_method_pairs_are_checked() {
    let dev = Device::flex().autodiff();
    let train_set = data(64);
    let train = loader(&train_set, true);
    let dir = tempfile::tempdir().unwrap();
    let one_epoch = |resume| TrainSettings {
        epochs: 1,
        ..settings(sgd(), resume)
    };
    let ctx = || FitContext::<Teacher> {
        train: &train,
        test: None,
        device: &dev,
        run_dir: dir.path().to_path_buf(),
        teacher: None,
        hook: None,
    };
    // Resuming a run that never checkpointed.
    let e = fit(Trainee::plain(teacher(&dev, 1)), &one_epoch(true), ctx()).unwrap_err();
    assert!(matches!(e, TrainError::NoCheckpoint { .. }), "{e}");
    // A method without a teacher.
    let e = fit(
        Trainee::distill(teacher(&dev, 1), Kd::new(4.0, 0.9)),
        &one_epoch(false),
        ctx(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, TrainError::Setting { key, .. } if key == "distill.teacher"),
        "{e}"
    );
    // A fresh run over an existing one.
    fit(Trainee::plain(teacher(&dev, 1)), &one_epoch(false), ctx()).unwrap();
    assert!(dir.path().join("model.bpk").is_file());
    let e = fit(
        Trainee::<Teacher, NoDistill>::plain(teacher(&dev, 1)),
        &one_epoch(false),
        ctx(),
    )
    .unwrap_err();
    assert!(matches!(e, TrainError::RunExists { .. }), "{e}");
    // A bad setting is named.
    let mut s = one_epoch(false);
    s.optim.lr = -1.0;
    let e = fit(Trainee::plain(teacher(&dev, 1)), &s, ctx()).unwrap_err();
    assert!(
        matches!(&e, TrainError::Setting { key, .. } if key == "optim.lr"),
        "{e}"
    );
}

#[test]
fn the_frozen_teacher_gives_constants_in_eval_mode() {
    let dev = Device::flex().autodiff();
    let t = teacher(&dev, 8);
    let frozen = FrozenTeacher::new(&t);
    let x = Tensor::<4>::random([4, 1, 28, 28], burn::tensor::Distribution::Default, &dev);
    let out = tinykd::train::TeacherTaps::taps(&frozen, x.clone());
    assert!(!out.logits.is_autodiff());
    // Eval mode: a batch's output does not depend on the other images in it.
    let one = tinykd::train::TeacherTaps::taps(&frozen, x.clone().narrow(0, 0, 1));
    let a: Vec<f32> = out
        .logits
        .narrow(0, 0, 1)
        .into_data()
        .iter::<f32>()
        .collect();
    let b: Vec<f32> = one.logits.into_data().iter::<f32>().collect();
    assert!(
        a.iter().zip(&b).all(|(p, q)| (p - q).abs() < 1e-5),
        "{a:?} vs {b:?}"
    );
    let _ = t.forward(x);
}
