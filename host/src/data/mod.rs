//! Datasets and batching.
//!
//! - [`idx`]: the IDX(-gz) file format of MNIST and Fashion-MNIST, with every malformed input an
//!   error naming the file;
//! - [`Dataset`]: a split held in memory, as raw pixels (images) or normalized floats (windows of
//!   a time series, `[channels, 1, steps]`), with a subset option ([`Dataset::truncate`]) so tests
//!   train on a few hundred samples;
//! - [`rotation`]: the rotation-angle regression task on Fashion-MNIST (continuous targets,
//!   [`Targets`]);
//! - [`sensors`]: the built-in sensor sets (HAPT, BasicMotions, JapaneseVowels) as datasets:
//!   files, windows, subject-wise split, normalization from the training split;
//! - [`series`]: multichannel time series (sensor recordings): the UEA/UCR `.ts`, CSV, NPY and
//!   EDF/BDF formats, windowing, per-channel normalisation, subject-wise splits and channel
//!   selection;
//! - [`Loader`]: seeded shuffling, augmentation (random crop with padding, horizontal flip),
//!   normalization and batching into `Tensor<4>` NCHW images plus `Tensor<1, Int>` labels.
//!
//! The loader derives all randomness from `(seed, epoch)` ([`derive_seed`]) so that a resumed run
//! sees exactly the batches an uninterrupted one would.

use std::path::PathBuf;

mod dataset;
pub mod idx;
mod loader;
pub mod rotation;
pub mod sensors;
pub mod series;

pub use dataset::{Dataset, DatasetKind, Samples, Split, Targets};
pub use loader::{
    derive_seed, Augmentation, Batch, EpochBatches, Loader, LoaderConfig, Normalization,
};

/// What can go wrong reading a dataset. Every variant names the file (or directory) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file starts like gzip but does not decompress (often a truncated download).
    #[error("cannot decompress {} (corrupt or truncated gzip): {source}", path.display())]
    Decompress {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The IDX header is malformed or does not describe the expected array.
    #[error("{} is not a valid IDX file: {reason}", path.display())]
    IdxHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong with the header.
        reason: String,
    },
    /// The IDX body is shorter than its header promises.
    #[error("{} is truncated: header promises {expected} data bytes, file has {found}", path.display())]
    IdxTruncated {
        /// The file.
        path: PathBuf,
        /// Bytes the header promises.
        expected: usize,
        /// Bytes present.
        found: usize,
    },
    /// The IDX body is longer than its header says.
    #[error("{} has {extra} bytes after the array its header describes", path.display())]
    IdxTrailing {
        /// The file.
        path: PathBuf,
        /// Bytes beyond the array.
        extra: usize,
    },
    /// The image and label files describe different numbers of examples.
    #[error("{} holds {n_images} images but {} holds {n_labels} labels", images.display(), labels.display())]
    CountMismatch {
        /// The image file.
        images: PathBuf,
        /// The label file.
        labels: PathBuf,
        /// Images in the image file.
        n_images: usize,
        /// Labels in the label file.
        n_labels: usize,
    },
    /// A label is not a valid class index.
    #[error("{}: label {label} at index {index} is out of range for {classes} classes", path.display())]
    LabelOutOfRange {
        /// The label file.
        path: PathBuf,
        /// Position of the bad label.
        index: usize,
        /// The bad label.
        label: u8,
        /// Number of classes.
        classes: usize,
    },
    /// A time-series file is malformed or a series operation was asked something impossible
    /// (see [`series::SeriesError`]; each names the file and the line or record).
    #[error(transparent)]
    Series(#[from] series::SeriesError),
    /// A sample holds a NaN or an infinite value.
    #[error("{}: sample {sample} holds a NaN or infinite value", path.display())]
    NotFinite {
        /// The source.
        path: PathBuf,
        /// Position of the sample.
        sample: usize,
    },
    /// A dataset file is missing from the directory.
    #[error("no dataset file in {}: tried {tried}", dir.display())]
    MissingFile {
        /// The directory searched.
        dir: PathBuf,
        /// The file names tried.
        tried: String,
    },
}
