//! `tinykd gan sample` for a regression GAN (cGAN-KD's regression pipeline, as its UTKFace and
//! steering-angle `generate_synthetic_data.py`): generation at evenly spaced target values, the
//! regression teacher's filter and relabelling.
//!
//! With `sample.subsample`, cDR-RS first: the density-ratio net of [`super::density_ratio`] is
//! trained on the real images' teacher features against fakes conditioned on the same values
//! (the value embedded by a small MLP), and every batch below goes through its rejection
//! sampler, as in the class-conditional pipeline.
//!
//! Per conditioning value `y` (`sample.values` of them over `[0, 1]`): a burn-in set of
//! `sample.burn_in` fakes gives the sampler's `max r` and, after subsampling, the filter's
//! cut-off, the `filter_quantile` of the absolute errors `|t(x) − y|` between the teacher's
//! prediction (clipped to `[0, 1]`) and the condition; then batches are generated, subsampled,
//! and the fakes whose error is at or below the cut-off are kept,
//! with the teacher's prediction as their target (`relabel`), until `per_class` are written.
//! Two deviations from the official code, which takes one cut-off over all fakes and keeps
//! errors strictly below it: a per-value cut-off keeps every value equally represented (as the
//! class-conditional sampler does per class), and "at or below" keeps the ties that clipping
//! makes at the ends of the range (at the condition 0, every prediction at or below 0 has error
//! exactly 0; with "below", a cut-off of 0 would reject them all).

use std::path::Path;

use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::density_ratio::{accept, DensityRatioNet};
use super::filter::quantile;
use super::gan::{Condition, SIDE};
use super::grid::write_grid;
use super::sample::{
    data_err, fit_density_ratio, generate, ratios, teacher_view, ClassReport, SampleReport,
};
use super::train::{device_of, load_generator, value_condition};
use super::{
    io_err, GanRunConfig, SynthError, TargetsFile, SYNTHETIC_IMAGES, SYNTHETIC_LABELS,
    SYNTHETIC_TARGETS,
};
use crate::config::DataConfig;
use crate::data::idx::encode_idx_u8;
use crate::data::{derive_seed, Dataset};
use crate::train::run::eval_loader;
use crate::train::TeacherTaps;

/// Generator stream of the sampler (one per conditioning value).
const STREAM_SAMPLE: u64 = 0x5a03;

/// `n` copies of `value` as a condition.
fn at_value(value: f32) -> impl Fn(usize, &Device) -> Condition {
    move |n, device| value_condition(&vec![value; n], device)
}

/// The teacher's predictions (clipped to `[0, 1]`) for 8-bit images, normalized as the teacher
/// was trained.
fn predict(
    teacher: &dyn TeacherTaps,
    data: &DataConfig,
    pixels: Vec<u8>,
    device: &Device,
) -> Result<Vec<f32>, SynthError> {
    let n = pixels.len() / (SIDE * SIDE);
    let set = Dataset::from_raw(
        pixels,
        vec![0; n],
        SIDE,
        SIDE,
        1,
        Path::new("(generated samples)"),
    )?;
    let mut out = Vec::with_capacity(n);
    for batch in eval_loader(&set, data).epoch(0, 0, device) {
        let p: Vec<f32> = teacher
            .taps(batch.images)
            .logits
            .into_data()
            .try_into_vec::<f32>()
            .map_err(data_err)?;
        out.extend(p.into_iter().map(|v| v.clamp(0.0, 1.0)));
    }
    Ok(out)
}

/// The accepted indices of `pixels` (8-bit fakes of condition `value`) under the ratio net, or
/// all of them without subsampling.
#[allow(clippy::too_many_arguments)]
fn subsample(
    dre: Option<&DensityRatioNet>,
    teacher: &dyn TeacherTaps,
    data: &DataConfig,
    pixels: &[u8],
    value: f32,
    max_ratio: &mut f32,
    raise: bool,
    rng: &mut StdRng,
    device: &Device,
) -> Result<Vec<usize>, SynthError> {
    let n = pixels.len() / (SIDE * SIDE);
    let Some(net) = dre else {
        return Ok((0..n).collect());
    };
    let view = teacher_view(teacher, data, pixels.to_vec(), vec![0; n], 1, device)?;
    let r = ratios(net, &view, value_condition(&vec![value; n], device), device)?;
    let u: Vec<f32> = (0..n).map(|_| rng.gen()).collect();
    Ok(accept(&r, &u, max_ratio, raise))
}

/// The regression branch of [`super::sample::sample`] (same arguments, same files plus
/// [`SYNTHETIC_TARGETS`]; every label is 0).
///
/// # Errors
/// [`SynthError`] for a bad configuration, a teacher that is not a regression teacher, an
/// unloadable run, a filter that keeps nearly nothing, an unwritable file.
pub fn sample_regression(
    gan_run: &Path,
    teacher_run: &Path,
    out_dir: &Path,
    overrides: &[String],
) -> Result<SampleReport, SynthError> {
    let started = std::time::Instant::now();
    let probe = GanRunConfig::from_run_dir(gan_run, overrides)?;
    let plain = device_of(&probe)?;
    let (generator, config) = load_generator(gan_run, overrides, &plain)?;
    let (teacher_model, teacher_config) = crate::train::load_model(teacher_run, &plain)?;
    let Some(scale) = teacher_config.data.dataset.target_scale() else {
        return Err(SynthError::Sampling(format!(
            "the teacher {} is a classifier ({:?}); a regression GAN needs a regression teacher",
            teacher_run.display(),
            teacher_config.data.dataset
        )));
    };
    let teacher = teacher_model.frozen();
    let tdata = &teacher_config.data;
    let s = &config.sample;
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;

    let (dre, dre_last_loss) = if s.subsample {
        let (net, loss) = fit_density_ratio(&config, &generator, teacher.as_ref(), tdata, &plain)?;
        (Some(net), Some(loss))
    } else {
        (None, None)
    };
    // The official sampler's M is the running maximum; a quantile below 1 fixes M instead.
    let raise = s.dre.max_quantile >= 1.0;

    let rows = s.values;
    let grid_per = config.gan.grid_per_class.max(1);
    let px = SIDE * SIDE;
    let mut grid = vec![0u8; rows * grid_per * px];
    let mut images = Vec::with_capacity(rows * s.per_class * px);
    let mut targets = Vec::with_capacity(rows * s.per_class);
    let mut reports = Vec::with_capacity(rows);
    let (mut burn_err, mut burn_total, mut shift) = (0f64, 0usize, 0f64);
    for row in 0..rows {
        let value = row as f32 / (rows - 1) as f32;
        let mut rng = StdRng::seed_from_u64(derive_seed(config.seed, row as u64, STREAM_SAMPLE));
        let mut report = ClassReport {
            class: row,
            value: Some(value),
            ..ClassReport::default()
        };
        let burn = generate(&generator, at_value(value), s.burn_in, &mut rng, &plain)?;
        let mut max_ratio = 0f32;
        if let Some(net) = &dre {
            let view = teacher_view(
                teacher.as_ref(),
                tdata,
                burn.clone(),
                vec![0; s.burn_in],
                1,
                &plain,
            )?;
            let r = ratios(
                net,
                &view,
                value_condition(&vec![value; s.burn_in], &plain),
                &plain,
            )?;
            max_ratio = quantile(&r, s.dre.max_quantile).unwrap_or(0.0);
        }
        let burn_kept = subsample(
            dre.as_ref(),
            teacher.as_ref(),
            tdata,
            &burn,
            value,
            &mut max_ratio,
            raise,
            &mut rng,
            &plain,
        )?;
        let burn_pred = predict(teacher.as_ref(), tdata, burn, &plain)?;
        let errors: Vec<f32> = burn_kept
            .iter()
            .map(|&i| (burn_pred[i] - value).abs())
            .collect();
        burn_err += errors.iter().map(|&e| f64::from(e)).sum::<f64>();
        burn_total += errors.len();
        if s.filter_quantile < 1.0 {
            report.ce_cutoff = quantile(&errors, s.filter_quantile);
        }
        let mut written = 0;
        while written < s.per_class {
            if report.generated > 100 * s.per_class.max(s.batch_size) {
                return Err(SynthError::Sampling(format!(
                    "value {value}: {} fakes generated, only {written} of {} kept; the filter \
                     rejects nearly everything",
                    report.generated, s.per_class
                )));
            }
            let n = s.batch_size;
            let batch = generate(&generator, at_value(value), n, &mut rng, &plain)?;
            let accepted = subsample(
                dre.as_ref(),
                teacher.as_ref(),
                tdata,
                &batch,
                value,
                &mut max_ratio,
                raise,
                &mut rng,
                &plain,
            )?;
            let pred = predict(teacher.as_ref(), tdata, batch.clone(), &plain)?;
            report.generated += n;
            report.accepted += accepted.len();
            for i in accepted {
                let p = pred[i];
                let err = (p - value).abs();
                if report.ce_cutoff.is_some_and(|c| err > c) {
                    continue;
                }
                report.passed_filter += 1;
                if written == s.per_class {
                    continue;
                }
                let img = &batch[i * px..(i + 1) * px];
                if written < grid_per {
                    let at = (row * grid_per + written) * px;
                    grid[at..at + px].copy_from_slice(img);
                }
                images.extend_from_slice(img);
                let target = if s.relabel { p } else { value };
                shift += f64::from((target - value).abs());
                report.relabelled += usize::from(target != value);
                targets.push(target);
                written += 1;
            }
        }
        report.written = written;
        eprintln!(
            "value {:.3}: generated {}, passed filter {}, written {}, error cut-off {}",
            value,
            report.generated,
            report.passed_filter,
            written,
            report
                .ce_cutoff
                .map_or("none".to_string(), |c| format!("{:.2}", c * scale))
        );
        reports.push(report);
    }

    let n = targets.len();
    let img_path = out_dir.join(SYNTHETIC_IMAGES);
    std::fs::write(&img_path, encode_idx_u8(&[n, SIDE, SIDE], &images))
        .map_err(io_err(&img_path))?;
    let lab_path = out_dir.join(SYNTHETIC_LABELS);
    std::fs::write(&lab_path, encode_idx_u8(&[n], &vec![0u8; n])).map_err(io_err(&lab_path))?;
    let tgt_path = out_dir.join(SYNTHETIC_TARGETS);
    let file = TargetsFile {
        scale,
        values: targets,
    };
    let json = serde_json::to_string(&file).unwrap_or_default();
    std::fs::write(&tgt_path, json).map_err(io_err(&tgt_path))?;
    write_grid(&out_dir.join("kept-grid.png"), &grid, rows, grid_per, SIDE)?;

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
        teacher_burn_in_accuracy: 0.0,
        teacher_burn_in_mae: Some(ratio(burn_err, burn_total as f64) * f64::from(scale)),
        mean_relabel_shift: Some(ratio(shift, n as f64) * f64::from(scale)),
        seconds: started.elapsed().as_secs_f64(),
    };
    let path = out_dir.join("report.json");
    let json = serde_json::to_string_pretty(&report).unwrap_or_default();
    std::fs::write(&path, json).map_err(io_err(&path))?;
    Ok(report)
}
