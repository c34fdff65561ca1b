//! In-memory image classification datasets (MNIST-style: 28×28 grayscale, 10 classes).
//!
//! The whole split is kept as raw `u8` pixels (47 MB for the Fashion-MNIST train split); batches
//! are normalized and augmented on the fly by [`super::loader`], so one copy serves every epoch and
//! every augmentation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::idx::read_idx_u8;
use super::DataError;

/// Which dataset a run reads.
///
/// The image sets (MNIST-style IDX files) differ in the normalization constants and in whether a
/// horizontal flip is a label-preserving augmentation. The sensor sets are multichannel time
/// series cut into windows `[channels, 1, window]` ([`super::sensors`]); their files come from
/// `tools/setup-sensor-data.sh` (docs/sensor-data.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Zalando's Fashion-MNIST (clothing; flips preserve the label).
    FashionMnist,
    /// A regression task on Fashion-MNIST: every image rotated by its own angle, drawn
    /// uniformly from [−45°, 45°] by its split and index ([`super::rotation`]); the target is
    /// the angle (one output, MAE in degrees). The files are Fashion-MNIST's.
    FashionMnistRotation,
    /// LeCun's MNIST digits (flips do not preserve the label).
    Mnist,
    /// UCI HAPT smartphone recordings: 3-axis accelerometer (g) and gyroscope (rad/s) at 50 Hz,
    /// 30 subjects, the 6 basic activities.
    Hapt,
    /// UEA BasicMotions: a wrist-worn accelerometer and gyroscope (6 channels, 100 steps), 4
    /// activities.
    BasicMotions,
    /// UEA JapaneseVowels: 12 LPC cepstrum coefficients of uttered vowels (7 to 29 steps), 9
    /// speakers.
    JapaneseVowels,
}

impl DatasetKind {
    /// Where the files are by default: Debian's `dataset-fashion-mnist` package for
    /// Fashion-MNIST, `data/sensors/…` (relative to the working directory, where
    /// `tools/setup-sensor-data.sh` writes) for the sensor sets; MNIST has no default.
    pub fn default_dir(self) -> Option<PathBuf> {
        match self {
            Self::FashionMnist | Self::FashionMnistRotation => {
                Some(PathBuf::from("/usr/share/datasets/fashion-mnist"))
            }
            Self::Mnist => None,
            Self::Hapt => Some(PathBuf::from("data/sensors/hapt")),
            Self::BasicMotions | Self::JapaneseVowels => Some(PathBuf::from("data/sensors/ts")),
        }
    }

    /// Number of classes: the size of a model's output. A regression set has one class (every
    /// label is 0) and one output, the predicted target.
    pub fn classes(self) -> usize {
        match self {
            Self::FashionMnist | Self::Mnist => 10,
            Self::FashionMnistRotation => 1,
            Self::Hapt => 6,
            Self::BasicMotions => 4,
            Self::JapaneseVowels => 9,
        }
    }

    /// Whether samples are images (as opposed to windows of a time series).
    pub fn is_image(self) -> bool {
        matches!(
            self,
            Self::FashionMnist | Self::Mnist | Self::FashionMnistRotation
        )
    }

    /// The task's measure per normalized target unit (90 degrees for the rotation task), `None`
    /// for a classification set.
    pub fn target_scale(self) -> Option<f32> {
        match self {
            Self::FashionMnistRotation => Some(2.0 * super::rotation::MAX_ANGLE),
            _ => None,
        }
    }

    /// Whether the task is regression: samples carry a continuous target in `[0, 1]`
    /// ([`Dataset::targets`]) and a model has one output.
    pub fn is_regression(self) -> bool {
        matches!(self, Self::FashionMnistRotation)
    }

    /// Channels of a sample: 1 for the grayscale images, the sensor channels otherwise.
    pub fn channels(self) -> usize {
        match self {
            Self::FashionMnist | Self::Mnist | Self::FashionMnistRotation => 1,
            Self::Hapt | Self::BasicMotions => 6,
            Self::JapaneseVowels => 12,
        }
    }

    /// The names of the channels, in order (what `model.channels` may name). HAPT and
    /// BasicMotions: `acc_x, acc_y, acc_z, gyro_x, gyro_y, gyro_z`; JapaneseVowels: `lpc_0` …
    /// `lpc_11`; images: `pixel`.
    pub fn channel_names(self) -> Vec<String> {
        const IMU: [&str; 6] = ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"];
        match self {
            Self::FashionMnist | Self::Mnist | Self::FashionMnistRotation => {
                vec!["pixel".into()]
            }
            Self::Hapt | Self::BasicMotions => IMU.map(String::from).to_vec(),
            Self::JapaneseVowels => (0..12).map(|i| format!("lpc_{i}")).collect(),
        }
    }

    /// The window length a sensor set is cut into when `data.window` is not given: 128 steps
    /// (2.56 s) for HAPT, as in the UCI HAR windows; the length of the longest case for the
    /// UEA sets (shorter cases are zero-padded after normalization). `None` for images.
    pub fn default_window(self) -> Option<usize> {
        match self {
            Self::FashionMnist | Self::Mnist | Self::FashionMnistRotation => None,
            Self::Hapt => Some(128),
            Self::BasicMotions => Some(100),
            Self::JapaneseVowels => Some(29),
        }
    }

    /// Whether mirroring an image left-right keeps its label (true for clothing, false for
    /// digits: a mirrored 2 is not a 2; never for a time series; never for the rotation task,
    /// where a mirror negates the angle).
    pub fn hflip_preserves_label(self) -> bool {
        matches!(self, Self::FashionMnist)
    }

    /// The per-pixel mean and standard deviation of the training split, on pixels scaled to
    /// `[0, 1]`. Fashion-MNIST: 0.2860 / 0.3530 (computed over the 60k training images, see
    /// [`Dataset::pixel_mean_std`]); MNIST: 0.1307 / 0.3081 (the values PyTorch's examples use).
    /// Sensor sets are normalized per channel when loaded: (0, 1).
    pub fn mean_std(self) -> (f32, f32) {
        match self {
            Self::FashionMnist | Self::FashionMnistRotation => (0.2860, 0.3530),
            Self::Mnist => (0.1307, 0.3081),
            _ => (0.0, 1.0),
        }
    }
}

/// Which half of a dataset to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// The training split (`train-*`, 60,000 images).
    Train,
    /// The test split (`t10k-*`, 10,000 images).
    Test,
}

impl Split {
    fn prefix(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Test => "t10k",
        }
    }
}

/// A labelled set of samples of one shape `[channels, rows, cols]`: grayscale images held as raw
/// bytes (normalized per batch by the loader), or windows of a multichannel time series held as
/// normalized floats, `[channels, 1, length]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    samples: Samples,
    labels: Vec<u8>,
    targets: Option<Targets>,
    channels: usize,
    rows: usize,
    cols: usize,
    classes: usize,
    channel_names: Vec<String>,
}

/// The continuous targets of a regression set: one value per sample, normalized to `[0, 1]`
/// (what a model is trained to output), and the size of one unit in the task's own measure
/// (90 for an angle in [−45°, 45°]), so errors are reported in degrees rather than fractions.
#[derive(Debug, Clone, PartialEq)]
pub struct Targets {
    /// One normalized target per sample.
    pub values: Vec<f32>,
    /// The task's measure per normalized unit (errors are multiplied by it when reported).
    pub scale: f32,
}

/// How a [`Dataset`] holds its samples.
#[derive(Debug, Clone, PartialEq)]
pub enum Samples {
    /// Raw 8-bit pixels, one channel, row-major per image.
    Pixels(Vec<u8>),
    /// Normalized values, channel-major per sample: `[(i·C + c)·rows·cols + y·cols + x]`.
    Values(Vec<f32>),
}

impl Samples {
    fn len(&self) -> usize {
        match self {
            Self::Pixels(p) => p.len(),
            Self::Values(v) => v.len(),
        }
    }

    fn truncate(&mut self, n: usize) {
        match self {
            Self::Pixels(p) => p.truncate(n),
            Self::Values(v) => v.truncate(n),
        }
    }

    fn split_off(&mut self, at: usize) -> Self {
        match self {
            Self::Pixels(p) => Self::Pixels(p.split_off(at)),
            Self::Values(v) => Self::Values(v.split_off(at)),
        }
    }
}

impl Dataset {
    /// Builds a dataset from raw pixels (`n·rows·cols` bytes, row-major) and labels.
    ///
    /// # Errors
    /// [`DataError::CountMismatch`] when the pixel and label counts disagree and
    /// [`DataError::LabelOutOfRange`] for a label `>= classes`; `origin` names the source in them.
    pub fn from_raw(
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
        classes: usize,
        origin: &Path,
    ) -> Result<Self, DataError> {
        let per_image = rows * cols;
        if per_image == 0 || images.len() != labels.len() * per_image {
            return Err(DataError::CountMismatch {
                images: origin.to_path_buf(),
                labels: origin.to_path_buf(),
                n_images: images.len().checked_div(per_image).unwrap_or(0),
                n_labels: labels.len(),
            });
        }
        check_labels(&labels, classes, origin)?;
        Ok(Self::grayscale(images, labels, rows, cols, classes))
    }

    fn grayscale(
        images: Vec<u8>,
        labels: Vec<u8>,
        rows: usize,
        cols: usize,
        classes: usize,
    ) -> Self {
        Self {
            samples: Samples::Pixels(images),
            labels,
            targets: None,
            channels: 1,
            rows,
            cols,
            classes,
            channel_names: vec!["pixel".to_string()],
        }
    }

    /// Builds a dataset of normalized float samples of shape `[channels, rows, cols]`
    /// (`values` channel-major per sample, see [`Samples::Values`]); `channel_names` names each
    /// channel.
    ///
    /// # Errors
    /// [`DataError::CountMismatch`] when the value, label and channel-name counts disagree,
    /// [`DataError::LabelOutOfRange`] for a label `>= classes`, [`DataError::NotFinite`] for a
    /// NaN or infinite value; `origin` names the source in them.
    pub fn from_values(
        values: Vec<f32>,
        labels: Vec<u8>,
        [channels, rows, cols]: [usize; 3],
        classes: usize,
        channel_names: Vec<String>,
        origin: &Path,
    ) -> Result<Self, DataError> {
        let per_sample = channels * rows * cols;
        if per_sample == 0
            || values.len() != labels.len() * per_sample
            || channel_names.len() != channels
        {
            return Err(DataError::CountMismatch {
                images: origin.to_path_buf(),
                labels: origin.to_path_buf(),
                n_images: values.len().checked_div(per_sample).unwrap_or(0),
                n_labels: labels.len(),
            });
        }
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(DataError::NotFinite {
                path: origin.to_path_buf(),
                sample: index / per_sample,
            });
        }
        check_labels(&labels, classes, origin)?;
        Ok(Self {
            samples: Samples::Values(values),
            labels,
            targets: None,
            channels,
            rows,
            cols,
            classes,
            channel_names,
        })
    }

    /// Loads an IDX image file (rank 3) and its IDX label file (rank 1).
    ///
    /// # Errors
    /// Every malformed input is a [`DataError`] naming the offending file: unreadable or corrupt
    /// gzip, bad IDX header, truncated or over-long body, image/label count mismatch, label out of
    /// range.
    pub fn from_idx_files(images: &Path, labels: &Path, classes: usize) -> Result<Self, DataError> {
        let img = read_idx_u8(images, 3)?;
        let lab = read_idx_u8(labels, 1)?;
        let (n, rows, cols) = (img.dims[0], img.dims[1], img.dims[2]);
        if rows == 0 || cols == 0 {
            return Err(DataError::IdxHeader {
                path: images.to_path_buf(),
                reason: format!("image size {rows}x{cols} is empty"),
            });
        }
        if n != lab.dims[0] {
            return Err(DataError::CountMismatch {
                images: images.to_path_buf(),
                labels: labels.to_path_buf(),
                n_images: n,
                n_labels: lab.dims[0],
            });
        }
        check_labels(&lab.data, classes, labels)?;
        Ok(Self::grayscale(img.data, lab.data, rows, cols, classes))
    }

    /// Loads `split` of the MNIST-style dataset in `dir`, looking for
    /// `{train,t10k}-{images-idx3,labels-idx1}-ubyte` with or without `.gz`.
    ///
    /// # Errors
    /// [`DataError::MissingFile`] listing the names tried, or any error of
    /// [`Dataset::from_idx_files`].
    pub fn load(dir: &Path, kind: DatasetKind, split: Split) -> Result<Self, DataError> {
        let images = find_file(dir, &format!("{}-images-idx3-ubyte", split.prefix()))?;
        let labels = find_file(dir, &format!("{}-labels-idx1-ubyte", split.prefix()))?;
        if kind == DatasetKind::FashionMnistRotation {
            let clothing = Self::from_idx_files(&images, &labels, 10)?;
            return super::rotation::rotated(&clothing, split, &images);
        }
        Self::from_idx_files(&images, &labels, kind.classes())
    }

    /// The same samples with continuous regression targets (`values[i]` for sample `i`,
    /// normalized to `[0, 1]`; `scale` as [`Targets::scale`]).
    ///
    /// # Errors
    /// [`DataError::CountMismatch`] when there is not one target per sample,
    /// [`DataError::NotFinite`] for a target outside `[0, 1]` or not finite; `origin` names the
    /// source.
    pub fn with_targets(
        mut self,
        values: Vec<f32>,
        scale: f32,
        origin: &Path,
    ) -> Result<Self, DataError> {
        if values.len() != self.len() {
            return Err(DataError::CountMismatch {
                images: origin.to_path_buf(),
                labels: origin.to_path_buf(),
                n_images: self.len(),
                n_labels: values.len(),
            });
        }
        if let Some(sample) = values
            .iter()
            .position(|v| !(v.is_finite() && (0.0..=1.0).contains(v)))
        {
            return Err(DataError::NotFinite {
                path: origin.to_path_buf(),
                sample,
            });
        }
        self.targets = Some(Targets { values, scale });
        Ok(self)
    }

    /// The regression targets, if this is a regression set.
    pub fn targets(&self) -> Option<&Targets> {
        self.targets.as_ref()
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The shape of one sample, `[channels, rows, cols]`.
    pub fn shape(&self) -> [usize; 3] {
        [self.channels, self.rows, self.cols]
    }

    /// The name of each channel, in order.
    pub fn channel_names(&self) -> &[String] {
        &self.channel_names
    }

    /// The samples.
    pub fn samples(&self) -> &Samples {
        &self.samples
    }

    fn sample_len(&self) -> usize {
        self.channels * self.rows * self.cols
    }

    /// Image height in pixels.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Image width in pixels.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Number of classes labels range over.
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// The raw pixels of image `i`, row-major (`None` past the end or for a float dataset).
    pub fn image(&self, i: usize) -> Option<&[u8]> {
        let n = self.sample_len();
        match &self.samples {
            Samples::Pixels(p) => p.get(i * n..(i + 1) * n),
            Samples::Values(_) => None,
        }
    }

    /// The label of image `i`. Panics if `i >= len()`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// All labels, in order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Removes the last `n` images (all of them if there are fewer) and returns them as a dataset
    /// of their own: the validation split.
    pub fn split_off(&mut self, n: usize) -> Dataset {
        let keep = self.len().saturating_sub(n);
        Dataset {
            samples: self.samples.split_off(keep * self.sample_len()),
            labels: self.labels.split_off(keep),
            targets: self.targets.as_mut().map(|t| Targets {
                values: t.values.split_off(keep),
                scale: t.scale,
            }),
            channel_names: self.channel_names.clone(),
            ..*self
        }
    }

    /// Appends the samples of `other` (same shape, classes and storage) after this set's own: a
    /// real training set enlarged by a synthetic one (cGAN-KD).
    ///
    /// # Errors
    /// [`DataError::IdxHeader`] naming `origin` (the file `other` came from) when the shapes,
    /// class counts or storage kinds differ.
    pub fn append(&mut self, other: Dataset, origin: &Path) -> Result<(), DataError> {
        let mismatch = |reason: String| DataError::IdxHeader {
            path: origin.to_path_buf(),
            reason,
        };
        if other.shape() != self.shape() || other.classes != self.classes {
            return Err(mismatch(format!(
                "holds {:?} samples of {} classes, the dataset {:?} samples of {} classes",
                other.shape(),
                other.classes,
                self.shape(),
                self.classes
            )));
        }
        match (&mut self.targets, other.targets) {
            (None, None) => {}
            (Some(a), Some(b)) if a.scale == b.scale => a.values.extend(b.values),
            _ => {
                return Err(mismatch(
                    "regression targets and class labels cannot be mixed, nor targets of \
                     different scales"
                        .into(),
                ))
            }
        }
        match (&mut self.samples, other.samples) {
            (Samples::Pixels(a), Samples::Pixels(b)) => a.extend(b),
            (Samples::Values(a), Samples::Values(b)) => a.extend(b),
            _ => return Err(mismatch("pixels and float samples cannot be mixed".into())),
        }
        self.labels.extend(other.labels);
        Ok(())
    }

    /// Keeps only the first `n` images (no-op when `n >= len()`): the subset option tests use to
    /// train on a few hundred images.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            if let Some(t) = &mut self.targets {
                t.values.truncate(n);
            }
            self.samples.truncate(n * self.sample_len());
        }
    }

    /// Mean and standard deviation of all pixels scaled to `[0, 1]` (population std, in f64);
    /// of all values for a float dataset.
    pub fn pixel_mean_std(&self) -> (f32, f32) {
        if self.samples.len() == 0 {
            return (0.0, 1.0);
        }
        let (mut sum, mut sq) = (0f64, 0f64);
        let mut add = |v: f64| {
            sum += v;
            sq += v * v;
        };
        match &self.samples {
            Samples::Pixels(p) => p.iter().for_each(|&p| add(f64::from(p) / 255.0)),
            Samples::Values(v) => v.iter().for_each(|&v| add(f64::from(v))),
        }
        let n = self.samples.len() as f64;
        let mean = sum / n;
        let var = (sq / n - mean * mean).max(0.0);
        (mean as f32, var.sqrt() as f32)
    }
}

fn check_labels(labels: &[u8], classes: usize, path: &Path) -> Result<(), DataError> {
    if let Some((index, &label)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| usize::from(l) >= classes)
    {
        return Err(DataError::LabelOutOfRange {
            path: path.to_path_buf(),
            index,
            label,
            classes,
        });
    }
    Ok(())
}

fn find_file(dir: &Path, stem: &str) -> Result<PathBuf, DataError> {
    let candidates = [dir.join(format!("{stem}.gz")), dir.join(stem)];
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .ok_or_else(|| DataError::MissingFile {
            dir: dir.to_path_buf(),
            tried: candidates
                .iter()
                .filter_map(|p| p.file_name())
                .map(|n| n.to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join(", "),
        })
}
