//! Multichannel time series: sensor recordings and the windowed sets a 1-D model trains on.
//!
//! Sensor nodes (a wearable's accelerometer and gyroscope, a headset's EEG electrodes) produce
//! streams, not images. This module reads them from the formats public datasets ship in, and turns
//! them into fixed-size windows with one class label each:
//!
//! - [`ts`]: the UEA/UCR `.ts` format of sktime and aeon (BasicMotions, JapaneseVowels): one
//!   [`Recording`] per case, labelled as a whole; equal and unequal lengths, missing values
//!   rejected or filled;
//! - [`csv`]: CSV recordings with a header row, a label column and an optional subject column;
//!   one [`Recording`] per contiguous run of one subject (UCI HAPT as `tools/setup-sensor-data.sh`
//!   writes it);
//! - [`npy`]: NumPy `.npy` arrays (`T × columns`, one of them the label);
//! - [`edf`]: EDF, EDF+ and BDF (24-bit) files as EEG datasets such as PhysioNet EEGMMIDB ship
//!   them, with the EDF+ annotations as per-step labels;
//! - [`window`]: windowing (length, stride, one label per window), fixed-length cases (padding or
//!   truncation), per-channel normalisation fitted on the training split, subject-wise splits and
//!   channel selection by name or index.
//!
//! Nothing here touches burn: a [`SeriesSet`] is plain `f32`s, channel-major per window, which is
//! the `[n, C, len]` layout a `conv1d` takes.
//!
//! Every malformed input is a [`SeriesError`] naming the file and the line (text formats) or the
//! record (binary formats) at fault; it converts into [`super::DataError`].
//!
//! ```
//! use tinykd::data::series::{window, Recording, RecordingLabels};
//!
//! // Two channels, 6 steps, time-major; the first 4 steps are "walk", then "sit".
//! let rec = Recording {
//!     source: "mem".into(),
//!     channels: vec!["x".into(), "y".into()],
//!     rate_hz: Some(50.0),
//!     values: vec![0., 10., 1., 11., 2., 12., 3., 13., 4., 14., 5., 15.],
//!     labels: RecordingLabels::PerStep(
//!         ["walk", "walk", "walk", "walk", "sit", "sit"].map(|s| Some(s.to_string())).to_vec(),
//!     ),
//!     subject: Some("s1".into()),
//! };
//! let spec = window::WindowSpec { len: 2, stride: 2, single_label: true };
//! let set = window::windows(&[rec], &spec, None).unwrap();
//! assert_eq!(set.class_names, ["sit", "walk"]);
//! assert_eq!(set.labels, [1, 1, 0]);
//! // Window 0, channel-major: x[0..2] then y[0..2].
//! assert_eq!(set.window(0), [0., 1., 10., 11.]);
//! ```

use std::path::PathBuf;

pub mod csv;
pub mod edf;
pub mod npy;
pub mod ts;
pub mod window;

pub use window::{
    fixed_length, select_channels, select_recording_channels, split_by_subjects, windows,
    ChannelRef, Normalizer, WindowSpec,
};

/// One continuous multichannel recording (or one case of a `.ts` file).
#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    /// The file it came from (errors, provenance).
    pub source: PathBuf,
    /// Channel names: `dim_0`, `dim_1`… for `.ts`, the header names for CSV, the signal labels for
    /// EDF.
    pub channels: Vec<String>,
    /// Sample rate, when the format states it (CSV: as given by the caller; EDF: from the header).
    pub rate_hz: Option<f64>,
    /// The samples, time-major: `values[t * channels.len() + c]`.
    pub values: Vec<f32>,
    /// The class label(s).
    pub labels: RecordingLabels,
    /// The subject (person, session) the recording belongs to, for subject-wise splits.
    pub subject: Option<String>,
}

/// The labels of a [`Recording`].
#[derive(Debug, Clone, PartialEq)]
pub enum RecordingLabels {
    /// One label for the whole recording (a `.ts` case).
    Whole(String),
    /// One label per time step, `None` where the step is unlabelled (streams).
    PerStep(Vec<Option<String>>),
}

impl Recording {
    /// Number of time steps.
    pub fn steps(&self) -> usize {
        self.values
            .len()
            .checked_div(self.channels.len())
            .unwrap_or(0)
    }

    /// The label of step `t` (`None` if unlabelled or out of range).
    pub fn label_at(&self, t: usize) -> Option<&str> {
        match &self.labels {
            RecordingLabels::Whole(l) => (t < self.steps()).then_some(l.as_str()),
            RecordingLabels::PerStep(v) => v.get(t).and_then(|l| l.as_deref()),
        }
    }

    /// The samples of channel `c`, in time order.
    pub fn channel(&self, c: usize) -> Vec<f32> {
        let n = self.channels.len();
        self.values
            .iter()
            .skip(c)
            .step_by(n.max(1))
            .copied()
            .collect()
    }
}

/// Windows with one class label each: what the trainer consumes.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesSet {
    /// Channel names, in the order of the values.
    pub channels: Vec<String>,
    /// Window length in samples.
    pub len: usize,
    /// Class names; a label is an index into this list.
    pub class_names: Vec<String>,
    /// `n × C × len` samples, channel-major within a window: `values[(i * C + c) * len + t]`.
    pub values: Vec<f32>,
    /// One label per window.
    pub labels: Vec<u8>,
    /// The subject of each window's recording.
    pub subjects: Vec<Option<String>>,
}

impl SeriesSet {
    /// Number of windows.
    pub fn n(&self) -> usize {
        self.labels.len()
    }

    /// Samples per window (`channels × len`).
    pub fn window_size(&self) -> usize {
        self.channels.len() * self.len
    }

    /// Window `i`, channel-major (`C × len`). Panics if `i >= self.n()`.
    pub fn window(&self, i: usize) -> &[f32] {
        let w = self.window_size();
        &self.values[i * w..(i + 1) * w]
    }

    /// The windows at `indices` (in that order), as a new set with the same channels and classes.
    /// Panics on an index `>= self.n()`.
    pub fn subset(&self, indices: &[usize]) -> SeriesSet {
        let mut values = Vec::with_capacity(indices.len() * self.window_size());
        for &i in indices {
            values.extend_from_slice(self.window(i));
        }
        SeriesSet {
            channels: self.channels.clone(),
            len: self.len,
            class_names: self.class_names.clone(),
            values,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            subjects: indices.iter().map(|&i| self.subjects[i].clone()).collect(),
        }
    }

    /// Windows per class, indexed like [`SeriesSet::class_names`].
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.class_names.len()];
        for &l in &self.labels {
            if let Some(c) = counts.get_mut(usize::from(l)) {
                *c += 1;
            }
        }
        counts
    }

    /// The distinct subjects, sorted (windows without a subject are not counted).
    pub fn subject_names(&self) -> Vec<String> {
        let mut s: Vec<String> = self.subjects.iter().flatten().cloned().collect();
        s.sort();
        s.dedup();
        s
    }
}

/// What can go wrong reading or windowing time series. Every variant about a file names it and
/// the line (text formats) or record (binary formats) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SeriesError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `.ts` file is malformed (header tag, case syntax, value, label).
    #[error("{}:{line}: {reason}", path.display())]
    TsSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A CSV file is malformed (header, column count, value, label).
    #[error("{}:{line}: {reason}", path.display())]
    CsvSyntax {
        /// The file.
        path: PathBuf,
        /// 1-based line number (the header is line 1).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An NPY header is malformed or describes an array this reader does not take.
    #[error("{} is not a supported NPY file: {reason}", path.display())]
    NpyHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong (magic, version, dtype, Fortran order, shape).
        reason: String,
    },
    /// An NPY body does not match its header, or holds a bad label.
    #[error("{}: {reason}", path.display())]
    NpyData {
        /// The file.
        path: PathBuf,
        /// What is wrong (truncated data, trailing bytes, a label that is not an integer).
        reason: String,
    },
    /// An EDF/BDF header is malformed.
    #[error("{} is not a valid EDF/BDF file: {reason}", path.display())]
    EdfHeader {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the field (and signal) at fault.
        reason: String,
    },
    /// An EDF/BDF data record is truncated or holds a malformed annotation.
    #[error("{}: data record {record}: {reason}", path.display())]
    EdfRecord {
        /// The file.
        path: PathBuf,
        /// 0-based data record index.
        record: usize,
        /// What is wrong.
        reason: String,
    },
    /// The selected EDF/BDF signals do not share one sample rate.
    #[error("{}: the selected signals have different sample rates ({rates}); select signals of one rate", path.display())]
    EdfMixedRates {
        /// The file.
        path: PathBuf,
        /// Each selected signal with its rate.
        rates: String,
    },
    /// A channel asked for by name or index does not exist.
    #[error("unknown channel(s) {unknown} in {source_name}; available: {available}")]
    ChannelUnknown {
        /// Where the channels were looked up (a file, or "the series set").
        source_name: String,
        /// The names or indices not found.
        unknown: String,
        /// The channels there are.
        available: String,
    },
    /// Recordings or sets that must agree (channels, classes, lengths) do not.
    #[error("{what}: {reason}")]
    Mismatch {
        /// What was being combined (names the files where there are some).
        what: String,
        /// What differs.
        reason: String,
    },
    /// A window, split or normalisation argument is invalid.
    #[error("invalid argument: {0}")]
    BadArgument(String),
}

impl SeriesError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        SeriesError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Reads the whole file at `path`.
pub(crate) fn read_file(path: &std::path::Path) -> Result<Vec<u8>, SeriesError> {
    std::fs::read(path).map_err(|e| SeriesError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recording_accessors() {
        let r = Recording {
            source: "m".into(),
            channels: vec!["a".into(), "b".into()],
            rate_hz: None,
            values: vec![1., 2., 3., 4., 5., 6.],
            labels: RecordingLabels::Whole("k".into()),
            subject: None,
        };
        assert_eq!(r.steps(), 3);
        assert_eq!(r.channel(1), [2., 4., 6.]);
        assert_eq!(r.label_at(2), Some("k"));
        assert_eq!(r.label_at(3), None);
    }

    #[test]
    fn set_subset_and_counts() {
        let s = SeriesSet {
            channels: vec!["a".into()],
            len: 2,
            class_names: vec!["x".into(), "y".into()],
            values: vec![1., 2., 3., 4., 5., 6.],
            labels: vec![0, 1, 1],
            subjects: vec![Some("p".into()), None, Some("q".into())],
        };
        let t = s.subset(&[2, 0]);
        assert_eq!(t.values, [5., 6., 1., 2.]);
        assert_eq!(t.labels, [1, 0]);
        assert_eq!(s.class_counts(), [1, 2]);
        assert_eq!(s.subject_names(), ["p", "q"]);
    }

    /// The data directory of `tools/setup-sensor-data.sh`: `$TINYKD_SENSOR_DATA`, else
    /// `data/sensors` in the repository. `None` (with a note) when it is not set up.
    fn sensor_data() -> Option<PathBuf> {
        let dir = std::env::var_os("TINYKD_SENSOR_DATA").map_or_else(
            || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/sensors"),
            PathBuf::from,
        );
        if dir.join("ts/BasicMotions_TRAIN.ts").is_file() && dir.join("hapt/s01_r1.csv").is_file() {
            Some(dir)
        } else {
            eprintln!(
                "note: {} has no sensor data, skipping (run tools/setup-sensor-data.sh)",
                dir.display()
            );
            None
        }
    }

    /// The real datasets as the setup script writes them: counts, shapes, classes, subjects.
    #[test]
    fn real_sensor_data() {
        let Some(dir) = sensor_data() else { return };

        // UCI HAPT: 61 recordings of 30 subjects, 6 channels at 50 Hz.
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("hapt"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "csv"))
            .collect();
        files.sort();
        let opts = csv::CsvOptions {
            subject_column: Some("subject".into()),
            rate_hz: Some(50.0),
            ..csv::CsvOptions::new("label")
        };
        let recs: Vec<Recording> = files
            .iter()
            .flat_map(|f| csv::read_csv(f, &opts).unwrap())
            .collect();
        assert_eq!(recs.len(), 61);
        assert_eq!(
            recs[0].channels,
            ["acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z"]
        );
        assert_eq!(recs.iter().map(Recording::steps).sum::<usize>(), 1_122_772);
        let basic: Vec<String> = crate::data::sensors::HAPT_ACTIVITIES
            .map(String::from)
            .to_vec();
        let spec = WindowSpec {
            len: 128,
            stride: 64,
            single_label: true,
        };
        let set = windows(&recs, &spec, Some(&basic)).unwrap();
        assert_eq!(set.n(), 10_017);
        assert_eq!(set.class_counts(), [1660, 1468, 1317, 1736, 1926, 1910]);
        assert_eq!(set.subject_names().len(), 30);
        assert_eq!(set.values.len(), 10_017 * 6 * 128);
        // With the 6 postural transitions as well.
        assert_eq!(windows(&recs, &spec, None).unwrap().n(), 10_361);
        // The UCI HAR test subjects.
        let test_subjects = ["2", "4", "9", "10", "12", "13", "18", "20", "24"];
        let (mut train, mut test) = split_by_subjects(&set, &test_subjects).unwrap();
        assert_eq!(train.n() + test.n(), set.n());
        assert_eq!(train.subject_names().len(), 21);
        let norm = Normalizer::fit(&train).unwrap();
        norm.apply(&mut train).unwrap();
        norm.apply(&mut test).unwrap();
        let acc =
            select_channels(&train, &["acc_x".into(), "acc_y".into(), "acc_z".into()]).unwrap();
        assert_eq!(acc.window_size(), 3 * 128);
        eprintln!(
            "HAPT: {} windows ({} train, {} test), classes {:?}",
            set.n(),
            train.n(),
            test.n(),
            set.class_counts()
        );

        // BasicMotions: 40 + 40 cases of 6 channels × 100 steps, 4 classes of 10 cases each.
        let ts_opts = ts::TsOptions::default();
        for split in ["TRAIN", "TEST"] {
            let f =
                ts::read_ts(&dir.join(format!("ts/BasicMotions_{split}.ts")), &ts_opts).unwrap();
            assert_eq!(f.cases.len(), 40);
            assert_eq!((f.dimensions, f.length_range()), (6, (100, 100)));
            assert_eq!(
                f.class_names,
                ["Standing", "Running", "Walking", "Badminton"]
            );
            let set = fixed_length(&f.cases, 100, &f.class_names).unwrap();
            assert_eq!(set.class_counts(), [10, 10, 10, 10]);
        }

        // JapaneseVowels: 270 + 370 cases of 12 channels, 7 to 29 (train: 7 to 26) steps, 9 speakers.
        for (split, n, max) in [("TRAIN", 270, 26), ("TEST", 370, 29)] {
            let f =
                ts::read_ts(&dir.join(format!("ts/JapaneseVowels_{split}.ts")), &ts_opts).unwrap();
            assert_eq!(f.cases.len(), n);
            assert_eq!(f.dimensions, 12);
            assert_eq!(f.length_range(), (7, max), "{split}");
            assert_eq!(f.class_names.len(), 9);
            let set = fixed_length(&f.cases, 29, &f.class_names).unwrap();
            assert_eq!(set.values.len(), n * 12 * 29);
            eprintln!("JapaneseVowels {split}: per class {:?}", set.class_counts());
        }
    }
}
