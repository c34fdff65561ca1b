//! cGAN-KD (Ding et al., "Distilling and transferring knowledge via cGAN-generated samples for
//! image classification and regression", ESWA 2023; code: UBCDingXin/cGAN-KD): knowledge carried
//! by *synthetic training data* rather than by a loss between networks.
//!
//! 1. [`gan`] + [`train`]: a class-conditional GAN trained on the training split
//!    (`tinykd gan train`), with per-epoch checkpoints, exact resume and a PNG grid of samples per
//!    class ([`grid`]) in the run directory each epoch;
//! 2. [`density_ratio`]: cDR-RS subsampling — a conditional density-ratio MLP in the feature
//!    space of a pretrained network, trained with the paper's penalised Softplus loss, then
//!    rejection sampling with acceptance `r / max r`. The paper's feature network is a separately
//!    trained ResNet-34; here it is the trained **teacher's** penultimate embedding (one network
//!    fewer to train);
//! 3. [`filter`]: the teacher drops samples whose cross-entropy w.r.t. the conditioning label is
//!    above the q-quantile of a burn-in set (q = 0.9 as the paper) and relabels the rest by its
//!    prediction;
//! 4. [`sample`]: the pipeline (`tinykd gan sample`), writing the kept samples as an IDX pair
//!    ([`SYNTHETIC_IMAGES`], [`SYNTHETIC_LABELS`]) plus `report.json` with the acceptance and
//!    filtering rates;
//! 5. a student then trains on real + synthetic data with `data.synthetic = "DIR"` in any run
//!    config (plain, KD, CRD, any zoo method: the data is the only change).
//!
//! Regression (`data.dataset = "fashion-mnist-rotation"`): the pair is conditioned on the
//! target value ([`gan::Conditioning::Value`], a CcGAN-style vicinity in [`train`]); sampling
//! ([`regression`]) generates at evenly spaced values, the regression teacher drops fakes whose
//! prediction is farther from the condition than the q-quantile of a burn-in set and relabels
//! the rest with its prediction; the values are written as [`SYNTHETIC_TARGETS`]. cDR-RS works
//! for both: its ratio net embeds the class, or the value through a small MLP (the paper feeds
//! CcGAN's label embedding).

pub mod density_ratio;
pub mod filter;
pub mod gan;
pub mod grid;
pub mod regression;
pub mod sample;
pub mod train;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::backend::DeviceKind;
use crate::config::{ConfigError, DataConfig};
use crate::data::{DataError, Dataset};
use crate::train::ProgressMode;

/// File name of the synthetic images (IDX, `u8`, `[n, 28, 28]`) in a sample directory.
pub const SYNTHETIC_IMAGES: &str = "fake-images-idx3-ubyte";
/// File name of the synthetic labels (IDX, `u8`, `[n]`) in a sample directory.
pub const SYNTHETIC_LABELS: &str = "fake-labels-idx1-ubyte";

/// File name of a regression set's synthetic targets (JSON: `{"scale": s, "values": [...]}`,
/// one normalized value per image) in a sample directory.
pub const SYNTHETIC_TARGETS: &str = "fake-targets.json";

/// The targets file of a regression sample directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsFile {
    /// The task's measure per normalized unit ([`crate::data::Targets::scale`]).
    pub scale: f32,
    /// One normalized target per image.
    pub values: Vec<f32>,
}

/// Loads the synthetic set `tinykd gan sample` wrote into `dir`, for `classes` classes; with
/// `regression`, with its targets ([`SYNTHETIC_TARGETS`]).
///
/// # Errors
/// [`DataError::MissingFile`] when a file is absent, any IDX error naming the file,
/// [`DataError::IdxHeader`] for an unreadable targets file, the errors of
/// [`Dataset::with_targets`].
pub fn load_synthetic(dir: &Path, classes: usize, regression: bool) -> Result<Dataset, DataError> {
    let images = dir.join(SYNTHETIC_IMAGES);
    let labels = dir.join(SYNTHETIC_LABELS);
    let targets = dir.join(SYNTHETIC_TARGETS);
    if !images.is_file() || !labels.is_file() || (regression && !targets.is_file()) {
        return Err(DataError::MissingFile {
            dir: dir.to_path_buf(),
            tried: format!(
                "{SYNTHETIC_IMAGES}, {SYNTHETIC_LABELS}{} (data.synthetic)",
                if regression {
                    format!(", {SYNTHETIC_TARGETS}")
                } else {
                    String::new()
                }
            ),
        });
    }
    let set = Dataset::from_idx_files(&images, &labels, classes)?;
    if !regression {
        return Ok(set);
    }
    let text = std::fs::read_to_string(&targets).map_err(|source| DataError::Io {
        path: targets.clone(),
        source,
    })?;
    let file: TargetsFile = serde_json::from_str(&text).map_err(|e| DataError::IdxHeader {
        path: targets.clone(),
        reason: e.to_string(),
    })?;
    set.with_targets(file.values, file.scale, &targets)
}

/// A GAN run and its sampling, as saved in `<gan run>/config.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GanRunConfig {
    /// Seed of the weights, the noise and the shuffling (default 0).
    pub seed: u64,
    /// Where to train (default `cpu`).
    pub device: DeviceKind,
    /// The training data (only `dataset`, `dir`, `train_limit` and `validation` matter; an image
    /// set of 28×28 images).
    pub data: DataConfig,
    /// The GAN and its training.
    pub gan: GanConfig,
    /// Generation, subsampling and filtering (`tinykd gan sample`).
    pub sample: SampleConfig,
}

impl Default for GanRunConfig {
    fn default() -> Self {
        Self {
            seed: 0,
            device: DeviceKind::Cpu,
            data: DataConfig::default(),
            gan: GanConfig::default(),
            sample: SampleConfig::default(),
        }
    }
}

/// `[gan]`: the networks and their training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GanConfig {
    /// Latent size (default 64).
    pub z_dim: usize,
    /// Base width of both networks (default 32: G has 64 then 32 channels, D 32 then 64).
    pub width: usize,
    /// Epochs over the training set (default 5).
    pub epochs: usize,
    /// Batch size (default 64).
    pub batch_size: usize,
    /// Generator learning rate (default 2e-4, DCGAN's).
    pub lr_g: f64,
    /// Discriminator learning rate (default 2e-4).
    pub lr_d: f64,
    /// Adam β₁ (default 0.5, DCGAN's).
    pub beta1: f64,
    /// Adam β₂ (default 0.999).
    pub beta2: f64,
    /// Samples per class in the per-epoch PNG grid (default 8).
    pub grid_per_class: usize,
    /// Regression: standard deviation of the noise added to the fakes' condition values (the
    /// vicinity, in normalized units; default: CcGAN's rule of thumb from the training targets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_noise: Option<f64>,
    /// Checkpoints to keep (default 2).
    pub keep_checkpoints: usize,
    /// Progress bars (default `auto`).
    pub progress: ProgressMode,
}

impl Default for GanConfig {
    fn default() -> Self {
        Self {
            z_dim: 64,
            width: 32,
            epochs: 5,
            batch_size: 64,
            lr_g: 2e-4,
            lr_d: 2e-4,
            beta1: 0.5,
            beta2: 0.999,
            grid_per_class: 8,
            label_noise: None,
            keep_checkpoints: 2,
            progress: ProgressMode::Auto,
        }
    }
}

/// `[sample]`: how many samples, and how they are subsampled and filtered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SampleConfig {
    /// Samples kept per conditioning class (default 1000; the paper: 5000 of 100 classes).
    pub per_class: usize,
    /// Generation batch size (default 500).
    pub batch_size: usize,
    /// cDR-RS subsampling (default true).
    pub subsample: bool,
    /// Teacher filtering: drop samples whose CE exceeds this quantile of a burn-in set's
    /// (default 0.9, the paper's `FILTER_THRESH`); 1.0 disables filtering.
    pub filter_quantile: f64,
    /// Burn-in samples per class for the rejection sampler's `max r` and for the filter's cut-off
    /// (default 1000).
    pub burn_in: usize,
    /// Replace each label by the teacher's prediction (default true).
    pub relabel: bool,
    /// Regression: distinct conditioning values, evenly spaced over `[0, 1]` (default 20); each
    /// gets `per_class` samples.
    pub values: usize,
    /// The density-ratio network and its training.
    pub dre: DreConfig,
}

impl Default for SampleConfig {
    fn default() -> Self {
        Self {
            per_class: 1000,
            batch_size: 500,
            subsample: true,
            filter_quantile: 0.9,
            burn_in: 1000,
            relabel: true,
            values: 20,
            dre: DreConfig::default(),
        }
    }
}

/// `[sample.dre]`: the conditional density-ratio MLP (the paper: MLP-5, 200 epochs, Adam 1e-4,
/// β 0.5/0.999, weight decay 1e-4, λ 0.01).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DreConfig {
    /// Hidden layer widths, each Linear + GroupNorm(8) + ReLU + Dropout(0.5) (default
    /// `[256, 128]`; each must be a multiple of 8).
    pub hidden: Vec<usize>,
    /// Epochs over the real training set (default 5).
    pub epochs: usize,
    /// Batch size (default 128).
    pub batch_size: usize,
    /// Adam learning rate (default 1e-4).
    pub lr: f64,
    /// L2 weight decay (default 1e-4).
    pub weight_decay: f64,
    /// Penalty weight λ of `λ·(mean r(fake) − 1)²` (default 0.01).
    pub lambda: f64,
    /// The rejection sampler's `M`: 1.0 (default) is the paper's, the maximum ratio of the
    /// burn-in set raised by every batch; a quantile below 1 fixes `M` at that quantile of the
    /// burn-in ratios (acceptance `min(1, r / M)`), a tempered sampler for peaked ratios.
    pub max_quantile: f64,
}

impl Default for DreConfig {
    fn default() -> Self {
        Self {
            hidden: vec![256, 128],
            epochs: 5,
            batch_size: 128,
            lr: 1e-4,
            weight_decay: 1e-4,
            lambda: 0.01,
            max_quantile: 1.0,
        }
    }
}

fn invalid(key: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.to_string(),
        reason: reason.into(),
    }
}

impl GanRunConfig {
    /// Builds the configuration from the defaults, a TOML file's text (with its origin) and
    /// `--set` overrides, then validates it.
    ///
    /// # Errors
    /// [`ConfigError`] naming the file, argument or key.
    pub fn load(text: Option<(&str, &str)>, overrides: &[String]) -> Result<Self, ConfigError> {
        Self::load_over(&Self::default(), text, overrides)
    }

    /// As [`GanRunConfig::load`] over `base` (a GAN run's saved configuration).
    ///
    /// # Errors
    /// As [`GanRunConfig::load`].
    pub fn load_over(
        base: &Self,
        text: Option<(&str, &str)>,
        overrides: &[String],
    ) -> Result<Self, ConfigError> {
        let config: Self = crate::config::load_layered(base, text, overrides)?;
        config.validate()?;
        Ok(config)
    }

    /// The configuration saved in a GAN run directory.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when `config.toml` is missing, else as [`GanRunConfig::load`].
    pub fn from_run_dir(run_dir: &Path, overrides: &[String]) -> Result<Self, ConfigError> {
        let path = run_dir.join("config.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
            path: path.clone(),
            source,
        })?;
        let origin = path.display().to_string();
        Self::load_over(&Self::default(), Some((&text, &origin)), overrides)
    }

    /// Checks ranges.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first offending key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !self.data.dataset.is_image() {
            return Err(invalid(
                "data.dataset",
                "the cGAN generates 28×28 images: choose fashion-mnist or mnist",
            ));
        }
        if self.data.synthetic.is_some() {
            return Err(invalid(
                "data.synthetic",
                "a GAN trains on real data only: remove it",
            ));
        }
        let g = &self.gan;
        for (key, v) in [
            ("gan.z_dim", g.z_dim),
            ("gan.width", g.width),
            ("gan.epochs", g.epochs),
            ("gan.batch_size", g.batch_size),
            ("gan.keep_checkpoints", g.keep_checkpoints),
            ("sample.per_class", self.sample.per_class),
            ("sample.batch_size", self.sample.batch_size),
            ("sample.burn_in", self.sample.burn_in),
            ("sample.dre.epochs", self.sample.dre.epochs),
            ("sample.dre.batch_size", self.sample.dre.batch_size),
        ] {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
        }
        for (key, v) in [
            ("gan.lr_g", g.lr_g),
            ("gan.lr_d", g.lr_d),
            ("sample.dre.lr", self.sample.dre.lr),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return Err(invalid(key, format!("must be a positive number, got {v}")));
            }
        }
        for (key, b) in [("gan.beta1", g.beta1), ("gan.beta2", g.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(invalid(key, format!("must be in [0, 1), got {b}")));
            }
        }
        let mq = self.sample.dre.max_quantile;
        if !(mq > 0.0 && mq <= 1.0) {
            return Err(invalid(
                "sample.dre.max_quantile",
                format!("must be in (0, 1] (1 = the maximum, as the paper), got {mq}"),
            ));
        }
        let q = self.sample.filter_quantile;
        if !(q > 0.0 && q <= 1.0) {
            return Err(invalid(
                "sample.filter_quantile",
                format!("must be in (0, 1] (1 keeps every sample), got {q}"),
            ));
        }
        let d = &self.sample.dre;
        if d.hidden.is_empty() || d.hidden.iter().any(|&h| h == 0 || h % 8 != 0) {
            return Err(invalid(
                "sample.dre.hidden",
                format!(
                    "must list at least one width, each a positive multiple of 8 (GroupNorm \
                     with 8 groups), got {:?}",
                    d.hidden
                ),
            ));
        }
        for (key, v) in [
            ("sample.dre.lambda", d.lambda),
            ("sample.dre.weight_decay", d.weight_decay),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(invalid(key, format!("must be >= 0, got {v}")));
            }
        }
        if self.sample.values < 2 {
            return Err(invalid(
                "sample.values",
                format!(
                    "must be at least 2 (conditions evenly spaced from 0 to 1), got {}",
                    self.sample.values
                ),
            ));
        }
        if let Some(s) = g.label_noise {
            if !(s.is_finite() && s >= 0.0) {
                return Err(invalid("gan.label_noise", format!("must be >= 0, got {s}")));
            }
            if !self.data.dataset.is_regression() {
                return Err(invalid(
                    "gan.label_noise",
                    "is the vicinity of a regression GAN; this dataset has classes",
                ));
            }
        }
        Ok(())
    }

    /// The configuration as TOML (what `config.toml` holds).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// What can go wrong in the cGAN-KD stages.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SynthError {
    /// A configuration problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A dataset problem.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A checkpoint or training problem.
    #[error(transparent)]
    Train(#[from] crate::train::TrainError),
    /// The teacher run could not be loaded.
    #[error(transparent)]
    Run(#[from] crate::train::RunError),
    /// A file could not be written or read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A loss became NaN or infinite.
    #[error("{stage}: the loss became {value} at step {step}; lower the learning rate")]
    NonFinite {
        /// Which training (`gan`, `dre`).
        stage: &'static str,
        /// The step.
        step: usize,
        /// The value.
        value: f32,
    },
    /// The sampler could not make the requested samples.
    #[error("{0}")]
    Sampling(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SynthError + '_ {
    move |source| SynthError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_configs_name_the_key() {
        let cases = [
            ("gan.epochs=0", "gan.epochs"),
            ("gan.beta1=1.0", "gan.beta1"),
            ("gan.lr_d=-1", "gan.lr_d"),
            ("sample.filter_quantile=0", "sample.filter_quantile"),
            ("sample.dre.hidden=[12]", "sample.dre.hidden"),
            ("sample.dre.lambda=-0.1", "sample.dre.lambda"),
            ("sample.dre.max_quantile=1.5", "sample.dre.max_quantile"),
            ("data.dataset=hapt", "data.dataset"),
            ("data.synthetic=x", "data.synthetic"),
            ("gan.widht=3", "gan.widht"),
        ];
        for (arg, key) in cases {
            let err = GanRunConfig::load(None, &[arg.to_string()]).unwrap_err();
            assert!(err.to_string().contains(key), "{arg}: {err}");
        }
        let ok = GanRunConfig::load(Some(("[gan]\nepochs = 2\n", "t")), &[]).unwrap();
        assert_eq!(ok.gan.epochs, 2);
        let back = GanRunConfig::load(Some((&ok.to_toml(), "saved")), &[]).unwrap();
        assert_eq!(back, ok);
    }
}
