//! In-memory image classification datasets (MNIST-style: 28×28 grayscale, 10 classes).
//!
//! The whole split is kept as raw `u8` pixels (47 MB for the Fashion-MNIST train split); batches
//! are normalized and augmented on the fly by [`super::loader`], so one copy serves every epoch and
//! every augmentation.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::idx::read_idx_u8;
use super::DataError;

/// Which dataset a directory holds. Both use the same file names and format; they differ in the
/// normalization constants and in whether a horizontal flip is a label-preserving augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetKind {
    /// Zalando's Fashion-MNIST (clothing; flips preserve the label).
    FashionMnist,
    /// LeCun's MNIST digits (flips do not preserve the label).
    Mnist,
}

impl DatasetKind {
    /// Where Debian's `dataset-fashion-mnist` package installs the files; MNIST has no default.
    pub fn default_dir(self) -> Option<PathBuf> {
        match self {
            Self::FashionMnist => Some(PathBuf::from("/usr/share/datasets/fashion-mnist")),
            Self::Mnist => None,
        }
    }

    /// Number of classes.
    pub fn classes(self) -> usize {
        10
    }

    /// Whether mirroring an image left-right keeps its label (true for clothing, false for
    /// digits: a mirrored 2 is not a 2).
    pub fn hflip_preserves_label(self) -> bool {
        matches!(self, Self::FashionMnist)
    }

    /// The per-pixel mean and standard deviation of the training split, on pixels scaled to
    /// `[0, 1]`. Fashion-MNIST: 0.2860 / 0.3530 (computed over the 60k training images, see
    /// [`Dataset::pixel_mean_std`]); MNIST: 0.1307 / 0.3081 (the values PyTorch's examples use).
    pub fn mean_std(self) -> (f32, f32) {
        match self {
            Self::FashionMnist => (0.2860, 0.3530),
            Self::Mnist => (0.1307, 0.3081),
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

/// A labelled set of single-channel images held as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
    rows: usize,
    cols: usize,
    classes: usize,
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
        Ok(Self {
            images,
            labels,
            rows,
            cols,
            classes,
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
        Ok(Self {
            images: img.data,
            labels: lab.data,
            rows,
            cols,
            classes,
        })
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
        Self::from_idx_files(&images, &labels, kind.classes())
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether the dataset holds no image.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
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

    /// The raw pixels of image `i`, row-major. Panics if `i >= len()` (an index, not data).
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.rows * self.cols;
        &self.images[i * n..(i + 1) * n]
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
        let images = self.images.split_off(keep * self.rows * self.cols);
        let labels = self.labels.split_off(keep);
        Dataset {
            images,
            labels,
            rows: self.rows,
            cols: self.cols,
            classes: self.classes,
        }
    }

    /// Keeps only the first `n` images (no-op when `n >= len()`): the subset option tests use to
    /// train on a few hundred images.
    pub fn truncate(&mut self, n: usize) {
        if n < self.len() {
            self.labels.truncate(n);
            self.images.truncate(n * self.rows * self.cols);
        }
    }

    /// Mean and standard deviation of all pixels scaled to `[0, 1]` (population std, in f64).
    pub fn pixel_mean_std(&self) -> (f32, f32) {
        if self.images.is_empty() {
            return (0.0, 1.0);
        }
        let (mut sum, mut sq) = (0f64, 0f64);
        for &p in &self.images {
            let v = f64::from(p) / 255.0;
            sum += v;
            sq += v * v;
        }
        let n = self.images.len() as f64;
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
