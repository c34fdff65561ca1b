//! `tinykd gan sample`: generation → cDR-RS subsampling → teacher filtering → relabelling →
//! an IDX pair a run config adds with `data.synthetic`.
//!
//! Per conditioning class, as `fn_final_sampler` of the official `make_fake_datasets/main.py`:
//! a burn-in set of `sample.burn_in` fakes gives the rejection sampler's initial `max r` and,
//! after subsampling, the filter's CE cut-off (its `filter_quantile`); then batches are generated,
//! subsampled and filtered until `sample.per_class` samples are kept. Fakes are stored as 8-bit
//! pixels (`(x + 1)·127.5`), like real images, before the teacher sees them, as the paper does.

use std::path::{Path, PathBuf};

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use super::density_ratio::{accept, penalised_sp_loss, DensityRatioNet};
use super::filter::{filter_and_relabel, quantile};
use super::gan::Condition;
use super::gan::{Generator, SIDE};
use super::grid::{to_pixels, write_grid};
use super::train::{
    class_condition, conditioning_of, device_of, load_generator, noise, value_condition,
};
use super::{io_err, GanRunConfig, SynthError, SYNTHETIC_IMAGES, SYNTHETIC_LABELS};
use crate::config::DataConfig;
use crate::data::idx::encode_idx_u8;
use crate::data::{derive_seed, Dataset};
use crate::train::run::eval_loader;
use crate::train::TeacherTaps;

/// Generator streams of the sampler.
const STREAM_SAMPLE: u64 = 0x5a01;
const STREAM_DRE: u64 = 0x5a02;

/// What happened to the fakes of one conditioning class.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClassReport {
    /// The conditioning class.
    pub class: usize,
    /// Fakes generated after the burn-in.
    pub generated: usize,
    /// Of those, accepted by the rejection sampler (all when subsampling is off).
    pub accepted: usize,
    /// Of the accepted, kept by the teacher filter (may exceed `per_class` in the last batch;
    /// only `per_class` are written).
    pub passed_filter: usize,
    /// Written to the synthetic set.
    pub written: usize,
    /// Of the written, how many the teacher relabelled to another class.
    pub relabelled: usize,
    /// The CE cut-off (`None`: filtering off); for a regression GAN, the cut-off of the
    /// absolute error between the teacher's prediction and the condition (normalized units).
    pub ce_cutoff: Option<f32>,
    /// Regression: the condition value of this row (normalized).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f32>,
}

/// The whole sampling run (`report.json`).
#[derive(Debug, Clone, Serialize)]
pub struct SampleReport {
    /// The sample directory.
    pub out_dir: PathBuf,
    /// The GAN run.
    pub gan_run: PathBuf,
    /// The teacher run (filter, relabelling, DRE features).
    pub teacher_run: PathBuf,
    /// Per class.
    pub classes: Vec<ClassReport>,
    /// `Σ accepted / Σ generated`: the rejection sampler's acceptance rate.
    pub acceptance_rate: f64,
    /// `Σ passed_filter / Σ accepted`: the share the teacher filter keeps.
    pub filter_pass_rate: f64,
    /// `Σ relabelled / Σ written`.
    pub relabel_rate: f64,
    /// Samples written.
    pub written: usize,
    /// Mean penalised SP loss of the density-ratio net's last epoch (`None`: no subsampling).
    pub dre_last_loss: Option<f64>,
    /// The teacher's accuracy w.r.t. the conditioning labels on the burn-in fakes of all classes
    /// (0 for a regression GAN: see `teacher_burn_in_mae`).
    pub teacher_burn_in_accuracy: f64,
    /// Regression: the teacher's mean absolute error w.r.t. the conditioning values on the
    /// burn-in fakes, in the task's measure (how well the GAN follows its condition).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher_burn_in_mae: Option<f64>,
    /// Regression: mean absolute change of the written samples' targets by relabelling, in the
    /// task's measure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean_relabel_shift: Option<f64>,
    /// Wall time, seconds.
    pub seconds: f64,
}

/// The teacher's view of a set of 8-bit images: penultimate embeddings (`[n, features]`,
/// row-major), per-sample CE w.r.t. `labels`, and predictions.
pub(super) struct TeacherView {
    pub(super) features: Vec<f32>,
    pub(super) dim: usize,
    ce: Vec<f32>,
    predicted: Vec<u8>,
}

pub(super) fn teacher_view(
    teacher: &dyn TeacherTaps,
    data: &DataConfig,
    pixels: Vec<u8>,
    labels: Vec<u8>,
    classes: usize,
    device: &Device,
) -> Result<TeacherView, SynthError> {
    let set = Dataset::from_raw(
        pixels,
        labels,
        SIDE,
        SIDE,
        classes,
        Path::new("(generated samples)"),
    )?;
    let loader = eval_loader(&set, data);
    let mut view = TeacherView {
        features: Vec::new(),
        dim: 0,
        ce: Vec::with_capacity(set.len()),
        predicted: Vec::with_capacity(set.len()),
    };
    for batch in loader.epoch(0, 0, device) {
        let out = teacher.taps(batch.images);
        view.dim = out.embedding.dims()[1];
        let logp = log_softmax(out.logits.clone(), 1);
        let picked = logp.gather(1, batch.targets.clone().unsqueeze_dim(1));
        let ce: Vec<f32> = picked
            .neg()
            .into_data()
            .try_into_vec::<f32>()
            .map_err(data_err)?;
        view.ce.extend(ce);
        let pred = out.logits.argmax(1).into_data();
        view.predicted.extend(pred.iter::<i64>().map(|p| p as u8));
        let f: Vec<f32> = out
            .embedding
            .into_data()
            .try_into_vec::<f32>()
            .map_err(data_err)?;
        view.features.extend(f);
    }
    Ok(view)
}

pub(super) fn data_err(e: burn::tensor::DataError) -> SynthError {
    SynthError::Sampling(format!("tensor data: {e:?}"))
}

/// `n` fakes of `generator` under `condition(n)`, as 8-bit pixels.
pub(super) fn generate(
    generator: &Generator,
    condition: impl Fn(usize, &Device) -> Condition,
    n: usize,
    rng: &mut StdRng,
    device: &Device,
) -> Result<Vec<u8>, SynthError> {
    let z = noise(rng, n, generator.z_dim(), device);
    let x: Vec<f32> = generator
        .forward(z, condition(n, device))
        .into_data()
        .try_into_vec::<f32>()
        .map_err(data_err)?;
    Ok(to_pixels(&x))
}

/// Trains the density-ratio net on the real set's teacher features against fakes conditioned on
/// the same labels (a regression set: the same values). Returns the net (eval mode) and the last
/// epoch's mean loss.
#[allow(clippy::too_many_arguments)]
fn train_density_ratio(
    config: &GanRunConfig,
    generator: &Generator,
    teacher: &dyn TeacherTaps,
    teacher_data: &DataConfig,
    real: &Dataset,
    real_view: &TeacherView,
    plain: &Device,
) -> Result<(DensityRatioNet, f64), SynthError> {
    let dre = &config.sample.dre;
    let classes = real.classes();
    let device = plain.clone().autodiff();
    device.seed(derive_seed(config.seed, 0, STREAM_DRE));
    let conditioning = conditioning_of(config.data.dataset);
    let mut net = DensityRatioNet::new(real_view.dim, conditioning, dre, &device);
    let mut optim = AdamConfig::new()
        .with_beta_1(0.5)
        .with_beta_2(0.999)
        .with_epsilon(1e-8)
        .with_weight_decay(
            (dre.weight_decay > 0.0)
                .then(|| burn::optim::decay::WeightDecayConfig::new(dre.weight_decay as f32)),
        )
        .init();
    let steps = real.len() / dre.batch_size;
    if steps == 0 {
        return Err(SynthError::Config(crate::config::ConfigError::Invalid {
            key: "sample.dre.batch_size".into(),
            reason: format!(
                "{} training images make no batch of {}",
                real.len(),
                dre.batch_size
            ),
        }));
    }
    let mut last = f64::NAN;
    let mut step = 0;
    for epoch in 0..dre.epochs {
        let mut rng = StdRng::seed_from_u64(derive_seed(config.seed, epoch as u64, STREAM_DRE));
        let mut order: Vec<usize> = (0..real.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        let bar = crate::train::metrics::epoch_bar(
            config.gan.progress.visible(),
            epoch,
            dre.epochs,
            steps,
        );
        bar.set_prefix(format!("density ratio {}/{}", epoch + 1, dre.epochs));
        let mut sum = 0f64;
        for idx in order.chunks_exact(dre.batch_size) {
            let labels: Vec<u8> = idx.iter().map(|&i| real.label(i)).collect();
            let condition = |dev: &Device| match real.targets() {
                Some(t) => {
                    let v: Vec<f32> = idx.iter().map(|&i| t.values[i]).collect();
                    value_condition(&v, dev)
                }
                None => class_condition(&labels, dev),
            };
            let mut real_f = Vec::with_capacity(idx.len() * real_view.dim);
            for &i in idx {
                real_f.extend_from_slice(
                    &real_view.features[i * real_view.dim..(i + 1) * real_view.dim],
                );
            }
            // Fakes of the same labels, through the teacher (no gradient).
            let z = noise(&mut rng, idx.len(), generator.z_dim(), plain);
            let x: Vec<f32> = generator
                .forward(z, condition(plain))
                .into_data()
                .try_into_vec::<f32>()
                .map_err(data_err)?;
            let fake_view = teacher_view(
                teacher,
                teacher_data,
                to_pixels(&x),
                labels.clone(),
                classes,
                plain,
            )?;
            let b = idx.len();
            let f = |v: Vec<f32>| {
                Tensor::<2>::from_data(TensorData::new(v, [b, real_view.dim]), &device)
            };
            let loss = penalised_sp_loss(
                net.forward(f(real_f), condition(&device)),
                net.forward(f(fake_view.features), condition(&device)),
                dre.lambda,
            );
            let v: f32 = loss.clone().into_scalar();
            if !v.is_finite() {
                return Err(SynthError::NonFinite {
                    stage: "dre",
                    step,
                    value: v,
                });
            }
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(dre.lr, net, grads);
            sum += f64::from(v);
            step += 1;
            bar.inc(1);
        }
        bar.finish_and_clear();
        last = sum / steps as f64;
        eprintln!(
            "density ratio epoch {}/{}: loss {last:.4}",
            epoch + 1,
            dre.epochs
        );
    }
    Ok((net.valid(), last))
}

/// `n` copies of class `c` as a condition.
fn of_class(c: u8) -> impl Fn(usize, &Device) -> Condition {
    move |n, device| class_condition(&vec![c; n], device)
}

/// cDR-RS's ratio net for the GAN run `config`: the teacher's features of the real training set
/// (`config.data`), then [`train_density_ratio`]. Returns the net and its last epoch's loss.
pub(super) fn fit_density_ratio(
    config: &GanRunConfig,
    generator: &Generator,
    teacher: &dyn TeacherTaps,
    teacher_data: &DataConfig,
    plain: &Device,
) -> Result<(DensityRatioNet, f64), SynthError> {
    let (real, _) = crate::train::run::load_datasets(&config.data)?;
    let pixels: Vec<u8> = (0..real.len())
        .flat_map(|i| real.image(i).unwrap_or(&[]).to_vec())
        .collect();
    let real_view = teacher_view(
        teacher,
        teacher_data,
        pixels,
        real.labels().to_vec(),
        real.classes(),
        plain,
    )?;
    train_density_ratio(
        config,
        generator,
        teacher,
        teacher_data,
        &real,
        &real_view,
        plain,
    )
}

/// The ratios of the samples `view` describes under `condition`.
pub(super) fn ratios(
    net: &DensityRatioNet,
    view: &TeacherView,
    condition: Condition,
    device: &Device,
) -> Result<Vec<f32>, SynthError> {
    let n = view.features.len() / view.dim.max(1);
    let f = Tensor::<2>::from_data(
        TensorData::new(view.features.clone(), [n, view.dim]),
        device,
    );
    net.forward(f, condition)
        .into_data()
        .try_into_vec::<f32>()
        .map_err(data_err)
}

fn select<T: Copy>(v: &[T], idx: &[usize], stride: usize) -> Vec<T> {
    idx.iter()
        .flat_map(|&i| v[i * stride..(i + 1) * stride].iter().copied())
        .collect()
}

/// Generates, subsamples, filters and relabels fakes of the GAN run `gan_run` with the teacher
/// run `teacher_run`, and writes the synthetic set, `report.json` and `kept-grid.png` into
/// `out_dir`. `overrides` are `--set` keys over the GAN run's configuration (`sample.*`).
///
/// # Errors
/// [`SynthError`] for a bad configuration, an unloadable run, a sampler that cannot reach
/// `per_class` (every fake rejected), an unwritable file.
pub fn sample(
    gan_run: &Path,
    teacher_run: &Path,
    out_dir: &Path,
    overrides: &[String],
) -> Result<SampleReport, SynthError> {
    let started = std::time::Instant::now();
    let probe = GanRunConfig::from_run_dir(gan_run, overrides)?;
    if probe.data.dataset.is_regression() {
        return super::regression::sample_regression(gan_run, teacher_run, out_dir, overrides);
    }
    let plain = device_of(&probe)?;
    let (generator, config) = load_generator(gan_run, overrides, &plain)?;
    let (teacher_model, teacher_config) = crate::train::load_model(teacher_run, &plain)?;
    let teacher = teacher_model.frozen();
    let tdata = &teacher_config.data;
    let s = &config.sample;
    let classes = config.data.dataset.classes();
    if teacher_config.data.dataset.classes() != classes {
        return Err(SynthError::Sampling(format!(
            "the teacher {} has {} classes, the GAN {classes}",
            teacher_run.display(),
            teacher_config.data.dataset.classes()
        )));
    }
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;

    let (dre, dre_last_loss) = if s.subsample {
        let (net, loss) = fit_density_ratio(&config, &generator, teacher.as_ref(), tdata, &plain)?;
        (Some(net), Some(loss))
    } else {
        (None, None)
    };

    let mut images = Vec::with_capacity(classes * s.per_class * SIDE * SIDE);
    let mut labels = Vec::with_capacity(classes * s.per_class);
    let mut reports = Vec::with_capacity(classes);
    let (mut burn_hits, mut burn_total) = (0usize, 0usize);
    let grid_per = config.gan.grid_per_class.max(1);
    let mut grid = vec![0u8; classes * grid_per * SIDE * SIDE];
    let px = SIDE * SIDE;
    // The official sampler's M is the running maximum; a quantile below 1 fixes M instead.
    let raise = s.dre.max_quantile >= 1.0;
    for class in 0..classes {
        let c = class as u8;
        let mut rng = StdRng::seed_from_u64(derive_seed(config.seed, class as u64, STREAM_SAMPLE));
        let mut report = ClassReport {
            class,
            ..ClassReport::default()
        };
        // Burn-in: max r, then the CE cut-off on the subsampled burn-in fakes.
        let burn = generate(&generator, of_class(c), s.burn_in, &mut rng, &plain)?;
        let burn_view = teacher_view(
            teacher.as_ref(),
            tdata,
            burn.clone(),
            vec![c; s.burn_in],
            classes,
            &plain,
        )?;
        burn_hits += burn_view.predicted.iter().filter(|&&p| p == c).count();
        burn_total += s.burn_in;
        let mut max_ratio = 0f32;
        let burn_kept: Vec<usize> = match &dre {
            Some(net) => {
                let burn_labels = class_condition(&vec![c; s.burn_in], &plain);
                let r = ratios(net, &burn_view, burn_labels, &plain)?;
                max_ratio = quantile(&r, s.dre.max_quantile).unwrap_or(0.0);
                let u: Vec<f32> = (0..r.len()).map(|_| rng.gen()).collect();
                accept(&r, &u, &mut max_ratio, raise)
            }
            None => (0..s.burn_in).collect(),
        };
        if s.filter_quantile < 1.0 {
            let ce: Vec<f32> = burn_kept.iter().map(|&i| burn_view.ce[i]).collect();
            report.ce_cutoff = quantile(&ce, s.filter_quantile);
        }

        let mut written = 0;
        while written < s.per_class {
            if report.generated > 100 * s.per_class.max(s.batch_size) {
                return Err(SynthError::Sampling(format!(
                    "class {class}: {} fakes generated, only {written} of {} kept; the \
                     density ratios or the filter reject nearly everything",
                    report.generated, s.per_class
                )));
            }
            let n = s.batch_size;
            let batch = generate(&generator, of_class(c), n, &mut rng, &plain)?;
            let view = teacher_view(
                teacher.as_ref(),
                tdata,
                batch.clone(),
                vec![c; n],
                classes,
                &plain,
            )?;
            report.generated += n;
            let accepted = match &dre {
                Some(net) => {
                    let r = ratios(net, &view, class_condition(&vec![c; n], &plain), &plain)?;
                    let u: Vec<f32> = (0..n).map(|_| rng.gen()).collect();
                    accept(&r, &u, &mut max_ratio, raise)
                }
                None => (0..n).collect(),
            };
            report.accepted += accepted.len();
            let ce = select(&view.ce, &accepted, 1);
            let pred = select(&view.predicted, &accepted, 1);
            let f = filter_and_relabel(&ce, &pred, &vec![c; ce.len()], report.ce_cutoff, s.relabel);
            report.passed_filter += f.kept.len();
            for (k, &j) in f.kept.iter().enumerate() {
                if written == s.per_class {
                    break;
                }
                let i = accepted[j];
                let img = &batch[i * px..(i + 1) * px];
                if written < grid_per {
                    let at = (class * grid_per + written) * px;
                    grid[at..at + px].copy_from_slice(img);
                }
                images.extend_from_slice(img);
                labels.push(f.labels[k]);
                report.relabelled += usize::from(f.labels[k] != c);
                written += 1;
            }
        }
        report.written = written;
        eprintln!(
            "class {class}: generated {}, accepted {}, passed filter {}, written {}, relabelled {}",
            report.generated, report.accepted, report.passed_filter, written, report.relabelled
        );
        reports.push(report);
    }

    let n = labels.len();
    let img_path = out_dir.join(SYNTHETIC_IMAGES);
    std::fs::write(&img_path, encode_idx_u8(&[n, SIDE, SIDE], &images))
        .map_err(io_err(&img_path))?;
    let lab_path = out_dir.join(SYNTHETIC_LABELS);
    std::fs::write(&lab_path, encode_idx_u8(&[n], &labels)).map_err(io_err(&lab_path))?;
    write_grid(
        &out_dir.join("kept-grid.png"),
        &grid,
        classes,
        grid_per,
        SIDE,
    )?;

    let sum = |f: fn(&ClassReport) -> usize| reports.iter().map(f).sum::<usize>() as f64;
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let report = SampleReport {
        out_dir: out_dir.to_path_buf(),
        gan_run: gan_run.to_path_buf(),
        teacher_run: teacher_run.to_path_buf(),
        acceptance_rate: ratio(sum(|r| r.accepted), sum(|r| r.generated)),
        filter_pass_rate: ratio(sum(|r| r.passed_filter), sum(|r| r.accepted)),
        relabel_rate: ratio(sum(|r| r.relabelled), sum(|r| r.written)),
        written: n,
        classes: reports,
        dre_last_loss,
        teacher_burn_in_accuracy: ratio(burn_hits as f64, burn_total as f64),
        teacher_burn_in_mae: None,
        mean_relabel_shift: None,
        seconds: started.elapsed().as_secs_f64(),
    };
    let path = out_dir.join("report.json");
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(&path, json).map_err(io_err(&path))?;
    Ok(report)
}
