//! The built-in sensor datasets as [`Dataset`]s: which files, which windows, which split.
//!
//! - **HAPT** (UCI, smartphone on the waist, 50 Hz): the per-experiment CSV files that
//!   `tools/setup-sensor-data.sh` writes, cut into windows of `data.window` steps (default 128,
//!   2.56 s) every `data.window_stride` steps (default half a window), keeping only windows whose
//!   every step carries one of the 6 basic activities (the postural transitions and unlabelled
//!   stretches are dropped). The split is by subject: `data.test_subjects` (default the 9 test
//!   subjects of the UCI HAR split) against the other 21, so no person is in both.
//! - **BasicMotions**, **JapaneseVowels** (UEA): the `_TRAIN.ts` / `_TEST.ts` files, one window
//!   per case, zero-padded at the end to `data.window` (default: the longest case).
//!
//! Every set is normalized per channel with the mean and standard deviation of its *training*
//! split (the test split is never looked at for it; UEA padding counts as samples). The channel
//! names are [`DatasetKind::channel_names`], so a student's `model.channels` can name them.

use std::path::Path;

use super::series::{self, csv::CsvOptions, ts::TsOptions, Normalizer, SeriesSet, WindowSpec};
use super::{DataError, Dataset, DatasetKind, Split};

/// The 6 basic activities of HAPT, in label order.
pub const HAPT_ACTIVITIES: [&str; 6] = [
    "WALKING",
    "WALKING_UPSTAIRS",
    "WALKING_DOWNSTAIRS",
    "SITTING",
    "STANDING",
    "LAYING",
];

/// The test subjects of the UCI HAR split (9 of 30 volunteers).
pub const HAPT_TEST_SUBJECTS: [u32; 9] = [2, 4, 9, 10, 12, 13, 18, 20, 24];

/// How a sensor set is cut and split (the `[data]` keys `window`, `window_stride`,
/// `test_subjects`; `None` takes the defaults in the module docs).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SensorOptions {
    /// Window length in steps.
    pub window: Option<usize>,
    /// Steps between window starts (streams only).
    pub stride: Option<usize>,
    /// Subjects held out for the test split (HAPT).
    pub test_subjects: Option<Vec<u32>>,
}

/// Loads `split` of the sensor set `kind` from `dir`, normalized with the training split's
/// per-channel statistics.
///
/// # Errors
/// A [`DataError`] naming the file (and line) at fault; [`DataError::MissingFile`] when the
/// setup script has not been run.
pub fn load(
    kind: DatasetKind,
    dir: &Path,
    options: &SensorOptions,
    split: Split,
) -> Result<Dataset, DataError> {
    let (mut train, mut test) = match kind {
        DatasetKind::Hapt => hapt(dir, options)?,
        DatasetKind::BasicMotions => uea(dir, "BasicMotions", kind, options)?,
        DatasetKind::JapaneseVowels => uea(dir, "JapaneseVowels", kind, options)?,
        DatasetKind::FashionMnist | DatasetKind::Mnist | DatasetKind::FashionMnistRotation => {
            return Dataset::load(dir, kind, split);
        }
    };
    let normalizer = Normalizer::fit(&train)?;
    normalizer.apply(&mut train)?;
    normalizer.apply(&mut test)?;
    let set = match split {
        Split::Train => train,
        Split::Test => test,
    };
    let names = kind.channel_names();
    let origin = dir.join(kind_name(kind));
    Dataset::from_values(
        set.values,
        set.labels,
        [names.len(), 1, set.len],
        kind.classes(),
        names,
        &origin,
    )
}

/// The per-channel `(mean, std)` of the training split of `kind` (what [`load`] normalizes
/// with), for every channel in order: what a sensor node must apply to raw readings, so the
/// exporter writes it into the blob.
///
/// # Errors
/// As [`load`].
pub fn channel_stats(
    kind: DatasetKind,
    dir: &Path,
    options: &SensorOptions,
) -> Result<Vec<(f32, f32)>, DataError> {
    let train = match kind {
        DatasetKind::Hapt => hapt(dir, options)?.0,
        DatasetKind::BasicMotions => uea(dir, "BasicMotions", kind, options)?.0,
        DatasetKind::JapaneseVowels => uea(dir, "JapaneseVowels", kind, options)?.0,
        DatasetKind::FashionMnist | DatasetKind::Mnist | DatasetKind::FashionMnistRotation => {
            return Ok(Vec::new())
        }
    };
    let n = Normalizer::fit(&train)?;
    Ok(n.mean.into_iter().zip(n.std).collect())
}

/// A stretch of one HAPT test-subject recording as a sensor node would see it: the raw readings
/// of `channels` (dataset channel indices, in that order), time-major, and the activity of each
/// step (an index of [`HAPT_ACTIVITIES`], 255 for transitions and unlabelled steps). It starts
/// at the first labelled step of the first test subject's first recording and runs `steps`
/// steps (fewer if the recording ends first). The `.tkr` file of `tinykd export --recording`.
///
/// # Errors
/// As [`load`]; a channel index out of range; a dataset other than HAPT (the UEA sets are
/// separate cases, not a stream).
pub fn test_recording(
    kind: DatasetKind,
    dir: &Path,
    options: &SensorOptions,
    channels: &[usize],
    steps: usize,
) -> Result<(Vec<f32>, Vec<u8>), DataError> {
    if kind != DatasetKind::Hapt {
        return Err(series::SeriesError::BadArgument(
            "a recorded stream needs continuous recordings (hapt)".into(),
        )
        .into());
    }
    let subjects = options
        .test_subjects
        .clone()
        .unwrap_or_else(|| HAPT_TEST_SUBJECTS.to_vec());
    let first = subjects.first().map(u32::to_string).unwrap_or_default();
    let recording = hapt_recordings(dir)?
        .into_iter()
        .find(|r| r.subject.as_deref() == Some(first.as_str()))
        .ok_or_else(|| {
            series::SeriesError::BadArgument(format!("no recording of test subject {first}"))
        })?;
    let width = recording.channels.len();
    if let Some(&bad) = channels.iter().find(|&&c| c >= width) {
        return Err(series::SeriesError::BadArgument(format!(
            "channel {bad} of a {width}-channel recording"
        ))
        .into());
    }
    let start = (0..recording.steps())
        .find(|&t| recording.label_at(t).is_some())
        .unwrap_or(0);
    let end = recording.steps().min(start + steps);
    let mut values = Vec::with_capacity((end - start) * channels.len());
    let mut labels = Vec::with_capacity(end - start);
    for t in start..end {
        values.extend(channels.iter().map(|&c| recording.values[t * width + c]));
        let label = recording
            .label_at(t)
            .and_then(|l| HAPT_ACTIVITIES.iter().position(|a| *a == l));
        labels.push(label.map_or(255, |i| i as u8));
    }
    Ok((values, labels))
}

fn kind_name(kind: DatasetKind) -> &'static str {
    match kind {
        DatasetKind::Hapt => "hapt",
        DatasetKind::BasicMotions => "BasicMotions",
        DatasetKind::JapaneseVowels => "JapaneseVowels",
        _ => "images",
    }
}

fn hapt_recordings(dir: &Path) -> Result<Vec<series::Recording>, DataError> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|source| DataError::Io {
            path: dir.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    if files.is_empty() {
        return Err(DataError::MissingFile {
            dir: dir.to_path_buf(),
            tried: "s*_r*.csv (run tools/setup-sensor-data.sh)".into(),
        });
    }
    files.sort();
    let mut csv = CsvOptions::new("label");
    csv.subject_column = Some("subject".into());
    csv.rate_hz = Some(50.0);
    let mut recordings = Vec::new();
    for f in &files {
        recordings.extend(series::csv::read_csv(f, &csv)?);
    }
    Ok(recordings)
}

fn hapt(dir: &Path, options: &SensorOptions) -> Result<(SeriesSet, SeriesSet), DataError> {
    let recordings = hapt_recordings(dir)?;
    let len = options
        .window
        .or(DatasetKind::Hapt.default_window())
        .unwrap_or(128);
    let spec = WindowSpec {
        len,
        stride: options.stride.unwrap_or((len / 2).max(1)),
        single_label: true,
    };
    let classes: Vec<String> = HAPT_ACTIVITIES.map(String::from).to_vec();
    let all = series::windows(&recordings, &spec, Some(&classes))?;
    let test_subjects: Vec<String> = options
        .test_subjects
        .clone()
        .unwrap_or_else(|| HAPT_TEST_SUBJECTS.to_vec())
        .iter()
        .map(u32::to_string)
        .collect();
    let test_refs: Vec<&str> = test_subjects.iter().map(String::as_str).collect();
    Ok(series::split_by_subjects(&all, &test_refs)?)
}

fn uea(
    dir: &Path,
    problem: &str,
    kind: DatasetKind,
    options: &SensorOptions,
) -> Result<(SeriesSet, SeriesSet), DataError> {
    let read = |split: &str| -> Result<series::ts::TsFile, DataError> {
        let path = dir.join(format!("{problem}_{split}.ts"));
        if !path.is_file() {
            return Err(DataError::MissingFile {
                dir: dir.to_path_buf(),
                tried: format!("{problem}_{split}.ts (run tools/setup-sensor-data.sh)"),
            });
        }
        Ok(series::ts::read_ts(&path, &TsOptions::default())?)
    };
    let (train, test) = (read("TRAIN")?, read("TEST")?);
    let len = options
        .window
        .or(kind.default_window())
        .unwrap_or(train.length_range().1);
    let classes = &train.class_names;
    Ok((
        series::fixed_length(&train.cases, len, classes)?,
        series::fixed_length(&test.cases, len, classes)?,
    ))
}
