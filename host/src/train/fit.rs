//! The epoch loop of [`fit`].

use std::time::Instant;

use burn::module::ModuleDisplay;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::GradientsParams;
use serde_json::json;

use super::checkpoint::{self, CheckpointState, CHECKPOINT_FORMAT};
use super::metrics::{epoch_bar, MetricsLog};
use super::{
    EpochSummary, FitContext, FitOutcome, HookContext, TrainError, TrainSettings, Trainee,
};
use crate::data::derive_seed;
use crate::distill::hsakd::rotated_views as rotated_views_of;
use crate::distill::{Distiller, StepContext};
use crate::eval::evaluate;
use crate::models::Classifier;

/// Generator stream of the device's own random numbers (dropout and the like) in an epoch.
const STREAM_DEVICE: u64 = 3;

fn setting(key: &str, reason: impl Into<String>) -> TrainError {
    TrainError::Setting {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn check_settings(s: &TrainSettings) -> Result<(), TrainError> {
    if s.epochs == 0 {
        return Err(setting("train.epochs", "must be at least 1"));
    }
    s.optim
        .validate()
        .map_err(|(k, r)| setting(&format!("optim.{k}"), r))?;
    s.schedule
        .validate(s.optim.lr)
        .map_err(|(k, r)| setting(&format!("schedule.{k}"), r))?;
    if !(s.ce_weight.is_finite() && s.ce_weight >= 0.0) {
        return Err(setting(
            "ce_weight",
            format!("must be >= 0, got {}", s.ce_weight),
        ));
    }
    if !(0.0..1.0).contains(&s.label_smoothing) {
        return Err(setting(
            "train.label_smoothing",
            format!("must be in [0, 1), got {}", s.label_smoothing),
        ));
    }
    Ok(())
}

/// Trains `trainee` for `settings.epochs` epochs (or what is left of them when resuming).
///
/// Per epoch: run the hook, train on every batch of `ctx.train`, evaluate `ctx.test`, append an
/// `"epoch"` line to `metrics.jsonl`, write `<run>/model.bpk` (the model alone, for evaluation
/// and export) and a checkpoint. See the [module docs](super) for the loss and the guarantees.
///
/// # Errors
/// [`TrainError::Setting`] for unusable settings or a teacher/method mismatch (a method needs a
/// teacher and a teacher needs a method); [`TrainError::RunExists`] when starting fresh over an
/// existing run; [`TrainError::NoCheckpoint`] / [`TrainError::Checkpoint`] when resuming fails;
/// [`TrainError::NonFinite`], [`TrainError::Hook`] and [`TrainError::Io`] during training.
pub fn fit<S: Classifier + ModuleDisplay, D: Distiller + ModuleDisplay>(
    trainee: Trainee<S, D>,
    settings: &TrainSettings,
    ctx: FitContext<'_, S>,
) -> Result<FitOutcome<S, D>, TrainError> {
    check_settings(settings)?;
    let FitContext {
        train,
        test,
        device,
        run_dir,
        teacher,
        mut hook,
    } = ctx;
    let needs_teacher = trainee
        .method
        .as_ref()
        .is_some_and(Distiller::needs_teacher);
    match (trainee.method.is_some(), teacher.is_some()) {
        (true, false) if needs_teacher => {
            return Err(setting(
                "distill.teacher",
                "a distillation method needs a teacher",
            ))
        }
        (false, true) => {
            return Err(setting(
                "distill.method",
                "a teacher was given without a method",
            ))
        }
        _ => {}
    }
    if train.num_batches() == 0 {
        return Err(setting(
            "data.batch_size",
            format!(
                "{} training images make no batch of {} with drop_last",
                train.dataset().len(),
                train.config().batch_size
            ),
        ));
    }
    std::fs::create_dir_all(&run_dir).map_err(|source| TrainError::Io {
        path: run_dir.clone(),
        source,
    })?;

    let mut trainee = trainee;
    let mut optim = settings.optim.init();
    let mut start_epoch = 0;
    let mut global_step = 0;
    let mut resumed_from = None;
    if settings.resume {
        let (t, o, state) = checkpoint::load_latest(&run_dir, trainee, optim)?;
        if state.seed != settings.seed {
            return Err(setting(
                "seed",
                format!(
                    "the checkpoint was written with seed {}, not {}",
                    state.seed, settings.seed
                ),
            ));
        }
        (trainee, optim) = (t, o);
        start_epoch = state.epochs_done;
        global_step = state.global_step;
        if let Some(h) = hook.as_deref_mut() {
            h.restore(state.hook).map_err(|message| TrainError::Hook {
                epoch: start_epoch,
                message,
            })?;
        }
        resumed_from = Some(start_epoch);
    } else if !checkpoint::list(&run_dir)?.is_empty() {
        return Err(TrainError::RunExists { dir: run_dir });
    }
    let mut metrics = MetricsLog::open(&run_dir)?;
    if let Some(epoch) = resumed_from {
        metrics.write(&json!({"kind": "resume", "from_epoch": epoch, "step": global_step}))?;
    }

    let mut ce_config = CrossEntropyLossConfig::new();
    if settings.label_smoothing > 0.0 {
        ce_config = ce_config.with_smoothing(Some(settings.label_smoothing));
    }
    let ce_loss = ce_config.init(device);
    let steps_per_epoch = train.num_batches();
    let rotated_views = trainee
        .method
        .as_ref()
        .is_some_and(Distiller::rotated_views);
    let [_, h, w] = train.dataset().shape();
    if rotated_views && h != w {
        return Err(setting(
            "distill.method",
            format!(
                "the method trains on rotated views, which need square images; these samples \
                 are {h}x{w} (a series window cannot be rotated)"
            ),
        ));
    }
    // A regression set trains the single output with the squared error and reports the mean
    // absolute error in the task's measure instead of an accuracy.
    let target_scale = train.dataset().targets().map(|t| f64::from(t.scale));
    let supervised = if target_scale.is_some() { "mse" } else { "ce" };
    let mut history = Vec::new();

    for epoch in start_epoch..settings.epochs {
        device.seed(derive_seed(settings.seed, epoch as u64, STREAM_DEVICE));
        if let Some(h) = hook.as_deref_mut() {
            let hctx = HookContext {
                train,
                device,
                epochs: settings.epochs,
            };
            trainee.model = h
                .before_epoch(epoch, trainee.model, &hctx)
                .map_err(|message| TrainError::Hook { epoch, message })?;
        }

        let bar = epoch_bar(settings.progress, epoch, settings.epochs, steps_per_epoch);
        let started = Instant::now();
        let (mut loss_sum, mut ce_sum, mut correct, mut seen) = (0f64, 0f64, 0usize, 0usize);
        let mut abs_err_sum = 0f64;
        let mut term_sums: Vec<(String, f64)> = Vec::new();
        let mut lr = settings.optim.lr;

        for (i, batch) in train.epoch(settings.seed, epoch, device).enumerate() {
            lr = settings.schedule.lr(
                settings.optim.lr,
                epoch,
                i,
                steps_per_epoch,
                settings.epochs,
            );
            let b = batch.indices.len();
            let images = if rotated_views {
                rotated_views_of(batch.images.clone())
            } else {
                batch.images.clone()
            };
            let out = trainee.model.forward_taps(images.clone());
            // With rotated views the unrotated images are the first `b` rows.
            let logits = if rotated_views {
                out.logits.clone().narrow(0, 0, b)
            } else {
                out.logits.clone()
            };
            // The supervised term: CE on the classes, or the squared error of the single output
            // on a regression set.
            let ce = match &batch.values {
                Some(values) => {
                    let diff = logits.clone().flatten::<1>(0, 1) - values.clone();
                    (diff.clone() * diff).mean()
                }
                None => ce_loss.forward(logits.clone(), batch.targets.clone()),
            };
            let ce_value: f32 = ce.clone().into_scalar();
            if !ce_value.is_finite() {
                return Err(non_finite(epoch, global_step, supervised, ce_value));
            }
            let mut total = ce * settings.ce_weight;
            let mut step_terms: Vec<(&'static str, f32)> = Vec::new();
            if let Some(method) = &trainee.method {
                // Online methods have no teacher; they get the student's taps (and ignore them).
                let t_out = match teacher {
                    Some(t) => t.taps(images.clone()),
                    None => out.clone(),
                };
                let sctx = StepContext {
                    targets: &batch.targets,
                    indices: &batch.indices,
                    epoch,
                    step: global_step,
                    images: &images,
                };
                for term in method.loss(&out, &t_out, &sctx) {
                    let v: f32 = term.value.clone().into_scalar();
                    if !v.is_finite() {
                        return Err(non_finite(epoch, global_step, term.name, v));
                    }
                    step_terms.push((term.name, v));
                    total = total + term.value;
                }
            }
            let total_value: f32 = total.clone().into_scalar();
            if !total_value.is_finite() {
                return Err(non_finite(epoch, global_step, "total", total_value));
            }

            let hits: i64 = match &batch.values {
                Some(values) => {
                    let err: f32 = (logits.clone().without_autodiff().flatten::<1>(0, 1)
                        - values.clone().without_autodiff())
                    .abs()
                    .sum()
                    .into_scalar();
                    abs_err_sum += f64::from(err);
                    0
                }
                None => logits
                    .without_autodiff()
                    .argmax(1)
                    .flatten::<1>(0, 1)
                    .equal(batch.targets.clone().without_autodiff())
                    .int()
                    .sum()
                    .into_scalar(),
            };

            let grads = GradientsParams::from_grads(total.backward(), &trainee);
            trainee = optim.step(lr, trainee, grads);
            trainee.model = trainee.model.after_step();
            trainee.method = trainee.method.map(Distiller::after_step);
            if let Some(method) = trainee.method.take() {
                let sctx = StepContext {
                    targets: &batch.targets,
                    indices: &batch.indices,
                    epoch,
                    step: global_step,
                    images: &batch.images,
                };
                trainee.method = Some(method.meta_step(&trainee.model, &sctx, lr));
            }
            global_step += 1;

            loss_sum += f64::from(total_value) * b as f64;
            ce_sum += f64::from(ce_value) * b as f64;
            correct += hits as usize;
            seen += b;
            for (name, v) in &step_terms {
                match term_sums.iter_mut().find(|(n, _)| n == name) {
                    Some((_, s)) => *s += f64::from(*v) * b as f64,
                    None => term_sums.push((name.to_string(), f64::from(*v) * b as f64)),
                }
            }
            if settings.log_every > 0 && global_step % settings.log_every == 0 {
                let mut rec = json!({
                    "kind": "step", "epoch": epoch, "step": global_step, "lr": lr,
                    "loss": total_value,
                });
                rec[supervised] = json!(ce_value);
                for (name, v) in &step_terms {
                    rec[*name] = json!(v);
                }
                metrics.write(&rec)?;
            }
            bar.inc(1);
            let secs = started.elapsed().as_secs_f64();
            let fit_of = match target_scale {
                Some(scale) => format!("MAE {:.2}", abs_err_sum / seen as f64 * scale),
                None => format!("acc {:.2}%", 100.0 * correct as f64 / seen as f64),
            };
            bar.set_message(format!(
                "loss {:.4} {fit_of} {:.0} img/s",
                loss_sum / seen as f64,
                seen as f64 / secs.max(1e-9)
            ));
        }
        let seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();

        let test_report = test.map(|t| evaluate(&trainee.model, t, device));
        let n = seen.max(1) as f64;
        let summary = EpochSummary {
            epoch,
            step: global_step,
            lr,
            loss: loss_sum / n,
            ce: ce_sum / n,
            terms: term_sums.iter().map(|(k, s)| (k.clone(), s / n)).collect(),
            train_accuracy: correct as f64 / n,
            train_mae: target_scale.map(|scale| abs_err_sum / n * scale),
            test: test_report,
            images_per_sec: seen as f64 / seconds.max(1e-9),
            seconds,
        };
        let mut rec = json!({
            "kind": "epoch", "epoch": epoch, "step": global_step, "lr": lr,
            "loss": summary.loss, "train_accuracy": summary.train_accuracy,
            "images_per_sec": summary.images_per_sec, "seconds": seconds,
        });
        rec[supervised] = json!(summary.ce);
        if let Some(mae) = summary.train_mae {
            rec["train_mae"] = json!(mae);
        }
        for (name, v) in &summary.terms {
            rec[name.as_str()] = json!(v);
        }
        if let Some(r) = &summary.test {
            rec["test_accuracy"] = json!(r.accuracy);
            rec["test_loss"] = json!(r.loss);
            if let Some(mae) = r.mae {
                rec["test_mae"] = json!(mae);
            }
        }
        metrics.write(&rec)?;
        if settings.report_epochs {
            eprintln!("{}", summary_line(&summary, settings.epochs));
        }

        let model_path = run_dir.join("model.bpk");
        trainee
            .model
            .clone()
            .save_file(&model_path)
            .map_err(|e| TrainError::Checkpoint {
                path: model_path.clone(),
                reason: e.to_string(),
            })?;
        let state = CheckpointState {
            format: CHECKPOINT_FORMAT,
            epochs_done: epoch + 1,
            global_step,
            seed: settings.seed,
            test_accuracy: summary.test.as_ref().map(|r| r.accuracy),
            hook: hook
                .as_deref()
                .map(|h| h.state())
                .unwrap_or(serde_json::Value::Null),
        };
        // Fold every pending BatchNorm running-statistics update into the saved values: a
        // `RunningState` keeps the last update aside until it is read again, and the record
        // writer reads the committed value (the model was synced by its evaluation; an online
        // method's peers were not).
        let _ = burn::module::Module::valid(&trainee);
        checkpoint::save(
            &run_dir,
            &trainee,
            &optim,
            &state,
            settings.keep_checkpoints,
        )?;
        history.push(summary);
    }

    Ok(FitOutcome {
        trainee,
        history,
        epochs_done: settings.epochs.max(start_epoch),
    })
}

fn non_finite(epoch: usize, step: usize, term: &str, value: f32) -> TrainError {
    TrainError::NonFinite {
        epoch,
        step,
        term: term.to_string(),
        value,
    }
}

/// One line per epoch for the terminal.
fn summary_line(s: &EpochSummary, epochs: usize) -> String {
    let mut line = match s.train_mae {
        Some(mae) => format!(
            "epoch {}/{epochs}: loss {:.4} train MAE {mae:.3}",
            s.epoch + 1,
            s.loss
        ),
        None => format!(
            "epoch {}/{epochs}: loss {:.4} train acc {:.2}%",
            s.epoch + 1,
            s.loss,
            100.0 * s.train_accuracy
        ),
    };
    match &s.test {
        Some(t) if t.mae.is_some() => {
            line += &format!(
                " test MAE {:.3} (mse {:.5})",
                t.mae.unwrap_or_default(),
                t.loss
            );
        }
        Some(t) => {
            line += &format!(" test acc {:.2}% (loss {:.4})", 100.0 * t.accuracy, t.loss);
        }
        None => {}
    }
    line += &format!(" | {:.0} img/s, {:.1} s", s.images_per_sec, s.seconds);
    line
}
