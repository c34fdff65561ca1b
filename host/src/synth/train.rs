//! `tinykd gan train`: alternating hinge-loss updates of D and G, one checkpoint and one PNG grid
//! per epoch, and exact resume.
//!
//! Each step: one discriminator update on a real batch and as many fakes conditioned on the same
//! labels (BigGAN samples G's labels from the data distribution too), then one generator update
//! on fresh noise and the same labels. Adam with β₁ = 0.5 for both networks (DCGAN's recipe).
//!
//! Everything random in an epoch (the image order and every noise vector) comes from generators
//! seeded with `(seed, epoch)` ([`derive_seed`]) and none from the device's generator, so a run
//! resumed from its epoch-`k` checkpoint continues exactly as the uninterrupted run would (tested
//! in `host/tests/gan_kd.rs`). The checkpoints are the trainer's ([`crate::train::checkpoint`]):
//! the pair, the Adam state, `state.json`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;

use super::gan::{
    d_hinge_loss, g_hinge_loss, Condition, Conditioning, Discriminator, GanPair, Generator, SIDE,
};
use super::grid::{to_pixels, write_grid};
use super::{io_err, GanRunConfig, SynthError};
use crate::config::ConfigError;
use crate::data::{derive_seed, Dataset};
use crate::train::checkpoint::{self, CheckpointState, CHECKPOINT_FORMAT};
use crate::train::metrics::{epoch_bar, MetricsLog};
use crate::train::TrainError;

/// Generator stream of the epoch's image order.
const STREAM_ORDER: u64 = 0x6a01;
/// Generator stream of the epoch's noise.
const STREAM_NOISE: u64 = 0x6a02;
/// Generator stream of the grid's fixed noise (the same every epoch, so grids are comparable).
const STREAM_GRID: u64 = 0x6a03;

/// What a finished (or resumed and finished) GAN run did.
#[derive(Debug, Clone)]
pub struct GanReport {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Epochs completed in total.
    pub epochs_done: usize,
    /// Mean discriminator and generator loss of the last epoch trained in this call (NaN when
    /// none was).
    pub last_losses: (f64, f64),
    /// Wall time of this call, seconds.
    pub seconds: f64,
}

/// `n` standard normal draws (Box–Muller on `rng`): the noise, independent of burn's device
/// generator so that resume is exact on every backend.
pub fn normal_noise(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
        let u2: f64 = rng.gen();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

/// A `[n, z_dim]` noise batch on `device`.
pub fn noise(rng: &mut StdRng, n: usize, z_dim: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(normal_noise(rng, n * z_dim), [n, z_dim]),
        device,
    )
}

/// Labels as an Int tensor on `device`.
pub fn label_tensor(labels: &[u8], device: &Device) -> Tensor<1, Int> {
    let v: Vec<i64> = labels.iter().map(|&l| i64::from(l)).collect();
    Tensor::from_data(TensorData::new(v, [labels.len()]), device)
}

/// Class labels as a GAN condition.
pub fn class_condition(labels: &[u8], device: &Device) -> Condition {
    Condition::Classes(label_tensor(labels, device))
}

/// Values in `[0, 1]` as a GAN condition.
pub fn value_condition(values: &[f32], device: &Device) -> Condition {
    Condition::Values(Tensor::from_data(
        TensorData::new(values.to_vec(), [values.len()]),
        device,
    ))
}

/// What a GAN on `data` is conditioned on: the target value of a regression set, else its
/// classes.
pub fn conditioning_of(dataset: crate::data::DatasetKind) -> Conditioning {
    if dataset.is_regression() {
        Conditioning::Value
    } else {
        Conditioning::Classes(dataset.classes())
    }
}

/// CcGAN's rule-of-thumb vicinity, `1.06 · std(y) · n^(−1/5)` (Silverman's bandwidth).
pub fn rule_of_thumb_sigma(values: &[f32]) -> f64 {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    1.06 * var.sqrt() * n.powf(-0.2)
}

/// The images `indices` of `set` scaled to `[-1, 1]`, `[b, 1, 28, 28]`.
fn real_batch(set: &Dataset, indices: &[usize], device: &Device) -> Tensor<4> {
    let mut v = Vec::with_capacity(indices.len() * SIDE * SIDE);
    for &i in indices {
        let img = set.image(i).unwrap_or(&[]);
        v.extend(img.iter().map(|&p| f32::from(p) / 127.5 - 1.0));
    }
    Tensor::from_data(TensorData::new(v, [indices.len(), 1, SIDE, SIDE]), device)
}

/// The plain device `config.device` names.
///
/// # Errors
/// [`ConfigError::Invalid`] naming `device` when the build lacks the backend.
pub fn device_of(config: &GanRunConfig) -> Result<Device, SynthError> {
    crate::backend::device(config.device).map_err(|reason| {
        SynthError::Config(ConfigError::Invalid {
            key: "device".into(),
            reason,
        })
    })
}

/// A fresh pair for `config` on `device` (weights drawn after seeding the device with the run's
/// seed).
pub fn init_pair(config: &GanRunConfig, device: &Device) -> GanPair {
    device.seed(config.seed);
    let g = &config.gan;
    let conditioning = conditioning_of(config.data.dataset);
    GanPair {
        generator: Generator::new(g.z_dim, g.width, conditioning, device),
        discriminator: Discriminator::new(g.width, conditioning, device),
    }
}

fn adam(config: &GanRunConfig) -> ModuleOptimizer {
    AdamConfig::new()
        .with_beta_1(config.gan.beta1 as f32)
        .with_beta_2(config.gan.beta2 as f32)
        .with_epsilon(1e-8)
        .init()
}

/// The trained generator of the GAN run in `run_dir` (its newest checkpoint), in eval mode on
/// `device`, with the run's configuration.
///
/// # Errors
/// [`SynthError::Config`] for a bad `config.toml`, [`SynthError::Train`] when there is no
/// checkpoint or it does not load.
pub fn load_generator(
    run_dir: &Path,
    overrides: &[String],
    device: &Device,
) -> Result<(Generator, GanRunConfig), SynthError> {
    let config = GanRunConfig::from_run_dir(run_dir, overrides)?;
    let pair = init_pair(&config, device);
    let (pair, _, _) = checkpoint::load_latest(run_dir, pair, adam(&config))?;
    Ok((pair.generator.valid(), config))
}

/// Trains the GAN `config` describes in `run_dir` (fresh, or with `resume` from its newest
/// checkpoint, which must exist), writing `config.toml`, `metrics.jsonl`, `samples-epoch-NNNN.png`
/// and `checkpoints/` there.
///
/// # Errors
/// [`SynthError`]: bad configuration, unreadable data, a run already in `run_dir` when starting
/// fresh, no checkpoint when resuming, a non-finite loss, an unwritable file.
pub fn train_gan(
    config: &GanRunConfig,
    run_dir: &Path,
    resume: bool,
) -> Result<GanReport, SynthError> {
    let started = Instant::now();
    config.validate()?;
    let (train, _) = crate::train::run::load_datasets(&config.data)?;
    if train.shape() != [1, SIDE, SIDE] {
        return Err(SynthError::Sampling(format!(
            "the GAN makes 1×{SIDE}×{SIDE} images, the data has {:?}",
            train.shape()
        )));
    }
    let g = &config.gan;
    let steps_per_epoch = train.len() / g.batch_size;
    if steps_per_epoch == 0 {
        return Err(SynthError::Config(ConfigError::Invalid {
            key: "gan.batch_size".into(),
            reason: format!(
                "{} training images make no batch of {}",
                train.len(),
                g.batch_size
            ),
        }));
    }
    std::fs::create_dir_all(run_dir).map_err(io_err(run_dir))?;
    let plain = device_of(config)?;
    let device = plain.clone().autodiff();
    // Regression: the real batch's values, and σ of the fakes' vicinity.
    let targets = train.targets().map(|t| t.values.clone());
    let sigma = match (&targets, g.label_noise) {
        (Some(_), Some(s)) => s,
        (Some(t), None) => rule_of_thumb_sigma(t),
        (None, _) => 0.0,
    };

    let mut pair = init_pair(config, &device);
    let mut optim = adam(config);
    let (mut start_epoch, mut global_step) = (0, 0);
    if resume {
        let (p, o, state) = checkpoint::load_latest(run_dir, pair, optim)?;
        if state.seed != config.seed {
            return Err(SynthError::Train(TrainError::Setting {
                key: "seed".into(),
                reason: format!(
                    "the checkpoint was written with seed {}, not {}",
                    state.seed, config.seed
                ),
            }));
        }
        (pair, optim) = (p, o);
        (start_epoch, global_step) = (state.epochs_done, state.global_step);
    } else {
        if !checkpoint::list(run_dir)?.is_empty() {
            return Err(SynthError::Train(TrainError::RunExists {
                dir: run_dir.to_path_buf(),
            }));
        }
        let path = run_dir.join("config.toml");
        std::fs::write(&path, config.to_toml()).map_err(io_err(&path))?;
    }
    let mut metrics = MetricsLog::open(run_dir)?;
    if resume {
        metrics.write(&json!({"kind": "resume", "from_epoch": start_epoch}))?;
    }

    let mut last_losses = (f64::NAN, f64::NAN);
    for epoch in start_epoch..g.epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut rng = StdRng::seed_from_u64(derive_seed(config.seed, epoch as u64, STREAM_ORDER));
        for i in (1..order.len()).rev() {
            order.swap(i, rng.gen_range(0..=i));
        }
        let mut noise_rng =
            StdRng::seed_from_u64(derive_seed(config.seed, epoch as u64, STREAM_NOISE));
        let bar = epoch_bar(g.progress.visible(), epoch, g.epochs, steps_per_epoch);
        let epoch_started = Instant::now();
        let (mut d_sum, mut g_sum) = (0f64, 0f64);
        for indices in order.chunks_exact(g.batch_size) {
            let b = indices.len();
            let (y_real, y) = match &targets {
                Some(t) => {
                    let real: Vec<f32> = indices.iter().map(|&i| t[i]).collect();
                    let jitter = normal_noise(&mut noise_rng, b);
                    let fake: Vec<f32> = real
                        .iter()
                        .zip(&jitter)
                        .map(|(&v, &e)| (v + sigma as f32 * e).clamp(0.0, 1.0))
                        .collect();
                    (
                        value_condition(&real, &device),
                        value_condition(&fake, &device),
                    )
                }
                None => {
                    let labels: Vec<u8> = indices.iter().map(|&i| train.label(i)).collect();
                    let y = class_condition(&labels, &device);
                    (y.clone(), y)
                }
            };
            let real = real_batch(&train, indices, &device);

            let fake = pair
                .generator
                .forward(noise(&mut noise_rng, b, g.z_dim, &device), y.clone())
                .detach();
            let d_loss = d_hinge_loss(
                pair.discriminator.forward(real, y_real),
                pair.discriminator.forward(fake, y.clone()),
            );
            let d_value: f32 = d_loss.clone().into_scalar();
            check_finite("gan (discriminator)", global_step, d_value)?;
            let mut grads = d_loss.backward();
            let grads = GradientsParams::from_module(&mut grads, &pair.discriminator);
            pair = optim.step(g.lr_d, pair, grads);

            let fake = pair
                .generator
                .forward(noise(&mut noise_rng, b, g.z_dim, &device), y.clone());
            let g_loss = g_hinge_loss(pair.discriminator.forward(fake, y));
            let g_value: f32 = g_loss.clone().into_scalar();
            check_finite("gan (generator)", global_step, g_value)?;
            let mut grads = g_loss.backward();
            let grads = GradientsParams::from_module(&mut grads, &pair.generator);
            pair = optim.step(g.lr_g, pair, grads);

            global_step += 1;
            d_sum += f64::from(d_value);
            g_sum += f64::from(g_value);
            bar.inc(1);
            bar.set_message(format!("D {d_value:.3} G {g_value:.3}"));
        }
        bar.finish_and_clear();
        let n = steps_per_epoch as f64;
        last_losses = (d_sum / n, g_sum / n);
        let grid_path = run_dir.join(format!("samples-epoch-{:04}.png", epoch + 1));
        write_class_grid(&pair.generator.valid(), config, &plain, &grid_path)?;
        metrics.write(&json!({
            "kind": "epoch",
            "epoch": epoch + 1,
            "step": global_step,
            "d_loss": last_losses.0,
            "g_loss": last_losses.1,
            "seconds": epoch_started.elapsed().as_secs_f64(),
            "grid": grid_path.file_name().map(|f| f.to_string_lossy().into_owned()),
        }))?;
        checkpoint::save(
            run_dir,
            &pair,
            &optim,
            &CheckpointState {
                format: CHECKPOINT_FORMAT,
                epochs_done: epoch + 1,
                global_step,
                seed: config.seed,
                test_accuracy: None,
                hook: serde_json::Value::Null,
            },
            g.keep_checkpoints,
        )?;
        eprintln!(
            "gan epoch {}/{}: D {:.4} G {:.4}, {:.0} s, {}",
            epoch + 1,
            g.epochs,
            last_losses.0,
            last_losses.1,
            epoch_started.elapsed().as_secs_f64(),
            grid_path.display()
        );
    }
    Ok(GanReport {
        run_dir: run_dir.to_path_buf(),
        epochs_done: g.epochs.max(start_epoch),
        last_losses,
        seconds: started.elapsed().as_secs_f64(),
    })
}

fn check_finite(stage: &'static str, step: usize, value: f32) -> Result<(), SynthError> {
    if value.is_finite() {
        Ok(())
    } else {
        Err(SynthError::NonFinite { stage, step, value })
    }
}

/// Rows of a regression GAN's grid: conditions evenly spaced over `[0, 1]`.
pub const GRID_VALUES: usize = 10;

/// Writes the grid of `gan.grid_per_class` samples per class (rows = classes; for a regression
/// GAN, [`GRID_VALUES`] rows of values evenly spaced over `[0, 1]`, low to high) of `generator`
/// (in eval mode) to `path`, from the fixed grid noise.
///
/// # Errors
/// [`SynthError::Io`] naming the file.
pub fn write_class_grid(
    generator: &Generator,
    config: &GanRunConfig,
    device: &Device,
    path: &Path,
) -> Result<(), SynthError> {
    let per = config.gan.grid_per_class.max(1);
    let mut rng = StdRng::seed_from_u64(derive_seed(config.seed, 0, STREAM_GRID));
    let (rows, condition) = match conditioning_of(config.data.dataset) {
        Conditioning::Classes(classes) => {
            let labels: Vec<u8> = (0..classes as u8)
                .flat_map(|c| std::iter::repeat_n(c, per))
                .collect();
            (classes, class_condition(&labels, device))
        }
        Conditioning::Value => {
            let values: Vec<f32> = (0..GRID_VALUES)
                .flat_map(|r| std::iter::repeat_n(r as f32 / (GRID_VALUES - 1) as f32, per))
                .collect();
            (GRID_VALUES, value_condition(&values, device))
        }
    };
    let z = noise(&mut rng, rows * per, generator.z_dim(), device);
    let images = generator.forward(z, condition);
    let values: Vec<f32> = images
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| SynthError::Sampling(format!("{e:?}")))?;
    write_grid(path, &to_pixels(&values), rows, per, SIDE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_standard_normal_and_seeded() {
        let mut a = StdRng::seed_from_u64(7);
        let v = normal_noise(&mut a, 20_001);
        assert_eq!(v.len(), 20_001);
        let mean = v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64;
        let var = v
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / v.len() as f64;
        assert!(
            mean.abs() < 0.03 && (var - 1.0).abs() < 0.05,
            "{mean} {var}"
        );
        let mut b = StdRng::seed_from_u64(7);
        assert_eq!(normal_noise(&mut b, 5), v[..5]);
    }
}
